//! The EventBridge patterns of infra/, run through a small evaluator of EventBridge's rules on
//! the fixtures in events/: each rule matches the fixtures it is for and no other.

use crate::{hcl_model, pattern};
use std::collections::BTreeMap;

use crate::hcl_model::{attr, object_get, to_json, to_json_with};
use crate::support::*;
use hcl::Expression;

/// Which fixtures (file stems in events/, `*` at the end for a prefix) each EventBridge rule must
/// match; it must match no other fixture. Rule ids are `<module>/<resource>[<for_each key>]`.
const EXPECTED_MATCHES: &[(&str, &[&str])] = &[
    ("deploy-notifier/events[deployments]", &["ecs-deployment-*"]),
    (
        "deploy-notifier/events[service-actions]",
        &["ecs-service-action-placement-failure"],
    ),
    (
        "deploy-notifier/events[stopped-tasks]",
        &["ecs-task-stopped-*"],
    ),
    (
        "deploy-notifier/events[health-check-kills]",
        &["ecs-task-killed-health-checks"],
    ),
    ("deploy-notifier/events[health]", &["aws-health-*"]),
    ("deploy-notifier/events[guardduty]", &["guardduty-finding"]),
    ("deploy-notifier/events[alarms]", &["cloudwatch-alarm-*"]),
    (
        "snapshot-exporter/rds[snapshots]",
        &[
            "rds-snapshot-created-manual",
            "rds-snapshot-copied",
            "rds-snapshot-export-*",
        ],
    ),
    (
        "snapshot-exporter/rds[cluster-snapshots]",
        &[
            "rds-cluster-snapshot-created",
            "rds-cluster-snapshot-export-*",
        ],
    ),
    (
        "snapshot-exporter/automated[automated-snapshots]",
        &["rds-snapshot-created-automated"],
    ),
    (
        "snapshot-exporter/automated[automated-cluster-snapshots]",
        &["rds-cluster-snapshot-created-automated"],
    ),
];

/// The suite's prefix the patterns are read with (`project_prefix`): the operator's own alarms
/// share it (`des-api-5xx` in the fixtures).
const PREFIX: &str = "des";

/// The suite's own alarm names with `prefix`, as infra/modules/deploy-notifier lists them (its
/// locals `suite_functions` × `suite_alarm_suffixes`, and `suite_alarm_specials`).
fn suite_alarm_names(prefix: &str) -> Vec<String> {
    let module = function_module("deploy-notifier");
    let list = |name: &str| {
        hcl_model::string_list(module.local(name).expect(name)).expect("a list of names")
    };
    let mut names = Vec::new();
    for function in list("suite_functions") {
        for suffix in list("suite_alarm_suffixes") {
            names.push(format!("{prefix}-{function}-{suffix}"));
        }
    }
    for special in list("suite_alarm_specials") {
        names.push(format!("{prefix}-{special}"));
    }
    names
}

/// What a pattern's references stand for in one deployment: the suite's alarm names, the
/// default GuardDuty severity floor.
fn example(expr: &Expression) -> Option<serde_json::Value> {
    match format!("{expr}").as_str() {
        "local.suite_alarm_names" => Some(suite_alarm_names(PREFIX).into()),
        "local.guardduty_min_severity" => Some(4.into()),
        _ => None,
    }
}

/// Every alarm infra makes is one the deploy-notifier's alarm rule leaves out (it goes to the
/// alert topic directly: a broken notifier must not be the only way the alarm that says so is
/// told), and the rule's pattern stays within EventBridge's 2,048 characters at the longest
/// prefix (16 characters). The alarms are read from the modules: each function module's lambda
/// modules (by name) with the lambda module's alarms, and each module's own alarms.
#[test]
fn the_suites_own_alarms_are_left_out_of_the_alarm_rule() {
    let listed: std::collections::BTreeSet<String> = suite_alarm_names("p").into_iter().collect();
    let template = |expr: &Expression, locals: &[(&str, String)]| {
        let mut text = format!("{expr}").trim_matches('"').to_string();
        // `local.name` itself, or templates with `${local.name}` in them.
        if let Some((_, value)) = locals.iter().find(|(name, _)| *name == text) {
            return value.clone();
        }
        for (name, value) in locals {
            text = text.replace(&format!("${{{name}}}"), value);
        }
        assert!(
            !text.contains("${"),
            "an alarm name this check cannot read: {expr}"
        );
        text
    };
    let lambda = load(&root().join("infra/modules/lambda"));
    let lambda_alarms: Vec<Expression> = lambda
        .typed("resource", "aws_cloudwatch_metric_alarm")
        .into_iter()
        .map(|(_, block)| attr(&block.body, "alarm_name").expect("alarm_name").clone())
        .collect();
    assert!(lambda_alarms.len() >= 4);
    let mut made = Vec::new();
    for name in function_modules() {
        let module = function_module(&name);
        let own_name = module
            .local("name")
            .map(|n| format!("{n}").trim_matches('"').to_string())
            .unwrap_or_else(|| name.clone());
        let locals = [
            ("var.common.prefix", "p".to_string()),
            ("local.name", own_name.clone()),
        ];
        for (_, block) in module.typed("resource", "aws_cloudwatch_metric_alarm") {
            made.push(template(
                attr(&block.body, "alarm_name").expect("alarm_name"),
                &locals,
            ));
        }
        for (_, source, block) in module.module_calls() {
            if source != "../lambda" {
                continue;
            }
            let lambda_name = attr(&block.body, "name").expect("a lambda module's name");
            let function_name = format!("p-{}", template(lambda_name, &locals));
            for alarm in &lambda_alarms {
                made.push(template(
                    alarm,
                    &[("local.function_name", function_name.clone())],
                ));
            }
        }
    }
    assert!(made.len() >= 20, "alarms found: {made:?}");
    for alarm in &made {
        assert!(
            listed.contains(alarm),
            "infra makes an alarm named {alarm}, which suite_alarm_names does not list: the alarm rule would route it to deploy-notifier"
        );
    }
    let rules = event_rules();
    let pattern = rules
        .get("deploy-notifier/events[alarms]")
        .expect("the alarm rule");
    let longest = serde_json::to_string(pattern)
        .unwrap()
        .replace(&format!("\"{PREFIX}-"), &format!("\"{}-", "p".repeat(16)));
    assert!(
        longest.len() <= 2048,
        "{} characters: {longest}",
        longest.len()
    );
}

/// Every EventBridge rule with a pattern in a function module, by id.
fn event_rules() -> BTreeMap<String, serde_json::Value> {
    let mut rules = BTreeMap::new();
    for name in function_modules() {
        let module = function_module(&name);
        for (resource, block) in module.typed("resource", "aws_cloudwatch_event_rule") {
            let Some(pattern) = attr(&block.body, "event_pattern") else {
                continue;
            };
            let Expression::FuncCall(call) = pattern else {
                panic!("{name}/{resource}: event_pattern must be jsonencode(...)");
            };
            let arg = call.args.first().expect("jsonencode argument");
            match (arg, attr(&block.body, "for_each")) {
                (Expression::Object(_), _) => {
                    rules.insert(
                        format!("{name}/{resource}"),
                        to_json(arg).expect("literal pattern"),
                    );
                }
                (Expression::Traversal(_), Some(for_each)) => {
                    // for_each = local.<map>, event_pattern = jsonencode(each.value.<attr>)
                    let field = format!("{arg}")
                        .rsplit('.')
                        .next()
                        .map(String::from)
                        .expect("attribute");
                    // `local.<map>`, `<condition> ? local.<map> : {}` for optional rules, or
                    // `merge(local.<map>, local.<other map>)`.
                    let map_names: Vec<String> = hcl_model::references(for_each)
                        .into_iter()
                        .filter_map(|path| match path.as_slice() {
                            [root, map] if root == "local" && map.ends_with("rules") => {
                                Some(map.clone())
                            }
                            _ => None,
                        })
                        .collect();
                    assert!(
                        !map_names.is_empty(),
                        "{name}/{resource}: for_each must name local maps of rules"
                    );
                    for map_name in map_names {
                        let mut map = module
                            .local(&map_name)
                            .unwrap_or_else(|| panic!("{name}/{resource}: no local {map_name}"));
                        // `{ for key, rule in local.<map> : key => rule if ... }`: the rules the
                        // deployment enables, out of that map.
                        if let Expression::ForExpr(filter) = map {
                            let inner = format!("{}", filter.collection_expr);
                            let inner = inner.strip_prefix("local.").unwrap_or_else(|| {
                                panic!("{name}/{resource}: {map_name} must filter a local map")
                            });
                            map = module
                                .local(inner)
                                .unwrap_or_else(|| panic!("{name}/{resource}: no local {inner}"));
                        }
                        let Expression::Object(entries) = map else {
                            panic!("{name}/{resource}: {map_name} is not an object");
                        };
                        for (key, value) in entries {
                            let key = hcl_model::key_name(key).expect("rule key");
                            let pattern = object_get(value, &field).expect("pattern attribute");
                            rules.insert(
                                format!("{name}/{resource}[{key}]"),
                                to_json_with(pattern, &example)
                                    .unwrap_or_else(|e| panic!("{name}/{resource}[{key}]: {e}")),
                            );
                        }
                    }
                }
                _ => panic!("{name}/{resource}: event_pattern this check cannot read: {pattern}"),
            }
        }
    }
    rules
}

fn fixtures() -> BTreeMap<String, serde_json::Value> {
    std::fs::read_dir(root().join("events"))
        .expect("events/")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&p).expect("fixture");
            (
                stem,
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            )
        })
        .collect()
}

fn wanted(globs: &[&str], stem: &str) -> bool {
    globs.iter().any(|g| match g.strip_suffix('*') {
        Some(prefix) => stem.starts_with(prefix),
        None => stem == *g,
    })
}

#[test]
fn event_patterns_match_their_fixtures_and_nothing_else() {
    let rules = event_rules();
    let mut events = fixtures();
    // Variants the rules must turn away: a task stopped by hand, a task that is not a service's.
    if let Some(task) = events.get("ecs-task-stopped-essential-exit").cloned() {
        let mut by_hand = task.clone();
        by_hand["detail"]["stopCode"] = "UserInitiated".into();
        events.insert("variant-task-stopped-by-user".into(), by_hand);
        let mut batch = task.clone();
        batch["detail"]["group"] = "family:nightly-batch".into();
        events.insert("variant-task-not-of-a-service".into(), batch);
        // A scale-in or a deployment replacing a task: the scheduler's stop code without a
        // health check in the reason.
        let mut scale_in = task;
        scale_in["detail"]["stopCode"] = "ServiceSchedulerInitiated".into();
        scale_in["detail"]["stoppedReason"] =
            "Scaling activity initiated by (deployment ecs-svc/1208329178457431873)".into();
        events.insert("variant-task-stopped-by-scale-in".into(), scale_in);
    }
    // The suite's own alarm, which goes to the alert topic directly; a low GuardDuty finding.
    if let Some(alarm) = events.get("cloudwatch-alarm-state-change").cloned() {
        let mut own = alarm;
        own["detail"]["alarmName"] = format!("{PREFIX}-deploy-notifier-errors").into();
        events.insert("variant-the-suites-own-alarm".into(), own.clone());
        own["detail"]["alarmName"] = format!("{PREFIX}-health-sweeper-heartbeat").into();
        events.insert("variant-the-suites-heartbeat-alarm".into(), own);
    }
    if let Some(finding) = events.get("guardduty-finding").cloned() {
        let mut low = finding;
        low["detail"]["severity"] = 2.into();
        events.insert("variant-low-guardduty-finding".into(), low);
    }
    let crates = function_crates();
    for (id, pattern) in &rules {
        let function = id.split('/').next().unwrap_or_default();
        let globs = EXPECTED_MATCHES
            .iter()
            .find(|(rule, _)| rule == id)
            .map(|(_, globs)| *globs)
            .unwrap_or_else(|| {
                panic!("rule {id} has no entry in EXPECTED_MATCHES: say which fixtures it is for")
            });
        let mut matched = Vec::new();
        for (stem, event) in &events {
            let hit = pattern::matches(pattern, event).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(
                hit,
                wanted(globs, stem),
                "{id} {} {stem}.json (pattern {pattern})",
                if hit { "matches" } else { "does not match" }
            );
            if hit {
                matched.push(stem.clone());
            }
        }
        if matched.is_empty() {
            assert!(
                !crates.contains(function),
                "{id} matches no fixture in events/ ({globs:?})"
            );
            eprintln!(
                "patterns: skipped {id}: no {globs:?} fixture in events/ (functions/{function} is not here)"
            );
        } else {
            eprintln!("patterns: {id} matches {matched:?} and nothing else");
        }
    }
    for (id, _) in EXPECTED_MATCHES {
        assert!(
            rules.contains_key(*id),
            "EXPECTED_MATCHES names {id}, which infra/ does not define"
        );
    }
}

/// The services a policy document's statement lets in, with whether it is limited to this
/// account (`aws:SourceAccount`).
fn service_statements(module: &hcl_model::Module, doc: &str) -> Vec<(Vec<String>, bool)> {
    let block = module
        .data("aws_iam_policy_document", doc)
        .unwrap_or_else(|| panic!("alerts: no policy document {doc}"));
    hcl_model::nested(&block.body, "statement")
        .into_iter()
        .flat_map(|(statement, _)| {
            let limited = hcl_model::nested(statement, "condition")
                .iter()
                .any(|(c, _)| matches!(attr(c, "variable"), Some(Expression::String(v)) if v == "aws:SourceAccount"));
            hcl_model::nested(statement, "principals")
                .into_iter()
                .filter(|(p, _)| matches!(attr(p, "type"), Some(Expression::String(t)) if t == "Service"))
                .map(move |(p, _)| {
                    let identifiers = attr(p, "identifiers").expect("identifiers");
                    let resolved = match identifiers {
                        Expression::Traversal(_) => {
                            let name = format!("{identifiers}");
                            let local = name.strip_prefix("local.").expect("a local list");
                            module.local(local).expect("the local").clone()
                        }
                        other => other.clone(),
                    };
                    (hcl_model::string_list(&resolved).expect("service names"), limited)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn aws_services_may_publish_alerts_for_this_account_only() {
    let alerts = load(&root().join("infra/modules/alerts"));
    // A Budgets notification to a topic that does not let budgets.amazonaws.com publish is
    // dropped without a word; an encrypted topic needs the key policy to agree. The topics say
    // which account's resources may publish (aws:SourceAccount); the key statement carries no
    // source condition (AWS documents it without one for Budgets and EventBridge: a condition
    // the service's KMS request lacks would drop every notification). RDS event subscriptions
    // publish as events.rds.amazonaws.com.
    let services = [
        "budgets.amazonaws.com",
        "events.amazonaws.com",
        "events.rds.amazonaws.com",
        "cloudwatch.amazonaws.com",
    ];
    for (doc, services, account_only) in [
        ("alerts", &services[..], true),
        ("key", &services[..], false),
        ("budgets", &["budgets.amazonaws.com"][..], true),
    ] {
        let statements = service_statements(&alerts, doc);
        for service in services {
            let allowed = statements
                .iter()
                .find(|(names, _)| names.iter().any(|n| n == service));
            match allowed {
                Some((_, limited)) => assert_eq!(
                    *limited, account_only,
                    "{doc}: {service}: aws:SourceAccount expected: {account_only}"
                ),
                None => panic!("{doc}: {service} may not publish"),
            }
        }
        assert!(
            statements
                .iter()
                .all(|(names, _)| !names.iter().any(|n| n == "rds.amazonaws.com")),
            "{doc}: RDS event notifications publish as events.rds.amazonaws.com"
        );
    }
    // The SMS subscription pages only on what the functions mark with the attribute sms = "true".
    let (_, sms) = alerts
        .typed("resource", "aws_sns_topic_subscription")
        .into_iter()
        .find(|(name, _)| name == "sms")
        .expect("an SMS subscription");
    let Some(Expression::FuncCall(call)) = attr(&sms.body, "filter_policy") else {
        panic!("the SMS subscription needs filter_policy = jsonencode(...)");
    };
    let policy = to_json(call.args.first().expect("policy")).expect("literal policy");
    assert_eq!(policy, serde_json::json!({"sms": ["true"]}));
}

/// Every RDS event id a rule names has a real-shaped fixture of the same kind that the rule
/// matches: no entry of a pattern goes untested.
#[test]
fn every_event_id_a_rule_names_has_a_fixture() {
    let events = fixtures();
    for (id, pattern) in event_rules() {
        let Some(ids) = pattern["detail"]["EventID"].as_array() else {
            continue;
        };
        for event_id in ids.iter().filter_map(|v| v.as_str()) {
            let covered = events.iter().any(|(_, event)| {
                event["detail"]["EventID"] == event_id
                    && pattern::matches(&pattern, event).unwrap_or(false)
            });
            assert!(
                covered,
                "{id} names {event_id}, but no fixture in events/ is one that it matches"
            );
        }
    }
}
