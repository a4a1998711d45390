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
    out.push_str(&format!("To: {}\r\n", config.to.join(", ")));
    out.push_str(&format!("Subject: {}\r\n", encode_header(&subject)));
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str(&format!("X-Watchkeeper-Severity: {}\r\n", n.severity));
    out.push_str(&format!(
        "X-Watchkeeper-Source: {}\r\n",
        encode_header(&n.source)
    ));
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

/// RFC 2047 encoded-word for non-ASCII header values; plain ASCII stays readable.
fn encode_header(value: &str) -> String {
    let clean: String = value.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() {
        clean
    } else {
        format!("=?UTF-8?B?{}?=", STANDARD.encode(clean.as_bytes()))
    }
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
        assert!(mime.contains("To: a@example.com, b@example.com\r\n"));
        // Header injection through the subject is impossible: newlines are folded away.
        assert!(!mime.contains("\r\nBcc:"));
        assert!(mime.contains("Subject: Presupuesto al 50% Bcc: evil@example.com\r\n"));
        assert!(mime.contains("Content-Type: text/plain; charset=UTF-8"));
        assert!(mime.contains("Content-Type: text/html; charset=UTF-8"));
        assert!(mime.contains(&STANDARD.encode("cuerpo ñ".as_bytes())));
        assert!(mime.ends_with("--=_b--\r\n"));
        assert_eq!(
            encode_header("Señal"),
            format!("=?UTF-8?B?{}?=", STANDARD.encode("Señal"))
        );
    }
}
