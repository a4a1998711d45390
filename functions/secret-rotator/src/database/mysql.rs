//! MySQL and MariaDB through mysql_async with rustls: logging in. TLS trusts `DB_TLS_CA_FILE`
//! only (mysql_async's built-in public roots are switched off) and is required: a server that
//! does not offer it is an error, never a plaintext session. User administration is in
//! [`super::mysql_users`].

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts};

use super::{Credentials, DbError, DbErrorKind, Settings, TlsMode};

/// The server a session is on, read once after login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    pub mariadb: bool,
    /// (major, minor).
    pub version: (u32, u32),
}

impl Server {
    /// From `SELECT VERSION()`: `10.11.6-MariaDB-0+deb12u1`, `8.0.36`.
    pub fn parse(version: &str) -> Server {
        let mut numbers = version
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u32>().unwrap_or(0));
        Server {
            mariadb: version.to_ascii_lowercase().contains("mariadb"),
            version: (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)),
        }
    }

    /// MariaDB 10.11 has grants to `PUBLIC`, which every account holds.
    pub fn has_public_grants(self) -> bool {
        self.mariadb && self.version >= (10, 11)
    }

    /// The longest user name the server takes (MySQL 8: 32 characters; MariaDB: 80).
    pub fn max_user_name(self) -> usize {
        if self.mariadb { 80 } else { 32 }
    }

    /// Statements that bound every later statement of the session on the server: MariaDB's
    /// `max_statement_time` (seconds, every statement); MySQL's `max_execution_time` (ms, reads).
    fn statement_limit(self, limit: std::time::Duration) -> String {
        if self.mariadb {
            format!(
                "SET SESSION max_statement_time = {:.3}",
                limit.as_secs_f64()
            )
        } else {
            format!("SET SESSION max_execution_time = {}", limit.as_millis())
        }
    }
}

/// The session's `sql_mode` without `NO_BACKSLASH_ESCAPES`: literals are written with
/// backslashes escaped (see [`super::quote_literal`]), and under that mode a password holding a
/// backslash would be stored other than the secret says.
const BACKSLASH_ESCAPES: &str = "SET SESSION sql_mode = REPLACE(REPLACE(REPLACE(@@SESSION.sql_mode, \
     'NO_BACKSLASH_ESCAPES,', ''), ',NO_BACKSLASH_ESCAPES', ''), 'NO_BACKSLASH_ESCAPES', '')";

/// Logs in as `creds`, then bounds the session's statements and reads which server it is on.
pub async fn connect(settings: &Settings, creds: &Credentials) -> Result<(Conn, Server), DbError> {
    let mut conn = connect_only(settings, creds).await?;
    let fail = |e: mysql_async::Error| classify(creds, &e);
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(fail)?;
    let server = Server::parse(&version.unwrap_or_default());
    conn.query_drop(server.statement_limit(settings.statement_timeout))
        .await
        .map_err(fail)?;
    conn.query_drop(BACKSLASH_ESCAPES).await.map_err(fail)?;
    Ok((conn, server))
}

async fn connect_only(settings: &Settings, creds: &Credentials) -> Result<Conn, DbError> {
    let mut options = OptsBuilder::default()
        .ip_or_hostname(creds.host.clone())
        .tcp_port(creds.port)
        .user(Some(creds.username.clone()))
        .pass(Some(creds.password.expose().clone()))
        .db_name(creds.dbname.clone())
        .prefer_socket(false)
        .init(vec![format!(
            "SET SESSION lock_wait_timeout = {}",
            settings.lock_timeout.as_secs().max(1)
        )]);
    if creds.tls == TlsMode::VerifyFull {
        let Some(ca_file) = &settings.ca_file else {
            return Err(DbError::new(
                creds,
                DbErrorKind::Setup,
                "TLS is required but DB_TLS_CA_FILE is not set (set it, or DB_TLS=disable)",
            ));
        };
        options = options.ssl_opts(ssl_opts(ca_file, creds.tls_server_name.clone()));
    }
    match tokio::time::timeout(settings.connect_timeout, Conn::new(options)).await {
        Err(_) => Err(DbError::new(
            creds,
            DbErrorKind::Unreachable,
            format!(
                "no session within {} ms (TCP connect, TLS handshake and login together)",
                settings.connect_timeout.as_millis()
            ),
        )),
        Ok(Err(e)) => Err(classify(creds, &e)),
        Ok(Ok(conn)) => Ok(conn),
    }
}

/// verify-full against `ca_file` only: mysql_async would add its built-in public web roots
/// (compiled in with its rustls feature) unless told not to. The name override changes which name
/// is verified, not whether: the certificate must still name `server_name` and chain to the file.
fn ssl_opts(ca_file: &std::path::Path, server_name: Option<String>) -> SslOpts {
    SslOpts::default()
        .with_root_certs(vec![ca_file.to_path_buf().into()])
        .with_disable_built_in_roots(true)
        .with_danger_tls_hostname_override(server_name)
}

pub fn kind_of(err: &mysql_async::Error) -> DbErrorKind {
    match err {
        // 1045: access denied; 1044: no access to the database; 1698: no such user via socket auth.
        mysql_async::Error::Server(server) if matches!(server.code, 1045 | 1044 | 1698) => {
            DbErrorKind::Auth
        }
        mysql_async::Error::Server(_) => DbErrorKind::Query,
        mysql_async::Error::Io(io) => {
            let text = io.to_string().to_ascii_lowercase();
            if text.contains("tls") || text.contains("certificate") || text.contains("ssl") {
                DbErrorKind::Tls
            } else {
                DbErrorKind::Unreachable
            }
        }
        mysql_async::Error::Driver(driver) => {
            let text = driver.to_string().to_ascii_lowercase();
            if text.contains("tls") || text.contains("ssl") {
                DbErrorKind::Tls
            } else {
                DbErrorKind::Query
            }
        }
        _ => DbErrorKind::Query,
    }
}

pub fn classify(creds: &Credentials, err: &mysql_async::Error) -> DbError {
    let kind = kind_of(err);
    let message = match (kind, err) {
        (DbErrorKind::Tls, mysql_async::Error::Driver(_)) => format!(
            "{err} (TLS is required: the server must offer TLS with a certificate from DB_TLS_CA_FILE)"
        ),
        _ => err.to_string(),
    };
    DbError::new(creds, kind, message)
}

/// For a statement that carried a password or its hash: the server's text may quote the
/// statement, so only the error's code is kept.
pub fn classify_redacted(creds: &Credentials, err: &mysql_async::Error) -> DbError {
    let code = match err {
        mysql_async::Error::Server(server) => format!("server error {}", server.code),
        _ => "connection error".to_string(),
    };
    DbError::new(
        creds,
        kind_of(err),
        format!("a statement setting a password failed ({code}; its text is withheld)"),
    )
}

/// Logs in and checks who the server says logged in: a password can open another account than
/// the one named (an anonymous `''@'host'` account matches any user name before `'user'@'%'`
/// does), and then it proves nothing about the named user.
pub async fn check_login(settings: &Settings, creds: &Credentials) -> Result<(), DbError> {
    let (mut conn, _) = connect(settings, creds).await?;
    let result = conn
        .query_first::<String, _>("SELECT CURRENT_USER()")
        .await
        .map_err(|e| classify(creds, &e));
    let _ = conn.disconnect().await;
    let account = result?.unwrap_or_default();
    let user = account
        .rsplit_once('@')
        .map_or(account.as_str(), |(u, _)| u);
    if user == creds.username {
        Ok(())
    } else {
        Err(DbError::new(
            creds,
            DbErrorKind::Auth,
            format!(
                "the password opened the account {account:?}, not {}",
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
    let (mut conn, _) = connect(settings, creds).await?;
    let name: Vec<String> = table
        .split('.')
        .map(|part| format!("`{}`", part.replace('`', "``")))
        .collect();
    let result = conn
        .query_drop(format!("SELECT 1 FROM {} LIMIT 1", name.join(".")))
        .await
        .map_err(|e| classify(creds, &e));
    let _ = conn.disconnect().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_trusts_the_configured_bundle_only_and_verifies_everything() {
        let opts = ssl_opts(std::path::Path::new("/bundle.pem"), None);
        assert!(
            opts.disable_built_in_roots(),
            "public web roots must not be trusted"
        );
        assert!(!opts.accept_invalid_certs() && !opts.skip_domain_validation());
        assert_eq!(opts.root_certs().len(), 1);
    }

    #[test]
    fn errors_of_password_statements_keep_only_their_code() {
        let creds = Credentials {
            engine: super::super::Engine::MySql,
            host: "db".into(),
            port: 3306,
            username: "root".into(),
            password: watchkeeper_shared::secret::Secret::new("m".into()),
            dbname: None,
            tls: TlsMode::VerifyFull,
            tls_server_name: None,
        };
        let err = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1064,
            message: "You have an error in your SQL syntax near 'IDENTIFIED BY 'hunter2''".into(),
            state: "42000".into(),
        });
        let redacted = classify_redacted(&creds, &err).to_string();
        assert!(
            !redacted.contains("hunter2") && redacted.contains("1064"),
            "{redacted}"
        );
    }
}
