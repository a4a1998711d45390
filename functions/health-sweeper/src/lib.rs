//! health-sweeper: every minute, discover the backends, probe them all, and alert only when the
//! system's state changes.

/// The function's name: its state namespace, the source of its notifications, the `Function`
/// dimension of its metrics.
pub const NAME: &str = "health-sweeper";

pub mod alert;
pub mod concurrency;
pub mod config;
pub mod discovery;
pub mod error;
pub mod handler;
pub mod networks;
pub mod probe;
pub mod quorum;
pub mod report;
pub mod sweep_state;
pub mod target;
