//! What invoked the function: the weekly schedule, or an RDS snapshot event. Everything in an
//! event is checked before it is used; the snapshot it names is then looked up in this account's
//! RDS, and only what RDS answers is acted on.

use serde_json::Value;
use watchkeeper_shared::event::is_schedule;

use crate::rds::SourceKind;

pub const SNAPSHOT_EVENT: &str = "RDS DB Snapshot Event";
pub const CLUSTER_SNAPSHOT_EVENT: &str = "RDS DB Cluster Snapshot Event";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// An EventBridge scheduled event: the weekly reconcile. `id` keys its summary.
    Schedule {
        id: String,
    },
    Snapshot(SnapshotEvent),
    /// A well-formed event this function has nothing to do with, and why.
    Ignored {
        id: String,
        reason: String,
    },
}

/// What an RDS snapshot event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Automated (RDS-EVENT-0091 / cluster 0169), manual (0042 / cluster 0075) or copy (0197).
    Created,
    /// Export finished: failed (0159 / 0162), canceled (0160 / 0163), completed (0161 / 0164).
    ExportFinished(Finish),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Completed,
    Failed,
    Canceled,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Completed => "completed",
            Finish::Failed => "failed",
            Finish::Canceled => "canceled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEvent {
    /// The EventBridge event id.
    pub id: String,
    /// `RDS-EVENT-0091`, ...
    pub rds_event: String,
    pub action: Action,
    pub kind: SourceKind,
    /// The snapshot's ARN as the event gives it, and its identifier (the ARN's last part).
    pub snapshot_arn: String,
    pub snapshot_id: String,
}

/// Classifies one invocation payload.
pub fn classify(payload: &Value) -> Result<EventKind, String> {
    let Value::Object(event) = payload else {
        return Err("the event is not a JSON object".into());
    };
    let text = |key: &str| event.get(key).and_then(Value::as_str);
    let (Some(source), Some(detail_type)) = (text("source"), text("detail-type")) else {
        return Err("not an EventBridge event: no source or detail-type".into());
    };
    let id = text("id")
        .filter(|id| is_event_id(id))
        .ok_or("EventBridge event without a usable id")?
        .to_string();
    match (source, detail_type) {
        (source, detail_type) if is_schedule(source, detail_type) => Ok(EventKind::Schedule { id }),
        ("aws.rds", SNAPSHOT_EVENT | CLUSTER_SNAPSHOT_EVENT) => {
            let kind = if detail_type == SNAPSHOT_EVENT {
                SourceKind::Instance
            } else {
                SourceKind::Cluster
            };
            snapshot_event(id, kind, event.get("detail"))
        }
        _ => Ok(EventKind::Ignored {
            id,
            reason: format!(
                "{} from {} is not an event this function handles",
                clip(detail_type),
                clip(source)
            ),
        }),
    }
}

fn snapshot_event(
    id: String,
    kind: SourceKind,
    detail: Option<&Value>,
) -> Result<EventKind, String> {
    let Some(Value::Object(detail)) = detail else {
        return Err("RDS snapshot event without a detail object".into());
    };
    let text = |key: &str| detail.get(key).and_then(Value::as_str);
    let Some(rds_event) = text("EventID") else {
        return Ok(EventKind::Ignored {
            id,
            reason: "RDS snapshot event without an EventID".into(),
        });
    };
    let action = match (kind, rds_event) {
        (SourceKind::Instance, "RDS-EVENT-0091" | "RDS-EVENT-0042" | "RDS-EVENT-0197")
        | (SourceKind::Cluster, "RDS-EVENT-0169" | "RDS-EVENT-0075") => Action::Created,
        (SourceKind::Instance, "RDS-EVENT-0159") | (SourceKind::Cluster, "RDS-EVENT-0162") => {
            Action::ExportFinished(Finish::Failed)
        }
        (SourceKind::Instance, "RDS-EVENT-0160") | (SourceKind::Cluster, "RDS-EVENT-0163") => {
            Action::ExportFinished(Finish::Canceled)
        }
        (SourceKind::Instance, "RDS-EVENT-0161") | (SourceKind::Cluster, "RDS-EVENT-0164") => {
            Action::ExportFinished(Finish::Completed)
        }
        _ => {
            return Ok(EventKind::Ignored {
                id,
                reason: format!(
                    "{} is not a snapshot-created or export-finished event",
                    clip(rds_event)
                ),
            });
        }
    };
    let snapshot_arn = text("SourceArn").ok_or("RDS snapshot event without a SourceArn")?;
    let snapshot_id = snapshot_id_of(snapshot_arn, kind)
        .ok_or_else(|| format!("SourceArn is not a {} snapshot ARN", kind.as_str()))?;
    if let Some(named) = text("SourceIdentifier")
        && named != snapshot_id
    {
        return Err("SourceIdentifier does not match SourceArn".into());
    }
    Ok(EventKind::Snapshot(SnapshotEvent {
        id,
        rds_event: rds_event.to_string(),
        action,
        kind,
        snapshot_arn: snapshot_arn.to_string(),
        snapshot_id: snapshot_id.to_string(),
    }))
}

/// The snapshot identifier of `arn:<partition>:rds:<region>:<account>:snapshot:<id>` (or
/// `cluster-snapshot:`), if the ARN is one and the identifier is one RDS could have made.
pub fn snapshot_id_of(arn: &str, kind: SourceKind) -> Option<&str> {
    let mut parts = arn.splitn(7, ':');
    let fields: [&str; 6] = [
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    ];
    let id = parts.next()?;
    let resource = match kind {
        SourceKind::Instance => "snapshot",
        SourceKind::Cluster => "cluster-snapshot",
    };
    let [prefix, partition, service, region, account, kind_field] = fields;
    let well_formed = prefix == "arn"
        && partition.starts_with("aws")
        && service == "rds"
        && !region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && kind_field == resource;
    // Automated snapshots are named `rds:<db>-<date>`, AWS Backup ones `awsbackup:...`.
    let plausible_id = (1..=255).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b':');
    (well_formed && plausible_id).then_some(id)
}

fn is_event_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// At most 80 characters of text from an event, for logs and answers.
fn clip(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn rds(detail_type: &str, detail: Value) -> Value {
        json!({"version": "0", "id": "844e2571-85d4-695f-b930-0153b71dcb42", "detail-type": detail_type,
               "source": "aws.rds", "account": "123456789012", "time": "2026-11-22T03:14:07Z",
               "region": "us-east-1", "resources": [], "detail": detail})
    }

    #[test]
    fn snapshot_events_are_read() {
        let arn = "arn:aws:rds:us-east-1:123456789012:snapshot:rds:des-db-2026-11-22-03-10";
        let event = rds(
            SNAPSHOT_EVENT,
            json!({"EventID": "RDS-EVENT-0091", "SourceArn": arn, "SourceIdentifier": "rds:des-db-2026-11-22-03-10", "SourceType": "SNAPSHOT"}),
        );
        let Ok(EventKind::Snapshot(e)) = classify(&event) else {
            panic!("{:?}", classify(&event));
        };
        assert_eq!((e.action, e.kind), (Action::Created, SourceKind::Instance));
        assert_eq!(e.snapshot_id, "rds:des-db-2026-11-22-03-10");
        let carn = "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:des-aurora-manual";
        let event = rds(
            CLUSTER_SNAPSHOT_EVENT,
            json!({"EventID": "RDS-EVENT-0163", "SourceArn": carn}),
        );
        assert!(matches!(
            classify(&event),
            Ok(EventKind::Snapshot(SnapshotEvent {
                action: Action::ExportFinished(Finish::Canceled),
                ..
            }))
        ));
    }

    proptest! {
        #[test]
        fn any_field_values_classify_without_panicking(
            detail_type in prop_oneof![
                Just(SNAPSHOT_EVENT.to_string()),
                Just(CLUSTER_SNAPSHOT_EVENT.to_string()),
                "\\PC{0,40}",
            ],
            event_id in "(RDS-EVENT-0[0-9]{3})|\\PC{0,20}",
            arn in "(arn:aws:rds:us-east-1:123456789012:(cluster-)?snapshot:)?\\PC{0,80}",
        ) {
            let event = rds(&detail_type, json!({"EventID": event_id, "SourceArn": arn}));
            if let Ok(EventKind::Snapshot(e)) = classify(&event) {
                // Whatever got through names a snapshot the way RDS could have.
                prop_assert_eq!(snapshot_id_of(&e.snapshot_arn, e.kind), Some(e.snapshot_id.as_str()));
                prop_assert!(e.snapshot_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b':'));
            }
        }
    }

    #[test]
    fn malformed_and_unknown_events_are_errors_or_skips() {
        let arn = "arn:aws:rds:us-east-1:123456789012:snapshot:x";
        for bad in [
            json!(null),
            json!([1, 2]),
            json!("text"),
            json!({"detail-type": "RDS DB Snapshot Event"}),
            json!({"id": "a b", "source": "aws.rds", "detail-type": SNAPSHOT_EVENT, "detail": {}}),
            rds(SNAPSHOT_EVENT, json!(7)),
            rds(SNAPSHOT_EVENT, json!({"EventID": "RDS-EVENT-0091"})),
            rds(
                SNAPSHOT_EVENT,
                json!({"EventID": "RDS-EVENT-0091", "SourceArn": "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:x"}),
            ),
            rds(
                SNAPSHOT_EVENT,
                json!({"EventID": "RDS-EVENT-0091", "SourceArn": "arn:aws:rds:us-east-1:123456789012:snapshot:../../x"}),
            ),
            rds(
                SNAPSHOT_EVENT,
                json!({"EventID": "RDS-EVENT-0091", "SourceArn": arn, "SourceIdentifier": "y"}),
            ),
        ] {
            assert!(classify(&bad).is_err(), "{bad}");
        }
        for skipped in [
            rds(
                SNAPSHOT_EVENT,
                json!({"EventID": "RDS-EVENT-0041", "SourceArn": arn}),
            ),
            rds(
                SNAPSHOT_EVENT,
                json!({"Message": "Deleted manual snapshot"}),
            ),
            rds(
                CLUSTER_SNAPSHOT_EVENT,
                json!({"EventID": "RDS-EVENT-0091", "SourceArn": arn}),
            ),
            rds("RDS DB Instance Event", json!({})),
        ] {
            assert!(
                matches!(classify(&skipped), Ok(EventKind::Ignored { .. })),
                "{skipped}"
            );
        }
    }
}
