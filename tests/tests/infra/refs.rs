//! What `terraform validate` would catch first, without Terraform: references to variables,
//! locals, resources, data sources and module outputs that do not exist, module calls that pass
//! unknown arguments or miss required ones, and variables nothing uses. Read from the raw text
//! (comments removed) so that references inside `"${...}"` templates count too.

use std::collections::BTreeSet;

use crate::hcl_model::{Module, attr, label};

/// Every `<root>.<a>[.<b>]` reference in the module's files: (root, a, b).
pub fn references(module: &Module) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for text in module.texts() {
        let code: String = text
            .lines()
            .map(|l| match l.trim_start().starts_with('#') {
                true => "",
                false => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let bytes = code.as_bytes();
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        let mut i = 0;
        while i < bytes.len() {
            let starts_word = i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == b'.');
            if !starts_word || !bytes[i].is_ascii_alphabetic() {
                i += 1;
                continue;
            }
            let mut parts = Vec::new();
            let mut j = i;
            loop {
                let start = j;
                while j < bytes.len() && ident(bytes[j]) {
                    j += 1;
                }
                parts.push(code[start..j].to_string());
                if j + 1 < bytes.len()
                    && bytes[j] == b'.'
                    && bytes[j + 1].is_ascii_alphabetic()
                    && parts.len() < 3
                {
                    j += 1;
                } else {
                    break;
                }
            }
            if parts.len() >= 2 {
                let third = parts.get(2).cloned().unwrap_or_default();
                found.push((parts[0].clone(), parts[1].clone(), third));
            }
            i = j.max(i + 1);
        }
    }
    found
}

const META_ARGUMENTS: &[&str] = &[
    "source",
    "depends_on",
    "count",
    "for_each",
    "providers",
    "version",
];

/// The problems of one module; `load` reads a called module by its source.
pub fn problems(module: &Module, load: &dyn Fn(&str) -> Module) -> Vec<String> {
    let mut found = Vec::new();
    let where_ = module.dir.display().to_string();
    let variables: BTreeSet<String> = module
        .blocks("variable")
        .filter_map(|b| label(b, 0))
        .map(String::from)
        .collect();
    let locals: BTreeSet<String> = module
        .blocks("locals")
        .flat_map(|b| {
            b.body
                .attributes()
                .map(|a| a.key.as_str().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let declared = |kind: &str, rtype: &str, name: &str| {
        module.typed(kind, rtype).iter().any(|(n, _)| n == name)
    };
    // A `moved` block's `from` names an address that is gone by design.
    let moved_from: BTreeSet<String> = module
        .blocks("moved")
        .filter_map(|b| attr(&b.body, "from"))
        .map(|from| format!("{from}"))
        .collect();
    let calls = module.module_calls();
    let mut used_variables = BTreeSet::new();
    for (root, a, b) in references(module) {
        match root.as_str() {
            "var" => {
                used_variables.insert(a.clone());
                if !variables.contains(&a) {
                    found.push(format!("{where_}: var.{a} is not declared"));
                }
            }
            "local" if !locals.contains(&a) => {
                found.push(format!("{where_}: local.{a} is not defined"))
            }
            "data" if !b.is_empty() && !declared("data", &a, &b) => {
                found.push(format!("{where_}: data.{a}.{b} is not declared"))
            }
            "module" => match calls.iter().find(|(name, _, _)| *name == a) {
                None => found.push(format!("{where_}: module.{a} is not called")),
                Some((_, source, _)) if !b.is_empty() => {
                    let called = load(source);
                    if !called
                        .blocks("output")
                        .any(|o| label(o, 0) == Some(b.as_str()))
                    {
                        found.push(format!(
                            "{where_}: module.{a}.{b}: {source} has no such output"
                        ));
                    }
                }
                _ => {}
            },
            // `aws_x.name`: a resource reference (a type named in a string, or after `data.`,
            // is not followed by `.name`, or is not at the start of a word).
            rtype
                if (rtype.starts_with("aws_") || rtype.starts_with("random_"))
                    && !declared("resource", rtype, &a)
                    && !moved_from.contains(&format!("{rtype}.{a}")) =>
            {
                found.push(format!("{where_}: {rtype}.{a} is not declared"));
            }
            _ => {}
        }
    }
    for unused in variables.difference(&used_variables) {
        found.push(format!("{where_}: variable {unused} is never used"));
    }
    for (name, source, call) in &calls {
        let called = load(source);
        let accepted: BTreeSet<String> = called
            .blocks("variable")
            .filter_map(|b| label(b, 0))
            .map(String::from)
            .collect();
        let passed: BTreeSet<String> = call
            .body
            .attributes()
            .map(|a| a.key.as_str().to_string())
            .filter(|k| !META_ARGUMENTS.contains(&k.as_str()))
            .collect();
        for unknown in passed.difference(&accepted) {
            found.push(format!(
                "{where_}: module {name} passes {unknown}, which {source} does not declare"
            ));
        }
        for variable in called.blocks("variable") {
            let var_name = label(variable, 0).unwrap_or_default().to_string();
            if attr(&variable.body, "default").is_none() && !passed.contains(&var_name) {
                found.push(format!(
                    "{where_}: module {name} does not pass {var_name}, which {source} requires"
                ));
            }
        }
    }
    found
}
