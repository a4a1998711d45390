//! Typed configuration from environment variables, validated once at init.
//!
//! A function reads all of its variables through [`Vars`] in `main`, before it serves any event, so
//! a misconfigured deployment fails at init with an error naming the variable, not at 3 a.m. on the
//! first real event. Values are never echoed in errors: a variable may hold an ARN one day and a
//! pasted secret by mistake the next.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// A configuration variable that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration variable {variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &str, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.to_string(),
            problem: problem.into(),
        }
    }
}

impl crate::error::Retryable for ConfigError {
    fn is_retryable(&self) -> bool {
        false
    }
}

/// A snapshot of the environment (or, in tests, of a map). Empty values count as unset, which is
/// what Terraform leaves behind for an optional variable set to `""`.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    values: HashMap<String, String>,
}

impl Vars {
    /// The process environment.
    pub fn from_env() -> Self {
        Self::from_pairs(std::env::vars())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let values = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        Self { values }
    }

    /// The trimmed value, if set and not empty.
    pub fn optional(&self, name: &str) -> Option<String> {
        self.values.get(name).map(|v| v.trim().to_string())
    }

    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// Parses a value; `what` says what was expected ("a whole number of seconds").
    pub fn parse<T: FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, ConfigError> {
        self.optional(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| ConfigError::new(name, format!("must be {what}")))
            })
            .transpose()
    }

    pub fn parse_or<T: FromStr>(
        &self,
        name: &str,
        what: &str,
        default: T,
    ) -> Result<T, ConfigError> {
        Ok(self.parse(name, what)?.unwrap_or(default))
    }

    /// A number within `range` (inclusive), or `default` when unset; the error names the variable
    /// and the range. For values a function computes with: a time span too large for a date, a
    /// count that cannot work.
    pub fn ranged<T>(
        &self,
        name: &str,
        what: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let value = self.parse_or(name, what, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                name,
                format!(
                    "must be {what} from {} to {}, not {value}",
                    range.start(),
                    range.end()
                ),
            ))
        }
    }

    /// `true/false`, `1/0`, `yes/no`, `on/off`, any case.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.optional(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::new(name, "must be true or false")),
            },
        }
    }

    /// A comma-separated list; blanks between commas are skipped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.optional(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A duration given in whole seconds.
    pub fn seconds(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self
            .parse::<u64>(name, "a whole number of seconds")?
            .map(Duration::from_secs)
            .unwrap_or(default))
    }

    /// A duration given in whole milliseconds.
    pub fn millis(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self
            .parse::<u64>(name, "a whole number of milliseconds")?
            .map(Duration::from_millis)
            .unwrap_or(default))
    }

    /// A required ARN of the given service (`sns`, `secretsmanager`, ...).
    pub fn arn(&self, name: &str, service: &str) -> Result<String, ConfigError> {
        let value = self.required(name)?;
        check_arn(name, &value, service)?;
        Ok(value)
    }

    pub fn optional_arn(&self, name: &str, service: &str) -> Result<Option<String>, ConfigError> {
        self.optional(name)
            .map(|v| check_arn(name, &v, service).map(|()| v))
            .transpose()
    }
}

fn check_arn(name: &str, value: &str, service: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let well_formed =
        parts.len() == 6 && parts[0] == "arn" && parts[2] == service && !parts[5].is_empty();
    if well_formed {
        Ok(())
    } else {
        Err(ConfigError::new(
            name,
            format!("must be an ARN of the form arn:aws:{service}:<region>:<account>:<resource>"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn missing_and_empty_values_name_the_variable() {
        let v = vars(&[("EMPTY", "  ")]);
        let err = v.required("EMPTY").unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration variable EMPTY: is required but not set"
        );
        assert_eq!(v.required("NOPE").unwrap_err().variable, "NOPE");
    }

    #[test]
    fn malformed_values_are_rejected_without_echoing_them() {
        let v = vars(&[
            ("N", "s3cr3t-ish"),
            ("F", "maybe"),
            ("A", "arn:aws:sqs:us-east-1:1:q"),
        ]);
        let err = v.parse::<u32>("N", "a whole number").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"));
        assert_eq!(err.variable, "N");
        assert!(v.flag("F", false).is_err());
        assert!(v.arn("A", "sns").is_err());
    }

    #[test]
    fn typed_values_parse() {
        let v = vars(&[
            ("LIST", " a, b,,c "),
            ("SECS", "30"),
            ("ON", "Yes"),
            ("TOPIC", "arn:aws:sns:us-east-1:123456789012:alerts"),
        ]);
        assert_eq!(v.list("LIST"), ["a", "b", "c"]);
        assert_eq!(
            v.seconds("SECS", Duration::ZERO).unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(
            v.seconds("UNSET", Duration::from_secs(5)).unwrap(),
            Duration::from_secs(5)
        );
        assert!(v.flag("ON", false).unwrap());
        assert!(v.arn("TOPIC", "sns").is_ok());
        assert_eq!(v.optional_arn("UNSET", "sns").unwrap(), None);
    }
}
