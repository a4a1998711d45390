//! PostgreSQL: tokio-postgres with rustls. Logging in, and the bounded connect: TCP, the TLS
//! handshake and authentication together must finish within `DB_CONNECT_TIMEOUT_MS`, so a server
//! that accepts the connection and never answers cannot hold the function until Lambda kills it.
//!
//! Role administration (passwords, clones) is in [`super::pg_roles`].

use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::pg_cleartext::RefuseCleartext;
use super::{Credentials, DbError, DbErrorKind, Settings, TlsMode, quote_ident};

/// How a session resolves unqualified names of operators, functions and types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// `search_path = pg_catalog, pg_temp`, sent in the startup packet, which outranks a
    /// database's or a role's own `search_path` (`ALTER DATABASE ... SET`): nothing from a schema
    /// another role can write is resolved (the CVE-2018-1058 class), and the temporary schema is
    /// this session's own and never searched for operators or functions. Every session the
    /// rotator runs its own queries in.
    Pinned,
    /// The user's own `search_path`: only for testSecret's read of the application's table, as
    /// the application user, so that an unqualified table name means what it means to the
    /// application.
    Users,
}

/// Logs in as `creds`, the whole of it bounded by the connect timeout.
pub async fn connect(
    settings: &Settings,
    creds: &Credentials,
    names: Names,
) -> Result<Client, DbError> {
    let session = connect_unbounded(settings, creds, names);
    match tokio::time::timeout(settings.connect_timeout, session).await {
        Ok(result) => result,
        Err(_) => Err(DbError::new(
            creds,
            DbErrorKind::Unreachable,
            format!(
                "no session within {} ms (TCP connect, TLS handshake and login together)",
                settings.connect_timeout.as_millis()
            ),
        )),
    }
}

async fn connect_unbounded(
    settings: &Settings,
    creds: &Credentials,
    names: Names,
) -> Result<Client, DbError> {
    let mut config = tokio_postgres::Config::new();
    match (&creds.tls, &creds.tls_server_name) {
        (TlsMode::VerifyFull, Some(name)) => {
            // Dial `host`'s address, verify the certificate against `name`: given both, the
            // driver connects to `hostaddr` and uses `host` for TLS.
            let address = tokio::net::lookup_host((creds.host.as_str(), creds.port))
                .await
                .ok()
                .and_then(|mut found| found.next())
                .ok_or_else(|| {
                    DbError::new(
                        creds,
                        DbErrorKind::Unreachable,
                        "host name does not resolve",
                    )
                })?;
            config.host(name).hostaddr(address.ip());
        }
        _ => {
            config.host(&creds.host);
        }
    }
    config
        .port(creds.port)
        .user(&creds.username)
        .password(creds.password.expose().as_bytes())
        .dbname(creds.dbname.as_deref().unwrap_or("postgres"))
        .application_name("watchkeeper-secret-rotator")
        .connect_timeout(settings.connect_timeout)
        // idle_in_transaction_session_timeout: a step stopped mid-transaction (at the
        // invocation's deadline, see watchkeeper_shared::runtime) may leave its session open
        // in a frozen sandbox; the server ends it, and its row locks, after one statement's time.
        .options(format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}{}",
            settings.statement_timeout.as_millis(),
            settings.lock_timeout.as_millis(),
            settings.statement_timeout.as_millis(),
            match names {
                Names::Pinned => " -c search_path=pg_catalog,pg_temp",
                Names::Users => "",
            }
        ));
    let client = match creds.tls {
        TlsMode::Disable => {
            // Our own TCP connection, read through RefuseCleartext: over plaintext, a request
            // for the password in clear ends the session before the driver can answer it.
            config.ssl_mode(SslMode::Disable);
            let tcp = tokio::net::TcpStream::connect((creds.host.as_str(), creds.port))
                .await
                .map_err(|e| {
                    DbError::new(creds, DbErrorKind::Unreachable, format!("TCP connect: {e}"))
                })?;
            let _ = tcp.set_nodelay(true);
            let (client, connection) = config
                .connect_raw(RefuseCleartext::new(tcp), NoTls)
                .await
                .map_err(|e| classify(creds, &e))?;
            tokio::spawn(connection);
            client
        }
        TlsMode::VerifyFull => {
            let Some(roots) = &settings.roots else {
                return Err(DbError::new(
                    creds,
                    DbErrorKind::Setup,
                    "TLS is required but DB_TLS_CA_FILE is not set (set it, or DB_TLS=disable)",
                ));
            };
            // Require: no plaintext fallback. rustls verifies the chain and the host name
            // against DB_TLS_CA_FILE only.
            config.ssl_mode(SslMode::Require);
            watchkeeper_shared::tls::install();
            let tls = rustls::ClientConfig::builder()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            let (client, connection) = config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                .await
                .map_err(|e| classify(creds, &e))?;
            tokio::spawn(connection);
            client
        }
    };
    Ok(client)
}

/// A driver error as a [`DbError`]. Server messages carry no statement text, so no password.
pub fn classify(creds: &Credentials, err: &tokio_postgres::Error) -> DbError {
    if let Some(db) = err.as_db_error() {
        let kind = if *db.code() == SqlState::INVALID_PASSWORD
            || *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            DbErrorKind::Auth
        } else {
            DbErrorKind::Query
        };
        return DbError::new(
            creds,
            kind,
            format!("{} ({})", db.message(), db.code().code()),
        );
    }
    let text = err.to_string();
    // Walk the sources for the underlying cause (refused, timed out, bad certificate).
    let mut detail = String::new();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        detail = e.to_string();
        source = e.source();
    }
    let message = if detail.is_empty() {
        text
    } else {
        format!("{text}: {detail}")
    };
    let lower = message.to_ascii_lowercase();
    // (A refused cleartext request says "use TLS": a TLS-kind error, permanent.)
    let kind = if lower.contains("tls") || lower.contains("ssl") || lower.contains("certificate") {
        DbErrorKind::Tls
    } else {
        DbErrorKind::Unreachable
    };
    DbError::new(creds, kind, message)
}

/// Logs in and checks the server's own word on who logged in (`session_user`): a login proves
/// something about the named user only if it is that user's session.
pub async fn check_login(settings: &Settings, creds: &Credentials) -> Result<(), DbError> {
    let client = connect(settings, creds, Names::Pinned).await?;
    let row = client
        .query_one("SELECT session_user::pg_catalog.text", &[])
        .await
        .map_err(|e| classify(creds, &e))?;
    let user: String = row.try_get(0).map_err(|e| classify(creds, &e))?;
    if user == creds.username {
        Ok(())
    } else {
        Err(DbError::new(
            creds,
            DbErrorKind::Auth,
            format!(
                "the login opened a session of {user:?}, not {}",
                creds.username
            ),
        ))
    }
}

pub async fn check_table(
    settings: &Settings,
    creds: &Credentials,
    table: &str,
) -> Result<(), DbError> {
    let client = connect(settings, creds, Names::Users).await?;
    let name: Vec<String> = table.split('.').map(quote_ident).collect();
    client
        .simple_query(&format!("SELECT 1 FROM {} LIMIT 1", name.join(".")))
        .await
        .map_err(|e| classify(creds, &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use watchkeeper_shared::secret::Secret;

    /// A loopback "server" that asks for the password in cleartext and records all it receives.
    async fn cleartext_asker() -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            let mut length = [0u8; 4];
            stream.read_exact(&mut length).await.unwrap();
            let mut startup = vec![0u8; u32::from_be_bytes(length) as usize - 4];
            stream.read_exact(&mut startup).await.unwrap();
            received.extend_from_slice(&length);
            received.extend_from_slice(&startup);
            stream
                .write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])
                .await
                .unwrap();
            let mut rest = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
            received.extend_from_slice(&rest);
            received
        });
        (port, server)
    }

    #[tokio::test]
    async fn a_cleartext_password_request_over_plaintext_gets_no_password() {
        let (port, server) = cleartext_asker().await;
        let settings = Settings {
            roots: None,
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(5),
        };
        let creds = Credentials {
            engine: super::super::Engine::Postgres,
            host: "127.0.0.1".into(),
            port,
            username: "master".into(),
            password: Secret::new("the-master-password".into()),
            dbname: Some("postgres".into()),
            tls: TlsMode::Disable,
            tls_server_name: None,
        };
        let err = check_login(&settings, &creds).await.unwrap_err();
        assert_eq!(err.kind, DbErrorKind::Tls, "{err}");
        assert!(err.message.contains("cleartext"), "{err}");
        let received = server.await.unwrap();
        assert!(!received.is_empty(), "the startup message arrived");
        assert!(
            !received
                .windows(b"the-master-password".len())
                .any(|w| w == b"the-master-password"),
            "the password was sent: {:?}",
            String::from_utf8_lossy(&received)
        );
        assert!(!err.to_string().contains("the-master-password"));
    }
}
