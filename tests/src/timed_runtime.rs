//! A minimal Lambda Runtime API on loopback for the benchmarks (the tests' own is [`crate::runtime_api`]): it hands out queued events and
//! timestamps what the function does, to the microsecond, on this side of the socket. Init is
//! measured from process start to the function's first `GET /runtime/invocation/next` (the point
//! where AWS ends the Init phase too); an invocation from the moment its event is sent to the
//! moment its response (or error report) has arrived.
//!
//! It speaks only what a runtime client sends: HTTP/1.1 with keep-alive, bodies with
//! `Content-Length` or chunked. cargo-lambda's emulator (used by the tests) cannot say when the
//! first request arrived; this one can.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

use crate::{Result, fail};

/// One answered invocation.
#[derive(Debug, Clone)]
pub struct Answer {
    pub ok: bool,
    pub body: String,
    /// From sending the event to receiving the answer.
    pub took: Duration,
}

#[derive(Default)]
struct Shared {
    first_next: Option<Instant>,
    answers: Vec<Answer>,
    sent_at: Option<Instant>,
}

pub struct RuntimeApi {
    addr: SocketAddr,
    events: mpsc::UnboundedSender<String>,
    shared: Arc<Mutex<Shared>>,
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuntimeApi {
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (events, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let changed = Arc::new(Notify::new());
        let (s, c) = (shared.clone(), changed.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, queue.clone(), s.clone(), c.clone()));
            }
        });
        Ok(Self {
            addr,
            events,
            shared,
            changed,
            task,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the function.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Waits for the first `GET next`; returns when it arrived.
    pub async fn first_next(&self, limit: Duration) -> Result<Instant> {
        let until = Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if let Some(at) = lock(&self.shared).first_next {
                return Ok(at);
            }
            if tokio::time::timeout_at(until.into(), notified)
                .await
                .is_err()
            {
                return fail("the function never asked for its first event");
            }
        }
    }

    /// Sends one event and waits for its answer.
    pub async fn invoke(&self, event: &serde_json::Value, limit: Duration) -> Result<Answer> {
        let before = lock(&self.shared).answers.len();
        if self.events.send(event.to_string()).is_err() {
            return fail("runtime API stopped");
        }
        let until = Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if let Some(answer) = lock(&self.shared).answers.get(before) {
                return Ok(answer.clone());
            }
            if tokio::time::timeout_at(until.into(), notified)
                .await
                .is_err()
            {
                return fail("the function did not answer in time");
            }
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

type Queue = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>;

async fn serve(stream: TcpStream, queue: Queue, shared: Arc<Mutex<Shared>>, changed: Arc<Notify>) {
    let _ = stream.set_nodelay(true);
    let mut stream = BufReader::new(stream);
    let mut counter = 0u64;
    while let Ok(Some((method, path, body))) = read_request(&mut stream).await {
        let now = Instant::now();
        let reply = if method == "GET" && path.ends_with("/runtime/invocation/next") {
            {
                let mut s = lock(&shared);
                s.first_next.get_or_insert(now);
            }
            changed.notify_waiters();
            let Some(event) = queue.lock().await.recv().await else {
                return;
            };
            counter += 1;
            let deadline = chrono::Utc::now().timestamp_millis() + 900_000;
            lock(&shared).sent_at = Some(Instant::now());
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 lambda-runtime-aws-request-id: bench-{}-{counter}\r\n\
                 lambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\n\
                 content-length: {}\r\n\r\n{event}",
                std::process::id(),
                event.len()
            )
        } else if method == "POST" && (path.ends_with("/response") || path.ends_with("/error")) {
            {
                let mut s = lock(&shared);
                let took = s.sent_at.map(|t| now - t).unwrap_or_default();
                s.answers.push(Answer {
                    ok: path.ends_with("/response"),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    took,
                });
            }
            changed.notify_waiters();
            "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n".to_string()
        } else {
            "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n".to_string()
        };
        if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads one request: method, path and body (`Content-Length` or chunked).
async fn read_request(
    stream: &mut BufReader<TcpStream>,
) -> std::io::Result<Option<(String, String, Vec<u8>)>> {
    let mut line = String::new();
    if stream.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let (mut length, mut chunked) = (0usize, false);
    loop {
        let mut header = String::new();
        if stream.read_line(&mut header).await? == 0 {
            return Ok(None);
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            length = value.parse().unwrap_or(0);
        } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            stream.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            stream.read_exact(&mut chunk).await?;
            chunk.truncate(size);
            body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else {
        body.resize(length, 0);
        stream.read_exact(&mut body).await?;
    }
    Ok(Some((method, path, body)))
}
