//! infra/ checked against the code without AWS or a Terraform binary: the HCL is parsed and
//! compared with what the functions read and call. (Event patterns: events.rs; layout and
//! references: layout.rs.)
//!
//! A function module whose crate is not in this checkout yet is skipped with a message; every
//! function crate that is here is checked strictly.

use crate::{code, hcl_model, iam, source};
use std::collections::{BTreeMap, BTreeSet};

use crate::hcl_model::attr;
use crate::support::*;
use hcl::Expression;

/// Variables set by Lambda or used only by tests: `AWS_*` (region, endpoint, SDK tuning with
/// defaults, log level from the logging config) and `RUST_LOG`.
fn platform_variable(name: &str) -> bool {
    name.starts_with("AWS_") || name == "RUST_LOG"
}

#[test]
fn every_function_crate_has_a_module_deployed_by_the_root() {
    let root_module = load(&root().join("infra"));
    let called: BTreeSet<String> = root_module
        .module_calls()
        .into_iter()
        .filter_map(|(_, source, _)| source.strip_prefix("./modules/").map(String::from))
        .collect();
    let listed: BTreeSet<String> = match root_module.local("functions") {
        Some(expr) => hcl_model::string_list(expr)
            .expect("local.functions")
            .into_iter()
            .collect(),
        None => panic!("infra/main.tf: no local.functions (the state bucket's function list)"),
    };
    for name in function_crates() {
        let dir = root().join("infra/modules").join(&name);
        assert!(
            dir.is_dir(),
            "functions/{name} has no module infra/modules/{name}"
        );
        assert!(
            called.contains(&name),
            "infra/main.tf does not deploy modules/{name}"
        );
        assert!(
            listed.contains(&name),
            "local.functions in infra/main.tf does not list {name}"
        );
        // The module's name is the crate's: it is the state prefix and the metric dimension.
        let module = function_module(&name);
        let local_name = module.local("name");
        assert!(
            matches!(local_name, Some(Expression::String(s)) if *s == name),
            "infra/modules/{name}: local.name must be \"{name}\" (state prefix, alarm names)"
        );
    }
    for name in function_modules() {
        assert!(
            called.contains(&name),
            "infra/main.tf does not deploy modules/{name}"
        );
        assert!(
            listed.contains(&name),
            "local.functions in infra/main.tf does not list {name}"
        );
    }
}

pub(crate) fn code_variables(function: &str) -> BTreeSet<String> {
    let mut sources =
        source::crate_sources(&root().join("functions").join(function)).expect("function sources");
    sources.extend(source::crate_sources(&root().join("shared")).expect("shared sources"));
    code::env_vars(&sources)
        .into_iter()
        .filter(|v| !platform_variable(v))
        .collect()
}

#[test]
fn every_variable_a_function_reads_is_set_by_its_module_and_no_other() {
    let lambda = function_module("lambda");
    for name in checked_functions("variables") {
        let module = function_module(&name);
        let set = module_variables(&lambda, &module);
        let read = code_variables(&name);
        assert!(
            read.contains("STATE_BUCKET"),
            "{name}: the scan found no variables: {read:?}"
        );
        let missing: Vec<_> = read.difference(&set).collect();
        let stale: Vec<_> = set.difference(&read).collect();
        assert!(
            missing.is_empty(),
            "{name} reads {missing:?} but infra/modules/{name} does not set them"
        );
        assert!(
            stale.is_empty(),
            "infra/modules/{name} sets {stale:?} but {name} never reads them"
        );
        eprintln!("variables: {name}: {} read, all set", read.len());
    }
}

#[test]
fn every_aws_call_is_allowed_by_the_role_and_nothing_more() {
    let workspace = root();
    let operations = code::sdk_operations(&workspace).expect("SDK operations");
    let shared_dir = workspace.join("shared");
    let shared_sources = source::crate_sources(&shared_dir).expect("shared sources");
    let shared_crates = code::sdk_dependencies(&shared_dir).expect("shared Cargo.toml");
    let shared_calls =
        code::sdk_calls(&shared_sources, &shared_crates, &operations).expect("shared calls");
    assert!(
        !shared_calls.is_empty(),
        "no SDK call found in shared/: is the scan broken?"
    );
    let lambda = function_module("lambda");
    for name in checked_functions("iam") {
        let dir = workspace.join("functions").join(&name);
        let sources = source::crate_sources(&dir).expect("function sources");
        let crates = code::sdk_dependencies(&dir).expect("function Cargo.toml");
        let mut calls =
            code::sdk_calls(&sources, &crates, &operations).unwrap_or_else(|e| panic!("{e}"));
        calls.extend(shared_calls.iter().cloned());

        let mut needed: BTreeMap<String, String> = BTreeMap::new();
        for (sdk, op) in &calls {
            let action = iam::action_of(sdk, op).unwrap_or_else(|e| panic!("{e}"));
            needed.insert(iam::norm(&action), format!("{sdk} {op}()"));
        }
        for (action, extra, why) in iam::IMPLIED {
            if needed.contains_key(&iam::norm(action)) {
                for e in *extra {
                    needed
                        .entry(iam::norm(e))
                        .or_insert_with(|| format!("{action}: {why}"));
                }
            }
        }
        for (action, why) in iam::PLATFORM {
            needed.insert(iam::norm(action), why.to_string());
        }

        let module = function_module(&name);
        let docs = iam::role_documents(&lambda, &module).unwrap_or_else(|e| panic!("{e}"));
        let granted = iam::granted(&docs).unwrap_or_else(|e| panic!("{name}: {e}"));
        let missing: Vec<_> = needed
            .iter()
            .filter(|(action, _)| !granted.iter().any(|g| iam::covers(g, action)))
            .collect();
        let unused: Vec<_> = granted
            .iter()
            .filter(|g| !needed.keys().any(|action| iam::covers(g, action)))
            .collect();
        assert!(
            missing.is_empty(),
            "{name}: the role does not allow {missing:?}"
        );
        assert!(
            unused.is_empty(),
            "{name}: the role allows {unused:?}, which the code never needs"
        );
        eprintln!(
            "iam: {name}: {} actions, each needed: {needed:?}",
            granted.len()
        );
    }
}

#[test]
fn state_bucket_access_is_limited_to_the_function_prefix() {
    let lambda = function_module("lambda");
    let common = lambda
        .data("aws_iam_policy_document", "common")
        .expect("lambda: common policy");
    let statements = iam::statements(common).expect("common statements");
    let objects = statements
        .iter()
        .find(|s| s.actions.iter().any(|a| a == "s3:GetObject"))
        .expect("a statement for the state objects");
    let resources = format!(
        "{}",
        objects.resources.as_ref().expect("state object resources")
    );
    assert!(
        resources.contains("${local.state_name}/*"),
        "state objects must be limited to <function>/*: {resources}"
    );
    let list = statements
        .iter()
        .find(|s| s.actions.iter().any(|a| a == "s3:ListBucket"))
        .expect("s3:ListBucket on the state bucket (a missing key must be 404, not 403)");
    let prefix = list
        .conditions
        .iter()
        .find(|(variable, _)| variable == "s3:prefix");
    assert!(
        prefix
            .is_some_and(|(_, values)| values.iter().any(|v| v.contains("${local.state_name}/*"))),
        "s3:ListBucket must carry an s3:prefix condition <function>/*"
    );
    // And the name the module passes is the crate name the code namespaces its keys with.
    for name in function_crates() {
        let namespace = code::state_namespace(&root().join("functions").join(&name));
        assert_eq!(
            namespace.unwrap_or_else(|e| panic!("{e}")),
            name,
            "{name}: its state keys must live under {name}/"
        );
    }
    for name in function_modules() {
        let module = function_module(&name);
        // lambda_call finds the call named local.name; a second function of the crate keeps the
        // crate's state prefix.
        let _ = lambda_call(&module);
        for call in lambda_calls(&module) {
            let passed = attr(&call.body, "name").map(|e| format!("{e}"));
            if passed.as_deref() == Some("local.name") {
                continue;
            }
            let state = attr(&call.body, "state_name").map(|e| format!("{e}"));
            assert_eq!(
                state.as_deref(),
                Some("local.name"),
                "{name}: a second function ({passed:?}) must pass state_name = local.name to ../lambda"
            );
        }
    }
}

/// Actions a role may grant on every resource, and why: they have no resource to name.
const ANY_RESOURCE: &[(&str, &str)] = &[
    (
        "ec2:DescribeInstances",
        "describe calls have no resource-level permissions",
    ),
    (
        "elasticloadbalancing:DescribeTargetHealth",
        "no resource-level permissions",
    ),
    (
        "elasticloadbalancing:DescribeTargetGroups",
        "describe calls have no resource-level permissions",
    ),
    (
        "secretsmanager:GetRandomPassword",
        "generates a string, touches no secret",
    ),
    ("ce:GetCostAndUsage", "Cost Explorer has no resources"),
    (
        "rds:DescribeExportTasks",
        "the account's export list, not one snapshot's",
    ),
];

#[test]
fn only_actions_without_a_resource_are_granted_on_every_resource() {
    let lambda = function_module("lambda");
    for name in function_modules() {
        let module = function_module(&name);
        let docs = iam::role_documents(&lambda, &module).unwrap_or_else(|e| panic!("{e}"));
        for (_, doc) in docs {
            for statement in iam::statements(doc).unwrap_or_else(|e| panic!("{name}: {e}")) {
                let everything = matches!(
                    &statement.resources,
                    Some(Expression::Array(items)) if items.iter().any(|i| matches!(i, Expression::String(s) if s == "*"))
                );
                if !everything {
                    continue;
                }
                for action in &statement.actions {
                    assert!(
                        ANY_RESOURCE.iter().any(|(a, _)| a == action),
                        "{name}: {action} is granted on \"*\"; name its resources (or add it to ANY_RESOURCE with why)"
                    );
                }
            }
        }
    }
}

/// The S3 calls in a function's own code (the state bucket's are shared/'s) act on the buckets
/// its own configuration names: each such bucket the module creates must allow each of them.
#[test]
fn a_function_may_do_on_its_own_buckets_what_its_code_does() {
    let workspace = root();
    let operations = code::sdk_operations(&workspace).expect("SDK operations");
    let lambda = function_module("lambda");
    for name in checked_functions("buckets") {
        let dir = workspace.join("functions").join(&name);
        let sources = source::crate_sources(&dir).expect("function sources");
        let crates = code::sdk_dependencies(&dir).expect("function Cargo.toml");
        let calls =
            code::sdk_calls(&sources, &crates, &operations).unwrap_or_else(|e| panic!("{e}"));
        let s3_actions: BTreeSet<String> = calls
            .iter()
            .filter(|(sdk, _)| sdk == "aws-sdk-s3")
            .map(|(sdk, op)| iam::action_of(sdk, op).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let module = function_module(&name);
        let environment = attr(&lambda_call(&module).body, "environment").expect("environment");
        let docs = iam::role_documents(&lambda, &module).unwrap_or_else(|e| panic!("{e}"));
        for variable in code::env_vars(&sources)
            .iter()
            .filter(|v| v.ends_with("_BUCKET") && *v != "STATE_BUCKET")
        {
            let value = hcl_model::object_get(environment, variable)
                .map(|e| format!("{e}"))
                .unwrap_or_default();
            let Some(bucket) = value
                .strip_prefix("aws_s3_bucket.")
                .and_then(|r| r.strip_suffix(".id"))
            else {
                eprintln!(
                    "buckets: {name}: {variable} = {value:?} is not a bucket of its module; not checked"
                );
                continue;
            };
            let arn = format!("aws_s3_bucket.{bucket}.arn");
            for action in &s3_actions {
                assert!(
                    iam::allows_on(&docs, action, &arn),
                    "{name} calls {action} on {variable}, but its role does not allow it on {arn}"
                );
            }
            if s3_actions.contains("s3:GetObject") {
                assert!(
                    iam::allows_on(&docs, "s3:ListBucket", &arn),
                    "{name} reads {variable}: allow s3:ListBucket there, or a missing object is a 403"
                );
            }
            eprintln!("buckets: {name}: {s3_actions:?} allowed on {variable}");
        }
    }
}
