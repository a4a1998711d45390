//! Names the AWS operation of a request recorded by moto (`/moto-api/recorder`), so benchmarks
//! can count the calls a function makes per event.

use base64::Engine;
use serde_json::Value;

/// `service:Operation` for one recorded request: the service from the SigV4 credential scope,
/// the operation from `X-Amz-Target` (JSON protocols), `Action=` (query protocols), or the
/// method and path (REST: S3, SES v2).
pub fn operation(entry: &Value) -> String {
    let header = |name: &str| {
        entry["headers"].as_object().and_then(|headers| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str())
        })
    };
    let service = header("authorization")
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|scope| scope.split('/').nth(3))
        .unwrap_or("unknown")
        .to_string();
    if let Some(target) = header("x-amz-target") {
        let op = target.rsplit('.').next().unwrap_or(target);
        return format!("{service}:{op}");
    }
    let body = body_text(entry);
    if let Some(action) = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
    {
        return format!("{service}:{action}");
    }
    let method = entry["method"].as_str().unwrap_or_default();
    let url = entry["url"].as_str().unwrap_or_default();
    let target = url
        .split_once("://")
        .map(|(_, rest)| rest.split_once('/').map(|(_, p)| p).unwrap_or(""))
        .unwrap_or(url);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if let Some(action) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
    {
        return format!("{service}:{action}");
    }
    if service == "ses" && path.contains("outbound-emails") {
        return "ses:SendEmail".into();
    }
    if service == "s3" {
        let conditional = header("if-none-match").is_some() || header("if-match").is_some();
        let op = match method {
            "GET" if query.contains("list-type") => "ListObjectsV2",
            "GET" => "GetObject",
            "HEAD" => "HeadObject",
            "PUT" if conditional => "PutObject (conditional)",
            "PUT" => "PutObject",
            "DELETE" => "DeleteObject",
            other => other,
        };
        return format!("s3:{op}");
    }
    format!("{service}:{method} /{path}")
}

pub fn body_text(entry: &Value) -> String {
    let body = entry["body"].as_str().unwrap_or_default();
    if entry["body_encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    } else {
        body.to_string()
    }
}
