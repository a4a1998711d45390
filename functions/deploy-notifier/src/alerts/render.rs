//! The notification each alert becomes. The subject is the verdict (it is also the SMS text);
//! the text has what on-call needs to act without opening the console; the link opens it.

use chrono::{DateTime, Utc};
use watchkeeper_shared::notify::{MAX_SUBJECT_CHARS, Notification, Severity, percent_encode};

use super::alarm::{AlarmChange, AlarmState};
use super::guardduty::{Band, Finding};
use super::health::HealthEvent;
use super::history::{Fold, HealthUpdate};
use super::rules::AlarmRules;
use super::{region_code, show_time};
use crate::ecs::render::{env_prefix, format_duration, row};

/// The SNS attribute `kind`, for subscription filter policies.
pub const KIND_ALARM: &str = "cloudwatch-alarm";
pub const KIND_HEALTH: &str = "aws-health";
pub const KIND_GUARDDUTY: &str = "guardduty";

/// A number as people write it: `5`, `7.4`, `2000000000`.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// `Sum of HTTPCode_Target_5XX_Count > 5`, or what is known of it.
fn condition(change: &AlarmChange) -> Option<String> {
    let watched = change.compared()?;
    let mut words = String::new();
    if watched.expression.is_none()
        && let Some(stat) = &watched.statistic
    {
        words.push_str(&format!("{stat} of "));
    }
    words.push_str(watched.title()?);
    if let Some(cmp) = &change.comparison {
        words.push_str(&format!(" {cmp}"));
    }
    if let Some(threshold) = change.threshold {
        words.push_str(&format!(" {}", number(threshold)));
    }
    Some(words)
}

/// What the alarm's severity is in this state, by the operator's rules.
pub fn alarm_severity(change: &AlarmChange, rules: &AlarmRules) -> Severity {
    match change.state {
        AlarmState::Alarm if rules.is_warning(&change.name) => Severity::Warning,
        AlarmState::Alarm => Severity::Critical,
        AlarmState::InsufficientData => Severity::Warning,
        AlarmState::Ok => Severity::Info,
    }
}

fn alarm_link(name: &str, region: &str) -> Option<String> {
    let r = region_code(region)?;
    Some(format!(
        "https://{r}.console.aws.amazon.com/cloudwatch/home?region={r}#alarmsV2:alarm/{}",
        percent_encode(name)
    ))
}

/// The SNS attribute an SMS subscription's filter policy matches (`{"sms": ["true"]}`): set on
/// what pages, and on the OK that ends a page, so that the phone that rang hears it is over.
pub const SMS_ATTRIBUTE: &str = "sms";

fn alarm_base(
    name: &str,
    region: &str,
    state: AlarmState,
    severity: Severity,
    texted: bool,
    subject: String,
    text: String,
) -> Notification {
    let mut n = Notification::new(crate::NAME, severity, subject, text)
        .with_resource(name.to_string())
        .with_attribute("kind", KIND_ALARM)
        .with_attribute("alarm_state", state.as_str());
    if texted {
        n = n.with_attribute(SMS_ATTRIBUTE, "true");
    }
    if let Some(link) = alarm_link(name, region) {
        n = n.with_link("Alarm", link);
    }
    n
}

/// The rows every alarm message has: what it watches, why it changed, where.
fn alarm_rows(text: &mut String, change: &AlarmChange) {
    if let Some(description) = &change.description {
        row(text, "Description", description);
    }
    if let Some(rule) = &change.rule {
        row(text, "Rule", rule);
        for child in &change.children {
            let mut line = child.name.clone();
            match (&child.state, child.at) {
                (Some(state), Some(at)) => {
                    line.push_str(&format!(" ({state} at {})", show_time(at)))
                }
                (Some(state), None) => line.push_str(&format!(" ({state})")),
                _ => {}
            }
            row(text, "Triggered by", &line);
        }
    }
    if let Some(condition) = condition(change) {
        row(text, "Condition", &condition);
    }
    for w in &change.watched {
        let metric = match (&w.namespace, &w.name) {
            (Some(ns), Some(name)) => Some(format!("{ns} {name}")),
            (None, Some(name)) => Some(name.clone()),
            _ => None,
        };
        let mut line = match (&w.expression, metric) {
            (Some(expression), _) => expression.clone(),
            (None, Some(metric)) => match &w.statistic {
                Some(stat) => format!("{stat} of {metric}"),
                None => metric,
            },
            (None, None) => continue,
        };
        if let Some(period) = w.period_seconds {
            line.push_str(&format!(", {} s periods", number(period)));
        }
        row(text, "Metric", &line);
    }
    let dimensions = change.dimensions();
    if !dimensions.is_empty() {
        let list: Vec<String> = dimensions
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        row(text, "Dimensions", &list.join(", "));
    }
    if !change.datapoints.is_empty() {
        let list: Vec<String> = change
            .datapoints
            .iter()
            .map(|(at, value)| match at {
                Some(at) => format!("{} at {}", number(*value), at.format("%H:%M UTC")),
                None => number(*value),
            })
            .collect();
        row(text, "Datapoints", &list.join(", "));
    }
    if let Some(reason) = &change.reason {
        row(text, "Reason", reason);
    }
    row(
        text,
        "Account/Region",
        &format!("{} / {}", change.account, change.region),
    );
}

/// The message of one alarm state change. `alarm_since` is when the ALARM an OK (or an
/// INSUFFICIENT_DATA) ends began, when known (from the event itself, or the alarm's history).
pub fn alarm_notification(
    change: &AlarmChange,
    alarm_since: Option<DateTime<Utc>>,
    rules: &AlarmRules,
    environment: Option<&str>,
) -> Notification {
    let env = env_prefix(environment);
    let name = &change.name;
    let composite = if change.is_composite() {
        " (composite)"
    } else {
        ""
    };
    let lasted = match (change.state, alarm_since, change.changed_at) {
        (AlarmState::Ok, Some(since), Some(at)) if since <= at => Some((since, at - since)),
        _ => None,
    };
    let subject = match change.state {
        AlarmState::Alarm => {
            let why = condition(change)
                .or_else(|| {
                    change
                        .children
                        .first()
                        .map(|c| format!("{} in {}", c.name, c.state.as_deref().unwrap_or("ALARM")))
                })
                .or_else(|| change.reason.clone());
            match why {
                Some(why) => format!("{env}ALARM {name}{composite}: {why}"),
                None => format!("{env}ALARM {name}{composite}"),
            }
        }
        AlarmState::Ok => match (change.previous, lasted) {
            (_, Some((_, lasted))) => format!(
                "{env}OK {name}{composite}: resolved after {}",
                format_duration(lasted.num_seconds())
            ),
            (Some(AlarmState::Alarm), None) => format!("{env}OK {name}{composite}: resolved"),
            (Some(AlarmState::InsufficientData), None) => {
                format!("{env}OK {name}{composite}: data again, within its threshold")
            }
            _ => format!("{env}OK {name}{composite}"),
        },
        // A metric that stops after an ALARM is as likely a dead service as a healed one.
        AlarmState::InsufficientData if change.previous == Some(AlarmState::Alarm) => {
            format!("{env}INSUFFICIENT_DATA {name}{composite}: no data, was ALARM (not resolved)")
        }
        AlarmState::InsufficientData => {
            format!("{env}INSUFFICIENT_DATA {name}{composite}: not enough data to evaluate")
        }
    };
    let mut text = String::new();
    row(&mut text, "Alarm", &format!("{name}{composite}"));
    let state = match change.previous {
        Some(previous) => format!("{} (was {})", change.state.as_str(), previous.as_str()),
        None => change.state.as_str().to_string(),
    };
    row(&mut text, "State", &state);
    if let Some(at) = change.changed_at {
        row(&mut text, "Since", &show_time(at));
    }
    match (lasted, change.state, change.previous) {
        (Some((since, lasted)), _, _) => row(
            &mut text,
            "Lasted",
            &format!(
                "{} (in ALARM from {})",
                format_duration(lasted.num_seconds()),
                show_time(since)
            ),
        ),
        (None, AlarmState::Ok, Some(AlarmState::Alarm)) => row(
            &mut text,
            "Lasted",
            "unknown (the ALARM's start was not seen)",
        ),
        _ => {}
    }
    alarm_rows(&mut text, change);
    let severity = alarm_severity(change, rules);
    // The OK that ends a page is texted too (the ALARM was, unless the rule made it a warning).
    let ends_a_page = change.state == AlarmState::Ok
        && (lasted.is_some() || change.previous == Some(AlarmState::Alarm))
        && !rules.is_warning(name);
    alarm_base(
        name,
        &change.region,
        change.state,
        severity,
        severity == Severity::Critical || ends_a_page,
        subject,
        text,
    )
}

/// A change delivered after a later one of the same alarm (a retried send, the slower of two
/// routes): told for the record, as old news, never as a page.
pub fn late_alarm_notification(
    change: &AlarmChange,
    now_state: AlarmState,
    now_since: DateTime<Utc>,
    environment: Option<&str>,
) -> Notification {
    let subject = format!(
        "{}{} {} (delivered late; {} since {})",
        env_prefix(environment),
        change.state.as_str(),
        change.name,
        now_state.as_str(),
        now_since.format("%H:%M UTC")
    );
    let mut text = format!(
        "This change reached the notifier after a later one. The alarm is {} since {}.\n\n",
        now_state.as_str(),
        show_time(now_since)
    );
    row(&mut text, "Alarm", &change.name);
    row(&mut text, "This change", change.state.as_str());
    if let Some(at) = change.changed_at {
        row(&mut text, "At", &show_time(at));
    }
    alarm_rows(&mut text, change);
    alarm_base(
        &change.name,
        &change.region,
        change.state,
        Severity::Info,
        false,
        subject,
        text,
    )
    .with_attribute("late", "true")
}

/// The one message that stands for an alarm's changes while it flaps: `entries` entries into
/// ALARM within the window, and nothing more is told for this alarm until `folded_until`, when
/// the scheduled check tells the state it settled in.
pub fn alarm_flapping_notification(
    change: &AlarmChange,
    entries: usize,
    rules: &AlarmRules,
    folded_until: DateTime<Utc>,
    environment: Option<&str>,
) -> Notification {
    let minutes = rules.flap_window.as_secs() / 60;
    // The subject (and SMS) never says OK: the changes that follow are folded, and an OK here
    // could be followed by an ALARM that lasts.
    let subject = format!(
        "{}FLAPPING {}: ALARM {entries} times in {minutes} min",
        env_prefix(environment),
        change.name,
    );
    let mut text = format!(
        "The alarm is flapping: it entered ALARM {entries} times in the last {minutes} minutes. Its \
         changes until {} are folded into this message instead of a page each. Treat it as in \
         ALARM: within 10 minutes after that time, a message says the state it settled in.\n\n",
        show_time(folded_until)
    );
    row(&mut text, "Alarm", &change.name);
    row(&mut text, "Latest state", change.state.as_str());
    if let Some(at) = change.changed_at {
        row(&mut text, "Changed at", &show_time(at));
    }
    alarm_rows(&mut text, change);
    // A flapping alarm is as bad as its ALARM, whichever state it is in at this moment.
    let severity = if rules.is_warning(&change.name) {
        Severity::Warning
    } else {
        Severity::Critical
    };
    alarm_base(
        &change.name,
        &change.region,
        change.state,
        severity,
        severity == Severity::Critical,
        subject,
        text,
    )
    .with_attribute("flapping", "true")
}

/// The state a flapping alarm settled in at the end of its fold: its last change in the window,
/// at `at`.
pub fn alarm_settled_notification(
    fold: &Fold,
    state: AlarmState,
    at: DateTime<Utc>,
    alarm_since: Option<DateTime<Utc>>,
    rules: &AlarmRules,
    environment: Option<&str>,
) -> Notification {
    let env = env_prefix(environment);
    let name = &fold.name;
    let when = at.format("%H:%M UTC");
    let subject = match state {
        AlarmState::Ok => format!("{env}OK {name}: settled after flapping, OK since {when}"),
        AlarmState::Alarm => format!("{env}ALARM {name}: in ALARM since {when}, after flapping"),
        AlarmState::InsufficientData => {
            format!("{env}INSUFFICIENT_DATA {name}: no data since {when}, after flapping")
        }
    };
    let minutes = rules.flap_window.as_secs() / 60;
    let mut text = format!(
        "The alarm flapped: it entered ALARM {} times in {minutes} minutes, and its changes until \
         {} were folded into one message. Its last change in that time:\n\n",
        fold.entries,
        show_time(fold.until)
    );
    row(&mut text, "Alarm", name);
    row(&mut text, "State", state.as_str());
    row(&mut text, "Since", &show_time(at));
    if let Some(since) = alarm_since.filter(|s| *s <= at) {
        row(
            &mut text,
            "Last ALARM",
            &format!(
                "{} (from {})",
                format_duration((at - since).num_seconds()),
                show_time(since)
            ),
        );
    }
    row(
        &mut text,
        "Account/Region",
        &format!("{} / {}", fold.account, fold.region),
    );
    let paging = !rules.is_warning(name);
    let severity = match state {
        AlarmState::Ok => Severity::Info,
        AlarmState::Alarm if paging => Severity::Critical,
        AlarmState::Alarm | AlarmState::InsufficientData => Severity::Warning,
    };
    // The flapping message paged: whatever it settled in is texted too.
    alarm_base(name, &fold.region, state, severity, paging, subject, text)
        .with_attribute("flapping", "settled")
}

/// How bad a Health event is, by its category, scope and status.
pub fn health_severity(event: &HealthEvent) -> Severity {
    if event.is_closed() {
        return Severity::Info;
    }
    match event.category.as_deref() {
        // An issue with this account's resources is a page; one with a service in the region
        // (PUBLIC) may not touch them.
        Some("issue") if event.scope.as_deref() == Some("ACCOUNT_SPECIFIC") => Severity::Critical,
        Some("issue" | "scheduledChange" | "investigation") => Severity::Warning,
        _ => Severity::Info,
    }
}

fn health_link(event: &HealthEvent) -> String {
    format!(
        "https://health.aws.amazon.com/health/home#/account/event-log?eventID={}&eventTab=details",
        percent_encode(&event.arn)
    )
}

/// What changed since the update before, in one line each.
fn health_changes(event: &HealthEvent, before: &HealthUpdate) -> Vec<String> {
    let now = HealthUpdate::of(event);
    let time = |t: Option<DateTime<Utc>>| t.map(show_time).unwrap_or_else(|| "(none)".into());
    let mut changes = Vec::new();
    if now.status != before.status {
        changes.push(format!(
            "status {} -> {}",
            before.status.as_deref().unwrap_or("(none)"),
            now.status.as_deref().unwrap_or("(none)")
        ));
    }
    if now.start != before.start {
        changes.push(format!(
            "start {} -> {}",
            time(before.start),
            time(now.start)
        ));
    }
    if now.end != before.end {
        changes.push(format!("end {} -> {}", time(before.end), time(now.end)));
    }
    if now.affected != before.affected {
        changes.push(format!(
            "affected resources {} -> {}",
            before.affected, now.affected
        ));
    }
    if now.description_digest != before.description_digest {
        changes.push("description updated".into());
    }
    changes
}

pub fn health_notification(
    event: &HealthEvent,
    before: Option<&HealthUpdate>,
    environment: Option<&str>,
) -> Notification {
    let service = event.service.as_deref().unwrap_or("AWS");
    let type_code = event.type_code.as_deref().unwrap_or("(type not given)");
    let changes = before.map(|b| health_changes(event, b));
    let mut subject = format!(
        "{}AWS Health {service} {}{}: {type_code}",
        env_prefix(environment),
        event.category_short(),
        if event.is_closed() {
            " closed"
        } else if changes.is_some() {
            " updated"
        } else {
            ""
        },
    );
    match event.affected.as_slice() {
        [] => {}
        [one] => subject.push_str(&format!(" ({one})")),
        [one, rest @ ..] => subject.push_str(&format!(" ({one} +{})", rest.len())),
    }
    // When a scheduled change starts, if it fits: the subject is also the SMS.
    if let (Some(start), false, Some("scheduledChange")) =
        (event.start, event.is_closed(), event.category.as_deref())
    {
        let with_start = format!("{subject} at {}", start.format("%Y-%m-%d %H:%M UTC"));
        if with_start.chars().count() <= MAX_SUBJECT_CHARS {
            subject = with_start;
        }
    }
    let mut text = String::new();
    if let Some(changes) = &changes {
        let line = if changes.is_empty() {
            "no change in status, times or affected resources".to_string()
        } else {
            changes.join("; ")
        };
        row(&mut text, "Changed", &line);
    }
    row(&mut text, "Service", service);
    row(&mut text, "Event type", type_code);
    row(&mut text, "Category", event.category_words());
    if let Some(scope) = &event.scope {
        row(&mut text, "Scope", scope);
    }
    if let Some(status) = &event.status {
        row(&mut text, "Status", status);
    }
    if let Some(start) = event.start {
        row(&mut text, "Start", &show_time(start));
    }
    if let Some(end) = event.end {
        row(&mut text, "End", &show_time(end));
    }
    if !event.affected.is_empty() {
        let more = event.affected_count.saturating_sub(event.affected.len());
        let mut list = event.affected.join(", ");
        if more > 0 {
            list.push_str(&format!(" and {more} more"));
        }
        row(&mut text, "Affected", &list);
    }
    row(
        &mut text,
        "Account/Region",
        &format!("{} / {}", event.account, event.region),
    );
    row(&mut text, "Event", &event.arn);
    if let Some(description) = &event.description {
        text.push('\n');
        text.push_str(description);
        text.push('\n');
    }
    let severity = health_severity(event);
    let mut n = Notification::new(crate::NAME, severity, subject, text)
        .with_attribute("kind", KIND_HEALTH)
        .with_link("AWS Health", health_link(event));
    // An issue with this account's resources pages, and so does its end.
    let account_issue = event.category.as_deref() == Some("issue")
        && event.scope.as_deref() == Some("ACCOUNT_SPECIFIC");
    if severity == Severity::Critical || (account_issue && event.is_closed()) {
        n = n.with_attribute(SMS_ATTRIBUTE, "true");
    }
    if let Some(resource) = event.affected.first() {
        n = n.with_resource(resource.clone());
    }
    if let Some(category) = &event.category {
        n = n.with_attribute("health_category", category.clone());
    }
    n
}

pub fn finding_severity(finding: &Finding) -> Severity {
    match finding.band {
        Band::Low => Severity::Info,
        Band::Medium => Severity::Warning,
        Band::High | Band::Critical => Severity::Critical,
    }
}

fn finding_link(finding: &Finding) -> Option<String> {
    let r = region_code(&finding.region)?;
    Some(format!(
        "https://{r}.console.aws.amazon.com/guardduty/home?region={r}#/findings?macros=current&fId={}",
        percent_encode(&finding.id)
    ))
}

pub fn finding_notification(finding: &Finding, environment: Option<&str>) -> Notification {
    let band = finding.band.as_str();
    let subject = format!(
        "{}GuardDuty {band} {}: {} on {}",
        env_prefix(environment),
        number(finding.severity),
        finding.finding_type,
        finding.resource_name
    );
    let mut text = String::new();
    if let Some(title) = &finding.title {
        text.push_str(title);
        text.push_str("\n\n");
    }
    row(&mut text, "Type", &finding.finding_type);
    row(
        &mut text,
        "Severity",
        &format!("{} ({band})", number(finding.severity)),
    );
    row(&mut text, "Resource", &finding.resource);
    if let Some(count) = finding.count {
        row(&mut text, "Count", &count.to_string());
    }
    if let Some(at) = finding.first_seen {
        row(&mut text, "First seen", &show_time(at));
    }
    if let Some(at) = finding.last_seen {
        row(&mut text, "Last seen", &show_time(at));
    }
    row(
        &mut text,
        "Account/Region",
        &format!("{} / {}", finding.account, finding.region),
    );
    row(&mut text, "Finding", &finding.id);
    if let Some(description) = &finding.description {
        text.push('\n');
        text.push_str(description);
        text.push('\n');
    }
    text.push_str(
        "\nThis finding is told again when its severity band changes, not at each repeat (a higher count, a later last seen).\n",
    );
    let severity = finding_severity(finding);
    let mut n = Notification::new(crate::NAME, severity, subject, text)
        .with_resource(finding.resource.clone())
        .with_attribute("kind", KIND_GUARDDUTY)
        .with_attribute("finding_type", finding.finding_type.clone());
    if let Some(link) = finding_link(finding) {
        n = n.with_link("Finding", link);
    }
    if severity == Severity::Critical {
        n = n.with_attribute(SMS_ATTRIBUTE, "true");
    }
    n
}
