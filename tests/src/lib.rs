//! The test harness: real stand-ins for what the functions talk to, started per test on free
//! loopback ports and stopped when dropped.
//!
//! - [`moto::Moto`]: the AWS emulator (moto in server mode), reached through `AWS_ENDPOINT_URL`.
//! - [`postgres::Postgres`], [`mariadb::MariaDb`]: throwaway database servers with password auth.
//! - [`lambda::LambdaRuntime`]: a built function binary served by the Lambda Runtime API emulator
//!   of cargo-lambda, invoked with fixtures from `events/`.
//! - [`runtime_api::RuntimeApi`]: a Lambda Runtime API the harness controls: many processes of one
//!   function, short deadlines, processes killed mid-invocation.
//! - [`http::HttpServer`]: loopback HTTP servers that answer, fail, hang, or record what they got.
//! - [`faults::FaultyProxy`]: a proxy in front of the emulator that fails, throttles or hangs on cue.
//! - [`leaks`]: the secret-leak check every integration and end-to-end test ends with.
//!
//! Nothing here talks to any address outside 127.0.0.0/8. Tools that are missing give an error
//! saying what to install (`bash tests/setup.sh` installs all of them), never a hang.

pub mod budget;
pub mod calls;
pub mod deploy;
pub mod export;
pub mod faults;
pub mod fuzz;
pub mod http;
pub mod lambda;
pub mod leaks;
pub mod mail;
pub mod mariadb;
pub mod moto;
pub mod paths;
pub mod postgres;
pub mod process;
pub mod rotation;
pub mod runtime_api;
pub mod sweep;
pub mod terraform;
pub mod timed_runtime;
pub mod tls;

/// The S3 bucket every function's state lives in, in every test against the emulator.
pub const STATE_BUCKET: &str = "wk-state";

/// Harness failures are reported, not handled: a boxed error with a readable message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// A mutex's guard, poisoned or not: a test thread that panicked holding it must not hide what
/// the others recorded.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds a harness error from a message.
pub fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(message.into().into())
}
