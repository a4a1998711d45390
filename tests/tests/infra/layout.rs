//! infra/ as `terraform fmt` and `terraform validate` would see it, without Terraform: layout,
//! references, module arguments, documented variables and outputs, service permissions that name
//! their source.

use crate::{fmt, refs};
use std::collections::{BTreeMap, BTreeSet};

use crate::hcl_model::{attr, label, to_json};
use crate::support::*;

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
            assert!(
                attr(&output.body, "description").is_some(),
                "{}: output {name} has no description",
                module.dir.display()
            );
        }
    }
    let root_module = load(&root().join("infra"));
    let outputs: Vec<_> = root_module
        .blocks("output")
        .filter_map(|o| label(o, 0))
        .collect();
    for wanted in [
        "deploy_notifier_url",
        "alert_topic_arn",
        "test_alert_command",
    ] {
        assert!(
            outputs.contains(&wanted),
            "infra/outputs.tf has no {wanted}"
        );
    }
}

#[test]
fn terraform_files_are_laid_out_as_terraform_fmt_would() {
    let mut files = Vec::new();
    let mut dirs = vec![root().join("infra")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("infra/")
            .filter_map(|e| e.ok())
        {
            let path = entry.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if path.is_dir() && !name.starts_with('.') {
                dirs.push(path);
            } else if name.ends_with(".tf")
                || name.ends_with(".tfvars.example")
                || name.ends_with(".hcl.example")
            {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 10, "found only {files:?}");
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("infra file");
        problems.extend(
            fmt::problems(&text)
                .into_iter()
                .map(|p| format!("{}: {p}", file.display())),
        );
    }
    assert!(
        problems.is_empty(),
        "not in terraform fmt layout:\n{}",
        problems.join("\n")
    );
}

#[test]
fn references_and_module_arguments_resolve() {
    let mut problems = Vec::new();
    for module in all_modules() {
        let dir = module.dir.clone();
        let load_called = |source: &str| load(&dir.join(source));
        problems.extend(refs::problems(&module, &load_called));
    }
    assert!(
        problems.is_empty(),
        "as terraform validate would say:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_example_tfvars_sets_every_required_variable_and_only_declared_ones() {
    let root_module = load(&root().join("infra"));
    let text = std::fs::read_to_string(root().join("infra/terraform.tfvars.example"))
        .expect("infra/terraform.tfvars.example");
    let example = hcl::parse(&text).expect("terraform.tfvars.example parses");
    let set: Vec<String> = example
        .attributes()
        .map(|a| a.key.as_str().to_string())
        .collect();
    for variable in root_module.blocks("variable") {
        let name = label(variable, 0).unwrap_or_default();
        if attr(&variable.body, "default").is_none() {
            assert!(
                set.iter().any(|s| s == name),
                "terraform.tfvars.example does not set the required variable {name}"
            );
        }
    }
    for name in &set {
        assert!(
            root_module
                .blocks("variable")
                .any(|v| label(v, 0) == Some(name.as_str())),
            "terraform.tfvars.example sets {name}, which infra/variables.tf does not declare"
        );
    }
}

/// The variables a configuration table marks as required ("required" in its default column; a
/// cell may name several variables, comma-separated): the `| variable | default | meaning |`
/// table under `heading` in the markdown file at `path`. Panics when the file, the heading or
/// the table is missing.
fn required_in(path: &str, heading: &str) -> BTreeSet<String> {
    let rows = markdown_tables(
        &read_doc(path),
        heading,
        &["variable", "default", "meaning"],
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    rows.iter()
        .filter(|row| row["default"].starts_with("required"))
        .flat_map(|row| {
            row["variable"]
                .split(',')
                .map(|v| v.trim().trim_matches('`').to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The variables the configuration tables mark as required, by table: `common`
/// (docs/configuration.md) or a function's name (functions/<name>/README.md). Every function
/// whose crate is here must have its table.
fn readme_required() -> BTreeMap<String, BTreeSet<String>> {
    let mut required = BTreeMap::new();
    required.insert(
        "common".to_string(),
        required_in("docs/configuration.md", "## Common to every function"),
    );
    for name in checked_functions("configuration tables") {
        let path = format!("functions/{name}/README.md");
        required.insert(name, required_in(&path, "## Configuration"));
    }
    required
}

#[test]
fn readme_required_variables_are_set() {
    let required = readme_required();
    assert!(
        required
            .get("common")
            .is_some_and(|r| r.contains("STATE_BUCKET")),
        "docs/configuration.md: STATE_BUCKET is not marked required? {required:?}"
    );
    for (name, wanted) in [
        ("snapshot-exporter", "EXPORT_BUCKET"),
        ("deploy-notifier", "CI_SIGNING_SECRET_ARN"),
    ] {
        assert!(
            required.get(name).is_some_and(|r| r.contains(wanted)),
            "functions/{name}/README.md: {wanted} is not marked required? {required:?}"
        );
    }
    let lambda = function_module("lambda");
    for name in checked_functions("configuration tables") {
        let set = module_variables(&lambda, &function_module(&name));
        for variable in required
            .get("common")
            .into_iter()
            .chain(required.get(&name))
            .flatten()
        {
            assert!(
                set.contains(variable),
                "functions/{name}/README.md or docs/configuration.md says {variable} is required, \
                 infra/modules/{name} does not set it"
            );
        }
    }
}

/// Type expressions compared as text, without the layout: spaces, line breaks and commas.
fn type_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != ',')
        .collect()
}

/// A cell holding one inline code span, without its backticks.
fn code(cell: &str) -> Option<&str> {
    cell.strip_prefix('`')?.strip_suffix('`')
}

#[test]
fn the_infra_readme_lists_every_input_and_output_as_declared() {
    let root_module = load(&root().join("infra"));
    let readme = read_doc("infra/README.md");
    let mut problems = Vec::new();

    let rows = markdown_tables(
        &readme,
        "## Inputs",
        &["name", "description", "type", "default"],
    )
    .unwrap_or_else(|e| panic!("infra/README.md: {e}"));
    let mut listed: BTreeMap<String, &BTreeMap<String, String>> = BTreeMap::new();
    for row in &rows {
        let name = code(&row["name"]).unwrap_or(&row["name"]).to_string();
        if listed.insert(name.clone(), row).is_some() {
            problems.push(format!("{name} is listed twice"));
        }
    }
    let mut declared = BTreeSet::new();
    for variable in root_module.blocks("variable") {
        let name = label(variable, 0).unwrap_or_default().to_string();
        declared.insert(name.clone());
        let Some(row) = listed.get(&name) else {
            problems.push(format!(
                "variables.tf declares {name}; the inputs table does not list it"
            ));
            continue;
        };
        match attr(&variable.body, "description") {
            Some(hcl::Expression::String(description)) if *description == row["description"] => {}
            other => problems.push(format!(
                "{name}: description {:?} in the table, {other:?} in variables.tf",
                row["description"]
            )),
        }
        let declared_type = attr(&variable.body, "type").map(|t| type_text(&format!("{t}")));
        let listed_type = code(&row["type"]).map(type_text);
        if declared_type.is_none() || declared_type != listed_type {
            problems.push(format!(
                "{name}: type {} in the table, {declared_type:?} in variables.tf",
                row["type"]
            ));
        }
        let cell = row["default"].as_str();
        match attr(&variable.body, "default") {
            None if cell == "required" => {}
            None => problems.push(format!(
                "{name} has no default in variables.tf: the table must say required, not {cell}"
            )),
            Some(default) => {
                let listed = code(cell)
                    .ok_or_else(|| format!("not a code span: {cell}"))
                    .and_then(|text| {
                        hcl::parse(&format!("v = {text}\n")).map_err(|e| format!("{text}: {e}"))
                    })
                    .and_then(|body| {
                        attr(&body, "v")
                            .ok_or_else(|| "no value".to_string())
                            .and_then(to_json)
                    });
                let wanted = to_json(default);
                if listed.is_err() || wanted.is_err() || listed != wanted {
                    problems.push(format!(
                        "{name}: default {cell} in the table ({listed:?}), {wanted:?} in variables.tf"
                    ));
                }
            }
        }
    }
    for name in listed.keys().filter(|name| !declared.contains(*name)) {
        problems.push(format!(
            "the inputs table lists {name}, which variables.tf does not declare"
        ));
    }

    let rows = markdown_tables(&readme, "## Outputs", &["name", "description"])
        .unwrap_or_else(|e| panic!("infra/README.md: {e}"));
    let listed: BTreeMap<String, String> = rows
        .iter()
        .map(|row| {
            let name = code(&row["name"]).unwrap_or(&row["name"]).to_string();
            (name, row["description"].clone())
        })
        .collect();
    let mut outputs = BTreeSet::new();
    for output in root_module.blocks("output") {
        let name = label(output, 0).unwrap_or_default().to_string();
        outputs.insert(name.clone());
        match (attr(&output.body, "description"), listed.get(&name)) {
            (Some(hcl::Expression::String(d)), Some(row)) if d == row => {}
            (declared, row) => problems.push(format!(
                "output {name}: {row:?} in the outputs table, {declared:?} in outputs.tf"
            )),
        }
    }
    for name in listed.keys().filter(|name| !outputs.contains(*name)) {
        problems.push(format!(
            "the outputs table lists {name}, which outputs.tf does not declare"
        ));
    }

    assert!(
        declared.len() > 40 && outputs.len() > 5,
        "found only {declared:?} and {outputs:?}"
    );
    assert!(
        problems.is_empty(),
        "infra/README.md is out of step with infra/variables.tf and outputs.tf:\n{}",
        problems.join("\n")
    );
}
