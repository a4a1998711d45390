//! PostgreSQL: tokio-postgres with rustls. Logging in, and the bounded connect: TCP, the TLS
//! handshake and authentication together must finish within `DB_CONNECT_TIMEOUT_MS`, so a server
//! that accepts the connection and never answers cannot hold the function until Lambda kills it.
//!
//! Role administration (passwords, clones) is in [`super::pg_roles`].

use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::{Credentials, DbError, DbErrorKind, Settings, TlsMode, quote_ident};

/// Logs in as `creds`, the whole of it bounded by the connect timeout.
pub async fn connect(settings: &Settings, creds: &Credentials) -> Result<Client, DbError> {
    match tokio::time::timeout(settings.connect_timeout, connect_unbounded(settings, creds)).await {
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

async fn connect_unbounded(settings: &Settings, creds: &Credentials) -> Result<Client, DbError> {
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
        .options(format!(
            "-c statement_timeout={} -c lock_timeout={}",
            settings.statement_timeout.as_millis(),
            settings.lock_timeout.as_millis()
        ));
    let client = match creds.tls {
        TlsMode::Disable => {
            config.ssl_mode(SslMode::Disable);
            let (client, connection) = config
                .connect(NoTls)
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
    let kind = if lower.contains("tls") || lower.contains("ssl") || lower.contains("certificate") {
        DbErrorKind::Tls
    } else {
        DbErrorKind::Unreachable
    };
    DbError::new(creds, kind, message)
}

pub async fn check_login(settings: &Settings, creds: &Credentials) -> Result<(), DbError> {
    let client = connect(settings, creds).await?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| classify(creds, &e))?;
    Ok(())
}

pub async fn check_table(
    settings: &Settings,
    creds: &Credentials,
    table: &str,
) -> Result<(), DbError> {
    let client = connect(settings, creds).await?;
    let name: Vec<String> = table.split('.').map(quote_ident).collect();
    client
        .simple_query(&format!("SELECT 1 FROM {} LIMIT 1", name.join(".")))
        .await
        .map_err(|e| classify(creds, &e))?;
    Ok(())
}
