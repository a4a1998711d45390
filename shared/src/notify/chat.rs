//! Chat payloads: a Slack incoming-webhook message and a Microsoft Teams Workflows message.
//!
//! Every text in a notification may come from an event or a CI body, so neither service may read
//! markup into it: Slack's control characters `&`, `<`, `>` are escaped (no `<!channel>`, no
//! `<https://evil|innocent>` link), and so is Teams' Markdown link syntax. Links are only the
//! notification's own buttons. Texts are cut to each service's limits, never inside an escape.

use serde_json::{Value, json};

use super::model::{Notification, Severity};

/// Slack: a header's plain text, a section's text, a button's text and URL.
const SLACK_HEADER_CHARS: usize = 150;
const SLACK_SECTION_CHARS: usize = 3000;
const SLACK_BUTTON_CHARS: usize = 75;
const SLACK_URL_CHARS: usize = 3000;
/// Slack takes up to 25 elements in an actions block; five buttons are plenty to read.
const SLACK_BUTTONS: usize = 5;
/// Teams: a message is at most about 28 KB; the body text stays well inside it, counted in
/// UTF-8 bytes (12,000 characters of CJK text or emoji would be three or four times that).
const TEAMS_TEXT_BYTES: usize = 12_000;
const TEAMS_TITLE_CHARS: usize = 400;
const TEAMS_ACTIONS: usize = 6;

/// Slack incoming-webhook message: a `text` fallback plus blocks (header, body, buttons).
pub fn slack_payload(n: &Notification) -> Value {
    let subject = n.subject_line();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": slack_text(&subject, SLACK_HEADER_CHARS)}}),
        // `verbatim`: Slack must not turn channel names, mentions or URLs in the text into links.
        json!({"type": "section", "text": {"type": "mrkdwn", "text": slack_text(&n.text, SLACK_SECTION_CHARS), "verbatim": true}}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("*{}* · {}", n.severity, slack_text(&n.source, 100)), "verbatim": true}]}),
    ];
    let buttons: Vec<Value> = n
        .links
        .iter()
        .filter(|l| l.url.chars().count() <= SLACK_URL_CHARS)
        .take(SLACK_BUTTONS)
        .map(|l| json!({"type": "button", "text": {"type": "plain_text", "text": slack_text(&l.label, SLACK_BUTTON_CHARS)}, "url": l.url}))
        .collect();
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    json!({"text": slack_text(&format!("[{}] {subject}", n.severity), SLACK_SECTION_CHARS), "blocks": blocks})
}

/// Teams Workflows webhook message: one Adaptive Card.
pub fn teams_payload(n: &Notification) -> Value {
    let colour = match n.severity {
        Severity::Info => "Good",
        Severity::Warning => "Warning",
        Severity::Critical => "Attention",
    };
    let actions: Vec<Value> = n
        .links
        .iter()
        .take(TEAMS_ACTIONS)
        .map(|l| json!({"type": "Action.OpenUrl", "title": cut(&l.label, 100), "url": l.url}))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": teams_text(&n.subject_line(), TEAMS_TITLE_CHARS), "weight": "Bolder", "size": "Medium", "color": colour, "wrap": true},
                    {"type": "TextBlock", "text": within_bytes(teams_text(&n.text, TEAMS_TEXT_BYTES), TEAMS_TEXT_BYTES), "wrap": true},
                    {"type": "TextBlock", "text": format!("{} · {}", n.severity, teams_text(&n.source, 100)), "isSubtle": true, "size": "Small"},
                ],
                "actions": actions,
            }
        }]
    })
}

/// `text` cut to at most `max_bytes` of UTF-8, at a character boundary and never inside an escape
/// (a trailing backslash or an entity's start), ending in `…` when cut.
fn within_bytes(text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut kept = &text[..end];
    loop {
        let trailing_backslashes = kept.len() - kept.trim_end_matches('\\').len();
        let open_entity = kept
            .rfind('&')
            .is_some_and(|at| at + 4 >= kept.len() && !kept[at..].contains(';'));
        if !trailing_backslashes.is_multiple_of(2) {
            kept = &kept[..kept.len() - 1];
        } else if open_entity {
            kept = &kept[..kept.rfind('&').unwrap_or(0)];
        } else {
            break;
        }
    }
    format!("{kept}…")
}

/// Slack's escaping of `&`, `<` and `>`, cut to `max_chars` escaped characters.
pub fn slack_text(text: &str, max_chars: usize) -> String {
    escape_within(text, max_chars, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    })
}

/// Markdown link and emphasis syntax escaped with backslashes, cut to `max_chars`. Control
/// characters but newlines and tabs become spaces: JSON would write each as six bytes.
pub fn teams_text(text: &str, max_chars: usize) -> String {
    let text: String = text
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                ' '
            } else {
                c
            }
        })
        .collect();
    escape_within(&text, max_chars, |c| match c {
        '\\' => Some("\\\\"),
        '[' => Some("\\["),
        ']' => Some("\\]"),
        '(' => Some("\\("),
        ')' => Some("\\)"),
        '*' => Some("\\*"),
        '_' => Some("\\_"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    })
}

/// Escapes `text` and keeps at most `max_chars` characters of the result, ending in `…` when
/// cut. An escape is kept whole or dropped whole.
fn escape_within(
    text: &str,
    max_chars: usize,
    escape: impl Fn(char) -> Option<&'static str>,
) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 2));
    let mut used = 0;
    let budget = max_chars.saturating_sub(1);
    let total: usize = text
        .chars()
        .map(|c| escape(c).map_or(1, |e| e.chars().count()))
        .sum();
    if total <= max_chars {
        for c in text.chars() {
            match escape(c) {
                Some(e) => out.push_str(e),
                None => out.push(c),
            }
        }
        return out;
    }
    for c in text.chars() {
        let piece = escape(c);
        let width = piece.map_or(1, |e| e.chars().count());
        if used + width > budget {
            break;
        }
        used += width;
        match piece {
            Some(e) => out.push_str(e),
            None => out.push(c),
        }
    }
    out.push('…');
    out
}

fn cut(text: &str, max_chars: usize) -> String {
    escape_within(text, max_chars, |_| None)
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn chat_payloads_have_the_documented_shapes() {
        let slack = slack_payload(&sample());
        assert_eq!(slack["text"], "[CRITICAL] [prod] api deployment FAILED");
        assert_eq!(slack["blocks"][0]["type"], "header");
        assert_eq!(
            slack["blocks"][1]["text"]["text"],
            "Service: api\nReason: &lt;boom&gt; &amp; more"
        );
        assert_eq!(
            slack["blocks"][3]["elements"][0]["url"],
            "https://console.aws.amazon.com/ecs/v2/clusters/c/services/api"
        );
        let teams = teams_payload(&sample());
        assert_eq!(teams["type"], "message");
        let card = &teams["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["body"][0]["color"], "Attention");
        assert_eq!(card["content"]["actions"][0]["type"], "Action.OpenUrl");
    }

    #[test]
    fn slack_mentions_and_disguised_links_are_escaped() {
        let n = Notification::new(
            "deploy-notifier",
            Severity::Critical,
            "<!channel> deploy",
            "reason: <!channel> see <https://evil.example/x|the console> & <@U123>",
        );
        let payload = slack_payload(&n);
        let all = payload.to_string();
        for raw in ["<!channel>", "<https://evil.example", "<@U123>"] {
            assert!(!all.contains(raw), "{raw} in {all}");
        }
        assert_eq!(
            payload["blocks"][1]["text"]["text"],
            "reason: &lt;!channel&gt; see &lt;https://evil.example/x|the console&gt; &amp; &lt;@U123&gt;"
        );
        assert!(
            payload["text"]
                .as_str()
                .unwrap()
                .contains("&lt;!channel&gt; deploy")
        );
    }

    #[test]
    fn teams_link_syntax_is_escaped() {
        let n = Notification::new(
            "s",
            Severity::Info,
            "x",
            "see [the console](https://evil.example)",
        );
        let payload = teams_payload(&n);
        assert_eq!(
            payload["attachments"][0]["content"]["body"][1]["text"],
            "see \\[the console\\]\\(https://evil.example\\)"
        );
    }

    #[test]
    fn a_teams_card_of_wide_characters_stays_inside_the_message_limit() {
        for text in [
            "界".repeat(12_000),
            "🚀".repeat(12_000),
            "a\\[".repeat(5_000),
            "&<".repeat(9_000),
            "\u{1}\"".repeat(7_000),
        ] {
            let n = Notification::new("t", Severity::Info, "s", text.clone());
            let payload = teams_payload(&n);
            let body = payload["attachments"][0]["content"]["body"][1]["text"]
                .as_str()
                .unwrap();
            assert!(body.len() <= TEAMS_TEXT_BYTES, "{}", body.len());
            assert!(body.ends_with('…'));
            let kept = body.trim_end_matches('…');
            assert!(
                (kept.len() - kept.trim_end_matches('\\').len()).is_multiple_of(2),
                "no escape cut in half"
            );
            assert!(
                payload.to_string().len() < 28_000,
                "{}",
                payload.to_string().len()
            );
        }
    }

    #[test]
    fn slack_text_objects_are_verbatim() {
        let payload = slack_payload(&sample());
        assert_eq!(payload["blocks"][1]["text"]["verbatim"], true);
        assert_eq!(payload["blocks"][2]["elements"][0]["verbatim"], true);
    }

    #[test]
    fn texts_are_cut_to_the_limits_without_splitting_an_escape() {
        let long = "<".repeat(5000);
        let n = Notification::new("s", Severity::Info, "x".repeat(300), long.clone());
        let slack = slack_payload(&n);
        let section = slack["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(section.chars().count() <= SLACK_SECTION_CHARS);
        assert!(
            section
                .trim_end_matches('…')
                .split("&lt;")
                .all(|p| p.is_empty())
        );
        assert!(
            slack["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= SLACK_HEADER_CHARS
        );
        let teams = teams_payload(&Notification::new(
            "s",
            Severity::Info,
            "x",
            "y".repeat(50_000),
        ));
        assert!(teams.to_string().len() < 28_000);
    }

    proptest! {
        #[test]
        fn slack_text_never_exceeds_its_limit_or_leaks_a_bracket(text in "\\PC{0,400}", max in 1usize..200) {
            let out = slack_text(&text, max);
            prop_assert!(out.chars().count() <= max);
            prop_assert!(!out.contains('<') && !out.contains('>'));
        }
    }
}
