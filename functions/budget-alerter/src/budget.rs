//! Budgets as the alerter sees them, and the port they are read through (`DescribeBudgets`).

use std::future::Future;

use aws_sdk_budgets::types::{Budget as SdkBudget, Dimension};
use chrono::DateTime;
use rust_decimal::Decimal;
use watchkeeper_shared::error::AwsError;

use crate::money::Amount;
use crate::period::TimeUnit;

/// `DescribeBudgets` pages read at most, 100 budgets each.
pub const MAX_PAGES: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub name: String,
    /// `COST`, `USAGE`, `RI_UTILIZATION`, ...
    pub kind: String,
    pub time_unit: TimeUnit,
    pub limit: Amount,
    pub actual: Option<Amount>,
    pub forecast: Option<Amount>,
    /// The services a per-service budget is limited to (Cost Explorer's SERVICE names).
    pub services: Vec<String>,
    /// Every filter, for people: `Service = AmazonCloudWatch`.
    pub scope: Vec<String>,
    /// Whether credits count against the budget (`CostTypes.IncludeCredit`), when AWS says.
    pub credits_included: Option<bool>,
}

impl Budget {
    /// Cost and usage budgets alert when spend goes up; utilization and coverage budgets alert
    /// when it goes down, which thresholds in percent of a limit do not describe.
    pub fn tracks_spend(&self) -> bool {
        matches!(self.kind.as_str(), "COST" | "USAGE")
    }

    pub fn actual_percent(&self) -> Option<Decimal> {
        self.actual.as_ref()?.percent_of(&self.limit)
    }

    pub fn forecast_percent(&self) -> Option<Decimal> {
        self.forecast.as_ref()?.percent_of(&self.limit)
    }

    /// `cost, monthly, credits included`.
    pub fn describe(&self) -> String {
        let mut parts = vec![
            self.kind.to_ascii_lowercase(),
            self.time_unit.as_word().to_string(),
        ];
        match self.credits_included {
            Some(true) => parts.push("credits included".into()),
            Some(false) => parts.push("credits excluded".into()),
            None => {}
        }
        parts.join(", ")
    }
}

/// The port budgets are read through.
pub trait BudgetSource: Send + Sync {
    /// Every budget of `account`, with its actual and forecasted spend.
    fn budgets(&self, account: &str) -> impl Future<Output = Result<Vec<Budget>, AwsError>> + Send;
}

/// AWS Budgets (`budgets:ViewBudget`).
#[derive(Debug, Clone)]
pub struct BudgetsApi {
    client: aws_sdk_budgets::Client,
}

impl BudgetsApi {
    pub fn new(client: aws_sdk_budgets::Client) -> Self {
        Self { client }
    }
}

impl BudgetSource for BudgetsApi {
    async fn budgets(&self, account: &str) -> Result<Vec<Budget>, AwsError> {
        let mut budgets = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .client
                .describe_budgets()
                .account_id(account)
                .max_results(100)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("budgets:DescribeBudgets", &e))?;
            for raw in page.budgets() {
                match from_sdk(raw) {
                    Some(budget) => budgets.push(budget),
                    None => tracing::warn!(
                        budget = raw.budget_name(),
                        "budget without a fixed limit or known time unit: not checked"
                    ),
                }
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(String::from);
            if token.is_none() {
                break;
            }
        }
        Ok(budgets)
    }
}

/// The SDK's budget, or `None` for one the alerter cannot reason about (planned limits only, an
/// unknown time unit). `CostFilters` and `CostTypes` are deprecated in favour of
/// `FilterExpression` and `Metrics`, but budgets made with them (Terraform's `cost_filter`, the
/// the example deployment's per-service budgets) still carry them, so both forms are read.
#[allow(deprecated)]
pub fn from_sdk(raw: &SdkBudget) -> Option<Budget> {
    let spend = |s: Option<&aws_sdk_budgets::types::Spend>| {
        s.and_then(|s| Amount::from_api(s.amount(), s.unit()))
    };
    let limit = spend(raw.budget_limit())?;
    let start = raw
        .time_period()
        .and_then(|p| p.start())
        .and_then(|t| DateTime::from_timestamp(t.secs(), 0))
        .map(|t| t.date_naive());
    let time_unit = TimeUnit::from_api(raw.time_unit().as_str(), start)?;
    let calculated = raw.calculated_spend();
    let mut services = Vec::new();
    let mut scope = Vec::new();
    if let Some(filters) = raw.cost_filters() {
        let mut keys: Vec<_> = filters.keys().collect();
        keys.sort();
        for key in keys {
            let values = filters.get(key).map(Vec::as_slice).unwrap_or_default();
            if key == "Service" {
                services.extend(values.iter().cloned());
            }
            scope.push(format!("{} = {}", key, values.join(", ")));
        }
    }
    if let Some(dimensions) = raw.filter_expression().and_then(|e| e.dimensions()) {
        if *dimensions.key() == Dimension::Service {
            services.extend(dimensions.values().iter().cloned());
        }
        scope.push(format!(
            "{} = {}",
            dimensions.key().as_str(),
            dimensions.values().join(", ")
        ));
    }
    Some(Budget {
        name: raw.budget_name().to_string(),
        kind: raw.budget_type().as_str().to_string(),
        time_unit,
        limit,
        actual: spend(calculated.and_then(|c| c.actual_spend())),
        forecast: spend(calculated.and_then(|c| c.forecasted_spend())),
        services,
        scope,
        credits_included: raw.cost_types().and_then(|c| c.include_credit()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_budgets::types::{
        BudgetType, CalculatedSpend, CostTypes, Spend, TimeUnit as SdkUnit,
    };

    fn spend(amount: &str) -> Spend {
        Spend::builder().amount(amount).unit("USD").build().unwrap()
    }

    #[test]
    #[allow(deprecated)]
    fn sdk_budgets_convert() {
        let raw = SdkBudget::builder()
            .budget_name("des-cloudwatch")
            .budget_type(BudgetType::Cost)
            .time_unit(SdkUnit::Monthly)
            .budget_limit(spend("5.0"))
            .cost_filters("Service", vec!["AmazonCloudWatch".into()])
            .cost_types(CostTypes::builder().include_credit(false).build())
            .calculated_spend(
                CalculatedSpend::builder()
                    .actual_spend(spend("5.00"))
                    .build(),
            )
            .build()
            .unwrap();
        let budget = from_sdk(&raw).unwrap();
        assert_eq!(budget.services, ["AmazonCloudWatch"]);
        assert_eq!(budget.actual_percent(), Some(Decimal::ONE_HUNDRED));
        assert_eq!(budget.forecast_percent(), None);
        assert_eq!(budget.describe(), "cost, monthly, credits excluded");
        assert!(budget.tracks_spend());
        let no_limit = SdkBudget::builder()
            .budget_name("planned")
            .budget_type(BudgetType::Cost)
            .time_unit(SdkUnit::Monthly)
            .build()
            .unwrap();
        assert!(from_sdk(&no_limit).is_none());
    }
}
