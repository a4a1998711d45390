//! One rotation step per invocation; a failure is returned to Secrets Manager (which retries) and
//! alerted once per secret, version and step.

use serde_json::Value;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::notify::{Notification, Notify, Severity};
use watchkeeper_shared::runtime::Invocation;
use watchkeeper_shared::telemetry::Metrics;

use crate::database::{Database, DbErrorKind};
use crate::error::RotationError;
use crate::event::{self, RotationEvent, Step};
use crate::secret_value::SecretKind;
use crate::secrets_manager::SecretsApi;
use crate::steps::Rotator;

pub struct App<A, D, N> {
    pub rotator: Rotator<A, D, N>,
}

impl<A: SecretsApi, D: Database, N: Notify> App<A, D, N> {
    pub async fn handle(
        &self,
        payload: Value,
        invocation: &Invocation,
    ) -> Result<Value, RotationError> {
        let event = event::parse(&payload)?;
        let result = self.rotator.run(&event, &invocation.deadline).await;
        let mut metrics = Metrics::for_function(crate::NAME);
        metrics.count(
            if result.is_ok() {
                "RotationStepsSucceeded"
            } else {
                "RotationStepsFailed"
            },
            1,
        );
        metrics.emit();
        match result {
            Ok(outcome) => Ok(outcome),
            Err(err) => {
                tracing::error!(secret = %event.secret_id, step = event.step.as_str(), error = %err, retryable = err.is_retryable(), "rotation step failed");
                let state = self.state_after_failure(&event, &err).await;
                let name = secret_name(&event.secret_id);
                let refused = matches!(err, RotationError::Refused(_));
                let text = format!(
                    "Rotation of secret {secret} {what} at {step} (version {token}).\n\nError: {err}\nRetryable: {retryable}\n\n{state}",
                    secret = event.secret_id,
                    what = if refused { "was refused" } else { "failed" },
                    step = event.step.as_str(),
                    token = event.token,
                    retryable = if err.is_retryable() {
                        "yes"
                    } else {
                        "no, it needs a person"
                    },
                );
                let alert = Notification::new(
                    crate::NAME,
                    Severity::Critical,
                    format!(
                        "Secret rotation {}: {name} at {}",
                        if refused { "refused" } else { "failed" },
                        event.step.as_str()
                    ),
                    text,
                )
                .with_resource(name);
                let key = format!(
                    "failure/{}/{}/{}",
                    event.secret_id,
                    event.token,
                    event.step.as_str()
                );
                if let Err(alert_error) = self
                    .rotator
                    .notify_once(&key, &alert, &invocation.deadline)
                    .await
                {
                    tracing::error!(error = %alert_error, "rotation failure alert could not be sent");
                }
                Err(err)
            }
        }
    }

    /// What the failure left behind, truthfully: in single-user mode a completed setSecret has
    /// already changed the password, so AWSCURRENT's no longer works.
    async fn state_after_failure(&self, event: &RotationEvent, err: &RotationError) -> String {
        let single_user = matches!(
            self.rotator.pending(event).await,
            Ok(SecretKind::Database(db)) if db.masterarn.is_none()
        );
        let set_may_have_run = matches!(event.step, Step::Test | Step::Finish)
            && !matches!(err, RotationError::Refused(_));
        // The connection went while setSecret was at work: the new password may have been
        // committed with its answer lost.
        let set_uncertain = event.step == Step::Set
            && matches!(err, RotationError::Database(e) if e.kind == DbErrorKind::Unreachable);
        if single_user && set_may_have_run {
            format!(
                "setSecret has already set the new password in the database: the AWSCURRENT password no longer works, \
                 and applications must use version {token} (AWSPENDING) until the rotation completes. Fix the cause and \
                 run the rotation again (createSecret keeps the pending value), or move AWSCURRENT to version {token} \
                 yourself (update-secret-version-stage).",
                token = event.token
            )
        } else if single_user && set_uncertain {
            format!(
                "setSecret could not reach the database or lost its connection. If it never got through, the current \
                 credentials (AWSCURRENT) were not changed and keep working. If the connection went while the new \
                 password was being set, the database may already hold it: then the AWSCURRENT password no longer \
                 works and applications must use version {token} (AWSPENDING). Secrets Manager retries setSecret, \
                 which then logs in with the pending version and completes the rotation; if the retries fail, try \
                 both passwords, and move AWSCURRENT to version {token} if only the pending one works.",
                token = event.token
            )
        } else if matches!(err, RotationError::Refused(_)) && event.step == Step::Finish {
            "AWSCURRENT was not moved: applications keep using the current version. The pending version does not \
             log in, so setSecret has not completed for it: run the rotation again (createSecret keeps the pending \
             value and setSecret sets it), or cancel it."
                .to_string()
        } else if matches!(err, RotationError::Refused(_)) {
            "Nothing was changed: the request was refused before any credential was used to change anything, and \
             AWSCURRENT was not moved. A secret's contents asked for something this function does not do: check who \
             wrote the secret's versions (CloudTrail PutSecretValue / UpdateSecretVersionStage)."
                .to_string()
        } else {
            "The current credentials (AWSCURRENT) were not changed by this failure and keep working. Secrets Manager \
             retries the rotation; if it keeps failing, fix the cause and rotate again, or cancel the rotation."
                .to_string()
        }
    }
}

/// The secret's name from an id that may be an ARN (`...:secret:<name>-<6 random characters>`).
pub fn secret_name(id: &str) -> String {
    match id.split_once(":secret:") {
        Some((_, rest)) => match rest.rsplit_once('-') {
            Some((name, suffix))
                if suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                name.to_string()
            }
            _ => rest.to_string(),
        },
        None => id.to_string(),
    }
}

#[cfg(test)]
mod tests;
