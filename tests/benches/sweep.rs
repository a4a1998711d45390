//! Benchmark of one health sweep as the function runs it (not a timed test): discovery of the
//! targets from ALB target groups in the emulator (at most 1,000 targets per group, as AWS
//! allows), probes of loopback backends of which every tenth accepts and never answers (2 s
//! timeout), the S3 read and conditional write of the N-target state document, and the alert:
//! the stored state says DEGRADED, the sweep finds 90 % up, so it renders and sends a
//! "recovered" alert through SNS and writes the state again. 100, 1,000 and 10,000 targets at
//! the default concurrency (from the open-file limit), and 10,000 again under Lambda's limit of
//! 1,024 open files.
//!
//! Three kinds of process, so that each number is the sweeper's own:
//! - this one, the orchestrator: starts the emulator, registers the targets, seeds the state;
//! - `BENCH_ROLE=backends`: the loopback backends;
//! - `BENCH_ROLE=sweeper`: builds the function's `App` from environment variables exactly as
//!   `main.rs` does, runs one sweep, and reports wall time, CPU time (`getrusage`, user + system)
//!   and peak RSS (`VmHWM`) of the whole process.
//!
//! Then discovery alone, of EC2 instances in the emulator (2,000 by default,
//! `BENCH_DISCOVERY_INSTANCES`): by tags, and through instance-type target groups of 1,000 (a
//! second table).
//!
//! Run: `ulimit -n 65536; cargo bench -p watchkeeper-tests --bench sweep`.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum;
use chrono::Utc;
use harness::sweep::{BUCKET, SweepWorld};
use health_sweeper::handler::state_key;
use health_sweeper::quorum::SystemState;
use health_sweeper::sweep_state::SweepState;
use health_sweeper::target::{Failure, Target, TargetHealth, TargetState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use watchkeeper_shared::state::{StateStore, Store};

const HANG_EVERY: usize = 10;
const PER_GROUP: usize = 1000;
const SYSTEM: &str = "bench";

/// Backends live in the emulator's VPC (127.0.0.0/16), from 127.0.100.1 up.
fn address(i: usize, port: u16) -> SocketAddr {
    SocketAddr::from((
        Ipv4Addr::new(127, 0, 100 + (i / 250) as u8, (i % 250 + 1) as u8),
        port,
    ))
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> Result<()> {
    let count: usize = env_number("BENCH_TARGETS").unwrap_or(1000);
    let port = env_number("BENCH_PORT").unwrap_or(18_080) as u16;
    match std::env::var("BENCH_ROLE").as_deref() {
        Ok("backends") => return backends(count, port),
        Ok("sweeper") => return sweeper(count),
        Ok("discover") => return discover(count),
        _ => {}
    }
    println!(
        "open-file limit of this shell: {}",
        health_sweeper::concurrency::open_files_limit()
    );
    println!(
        "| targets | never answer | open files | concurrency | wall | CPU | CPU per target | peak RSS | discovery (during probes) / probes done at / state + alert |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let runtime = tokio::runtime::Runtime::new()?;
    // BENCH_ONLY=discovery: the discovery table alone.
    let sweeps: &[(usize, Option<u64>)] =
        if std::env::var("BENCH_ONLY").as_deref() == Ok("discovery") {
            &[]
        } else {
            &[
                (100, None),
                (1_000, None),
                (10_000, None),
                (10_000, Some(1024)),
            ]
        };
    for &(count, open_files) in sweeps {
        // A port free on loopback now (the backends listen on 127.0.100.x and up).
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        runtime.block_on(run_size(count, port, open_files))?;
    }
    // The emulator filters instances in Python: 10,000 take it over ten minutes per page (EC2
    // answers in well under a second), so the default is 2,000; BENCH_DISCOVERY_INSTANCES sets it.
    let instances = env_number("BENCH_DISCOVERY_INSTANCES").unwrap_or(2_000);
    println!();
    println!("| discovery of {instances} instances | requests | wall | CPU | peak RSS |");
    println!("|---|---|---|---|---|");
    runtime.block_on(run_discovery(instances))?;
    Ok(())
}

/// Discovery alone, as the function runs it, of `count` EC2 instances in the emulator: by their
/// tags (pages of 1,000), and registered in instance-type target groups of 1,000 (looked up by
/// id in chunks). A discovery that finds another number of targets fails the bench.
async fn run_discovery(count: usize) -> Result<()> {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let world = SweepWorld::start(&[]).await?;
    let sdk = world.moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count.div_ceil(1000) {
        let out = ec2
            .run_instances()
            .image_id("ami-12c6146b")
            .min_count(1000)
            .max_count(1000)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(Tag::builder().key("Project").value("scale").build())
                    .tags(Tag::builder().key("Role").value("backend").build())
                    .build(),
            )
            .send()
            .await?;
        ids.extend(
            out.instances()
                .iter()
                .filter_map(|i| i.instance_id().map(String::from)),
        );
    }
    ids.truncate(count);
    let mut arns = Vec::new();
    for (g, group) in ids.chunks(PER_GROUP).enumerate() {
        let targets: Vec<(String, u16)> = group.iter().map(|id| (id.clone(), 8080)).collect();
        arns.push(
            world
                .target_group(&format!("scale-{g}"), TargetTypeEnum::Instance, &targets)
                .await?,
        );
    }
    let me = std::env::current_exe()?;
    for (source, extra) in [
        (
            "EC2 tags (pages of 1,000)",
            ("SWEEP_PROJECT", "scale".to_string()),
        ),
        (
            "instance-type target groups of 1,000 (ids 150 a call)",
            ("SWEEP_TARGET_GROUP_ARNS", arns.join(",")),
        ),
    ] {
        // The emulator takes seconds, not EC2's milliseconds, to filter 10,000 instances and
        // write a 1,000-instance page: each call is given 5 minutes, and the wall time is the
        // emulator's more than the function's (CPU and memory are the function's own).
        let output = Command::new(&me)
            .env_clear()
            .envs(harness::faults::production_sdk(&world.moto.env()))
            .env("AWS_ATTEMPT_TIMEOUT_MS", "300000")
            .env("BENCH_ROLE", "discover")
            .env("BENCH_TARGETS", count.to_string())
            .env("BENCH_SOURCE", source)
            .env("STATE_BUCKET", BUCKET)
            .env("NOTIFY_SNS_TOPIC_ARN", &world.topic_arn)
            .env(extra.0, extra.1)
            .env("RUST_LOG", "error")
            .stderr(Stdio::inherit())
            .output()?;
        print!("{}", String::from_utf8_lossy(&output.stdout));
        if !output.status.success() {
            return Err(format!("discovery by {source} failed ({})", output.status).into());
        }
    }
    Ok(())
}

/// The discovering side: the function's discovery built from the environment as `main.rs`
/// builds it, run once, measured.
fn discover(count: usize) -> Result<()> {
    use health_sweeper::discovery::{Discover, Discovery};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (found, wall) = runtime.block_on(async {
        let vars = watchkeeper_shared::config::Vars::from_env();
        let config = health_sweeper::config::Config::from_vars(&vars)?;
        let sdk = watchkeeper_shared::aws::load_sdk_config(&vars).await?;
        let discovery = Discovery::from_config(&config, &sdk);
        let started = Instant::now();
        let found = discovery.discover().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((found, started.elapsed()))
    })?;
    let (cpu, rss) = rusage();
    let source = std::env::var("BENCH_SOURCE").unwrap_or_default();
    println!(
        "| {source} | {} | {:.2} s | {:.3} s | {:.1} MB |",
        if source.starts_with("EC2") {
            count.div_ceil(1000).to_string()
        } else {
            format!("{} + {}", count.div_ceil(PER_GROUP), count.div_ceil(150))
        },
        wall.as_secs_f64(),
        cpu,
        rss as f64 / 1024.0
    );
    if found.len() != count {
        return Err(format!("found {} targets of {count}", found.len()).into());
    }
    Ok(())
}

fn env_number(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.parse().ok()
}

/// One row: emulator and backends up, targets registered, state seeded, one sweeper process.
async fn run_size(count: usize, port: u16, open_files: Option<u64>) -> Result<()> {
    let me = std::env::current_exe()?;
    let mut backends = Command::new(&me)
        .env("BENCH_ROLE", "backends")
        .env("BENCH_TARGETS", count.to_string())
        .env("BENCH_PORT", port.to_string())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut ready = String::new();
    if let Some(out) = backends.stdout.take() {
        BufReader::new(out).read_line(&mut ready)?;
    }
    if ready.trim() != "ready" {
        return Err("backends did not start".into());
    }
    let world = SweepWorld::start(&[]).await?;
    let mut arns = Vec::new();
    for (g, group) in (0..count).collect::<Vec<_>>().chunks(PER_GROUP).enumerate() {
        let targets: Vec<(String, u16)> = group
            .iter()
            .map(|&i| (address(i, port).ip().to_string(), port))
            .collect();
        arns.push(
            world
                .target_group(&format!("bench-{g}"), TargetTypeEnum::Ip, &targets)
                .await?,
        );
    }
    seed_state(&world, count, port).await?;

    let mut sweeper = Command::new(&me);
    sweeper
        .env_clear()
        .envs(world.moto.env())
        .env("BENCH_ROLE", "sweeper")
        .env("BENCH_TARGETS", count.to_string())
        .env("STATE_BUCKET", BUCKET)
        .env("NOTIFY_SNS_TOPIC_ARN", &world.topic_arn)
        .env("SWEEP_TARGET_GROUP_ARNS", arns.join(","))
        .env("SWEEP_ALLOWED_NETWORKS", "127.0.0.0/16")
        .env("SWEEP_SYSTEM_NAME", SYSTEM)
        .env("SWEEP_TIMEOUT_MS", "2000")
        .env("RUST_LOG", "error")
        .stderr(Stdio::inherit());
    if let Some(limit) = open_files {
        sweeper.env("BENCH_OPEN_FILES", limit.to_string());
    }
    let output = sweeper.output()?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    let alerts = world.moto.received_notifications(&world.queue_url).await?;
    let _ = backends.kill();
    let _ = backends.wait();
    // A wrong answer is a failed bench (non-zero exit), never a row.
    if !output.status.success() {
        return Err(format!("the sweep of {count} targets failed ({})", output.status).into());
    }
    if alerts.len() != 1 || !alerts[0].subject.contains("recovered") {
        return Err(format!("expected one recovered alert, got {alerts:?}").into());
    }
    Ok(())
}

/// The document a steady deployment would have: every target known, the hanging tenth down,
/// and the system last told DEGRADED, so the measured sweep alerts (recovered).
async fn seed_state(world: &SweepWorld, count: usize, port: u16) -> Result<()> {
    let now = Utc::now();
    let mut state = SweepState::new();
    state.sweeps = 10;
    state.system = SystemState::Degraded;
    state.alerted = SystemState::Degraded;
    state.alert_seq = 1;
    for i in 0..count {
        let target = Target {
            addr: address(i, port),
            name: address(i, port).to_string(),
            instance: None,
            check: Default::default(),
        };
        let mut t = TargetState::new(&target, 1, now);
        t.probed = 10;
        if i % HANG_EVERY == 0 {
            (t.health, t.failures, t.last) = (TargetHealth::Unhealthy, 5, "timeout".into());
            t.failure = Some(Failure::Timeout);
        } else {
            (t.health, t.successes, t.last) = (TargetHealth::Healthy, 5, "HTTP 200 in 1 ms".into());
        }
        state.targets.insert(target.key(), t);
    }
    let store = StateStore::new(world.moto.s3().await, BUCKET, "health-sweeper");
    store.create(&state_key(SYSTEM), &state).await?;
    Ok(())
}

/// The sweeping side: the function's init and one sweep, measured.
fn sweeper(count: usize) -> Result<()> {
    let open_files = env_number("BENCH_OPEN_FILES");
    if let Some(limit) = open_files {
        set_open_files(limit as u64)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (summary, wall, concurrency) = runtime.block_on(async {
        let app = init().await?;
        let concurrency = app.1;
        let started = Instant::now();
        let summary = app
            .0
            .sweep(
                "bench",
                &watchkeeper_shared::deadline::Deadline::after(Duration::from_secs(60)),
            )
            .await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((summary, started.elapsed(), concurrency))
    })?;
    let usage = rusage();
    let cpu = usage.0;
    let hung = count / HANG_EVERY;
    let phases = &summary["phases_ms"];
    let after_probes = summary["millis"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(phases["probes_done_at"].as_u64().unwrap_or(0));
    println!(
        "| {count} | {hung} | {} | {concurrency} | {:.2} s | {:.3} s | {:.0} µs | {:.1} MB | {} / {} / {} ms |",
        open_files.map_or_else(
            || health_sweeper::concurrency::open_files_limit().to_string(),
            |l| l.to_string()
        ),
        wall.as_secs_f64(),
        cpu,
        cpu * 1e6 / count as f64,
        usage.1 as f64 / 1024.0,
        phases["discovery"],
        phases["probes_done_at"],
        after_probes,
    );
    let right = summary["up"].as_u64() == Some((count - hung) as u64)
        && summary["down"].as_u64() == Some(hung as u64)
        && summary["not_probed"].as_u64() == Some(0)
        && summary["alert"]["kind"] == "Recovered";
    if !right {
        return Err(format!("a target was classified wrong: {summary}").into());
    }
    Ok(())
}

type App = health_sweeper::handler::App<
    health_sweeper::discovery::Discovery,
    watchkeeper_shared::notify::Notifier,
    StateStore,
>;

/// What `main.rs` builds at init, from the same environment variables.
async fn init() -> Result<(App, usize)> {
    use health_sweeper::discovery::{Discovery, TargetGroupDiscovery};
    let vars = watchkeeper_shared::config::Vars::from_env();
    let config = health_sweeper::config::Config::from_vars(&vars)?;
    let common = watchkeeper_shared::init::Common::connect(
        "health-sweeper",
        &vars,
        &config.state_bucket,
        &config.notify,
    )
    .await?;
    let discovery = Discovery {
        ec2: None,
        target_groups: Some(TargetGroupDiscovery::new(
            aws_sdk_elasticloadbalancingv2::Client::new(&common.sdk),
            aws_sdk_ec2::Client::new(&common.sdk),
            config.target_group_arns.clone(),
            config.port,
        )),
    };
    let prober = health_sweeper::probe::Prober::new(
        config.path.clone(),
        config.host.clone(),
        config.healthy_codes.clone(),
        config.probe_timeout,
        config.concurrency,
    );
    let concurrency = config.concurrency;
    let app = App::new(
        config,
        discovery,
        prober,
        common.notifier,
        common.state,
        "us-east-1".into(),
    );
    Ok((app, concurrency))
}

/// The backends: `count` listeners, every tenth never answers.
fn backends(count: usize, port: u16) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut listeners = Vec::with_capacity(count);
        for i in 0..count {
            listeners.push((i % HANG_EVERY == 0, TcpListener::bind(address(i, port)).await?));
        }
        for (hang, listener) in listeners {
            tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(async move {
                        let mut buffer = [0u8; 1024];
                        let _ = stream.read(&mut buffer).await;
                        if hang {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                        } else {
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                                .await;
                        }
                    });
                }
            });
        }
        println!("ready");
        let _ = std::io::stdout().flush();
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// (user + system CPU seconds from `getrusage`, peak RSS in KiB from `VmHWM`) of this process.
///
/// Not `ru_maxrss`: Linux carries it across `execve`, so a child forked from the orchestrator
/// reports the orchestrator's resident size at the fork when that is larger than its own (it
/// was: 62 MB reported for a 1,000-target sweep whose heap never passed 3 MB).
fn rusage() -> (f64, i64) {
    // SAFETY: an all-zero rusage is a valid value; getrusage only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return (0.0, 0);
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        seconds(usage.ru_utime) + seconds(usage.ru_stime),
        peak_rss_kib().unwrap_or(usage.ru_maxrss),
    )
}

/// `VmHWM` of /proc/self/status: the peak resident size of this program image only.
fn peak_rss_kib() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Lowers this process's open-file limit, as Lambda's is.
fn set_open_files(limit: u64) -> Result<()> {
    let value = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &value) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}
