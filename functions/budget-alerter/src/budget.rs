//! Budgets as the alerter sees them, and the port they are read through (`DescribeBudgets`).

use std::future::Future;

use aws_sdk_budgets::primitives::DateTime as SmithyTime;
use aws_sdk_budgets::types::{Budget as SdkBudget, Dimension};
use aws_sdk_budgets::types::{BudgetedAndActualAmounts, Expression, TimePeriod};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use watchkeeper_shared::error::AwsError;

use crate::money::Amount;
use crate::period::{Period, TimeUnit};

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
    /// `TimePeriod.Start`: where its quarters and years begin.
    pub start: Option<NaiveDate>,
}

impl Budget {
    /// Cost and usage budgets alert when spend goes up; utilization and coverage budgets alert
    /// when it goes down, which thresholds in percent of a limit do not describe.
    pub fn tracks_spend(&self) -> bool {
        matches!(self.kind.as_str(), "COST" | "USAGE")
    }

    /// The period `at` falls in, by the budget's own calendar.
    pub fn period(&self, at: DateTime<Utc>) -> Period {
        self.time_unit.period_from(at, self.start)
    }

    /// The period before the one `at` falls in (none for a custom budget).
    pub fn previous_period(&self, at: DateTime<Utc>) -> Option<Period> {
        self.time_unit.previous(&self.period(at), self.start)
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

    /// What `budget` had spent by the end of `period`, which ended when `next` began
    /// (`DescribeBudgetPerformanceHistory`); `None` when AWS has no figure for it.
    fn final_actual(
        &self,
        account: &str,
        budget: &str,
        period: &Period,
        next: &Period,
    ) -> impl Future<Output = Result<Option<Amount>, AwsError>> + Send;
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
                // Without it AWS leaves `FilterExpression` out (budgets made the newer way).
                .show_filter_expression(true)
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
        if token.is_some() {
            tracing::warn!(
                read = budgets.len(),
                "more than {MAX_PAGES} pages of budgets: the rest are not checked"
            );
        }
        Ok(budgets)
    }

    async fn final_actual(
        &self,
        account: &str,
        budget: &str,
        period: &Period,
        next: &Period,
    ) -> Result<Option<Amount>, AwsError> {
        let time = |day: NaiveDate| {
            SmithyTime::from_secs(
                day.and_hms_opt(0, 0, 0)
                    .unwrap_or_default()
                    .and_utc()
                    .timestamp(),
            )
        };
        let out = self
            .client
            .describe_budget_performance_history()
            .account_id(account)
            .budget_name(budget)
            .time_period(
                TimePeriod::builder()
                    .start(time(period.start))
                    .end(time(next.start))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("budgets:DescribeBudgetPerformanceHistory", &e))?;
        Ok(out
            .budget_performance_history()
            .and_then(|h| final_actual_of(h.budgeted_and_actual_amounts_list(), period)))
    }
}

/// The actual amount of the entry for the period starting at `period.start`.
pub fn final_actual_of(entries: &[BudgetedAndActualAmounts], period: &Period) -> Option<Amount> {
    entries
        .iter()
        .find(|entry| {
            entry
                .time_period()
                .and_then(|t| t.start())
                .and_then(|t| DateTime::from_timestamp(t.secs(), 0))
                .is_some_and(|t| t.date_naive() == period.start)
        })
        .and_then(|entry| entry.actual_amount())
        .and_then(|s| Amount::from_api(s.amount(), s.unit()))
}

/// The `Service` dimension values of a filter expression, wherever an `And` nests them.
fn expression_dimensions(expression: &Expression, found: &mut Vec<(String, Vec<String>)>) {
    if let Some(dimensions) = expression.dimensions() {
        found.push((
            dimensions.key().as_str().to_string(),
            dimensions.values().to_vec(),
        ));
    }
    for inner in expression.and() {
        expression_dimensions(inner, found);
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
    if let Some(expression) = raw.filter_expression() {
        // `And` narrows (a service in a region); `Or` and `Not` widen or invert, and are only
        // shown, never taken as a per-service budget.
        let mut found = Vec::new();
        expression_dimensions(expression, &mut found);
        for (key, values) in found {
            if key == Dimension::Service.as_str() {
                services.extend(values.iter().cloned());
            }
            scope.push(format!("{key} = {}", values.join(", ")));
        }
        if !expression.or().is_empty() || expression.not().is_some() {
            scope.push("a filter with Or/Not (see the console)".into());
        }
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
        start,
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

    /// A per-service budget made the newer way: `FilterExpression`, the service inside an `And`.
    #[test]
    fn filter_expression_budgets_are_per_service_too() {
        use aws_sdk_budgets::types::ExpressionDimensionValues;
        let dimension = |key: Dimension, value: &str| {
            Expression::builder()
                .dimensions(
                    ExpressionDimensionValues::builder()
                        .key(key)
                        .values(value)
                        .build()
                        .unwrap(),
                )
                .build()
        };
        let raw = SdkBudget::builder()
            .budget_name("des-s3")
            .budget_type(BudgetType::Cost)
            .time_unit(SdkUnit::Quarterly)
            .budget_limit(spend("2.0"))
            .time_period(
                TimePeriod::builder()
                    .start(SmithyTime::from_secs(1_778_198_400)) // 2026-05-08
                    .build(),
            )
            .filter_expression(
                Expression::builder()
                    .and(dimension(
                        Dimension::Service,
                        "Amazon Simple Storage Service",
                    ))
                    .and(dimension(Dimension::Region, "eu-west-1"))
                    .build(),
            )
            .build()
            .unwrap();
        let budget = from_sdk(&raw).unwrap();
        assert_eq!(budget.services, ["Amazon Simple Storage Service"]);
        assert_eq!(budget.scope.len(), 2);
        assert_eq!(budget.start, NaiveDate::from_ymd_opt(2026, 5, 8));
        let period = budget.period("2026-07-31T12:00:00Z".parse().unwrap());
        assert_eq!(period.key, "quarter-from-2026-05");
    }

    #[test]
    fn the_final_figure_is_the_entry_of_the_period_asked_for() {
        let entry = |start: i64, actual: &str| {
            BudgetedAndActualAmounts::builder()
                .actual_amount(spend(actual))
                .time_period(
                    TimePeriod::builder()
                        .start(SmithyTime::from_secs(start))
                        .build(),
                )
                .build()
        };
        // 2026-09-01 and 2026-10-01, as AWS lists them.
        let entries = [entry(1_788_220_800, "11.00"), entry(1_790_812_800, "25.40")];
        let october = TimeUnit::Monthly.period("2026-10-15T00:00:00Z".parse().unwrap());
        assert_eq!(
            final_actual_of(&entries, &october),
            Amount::from_api("25.40", "USD")
        );
        let august = TimeUnit::Monthly.period("2026-08-15T00:00:00Z".parse().unwrap());
        assert_eq!(final_actual_of(&entries, &august), None);
    }
}
