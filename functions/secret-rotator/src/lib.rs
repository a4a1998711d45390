//! secret-rotator: Secrets Manager rotation of PostgreSQL and MySQL/MariaDB passwords (single or
//! alternating users) and API keys, with no cleartext password on the database's wire or logs
//! (where the engine allows), no silent TLS downgrade, and every step safe to repeat.

/// The function's name: its state namespace, the source of its notifications, the `Function`
/// dimension of its metrics.
pub const NAME: &str = "secret-rotator";

pub mod config;
pub mod database;
pub mod error;
pub mod event;
#[cfg(test)]
mod fakes;
pub mod guard;
pub mod handler;
pub mod master_hosts;
pub mod secret_value;
pub mod secrets_manager;
pub mod steps;
