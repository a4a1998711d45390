//! The performance benchmark of every function (run by `bash tests/bench.sh`, which builds the
//! release artifacts and runs the divan and sweep benchmarks first): cold-start init, warm
//! invocations, peak RSS and AWS calls per event kind of each release binary through a loopback
//! Runtime API against the emulator, beside a Python reference of the same job; artifact sizes;
//! then `tests/bench/results.{json,md}` and `tests/bench/chart.svg`.
//!
//! `cargo run -p watchkeeper-tests --bin bench [function ...]` (default: all five).

mod chart;
mod cost;
mod measure;
mod report;
mod scenarios;

use std::path::PathBuf;

use harness::paths::{cached_tool, target_dir, workspace_root};
use harness::{Result, fail};

use measure::{Launch, cold_starts, measured_run};
use report::{FunctionResult, Results};
use scenarios::{FUNCTIONS, Scenario};

const COLD_STARTS: usize = 20;
const WARM: usize = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let mut wanted: Vec<String> = std::env::args().skip(1).collect();
    let out = workspace_root().join("tests/bench");
    // `--report-only`: keep the function measurements of the last run, and take sizes, the divan
    // and sweep outputs anew (after a later arm64 build, say).
    if wanted.iter().any(|w| w == "--report-only") {
        let text = std::fs::read_to_string(out.join("results.json"))?;
        let last: Results = serde_json::from_str(&text)?;
        let (date, machine) = (last.date, last.machine);
        let mut functions = last.functions;
        for f in &mut functions {
            f.sizes = report::Sizes::of(&f.function);
        }
        let mut results = Results::collect(functions)?;
        (results.date, results.machine) = (date, machine);
        return write(results, &out);
    }
    wanted.retain(|w| !w.starts_with("--"));
    let python = cached_tool(
        "venv-moto/bin/python",
        "moto (PyPI moto[server]), which has boto3",
    )?;
    let runtime_py = workspace_root().join("tests/bench/python/runtime.py");
    let dir = tempfile::tempdir()?;
    let mut functions = Vec::new();
    for function in FUNCTIONS {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == function) {
            continue;
        }
        eprintln!("== {function}");
        let rust = Launch {
            program: release_binary(function)?,
            args: Vec::new(),
        };
        let reference = Launch {
            program: python.clone(),
            args: vec![runtime_py.display().to_string(), function.replace('-', "_")],
        };
        let mut scenario = Scenario::start(function, 2 * WARM + 4).await?;
        let work = dir.path().join(function);
        std::fs::create_dir_all(&work)?;
        let rust_cold = cold_starts(&rust, &scenario, COLD_STARTS, &work).await?;
        let (_, mut rust_run) = measured_run(&rust, &mut scenario, WARM, 0, true, &work).await?;
        (
            rust_run.cold_ms,
            rust_run.cold_cpu_ms,
            rust_run.cold_wait_ms,
        ) = (rust_cold.wall, rust_cold.cpu, rust_cold.wait);
        let py_dir = work.join("python");
        std::fs::create_dir_all(&py_dir)?;
        let py_cold = cold_starts(&reference, &scenario, COLD_STARTS, &py_dir).await?;
        let (_, mut py_run) =
            measured_run(&reference, &mut scenario, WARM, WARM + 4, false, &py_dir).await?;
        (py_run.cold_ms, py_run.cold_cpu_ms, py_run.cold_wait_ms) =
            (py_cold.wall, py_cold.cpu, py_cold.wait);
        let result = FunctionResult::new(function, rust_run, py_run);
        eprintln!("{}", result.summary());
        functions.push(result);
    }
    // A run of some functions keeps the others' last measurements.
    if let Ok(text) = std::fs::read_to_string(out.join("results.json"))
        && let Ok(last) = serde_json::from_str::<Results>(&text)
    {
        for kept in last.functions {
            if !functions.iter().any(|f| f.function == kept.function) {
                functions.push(kept);
            }
        }
        functions.sort_by_key(|f| FUNCTIONS.iter().position(|n| *n == f.function));
    }
    write(Results::collect(functions)?, &out)
}

fn write(results: Results, out: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    std::fs::write(out.join("results.md"), results.markdown())?;
    std::fs::write(out.join("chart.svg"), chart::svg(&results))?;
    println!("{}", results.markdown());
    eprintln!("written: tests/bench/results.json, results.md, chart.svg");
    Ok(())
}

/// The x86_64 release binary `cargo lambda build --release` left for `function`.
fn release_binary(function: &str) -> Result<PathBuf> {
    let path = target_dir()
        .join("x86_64-unknown-linux-gnu/release")
        .join(function);
    if path.is_file() {
        Ok(path)
    } else {
        fail(format!(
            "{} is not built: run `bash tests/bench.sh` (it runs `cargo lambda build --release`)",
            path.display()
        ))
    }
}
