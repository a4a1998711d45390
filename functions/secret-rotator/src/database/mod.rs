//! The databases whose passwords rotate: logging in, and setting a user's password without the
//! cleartext reaching the server (PostgreSQL: a SCRAM-SHA-256 verifier computed here; MariaDB: a
//! `mysql_native_password` hash computed here).
//!
//! TLS is verify-full against the configured CA bundle by default, and never falls back to
//! plaintext: plaintext happens only when the configuration or the secret says so.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::secret::Secret;

pub mod mysql;
pub mod postgres;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MySql,
}

impl Engine {
    pub fn default_port(self) -> Option<u16> {
        Some(match self {
            Engine::Postgres => 5432,
            Engine::MySql => 3306,
        })
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Postgres => "postgres",
            Engine::MySql => "mysql",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS required, certificate chain and host name verified.
    VerifyFull,
    /// Plaintext, only when explicitly configured.
    Disable,
}

/// Where and as whom to log in. The password only ever shows as `***`.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Secret<String>,
    pub dbname: Option<String>,
    pub tls: TlsMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// The server refused the login: wrong password or no such user.
    Auth,
    /// No connection: refused, timed out, DNS.
    Unreachable,
    /// TLS could not be set up or verified (or the server does not offer it).
    Tls,
    /// A statement failed.
    Query,
    /// The function is not set up for this (no CA bundle for TLS, ...).
    Setup,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{engine} {host}:{port} as {user}: {message}")]
pub struct DbError {
    pub kind: DbErrorKind,
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub message: String,
}

impl DbError {
    pub fn new(creds: &Credentials, kind: DbErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            engine: creds.engine,
            host: creds.host.clone(),
            port: creds.port,
            user: creds.username.clone(),
            message: message.into(),
        }
    }
}

impl Retryable for DbError {
    fn is_retryable(&self) -> bool {
        matches!(self.kind, DbErrorKind::Unreachable | DbErrorKind::Query)
    }
}

/// The port rotation logic talks to databases through.
pub trait Database: Send + Sync {
    /// Logs in with `creds` and runs a trivial query.
    fn check_login(&self, creds: &Credentials) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Logs in with `creds` and reads one row of `table` (`schema.table` or `table`).
    fn check_table(
        &self,
        creds: &Credentials,
        table: &str,
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Logged in as `admin`, sets `user`'s password. With `clone_of`, creates `user` first if it
    /// does not exist, with the roles and privileges of `clone_of`.
    fn set_password(
        &self,
        admin: &Credentials,
        user: &str,
        password: &Secret<String>,
        clone_of: Option<&str>,
    ) -> impl Future<Output = Result<(), DbError>> + Send;
}

/// Connection settings shared by both engines.
#[derive(Debug, Clone)]
pub struct Settings {
    /// CA certificates for verify-full; `None` when no bundle is configured.
    pub roots: Option<Arc<RootCertStore>>,
    /// The bundle's path, handed to drivers that load it themselves.
    pub ca_file: Option<std::path::PathBuf>,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
}

/// Loads a PEM bundle (the RDS global bundle, or a test CA). Errors say what is wrong, not the file.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{} is not a PEM bundle: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: unusable certificate: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(roots)
}

/// Both engines, chosen per secret.
#[derive(Debug, Clone)]
pub struct SqlDatabases {
    pub settings: Settings,
}

impl Database for SqlDatabases {
    async fn check_login(&self, creds: &Credentials) -> Result<(), DbError> {
        match creds.engine {
            Engine::Postgres => postgres::check_login(&self.settings, creds).await,
            Engine::MySql => mysql::check_login(&self.settings, creds).await,
        }
    }

    async fn check_table(&self, creds: &Credentials, table: &str) -> Result<(), DbError> {
        match creds.engine {
            Engine::Postgres => postgres::check_table(&self.settings, creds, table).await,
            Engine::MySql => mysql::check_table(&self.settings, creds, table).await,
        }
    }

    async fn set_password(
        &self,
        admin: &Credentials,
        user: &str,
        password: &Secret<String>,
        clone_of: Option<&str>,
    ) -> Result<(), DbError> {
        match admin.engine {
            Engine::Postgres => {
                postgres::set_password(&self.settings, admin, user, password, clone_of).await
            }
            Engine::MySql => {
                mysql::set_password(&self.settings, admin, user, password, clone_of).await
            }
        }
    }
}

/// `"name"` with embedded quotes doubled: safe as an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` for MySQL/MariaDB: quotes and backslashes escaped.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}
