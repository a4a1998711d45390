//! The exporter's configuration, read from the environment once at init.

use watchkeeper_shared::config::{ConfigError, Vars};
use watchkeeper_shared::notify::NotifyConfig;

/// RDS runs at most five export tasks at once per account (a service quota).
pub const RDS_EXPORT_LIMIT: usize = 5;

/// Where and how snapshots are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `EXPORT_BUCKET`: the S3 bucket the Parquet files, index objects and `latest` pointers go to.
    pub bucket: String,
    /// `EXPORT_PREFIX`: put before `<source>/<yyyy>/<mm>/<dd>/` (empty, or ending in `/`).
    pub prefix: String,
    /// `EXPORT_ROLE_ARN`: the role RDS assumes to write to the bucket.
    pub role_arn: String,
    /// `EXPORT_KMS_KEY_ARN`: the customer managed key the export is encrypted with.
    pub kms_key_arn: String,
    /// `EXPORT_TABLES`: RDS `ExportOnly` (`database`, `database.schema`, `database.schema.table`);
    /// empty exports everything.
    pub tables: Vec<String>,
}

/// Which sources (DB instances and clusters) are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `EXPORT_SOURCES`: instance or cluster identifiers.
    pub sources: Vec<String>,
    /// `EXPORT_SOURCE_TAG`: `key=value` on the instance or cluster.
    pub tag: Option<(String, String)>,
}

impl Selection {
    /// Whether a source with this identifier and these tags is exported.
    pub fn allows(&self, id: &str, tags: &[(String, String)]) -> bool {
        self.sources.iter().any(|s| s == id)
            || self
                .tag
                .as_ref()
                .is_some_and(|(k, v)| tags.iter().any(|(tk, tv)| tk == k && tv == v))
    }

    /// Why a source is not exported, for the skip log.
    pub fn describe(&self) -> String {
        let mut rules = Vec::new();
        if !self.sources.is_empty() {
            rules.push(format!("EXPORT_SOURCES={}", self.sources.join(",")));
        }
        if let Some((k, v)) = &self.tag {
            rules.push(format!("EXPORT_SOURCE_TAG={k}={v}"));
        }
        rules.join(" or ")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `STATE_BUCKET`: claims and the deferred list.
    pub state_bucket: String,
    pub notify: NotifyConfig,
    pub destination: Destination,
    pub selection: Selection,
    /// `EXPORT_MAX_ACTIVE` (default 5, at most 5): export tasks allowed to run at once in the
    /// account, this function's and anyone else's.
    pub max_active: usize,
    /// `EXPORT_BACKUP_WINDOW_DAYS` (default 8): a source with no available snapshot newer than
    /// this raises the missing-backup alert.
    pub backup_window_days: u32,
    /// `EXPORT_HUNG_HOURS` (default 24): an export still running after this is reported as hung.
    pub hung_hours: u32,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let bucket = vars.required("EXPORT_BUCKET")?;
        if !is_bucket_name(&bucket) {
            return Err(ConfigError::new(
                "EXPORT_BUCKET",
                "must be an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)",
            ));
        }
        let prefix = prefix(vars)?;
        let tables = vars.list("EXPORT_TABLES");
        if tables.iter().any(|t| !is_table_name(t)) {
            return Err(ConfigError::new(
                "EXPORT_TABLES",
                "must be database, database.schema or database.schema.table names, comma-separated",
            ));
        }
        // RDS keeps identifiers in lower case whatever case they were created with.
        let sources: Vec<String> = vars
            .list("EXPORT_SOURCES")
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if sources.iter().any(|s| !is_rds_identifier(s)) {
            return Err(ConfigError::new(
                "EXPORT_SOURCES",
                "must be DB instance or cluster identifiers (a letter, then letters, digits and hyphens), comma-separated",
            ));
        }
        let tag = match vars.optional("EXPORT_SOURCE_TAG") {
            None => None,
            Some(text) => match text.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    Some((k.trim().to_string(), v.trim().to_string()))
                }
                _ => {
                    return Err(ConfigError::new("EXPORT_SOURCE_TAG", "must be key=value"));
                }
            },
        };
        if sources.is_empty() && tag.is_none() {
            return Err(ConfigError::new(
                "EXPORT_SOURCES",
                "nothing to export: set EXPORT_SOURCES (identifiers) or EXPORT_SOURCE_TAG (key=value)",
            ));
        }
        let max_active = vars.parse_or("EXPORT_MAX_ACTIVE", "a whole number", RDS_EXPORT_LIMIT)?;
        if !(1..=RDS_EXPORT_LIMIT).contains(&max_active) {
            return Err(ConfigError::new(
                "EXPORT_MAX_ACTIVE",
                "must be between 1 and 5 (RDS runs at most 5 exports at once per account)",
            ));
        }
        let backup_window_days = vars.ranged(
            "EXPORT_BACKUP_WINDOW_DAYS",
            "a whole number of days",
            8u32,
            1..=365,
        )?;
        // At most a year: the weekly run computes "started before now less this", and a span
        // past the calendar's range would stop it.
        let hung_hours = vars.ranged(
            "EXPORT_HUNG_HOURS",
            "a whole number of hours",
            24u32,
            1..=8760,
        )?;
        Ok(Self {
            state_bucket: vars.required("STATE_BUCKET")?,
            notify: NotifyConfig::from_vars(vars)?,
            destination: Destination {
                bucket,
                prefix,
                role_arn: vars.arn("EXPORT_ROLE_ARN", "iam")?,
                kms_key_arn: vars.arn("EXPORT_KMS_KEY_ARN", "kms")?,
                tables,
            },
            selection: Selection { sources, tag },
            max_active,
            backup_window_days,
            hung_hours,
        })
    }
}

/// `EXPORT_PREFIX` as S3 keys use it: empty, or path segments ending in `/`.
fn prefix(vars: &Vars) -> Result<String, ConfigError> {
    let Some(raw) = vars.optional("EXPORT_PREFIX") else {
        return Ok(String::new());
    };
    let trimmed = raw.trim_matches('/');
    let valid = trimmed.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
    });
    if !valid || trimmed.len() > 200 {
        return Err(ConfigError::new(
            "EXPORT_PREFIX",
            "must be path segments of letters, digits and - _ . = separated by /",
        ));
    }
    Ok(format!("{trimmed}/"))
}

fn is_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// DB instance and cluster identifiers: a letter, then letters, digits and single hyphens.
pub fn is_rds_identifier(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !id.contains("--")
        && !id.ends_with('-')
}

fn is_table_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    (1..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 128
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(extra: &[(&'static str, &'static str)]) -> Vars {
        let base = [
            ("STATE_BUCKET", "wk-state"),
            (
                "NOTIFY_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:des-backups",
            ),
            ("EXPORT_BUCKET", "des-snapshot-exports"),
            (
                "EXPORT_ROLE_ARN",
                "arn:aws:iam::123456789012:role/des-rds-export",
            ),
            (
                "EXPORT_KMS_KEY_ARN",
                "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            ),
        ];
        Vars::from_pairs(base.iter().chain(extra).copied())
    }

    /// Spans the weekly run computes dates with are bounded at init: a huge one used to pass and
    /// stop every weekly run later (a date out of the calendar's range).
    #[test]
    fn time_spans_out_of_range_are_refused_naming_the_variable() {
        for (name, value) in [
            ("EXPORT_HUNG_HOURS", "4294967295"),
            ("EXPORT_HUNG_HOURS", "0"),
            ("EXPORT_BACKUP_WINDOW_DAYS", "366"),
            ("EXPORT_BACKUP_WINDOW_DAYS", "0"),
        ] {
            let err = Config::from_vars(&vars(&[("EXPORT_SOURCES", "des-db"), (name, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name) && err.contains(value), "{err}");
        }
        let year = Config::from_vars(&vars(&[
            ("EXPORT_SOURCES", "des-db"),
            ("EXPORT_HUNG_HOURS", "8760"),
        ]))
        .unwrap();
        assert_eq!(year.hung_hours, 8760);
    }

    #[test]
    fn defaults_and_selection() {
        let config = Config::from_vars(&vars(&[
            ("EXPORT_SOURCES", "des-db, DES-Aurora"),
            ("EXPORT_SOURCE_TAG", "Backup=s3"),
            ("EXPORT_PREFIX", "/rds/"),
        ]))
        .unwrap();
        assert_eq!(config.max_active, 5);
        assert_eq!(config.backup_window_days, 8);
        assert_eq!(config.destination.prefix, "rds/");
        let s = &config.selection;
        assert!(s.allows("des-db", &[]));
        assert!(s.allows("des-aurora", &[]));
        assert!(s.allows("other", &[("Backup".into(), "s3".into())]));
        assert!(!s.allows("other", &[("Backup".into(), "no".into())]));
        let plain = Config::from_vars(&vars(&[("EXPORT_SOURCES", "des-db")])).unwrap();
        assert_eq!(plain.destination.prefix, "");
        assert!(plain.destination.tables.is_empty());
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        assert_eq!(
            Config::from_vars(&vars(&[])).unwrap_err().variable,
            "EXPORT_SOURCES"
        );
        for (name, value) in [
            ("EXPORT_SOURCES", "des_db"),
            ("EXPORT_SOURCE_TAG", "novalue"),
            ("EXPORT_PREFIX", "a/../b"),
            ("EXPORT_TABLES", "db.schema.table.extra"),
            ("EXPORT_MAX_ACTIVE", "6"),
            ("EXPORT_MAX_ACTIVE", "0"),
            ("EXPORT_BACKUP_WINDOW_DAYS", "0"),
            ("EXPORT_BUCKET", "Not_A_Bucket"),
            ("EXPORT_ROLE_ARN", "arn:aws:kms:us-east-1:1:key/x"),
            ("EXPORT_KMS_KEY_ARN", "alias/rds"),
        ] {
            let err = Config::from_vars(&vars(&[("EXPORT_SOURCES", "des-db"), (name, value)]))
                .unwrap_err();
            assert_eq!(err.variable, name, "{value}");
        }
    }
}
