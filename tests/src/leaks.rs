//! The secret-leak check: everything a function let out during a test (its log lines, the errors
//! it returned, the emails, SNS messages and webhook bodies it sent) is scanned for every
//! password, token, webhook URL, signing key and signature the test used. Any hit fails the test.
//!
//! A secret is looked for as written and in the encodings it would take on its way out: escaped
//! inside a JSON string, base64 (an email body or a raw MIME part) and percent-encoded (a URL).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use watchkeeper_shared::notify::percent_encode;

use crate::http::HttpServer;
use crate::lambda::LambdaRuntime;
use crate::moto::{Moto, SnsEnvelope};

pub mod guard;

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
    forms.push(percent_encode(secret));
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
            let headers: Vec<String> = r.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
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
