//! The sweeper's configuration, read from the environment once at init.

use std::net::SocketAddr;
use std::time::Duration;

use watchkeeper_shared::config::{ConfigError, Vars};
use watchkeeper_shared::notify::NotifyConfig;

use crate::concurrency;
use crate::networks::{AllowedNetworks, DEFAULT_ALLOWED_NETWORKS};
use crate::quorum::Rules;
use crate::target::{Check, Target, Thresholds};

#[derive(Debug, Clone)]
pub struct Config {
    pub state_bucket: String,
    pub notify: NotifyConfig,
    /// `SWEEP_PROJECT`: discover EC2 instances tagged `Project=<this>` (unset: no discovery).
    pub project: Option<String>,
    /// `SWEEP_ROLE`: ... and `Role=<this>` (default `backend`).
    pub role: String,
    /// `SWEEP_STATIC_TARGETS`: `name=ip:port` or `ip:port`, comma-separated.
    pub static_targets: Vec<Target>,
    /// `SWEEP_TARGET_GROUP_ARNS`: ALB/NLB target groups whose registered targets are probed.
    pub target_group_arns: Vec<String>,
    /// `SWEEP_TARGET_GROUP_CHECK`: `sweeper` (default: `SWEEP_PATH` on each registered port, in
    /// the group's protocol) or `group` (the group's health-check path and port too).
    pub group_paths: bool,
    /// `SWEEP_PORT` (default 8080) and `SWEEP_PATH` (default `/health`).
    pub port: u16,
    pub path: String,
    /// `SWEEP_HOST_HEADER`: the `Host` of every probe (and the TLS server name) instead of the
    /// target's address, for apps that check it (Django's `ALLOWED_HOSTS`).
    pub host: Option<String>,
    /// `SWEEP_HEALTHY_CODES` (default `200,302`).
    pub healthy_codes: Vec<u16>,
    /// `SWEEP_TIMEOUT_MS` (default 2000): one probe, connection included.
    pub probe_timeout: Duration,
    /// `SWEEP_CONCURRENCY` (default: the open-file limit less headroom, see [`limits`]).
    pub concurrency: usize,
    /// `SWEEP_DEADLINE_MS` (default 40000): the whole sweep; also kept 5 s below the Lambda's
    /// remaining time.
    pub deadline: Duration,
    /// `SWEEP_HEALTHY_THRESHOLD` (2), `SWEEP_UNHEALTHY_THRESHOLD` (3), `SWEEP_STALE_SWEEPS` (3),
    /// `SWEEP_QUORUM` (majority), `SWEEP_REMINDER_HOURS` (0 = no reminders).
    pub rules: Rules,
    /// `SWEEP_MAINTENANCE`: silence alerts, keep sweeping.
    pub maintenance: bool,
    /// `AWS_LAMBDA_FUNCTION_NAME` (set by Lambda): a dimension of every metric, so two
    /// deployments, or two sweepers splitting a fleet, each have their own heartbeat.
    pub function_name: String,
    /// `SWEEP_ALLOWED_NETWORKS`: targets must be inside these (default: private networks), and
    /// some addresses are refused whatever they say.
    pub allowed: AllowedNetworks,
    /// `SWEEP_SYSTEM_NAME`: what the alerts call the system (default: the project, or `backends`).
    pub system_name: String,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let allowed_text = vars
            .optional("SWEEP_ALLOWED_NETWORKS")
            .unwrap_or_else(|| DEFAULT_ALLOWED_NETWORKS.to_string());
        let allowed = AllowedNetworks::parse(&allowed_text).ok_or_else(|| {
            ConfigError::new(
                "SWEEP_ALLOWED_NETWORKS",
                "must be IPv4 networks like 10.0.0.0/8, comma-separated",
            )
        })?;
        let port = vars.parse_or("SWEEP_PORT", "a TCP port", 8080u16)?;
        if port == 0 {
            return Err(ConfigError::new(
                "SWEEP_PORT",
                "must be a TCP port (1-65535)",
            ));
        }
        let path = vars
            .optional("SWEEP_PATH")
            .unwrap_or_else(|| "/health".into());
        if !crate::probe::is_request_path(&path) {
            return Err(ConfigError::new(
                "SWEEP_PATH",
                "must be a URL path starting with /",
            ));
        }
        let group_paths = match vars.optional("SWEEP_TARGET_GROUP_CHECK").as_deref() {
            None | Some("sweeper") => false,
            Some("group") => true,
            Some(_) => {
                return Err(ConfigError::new(
                    "SWEEP_TARGET_GROUP_CHECK",
                    "must be sweeper (SWEEP_PATH on the registered port) or group (the group's health-check path and port)",
                ));
            }
        };
        let host = vars.optional("SWEEP_HOST_HEADER");
        if let Some(host) = &host
            && !crate::probe::is_host(host)
        {
            return Err(ConfigError::new(
                "SWEEP_HOST_HEADER",
                "must be a host name, optionally with :port (what the backends expect in Host)",
            ));
        }
        let healthy_codes = match vars.optional("SWEEP_HEALTHY_CODES") {
            None => vec![200, 302],
            Some(_) => vars
                .list("SWEEP_HEALTHY_CODES")
                .iter()
                .map(|c| c.parse::<u16>().ok().filter(|c| (100..600).contains(c)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ConfigError::new(
                        "SWEEP_HEALTHY_CODES",
                        "must be HTTP status codes, comma-separated",
                    )
                })?,
        };
        let static_targets = vars
            .list("SWEEP_STATIC_TARGETS")
            .iter()
            .map(|entry| parse_static(entry, &allowed))
            .collect::<Result<Vec<_>, _>>()?;
        let project = vars.optional("SWEEP_PROJECT");
        let target_group_arns = vars.list("SWEEP_TARGET_GROUP_ARNS");
        for arn in &target_group_arns {
            let valid = arn.starts_with("arn:")
                && arn.split(':').nth(2) == Some("elasticloadbalancing")
                && arn.contains(":targetgroup/");
            if !valid {
                return Err(ConfigError::new(
                    "SWEEP_TARGET_GROUP_ARNS",
                    "must be target group ARNs (arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>)",
                ));
            }
        }
        if project.is_none() && static_targets.is_empty() && target_group_arns.is_empty() {
            return Err(ConfigError::new(
                "SWEEP_PROJECT",
                "nothing to sweep: set SWEEP_PROJECT (EC2 discovery), SWEEP_TARGET_GROUP_ARNS or SWEEP_STATIC_TARGETS",
            ));
        }
        let positive = |name: &str, default: u32| -> Result<u32, ConfigError> {
            let value = vars.parse_or(name, "a whole number of at least 1", default)?;
            if value == 0 {
                Err(ConfigError::new(name, "must be at least 1"))
            } else {
                Ok(value)
            }
        };
        let reminder_hours =
            vars.parse_or("SWEEP_REMINDER_HOURS", "a whole number of hours", 0u32)?;
        let concurrency = match vars.optional("SWEEP_CONCURRENCY") {
            None => concurrency::default_concurrency(),
            Some(_) => positive("SWEEP_CONCURRENCY", 1)? as usize,
        };
        let probe_timeout = vars.millis("SWEEP_TIMEOUT_MS", Duration::from_secs(2))?;
        if probe_timeout.is_zero() {
            return Err(ConfigError::new("SWEEP_TIMEOUT_MS", "must be at least 1"));
        }
        let deadline = vars.millis("SWEEP_DEADLINE_MS", Duration::from_secs(40))?;
        // A probe that cannot finish inside the sweep is "not probed", never "down": with a
        // timeout near the time probes get, every hanging backend would vanish from the verdict
        // and a hung system would stay OK. Probes get what discovery (a quarter at most) and
        // the state write and alert (the reserve) leave; a timeout must fit twice in it.
        let probe_window = deadline
            .saturating_sub(deadline / 4)
            .saturating_sub(crate::handler::reserve(deadline));
        if probe_timeout * 2 > probe_window {
            return Err(ConfigError::new(
                "SWEEP_TIMEOUT_MS",
                format!(
                    "{} ms is more than half of the {} ms probes get out of SWEEP_DEADLINE_MS={} \
                     (after discovery's quarter and the reserve for the state write and alert): \
                     hanging backends would be cut short and never judged; lower SWEEP_TIMEOUT_MS \
                     or raise SWEEP_DEADLINE_MS (and the Lambda timeout)",
                    probe_timeout.as_millis(),
                    probe_window.as_millis(),
                    deadline.as_millis()
                ),
            ));
        }
        Ok(Self {
            state_bucket: vars.required("STATE_BUCKET")?,
            notify: NotifyConfig::from_vars(vars)?,
            system_name: vars
                .optional("SWEEP_SYSTEM_NAME")
                .or_else(|| project.clone())
                .unwrap_or_else(|| "backends".into()),
            project,
            role: vars
                .optional("SWEEP_ROLE")
                .unwrap_or_else(|| "backend".into()),
            static_targets,
            target_group_arns,
            port,
            path,
            host,
            group_paths,
            healthy_codes,
            probe_timeout,
            concurrency,
            deadline,
            rules: Rules {
                thresholds: Thresholds {
                    healthy: positive("SWEEP_HEALTHY_THRESHOLD", 2)?,
                    unhealthy: positive("SWEEP_UNHEALTHY_THRESHOLD", 3)?,
                    stale_sweeps: positive("SWEEP_STALE_SWEEPS", 3)?,
                    start_grace: vars.parse_or(
                        "SWEEP_START_GRACE_SWEEPS",
                        "a whole number of sweeps",
                        2u32,
                    )?,
                },
                quorum: match vars.parse::<usize>("SWEEP_QUORUM", "a whole number of targets")? {
                    // Zero up would be OK: a total outage could never page.
                    Some(0) => {
                        return Err(ConfigError::new(
                            "SWEEP_QUORUM",
                            "must be at least 1 (unset: a majority of the targets)",
                        ));
                    }
                    quorum => quorum,
                },
                reminder: (reminder_hours > 0)
                    .then(|| chrono::Duration::hours(i64::from(reminder_hours))),
            },
            maintenance: vars.flag("SWEEP_MAINTENANCE", false)?,
            function_name: vars
                .optional("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|| crate::NAME.to_string()),
            allowed,
        })
    }

    pub fn is_allowed(&self, addr: &SocketAddr) -> bool {
        self.allowed.allows(addr.ip())
    }
}

fn parse_static(entry: &str, allowed: &AllowedNetworks) -> Result<Target, ConfigError> {
    const VAR: &str = "SWEEP_STATIC_TARGETS";
    let (name, address) = match entry.split_once('=') {
        Some((name, address)) => (name.trim().to_string(), address.trim()),
        None => (entry.trim().to_string(), entry.trim()),
    };
    // `https://` asks over TLS; `http://` is the same as no scheme.
    let (tls, address) = match address.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        Some(_) => {
            return Err(ConfigError::new(
                VAR,
                "the only schemes are http:// and https://",
            ));
        }
        None => (false, address),
    };
    let addr: SocketAddr = address.parse().map_err(|_| {
        ConfigError::new(
            VAR,
            "entries must be name=ip:port or ip:port (https://ip:port for TLS)",
        )
    })?;
    if let Some(why) = allowed.refusal(addr.ip()) {
        return Err(ConfigError::new(
            VAR,
            format!("a static target may not be probed: {why}"),
        ));
    }
    Ok(Target {
        addr,
        name,
        instance: None,
        check: Check { tls, path: None },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn static_targets_may_ask_over_https_and_the_host_is_checked() {
        let base = [
            ("STATE_BUCKET", "b"),
            (
                "NOTIFY_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:t",
            ),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            Config::from_vars(&Vars::from_pairs(base.iter().chain(extra).copied()))
        };
        let config = with(&[(
            "SWEEP_STATIC_TARGETS",
            "api=https://10.0.1.5:8443,http://10.0.1.6:8080,10.0.1.7:8080",
        )])
        .unwrap();
        let tls: Vec<bool> = config.static_targets.iter().map(|t| t.check.tls).collect();
        assert_eq!(tls, [true, false, false]);
        assert_eq!(config.static_targets[0].name, "api");
        let err = with(&[("SWEEP_STATIC_TARGETS", "ftp://10.0.1.5:21")]).unwrap_err();
        assert_eq!(err.variable, "SWEEP_STATIC_TARGETS");
        let err = with(&[
            ("SWEEP_STATIC_TARGETS", "10.0.1.5:8080"),
            ("SWEEP_HOST_HEADER", "api\r\nX-Injected: 1"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "SWEEP_HOST_HEADER");
    }

    #[test]
    fn a_quorum_of_zero_is_refused() {
        let err = Config::from_vars(&Vars::from_pairs([
            ("STATE_BUCKET", "b"),
            (
                "NOTIFY_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:t",
            ),
            ("SWEEP_PROJECT", "des"),
            ("SWEEP_QUORUM", "0"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "SWEEP_QUORUM");
    }

    use super::*;

    fn vars(extra: &[(&'static str, &'static str)]) -> Vars {
        let base = [
            ("STATE_BUCKET", "b"),
            (
                "NOTIFY_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:des-backend-alerts",
            ),
        ];
        Vars::from_pairs(base.iter().chain(extra).copied())
    }

    #[test]
    fn defaults_are_the_common_ones() {
        let config = Config::from_vars(&vars(&[("SWEEP_PROJECT", "des")])).unwrap();
        assert_eq!((config.port, config.path.as_str()), (8080, "/health"));
        assert_eq!(config.healthy_codes, [200, 302]);
        let t = config.rules.thresholds;
        assert_eq!((t.healthy, t.unhealthy, t.stale_sweeps), (2, 3, 3));
        assert_eq!(config.concurrency, concurrency::default_concurrency());
        assert_eq!(config.system_name, "des");
        assert!(config.is_allowed(&"10.0.1.5:8080".parse().unwrap()));
        assert!(
            !config.is_allowed(&"169.254.169.254:80".parse().unwrap()),
            "never the metadata service"
        );
        assert!(!config.is_allowed(&"8.8.8.8:80".parse().unwrap()));
    }

    #[test]
    fn static_targets_must_be_inside_the_allowed_networks() {
        let ok = Config::from_vars(&vars(&[
            ("SWEEP_ALLOWED_NETWORKS", "127.0.0.0/8"),
            ("SWEEP_STATIC_TARGETS", "a=127.0.0.2:80, 127.0.0.3:81"),
        ]))
        .unwrap();
        assert_eq!(ok.static_targets[0].name, "a");
        assert_eq!(ok.static_targets[1].name, "127.0.0.3:81");
        let err =
            Config::from_vars(&vars(&[("SWEEP_STATIC_TARGETS", "203.0.113.5:80")])).unwrap_err();
        assert_eq!(err.variable, "SWEEP_STATIC_TARGETS");
        let err = Config::from_vars(&vars(&[])).unwrap_err();
        assert_eq!(err.variable, "SWEEP_PROJECT");
        let err = Config::from_vars(&vars(&[(
            "SWEEP_TARGET_GROUP_ARNS",
            "arn:aws:sns:us-east-1:1:topic",
        )]))
        .unwrap_err();
        assert_eq!(err.variable, "SWEEP_TARGET_GROUP_ARNS");
        let tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/des-backends/73e2d6bc24d8a067";
        assert_eq!(
            Config::from_vars(&vars(&[("SWEEP_TARGET_GROUP_ARNS", tg)]))
                .unwrap()
                .target_group_arns,
            [tg]
        );
        for (name, value) in [
            ("SWEEP_PATH", "nope"),
            ("SWEEP_HEALTHY_CODES", "200,abc"),
            ("SWEEP_UNHEALTHY_THRESHOLD", "0"),
            ("SWEEP_ALLOWED_NETWORKS", "10.0.0.0/99"),
        ] {
            let err =
                Config::from_vars(&vars(&[("SWEEP_PROJECT", "des"), (name, value)])).unwrap_err();
            assert_eq!(err.variable, name);
        }
    }

    #[test]
    fn never_probed_addresses_are_refused_as_static_targets_whatever_the_networks() {
        for target in [
            "169.254.169.254:80",
            "0.0.0.0:8080",
            "127.0.0.9:8080",
            "[::1]:8080",
            "224.0.0.1:80",
        ] {
            let err = Config::from_vars(&vars(&[
                ("SWEEP_ALLOWED_NETWORKS", "0.0.0.0/0"),
                ("SWEEP_STATIC_TARGETS", target),
            ]))
            .unwrap_err();
            assert_eq!(err.variable, "SWEEP_STATIC_TARGETS", "{target}");
        }
        let err = Config::from_vars(&vars(&[
            ("SWEEP_PROJECT", "des"),
            ("SWEEP_ALLOWED_NETWORKS", "fd00::/8"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.variable, "SWEEP_ALLOWED_NETWORKS",
            "IPv6 networks are refused"
        );
        let err = Config::from_vars(&vars(&[
            ("SWEEP_PROJECT", "des"),
            ("SWEEP_STALE_SWEEPS", "0"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "SWEEP_STALE_SWEEPS");
    }

    #[test]
    fn a_probe_timeout_that_cannot_finish_in_the_sweep_is_refused() {
        for (timeout, deadline) in [("48000", "40000"), ("14000", "40000"), ("3000", "10000")] {
            let err = Config::from_vars(&vars(&[
                ("SWEEP_PROJECT", "des"),
                ("SWEEP_TIMEOUT_MS", timeout),
                ("SWEEP_DEADLINE_MS", deadline),
            ]))
            .unwrap_err();
            assert_eq!(err.variable, "SWEEP_TIMEOUT_MS", "{err}");
            assert!(err.to_string().contains("SWEEP_DEADLINE_MS"), "{err}");
        }
        for (timeout, deadline) in [("2000", "40000"), ("13000", "40000")] {
            assert!(
                Config::from_vars(&vars(&[
                    ("SWEEP_PROJECT", "des"),
                    ("SWEEP_TIMEOUT_MS", timeout),
                    ("SWEEP_DEADLINE_MS", deadline),
                ]))
                .is_ok(),
                "{timeout} in {deadline}"
            );
        }
    }
}
