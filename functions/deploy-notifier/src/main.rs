//! Lambda entry point: configuration, clients and keys once at init; then one handler call per
//! event.

use lambda_runtime::Error;
use watchkeeper_shared::aws;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::init::Common;
use watchkeeper_shared::runtime;
use watchkeeper_shared::telemetry;

use deploy_notifier::ci::signing_key::SigningKeys;
use deploy_notifier::config::{Config, UrlAuth};
use deploy_notifier::handler::App;
use watchkeeper_shared::secret::SecretsManagerSource;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logging(env!("CARGO_CRATE_NAME"));
    let vars = Vars::from_env();
    let config = Config::from_vars(&vars)?;
    let sdk = aws::load_sdk_config(&vars).await?;
    // A signing key that cannot be read breaks the CI path only (it answers 503 and reads
    // again); ECS and SNS events need no key and keep flowing.
    let load_signing_keys = async {
        match &config.auth {
            UrlAuth::Hmac { secret_arn } => {
                let (keys, error) = SigningKeys::start(
                    SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(&sdk)),
                    secret_arn,
                    config.signing_key_refresh,
                )
                .await;
                if let Some(error) = error {
                    tracing::error!(%error, "CI signing key unavailable: CI requests answer 503 until it can be read");
                }
                Some(keys)
            }
            UrlAuth::Iam | UrlAuth::Off => None,
        }
    };
    // The webhook URL and the signing keys are read side by side: init waits for one Secrets
    // Manager round trip, not three.
    let (common, signing_keys) = tokio::join!(
        Common::with_sdk(
            deploy_notifier::NAME,
            sdk.clone(),
            &config.state_bucket,
            &config.notify
        ),
        load_signing_keys
    );
    let common = common?;
    let app = App::new(config, common.notifier, common.state, signing_keys);
    let app = &app;
    runtime::serve(|payload, invocation| async move { app.handle(payload, &invocation).await })
        .await
}
