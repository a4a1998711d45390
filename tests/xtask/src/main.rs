//! `cargo xtask <task>`: every task of the project behind one command. Each task runs the script
//! or the tool that does the work and says what it runs, so what CI and the README run stays
//! one command too (`bash tests/test.sh` is `cargo xtask test`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <task> [options]

  demo                 set-up, build, and run every function on events/ against the local emulators
  test                 set-up, then every test: unit, integration, end to end (what CI runs)
  unit [crate ...]     unit tests only, no emulator or database (default: the five functions and shared)
  bench [function ...] release builds, then the benchmarks; writes tests/bench/results.*
  build [--x86_64]     the five release zips for Lambda (arm64 unless --x86_64), in target/lambda/
  deploy [--x86_64]    build, then terraform init and apply in infra/ (shows the plan, asks before applying)
";

/// The crates whose unit tests need nothing but Rust.
const UNIT_CRATES: &[&str] = &[
    "watchkeeper-shared",
    "deploy-notifier",
    "secret-rotator",
    "health-sweeper",
    "snapshot-exporter",
    "budget-alerter",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let x86 = rest.iter().any(|a| a == "--x86_64");
    let result = match task {
        "demo" => run(&root, "bash", &["tests/demo.sh"]),
        "test" => run(&root, "bash", &["tests/test.sh"]),
        "unit" => unit(&root, rest),
        "bench" => {
            let mut args = vec!["tests/bench.sh"];
            args.extend(rest.iter().map(String::as_str));
            run(&root, "bash", &args)
        }
        "build" => build(&root, x86),
        "deploy" => build(&root, x86).and_then(|()| deploy(&root, x86)),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown task {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: this crate lives in `tests/xtask`.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/xtask sits two levels below the workspace root")
        .to_path_buf()
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("xtask: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .map_err(|e| format!("{program} could not be started: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed ({status})", args.join(" ")))
    }
}

fn unit(root: &Path, crates: &[String]) -> Result<(), String> {
    let mut args = vec!["test", "--locked", "--lib"];
    let chosen: Vec<&str> = if crates.is_empty() {
        UNIT_CRATES.to_vec()
    } else {
        crates.iter().map(String::as_str).collect()
    };
    for name in chosen {
        args.extend(["-p", name]);
    }
    run(root, "cargo", &args)
}

/// cargo-lambda from the set-up's virtual env when there is one, else from `PATH`.
fn cargo_lambda(root: &Path) -> String {
    let cache = std::env::var_os("WATCHKEEPER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".cache"));
    let venv = cache.join("venv-lambda/bin/cargo-lambda");
    if venv.exists() {
        venv.display().to_string()
    } else {
        "cargo-lambda".to_string()
    }
}

fn build(root: &Path, x86: bool) -> Result<(), String> {
    let tool = cargo_lambda(root);
    let mut args = vec!["lambda", "build", "--release", "--output-format", "zip"];
    if !x86 {
        args.push("--arm64");
    }
    for function in [
        "deploy-notifier",
        "secret-rotator",
        "health-sweeper",
        "snapshot-exporter",
        "budget-alerter",
    ] {
        args.extend(["--package", function]);
    }
    // `cargo-lambda lambda build ...` is how the binary runs when called directly.
    run(root, &tool, &args)?;
    ca_layer(root)
}

/// Python: zips `rds-ca/global-bundle.pem` into `sys.argv[1]` with a fixed date and mode.
const ZIP_CA_LAYER: &str = "import sys, zipfile\n\
info = zipfile.ZipInfo('rds-ca/global-bundle.pem', (1980, 1, 1, 0, 0, 0))\n\
info.external_attr = 0o644 << 16\n\
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n    \
z.writestr(info, open('rds-ca/global-bundle.pem', 'rb').read())\n";

/// The layer Terraform ships beside secret-rotator (`rds_ca_layer_zip`): the RDS CA bundle
/// downloaded to `infra/rds-ca/global-bundle.pem`, zipped as `rds-ca/global-bundle.pem` (Lambda
/// mounts it at `/opt/rds-ca/global-bundle.pem`). Python's zipfile makes it: cargo-lambda came
/// from pip, so Python is here.
fn ca_layer(root: &Path) -> Result<(), String> {
    let infra = root.join("infra");
    if !infra.join("rds-ca/global-bundle.pem").exists() {
        eprintln!(
            "xtask: no infra/rds-ca/global-bundle.pem: no CA layer zip (needed with db_tls = verify-full; infra/README.md, Prerequisites)"
        );
        return Ok(());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let zip = target.join("lambda/rds-ca-layer.zip");
    let _ = std::fs::remove_file(&zip);
    if let Some(parent) = zip.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let zip = zip.display().to_string();
    // A fixed timestamp: the same bundle makes the same zip, so Terraform sees no new layer
    // version when only the file's date changed (a download at every CI run).
    run(&infra, "python3", &["-c", ZIP_CA_LAYER, &zip])
}

fn deploy(root: &Path, x86: bool) -> Result<(), String> {
    let infra = root.join("infra");
    if !infra.join("terraform.tfvars").exists() || !infra.join("backend.hcl").exists() {
        return Err(
            "infra/terraform.tfvars and infra/backend.hcl are needed first: copy the .example files and fill them in (infra/README.md, Apply)"
                .into(),
        );
    }
    run(
        &infra,
        "terraform",
        &["init", "-backend-config=backend.hcl"],
    )?;
    let architecture = if x86 {
        "-var=architecture=x86_64"
    } else {
        "-var=architecture=arm64"
    };
    // Without a saved plan, apply shows the plan and waits for "yes".
    run(&infra, "terraform", &["apply", architecture])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same bundle gives the same zip, whatever the file's date.
    #[test]
    fn the_ca_layer_zip_is_the_same_for_the_same_bundle() {
        let dir = std::env::temp_dir().join(format!("wk-xtask-{}", std::process::id()));
        let bundle = dir.join("rds-ca/global-bundle.pem");
        std::fs::create_dir_all(bundle.parent().unwrap()).unwrap();
        std::fs::write(&bundle, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let zip = |name: &str| {
            let out = dir.join(name);
            run(
                &dir,
                "python3",
                &["-c", ZIP_CA_LAYER, &out.display().to_string()],
            )
            .unwrap();
            std::fs::read(out).unwrap()
        };
        let first = zip("a.zip");
        std::fs::write(&bundle, "-----BEGIN CERTIFICATE-----\n").unwrap();
        assert_eq!(first, zip("b.zip"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
