//! The databases whose passwords rotate: logging in, and setting a user's password without the
//! cleartext reaching the server (PostgreSQL: a SCRAM-SHA-256 verifier computed here; MariaDB: a
//! `mysql_native_password` hash computed here).
//!
//! TLS is verify-full against the configured CA bundle by default, and never falls back to
//! plaintext: plaintext happens only when the configuration and the secret both allow it (see
//! [`TlsMode::stricter`]).

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::secret::Secret;

pub mod mysql;
pub mod mysql_clones;
pub mod mysql_grants;
pub mod mysql_plaintext;
pub mod mysql_users;
pub mod pg_cleartext;
pub mod pg_roles;
pub mod postgres;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MySql,
}

impl Engine {
    pub fn default_port(self) -> Option<u16> {
        Some(match self {
            Engine::Postgres => 5432,
            Engine::MySql => 3306,
        })
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Postgres => "postgres",
            Engine::MySql => "mysql",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS required, certificate chain and host name verified.
    VerifyFull,
    /// Plaintext, only when explicitly configured.
    Disable,
}

impl TlsMode {
    /// The stricter of two modes: a secret can only tighten what the configuration allows.
    pub fn stricter(self, other: Option<TlsMode>) -> TlsMode {
        match (self, other) {
            (TlsMode::Disable, None | Some(TlsMode::Disable)) => TlsMode::Disable,
            _ => TlsMode::VerifyFull,
        }
    }
}

/// Where and as whom to log in. The password only ever shows as `***`.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Secret<String>,
    pub dbname: Option<String>,
    pub tls: TlsMode,
    /// The name the server's certificate must carry, when `host` is an alias (a CNAME) of it.
    pub tls_server_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// The server refused the login: wrong password or no such user.
    Auth,
    /// No connection: refused, timed out, DNS.
    Unreachable,
    /// TLS could not be set up or verified (or the server does not offer it).
    Tls,
    /// A statement failed.
    Query,
    /// The function is not set up for this (no CA bundle for TLS, ...).
    Setup,
    /// A check made before acting with the master's privileges refused the request.
    Refused,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{engine} {host}:{port} as {user}: {message}")]
pub struct DbError {
    pub kind: DbErrorKind,
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub message: String,
}

impl DbError {
    pub fn new(creds: &Credentials, kind: DbErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            engine: creds.engine,
            host: creds.host.clone(),
            port: creds.port,
            user: creds.username.clone(),
            message: message.into(),
        }
    }
}

impl Retryable for DbError {
    fn is_retryable(&self) -> bool {
        matches!(self.kind, DbErrorKind::Unreachable | DbErrorKind::Query)
    }
}

/// The port rotation logic talks to databases through.
pub trait Database: Send + Sync {
    /// Logs in with `creds` and runs a trivial query.
    fn check_login(&self, creds: &Credentials) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Logs in with `creds` and reads one row of `table` (`schema.table` or `table`).
    fn check_table(
        &self,
        creds: &Credentials,
        table: &str,
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Logged in as `admin`, sets `request.user`'s password, after refusing (kind `Refused`) a
    /// user that holds or can reach administrative privileges. With `clone_of`, creates the user
    /// first if it does not exist, as a copy of `clone_of`, all or nothing.
    fn set_password(
        &self,
        admin: &Credentials,
        request: &SetPassword<'_>,
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// How the privileges of `clone` differ from those of `original` (empty: the same), read while
    /// logged in with the pair's own credentials (`current` and `pending`, one of each user), never
    /// the master's. The differences name privileges, never a password.
    fn clone_differences(
        &self,
        current: &Credentials,
        pending: &Credentials,
        original: &str,
        clone: &str,
    ) -> impl Future<Output = Result<Vec<String>, DbError>> + Send;
}

/// What setSecret asks of the master user.
#[derive(Debug, Clone)]
pub struct SetPassword<'a> {
    pub user: &'a str,
    pub password: &'a Secret<String>,
    /// The original of an alternating pair, when `user` is its clone.
    pub clone_of: Option<&'a str>,
    /// Users that must never be altered or cloned: the master user itself.
    pub forbidden: &'a [&'a str],
    /// Alternating, back to the original: the current user, `<user>_clone`. It must be the
    /// rotator's clone of `user` (a role merely named so proves nothing about `user`).
    pub current_clone: Option<&'a str>,
}

/// Connection settings shared by both engines.
#[derive(Debug, Clone)]
pub struct Settings {
    /// CA certificates for verify-full; `None` when no bundle is configured.
    pub roots: Option<Arc<RootCertStore>>,
    /// The bundle's path, handed to drivers that load it themselves.
    pub ca_file: Option<std::path::PathBuf>,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
}

impl Settings {
    /// How long one database operation (a login check, a password change with its checks and a
    /// clone's statements, a comparison of grants) may take in all: the connect, and three
    /// statement timeouts for what follows. The server bounds each statement too (PostgreSQL's
    /// `statement_timeout`, MariaDB's `max_statement_time`, MySQL's `max_execution_time` for
    /// reads); this bound also ends a session whose server, or a box on the way, stops answering.
    pub fn operation_limit(&self) -> Duration {
        self.connect_timeout + self.statement_timeout * 3
    }

    async fn bounded<T>(
        &self,
        creds: &Credentials,
        operation: impl Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        let limit = self.operation_limit();
        tokio::time::timeout(limit, operation)
            .await
            .unwrap_or_else(|_| {
                Err(DbError::new(
                    creds,
                    DbErrorKind::Unreachable,
                    format!(
                        "no answer within {} ms (DB_CONNECT_TIMEOUT_MS + 3 x DB_STATEMENT_TIMEOUT_MS)",
                        limit.as_millis()
                    ),
                ))
            })
    }
}

/// Loads a PEM bundle (the RDS global bundle, or a test CA). Errors say what is wrong, not the file.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{} is not a PEM bundle: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: unusable certificate: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(roots)
}

/// Both engines, chosen per secret.
#[derive(Debug, Clone)]
pub struct SqlDatabases {
    pub settings: Settings,
}

impl Database for SqlDatabases {
    async fn check_login(&self, creds: &Credentials) -> Result<(), DbError> {
        let settings = &self.settings;
        settings
            .bounded(creds, async {
                match creds.engine {
                    Engine::Postgres => postgres::check_login(settings, creds).await,
                    Engine::MySql => mysql::check_login(settings, creds).await,
                }
            })
            .await
    }

    async fn check_table(&self, creds: &Credentials, table: &str) -> Result<(), DbError> {
        let settings = &self.settings;
        settings
            .bounded(creds, async {
                match creds.engine {
                    Engine::Postgres => postgres::check_table(settings, creds, table).await,
                    Engine::MySql => mysql::check_table(settings, creds, table).await,
                }
            })
            .await
    }

    async fn set_password(
        &self,
        admin: &Credentials,
        request: &SetPassword<'_>,
    ) -> Result<(), DbError> {
        let settings = &self.settings;
        settings
            .bounded(admin, async {
                match admin.engine {
                    Engine::Postgres => pg_roles::set_password(settings, admin, request).await,
                    Engine::MySql => mysql_users::set_password(settings, admin, request).await,
                }
            })
            .await
    }

    async fn clone_differences(
        &self,
        current: &Credentials,
        pending: &Credentials,
        original: &str,
        clone: &str,
    ) -> Result<Vec<String>, DbError> {
        let settings = &self.settings;
        settings
            .bounded(pending, async {
                match pending.engine {
                    Engine::Postgres => {
                        pg_roles::clone_differences(settings, pending, original, clone).await
                    }
                    Engine::MySql => {
                        mysql_users::clone_differences(settings, current, pending).await
                    }
                }
            })
            .await
    }
}

/// `"name"` with embedded quotes doubled: safe as an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` for MySQL/MariaDB: quotes and backslashes escaped.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_operation_that_never_ends_is_ended_as_retryable() {
        let settings = Settings {
            roots: None,
            ca_file: None,
            connect_timeout: Duration::from_millis(20),
            statement_timeout: Duration::from_millis(10),
            lock_timeout: Duration::from_millis(10),
        };
        let creds = Credentials {
            engine: Engine::MySql,
            host: "db".into(),
            port: 3306,
            username: "app".into(),
            password: Secret::new("p".into()),
            dbname: None,
            tls: TlsMode::Disable,
            tls_server_name: None,
        };
        let started = std::time::Instant::now();
        let err = settings
            .bounded(&creds, std::future::pending::<Result<(), DbError>>())
            .await
            .unwrap_err();
        assert_eq!(err.kind, DbErrorKind::Unreachable);
        assert!(err.is_retryable() && err.message.contains("50 ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn servers_are_told_apart_by_their_version() {
        let maria = mysql::Server::parse("10.11.6-MariaDB-0+deb12u1");
        assert!(maria.mariadb && maria.version == (10, 11) && maria.has_public_grants());
        assert_eq!(maria.max_user_name(), 80);
        let old = mysql::Server::parse("10.6.16-MariaDB");
        assert!(!old.has_public_grants());
        let mysql = mysql::Server::parse("8.0.36");
        assert!(!mysql.mariadb && mysql.version == (8, 0) && !mysql.has_public_grants());
        assert_eq!(mysql.max_user_name(), 32);
    }

    #[test]
    fn a_secret_can_only_make_tls_stricter() {
        use TlsMode::{Disable, VerifyFull};
        for (config, secret, effective) in [
            (VerifyFull, Some(Disable), VerifyFull),
            (VerifyFull, None, VerifyFull),
            (Disable, Some(VerifyFull), VerifyFull),
            (Disable, Some(Disable), Disable),
            (Disable, None, Disable),
        ] {
            assert_eq!(
                config.stricter(secret),
                effective,
                "{config:?} + {secret:?}"
            );
        }
    }
}
