//! The results: what was measured, the machine and date, artifact sizes, the divan and sweep
//! benchmarks' outputs (read from the files `tests/bench.sh` wrote), as JSON and as a markdown table.

use std::path::Path;

use harness::Result;
use harness::paths::target_dir;
use serde::{Deserialize, Serialize};

use crate::measure::{Run, median, percentile};

#[derive(Debug, Serialize, Deserialize)]
pub struct FunctionResult {
    pub function: String,
    pub rust: Run,
    pub python: Run,
    pub sizes: Sizes,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Sizes {
    pub x86_64_binary_mb: Option<f64>,
    pub x86_64_zip_mb: Option<f64>,
    pub arm64_binary_mb: Option<f64>,
    pub arm64_zip_mb: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    pub date: String,
    pub machine: String,
    pub arm64: String,
    pub functions: Vec<FunctionResult>,
    /// `(benchmark, median µs)` from the divan benchmarks of parse + decide + render.
    pub warm_bench: Vec<(String, f64)>,
    /// health-sweeper's scale benchmark: its table's header and rows, as printed.
    pub sweep: Vec<Vec<String>>,
}

fn mb(path: &Path) -> Option<f64> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.len() as f64 / 1_000_000.0)
}

impl FunctionResult {
    pub fn new(function: &str, rust: Run, python: Run) -> Self {
        Self {
            function: function.to_string(),
            rust,
            python,
            sizes: Sizes::of(function),
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "init {:.1} ms ({:.1} ms CPU, {:.1} ms waiting for a CPU; Python {:.0} ms), warm median {:.2} ms, peak RSS {:.1} MB (Python {:.1} MB), warm failures {}{}, Python's {}{}",
            median(&self.rust.cold_ms),
            median(&self.rust.cold_cpu_ms),
            median(&self.rust.cold_wait_ms),
            median(&self.python.cold_ms),
            median(&self.rust.warm_ms),
            self.rust.peak_rss_mb,
            self.python.peak_rss_mb,
            self.rust.warm_failed,
            self.rust
                .first_failure
                .as_deref()
                .map(|f| format!(" (first: {f})"))
                .unwrap_or_default(),
            self.python.warm_failed,
            self.python
                .first_failure
                .as_deref()
                .map(|f| format!(" (first: {f})"))
                .unwrap_or_default()
        )
    }
}

impl Sizes {
    /// The artifacts `tests/bench.sh` built for `function` (missing ones are `None`).
    pub fn of(function: &str) -> Self {
        let t = target_dir();
        Self {
            x86_64_binary_mb: mb(&t.join("x86_64-unknown-linux-gnu/release").join(function)),
            x86_64_zip_mb: mb(&t.join("lambda/x86_64").join(function).join("bootstrap.zip")),
            arm64_binary_mb: mb(&t.join("aarch64-unknown-linux-gnu/release").join(function)),
            arm64_zip_mb: mb(&t.join("lambda/arm64").join(function).join("bootstrap.zip")),
        }
    }
}

impl Results {
    pub fn collect(functions: Vec<FunctionResult>) -> Result<Self> {
        let bench = target_dir().join("bench");
        let read = |name: &str| std::fs::read_to_string(bench.join(name)).unwrap_or_default();
        Ok(Self {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            machine: machine(),
            arm64: read("arm64.txt").trim().to_string(),
            functions,
            warm_bench: parse_divan(&read("warm.txt")),
            sweep: parse_table(&read("sweep.txt")),
        })
    }

    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# Benchmark results\n\n{} on {}. Release builds (`cargo lambda build --release`), 128 MB declared, \
             loopback Runtime API, AWS calls answered by the moto emulator. Init: process start to the first \
             `GET /runtime/invocation/next`, median of 20 cold starts. Warm: event sent to answer received, \
             100 invocations in one process (emulator round trips included). Peak RSS: `VmHWM` after the cold \
             start and the 100 warm invocations. Python: the reference of the same job in `tests/bench/python/`. \
             Arm64: {}.\n\n",
            self.date,
            self.machine,
            if self.arm64.is_empty() {
                "not built"
            } else {
                &self.arm64
            }
        );
        md.push_str("| function | init (ms) | init CPU / waiting for CPU (ms) | Python init (ms) | Python init CPU (ms) | × faster | warm median / p95 (ms) | Python warm median (ms) | peak RSS (MB) | Python peak RSS (MB) | x86_64 binary / zip (MB) | arm64 zip (MB) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for f in &self.functions {
            let (ri, pi) = (median(&f.rust.cold_ms), median(&f.python.cold_ms));
            md.push_str(&format!(
                "| {} | {:.1} | {:.1} / {:.1} | {:.0} | {:.0} | {:.0}× | {:.2} / {:.2} | {:.2} | {:.1} | {:.1} | {} / {} | {} |\n",
                f.function,
                ri,
                median(&f.rust.cold_cpu_ms),
                median(&f.rust.cold_wait_ms),
                pi,
                median(&f.python.cold_cpu_ms),
                pi / ri.max(0.001),
                median(&f.rust.warm_ms),
                percentile(&f.rust.warm_ms, 0.95),
                median(&f.python.warm_ms),
                f.rust.peak_rss_mb,
                f.python.peak_rss_mb,
                size(f.sizes.x86_64_binary_mb),
                size(f.sizes.x86_64_zip_mb),
                size(f.sizes.arm64_zip_mb),
            ));
        }
        md.push_str("\n## AWS calls per event kind\n\n| function | event | calls | answer |\n|---|---|---|---|\n");
        for f in &self.functions {
            md.push_str(&format!(
                "| {} | init | {} | |\n",
                f.function,
                calls_text(&f.rust.init_calls)
            ));
            for k in &f.rust.kinds {
                md.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    f.function,
                    k.kind,
                    calls_text(&k.calls),
                    if k.ok { "ok" } else { "error" }
                ));
            }
        }
        md.push_str(&crate::cost::markdown(&self.functions));
        if !self.warm_bench.is_empty() {
            md.push_str("\n## Parse + decide + render (divan, median)\n\n| benchmark | median (µs) |\n|---|---|\n");
            for (name, us) in &self.warm_bench {
                md.push_str(&format!("| {name} | {us:.2} |\n"));
            }
        }
        if !self.sweep.is_empty() {
            md.push_str("\n## health-sweeper: one sweep (its scale benchmark)\n\n");
            for (i, row) in self.sweep.iter().enumerate() {
                md.push_str(&format!("| {} |\n", row.join(" | ")));
                if i == 0 {
                    md.push_str(&format!("|{}\n", "---|".repeat(row.len())));
                }
            }
        }
        md
    }
}

fn size(value: Option<f64>) -> String {
    value
        .map(|v| format!("{v:.2}"))
        .unwrap_or_else(|| "–".into())
}

/// `s3:GetObject ×2, sns:Publish` (in first-seen order), or `none`.
fn calls_text(calls: &[String]) -> String {
    let mut counted: Vec<(String, usize)> = Vec::new();
    for call in calls {
        match counted.iter_mut().find(|(c, _)| c == call) {
            Some((_, n)) => *n += 1,
            None => counted.push((call.clone(), 1)),
        }
    }
    if counted.is_empty() {
        return "none".into();
    }
    let total = calls.len();
    let list = counted
        .iter()
        .map(|(c, n)| {
            if *n > 1 {
                format!("{c} ×{n}")
            } else {
                c.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("{total}: {list}")
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1_048_576.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    // The machine may be shared: the load when the report was made says how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{cpu}, {cores} cores, {mem_gb:.0} GB, Linux {}, {rustc}, load average {load}",
        kernel.trim()
    )
}

/// `(group/name, median µs)` from divan's table.
pub fn parse_divan(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut group = String::new();
    for line in text.lines().filter(|l| l.contains('│')) {
        let cells: Vec<&str> = line.split('│').collect();
        let first = cells.first().copied().unwrap_or_default();
        let name_part = first.trim_start_matches(|c: char| "├╰─│ ".contains(c));
        let name = name_part
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let median = cells.get(2).and_then(|c| to_micros(c.trim()));
        let leaf = first.contains('╰') || first.contains('├');
        match median {
            Some(us) if leaf => out.push((format!("{group}/{name}"), us)),
            _ if !name.is_empty() && name != "fastest" => group = name,
            _ => {}
        }
    }
    out
}

fn to_micros(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let value: f64 = parts.next()?.parse().ok()?;
    let factor = match parts.next()? {
        "ns" => 0.001,
        "µs" | "us" => 1.0,
        "ms" => 1000.0,
        "s" => 1_000_000.0,
        _ => return None,
    };
    Some(value * factor)
}

/// The rows of the first markdown table in `text`, header first, without the separator line.
pub fn parse_table(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| ---"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// Seconds in a cell such as `2.16 s`, `850 ms` or `0.57 s CPU`.
pub fn seconds(cell: &str) -> Option<f64> {
    let mut parts = cell.split_whitespace();
    let value: f64 = parts.next()?.replace(',', "").parse().ok()?;
    match parts.next() {
        Some("ms") => Some(value / 1000.0),
        Some("µs") | Some("us") => Some(value / 1_000_000.0),
        _ => Some(value),
    }
}

#[cfg(test)]
mod tests {
    /// The rows of the first table after the heading that starts with `heading`.
    fn table_after(text: &str, heading: &str) -> Vec<String> {
        text.lines()
            .skip_while(|line| !line.starts_with(heading))
            .skip(1)
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .map(str::to_string)
            .collect()
    }

    /// docs/performance.md's "AWS calls per event" table is the one the last bench run wrote, row
    /// for row: a figure edited by hand, or a bench result not copied over, fails here.
    #[test]
    fn the_performance_doc_shows_the_calls_the_bench_counted() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let doc = std::fs::read_to_string(root.join("docs/performance.md")).unwrap();
        let results = std::fs::read_to_string(root.join("tests/bench/results.md")).unwrap();
        let shown = table_after(&doc, "## AWS calls per event");
        let counted = table_after(&results, "## AWS calls per event kind");
        assert!(counted.len() > 10, "{counted:?}");
        assert_eq!(shown, counted);
    }
}
