//! The notification an alert becomes: what was passed, by how much, and where the money goes.

use watchkeeper_shared::notify::{Notification, Severity, percent_encode};

use crate::alert::{Alert, Origin};
use crate::budget::Budget;
use crate::budgets_text::AlertType;
use crate::costs::CostsByService;
use crate::money::percent_text;

/// Characters of an unparsed message forwarded (SNS allows 256 KB; email readers less).
pub const MAX_FORWARDED_CHARS: usize = 8000;

/// The top-services table, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CostsNote {
    Table(CostsByService),
    /// Turned off, too early in the month, or Cost Explorer unavailable.
    Skipped(String),
}

pub fn notification(
    alert: &Alert,
    budget: Option<&Budget>,
    costs: &CostsNote,
    per_service: &[Budget],
    top: usize,
) -> Notification {
    let services = budget
        .map(|b| b.services.join(", "))
        .filter(|s| !s.is_empty());
    let name = match &services {
        Some(s) => format!("{} ({s})", alert.budget),
        None => alert.budget.clone(),
    };
    let percent = alert
        .percent
        .map(|p| format!(" ({}%)", percent_text(p)))
        .unwrap_or_default();
    let threshold = percent_text(alert.threshold);
    // An unrecorded threshold is the notification's claim, not a configured one the figures
    // confirm: worded as reported.
    let (passed, has_passed) = if alert.recorded {
        ("passed", "has passed")
    } else {
        ("reported past", "is reported past")
    };
    let (subject, lead) = match alert.alert_type {
        AlertType::Actual => (
            format!(
                "Budget {name} {passed} {threshold}%: {} of {}",
                alert.amount, alert.limit
            ),
            format!(
                "Budget {name} {has_passed} {threshold}% of its {} limit: {} of {} spent{percent} in {}.",
                alert.time_unit.as_word(),
                alert.amount,
                alert.limit,
                alert.period.label
            ),
        ),
        AlertType::Forecasted => (
            format!(
                "Budget {name} forecast {}: {} of {}",
                percent.trim().trim_matches(['(', ')']),
                alert.amount,
                alert.limit
            ),
            format!(
                "Early warning: budget {name} is forecast to reach {} of {}{percent} by the end of {}, above the {threshold}% forecast threshold.",
                alert.amount, alert.limit, alert.period.label
            ),
        ),
    };
    let mut text = lead;
    if !alert.also_past.is_empty() {
        let past: Vec<String> = alert
            .also_past
            .iter()
            .map(|t| format!("{}%", percent_text(*t)))
            .collect();
        text.push_str(&format!(" It is also past {}.", past.join(" and ")));
    }
    if let Some(note) = &alert.note {
        text.push_str(&format!("\n\n{note}"));
    }
    text.push_str("\n\n");
    let mut facts = vec![("Budget", alert.budget.clone())];
    if let Some(b) = budget {
        facts.push(("Kind", b.describe()));
        if let Some(actual) = &b.actual {
            let p = b
                .actual_percent()
                .map(|p| format!(" ({}%)", percent_text(p)))
                .unwrap_or_default();
            facts.push(("Spent", format!("{actual}{p} of {}", b.limit)));
        }
        if let Some(forecast) = &b.forecast {
            let p = b
                .forecast_percent()
                .map(|p| format!(" ({}%)", percent_text(p)))
                .unwrap_or_default();
            facts.push((
                "Forecast",
                format!("{forecast}{p} by the end of the period"),
            ));
        }
        if !b.scope.is_empty() {
            facts.push(("Scope", b.scope.join("; ")));
        }
    }
    let channels = if alert.sms { ", also sent by SMS" } else { "" };
    facts.push((
        "Threshold",
        format!(
            "{threshold}% ({}), {}, {}{channels}",
            alert.limit.share(alert.threshold),
            alert.alert_type.as_str(),
            severity_word(alert.severity)
        ),
    ));
    facts.push((
        "Period",
        format!("{} ({})", alert.period.label, alert.period.key),
    ));
    facts.push((
        "Noticed by",
        match alert.origin {
            Origin::Budgets => "an AWS Budgets notification".into(),
            Origin::DailyCheck => "the daily budget check".into(),
            Origin::CloseOut => {
                "the first daily check after the period ended (its final figures)".into()
            }
        },
    ));
    for (label, value) in facts {
        text.push_str(&format!("{label:<11} {value}\n"));
    }
    text.push('\n');
    text.push_str(&costs_section(costs, per_service, top));
    let n = Notification::new(crate::NAME, alert.severity, subject, text)
        .with_resource(alert.budget.clone())
        .with_attribute("alert_type", alert.alert_type.as_str())
        .with_attribute("threshold", threshold)
        .with_link("Open the budget", budget_url(&alert.budget))
        .with_link(
            "Open Cost Explorer",
            "https://console.aws.amazon.com/cost-management/home#/cost-explorer",
        );
    // Only alerts meant for SMS carry the attribute at all: a filter policy on `sms` then
    // cannot match anything else, whatever operator it uses.
    if alert.sms {
        n.with_attribute(SMS_ATTRIBUTE, "true")
    } else {
        n
    }
}

/// The SNS message attribute an SMS subscription's filter policy matches: `{"sms": ["true"]}`.
pub const SMS_ATTRIBUTE: &str = "sms";

fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

fn costs_section(costs: &CostsNote, per_service: &[Budget], top: usize) -> String {
    let mut out = String::new();
    match costs {
        CostsNote::Skipped(why) => {
            out.push_str(&format!("Where the money goes: not shown ({why}).\n"))
        }
        CostsNote::Table(table) => {
            let last = table.end.pred_opt().unwrap_or(table.end);
            out.push_str(&format!(
                "Where the money goes this month (Cost Explorer, {} to {}, before credits and refunds{}; the last two days are left out: their figures are not complete yet):\n",
                table.start.format("%d %b"),
                last.format("%d %b %Y"),
                if table.estimated { ", estimated" } else { "" }
            ));
            if table.services.is_empty() {
                out.push_str("  no costs recorded yet\n");
            }
            for row in table.services.iter().take(top) {
                let beside = per_service
                    .iter()
                    .find(|b| b.services.iter().any(|s| s == &row.service))
                    .map(|b| format!("   budget {}: {}", b.name, b.limit))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "  {:<44} {:>12}{beside}\n",
                    row.service,
                    row.amount.to_string()
                ));
            }
            let hidden = table.services.len().saturating_sub(top);
            match (hidden, table.truncated) {
                (0, false) => {}
                (0, true) => out.push_str("  ... and more services\n"),
                (1, _) => out.push_str("  ... and 1 more service\n"),
                (n, _) => out.push_str(&format!("  ... and {n} more services\n")),
            }
        }
    }
    if !per_service.is_empty() {
        out.push_str("\nPer-service budgets (AWS Budgets figures):\n");
        for b in per_service {
            let spent = b
                .actual
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "unknown".into());
            let p = b
                .actual_percent()
                .map(|p| format!(" ({}%)", percent_text(p)))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {:<24} {:<32} {spent} of {}{p}\n",
                b.name,
                b.services.join(", "),
                b.limit
            ));
        }
    }
    out
}

/// The Budgets console page of a budget; the name percent-encoded (it comes from AWS's message).
fn budget_url(name: &str) -> String {
    format!(
        "https://console.aws.amazon.com/billing/home#/budgets/details?name={}",
        percent_encode(name)
    )
}

/// A message on the Budgets topic that is not a notification this function understands:
/// forwarded verbatim, marked as unparsed, never dropped.
pub fn unparsed(
    subject: Option<&str>,
    message: &str,
    topic: &str,
    message_id: &str,
    why: &str,
) -> Notification {
    let forwarded: String = message.chars().take(MAX_FORWARDED_CHARS).collect();
    let cut = if forwarded.len() < message.len() {
        "\n[... cut]"
    } else {
        ""
    };
    let text = format!(
        "UNPARSED: a message on {topic} could not be read as an AWS Budgets notification ({why}). It is forwarded verbatim below.\n\nMessage id: {message_id}\nSubject: {}\n\n--- message ---\n{forwarded}{cut}\n--- end ---\n",
        subject.unwrap_or("(none)")
    );
    let about = subject
        .filter(|s| !s.trim().is_empty())
        .unwrap_or("message on the budgets topic");
    Notification::new(
        crate::NAME,
        Severity::Warning,
        format!("Unparsed budget message: {about}"),
        text,
    )
    .with_attribute("unparsed", "true")
}
