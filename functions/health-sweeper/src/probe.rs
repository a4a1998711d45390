//! Probing: `GET <path>` to each target, no redirects followed (a 302 is an answer), a timeout
//! per probe, at most `concurrency` probes in flight, and a deadline for them all.
//!
//! A probe needs the status line and nothing else, so it is a plain HTTP/1.1 exchange on a
//! tokio socket: connect, send the request with `Connection: close`, read until the end of the
//! status line (at most 512 bytes), close. A general HTTP client costs about 30 KB and twice the
//! CPU per request in flight (connection pool, header maps, a task per connection): at 2,048
//! probes in flight that was 60 MB more than the whole sweep needs.
//!
//! Probes start in the order given (the state puts the least recently probed first) and only
//! `concurrency` tasks exist at a time, so memory follows the slots, not the target count. A
//! probe that has not started by the deadline, or that the deadline cut short, is `NotProbed`:
//! only a probe that ran its full timeout is a timeout. So is a probe the sweeper could not make
//! for want of a socket (the open-file limit): that says nothing about the target.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::target::{Failure, Outcome, Target};

pub const CORRELATION_HEADER: &str = "x-correlation-id";
/// The longest status line read; anything longer is not an HTTP answer.
const MAX_STATUS_LINE: usize = 512;

#[derive(Debug)]
struct Inner {
    path: String,
    healthy_codes: Vec<u16>,
    timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Prober {
    inner: Arc<Inner>,
    concurrency: usize,
}

/// What a sweep's probes found, in the order of the targets given.
#[derive(Debug, Default)]
pub struct Probes {
    pub outcomes: Vec<Outcome>,
    /// Probes the sweeper could not make: no free file descriptor.
    pub out_of_sockets: usize,
}

/// Why an exchange gave no status.
enum Broken {
    Io(std::io::Error),
    NotHttp,
}

impl Prober {
    /// `path` must be a URL path without whitespace (configuration checks it).
    pub fn new(
        path: String,
        healthy_codes: Vec<u16>,
        timeout: Duration,
        concurrency: usize,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                healthy_codes,
                timeout,
            }),
            concurrency: concurrency.max(1),
        }
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Probes `targets`, at most `concurrency` at once, until `deadline`. Correlation ids are
    /// `<correlation>-<n>`, counting from `first`.
    pub async fn probe_all(
        &self,
        targets: &[Target],
        deadline: Instant,
        correlation: &str,
        first: usize,
    ) -> Probes {
        let mut probes = Probes {
            outcomes: vec![Outcome::NotProbed; targets.len()],
            out_of_sockets: 0,
        };
        // Only printable ASCII goes into a header line.
        let correlation: String = correlation
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(100)
            .collect();
        let mut running = JoinSet::new();
        let mut next = 0;
        loop {
            while running.len() < self.concurrency && next < targets.len() {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break;
                }
                let index = next;
                next += 1;
                let Some(target) = targets.get(index) else {
                    break;
                };
                let inner = self.inner.clone();
                let addr = target.addr;
                let correlation = format!("{correlation}-{}", first + index);
                running.spawn(
                    async move { (index, inner.probe(addr, &correlation, remaining).await) },
                );
            }
            match tokio::time::timeout_at(deadline, running.join_next()).await {
                Ok(Some(Ok((index, outcome)))) => {
                    if outcome.is_none() {
                        probes.out_of_sockets += 1;
                    }
                    if let Some(slot) = probes.outcomes.get_mut(index) {
                        *slot = outcome.unwrap_or(Outcome::NotProbed);
                    }
                }
                // A probe task that failed to run leaves its target not probed.
                Ok(Some(Err(_))) => {}
                Ok(None) => break,
                Err(_) => {
                    running.abort_all();
                    break;
                }
            }
        }
        probes
    }
}

impl Inner {
    /// One probe with `remaining` time left in the sweep. `None`: the sweeper could not make it.
    async fn probe(
        &self,
        addr: SocketAddr,
        correlation: &str,
        remaining: Duration,
    ) -> Option<Outcome> {
        let started = Instant::now();
        let cut_short = remaining < self.timeout;
        let exchange = tokio::time::timeout(
            remaining.min(self.timeout),
            self.exchange(addr, correlation),
        );
        let outcome = match exchange.await {
            // The deadline, not the target, ended it.
            Err(_) if cut_short => Outcome::NotProbed,
            Err(_) => Outcome::Unhealthy(Failure::Timeout),
            Ok(Ok(status)) if self.healthy_codes.contains(&status) => Outcome::Healthy {
                status,
                millis: started.elapsed().as_millis() as u64,
            },
            Ok(Ok(status)) => Outcome::Unhealthy(Failure::Status(status)),
            Ok(Err(Broken::NotHttp)) => {
                Outcome::Unhealthy(Failure::Transport("invalid answer".into()))
            }
            Ok(Err(Broken::Io(e))) => Outcome::Unhealthy(classify(&e)?),
        };
        Some(outcome)
    }

    /// Connect, ask, read the status code.
    async fn exchange(&self, addr: SocketAddr, correlation: &str) -> Result<u16, Broken> {
        let mut stream = TcpStream::connect(addr).await.map_err(Broken::Io)?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: watchkeeper-health-sweeper\r\nAccept: */*\r\n{CORRELATION_HEADER}: {correlation}\r\nConnection: close\r\n\r\n",
            self.path
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(Broken::Io)?;
        let mut head = [0u8; MAX_STATUS_LINE];
        let mut filled = 0;
        while filled < head.len() {
            let Some(free) = head.get_mut(filled..) else {
                break;
            };
            let read = stream.read(free).await.map_err(Broken::Io)?;
            if read == 0 {
                break;
            }
            filled += read;
            if head.get(..filled).is_some_and(|h| h.contains(&b'\n')) {
                break;
            }
        }
        head.get(..filled)
            .and_then(status_code)
            .ok_or(Broken::NotHttp)
    }
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 200 OK`).
pub fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (minor, rest) = rest.split_first()?;
    if !minor.is_ascii_digit() {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !matches!(rest.get(3), None | Some(b' ' | b'\r')) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(*d - b'0'));
    (100..600).contains(&code).then_some(code)
}

/// What a socket error says about the target; `None` when it says nothing about the target (the
/// sweeper is out of file descriptors).
fn classify(err: &std::io::Error) -> Option<Failure> {
    if matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        return None;
    }
    Some(match err.kind() {
        std::io::ErrorKind::ConnectionRefused => Failure::Refused,
        std::io::ErrorKind::TimedOut => Failure::Timeout,
        kind => Failure::Transport(format!("connection failed ({kind})")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read_strictly() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            status_code(b"HTTP/1.0 302 Found\r\nLocation: /x\r\n"),
            Some(302)
        );
        assert_eq!(status_code(b"HTTP/1.1 503\r\n"), Some(503));
        assert_eq!(
            status_code(b"HTTP/1.1 429 Too Many"),
            Some(429),
            "a line cut short still says its code"
        );
        for garbage in [
            &b""[..],
            b"HTTP/1.1",
            b"HTTP/1.1 20",
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/2 200\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"HTTP/1.1 099 X\r\n",
            b"HTTP/1.1 600 X\r\n",
            b"HTTP/1.x 200 OK\r\n",
            b"\xff\xfe\x00",
        ] {
            assert_eq!(status_code(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn running_out_of_sockets_says_nothing_about_the_target() {
        assert_eq!(
            classify(&std::io::Error::from_raw_os_error(libc::EMFILE)),
            None
        );
        assert_eq!(
            classify(&std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            Some(Failure::Refused)
        );
    }
}
