//! The common crate of the Watchkeeper functions.
//!
//! Each module is one concern, used by at least two functions:
//! - [`config`]: typed configuration from environment variables, validated at init.
//! - [`aws`]: the one `SdkConfig` every client is built from.
//! - [`notify`]: notifications and their channels (SNS, SES email, chat webhook), sent once per key.
//! - [`state`]: JSON documents and claims in S3 with conditional writes.
//! - [`secret`]: a redacting wrapper for passwords, tokens and URLs with credentials.
//! - [`telemetry`]: JSON logs and CloudWatch EMF metrics.
//! - [`deadline`]: when the current invocation must be done; bounds sends and claim leases.
//! - [`runtime`]: the Lambda loop, each invocation cut off before its deadline.
//! - [`error`]: errors that say whether a retry could help.
//! - [`event`]: the event shapes several functions receive (SNS records, schedules).
//! - [`init`]: the clients and stores every function builds at init.
//! - [`tls`]: the one rustls crypto provider (ring) every TLS client uses.

pub mod aws;
pub mod config;
pub mod deadline;
pub mod error;
pub mod event;
pub mod init;
pub mod notify;
pub mod runtime;
pub mod secret;
pub mod state;
pub mod telemetry;
pub mod tls;

#[cfg(feature = "testing")]
pub mod testing;
