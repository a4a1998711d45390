//! Which MySQL/MariaDB accounts are the rotator's clones. Only those are ever altered or dropped
//! as `<user>_clone`: a user that merely has the name is someone else's.
//!
//! The mark is a row per account in the rotator's own table, `watchkeeper.rotator_clones`
//! (created by the master user the first time a clone is made). MariaDB has no user comment or
//! attribute to carry it (`CREATE USER ... COMMENT/ATTRIBUTE` is MySQL 8.0.21+; MariaDB 10.11
//! rejects it as a syntax error), and a mark among the clone's grants would show in the grants
//! that must equal the original's. Only administrators should write that table, and an account
//! that can write it is never taken for a clone, marked or not. Each account is marked right
//! before its `CREATE USER`: a call that fails drops what it created and takes back the marks of
//! accounts it did not create; a call cut short (a timeout, a crash) leaves a mark without an
//! account (harmless) or a marked account whose grants the retry repairs.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::mysql::classify;
use super::{Credentials, DbError};

/// The rotator's own database, holding the mark table.
pub const DATABASE_NAME: &str = "watchkeeper";
const DATABASE: &str = "CREATE DATABASE IF NOT EXISTS `watchkeeper`";
const TABLE: &str = "CREATE TABLE IF NOT EXISTS `watchkeeper`.`rotator_clones` (\
    `user` VARCHAR(128) NOT NULL, `host` VARCHAR(255) NOT NULL, `clone_of` VARCHAR(128) NOT NULL, \
    `created` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (`user`, `host`)) \
    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin COMMENT 'accounts created by secret-rotator as <user>_clone'";

/// Server errors for "no such database" and "no such table": no clone was ever made here.
const ABSENT: [u16; 2] = [1049, 1146];

pub async fn ensure_table(conn: &mut Conn, admin: &Credentials) -> Result<(), DbError> {
    for statement in [DATABASE, TABLE] {
        conn.query_drop(statement)
            .await
            .map_err(|e| classify(admin, &e))?;
    }
    Ok(())
}

pub async fn mark(
    conn: &mut Conn,
    admin: &Credentials,
    clone: &str,
    host: &str,
    original: &str,
) -> Result<(), DbError> {
    conn.exec_drop(
        "REPLACE INTO `watchkeeper`.`rotator_clones` (`user`, `host`, `clone_of`) VALUES (?, ?, ?)",
        (clone, host, original),
    )
    .await
    .map_err(|e| classify(admin, &e))
}

pub async fn unmark(
    conn: &mut Conn,
    clone: &str,
    hosts: &[String],
) -> Result<(), mysql_async::Error> {
    for host in hosts {
        conn.exec_drop(
            "DELETE FROM `watchkeeper`.`rotator_clones` WHERE `user` = ? AND `host` = ?",
            (clone, host),
        )
        .await?;
    }
    Ok(())
}

/// True when every host entry of `clone` (`hosts`, not empty) is marked as a clone of `original`.
pub async fn is_clone_of(
    conn: &mut Conn,
    admin: &Credentials,
    clone: &str,
    original: &str,
    hosts: &[String],
) -> Result<bool, DbError> {
    let marked: Vec<String> = match conn
        .exec(
            "SELECT `host` FROM `watchkeeper`.`rotator_clones` WHERE `user` = ? AND `clone_of` = ?",
            (clone, original),
        )
        .await
    {
        Ok(marked) => marked,
        Err(mysql_async::Error::Server(e)) if ABSENT.contains(&e.code) => return Ok(false),
        Err(e) => return Err(classify(admin, &e)),
    };
    Ok(!hosts.is_empty() && hosts.iter().all(|h| marked.contains(h)))
}
