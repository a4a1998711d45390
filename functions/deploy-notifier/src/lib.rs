//! deploy-notifier: ECS deployment events (EventBridge, directly or through SNS) and the CI
//! "apply finished" POST to a Function URL become one clear notification each.

pub mod ci;
pub mod config;
pub mod ecs;
pub mod error;
pub mod event;
pub mod handler;
pub mod signing_key;
