//! MySQL/MariaDB user administration as the master user.
//!
//! MariaDB: passwords are set as `mysql_native_password` hashes computed here
//! (`IDENTIFIED BY PASSWORD '*<hash>'`), so the cleartext is never sent and the general log shows
//! only the hash. MySQL 8 (caching_sha2_password) takes the password itself in `ALTER USER`; the
//! server rewrites it as `<secret>` in its logs, but it does travel on the (TLS) connection, and
//! any error of such a statement is reported by code only.
//!
//! Before anything changes, the users involved are refused if they are the master user or hold
//! (directly or through a role) `ALL` or `SUPER` or `CREATE USER` on `*.*`, any `GRANT OPTION`,
//! or write access to the grant tables (`*.*` or `mysql.*`).
//!
//! A clone is created on every host entry of the original with every grant of it copied
//! (privileges, roles, `REQUIRE`, resource limits, `SET DEFAULT ROLE`); if a statement fails, what
//! the call created is dropped, and an existing clone whose grants differ is dropped and made
//! again. An existing `<user>_clone` (the one to set, or the current user going back to `<user>`)
//! must be marked as the rotator's clone of `<user>` (see [`super::mysql_clones`]); otherwise it
//! is refused, never altered or dropped.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use sha1::{Digest, Sha1};

use super::mysql::{Server, classify, classify_redacted, connect};
use super::mysql_clones;
use super::mysql_grants::{
    GrantLine, classify_grant, normalized, quote_account, retarget, writes_to,
};
use super::{Credentials, DbError, DbErrorKind, SetPassword, Settings, quote_literal};

/// Roles granted to roles are followed this deep at most.
const ROLE_DEPTH: usize = 8;

/// `*` and the upper-case hex SHA1 of SHA1(password): the stored form of mysql_native_password.
pub fn native_password_hash(password: &str) -> String {
    let stage1 = Sha1::digest(password.as_bytes());
    let stage2 = Sha1::digest(stage1);
    format!("*{}", hex::encode_upper(stage2))
}

pub async fn set_password(
    settings: &Settings,
    admin: &Credentials,
    request: &SetPassword<'_>,
) -> Result<(), DbError> {
    let (mut conn, server) = connect(settings, admin).await?;
    let result = set_password_on(&mut conn, server, admin, request).await;
    let _ = conn.disconnect().await;
    result
}

async fn set_password_on(
    conn: &mut Conn,
    server: Server,
    admin: &Credentials,
    request: &SetPassword<'_>,
) -> Result<(), DbError> {
    let fail = |e: mysql_async::Error| classify(admin, &e);
    let mariadb = server.mariadb;
    if request.user.chars().count() > server.max_user_name() {
        return Err(DbError::new(
            admin,
            DbErrorKind::Refused,
            format!(
                "user name {} is longer than the {} characters this server takes",
                request.user,
                server.max_user_name()
            ),
        ));
    }
    let password = request.password.expose();
    let identified = if mariadb {
        format!(
            "IDENTIFIED BY PASSWORD {}",
            quote_literal(&native_password_hash(password))
        )
    } else {
        format!("IDENTIFIED BY {}", quote_literal(password))
    };
    if request.forbidden.is_empty() && admin.username == request.user && request.clone_of.is_none()
    {
        // A user changing its own password needs no privilege and no access to mysql.user.
        let own = if mariadb {
            format!(
                "SET PASSWORD = {}",
                quote_literal(&native_password_hash(password))
            )
        } else {
            format!("ALTER USER USER() {identified}")
        };
        return conn
            .query_drop(own)
            .await
            .map_err(|e| classify_redacted(admin, &e));
    }
    for user in [Some(request.user), request.clone_of].into_iter().flatten() {
        if let Some(why) = refusal(conn, admin, user, request.forbidden, &server).await? {
            return Err(DbError::new(admin, DbErrorKind::Refused, why));
        }
    }
    let pair = match (request.clone_of, request.current_clone) {
        (Some(original), _) => Some((request.user, original)),
        (None, Some(clone)) => Some((clone, request.user)),
        (None, None) => None,
    };
    if let Some((clone, original)) = pair {
        let clone_hosts = hosts_of(conn, admin, clone).await?;
        if !clone_hosts.is_empty()
            && !mysql_clones::is_clone_of(conn, admin, clone, original, &clone_hosts).await?
        {
            return Err(DbError::new(
                admin,
                DbErrorKind::Refused,
                format!(
                    "user {clone} exists but is not marked as the rotator's clone of {original} (watchkeeper.rotator_clones): the function neither alters, drops nor lets it stand for {original}; rename that user, or mark it if it is the clone"
                ),
            ));
        }
        // The mark is only worth something if the account it vouches for cannot write it,
        // directly, through a role or through PUBLIC.
        let writer = !clone_hosts.is_empty()
            && match held_grants(conn, admin, clone, &server).await? {
                Ok(held) => held
                    .iter()
                    .any(|g| writes_to(&g.line, mysql_clones::DATABASE_NAME)),
                Err(_) => true,
            };
        if writer {
            return Err(DbError::new(
                admin,
                DbErrorKind::Refused,
                format!(
                    "user {clone} can write the rotator's mark table ({}.rotator_clones): its mark proves nothing, and it is not taken as the rotator's clone of {original}",
                    mysql_clones::DATABASE_NAME
                ),
            ));
        }
    }
    let mut hosts = hosts_of(conn, admin, request.user).await?;
    if let (Some(original), false) = (request.clone_of, hosts.is_empty()) {
        // A clone left half made (a failure its cleanup could not undo) is made again.
        if !same_grants(conn, admin, original, request.user).await? {
            tracing::warn!(
                user = request.user,
                "clone's grants differ from the original's: recreating it"
            );
            drop_users(conn, request.user, &hosts).await.map_err(fail)?;
            mysql_clones::unmark(conn, request.user, &hosts)
                .await
                .map_err(fail)?;
            hosts.clear();
        }
    }
    if !hosts.is_empty() {
        for host in &hosts {
            conn.query_drop(format!(
                "ALTER USER {} {identified}",
                quote_account(request.user, host)
            ))
            .await
            .map_err(|e| classify_redacted(admin, &e))?;
        }
        return Ok(());
    }
    let Some(original) = request.clone_of else {
        return Err(DbError::new(
            admin,
            DbErrorKind::Query,
            format!("user {} does not exist", request.user),
        ));
    };
    let original_hosts = hosts_of(conn, admin, original).await?;
    if original_hosts.is_empty() {
        return Err(DbError::new(
            admin,
            DbErrorKind::Query,
            format!("user {original} to clone does not exist"),
        ));
    }
    mysql_clones::ensure_table(conn, admin).await?;
    let mut created = Vec::new();
    let outcome = create_clone(
        conn,
        admin,
        original,
        request.user,
        &original_hosts,
        &identified,
        &mut created,
    )
    .await;
    if outcome.is_err() && !created.is_empty() {
        // All or nothing: a retry starts clean (or, if this fails too, repairs as above).
        // Marks go only once their accounts are gone: an account left over stays recognisable.
        let cleanup = match drop_users(conn, request.user, &created).await {
            Ok(()) => mysql_clones::unmark(conn, request.user, &created).await,
            Err(e) => Err(e),
        };
        if let Err(e) = cleanup {
            tracing::warn!(error = %classify(admin, &e), "half-made clone could not be dropped");
        }
    }
    outcome
}

async fn create_clone(
    conn: &mut Conn,
    admin: &Credentials,
    original: &str,
    clone: &str,
    hosts: &[String],
    identified: &str,
    created: &mut Vec<String>,
) -> Result<(), DbError> {
    for host in hosts {
        // Marked before it exists: a crash between the two leaves a mark with no account
        // (harmless: nothing is marked for a host with no account) or a marked account that the
        // retry recognises and repairs, never an unmarked one it would have to refuse.
        mysql_clones::mark(conn, admin, clone, host, original).await?;
        if let Err(e) = conn
            .query_drop(format!(
                "CREATE USER {} {identified}",
                quote_account(clone, host)
            ))
            .await
        {
            if hosts_of(conn, admin, clone)
                .await
                .is_ok_and(|h| !h.contains(host))
            {
                let _ = mysql_clones::unmark(conn, clone, std::slice::from_ref(host)).await;
            }
            return Err(classify_redacted(admin, &e));
        }
        created.push(host.clone());
        for grant in grants_of(conn, admin, original, host).await? {
            if let Some(statement) = retarget(&grant, original, clone, host) {
                conn.query_drop(statement)
                    .await
                    .map_err(|e| classify(admin, &e))?;
            }
        }
    }
    Ok(())
}

async fn hosts_of(
    conn: &mut Conn,
    admin: &Credentials,
    user: &str,
) -> Result<Vec<String>, DbError> {
    let mut hosts: Vec<String> = conn
        .exec("SELECT Host FROM mysql.user WHERE User = ?", (user,))
        .await
        .map_err(|e| classify(admin, &e))?;
    hosts.sort();
    Ok(hosts)
}

async fn grants_of(
    conn: &mut Conn,
    admin: &Credentials,
    user: &str,
    host: &str,
) -> Result<Vec<String>, DbError> {
    let account = if host.is_empty() {
        // A role (MariaDB writes roles without a host).
        quote_literal(user)
    } else {
        quote_account(user, host)
    };
    conn.query(format!("SHOW GRANTS FOR {account}"))
        .await
        .map_err(|e| classify(admin, &e))
}

async fn drop_users(
    conn: &mut Conn,
    user: &str,
    hosts: &[String],
) -> Result<(), mysql_async::Error> {
    for host in hosts {
        conn.query_drop(format!("DROP USER IF EXISTS {}", quote_account(user, host)))
            .await?;
    }
    Ok(())
}

/// True when `clone` has, on the same host entries, exactly the grants of `original`.
async fn same_grants(
    conn: &mut Conn,
    admin: &Credentials,
    original: &str,
    clone: &str,
) -> Result<bool, DbError> {
    let hosts = hosts_of(conn, admin, original).await?;
    if hosts != hosts_of(conn, admin, clone).await? {
        return Ok(false);
    }
    for host in &hosts {
        let mut wanted: Vec<String> = grants_of(conn, admin, original, host)
            .await?
            .iter()
            .map(|g| normalized(g, original, host))
            .collect();
        let mut have: Vec<String> = grants_of(conn, admin, clone, host)
            .await?
            .iter()
            .map(|g| normalized(g, clone, host))
            .collect();
        wanted.sort();
        have.sort();
        if wanted != have {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One grant line `user` holds, with the account or role it came through.
struct HeldGrant {
    grantee: String,
    host: String,
    line: String,
}

/// Every grant line `user` holds: its own on each of its hosts, those of the roles it is granted
/// (followed, MariaDB and MySQL 8 forms), and those of `PUBLIC` where the server has them; or why
/// the list cannot be trusted (a role chain deeper than [`ROLE_DEPTH`]).
async fn held_grants(
    conn: &mut Conn,
    admin: &Credentials,
    user: &str,
    server: &Server,
) -> Result<Result<Vec<HeldGrant>, String>, DbError> {
    // (grantee, host; "" for a MariaDB role), followed through granted roles.
    let mut queue: Vec<(String, String, usize)> = hosts_of(conn, admin, user)
        .await?
        .into_iter()
        .map(|h| (user.to_string(), h, 0))
        .collect();
    if server.has_public_grants() {
        // Every account holds what PUBLIC holds (MariaDB 10.11+).
        queue.push(("PUBLIC".to_string(), String::new(), 0));
    }
    let mut seen = Vec::new();
    let mut held = Vec::new();
    while let Some((grantee, host, depth)) = queue.pop() {
        if seen.contains(&(grantee.clone(), host.clone())) {
            continue;
        }
        if depth > ROLE_DEPTH {
            return Ok(Err(format!(
                "user {user} reaches role {grantee} through more than {ROLE_DEPTH} roles"
            )));
        }
        seen.push((grantee.clone(), host.clone()));
        for line in grants_of(conn, admin, &grantee, &host).await? {
            if let GrantLine::Roles(roles) = classify_grant(&line) {
                for (role, role_host) in roles {
                    queue.push((role, role_host.unwrap_or_default(), depth + 1));
                }
            }
            held.push(HeldGrant {
                grantee: grantee.clone(),
                host: host.clone(),
                line,
            });
        }
    }
    Ok(Ok(held))
}

/// Why `user` must not be altered or cloned with the master's privileges, if it must not: it is
/// the master user, or one of the grant lines it holds ([`held_grants`]) is administrative or
/// cannot be read, or they cannot all be followed.
async fn refusal(
    conn: &mut Conn,
    admin: &Credentials,
    user: &str,
    forbidden: &[&str],
    server: &Server,
) -> Result<Option<String>, DbError> {
    if forbidden.contains(&user) {
        return Ok(Some(format!(
            "user {user} is the master user: the function does not alter or clone it"
        )));
    }
    let refuse = |why: String| {
        Ok(Some(format!(
            "{why}: the function does not alter or clone it with the master's privileges"
        )))
    };
    let held = match held_grants(conn, admin, user, server).await? {
        Ok(held) => held,
        Err(why) => return refuse(why),
    };
    for grant in &held {
        let via = if grant.grantee == user {
            String::new()
        } else {
            format!(" through {}", grant.grantee)
        };
        match classify_grant(&grant.line) {
            GrantLine::Dangerous(what) => return refuse(format!("user {user} holds {what}{via}")),
            GrantLine::Unreadable => {
                return refuse(format!(
                    "user {user} has a grant{via} the function cannot read ({})",
                    normalized(&grant.line, &grant.grantee, &grant.host)
                ));
            }
            GrantLine::Roles(_) | GrantLine::Harmless => {}
        }
    }
    Ok(None)
}

/// How the pending user's own grants differ from the current user's: each logs in with its own
/// credentials and reads `SHOW GRANTS` for itself (no privilege needed).
pub async fn clone_differences(
    settings: &Settings,
    current: &Credentials,
    pending: &Credentials,
) -> Result<Vec<String>, DbError> {
    let wanted = own_grants(settings, current).await?;
    let have = own_grants(settings, pending).await?;
    let mut differences: Vec<String> = wanted
        .iter()
        .filter(|g| !have.contains(g))
        .map(|g| format!("{} lacks: {g}", pending.username))
        .collect();
    differences.extend(
        have.iter()
            .filter(|g| !wanted.contains(g))
            .map(|g| format!("{} also has: {g}", pending.username)),
    );
    Ok(differences)
}

async fn own_grants(settings: &Settings, creds: &Credentials) -> Result<Vec<String>, DbError> {
    let (mut conn, _) = connect(settings, creds).await?;
    let result = async {
        let account: Option<String> = conn.query_first("SELECT CURRENT_USER()").await?;
        let account = account.unwrap_or_default();
        let (user, host) = account.rsplit_once('@').unwrap_or((account.as_str(), ""));
        let grants: Vec<String> = conn.query("SHOW GRANTS").await?;
        Ok::<_, mysql_async::Error>(
            grants
                .iter()
                .map(|g| normalized(g, user, host))
                .collect::<Vec<_>>(),
        )
    }
    .await
    .map_err(|e| classify(creds, &e));
    let _ = conn.disconnect().await;
    result
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
