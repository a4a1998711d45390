//! Runs one function process (a release binary or its Python reference) against the loopback
//! Runtime API: cold starts, then one process through its counted event kinds and a warm run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::process::spawn_logged;
use harness::timed_runtime::RuntimeApi;
use harness::{Result, fail};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use crate::scenarios::Scenario;

const INIT_LIMIT: Duration = Duration::from_secs(30);
const INVOKE_LIMIT: Duration = Duration::from_secs(60);

/// How to start the function: a program and its arguments.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calls {
    pub kind: String,
    pub ok: bool,
    pub calls: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// Init of each cold start, milliseconds.
    pub cold_ms: Vec<f64>,
    /// CPU time the process used during init, milliseconds (all threads, from schedstat).
    #[serde(default)]
    pub cold_cpu_ms: Vec<f64>,
    /// Time its threads were ready but waiting for a CPU during init, milliseconds: what a busy
    /// machine adds to the wall time.
    #[serde(default)]
    pub cold_wait_ms: Vec<f64>,
    /// Each warm invocation, event sent to answer received, milliseconds.
    pub warm_ms: Vec<f64>,
    pub warm_failed: usize,
    /// Peak resident set (VmHWM) after the cold start and the warm run, MB.
    pub peak_rss_mb: f64,
    /// AWS calls made during init.
    pub init_calls: Vec<String>,
    pub kinds: Vec<Calls>,
    /// The first failed answer, if any (to see why).
    pub first_failure: Option<String>,
}

async fn spawn(
    launch: &Launch,
    scenario: &Scenario,
    api: &RuntimeApi,
    log: &Path,
) -> Result<Child> {
    let mut command = Command::new(&launch.program);
    command.args(&launch.args).env_clear().kill_on_drop(true);
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://{}", api.address()),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", scenario.function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_LEVEL", "info")
        .envs(scenario.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    spawn_logged(command, log)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Init of cold starts: wall, CPU and run-queue wait, milliseconds each.
#[derive(Debug, Default)]
pub struct Colds {
    pub wall: Vec<f64>,
    pub cpu: Vec<f64>,
    pub wait: Vec<f64>,
}

/// `count` cold starts: process start to the first `GET next`, each in a new process.
pub async fn cold_starts(
    launch: &Launch,
    scenario: &Scenario,
    count: usize,
    dir: &Path,
) -> Result<Colds> {
    let mut colds = Colds::default();
    for i in 0..count {
        let api = RuntimeApi::start().await?;
        let log = dir.join(format!("cold-{i}.log"));
        let started = Instant::now();
        let mut child = spawn(launch, scenario, &api, &log).await?;
        let ready = api.first_next(INIT_LIMIT).await;
        // Read before the kill; the process sits idle in its `GET next` meanwhile.
        let (cpu, wait) = child.id().map(schedstat).unwrap_or((0.0, 0.0));
        let _ = child.kill().await;
        match ready {
            Ok(at) => colds.wall.push(millis(at - started)),
            Err(e) => return fail(format!("{e}; log:\n{}", harness::process::tail(&log))),
        }
        colds.cpu.push(cpu);
        colds.wait.push(wait);
    }
    Ok(colds)
}

/// CPU time and run-queue wait of all the process's threads so far, milliseconds
/// (`/proc/<pid>/task/*/schedstat`: nanoseconds on CPU, nanoseconds waiting, timeslices).
fn schedstat(pid: u32) -> (f64, f64) {
    let mut total = (0.0, 0.0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return total;
    };
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        let mut fields = text
            .split_whitespace()
            .map(|f| f.parse::<f64>().unwrap_or(0.0));
        total.0 += fields.next().unwrap_or(0.0) / 1e6;
        total.1 += fields.next().unwrap_or(0.0) / 1e6;
    }
    total
}

/// One process: init (its AWS calls recorded), the counted event kinds, then `warm` events.
pub async fn measured_run(
    launch: &Launch,
    scenario: &mut Scenario,
    warm: usize,
    first_event: usize,
    count_kinds: bool,
    dir: &Path,
) -> Result<(f64, Run)> {
    let api = RuntimeApi::start().await?;
    let log = dir.join("measured.log");
    scenario.moto().record_calls().await?;
    let started = Instant::now();
    let mut child = spawn(launch, scenario, &api, &log).await?;
    let init = match api.first_next(INIT_LIMIT).await {
        Ok(at) => millis(at - started),
        Err(e) => return fail(format!("{e}; log:\n{}", harness::process::tail(&log))),
    };
    let init_calls = scenario.moto().recorded_calls().await?;
    let mut first_failure = None;
    let mut kinds = Vec::new();
    if count_kinds {
        for (kind, event) in scenario.kinds(first_event + warm).await? {
            scenario.moto().record_calls().await?;
            let answer = api.invoke(&event, INVOKE_LIMIT).await?;
            if !answer.ok && first_failure.is_none() {
                first_failure = Some(format!("{kind}: {}", answer.body));
            }
            let calls = scenario.moto().recorded_calls().await?;
            kinds.push(Calls {
                kind,
                ok: answer.ok,
                calls,
            });
        }
    }
    let mut warm_ms = Vec::new();
    let mut warm_failed = 0;
    for i in 0..warm {
        let event = scenario.event(first_event, i).await?;
        let answer = api.invoke(&event, INVOKE_LIMIT).await?;
        if !answer.ok {
            warm_failed += 1;
            first_failure.get_or_insert_with(|| answer.body.clone());
        }
        warm_ms.push(millis(answer.took));
    }
    // A failed invocation is a wrong answer: the bench fails rather than time it into a median.
    if warm_failed > 0 {
        let _ = child.kill().await;
        return fail(format!(
            "{warm_failed} of {warm} warm invocations failed; the first: {}",
            first_failure.unwrap_or_default()
        ));
    }
    let peak_rss_mb = match child.id() {
        Some(pid) => peak_rss(pid)?,
        None => {
            return fail(format!(
                "the function exited; log:\n{}",
                harness::process::tail(&log)
            ));
        }
    };
    let _ = child.kill().await;
    Ok((
        init,
        Run {
            cold_ms: Vec::new(),
            cold_cpu_ms: Vec::new(),
            cold_wait_ms: Vec::new(),
            warm_ms,
            warm_failed,
            peak_rss_mb,
            init_calls,
            kinds,
            first_failure,
        },
    ))
}

/// The process's peak resident set (`VmHWM`), in MB.
fn peak_rss(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    match kb {
        Some(kb) => Ok(kb / 1024.0),
        None => fail("no VmHWM in /proc/<pid>/status"),
    }
}

pub fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(index).copied().unwrap_or(0.0)
}
