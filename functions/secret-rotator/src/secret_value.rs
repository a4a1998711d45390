//! The secret's JSON: the standard RDS form for databases, or an API key.
//!
//! Database secrets: `{"engine", "host", "port", "username", "password", "dbname"?, "masterarn"?,
//! "sslmode"?, "tls_server_name"?, "test_table"?}` (engine `postgres` or `mysql`/`mariadb`). With
//! `masterarn`, rotation alternates between `<user>` and `<user>_clone`, created by the master
//! secret's user. A master secret may be RDS-managed, `{"username", "password"}` only.
//!
//! API keys: `{"type": "api-key", "key_field"?: "api_key", "api_key": "...", "owners"?: "...",
//! "provider"?: "..."}`.
//!
//! Every other field is kept as it is in the new version.

use serde_json::{Map, Value};
use watchkeeper_shared::secret::Secret;

use crate::database::{Credentials, Engine, TlsMode};
use crate::error::RotationError;

pub const CLONE_SUFFIX: &str = "_clone";

#[derive(Debug, Clone)]
pub enum SecretKind {
    Database(DbSecret),
    ApiKey(ApiKeySecret),
}

#[derive(Debug, Clone)]
pub struct DbSecret {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Secret<String>,
    pub dbname: Option<String>,
    /// ARN of the secret of a user allowed to create and alter the rotated users.
    pub masterarn: Option<String>,
    /// `sslmode` in the secret. It can only make TLS stricter than `DB_TLS`, never looser.
    pub tls: Option<TlsMode>,
    /// The name the server certificate must carry when `host` is an alias (CNAME) of it.
    pub tls_server_name: Option<String>,
    /// A table testSecret reads with the new credentials (`schema.table` or `table`).
    pub test_table: Option<String>,
    fields: Secret<Map<String, Value>>,
}

#[derive(Debug, Clone)]
pub struct ApiKeySecret {
    pub key_field: String,
    pub owners: Option<String>,
    pub provider: Option<String>,
    fields: Secret<Map<String, Value>>,
}

pub fn parse(text: &Secret<String>) -> Result<SecretKind, RotationError> {
    let value: Value = serde_json::from_str(text.expose()).map_err(|e| {
        RotationError::Malformed(format!(
            "secret value is not JSON ({:?} error)",
            e.classify()
        ))
    })?;
    let Value::Object(fields) = value else {
        return Err(RotationError::Malformed(
            "secret value must be a JSON object".into(),
        ));
    };
    let text_field = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|s| !s.is_empty())
    };
    if text_field("type").as_deref() == Some("api-key") {
        let key_field = text_field("key_field").unwrap_or_else(|| "api_key".into());
        return Ok(SecretKind::ApiKey(ApiKeySecret {
            owners: text_field("owners"),
            provider: text_field("provider"),
            key_field,
            fields: Secret::new(fields),
        }));
    }
    let required = |name: &str| {
        text_field(name).ok_or_else(|| RotationError::Malformed(format!("secret lacks \"{name}\"")))
    };
    let engine = match required("engine")?.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" | "aurora-postgresql" => Engine::Postgres,
        "mysql" | "mariadb" | "aurora-mysql" | "aurora" => Engine::MySql,
        _ => {
            return Err(RotationError::Malformed(
                "secret engine must be postgres, mysql or mariadb (or type api-key)".into(),
            ));
        }
    };
    let port = match fields.get("port") {
        None | Some(Value::Null) => engine.default_port(),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0),
        Some(Value::String(s)) => s.parse().ok().filter(|p| *p > 0),
        Some(_) => None,
    }
    .ok_or_else(|| RotationError::Malformed("secret port must be a TCP port".into()))?;
    let tls = match text_field("sslmode")
        .map(|m| m.to_ascii_lowercase())
        .as_deref()
    {
        None => None,
        Some("disable") => Some(TlsMode::Disable),
        Some("verify-full" | "require" | "verify-ca") => Some(TlsMode::VerifyFull),
        Some(_) => {
            return Err(RotationError::Malformed(
                "secret sslmode must be disable or verify-full".into(),
            ));
        }
    };
    Ok(SecretKind::Database(DbSecret {
        engine,
        host: required("host")?,
        port,
        username: required("username")?,
        password: Secret::new(required("password")?),
        dbname: text_field("dbname"),
        masterarn: text_field("masterarn"),
        test_table: text_field("test_table"),
        tls,
        tls_server_name: text_field("tls_server_name"),
        fields: Secret::new(fields),
    }))
}

/// A master secret: the standard form, or one managed by RDS itself, `{"username", "password"}`
/// only (its host, port and engine are then those of the rotated secret).
#[derive(Debug, Clone)]
pub enum MasterValue {
    Full(DbSecret),
    LoginOnly {
        username: String,
        password: Secret<String>,
    },
}

pub fn parse_master(text: &Secret<String>) -> Result<MasterValue, RotationError> {
    let value: Value = serde_json::from_str(text.expose())
        .map_err(|_| RotationError::Malformed("master secret value is not JSON".into()))?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if value.get("host").is_some() || value.get("engine").is_some() {
        return match parse(text)? {
            SecretKind::Database(db) => Ok(MasterValue::Full(db)),
            SecretKind::ApiKey(_) => Err(RotationError::Malformed(
                "master secret is not a database secret".into(),
            )),
        };
    }
    match (field("username"), field("password")) {
        (Some(username), Some(password)) => Ok(MasterValue::LoginOnly {
            username,
            password: Secret::new(password),
        }),
        _ => Err(RotationError::Malformed(
            "master secret lacks \"username\" or \"password\"".into(),
        )),
    }
}

impl DbSecret {
    /// These connection settings (engine, host, port, database, TLS) with another user's login.
    pub fn as_user(&self, username: &str, password: &Secret<String>) -> DbSecret {
        let mut other = self.clone();
        other.username = username.to_string();
        other.password = password.clone();
        other
    }

    pub fn credentials(&self, default_tls: TlsMode) -> Credentials {
        Credentials {
            engine: self.engine,
            host: self.host.clone(),
            port: self.port,
            username: self.username.clone(),
            password: self.password.clone(),
            dbname: self.dbname.clone(),
            tls: default_tls.stricter(self.tls),
            tls_server_name: self.tls_server_name.clone(),
        }
    }

    /// Engine, host and port: where this secret's credentials are used.
    pub fn endpoint(&self) -> (crate::database::Engine, String, u16) {
        (self.engine, self.host.to_ascii_lowercase(), self.port)
    }

    /// The user the next version uses: the same one, or, alternating, the other of the pair.
    pub fn next_username(&self) -> String {
        if self.masterarn.is_none() {
            return self.username.clone();
        }
        match self.username.strip_suffix(CLONE_SUFFIX) {
            Some(original) => original.to_string(),
            None => format!("{}{CLONE_SUFFIX}", self.username),
        }
    }

    /// The base user of an alternating pair (the one the clone copies).
    pub fn original_username(&self) -> &str {
        self.username
            .strip_suffix(CLONE_SUFFIX)
            .unwrap_or(&self.username)
    }

    /// This secret's JSON with another username and password; all other fields kept.
    pub fn with_login(&self, username: &str, password: &Secret<String>) -> Secret<String> {
        let mut fields = self.fields.expose().clone();
        fields.insert("username".into(), Value::String(username.to_string()));
        fields.insert("password".into(), Value::String(password.expose().clone()));
        Secret::new(Value::Object(fields).to_string())
    }
}

impl ApiKeySecret {
    pub fn key(&self) -> Option<&str> {
        self.fields
            .expose()
            .get(&self.key_field)
            .and_then(Value::as_str)
    }

    pub fn with_key(&self, key: &Secret<String>) -> Secret<String> {
        let mut fields = self.fields.expose().clone();
        fields.insert(self.key_field.clone(), Value::String(key.expose().clone()));
        Secret::new(Value::Object(fields).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(json: &str) -> Secret<String> {
        Secret::new(json.to_string())
    }

    #[test]
    fn rds_secrets_parse_and_keep_their_other_fields() {
        let SecretKind::Database(db) = parse(&secret(r#"{"engine":"postgres","host":"db","port":"5433","username":"app","password":"p@ss","dbname":"dispatch","dbInstanceIdentifier":"des-db"}"#)).unwrap() else {
            panic!()
        };
        assert_eq!((db.port, db.next_username().as_str()), (5433, "app"));
        let next = db.with_login("app", &Secret::new("n3w".into()));
        let value: Value = serde_json::from_str(next.expose()).unwrap();
        assert_eq!(value["password"], "n3w");
        assert_eq!(value["dbInstanceIdentifier"], "des-db");
        assert!(!format!("{db:?}").contains("p@ss"));
    }

    #[test]
    fn alternating_users_flip_between_user_and_clone() {
        let SecretKind::Database(db) = parse(&secret(
            r#"{"engine":"mysql","host":"db","username":"app","password":"x","masterarn":"arn:m"}"#,
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!((db.port, db.next_username().as_str()), (3306, "app_clone"));
        let SecretKind::Database(clone) = parse(&secret(r#"{"engine":"mysql","host":"db","username":"app_clone","password":"x","masterarn":"arn:m"}"#)).unwrap() else { panic!() };
        assert_eq!(
            (clone.next_username().as_str(), clone.original_username()),
            ("app", "app")
        );
    }

    #[test]
    fn bad_secrets_are_malformed_without_showing_values() {
        for bad in [
            r#"not json with hunter2"#,
            r#"[]"#,
            r#"{"engine":"oracle","host":"h","username":"u","password":"hunter2"}"#,
            r#"{"engine":"postgres","username":"u","password":"hunter2"}"#,
            r#"{"engine":"postgres","host":"h","port":70000,"username":"u","password":"hunter2"}"#,
        ] {
            let err = parse(&secret(bad)).unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn api_keys_are_recognised() {
        let SecretKind::ApiKey(key) = parse(&secret(r#"{"type":"api-key","key_field":"token","token":"old","owners":"maps-team@example.com"}"#)).unwrap() else { panic!() };
        assert_eq!(key.key(), Some("old"));
        let next: Value =
            serde_json::from_str(key.with_key(&Secret::new("new".into())).expose()).unwrap();
        assert_eq!(
            (next["token"].as_str(), next["owners"].as_str()),
            (Some("new"), Some("maps-team@example.com"))
        );
    }
}
