//! The automatic check every test gets. Each emulator, when its test drops it, reads every
//! secret stored in its Secrets Manager (passwords, keys, webhook URLs, API keys, whole values)
//! and scans what it was sent (SES, SNS, SQS) and what every function process that used it
//! printed and answered (registered by [`crate::lambda::LambdaRuntime`] and
//! [`crate::runtime_api::FunctionProcess`] when they stop), plus the request signatures the
//! runtime carried. A hit fails the test that leaked, as an assertion in its body would. Loopback servers ([`crate::http::HttpServer`]) register
//! what they were sent too, scanned against the secrets of every emulator of the test binary.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::{Outbound, assert_no_secrets};
use crate::lock;

#[derive(Default)]
struct Evidence {
    /// Known once the emulator has stopped.
    stored: Option<Vec<String>>,
    /// Secrets the runtimes saw go in (request signatures).
    extra: Vec<String>,
    /// Texts not yet scanned.
    pending: Vec<Outbound>,
}

static EVIDENCE: Mutex<BTreeMap<String, Evidence>> = Mutex::new(BTreeMap::new());
/// Every secret of every emulator stopped so far in this test binary, and texts that belong
/// to no emulator (what loopback webhook receivers were sent): scanned against all of them,
/// since no test's secret belongs in any webhook.
static ALL_STORED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static UNOWNED: Mutex<Vec<Outbound>> = Mutex::new(Vec::new());
/// Proxies in front of an emulator: their endpoint names the emulator's.
static ALIASES: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

fn canonical(endpoint: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/').to_string();
    lock(&ALIASES).get(&endpoint).cloned().unwrap_or(endpoint)
}

/// `proxy` forwards to the emulator at `emulator`.
pub fn alias(proxy: &str, emulator: &str) {
    lock(&ALIASES).insert(
        proxy.trim_end_matches('/').into(),
        emulator.trim_end_matches('/').into(),
    );
}

/// The AWS endpoint a function's environment points at.
pub fn endpoint_of(env: &[(String, String)]) -> Option<String> {
    env.iter()
        .rev()
        .find(|(k, _)| k == "AWS_ENDPOINT_URL")
        .map(|(_, v)| v.clone())
}

/// Secrets that went into a function (a signature header) and must not come out.
pub fn secret_used(endpoint: &str, secret: &str) {
    if secret.len() >= super::SHORTEST_SECRET {
        let mut all = lock(&EVIDENCE);
        all.entry(canonical(endpoint))
            .or_default()
            .extra
            .push(secret.to_string());
    }
}

/// Texts a function let out; scanned now if the emulator has stopped, else when it does.
pub fn texts(endpoint: &str, texts: Vec<Outbound>) {
    let key = canonical(endpoint);
    let ready = {
        let mut all = lock(&EVIDENCE);
        let entry = all.entry(key).or_default();
        match &entry.stored {
            Some(stored) => {
                let mut secrets = stored.clone();
                secrets.extend(entry.extra.iter().cloned());
                Some(secrets)
            }
            None => {
                entry.pending.extend(texts.iter().cloned());
                None
            }
        }
    };
    if let Some(secrets) = ready {
        check(&secrets, &texts);
    }
}

/// Texts tied to no emulator (a loopback server's requests), scanned against the secrets of
/// every emulator stopped so far and of every one that stops later.
pub fn texts_unowned(texts: Vec<Outbound>) {
    if texts.is_empty() {
        return;
    }
    let secrets = lock(&ALL_STORED).clone();
    check(&secrets, &texts);
    lock(&UNOWNED).extend(texts);
}

/// Called by the emulator as it stops: reads its secrets and what it was sent, and scans.
pub fn emulator_stopping(endpoint: &str) {
    let Some(data) = model_data(endpoint) else {
        // The emulator cannot dump models with RDS resources in them; tests of functions
        // that hold no secrets scan their notifications explicitly.
        lock(&EVIDENCE).remove(&canonical(endpoint));
        return;
    };
    let mut stored = Vec::new();
    collect_secrets(&data["secretsmanager"], false, &mut stored);
    stored.sort();
    stored.dedup();
    let mut texts = Vec::new();
    for service in ["ses", "sesv2", "sns", "sqs"] {
        if let Some(models) = data.get(service) {
            texts.push(Outbound::new(
                format!("what {service} was sent"),
                models.to_string(),
            ));
        }
    }
    let (secrets, pending) = {
        let mut all = lock(&EVIDENCE);
        let entry = all.entry(canonical(endpoint)).or_default();
        entry.stored = Some(stored.clone());
        let mut secrets = stored;
        secrets.extend(entry.extra.iter().cloned());
        (secrets, std::mem::take(&mut entry.pending))
    };
    texts.extend(pending);
    texts.extend(lock(&UNOWNED).iter().cloned());
    lock(&ALL_STORED).extend(secrets.iter().cloned());
    check(&secrets, &texts);
}

fn check(secrets: &[String], texts: &[Outbound]) {
    if std::thread::panicking() || secrets.is_empty() {
        return;
    }
    let refs: Vec<&str> = secrets
        .iter()
        .map(String::as_str)
        .filter(|s| s.len() >= super::SHORTEST_SECRET)
        .collect();
    assert_no_secrets(&refs, texts);
}

/// Secret values (`secret_string` in moto's models) and, inside JSON values, every string
/// field that is a credential or a URL.
fn collect_secrets(value: &Value, under_secret: bool, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let is_value = matches!(key.as_str(), "secret_string" | "SecretString");
                collect_secrets(child, under_secret || is_value, out);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| collect_secrets(v, under_secret, out)),
        Value::String(text) if under_secret => {
            out.push(text.clone());
            if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) {
                for (name, field) in fields {
                    let credential = ["password", "key", "token", "secret", "url"]
                        .iter()
                        .any(|word| name.to_ascii_lowercase().contains(word));
                    if let (true, Some(field)) = (credential && name != "key_field", field.as_str())
                    {
                        out.push(field.to_string());
                    }
                }
            }
        }
        _ => {}
    }
}

/// `GET /moto-api/data.json`, blocking (this runs in `Drop`).
fn model_data(endpoint: &str) -> Option<Value> {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    write!(
        stream,
        "GET /moto-api/data.json HTTP/1.0\r\nHost: {addr}\r\n\r\n"
    )
    .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    if !answer.starts_with(b"HTTP/1.1 200") && !answer.starts_with(b"HTTP/1.0 200") {
        return None;
    }
    serde_json::from_slice(&answer[end + 4..]).ok()
}
