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
use crate::period::{Period, TimeUnit, complete_days_this_month};
use crate::render::{self, CostsNote};
pub use watchkeeper_shared::runtime::Invocation;

/// AWS bills 8 to 24 hours late: a period's final figures are read (the close-out) from this many
/// hours into the next one (daily budgets: at the first check), and until
/// [`CLOSE_OUT_UNTIL_HOURS`] (a function deployed mid-period does not tell last month's
/// crossings weeks late).
const CLOSE_OUT_AFTER_HOURS: i64 = 24;
const CLOSE_OUT_UNTIL_HOURS: i64 = 96;

/// How long into a period an AWS notification may still be about the one before, and the
/// budget's figures may still be the previous period's (AWS has not rolled over).
const LATE_HOURS: i64 = 36;

/// The cap of unverified alerts for messages with no budget of this account to check against
/// (another account, an unknown name, no figure yet): one for them all, so invented names do not
/// each get their own.
const UNCHECKABLE: &str = "_uncheckable";

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
            alerts_sent += self.close_out(&account, budget, &mut run, ctx).await?;
            if self.still_previous(budget, ctx.now).await? {
                tracing::warn!(budget = %budget.name, "the budget's figures are still the previous period's (AWS has not rolled over): its alerts wait for the next check");
                continue;
            }
            let period = budget.period(ctx.now);
            let told = self.record(&budget.name, &period).await?;
            for alert in alert::daily(&self.config, budget, &told, ctx.now) {
                alerts_sent += self
                    .deliver(&alert, Some(budget), &per_service, &mut run, ctx)
                    .await?;
            }
            self.remember_actual(budget, &period, &told).await?;
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

    /// Changes the period's record (`change` must be idempotent: see [`Store::modify`]).
    async fn update_record(
        &self,
        budget: &str,
        period: &Period,
        change: impl Fn(&mut PeriodRecord) + Send + Sync,
    ) -> Result<(), AlertError> {
        self.state
            .modify(
                &PeriodRecord::key(budget, period),
                |current: Option<PeriodRecord>| {
                    let mut record = current.unwrap_or_default();
                    change(&mut record);
                    record
                },
            )
            .await?;
        Ok(())
    }

    /// Closes out the period before the current one, once: its final actual spend (one
    /// `DescribeBudgetPerformanceHistory` call per budget and check, only in the window) tells a
    /// threshold crossed after its last daily check, under that period's key. No figure yet, or
    /// a failed read: the next check in the window tries again.
    async fn close_out(
        &self,
        account: &str,
        budget: &Budget,
        run: &mut Run,
        ctx: &Invocation,
    ) -> Result<u64, AlertError> {
        let Some(previous) = budget.previous_period(ctx.now) else {
            return Ok(0);
        };
        let period = budget.period(ctx.now);
        let hours = period.hours_in(ctx.now);
        let after = if budget.time_unit == TimeUnit::Daily {
            0
        } else {
            CLOSE_OUT_AFTER_HOURS
        };
        if !budget.tracks_spend()
            || !budget.time_unit.has_history()
            || !(after..CLOSE_OUT_UNTIL_HOURS).contains(&hours)
        {
            return Ok(0);
        }
        let told = self.record(&budget.name, &previous).await?;
        if told.closed {
            return Ok(0);
        }
        let final_actual = match self
            .budgets
            .final_actual(account, &budget.name, &previous, &period)
            .await
        {
            Ok(Some(amount)) => amount,
            Ok(None) => {
                tracing::info!(budget = %budget.name, period = %previous.key, "no final figures for the previous period yet: its close-out waits for the next check");
                return Ok(0);
            }
            Err(e) => {
                tracing::warn!(budget = %budget.name, period = %previous.key, error = %e, "the previous period's final figures are unavailable: its close-out waits for the next check");
                return Ok(0);
            }
        };
        let mut sent = 0;
        if let Some(alert) =
            alert::close_out(&self.config, budget, &final_actual, &told, previous.clone())
        {
            sent = self.deliver(&alert, Some(budget), &[], run, ctx).await?;
        }
        self.update_record(&budget.name, &previous, |record| record.closed = true)
            .await?;
        Ok(sent)
    }

    /// Whether the budget's current figures are still the previous period's: in the period's
    /// first hours, an actual spend at or above what the previous period's last check saw (AWS
    /// rolls budgets over some hours into a period; spend only grows within one). Daily budgets
    /// are not judged: a day's spend can equal the day before's.
    async fn still_previous(
        &self,
        budget: &Budget,
        now: DateTime<Utc>,
    ) -> Result<bool, AlertError> {
        let period = budget.period(now);
        let (Some(previous), Some(actual)) = (budget.previous_period(now), &budget.actual) else {
            return Ok(false);
        };
        if budget.time_unit == TimeUnit::Daily || period.hours_in(now) >= LATE_HOURS {
            return Ok(false);
        }
        let last = self.record(&budget.name, &previous).await?.last_actual;
        Ok(last
            .and_then(|l| l.parse::<rust_decimal::Decimal>().ok())
            .is_some_and(|l| !l.is_zero() && actual.value >= l))
    }

    /// Keeps the actual spend this check saw in the period's record (written when it changed).
    async fn remember_actual(
        &self,
        budget: &Budget,
        period: &Period,
        told: &PeriodRecord,
    ) -> Result<(), AlertError> {
        let Some(actual) = budget.actual.as_ref().filter(|_| budget.tracks_spend()) else {
            return Ok(());
        };
        let seen = actual.value.normalize().to_string();
        if told.last_actual.as_deref() == Some(seen.as_str()) {
            return Ok(());
        }
        self.update_record(&budget.name, period, |record| {
            record.last_actual = Some(seen.clone())
        })
        .await
    }

    /// What a message is checked against: the budget's own figure for the period the message is
    /// about, or why there is none. `at` is when AWS published it, `now` when its figures are read.
    async fn check<'a>(
        &self,
        message: &BudgetsMessage,
        account: Option<&str>,
        budgets: &'a [Budget],
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Check<'a>, AlertError> {
        let account = match (account, &message.account) {
            (None, _) => {
                return Ok(Check::Unverified(
                    "the function's own account is unknown".into(),
                ));
            }
            (Some(own), Some(named)) if named != own => {
                return Ok(Check::Unverified(format!(
                    "the message names account {named}, not this function's"
                )));
            }
            (Some(own), _) => own,
        };
        let Some(budget) = budgets.iter().find(|b| b.name == message.budget_name) else {
            return Ok(Check::Unverified(
                "no budget of that name in this account".into(),
            ));
        };
        if !budget.tracks_spend() {
            return Ok(Check::Unverified(format!(
                "{} is a {} budget, whose thresholds this function does not grade",
                budget.name,
                budget.kind.to_ascii_lowercase()
            )));
        }
        let actual = message.alert_type == budgets_text::AlertType::Actual;
        let period_at = budget.period(at);
        let period_now = budget.period(now);
        // The period the message is about has ended (handled, or retried, after the rollover):
        // only its final figures can bear it out.
        if period_at != period_now {
            let ended = period_at.label.clone();
            return Ok(self
                .check_final(message, account, budget, period_at, &period_now)
                .await
                .unwrap_or_else(|| {
                    Check::Unverified(format!(
                        "it is about {ended}, which has ended, and that period's final figures do not bear it out (or are not available)"
                    ))
                }));
        }
        let own = if actual {
            budget.actual.clone()
        } else {
            budget.forecast.clone()
        };
        let Some((amount, percent)) = own.and_then(|a| a.percent_of(&budget.limit).map(|p| (a, p)))
        else {
            return Ok(Check::Unverified(format!(
                "the budget has no {} figure yet",
                message.alert_type.as_str().to_ascii_lowercase()
            )));
        };
        // Figures AWS has not rolled over yet belong to the period before.
        let previous = budget.previous_period(now);
        if actual
            && self.still_previous(budget, now).await?
            && let Some(previous) = previous.clone()
        {
            return Ok(Check::Budget {
                budget,
                period: previous,
                amount,
                ended: false,
            });
        }
        if alert::bears_out(&self.config, message, percent, true) {
            return Ok(Check::Budget {
                budget,
                period: period_now,
                amount,
                ended: false,
            });
        }
        // Published in a period's first hours: it may be about the one before (AWS bills late).
        if actual
            && period_now.hours_in(at) < LATE_HOURS
            && let Some(previous) = previous
            && let Some(check) = self
                .check_final(message, account, budget, previous, &period_now)
                .await
        {
            return Ok(check);
        }
        Ok(Check::Budget {
            budget,
            period: period_now,
            amount,
            ended: false,
        })
    }

    /// The message checked against `period`'s final actual spend, when that bears it out.
    async fn check_final<'a>(
        &self,
        message: &BudgetsMessage,
        account: &str,
        budget: &'a Budget,
        period: Period,
        next: &Period,
    ) -> Option<Check<'a>> {
        if message.alert_type != budgets_text::AlertType::Actual || !budget.time_unit.has_history()
        {
            return None;
        }
        let amount = match self
            .budgets
            .final_actual(account, &budget.name, &period, next)
            .await
        {
            Ok(amount) => amount?,
            Err(e) => {
                tracing::warn!(budget = %budget.name, period = %period.key, error = %e, "final figures unavailable");
                return None;
            }
        };
        let percent = amount.percent_of(&budget.limit)?;
        alert::bears_out(&self.config, message, percent, false).then_some(Check::Budget {
            budget,
            period,
            amount,
            ended: true,
        })
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
        // account only (the message's account line is the sender's to write). Budgets that
        // cannot be read now fail the invocation retryably: a real notification must not be told
        // unverified (without SMS) for want of a moment's patience.
        let account = self.account(ctx).ok();
        let budgets = match &account {
            Some(account) if parsed.account.as_deref().is_none_or(|a| a == account) => {
                self.budgets.budgets(account).await?
            }
            _ => Vec::new(),
        };
        let per_service: Vec<Budget> = budgets
            .iter()
            .filter(|b| !b.services.is_empty() && self.config.watches(&b.name))
            .cloned()
            .collect();
        let at = record.sent_at(ctx.now);
        let check = self
            .check(&parsed, account.as_deref(), &budgets, at, ctx.now)
            .await?;
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
        if !alert.verified
            && !self
                .record(
                    budget.map_or(UNCHECKABLE, |b| b.name.as_str()),
                    &alert.period,
                )
                .await?
                .allows_unverified(&alert.key())
        {
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
        // The budget's figures and this month's top services only beside an alert about the
        // current period, and never asked for a message that could not be checked.
        let current = budget.filter(|b| b.period(ctx.now) == alert.period);
        let costs = if !alert.verified {
            CostsNote::Skipped("not asked for a notification that could not be checked".into())
        } else if current.is_none() && budget.is_some() {
            CostsNote::Skipped("the alert is about a period that has ended".into())
        } else {
            if run.costs.is_none() {
                run.costs = Some(self.where_the_money_goes(ctx.now).await);
            }
            run.costs
                .clone()
                .unwrap_or(CostsNote::Skipped("not asked".into()))
        };
        let n = render::notification(
            alert,
            current,
            &costs,
            per_service,
            self.config.top_services,
        );
        let sent = self.send(&alert.key(), &n, &ctx.deadline).await?;
        // After the send: a failed write is repaired by the next run, whose send of the same key
        // is then a no-op. Unverified alerts count toward their cap, under the budget checked
        // against or, without one, all together.
        let record_under = if alert.recorded {
            Some(alert.budget.as_str())
        } else if !alert.verified {
            Some(budget.map_or(UNCHECKABLE, |b| b.name.as_str()))
        } else {
            None
        };
        if let Some(name) = record_under {
            self.update_record(name, &alert.period, |record| record.record(alert))
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
