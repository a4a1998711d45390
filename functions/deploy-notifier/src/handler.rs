//! Turns one invocation into notifications: classify, interpret, dedupe, send, answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::notify::{Delivery, Notification, Notify, Severity};
use watchkeeper_shared::runtime::Invocation;
use watchkeeper_shared::secret::{SecretSource, SecretsManagerSource};
use watchkeeper_shared::state::Store;
use watchkeeper_shared::telemetry::Metrics;

use crate::alerts::{self, Read};
use crate::ci::signing_key::SigningKeys;
use crate::config::Config;
use crate::deployments::Deployments;
use crate::ecs::render::{self, env_prefix};
use crate::ecs::{self, DeploymentChange, DeploymentStatus, EcsEvent, Interpreted};
use crate::error::DeployError;
use crate::event::{Envelope, EventKind, SnsRecord, classify, envelope};

/// The `source` attribute of every Watchkeeper notification: the functions' names.
const WATCHKEEPER_SOURCES: [&str; 5] = [
    "deploy-notifier",
    "secret-rotator",
    "snapshot-exporter",
    "budget-alerter",
    "health-sweeper",
];

pub struct App<N, S, K = SecretsManagerSource> {
    pub(crate) config: Config,
    pub(crate) notifier: N,
    pub(crate) state: S,
    /// The HMAC keys for CI requests (with `CI_AUTH=hmac`).
    pub(crate) signing_keys: Option<SigningKeys<K>>,
}

impl<N: Notify, S: Store, K: SecretSource> App<N, S, K> {
    pub fn new(
        config: Config,
        notifier: N,
        state: S,
        signing_keys: Option<SigningKeys<K>>,
    ) -> Self {
        Self {
            config,
            notifier,
            state,
            signing_keys,
        }
    }

    /// Handles one invocation. Errors are for Lambda to retry or dead-letter; a Function URL
    /// request always gets an HTTP answer instead. One EMF line counts what happened.
    pub async fn handle(
        &self,
        payload: Value,
        invocation: &Invocation,
    ) -> Result<Value, DeployError> {
        let result = self.dispatch(payload, invocation).await;
        metrics(&result).emit();
        result
    }

    async fn dispatch(
        &self,
        payload: Value,
        invocation: &Invocation,
    ) -> Result<Value, DeployError> {
        let (now, deadline) = (invocation.now, &invocation.deadline);
        match classify(payload)? {
            EventKind::FunctionUrl(request) => {
                Ok(self.handle_url(&request, now.timestamp(), deadline).await)
            }
            EventKind::EventBridge(event) => self.handle_event(&event, None, now, deadline).await,
            EventKind::Sns(records) => self.handle_sns(&records, now, deadline).await,
            EventKind::Unknown(object) => self.handle_unknown(&object, deadline).await,
        }
    }

    async fn handle_sns(
        &self,
        records: &[SnsRecord],
        now: DateTime<Utc>,
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        let mut results = Vec::new();
        // Every record is tried; the first failure is returned so Lambda retries the batch, and
        // dedupe keeps the records that did go out from going out twice.
        let mut first_error = None;
        for record in records {
            // A Watchkeeper notification (this function's own, or another function's alert) on a
            // topic this function is subscribed to: told already, and telling it again would
            // publish it again, to the same topic when it is this function's own, in a loop.
            if let Some(source) = record.source_attribute.as_deref()
                && WATCHKEEPER_SOURCES.contains(&source)
            {
                tracing::warn!(message_id = %record.message_id, topic = %record.topic_arn, source,
                    "a Watchkeeper notification reached deploy-notifier: its notify topic must not be one it is subscribed to");
                results.push(json!({"outcome": Outcome::Ignored, "message": record.message_id,
                    "reason": "a Watchkeeper notification (the notify topic is subscribed to this function)"}));
                continue;
            }
            // When SNS accepted the message: a time no publisher can set.
            let received = record.sent_at(now);
            let outcome = match serde_json::from_str::<Value>(&record.message) {
                Ok(inner @ Value::Object(_)) if inner.get("detail-type").is_some() => {
                    match envelope(&inner) {
                        Ok(event) => {
                            self.handle_event(&event, Some(received), now, deadline)
                                .await
                        }
                        Err(e) => Err(e),
                    }
                }
                Ok(inner @ Value::Object(_)) => match alerts::read_sns_message(&inner) {
                    Some(Read::Alert(alert)) => {
                        let key = format!("sns/{}", record.message_id);
                        self.handle_alert(*alert, &key, received, deadline).await
                    }
                    Some(Read::Unreadable { kind, why }) => {
                        let note = format!("It looks like a {kind} but could not be read: {why}.");
                        self.handle_sns_text(record, Some(&note), deadline).await
                    }
                    Some(Read::Ignored(reason)) => Ok(json!({"outcome": Outcome::Ignored,
                        "message": record.message_id, "reason": reason})),
                    None => self.handle_sns_text(record, None, deadline).await,
                },
                _ => self.handle_sns_text(record, None, deadline).await,
            };
            match outcome {
                Ok(result) => results.push(result),
                Err(e) => {
                    tracing::error!(message_id = %record.message_id, error = %e, retryable = e.is_retryable(), "SNS record failed");
                    results.push(json!({"outcome": Outcome::Failed, "error": e.to_string()}));
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(json!({"records": results})),
        }
    }

    /// One EventBridge event, directly or from an SNS record that SNS accepted at `received`.
    async fn handle_event(
        &self,
        event: &Envelope,
        received: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        let env = self.config.environment.as_deref();
        let event_key = format!("event/{}", event.id);
        // The schedule that tells the state each flapping alarm settled in.
        if event.source == "aws.events" && event.detail_type == "Scheduled Event" {
            return self.settle_folds(now, deadline).await;
        }
        // EventBridge sets an event's `time`; an AWS source cannot be put by anyone else.
        let received = received
            .or_else(|| alerts::parse_time(&event.time))
            .unwrap_or(now);
        match alerts::read_event(event) {
            Some(Read::Alert(alert)) => {
                return self
                    .handle_alert(*alert, &event_key, received, deadline)
                    .await;
            }
            Some(Read::Ignored(reason)) => {
                return Ok(
                    json!({"outcome": Outcome::Ignored, "event": event.id, "reason": reason}),
                );
            }
            Some(Read::Unreadable { kind, why }) => {
                let note = format!("It looks like a {kind} but could not be read: {why}.");
                let notification = generic_event_notice(event, env, Some(&note));
                return self.send(&event_key, &notification, deadline).await;
            }
            None => {}
        }
        let notification = match ecs::interpret(event)? {
            Interpreted::Ignored(reason) => {
                tracing::debug!(event_id = %event.id, detail_type = %event.detail_type, reason, "ignored");
                return Ok(
                    json!({"outcome": Outcome::Ignored, "event": event.id, "reason": reason}),
                );
            }
            Interpreted::Unknown => generic_event_notice(event, env, None),
            Interpreted::Ecs(EcsEvent::ServiceAction(action)) => {
                render::service_action_notification(&action, env, &event.id)
            }
            Interpreted::Ecs(EcsEvent::TaskStopped(task)) => {
                let notification = render::task_stopped_notification(&task, env, &event.id);
                let key = task
                    .storm_key()
                    .unwrap_or_else(|| format!("event/{}", event.id));
                return self.send(&key, &notification, deadline).await;
            }
            Interpreted::Ecs(EcsEvent::Deployment(change)) => {
                return self.handle_deployment(event, &change, deadline).await;
            }
        };
        self.send(&event_key, &notification, deadline).await
    }

    /// A deployment's start is remembered (for its duration and whether it is a rollback), its
    /// end marked (so a late start is not announced after it). None of that can block a
    /// notification: see [`Deployments`].
    async fn handle_deployment(
        &self,
        event: &Envelope,
        change: &DeploymentChange,
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        let deployments = Deployments::new(&self.state, deadline);
        let id = change.deployment_id.as_deref();
        let start = match (change.status, id) {
            (DeploymentStatus::InProgress, Some(id)) => {
                // A start no later than the recorded end is a late delivery of this deployment's
                // own start (a retry, or out of order): announcing it now would say "started"
                // after "completed".
                if let Some(ended) = deployments.ended_at(id).await
                    && change.updated_at.is_none_or(|at| at <= ended)
                {
                    return Ok(json!({"outcome": Outcome::Ignored, "event": event.id,
                            "reason": "IN_PROGRESS delivered after the deployment ended"}));
                }
                let at = change.updated_at.unwrap_or_else(Utc::now);
                // The record says whether this is a rollback when its own reason does not (the
                // FAILED event before it named this deployment as its rollback target).
                deployments
                    .remember_start(id, at, change.is_rollback())
                    .await
            }
            (DeploymentStatus::InProgress, None) => None,
            (_, Some(id)) => {
                // A start after this end, or from another rollout long before it, is not this
                // rollout's: without it the end says "unknown" rather than guess.
                let end_at = change.updated_at.unwrap_or_else(Utc::now);
                let start = deployments
                    .start_of(id)
                    .await
                    .filter(|s| s.at <= end_at && end_at - s.at < crate::deployments::SAME_ROLLOUT);
                let at = change.updated_at.unwrap_or_else(Utc::now);
                deployments.mark_ended(id, at, change.status.as_str()).await;
                start
            }
            (_, None) => None,
        };
        // The deployment ECS rolls back to is deployed again, as a rollback: its end must say so.
        // Only a FAILED event names one (an SNS copy could be forged by a principal of the
        // account; it can at worst label one deployment's end a rollback).
        if change.status == DeploymentStatus::Failed
            && let Some(target) = change.rollback_target()
        {
            let at = change.updated_at.unwrap_or_else(Utc::now);
            deployments.mark_rollback_target(&target, at).await;
        }
        let rollback = change.is_rollback() || start.is_some_and(|s| s.rollback);
        if change.status == DeploymentStatus::InProgress
            && !self.config.notify_in_progress
            && !rollback
        {
            return Ok(json!({"outcome": Outcome::Recorded, "event": event.id, "deployment": id}));
        }
        let env = self.config.environment.as_deref();
        let notification = render::deployment_notification(change, start, env, &event.id);
        let answer = self
            .send(&format!("event/{}", event.id), &notification, deadline)
            .await?;
        if let (Some(id), true) = (id, change.status != DeploymentStatus::InProgress) {
            deployments.forget_start(id).await;
        }
        Ok(answer)
    }

    async fn handle_sns_text(
        &self,
        record: &SnsRecord,
        note: Option<&str>,
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        let topic = record
            .topic_arn
            .rsplit(':')
            .next()
            .unwrap_or("")
            .to_string();
        let subject = format!(
            "{}SNS message on {topic}: {}",
            env_prefix(self.config.environment.as_deref()),
            record.subject.as_deref().unwrap_or("(no subject)")
        );
        let text = format!(
            "A message on {} that is not an event this function reads was forwarded as is.{}\n\nMessage id: {}\n\n{}",
            record.topic_arn,
            note.map(|n| format!(" {n}")).unwrap_or_default(),
            record.message_id,
            record.message.chars().take(4000).collect::<String>()
        );
        let n =
            Notification::new(crate::NAME, Severity::Warning, subject, text).with_resource(topic);
        self.send(&format!("sns/{}", record.message_id), &n, deadline)
            .await
    }

    async fn handle_unknown(
        &self,
        object: &Map<String, Value>,
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        let keys: Vec<&str> = object.keys().map(String::as_str).take(20).collect();
        let payload = serde_json::to_vec(object).unwrap_or_default();
        let id = hex::encode(Sha256::digest(&payload));
        let text = format!(
            "An invocation of unknown shape reached the deploy notifier. It is reported rather than dropped.\n\n\
             Top-level keys: {}\nPayload digest: {id}\n\nCheck the EventBridge rules and SNS subscriptions that target this function.",
            keys.join(", ")
        );
        let subject = format!(
            "{}Unrecognised event reached deploy-notifier",
            env_prefix(self.config.environment.as_deref())
        );
        let n = Notification::new(crate::NAME, Severity::Warning, subject, text);
        let short: String = id.chars().take(32).collect();
        self.send(&format!("unknown/{short}"), &n, deadline).await
    }

    /// The one place an event's notification is sent.
    async fn send(
        &self,
        key: &str,
        notification: &Notification,
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        let delivery = self.notifier.send_once(key, notification, deadline).await?;
        Ok(outcome(key, notification, &delivery))
    }
}

/// `Notified`, `Duplicates`, `Ignored`, `CiAccepted`, `CiRejected`, `CiFailed` and `Failures`, for
/// a graph of what the notifier does and alarms on failures. A CI report answered 5xx (a channel
/// or the state store failed, the signing key unreadable) is `CiFailed`: the invocation itself
/// succeeds (the Function URL must answer), so without its own count and alarm a failed
/// `terraform apply`'s report would be lost silently. 4xx (forged, stale, malformed) is
/// `CiRejected`.
fn metrics(result: &Result<Value, DeployError>) -> Metrics {
    let mut metrics = Metrics::for_function(crate::NAME);
    match result {
        Err(_) => metrics.count("Failures", 1),
        Ok(answer) => {
            if let Some(status) = answer.get("statusCode").and_then(Value::as_u64) {
                metrics.count(
                    match status {
                        202 => "CiAccepted",
                        500.. => "CiFailed",
                        _ => "CiRejected",
                    },
                    1,
                );
            }
            let records = answer
                .get("records")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_else(|| vec![answer.clone()]);
            for record in records {
                let outcome = record
                    .get("outcome")
                    .and_then(|o| Outcome::deserialize(o).ok());
                if let Some(metric) = outcome.and_then(Outcome::metric) {
                    metrics.count(metric, 1);
                }
            }
        }
    }
    metrics
}

/// An event told as what it is not known to be: its type, source and fields. `note` says why
/// when it is of a known kind that could not be read.
fn generic_event_notice(event: &Envelope, env: Option<&str>, note: Option<&str>) -> Notification {
    let detail_keys: Vec<&str> = event
        .detail
        .as_object()
        .map(|d| d.keys().map(String::as_str).take(20).collect())
        .unwrap_or_default();
    let subject = format!(
        "{}{} from {}",
        env_prefix(env),
        event.detail_type,
        event.source
    );
    let text = format!(
        "An event this function does not interpret was received; it is reported rather than dropped.{}\n\n\
         Type:      {}\nSource:    {}\nEvent id:  {}\nTime:      {}\nAccount:   {}\nRegion:    {}\nResources: {}\nDetail fields: {}",
        note.map(|n| format!(" {n}")).unwrap_or_default(),
        event.detail_type,
        event.source,
        event.id,
        event.time,
        event.account,
        event.region,
        if event.resources.is_empty() {
            "(none)".to_string()
        } else {
            event.resources.join(", ")
        },
        detail_keys.join(", ")
    );
    Notification::new(crate::NAME, Severity::Warning, subject, text)
        .with_resource(event.source.clone())
        .with_attribute("detail_type", event.detail_type.clone())
}

/// What became of one event: the `outcome` of its answer, and what it counts toward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    /// Sent on at least one channel.
    Notified,
    /// Every channel had sent it already.
    Duplicate,
    /// Not worth a message (steady state, a scale-in, a late start).
    Ignored,
    /// Remembered for a later message (a deployment's start), not told.
    Recorded,
    /// One SNS record of several failed (the invocation fails as a whole).
    Failed,
}

impl Outcome {
    /// The metric an outcome counts toward (a failure is counted once for the invocation).
    fn metric(self) -> Option<&'static str> {
        match self {
            Outcome::Notified => Some("Notified"),
            Outcome::Duplicate => Some("Duplicates"),
            Outcome::Ignored | Outcome::Recorded => Some("Ignored"),
            Outcome::Failed => None,
        }
    }
}

fn outcome(key: &str, n: &Notification, delivery: &Delivery) -> Value {
    let outcome = if delivery.sent.is_empty() {
        Outcome::Duplicate
    } else {
        Outcome::Notified
    };
    json!({"outcome": outcome, "key": key, "subject": n.subject_line(), "severity": n.severity, "sent": delivery.sent, "already_sent": delivery.already_sent})
}

mod alerts_handler;
#[cfg(test)]
mod tests;
