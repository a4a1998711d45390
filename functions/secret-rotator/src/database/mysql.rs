//! MySQL and MariaDB through mysql_async with rustls.
//!
//! MariaDB: passwords are set as `mysql_native_password` hashes computed here
//! (`IDENTIFIED BY PASSWORD '*<hash>'`), so the cleartext is never sent and the general log shows
//! only the hash. MySQL 8 (caching_sha2_password) takes the password itself in `ALTER USER`; the
//! server rewrites it as `<secret>` in its general and slow logs, but it does travel on the
//! (TLS-protected) connection.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts};
use sha1::{Digest, Sha1};
use watchkeeper_shared::secret::Secret;

use super::{Credentials, DbError, DbErrorKind, Settings, TlsMode, quote_literal};

async fn connect(settings: &Settings, creds: &Credentials) -> Result<Conn, DbError> {
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
        options =
            options.ssl_opts(SslOpts::default().with_root_certs(vec![ca_file.clone().into()]));
    }
    match tokio::time::timeout(settings.connect_timeout, Conn::new(options)).await {
        Err(_) => Err(DbError::new(
            creds,
            DbErrorKind::Unreachable,
            "connect timed out",
        )),
        Ok(Err(e)) => Err(classify(creds, &e)),
        Ok(Ok(conn)) => Ok(conn),
    }
}

fn classify(creds: &Credentials, err: &mysql_async::Error) -> DbError {
    let kind = match err {
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
    };
    DbError::new(creds, kind, err.to_string())
}

pub async fn check_login(settings: &Settings, creds: &Credentials) -> Result<(), DbError> {
    let mut conn = connect(settings, creds).await?;
    let result = conn
        .query_drop("SELECT 1")
        .await
        .map_err(|e| classify(creds, &e));
    let _ = conn.disconnect().await;
    result
}

pub async fn check_table(
    settings: &Settings,
    creds: &Credentials,
    table: &str,
) -> Result<(), DbError> {
    let mut conn = connect(settings, creds).await?;
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

/// `*` and the upper-case hex SHA1 of SHA1(password): the stored form of mysql_native_password.
pub fn native_password_hash(password: &str) -> String {
    let stage1 = Sha1::digest(password.as_bytes());
    let stage2 = Sha1::digest(stage1);
    format!("*{}", hex::encode_upper(stage2))
}

fn quote_account(user: &str, host: &str) -> String {
    format!("{}@{}", quote_literal(user), quote_literal(host))
}

pub async fn set_password(
    settings: &Settings,
    admin: &Credentials,
    user: &str,
    password: &Secret<String>,
    clone_of: Option<&str>,
) -> Result<(), DbError> {
    let mut conn = connect(settings, admin).await?;
    let result = set_password_on(&mut conn, admin, user, password, clone_of).await;
    let _ = conn.disconnect().await;
    result
}

async fn set_password_on(
    conn: &mut Conn,
    admin: &Credentials,
    user: &str,
    password: &Secret<String>,
    clone_of: Option<&str>,
) -> Result<(), DbError> {
    let fail = |e: mysql_async::Error| classify(admin, &e);
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(fail)?;
    let mariadb = version
        .unwrap_or_default()
        .to_ascii_lowercase()
        .contains("mariadb");
    let identified = if mariadb {
        format!(
            "IDENTIFIED BY PASSWORD {}",
            quote_literal(&native_password_hash(password.expose()))
        )
    } else {
        format!("IDENTIFIED BY {}", quote_literal(password.expose()))
    };
    if clone_of.is_none() && admin.username == user {
        // A user changing its own password needs no privilege and no access to mysql.user.
        let own = if mariadb {
            format!(
                "SET PASSWORD = {}",
                quote_literal(&native_password_hash(password.expose()))
            )
        } else {
            format!("ALTER USER USER() {identified}")
        };
        conn.query_drop(own).await.map_err(fail)?;
        return Ok(());
    }
    let hosts: Vec<String> = conn
        .exec("SELECT Host FROM mysql.user WHERE User = ?", (user,))
        .await
        .map_err(fail)?;
    if !hosts.is_empty() {
        for host in hosts {
            conn.query_drop(format!(
                "ALTER USER {} {identified}",
                quote_account(user, &host)
            ))
            .await
            .map_err(fail)?;
        }
        return Ok(());
    }
    let Some(original) = clone_of else {
        return Err(DbError::new(
            admin,
            DbErrorKind::Query,
            format!("user {user} does not exist"),
        ));
    };
    let original_hosts: Vec<String> = conn
        .exec("SELECT Host FROM mysql.user WHERE User = ?", (original,))
        .await
        .map_err(fail)?;
    if original_hosts.is_empty() {
        return Err(DbError::new(
            admin,
            DbErrorKind::Query,
            format!("user {original} to clone does not exist"),
        ));
    }
    for host in original_hosts {
        conn.query_drop(format!(
            "CREATE USER {} {identified}",
            quote_account(user, &host)
        ))
        .await
        .map_err(fail)?;
        // Copy every grant of the original, minus any authentication clause.
        let grants: Vec<String> = conn
            .query(format!(
                "SHOW GRANTS FOR {}",
                quote_account(original, &host)
            ))
            .await
            .map_err(fail)?;
        let from = format!("TO {}", quote_grantee(original, &host));
        let to = format!("TO {}", quote_account(user, &host));
        for grant in grants {
            let grant = match grant.find(" IDENTIFIED BY") {
                Some(cut) => grant[..cut].to_string(),
                None => grant,
            };
            if grant.contains(&from) {
                conn.query_drop(grant.replace(&from, &to))
                    .await
                    .map_err(fail)?;
            }
        }
    }
    Ok(())
}

/// How SHOW GRANTS writes an account: `` `user`@`host` ``.
fn quote_grantee(user: &str, host: &str) -> String {
    format!(
        "`{}`@`{}`",
        user.replace('`', "``"),
        host.replace('`', "``")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_hash_matches_the_server() {
        // SELECT PASSWORD('password') on MariaDB.
        assert_eq!(
            native_password_hash("password"),
            "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
        );
    }
}
