//! The rotator's configuration, read from the environment once at init.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use watchkeeper_shared::config::{ConfigError, Vars};
use watchkeeper_shared::notify::NotifyConfig;

use crate::database::{Settings, TlsMode, load_roots};
use crate::master_hosts::MasterHosts;
use crate::steps::Policy;

/// Characters left out of generated passwords by default: they break connection strings and
/// shell quoting.
pub const DEFAULT_EXCLUDED: &str = ":/@\"'\\";

#[derive(Debug, Clone)]
pub struct Config {
    /// `STATE_BUCKET`: dedupe of alerts and notices.
    pub state_bucket: String,
    pub notify: NotifyConfig,
    /// `ROTATION_PASSWORD_LENGTH` (32) and `ROTATION_EXCLUDE_CHARACTERS` (`:/@"'\`); `DB_TLS`
    /// (`verify-full` default, or `disable`); `ROTATION_MASTER_HOSTS` (`<masterarn>=<host>:<port>`,
    /// comma-separated: where each master secret without a host of its own may be used).
    pub policy: Policy,
    /// `DB_TLS_CA_FILE` (the RDS CA bundle), `DB_CONNECT_TIMEOUT_MS` (5000),
    /// `DB_STATEMENT_TIMEOUT_MS` (10000), `DB_LOCK_TIMEOUT_MS` (5000).
    pub db: Settings,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let password_length = vars.parse_or("ROTATION_PASSWORD_LENGTH", "a whole number", 32i64)?;
        if !(16..=4096).contains(&password_length) {
            return Err(ConfigError::new(
                "ROTATION_PASSWORD_LENGTH",
                "must be between 16 and 4096",
            ));
        }
        let default_tls = match vars
            .optional("DB_TLS")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("verify-full") => TlsMode::VerifyFull,
            Some("disable") => TlsMode::Disable,
            Some(_) => return Err(ConfigError::new("DB_TLS", "must be verify-full or disable")),
        };
        let ca_file = vars.optional("DB_TLS_CA_FILE").map(PathBuf::from);
        let roots = match &ca_file {
            Some(path) => Some(Arc::new(
                load_roots(path).map_err(|e| ConfigError::new("DB_TLS_CA_FILE", e))?,
            )),
            None => None,
        };
        let positive = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
            let value = vars.millis(name, default)?;
            if value.is_zero() {
                Err(ConfigError::new(name, "must be at least 1"))
            } else {
                Ok(value)
            }
        };
        Ok(Self {
            state_bucket: vars.required("STATE_BUCKET")?,
            notify: NotifyConfig::from_vars(vars)?,
            policy: Policy {
                password_length,
                exclude_characters: vars
                    .optional("ROTATION_EXCLUDE_CHARACTERS")
                    .unwrap_or_else(|| DEFAULT_EXCLUDED.to_string()),
                default_tls,
                master_hosts: MasterHosts::parse(
                    &vars.optional("ROTATION_MASTER_HOSTS").unwrap_or_default(),
                )
                .map_err(|problem| ConfigError::new("ROTATION_MASTER_HOSTS", problem))?,
            },
            db: Settings {
                roots,
                ca_file,
                connect_timeout: positive("DB_CONNECT_TIMEOUT_MS", Duration::from_secs(5))?,
                statement_timeout: positive("DB_STATEMENT_TIMEOUT_MS", Duration::from_secs(10))?,
                lock_timeout: positive("DB_LOCK_TIMEOUT_MS", Duration::from_secs(5))?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(extra: &[(&'static str, &'static str)]) -> Vars {
        let base = [
            ("STATE_BUCKET", "b"),
            (
                "NOTIFY_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:alerts",
            ),
        ];
        Vars::from_pairs(base.iter().chain(extra).copied())
    }

    #[test]
    fn defaults_and_errors_name_the_variable() {
        let config = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(
            (
                config.policy.password_length,
                config.policy.exclude_characters.as_str()
            ),
            (32, ":/@\"'\\")
        );
        assert_eq!(config.policy.default_tls, TlsMode::VerifyFull);
        for (name, value) in [
            ("ROTATION_PASSWORD_LENGTH", "8"),
            ("DB_TLS", "prefer"),
            ("DB_TLS_CA_FILE", "/no/such/bundle.pem"),
            ("DB_LOCK_TIMEOUT_MS", "0"),
            ("ROTATION_MASTER_HOSTS", "arn:m=db.internal"),
        ] {
            assert_eq!(
                Config::from_vars(&vars(&[(name, value)]))
                    .unwrap_err()
                    .variable,
                name
            );
        }
    }
}
