//! Reading the functions' code: which environment variables a crate reads and which AWS SDK
//! operations it calls.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::source::Source;

/// What looks like an environment variable name: `STATE_BUCKET`, `SWEEP_PORT`.
pub fn is_env_name(s: &str) -> bool {
    let mut parts = s.split('_');
    let first_ok = parts
        .next()
        .is_some_and(|p| p.starts_with(|c: char| c.is_ascii_uppercase()));
    first_ok
        && s.contains('_')
        && s.split('_').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
}

/// The environment variables read by a crate: the names, as string literals, in files that read
/// configuration (`Vars`), outside tests.
pub fn env_vars(sources: &[Source]) -> BTreeSet<String> {
    sources
        .iter()
        .filter(|s| s.code.contains("Vars"))
        .flat_map(|s| {
            s.production_literals()
                .filter(|l| is_env_name(l))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The AWS SDK crates a crate depends on (`aws-sdk-*` in its Cargo.toml).
pub fn sdk_dependencies(crate_dir: &Path) -> Result<BTreeSet<String>, String> {
    let manifest = crate_dir.join("Cargo.toml");
    let text =
        std::fs::read_to_string(&manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.trim().split(['.', ' ', '=']).next())
        .filter(|name| name.starts_with("aws-sdk-"))
        .map(String::from)
        .collect())
}

/// Every operation of every `aws-sdk-*` crate in the dependency graph, by crate: the folders of
/// its `src/operation/`, found through `cargo metadata`.
pub fn sdk_operations(workspace: &Path) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(workspace)
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata output: {e}"))?;
    let mut operations = BTreeMap::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let (Some(name), Some(manifest)) =
            (package["name"].as_str(), package["manifest_path"].as_str())
        else {
            continue;
        };
        if !name.starts_with("aws-sdk-") {
            continue;
        }
        let dir = Path::new(manifest).with_file_name("src").join("operation");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let ops: BTreeSet<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        operations.insert(name.to_string(), ops);
    }
    Ok(operations)
}

/// The SDK operations (crate, operation) called in `sources`, among those of `crates`. A name
/// several of them have is attributed by the `aws_sdk_<service>` paths the file names.
pub fn sdk_calls(
    sources: &[Source],
    crates: &BTreeSet<String>,
    operations: &BTreeMap<String, BTreeSet<String>>,
) -> Result<BTreeSet<(String, String)>, String> {
    let mut calls = BTreeSet::new();
    for source in sources {
        for call in source.empty_calls() {
            let owners: Vec<&String> = crates
                .iter()
                .filter(|c| operations.get(*c).is_some_and(|ops| ops.contains(&call)))
                .collect();
            let owners: Vec<&String> = if owners.len() > 1 {
                owners
                    .into_iter()
                    .filter(|c| source.code.contains(&c.replace('-', "_")))
                    .collect()
            } else {
                owners
            };
            match owners.as_slice() {
                [] => {}
                [owner] => {
                    calls.insert(((*owner).clone(), call));
                }
                many => {
                    return Err(format!(
                        "{}: .{call}() could be an operation of {many:?}; name the client's crate in the file",
                        source.path.display()
                    ));
                }
            }
        }
    }
    Ok(calls)
}

/// The namespace a function's code gives its state store: the first argument of
/// `Common::connect` (or `Common::with_sdk`) in main.rs, a string literal or a `const` of the
/// crate.
pub fn state_namespace(crate_dir: &Path) -> Result<String, String> {
    let function = crate_dir.display();
    let sources = crate::source::crate_sources(crate_dir)?;
    let main = sources
        .iter()
        .find(|s| s.path.ends_with("src/main.rs"))
        .ok_or_else(|| format!("{function}: no src/main.rs"))?;
    let at = ["Common::connect(", "Common::with_sdk("]
        .iter()
        .find_map(|call| main.code.find(call).map(|at| at + call.len()))
        .ok_or_else(|| format!("{function}: no Common::connect or Common::with_sdk in main.rs"))?;
    let argument = main.code[at..].trim_start();
    if argument.starts_with('"') {
        let offset = main.code.len() - argument.len();
        return main
            .literals
            .iter()
            .find(|(o, _)| *o == offset)
            .map(|(_, l)| l.clone())
            .ok_or_else(|| format!("{function}: unreadable literal"));
    }
    // A constant, by name or by path (`budget_alerter::NAME`): its last segment is declared in
    // the crate's sources.
    let path: String = argument
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let ident = path.rsplit("::").next().unwrap_or_default();
    let declaration = format!("const {ident}: &str = ");
    sources
        .iter()
        .find_map(|s| {
            let at = s.code.find(&declaration)? + declaration.len();
            s.literals
                .iter()
                .find(|(o, _)| *o == at)
                .map(|(_, l)| l.clone())
        })
        .ok_or_else(|| format!("{function}: const {ident} not found"))
}
