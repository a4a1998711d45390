//! Lambda entry point: configuration, AWS clients and the HTTP client once at init; one sweep per
//! scheduled event. The event's content is ignored: nothing in it can add a target.

use lambda_runtime::Error;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::init::Common;
use watchkeeper_shared::runtime;
use watchkeeper_shared::telemetry;

use health_sweeper::concurrency;
use health_sweeper::config::Config;
use health_sweeper::discovery::Discovery;
use health_sweeper::handler::App;
use health_sweeper::probe::Prober;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logging(env!("CARGO_CRATE_NAME"));
    let vars = Vars::from_env();
    let config = Config::from_vars(&vars)?;
    let common = Common::connect(
        health_sweeper::NAME,
        &vars,
        &config.state_bucket,
        &config.notify,
    )
    .await?;
    let discovery = Discovery::from_config(&config, &common.sdk);
    let prober = Prober::new(
        config.path.clone(),
        config.host.clone(),
        config.healthy_codes.clone(),
        config.probe_timeout,
        config.concurrency,
    );
    let region = common
        .sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_default();
    tracing::info!(
        static_targets = config.static_targets.len(),
        discovery = config.project.is_some() || !config.target_group_arns.is_empty(),
        concurrency = config.concurrency,
        open_files = concurrency::open_files_limit(),
        "health-sweeper ready"
    );
    let app = App::new(
        config,
        discovery,
        prober,
        common.notifier,
        common.state,
        region,
    );
    let app = &app;
    runtime::serve(|payload, invocation| async move { app.handle(payload, &invocation).await })
        .await
}
