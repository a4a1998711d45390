//! The secret-leak check: everything a function let out during a test (its log lines, the errors
//! it returned, the emails, SNS messages and webhook bodies it sent) is scanned for every
//! password, token, webhook URL, signing key and signature the test used. Any hit fails the test.
//!
//! Each text is decoded before it is scanned ([`decode::readings`]): raw MIME email, JSON string
//! escapes (twice for an SNS message delivered to SQS), base64 at any alignment and across line
//! breaks, quoted-printable, percent and form encoding, HTML references. A secret is looked for
//! as written in the text and in each of its decodings, so it is found whatever encoding it took.
//!
//! What the emulator holds and was sent is read from its launcher
//! (`tests/emulator/moto_server.py`, [`SENT_ROUTE`]); a failure to read it fails the check.

use serde_json::Value;
use watchkeeper_shared::notify::Notification;

use crate::http::HttpServer;
use crate::lambda::LambdaRuntime;
use crate::moto::{Moto, SnsEnvelope};
use crate::{Result, fail};

pub mod decode;
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

/// Fails (panics, as an assertion does) when any of `secrets` shows in any of `texts`, as written
/// or in any decoding of them. Returns how many (secret, reading) pairs were scanned, so callers
/// can count the evidence.
pub fn assert_no_secrets(secrets: &[&str], texts: &[Outbound]) -> usize {
    for secret in secrets {
        assert!(
            secret.len() >= SHORTEST_SECRET,
            "secret {:?}... is too short to scan for without false hits",
            secret.chars().take(2).collect::<String>()
        );
    }
    let mut scanned = 0;
    let mut hits = Vec::new();
    for out in texts {
        let readings = decode::readings(&out.text);
        for secret in secrets {
            scanned += readings.len();
            if let Some(reading) = readings.iter().find(|r| r.text.contains(secret)) {
                // The report names the secret by its first characters only: a failure message
                // is itself output that must not repeat a secret.
                hits.push(format!(
                    "a secret (starting {:?}) shows in {} ({})",
                    secret.chars().take(4).collect::<String>(),
                    out.place,
                    reading.how
                ));
            }
        }
    }
    hits.dedup();
    assert!(hits.is_empty(), "secrets leaked:\n{}", hits.join("\n"));
    scanned
}

/// The path, on the emulator, of what it holds and was sent: served by the project's launcher
/// (`tests/emulator/moto_server.py`) from moto's in-memory backends. moto's own model dump
/// (`/moto-api/data.json`) is no substitute: it answers 500 once RDS resources exist.
pub const SENT_ROUTE: &str = "/_watchkeeper/sent";

/// What the emulator holds and was sent, as [`SENT_ROUTE`] reports it.
#[derive(Debug, Clone, Default)]
pub struct EmulatorReport {
    /// Secrets Manager values (every version, and the credential fields of JSON values) and RDS
    /// master passwords.
    pub secrets: Vec<String>,
    /// Every email SES accepted (raw MIME as sent), every SNS message published (to topics,
    /// endpoints and phone numbers) and every SQS message still queued (SNS deliveries
    /// included).
    pub sent: Vec<Outbound>,
}

impl EmulatorReport {
    /// Reads the route's JSON answer.
    pub fn from_json(body: &[u8]) -> Result<Self> {
        let report: Value = serde_json::from_slice(body)
            .map_err(|e| format!("{SENT_ROUTE} answered something that is not JSON: {e}"))?;
        let (Some(secrets), Some(sent)) = (report["secrets"].as_array(), report["sent"].as_array())
        else {
            return fail(format!(
                "{SENT_ROUTE} answered without \"secrets\" and \"sent\": {}",
                cut(&report.to_string())
            ));
        };
        let mut stored = Vec::new();
        for secret in secrets.iter().filter_map(Value::as_str) {
            stored.extend(secret_and_its_credentials(secret));
        }
        stored.sort();
        stored.dedup();
        let sent = sent
            .iter()
            .map(|item| {
                Outbound::new(
                    item["place"].as_str().unwrap_or("the emulator"),
                    item["text"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        Ok(Self {
            secrets: stored,
            sent,
        })
    }
}

/// A stored secret value and, when it is a JSON object, every string field that is a
/// credential or a URL (a rotation secret's password, a webhook secret's URL).
fn secret_and_its_credentials(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(value) {
        for (name, field) in fields {
            let credential = ["password", "key", "token", "secret", "url"]
                .iter()
                .any(|word| name.to_ascii_lowercase().contains(word));
            if let (true, Some(field)) = (credential && name != "key_field", field.as_str()) {
                out.push(field.to_string());
            }
        }
    }
    out
}

/// The start of a long text, for error messages.
fn cut(text: &str) -> String {
    text.chars().take(500).collect()
}

/// Asks the emulator for its [`EmulatorReport`]; any failure to get it is an error, with the
/// emulator's last log lines.
pub async fn emulator_report(moto: &Moto) -> Result<EmulatorReport> {
    let url = format!("{}{SENT_ROUTE}", moto.endpoint());
    let answer = reqwest::get(&url)
        .await
        .map_err(|e| format!("GET {url} failed: {e}"))?;
    let status = answer.status();
    let body = answer.bytes().await?;
    if !status.is_success() {
        return fail(format!(
            "GET {url} answered {status}: {}\n{}",
            cut(&String::from_utf8_lossy(&body)),
            moto.log_tail()
        ));
    }
    EmulatorReport::from_json(&body)
}

/// What left through the emulator: every email SES accepted, every SNS message published and
/// every SQS message queued (the SNS deliveries to subscribed queues).
pub async fn from_moto(moto: &Moto) -> Result<Vec<Outbound>> {
    Ok(emulator_report(moto).await?.sent)
}

/// The secrets the emulator holds (Secrets Manager values and their credential fields, RDS
/// master passwords), for tests that scan what the guard cannot see (an in-process notifier).
pub async fn emulator_secrets(moto: &Moto) -> Result<Vec<String>> {
    Ok(emulator_report(moto).await?.secrets)
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

/// Notifications a handler run in this process handed to its notifier (a `RecordingNotifier`):
/// every channel's rendering of them.
pub fn from_notices(notices: &[Notification]) -> Vec<Outbound> {
    notices
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Outbound::new(
                format!("notification {i}"),
                format!(
                    "{}\n{}\n{}\n{:?}\n{:?}",
                    n.subject,
                    n.text_with_links(),
                    n.html_body(),
                    n.resource,
                    n.attributes
                ),
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
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use watchkeeper_shared::notify::{EmailConfig, Severity, percent_encode, render_mime};

    /// The check's failure message when it finds `secret` in `text`, `None` when it passes.
    fn leak_report(secret: &str, text: &str) -> Option<String> {
        let texts = [Outbound::new("the test text", text)];
        let result = std::panic::catch_unwind(|| assert_no_secrets(&[secret], &texts));
        let report = result.err()?;
        let message = report.downcast::<String>().map(|m| *m).unwrap_or_default();
        assert!(message.contains("secrets leaked"), "{message}");
        Some(message)
    }

    fn is_found(secret: &str, text: &str) -> bool {
        leak_report(secret, text).is_some()
    }

    /// 24 bytes, a multiple of 3: its own base64 has no padding, so at an aligned offset within
    /// one line it shows in the body verbatim, and only alignment or a line break hides it.
    const MAIL_SECRET: &str = "mail-secret-Xq7/Zr+47110";
    /// A 76-column base64 line holds 57 bytes.
    const BYTES_PER_LINE: usize = 57;

    /// An email as deploy-notifier sends it (`render_mime`: base64 parts in 76-column lines)
    /// whose text part is `text`; the HTML part is fixed, so only the text part can leak.
    fn email_with_text(subject: &str, text: &str) -> String {
        let config = EmailConfig {
            from: "watchkeeper@example.com".to_string(),
            to: vec!["ops@example.com".to_string()],
        };
        let notice = Notification::new("deploy-notifier", Severity::Info, subject, text);
        let mime = String::from_utf8(render_mime(&config, &notice, "=_watchkeeper_test")).unwrap();
        // The HTML part (the same text, escaped) is replaced by a fixed one: only the text
        // part's alignment is under test.
        let html = mime
            .find("Content-Type: text/html; charset=UTF-8")
            .expect("an HTML part");
        let body_start = html + mime[html..].find("\r\n\r\n").expect("its headers end") + 4;
        let body_end = body_start + mime[body_start..].find("\r\n--").expect("its boundary");
        format!(
            "{}{}{}",
            &mime[..body_start],
            STANDARD.encode("<p>Deploy finished.</p>"),
            &mime[body_end..]
        )
    }

    fn long_body() -> String {
        "Deployment of service checkout to production finished in 42 s. ".repeat(30)
    }

    #[test]
    fn a_secret_in_a_long_email_body_is_found_at_every_base64_alignment() {
        let own_base64 = STANDARD.encode(MAIL_SECRET);
        let body = long_body();
        // 300, 301, 302: the three alignments (offset mod 3), well inside one line. 102: aligned,
        // but its encoding runs across the end of the second line (102 + 24 > 2 * 57).
        let crossing = 2 * BYTES_PER_LINE - 12;
        for offset in [300, 301, 302, crossing] {
            let text = format!("{}{MAIL_SECRET}{}", &body[..offset], &body[offset..]);
            let email = email_with_text("Deploy finished", &text);
            assert!(!email.contains(MAIL_SECRET), "the body must be encoded");
            // Only the aligned case within one line holds the secret's own base64: every
            // other case is one that encoding the secret, instead of decoding the body, misses.
            assert_eq!(
                email.contains(&own_base64),
                offset == 300,
                "offset {offset}: the case is not the one it claims to be"
            );
            assert!(
                is_found(MAIL_SECRET, &email),
                "missed the secret at body offset {offset} (mod 3 = {})",
                offset % 3
            );
        }
    }

    #[test]
    fn a_secret_in_an_encoded_word_subject_is_found() {
        let subject = format!("Fehler bei der Übergabe: {MAIL_SECRET} läuft ab");
        let email = email_with_text(&subject, "nothing secret here");
        assert!(email.contains("=?UTF-8?B?"), "the subject must be encoded");
        assert!(!email.contains(MAIL_SECRET));
        assert!(is_found(MAIL_SECRET, &email));
    }

    /// Quoted-printable as RFC 2045 writes it: `=XX` for `=` and non-ASCII bytes, soft line
    /// breaks (`=` CRLF) keeping lines within 76 characters.
    fn quoted_printable(text: &str) -> String {
        let mut out = String::new();
        let mut line = 0;
        for byte in text.bytes() {
            let encoded = if byte == b'=' || !(b' '..=b'~').contains(&byte) {
                format!("={byte:02X}")
            } else {
                (byte as char).to_string()
            };
            if line + encoded.len() > 75 {
                out.push_str("=\r\n");
                line = 0;
            }
            line += encoded.len();
            out.push_str(&encoded);
        }
        out
    }

    #[test]
    fn a_secret_in_a_quoted_printable_part_is_found_across_a_soft_line_break() {
        let secret = "grüße=geheim-4711";
        let text = format!("{}{secret} and more", "x".repeat(68));
        let body = quoted_printable(&text);
        let email = format!(
            "From: a@example.com\r\nTo: b@example.com\r\nSubject: plain\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\n\
             Content-Type: text/plain; charset=UTF-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n{body}\r\n--b1--\r\n"
        );
        assert!(!email.contains(secret));
        assert!(
            body.lines().next().is_some_and(|l| l.ends_with('=')),
            "a soft line break must cut the secret: {body}"
        );
        assert!(is_found(secret, &email));
    }

    /// A secret with the two characters JSON escapes.
    const QUOTED_SECRET: &str = r#"sig"ned\key-4711"#;

    #[test]
    fn a_json_escaped_secret_is_found() {
        let log = serde_json::json!({
            "level": "ERROR",
            "message": format!("bad signature header {QUOTED_SECRET}"),
        })
        .to_string();
        assert!(!log.contains(QUOTED_SECRET), "the secret must be escaped");
        assert!(is_found(QUOTED_SECRET, &log));
    }

    #[test]
    fn a_twice_escaped_secret_in_an_sns_message_delivered_to_sqs_is_found() {
        let message = serde_json::json!({ "alert": format!("rotated to {QUOTED_SECRET}") });
        let sqs_body = serde_json::json!({
            "Type": "Notification",
            "Message": message.to_string(),
        })
        .to_string();
        let escaped_once = serde_json::to_string(QUOTED_SECRET).unwrap();
        let escaped_once = escaped_once.trim_matches('"');
        assert!(!sqs_body.contains(QUOTED_SECRET));
        assert!(
            !sqs_body.contains(escaped_once),
            "the secret must be escaped twice: {sqs_body}"
        );
        assert!(is_found(QUOTED_SECRET, &sqs_body));
    }

    #[test]
    fn a_percent_or_form_encoded_secret_is_found() {
        let secret = "p@ss/word:1234 x&y";
        let url = format!(
            "GET https://hooks.example/services/{}?ok",
            percent_encode(secret)
        );
        let form = "token=p%40ss%2Fword%3A1234+x%26y&next=1";
        for text in [url.as_str(), form] {
            assert!(!text.contains(secret));
            assert!(is_found(secret, text), "missed the secret in {text}");
        }
    }

    #[test]
    fn a_secret_in_a_standalone_base64_value_is_found() {
        let log = format!(
            "{{\"authorization\":\"Basic {}\"}}",
            STANDARD.encode(format!("user:{QUOTED_SECRET}"))
        );
        assert!(is_found(QUOTED_SECRET, &log));
    }

    #[test]
    fn clean_messages_pass_and_the_report_does_not_repeat_the_secret() {
        let body = long_body();
        let clean = [
            email_with_text("Deploy finished", &body),
            // All but the secret's last character: a near miss is not a hit.
            email_with_text("Deploy finished", &format!("{body}{}", &MAIL_SECRET[..23])),
            serde_json::json!({ "Type": "Notification", "Message": body }).to_string(),
            format!("GET https://hooks.example/{}", percent_encode(&body)),
        ];
        let texts: Vec<Outbound> = clean.iter().map(|t| Outbound::new("clean", t)).collect();
        assert!(assert_no_secrets(&[MAIL_SECRET, QUOTED_SECRET], &texts) > 0);

        let leaked = email_with_text("Deploy finished", &format!("{body}{MAIL_SECRET}"));
        let report = leak_report(MAIL_SECRET, &leaked).expect("found");
        assert!(!report.contains(MAIL_SECRET), "{report}");
        assert!(
            report.contains("MIME-decoded") || report.contains("base64"),
            "{report}"
        );
    }
}
