//! Lambda entry point: configuration, the CA bundle and AWS clients once at init; one rotation
//! step per event.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::notify::Notifier;
use watchkeeper_shared::state::StateStore;
use watchkeeper_shared::{aws, telemetry};

use secret_rotator::config::Config;
use secret_rotator::database::SqlDatabases;
use secret_rotator::handler::App;
use secret_rotator::rotation::Rotator;
use secret_rotator::secrets::SecretsManager;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logging(env!("CARGO_CRATE_NAME"));
    // rustls needs one process-wide crypto provider when several are compiled in.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let vars = Vars::from_env();
    let config = Config::from_vars(&vars)?;
    let sdk = aws::load_sdk_config(&vars).await?;
    let state = StateStore::new(
        aws::s3_client(&sdk),
        config.state_bucket.clone(),
        "secret-rotator",
    );
    let notifier = Notifier::connect(&config.notify, &sdk, state).await?;
    let rotator = Rotator {
        secrets: SecretsManager::new(aws_sdk_secretsmanager::Client::new(&sdk)),
        db: SqlDatabases {
            settings: config.db.clone(),
        },
        notifier,
        policy: config.policy.clone(),
    };
    tracing::info!(tls = ?config.policy.default_tls, ca_bundle = config.db.ca_file.is_some(), "secret-rotator ready");
    let app = App { rotator };
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        app.handle(event.payload)
    }))
    .await
}
