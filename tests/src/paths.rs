//! Where things are: the workspace, the tool cache, built binaries, fixtures; and free ports.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use crate::{Result, fail};

/// The workspace root (the folder with the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The cache folder holding the Python tool environments: `WATCHKEEPER_CACHE`, or `.cache` in
/// the workspace (git-ignored).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("WATCHKEEPER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".cache"))
}

/// A tool installed by `tests/setup.sh` into the cache, or a clear error saying so.
pub fn cached_tool(relative: &str, what: &str) -> Result<PathBuf> {
    let path = cache_dir().join(relative);
    if path.is_file() {
        Ok(path)
    } else {
        fail(format!(
            "{what} is not installed (looked for {}). Run `bash tests/setup.sh` to install it, \
             or set WATCHKEEPER_CACHE to the folder where it was installed.",
            path.display()
        ))
    }
}

/// A system program from the first of `candidates` that exists, or a clear error naming the
/// Debian package to install.
pub fn system_tool(candidates: &[&str], package: &str) -> Result<PathBuf> {
    for candidate in candidates {
        let path = Path::new(candidate);
        if path.is_absolute() {
            if path.is_file() {
                return Ok(path.to_path_buf());
            }
        } else if let Some(found) = find_on_path(candidate) {
            return Ok(found);
        }
    }
    fail(format!(
        "{} not found. Install it with `apt-get install -y {package}` (or run `bash tests/setup.sh`).",
        candidates.join(" / ")
    ))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or(None)
}

/// The target folder cargo builds into: `CARGO_TARGET_DIR`, or `target` in the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// A function binary built by `cargo build --workspace --bins` (the test and demo scripts do it
/// before anything runs; a test run holds cargo's build lock, so it cannot build by itself).
///
/// A binary older than a source it is built from (the function's or the shared crate's) is
/// refused too: a test must not pass or fail on code that is no longer there.
pub fn function_binary(name: &str) -> Result<PathBuf> {
    let path = target_dir().join("debug").join(name);
    let Ok(built) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
        return fail(format!(
            "function binary {} is not built. Run `cargo build --workspace --bins` first (tests/test.sh does).",
            path.display()
        ));
    };
    let root = workspace_root();
    for dir in [root.join("functions").join(name), root.join("shared")] {
        if let Some(newer) = newer_source(&dir, built) {
            return fail(format!(
                "function binary {} is older than {}. Run `cargo build --workspace --bins` first (tests/test.sh does).",
                path.display(),
                newer.display()
            ));
        }
    }
    Ok(path)
}

/// A `.rs` or `Cargo.toml` file under `dir` modified after `than`.
fn newer_source(dir: &std::path::Path, than: std::time::SystemTime) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(newer) = newer_source(&path, than) {
                return Some(newer);
            }
            continue;
        }
        let source = path.extension().is_some_and(|e| e == "rs")
            || path.file_name().is_some_and(|n| n == "Cargo.toml");
        let modified = entry.metadata().and_then(|m| m.modified()).ok();
        if source && modified.is_some_and(|m| m > than) {
            return Some(path);
        }
    }
    None
}

/// A fixture from `events/`.
pub fn event_path(name: &str) -> PathBuf {
    workspace_root().join("events").join(name)
}

pub fn read_event(name: &str) -> Result<serde_json::Value> {
    let path = event_path(name);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// A port on 127.0.0.1 that is free now and that no other caller in this process has been given.
///
/// Asking the kernel for port 0 is not enough: servers started in parallel by one test binary
/// can be handed the same port once the first probe socket is closed, and then one server's
/// client talks to the other's server. Ports come from a per-process sequence instead, below the
/// kernel's ephemeral range (so outgoing connections do not take them), starting at a place that
/// depends on the process id (so the demo and a test run rarely meet).
pub fn free_port() -> Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7919)) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let port = (FIRST + offset) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    fail("no free loopback port")
}
