//! infra/ as `terraform fmt` and `terraform validate` would see it, without Terraform: layout,
//! references, module arguments, documented variables and outputs, service permissions that name
//! their source.


use crate::{fmt, refs};
use std::collections::{BTreeMap, BTreeSet};

use crate::hcl_model::{attr, label};
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
            section = if title.starts_with("Common") {
                "common".into()
            } else {
                title.trim().to_string()
            };
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [_, variable, default, ..] = cells.as_slice()
            && default.starts_with("required")
        {
            for name in variable.split(',').map(|v| v.trim().trim_matches('`')) {
                required
                    .entry(section.clone())
                    .or_default()
                    .insert(name.to_string());
            }
        }
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
        "README's configuration tables: STATE_BUCKET is not marked required? {required:?}"
    );
    let lambda = function_module("lambda");
    for name in function_modules() {
        let set = module_variables(&lambda, &function_module(&name));
        for variable in required
            .get("common")
            .into_iter()
            .chain(required.get(&name))
            .flatten()
        {
            assert!(
                set.contains(variable),
                "README says {variable} is required, infra/modules/{name} does not set it"
            );
        }
    }
}
