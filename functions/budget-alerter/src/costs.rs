//! Where the money goes: this month's cost by service from Cost Explorer, one
//! `GetCostAndUsage` call (it costs $0.01) per run that alerts, at most.

use std::future::Future;

use aws_sdk_costexplorer::types::{
    DateInterval, Dimension, DimensionValues, Expression, Granularity, GroupDefinition,
    GroupDefinitionType,
};
use chrono::NaiveDate;
use watchkeeper_shared::error::AwsError;

use crate::money::Amount;

/// The metric asked for: what was charged, before credits and refunds (they are filtered out so
/// the table shows usage, not the net of a promotional credit).
pub const METRIC: &str = "UnblendedCost";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCost {
    pub service: String,
    pub amount: Amount,
}

/// Cost by service over `[start, end)`, largest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostsByService {
    pub start: NaiveDate,
    /// Exclusive, as Cost Explorer takes it.
    pub end: NaiveDate,
    pub services: Vec<ServiceCost>,
    /// Cost Explorer marks figures of an open month as estimated.
    pub estimated: bool,
    /// More services than one answer carries (not fetched: a second page is a second $0.01).
    pub truncated: bool,
}

impl CostsByService {
    pub fn cost_of(&self, service: &str) -> Option<&Amount> {
        self.services
            .iter()
            .find(|s| s.service == service)
            .map(|s| &s.amount)
    }
}

/// The port costs are read through.
pub trait CostSource: Send + Sync {
    fn costs_by_service(
        &self,
        start: NaiveDate,
        end: NaiveDate,
    ) -> impl Future<Output = Result<CostsByService, AwsError>> + Send;
}

/// Cost Explorer (`ce:GetCostAndUsage`).
#[derive(Debug, Clone)]
pub struct CostExplorerApi {
    client: aws_sdk_costexplorer::Client,
}

impl CostExplorerApi {
    pub fn new(client: aws_sdk_costexplorer::Client) -> Self {
        Self { client }
    }
}

fn interval(start: NaiveDate, end: NaiveDate) -> Result<DateInterval, AwsError> {
    DateInterval::builder()
        .start(start.format("%Y-%m-%d").to_string())
        .end(end.format("%Y-%m-%d").to_string())
        .build()
        .map_err(|e| AwsError {
            operation: "ce:GetCostAndUsage",
            code: "ConstructionFailure".into(),
            message: e.to_string(),
            status: None,
            retryable: false,
        })
}

fn without_credits_and_refunds() -> Option<Expression> {
    let record_types = DimensionValues::builder()
        .key(Dimension::RecordType)
        .values("Credit")
        .values("Refund")
        .build();
    let inner = Expression::builder().dimensions(record_types).build();
    Some(Expression::builder().not(inner).build())
}

impl CostSource for CostExplorerApi {
    async fn costs_by_service(
        &self,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<CostsByService, AwsError> {
        let group = GroupDefinition::builder()
            .r#type(GroupDefinitionType::Dimension)
            .key("SERVICE")
            .build();
        let answer = self
            .client
            .get_cost_and_usage()
            .time_period(interval(start, end)?)
            .granularity(Granularity::Monthly)
            .metrics(METRIC)
            .group_by(group)
            .set_filter(without_credits_and_refunds())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ce:GetCostAndUsage", &e))?;
        let mut services: Vec<ServiceCost> = Vec::new();
        let mut estimated = false;
        for result in answer.results_by_time() {
            estimated |= result.estimated();
            for group in result.groups() {
                let Some(service) = group.keys().first() else {
                    continue;
                };
                let Some(metric) = group.metrics().and_then(|m| m.get(METRIC)) else {
                    continue;
                };
                let Some(amount) =
                    Amount::from_api(metric.amount().unwrap_or("0"), metric.unit().unwrap_or(""))
                else {
                    continue;
                };
                // One monthly bucket per month: a range across months adds up per service.
                match services.iter_mut().find(|s| &s.service == service) {
                    Some(existing) => {
                        existing.amount.value = existing.amount.value.saturating_add(amount.value)
                    }
                    None => services.push(ServiceCost {
                        service: service.clone(),
                        amount,
                    }),
                }
            }
        }
        services.sort_by(|a, b| {
            b.amount
                .value
                .cmp(&a.amount.value)
                .then_with(|| a.service.cmp(&b.service))
        });
        Ok(CostsByService {
            start,
            end,
            services,
            estimated,
            truncated: answer.next_page_token().is_some_and(|t| !t.is_empty()),
        })
    }
}
