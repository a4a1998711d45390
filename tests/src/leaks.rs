//! The secret-leak check: everything a function let out during a test (its log lines, the errors
//! it returned, the emails, SNS messages and webhook bodies it sent) is scanned for every
//! password, token, webhook URL, signing key and signature the test used. Any hit fails the test.
//!
//! A secret is looked for as written and in the encodings it would take on its way out: escaped
//! inside a JSON string, base64 (an email body or a raw MIME part) and percent-encoded (a URL).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::http::HttpServer;
use crate::lambda::LambdaRuntime;
use crate::moto::{Moto, SnsEnvelope};

/// Something a function let out, and where it was seen (for the failure message).
#[derive(Debug, Clone)]
pub struct Outbound {
    pub place: String,
    pub text: String,
}

impl Outbound {
    pub fn new(place: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            place: place.into(),
            text: text.into(),
        }
    }
}

/// Secrets shorter than this would match by accident; a test that passes one is wrong.
const SHORTEST_SECRET: usize = 8;

/// Fails (panics, as an assertion does) when any of `secrets` shows in any of `texts`. Returns
/// how many (secret form, text) pairs were scanned, so callers can count the evidence.
pub fn assert_no_secrets(secrets: &[&str], texts: &[Outbound]) -> usize {
    let mut scanned = 0;
    let mut hits = Vec::new();
    for secret in secrets {
        assert!(
            secret.len() >= SHORTEST_SECRET,
            "secret {:?}... is too short to scan for without false hits",
            secret.chars().take(2).collect::<String>()
        );
        for form in forms(secret) {
            for out in texts {
                scanned += 1;
                if out.text.contains(&form) {
                    hits.push(format!(
                        "a secret (starting {:?}) shows in {}",
                        secret.chars().take(4).collect::<String>(),
                        out.place
                    ));
                }
            }
        }
    }
    hits.dedup();
    assert!(hits.is_empty(), "secrets leaked:\n{}", hits.join("\n"));
    scanned
}

/// The forms a secret takes on the way out.
fn forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_string()];
    let json = serde_json::to_string(secret).unwrap_or_default();
    forms.push(json.trim_matches('"').to_string());
    forms.push(STANDARD.encode(secret).trim_end_matches('=').to_string());
    let percent: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    forms.push(percent);
    forms.sort();
    forms.dedup();
    forms
}

/// What left through the emulator: every email SES accepted, every SNS message published and
/// every SQS message queued (the SNS deliveries to subscribed queues).
///
/// The emulator cannot dump its models with RDS resources in them (`data.json` answers 500):
/// then nothing is returned from here, and the test scans the SNS messages it drained
/// ([`from_notifications`]) instead.
pub async fn from_moto(moto: &Moto) -> crate::Result<Vec<Outbound>> {
    let Ok(data) = moto.model_data().await else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for service in ["ses", "sesv2", "sns", "sqs"] {
        if let Some(models) = data.get(service) {
            out.push(Outbound::new(
                format!("what {service} was sent"),
                models.to_string(),
            ));
        }
    }
    for (i, email) in moto.sent_emails().await?.into_iter().enumerate() {
        out.push(Outbound::new(
            format!("email {i} (decoded)"),
            format!("{}\n{}\n{}", email.subject, email.text, email.html),
        ));
    }
    Ok(out)
}

/// SNS messages as a subscriber received them.
pub fn from_notifications(messages: &[SnsEnvelope]) -> Vec<Outbound> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Outbound::new(
                format!("SNS message {i}"),
                format!("{}\n{}\n{:?}", m.subject, m.message, m.attributes),
            )
        })
        .collect()
}

/// What a function printed and returned through the Lambda runtime: its log lines (JSON logs and
/// EMF) and every invocation's answer or error report.
pub fn from_runtime(runtime: &LambdaRuntime) -> Vec<Outbound> {
    let mut out = vec![Outbound::new("the function's log", runtime.logs())];
    for (i, answer) in runtime.answers().into_iter().enumerate() {
        out.push(Outbound::new(format!("invocation {i}'s answer"), answer));
    }
    out
}

/// What a loopback server (a webhook receiver) was sent: headers and bodies. Not the request
/// line: a webhook's URL is its secret, and the receiver it names is the one place it belongs.
pub fn from_server(name: &str, server: &HttpServer) -> Vec<Outbound> {
    server
        .requests()
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let headers: Vec<String> = r
                .headers
                .iter()
                .map(|(n, v)| format!("{n}: {v}"))
                .collect();
            Outbound::new(
                format!("{name} request {i}"),
                format!(
                    "{}\n{}",
                    headers.join("\n"),
                    String::from_utf8_lossy(&r.body)
                ),
            )
        })
        .collect()
}

/// Errors and messages a test got back from in-process calls (`Display` and `Debug` both).
pub fn from_errors<E: std::fmt::Display + std::fmt::Debug>(
    place: &str,
    errors: &[E],
) -> Vec<Outbound> {
    errors
        .iter()
        .enumerate()
        .map(|(i, e)| Outbound::new(format!("{place} {i}"), format!("{e}\n{e:?}")))
        .collect()
}

/// The common case: scans the emulator, the runtime (when there is one) and the servers.
pub async fn assert_none_leaked(
    secrets: &[&str],
    moto: &Moto,
    runtime: Option<&LambdaRuntime>,
    servers: &[(&str, &HttpServer)],
) -> usize {
    let mut texts = from_moto(moto).await.unwrap_or_else(|e| {
        panic!("could not read what the emulator was sent: {e}");
    });
    if let Some(runtime) = runtime {
        texts.extend(from_runtime(runtime));
    }
    for (name, server) in servers {
        texts.extend(from_server(name, server));
    }
    assert_no_secrets(secrets, &texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_secret_in_any_of_its_forms() {
        let secret = "p@ss/word:1234\"x";
        for text in [
            "plain p@ss/word:1234\"x here".to_string(),
            format!("json {}", serde_json::json!({ "v": secret })),
            format!("b64 {}", STANDARD.encode(secret)),
            "url p%40ss%2Fword%3A1234%22x".to_string(),
        ] {
            let result = std::panic::catch_unwind(|| {
                assert_no_secrets(&[secret], &[Outbound::new("t", text.clone())])
            });
            assert!(result.is_err(), "missed the secret in {text}");
        }
        assert!(assert_no_secrets(&[secret], &[Outbound::new("t", "nothing")]) > 0);
    }
}

/// The automatic check every test gets. Each emulator, when its test drops it, reads every
/// secret stored in its Secrets Manager (passwords, keys, webhook URLs, API keys, whole values)
/// and scans what it was sent (SES, SNS, SQS) and what every function process that used it
/// printed and answered (registered by [`crate::lambda::LambdaRuntime`] and
/// [`crate::runtime_api::FunctionProcess`] when they stop), plus the request signatures the
/// runtime carried. A hit fails the test that leaked, as an assertion in its body would.
pub mod guard {
    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    use std::sync::Mutex;
    use std::time::Duration;

    use serde_json::Value;

    use super::{Outbound, assert_no_secrets};

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

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn canonical(endpoint: &str) -> String {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        lock(&ALIASES).get(&endpoint).cloned().unwrap_or(endpoint)
    }

    /// `proxy` forwards to the emulator at `emulator`.
    pub fn alias(proxy: &str, emulator: &str) {
        lock(&ALIASES).insert(proxy.trim_end_matches('/').into(), emulator.trim_end_matches('/').into());
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
            all.entry(canonical(endpoint)).or_default().extra.push(secret.to_string());
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
                texts.push(Outbound::new(format!("what {service} was sent"), models.to_string()));
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
            Value::Array(items) => items.iter().for_each(|v| collect_secrets(v, under_secret, out)),
            Value::String(text) if under_secret => {
                out.push(text.clone());
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) {
                    for (name, field) in fields {
                        let credential = ["password", "key", "token", "secret", "url"]
                            .iter()
                            .any(|word| name.to_ascii_lowercase().contains(word));
                        if let (true, Some(field)) = (credential && name != "key_field", field.as_str()) {
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
        stream.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
        write!(stream, "GET /moto-api/data.json HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).ok()?;
        let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
        if !answer.starts_with(b"HTTP/1.1 200") && !answer.starts_with(b"HTTP/1.0 200") {
            return None;
        }
        serde_json::from_slice(&answer[end + 4..]).ok()
    }
}
