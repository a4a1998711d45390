//! A minimal Lambda Runtime API the harness controls, for what the cargo-lambda emulator
//! ([`crate::lambda`]) does not let a test do: run several processes of one function against one
//! queue of invocations (Lambda scaling out), give each invocation a short deadline, and kill a
//! process at any point of an invocation and start another one.
//!
//! The protocol is Lambda's: `GET /2018-06-01/runtime/invocation/next` (long poll, the event with
//! its request id, deadline and function ARN headers), then `POST .../<id>/response` or
//! `.../<id>/error`. One request per connection, as in [`crate::http`].

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use crate::http::{read_request, serve_each};
use crate::paths::function_binary;
use crate::process::spawn_logged;
use crate::{Result, fail, lock};

/// An invocation's outcome, as the function reported it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The handler returned `Ok` (posted to `/response`).
    pub ok: bool,
    /// The response body, or the error report (`{"errorType": ..., "errorMessage": ...}`).
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

struct Pending {
    id: String,
    event: Vec<u8>,
    reply: oneshot::Sender<Answer>,
}

struct Shared {
    queue: Mutex<VecDeque<Pending>>,
    arrived: Notify,
    taken: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    deadline: Duration,
    next_id: AtomicU64,
    /// `GET next` requests received: a process that has polled has finished its init.
    polls: AtomicU64,
}

pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl RuntimeApi {
    /// An API on a free loopback port whose invocations each get `deadline` to run.
    pub async fn start(deadline: Duration) -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            taken: Mutex::new(HashMap::new()),
            deadline,
            next_id: AtomicU64::new(1),
            polls: AtomicU64::new(0),
        });
        let task = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self { addr, shared, task })
    }

    /// Queues an event for whichever process asks next and waits up to `limit` for its answer;
    /// `None` when no answer came (the process died or hung).
    pub async fn invoke(&self, event: &Value, limit: Duration) -> Result<Option<Answer>> {
        let (reply, answer) = oneshot::channel();
        let id = format!(
            "req-{:08}",
            self.shared.next_id.fetch_add(1, Ordering::SeqCst)
        );
        lock(&self.shared.queue).push_back(Pending {
            id,
            event: serde_json::to_vec(event)?,
            reply,
        });
        self.shared.arrived.notify_one();
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(answer)) => Ok(Some(answer)),
            _ => Ok(None),
        }
    }

    /// Forgets every queued and taken invocation (after a kill: Lambda would redeliver instead).
    pub fn forget_pending(&self) {
        lock(&self.shared.queue).clear();
        lock(&self.shared.taken).clear();
    }

    /// `GET next` polls received so far.
    pub fn polls(&self) -> u64 {
        self.shared.polls.load(Ordering::SeqCst)
    }

    /// Waits until a poll arrives after the `before`-th one (a process just spawned has
    /// finished its init and asks for an event).
    pub async fn poll_after(&self, before: u64, limit: Duration) -> Result<()> {
        let started = std::time::Instant::now();
        while self.polls() <= before {
            if started.elapsed() > limit {
                return fail(format!("no process polled within {limit:?}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Invocations a process has taken and not yet answered.
    pub fn in_progress(&self) -> usize {
        lock(&self.shared.taken).len()
    }

    /// Starts a process of the built function `name` polling this API, with `env` (and nothing
    /// else from this process's environment but PATH and HOME). Killed when dropped.
    pub fn spawn(&self, name: &str, env: &[(String, String)]) -> Result<FunctionProcess> {
        let binary = function_binary(name)?;
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("function.log");
        let mut command = Command::new(&binary);
        command.env_clear();
        for key in ["PATH", "HOME"] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command
            .env("AWS_LAMBDA_RUNTIME_API", self.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_LEVEL", "info")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = spawn_logged(command, &log)?;
        Ok(FunctionProcess {
            child,
            log,
            endpoint: crate::leaks::guard::endpoint_of(env),
            _dir: dir,
        })
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One process of a function.
pub struct FunctionProcess {
    child: Child,
    log: PathBuf,
    /// The AWS endpoint it uses, for the secret-leak check when it stops.
    endpoint: Option<String>,
    _dir: tempfile::TempDir,
}

impl FunctionProcess {
    /// The process id (`None` once it has been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the process to end (after a kill from elsewhere), up to `limit`.
    pub async fn exited(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.child.wait()).await.is_ok()
    }

    /// Kills the process at once (SIGKILL: no cleanup, as when Lambda ends a sandbox).
    pub async fn kill(&mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// Everything it printed (JSON logs and EMF lines).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails if the process has exited (an init error or a crash).
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => fail(format!("function exited ({status}):\n{}", self.logs())),
        }
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        if let Some(endpoint) = &self.endpoint {
            let log = crate::leaks::Outbound::new("a function process's log", self.logs());
            crate::leaks::guard::texts(endpoint, vec![log]);
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    serve_each(listener, move |stream| handle(stream, shared.clone())).await
}

/// The stream, if its peer has not closed it: a peek straight at the socket (no readiness cache),
/// which sees the end of a connection whose process is gone.
fn still_open(stream: TcpStream) -> Option<TcpStream> {
    let stream = stream.into_std().ok()?;
    let mut byte = [0u8; 1];
    let open = match stream.peek(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    };
    if open {
        TcpStream::from_std(stream).ok()
    } else {
        None
    }
}

async fn handle(mut stream: TcpStream, shared: Arc<Shared>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let path = request.path.trim_start_matches("/2018-06-01/runtime");
    if request.method == "GET" && path == "/invocation/next" {
        shared.polls.fetch_add(1, Ordering::SeqCst);
        let pending = loop {
            let arrived = shared.arrived.notified();
            if let Some(pending) = lock(&shared.queue).pop_front() {
                break pending;
            }
            // A killed process's poll must not take the next event: stop waiting when the
            // connection closes.
            let mut byte = [0u8; 1];
            tokio::select! {
                _ = arrived => {}
                peeked = stream.peek(&mut byte) => {
                    if !matches!(peeked, Ok(n) if n > 0) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        // A poller whose process was killed may still be here when the event arrives (its
        // closed connection not yet noticed): the kernel's word, not the reactor's, decides, and
        // the event goes back for a live poller. A write to such a socket can still succeed.
        let Some(mut stream) = still_open(stream) else {
            lock(&shared.queue).push_front(pending);
            shared.arrived.notify_one();
            return;
        };
        let deadline_ms = chrono::Utc::now().timestamp_millis()
            + i64::try_from(shared.deadline.as_millis()).unwrap_or(i64::MAX);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {}\r\nLambda-Runtime-Deadline-Ms: {deadline_ms}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:harness\r\nLambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            pending.id,
            pending.event.len()
        );
        let mut answer = head.into_bytes();
        answer.extend_from_slice(&pending.event);
        if stream.write_all(&answer).await.is_ok() {
            lock(&shared.taken).insert(pending.id, pending.reply);
        } else {
            // The poller went away before it got the event: keep it for the next one.
            lock(&shared.queue).push_front(pending);
            shared.arrived.notify_one();
        }
        let _ = stream.shutdown().await;
        return;
    }
    let mut parts = path.trim_start_matches("/invocation/").splitn(2, '/');
    let (id, outcome) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if request.method == "POST"
        && (outcome == "response" || outcome == "error")
        && let Some(reply) = lock(&shared.taken).remove(id)
    {
        let _ = reply.send(Answer {
            ok: outcome == "response",
            body: String::from_utf8_lossy(&request.body).into_owned(),
        });
    }
    let _ = stream
        .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        .await;
    let _ = stream.shutdown().await;
}
