//! The readings of a text the leak check scans: the text as written, and what it says once
//! decoded. A secret is looked for as written in every reading, so it is found whatever encoding
//! it took on the way out, at any position, without predicting how it was encoded.
//!
//! Decoders, applied to the text and again to what they produce (up to [`LAYERS`] deep, so that
//! an SNS message delivered to SQS, JSON inside JSON, is unescaped twice):
//! - raw MIME email: the subject and the text and HTML parts, decoded by [`SentEmail::from_mime`];
//! - JSON string escapes (`\"`, `\\`, `\n`, `\u00e9`, ...);
//! - base64: every run of base64 characters, across line breaks, decoded from each of its four
//!   possible starting points (the run may start mid-quantum, after other letters);
//! - quoted-printable (`=3D`, soft line breaks `=\r\n`);
//! - percent encoding (`%40`), and form encoding (`+` for a space);
//! - HTML character references (`&quot;`, `&#39;`).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::mail::SentEmail;

/// How many decodings are stacked at most. Three are realistic (an SQS body holding an SNS
/// envelope holding JSON holding a percent-encoded URL); one more is margin.
pub const LAYERS: usize = 4;

/// A text as the scan sees it, and how it was obtained (for the failure message).
#[derive(Debug, Clone)]
pub struct Reading {
    pub how: String,
    pub text: String,
}

type Decoder = fn(&str) -> Option<String>;

/// Each decoder answers `None` when the text holds nothing it decodes.
const DECODERS: [(&str, Decoder); 7] = [
    ("MIME-decoded", mime_email),
    ("JSON-unescaped", json_unescape),
    ("base64-decoded", base64_runs),
    ("quoted-printable-decoded", quoted_printable),
    ("percent-decoded", percent_decode),
    ("form-decoded", form_decode),
    ("HTML-unescaped", html_unescape),
];

/// The text as written, then every distinct decoding of it, layer by layer.
pub fn readings(text: &str) -> Vec<Reading> {
    let mut readings = vec![Reading {
        how: "as written".to_string(),
        text: text.to_string(),
    }];
    let mut seen = HashSet::from([fingerprint(text)]);
    let mut layer: Vec<usize> = vec![0];
    for _ in 0..LAYERS {
        let mut next_layer = Vec::new();
        for index in layer {
            for (name, decode) in DECODERS {
                let Some(decoded) = decode(&readings[index].text) else {
                    continue;
                };
                if !seen.insert(fingerprint(&decoded)) {
                    continue;
                }
                let how = if index == 0 {
                    name.to_string()
                } else {
                    format!("{}, then {name}", readings[index].how)
                };
                readings.push(Reading { how, text: decoded });
                next_layer.push(readings.len() - 1);
            }
        }
        layer = next_layer;
    }
    readings
}

fn fingerprint(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// A raw MIME email: its subject (encoded-words decoded), text part and HTML part.
fn mime_email(text: &str) -> Option<String> {
    if !text.contains("boundary=") {
        return None;
    }
    let email = SentEmail::from_mime(text).ok()?;
    Some(format!("{}\n{}\n{}", email.subject, email.text, email.html))
}

/// One level of JSON string escapes undone over the whole text (not only inside well-formed
/// strings: a log line may hold a cut or broken one). Unknown escapes stay as they are.
fn json_unescape(text: &str) -> Option<String> {
    if !text.contains('\\') {
        return None;
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '\\' || i + 1 == chars.len() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let simple = match chars[i + 1] {
            '"' => Some('"'),
            '\\' => Some('\\'),
            '/' => Some('/'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
        } else if let Some(unit) = hex_unit(&chars, i + 2) {
            // `\uD83D\uDE00`: a surrogate pair is one character.
            let low = (chars.get(i + 6..i + 8) == Some(&['\\', 'u'][..]))
                .then(|| hex_unit(&chars, i + 8))
                .flatten();
            match (unit, low) {
                (0xD800..=0xDBFF, Some(low @ 0xDC00..=0xDFFF)) => {
                    let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                    out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                    i += 12;
                }
                _ => {
                    out.push(char::from_u32(unit).unwrap_or('\u{FFFD}'));
                    i += 6;
                }
            }
        } else {
            out.push('\\');
            i += 1;
        }
    }
    (out != text).then_some(out)
}

/// The four hex digits of a `\u` escape whose digits start at `start` (the `u` is before it).
fn hex_unit(chars: &[char], start: usize) -> Option<u32> {
    if start < 1 || chars.get(start - 1) != Some(&'u') {
        return None;
    }
    let digits: String = chars.get(start..start + 4)?.iter().collect();
    if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(&digits, 16).ok()
}

/// Accepts what cutting a run at any point leaves: no padding, stray bits in the last character.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// The base64 encoding of the shortest secret scanned for, without padding: a shorter run cannot
/// hold a secret.
const SHORTEST_BASE64_RUN: usize = (super::SHORTEST_SECRET * 4).div_ceil(3);

fn is_base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Every run of base64 characters (line breaks inside a run are skipped, as in a MIME body cut
/// into 76-column lines; `=` padding ends a run), decoded from each of its first four characters,
/// so that one of the four starts where the encoding did. The decodings, one a line.
fn base64_runs(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::new();
    let mut run: Vec<u8> = Vec::new();
    let mut i = 0;
    while i <= bytes.len() {
        let b = bytes.get(i).copied();
        match b {
            Some(b) if is_base64_char(b) => run.push(b),
            // A line break continues the run only if more base64 follows it.
            Some(b'\r' | b'\n') if !run.is_empty() => {}
            _ => {
                if run.len() >= SHORTEST_BASE64_RUN {
                    decode_run(&run, &mut decoded);
                }
                run.clear();
            }
        }
        i += 1;
    }
    if decoded.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(&decoded).into_owned())
}

fn decode_run(run: &[u8], out: &mut Vec<u8>) {
    for start in 0..4 {
        let mut usable = &run[start.min(run.len())..];
        // One character left over holds no whole byte.
        if usable.len() % 4 == 1 {
            usable = &usable[..usable.len() - 1];
        }
        if let Ok(bytes) = LENIENT_BASE64.decode(usable) {
            out.extend_from_slice(&bytes);
            out.push(b'\n');
        }
    }
}

/// Quoted-printable: `=XX` is a byte, `=` at a line end joins the line to the next.
fn quoted_printable(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes[i + 1..].starts_with(b"\r\n") {
                i += 3;
                changed = true;
                continue;
            }
            if bytes[i + 1..].starts_with(b"\n") {
                i += 2;
                changed = true;
                continue;
            }
            if let Some(byte) = hex_byte(bytes, i + 1) {
                out.push(byte);
                i += 3;
                changed = true;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    changed.then(|| String::from_utf8_lossy(&out).into_owned())
}

/// The byte written as two hex digits at `start`.
fn hex_byte(bytes: &[u8], start: usize) -> Option<u8> {
    let digits = bytes.get(start..start + 2)?;
    let digits = std::str::from_utf8(digits).ok()?;
    if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(digits, 16).ok()
}

/// `%XX` is a byte; everything else stays (a `+` too: it may be the secret's own).
fn percent_decode(text: &str) -> Option<String> {
    url_decode(text, false)
}

/// As a form body or query string is read: `%XX` is a byte and `+` a space.
fn form_decode(text: &str) -> Option<String> {
    if !text.contains('+') {
        return None;
    }
    url_decode(text, true)
}

fn url_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if hex_byte(bytes, i + 1).is_some() => {
                out.push(hex_byte(bytes, i + 1).unwrap_or_default());
                i += 3;
                changed = true;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
                changed = true;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    changed.then(|| String::from_utf8_lossy(&out).into_owned())
}

/// HTML character references: the named ones an escaper writes, and numeric ones.
fn html_unescape(text: &str) -> Option<String> {
    if !text.contains('&') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        // A reference is short: look for its `;` only a few characters on.
        let reference = rest[1..]
            .bytes()
            .take(12)
            .position(|b| b == b';')
            .map(|end| &rest[1..1 + end]);
        let decoded = reference.and_then(|name| match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()
                } else {
                    name.strip_prefix('#').and_then(|d| d.parse().ok())
                };
                code.and_then(char::from_u32)
            }
        });
        match (reference, decoded) {
            (Some(name), Some(c)) => {
                out.push(c);
                rest = &rest[name.len() + 2..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    (out != text).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_unescape_undoes_one_level() {
        assert_eq!(
            json_unescape(r#"a\"b\\c\u00e9\ud83d\ude00\n"#).as_deref(),
            Some("a\"b\\c\u{e9}\u{1F600}\n")
        );
        assert_eq!(json_unescape(r#"\\\""#).as_deref(), Some(r#"\""#));
        assert_eq!(json_unescape("nothing"), None);
    }

    #[test]
    fn base64_runs_decode_at_any_start_and_across_line_breaks() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("secret-value-4711");
        let (head, tail) = encoded.split_at(7);
        // Two letters glued in front shift the run off its quantum boundary.
        let text = format!("id:xy{head}\r\n{tail}");
        assert!(base64_runs(&text).unwrap().contains("secret-value-4711"));
    }

    #[test]
    fn quoted_printable_joins_soft_breaks_and_decodes_bytes() {
        assert_eq!(
            quoted_printable("p=C3=A4ss=3D=\r\nword").as_deref(),
            Some("p\u{e4}ss=word")
        );
    }

    #[test]
    fn url_and_html_decoding() {
        assert_eq!(percent_decode("a%2Bb+c").as_deref(), Some("a+b+c"));
        assert_eq!(form_decode("a%2Bb+c").as_deref(), Some("a+b c"));
        assert_eq!(
            html_unescape("&quot;x&#39;&#x41;&amp;lt; & b").as_deref(),
            Some("\"x'A&lt; & b")
        );
    }

    #[test]
    fn readings_stack_decodings() {
        let inner = serde_json::json!({ "v": "a\"b" }).to_string();
        let outer = serde_json::json!({ "Message": inner }).to_string();
        let found = readings(&outer)
            .into_iter()
            .find(|r| r.text.contains("a\"b"))
            .expect("found after two unescapes");
        assert_eq!(found.how, "JSON-unescaped, then JSON-unescaped");
    }
}
