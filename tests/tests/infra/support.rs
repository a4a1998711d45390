//! What the infra checks share: where the workspace is, the modules and function crates in it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use harness::paths::workspace_root;

use crate::hcl_model::{Module, attr, object_keys};

/// Modules of infra/modules that are shared pieces, not functions.
pub const SHARED_MODULES: &[&str] = &["alerts", "lambda", "state-bucket"];

pub fn root() -> PathBuf {
    workspace_root()
}

pub fn load(path: &Path) -> Module {
    Module::load(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Function crates in this checkout (functions/<name>/Cargo.toml).
pub fn function_crates() -> BTreeSet<String> {
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .expect("functions/ must be readable")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // Checks that loop over the functions must not pass by looping zero times.
    for name in [
        "budget-alerter",
        "deploy-notifier",
        "health-sweeper",
        "secret-rotator",
        "snapshot-exporter",
    ] {
        assert!(
            crates.contains(name),
            "functions/{name} not found: {crates:?}"
        );
    }
    crates
}

/// Function modules in infra/modules.
pub fn function_modules() -> BTreeSet<String> {
    std::fs::read_dir(root().join("infra/modules"))
        .expect("infra/modules")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !SHARED_MODULES.contains(&name.as_str()))
        .collect()
}

/// The function modules whose crate is here; the others are named as skipped.
pub fn checked_functions(check: &str) -> Vec<String> {
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

pub fn function_module(name: &str) -> Module {
    load(&root().join("infra/modules").join(name))
}

/// The call of the shared Lambda module inside a function module.
pub fn lambda_call(module: &Module) -> &hcl::Block {
    lambda_calls(module)
        .into_iter()
        .find(|call| attr(&call.body, "name").is_some_and(|e| format!("{e}") == "local.name"))
        .unwrap_or_else(|| {
            panic!(
                "{}: no module call of ../lambda with name = local.name",
                module.dir.display()
            )
        })
}

/// Every call of the shared Lambda module in a function's module: one per deployed function
/// (deploy-notifier deploys its crate twice, the event function and the CI function).
pub fn lambda_calls(module: &Module) -> Vec<&hcl::Block> {
    let calls: Vec<_> = module
        .module_calls()
        .into_iter()
        .filter(|(_, source, _)| source == "../lambda")
        .map(|(_, _, block)| block)
        .collect();
    assert!(
        !calls.is_empty(),
        "{}: no module call of ../lambda",
        module.dir.display()
    );
    calls
}

/// The variables a function's module sets: the shared Lambda module's common ones and the
/// `environment` the function module passes.
pub fn module_variables(lambda: &Module, module: &Module) -> BTreeSet<String> {
    let common = lambda
        .local("common_environment")
        .expect("lambda module: local.common_environment");
    let mut keys: BTreeSet<String> = object_keys(common)
        .unwrap_or_else(|e| panic!("lambda module: {e}"))
        .into_iter()
        .collect();
    for call in lambda_calls(module) {
        let own = attr(&call.body, "environment")
            .unwrap_or_else(|| panic!("{}: no environment passed", module.dir.display()));
        keys.extend(object_keys(own).unwrap_or_else(|e| panic!("{}: {e}", module.dir.display())));
    }
    keys
}

/// Every .tf file of infra/, root and modules.
pub fn all_modules() -> Vec<Module> {
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

/// A markdown file of the repository, which must exist.
pub fn read_doc(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The rows of every table under `heading` (a whole heading line such as `## Inputs`, up to the
/// next heading of the same or a higher level) whose header row starts with `columns`; each row
/// as column name to cell (`\|` and `\<` unescaped). An error when the heading is missing, no
/// such table is under it, a table has no rows, or a row has another number of cells than its
/// header: a table that moved or changed shape must fail its reader, never leave it finding
/// nothing.
pub fn markdown_tables(
    text: &str,
    heading: &str,
    columns: &[&str],
) -> Result<Vec<std::collections::BTreeMap<String, String>>, String> {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let mut lines = text.lines().skip_while(|line| line.trim_end() != heading);
    if lines.next().is_none() {
        return Err(format!("no heading `{heading}`"));
    }
    let section: Vec<&str> = lines
        .take_while(|line| {
            let hashes = line.chars().take_while(|c| *c == '#').count();
            !(hashes > 0 && hashes <= level && line[hashes..].starts_with(' '))
        })
        .collect();
    let mut rows = Vec::new();
    let mut tables = 0;
    let mut i = 0;
    while i < section.len() {
        let header = table_cells(section[i]);
        let is_header = section[i].trim_start().starts_with('|')
            && header.len() >= columns.len()
            && header
                .iter()
                .zip(columns)
                .all(|(cell, column)| cell == column);
        if !is_header {
            i += 1;
            continue;
        }
        tables += 1;
        i += 1;
        if !section
            .get(i)
            .is_some_and(|l| l.trim_start().starts_with("|---"))
        {
            return Err(format!(
                "under `{heading}`: a table header without its separator line"
            ));
        }
        i += 1;
        let before = rows.len();
        while let Some(line) = section.get(i).filter(|l| l.trim_start().starts_with('|')) {
            let cells = table_cells(line);
            if cells.len() != header.len() {
                return Err(format!(
                    "under `{heading}`: {} cells where the header has {}: {line}",
                    cells.len(),
                    header.len()
                ));
            }
            rows.push(header.iter().cloned().zip(cells).collect());
            i += 1;
        }
        if rows.len() == before {
            return Err(format!("under `{heading}`: a table with no rows"));
        }
    }
    if tables == 0 {
        return Err(format!(
            "under `{heading}`: no table whose header starts with | {} |",
            columns.join(" | ")
        ));
    }
    Ok(rows)
}

/// The cells of a markdown table row, trimmed, with `\|` and `\<` unescaped.
fn table_cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('|') | Some('<')) => {
                cells.last_mut().unwrap().push(chars.next().unwrap());
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_string()).collect()
}
