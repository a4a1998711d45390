//! A GuardDuty finding (`GuardDuty Finding`): what was seen, on which resource, how bad.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{MAX_TEXT, number_field, parse_time, text_field};
use crate::event::Envelope;
use watchkeeper_shared::state::key_segment;

/// GuardDuty's severity bands: low 1.0–3.9, medium 4.0–6.9, high 7.0–8.9, critical 9.0–10.0.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Band {
    Low,
    Medium,
    High,
    Critical,
}

impl Band {
    pub fn of(severity: f64) -> Self {
        match severity {
            s if s >= 9.0 => Band::Critical,
            s if s >= 7.0 => Band::High,
            s if s >= 4.0 => Band::Medium,
            _ => Band::Low,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Band::Low => "LOW",
            Band::Medium => "MEDIUM",
            Band::High => "HIGH",
            Band::Critical => "CRITICAL",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub id: String,
    pub finding_type: String,
    pub severity: f64,
    pub band: Band,
    pub title: Option<String>,
    pub description: Option<String>,
    /// What the finding is about: `Instance i-0a1b… (des-bastion)`, `AccessKey AKIA… (user)`.
    pub resource: String,
    /// The resource's name alone, for a subject: `des-bastion`, `i-0a1b…`, `AccessKey`.
    pub resource_name: String,
    pub count: Option<u64>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub account: String,
    pub region: String,
    /// Archived findings (by hand or a suppression rule) are not told.
    pub archived: bool,
}

impl Finding {
    /// The finding across its updates, as a state key segment: its account, region and id.
    pub fn key(&self) -> String {
        key_segment(&format!("{}/{}/{}", self.account, self.region, self.id))
    }
}

pub fn from_event(event: &Envelope) -> Result<Finding, String> {
    let d = &event.detail;
    if !d.is_object() {
        return Err("detail is not an object".into());
    }
    let id = text_field(d, "id", 128).ok_or("no finding id")?;
    let finding_type = text_field(d, "type", 255).ok_or("no finding type")?;
    let severity = number_field(d, "severity").ok_or("no numeric severity")?;
    let service = d.get("service").unwrap_or(&Value::Null);
    let (resource, resource_name) = resource(d.get("resource").unwrap_or(&Value::Null));
    let time = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).and_then(parse_time);
    Ok(Finding {
        band: Band::of(severity),
        title: text_field(d, "title", 1024),
        description: text_field(d, "description", MAX_TEXT),
        resource,
        resource_name,
        count: service.get("count").and_then(Value::as_u64),
        first_seen: time(service, "eventFirstSeen"),
        last_seen: time(service, "eventLastSeen"),
        updated_at: time(d, "updatedAt"),
        account: text_field(d, "accountId", 64).unwrap_or_else(|| event.account.clone()),
        region: text_field(d, "region", 32).unwrap_or_else(|| event.region.clone()),
        archived: service
            .get("archived")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        severity,
        finding_type,
        id,
    })
}

/// The resource in one line, by the kinds GuardDuty names most, and its shortest name.
fn resource(r: &Value) -> (String, String) {
    let kind = text_field(r, "resourceType", 64).unwrap_or_else(|| "Resource".into());
    let field = |path: &[&str]| {
        let mut v = r;
        for p in path {
            v = match v {
                Value::Array(items) => items.first().and_then(|i| i.get(p))?,
                _ => v.get(p)?,
            };
        }
        v.as_str().map(|s| super::cut(s.trim(), 255))
    };
    let name_tag = r
        .get("instanceDetails")
        .and_then(|i| i.get("tags"))
        .and_then(Value::as_array)
        .and_then(|tags| {
            tags.iter()
                .find(|t| t.get("key").and_then(Value::as_str) == Some("Name"))
        })
        .and_then(|t| text_field(t, "value", 255));
    let short = name_tag.clone();
    let named = match kind.as_str() {
        "Instance" => field(&["instanceDetails", "instanceId"]).map(|id| match name_tag {
            Some(name) => format!("{id} ({name})"),
            None => id,
        }),
        "AccessKey" => field(&["accessKeyDetails", "accessKeyId"]).map(|key| {
            match field(&["accessKeyDetails", "userName"]) {
                Some(user) => format!("{key} ({user})"),
                None => key,
            }
        }),
        "S3Bucket" => field(&["s3BucketDetails", "name"]),
        "EKSCluster" => field(&["eksClusterDetails", "name"]),
        "ECSCluster" => field(&["ecsClusterDetails", "name"]),
        "RDSDBInstance" => field(&["rdsDbInstanceDetails", "dbInstanceIdentifier"]),
        "Lambda" => field(&["lambdaDetails", "functionName"]),
        _ => None,
    };
    match named {
        Some(name) if !name.is_empty() => {
            let short = short.unwrap_or_else(|| name.clone());
            (format!("{kind} {name}"), short)
        }
        _ => (kind.clone(), short.unwrap_or(kind)),
    }
}
