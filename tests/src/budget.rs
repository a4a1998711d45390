//! A ready budget-alerter world: the emulator with the example deployment's budgets (a $25 monthly budget and
//! per-service budgets for CloudWatch $5, S3 $2 and data transfer $3) whose spend the tests set,
//! Cost Explorer results queued in the emulator, the state bucket, and the alert topic with two
//! subscribed queues: an inbox that gets everything, and an "SMS" queue whose filter policy is
//! the one the suite's SMS subscription uses (`{"sms": ["true"]}`).

use aws_sdk_budgets::types::{Budget, BudgetType, CalculatedSpend, Spend, TimeUnit};
use budget_alerter::budget::BudgetsApi;
use budget_alerter::config::Config;
use budget_alerter::costs::CostExplorerApi;
use budget_alerter::handler::App;
use serde_json::{Value, json};
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::notify::Notifier;
use watchkeeper_shared::state::StateStore;

use crate::moto::{ACCOUNT, Moto, REGION, SnsEnvelope};
use crate::paths::read_event;
use crate::{Result, fail};

pub const FUNCTION: &str = "budget-alerter";
pub const BUCKET: &str = crate::STATE_BUCKET;
/// The filter policy of the SMS subscription, as infra sets it.
pub const SMS_FILTER_POLICY: &str = r#"{"sms": ["true"]}"#;

/// One budget as the emulator should hold it.
#[derive(Debug, Clone)]
pub struct BudgetSpec {
    pub name: &'static str,
    pub limit: &'static str,
    pub time_unit: TimeUnit,
    pub kind: BudgetType,
    pub unit: &'static str,
    pub actual: &'static str,
    pub forecast: Option<&'static str>,
    /// The Cost Explorer SERVICE a per-service budget is limited to.
    pub service: Option<&'static str>,
}

impl BudgetSpec {
    pub fn cost(name: &'static str, limit: &'static str, actual: &'static str) -> Self {
        Self {
            name,
            limit,
            time_unit: TimeUnit::Monthly,
            kind: BudgetType::Cost,
            unit: "USD",
            actual,
            forecast: None,
            service: None,
        }
    }

    pub fn service(mut self, service: &'static str) -> Self {
        self.service = Some(service);
        self
    }

    pub fn forecast(mut self, forecast: &'static str) -> Self {
        self.forecast = Some(forecast);
        self
    }
}

/// The example deployment: the monthly budget and the per-service ones, with the spend given for each.
pub fn seed_004(
    monthly: &'static str,
    cloudwatch: &'static str,
    s3: &'static str,
    transfer: &'static str,
) -> Vec<BudgetSpec> {
    vec![
        BudgetSpec::cost("des-monthly", "25.0", monthly),
        BudgetSpec::cost("des-cloudwatch", "5.0", cloudwatch).service("AmazonCloudWatch"),
        BudgetSpec::cost("des-s3", "2.0", s3).service("Amazon Simple Storage Service"),
        BudgetSpec::cost("des-data-transfer", "3.0", transfer).service("AWS Data Transfer"),
    ]
}

pub struct BudgetWorld {
    pub moto: Moto,
    pub topic_arn: String,
    /// Every alert (the email subscription's view).
    pub inbox_url: String,
    /// Only what the SMS subscription's filter policy lets through.
    pub sms_url: String,
    budgets: aws_sdk_budgets::Client,
}

impl BudgetWorld {
    pub async fn start() -> Result<Self> {
        let moto = Moto::start().await?;
        let config = moto.sdk_config().await;
        let (topic_arn, inbox_url) = moto
            .seed_state_and_topic(BUCKET, "des-budget-alerts", "budget-inbox")
            .await?;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let sms_url = sqs
            .create_queue()
            .queue_name("budget-sms")
            .send()
            .await?
            .queue_url
            .unwrap_or_default();
        aws_sdk_sns::Client::new(&config)
            .subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:budget-sms"))
            .attributes("FilterPolicy", SMS_FILTER_POLICY)
            .send()
            .await?;
        let budgets = aws_sdk_budgets::Client::new(&config);
        Ok(Self {
            moto,
            topic_arn,
            inbox_url,
            sms_url,
            budgets,
        })
    }

    /// Sets what `DescribeBudgetPerformanceHistory` answers for `budget`: its final actual spend
    /// for the month starting on `month_start` (`2026-10-01`).
    pub async fn set_final_actual(
        &self,
        budget: &str,
        month_start: &str,
        amount: &str,
    ) -> Result<()> {
        let start = chrono::NaiveDate::parse_from_str(month_start, "%Y-%m-%d")?;
        let end = start
            .checked_add_months(chrono::Months::new(1))
            .ok_or("no next month")?;
        let epoch = |d: chrono::NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc()
                .timestamp()
        };
        self.moto
            .control(
                "/_watchkeeper/budget-history",
                &serde_json::json!({"account": ACCOUNT, "budget": budget, "start": epoch(start),
                    "end": epoch(end), "amount": amount, "unit": "USD"}),
            )
            .await
    }

    /// Creates the budgets, or replaces them with the new spend (the emulator has no update).
    pub async fn set_budgets(&self, specs: &[BudgetSpec]) -> Result<()> {
        for spec in specs {
            let _ = self
                .budgets
                .delete_budget()
                .account_id(ACCOUNT)
                .budget_name(spec.name)
                .send()
                .await;
            let spend = |amount: &str| Spend::builder().amount(amount).unit(spec.unit).build();
            let mut calculated = CalculatedSpend::builder().actual_spend(spend(spec.actual)?);
            if let Some(forecast) = spec.forecast {
                calculated = calculated.forecasted_spend(spend(forecast)?);
            }
            let mut budget = Budget::builder()
                .budget_name(spec.name)
                .budget_type(spec.kind.clone())
                .time_unit(spec.time_unit.clone())
                .budget_limit(spend(spec.limit)?)
                .calculated_spend(calculated.build());
            if let Some(service) = spec.service {
                #[allow(deprecated)]
                {
                    budget = budget.cost_filters("Service", vec![service.to_string()]);
                }
            }
            self.budgets
                .create_budget()
                .account_id(ACCOUNT)
                .budget(budget.build()?)
                .send()
                .await?;
        }
        Ok(())
    }

    /// Queues the answer of the next distinct `GetCostAndUsage` request: one monthly bucket,
    /// grouped by service, `(service, amount in USD)`.
    pub async fn queue_costs(
        &self,
        start: &str,
        end: &str,
        services: &[(&str, &str)],
    ) -> Result<()> {
        let groups: Vec<Value> = services
            .iter()
            .map(|(service, amount)| json!({"Keys": [service], "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}}))
            .collect();
        let result = json!({
            "ResultsByTime": [{"TimePeriod": {"Start": start, "End": end}, "Total": {}, "Groups": groups, "Estimated": true}],
            "DimensionValueAttributes": [],
        });
        self.moto
            .control(
                "/moto-api/static/ce/cost-and-usage-results",
                &json!({"results": [result]}),
            )
            .await
    }

    /// The function's environment for the emulator; `extra` adds or overrides variables.
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.moto.env();
        env.push(("STATE_BUCKET".into(), BUCKET.into()));
        env.push(("NOTIFY_SNS_TOPIC_ARN".into(), self.topic_arn.clone()));
        env.push(("BUDGET_ACCOUNT_ID".into(), ACCOUNT.into()));
        for (k, v) in extra {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        env
    }

    /// The production handler built in this process against the emulator (the tests choose
    /// the clock).
    pub async fn app(
        &self,
        extra: &[(&str, &str)],
    ) -> Result<App<BudgetsApi, CostExplorerApi, Notifier, StateStore>> {
        let config = Config::from_vars(&Vars::from_pairs(self.env(extra)))?;
        let sdk = self.moto.sdk_config().await;
        let state = StateStore::new(self.moto.s3().await, BUCKET, FUNCTION);
        let notifier = Notifier::connect(&config.notify, &sdk, state.clone()).await?;
        let budgets = BudgetsApi::new(aws_sdk_budgets::Client::new(&sdk));
        let costs = CostExplorerApi::new(aws_sdk_costexplorer::Client::new(&sdk));
        Ok(App::new(config, budgets, costs, notifier, state))
    }

    pub async fn inbox(&self) -> Result<Vec<SnsEnvelope>> {
        self.moto.received_notifications(&self.inbox_url).await
    }

    pub async fn sms(&self) -> Result<Vec<SnsEnvelope>> {
        self.moto.received_notifications(&self.sms_url).await
    }
}

/// A Budgets fixture from `events/` with its SNS timestamp moved to `at` (RFC 3339), so that it
/// falls in the budget period a run uses.
pub fn budgets_event_at(fixture: &str, at: &str) -> Result<Value> {
    let mut event = read_event(fixture)?;
    match event.pointer_mut("/Records/0/Sns/Timestamp") {
        Some(timestamp) => *timestamp = Value::String(at.to_string()),
        None => return fail(format!("{fixture} is not an SNS event")),
    }
    Ok(event)
}
