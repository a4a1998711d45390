//! Fakes of the shared ports, for unit tests of domain logic (feature `testing`).

use std::collections::HashSet;
use std::sync::Mutex;

use crate::notify::{ChannelError, Delivery, Notification, NotifyError, Notify};

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
        self.sent.lock().unwrap().iter().map(|(_, n)| n.clone()).collect()
    }
}

impl Notify for RecordingNotifier {
    async fn send_once(&self, key: &str, notification: &Notification) -> Result<Delivery, NotifyError> {
        if std::mem::take(&mut *self.fail_next.lock().unwrap()) {
            return Err(ChannelError { channel: "test", message: "injected failure".into(), retryable: true }.into());
        }
        if !self.keys.lock().unwrap().insert(key.to_string()) {
            return Ok(Delivery { sent: vec![], already_sent: vec!["test"] });
        }
        self.sent.lock().unwrap().push((key.to_string(), notification.clone()));
        Ok(Delivery { sent: vec!["test"], already_sent: vec![] })
    }
}
