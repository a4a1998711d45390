//! Lambda entry point: configuration, clients and keys once at init; then one handler call per
//! event.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::init::Common;
use watchkeeper_shared::telemetry;

use deploy_notifier::config::{Config, UrlAuth};
use deploy_notifier::handler::App;
use deploy_notifier::signing_key::SigningKeys;
use watchkeeper_shared::secret::SecretsManagerSource;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logging(env!("CARGO_CRATE_NAME"));
    let vars = Vars::from_env();
    let config = Config::from_vars(&vars)?;
    let common = Common::connect(
        "deploy-notifier",
        &vars,
        &config.state_bucket,
        &config.notify,
    )
    .await?;
    let signing_keys = match &config.auth {
        UrlAuth::Hmac { secret_arn } => Some(
            SigningKeys::load(
                SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(&common.sdk)),
                secret_arn,
                config.signing_key_refresh,
            )
            .await?,
        ),
        UrlAuth::Iam => None,
    };
    let app = App::new(config, common.notifier, common.state, signing_keys);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        app.handle(event.payload, Deadline::from_context(&event.context))
    }))
    .await
}
