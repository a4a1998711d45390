//! The channels a deployment configured, read from the environment at init.

use crate::config::{ConfigError, Vars};

/// Chat payload shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFormat {
    Slack,
    /// Microsoft Teams Workflows webhook: a message with an Adaptive Card attachment.
    Teams,
}

/// The channels a deployment configured, read from the environment at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    pub sns_topic_arn: Option<String>,
    pub email: Option<EmailConfig>,
    pub webhook: Option<WebhookConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub secret_arn: String,
    pub format: ChatFormat,
}

impl NotifyConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let sns_topic_arn = vars.optional_arn("NOTIFY_SNS_TOPIC_ARN", "sns")?;
        let email = match (
            vars.optional("NOTIFY_EMAIL_FROM"),
            vars.list("NOTIFY_EMAIL_TO"),
        ) {
            (None, to) if to.is_empty() => None,
            (Some(from), to) if !to.is_empty() => {
                for (name, address) in std::iter::once(("NOTIFY_EMAIL_FROM", &from))
                    .chain(to.iter().map(|a| ("NOTIFY_EMAIL_TO", a)))
                {
                    if !looks_like_email(address) {
                        return Err(ConfigError::new(
                            name,
                            "must hold email addresses (name@domain)",
                        ));
                    }
                }
                Some(EmailConfig { from, to })
            }
            (None, _) => {
                return Err(ConfigError::new(
                    "NOTIFY_EMAIL_FROM",
                    "is required when NOTIFY_EMAIL_TO is set",
                ));
            }
            (Some(_), _) => {
                return Err(ConfigError::new(
                    "NOTIFY_EMAIL_TO",
                    "is required when NOTIFY_EMAIL_FROM is set",
                ));
            }
        };
        let webhook = match vars.optional_arn("NOTIFY_WEBHOOK_SECRET_ARN", "secretsmanager")? {
            None => None,
            Some(secret_arn) => {
                let format = match vars
                    .optional("NOTIFY_WEBHOOK_FORMAT")
                    .map(|f| f.to_ascii_lowercase())
                    .as_deref()
                {
                    None | Some("slack") => ChatFormat::Slack,
                    Some("teams") => ChatFormat::Teams,
                    Some(_) => {
                        return Err(ConfigError::new(
                            "NOTIFY_WEBHOOK_FORMAT",
                            "must be slack or teams",
                        ));
                    }
                };
                Some(WebhookConfig { secret_arn, format })
            }
        };
        if sns_topic_arn.is_none() && email.is_none() && webhook.is_none() {
            return Err(ConfigError::new(
                "NOTIFY_SNS_TOPIC_ARN",
                "no notification channel configured: set NOTIFY_SNS_TOPIC_ARN, NOTIFY_EMAIL_FROM + NOTIFY_EMAIL_TO, or NOTIFY_WEBHOOK_SECRET_ARN",
            ));
        }
        Ok(Self {
            sns_topic_arn,
            email,
            webhook,
        })
    }
}

fn looks_like_email(address: &str) -> bool {
    match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !address.contains(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_requires_a_channel_and_complete_email_settings() {
        let err = NotifyConfig::from_vars(&Vars::from_pairs([("X", "1")])).unwrap_err();
        assert_eq!(err.variable, "NOTIFY_SNS_TOPIC_ARN");
        let err =
            NotifyConfig::from_vars(&Vars::from_pairs([("NOTIFY_EMAIL_TO", "ops@example.com")]))
                .unwrap_err();
        assert_eq!(err.variable, "NOTIFY_EMAIL_FROM");
        let err = NotifyConfig::from_vars(&Vars::from_pairs([
            ("NOTIFY_EMAIL_FROM", "alerts@example.com"),
            ("NOTIFY_EMAIL_TO", "ops@example.com, not-an-address"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "NOTIFY_EMAIL_TO");
        let config = NotifyConfig::from_vars(&Vars::from_pairs([
            (
                "NOTIFY_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:alerts",
            ),
            (
                "NOTIFY_WEBHOOK_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:hook-AbCdEf",
            ),
            ("NOTIFY_WEBHOOK_FORMAT", "Teams"),
        ]))
        .unwrap();
        assert_eq!(config.webhook.unwrap().format, ChatFormat::Teams);
        assert!(config.email.is_none());
    }
}
