//! A plaintext MySQL/MariaDB connection that never gives the password away.
//!
//! Over plaintext, whoever sits on the path can play the server and ask for full
//! `caching_sha2_password` authentication (`0x01 0x04`): mysql_async then asks that "server" for
//! its RSA key and encrypts the password with whatever key comes back, or switches to a plugin
//! that sends it in clear. mysql_async takes no stream of ours and has no setting against it, so a
//! plaintext session goes through a relay on loopback, in this process, that reads the server's
//! packets until authentication ends and, on such a request, answers the driver with an error
//! instead: no password, and no RSA key request, ever leaves. Challenge-response logins
//! (`mysql_native_password`, a `caching_sha2_password` fast path) pass.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The server error the driver gets instead: `ER_SECURE_TRANSPORT_REQUIRED`.
pub const REFUSED_CODE: u16 = 3159;
pub const REFUSED: &str = "the server asked for the password itself over an unencrypted \
     connection (full caching_sha2_password authentication, or a cleartext plugin): refused, no \
     password sent; use TLS";

/// The only plugins a switch may name: challenge-response ones the driver speaks safely. Any other
/// (a cleartext or key-fetching one, or one the driver cannot speak) is refused.
const CHALLENGE_PLUGINS: &[&[u8]] = &[b"mysql_native_password", b"caching_sha2_password"];

/// Connects to `host:port` and returns the loopback address the driver should connect to
/// instead. The relay serves one connection and ends with it.
pub async fn relay(host: &str, port: u16, accept_within: Duration) -> io::Result<SocketAddr> {
    let server = TcpStream::connect((host, port)).await?;
    let _ = server.set_nodelay(true);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        if let Ok(Ok((client, _))) = tokio::time::timeout(accept_within, listener.accept()).await {
            let _ = client.set_nodelay(true);
            let _ = serve(client, server).await;
        }
    });
    Ok(local)
}

async fn serve(client: TcpStream, server: TcpStream) -> io::Result<()> {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    let result = async {
        // The greeting, then the server's answers until authentication ends.
        let mut greeted = false;
        loop {
            let (header, payload) = read_packet(&mut server_read).await?;
            if greeted {
                match check(&payload) {
                    Verdict::Pass => {}
                    Verdict::Done => {
                        write_packet(&mut client_write, &header, &payload).await?;
                        break;
                    }
                    Verdict::Refuse => {
                        client_write.write_all(&error_packet(header[3])).await?;
                        return Ok(());
                    }
                }
            }
            greeted = true;
            write_packet(&mut client_write, &header, &payload).await?;
        }
        tokio::io::copy(&mut server_read, &mut client_write).await?;
        Ok::<_, io::Error>(())
    }
    .await;
    upstream.abort();
    result
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Part of authentication: pass it on.
    Pass,
    /// Authentication ended (OK or error): everything after passes unread.
    Done,
    /// The server asks for the password: refused.
    Refuse,
}

/// What a server packet after the greeting means, before authentication has ended.
fn check(payload: &[u8]) -> Verdict {
    match payload {
        [0x00, ..] | [0xff, ..] => Verdict::Done,
        // caching_sha2_password's "fast authentication succeeded"; anything else after 0x01 (its
        // "perform full authentication", 0x04: the password or an RSA key) is refused.
        [0x01, 0x03, ..] => Verdict::Pass,
        [0x01, ..] => Verdict::Refuse,
        // Auth switch: only to a challenge-response plugin.
        [0xfe, rest @ ..] => {
            let plugin = rest.split(|b| *b == 0).next().unwrap_or_default();
            if CHALLENGE_PLUGINS.contains(&plugin) {
                Verdict::Pass
            } else {
                Verdict::Refuse
            }
        }
        _ => Verdict::Pass,
    }
}

async fn read_packet(stream: &mut (impl AsyncReadExt + Unpin)) -> io::Result<([u8; 4], Vec<u8>)> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let length = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await?;
    Ok((header, payload))
}

async fn write_packet(
    stream: &mut (impl AsyncWriteExt + Unpin),
    header: &[u8; 4],
    payload: &[u8],
) -> io::Result<()> {
    stream.write_all(header).await?;
    stream.write_all(payload).await
}

/// An ERR packet with [`REFUSED_CODE`] and [`REFUSED`], in the refused packet's place.
fn error_packet(sequence: u8) -> Vec<u8> {
    let mut payload = vec![0xff];
    payload.extend_from_slice(&REFUSED_CODE.to_le_bytes());
    payload.extend_from_slice(b"#HY000");
    payload.extend_from_slice(REFUSED.as_bytes());
    let length = (payload.len() as u32).to_le_bytes();
    let mut packet = vec![length[0], length[1], length[2], sequence];
    packet.extend_from_slice(&payload);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_requests_are_refused_and_challenges_pass() {
        assert_eq!(check(&[0x01, 0x04]), Verdict::Refuse);
        assert_eq!(
            check(&[0x01, 0x03]),
            Verdict::Pass,
            "fast authentication succeeded"
        );
        assert_eq!(check(b"\xfemysql_clear_password\0"), Verdict::Refuse);
        assert_eq!(
            check(b"\xfeclient_ed25519\0nonce\0"),
            Verdict::Refuse,
            "not spoken by the driver"
        );
        assert_eq!(check(b"\xfedialog\0"), Verdict::Refuse);
        assert_eq!(check(&[0x01, 0xfe]), Verdict::Refuse);
        assert_eq!(check(b"\xfesha256_password\0"), Verdict::Refuse);
        assert_eq!(
            check(b"\xfemysql_native_password\0abcdefgh\0"),
            Verdict::Pass
        );
        // A switch to caching_sha2 is a challenge; its full-authentication request is refused.
        assert_eq!(check(b"\xfecaching_sha2_password\0nonce\0"), Verdict::Pass);
        assert_eq!(check(&[0x00, 0, 0, 2, 0]), Verdict::Done);
        assert_eq!(check(&[0xff, 0x15, 0x04]), Verdict::Done);
    }
}
