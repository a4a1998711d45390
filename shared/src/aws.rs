//! One `SdkConfig` for every AWS client a function builds, loaded once at init.
//!
//! The standard chain is used as is, so the usual variables work: `AWS_REGION`, credentials from
//! the Lambda execution role, `AWS_ENDPOINT_URL` (how the tests and the demo reach the local
//! emulator), and `AWS_MAX_ATTEMPTS` / `AWS_RETRY_MODE` for the SDK's own retries. What the chain
//! leaves open is pinned here: connect and per-attempt timeouts, so that a hung AWS endpoint costs
//! seconds, not the whole Lambda timeout.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::{ConfigError, Vars};

/// `AWS_CONNECT_TIMEOUT_MS`: time to open a connection to an AWS endpoint (default 3 s).
pub const CONNECT_TIMEOUT_VAR: &str = "AWS_CONNECT_TIMEOUT_MS";
/// `AWS_ATTEMPT_TIMEOUT_MS`: time for one attempt of one call, answer included (default 10 s).
pub const ATTEMPT_TIMEOUT_VAR: &str = "AWS_ATTEMPT_TIMEOUT_MS";

/// Loads the shared SDK configuration. Call once in `main` and build every client from it.
pub async fn load_sdk_config(vars: &Vars) -> Result<SdkConfig, ConfigError> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(vars.millis(CONNECT_TIMEOUT_VAR, Duration::from_secs(3))?)
        .operation_attempt_timeout(vars.millis(ATTEMPT_TIMEOUT_VAR, Duration::from_secs(10))?)
        .build();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(timeouts)
        .load()
        .await;
    if config.region().is_none() {
        return Err(ConfigError::new("AWS_REGION", "is required but not set"));
    }
    Ok(config)
}

/// The HTTPS client every AWS client of a function shares: hyper on rustls with ring and the
/// system's root certificates. Built explicitly because the SDK's default client would compile
/// aws-lc in beside ring (see the workspace Cargo.toml).
///
/// The trust store stays the client's default, the system's roots: the client loads them once per
/// process and keeps them. A custom trust store (a PEM bundle) is parsed again for every SDK client
/// constructed (the client checks its configuration by building a connector), several times at
/// init.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// An S3 client. Path-style addressing when a custom endpoint is set: an emulator on
/// `127.0.0.1:<port>` has no per-bucket host names.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}
