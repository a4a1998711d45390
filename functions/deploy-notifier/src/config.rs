//! The function's configuration, read from the environment once at init.

use std::time::Duration;

use watchkeeper_shared::config::{ConfigError, Vars};
use watchkeeper_shared::notify::NotifyConfig;

use crate::alerts::rules::AlarmRules;

/// How the Function URL authenticates CI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlAuth {
    /// HMAC-SHA256 over `<timestamp>.<body>` with a shared secret kept in Secrets Manager.
    Hmac { secret_arn: String },
    /// The Function URL uses auth type AWS_IAM: Lambda has checked the SigV4 signature already.
    Iam,
    /// This function takes no CI reports: infra deploys the event path (ECS, SNS) and the public
    /// Function URL as two functions, so a flood on the URL cannot starve ECS notifications.
    Off,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `STATE_BUCKET`: the S3 bucket for dedupe claims and deployment start times.
    pub state_bucket: String,
    pub notify: NotifyConfig,
    /// `DEPLOY_ENVIRONMENT`: label in subjects, `[prod] ...` (empty: no label).
    pub environment: Option<String>,
    /// `DEPLOY_NOTIFY_IN_PROGRESS`: also notify when a deployment starts (default false; a
    /// rollback in progress is always notified).
    pub notify_in_progress: bool,
    /// `CI_AUTH` (`hmac` default, `iam`, or `off`) and `CI_SIGNING_SECRET_ARN` (required for hmac).
    pub auth: UrlAuth,
    /// `CI_MAX_BODY_BYTES`: largest accepted CI body (default 65536).
    pub max_body_bytes: usize,
    /// `CI_SIGNATURE_WINDOW_SECONDS`: how far a signature timestamp may be from now (default 300).
    pub signature_window: Duration,
    /// `CI_SIGNING_KEY_REFRESH_SECONDS`: least time between two reads of the signing secret after
    /// a signature matched no cached key (default 60).
    pub signing_key_refresh: Duration,
    /// `ALARM_WARNING_NAMES`, `ALARM_FLAP_COUNT`, `ALARM_FLAP_MINUTES`: see [`AlarmRules`].
    pub alarms: AlarmRules,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let auth = match vars
            .optional("CI_AUTH")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("hmac") => UrlAuth::Hmac {
                secret_arn: vars.arn("CI_SIGNING_SECRET_ARN", "secretsmanager")?,
            },
            Some("iam") => UrlAuth::Iam,
            Some("off") => UrlAuth::Off,
            Some(_) => return Err(ConfigError::new("CI_AUTH", "must be hmac, iam or off")),
        };
        let max_body_bytes = vars.parse_or("CI_MAX_BODY_BYTES", "a number of bytes", 64 * 1024)?;
        if !(256..=6 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(ConfigError::new(
                "CI_MAX_BODY_BYTES",
                "must be between 256 and 6291456 (the Lambda payload limit)",
            ));
        }
        let signature_window =
            vars.seconds("CI_SIGNATURE_WINDOW_SECONDS", Duration::from_secs(300))?;
        if signature_window.is_zero() || signature_window > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "CI_SIGNATURE_WINDOW_SECONDS",
                "must be between 1 and 3600",
            ));
        }
        let signing_key_refresh =
            vars.seconds("CI_SIGNING_KEY_REFRESH_SECONDS", Duration::from_secs(60))?;
        if signing_key_refresh.is_zero() || signing_key_refresh > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "CI_SIGNING_KEY_REFRESH_SECONDS",
                "must be between 1 and 3600",
            ));
        }
        Ok(Self {
            state_bucket: vars.required("STATE_BUCKET")?,
            notify: NotifyConfig::from_vars(vars)?,
            environment: vars.optional("DEPLOY_ENVIRONMENT"),
            notify_in_progress: vars.flag("DEPLOY_NOTIFY_IN_PROGRESS", false)?,
            auth,
            max_body_bytes,
            signature_window,
            signing_key_refresh,
            alarms: AlarmRules::from_vars(vars)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: (&str, &str) = (
        "NOTIFY_SNS_TOPIC_ARN",
        "arn:aws:sns:us-east-1:123456789012:alerts",
    );

    #[test]
    fn hmac_needs_its_secret() {
        let err = Config::from_vars(&Vars::from_pairs([TOPIC, ("STATE_BUCKET", "b")])).unwrap_err();
        assert_eq!(err.variable, "CI_SIGNING_SECRET_ARN");
        let config = Config::from_vars(&Vars::from_pairs([
            TOPIC,
            ("STATE_BUCKET", "b"),
            ("CI_AUTH", "IAM"),
        ]))
        .unwrap();
        assert_eq!(config.auth, UrlAuth::Iam);
        assert_eq!(config.max_body_bytes, 65536);
        let config = Config::from_vars(&Vars::from_pairs([
            TOPIC,
            ("STATE_BUCKET", "b"),
            ("CI_AUTH", "off"),
        ]))
        .unwrap();
        assert_eq!(config.auth, UrlAuth::Off);
        assert!(!config.notify_in_progress);
    }

    #[test]
    fn bounds_are_checked() {
        let base = [TOPIC, ("STATE_BUCKET", "b"), ("CI_AUTH", "iam")];
        let with = |k: &'static str, v: &'static str| {
            Config::from_vars(&Vars::from_pairs(base.into_iter().chain([(k, v)])))
        };
        assert_eq!(
            with("CI_MAX_BODY_BYTES", "10").unwrap_err().variable,
            "CI_MAX_BODY_BYTES"
        );
        assert_eq!(
            with("CI_SIGNATURE_WINDOW_SECONDS", "0")
                .unwrap_err()
                .variable,
            "CI_SIGNATURE_WINDOW_SECONDS"
        );
        assert_eq!(with("CI_AUTH", "none").unwrap_err().variable, "CI_AUTH");
        assert_eq!(
            with("DEPLOY_NOTIFY_IN_PROGRESS", "sometimes")
                .unwrap_err()
                .variable,
            "DEPLOY_NOTIFY_IN_PROGRESS"
        );
    }
}
