//! A proxy in front of the AWS emulator that injects faults on cue: every request passes to moto
//! until the test says otherwise, then each one answers 500, is throttled, hangs, finds the
//! emulator gone (connection reset), or lands and loses its answer, optionally only after the
//! first `n` requests of a run ("the emulator stopped mid-run") and optionally for one request
//! only. It can also kill the function process the moment its `k`-th request has landed, so a test
//! knows exactly where a kill fell. Functions reach it through `AWS_ENDPOINT_URL` like the
//! emulator.
//!
//! Minimal HTTP/1.1, one request per connection (answers say `Connection: close`), which is all
//! the SDK needs: it opens a new connection after a closed one.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::http::{RecordedRequest, read_request, serve_each};
use crate::moto::Moto;
use crate::{Result, lock};

/// What the proxy does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Passes it to the emulator.
    None,
    /// Answers 500 InternalFailure.
    ServerError,
    /// Answers as a throttled service does: `ThrottlingException` (400) for JSON-protocol
    /// services, 503 `SlowDown` for the others (S3, SNS, SES).
    Throttle,
    /// Reads the request and never answers.
    Hang,
    /// Drops the connection without answering: the emulator stopped.
    Down,
    /// Passes the request to the emulator (it lands: a message is published, a document
    /// written), then drops the connection without the answer: the network lost it.
    LostAnswer,
    /// Answers 409 `ConditionalRequestConflict`, as S3 does to a conditional write while another
    /// conditional write to the same key is in progress (the emulator never answers so).
    Conflict,
}

/// The SDK settings the deployed functions run with: the harness's fast-failing overrides
/// (`AWS_MAX_ATTEMPTS=1`, short timeouts) removed, so the SDK's own retries and the code's
/// defaults (3 attempts, 3 s to connect, 10 s per attempt) are what a faulted call meets.
/// `infra/` sets none of these variables (`infra::every_variable_a_function_reads_is_set_by_its_
/// module_and_no_other` fails on any `AWS_*` variable a module sets).
pub fn production_sdk(env: &[(String, String)]) -> Vec<(String, String)> {
    const TEST_ONLY: [&str; 4] = [
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
        "AWS_ATTEMPT_TIMEOUT_MS",
        "AWS_CONNECT_TIMEOUT_MS",
    ];
    env.iter()
        .filter(|(key, _)| !TEST_ONLY.contains(&key.as_str()))
        .cloned()
        .collect()
}

/// A process to kill when the `at`-th request after arming has landed.
#[derive(Debug)]
struct KillOrder {
    pid: u32,
    at: usize,
    counted: usize,
    /// The request it fired on, once it has.
    fired: Option<String>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    /// Requests to pass before `fault` applies.
    pass_first: AtomicUsize,
    fault: Mutex<Fault>,
    /// The fault applies to one request only, then everything passes again.
    once: std::sync::atomic::AtomicBool,
    kill: Mutex<Option<KillOrder>>,
    passed: AtomicUsize,
    injected: AtomicUsize,
    /// Each request seen: what it was, and the fault it got.
    seen: Mutex<Vec<String>>,
}

pub struct FaultyProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultyProxy {
    /// A proxy on a free loopback port in front of `moto`, passing everything.
    pub async fn start(moto: &Moto) -> Result<Self> {
        let upstream: SocketAddr = moto
            .endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            pass_first: AtomicUsize::new(0),
            fault: Mutex::new(Fault::None),
            once: std::sync::atomic::AtomicBool::new(false),
            kill: Mutex::new(None),
            passed: AtomicUsize::new(0),
            injected: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(serve(listener, shared.clone()));
        crate::leaks::guard::alias(&format!("http://{addr}"), moto.endpoint());
        Ok(Self { addr, shared, task })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The emulator's environment for a function, with the endpoint pointing here.
    pub fn env(&self, moto: &Moto) -> Vec<(String, String)> {
        self.redirect(&moto.env())
    }

    /// A function's environment with its AWS endpoint pointing here.
    pub fn redirect(&self, env: &[(String, String)]) -> Vec<(String, String)> {
        let mut env = env.to_vec();
        for (key, value) in &mut env {
            if key == "AWS_ENDPOINT_URL" {
                *value = self.endpoint();
            }
        }
        env
    }

    /// From now on every request gets `fault`.
    pub fn set(&self, fault: Fault) {
        self.fail_after(0, fault);
    }

    /// The next `passes` requests go through, every later one gets `fault`.
    pub fn fail_after(&self, passes: usize, fault: Fault) {
        self.shared.once.store(false, Ordering::SeqCst);
        *lock(&self.shared.fault) = fault;
        self.shared.pass_first.store(passes, Ordering::SeqCst);
    }

    /// The next `passes` requests go through, the one after gets `fault`, later ones pass again
    /// (one answer lost, one request refused).
    pub fn fail_once_after(&self, passes: usize, fault: Fault) {
        self.fail_after(passes, fault);
        self.shared.once.store(true, Ordering::SeqCst);
    }

    /// Kills process `pid` (SIGKILL) as soon as the `at`-th request from now (1-based) has
    /// landed in the emulator, and drops that request's answer: the process dies between a
    /// write and knowing it was written.
    pub fn kill_after_request(&self, pid: u32, at: usize) {
        *lock(&self.shared.kill) = Some(KillOrder {
            pid,
            at,
            counted: 0,
            fired: None,
        });
    }

    /// The request the armed kill fired on (`None`: not yet, or none armed); disarms it.
    pub fn kill_fired(&self) -> Option<String> {
        lock(&self.shared.kill).take().and_then(|order| order.fired)
    }

    /// Requests passed to the emulator so far.
    pub fn passed(&self) -> usize {
        self.shared.passed.load(Ordering::SeqCst)
    }

    /// Every request so far, as `<fault> <method> <path> <x-amz-target or Action>`.
    pub fn seen(&self) -> Vec<String> {
        lock(&self.shared.seen).clone()
    }

    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.shared.injected.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    serve_each(listener, move |stream| handle(stream, shared.clone())).await
}

/// The fault for the next request: passes while `pass_first` lasts.
fn next_fault(shared: &Shared) -> Fault {
    let fault = *lock(&shared.fault);
    if fault == Fault::None {
        return Fault::None;
    }
    let passing = shared
        .pass_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if passing {
        return Fault::None;
    }
    if shared.once.swap(false, Ordering::SeqCst) {
        *lock(&shared.fault) = Fault::None;
    }
    fault
}

/// The pid to kill if `request` is the armed kill's request (recorded as where it fired).
fn kill_due(shared: &Shared, request: &str) -> Option<u32> {
    let mut kill = lock(&shared.kill);
    let order = kill.as_mut()?;
    if order.fired.is_some() {
        return None;
    }
    order.counted += 1;
    if order.counted != order.at {
        return None;
    }
    order.fired = Some(request.to_string());
    Some(order.pid)
}

async fn handle(mut stream: TcpStream, shared: Arc<Shared>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let fault = next_fault(&shared);
    let counter = if fault == Fault::None {
        &shared.passed
    } else {
        &shared.injected
    };
    counter.fetch_add(1, Ordering::SeqCst);
    let body = String::from_utf8_lossy(&request.body);
    let action = request
        .header("x-amz-target")
        .map(str::to_string)
        .or_else(|| {
            body.split('&')
                .find(|p| p.starts_with("Action="))
                .map(str::to_string)
        })
        .unwrap_or_default();
    let line = format!(
        "{fault:?} {} {} {action}",
        request.method,
        request.path.split('?').next().unwrap_or("")
    );
    lock(&shared.seen).push(line.clone());
    let answer = match fault {
        Fault::None => {
            let forwarded = forward(shared.upstream, &request).await;
            // Only a request that landed (the emulator answered it) sets the kill off.
            if let Some(pid) = forwarded
                .as_ref()
                .ok()
                .and_then(|_| kill_due(&shared, &line))
            {
                let killed = tokio::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .await;
                assert!(
                    killed.is_ok_and(|status| status.success()),
                    "could not kill process {pid}"
                );
                return;
            }
            match forwarded {
                Ok(answer) => answer,
                Err(_) => return,
            }
        }
        Fault::LostAnswer => {
            let _ = forward(shared.upstream, &request).await;
            drop(stream);
            return;
        }
        Fault::Down => {
            // Closed without an answer: what a client sees when the server process goes away.
            drop(stream);
            return;
        }
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        Fault::Conflict => error_answer(
            409,
            "application/xml",
            "<Error><Code>ConditionalRequestConflict</Code><Message>A conflicting conditional operation is currently in progress against this resource.</Message></Error>",
        ),
        Fault::ServerError => error_answer(
            500,
            "application/json",
            r#"{"__type":"InternalFailure","message":"injected fault"}"#,
        ),
        Fault::Throttle if request.header("x-amz-target").is_some() => error_answer(
            400,
            "application/x-amz-json-1.1",
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ),
        Fault::Throttle => error_answer(
            503,
            "application/xml",
            "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        ),
    };
    let _ = stream.write_all(&answer).await;
    let _ = stream.shutdown().await;
}

fn error_answer(status: u16, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} Fault\r\nContent-Type: {content_type}\r\nx-amzn-RequestId: fault\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends the request to the emulator on a fresh connection and returns its whole answer, with
/// `Connection: close` so the client does not reuse this connection.
async fn forward(upstream: SocketAddr, request: &RecordedRequest) -> Result<Vec<u8>> {
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (name, value) in &request.headers {
        if name != "connection" {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("connection: close\r\n\r\n");
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(head.as_bytes()).await?;
    server.write_all(&request.body).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), server.read_to_end(&mut answer)).await??;
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(answer);
    };
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let mut out: Vec<u8> = head
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes();
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(&answer[end + 4..]);
    Ok(out)
}

/// Invokes `event` through `api` while a fault is on, and checks the answer is an honest
/// failure: it came before the invocation's deadline (plus `grace` for the runtime round trip),
/// and an error is a retryable one (`Retryable.*`), never a permanent one.
pub async fn invoke_faulted(
    api: &crate::runtime_api::RuntimeApi,
    event: &serde_json::Value,
    deadline: Duration,
    grace: Duration,
    case: &str,
) -> crate::runtime_api::Answer {
    let started = std::time::Instant::now();
    let answer = api
        .invoke(event, deadline + grace)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{case}: no answer within the deadline"));
    let took = started.elapsed();
    assert!(took < deadline + grace, "{case}: took {took:?}");
    if !answer.ok {
        let kind = answer.json()["errorType"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            kind.starts_with("Retryable."),
            "{case}: a fault must fail retryably, got {}",
            answer.body
        );
    }
    answer
}

/// Redelivers `event` until it succeeds, as Lambda's retries would (a claim left by a faulted
/// holder is in flight until its lease ends: a retryable answer too). Returns every answer, the
/// last one the success.
pub async fn redeliver(
    api: &crate::runtime_api::RuntimeApi,
    event: &serde_json::Value,
    deadline: Duration,
    case: &str,
) -> Vec<crate::runtime_api::Answer> {
    let started = std::time::Instant::now();
    let mut answers = Vec::new();
    loop {
        let answer = invoke_faulted(api, event, deadline, Duration::from_secs(3), case).await;
        let ok = answer.ok;
        answers.push(answer);
        if ok {
            return answers;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{case}: still failing after {} redeliveries: {}",
            answers.len(),
            answers.last().map(|a| a.body.as_str()).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
