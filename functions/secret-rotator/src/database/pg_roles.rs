//! PostgreSQL role administration as the master user. Passwords are set as SCRAM-SHA-256 verifiers
//! computed here: the server stores the verifier as is, and neither its log (even with
//! `log_statement = 'all'`) nor the wire ever holds the cleartext.
//!
//! Before anything changes, the roles involved are refused if they are, or can act as, the master
//! user, a superuser, `rds_superuser`, or a role with CREATEROLE, REPLICATION or BYPASSRLS
//! (membership followed transitively: a member can `SET ROLE` to any of them).
//!
//! A clone is created in one transaction: `CREATE ROLE ... LOGIN PASSWORD`, `GRANT <user>`, the
//! original's per-role settings, and `SET role = <user>`, so the clone's sessions act as `<user>`
//! and whatever they create is owned by `<user>`, readable after the next flip.
//!
//! An existing `<user>_clone` is only altered (or, as the current user, lets `<user>` be altered)
//! when it is such a clone: a member of `<user>` with the setting `role = <user>`. A role that
//! merely has the name is refused, never taken over. The clone is created and marked in the same
//! transaction, so no call leaves an unmarked clone behind.

use tokio_postgres::{Client, GenericClient};

use super::postgres::{Names, classify, connect};
use super::{Credentials, DbError, DbErrorKind, SetPassword, Settings, quote_ident};

/// `'text'` for PostgreSQL (standard_conforming_strings: only quotes need doubling).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Predefined roles whose members act as the server's operating-system user.
const SERVER_ACCESS_ROLES: &[&str] = &[
    "pg_execute_server_program",
    "pg_read_server_files",
    "pg_write_server_files",
];

/// Settings that are list-valued: their elements are quoted one by one.
const LIST_SETTINGS: &[&str] = &["search_path", "temp_tablespaces"];

/// Settings never copied: the clone's own `role` is set to the original.
const NOT_COPIED: &[&str] = &["role", "session_authorization"];

pub async fn set_password(
    settings: &Settings,
    admin: &Credentials,
    request: &SetPassword<'_>,
) -> Result<(), DbError> {
    let mut client = connect(settings, admin, Names::Pinned).await?;
    // Also for a role changing its own password (single user): whoever can write the secret's
    // AWSPENDING chooses that password, so a privileged role's is never set from a secret.
    for role in [Some(request.user), request.clone_of].into_iter().flatten() {
        if let Some(why) = refusal(&client, admin, role, request.forbidden).await? {
            return Err(DbError::new(admin, DbErrorKind::Refused, why));
        }
    }
    let pair = match (request.clone_of, request.current_clone) {
        (Some(original), _) => Some((request.user, original)),
        (None, Some(clone)) => Some((clone, request.user)),
        (None, None) => None,
    };
    if let Some((clone, original)) = pair
        && role_exists(&client, admin, clone).await?
        && !is_clone_of(&client, admin, clone, original).await?
    {
        return Err(DbError::new(
            admin,
            DbErrorKind::Refused,
            format!(
                "role {clone} exists but is not the rotator's clone of {original} (a member of it with the setting role = {original}): the function neither takes it over nor lets it stand for {original}; rename that role or mark it as the clone"
            ),
        ));
    }
    let verifier = postgres_protocol::password::scram_sha_256(request.password.expose().as_bytes());
    let fail = |e: tokio_postgres::Error| classify(admin, &e);
    let tx = client.transaction().await.map_err(fail)?;
    let exists = role_exists(&tx, admin, request.user).await?;
    let user = quote_ident(request.user);
    let mut statements = match (exists, request.clone_of) {
        (true, _) => vec![format!(
            "ALTER ROLE {user} WITH PASSWORD {}",
            quote_literal(&verifier)
        )],
        (false, Some(_)) => vec![format!(
            "CREATE ROLE {user} WITH LOGIN PASSWORD {}",
            quote_literal(&verifier)
        )],
        (false, None) => {
            return Err(DbError::new(
                admin,
                DbErrorKind::Query,
                format!("role {} does not exist", request.user),
            ));
        }
    };
    if let Some(original) = request.clone_of {
        // Also on an existing clone: a retry repairs whatever an older version left out.
        statements.push(format!("GRANT {} TO {user}", quote_ident(original)));
        for (database, setting) in role_settings(&tx, admin, original).await? {
            if let Some(statement) = copy_setting(&user, &database, &setting) {
                statements.push(statement);
            }
        }
        statements.push(format!(
            "ALTER ROLE {user} SET role = {}",
            quote_literal(original)
        ));
    }
    for statement in &statements {
        tx.batch_execute(statement).await.map_err(fail)?;
    }
    tx.commit().await.map_err(fail)
}

async fn role_exists(
    client: &impl GenericClient,
    creds: &Credentials,
    role: &str,
) -> Result<bool, DbError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
            &[&role],
        )
        .await
        .map_err(|e| classify(creds, &e))?
        .is_some())
}

/// Whether `clone` is what the rotator makes of `original`: a member of it whose sessions act as
/// it (`role = <original>` for every database).
async fn is_clone_of(
    client: &impl GenericClient,
    creds: &Credentials,
    clone: &str,
    original: &str,
) -> Result<bool, DbError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m \
               JOIN pg_catalog.pg_roles g ON g.oid = m.roleid \
               JOIN pg_catalog.pg_roles u ON u.oid = m.member \
               WHERE u.rolname = $1 AND g.rolname = $2) \
             AND EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting s \
               JOIN pg_catalog.pg_roles r ON r.oid = s.setrole \
               WHERE r.rolname = $1 AND s.setdatabase OPERATOR(pg_catalog.=) 0::pg_catalog.oid \
               AND ('role=' || $2::pg_catalog.text) = ANY (s.setconfig))",
            &[&clone, &original],
        )
        .await
        .map_err(|e| classify(creds, &e))?;
    row.try_get(0).map_err(|e| classify(creds, &e))
}

/// Why `role` must not be altered or cloned with the master's privileges, if it must not.
async fn refusal(
    client: &Client,
    creds: &Credentials,
    role: &str,
    forbidden: &[&str],
) -> Result<Option<String>, DbError> {
    let rows = client
        .query(
            "WITH RECURSIVE reach(oid) AS ( \
               SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1 \
               UNION SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN reach r ON m.member = r.oid) \
             SELECT r.rolname::pg_catalog.text, r.rolsuper, r.rolcreaterole, r.rolreplication, r.rolbypassrls \
             FROM pg_catalog.pg_roles r JOIN reach USING (oid)",
            &[&role],
        )
        .await
        .map_err(|e| classify(creds, &e))?;
    for row in rows {
        let name: String = row.try_get(0).map_err(|e| classify(creds, &e))?;
        let flag = |i: usize| row.try_get::<_, bool>(i).unwrap_or(true);
        let what = if forbidden.contains(&name.as_str()) {
            "the master user"
        } else if name == "rds_superuser" {
            "the RDS administrators' role"
        } else if name == "rds_password" {
            "the RDS role that may change any role's password"
        } else if SERVER_ACCESS_ROLES.contains(&name.as_str()) {
            "a role that runs programs or reads or writes files as the server"
        } else if flag(1) {
            "a superuser"
        } else if flag(2) {
            "a role with CREATEROLE"
        } else if flag(3) {
            "a role with REPLICATION"
        } else if flag(4) {
            "a role with BYPASSRLS"
        } else {
            continue;
        };
        let how = if name == role {
            format!("role {role} is {what}")
        } else {
            format!("role {role} can act as {name}, {what}")
        };
        return Ok(Some(format!(
            "{how}: the function does not alter or clone it with the master's privileges"
        )));
    }
    Ok(None)
}

/// `(database or "", "name=value")` of every per-role setting of `role`.
async fn role_settings(
    client: &impl GenericClient,
    creds: &Credentials,
    role: &str,
) -> Result<Vec<(String, String)>, DbError> {
    let rows = client
        .query(
            "SELECT COALESCE(d.datname::pg_catalog.text, ''), s.setconfig \
             FROM pg_catalog.pg_db_role_setting s \
             JOIN pg_catalog.pg_roles r ON r.oid = s.setrole \
             LEFT JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase \
             WHERE r.rolname = $1",
            &[&role],
        )
        .await
        .map_err(|e| classify(creds, &e))?;
    let mut settings = Vec::new();
    for row in rows {
        let database: String = row.try_get(0).map_err(|e| classify(creds, &e))?;
        let config: Vec<String> = row.try_get(1).map_err(|e| classify(creds, &e))?;
        settings.extend(config.into_iter().map(|c| (database.clone(), c)));
    }
    Ok(settings)
}

/// `ALTER ROLE <user> [IN DATABASE <db>] SET <name> = <value>` for one stored setting, every part
/// quoted (the stored text is the role's own and may hold anything), or `None` when it is not to
/// be copied or its name is not a plain setting name.
fn copy_setting(user: &str, database: &str, setting: &str) -> Option<String> {
    let (name, value) = setting.split_once('=')?;
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !plain || NOT_COPIED.contains(&name.to_ascii_lowercase().as_str()) {
        return None;
    }
    let value = if LIST_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        list_elements(value)
            .iter()
            .map(|e| quote_ident(e))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        quote_literal(value)
    };
    let scope = if database.is_empty() {
        String::new()
    } else {
        format!(" IN DATABASE {}", quote_ident(database))
    };
    Some(format!("ALTER ROLE {user}{scope} SET {name} = {value}"))
}

/// The elements of a stored list setting: `"$user", public` -> [`$user`, `public`].
fn list_elements(value: &str) -> Vec<String> {
    let mut elements = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => elements.push(std::mem::take(&mut current).trim().to_string()),
            _ => current.push(c),
        }
    }
    elements.push(current.trim().to_string());
    elements.retain(|e| !e.is_empty());
    elements
}

/// How the clone differs from a copy of the original: read as the pending user (the role
/// catalogs are readable by every role).
pub async fn clone_differences(
    settings: &Settings,
    pending: &Credentials,
    original: &str,
    clone: &str,
) -> Result<Vec<String>, DbError> {
    let client = connect(settings, pending, Names::Pinned).await?;
    let fail = |e: tokio_postgres::Error| classify(pending, &e);
    let mut differences = Vec::new();
    let rows = client
        .query(
            "SELECT g.rolname::pg_catalog.text FROM pg_catalog.pg_auth_members m \
             JOIN pg_catalog.pg_roles g ON g.oid = m.roleid \
             JOIN pg_catalog.pg_roles u ON u.oid = m.member WHERE u.rolname = $1",
            &[&clone],
        )
        .await
        .map_err(fail)?;
    let mut memberships = Vec::new();
    for row in rows {
        memberships.push(row.try_get::<_, String>(0).map_err(fail)?);
    }
    if !memberships.iter().any(|m| m == original) {
        differences.push(format!("{clone} is not a member of {original}"));
    }
    for other in memberships.iter().filter(|m| *m != original) {
        differences.push(format!("{clone} is also a member of {other}"));
    }
    let clone_settings = role_settings(&client, pending, clone).await?;
    if !clone_settings.contains(&(String::new(), format!("role={original}"))) {
        differences.push(format!(
            "{clone} does not act as {original} (no role setting)"
        ));
    }
    for (database, setting) in role_settings(&client, pending, original).await? {
        let name = setting.split_once('=').map(|(n, _)| n).unwrap_or(&setting);
        if NOT_COPIED.contains(&name) {
            continue;
        }
        if !clone_settings.contains(&(database.clone(), setting.clone())) {
            differences.push(format!("{clone} lacks the setting {name} of {original}"));
        }
    }
    Ok(differences)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_copied_quoted() {
        assert_eq!(
            copy_setting("\"c\"", "", "search_path=\"$user\", app, \"we\"\"ird\"").unwrap(),
            "ALTER ROLE \"c\" SET search_path = \"$user\", \"app\", \"we\"\"ird\""
        );
        assert_eq!(
            copy_setting("\"c\"", "db", "work_mem=4MB'; DROP ROLE x; --").unwrap(),
            "ALTER ROLE \"c\" IN DATABASE \"db\" SET work_mem = '4MB''; DROP ROLE x; --'"
        );
        assert_eq!(copy_setting("\"c\"", "", "role=postgres"), None);
        assert_eq!(copy_setting("\"c\"", "", "a;b=1"), None);
    }
}
