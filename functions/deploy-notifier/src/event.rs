//! What an invocation payload is: a Function URL request, SNS records, an EventBridge event, or
//! something else. Parsing is lenient where AWS is loose and strict where a field is needed; it
//! never panics, whatever the bytes.

use serde_json::{Map, Value};

pub use watchkeeper_shared::event::SnsRecord;
use watchkeeper_shared::event::sns_records;

use crate::error::DeployError;

/// One invocation, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    FunctionUrl(UrlRequest),
    Sns(Vec<SnsRecord>),
    EventBridge(Envelope),
    /// A JSON object of no known shape: reported as a generic notice, never dropped.
    Unknown(Map<String, Value>),
}

/// An EventBridge event: the envelope fields, and `detail` as it came.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: String,
    pub detail_type: String,
    pub source: String,
    pub account: String,
    pub region: String,
    pub time: String,
    pub resources: Vec<String>,
    pub detail: Value,
}

/// A Lambda Function URL request (payload format 2.0), reduced to what the function uses.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlRequest {
    pub method: String,
    /// Header names lower-cased (Function URLs send them so; others may not).
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub is_base64_encoded: bool,
    pub request_id: String,
    /// Present when the URL uses auth type AWS_IAM and Lambda verified the caller.
    pub iam_caller: Option<String>,
}

impl UrlRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn classify(payload: Value) -> Result<EventKind, DeployError> {
    let Value::Object(object) = payload else {
        return Err(DeployError::Malformed(format!(
            "expected a JSON object, got {}",
            kind_of(&payload)
        )));
    };
    if object
        .get("requestContext")
        .and_then(|c| c.get("http"))
        .is_some()
    {
        return Ok(EventKind::FunctionUrl(url_request(&object)));
    }
    if let Some(records) = sns_records(object.get("Records")) {
        return records.map(EventKind::Sns).map_err(DeployError::Malformed);
    }
    if object.contains_key("detail-type") && object.contains_key("source") {
        return envelope(&Value::Object(object)).map(EventKind::EventBridge);
    }
    Ok(EventKind::Unknown(object))
}

/// Parses an EventBridge event (directly invoked, or the message of an SNS record).
pub fn envelope(value: &Value) -> Result<Envelope, DeployError> {
    let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    let required = |name: &str| {
        text(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            DeployError::Malformed(format!("EventBridge event without a \"{name}\" string"))
        })
    };
    Ok(Envelope {
        id: required("id")?,
        detail_type: required("detail-type")?,
        source: required("source")?,
        account: text("account").unwrap_or_default(),
        region: text("region").unwrap_or_default(),
        time: text("time").unwrap_or_default(),
        resources: value
            .get("resources")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        detail: value.get("detail").cloned().unwrap_or(Value::Null),
    })
}

fn url_request(object: &Map<String, Value>) -> UrlRequest {
    let context = object.get("requestContext");
    let method = context
        .and_then(|c| c.get("http"))
        .and_then(|h| h.get("method"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_uppercase();
    let headers = object
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .filter_map(|(name, value)| {
                    value
                        .as_str()
                        .map(|v| (name.to_ascii_lowercase(), v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    let iam_caller = context
        .and_then(|c| c.get("authorizer"))
        .and_then(|a| a.get("iam"))
        .and_then(|iam| iam.get("userArn").or_else(|| iam.get("callerId")))
        .and_then(Value::as_str)
        .map(str::to_string);
    UrlRequest {
        method,
        headers,
        body: object
            .get("body")
            .and_then(Value::as_str)
            .map(str::to_string),
        is_base64_encoded: object
            .get("isBase64Encoded")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        request_id: context
            .and_then(|c| c.get("requestId"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        iam_caller,
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_are_told_apart() {
        let url = json!({"version": "2.0", "requestContext": {"http": {"method": "post"}, "requestId": "r1"}, "headers": {"X-Watchkeeper-Timestamp": "1"}, "body": "{}"});
        let Ok(EventKind::FunctionUrl(request)) = classify(url) else {
            panic!("not a URL request")
        };
        assert_eq!(request.method, "POST");
        assert_eq!(request.header("x-watchkeeper-timestamp"), Some("1"));

        let sns = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": "m1", "TopicArn": "t", "Message": "hello"}}]});
        assert!(
            matches!(classify(sns), Ok(EventKind::Sns(records)) if records[0].message == "hello")
        );

        let eb = json!({"id": "e1", "detail-type": "X", "source": "aws.ecs", "detail": {}});
        assert!(matches!(classify(eb), Ok(EventKind::EventBridge(e)) if e.id == "e1"));

        assert!(matches!(
            classify(json!({"hello": 1})),
            Ok(EventKind::Unknown(_))
        ));
        assert!(matches!(
            classify(json!([1, 2])),
            Err(DeployError::Malformed(_))
        ));
        assert!(matches!(
            classify(json!({"id": 5, "detail-type": "X", "source": "s"})),
            Err(DeployError::Malformed(_))
        ));
        assert!(matches!(
            classify(json!({"Records": [{"Sns": {"MessageId": "m"}}]})),
            Err(DeployError::Malformed(_))
        ));
    }
}
