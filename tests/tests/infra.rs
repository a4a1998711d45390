//! infra/ checked against the code without AWS or a Terraform binary: the HCL is parsed and
//! compared with what the functions read and call, and the EventBridge patterns are evaluated on
//! the fixtures in events/.
//!
//! A function module whose crate is not in this checkout yet is skipped with a message; every
//! function crate that is here is checked strictly.

#[path = "infra/code.rs"]
mod code;
#[path = "infra/fmt.rs"]
mod fmt;
#[path = "infra/hcl.rs"]
mod hcl_model;
#[path = "infra/iam.rs"]
mod iam;
#[path = "infra/pattern.rs"]
mod pattern;
#[path = "infra/refs.rs"]
mod refs;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use harness::paths::workspace_root;
use hcl::Expression;
use hcl_model::{Module, attr, label, object_get, object_keys, to_json};

/// Modules of infra/modules that are shared pieces, not functions.
const SHARED_MODULES: &[&str] = &["alerts", "lambda", "state-bucket"];

/// Which fixtures (file stems in events/, `*` at the end for a prefix) each EventBridge rule must
/// match; it must match no other fixture. Rule ids are `<module>/<resource>[<for_each key>]`.
const EXPECTED_MATCHES: &[(&str, &[&str])] = &[
    ("deploy-notifier/ecs[deployments]", &["ecs-deployment-*"]),
    (
        "deploy-notifier/ecs[service-actions]",
        &["ecs-service-action-placement-failure"],
    ),
    ("deploy-notifier/ecs[stopped-tasks]", &["ecs-task-stopped-*"]),
    ("snapshot-exporter/rds[snapshots]", &["rds-snapshot-*"]),
    (
        "snapshot-exporter/rds[cluster-snapshots]",
        &["rds-cluster-snapshot-*"],
    ),
];

/// Variables infra/ sets ahead of the code that reads them, merged separately. Once the code
/// reads one, the check says the entry can go.
const ANNOUNCED: &[(&str, &str)] = &[("health-sweeper", "SWEEP_STALE_SWEEPS")];

/// Variables set by Lambda or used only by tests: `AWS_*` (region, endpoint, SDK tuning with
/// defaults, log level from the logging config) and `RUST_LOG`.
fn platform_variable(name: &str) -> bool {
    name.starts_with("AWS_") || name == "RUST_LOG"
}

fn root() -> PathBuf {
    workspace_root()
}

fn load(path: &Path) -> Module {
    Module::load(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Function crates in this checkout (functions/<name>/Cargo.toml).
fn function_crates() -> BTreeSet<String> {
    std::fs::read_dir(root().join("functions"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("Cargo.toml").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Function modules in infra/modules.
fn function_modules() -> BTreeSet<String> {
    std::fs::read_dir(root().join("infra/modules"))
        .expect("infra/modules")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !SHARED_MODULES.contains(&name.as_str()))
        .collect()
}

/// The function modules whose crate is here; the others are named as skipped.
fn checked_functions(check: &str) -> Vec<String> {
    let crates = function_crates();
    function_modules()
        .into_iter()
        .filter(|name| {
            let here = crates.contains(name);
            if !here {
                eprintln!("{check}: skipped {name}: functions/{name} is not in this checkout");
            }
            here
        })
        .collect()
}

fn function_module(name: &str) -> Module {
    load(&root().join("infra/modules").join(name))
}

/// The call of the shared Lambda module inside a function module.
fn lambda_call<'a>(module: &'a Module) -> &'a hcl::Block {
    module
        .module_calls()
        .into_iter()
        .find(|(_, source, _)| source == "../lambda")
        .map(|(_, _, block)| block)
        .unwrap_or_else(|| panic!("{}: no module call of ../lambda", module.dir.display()))
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
        Some(expr) => hcl_model::string_list(expr).expect("local.functions").into_iter().collect(),
        None => panic!("infra/main.tf: no local.functions (the state bucket's function list)"),
    };
    for name in function_crates() {
        let dir = root().join("infra/modules").join(&name);
        assert!(dir.is_dir(), "functions/{name} has no module infra/modules/{name}");
        assert!(called.contains(&name), "infra/main.tf does not deploy modules/{name}");
        assert!(listed.contains(&name), "local.functions in infra/main.tf does not list {name}");
        // The module's name is the crate's: it is the state prefix and the metric dimension.
        let module = function_module(&name);
        let local_name = module.local("name");
        assert!(
            matches!(local_name, Some(Expression::String(s)) if *s == name),
            "infra/modules/{name}: local.name must be \"{name}\" (state prefix, alarm names)"
        );
    }
    for name in function_modules() {
        assert!(called.contains(&name), "infra/main.tf does not deploy modules/{name}");
        assert!(listed.contains(&name), "local.functions in infra/main.tf does not list {name}");
    }
}

/// The variables a function's module sets: the shared Lambda module's common ones and the
/// `environment` the function module passes.
fn module_variables(lambda: &Module, module: &Module) -> BTreeSet<String> {
    let common = lambda.local("common_environment").expect("lambda module: local.common_environment");
    let own = attr(&lambda_call(module).body, "environment")
        .unwrap_or_else(|| panic!("{}: no environment passed", module.dir.display()));
    object_keys(common)
        .and_then(|mut keys| {
            keys.extend(object_keys(own)?);
            Ok(keys)
        })
        .unwrap_or_else(|e| panic!("{}: {e}", module.dir.display()))
        .into_iter()
        .collect()
}

fn code_variables(function: &str) -> BTreeSet<String> {
    let mut sources = code::crate_sources(&root().join("functions").join(function)).expect("function sources");
    sources.extend(code::crate_sources(&root().join("shared")).expect("shared sources"));
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
        assert!(read.contains("STATE_BUCKET"), "{name}: the scan found no variables: {read:?}");
        let missing: Vec<_> = read.difference(&set).collect();
        let announced: BTreeSet<&str> =
            ANNOUNCED.iter().filter(|(f, _)| *f == name).map(|(_, v)| *v).collect();
        for variable in &announced {
            if read.contains(*variable) {
                eprintln!("variables: {name} reads {variable} now: its ANNOUNCED entry can go");
            } else {
                eprintln!("variables: {name}: {variable} is set ahead of the code that reads it");
            }
        }
        let stale: Vec<_> = set
            .difference(&read)
            .filter(|v| !announced.contains(v.as_str()))
            .collect();
        assert!(missing.is_empty(), "{name} reads {missing:?} but infra/modules/{name} does not set them");
        assert!(stale.is_empty(), "infra/modules/{name} sets {stale:?} but {name} never reads them");
        eprintln!("variables: {name}: {} read, all set", read.len());
    }
}

#[test]
fn every_aws_call_is_allowed_by_the_role_and_nothing_more() {
    let workspace = root();
    let operations = code::sdk_operations(&workspace).expect("SDK operations");
    let shared_dir = workspace.join("shared");
    let shared_sources = code::crate_sources(&shared_dir).expect("shared sources");
    let shared_crates = code::sdk_dependencies(&shared_dir).expect("shared Cargo.toml");
    let shared_calls = code::sdk_calls(&shared_sources, &shared_crates, &operations).expect("shared calls");
    assert!(!shared_calls.is_empty(), "no SDK call found in shared/: is the scan broken?");
    let lambda = function_module("lambda");
    for name in checked_functions("iam") {
        let dir = workspace.join("functions").join(&name);
        let sources = code::crate_sources(&dir).expect("function sources");
        let crates = code::sdk_dependencies(&dir).expect("function Cargo.toml");
        let mut calls = code::sdk_calls(&sources, &crates, &operations).unwrap_or_else(|e| panic!("{e}"));
        calls.extend(shared_calls.iter().cloned());

        let mut needed: BTreeMap<String, String> = BTreeMap::new();
        for (sdk, op) in &calls {
            let action = iam::action_of(sdk, op).unwrap_or_else(|e| panic!("{e}"));
            needed.insert(iam::norm(&action), format!("{sdk} {op}()"));
        }
        for (action, extra, why) in iam::IMPLIED {
            if needed.contains_key(&iam::norm(action)) {
                for e in *extra {
                    needed.entry(iam::norm(e)).or_insert_with(|| format!("{action}: {why}"));
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
        assert!(missing.is_empty(), "{name}: the role does not allow {missing:?}");
        assert!(unused.is_empty(), "{name}: the role allows {unused:?}, which the code never needs");
        eprintln!("iam: {name}: {} actions, each needed: {needed:?}", granted.len());
    }
}

#[test]
fn state_bucket_access_is_limited_to_the_function_prefix() {
    let lambda = function_module("lambda");
    let common = lambda.data("aws_iam_policy_document", "common").expect("lambda: common policy");
    let statements = iam::statements(common).expect("common statements");
    let objects = statements
        .iter()
        .find(|s| s.actions.iter().any(|a| a == "s3:GetObject"))
        .expect("a statement for the state objects");
    let resources = format!("{}", objects.resources.as_ref().expect("state object resources"));
    assert!(resources.contains("${var.name}/*"), "state objects must be limited to <function>/*: {resources}");
    let list = statements
        .iter()
        .find(|s| s.actions.iter().any(|a| a == "s3:ListBucket"))
        .expect("s3:ListBucket on the state bucket (a missing key must be 404, not 403)");
    let prefix = list.conditions.iter().find(|(variable, _)| variable == "s3:prefix");
    assert!(
        prefix.is_some_and(|(_, values)| values.iter().any(|v| v.contains("${var.name}/*"))),
        "s3:ListBucket must carry an s3:prefix condition <function>/*"
    );
    // And the name the module passes is the crate name the code namespaces its keys with.
    for name in function_modules() {
        let module = function_module(&name);
        let passed = attr(&lambda_call(&module).body, "name").map(|e| format!("{e}"));
        assert_eq!(passed.as_deref(), Some("local.name"), "{name}: pass name = local.name to ../lambda");
    }
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
                    rules.insert(format!("{name}/{resource}"), to_json(arg).expect("literal pattern"));
                }
                (Expression::Traversal(_), Some(for_each)) => {
                    // for_each = local.<map>, event_pattern = jsonencode(each.value.<attr>)
                    let field = format!("{arg}").rsplit('.').next().map(String::from).expect("attribute");
                    let map_name = format!("{for_each}");
                    let map = map_name
                        .strip_prefix("local.")
                        .and_then(|l| module.local(l))
                        .unwrap_or_else(|| panic!("{name}/{resource}: for_each must be a local map"));
                    let Expression::Object(entries) = map else {
                        panic!("{name}/{resource}: {map_name} is not an object");
                    };
                    for (key, value) in entries {
                        let key = hcl_model::key_name(key).expect("rule key");
                        let pattern = object_get(value, &field).expect("pattern attribute");
                        rules.insert(format!("{name}/{resource}[{key}]"), to_json(pattern).expect("literal pattern"));
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
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let text = std::fs::read_to_string(&p).expect("fixture");
            (stem, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
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
        let mut batch = task;
        batch["detail"]["group"] = "family:nightly-batch".into();
        events.insert("variant-task-not-of-a-service".into(), batch);
    }
    let crates = function_crates();
    for (id, pattern) in &rules {
        let function = id.split('/').next().unwrap_or_default();
        let globs = EXPECTED_MATCHES
            .iter()
            .find(|(rule, _)| rule == id)
            .map(|(_, globs)| *globs)
            .unwrap_or_else(|| panic!("rule {id} has no entry in EXPECTED_MATCHES: say which fixtures it is for"));
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
            assert!(!crates.contains(function), "{id} matches no fixture in events/ ({globs:?})");
            eprintln!("patterns: skipped {id}: no {globs:?} fixture in events/ (functions/{function} is not here)");
        } else {
            eprintln!("patterns: {id} matches {matched:?} and nothing else");
        }
    }
    for (id, _) in EXPECTED_MATCHES {
        assert!(rules.contains_key(*id), "EXPECTED_MATCHES names {id}, which infra/ does not define");
    }
}

/// The variables the README's configuration tables mark as required, by table: `common` or a
/// function's name.
fn readme_required() -> BTreeMap<String, BTreeSet<String>> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut required: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = String::new();
    let mut in_configuration = false;
    for line in readme.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            in_configuration = heading.trim() == "Configuration";
            continue;
        }
        if !in_configuration {
            continue;
        }
        if let Some(title) = line.trim().strip_suffix(':') {
            section = if title.starts_with("Common") { "common".into() } else { title.trim().to_string() };
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [_, variable, default, ..] = cells.as_slice() {
            if default.starts_with("required") {
                for name in variable.split(',').map(|v| v.trim().trim_matches('`')) {
                    required.entry(section.clone()).or_default().insert(name.to_string());
                }
            }
        }
    }
    required
}

#[test]
fn readme_required_variables_are_set() {
    let required = readme_required();
    assert!(
        required.get("common").is_some_and(|r| r.contains("STATE_BUCKET")),
        "README's configuration tables: STATE_BUCKET is not marked required? {required:?}"
    );
    let lambda = function_module("lambda");
    for name in function_modules() {
        let set = module_variables(&lambda, &function_module(&name));
        for variable in required.get("common").into_iter().chain(required.get(&name)).flatten() {
            assert!(set.contains(variable), "README says {variable} is required, infra/modules/{name} does not set it");
        }
    }
}

/// Every .tf file of infra/, root and modules.
fn all_modules() -> Vec<Module> {
    let mut modules = vec![load(&root().join("infra"))];
    let mut names: Vec<_> = std::fs::read_dir(root().join("infra/modules"))
        .expect("infra/modules")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    modules.extend(names.iter().map(|p| load(p)));
    modules
}

#[test]
fn service_permissions_name_their_source() {
    for module in all_modules() {
        for (name, block) in module.typed("resource", "aws_lambda_permission") {
            let principal = format!("{}", attr(&block.body, "principal").expect("principal"));
            if principal.contains(".amazonaws.com") {
                for required in ["source_arn", "source_account"] {
                    assert!(
                        attr(&block.body, required).is_some(),
                        "{}: aws_lambda_permission.{name} for {principal} has no {required}",
                        module.dir.display()
                    );
                }
            }
        }
    }
}

#[test]
fn variables_and_outputs_are_documented() {
    for module in all_modules() {
        for variable in module.blocks("variable") {
            let name = label(variable, 0).unwrap_or_default();
            for required in ["type", "description"] {
                assert!(
                    attr(&variable.body, required).is_some(),
                    "{}: variable {name} has no {required}",
                    module.dir.display()
                );
            }
        }
        for output in module.blocks("output") {
            let name = label(output, 0).unwrap_or_default();
            assert!(attr(&output.body, "description").is_some(), "{}: output {name} has no description", module.dir.display());
        }
    }
    let root_module = load(&root().join("infra"));
    let outputs: Vec<_> = root_module.blocks("output").filter_map(|o| label(o, 0)).collect();
    for wanted in ["deploy_notifier_url", "alert_topic_arn", "test_alert_command"] {
        assert!(outputs.contains(&wanted), "infra/outputs.tf has no {wanted}");
    }
}

#[test]
fn terraform_files_are_laid_out_as_terraform_fmt_would() {
    let mut files = Vec::new();
    let mut dirs = vec![root().join("infra")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("infra/").filter_map(|e| e.ok()) {
            let path = entry.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if path.is_dir() && !name.starts_with('.') {
                dirs.push(path);
            } else if name.ends_with(".tf") || name.ends_with(".tfvars.example") || name.ends_with(".hcl.example") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 10, "found only {files:?}");
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("infra file");
        problems.extend(fmt::problems(&text).into_iter().map(|p| format!("{}: {p}", file.display())));
    }
    assert!(problems.is_empty(), "not in terraform fmt layout:\n{}", problems.join("\n"));
}

#[test]
fn references_and_module_arguments_resolve() {
    let mut problems = Vec::new();
    for module in all_modules() {
        let dir = module.dir.clone();
        let load_called = |source: &str| load(&dir.join(source));
        problems.extend(refs::problems(&module, &load_called));
    }
    assert!(problems.is_empty(), "as terraform validate would say:\n{}", problems.join("\n"));
}
