//! Child processes that die with their owner, and waiting for a port to open.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::{Result, fail};

/// Starts `command` with stdout and stderr appended to `log`; killed when the `Child` is dropped.
pub fn spawn_logged(mut command: Command, log: &Path) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true);
    Ok(command.spawn()?)
}

/// Waits until `addr` accepts TCP connections, failing early if `child` exits. Never waits longer
/// than `limit`.
pub async fn wait_for_port(
    addr: SocketAddr,
    child: &mut Child,
    limit: Duration,
    what: &str,
    log: &Path,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            return fail(format!(
                "{what} exited ({status}) before listening on {addr}:\n{}",
                tail(log)
            ));
        }
        if start.elapsed() > limit {
            return fail(format!(
                "{what} did not listen on {addr} within {limit:?}:\n{}",
                tail(log)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last lines of a log file, for error messages.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Runs a command to completion, failing with its output if it fails.
pub async fn run(mut command: Command, what: &str) -> Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        fail(format!("{what} failed ({}):\n{text}", output.status))
    }
}
