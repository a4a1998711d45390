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
    module
        .module_calls()
        .into_iter()
        .find(|(_, source, _)| source == "../lambda")
        .map(|(_, _, block)| block)
        .unwrap_or_else(|| panic!("{}: no module call of ../lambda", module.dir.display()))
}

/// The variables a function's module sets: the shared Lambda module's common ones and the
/// `environment` the function module passes.
pub fn module_variables(lambda: &Module, module: &Module) -> BTreeSet<String> {
    let common = lambda
        .local("common_environment")
        .expect("lambda module: local.common_environment");
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
