//! The CI "apply finished" report POSTed to the Function URL: its signature, its body, and the
//! notification it becomes.
//!
//! Signature: `X-Watchkeeper-Timestamp: <unix seconds>` and
//! `X-Watchkeeper-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`. The
//! timestamp inside the MAC bounds a captured request's life to the window; a claim on the
//! signature makes it single-use inside the window.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use watchkeeper_shared::notify::{Notification, Severity};
use watchkeeper_shared::secret::Secret;

use crate::ecs::render::env_prefix;

pub mod function_url;
pub mod signing_key;

pub const TIMESTAMP_HEADER: &str = "x-watchkeeper-timestamp";
pub const SIGNATURE_HEADER: &str = "x-watchkeeper-signature";

/// Why a request's signature was refused (the 401 reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("{TIMESTAMP_HEADER} must be a Unix time in seconds")]
    BadTimestamp,
    #[error("timestamp outside the accepted window; check the sender's clock")]
    Stale,
    #[error("{SIGNATURE_HEADER} must be sha256=<64 hex digits>")]
    BadFormat,
    #[error("signature does not match")]
    Mismatch,
}

/// A verified signature. Only a digest of it is kept: it names the replay claim without
/// putting the signature itself in a key, a log or an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    pub digest: String,
}

/// Checks the signature headers against the raw body with each of `keys` (the current and the
/// previous key while a rotation settles). `now` in Unix seconds.
pub fn verify_signature(
    keys: &[Secret<Vec<u8>>],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    window_seconds: i64,
) -> Result<VerifiedSignature, SignatureError> {
    let timestamp = timestamp
        .ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?
        .trim();
    let signature = signature
        .ok_or(SignatureError::Missing(SIGNATURE_HEADER))?
        .trim();
    let sent_at: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if now.abs_diff(sent_at) > window_seconds.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let hex_digits = signature
        .strip_prefix("sha256=")
        .ok_or(SignatureError::BadFormat)?;
    let given = hex::decode(hex_digits).map_err(|_| SignatureError::BadFormat)?;
    if given.len() != 32 {
        return Err(SignatureError::BadFormat);
    }
    let matches = |key: &Secret<Vec<u8>>| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.expose()) else {
            return false;
        };
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        // verify_slice compares in constant time.
        mac.verify_slice(&given).is_ok()
    };
    if !keys.iter().any(matches) {
        return Err(SignatureError::Mismatch);
    }
    Ok(VerifiedSignature {
        digest: hex::encode(&Sha256::digest(&given)[..16]),
    })
}

/// Signs like a CI job would (used by tests, the demo and documentation examples).
pub fn sign(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(), // HMAC takes keys of any length; unreachable in practice.
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyStatus {
    Success,
    Failure,
}

/// One `terraform apply` run, as CI reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyReport {
    pub project: String,
    pub environment: String,
    pub status: ApplyStatus,
    pub commit: Option<String>,
    pub actor: Option<String>,
    pub run_url: Option<String>,
    /// Terraform outputs, rendered as text; sensitive ones masked.
    pub outputs: BTreeMap<String, String>,
    /// The sender's id for this report (a run id + attempt), for dedupe across re-sent requests.
    pub id: Option<String>,
}

const MAX_FIELD_CHARS: usize = 512;
const MAX_OUTPUTS: usize = 100;

/// Parses and checks the body; the error is the 400 reason.
pub fn parse_report(body: &[u8]) -> Result<ApplyReport, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err("body must be a JSON object".into());
    };
    let text = |name: &str| -> Result<Option<String>, String> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.chars().count() > MAX_FIELD_CHARS => Err(format!(
                "\"{name}\" is longer than {MAX_FIELD_CHARS} characters"
            )),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Some(Value::Number(n)) if name == "id" => Ok(Some(n.to_string())),
            Some(_) => Err(format!("\"{name}\" must be a string")),
        }
    };
    let required =
        |name: &str| text(name)?.ok_or_else(|| format!("missing required field \"{name}\""));
    let status = match required("status")?.to_ascii_lowercase().as_str() {
        "success" | "succeeded" => ApplyStatus::Success,
        "failure" | "failed" => ApplyStatus::Failure,
        _ => return Err("\"status\" must be \"success\" or \"failure\"".into()),
    };
    let run_url = text("run_url")?;
    if let Some(url) = &run_url
        && web_link(url).is_none()
    {
        return Err(
            "\"run_url\" must be an http(s) URL with a host, without spaces, quotes or credentials"
                .into(),
        );
    }
    Ok(ApplyReport {
        project: required("project")?,
        environment: required("environment")?,
        status,
        commit: text("commit")?,
        actor: text("actor")?,
        run_url,
        outputs: outputs(fields.get("outputs"))?,
        id: text("id")?,
    })
}

/// Accepts a flat map (`{"alb_dns_name": "..."}`) or the shape of `terraform output -json`
/// (`{"alb_dns_name": {"value": "...", "sensitive": false}}`); sensitive values are never shown.
fn outputs(value: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    let map = match value {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err("\"outputs\" must be an object".into()),
    };
    if map.len() > MAX_OUTPUTS {
        return Err(format!("\"outputs\" has more than {MAX_OUTPUTS} entries"));
    }
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let terraform_shape = value.as_object().filter(|o| o.contains_key("value"));
        let rendered = match terraform_shape {
            Some(o) if o.get("sensitive").and_then(Value::as_bool) == Some(true) => {
                "(sensitive)".to_string()
            }
            Some(o) => render_value(o.get("value").unwrap_or(&Value::Null)),
            None => render_value(value),
        };
        let rendered: String = rendered.chars().take(MAX_FIELD_CHARS).collect();
        out.insert(name.chars().take(128).collect(), rendered);
    }
    Ok(out)
}

fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An output worth a link: a URL as is, an ALB/ELB DNS name over HTTP.
fn output_link(value: &str) -> Option<String> {
    if let Some(url) = web_link(value) {
        Some(url.to_string())
    } else if value.ends_with(".elb.amazonaws.com") && !value.contains(['/', '?', '#', ':']) {
        // A bare DNS name only: `evil.example/x.elb.amazonaws.com` is a path, not an ELB host.
        web_link(&format!("http://{value}")).map(str::to_string)
    } else {
        None
    }
}

/// `value` if it is a link a message may carry: `http://` or `https://`, a host of letters,
/// digits, dots and hyphens (a port after a colon), no credentials, and only printable ASCII
/// that needs no escaping in HTML, Markdown or chat markup (no spaces, quotes, angle brackets,
/// backticks, braces or backslashes). Whatever the sender put there is shown as a link to people.
fn web_link(value: &str) -> Option<&str> {
    const LONGEST: usize = 2048;
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))?;
    let printable = value.chars().all(|c| {
        c.is_ascii_graphic()
            && !matches!(
                c,
                '"' | '\'' | '<' | '>' | '`' | '\\' | '{' | '}' | '|' | '^'
            )
    });
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        && !host.starts_with(['.', '-']);
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    (value.len() <= LONGEST && printable && host_ok && port_ok).then_some(value)
}

pub fn report_notification(report: &ApplyReport) -> Notification {
    let (word, severity) = match report.status {
        ApplyStatus::Success => ("SUCCEEDED", Severity::Info),
        ApplyStatus::Failure => ("FAILED", Severity::Critical),
    };
    let short_commit = report
        .commit
        .as_deref()
        .map(|c| c.chars().take(7).collect::<String>());
    let subject = format!(
        "{}{} terraform apply {word}{}",
        env_prefix(Some(&report.environment)),
        report.project,
        short_commit
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default()
    );
    let mut text = String::new();
    let mut row = |label: &str, value: &str| {
        let _ = writeln!(text, "{:<12} {value}", format!("{label}:"));
    };
    row("Project", &report.project);
    row("Environment", &report.environment);
    row("Status", word);
    row("Commit", report.commit.as_deref().unwrap_or("(not given)"));
    row("Actor", report.actor.as_deref().unwrap_or("(not given)"));
    if let Some(url) = &report.run_url {
        row("CI run", url);
    }
    if !report.outputs.is_empty() {
        let _ = writeln!(text, "\nOutputs:");
        for (name, value) in &report.outputs {
            let _ = writeln!(text, "  {name} = {value}");
        }
    }
    let mut n = Notification::new(crate::NAME, severity, subject, text)
        .with_resource(report.project.clone())
        .with_attribute("environment", report.environment.clone())
        .with_attribute("status", word);
    if let Some(url) = &report.run_url {
        n = n.with_link("CI run", url.clone());
    }
    for (name, value) in &report.outputs {
        if let Some(url) = output_link(value) {
            n = n.with_link(name.clone(), url);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_790_000_000;

    fn key() -> Secret<Vec<u8>> {
        Secret::new(b"test-signing-key".to_vec())
    }

    #[test]
    fn any_of_the_keys_may_have_signed() {
        let body = b"{}";
        let signature = sign(b"previous-key", NOW, body);
        let ts = NOW.to_string();
        let keys = [key(), Secret::new(b"previous-key".to_vec())];
        assert!(verify_signature(&keys, Some(&ts), Some(&signature), body, NOW, 300).is_ok());
        assert_eq!(
            verify_signature(&keys[..1], Some(&ts), Some(&signature), body, NOW, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(&[], Some(&ts), Some(&signature), body, NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signatures_verify_only_when_everything_matches() {
        let body = br#"{"project":"p"}"#;
        let good = sign(b"test-signing-key", NOW, body);
        let ts = NOW.to_string();
        assert!(verify_signature(&[key()], Some(&ts), Some(&good), body, NOW + 10, 300).is_ok());
        assert_eq!(
            verify_signature(&[key()], None, Some(&good), body, NOW, 300),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify_signature(&[key()], Some(&ts), None, body, NOW, 300),
            Err(SignatureError::Missing(SIGNATURE_HEADER))
        );
        // Each side of the 300 s window.
        for edge in [NOW + 300, NOW - 300] {
            assert!(verify_signature(&[key()], Some(&ts), Some(&good), body, edge, 300).is_ok());
        }
        assert_eq!(
            verify_signature(&[key()], Some(&ts), Some(&good), body, NOW + 301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(&[key()], Some(&ts), Some(&good), body, NOW - 301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(&[key()], Some(&ts), Some(&good), b"{}", NOW, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(&[key()], Some("x"), Some(&good), body, NOW, 300),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify_signature(&[key()], Some(&ts), Some("md5=00"), body, NOW, 300),
            Err(SignatureError::BadFormat)
        );
        let other_key = sign(b"other", NOW, body);
        assert_eq!(
            verify_signature(&[key()], Some(&ts), Some(&other_key), body, NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn signing_matches_the_readme_openssl_recipe() {
        // printf '%s.%s' 1790000000 '{"project":"p"}' | openssl dgst -sha256 -hmac test-signing-key
        assert_eq!(
            sign(b"test-signing-key", 1_790_000_000, br#"{"project":"p"}"#),
            "sha256=219b1ef05191608aa58b45bae73d91fc671ecec17e3d22e6fd273f1e0f2e0a82"
        );
    }

    #[test]
    fn the_digest_does_not_reveal_the_signature() {
        let body = b"{}";
        let signature = sign(b"test-signing-key", NOW, body);
        let verified = verify_signature(
            &[key()],
            Some(&NOW.to_string()),
            Some(&signature),
            body,
            NOW,
            300,
        )
        .unwrap();
        assert!(!signature.contains(&verified.digest));
        assert_eq!(verified.digest.len(), 32);
    }

    #[test]
    fn reports_parse_with_terraform_outputs() {
        let body = br#"{"project":"despachos","environment":"prod","status":"success","commit":"0123456789abcdef","actor":"ana",
            "run_url":"https://ci.example.com/runs/42",
            "outputs":{"alb_dns_name":{"value":"des-alb-1.us-east-1.elb.amazonaws.com","type":"string","sensitive":false},
                       "db_password":{"value":"hunter2","sensitive":true},
                       "ports":{"value":[80,443]}}}"#;
        let report = parse_report(body).unwrap();
        assert_eq!(report.outputs["db_password"], "(sensitive)");
        assert_eq!(report.outputs["ports"], "[80,443]");
        let n = report_notification(&report);
        assert_eq!(
            n.subject,
            "[prod] despachos terraform apply SUCCEEDED (0123456)"
        );
        assert!(!n.text.contains("hunter2"));
        assert!(
            n.links
                .iter()
                .any(|l| l.url == "http://des-alb-1.us-east-1.elb.amazonaws.com")
        );
        assert!(n.links.iter().any(|l| l.label == "CI run"));
    }

    #[test]
    fn bad_reports_say_what_is_wrong() {
        assert!(
            parse_report(b"not json")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert_eq!(
            parse_report(b"[]").unwrap_err(),
            "body must be a JSON object"
        );
        assert_eq!(
            parse_report(br#"{"environment":"p","status":"success"}"#).unwrap_err(),
            "missing required field \"project\""
        );
        assert!(
            parse_report(br#"{"project":"p","environment":"p","status":"maybe"}"#)
                .unwrap_err()
                .contains("status")
        );
        assert!(
            parse_report(br#"{"project":1,"environment":"p","status":"success"}"#)
                .unwrap_err()
                .contains("must be a string")
        );
        assert!(
            parse_report(
                br#"{"project":"p","environment":"p","status":"success","run_url":"javascript:x"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn links_are_parsed_not_matched_by_prefix() {
        for good in [
            "https://ci.example.com/runs/42",
            "http://ci.example.com:8080/job/7?x=1#log",
            "https://gitlab.example.com/des/api/-/pipelines/9",
        ] {
            assert_eq!(web_link(good), Some(good), "{good}");
        }
        for bad in [
            "javascript:x",
            "https://",
            "https:///path",
            "https://ci.example.com/a b",
            "https://ci.example.com/\nSubject: forged",
            "https://ci.example.com/\"onmouseover=x",
            "https://ci.example.com/<script>",
            "https://user:password@ci.example.com/",
            "https://user@ci.example.com/",
            "https://ci.example.com:port/",
            "https://-host/",
            "https://ci.exámple.com/",
        ] {
            assert_eq!(web_link(bad), None, "{bad:?}");
        }
        assert_eq!(
            output_link("my-alb-123.us-east-1.elb.amazonaws.com").as_deref(),
            Some("http://my-alb-123.us-east-1.elb.amazonaws.com")
        );
        assert_eq!(output_link("my alb.elb.amazonaws.com"), None);
        assert_eq!(output_link("evil.example/x.elb.amazonaws.com"), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_report(&body);
            let _ = verify_signature(&[key()], Some("1"), Some("sha256=00"), &body, NOW, 300);
        }
    }
}
