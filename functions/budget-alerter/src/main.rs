//! Lambda entry point: configuration and clients once at init (and, when the account is
//! configured, a check of the configuration against the account's budgets); then one handler
//! call per event.

use lambda_runtime::Error;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::init::Common;
use watchkeeper_shared::runtime;
use watchkeeper_shared::telemetry;

use budget_alerter::budget::{BudgetSource, BudgetsApi};
use budget_alerter::config::Config;
use budget_alerter::costs::CostExplorerApi;
use budget_alerter::handler::App;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_logging(env!("CARGO_CRATE_NAME"));
    let vars = Vars::from_env();
    let config = Config::from_vars(&vars)?;
    let common = Common::connect(
        budget_alerter::NAME,
        &vars,
        &config.state_bucket,
        &config.notify,
    )
    .await?;
    // AWS Budgets and Cost Explorer are global services served from us-east-1.
    let global = common
        .sdk
        .to_builder()
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let budgets = BudgetsApi::new(aws_sdk_budgets::Client::new(&global));
    if let Some(account) = &config.account_id {
        // A named budget that does not exist stops the function here rather than on the first
        // daily check. Budgets unavailable for a moment (throttled, IAM still propagating) does
        // not: the SNS path still alerts, and the daily check reads them again.
        match budgets.budgets(account).await {
            Ok(all) => {
                config.check_against(&all)?;
                let daily = config.daily_without_forecasts(&all);
                if !daily.is_empty() {
                    tracing::info!(budgets = ?daily, "daily budgets: AWS does not forecast them, so forecast warnings apply to the other budgets only");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "budgets unavailable at init: BUDGET_NAMES is checked by the first daily check")
            }
        }
    }
    let costs = CostExplorerApi::new(aws_sdk_costexplorer::Client::new(&global));
    let app = App::new(config, budgets, costs, common.notifier, common.state);
    let app = &app;
    runtime::serve(|payload, invocation| async move { app.handle(payload, &invocation).await })
        .await
}
