//! A CloudWatch alarm's state change, from either shape AWS sends it in: the EventBridge event
//! `CloudWatch Alarm State Change`, or the JSON message of an alarm action on an SNS topic. Metric,
//! metric-math and composite alarms.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{MAX_ITEMS, MAX_TEXT, arn_field, cut, number_field, parse_time, text_field};
use crate::event::Envelope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "OK" => Some(Self::Ok),
            "ALARM" => Some(Self::Alarm),
            "INSUFFICIENT_DATA" => Some(Self::InsufficientData),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// One metric (or expression) the alarm watches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Watched {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub statistic: Option<String>,
    pub period_seconds: Option<f64>,
    pub dimensions: Vec<(String, String)>,
    /// A metric-math expression (`100 * errors / requests`).
    pub expression: Option<String>,
    pub label: Option<String>,
    /// Whether this is the series the alarm compares (metric math returns one).
    pub returned: bool,
}

impl Watched {
    /// What the series is called in one line: the label, the expression, or the metric's name.
    pub fn title(&self) -> Option<&str> {
        self.label
            .as_deref()
            .or(self.expression.as_deref())
            .or(self.name.as_deref())
    }
}

/// What a composite alarm's change was caused by.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    /// The child alarm's name (the last field of its ARN).
    pub name: String,
    pub state: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlarmChange {
    /// The alarm's ARN: its identity for dedupe and history, the same whichever way it came.
    pub arn: String,
    pub name: String,
    pub account: String,
    /// The region code (`us-east-1`), as the ARN or the event says it.
    pub region: String,
    pub description: Option<String>,
    pub state: AlarmState,
    pub previous: Option<AlarmState>,
    /// When the previous state began (EventBridge says it; SNS does not).
    pub previous_since: Option<DateTime<Utc>>,
    /// CloudWatch's own account of the change.
    pub reason: Option<String>,
    pub changed_at: Option<DateTime<Utc>>,
    pub watched: Vec<Watched>,
    /// `>`, `>=`, `<`, `<=`, or the words of a band or anomaly comparison.
    pub comparison: Option<String>,
    pub threshold: Option<f64>,
    /// The datapoints that decided the change, newest first: (time, value).
    pub datapoints: Vec<(Option<DateTime<Utc>>, f64)>,
    /// A composite alarm's rule, and the children that triggered it.
    pub rule: Option<String>,
    pub children: Vec<Child>,
    /// `state.actionsSuppressedBy` (`Alarm`, `WaitPeriod`, `ExtensionPeriod`): a composite alarm
    /// whose suppressor says not to act now.
    pub suppressed_by: Option<String>,
}

impl AlarmChange {
    pub fn is_composite(&self) -> bool {
        self.rule.is_some()
    }

    /// The series the alarm compares.
    pub fn compared(&self) -> Option<&Watched> {
        self.watched
            .iter()
            .find(|w| w.returned)
            .or(self.watched.first())
    }

    /// Every dimension of every watched metric, each once.
    pub fn dimensions(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = Vec::new();
        for pair in self.watched.iter().flat_map(|w| &w.dimensions) {
            if !all.contains(pair) && all.len() < MAX_ITEMS {
                all.push(pair.clone());
            }
        }
        all
    }
}

/// Reads `CloudWatch Alarm State Change`.
pub fn from_event(event: &Envelope) -> Result<AlarmChange, String> {
    let detail = &event.detail;
    let name = text_field(detail, "alarmName", 255).ok_or("no alarmName")?;
    let state = detail.get("state").ok_or("no state")?;
    let state_value = state_of(state.get("value"))?;
    let previous = detail.get("previousState");
    let reason_data = reason_data(state);
    let configuration = detail.get("configuration").unwrap_or(&Value::Null);
    let arn = event
        .resources
        .iter()
        .find(|r| r.starts_with("arn:") && r.contains(":alarm:"))
        .cloned();
    let region = arn
        .as_deref()
        .and_then(|a| arn_field(a, 3))
        .unwrap_or(&event.region)
        .to_string();
    let account = arn
        .as_deref()
        .and_then(|a| arn_field(a, 4))
        .unwrap_or(&event.account)
        .to_string();
    let reason = text_field(state, "reason", MAX_TEXT);
    let watched: Vec<Watched> = configuration
        .get("metrics")
        .and_then(Value::as_array)
        .map(|metrics| {
            metrics
                .iter()
                .take(MAX_ITEMS)
                .map(watched_from_event)
                .collect()
        })
        .unwrap_or_default();
    let mut children = children_from(reason_data.get("triggeringAlarms"), "arn", "state", "value");
    children.truncate(MAX_ITEMS);
    Ok(AlarmChange {
        arn: arn.unwrap_or_else(|| alarm_arn(&region, &account, &name)),
        description: text_field(configuration, "description", MAX_TEXT),
        state: state_value,
        previous: previous
            .and_then(|p| p.get("value"))
            .and_then(Value::as_str)
            .and_then(AlarmState::parse),
        previous_since: previous
            .and_then(|p| p.get("timestamp"))
            .and_then(Value::as_str)
            .and_then(parse_time),
        changed_at: state
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(parse_time),
        comparison: reason.as_deref().and_then(comparison_in_words),
        threshold: number_field(&reason_data, "threshold"),
        datapoints: datapoints(&reason_data),
        rule: text_field(configuration, "alarmRule", MAX_TEXT),
        suppressed_by: text_field(state, "actionsSuppressedBy", 64),
        reason,
        watched,
        children,
        name,
        account,
        region,
    })
}

/// Reads the JSON message an alarm action publishes to SNS.
pub fn from_sns(message: &Value) -> Result<AlarmChange, String> {
    let name = text_field(message, "AlarmName", 255).ok_or("no AlarmName")?;
    let state = state_of(message.get("NewStateValue"))?;
    let arn = text_field(message, "AlarmArn", 2048).filter(|a| a.starts_with("arn:"));
    let region = arn
        .as_deref()
        .and_then(|a| arn_field(a, 3))
        .unwrap_or("")
        .to_string();
    let account = arn
        .as_deref()
        .and_then(|a| arn_field(a, 4))
        .map(str::to_string)
        .or_else(|| text_field(message, "AWSAccountId", 64))
        .unwrap_or_default();
    let trigger = message.get("Trigger").unwrap_or(&Value::Null);
    let watched = match trigger.get("Metrics").and_then(Value::as_array) {
        Some(metrics) => metrics
            .iter()
            .take(MAX_ITEMS)
            .map(watched_from_sns)
            .collect(),
        None if trigger.get("MetricName").is_some() => vec![Watched {
            namespace: text_field(trigger, "Namespace", 255),
            name: text_field(trigger, "MetricName", 255),
            statistic: text_field(trigger, "ExtendedStatistic", 64)
                .or_else(|| text_field(trigger, "Statistic", 64)),
            period_seconds: number_field(trigger, "Period"),
            dimensions: sns_dimensions(trigger.get("Dimensions")),
            returned: true,
            ..Watched::default()
        }],
        None => Vec::new(),
    };
    let reason = text_field(message, "NewStateReason", MAX_TEXT);
    let mut children = children_from(message.get("TriggeringChildren"), "Arn", "State", "Value");
    children.truncate(MAX_ITEMS);
    Ok(AlarmChange {
        arn: arn.unwrap_or_else(|| alarm_arn(&region, &account, &name)),
        description: text_field(message, "AlarmDescription", MAX_TEXT),
        state,
        previous: message
            .get("OldStateValue")
            .and_then(Value::as_str)
            .and_then(AlarmState::parse),
        previous_since: None,
        changed_at: message
            .get("StateChangeTime")
            .and_then(Value::as_str)
            .and_then(parse_time),
        comparison: trigger
            .get("ComparisonOperator")
            .and_then(Value::as_str)
            .and_then(comparison_of_operator)
            .or_else(|| reason.as_deref().and_then(comparison_in_words)),
        threshold: number_field(trigger, "Threshold"),
        datapoints: Vec::new(),
        rule: text_field(message, "AlarmRule", MAX_TEXT),
        // An alarm action is not taken while suppressed: nothing suppressed reaches a topic.
        suppressed_by: None,
        reason,
        watched,
        children,
        name,
        account,
        region,
    })
}

fn state_of(value: Option<&Value>) -> Result<AlarmState, String> {
    let raw = value.and_then(Value::as_str).ok_or("no state value")?;
    AlarmState::parse(raw).ok_or_else(|| format!("unknown state {:?}", cut(raw, 40)))
}

fn alarm_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}")
}

/// `state.reasonData`: a JSON document inside a string.
fn reason_data(state: &Value) -> Value {
    state
        .get("reasonData")
        .and_then(Value::as_str)
        .filter(|s| s.len() <= 64 * 1024)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null)
}

fn datapoints(reason_data: &Value) -> Vec<(Option<DateTime<Utc>>, f64)> {
    reason_data
        .get("evaluatedDatapoints")
        .and_then(Value::as_array)
        .map(|points| {
            points
                .iter()
                .filter_map(|p| {
                    let value = number_field(p, "value")?;
                    let at = p
                        .get("timestamp")
                        .and_then(Value::as_str)
                        .and_then(parse_time);
                    Some((at, value))
                })
                .take(10)
                .collect()
        })
        .unwrap_or_default()
}

fn children_from(list: Option<&Value>, arn: &str, state: &str, value: &str) -> Vec<Child> {
    list.and_then(Value::as_array)
        .map(|children| {
            children
                .iter()
                .filter_map(|c| {
                    let arn = c.get(arn).and_then(Value::as_str)?;
                    let name = arn.rsplit(":alarm:").next().unwrap_or(arn);
                    let s = c.get(state);
                    Some(Child {
                        name: cut(name, 255),
                        state: s.and_then(|s| text_field(s, value, 40)),
                        at: s
                            .and_then(|s| s.get("timestamp").or_else(|| s.get("Timestamp")))
                            .and_then(Value::as_str)
                            .and_then(parse_time),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn watched_from_event(metric: &Value) -> Watched {
    let stat = metric.get("metricStat").unwrap_or(&Value::Null);
    let inner = stat.get("metric").unwrap_or(&Value::Null);
    let dimensions = inner
        .get("dimensions")
        .and_then(Value::as_object)
        .map(|d| {
            d.iter()
                .take(MAX_ITEMS)
                .map(|(k, v)| (cut(k, 255), cut(v.as_str().unwrap_or(""), 255)))
                .collect()
        })
        .unwrap_or_default();
    Watched {
        namespace: text_field(inner, "namespace", 255),
        name: text_field(inner, "name", 255),
        statistic: text_field(stat, "stat", 64),
        period_seconds: number_field(stat, "period"),
        dimensions,
        expression: text_field(metric, "expression", 1024),
        label: text_field(metric, "label", 255),
        returned: metric
            .get("returnData")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    }
}

fn watched_from_sns(metric: &Value) -> Watched {
    let stat = metric.get("MetricStat").unwrap_or(&Value::Null);
    let inner = stat.get("Metric").unwrap_or(&Value::Null);
    Watched {
        namespace: text_field(inner, "Namespace", 255),
        name: text_field(inner, "MetricName", 255),
        statistic: text_field(stat, "Stat", 64),
        period_seconds: number_field(stat, "Period"),
        dimensions: sns_dimensions(inner.get("Dimensions")),
        expression: text_field(metric, "Expression", 1024),
        label: text_field(metric, "Label", 255),
        returned: metric
            .get("ReturnData")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    }
}

/// `[{"name": ..., "value": ...}]` (SNS writes them lower-case; the API upper-case).
fn sns_dimensions(list: Option<&Value>) -> Vec<(String, String)> {
    list.and_then(Value::as_array)
        .map(|dims| {
            dims.iter()
                .take(MAX_ITEMS)
                .filter_map(|d| {
                    let name = text_field(d, "name", 255).or_else(|| text_field(d, "Name", 255))?;
                    let value = text_field(d, "value", 255)
                        .or_else(|| text_field(d, "Value", 255))
                        .unwrap_or_default();
                    Some((name, value))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn comparison_of_operator(operator: &str) -> Option<String> {
    let words = match operator {
        "GreaterThanOrEqualToThreshold" => ">=",
        "GreaterThanThreshold" => ">",
        "LessThanThreshold" => "<",
        "LessThanOrEqualToThreshold" => "<=",
        "LessThanLowerOrGreaterThanUpperThreshold" => "outside the band",
        "LessThanLowerThreshold" => "below the band",
        "GreaterThanUpperThreshold" => "above the band",
        _ => return None,
    };
    Some(words.to_string())
}

/// The comparison as CloudWatch's reason words it: `were greater than the threshold (5.0)`.
fn comparison_in_words(reason: &str) -> Option<String> {
    // Longest phrases first: "greater than or equal to" contains "greater than".
    [
        ("greater than or equal to the threshold", ">="),
        ("less than or equal to the threshold", "<="),
        ("greater than the threshold", ">"),
        ("less than the threshold", "<"),
    ]
    .iter()
    .find(|(words, _)| reason.contains(words))
    .map(|(_, op)| {
        // An OK's reason says the datapoints were "not greater than": the condition is still `>`.
        op.to_string()
    })
}
