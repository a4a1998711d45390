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

/// What makes a SHOW GRANTS line administrative, if anything.
pub fn dangerous(grant: &str) -> Option<&'static str> {
    let upper = strip_authentication(grant).to_ascii_uppercase();
    if upper.contains("WITH GRANT OPTION") || upper.contains("WITH ADMIN OPTION") {
        return Some("GRANT OPTION");
    }
    let body = upper.strip_prefix("GRANT ")?;
    let (privileges, rest) = body.split_once(" ON ")?;
    let scope = rest.split(" TO ").next().unwrap_or_default().trim();
    let privileges: Vec<&str> = privileges.split(',').map(str::trim).collect();
    let has = |p: &str| privileges.contains(&p);
    let global = scope == "*.*";
    let grant_tables = global || scope == "`MYSQL`.*" || scope.starts_with("`MYSQL`.");
    if global && has("ALL PRIVILEGES") {
        return Some("ALL PRIVILEGES on *.*");
    }
    if global && has("SUPER") {
        return Some("SUPER");
    }
    if global && has("CREATE USER") {
        return Some("CREATE USER");
    }
    let writes = [
        "ALL PRIVILEGES",
        "INSERT",
        "UPDATE",
        "DELETE",
        "CREATE",
        "DROP",
        "ALTER",
    ];
    if grant_tables && writes.iter().any(|w| has(w)) {
        return Some("write access to the grant tables");
    }
    None
}

/// The role of a `GRANT `role` TO ...` line.
pub fn granted_role(grant: &str) -> Option<String> {
    let rest = grant.strip_prefix("GRANT `")?;
    let (role, tail) = rest.split_once("` TO ")?;
    (!role.contains('`') && !tail.is_empty()).then(|| role.to_string())
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

    #[test]
    fn administrative_grants_are_recognised() {
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
        ] {
            assert_eq!(dangerous(line), what, "{line}");
        }
        assert_eq!(
            granted_role("GRANT `admins` TO `a`@`%`").as_deref(),
            Some("admins")
        );
    }
}
