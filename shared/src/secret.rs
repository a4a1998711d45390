//! A wrapper for values that must never reach a log, an error message or a notification.
//!
//! [`Secret`] prints `***` through `Debug`, `Display` and `serde::Serialize`, so a `tracing` field,
//! a `{:?}` in an error or a serialized struct cannot leak it by accident. The only way to the
//! value is [`Secret::expose`], which is easy to grep for.
//!
//! [`read_secret_field`] is the one way the suite reads a secret that holds one value, plain or as
//! a one-field JSON object, through the [`SecretSource`] port (Secrets Manager in production).

use std::fmt;

mod source;

pub use source::{
    SecretReadError, SecretSource, SecretsManagerSource, parse_field, read_secret_field,
};

const MASK: &str = "***";

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself. Call it only where the value is used: a login, a signature, a request.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> serde::Serialize for Secret<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

/// A URL whose path, query and user info may carry credentials (a Slack or Teams webhook, a
/// `postgres://user:pass@host` string). Shown as `scheme://host/***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Secret<String>);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(Secret::new(url.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// `scheme://host[:port]/***`: enough to tell which service it is, nothing to reuse.
    pub fn redacted(&self) -> String {
        let url = self.0.expose();
        let Some((scheme, rest)) = url.split_once("://") else {
            return MASK.to_string();
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        format!("{scheme}://{host}/{MASK}")
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl serde::Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, serde::Serialize)]
    struct Login {
        user: String,
        password: Secret<String>,
        webhook: SecretUrl,
    }

    #[test]
    fn secrets_never_show_in_debug_display_or_json() {
        let login = Login {
            user: "app".into(),
            password: Secret::new("hunter2-Pa55".into()),
            webhook: SecretUrl::new("https://hooks.slack.com/services/T0/B0/XyZsecretpath"),
        };
        let shown = [
            format!("{login:?}"),
            format!("{login:#?}"),
            format!("{} {}", login.password, login.webhook),
            serde_json::to_string(&login).unwrap(),
        ];
        for text in shown {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("XyZsecretpath"), "{text}");
        }
        assert_eq!(login.webhook.to_string(), "https://hooks.slack.com/***");
        assert_eq!(login.password.expose(), "hunter2-Pa55");
    }

    #[test]
    fn user_info_in_urls_is_dropped() {
        let url = SecretUrl::new("postgres://admin:pw@db.internal:5432/app");
        assert_eq!(url.redacted(), "postgres://db.internal:5432/***");
        assert_eq!(SecretUrl::new("not a url").redacted(), "***");
    }

    #[test]
    fn secrets_deserialize_transparently() {
        let s: Secret<String> = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(s.expose(), "abc");
    }

    proptest! {
        #[test]
        fn redaction_never_panics_and_never_shows_the_path(url in ".*") {
            let shown = SecretUrl::new(url.clone()).redacted();
            prop_assert!(shown.ends_with("***"));
        }
    }
}
