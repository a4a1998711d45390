//! The automatic check every test gets. Each emulator, when its test drops it, reads every
//! secret it holds (Secrets Manager values and their passwords, keys, webhook URLs and API keys;
//! RDS master passwords) and scans what it was sent (SES, SNS, SQS) and what every function
//! process that used it printed and answered (registered by [`crate::lambda::LambdaRuntime`] and
//! [`crate::runtime_api::FunctionProcess`] when they stop), plus the request signatures the
//! runtime carried. A hit fails the test that leaked, as an assertion in its body would; so does
//! an emulator that cannot say what it holds and was sent. Loopback servers
//! ([`crate::http::HttpServer`]) register what they were sent too, scanned against the secrets of
//! every emulator of the test binary.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::Duration;

use super::{EmulatorReport, Outbound, SENT_ROUTE, assert_no_secrets};
use crate::lock;

#[derive(Default)]
struct Evidence {
    /// Known once the emulator has stopped.
    stored: Option<Vec<String>>,
    /// Secrets the runtimes saw go in (request signatures).
    extra: Vec<String>,
    /// Texts not yet scanned.
    pending: Vec<Outbound>,
}

static EVIDENCE: Mutex<BTreeMap<String, Evidence>> = Mutex::new(BTreeMap::new());
/// Every secret of every emulator stopped so far in this test binary, and texts that belong
/// to no emulator (what loopback webhook receivers were sent): scanned against all of them,
/// since no test's secret belongs in any webhook.
static ALL_STORED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static UNOWNED: Mutex<Vec<Outbound>> = Mutex::new(Vec::new());
/// Proxies in front of an emulator: their endpoint names the emulator's.
static ALIASES: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

fn canonical(endpoint: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/').to_string();
    lock(&ALIASES).get(&endpoint).cloned().unwrap_or(endpoint)
}

/// `proxy` forwards to the emulator at `emulator`.
pub fn alias(proxy: &str, emulator: &str) {
    lock(&ALIASES).insert(
        proxy.trim_end_matches('/').into(),
        emulator.trim_end_matches('/').into(),
    );
}

/// The AWS endpoint a function's environment points at.
pub fn endpoint_of(env: &[(String, String)]) -> Option<String> {
    env.iter()
        .rev()
        .find(|(k, _)| k == "AWS_ENDPOINT_URL")
        .map(|(_, v)| v.clone())
}

/// Secrets that went into a function (a signature header) and must not come out.
pub fn secret_used(endpoint: &str, secret: &str) {
    if secret.len() >= super::SHORTEST_SECRET {
        let mut all = lock(&EVIDENCE);
        all.entry(canonical(endpoint))
            .or_default()
            .extra
            .push(secret.to_string());
    }
}

/// Texts a function let out; scanned now if the emulator has stopped, else when it does.
pub fn texts(endpoint: &str, texts: Vec<Outbound>) {
    let key = canonical(endpoint);
    let ready = {
        let mut all = lock(&EVIDENCE);
        let entry = all.entry(key).or_default();
        match &entry.stored {
            Some(stored) => {
                let mut secrets = stored.clone();
                secrets.extend(entry.extra.iter().cloned());
                Some(secrets)
            }
            None => {
                entry.pending.extend(texts.iter().cloned());
                None
            }
        }
    };
    if let Some(secrets) = ready {
        check(&secrets, &texts);
    }
}

/// Texts tied to no emulator (a loopback server's requests), scanned against the secrets of
/// every emulator stopped so far and of every one that stops later.
pub fn texts_unowned(texts: Vec<Outbound>) {
    if texts.is_empty() {
        return;
    }
    let secrets = lock(&ALL_STORED).clone();
    check(&secrets, &texts);
    lock(&UNOWNED).extend(texts);
}

/// Called by the emulator as it stops: reads its secrets and what it was sent, and scans.
/// Fails the test when the emulator cannot tell (unless the test is failing already).
pub fn emulator_stopping(endpoint: &str) {
    let report = match read_report(endpoint) {
        Ok(report) => report,
        Err(reason) => {
            lock(&EVIDENCE).remove(&canonical(endpoint));
            if !std::thread::panicking() {
                panic!(
                    "the secret-leak check cannot read what the emulator at {endpoint} holds and \
                     was sent, so this test is not checked for leaks: {reason}"
                );
            }
            return;
        }
    };
    let stored = report.secrets;
    let mut texts = report.sent;
    let (secrets, pending) = {
        let mut all = lock(&EVIDENCE);
        let entry = all.entry(canonical(endpoint)).or_default();
        entry.stored = Some(stored.clone());
        let mut secrets = stored;
        secrets.extend(entry.extra.iter().cloned());
        (secrets, std::mem::take(&mut entry.pending))
    };
    texts.extend(pending);
    texts.extend(lock(&UNOWNED).iter().cloned());
    lock(&ALL_STORED).extend(secrets.iter().cloned());
    check(&secrets, &texts);
}

fn check(secrets: &[String], texts: &[Outbound]) {
    if std::thread::panicking() || secrets.is_empty() {
        return;
    }
    let refs: Vec<&str> = secrets
        .iter()
        .map(String::as_str)
        .filter(|s| s.len() >= super::SHORTEST_SECRET)
        .collect();
    assert_no_secrets(&refs, texts);
}

/// `GET` [`SENT_ROUTE`], blocking (this runs in `Drop`).
fn read_report(endpoint: &str) -> Result<EmulatorReport, String> {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream =
        std::net::TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {SENT_ROUTE} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("no whole answer within 20 s: {e}"))?;
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(format!(
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        ));
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let body = &answer[end + 4..];
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        let hint = if status.contains(" 404") {
            " (only the project's launcher, tests/emulator/moto_server.py, serves this route; \
             moto's own moto_server, started by WATCHKEEPER_BARE_MOTO=1, does not)"
        } else {
            ""
        };
        return Err(format!(
            "GET {SENT_ROUTE} answered {status:?}{hint}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        ));
    }
    EmulatorReport::from_json(body).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emulator_that_cannot_be_read_fails_the_check() {
        // A loopback port just released: nothing listens there (no fixed port, which something
        // on the machine may hold).
        let stopped_at = crate::http::refusing_addr().unwrap();
        let endpoint = format!("http://{stopped_at}");
        let stopped = std::panic::catch_unwind(|| emulator_stopping(&endpoint));
        let message = stopped
            .err()
            .and_then(|e| e.downcast::<String>().ok())
            .expect("an unreadable emulator must fail the test");
        assert!(
            message.contains("cannot read what the emulator")
                && message.contains(&stopped_at.to_string()),
            "{message}"
        );
    }
}
