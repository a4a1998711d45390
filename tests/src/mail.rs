//! Emails as the emulator stored them, decoded for assertions.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::{Result, fail};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SentEmail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Top-level headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl SentEmail {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parses the multipart/alternative messages the suite sends (base64 text and HTML parts).
    pub fn from_mime(raw: &str) -> Result<Self> {
        let (head, body) = split_head(raw);
        let headers = parse_headers(head);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let content_type = get("content-type");
        let Some(boundary) = content_type
            .split("boundary=")
            .nth(1)
            .map(|b| b.trim_matches('"').to_string())
        else {
            return fail(format!("email without multipart boundary: {content_type}"));
        };
        let mut email = SentEmail {
            from: get("from"),
            to: get("to")
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            subject: decode_encoded_word(&get("subject")),
            headers: headers.clone(),
            ..Default::default()
        };
        for part in body.split(&format!("--{boundary}")) {
            let (part_head, part_body) = split_head(part.trim_start_matches("\r\n"));
            let part_headers = parse_headers(part_head);
            let part_type = part_headers
                .iter()
                .find(|(n, _)| n == "content-type")
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            let compact: String = part_body.chars().filter(|c| !c.is_whitespace()).collect();
            let decoded = STANDARD
                .decode(compact.as_bytes())
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            if part_type.starts_with("text/plain") {
                email.text = decoded?;
            } else if part_type.starts_with("text/html") {
                email.html = decoded?;
            }
        }
        Ok(email)
    }

    /// A message sent as SES "simple" content (moto keeps only one body).
    pub fn from_simple(message: &Value) -> Self {
        SentEmail {
            from: message["source"].as_str().unwrap_or_default().to_string(),
            to: message["destinations"]["ToAddresses"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            subject: message["subject"].as_str().unwrap_or_default().to_string(),
            html: message["body"].as_str().unwrap_or_default().to_string(),
            ..Default::default()
        }
    }
}

fn split_head(raw: &str) -> (&str, &str) {
    raw.split_once("\r\n\r\n")
        .or_else(|| raw.split_once("\n\n"))
        .unwrap_or((raw, ""))
}

/// Header lines, unfolded (a line starting with white space continues the one before).
fn parse_headers(head: &str) -> Vec<(String, String)> {
    let mut unfolded: Vec<String> = Vec::new();
    for line in head.lines() {
        match unfolded.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
            _ => unfolded.push(line.to_string()),
        }
    }
    unfolded
        .iter()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect()
}

/// Decodes RFC 2047 `=?UTF-8?B?...?=` words; the white space between two encoded words goes.
fn decode_encoded_word(value: &str) -> String {
    let decode = |word: &str| {
        word.strip_prefix("=?UTF-8?B?")
            .and_then(|v| v.strip_suffix("?="))
            .and_then(|encoded| STANDARD.decode(encoded).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let mut out = String::new();
    let mut previous_encoded = false;
    for word in value.split_whitespace() {
        match decode(word) {
            Some(text) => {
                if !out.is_empty() && !previous_encoded {
                    out.push(' ');
                }
                out.push_str(&text);
                previous_encoded = true;
            }
            None => {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(word);
                previous_encoded = false;
            }
        }
    }
    out
}
