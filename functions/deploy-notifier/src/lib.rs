//! deploy-notifier: ECS deployment events (EventBridge, directly or through SNS) and the CI
//! "apply finished" POST to a Function URL become one clear notification each.
//!
//! - [`event`]: what an invocation is (Function URL request, SNS records, EventBridge event).
//! - [`ecs`]: what an ECS event means; [`ecs::render`]: the notification it becomes.
//! - [`deployments`]: what is remembered of a deployment between its events.
//! - [`best_effort`]: the bounded, logged state calls a notification goes out without.
//! - [`ci`]: the CI report, its signature and its notification; [`ci::signing_key`]: the keys;
//!   [`ci::function_url`]: the HTTP protocol of the Function URL.
//! - [`alerts`]: the alerts AWS already sends (CloudWatch alarms, AWS Health, GuardDuty).
//! - [`handler`]: one invocation from classification to answer.

/// The function's name: its state namespace, the source of its notifications, the `Function`
/// dimension of its metrics.
pub const NAME: &str = "deploy-notifier";

pub mod alerts;
pub mod best_effort;
pub mod ci;
pub mod config;
pub mod deployments;
pub mod ecs;
pub mod error;
pub mod event;
pub mod handler;

#[cfg(test)]
pub(crate) mod testing;
