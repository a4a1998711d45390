//! The export task identifier of a snapshot: derived from the snapshot's ARN alone, so every
//! path that exports a snapshot (its event, a retry, the weekly run) asks RDS for the same task,
//! and RDS's `ExportTaskAlreadyExists` is the last word on "already done".
//!
//! RDS accepts 1 to 60 characters, a letter first, then letters, digits and hyphens, never two
//! hyphens in a row, never a hyphen at the end. The readable part is the snapshot's name, cleaned
//! and cut; a hash of the whole ARN always follows it, because different snapshots can share a
//! cleaned name: an automated `rds:db-2026-11-22` and a manual `rds-db-2026-11-22`, an instance
//! snapshot and a cluster snapshot of the same name, the same name in two regions. Cutting the
//! name before the hash is where the AWS sample pipeline went wrong (a cut could end on a hyphen,
//! and its `-` separator then made a double hyphen RDS refuses); here the cut is trimmed.

use sha2::{Digest, Sha256};

/// RDS's limit on an export task identifier.
pub const MAX_LEN: usize = 60;
/// Hex digits of the ARN's SHA-256 that end every identifier (40 bits).
const HASH_DIGITS: usize = 10;

/// Exports of one snapshot this function starts at most: the first, and retries after a FAILED or
/// CANCELED task (the role, key or bucket fixed meanwhile).
pub const MAX_ATTEMPTS: u32 = 3;

/// The export task identifier for the snapshot with this ARN (its first attempt).
pub fn export_identifier(snapshot_arn: &str) -> String {
    identifier(snapshot_arn, snapshot_arn)
}

/// The identifier of attempt `attempt` (from 1) to export the snapshot: the first is
/// [`export_identifier`]; a retry keeps the readable name and hashes the ARN with its attempt
/// number, so every path names the same task for the same attempt, within RDS's 60 characters.
pub fn attempt_identifier(snapshot_arn: &str, attempt: u32) -> String {
    if attempt <= 1 {
        export_identifier(snapshot_arn)
    } else {
        identifier(snapshot_arn, &format!("{snapshot_arn}#attempt-{attempt}"))
    }
}

/// Which of this function's attempts to export the snapshot `snapshot_arn` the task `id` is;
/// `None` for a task this function did not start (by hand, another tool).
pub fn attempt_of(snapshot_arn: &str, id: &str) -> Option<u32> {
    (1..=MAX_ATTEMPTS).find(|attempt| attempt_identifier(snapshot_arn, *attempt) == id)
}

/// The readable name of `snapshot_arn` and the hash of `hashed`.
fn identifier(snapshot_arn: &str, hashed: &str) -> String {
    let name = snapshot_name(snapshot_arn);
    let mut readable = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        // No runs of hyphens, none at the start.
        if c == '-' && (readable.is_empty() || readable.ends_with('-')) {
            continue;
        }
        readable.push(c);
    }
    if !readable.starts_with(|c: char| c.is_ascii_alphabetic()) {
        readable.insert_str(0, "s-");
    }
    // Room for `-` and the hash; the cut may leave a hyphen at the end, so trim after cutting.
    readable.truncate(MAX_LEN - HASH_DIGITS - 1);
    let readable = readable.trim_end_matches('-');
    let digest = Sha256::digest(hashed.as_bytes());
    let hash: String = digest
        .iter()
        .take(HASH_DIGITS / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{readable}-{hash}")
}

/// The snapshot's name from its ARN (`...:snapshot:rds:db-2026-11-22-03-10` gives
/// `rds:db-2026-11-22-03-10`), or the whole text when it is not shaped like one.
fn snapshot_name(arn: &str) -> &str {
    for marker in [":cluster-snapshot:", ":snapshot:"] {
        if let Some(at) = arn.find(marker) {
            return &arn[at + marker.len()..];
        }
    }
    arn
}

/// Whether RDS accepts `id` as an export task identifier.
pub fn is_valid(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && !id.contains("--")
        && !id.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn readable_and_stable() {
        let arn = "arn:aws:rds:us-east-1:123456789012:snapshot:rds:des-db-2026-11-22-03-10";
        let id = export_identifier(arn);
        assert!(id.starts_with("rds-des-db-2026-11-22-03-10-"), "{id}");
        assert_eq!(id, export_identifier(arn));
        assert!(is_valid(&id));
    }

    #[test]
    fn attempts_have_their_own_valid_identifiers_and_are_recognised() {
        let arn = "arn:aws:rds:us-east-1:123456789012:snapshot:rds:des-db-2026-11-22-03-10";
        let ids: Vec<String> = (1..=MAX_ATTEMPTS)
            .map(|a| attempt_identifier(arn, a))
            .collect();
        assert_eq!(
            ids[0],
            export_identifier(arn),
            "the first attempt's name never changed"
        );
        for (i, id) in ids.iter().enumerate() {
            assert!(is_valid(id), "{id}");
            assert!(id.starts_with("rds-des-db-2026-11-22-03-10-"), "{id}");
            assert_eq!(attempt_of(arn, id), Some(i as u32 + 1));
        }
        assert_ne!(ids[1], ids[2]);
        assert_eq!(attempt_of(arn, "by-hand-export"), None);
        let other = "arn:aws:rds:us-east-1:123456789012:snapshot:rds:des-db-2026-11-23-03-10";
        assert_eq!(
            attempt_of(other, &ids[1]),
            None,
            "another snapshot's retry is not ours"
        );
    }

    #[test]
    fn look_alike_snapshots_stay_apart() {
        let ids = [
            "arn:aws:rds:us-east-1:1:snapshot:rds:db-1",
            "arn:aws:rds:us-east-1:1:snapshot:rds-db-1",
            "arn:aws:rds:us-east-1:1:cluster-snapshot:rds:db-1",
            "arn:aws:rds:eu-west-1:1:snapshot:rds:db-1",
        ]
        .map(export_identifier);
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn a_cut_never_ends_in_a_hyphen() {
        // The name is cut at 49 characters, right after a hyphen.
        let name = format!("{}-{}", "a".repeat(48), "b".repeat(30));
        let id = export_identifier(&format!("arn:aws:rds:us-east-1:1:snapshot:{name}"));
        assert!(is_valid(&id), "{id}");
        assert_eq!(id.len(), 48 + 1 + HASH_DIGITS);
        for odd in [
            "",
            "-",
            "---",
            "9",
            "::",
            "ü",
            "rds:",
            "arn:aws:rds:x:1:snapshot:",
        ] {
            assert!(is_valid(&export_identifier(odd)), "{odd:?}");
        }
    }

    proptest! {
        #[test]
        fn any_arn_gives_a_valid_identifier(name in "\\PC{0,300}", hyphens in "[-:_ ]{0,80}") {
            for arn in [
                format!("arn:aws:rds:us-east-1:123456789012:snapshot:{name}"),
                format!("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:{hyphens}{name}{hyphens}"),
                name.clone(),
            ] {
                let id = export_identifier(&arn);
                prop_assert!(is_valid(&id), "{arn:?} -> {id:?}");
            }
        }
    }

    #[test]
    fn distinct_snapshots_never_collide_in_a_large_sample() {
        let mut seen = HashMap::new();
        let long = "x".repeat(80);
        for i in 0..50_000u32 {
            // Names that differ only past the cut, or only in punctuation.
            for arn in [
                format!("arn:aws:rds:us-east-1:1:snapshot:{long}-{i}"),
                format!("arn:aws:rds:us-east-1:1:snapshot:db-{i}"),
                format!("arn:aws:rds:us-east-1:1:snapshot:db:{i}"),
            ] {
                let id = export_identifier(&arn);
                if let Some(other) = seen.insert(id.clone(), arn.clone()) {
                    panic!("{arn} and {other} both gave {id}");
                }
            }
        }
    }
}
