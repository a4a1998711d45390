//! Turns one invocation into notifications: classify, interpret, dedupe, send, answer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::notify::{Delivery, Notification, Notify, Severity};
use watchkeeper_shared::secret::Secret;
use watchkeeper_shared::state::{Claim, StateError, Store, key_segment};
use watchkeeper_shared::telemetry::Metrics;

use crate::ci::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::config::{Config, UrlAuth};
use crate::ecs::{self, DeploymentStatus, EcsEvent, Interpreted, SOURCE, env_prefix};
use crate::error::DeployError;
use crate::event::{Envelope, Invocation, SnsRecord, UrlRequest, classify, envelope};

/// When a deployment went IN_PROGRESS, kept until it finishes, for its duration.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeploymentStart {
    started_at: DateTime<Utc>,
}

pub struct App<N, S> {
    config: Config,
    notifier: N,
    state: S,
    /// The HMAC key for CI requests (with `CI_AUTH=hmac`).
    signing_key: Option<Secret<Vec<u8>>>,
}

impl<N: Notify, S: Store> App<N, S> {
    pub fn new(
        config: Config,
        notifier: N,
        state: S,
        signing_key: Option<Secret<Vec<u8>>>,
    ) -> Self {
        Self {
            config,
            notifier,
            state,
            signing_key,
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
                ecs::service_action_notification(&action, env, &event.id)
            }
            Interpreted::Ecs(EcsEvent::TaskStopped(task)) => {
                ecs::task_stopped_notification(&task, env, &event.id)
            }
            Interpreted::Ecs(EcsEvent::Deployment(change)) => {
                let key = format!("deployments/{}", key_segment(&change.deployment_id));
                let started_at = match change.status {
                    DeploymentStatus::InProgress => {
                        self.remember_start(&key, change.updated_at).await?;
                        if !self.config.notify_in_progress && !change.is_rollback() {
                            return Ok(
                                json!({"outcome": "recorded", "event": event.id, "deployment": change.deployment_id}),
                            );
                        }
                        None
                    }
                    _ => self
                        .state
                        .load::<DeploymentStart>(&key)
                        .await?
                        .map(|v| v.value.started_at),
                };
                ecs::deployment_notification(&change, started_at, env, &event.id)
            }
        };
        self.send(&format!("event/{}", event.id), &notification, deadline)
            .await
    }

    /// Keeps the first IN_PROGRESS time of a deployment; a duplicate keeps the original.
    async fn remember_start(&self, key: &str, at: DateTime<Utc>) -> Result<(), StateError> {
        match self
            .state
            .create(key, &DeploymentStart { started_at: at })
            .await
        {
            Ok(_) | Err(StateError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
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
        self.send(&format!("unknown/{}", &id[..32]), &n, deadline)
            .await
    }

    async fn send(
        &self,
        key: &str,
        notification: &Notification,
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        let delivery = self.notifier.send_once(key, notification, deadline).await?;
        Ok(outcome(key, notification, &delivery))
    }

    /// A CI request through the Function URL. Always an HTTP answer; never an error.
    pub async fn handle_url(&self, request: &UrlRequest, now: i64, deadline: &Deadline) -> Value {
        if request.method != "POST" {
            return respond(405, json!({"error": "only POST is accepted"}));
        }
        let body = match self.body(request) {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let (dedupe, replay_claim) = match (&self.config.auth, &self.signing_key) {
            (UrlAuth::Hmac { .. }, Some(key)) => {
                let window = self.config.signature_window.as_secs() as i64;
                let verified = match ci::verify_signature(
                    key,
                    request.header(TIMESTAMP_HEADER),
                    request.header(SIGNATURE_HEADER),
                    &body,
                    now,
                    window,
                ) {
                    Ok(v) => v,
                    Err(reason) => {
                        tracing::warn!(request_id = %request.request_id, %reason, "CI request refused");
                        return respond(401, json!({"error": reason.to_string()}));
                    }
                };
                (
                    format!("ci/{}", verified.digest),
                    Some(format!("replay/{}", verified.digest)),
                )
            }
            (UrlAuth::Hmac { .. }, None) => {
                tracing::error!("CI_AUTH=hmac but no signing key loaded");
                return respond(503, json!({"error": "signing key unavailable"}));
            }
            (UrlAuth::Iam, _) => {
                if request.iam_caller.is_none() {
                    return respond(401, json!({"error": "AWS_IAM authorization required"}));
                }
                (format!("ci/{}", key_segment(&request.request_id)), None)
            }
        };
        let report = match ci::parse_report(&body) {
            Ok(report) => report,
            Err(reason) => return respond(400, json!({"error": reason})),
        };
        if let Some(claim) = &replay_claim {
            match self.state.claim(claim, deadline).await {
                Ok(Claim::Claimed) => {}
                Ok(Claim::Done | Claim::InFlight { .. }) => {
                    tracing::warn!(request_id = %request.request_id, "replayed CI signature refused");
                    return respond(401, json!({"error": "signature already used (replay)"}));
                }
                Err(e) => return unavailable(&e),
            }
        }
        // A report with its own id dedupes across re-signed retries of the same run.
        let key = match &report.id {
            Some(id) => format!("ci/{}/{}", key_segment(&report.project), key_segment(id)),
            None => dedupe,
        };
        let notification = ci::report_notification(&report);
        match self.notifier.send_once(&key, &notification, deadline).await {
            Ok(delivery) => {
                if let Some(claim) = &replay_claim {
                    if let Err(e) = self.state.complete(claim).await {
                        tracing::warn!(error = %e, "could not mark the replay claim done; it still blocks replays while pending");
                    }
                }
                respond(
                    202,
                    json!({"status": "accepted", "subject": notification.subject_line(), "sent": delivery.sent, "already_sent": delivery.already_sent}),
                )
            }
            Err(e) => {
                // Nothing lost: free the signature so the sender's retry is accepted.
                if let Some(claim) = &replay_claim {
                    if let Err(release) = self.state.release(claim).await {
                        tracing::error!(error = %release, "could not release the replay claim");
                    }
                }
                tracing::error!(error = %e, retryable = e.is_retryable(), "CI notification failed");
                unavailable(&e)
            }
        }
    }

    /// The raw body bytes, or the 413/400 answer.
    fn body(&self, request: &UrlRequest) -> Result<Vec<u8>, Value> {
        let limit = self.config.max_body_bytes;
        let raw = request.body.as_deref().unwrap_or("");
        let too_large = || {
            respond(
                413,
                json!({"error": format!("body larger than {limit} bytes")}),
            )
        };
        if !request.is_base64_encoded {
            return if raw.len() > limit {
                Err(too_large())
            } else {
                Ok(raw.as_bytes().to_vec())
            };
        }
        // Check before decoding: base64 is 4 characters for every 3 bytes.
        if raw.len() / 4 * 3 > limit + 3 {
            return Err(too_large());
        }
        let bytes = STANDARD
            .decode(raw.trim())
            .map_err(|_| respond(400, json!({"error": "body is not valid base64"})))?;
        if bytes.len() > limit {
            Err(too_large())
        } else {
            Ok(bytes)
        }
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

fn unavailable(err: &(impl std::fmt::Display + Retryable)) -> Value {
    respond(
        503,
        json!({"error": "notification could not be delivered; retry later", "retryable": err.is_retryable()}),
    )
}

/// A Function URL response (payload format 2.0) with a JSON body.
fn respond(status: u16, body: Value) -> Value {
    let mut headers = json!({"content-type": "application/json"});
    if status == 405 {
        headers["allow"] = json!("POST");
    }
    json!({"statusCode": status, "headers": headers, "body": body.to_string()})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use watchkeeper_shared::config::Vars;
    use watchkeeper_shared::testing::{MemoryStore, RecordingNotifier};

    /// A deadline far enough away for any unit test.
    fn later() -> Deadline {
        Deadline::after(std::time::Duration::from_secs(60))
    }

    const KEY: &[u8] = b"unit-test-key";

    fn app(notify_in_progress: bool) -> App<RecordingNotifier, MemoryStore> {
        let mut config = Config::from_vars(&Vars::from_pairs([
            (
                "NOTIFY_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:alerts",
            ),
            ("STATE_BUCKET", "b"),
            (
                "CI_SIGNING_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:ci-AbCdEf",
            ),
            ("DEPLOY_ENVIRONMENT", "prod"),
        ]))
        .unwrap();
        config.notify_in_progress = notify_in_progress;
        config.signature_window = Duration::from_secs(300);
        App::new(
            config,
            RecordingNotifier::default(),
            MemoryStore::default(),
            Some(Secret::new(KEY.to_vec())),
        )
    }

    fn deployment(id: &str, name: &str, at: &str, reason: &str) -> Value {
        json!({"version": "0", "id": id, "detail-type": "ECS Deployment State Change", "source": "aws.ecs", "account": "111122223333",
               "time": at, "region": "us-east-1", "resources": ["arn:aws:ecs:us-east-1:111122223333:service/main/api"],
               "detail": {"eventType": "INFO", "eventName": name, "deploymentId": "ecs-svc/1", "updatedAt": at, "reason": reason}})
    }

    fn url(body: &str, headers: Value, method: &str) -> Value {
        json!({"version": "2.0", "headers": headers, "body": body, "isBase64Encoded": false,
               "requestContext": {"http": {"method": method}, "requestId": "req-1"}})
    }

    fn status(answer: &Value) -> u64 {
        answer["statusCode"].as_u64().unwrap_or(0)
    }

    #[tokio::test]
    async fn deployment_duration_spans_in_progress_to_completed() {
        let app = app(false);
        let started = app
            .handle(
                deployment(
                    "e1",
                    "SERVICE_DEPLOYMENT_IN_PROGRESS",
                    "2026-11-20T12:00:00Z",
                    "",
                ),
                later(),
            )
            .await
            .unwrap();
        assert_eq!(started["outcome"], "recorded");
        assert!(app.notifier.notifications().is_empty());
        app.handle(
            deployment(
                "e2",
                "SERVICE_DEPLOYMENT_COMPLETED",
                "2026-11-20T12:04:12Z",
                "done",
            ),
            later(),
        )
        .await
        .unwrap();
        let sent = app.notifier.notifications();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].text.contains("4m 12s"), "{}", sent[0].text);
    }

    #[tokio::test]
    async fn rollback_in_progress_is_notified_even_when_starts_are_not() {
        let app = app(false);
        app.handle(
            deployment(
                "e1",
                "SERVICE_DEPLOYMENT_IN_PROGRESS",
                "2026-11-20T12:00:00Z",
                "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/0",
            ),
            later(),
        )
        .await
        .unwrap();
        let sent = app.notifier.notifications();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].severity, Severity::Critical);
    }

    #[tokio::test]
    async fn duplicates_send_once_and_failures_surface() {
        let app = app(true);
        let event = deployment(
            "e1",
            "SERVICE_DEPLOYMENT_FAILED",
            "2026-11-20T12:00:00Z",
            "tasks failed",
        );
        app.notifier.fail_next();
        let err = app.handle(event.clone(), later()).await.unwrap_err();
        assert!(err.is_retryable());
        app.handle(event.clone(), later()).await.unwrap();
        let again = app.handle(event, later()).await.unwrap();
        assert_eq!(again["outcome"], "duplicate");
        assert_eq!(app.notifier.notifications().len(), 1);
    }

    #[tokio::test]
    async fn url_answers_cover_every_refusal() {
        let app = app(false);
        let now = 1_790_000_000;
        let body = r#"{"project":"despachos","environment":"prod","status":"success"}"#;
        let headers = |ts: i64, sig: &str| json!({"x-watchkeeper-timestamp": ts.to_string(), "x-watchkeeper-signature": sig});
        let signed = headers(now, &ci::sign(KEY, now, body.as_bytes()));

        let request = |v: Value| match classify(v) {
            Ok(Invocation::FunctionUrl(r)) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            status(
                &app.handle_url(&request(url(body, signed.clone(), "GET")), now, &later())
                    .await
            ),
            405
        );
        assert_eq!(
            status(
                &app.handle_url(&request(url(body, json!({}), "POST")), now, &later())
                    .await
            ),
            401
        );
        assert_eq!(
            status(
                &app.handle_url(
                    &request(url(body, headers(now, "sha256=00"), "POST")),
                    now,
                    &later()
                )
                .await
            ),
            401
        );
        assert_eq!(
            status(
                &app.handle_url(
                    &request(url(body, signed.clone(), "POST")),
                    now + 600,
                    &later()
                )
                .await
            ),
            401
        );
        let big = "x".repeat(70_000);
        assert_eq!(
            status(
                &app.handle_url(&request(url(&big, signed.clone(), "POST")), now, &later())
                    .await
            ),
            413
        );
        let bad = "{\"project\": 1}";
        let bad_signed = headers(now, &ci::sign(KEY, now, bad.as_bytes()));
        let answer = app
            .handle_url(&request(url(bad, bad_signed, "POST")), now, &later())
            .await;
        assert_eq!(status(&answer), 400);
        assert!(answer["body"].as_str().unwrap().contains("\"error\""));

        let accepted = app
            .handle_url(&request(url(body, signed.clone(), "POST")), now, &later())
            .await;
        assert_eq!(status(&accepted), 202, "{accepted}");
        let replayed = app
            .handle_url(&request(url(body, signed, "POST")), now, &later())
            .await;
        assert_eq!(status(&replayed), 401);
        assert!(replayed["body"].as_str().unwrap().contains("replay"));
        assert_eq!(app.notifier.notifications().len(), 1);
    }

    #[tokio::test]
    async fn a_failed_send_frees_the_signature_for_the_retry() {
        let app = app(false);
        let now = 1_790_000_000;
        let body = r#"{"project":"p","environment":"dev","status":"failure"}"#;
        let headers = json!({"x-watchkeeper-timestamp": now.to_string(), "x-watchkeeper-signature": ci::sign(KEY, now, body.as_bytes())});
        let Ok(Invocation::FunctionUrl(request)) = classify(url(body, headers, "POST")) else {
            panic!()
        };
        app.notifier.fail_next();
        assert_eq!(status(&app.handle_url(&request, now, &later()).await), 503);
        assert_eq!(status(&app.handle_url(&request, now, &later()).await), 202);
        assert_eq!(app.notifier.notifications()[0].severity, Severity::Critical);
    }

    #[tokio::test]
    async fn unknown_shapes_become_notices() {
        let app = app(false);
        app.handle(json!({"detail-type": "Something New", "source": "aws.other", "id": "x1", "detail": {"a": 1}}), later()).await.unwrap();
        app.handle(json!({"surprise": true}), later())
            .await
            .unwrap();
        let sent = app.notifier.notifications();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].subject, "[prod] Something New from aws.other");
        assert!(sent[1].text.contains("surprise"));
        assert!(app.handle(json!("just a string"), later()).await.is_err());
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
                let app = app(true);
                let _ = runtime.block_on(app.handle(value, later()));
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let app = app(true);
                if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
                    let _ = runtime.block_on(app.handle(value, later()));
                }
                let body = String::from_utf8_lossy(&bytes).into_owned();
                let _ = runtime.block_on(app.handle(url(&body, json!({"x-watchkeeper-timestamp": "1", "x-watchkeeper-signature": "sha256=00"}), "POST"), later()));
                let as_base64 = json!({"requestContext": {"http": {"method": "POST"}}, "body": body, "isBase64Encoded": true});
                let answer = runtime.block_on(app.handle(as_base64, later())).unwrap();
                prop_assert!(status(&answer) >= 400 && status(&answer) < 500);
            }
        }
    }
}
