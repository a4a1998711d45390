//! `ROTATION_MASTER_HOSTS`: where each master secret without a host of its own (an RDS-managed
//! one, `username`/`password` only) may be used. Such a secret says nothing about its database, so
//! without a binding any rotated secret could name it and send its password to any host.

use std::collections::HashMap;

/// Master secret (as the rotated secrets' `masterarn` names it) -> (host in lower case, port).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterHosts(HashMap<String, (String, u16)>);

impl MasterHosts {
    /// `<masterarn>=<host>:<port>[,...]`; empty for none. The problem, if any, names no value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut bindings = HashMap::new();
        for (index, entry) in text.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let position = index + 1;
            let (arn, address) = entry
                .split_once('=')
                .ok_or_else(|| format!("entry {position} is not <masterarn>=<host>:<port>"))?;
            let (host, port) = address
                .trim()
                .rsplit_once(':')
                .ok_or_else(|| format!("entry {position} has no :<port>"))?;
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("entry {position} has no port between 1 and 65535"))?;
            let (arn, host) = (arn.trim(), host.trim());
            if arn.is_empty() || host.is_empty() || host.contains([' ', '/', '=']) {
                return Err(format!("entry {position} lacks a master secret or a host"));
            }
            let binding = (host.to_ascii_lowercase(), port);
            if bindings
                .insert(arn.to_string(), binding.clone())
                .is_some_and(|earlier| earlier != binding)
            {
                return Err(format!(
                    "entry {position} binds a master secret already bound elsewhere"
                ));
            }
        }
        Ok(Self(bindings))
    }

    /// Whether `master` may be used at `host`:`port`, verifying `tls_server_name` if there is one:
    /// the host connected to and the name verified must both be the bound host (case-insensitive).
    pub fn allows(
        &self,
        master: &str,
        host: &str,
        port: u16,
        tls_server_name: Option<&str>,
    ) -> bool {
        let Some((bound_host, bound_port)) = self.0.get(master) else {
            return false;
        };
        *bound_port == port
            && bound_host.eq_ignore_ascii_case(host)
            && tls_server_name.is_none_or(|name| bound_host.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:des/rds/master-AbCdEf";

    #[test]
    fn bindings_are_parsed_and_matched_exactly() {
        let hosts = MasterHosts::parse(&format!(
            " {ARN}=DB.internal:5432 , des/other=10.0.0.7:3306,"
        ))
        .unwrap();
        assert!(hosts.allows(ARN, "db.INTERNAL", 5432, None));
        assert!(hosts.allows(ARN, "db.internal", 5432, Some("DB.internal")));
        assert!(hosts.allows("des/other", "10.0.0.7", 3306, None));
        assert!(!hosts.allows(ARN, "db.internal", 5433, None));
        assert!(!hosts.allows(ARN, "evil.example", 5432, None));
        assert!(!hosts.allows(ARN, "db.internal", 5432, Some("evil.example")));
        assert!(!hosts.allows("des/other", "db.internal", 5432, None));
        assert!(!hosts.allows("des/rds/master", "db.internal", 5432, None));
        assert_eq!(MasterHosts::parse("").unwrap(), MasterHosts::default());
    }

    #[test]
    fn malformed_bindings_are_refused_without_their_values() {
        for bad in [
            "secretq",
            "secretq=hostq",
            "secretq=hostq:0",
            "secretq=hostq:99999",
            "=hostq:5432",
            "secretq=:5432",
            "secretq=hostq:1,secretq=hostz:1",
        ] {
            let problem = MasterHosts::parse(bad).unwrap_err();
            assert!(
                !problem.contains("secretq") && !problem.contains("hostq"),
                "{bad}: {problem}"
            );
        }
        assert!(MasterHosts::parse("arn=a:1,arn=A:1").is_ok());
    }
}
