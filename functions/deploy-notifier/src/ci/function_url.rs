//! The Function URL protocol for CI's "apply finished" report: method, size, authentication,
//! single use of a signature, and the HTTP answer. Every request gets an answer (never an
//! invocation error): 202, or 400/401/405/413 for what the sender must fix, or 503 when the
//! notification could not be delivered and a retry is welcome.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::notify::Notify;
use watchkeeper_shared::secret::SecretSource;
use watchkeeper_shared::state::{Claim, Store, key_segment};

use crate::ci::signing_key::VerifyError;
use crate::ci::{self, ApplyStatus, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::config::UrlAuth;
use crate::event::UrlRequest;
use crate::handler::App;

impl<N: Notify, S: Store, K: SecretSource> App<N, S, K> {
    /// A CI request through the Function URL. Always an HTTP answer; never an error.
    pub async fn handle_url(&self, request: &UrlRequest, now: i64, deadline: &Deadline) -> Value {
        if self.config.auth == UrlAuth::Off {
            return not_served();
        }
        if request.method != "POST" {
            return respond(405, json!({"error": "only POST is accepted"}));
        }
        let body = match self.body(request) {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let (dedupe, replay_claim) = match (&self.config.auth, &self.signing_keys) {
            (UrlAuth::Hmac { .. }, Some(keys)) => {
                let window = self.config.signature_window.as_secs() as i64;
                let verified = match keys
                    .verify(
                        request.header(TIMESTAMP_HEADER),
                        request.header(SIGNATURE_HEADER),
                        &body,
                        now,
                        window,
                    )
                    .await
                {
                    Ok(v) => v,
                    Err(VerifyError::Signature(reason)) => {
                        tracing::warn!(request_id = %request.request_id, %reason, "CI request refused");
                        return respond(401, json!({"error": reason.to_string()}));
                    }
                    Err(VerifyError::Keys(e)) => {
                        tracing::error!(error = %e, "CI signing keys could not be read again");
                        return respond(
                            503,
                            json!({"error": "signing key unavailable; retry later", "retryable": true}),
                        );
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
            (UrlAuth::Off, _) => return not_served(),
            (UrlAuth::Iam, _) => {
                if request.iam_caller.is_none() {
                    return respond(401, json!({"error": "AWS_IAM authorization required"}));
                }
                // Not the request id: an HTTP retry of the same report has a new one, and a
                // directly invoked payload may have none. The body is the report: the same body
                // is the same report.
                // Within ten minutes: a deliberate re-run of the same report later is told again.
                let digest = hex::encode(&Sha256::digest(&body)[..16]);
                (format!("ci/iam/{digest}/{}", now.div_euclid(600)), None)
            }
        };
        let report = match ci::parse_report(&body) {
            Ok(report) => report,
            Err(reason) => return respond(400, json!({"error": reason})),
        };
        if let Some(claim) = &replay_claim {
            match self.state.claim(claim, deadline).await {
                Ok(Claim::Claimed) => {}
                Ok(Claim::Done) => {
                    tracing::warn!(request_id = %request.request_id, "replayed CI signature refused");
                    return respond(401, json!({"error": "signature already used (replay)"}));
                }
                // The same request is being handled (or its handler died mid-send): not refused
                // for good, so the sender's retry after the holder's lease is accepted.
                Ok(Claim::InFlight { .. }) => {
                    tracing::warn!(request_id = %request.request_id, "CI request already in flight");
                    return respond(
                        503,
                        json!({"error": "the same request is being handled; retry later", "retryable": true}),
                    );
                }
                Err(e) => return unavailable(&e),
            }
        }
        // A report with its own id dedupes across re-signed retries of the same run, per
        // environment and outcome: one run applying staging then prod tells both.
        let key = match &report.id {
            Some(id) => format!(
                "ci/{}/{}/{}/{}",
                key_segment(&report.project),
                key_segment(&report.environment),
                key_segment(id),
                match report.status {
                    ApplyStatus::Success => "success",
                    ApplyStatus::Failure => "failure",
                }
            ),
            None => dedupe,
        };
        let notification = ci::report_notification(&report);
        match self.notifier.send_once(&key, &notification, deadline).await {
            Ok(delivery) => {
                if let Some(claim) = &replay_claim
                    && let Err(e) = self.state.complete(claim).await
                {
                    tracing::warn!(error = %e, "could not mark the replay claim done; it still blocks replays while pending");
                }
                respond(
                    202,
                    json!({"status": "accepted", "subject": notification.subject_line(), "sent": delivery.sent, "already_sent": delivery.already_sent}),
                )
            }
            Err(e) => {
                // Nothing lost: free the signature so the sender's retry is accepted.
                if let Some(claim) = &replay_claim
                    && let Err(release) = self.state.release(claim).await
                {
                    tracing::error!(error = %release, "could not release the replay claim");
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

fn unavailable(err: &(impl std::fmt::Display + Retryable)) -> Value {
    respond(
        503,
        json!({"error": "notification could not be delivered; retry later", "retryable": err.is_retryable()}),
    )
}

/// The answer of the event function (`CI_AUTH=off`) to a Function URL request: nothing read,
/// nothing claimed.
fn not_served() -> Value {
    respond(
        404,
        json!({"error": "this function takes no CI reports (CI_AUTH=off): post to the deploy-notifier-ci function's URL"}),
    )
}

/// A Function URL response (payload format 2.0) with a JSON body.
pub fn respond(status: u16, body: Value) -> Value {
    let mut headers = json!({"content-type": "application/json"});
    if status == 405 {
        headers["allow"] = json!("POST");
    }
    // Every field of the documented response shape: Lambda accepts fewer, but a stricter
    // reader (cargo-lambda's Function URL emulator) refuses a response without them.
    json!({"statusCode": status, "headers": headers, "body": body.to_string(),
           "isBase64Encoded": false, "cookies": []})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, classify};
    use crate::testing::{KEY, app, later, status, url};
    use watchkeeper_shared::notify::Severity;

    fn request(v: Value) -> UrlRequest {
        match classify(v) {
            Ok(EventKind::FunctionUrl(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn url_answers_cover_every_refusal() {
        let app = app(false).await;
        let now = 1_790_000_000;
        let body = r#"{"project":"despachos","environment":"prod","status":"success"}"#;
        let headers = |ts: i64, sig: &str| json!({"x-watchkeeper-timestamp": ts.to_string(), "x-watchkeeper-signature": sig});
        let signed = headers(now, &ci::sign(KEY, now, body.as_bytes()));
        let answer = |v: Value| {
            let app = &app;
            async move { status(&app.handle_url(&request(v), now, &later()).await) }
        };
        assert_eq!(answer(url(body, signed.clone(), "GET")).await, 405);
        assert_eq!(answer(url(body, json!({}), "POST")).await, 401);
        assert_eq!(
            answer(url(body, headers(now, "sha256=00"), "POST")).await,
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
        assert_eq!(answer(url(&big, signed.clone(), "POST")).await, 413);
        let bad = "{\"project\": 1}";
        let bad_signed = headers(now, &ci::sign(KEY, now, bad.as_bytes()));
        let refused = app
            .handle_url(&request(url(bad, bad_signed, "POST")), now, &later())
            .await;
        assert_eq!(status(&refused), 400);
        assert!(refused["body"].as_str().unwrap().contains("\"error\""));

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
    async fn a_base64_body_is_verified_on_its_decoded_bytes() {
        let app = app(false).await;
        let now = 1_790_000_000;
        let body = r#"{"project":"p","environment":"dev","status":"success"}"#;
        let mut event = url(
            &STANDARD.encode(body),
            json!({"x-watchkeeper-timestamp": now.to_string(), "x-watchkeeper-signature": ci::sign(KEY, now, body.as_bytes())}),
            "POST",
        );
        event["isBase64Encoded"] = json!(true);
        assert_eq!(
            status(&app.handle_url(&request(event), now, &later()).await),
            202
        );
    }

    #[tokio::test]
    async fn one_run_id_in_two_environments_notifies_twice() {
        let app = app(false).await;
        let now = 1_790_000_000;
        for (i, environment) in ["staging", "prod", "prod"].iter().enumerate() {
            let body = format!(
                r#"{{"project":"p","environment":"{environment}","status":"success","id":"run-7"}}"#
            );
            let ts = now + i as i64;
            let headers = json!({"x-watchkeeper-timestamp": ts.to_string(), "x-watchkeeper-signature": ci::sign(KEY, ts, body.as_bytes())});
            assert_eq!(
                status(
                    &app.handle_url(&request(url(&body, headers, "POST")), now, &later())
                        .await
                ),
                202
            );
        }
        let sent = app.notifier.notifications();
        assert_eq!(sent.len(), 2, "staging and prod once each");
        assert!(sent[0].subject.starts_with("[staging]") && sent[1].subject.starts_with("[prod]"));
    }

    #[tokio::test]
    async fn the_event_function_takes_no_ci_reports_and_still_tells_ecs_events() {
        // infra deploys two functions from this binary; the event one runs with CI_AUTH=off.
        let mut app = app(false).await;
        app.config.auth = UrlAuth::Off;
        let now = 1_790_000_000;
        let body = r#"{"project":"p","environment":"dev","status":"success"}"#;
        let headers = json!({"x-watchkeeper-timestamp": now.to_string(), "x-watchkeeper-signature": ci::sign(KEY, now, body.as_bytes())});
        for method in ["POST", "GET"] {
            let answer = app
                .handle_url(&request(url(body, headers.clone(), method)), now, &later())
                .await;
            assert_eq!(status(&answer), 404, "{answer}");
            assert!(
                answer["body"]
                    .as_str()
                    .unwrap()
                    .contains("deploy-notifier-ci")
            );
        }
        assert!(app.notifier.notifications().is_empty());
        let failed = crate::testing::deployment(
            "e-1",
            "SERVICE_DEPLOYMENT_FAILED",
            "2026-11-20T10:00:00Z",
            "ECS deployment circuit breaker: tasks failed to start.",
        );
        app.run(failed).await.unwrap();
        assert_eq!(app.notifier.notifications().len(), 1);
    }

    #[tokio::test]
    async fn a_signature_in_flight_is_not_refused_for_good() {
        let app = app(false).await;
        let now = 1_790_000_000;
        let body = r#"{"project":"p","environment":"dev","status":"success"}"#;
        let signature = ci::sign(KEY, now, body.as_bytes());
        let verified = ci::verify_signature(
            &[watchkeeper_shared::secret::Secret::new(KEY.to_vec())],
            Some(&now.to_string()),
            Some(&signature),
            body.as_bytes(),
            now,
            300,
        )
        .unwrap();
        // Another invocation holds the request's claim (or died holding it).
        let claim = format!("replay/{}", verified.digest);
        app.state.claim(&claim, &later()).await.unwrap();
        let headers = json!({"x-watchkeeper-timestamp": now.to_string(), "x-watchkeeper-signature": signature});
        let request = request(url(body, headers, "POST"));
        assert_eq!(status(&app.handle_url(&request, now, &later()).await), 503);
        app.state.expire_leases();
        assert_eq!(status(&app.handle_url(&request, now, &later()).await), 202);
        assert_eq!(status(&app.handle_url(&request, now, &later()).await), 401);
    }

    #[tokio::test]
    async fn a_failed_send_frees_the_signature_for_the_retry() {
        let app = app(false).await;
        let now = 1_790_000_000;
        let body = r#"{"project":"p","environment":"dev","status":"failure"}"#;
        let headers = json!({"x-watchkeeper-timestamp": now.to_string(), "x-watchkeeper-signature": ci::sign(KEY, now, body.as_bytes())});
        let request = request(url(body, headers, "POST"));
        app.notifier.fail_next();
        assert_eq!(status(&app.handle_url(&request, now, &later()).await), 503);
        assert_eq!(status(&app.handle_url(&request, now, &later()).await), 202);
        assert_eq!(app.notifier.notifications()[0].severity, Severity::Critical);
    }

    /// IAM mode: a report without an `id`, retried over HTTP (a new request id each time) or
    /// invoked directly without one, is told once per body within ten minutes; another report,
    /// or the same one re-run later, is told too.
    #[tokio::test]
    async fn iam_mode_dedupes_a_retried_report_by_its_body() {
        use watchkeeper_shared::config::Vars;
        use watchkeeper_shared::testing::{MemoryStore, RecordingNotifier, StaticSecrets};
        let config = crate::config::Config::from_vars(&Vars::from_pairs([
            (
                "NOTIFY_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:alerts",
            ),
            ("STATE_BUCKET", "b"),
            ("CI_AUTH", "iam"),
        ]))
        .unwrap();
        let app: crate::handler::App<_, _, StaticSecrets> = crate::handler::App::new(
            config,
            RecordingNotifier::default(),
            MemoryStore::default(),
            None,
        );
        let report = |commit: &str, request_id: &str| {
            let body = format!(
                r#"{{"project":"despachos","environment":"prod","status":"success","commit":"{commit}"}}"#
            );
            let mut event = url(&body, json!({}), "POST");
            event["requestContext"]["requestId"] = json!(request_id);
            event["requestContext"]["authorizer"] =
                json!({"iam": {"userArn": "arn:aws:iam::123456789012:role/ci"}});
            request(event)
        };
        for request_id in ["req-1", "req-2", ""] {
            let answer = app
                .handle_url(&report("9f2c1e7", request_id), 0, &later())
                .await;
            assert_eq!(status(&answer), 202, "{answer}");
        }
        app.handle_url(&report("a1b2c3d", "req-3"), 0, &later())
            .await;
        assert_eq!(app.notifier.notifications().len(), 2);
        app.handle_url(&report("9f2c1e7", "req-4"), 3600, &later())
            .await;
        assert_eq!(
            app.notifier.notifications().len(),
            3,
            "re-run an hour later"
        );
    }
}
