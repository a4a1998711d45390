//! Rendering a notification for channels without markup of their own: the SNS subject line, the
//! text with links, the HTML email body.

use super::model::Notification;

/// SNS subjects must be under 100 characters, ASCII, with no line breaks.
pub const MAX_SUBJECT_CHARS: usize = 99;

/// An SMS text that fits one message: GSM-7 carries 160 characters, and printable ASCII is
/// GSM-7 (anything else would switch the whole message to 70-character UCS-2 parts); 140 leaves
/// room for the sender name some carriers put in front.
pub const MAX_SMS_CHARS: usize = 140;

impl Notification {
    /// The subject as SNS accepts it: printable ASCII, one line, at most 99 characters.
    pub fn subject_line(&self) -> String {
        let cleaned: String = self
            .subject
            .chars()
            .map(|c| {
                if c.is_control() {
                    ' '
                } else {
                    fold_to_ascii(c)
                }
            })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            // An encoded word (`=?UTF-8?B?...?=`) would be decoded by a mail client into another
            // subject than the one sent (SNS email subscriptions use this line as the subject).
            .replace("=?", "= ?");
        let cleaned = if cleaned.is_empty() {
            format!("[{}] {}", self.severity, self.source)
        } else {
            cleaned
        };
        if cleaned.chars().count() <= MAX_SUBJECT_CHARS {
            cleaned
        } else {
            let mut cut: String = cleaned.chars().take(MAX_SUBJECT_CHARS - 3).collect();
            cut.push_str("...");
            cut
        }
    }

    /// The text for SMS subscribers: the subject line (the verdict), and the first link when it
    /// fits (where to look); printable ASCII, at most [`MAX_SMS_CHARS`]. The full text goes to
    /// every other subscriber.
    pub fn sms_text(&self) -> String {
        // Printable ASCII is GSM-7 but for the backtick, which would switch the whole message
        // to 70-character UCS-2 parts.
        let verdict = self.subject_line().replace('`', "'");
        let link = self
            .links
            .first()
            .map(|link| link.url.as_str())
            .filter(|url| url.chars().all(|c| c.is_ascii_graphic() && c != '`'));
        match link {
            Some(url) if verdict.len() + 1 + url.len() <= MAX_SMS_CHARS => {
                format!("{verdict} {url}")
            }
            _ => verdict,
        }
    }

    /// Text body with the links appended, for channels without markup.
    pub fn text_with_links(&self) -> String {
        let mut body = self.text.trim_end().to_string();
        if !self.links.is_empty() {
            body.push_str("\n\n");
            for link in &self.links {
                body.push_str(&format!("{}: {}\n", link.label, link.url));
            }
        }
        body
    }

    /// The HTML body: the text escaped and laid out with the links as buttons.
    pub fn html_body(&self) -> String {
        let mut html = format!(
            "<!doctype html><html><body style=\"font-family:sans-serif\">\
             <h2 style=\"border-left:6px solid {colour};padding-left:8px\">{subject}</h2>\
             <pre style=\"font-family:inherit;white-space:pre-wrap\">{text}</pre>",
            colour = self.severity.colour(),
            subject = escape_html(&self.subject),
            text = escape_html(&self.text),
        );
        for link in &self.links {
            html.push_str(&format!(
                "<p><a href=\"{}\">{}</a></p>",
                escape_html(&link.url),
                escape_html(&link.label)
            ));
        }
        html.push_str(&format!(
            "<p style=\"color:#888;font-size:small\">Watchkeeper {} &middot; {}</p></body></html>",
            escape_html(&self.source),
            self.severity
        ));
        html
    }
}

/// Replaces the letters of Spanish and other Latin alphabets by their ASCII base; anything else
/// non-ASCII becomes `?`. SNS rejects non-ASCII subjects outright.
fn fold_to_ascii(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    match c {
        'á' | 'à' | 'ä' | 'â' | 'ã' | 'å' => 'a',
        'Á' | 'À' | 'Ä' | 'Â' | 'Ã' | 'Å' => 'A',
        'é' | 'è' | 'ë' | 'ê' => 'e',
        'É' | 'È' | 'Ë' | 'Ê' => 'E',
        'í' | 'ì' | 'ï' | 'î' => 'i',
        'Í' | 'Ì' | 'Ï' | 'Î' => 'I',
        'ó' | 'ò' | 'ö' | 'ô' | 'õ' => 'o',
        'Ó' | 'Ò' | 'Ö' | 'Ô' | 'Õ' => 'O',
        'ú' | 'ù' | 'ü' | 'û' => 'u',
        'Ú' | 'Ù' | 'Ü' | 'Û' => 'U',
        'ñ' => 'n',
        'Ñ' => 'N',
        'ç' => 'c',
        'Ç' => 'C',
        '–' | '—' => '-',
        '‘' | '’' => '\'',
        '“' | '”' => '"',
        '…' => '.',
        _ => '?',
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so that any text (a budget
/// name from AWS's message, say) is one component of a URL and cannot add a `?`, `#` or `&`.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_subject_never_carries_an_encoded_word() {
        let n = super::super::Notification::new(
            "deploy-notifier",
            super::super::Severity::Info,
            "=?UTF-8?B?QWxsIGdvb2Q=?= despachos apply FAILED",
            "t",
        );
        assert!(!n.subject_line().contains("=?"), "{}", n.subject_line());
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("Az09-_.~"), "Az09-_.~");
        assert_eq!(percent_encode("a b?c#d&e/ñ"), "a%20b%3Fc%23d%26e%2F%C3%B1");
    }

    use super::*;
    use crate::notify::Severity;
    use proptest::prelude::*;

    fn sample() -> Notification {
        Notification::new(
            "deploy-notifier",
            Severity::Critical,
            "[prod] api deployment FAILED",
            "Service: api\nReason: <boom> & more",
        )
        .with_link(
            "Open service",
            "https://console.aws.amazon.com/ecs/v2/clusters/c/services/api",
        )
    }

    #[test]
    fn subjects_fit_sns() {
        let long = Notification::new(
            "x",
            Severity::Info,
            format!("Despliegue número {}\nsegunda línea", "x".repeat(200)),
            "",
        );
        let line = long.subject_line();
        assert!(line.chars().count() <= MAX_SUBJECT_CHARS);
        assert!(line.is_ascii());
        assert!(!line.contains('\n'));
        assert!(line.starts_with("Despliegue numero xxx"));
        assert_eq!(
            Notification::new("src", Severity::Warning, " \n ", "").subject_line(),
            "[WARNING] src"
        );
    }

    #[test]
    fn html_is_escaped_and_links_kept() {
        let html = sample().html_body();
        assert!(html.contains("&lt;boom&gt; &amp; more"));
        assert!(
            html.contains("href=\"https://console.aws.amazon.com/ecs/v2/clusters/c/services/api\"")
        );
        assert!(sample().text_with_links().ends_with(
            "Open service: https://console.aws.amazon.com/ecs/v2/clusters/c/services/api\n"
        ));
    }

    proptest! {
        #[test]
        fn any_subject_becomes_a_valid_sns_subject(subject in "\\PC{0,300}", text in ".{0,50}") {
            let line = Notification::new("s", Severity::Info, subject, text).subject_line();
            prop_assert!(!line.is_empty());
            prop_assert!(line.chars().count() <= MAX_SUBJECT_CHARS);
            prop_assert!(line.chars().all(|c| c.is_ascii() && !c.is_control()));
        }
    }
}
