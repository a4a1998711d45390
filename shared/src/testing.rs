//! Fakes of the shared ports, for unit tests of domain logic (feature `testing`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::deadline::Deadline;
use crate::error::AwsError;
use crate::notify::{ChannelError, Delivery, Notification, Notify, NotifyError};
use crate::secret::{Secret, SecretSource};
use crate::state::{
    CLAIM_LEASE_MARGIN, Claim, ClaimRecord, StateError, Store, Versioned, validate_key,
};

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

/// An in-memory [`Store`] with the S3 store's semantics: a claim is won once; a pending claim is
/// in flight until its holder's deadline plus the margin, and may be taken over after; a done
/// claim is done for good; ETags change on every write and a stale one is a conflict. What it lacks: S3's
/// consistency and latency (every call is atomic and instant) and its 403/404 distinctions, except
/// the failures a test injects with [`MemoryStore::deny_documents`] and
/// [`MemoryStore::fail_releases`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    claims: Mutex<HashMap<String, ClaimRecord>>,
    docs: Mutex<HashMap<String, (String, Vec<u8>)>>,
    writes: Mutex<u64>,
    deny_documents: Mutex<bool>,
    hang_documents: Mutex<bool>,
    fail_releases: Mutex<bool>,
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

    /// Whether a claim on `key` is done.
    pub fn is_done(&self, key: &str) -> bool {
        self.claims
            .lock()
            .unwrap()
            .get(key)
            .and_then(|c| c.status(Utc::now()))
            == Some(Claim::Done)
    }

    /// Every document call fails from now on the way S3 does without `s3:ListBucket` for a
    /// missing key, or without any permission: 403 AccessDenied. Claims keep working.
    pub fn deny_documents(&self) {
        *self.deny_documents.lock().unwrap() = true;
    }

    /// Every document call hangs from now on (an hour, as a degraded S3 with the SDK's retries
    /// may take far longer than an invocation has). Claims keep working.
    pub fn hang_documents(&self) {
        *self.hang_documents.lock().unwrap() = true;
    }

    /// Every `release` fails from now on (retryably, as a 503 would).
    pub fn fail_releases(&self) {
        *self.fail_releases.lock().unwrap() = true;
    }

    /// Ends every pending claim's lease now, as if its holder's time had run out.
    pub fn expire_leases(&self) {
        let margin = chrono::Duration::from_std(CLAIM_LEASE_MARGIN).unwrap_or_default();
        let gone = Deadline::at(Utc::now() - margin - chrono::Duration::seconds(1));
        for record in self.claims.lock().unwrap().values_mut() {
            if matches!(record.status(Utc::now()), Some(Claim::InFlight { .. })) {
                *record = ClaimRecord::pending(&gone);
            }
        }
    }

    async fn check_documents(&self, key: &str) -> Result<(), StateError> {
        validate_key(key)?;
        let hang = *self.hang_documents.lock().unwrap();
        if hang {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
        if *self.deny_documents.lock().unwrap() {
            return Err(injected(key, "s3:GetObject", "AccessDenied", 403, false));
        }
        Ok(())
    }
}

/// An AWS error as a fake port answers it: `code` and `status` as the service would send them.
pub fn injected_error(
    operation: &'static str,
    code: &str,
    status: u16,
    retryable: bool,
) -> AwsError {
    AwsError {
        operation,
        code: code.into(),
        message: "injected by the test".into(),
        status: Some(status),
        retryable,
    }
}

fn injected(
    key: &str,
    operation: &'static str,
    code: &str,
    status: u16,
    retryable: bool,
) -> StateError {
    StateError::Aws {
        key: key.to_string(),
        source: injected_error(operation, code, status, retryable),
    }
}

impl Store for MemoryStore {
    async fn claim(&self, key: &str, holder: &Deadline) -> Result<Claim, StateError> {
        validate_key(key)?;
        let mut claims = self.claims.lock().unwrap();
        if let Some(status) = claims.get(key).and_then(|c| c.status(Utc::now())) {
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
        if *self.fail_releases.lock().unwrap() {
            return Err(injected(
                key,
                "s3:DeleteObject",
                "ServiceUnavailable",
                503,
                true,
            ));
        }
        self.claims.lock().unwrap().remove(key);
        Ok(())
    }

    async fn load<T: DeserializeOwned + Send>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, StateError> {
        self.check_documents(key).await?;
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
        self.check_documents(key).await?;
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

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        self.check_documents(key).await?;
        self.docs.lock().unwrap().remove(key);
        Ok(())
    }

    async fn update<T: Serialize + Sync>(
        &self,
        key: &str,
        etag: &str,
        value: &T,
    ) -> Result<String, StateError> {
        self.check_documents(key).await?;
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

/// Secret versions in memory, by secret id and staging label; counts reads. Clones share them.
#[derive(Debug, Clone, Default)]
pub struct StaticSecrets {
    values: Arc<Mutex<HashMap<(String, String), String>>>,
    reads: Arc<AtomicUsize>,
    unavailable: Arc<Mutex<bool>>,
}

impl StaticSecrets {
    /// Sets the value of `stage` (a rotation moves AWSCURRENT and AWSPREVIOUS with two calls).
    pub fn put(&self, secret_id: &str, stage: &str, value: &str) {
        self.values.lock().unwrap().insert(
            (secret_id.to_string(), stage.to_string()),
            value.to_string(),
        );
    }

    /// How many values were read so far.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// Every read fails retryably (throttled) while set.
    pub fn set_unavailable(&self, unavailable: bool) {
        *self.unavailable.lock().unwrap() = unavailable;
    }
}

impl SecretSource for StaticSecrets {
    async fn value(
        &self,
        secret_id: &str,
        stage: &str,
    ) -> Result<Option<Secret<String>>, AwsError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if *self.unavailable.lock().unwrap() {
            return Err(injected_error(
                "secretsmanager:GetSecretValue",
                "ThrottlingException",
                400,
                true,
            ));
        }
        Ok(self
            .values
            .lock()
            .unwrap()
            .get(&(secret_id.to_string(), stage.to_string()))
            .map(|v| Secret::new(v.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_claims_have_the_lease_semantics_of_s3() {
        let store = MemoryStore::default();
        let holder = Deadline::after(std::time::Duration::from_secs(60));
        assert_eq!(store.claim("k", &holder).await.unwrap(), Claim::Claimed);
        assert!(matches!(
            store.claim("k", &holder).await.unwrap(),
            Claim::InFlight { until } if until > holder.at_utc()
        ));
        store.expire_leases();
        assert_eq!(
            store.claim("k", &holder).await.unwrap(),
            Claim::Claimed,
            "an expired lease is taken over"
        );
        store.complete("k").await.unwrap();
        store.expire_leases();
        assert_eq!(
            store.claim("k", &holder).await.unwrap(),
            Claim::Done,
            "done is done for good"
        );
        assert!(store.is_done("k"));
        store.release("other").await.unwrap();
        store.deny_documents();
        assert!(store.load::<u32>("doc").await.is_err());
    }
}
