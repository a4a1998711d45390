//! Lambda entry point: configuration and clients once at init; then one handler call per event
//! (an RDS snapshot event, or the weekly schedule).

use lambda_runtime::Error;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::init::Common;
use watchkeeper_shared::runtime;
use watchkeeper_shared::telemetry;

use snapshot_exporter::config::Config;
use snapshot_exporter::handler::App;
use snapshot_exporter::objects::S3Objects;
use snapshot_exporter::rds_sdk::RdsClient;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logging(env!("CARGO_CRATE_NAME"));
    let vars = Vars::from_env();
    let config = Config::from_vars(&vars)?;
    let common = Common::connect(
        snapshot_exporter::NAME,
        &vars,
        &config.state_bucket,
        &config.notify,
    )
    .await?;
    let rds = RdsClient::new(aws_sdk_rds::Client::new(&common.sdk));
    let objects = S3Objects::new(
        watchkeeper_shared::aws::s3_client(&common.sdk),
        config.destination.bucket.clone(),
    );
    let region = common
        .sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_default();
    let app = App::new(config, rds, objects, common.notifier, common.state, region);
    let app = &app;
    runtime::serve(|payload, invocation| async move { app.handle(payload, &invocation).await })
        .await
}
