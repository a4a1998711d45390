//! SES v2 email: one `multipart/alternative` message with a text and an HTML part.
//!
//! The message is built as raw MIME rather than SES "simple" content so that both parts, the
//! headers and the encoding are exactly what the suite decides (and what tests read back), and so
//! that a `X-Watchkeeper-Severity` header lets mail rules sort alerts without parsing subjects.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{ChannelError, EmailConfig, Notification};
use crate::error::AwsError;

#[derive(Debug, Clone)]
pub struct EmailChannel {
    client: aws_sdk_sesv2::Client,
    config: EmailConfig,
}

impl EmailChannel {
    pub fn new(client: aws_sdk_sesv2::Client, config: EmailConfig) -> Self {
        Self { client, config }
    }

    pub async fn send(&self, n: &Notification) -> Result<(), ChannelError> {
        use aws_sdk_sesv2::primitives::Blob;
        use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};

        let mime = render_mime(&self.config, n, &boundary_for(n));
        let raw = RawMessage::builder()
            .data(Blob::new(mime))
            .build()
            .map_err(|e| ChannelError::permanent("email", e.to_string()))?;
        self.client
            .send_email()
            .from_email_address(&self.config.from)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(self.config.to.clone()))
                    .build(),
            )
            .content(EmailContent::builder().raw(raw).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ChannelError::from_aws("email", AwsError::from_sdk("ses:SendEmail", &e)))
    }
}

/// A boundary that cannot occur in base64 bodies (it contains `=_`), stable for one notification.
fn boundary_for(n: &Notification) -> String {
    let digest = crate::state::fnv1a(format!("{}{}", n.subject, n.text).as_bytes());
    format!("=_watchkeeper_{digest:016x}")
}

/// The whole message: headers, then a text and an HTML part, both UTF-8 and base64-encoded (safe
/// for any content and line length).
pub fn render_mime(config: &EmailConfig, n: &Notification, boundary: &str) -> Vec<u8> {
    // One line (no header injection), and short enough for any mail system's line limits.
    let subject: String = n
        .subject
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect();
    let mut out = String::new();
    out.push_str(&format!("From: {}\r\n", config.from));
    // One address per line: a long recipient list never makes a line over 998 characters.
    out.push_str(&format!("To: {}\r\n", config.to.join(",\r\n ")));
    out.push_str(&header("Subject", &subject));
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str(&format!("X-Watchkeeper-Severity: {}\r\n", n.severity));
    out.push_str(&header("X-Watchkeeper-Source", &n.source));
    out.push_str(&format!(
        "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
    ));
    for (content_type, body) in [
        ("text/plain", n.text_with_links()),
        ("text/html", n.html_body()),
    ] {
        out.push_str(&format!("--{boundary}\r\n"));
        out.push_str(&format!("Content-Type: {content_type}; charset=UTF-8\r\n"));
        out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        let encoded = STANDARD.encode(body.as_bytes());
        // RFC 2045: encoded lines of at most 76 characters. Base64 output is ASCII, so byte
        // chunks are whole characters.
        for line in encoded.as_bytes().chunks(76) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out.into_bytes()
}

/// Header lines stay within RFC 5322's 78 characters where a space allows, and never exceed 998.
const HEADER_LINE: usize = 78;
/// RFC 2047: an encoded-word is at most 75 characters, and a line holding one at most 76.
const ENCODED_WORD_LINE: usize = 76;
const ENCODED_WORD_OVERHEAD: usize = "=?UTF-8?B??=".len();

/// One header, folded: plain ASCII stays readable, folded at spaces; anything else becomes as
/// many RFC 2047 encoded-words as it takes, one per line, never splitting a character.
fn header(name: &str, value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    // ASCII that looks like an encoded word (`=?UTF-8?B?...?=`) would be decoded by the reader's
    // client into another text than the one sent: it is encoded itself.
    let lines = if clean.is_ascii() && !clean.contains("=?") {
        fold_words(name, &clean)
    } else {
        encoded_words(name, &clean)
    };
    format!("{name}: {}\r\n", lines.join("\r\n "))
}

fn fold_words(name: &str, value: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    let mut width = name.len() + 2;
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        if !line.is_empty() && width + 1 + word.len() > HEADER_LINE {
            lines.push(std::mem::take(&mut line));
            width = 1;
        }
        if !line.is_empty() {
            line.push(' ');
            width += 1;
        }
        // A single word longer than a line (no space to fold at) is cut at the hard limit.
        let room = 998usize.saturating_sub(width);
        let kept: String = word.chars().take(room).collect();
        width += kept.len();
        line.push_str(&kept);
    }
    lines.push(line);
    lines
}

fn encoded_words(name: &str, value: &str) -> Vec<String> {
    // Raw bytes per word: base64 makes 4 characters of every 3 bytes.
    // At least one 4-byte character per word, whatever the header's name.
    let room = |prefix: usize| {
        (ENCODED_WORD_LINE.saturating_sub(prefix + ENCODED_WORD_OVERHEAD) / 4 * 3).max(4)
    };
    let mut words = Vec::new();
    let mut chunk = String::new();
    let mut limit = room(name.len() + 2);
    for c in value.chars() {
        if chunk.len() + c.len_utf8() > limit {
            words.push(encoded_word(&chunk));
            chunk.clear();
            limit = room(1);
        }
        chunk.push(c);
    }
    if !chunk.is_empty() || words.is_empty() {
        words.push(encoded_word(&chunk));
    }
    words
}

fn encoded_word(text: &str) -> String {
    format!("=?UTF-8?B?{}?=", STANDARD.encode(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Severity;

    #[test]
    fn mime_has_both_parts_and_encoded_subject() {
        let config = EmailConfig {
            from: "alerts@example.com".into(),
            to: vec!["a@example.com".into(), "b@example.com".into()],
        };
        let n = Notification::new(
            "budget-alerter",
            Severity::Warning,
            "Presupuesto al 50%\r\nBcc: evil@example.com",
            "cuerpo ñ",
        );
        let mime = String::from_utf8(render_mime(&config, &n, "=_b")).unwrap();
        assert!(mime.contains("To: a@example.com,\r\n b@example.com\r\n"));
        // Header injection through the subject is impossible: newlines are folded away.
        assert!(!mime.contains("\r\nBcc:"));
        assert!(mime.contains("Subject: Presupuesto al 50% Bcc: evil@example.com\r\n"));
        assert!(mime.contains("Content-Type: text/plain; charset=UTF-8"));
        assert!(mime.contains("Content-Type: text/html; charset=UTF-8"));
        assert!(mime.contains(&STANDARD.encode("cuerpo ñ".as_bytes())));
        assert!(mime.ends_with("--=_b--\r\n"));
        assert_eq!(
            header("Subject", "Señal"),
            format!("Subject: =?UTF-8?B?{}?=\r\n", STANDARD.encode("Señal"))
        );
    }

    #[test]
    fn ascii_that_looks_encoded_is_encoded_and_long_names_do_not_underflow() {
        let forged = "=?UTF-8?B?QWxsIGdvb2Q=?= terraform apply FAILED";
        let line = header("Subject", forged);
        assert!(line.starts_with("Subject: =?UTF-8?B?"), "{line}");
        let decoded: String = line
            .trim_end()
            .trim_start_matches("Subject: ")
            .split("\r\n ")
            .map(|w| {
                let b64 = w
                    .strip_prefix("=?UTF-8?B?")
                    .and_then(|w| w.strip_suffix("?="))
                    .unwrap();
                String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
            })
            .collect();
        assert_eq!(decoded, forged, "the client shows what was sent");
        let long_name = "X-".to_string() + &"a".repeat(80);
        assert!(header(&long_name, "señal").contains("=?UTF-8?B?"));
    }

    #[test]
    fn long_subjects_become_several_encoded_words_and_lines_stay_short() {
        let subject = format!("[prod] despliegue de señal {} ✓", "ñ".repeat(120));
        let line = header("Subject", &subject);
        let parts: Vec<&str> = line.trim_end().split("\r\n ").collect();
        assert!(parts.len() > 3, "{line}");
        let mut decoded = String::new();
        for (i, part) in parts.iter().enumerate() {
            let word = if i == 0 {
                part.trim_start_matches("Subject: ")
            } else {
                part
            };
            assert!(word.len() <= 75, "{word}");
            assert!(part.len() < ENCODED_WORD_LINE, "{part}");
            let b64 = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap();
            decoded.push_str(&String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap());
        }
        assert_eq!(decoded, subject);

        let config = EmailConfig {
            from: "alerts@example.com".into(),
            to: (0..200).map(|i| format!("person{i}@example.com")).collect(),
        };
        let n = Notification::new("s", Severity::Info, "x ".repeat(150), "y".repeat(5000));
        let mime = String::from_utf8(render_mime(&config, &n, "=_b")).unwrap();
        assert!(mime.split("\r\n").all(|l| l.len() <= 998));
        assert!(
            mime.split("\r\n")
                .filter(|l| l.starts_with("Subject") || l.starts_with(' '))
                .all(|l| l.len() <= 78)
        );
    }
}
