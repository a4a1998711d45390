//! Lambda entry point: configuration, the CA bundle and AWS clients once at init; one rotation
//! step per event.

use lambda_runtime::Error;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::init::Common;
use watchkeeper_shared::runtime;
use watchkeeper_shared::telemetry;

use secret_rotator::config::Config;
use secret_rotator::database::SqlDatabases;
use secret_rotator::handler::App;
use secret_rotator::secrets_manager::SecretsManager;
use secret_rotator::steps::Rotator;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logging(env!("CARGO_CRATE_NAME"));
    // The database drivers take rustls's process-wide provider.
    watchkeeper_shared::tls::install();
    let vars = Vars::from_env();
    let config = Config::from_vars(&vars)?;
    let common = Common::connect(
        secret_rotator::NAME,
        &vars,
        &config.state_bucket,
        &config.notify,
    )
    .await?;
    let rotator = Rotator {
        secrets: SecretsManager::new(aws_sdk_secretsmanager::Client::new(&common.sdk)),
        db: SqlDatabases {
            settings: config.db.clone(),
        },
        notifier: common.notifier,
        policy: config.policy.clone(),
    };
    tracing::info!(tls = ?config.policy.default_tls, ca_bundle = config.db.ca_file.is_some(), "secret-rotator ready");
    let app = App { rotator };
    let app = &app;
    runtime::serve(|payload, invocation| async move { app.handle(payload, &invocation).await })
        .await
}
