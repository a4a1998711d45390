//! Structured JSON logs and CloudWatch Embedded Metric Format (EMF) lines.
//!
//! Logs: one JSON object per line on stdout, fields at the top level, and the Lambda request id
//! from the span `lambda_runtime` opens around each invocation. Level from `AWS_LAMBDA_LOG_LEVEL`
//! (set by Lambda's advanced logging controls) or `RUST_LOG`, default `info`.
//!
//! Metrics: CloudWatch turns any stdout line shaped as EMF into metrics, with no API call and no
//! extra permission. A [`Metrics`] set is rendered as one such line per invocation.

use std::io::Write;

use serde_json::{Map, Value, json};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the JSON log subscriber. Call once, first thing in `main`, with the function's crate
/// name (`env!("CARGO_CRATE_NAME")`).
///
/// The level applies to the function, this crate and the Lambda runtime; every other crate (the
/// AWS SDK, hyper, rustls) logs warnings only, because at debug level they log request details
/// nobody needs in CloudWatch. `RUST_LOG`, when set, replaces all of this.
pub fn init_logging(function_crate: &str) {
    let format = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stdout);
    // try_init: a second call (several tests in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(log_filter(function_crate))
        .try_init();
}

/// `RUST_LOG` takes `target=level` directives separated by commas (`warn,deploy_notifier=debug`);
/// one that does not parse is ignored in favour of the default.
fn log_filter(function_crate: &str) -> Targets {
    log_filter_from(
        function_crate,
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
    )
}

/// The filter for the given `RUST_LOG` and `AWS_LAMBDA_LOG_LEVEL` values.
fn log_filter_from(
    function_crate: &str,
    rust_log: Option<&str>,
    lambda_level: Option<&str>,
) -> Targets {
    if let Some(explicit) = rust_log
        && let Ok(filter) = explicit.parse::<Targets>()
    {
        return filter;
    }
    let level = match lambda_level.map(str::to_ascii_lowercase).as_deref() {
        Some("trace") => LevelFilter::TRACE,
        Some("debug") => LevelFilter::DEBUG,
        Some("warn") => LevelFilter::WARN,
        Some("error" | "fatal") => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    };
    Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target(function_crate, level)
        .with_target("watchkeeper_shared", level)
        .with_target("lambda_runtime", level)
}

/// A CloudWatch unit for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Percent,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Percent => "Percent",
            Unit::None => "None",
        }
    }
}

/// The metrics of one invocation, in one namespace, with one set of dimensions.
#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: String,
    dimensions: Vec<(String, String)>,
    values: Vec<(String, Unit, Vec<f64>)>,
}

/// EMF accepts at most 100 values per metric in one line.
const MAX_VALUES_PER_METRIC: usize = 100;

impl Metrics {
    /// `Watchkeeper` namespace with a `Function` dimension.
    pub fn for_function(function: &str) -> Self {
        Self::new("Watchkeeper").dimension("Function", function)
    }

    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            dimensions: Vec::new(),
            values: Vec::new(),
        }
    }

    pub fn dimension(mut self, name: &str, value: &str) -> Self {
        self.dimensions.push((name.to_string(), value.to_string()));
        self
    }

    /// Records one value; several values of one metric become a distribution in CloudWatch.
    pub fn record(&mut self, name: &str, unit: Unit, value: f64) {
        match self.values.iter_mut().find(|(n, _, _)| n == name) {
            Some((_, _, values)) => values.push(value),
            None => self.values.push((name.to_string(), unit, vec![value])),
        }
    }

    pub fn count(&mut self, name: &str, value: u64) {
        self.record(name, Unit::Count, value as f64);
    }

    pub fn millis(&mut self, name: &str, value: f64) {
        self.record(name, Unit::Milliseconds, value);
    }

    /// The EMF line, timestamped `now_ms` (milliseconds since the epoch). Metrics with more values
    /// than EMF allows keep a representative spread: every n-th value.
    pub fn render(&self, now_ms: i64) -> String {
        self.render_at_level(now_ms, metric_level())
    }

    fn render_at_level(&self, now_ms: i64, level: &str) -> String {
        let mut root = Map::new();
        // Lambda's log-level filter reads `level` (a line without one is INFO, dropped at WARN)
        // and needs an RFC 3339 `timestamp` to read it: a metric line must pass any level the
        // function is set to, or the alarms on its metrics go dark.
        root.insert("level".into(), Value::String(level.to_string()));
        let timestamp = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
        root.insert(
            "timestamp".into(),
            Value::String(timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(n, _)| n.as_str()).collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }],
            }),
        );
        for (name, value) in &self.dimensions {
            root.insert(name.clone(), Value::String(value.clone()));
        }
        for (name, _, values) in &self.values {
            let value = match values.as_slice() {
                [single] => json!(single),
                many => {
                    let step = many.len().div_ceil(MAX_VALUES_PER_METRIC);
                    Value::Array(many.iter().step_by(step).map(|v| json!(v)).collect())
                }
            };
            root.insert(name.clone(), value);
        }
        Value::Object(root).to_string()
    }

    /// Prints the EMF line to stdout, where the Lambda log agent picks it up.
    pub fn emit(&self) {
        if self.values.is_empty() {
            return;
        }
        let line = self.render(chrono::Utc::now().timestamp_millis());
        let mut out = std::io::stdout().lock();
        // A metric line that cannot be written is not worth failing an invocation for.
        let _ = writeln!(out, "{line}");
    }
}

/// The level metric lines carry: the lowest one the function's application log level
/// (`AWS_LAMBDA_LOG_LEVEL`) lets through, INFO when it lets INFO through.
fn metric_level() -> &'static str {
    static LEVEL: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    LEVEL.get_or_init(|| metric_level_for(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref()))
}

fn metric_level_for(lambda_level: Option<&str>) -> &'static str {
    match lambda_level.map(str::to_ascii_uppercase).as_deref() {
        Some("WARN") => "WARN",
        Some("ERROR") => "ERROR",
        Some("FATAL") => "FATAL",
        _ => "INFO",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{Secret, SecretUrl};

    /// Lambda drops a line below the application log level, and a line without `level` (or
    /// without a valid `timestamp`) is INFO: at `log_level = WARN` every metric would vanish.
    #[test]
    fn metric_lines_pass_any_application_log_level() {
        let mut m = Metrics::for_function("health-sweeper");
        m.count("Sweeps", 1);
        for (set, expected) in [
            (None, "INFO"),
            (Some("DEBUG"), "INFO"),
            (Some("INFO"), "INFO"),
            (Some("WARN"), "WARN"),
            (Some("error"), "ERROR"),
            (Some("FATAL"), "FATAL"),
        ] {
            let level = metric_level_for(set);
            assert_eq!(level, expected, "{set:?}");
            let line: Value =
                serde_json::from_str(&m.render_at_level(1_700_000_000_000, level)).unwrap();
            assert_eq!(line["level"], expected);
            assert_eq!(line["timestamp"], "2023-11-14T22:13:20.000Z");
            assert_eq!(line["Sweeps"], json!(1.0));
        }
    }
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn secrets_never_reach_json_logs() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        let password = Secret::new("hunter2-Pa55".to_string());
        let webhook = SecretUrl::new("https://hooks.slack.com/services/T0/B0/XyZsecretpath");
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(password = ?password, also = %password, webhook = %webhook, debug = ?webhook, "logging secrets by accident");
            tracing::error!("failed with {password:?} and {webhook}");
        });
        let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.lines().count(), 2);
        for line in logs.lines() {
            let parsed: Value = serde_json::from_str(line).unwrap();
            assert!(parsed.get("message").is_some());
        }
        assert!(
            !logs.contains("hunter2") && !logs.contains("XyZsecretpath"),
            "{logs}"
        );
        assert!(logs.contains("https://hooks.slack.com/***"));
    }

    #[test]
    fn log_filter_caps_dependencies() {
        use tracing::Level;
        let filter = log_filter_from("deploy_notifier", None, None);
        assert!(filter.would_enable("deploy_notifier::handler", &Level::INFO));
        assert!(!filter.would_enable("deploy_notifier::handler", &Level::DEBUG));
        assert!(filter.would_enable("watchkeeper_shared::notify", &Level::INFO));
        assert!(filter.would_enable("lambda_runtime::layers::trace", &Level::INFO));
        assert!(filter.would_enable("aws_smithy_runtime", &Level::WARN));
        assert!(!filter.would_enable("aws_smithy_runtime", &Level::INFO));
        assert!(!filter.would_enable("hyper_util::client", &Level::DEBUG));
        // Lambda's log level moves the function's own logs, not the dependencies'.
        let debug = log_filter_from("deploy_notifier", None, Some("DEBUG"));
        assert!(debug.would_enable("deploy_notifier::handler", &Level::DEBUG));
        assert!(!debug.would_enable("aws_smithy_runtime", &Level::INFO));
        let quiet = log_filter_from("deploy_notifier", None, Some("error"));
        assert!(!quiet.would_enable("deploy_notifier::handler", &Level::WARN));
        // An explicit RUST_LOG replaces the default; one that does not parse is ignored.
        let explicit = log_filter_from("deploy_notifier", Some("aws_smithy_runtime=debug"), None);
        assert!(explicit.would_enable("aws_smithy_runtime", &Level::DEBUG));
        let broken = log_filter_from("deploy_notifier", Some("=,=nonsense=="), None);
        assert!(!broken.would_enable("aws_smithy_runtime", &Level::INFO));
    }

    #[test]
    fn renders_valid_emf() {
        let mut m = Metrics::for_function("health-sweeper");
        m.count("Healthy", 2);
        m.millis("ProbeLatency", 1.5);
        m.millis("ProbeLatency", 2.5);
        let line: Value = serde_json::from_str(&m.render(1_700_000_000_000)).unwrap();
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Watchkeeper");
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(
            directive["Metrics"][0],
            json!({"Name": "Healthy", "Unit": "Count"})
        );
        assert_eq!(
            directive["Metrics"][1],
            json!({"Name": "ProbeLatency", "Unit": "Milliseconds"})
        );
        assert_eq!(line["Function"], "health-sweeper");
        assert_eq!(line["Healthy"], json!(2.0));
        assert_eq!(line["ProbeLatency"], json!([1.5, 2.5]));
    }

    #[test]
    fn caps_values_per_metric() {
        let mut m = Metrics::new("X");
        for i in 0..1000 {
            m.millis("Latency", i as f64);
        }
        let line: Value = serde_json::from_str(&m.render(0)).unwrap();
        assert!(line["Latency"].as_array().unwrap().len() <= MAX_VALUES_PER_METRIC);
    }
}
