//! One rotation step per invocation; a failure is returned to Secrets Manager (which retries) and
//! alerted once per secret, version and step.

use serde_json::Value;
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::notify::{Notification, Notify, Severity};
use watchkeeper_shared::telemetry::Metrics;

use crate::database::Database;
use crate::error::RotationError;
use crate::event;
use crate::rotation::{Rotator, SOURCE};
use crate::secrets::SecretsApi;

pub struct App<A, D, N> {
    pub rotator: Rotator<A, D, N>,
}

impl<A: SecretsApi, D: Database, N: Notify> App<A, D, N> {
    pub async fn handle(&self, payload: Value, deadline: Deadline) -> Result<Value, RotationError> {
        let event = event::parse(&payload)?;
        let result = self.rotator.run(&event, &deadline).await;
        let mut metrics = Metrics::for_function(SOURCE);
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
                let text = format!(
                    "Rotation of secret {secret} failed at {step} (version {token}).\n\nError: {err}\nRetryable: {retryable}\n\n\
                     The current credentials (AWSCURRENT) were not changed by this failure and keep working. Secrets Manager retries the \
                     rotation; if it keeps failing, fix the cause and rotate again, or cancel the rotation.",
                    secret = event.secret_id,
                    step = event.step.as_str(),
                    token = event.token,
                    retryable = if err.is_retryable() {
                        "yes"
                    } else {
                        "no, it needs a person"
                    },
                );
                let name = secret_name(&event.secret_id);
                let alert = Notification::new(
                    SOURCE,
                    Severity::Critical,
                    format!("Secret rotation failed: {name} at {}", event.step.as_str()),
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
                    .notifier
                    .send_once(&key, &alert, &deadline)
                    .await
                {
                    tracing::error!(error = %alert_error, "rotation failure alert could not be sent");
                }
                Err(err)
            }
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
mod tests {
    use super::*;

    #[test]
    fn names_come_out_of_arns() {
        assert_eq!(
            secret_name("arn:aws:secretsmanager:us-east-1:1:secret:des/db/app-AbC123"),
            "des/db/app"
        );
        assert_eq!(secret_name("des/db/app"), "des/db/app");
        assert_eq!(
            secret_name("arn:aws:secretsmanager:us-east-1:1:secret:odd"),
            "odd"
        );
    }
}
