//! deploy-notifier: ECS deployment events (EventBridge, directly or through SNS) and the CI
//! "apply finished" POST to a Function URL become one clear notification each.
//!
//! - [`event`]: what an invocation is (Function URL request, SNS records, EventBridge event).
//! - [`ecs`]: what an ECS event means; [`ecs_render`]: the notification it becomes.
//! - [`deployments`]: what is remembered of a deployment between its events.
//! - [`ci`]: the CI report, its signature and its notification; [`signing_key`]: the keys.
//! - [`function_url`]: the HTTP protocol of the Function URL.
//! - [`handler`]: one invocation from classification to answer.

/// The function's name: its state namespace, the source of its notifications, the `Function`
/// dimension of its metrics.
pub const NAME: &str = "deploy-notifier";

pub mod ci;
pub mod config;
pub mod deployments;
pub mod ecs;
pub mod ecs_render;
pub mod error;
pub mod event;
pub mod function_url;
pub mod handler;
pub mod signing_key;

#[cfg(test)]
pub(crate) mod testing;
