//! The text of `SHOW GRANTS` lines: what an account holds, read and rewritten without a server.
//! Lines are the server's own output; account names are matched in both quoting styles servers
//! use (`` `u`@`h` `` and `'u'@'h'`), and authentication clauses (password hashes) are removed
//! before a line is copied, compared or shown.

use super::quote_literal;

pub fn quote_account(user: &str, host: &str) -> String {
    format!("{}@{}", quote_literal(user), quote_literal(host))
}

/// The two ways servers write an account in SHOW GRANTS: `` `u`@`h` `` and `'u'@'h'`.
pub fn account_spellings(user: &str, host: &str) -> [String; 2] {
    [
        format!(
            "`{}`@`{}`",
            user.replace('`', "``"),
            host.replace('`', "``")
        ),
        quote_account(user, host),
    ]
}

/// A SHOW GRANTS line of `original@host` rewritten for `clone@host`, without any
/// authentication clause; `None` for a line that is not about that account.
pub fn retarget(grant: &str, original: &str, clone: &str, host: &str) -> Option<String> {
    let grant = strip_authentication(grant);
    let target = &account_spellings(clone, host)[0];
    let mut rewritten = None;
    for from in account_spellings(original, host) {
        for keyword in ["TO", "FOR"] {
            let needle = format!("{keyword} {from}");
            if grant.contains(&needle) {
                rewritten = Some(grant.replace(&needle, &format!("{keyword} {target}")));
            }
        }
    }
    rewritten
}

/// The line without `IDENTIFIED BY PASSWORD '...'` / `IDENTIFIED VIA ... USING '...'`, keeping
/// the `REQUIRE` and `WITH` clauses that follow it.
pub fn strip_authentication(grant: &str) -> String {
    let Some(start) = grant.find(" IDENTIFIED ") else {
        return grant.to_string();
    };
    let rest = &grant[start + 1..];
    let end = [" REQUIRE ", " WITH "]
        .iter()
        .filter_map(|k| rest.find(k))
        .min()
        .map(|i| start + 1 + i)
        .unwrap_or(grant.len());
    format!("{}{}", &grant[..start], &grant[end..])
}

/// A grant line with its account written `<account>` and no authentication clause: comparable
/// between two users, and free of password hashes.
pub fn normalized(grant: &str, user: &str, host: &str) -> String {
    let mut line = strip_authentication(grant);
    for spelling in account_spellings(user, host) {
        line = line.replace(&spelling, "<account>");
    }
    line
}

/// What a SHOW GRANTS line gives its grantee, as far as the administrative check goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantLine {
    /// Administrative: the grantee is refused.
    Dangerous(&'static str),
    /// Roles granted to the account, each to be followed: (name, host). MariaDB writes roles
    /// without a host (`None`); MySQL 8 as accounts (`` `r`@`%` ``).
    Roles(Vec<(String, Option<String>)>),
    /// Nothing administrative.
    Harmless,
    /// A line the function cannot read: refused, never passed (fail closed).
    Unreadable,
}

/// Privileges that make their holder an administrator when granted on `*.*`: they grant or
/// change accounts, act as another account (a DEFINER, a proxy), read or write the server's files,
/// or change the server's settings.
const GLOBAL_ADMIN: &[&str] = &[
    "ALL",
    "ALL PRIVILEGES",
    "SUPER",
    "CREATE USER",
    "FILE",
    "GRANT OPTION",
    "SET USER",
    "ROLE_ADMIN",
    "SYSTEM_USER",
    "SET_USER_ID",
    "SET_ANY_DEFINER",
    "SYSTEM_VARIABLES_ADMIN",
];

/// The only privileges an account may hold on `*.*` (reads, and what acts on its own session or
/// objects): any other global privilege, known or not (`REPLICATION SLAVE ADMIN` points the
/// server at a source whose events write `mysql.*`; `BINLOG ADMIN`, `CLONE_ADMIN`, ...), is a
/// refusal. An allowlist: a privilege a newer server adds is refused until it is known.
const GLOBAL_HARMLESS: &[&str] = &[
    "USAGE",
    "SELECT",
    "SHOW DATABASES",
    "SHOW VIEW",
    "LOCK TABLES",
    "EXECUTE",
    "REFERENCES",
    "CREATE TEMPORARY TABLES",
    "PROCESS",
    "REPLICATION CLIENT",
    "BINLOG MONITOR",
    "SLAVE MONITOR",
    "REPLICA MONITOR",
    "SHOW CREATE ROUTINE",
];

/// Privileges that write the grant tables when granted on the `mysql` schema (or on a pattern
/// that matches it, or on `*.*`).
const WRITES: &[&str] = &[
    "ALL",
    "ALL PRIVILEGES",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "ALTER",
];

/// Reads one SHOW GRANTS line (MariaDB 10.x and MySQL 8 forms).
pub fn classify_grant(grant: &str) -> GrantLine {
    let line = strip_authentication(grant);
    let line = line.trim();
    let upper = line.to_ascii_uppercase();
    if upper.starts_with("SET DEFAULT ROLE ") || upper.starts_with("REVOKE ") {
        // A default role names a role granted on its own line; a partial revoke takes away.
        return GrantLine::Harmless;
    }
    let Some(body) = line.get(6..).filter(|_| upper.starts_with("GRANT ")) else {
        return GrantLine::Unreadable;
    };
    let (Some(to), on) = (find_keyword(body, " TO "), find_keyword(body, " ON ")) else {
        return GrantLine::Unreadable;
    };
    let tail = body[to + 4..].to_ascii_uppercase();
    let admin_option = tail.contains(" WITH GRANT OPTION") || tail.contains(" WITH ADMIN OPTION");
    if admin_option {
        return GrantLine::Dangerous("GRANT OPTION");
    }
    match on.filter(|on| *on < to) {
        Some(on) if on + 4 <= to => privileges(&body[..on], &body[on + 4..to]),
        Some(_) => GrantLine::Unreadable,
        None => roles(&body[..to]),
    }
}

/// Whether a SHOW GRANTS line lets its grantee write tables of `database` (directly, through a
/// database pattern, or on `*.*`).
pub fn writes_to(grant: &str, database: &str) -> bool {
    let line = strip_authentication(grant);
    let line = line.trim();
    if !line.to_ascii_uppercase().starts_with("GRANT ") {
        return false;
    }
    let body = &line[6..];
    let (Some(on), Some(to)) = (find_keyword(body, " ON "), find_keyword(body, " TO ")) else {
        return false;
    };
    if on + 4 > to {
        return false;
    }
    let names = privilege_names(&body[..on]);
    Scope::parse(&body[on + 4..to]).is_some_and(|scope| {
        scope.covers(database) && names.iter().any(|n| WRITES.contains(&n.as_str()))
    })
}

/// The privilege names of a list, upper case; a column privilege (`UPDATE (`a`)`) by its name.
fn privilege_names(list: &str) -> Vec<String> {
    split_top_level(list)
        .iter()
        .map(|p| {
            let name = p.split('(').next().unwrap_or_default();
            name.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_uppercase()
        })
        .collect()
}

/// `GRANT <privileges> ON <scope> TO ...`.
fn privileges(list: &str, scope: &str) -> GrantLine {
    let names = privilege_names(list);
    if names.iter().any(|n| n.is_empty()) {
        return GrantLine::Unreadable;
    }
    if names.iter().any(|n| n == "PROXY") {
        return GrantLine::Dangerous("PROXY (acting as another account)");
    }
    let Some(scope) = Scope::parse(scope) else {
        return GrantLine::Unreadable;
    };
    let has_any = |list: &[&str]| names.iter().any(|n| list.contains(&n.as_str()));
    if scope == Scope::Global
        && let Some(name) = names.iter().find(|n| GLOBAL_ADMIN.contains(&n.as_str()))
    {
        return GrantLine::Dangerous(match name.as_str() {
            "ALL" | "ALL PRIVILEGES" => "ALL PRIVILEGES on *.*",
            "SUPER" => "SUPER",
            "CREATE USER" => "CREATE USER",
            "FILE" => "FILE (the server's files)",
            "GRANT OPTION" => "GRANT OPTION",
            "SET USER" | "SET_USER_ID" | "SET_ANY_DEFINER" => {
                "the right to act as another account (SET USER)"
            }
            "ROLE_ADMIN" => "ROLE_ADMIN",
            "SYSTEM_USER" => "SYSTEM_USER",
            _ => "SYSTEM_VARIABLES_ADMIN",
        });
    }
    if scope.covers_grant_tables() && has_any(WRITES) {
        return GrantLine::Dangerous("write access to the grant tables");
    }
    if scope == Scope::Global && names.iter().any(|n| !GLOBAL_HARMLESS.contains(&n.as_str())) {
        return GrantLine::Dangerous("a global privilege (on *.*) outside the known-harmless ones");
    }
    GrantLine::Harmless
}

/// `GRANT <role>[, <role>...] TO ...`.
fn roles(list: &str) -> GrantLine {
    let mut roles = Vec::new();
    for role in split_top_level(list) {
        let Some((name, rest)) = quoted_name(role.trim()) else {
            return GrantLine::Unreadable;
        };
        let host = match rest.trim() {
            "" => None,
            at => match at.strip_prefix('@').and_then(|h| quoted_name(h.trim())) {
                Some((host, "")) => Some(host),
                _ => return GrantLine::Unreadable,
            },
        };
        roles.push((name, host));
    }
    if roles.is_empty() {
        GrantLine::Unreadable
    } else {
        GrantLine::Roles(roles)
    }
}

/// What a grant is on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// `*.*`.
    Global,
    /// `db.*`: `db` is a LIKE pattern (`%`, `_`, `\_`).
    Database(String),
    /// `db.table`, `FUNCTION db.f`, `PROCEDURE db.p`: `db` is literal.
    Object(String),
}

impl Scope {
    fn parse(scope: &str) -> Option<Scope> {
        let mut scope = scope.trim();
        for kind in ["FUNCTION ", "PROCEDURE ", "TABLE "] {
            if let Some(rest) = scope
                .get(..kind.len())
                .filter(|head| head.eq_ignore_ascii_case(kind))
                .and_then(|_| scope.get(kind.len()..))
            {
                scope = rest.trim_start();
            }
        }
        if scope == "*.*" || scope == "*" {
            return Some(Scope::Global);
        }
        let (db, rest) = quoted_name(scope)?;
        let object = rest.strip_prefix('.')?.trim();
        if object == "*" {
            Some(Scope::Database(db))
        } else {
            let (_, after) = quoted_name(object)?;
            after.is_empty().then_some(Scope::Object(db))
        }
    }

    fn covers_grant_tables(&self) -> bool {
        self.covers("mysql")
    }

    fn covers(&self, database: &str) -> bool {
        match self {
            Scope::Global => true,
            Scope::Database(pattern) => like(pattern, database),
            Scope::Object(db) => db.eq_ignore_ascii_case(database),
        }
    }
}

/// SQL LIKE on a database name as grants match it: `%` any run, `_` one character, `\` escapes.
/// Case-insensitively (the safe side where the server's names are case-sensitive).
fn like(pattern: &str, name: &str) -> bool {
    fn matches(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('%', rest)) => (0..=n.len()).any(|i| matches(rest, &n[i..])),
            Some(('_', rest)) => !n.is_empty() && matches(rest, &n[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                !n.is_empty() && rest[0].eq_ignore_ascii_case(&n[0]) && matches(&rest[1..], &n[1..])
            }
            Some((c, rest)) => {
                !n.is_empty() && c.eq_ignore_ascii_case(&n[0]) && matches(rest, &n[1..])
            }
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches(&p, &n)
}

/// A name at the start of `text`: `` `a``b` ``, `'a''b'`, `"a"` or a bare word; and what follows.
fn quoted_name(text: &str) -> Option<(String, &str)> {
    let mut chars = text.char_indices();
    let (_, first) = chars.next()?;
    if matches!(first, '`' | '\'' | '"') {
        let mut name = String::new();
        let mut escaped_quote = false;
        let mut iter = text[1..].char_indices().peekable();
        while let Some((i, c)) = iter.next() {
            if escaped_quote {
                escaped_quote = false;
                continue;
            }
            if c == first {
                if iter.peek().map(|(_, n)| *n) == Some(first) {
                    name.push(first);
                    escaped_quote = true;
                    continue;
                }
                return Some((name, &text[1 + i + 1..]));
            }
            name.push(c);
        }
        None
    } else {
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '%' | '\\')))
            .unwrap_or(text.len());
        (end > 0).then(|| (text[..end].to_string(), &text[end..]))
    }
}

/// Where `keyword` (e.g. `" TO "`) first occurs outside quotes and parentheses.
fn find_keyword(text: &str, keyword: &str) -> Option<usize> {
    let upper = text.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    let mut quote: Option<u8> = None;
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'`' | b'\'' | b'"' => quote = Some(c),
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                _ if depth == 0 && bytes[i..].starts_with(keyword.as_bytes()) => return Some(i),
                _ => {}
            },
        }
        i += 1;
    }
    None
}

/// `text` split at commas outside quotes and parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '`' | '\'' | '"' => quote = Some(c),
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    parts.push(&text[start..i]);
                    start = i + 1;
                }
                _ => {}
            },
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_retargeted_with_limits_and_without_the_hash() {
        let line = "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABC' REQUIRE SSL WITH MAX_USER_CONNECTIONS 5";
        assert_eq!(
            retarget(line, "app", "app_clone", "%").unwrap(),
            "GRANT USAGE ON *.* TO `app_clone`@`%` REQUIRE SSL WITH MAX_USER_CONNECTIONS 5"
        );
        assert_eq!(
            retarget(
                "GRANT SELECT ON `d`.* TO 'app'@'h'",
                "app",
                "app_clone",
                "h"
            )
            .unwrap(),
            "GRANT SELECT ON `d`.* TO `app_clone`@`h`"
        );
        assert_eq!(
            retarget(
                "SET DEFAULT ROLE `r` FOR `app`@`h`",
                "app",
                "app_clone",
                "h"
            )
            .unwrap(),
            "SET DEFAULT ROLE `r` FOR `app_clone`@`h`"
        );
        assert_eq!(
            retarget(
                "GRANT SELECT ON d.* TO `other`@`h`",
                "app",
                "app_clone",
                "h"
            ),
            None
        );
    }

    const GLOBAL: &str = "a global privilege (on *.*) outside the known-harmless ones";

    #[test]
    fn administrative_grants_are_recognised() {
        let dangerous = |line: &str| match classify_grant(line) {
            GrantLine::Dangerous(what) => Some(what),
            GrantLine::Harmless => None,
            other => panic!("{line}: {other:?}"),
        };
        for (line, what) in [
            (
                "GRANT ALL PRIVILEGES ON *.* TO `a`@`%`",
                Some("ALL PRIVILEGES on *.*"),
            ),
            ("GRANT SELECT, SUPER ON *.* TO `a`@`%`", Some("SUPER")),
            (
                "GRANT SELECT ON `d`.* TO `a`@`%` WITH GRANT OPTION",
                Some("GRANT OPTION"),
            ),
            (
                "GRANT UPDATE ON `mysql`.* TO `a`@`%`",
                Some("write access to the grant tables"),
            ),
            ("GRANT CREATE USER ON *.* TO `a`@`%`", Some("CREATE USER")),
            (
                "GRANT USAGE ON *.* TO `a`@`%` WITH MAX_USER_CONNECTIONS 5",
                None,
            ),
            ("GRANT ALL PRIVILEGES ON `app`.* TO `a`@`%`", None),
            // MariaDB 10.5+ and MySQL 8 privileges that act as another account or as the server.
            (
                "GRANT FILE ON *.* TO `a`@`%`",
                Some("FILE (the server's files)"),
            ),
            (
                "GRANT SET USER ON *.* TO `a`@`%`",
                Some("the right to act as another account (SET USER)"),
            ),
            ("GRANT ROLE_ADMIN ON *.* TO `a`@`%`", Some("ROLE_ADMIN")),
            (
                "GRANT SYSTEM_USER,SET_USER_ID ON *.* TO `a`@`%`",
                Some("SYSTEM_USER"),
            ),
            (
                "GRANT SYSTEM_VARIABLES_ADMIN ON *.* TO `a`@`%`",
                Some("SYSTEM_VARIABLES_ADMIN"),
            ),
            (
                "GRANT PROXY ON ''@'%' TO 'a'@'%'",
                Some("PROXY (acting as another account)"),
            ),
            // An allowlist on *.*: replication administration, binlog replay and the unknown.
            (
                "GRANT REPLICATION SLAVE ADMIN ON *.* TO `a`@`%`",
                Some(GLOBAL),
            ),
            (
                "GRANT BINLOG_ADMIN,CLONE_ADMIN ON *.* TO `a`@`%`",
                Some(GLOBAL),
            ),
            ("GRANT SOME_FUTURE_ADMIN ON *.* TO `a`@`%`", Some(GLOBAL)),
            (
                "GRANT SELECT, PROCESS, SHOW DATABASES ON *.* TO `a`@`%`",
                None,
            ),
            // Column privileges on a grant table, and database patterns that match `mysql`.
            (
                "GRANT SELECT, UPDATE (`Priv`) ON `mysql`.`global_priv` TO `a`@`%`",
                Some("write access to the grant tables"),
            ),
            (
                "GRANT ALL PRIVILEGES ON `%`.* TO `a`@`%`",
                Some("write access to the grant tables"),
            ),
            (
                "GRANT INSERT ON `my%`.* TO `a`@`%`",
                Some("write access to the grant tables"),
            ),
            (
                "GRANT INSERT ON `m_sql`.* TO `a`@`%`",
                Some("write access to the grant tables"),
            ),
            ("GRANT INSERT ON `my\\_sql`.* TO `a`@`%`", None),
            ("GRANT INSERT ON `mysql\\_app`.* TO `a`@`%`", None),
            ("GRANT SELECT ON `mysql`.* TO `a`@`%`", None),
            ("GRANT EXECUTE ON PROCEDURE `mysql`.`p` TO `a`@`%`", None),
            ("REVOKE INSERT ON `mysql`.* FROM `a`@`%`", None),
            ("SET DEFAULT ROLE `r` FOR `a`@`%`", None),
            (
                "GRANT `r`@`%` TO `a`@`%` WITH ADMIN OPTION",
                Some("GRANT OPTION"),
            ),
        ] {
            assert_eq!(dangerous(line), what, "{line}");
        }
    }

    #[test]
    fn granted_roles_are_read_in_both_servers_forms() {
        assert_eq!(
            classify_grant("GRANT `admins` TO `a`@`%`"),
            GrantLine::Roles(vec![("admins".into(), None)])
        );
        // MySQL 8: roles are accounts, several on one line.
        assert_eq!(
            classify_grant("GRANT `dba`@`%`,`r2`@`localhost` TO `a`@`%`"),
            GrantLine::Roles(vec![
                ("dba".into(), Some("%".into())),
                ("r2".into(), Some("localhost".into()))
            ])
        );
        assert_eq!(
            classify_grant("GRANT 'we''ird'@'%' TO 'a'@'%'"),
            GrantLine::Roles(vec![("we'ird".into(), Some("%".into()))])
        );
    }

    #[test]
    fn writers_of_a_database_are_recognised() {
        for (line, writes) in [
            ("GRANT INSERT ON `watchkeeper`.* TO `a`@`%`", true),
            (
                "GRANT UPDATE (`clone_of`) ON `watchkeeper`.`rotator_clones` TO `a`@`%`",
                true,
            ),
            ("GRANT ALL PRIVILEGES ON `watch%`.* TO `a`@`%`", true),
            ("GRANT INSERT ON *.* TO `a`@`%`", true),
            ("GRANT SELECT ON `watchkeeper`.* TO `a`@`%`", false),
            ("GRANT INSERT ON `app`.* TO `a`@`%`", false),
            ("GRANT `r` TO `a`@`%`", false),
        ] {
            assert_eq!(writes_to(line, "watchkeeper"), writes, "{line}");
        }
    }

    #[test]
    fn an_unreadable_line_is_not_a_pass() {
        for line in [
            "",
            "GRANT",
            "GRANT SELECT ON TO `a`@`%`",
            "GRANT `unterminated TO `a`@`%`",
            "DENY ALL TO `a`@`%`",
            "GRANT SELECT ON `d`.`t` `x` TO `a`@`%`",
        ] {
            assert_eq!(classify_grant(line), GrantLine::Unreadable, "{line}");
        }
    }
}
