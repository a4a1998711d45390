//! PostgreSQL: tokio-postgres with rustls. Passwords are set as SCRAM-SHA-256 verifiers computed
//! here: the server stores the verifier as is, and neither its log (even with
//! `log_statement = 'all'`) nor the wire ever holds the cleartext.

use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};
use watchkeeper_shared::secret::Secret;

use super::{Credentials, DbError, DbErrorKind, Settings, TlsMode, quote_ident};

/// `'text'` for PostgreSQL (standard_conforming_strings: only quotes need doubling).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

async fn connect(settings: &Settings, creds: &Credentials) -> Result<Client, DbError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&creds.host)
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
    let connecting = match creds.tls {
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
            // Require: no plaintext fallback. rustls verifies the chain and the host name.
            config.ssl_mode(SslMode::Require);
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
    Ok(connecting)
}

fn classify(creds: &Credentials, err: &tokio_postgres::Error) -> DbError {
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
    let lower = text.to_ascii_lowercase();
    let kind = if lower.contains("tls") || lower.contains("ssl") || lower.contains("certificate") {
        DbErrorKind::Tls
    } else {
        DbErrorKind::Unreachable
    };
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

pub async fn set_password(
    settings: &Settings,
    admin: &Credentials,
    user: &str,
    password: &Secret<String>,
    clone_of: Option<&str>,
) -> Result<(), DbError> {
    let client = connect(settings, admin).await?;
    let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
            &[&user],
        )
        .await
        .map_err(|e| classify(admin, &e))?
        .is_some();
    let statements = match (exists, clone_of) {
        (true, _) => vec![format!(
            "ALTER ROLE {} WITH PASSWORD {}",
            quote_ident(user),
            quote_literal(&verifier)
        )],
        (false, Some(original)) => vec![
            format!(
                "CREATE ROLE {} WITH LOGIN PASSWORD {}",
                quote_ident(user),
                quote_literal(&verifier)
            ),
            // Membership: the clone inherits every privilege of the original, now and later.
            format!("GRANT {} TO {}", quote_ident(original), quote_ident(user)),
        ],
        (false, None) => {
            return Err(DbError::new(
                admin,
                DbErrorKind::Query,
                format!("role {user} does not exist"),
            ));
        }
    };
    for statement in statements {
        client
            .batch_execute(&statement)
            .await
            .map_err(|e| classify(admin, &e))?;
    }
    Ok(())
}
