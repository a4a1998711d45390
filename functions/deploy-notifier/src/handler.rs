//! Turns one invocation into notifications: classify, interpret, dedupe, send, answer.

use chrono::Utc;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::notify::{Delivery, Notification, Notify, Severity};
use watchkeeper_shared::secret::{SecretSource, SecretsManagerSource};
use watchkeeper_shared::state::Store;
use watchkeeper_shared::telemetry::Metrics;

use crate::config::Config;
use crate::deployments::Deployments;
use crate::ecs::{self, DeploymentChange, DeploymentStatus, EcsEvent, Interpreted, SOURCE};
use crate::ecs_render::{self, env_prefix};
use crate::error::DeployError;
use crate::event::{Envelope, Invocation, SnsRecord, classify, envelope};
use crate::signing_key::SigningKeys;

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
    pub async fn handle(&self, payload: Value, deadline: Deadline) -> Result<Value, DeployError> {
        let result = self.dispatch(payload, &deadline).await;
        metrics(&result).emit();
        result
    }

    async fn dispatch(&self, payload: Value, deadline: &Deadline) -> Result<Value, DeployError> {
        match classify(payload)? {
            Invocation::FunctionUrl(request) => Ok(self
                .handle_url(&request, Utc::now().timestamp(), deadline)
                .await),
            Invocation::EventBridge(event) => self.handle_event(&event, deadline).await,
            Invocation::Sns(records) => self.handle_sns(&records, deadline).await,
            Invocation::Unknown(object) => self.handle_unknown(&object, deadline).await,
        }
    }

    async fn handle_sns(
        &self,
        records: &[SnsRecord],
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        let mut results = Vec::new();
        // Every record is tried; the first failure is returned so Lambda retries the batch, and
        // dedupe keeps the records that did go out from going out twice.
        let mut first_error = None;
        for record in records {
            let outcome = match serde_json::from_str::<Value>(&record.message) {
                Ok(inner @ Value::Object(_)) if inner.get("detail-type").is_some() => {
                    match envelope(&inner) {
                        Ok(event) => self.handle_event(&event, deadline).await,
                        Err(e) => Err(e),
                    }
                }
                _ => self.handle_sns_text(record, deadline).await,
            };
            match outcome {
                Ok(result) => results.push(result),
                Err(e) => {
                    tracing::error!(message_id = %record.message_id, error = %e, retryable = e.is_retryable(), "SNS record failed");
                    results.push(json!({"outcome": "failed", "error": e.to_string()}));
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(json!({"records": results})),
        }
    }

    async fn handle_event(
        &self,
        event: &Envelope,
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        let env = self.config.environment.as_deref();
        let notification = match ecs::interpret(event)? {
            Interpreted::Ignored(reason) => {
                tracing::debug!(event_id = %event.id, detail_type = %event.detail_type, reason, "ignored");
                return Ok(json!({"outcome": "ignored", "event": event.id, "reason": reason}));
            }
            Interpreted::Unknown => generic_event_notice(event, env),
            Interpreted::Ecs(EcsEvent::ServiceAction(action)) => {
                ecs_render::service_action_notification(&action, env, &event.id)
            }
            Interpreted::Ecs(EcsEvent::TaskStopped(task)) => {
                ecs_render::task_stopped_notification(&task, env, &event.id)
            }
            Interpreted::Ecs(EcsEvent::Deployment(change)) => {
                return self.handle_deployment(event, &change, deadline).await;
            }
        };
        self.send(&format!("event/{}", event.id), &notification, deadline)
            .await
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
        let deployments = Deployments::new(&self.state);
        let id = change.deployment_id.as_deref();
        let start = match (change.status, id) {
            (DeploymentStatus::InProgress, Some(id)) => {
                // A start no later than the recorded end is a late delivery of this deployment's
                // own start (a retry, or out of order): announcing it now would say "started"
                // after "completed".
                if let Some(ended) = deployments.ended_at(id).await {
                    if change.updated_at.is_none_or(|at| at <= ended) {
                        return Ok(json!({"outcome": "ignored", "event": event.id,
                            "reason": "IN_PROGRESS delivered after the deployment ended"}));
                    }
                }
                let at = change.updated_at.unwrap_or_else(Utc::now);
                deployments
                    .remember_start(id, at, change.is_rollback())
                    .await;
                None
            }
            (DeploymentStatus::InProgress, None) => None,
            (_, Some(id)) => {
                let start = deployments.start_of(id).await;
                let at = change.updated_at.unwrap_or_else(Utc::now);
                deployments.mark_ended(id, at, change.status.as_str()).await;
                start
            }
            (_, None) => None,
        };
        if change.status == DeploymentStatus::InProgress
            && !self.config.notify_in_progress
            && !change.is_rollback()
        {
            return Ok(json!({"outcome": "recorded", "event": event.id, "deployment": id}));
        }
        let env = self.config.environment.as_deref();
        let notification = ecs_render::deployment_notification(change, start, env, &event.id);
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
            "A message on {} that is not an ECS event was forwarded as is.\n\nMessage id: {}\n\n{}",
            record.topic_arn,
            record.message_id,
            record.message.chars().take(4000).collect::<String>()
        );
        let n = Notification::new(SOURCE, Severity::Warning, subject, text).with_resource(topic);
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
        let n = Notification::new(SOURCE, Severity::Warning, subject, text);
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

/// `Notified`, `Duplicates`, `Ignored`, `CiAccepted`, `CiRejected` and `Failures`, for a graph of
/// what the notifier does and an alarm on failures.
fn metrics(result: &Result<Value, DeployError>) -> Metrics {
    let mut metrics = Metrics::for_function(SOURCE);
    match result {
        Err(_) => metrics.count("Failures", 1),
        Ok(answer) => {
            if let Some(status) = answer.get("statusCode").and_then(Value::as_u64) {
                metrics.count(
                    if status == 202 {
                        "CiAccepted"
                    } else {
                        "CiRejected"
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
                match record.get("outcome").and_then(Value::as_str) {
                    Some("notified") => metrics.count("Notified", 1),
                    Some("duplicate") => metrics.count("Duplicates", 1),
                    Some("ignored" | "recorded") => metrics.count("Ignored", 1),
                    _ => {}
                }
            }
        }
    }
    metrics
}

fn generic_event_notice(event: &Envelope, env: Option<&str>) -> Notification {
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
        "An event this function does not interpret was received; it is reported rather than dropped.\n\n\
         Type:      {}\nSource:    {}\nEvent id:  {}\nTime:      {}\nAccount:   {}\nRegion:    {}\nResources: {}\nDetail fields: {}",
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
    Notification::new(SOURCE, Severity::Warning, subject, text)
        .with_resource(event.source.clone())
        .with_attribute("detail_type", event.detail_type.clone())
}

fn outcome(key: &str, n: &Notification, delivery: &Delivery) -> Value {
    let outcome = if delivery.sent.is_empty() {
        "duplicate"
    } else {
        "notified"
    };
    json!({"outcome": outcome, "key": key, "subject": n.subject_line(), "severity": n.severity, "sent": delivery.sent, "already_sent": delivery.already_sent})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::function_url::respond;
    use crate::testing::{app, deployment, status, url};

    #[tokio::test]
    async fn deployment_duration_spans_in_progress_to_completed() {
        let app = app(false).await;
        let started = app
            .run(deployment(
                "e1",
                "SERVICE_DEPLOYMENT_IN_PROGRESS",
                "2026-11-20T12:00:00Z",
                "",
            ))
            .await
            .unwrap();
        assert_eq!(started["outcome"], "recorded");
        assert!(app.notifier.notifications().is_empty());
        app.run(deployment(
            "e2",
            "SERVICE_DEPLOYMENT_COMPLETED",
            "2026-11-20T12:04:12Z",
            "done",
        ))
        .await
        .unwrap();
        let sent = app.notifier.notifications();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].text.contains("4m 12s"), "{}", sent[0].text);
    }

    #[tokio::test]
    async fn rollback_in_progress_is_notified_even_when_starts_are_not() {
        let app = app(false).await;
        app.run(deployment(
            "e1",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "2026-11-20T12:00:00Z",
            "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/0",
        ))
        .await
        .unwrap();
        let sent = app.notifier.notifications();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].severity, Severity::Critical);
    }

    #[tokio::test]
    async fn the_completed_of_a_rollback_says_so() {
        let app = app(false).await;
        app.run(deployment(
            "e1",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "2026-11-20T12:00:00Z",
            "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/0",
        ))
        .await
        .unwrap();
        app.run(deployment(
            "e2",
            "SERVICE_DEPLOYMENT_COMPLETED",
            "2026-11-20T12:03:00Z",
            "ECS deployment ecs-svc/1 completed.",
        ))
        .await
        .unwrap();
        let sent = app.notifier.notifications();
        assert_eq!(sent.len(), 2);
        assert!(
            sent[1].subject.contains("ROLLBACK COMPLETED"),
            "{}",
            sent[1].subject
        );
        assert_eq!(sent[1].severity, Severity::Warning);
    }

    #[tokio::test]
    async fn a_start_after_the_end_is_not_announced_and_the_start_is_deleted() {
        let app = app(true).await;
        app.run(deployment(
            "e1",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "2026-11-20T12:00:00Z",
            "",
        ))
        .await
        .unwrap();
        app.run(deployment(
            "e2",
            "SERVICE_DEPLOYMENT_COMPLETED",
            "2026-11-20T12:04:00Z",
            "",
        ))
        .await
        .unwrap();
        let start_key = format!(
            "deployments/{}/start",
            watchkeeper_shared::state::key_segment("ecs-svc/1")
        );
        assert!(
            app.state.load::<Value>(&start_key).await.unwrap().is_none(),
            "start deleted at the end"
        );
        // The same deployment's IN_PROGRESS delivered late (a retry, or out of order).
        let late = app
            .run(deployment(
                "e3",
                "SERVICE_DEPLOYMENT_IN_PROGRESS",
                "2026-11-20T12:00:01Z",
                "",
            ))
            .await
            .unwrap();
        assert_eq!(late["outcome"], "ignored", "{late}");
        // A start recorded after the end is a new phase of the deployment, and is told.
        let again = app
            .run(deployment(
                "e4",
                "SERVICE_DEPLOYMENT_IN_PROGRESS",
                "2026-11-20T12:10:00Z",
                "",
            ))
            .await
            .unwrap();
        assert_eq!(again["outcome"], "notified", "{again}");
        let subjects: Vec<String> = app
            .notifier
            .notifications()
            .into_iter()
            .map(|n| n.subject)
            .collect();
        assert_eq!(subjects.len(), 3, "{subjects:?}");
        assert!(subjects[1].contains("COMPLETED"));
    }

    #[tokio::test]
    async fn a_state_store_that_answers_403_does_not_block_the_notification() {
        let app = app(false).await;
        app.state.deny_documents();
        let started = app
            .run(deployment(
                "e1",
                "SERVICE_DEPLOYMENT_IN_PROGRESS",
                "2026-11-20T12:00:00Z",
                "",
            ))
            .await
            .unwrap();
        assert_eq!(started["outcome"], "recorded");
        let done = app
            .run(deployment(
                "e2",
                "SERVICE_DEPLOYMENT_COMPLETED",
                "2026-11-20T12:04:12Z",
                "",
            ))
            .await
            .unwrap();
        assert_eq!(done["outcome"], "notified", "{done}");
        let sent = app.notifier.notifications();
        assert!(
            sent[0].text.contains("Duration:       unknown"),
            "{}",
            sent[0].text
        );
    }

    #[tokio::test]
    async fn a_failed_deployment_without_updated_at_is_notified_as_critical() {
        let app = app(false).await;
        let mut event = deployment(
            "e1",
            "SERVICE_DEPLOYMENT_FAILED",
            "2026-11-20T12:00:00Z",
            "tasks failed",
        );
        let detail = event["detail"].as_object_mut().unwrap();
        detail.remove("updatedAt");
        detail.insert("rolloutStateReason".into(), json!({"new": ["field"]}));
        event["newTopLevelField"] = json!(1);
        let answer = app.run(event).await.unwrap();
        assert_eq!(answer["outcome"], "notified");
        let sent = app.notifier.notifications();
        assert_eq!(sent[0].severity, Severity::Critical);
        assert!(
            sent[0].text.contains("2026-11-20 12:00:00 UTC"),
            "the event time stands in: {}",
            sent[0].text
        );
    }

    #[tokio::test]
    async fn duplicates_send_once_and_failures_surface() {
        let app = app(true).await;
        let event = deployment(
            "e1",
            "SERVICE_DEPLOYMENT_FAILED",
            "2026-11-20T12:00:00Z",
            "tasks failed",
        );
        app.notifier.fail_next();
        let err = app.run(event.clone()).await.unwrap_err();
        assert!(err.is_retryable());
        app.run(event.clone()).await.unwrap();
        let again = app.run(event).await.unwrap();
        assert_eq!(again["outcome"], "duplicate");
        assert_eq!(app.notifier.notifications().len(), 1);
    }

    #[tokio::test]
    async fn unknown_shapes_become_notices() {
        let app = app(false).await;
        app.run(json!({"detail-type": "Something New", "source": "aws.other", "id": "x1", "detail": {"a": 1}})).await.unwrap();
        app.run(json!({"surprise": true})).await.unwrap();
        let sent = app.notifier.notifications();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].subject, "[prod] Something New from aws.other");
        assert!(sent[1].text.contains("surprise"));
        assert!(app.run(json!("just a string")).await.is_err());
    }

    #[test]
    fn metrics_count_outcomes() {
        let line = |r: Result<Value, DeployError>| -> Value {
            serde_json::from_str(&metrics(&r).render(0)).unwrap()
        };
        assert_eq!(line(Ok(json!({"outcome": "notified"})))["Notified"], 1.0);
        assert_eq!(
            line(Ok(
                json!({"records": [{"outcome": "duplicate"}, {"outcome": "notified"}]})
            ))["Duplicates"],
            1.0
        );
        assert_eq!(line(Ok(respond(401, json!({}))))["CiRejected"], 1.0);
        assert_eq!(
            line(Err(DeployError::Malformed("x".into())))["Failures"],
            1.0
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                ".{0,20}".prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 64, 8, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    proptest::collection::btree_map(
                        prop_oneof![
                            Just("id".to_string()),
                            Just("detail-type".to_string()),
                            Just("source".to_string()),
                            Just("detail".to_string()),
                            Just("Records".to_string()),
                            Just("Sns".to_string()),
                            Just("Message".to_string()),
                            Just("MessageId".to_string()),
                            Just("requestContext".to_string()),
                            Just("http".to_string()),
                            Just("body".to_string()),
                            Just("resources".to_string()),
                            Just("eventName".to_string()),
                            Just("lastStatus".to_string()),
                            ".{0,8}".prop_map(String::from)
                        ],
                        inner,
                        0..6
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn arbitrary_json_never_panics(value in json_value()) {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let app = runtime.block_on(app(true));
                let _ = runtime.block_on(app.run(value));
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let app = runtime.block_on(app(true));
                if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
                    let _ = runtime.block_on(app.run(value));
                }
                let body = String::from_utf8_lossy(&bytes).into_owned();
                let _ = runtime.block_on(app.run(url(&body, json!({"x-watchkeeper-timestamp": "1", "x-watchkeeper-signature": "sha256=00"}), "POST")));
                let as_base64 = json!({"requestContext": {"http": {"method": "POST"}}, "body": body, "isBase64Encoded": true});
                let answer = runtime.block_on(app.run(as_base64)).unwrap();
                prop_assert!(status(&answer) >= 400 && status(&answer) < 500);
            }
        }
    }
}
