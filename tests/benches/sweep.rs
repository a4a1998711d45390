//! Benchmark of one health sweep (not a timed test): 1,000 and 10,000 loopback targets, 10 % of
//! which accept and never answer, 2 s probe timeout, the default concurrency. Reports wall time,
//! CPU time (total and per probe) and peak RSS of the sweeping process.
//!
//! The backends run in a child process (this same binary, started with `BENCH_ROLE=backends`) so
//! that their work is not counted. Run: `cargo bench -p watchkeeper-tests --bench sweep`.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use health_sweeper::health::{Rules, SweepState, Target};
use health_sweeper::probe::Prober;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Each size gets its own port, so a size never meets the sockets of the one before.
fn port(count: usize) -> u16 {
    18_000 + (count / 1000 % 1000) as u16
}
const HANG_EVERY: usize = 10;

fn address(i: usize, count: usize) -> SocketAddr {
    SocketAddr::from((
        Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8),
        port(count),
    ))
}

fn main() {
    let count: usize = std::env::var("BENCH_TARGETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    match std::env::var("BENCH_ROLE").as_deref() {
        Ok("backends") => return backends(count),
        Ok("sweeper") => return sweeper(count),
        _ => {}
    }
    println!("| targets | never answer | wall time | CPU time | CPU per probe | peak RSS |");
    println!("|---|---|---|---|---|---|");
    for count in [1_000, 10_000] {
        // Each size in a fresh process, so peak RSS is that size's own.
        let output = Command::new(std::env::current_exe().expect("own path"))
            .env("BENCH_ROLE", "sweeper")
            .env("BENCH_TARGETS", count.to_string())
            .stderr(Stdio::inherit())
            .output()
            .expect("sweeper process");
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
}

/// The sweeping side: one process per size (`BENCH_ROLE=sweeper`).
fn sweeper(count: usize) {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env("BENCH_ROLE", "backends")
        .env("BENCH_TARGETS", count.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("backends process");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("ready line");
    assert_eq!(ready.trim(), "ready", "backends did not start");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let targets: Vec<Target> = (0..count)
        .map(|i| Target {
            id: format!("t{i}"),
            name: format!("t{i}"),
            addr: address(i, count),
        })
        .collect();
    let prober = Prober::new(
        "/despachos/reporte".into(),
        vec![200, 302],
        Duration::from_secs(2),
        256,
    )
    .expect("client");
    let rules = Rules {
        healthy_threshold: 2,
        unhealthy_threshold: 3,
        quorum: None,
        reminder: None,
    };
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let outcomes = runtime.block_on(prober.probe_all(
        &targets,
        tokio::time::Instant::now() + Duration::from_secs(55),
        "bench",
    ));
    let mut state = SweepState::default();
    let observations: Vec<_> = targets.into_iter().zip(outcomes).collect();
    state.observe(&observations, &rules, Utc::now());
    let wall = started.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    let _ = child.kill();
    let _ = child.wait();
    let hung = count / HANG_EVERY;
    println!(
        "| {count} | {hung} | {:.2} s | {:.3} s | {:.1} µs | {:.1} MB |",
        wall.as_secs_f64(),
        cpu,
        cpu * 1e6 / count as f64,
        peak_rss_kb() as f64 / 1024.0
    );
    let unhealthy = observations
        .iter()
        .filter(|(_, o)| matches!(o, health_sweeper::health::Outcome::Unhealthy(_)))
        .count();
    assert_eq!(
        unhealthy, hung,
        "every hanging target must time out, every other one answer"
    );
}

/// The backends: `count` listeners, every tenth never answers.
fn backends(count: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let mut listeners = Vec::with_capacity(count);
        for i in 0..count {
            listeners.push((i % HANG_EVERY == 0, TcpListener::bind(address(i, count)).await.expect("bind backend")));
        }
        for (hang, listener) in listeners {
            tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else { continue };
                    tokio::spawn(async move {
                        let mut buffer = [0u8; 1024];
                        let _ = stream.read(&mut buffer).await;
                        if hang {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                        } else {
                            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                        }
                    });
                }
            });
        }
        println!("ready");
        let _ = std::io::stdout().flush();
        std::future::pending::<()>().await;
    });
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: utime and stime are fields 12 and 13 (0-based), in 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size (VmHWM) in KiB.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
