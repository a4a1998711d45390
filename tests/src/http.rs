//! Loopback HTTP servers: backends that answer, fail or hang, and webhook receivers that record
//! what they were sent. Minimal HTTP/1.1, one request per connection: all the tests need.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::{Result, lock};

/// How a server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers with this status code (302 carries a `Location`).
    Status(u16),
    /// Accepts the connection, reads the request, never answers.
    Hang,
    /// Answers 200 after this long: a slow but working server.
    Slow(Duration),
    /// Answers the first `times` requests with `status` (and `Retry-After: <seconds>` when
    /// given), every later one with 200: a throttled or briefly failing webhook.
    Throttle {
        status: u16,
        retry_after: Option<u16>,
        times: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug)]
struct Shared {
    behaviour: Mutex<Behaviour>,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// A server on `ip:<free port>`; stops (and drops every open connection) when dropped.
pub struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// A server on `ip` and a port of the kernel's choosing. `ip` must be a loopback address.
    pub async fn start(ip: Ipv4Addr, behaviour: Behaviour) -> Result<Self> {
        Self::bind(SocketAddr::from((ip, 0)), behaviour).await
    }

    /// A server on exactly `addr`, which must be on loopback (127.0.0.0/8).
    pub async fn bind(addr: SocketAddr, behaviour: Behaviour) -> Result<Self> {
        assert!(
            addr.ip().is_loopback(),
            "test servers live on loopback only"
        );
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            requests: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self { addr, shared, task })
    }

    pub async fn local(behaviour: Behaviour) -> Result<Self> {
        Self::start(Ipv4Addr::LOCALHOST, behaviour).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
        // The secret-leak check: no secret of any test belongs in what a webhook was sent.
        crate::leaks::guard::texts_unowned(crate::leaks::from_server("a loopback server", self));
    }
}

/// A loopback address where nothing listens: connections are refused.
pub fn refusing_addr() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?)
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    serve_each(listener, move |stream| handle(stream, shared.clone())).await
}

/// Accepts connections until the task running this is aborted, each served by `handle` in its
/// own task. The connections live in a set owned here: aborting the accept task drops the set and
/// with it every connection, hanging ones included. Finished connections are reaped as they end.
pub async fn serve_each<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(handle(stream));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(mut stream: TcpStream, shared: Arc<Shared>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let seen = {
        let mut requests = lock(&shared.requests);
        requests.push(request);
        requests.len()
    };
    let behaviour = *lock(&shared.behaviour);
    let (code, retry_after) = match behaviour {
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        Behaviour::Status(code) => (code, None),
        Behaviour::Slow(delay) => {
            tokio::time::sleep(delay).await;
            (200, None)
        }
        Behaviour::Throttle {
            status,
            retry_after,
            times,
        } if seen <= times => (status, retry_after),
        Behaviour::Throttle { .. } => (200, None),
    };
    let extra = if (300..400).contains(&code) {
        "Location: /elsewhere\r\n".to_string()
    } else {
        retry_after
            .map(|s| format!("Retry-After: {s}\r\n"))
            .unwrap_or_default()
    };
    let body = format!("{{\"status\":{code}}}");
    let answer = format!(
        "HTTP/1.1 {code} Test\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

pub(crate) async fn read_request(stream: &mut TcpStream) -> Option<RecordedRequest> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buffer.len() > 1 << 20 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(RecordedRequest {
        method,
        path,
        headers,
        body,
    })
}
