//! Fakes of the shared ports, for unit tests of domain logic (feature `testing`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::deadline::Deadline;
use crate::notify::{ChannelError, Delivery, Notification, Notify, NotifyError};
use crate::state::{Claim, ClaimRecord, StateError, Store, Versioned, validate_key};

/// Records what would have been sent, once per key like the real notifier. `fail_next` makes the
/// next send fail (retryably), to test that callers surface and retry failures.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    pub sent: Mutex<Vec<(String, Notification)>>,
    keys: Mutex<HashSet<String>>,
    fail_next: Mutex<bool>,
}

impl RecordingNotifier {
    pub fn fail_next(&self) {
        *self.fail_next.lock().unwrap() = true;
    }

    pub fn notifications(&self) -> Vec<Notification> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(_, n)| n.clone())
            .collect()
    }
}

impl Notify for RecordingNotifier {
    async fn send_once(
        &self,
        key: &str,
        notification: &Notification,
        _deadline: &Deadline,
    ) -> Result<Delivery, NotifyError> {
        if std::mem::take(&mut *self.fail_next.lock().unwrap()) {
            return Err(ChannelError {
                channel: "test",
                message: "injected failure".into(),
                retryable: true,
            }
            .into());
        }
        if !self.keys.lock().unwrap().insert(key.to_string()) {
            return Ok(Delivery {
                sent: vec![],
                already_sent: vec!["test"],
            });
        }
        self.sent
            .lock()
            .unwrap()
            .push((key.to_string(), notification.clone()));
        Ok(Delivery {
            sent: vec!["test"],
            already_sent: vec![],
        })
    }
}

/// An in-memory [`Store`] with the S3 store's semantics: claims once, with the same leases (a
/// pending claim is in flight until its holder's deadline plus the margin, then taken over),
/// ETags that change on every write, conflicts on stale ETags.
#[derive(Debug, Default)]
pub struct MemoryStore {
    claims: Mutex<HashMap<String, ClaimRecord>>,
    docs: Mutex<HashMap<String, (String, Vec<u8>)>>,
    writes: Mutex<u64>,
}

impl MemoryStore {
    fn next_etag(&self) -> String {
        let mut writes = self.writes.lock().unwrap();
        *writes += 1;
        format!("\"{writes}\"")
    }

    /// Whether a claim on `key` is held (pending or done).
    pub fn is_claimed(&self, key: &str) -> bool {
        self.claims.lock().unwrap().contains_key(key)
    }
}

impl Store for MemoryStore {
    async fn claim(&self, key: &str, holder: &Deadline) -> Result<Claim, StateError> {
        validate_key(key)?;
        let mut claims = self.claims.lock().unwrap();
        if let Some(status) = claims.get(key).and_then(|c| c.status(chrono::Utc::now())) {
            return Ok(status);
        }
        claims.insert(key.to_string(), ClaimRecord::pending(holder));
        Ok(Claim::Claimed)
    }

    async fn complete(&self, key: &str) -> Result<(), StateError> {
        validate_key(key)?;
        self.claims
            .lock()
            .unwrap()
            .insert(key.to_string(), ClaimRecord::done());
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StateError> {
        validate_key(key)?;
        self.claims.lock().unwrap().remove(key);
        Ok(())
    }

    async fn load<T: DeserializeOwned + Send>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, StateError> {
        validate_key(key)?;
        let docs = self.docs.lock().unwrap();
        let Some((etag, bytes)) = docs.get(key) else {
            return Ok(None);
        };
        let value = serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some(Versioned {
            value,
            etag: etag.clone(),
        }))
    }

    async fn create<T: Serialize + Sync>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<String, StateError> {
        validate_key(key)?;
        let bytes = serde_json::to_vec(value).map_err(|e| StateError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        let etag = self.next_etag();
        let mut docs = self.docs.lock().unwrap();
        if docs.contains_key(key) {
            return Err(StateError::Conflict {
                key: key.to_string(),
            });
        }
        docs.insert(key.to_string(), (etag.clone(), bytes));
        Ok(etag)
    }

    async fn update<T: Serialize + Sync>(
        &self,
        key: &str,
        etag: &str,
        value: &T,
    ) -> Result<String, StateError> {
        validate_key(key)?;
        let bytes = serde_json::to_vec(value).map_err(|e| StateError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        let new_etag = self.next_etag();
        let mut docs = self.docs.lock().unwrap();
        match docs.get(key) {
            Some((current, _)) if current == etag => {
                docs.insert(key.to_string(), (new_etag.clone(), bytes));
                Ok(new_etag)
            }
            _ => Err(StateError::Conflict {
                key: key.to_string(),
            }),
        }
    }
}
