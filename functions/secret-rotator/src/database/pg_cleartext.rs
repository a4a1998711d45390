//! A plaintext PostgreSQL connection that never answers a request for the password in clear.
//!
//! Over an unencrypted connection, whoever sits on the path can play the server and ask for
//! `AuthenticationCleartextPassword`; tokio-postgres would answer with the password (its
//! `channel_binding` setting can refuse it only when TLS is there to bind to). This stream reads
//! the server's messages before the driver does, until authentication has succeeded, and ends the
//! connection on such a request: the request never reaches the driver, so no password is sent.
//! SCRAM-SHA-256 (the server proves it knows the verifier) and MD5 (a salted hash) are let through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `AuthenticationCleartextPassword` (message `R`, code 3) and `AuthenticationOk` (code 0).
const CLEARTEXT: u32 = 3;
const OK: u32 = 0;

pub const REFUSED: &str = "the server asked for the password in cleartext over an unencrypted \
     connection: refused, no password sent (use TLS, or scram-sha-256 in the server's pg_hba.conf)";

/// Where the scan of the server's messages is.
#[derive(Debug)]
enum Scan {
    /// Reading a message's type, length and (for `R`) authentication code: up to 9 bytes.
    Head { bytes: [u8; 9], have: usize },
    /// Passing the rest of a message whose head has been read.
    Body { left: usize },
    /// Authentication succeeded: everything passes unread.
    Authenticated,
    /// A cleartext request was refused: the connection is over, nothing more passes.
    Refused,
}

pub struct RefuseCleartext<S> {
    inner: S,
    scan: Scan,
}

impl<S> RefuseCleartext<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            scan: Scan::Head {
                bytes: [0; 9],
                have: 0,
            },
        }
    }

    /// Follows the message framing over `data`; an error when a cleartext request is seen.
    fn inspect(&mut self, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            match &mut self.scan {
                Scan::Authenticated => return Ok(()),
                Scan::Refused => {
                    return Err(io::Error::new(io::ErrorKind::PermissionDenied, REFUSED));
                }
                Scan::Body { left } => {
                    let taken = (*left).min(rest.len());
                    *left -= taken;
                    rest = &rest[taken..];
                    if *left == 0 {
                        self.scan = Scan::Head {
                            bytes: [0; 9],
                            have: 0,
                        };
                    }
                }
                Scan::Head { bytes, have } => {
                    bytes[*have] = rest[0];
                    *have += 1;
                    rest = &rest[1..];
                    let is_auth = bytes[0] == b'R';
                    let head_len = if is_auth { 9 } else { 5 };
                    if *have < head_len {
                        continue;
                    }
                    let length = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                    // The length counts itself (4 bytes), and an `R` message's code (4 more).
                    let read_of_body = if is_auth { 4 } else { 0 };
                    let Some(left) = (length as usize).checked_sub(4 + read_of_body) else {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "malformed message from the server during authentication",
                        ));
                    };
                    if is_auth {
                        let code = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
                        if code == CLEARTEXT {
                            self.scan = Scan::Refused;
                            return Err(io::Error::new(io::ErrorKind::PermissionDenied, REFUSED));
                        }
                        if code == OK {
                            self.scan = Scan::Authenticated;
                            return Ok(());
                        }
                    }
                    self.scan = if left == 0 {
                        Scan::Head {
                            bytes: [0; 9],
                            have: 0,
                        }
                    } else {
                        Scan::Body { left }
                    };
                }
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RefuseCleartext<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if matches!(this.scan, Scan::Authenticated) => Poll::Ready(Ok(())),
            Poll::Ready(Ok(())) => {
                let arrived = buf.filled()[before..].to_vec();
                if let Err(e) = this.inspect(&arrived) {
                    // Take the bytes back: the driver must never see the request.
                    buf.set_filled(before);
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RefuseCleartext<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// Feeds `stream` to a scanner `chunk` bytes at a time; the error, if any.
    fn scan(stream: &[u8], chunk: usize) -> io::Result<()> {
        let mut scanner = RefuseCleartext::new(());
        for piece in stream.chunks(chunk) {
            scanner.inspect(piece)?;
        }
        Ok(())
    }

    #[test]
    fn a_cleartext_request_is_refused_however_it_is_cut() {
        let sasl = message(b'R', &[0, 0, 0, 10, b'S', b'C', b'R', b'A', b'M', 0, 0]);
        let cleartext = message(b'R', &CLEARTEXT.to_be_bytes());
        let notice = message(b'N', b"SNOTICE\0Mhello\0\0");
        for chunk in 1..=20 {
            let direct = [notice.clone(), cleartext.clone()].concat();
            assert!(scan(&direct, chunk).is_err(), "chunk {chunk}");
            // SASL continues, then (a confused or hostile server) asks for cleartext.
            let later = [sasl.clone(), notice.clone(), cleartext.clone()].concat();
            assert!(scan(&later, chunk).is_err(), "chunk {chunk}");
        }
    }

    #[test]
    fn after_authentication_everything_passes() {
        let ok = message(b'R', &OK.to_be_bytes());
        let md5 = message(b'R', &[0, 0, 0, 5, 1, 2, 3, 4]);
        // A data row that happens to look like a cleartext request, after AuthenticationOk.
        let lookalike = message(b'R', &CLEARTEXT.to_be_bytes());
        for chunk in 1..=20 {
            assert!(
                scan(
                    &[md5.clone(), ok.clone(), lookalike.clone()].concat(),
                    chunk
                )
                .is_ok()
            );
        }
        assert!(
            scan(&[b'R', 0, 0, 0, 2, 0, 0, 0, 0], 1).is_err(),
            "a length under its own size"
        );
    }
}
