//! Reading each fixture of `events/` as what it is.

use serde_json::Value;

use super::alarm::AlarmState;
use super::guardduty::Band;
use super::*;
use crate::event::{EventKind, classify};

fn fixture(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/").to_string() + name;
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn event(name: &str) -> Envelope {
    match classify(fixture(name)).unwrap() {
        EventKind::EventBridge(e) => e,
        other => panic!("{name}: {other:?}"),
    }
}

fn alert(name: &str) -> AwsAlert {
    match read_event(&event(name)) {
        Some(Read::Alert(a)) => *a,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn a_metric_alarm_from_eventbridge_says_what_broke_where() {
    let AwsAlert::Alarm(a) = alert("cloudwatch-alarm-state-change.json") else {
        panic!()
    };
    assert_eq!(a.name, "des-api-5xx");
    assert_eq!(a.state, AlarmState::Alarm);
    assert_eq!(a.previous, Some(AlarmState::Ok));
    assert_eq!(a.region, "us-east-1");
    assert_eq!(
        a.arn,
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:des-api-5xx"
    );
    assert_eq!(a.comparison.as_deref(), Some(">"));
    assert_eq!(a.threshold, Some(5.0));
    assert_eq!(a.datapoints.len(), 2);
    assert_eq!(a.dimensions().len(), 2);
    assert_eq!(
        a.changed_at.unwrap().to_rfc3339(),
        "2026-12-06T09:55:40.517+00:00"
    );
}

#[test]
fn the_same_alarm_change_from_sns_and_eventbridge_has_one_identity() {
    let message = fixture("sns-cloudwatch-alarm.json")["Records"][0]["Sns"]["Message"]
        .as_str()
        .unwrap()
        .to_string();
    let message: Value = serde_json::from_str(&message).unwrap();
    let Some(Read::Alert(alert)) = read_sns_message(&message) else {
        panic!()
    };
    let AwsAlert::Alarm(a) = *alert else { panic!() };
    assert_eq!(a.name, "des-rds-free-storage");
    assert_eq!(a.region, "us-east-1");
    assert_eq!(a.comparison.as_deref(), Some("<"));
    assert_eq!(a.threshold, Some(2e9));
    assert_eq!(
        a.dimensions(),
        vec![("DBInstanceIdentifier".to_string(), "des-db".to_string())]
    );
    assert!(a.changed_at.is_some());
    // Not an alarm: no AlarmName.
    assert_eq!(read_sns_message(&serde_json::json!({"hello": 1})), None);
    // An alarm in an unknown state is unreadable, not dropped.
    assert!(matches!(
        read_sns_message(&serde_json::json!({"AlarmName": "x", "NewStateValue": "MAYBE"})),
        Some(Read::Unreadable { .. })
    ));
}

#[test]
fn metric_math_and_composite_alarms_are_read() {
    let AwsAlert::Alarm(math) = alert("cloudwatch-alarm-metric-math.json") else {
        panic!()
    };
    assert_eq!(math.compared().unwrap().title(), Some("Error rate (%)"));
    assert_eq!(math.watched.len(), 3);
    let AwsAlert::Alarm(composite) = alert("cloudwatch-alarm-composite.json") else {
        panic!()
    };
    assert!(composite.is_composite());
    assert_eq!(composite.children[0].name, "des-api-5xx");
    assert_eq!(composite.children[0].state.as_deref(), Some("ALARM"));
}

#[test]
fn health_and_guardduty_are_read() {
    let AwsAlert::Health(h) = alert("aws-health-rds-maintenance.json") else {
        panic!()
    };
    assert_eq!(h.service.as_deref(), Some("RDS"));
    assert_eq!(h.category.as_deref(), Some("scheduledChange"));
    assert_eq!(h.affected, vec!["des-db"]);
    assert_eq!(h.start.unwrap().to_rfc3339(), "2026-12-15T03:00:00+00:00");
    assert!(h.last_updated.is_some());
    let AwsAlert::Finding(f) = alert("guardduty-finding.json") else {
        panic!()
    };
    assert_eq!(f.band, Band::Medium);
    assert_eq!(f.resource, "Instance i-0a1b2c3d4e5f60718 (des-bastion)");
    assert_eq!(f.count, Some(41));
    assert_eq!(Band::of(8.9), Band::High);
    assert_eq!(Band::of(9.0), Band::Critical);
    assert_eq!(Band::of(3.9), Band::Low);
}

#[test]
fn alert_kinds_that_cannot_be_read_say_why() {
    let mut e = event("cloudwatch-alarm-state-change.json");
    e.detail = serde_json::json!({"alarmName": "x"});
    assert!(matches!(
        read_event(&e),
        Some(Read::Unreadable {
            kind: "CloudWatch alarm",
            ..
        })
    ));
    let mut e = event("guardduty-finding.json");
    e.detail["severity"] = Value::String("high".into());
    assert!(matches!(read_event(&e), Some(Read::Unreadable { .. })));
    let mut e = event("guardduty-finding.json");
    e.detail["service"]["archived"] = Value::Bool(true);
    assert_eq!(
        read_event(&e),
        Some(Read::Ignored("the finding is archived"))
    );
    let mut e = event("aws-health-event.json");
    e.detail = Value::Null;
    assert!(matches!(
        read_event(&e),
        Some(Read::Unreadable {
            kind: "AWS Health event",
            ..
        })
    ));
    // Other sources are not alerts.
    assert_eq!(read_event(&event("ecs-deployment-completed.json")), None);
}

#[test]
fn times_in_every_format_aws_writes() {
    for raw in [
        "2026-12-06T09:55:40.517+0000",
        "2026-12-06T09:55:40.517Z",
        "Sun, 06 Dec 2026 09:55:40 GMT",
        "2026-12-06T09:55:40.517",
    ] {
        assert_eq!(parse_time(raw).unwrap().timestamp(), 1_796_550_940, "{raw}");
    }
    assert_eq!(parse_time("yesterday"), None);
}

#[test]
fn links_are_built_only_from_plain_regions() {
    assert_eq!(region_code("us-east-1"), Some("us-east-1"));
    assert_eq!(region_code("evil.example/"), None);
    assert_eq!(region_code(""), None);
}
