//! The operator's rules for alarms: which ALARMs are warnings rather than pages, and when an
//! alarm flaps.

use std::time::Duration;

use watchkeeper_shared::config::{ConfigError, Vars};

/// The alarm rules, read at init.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRules {
    /// `ALARM_WARNING_NAMES`: alarm-name patterns (`*` matches any run of characters) whose
    /// ALARM is a warning. Every other ALARM is critical.
    pub warning_names: Vec<String>,
    /// `ALARM_FLAP_COUNT`: an alarm that entered ALARM this many times within the window flaps.
    pub flap_count: usize,
    /// `ALARM_FLAP_MINUTES`: the window, and how long one flapping message folds what follows.
    pub flap_window: Duration,
}

impl Default for AlarmRules {
    fn default() -> Self {
        Self {
            warning_names: Vec::new(),
            flap_count: 3,
            flap_window: Duration::from_secs(30 * 60),
        }
    }
}

impl AlarmRules {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let warning_names = vars.list("ALARM_WARNING_NAMES");
        // An alarm name is at most 255 characters of any Unicode; a pattern longer than that, or
        // one with control characters, can match nothing the operator meant.
        for pattern in &warning_names {
            let problem = if pattern.chars().count() > 255 {
                Some(format!(
                    "a pattern of {} characters: alarm names have at most 255",
                    pattern.chars().count()
                ))
            } else if pattern.chars().any(char::is_control) {
                Some("a pattern with a control character: no alarm name has one".to_string())
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ConfigError::new(
                    "ALARM_WARNING_NAMES",
                    format!(
                        "{problem} (patterns are alarm names, with * for any run of characters)"
                    ),
                ));
            }
        }
        let flap_count = vars.ranged("ALARM_FLAP_COUNT", "a count", 3usize, 2..=100)?;
        let minutes = vars.ranged("ALARM_FLAP_MINUTES", "a number of minutes", 30u64, 1..=1440)?;
        Ok(Self {
            warning_names,
            flap_count,
            flap_window: Duration::from_secs(minutes * 60),
        })
    }

    /// Whether an ALARM of the alarm called `name` is a warning rather than critical.
    pub fn is_warning(&self, name: &str) -> bool {
        self.warning_names.iter().any(|p| matches_pattern(p, name))
    }
}

/// `*` matches any run of characters (none too); everything else matches itself, case and all.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    // The middle parts, in order, each after the one before, within what first and last leave.
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_globs() {
        assert!(matches_pattern("des-*-cpu", "des-api-cpu"));
        assert!(matches_pattern("*-cpu", "cpu-cpu"));
        assert!(!matches_pattern("*-cpu-*", "x-cpu"));
        assert!(matches_pattern("*", ""));
        assert!(matches_pattern("a*b*c", "abc"));
        assert!(!matches_pattern("a*b*c", "acb"));
        assert!(!matches_pattern("aa*aa", "aaa"));
        assert!(matches_pattern("exact", "exact"));
        assert!(!matches_pattern("exact", "exactly"));
        assert!(matches_pattern("ñ*ü", "ñandü"));
    }

    #[test]
    fn rules_are_checked_at_init_and_name_their_variable() {
        let rules = AlarmRules::from_vars(&Vars::from_pairs([(
            "ALARM_WARNING_NAMES",
            "*-cpu-high, des-rds-connections",
        )]))
        .unwrap();
        assert!(rules.is_warning("des-api-cpu-high"));
        assert!(!rules.is_warning("des-api-5xx"));
        assert_eq!(rules.flap_count, 3);
        for (name, value) in [
            ("ALARM_FLAP_COUNT", "1"),
            ("ALARM_FLAP_COUNT", "many"),
            ("ALARM_FLAP_MINUTES", "0"),
            ("ALARM_FLAP_MINUTES", "1441"),
            ("ALARM_WARNING_NAMES", "a\u{7}b"),
        ] {
            let err = AlarmRules::from_vars(&Vars::from_pairs([(name, value)])).unwrap_err();
            assert_eq!(err.variable, name, "{value}");
        }
    }
}
