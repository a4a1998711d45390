//! Probing: `GET <path>` to each target, no redirects followed (a 302 is an answer), a timeout
//! per probe, at most `concurrency` probes in flight, and a deadline for them all.
//!
//! A probe needs the status line and nothing else, so it is a plain HTTP/1.1 exchange on a
//! tokio socket (TLS over it for `https` targets): connect, send the request with
//! `Connection: close`, read until the end of the final status line (skipping interim `1xx`
//! answers), read the rest of a short answer, close. A general HTTP client costs about 30 KB and twice the
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

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::target::{Check, Failure, Outcome, Target};

pub const CORRELATION_HEADER: &str = "x-correlation-id";
/// A probe's one buffer: the longest line read before the final status (a status line, or a
/// header line of an interim `1xx` answer), then the chunks of the rest of the answer. Lines are
/// dropped as they are read, so any number of interim answers fits.
const BUFFER: usize = 1024;
/// What is read (and dropped) of an answer after its status, so the connection is closed after
/// the backend's last byte rather than reset in the middle of a body (a reset fills the
/// backend's logs with broken pipes). A longer body, or one slower than [`DRAIN_TIME`], is cut.
const MAX_DRAIN: usize = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_millis(250);
/// TLS handshakes at once: each costs about as much CPU as a hundred plain probes, and a
/// Lambda at 128 MB has a fifteenth of a core. A probe's clock starts when it may shake hands,
/// so waiting for a turn is never counted against the target.
const HANDSHAKES: usize = 32;

#[derive(Debug)]
struct Inner {
    path: String,
    host: Option<String>,
    healthy_codes: Vec<u16>,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    handshakes: tokio::sync::Semaphore,
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
    Tls(std::io::Error),
}

/// One probe's connection: plain, or TLS over it.
enum Connection {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Prober {
    /// `path` must be a URL path ([`is_request_path`]) and `host` a host ([`is_host`]):
    /// configuration checks both.
    pub fn new(
        path: String,
        host: Option<String>,
        healthy_codes: Vec<u16>,
        timeout: Duration,
        concurrency: usize,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                host,
                healthy_codes,
                timeout,
                tls: tls_config(),
                handshakes: tokio::sync::Semaphore::new(HANDSHAKES),
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
                let check = target.check.clone();
                let correlation = format!("{correlation}-{}", first + index);
                running.spawn(async move {
                    (
                        index,
                        inner.probe(addr, &check, &correlation, remaining).await,
                    )
                });
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
        check: &Check,
        correlation: &str,
        remaining: Duration,
    ) -> Option<Outcome> {
        let sweep_end = Instant::now() + remaining;
        // A TLS probe waits for its turn to shake hands before its clock starts.
        let _turn = if check.tls {
            match tokio::time::timeout_at(sweep_end, self.handshakes.acquire()).await {
                Ok(Ok(permit)) => Some(permit),
                _ => return Some(Outcome::NotProbed),
            }
        } else {
            None
        };
        let started = Instant::now();
        let remaining = sweep_end.saturating_duration_since(started);
        let cut_short = remaining < self.timeout;
        let limit = started + remaining.min(self.timeout);
        let mut buffer = [0u8; BUFFER];
        let exchange =
            tokio::time::timeout_at(limit, self.exchange(addr, check, correlation, &mut buffer));
        let outcome = match exchange.await {
            // The deadline, not the target, ended it.
            Err(_) if cut_short => Outcome::NotProbed,
            Err(_) => Outcome::Unhealthy(Failure::Timeout),
            Ok(Ok((status, mut connection))) => {
                let millis = started.elapsed().as_millis() as u64;
                // The verdict is in: a moment goes to reading the rest of the answer, and
                // running out of it changes nothing.
                let drain_until = limit.min(Instant::now() + DRAIN_TIME);
                let _ = tokio::time::timeout_at(drain_until, connection.drain(&mut buffer)).await;
                if self.healthy_codes.contains(&status) {
                    Outcome::Healthy { status, millis }
                } else {
                    Outcome::Unhealthy(Failure::Status(status))
                }
            }
            Ok(Err(Broken::NotHttp)) => {
                Outcome::Unhealthy(Failure::Transport("invalid answer".into()))
            }
            Ok(Err(Broken::Tls(e))) => Outcome::Unhealthy(Failure::Transport(format!(
                "TLS handshake failed: {}",
                printable(&e.to_string(), 120)
            ))),
            Ok(Err(Broken::Io(e))) => Outcome::Unhealthy(classify(&e)?),
        };
        Some(outcome)
    }

    /// Connect (and shake hands, for TLS), ask, read the final status code.
    async fn exchange(
        &self,
        addr: SocketAddr,
        check: &Check,
        correlation: &str,
        buffer: &mut [u8],
    ) -> Result<(u16, Connection), Broken> {
        let stream = TcpStream::connect(addr).await.map_err(Broken::Io)?;
        let path = check.path.as_deref().unwrap_or(&self.path);
        let request = match &self.host {
            Some(host) => request(path, host, correlation),
            None => request(path, &addr, correlation),
        };
        let mut connection = if check.tls {
            // The handshake's state (a TLS connection) is large: on the heap, for TLS probes
            // only, so that the thousand plain probes in flight stay small.
            let handshake = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(self.server_name(addr), stream);
            let tls = Box::pin(handshake).await.map_err(Broken::Tls)?;
            Connection::Tls(Box::new(tls))
        } else {
            Connection::Plain(stream)
        };
        let status = match &mut connection {
            Connection::Plain(stream) => ask(stream, &request, buffer).await?,
            Connection::Tls(stream) => ask(stream.as_mut(), &request, buffer).await?,
        };
        Ok((status, connection))
    }

    /// The TLS server name: the configured host's name when it is a DNS name, else the address
    /// (which sends no SNI).
    fn server_name(&self, addr: SocketAddr) -> rustls::pki_types::ServerName<'static> {
        self.host
            .as_deref()
            .map(host_name)
            .and_then(|name| rustls::pki_types::ServerName::try_from(name.to_string()).ok())
            .unwrap_or_else(|| rustls::pki_types::ServerName::IpAddress(addr.ip().into()))
    }
}

impl Connection {
    /// Reads what is left of the answer into `buffer` (and drops it), up to [`MAX_DRAIN`] bytes
    /// or the end.
    async fn drain(&mut self, buffer: &mut [u8]) {
        let mut total = 0;
        while total < MAX_DRAIN {
            let read = match self {
                Connection::Plain(stream) => stream.read(buffer).await,
                Connection::Tls(stream) => stream.read(buffer).await,
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    }
}

fn request(path: &str, host: &dyn std::fmt::Display, correlation: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: watchkeeper-health-sweeper\r\nAccept: */*\r\n{CORRELATION_HEADER}: {correlation}\r\nConnection: close\r\n\r\n"
    )
}

/// Sends `request` and reads the answer up to its final status line: interim `1xx` answers
/// (`100 Continue`, `103 Early Hints`) are skipped with their headers; `101` is an answer. Lines
/// are dropped from `buffer` once read, so only the longest line must fit in it.
async fn ask<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &str,
    buffer: &mut [u8],
) -> Result<u16, Broken> {
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(Broken::Io)?;
    stream.flush().await.map_err(Broken::Io)?;
    let mut head = Head::Status;
    let (mut start, mut filled) = (0, 0);
    loop {
        // Every complete line read so far.
        while let Some(end) = buffer
            .get(start..filled)
            .and_then(|unread| unread.iter().position(|b| *b == b'\n'))
        {
            let line = buffer.get(start..start + end).unwrap_or_default();
            start += end + 1;
            match head.next(line) {
                Step::Status(code) => return Ok(code),
                Step::NotHttp => return Err(Broken::NotHttp),
                Step::Go(next) => head = next,
            }
        }
        // A status line that cannot become one is not waited for (an SSH banner, say).
        let partial = buffer.get(start..filled).unwrap_or_default();
        if head == Head::Status && partial.len() >= 12 && status_code(partial).is_none() {
            return Err(Broken::NotHttp);
        }
        buffer.copy_within(start..filled, 0);
        filled -= start;
        start = 0;
        let Some(free) = buffer.get_mut(filled..).filter(|f| !f.is_empty()) else {
            // One line longer than the buffer.
            return Err(Broken::NotHttp);
        };
        let read = stream.read(free).await.map_err(Broken::Io)?;
        if read == 0 {
            // The answer ended: a status line without its line end still says its code.
            return match (head, status_code(buffer.get(..filled).unwrap_or_default())) {
                (Head::Status, Some(code)) if !is_interim(code) => Ok(code),
                _ => Err(Broken::NotHttp),
            };
        }
        filled += read;
    }
}

/// Where the reading of an answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// Expecting a status line.
    Status,
    /// In the header lines of an interim answer.
    Interim,
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    Status(u16),
    NotHttp,
    Go(Head),
}

impl Head {
    /// What one line (without its `\n`) does.
    fn next(self, line: &[u8]) -> Step {
        match self {
            Head::Status => match status_code(line) {
                Some(code) if is_interim(code) => Step::Go(Head::Interim),
                Some(code) => Step::Status(code),
                None => Step::NotHttp,
            },
            // The interim answer's headers end at the first empty line.
            Head::Interim if line.is_empty() || line == b"\r" => Step::Go(Head::Status),
            Head::Interim => Step::Go(Head::Interim),
        }
    }
}

fn is_interim(code: u16) -> bool {
    (100..200).contains(&code) && code != 101
}

/// At most `max` characters of `text`, printable ASCII only (what goes into an alert line).
fn printable(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
        .take(max)
        .collect()
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

/// Whether `path` can be the target of a request line: starts with `/`, printable ASCII without
/// spaces, no fragment.
pub fn is_request_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 1024
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
}

/// Whether `host` can be a `Host` header: a DNS name or an address, optionally with a port.
pub fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The name part of a `Host` value (without a port).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host;
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// TLS as a load balancer speaks it to its targets: encrypted, and the target's certificate not
/// checked (an ALB does not check it either: targets commonly serve self-signed certificates).
/// The handshake's signature is still verified against the certificate offered, so the peer
/// holds that certificate's key.
fn tls_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyCertificate(provider.clone()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| {
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        });
    match config {
        Ok(config) => Arc::new(config),
        // ring supports the default versions; never reached.
        Err(_) => Arc::new(
            rustls::ClientConfig::builder()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))))
                .with_no_client_auth(),
        ),
    }
}

/// Accepts the target's certificate as it is (see [`tls_config`]).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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

    /// What `ask` reads from an answer given in chunks.
    fn answer(chunks: &[&[u8]]) -> Result<u16, &'static str> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (mut client, mut server) = tokio::io::duplex(64 * 1024);
            for chunk in chunks {
                server.write_all(chunk).await.unwrap();
            }
            // The answer ends; the server still takes the request.
            server.shutdown().await.unwrap();
            let mut buffer = [0u8; BUFFER];
            let status = ask(&mut client, "GET / HTTP/1.1\r\n\r\n", &mut buffer)
                .await
                .map_err(|e| match e {
                    Broken::NotHttp => "not http",
                    _ => "io",
                });
            drop(server);
            status
        })
    }

    #[test]
    fn interim_answers_are_skipped_to_the_final_status() {
        assert_eq!(answer(&[b"HTTP/1.1 200 OK\r\n\r\n"]), Ok(200));
        assert_eq!(answer(&[b"HTTP/1.1 2", b"04 No", b" Content\r\n"]), Ok(204));
        assert_eq!(
            answer(&[b"HTTP/1.1 503"]),
            Ok(503),
            "cut short, still a code"
        );
        assert_eq!(answer(&[b"SSH-2.0-OpenSSH_9.6\r\n"]), Err("not http"));
        assert_eq!(answer(&[b"SSH-2.0-OpenSSH_9.6"]), Err("not http"));
        assert_eq!(
            answer(&[b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\n"]),
            Ok(200)
        );
        // Split anywhere, several interim answers, headers far longer than the buffer.
        let link = format!("Link: </{}>\r\n", "a".repeat(900));
        let mut long = b"HTTP/1.1 103 Early Hints\r\n".to_vec();
        for _ in 0..10 {
            long.extend_from_slice(link.as_bytes());
        }
        long.extend_from_slice(b"\r\nHTTP/1.1 100 Continue\n\nHTTP/1.1 302 Found\r\n");
        let chunks: Vec<&[u8]> = long.chunks(7).collect();
        assert_eq!(answer(&chunks), Ok(302));
        assert_eq!(
            answer(&[b"HTTP/1.1 101 Switching Protocols\r\n\r\n"]),
            Ok(101),
            "101 is an answer (nobody asked to switch)"
        );
        assert_eq!(answer(&[b"HTTP/1.1 100 Continue\r\n\r\n"]), Err("not http"));
        let too_long = format!("HTTP/1.1 200 {}", "x".repeat(2 * BUFFER));
        assert_eq!(answer(&[too_long.as_bytes()]), Err("not http"));
        assert_eq!(answer(&[]), Err("not http"));
    }

    #[test]
    fn paths_and_hosts_that_cannot_go_in_a_request_are_refused() {
        for good in ["/health", "/despachos/reporte?full=0", "/a%20b"] {
            assert!(is_request_path(good), "{good}");
        }
        for bad in ["health", "/a b", "/a\r\nX: y", "/a#b", "/ñ", ""] {
            assert!(!is_request_path(bad), "{bad:?}");
        }
        for good in [
            "api.des.internal",
            "api.des.internal:8443",
            "10.0.0.1",
            "[::1]:80",
        ] {
            assert!(is_host(good), "{good}");
        }
        for bad in ["", "a b", "a\r\nX: y", "user@host", "a/b"] {
            assert!(!is_host(bad), "{bad:?}");
        }
        assert_eq!(host_name("api.des.internal:8443"), "api.des.internal");
        assert_eq!(host_name("api.des.internal"), "api.des.internal");
    }

    /// Memory follows the probes in flight (896 on Lambda): a probe's state must stay small
    /// whatever it may do (TLS, interim answers, draining).
    #[test]
    fn a_probe_in_flight_stays_small() {
        let prober = Prober::new("/health".into(), None, vec![200], Duration::from_secs(2), 1);
        let check = Check::HTTPS;
        let probe = prober.inner.probe(
            SocketAddr::from(([127, 0, 0, 1], 9)),
            &check,
            "id",
            Duration::from_secs(1),
        );
        let size = std::mem::size_of_val(&probe);
        assert!(size <= 2048, "a probe's future is {size} bytes");
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
