//! Turns one invocation into alerts: an SNS batch of AWS Budgets notifications, or the daily
//! check of every watched budget. Each alert is sent once per key; the per-period record keeps
//! the daily check and late notifications from repeating what was told.

use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Value, json};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::notify::{Notification, Notify};
use watchkeeper_shared::state::{Store, key_segment};
use watchkeeper_shared::telemetry::{Metrics, Unit};

use crate::alert::{self, Alert, Check, PeriodRecord};
use crate::budget::{Budget, BudgetSource};
use crate::budgets_text;
use crate::budgets_text::BudgetsMessage;
use crate::config::Config;
use crate::costs::CostSource;
use crate::error::AlertError;
use crate::event::{EventKind, SnsRecord, classify};
use crate::period::{Period, complete_days_this_month};
use crate::render::{self, CostsNote};
pub use watchkeeper_shared::runtime::Invocation;

/// A period is closed out (its final figures read once) only in its successor's first hours: a
/// function deployed mid-period does not tell last month's crossings weeks late.
const CLOSE_OUT_HOURS: i64 = 72;

/// How long after a period begins an AWS notification may still be about the one before: AWS
/// bills with a lag of 8 to 24 hours.
const LATE_MESSAGE_HOURS: i64 = 36;

pub struct App<B, C, N, S> {
    config: Config,
    budgets: B,
    costs: C,
    notifier: N,
    state: S,
}

/// What one run has gathered: the Cost Explorer table (asked once at most) and what it sent.
#[derive(Default)]
struct Run {
    costs: Option<CostsNote>,
    alerts: Vec<Value>,
}

impl<B: BudgetSource, C: CostSource, N: Notify, S: Store> App<B, C, N, S> {
    pub fn new(config: Config, budgets: B, costs: C, notifier: N, state: S) -> Self {
        Self {
            config,
            budgets,
            costs,
            notifier,
            state,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles one invocation. Errors are for Lambda to retry or dead-letter.
    pub async fn handle(&self, payload: Value, ctx: &Invocation) -> Result<Value, AlertError> {
        let result = match classify(&payload)? {
            EventKind::Schedule => self.daily_check(ctx).await,
            EventKind::Sns(records) => self.notifications(&records, ctx).await,
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, retryable = e.is_retryable(), "invocation failed");
        }
        result
    }

    fn account(&self, ctx: &Invocation) -> Result<String, AlertError> {
        self.config
            .account_id
            .clone()
            .or_else(|| ctx.account.clone())
            .ok_or_else(|| {
                watchkeeper_shared::config::ConfigError::new(
                    "BUDGET_ACCOUNT_ID",
                    "is not set and the invoked function's ARN names no account",
                )
                .into()
            })
    }

    /// Reads every watched budget, alerts on each threshold crossed for the first time this
    /// period, and reports spend as metrics.
    pub async fn daily_check(&self, ctx: &Invocation) -> Result<Value, AlertError> {
        let account = self.account(ctx)?;
        let all = self.budgets.budgets(&account).await?;
        let watched: Vec<&Budget> = all
            .iter()
            .filter(|b| self.config.watches(&b.name))
            .collect();
        let per_service: Vec<Budget> = watched
            .iter()
            .filter(|b| !b.services.is_empty())
            .map(|b| (*b).clone())
            .collect();
        let mut run = Run::default();
        let mut alerts_sent = 0u64;
        for budget in &watched {
            // Utilization and coverage budgets measure something else than spend.
            if let Some(percent) = budget
                .actual_percent()
                .filter(|_| budget.tracks_spend())
                .and_then(|p| p.to_f64())
            {
                let mut m = Metrics::for_function(crate::NAME).dimension("Budget", &budget.name);
                m.record("SpendPercent", Unit::Percent, percent);
                m.emit();
            }
            if self
                .close_out(
                    &account,
                    budget,
                    &per_service,
                    &mut run,
                    ctx,
                    &mut alerts_sent,
                )
                .await?
            {
                tracing::warn!(budget = %budget.name, "the budget's figures are still the previous period's: its alerts wait for the next check");
                continue;
            }
            let told = self.record(&budget.name, &budget.period(ctx.now)).await?;
            for alert in alert::daily(&self.config, budget, &told, ctx.now) {
                alerts_sent += self
                    .deliver(&alert, Some(budget), &per_service, &mut run, ctx)
                    .await?;
            }
        }
        count_alerts(alerts_sent);
        // Alerts for the budgets that exist went out first; a configuration that no longer
        // matches the account is then reported, permanently, for a person to fix.
        self.config.check_against(&all)?;
        let summary = json!({"check": "daily", "account": account, "budgets": watched.len(), "alerts": run.alerts});
        tracing::info!(summary = %summary, "daily check done");
        Ok(summary)
    }

    /// The period's told thresholds.
    async fn record(&self, budget: &str, period: &Period) -> Result<PeriodRecord, AlertError> {
        Ok(self
            .state
            .load::<PeriodRecord>(&PeriodRecord::key(budget, period))
            .await?
            .map(|v| v.value)
            .unwrap_or_default())
    }

    /// In the first hours of a period, closes out the one before once: its final actual spend
    /// (one `DescribeBudgetPerformanceHistory` call per budget, only then) tells a threshold
    /// crossed on its last day, under that period's key. Returns whether the budget's current
    /// figures are still the previous period's (AWS has not rolled over yet): then they must not
    /// count for the new period. A failed read is tried again by the next check.
    async fn close_out(
        &self,
        account: &str,
        budget: &Budget,
        per_service: &[Budget],
        run: &mut Run,
        ctx: &Invocation,
        alerts_sent: &mut u64,
    ) -> Result<bool, AlertError> {
        let period = budget.period(ctx.now);
        let Some(previous) = budget.previous_period(ctx.now) else {
            return Ok(false);
        };
        if !budget.tracks_spend()
            || !budget.time_unit.has_history()
            || period.hours_in(ctx.now) >= CLOSE_OUT_HOURS
        {
            return Ok(false);
        }
        let told = self.record(&budget.name, &previous).await?;
        if told.closed {
            return Ok(false);
        }
        let final_actual = match self
            .budgets
            .final_actual(account, &budget.name, &previous, &period)
            .await
        {
            Ok(amount) => amount,
            Err(e) => {
                tracing::warn!(budget = %budget.name, period = %previous.key, error = %e, "the previous period's final figures are unavailable: its close-out waits for the next check");
                return Ok(false);
            }
        };
        if let Some(amount) = &final_actual
            && let Some(alert) =
                alert::close_out(&self.config, budget, amount, &told, previous.clone())
        {
            *alerts_sent += self
                .deliver(&alert, Some(budget), per_service, run, ctx)
                .await?;
        }
        self.state
            .modify(
                &PeriodRecord::key(&budget.name, &previous),
                |current: Option<PeriodRecord>| {
                    let mut record = current.unwrap_or_default();
                    record.closed = true;
                    record
                },
            )
            .await?;
        Ok(final_actual.is_some_and(|f| !f.value.is_zero() && budget.actual.as_ref() == Some(&f)))
    }

    /// What a message is checked against: the budget's own figure for the period the message is
    /// about, or why there is none.
    async fn check<'a>(
        &self,
        message: &BudgetsMessage,
        account: Option<&str>,
        budgets: Result<&'a [Budget], String>,
        at: chrono::DateTime<Utc>,
    ) -> Check<'a> {
        let account = match (account, &message.account) {
            (None, _) => return Check::Unverified("the function's own account is unknown".into()),
            (Some(own), Some(named)) if named != own => {
                return Check::Unverified(format!(
                    "the message names account {named}, not this function's"
                ));
            }
            (Some(own), _) => own,
        };
        let budgets = match budgets {
            Ok(budgets) => budgets,
            Err(why) => {
                return Check::Unverified(format!(
                    "the account's budgets could not be read ({why})"
                ));
            }
        };
        let Some(budget) = budgets.iter().find(|b| b.name == message.budget_name) else {
            return Check::Unverified("no budget of that name in this account".into());
        };
        if !budget.tracks_spend() {
            return Check::Unverified(format!(
                "{} is a {} budget, whose thresholds this function does not grade",
                budget.name,
                budget.kind.to_ascii_lowercase()
            ));
        }
        let period = budget.period(at);
        let own = match message.alert_type {
            budgets_text::AlertType::Actual => budget.actual.clone(),
            budgets_text::AlertType::Forecasted => budget.forecast.clone(),
        };
        let current = own.and_then(|amount| {
            let percent = amount.percent_of(&budget.limit)?;
            Some((amount, percent))
        });
        if let Some((amount, percent)) = &current
            && alert::bears_out(&self.config, message, *percent)
        {
            return Check::Budget {
                budget,
                period,
                amount: amount.clone(),
            };
        }
        // A late notification about the period that just ended: its final figures decide.
        let late = period.hours_in(at) < LATE_MESSAGE_HOURS
            || message.date.is_some_and(|d| d < period.start);
        if late
            && message.alert_type == budgets_text::AlertType::Actual
            && budget.time_unit.has_history()
            && let Some(previous) = budget.previous_period(at)
        {
            match self
                .budgets
                .final_actual(account, &budget.name, &previous, &period)
                .await
            {
                Ok(Some(amount)) => {
                    if amount
                        .percent_of(&budget.limit)
                        .is_some_and(|p| alert::bears_out(&self.config, message, p))
                    {
                        return Check::Budget {
                            budget,
                            period: previous,
                            amount,
                        };
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the previous period's figures are unavailable");
                }
            }
        }
        match current {
            Some((amount, _)) => Check::Budget {
                budget,
                period,
                amount,
            },
            None => Check::Unverified(format!(
                "the budget has no {} figure yet",
                message.alert_type.as_str().to_ascii_lowercase()
            )),
        }
    }

    async fn notifications(
        &self,
        records: &[SnsRecord],
        ctx: &Invocation,
    ) -> Result<Value, AlertError> {
        let mut results = Vec::new();
        let mut first_error = None;
        let mut run = Run::default();
        // Every record is tried; the first failure is returned so Lambda retries the batch, and
        // the per-key sends keep the records that went out from going out twice.
        for record in records {
            match self.notification(record, ctx, &mut run).await {
                Ok(result) => results.push(result),
                Err(e) => {
                    tracing::error!(message_id = %record.message_id, error = %e, "budget notification failed");
                    results.push(json!({"message_id": record.message_id, "outcome": "failed", "error": e.to_string()}));
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(json!({"records": results})),
        }
    }

    async fn notification(
        &self,
        record: &SnsRecord,
        ctx: &Invocation,
        run: &mut Run,
    ) -> Result<Value, AlertError> {
        let parsed = match budgets_text::parse(&record.message) {
            Ok(parsed) => parsed,
            Err(why) => {
                tracing::warn!(message_id = %record.message_id, reason = why.0, "unparsed message forwarded");
                let n = render::unparsed(
                    record.subject.as_deref(),
                    &record.message,
                    &record.topic_arn,
                    &record.message_id,
                    why.0,
                );
                let key = format!("unparsed/{}", key_segment(&record.message_id));
                let sent = self.send(&key, &n, &ctx.deadline).await?;
                count_alerts(sent);
                return Ok(
                    json!({"message_id": record.message_id, "outcome": "forwarded unparsed", "sent": sent > 0}),
                );
            }
        };
        if !self.config.watches(&parsed.budget_name) {
            tracing::info!(budget = %parsed.budget_name, "notification for a budget not in BUDGET_NAMES: ignored");
            return Ok(
                json!({"message_id": record.message_id, "outcome": "ignored", "budget": parsed.budget_name}),
            );
        }
        // The budget's own figures and the per-service budgets, read from this function's own
        // account only (the message's account line is the sender's to write). Without them the
        // alert still goes out, unverified, with the message's figures.
        let account = self.account(ctx).ok();
        let budgets = match &account {
            Some(account) if parsed.account.as_deref().is_none_or(|a| a == account) => {
                self.budgets.budgets(account).await.map_err(|e| {
                    tracing::warn!(error = %e, "budgets unavailable: alerting with the message's figures, unverified");
                    e.code
                })
            }
            _ => Ok(Vec::new()),
        };
        let per_service: Vec<Budget> = budgets
            .iter()
            .flatten()
            .filter(|b| !b.services.is_empty() && self.config.watches(&b.name))
            .cloned()
            .collect();
        let at = record.sent_at(ctx.now);
        let check = self
            .check(
                &parsed,
                account.as_deref(),
                budgets.as_deref().map_err(String::clone),
                at,
            )
            .await;
        let budget = match &check {
            Check::Budget { budget, .. } => Some(*budget),
            Check::Unverified(_) => None,
        };
        let alert = alert::from_message(&self.config, &parsed, &check, at);
        let told = self.record(&alert.budget, &alert.period).await?;
        if told.covers(alert.alert_type, alert.threshold) {
            count_alerts(0);
            return Ok(
                json!({"message_id": record.message_id, "outcome": "already alerted", "key": alert.key()}),
            );
        }
        if !alert.verified && !told.allows_unverified(&alert.key()) {
            tracing::warn!(budget = %alert.budget, key = %alert.key(), "unverified notification not told: {} already this period", alert::MAX_UNVERIFIED);
            count_alerts(0);
            return Ok(
                json!({"message_id": record.message_id, "outcome": "unverified, not told: the period's limit is reached", "key": alert.key()}),
            );
        }
        let sent = self.deliver(&alert, budget, &per_service, run, ctx).await?;
        count_alerts(sent);
        Ok(json!({"message_id": record.message_id, "outcome": "alerted", "alerts": run.alerts}))
    }

    /// Sends one alert (with the top-services table, asked once per run) and records it for the
    /// period. Returns 1 if it went out now, 0 if it had gone out before.
    async fn deliver(
        &self,
        alert: &Alert,
        budget: Option<&Budget>,
        per_service: &[Budget],
        run: &mut Run,
        ctx: &Invocation,
    ) -> Result<u64, AlertError> {
        if run.costs.is_none() {
            run.costs = Some(self.where_the_money_goes(ctx.now).await);
        }
        let costs = run
            .costs
            .as_ref()
            .cloned()
            .unwrap_or(CostsNote::Skipped("not asked".into()));
        let n = render::notification(alert, budget, &costs, per_service, self.config.top_services);
        let sent = self.send(&alert.key(), &n, &ctx.deadline).await?;
        // After the send: a failed write is repaired by the next run, whose send of the same key
        // is then a no-op.
        if alert.recorded || !alert.verified {
            self.state
                .modify(
                    &PeriodRecord::key(&alert.budget, &alert.period),
                    |current: Option<PeriodRecord>| {
                        let mut record = current.unwrap_or_default();
                        record.record(alert);
                        record
                    },
                )
                .await?;
        }
        run.alerts.push(json!({"key": alert.key(), "subject": n.subject_line(), "severity": alert.severity, "sms": alert.sms, "sent": sent > 0}));
        Ok(sent)
    }

    /// The one place a notification is sent. A send of the same key in flight elsewhere is a
    /// retryable error: Lambda retries, and the retry finds it done or takes the claim over.
    async fn send(
        &self,
        key: &str,
        n: &Notification,
        deadline: &Deadline,
    ) -> Result<u64, AlertError> {
        let delivery = self.notifier.send_once(key, n, deadline).await?;
        Ok(u64::from(!delivery.sent.is_empty()))
    }

    async fn where_the_money_goes(&self, now: DateTime<Utc>) -> CostsNote {
        if !self.config.cost_explorer {
            return CostsNote::Skipped("BUDGET_COST_EXPLORER is off".into());
        }
        if self.config.top_services == 0 {
            return CostsNote::Skipped("BUDGET_TOP_SERVICES is 0".into());
        }
        let Some((start, end)) = complete_days_this_month(now) else {
            return CostsNote::Skipped(
                "too early in the month: Cost Explorer has no complete day yet".into(),
            );
        };
        match self.costs.costs_by_service(start, end).await {
            Ok(table) => CostsNote::Table(table),
            Err(e) => {
                tracing::warn!(error = %e, "Cost Explorer unavailable: alerting without the top-services table");
                CostsNote::Skipped(format!("Cost Explorer unavailable: {}", e.code))
            }
        }
    }
}

fn count_alerts(sent: u64) {
    let mut m = Metrics::for_function(crate::NAME);
    m.count("BudgetAlerts", sent);
    m.emit();
}

#[cfg(test)]
mod tests;
