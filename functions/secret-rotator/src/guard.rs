//! The checks made on a secret's contents before the master credentials are used: whoever can
//! write a secret's AWSPENDING value must not be able to steer the master user at another user,
//! another database, or another master. Each refusal says what was refused and why, no value.
//!
//! (Two more checks need the database and are made there: AWSCURRENT must log in, see
//! [`crate::steps::set`], and the users involved must hold no administrative privilege, see
//! [`crate::database::SetPassword`].)

use crate::database::Engine;
use crate::error::RotationError;
use crate::master_hosts::MasterHosts;
use crate::secret_value::{CLONE_SUFFIX, DbSecret, MasterValue, SecretKind};

/// The other user of an alternating pair: `app` <-> `app_clone`.
pub fn toggle(user: &str) -> String {
    match user.strip_suffix(CLONE_SUFFIX) {
        Some(original) => original.to_string(),
        None => format!("{user}{CLONE_SUFFIX}"),
    }
}

/// The pending version may differ from AWSCURRENT in its password, and (alternating) in the user:
/// the current one or its counterpart of the pair, nothing else. Checked before the master is used
/// and, in both modes, before a version is set or promoted: a pending version that points at
/// another server would otherwise be made AWSCURRENT by this function for whoever wrote it.
pub fn pending_matches_current(
    current: &DbSecret,
    pending: &DbSecret,
) -> Result<(), RotationError> {
    let refuse = |why: String| Err(RotationError::Refused(why));
    if pending.endpoint() != current.endpoint() {
        return refuse(
            "the pending version names another engine, host or port than AWSCURRENT".into(),
        );
    }
    if pending.dbname != current.dbname {
        return refuse("the pending version names another database than AWSCURRENT".into());
    }
    if pending.masterarn != current.masterarn {
        return refuse("the pending version names another master secret than AWSCURRENT".into());
    }
    let counterpart = toggle(&current.username);
    let alternating = pending.masterarn.is_some();
    if !alternating && pending.username != current.username {
        return refuse(format!(
            "the pending version's user {} is not the current user {} (single-user rotation)",
            pending.username, current.username
        ));
    }
    if alternating {
        // The current user is never altered with the master's rights: the pending version
        // names the other user of the pair.
        if pending.username != counterpart {
            return refuse(format!(
                "the pending version's user {} is not the counterpart {counterpart} of the current user {} (alternating users: the current user is never altered)",
                pending.username, current.username
            ));
        }
        // `a_clone_clone` would make the pair (a_clone_clone, a_clone) while the clone is made of
        // `a`: the login proven would not be the user cloned.
        let doubled = format!("{CLONE_SUFFIX}{CLONE_SUFFIX}");
        if let Some(name) = [&current.username, &pending.username]
            .into_iter()
            .find(|u| u.ends_with(&doubled))
        {
            return refuse(format!(
                "user {name} ends in {doubled}: alternating users are <user> and <user>{CLONE_SUFFIX} only"
            ));
        }
    }
    Ok(())
}

/// A rotation never changes what a secret is: a database secret whose pending version is an API
/// key (or the reverse) would skip every check made on the other kind.
pub fn same_kind(current: &SecretKind, pending: &SecretKind) -> Result<(), RotationError> {
    match (current, pending) {
        (SecretKind::Database(_), SecretKind::Database(_))
        | (SecretKind::ApiKey(_), SecretKind::ApiKey(_)) => Ok(()),
        _ => Err(RotationError::Refused(
            "the pending version is another kind of secret (database or API key) than AWSCURRENT"
                .into(),
        )),
    }
}

/// The longest user name each engine takes: PostgreSQL 63 bytes; MySQL/MariaDB 80 characters
/// (MariaDB's limit; MySQL 8's 32 is checked at setSecret, where the server is known).
pub fn user_name_fits(engine: Engine, user: &str) -> Result<(), RotationError> {
    let (fits, limit) = match engine {
        Engine::Postgres => (user.len() <= 63, "PostgreSQL's 63 bytes"),
        Engine::MySql => (user.chars().count() <= 80, "MariaDB's 80 characters"),
    };
    if fits {
        Ok(())
    } else {
        Err(RotationError::Refused(format!(
            "user name {user} is longer than {limit}: alternating rotation cannot create it (shorten the user name, or rotate it as a single user)"
        )))
    }
}

/// The database a master session opens: the master secret's own `dbname`, else the engine's
/// administrative one. Never the rotated secret's: roles are cluster-wide, and the application's
/// database is where an application role can plant objects and settings (see
/// [`crate::database::postgres::Names`]). MySQL/MariaDB: no default database, so an unqualified
/// name in a master session resolves nowhere.
fn admin_database(engine: Engine, master_dbname: Option<&str>) -> Option<String> {
    match (master_dbname, engine) {
        (Some(name), _) => Some(name.to_string()),
        (None, Engine::Postgres) => Some("postgres".to_string()),
        (None, Engine::MySql) => None,
    }
}

/// The master's login, used at the rotated secret's engine, host and port only. A full master
/// secret must name the same ones; an RDS-managed one (`username`/`password` only) must be bound to
/// that host and port (and TLS name) by `ROTATION_MASTER_HOSTS`, under the name `master_arn`
/// (the rotated secret's `masterarn` as written): otherwise a secret naming any host would get the
/// master's password sent there.
///
/// Nothing in the rotated secret decides how the master connects beyond that endpoint: the
/// session opens the administrative database ([`admin_database`]), and its TLS is the master
/// secret's own `sslmode` and `tls_server_name` (made stricter by `DB_TLS` only), so an
/// application secret saying `sslmode: disable` or naming another certificate cannot loosen it.
/// An RDS-managed master has no `sslmode` of its own: `DB_TLS` alone decides, and its TLS name is
/// the one `ROTATION_MASTER_HOSTS` bound.
pub fn master_login(
    master: MasterValue,
    master_arn: &str,
    secret: &DbSecret,
    hosts: &MasterHosts,
) -> Result<DbSecret, RotationError> {
    match master {
        MasterValue::LoginOnly { username, password } => {
            if !hosts.allows(
                master_arn,
                &secret.host,
                secret.port,
                secret.tls_server_name.as_deref(),
            ) {
                return Err(RotationError::Refused(
                    "the master secret names no host and ROTATION_MASTER_HOSTS does not bind it to the rotated secret's host and port (and tls_server_name, if set): add <masterarn>=<host>:<port> for it there, or give the master secret its own engine, host and port"
                        .into(),
                ));
            }
            let mut login = secret.as_user(&username, &password);
            login.dbname = admin_database(secret.engine, None);
            login.tls = None;
            Ok(login)
        }
        MasterValue::Full(master) => {
            if master.endpoint() != secret.endpoint() {
                return Err(RotationError::Refused(
                    "the master secret names another engine, host or port than the rotated secret"
                        .into(),
                ));
            }
            let mut login = secret.as_user(&master.username, &master.password);
            login.dbname = admin_database(master.engine, master.dbname.as_deref());
            login.tls = master.tls;
            login.tls_server_name = master.tls_server_name.clone();
            Ok(login)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::TlsMode;
    use crate::secret_value::{SecretKind, parse, parse_master};
    use watchkeeper_shared::secret::Secret;

    fn db(json: &str) -> DbSecret {
        match parse(&Secret::new(json.to_string())).unwrap() {
            SecretKind::Database(db) => db,
            SecretKind::ApiKey(_) => panic!("not a database secret"),
        }
    }

    const CURRENT: &str = r#"{"engine":"postgres","host":"db.internal","port":5432,"username":"app","password":"x","masterarn":"arn:m"}"#;

    #[test]
    fn only_the_pair_and_the_same_endpoint_pass() {
        let current = db(CURRENT);
        let pending = db(&CURRENT.replace("\"app\"", "\"app_clone\""));
        assert!(pending_matches_current(&current, &pending).is_ok());
        for (from, to) in [
            // The current user itself: never altered with the master's rights.
            ("\"app\"", "\"app\""),
            ("\"app\"", "\"postgres_clone\""),
            ("\"app\"", "\"rds_superuser\""),
            ("\"app\"", "\"app_clone_clone\""),
            ("db.internal", "evil.example"),
            ("5432", "5433"),
            ("arn:m", "arn:other-master"),
        ] {
            let pending = db(&CURRENT.replace(from, to));
            let err = pending_matches_current(&current, &pending).unwrap_err();
            assert!(matches!(err, RotationError::Refused(_)), "{to}: {err}");
            assert!(!err.to_string().contains("\"x\""));
        }
        let clone = db(&CURRENT.replace("\"app\"", "\"app_clone\""));
        let back = db(CURRENT);
        assert!(pending_matches_current(&clone, &back).is_ok());
        let single = db(&CURRENT.replace(",\"masterarn\":\"arn:m\"", ""));
        let switched = db(&CURRENT
            .replace(",\"masterarn\":\"arn:m\"", "")
            .replace("\"app\"", "\"app_clone\""));
        assert!(pending_matches_current(&single, &single).is_ok());
        assert!(pending_matches_current(&single, &switched).is_err());
    }

    #[test]
    fn a_doubled_clone_suffix_is_refused() {
        // Proof for billing_clone_clone must not set a clone of billing.
        let current = db(&CURRENT.replace("\"app\"", "\"billing_clone_clone\""));
        let pending = db(&CURRENT.replace("\"app\"", "\"billing_clone\""));
        let err = pending_matches_current(&current, &pending).unwrap_err();
        assert!(err.to_string().contains("_clone_clone"), "{err}");
        let current = db(&CURRENT.replace("\"app\"", "\"billing_clone\""));
        let pending = db(&CURRENT.replace("\"app\"", "\"billing_clone_clone\""));
        assert!(pending_matches_current(&current, &pending).is_err());
    }

    #[test]
    fn kinds_and_name_lengths() {
        let database = || SecretKind::Database(db(CURRENT));
        let key = || parse(&Secret::new(r#"{"type":"api-key","api_key":"k"}"#.into())).unwrap();
        assert!(same_kind(&database(), &database()).is_ok());
        assert!(same_kind(&key(), &key()).is_ok());
        assert!(matches!(
            same_kind(&database(), &key()),
            Err(RotationError::Refused(_))
        ));
        assert!(matches!(
            same_kind(&key(), &database()),
            Err(RotationError::Refused(_))
        ));
        let long = "u".repeat(58);
        assert!(user_name_fits(Engine::Postgres, &format!("{}_clone", "u".repeat(57))).is_ok());
        let err = user_name_fits(Engine::Postgres, &format!("{long}_clone")).unwrap_err();
        assert!(err.to_string().contains("63 bytes"), "{err}");
        assert!(user_name_fits(Engine::MySql, &format!("{long}_clone")).is_ok());
        assert!(user_name_fits(Engine::MySql, &"u".repeat(81)).is_err());
    }

    #[test]
    fn nothing_in_the_rotated_secret_loosens_the_masters_session() {
        let secret = db(&CURRENT.replace(
            "\"port\":5432",
            "\"port\":5432,\"sslmode\":\"disable\",\"dbname\":\"appdb\",\"tls_server_name\":\"other.example\"",
        ));
        let full = parse_master(&Secret::new(r#"{"engine":"postgres","host":"db.internal","port":5432,"username":"root","password":"m","sslmode":"verify-full","tls_server_name":"db.example"}"#.into())).unwrap();
        let login = master_login(full, "arn:m", &secret, &MasterHosts::default()).unwrap();
        assert_eq!(login.tls, Some(TlsMode::VerifyFull));
        assert_eq!(login.tls_server_name.as_deref(), Some("db.example"));
        assert_eq!(
            login.dbname.as_deref(),
            Some("postgres"),
            "never the application's database"
        );
        assert_eq!(
            login.credentials(TlsMode::Disable).tls,
            TlsMode::VerifyFull,
            "DB_TLS=disable does not loosen it either"
        );
        let own_db = parse_master(&Secret::new(r#"{"engine":"postgres","host":"db.internal","port":5432,"username":"root","password":"m","dbname":"admin"}"#.into())).unwrap();
        let login = master_login(own_db, "arn:m", &secret, &MasterHosts::default()).unwrap();
        assert_eq!(login.dbname.as_deref(), Some("admin"));
        assert_eq!(
            login.tls, None,
            "the application's sslmode is not the master's"
        );
        let host_less =
            parse_master(&Secret::new(r#"{"username":"root","password":"m"}"#.into())).unwrap();
        let plain = db(&CURRENT.replace(
            "\"port\":5432",
            "\"port\":5432,\"sslmode\":\"disable\",\"dbname\":\"appdb\"",
        ));
        let bound = MasterHosts::parse("arn:m=db.internal:5432").unwrap();
        let login = master_login(host_less, "arn:m", &plain, &bound).unwrap();
        assert_eq!(
            (login.tls, login.dbname.as_deref()),
            (None, Some("postgres"))
        );
        assert_eq!(
            login.credentials(TlsMode::VerifyFull).tls,
            TlsMode::VerifyFull
        );
    }

    #[test]
    fn masters_must_match_or_take_the_secret_endpoint() {
        let secret = db(CURRENT);
        let rds_managed =
            || parse_master(&Secret::new(r#"{"username":"root","password":"m"}"#.into())).unwrap();
        let bound = MasterHosts::parse("arn:m=DB.internal:5432").unwrap();
        let login = master_login(rds_managed(), "arn:m", &secret, &bound).unwrap();
        assert_eq!(
            (login.username.as_str(), login.endpoint()),
            ("root", secret.endpoint())
        );
        for (arn, hosts) in [
            ("arn:m", MasterHosts::default()),
            (
                "arn:m",
                MasterHosts::parse("arn:m=db.internal:5433").unwrap(),
            ),
            (
                "arn:m",
                MasterHosts::parse("arn:m=other.internal:5432").unwrap(),
            ),
            ("arn:other", bound.clone()),
        ] {
            let err = master_login(rds_managed(), arn, &secret, &hosts).unwrap_err();
            assert!(matches!(err, RotationError::Refused(_)), "{hosts:?}");
            assert!(err.to_string().contains("ROTATION_MASTER_HOSTS"));
        }
        let renamed = db(&CURRENT.replace(
            "\"port\":5432",
            "\"port\":5432,\"tls_server_name\":\"evil.example\"",
        ));
        assert!(master_login(rds_managed(), "arn:m", &renamed, &bound).is_err());
        let same = parse_master(&Secret::new(r#"{"engine":"postgres","host":"DB.internal","port":5432,"username":"root","password":"m"}"#.into())).unwrap();
        assert!(master_login(same, "arn:m", &secret, &MasterHosts::default()).is_ok());
        for other in [
            r#"{"engine":"postgres","host":"other.internal","port":5432,"username":"root","password":"m"}"#,
            r#"{"engine":"postgres","host":"db.internal","port":6543,"username":"root","password":"m"}"#,
            r#"{"engine":"mysql","host":"db.internal","port":5432,"username":"root","password":"m"}"#,
        ] {
            let master = parse_master(&Secret::new(other.into())).unwrap();
            assert!(
                matches!(
                    master_login(master, "arn:m", &secret, &bound),
                    Err(RotationError::Refused(_))
                ),
                "{other}"
            );
        }
    }
}
