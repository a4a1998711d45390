//! What every function builds at init, in the same order: the SDK configuration, the S3 state
//! store under the function's namespace, and the notifier with its channels (the webhook URL read
//! once, here). A failure here stops the function before it serves any event.

use aws_config::SdkConfig;

use crate::config::{ConfigError, Vars};
use crate::notify::{Notifier, NotifyConfig, NotifyError};
use crate::state::StateStore;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("notification channels: {0}")]
    Notify(#[from] NotifyError),
}

/// The clients and stores every function shares.
pub struct Common {
    pub sdk: SdkConfig,
    pub state: StateStore,
    pub notifier: Notifier,
}

impl Common {
    /// `function` names the state namespace (`deploy-notifier/...` keys).
    pub async fn connect(
        function: &str,
        vars: &Vars,
        state_bucket: &str,
        notify: &NotifyConfig,
    ) -> Result<Self, InitError> {
        let sdk = crate::aws::load_sdk_config(vars).await?;
        Self::with_sdk(function, sdk, state_bucket, notify).await
    }

    /// The same from an SDK config already loaded, for a function that reads something else at
    /// init at the same time (deploy-notifier's signing keys).
    pub async fn with_sdk(
        function: &str,
        sdk: SdkConfig,
        state_bucket: &str,
        notify: &NotifyConfig,
    ) -> Result<Self, InitError> {
        let state = StateStore::new(crate::aws::s3_client(&sdk), state_bucket, function);
        let notifier = Notifier::connect(notify, &sdk, state.clone()).await?;
        tracing::info!(function, channels = ?notifier.channel_names(), "clients ready");
        Ok(Self {
            sdk,
            state,
            notifier,
        })
    }
}
