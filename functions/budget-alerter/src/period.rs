//! Budget periods: which day, month, quarter or year a figure belongs to (AWS Budgets count in
//! UTC), so that a threshold alerts once per period and again in the next one.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Daily,
    Monthly,
    Quarterly,
    Annually,
    /// A one-off budget over its own dates (`TimeUnit` CUSTOM): one period, from its start.
    Custom {
        start: NaiveDate,
    },
}

impl TimeUnit {
    /// The API's `TimeUnit`; a CUSTOM budget needs its start date.
    pub fn from_api(unit: &str, start: Option<NaiveDate>) -> Option<Self> {
        match unit {
            "DAILY" => Some(Self::Daily),
            "MONTHLY" => Some(Self::Monthly),
            "QUARTERLY" => Some(Self::Quarterly),
            "ANNUALLY" => Some(Self::Annually),
            "CUSTOM" => start.map(|start| Self::Custom { start }),
            _ => None,
        }
    }

    /// The word in a Budgets message: "... for the current month".
    pub fn from_word(word: &str) -> Option<Self> {
        match word
            .trim_matches(|c: char| !c.is_alphabetic())
            .to_ascii_lowercase()
            .as_str()
        {
            "day" => Some(Self::Daily),
            "month" => Some(Self::Monthly),
            "quarter" => Some(Self::Quarterly),
            "year" => Some(Self::Annually),
            _ => None,
        }
    }

    pub fn as_word(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Monthly => "monthly",
            Self::Quarterly => "quarterly",
            Self::Annually => "annual",
            Self::Custom { .. } => "custom-period",
        }
    }

    /// The period `at` falls in, for a budget without a start date of its own.
    pub fn period(self, at: DateTime<Utc>) -> Period {
        self.period_from(at, None)
    }

    /// The period `at` falls in. Quarters and years run from the budget's own start month
    /// (`TimePeriod.Start`: a fiscal year from April, say); without one, from January. Calendar
    /// quarters and years keep the keys `2026-Q4` and `2026`; others are named by their first
    /// month (`year-from-2026-04`).
    pub fn period_from(self, at: DateTime<Utc>, start: Option<NaiveDate>) -> Period {
        let day = at.date_naive();
        let anchor_month0 = start.map_or(0, |s| s.month0());
        match self {
            Self::Daily => Period {
                key: day.format("%Y-%m-%d").to_string(),
                label: day.format("%d %B %Y").to_string(),
                start: day,
            },
            Self::Monthly => {
                let first = first_of_month(day.year(), day.month0());
                Period {
                    key: day.format("%Y-%m").to_string(),
                    label: day.format("%B %Y").to_string(),
                    start: first,
                }
            }
            Self::Quarterly => {
                let first = months_back_to(day, anchor_month0 % 3, 3);
                if anchor_month0.is_multiple_of(3) {
                    let quarter = first.month0() / 3 + 1;
                    Period {
                        key: format!("{}-Q{quarter}", first.year()),
                        label: format!("Q{quarter} {}", first.year()),
                        start: first,
                    }
                } else {
                    Period {
                        key: format!("quarter-from-{}", first.format("%Y-%m")),
                        label: format!("the quarter from {}", first.format("%B %Y")),
                        start: first,
                    }
                }
            }
            Self::Annually => {
                let first = months_back_to(day, anchor_month0, 12);
                if anchor_month0 == 0 {
                    Period {
                        key: first.year().to_string(),
                        label: first.year().to_string(),
                        start: first,
                    }
                } else {
                    Period {
                        key: format!("year-from-{}", first.format("%Y-%m")),
                        label: format!("the year from {}", first.format("%B %Y")),
                        start: first,
                    }
                }
            }
            Self::Custom { start } => Period {
                key: format!("custom-{}", start.format("%Y-%m-%d")),
                label: format!("the budget's period from {}", start.format("%d %B %Y")),
                start,
            },
        }
    }

    /// Whether AWS keeps the final figures of past periods (`DescribeBudgetPerformanceHistory`
    /// covers daily, monthly and quarterly budgets, not annual or custom ones).
    pub fn has_history(self) -> bool {
        matches!(self, Self::Daily | Self::Monthly | Self::Quarterly)
    }

    /// The period before `period`; `None` for a custom budget, which has only one.
    pub fn previous(self, period: &Period, start: Option<NaiveDate>) -> Option<Period> {
        if matches!(self, Self::Custom { .. }) {
            return None;
        }
        let last_day = period.start.pred_opt()?;
        let at = last_day.and_hms_opt(12, 0, 0)?.and_utc();
        Some(self.period_from(at, start))
    }
}

/// The first day of month `month0` (0-based) of `year`.
fn first_of_month(year: i32, month0: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month0 + 1, 1).unwrap_or(NaiveDate::MIN)
}

/// The latest first-of-month on or before `day` whose month is `anchor0` modulo `every`.
fn months_back_to(day: NaiveDate, anchor0: u32, every: u32) -> NaiveDate {
    let months = day.year() * 12 + day.month0() as i32;
    let back = (months - anchor0 as i32).rem_euclid(every as i32);
    let first = months - back;
    first_of_month(first.div_euclid(12), first.rem_euclid(12) as u32)
}

/// One budget period: `key` goes into state keys (`2026-11`, `2026-Q4`), `label` into messages;
/// `start` is its first day (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub key: String,
    pub label: String,
    pub start: NaiveDate,
}

impl Period {
    /// Hours since the period began at `at`.
    pub fn hours_in(&self, at: DateTime<Utc>) -> i64 {
        at.signed_duration_since(
            self.start
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc(),
        )
        .num_hours()
    }
}

/// Cost Explorer's figures for the last day or two are incomplete: the top-services table covers
/// this month up to two days ago. `(start, end)` with `end` exclusive, as Cost Explorer takes them;
/// `None` on the first two days of a month, when there is no complete day yet.
pub fn complete_days_this_month(now: DateTime<Utc>) -> Option<(NaiveDate, NaiveDate)> {
    let today = now.date_naive();
    let start = today.with_day(1)?;
    let end = today.checked_sub_signed(Duration::days(1))?;
    (end > start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn periods_by_time_unit() {
        let now = at(2026, 11, 24);
        assert_eq!(TimeUnit::Monthly.period(now).key, "2026-11");
        assert_eq!(TimeUnit::Monthly.period(now).label, "November 2026");
        assert_eq!(TimeUnit::Quarterly.period(now).key, "2026-Q4");
        assert_eq!(TimeUnit::Annually.period(now).key, "2026");
        assert_eq!(TimeUnit::Daily.period(now).key, "2026-11-24");
        assert_ne!(
            TimeUnit::Monthly.period(at(2026, 12, 1)).key,
            TimeUnit::Monthly.period(now).key
        );
        assert_eq!(TimeUnit::from_word("month."), Some(TimeUnit::Monthly));
        assert_eq!(TimeUnit::from_api("CUSTOM", None), None);
    }

    #[test]
    fn quarters_and_years_run_from_the_budgets_own_start_month() {
        let april = NaiveDate::from_ymd_opt(2026, 4, 1);
        let year = TimeUnit::Annually.period_from(at(2027, 2, 10), april);
        assert_eq!(
            (year.key.as_str(), year.start),
            ("year-from-2026-04", april.unwrap())
        );
        assert_eq!(
            TimeUnit::Annually.period_from(at(2027, 4, 1), april).key,
            "year-from-2027-04"
        );
        let may = NaiveDate::from_ymd_opt(2026, 5, 15);
        assert_eq!(
            TimeUnit::Quarterly.period_from(at(2026, 7, 31), may).key,
            "quarter-from-2026-05"
        );
        assert_eq!(
            TimeUnit::Quarterly.period_from(at(2026, 8, 1), may).key,
            "quarter-from-2026-08"
        );
        // A start in a calendar quarter's first month keeps the calendar's keys.
        let october = NaiveDate::from_ymd_opt(2025, 10, 1);
        assert_eq!(
            TimeUnit::Quarterly
                .period_from(at(2026, 11, 24), october)
                .key,
            "2026-Q4"
        );
    }

    #[test]
    fn the_period_before_crosses_years() {
        let january = TimeUnit::Monthly.period(at(2027, 1, 1));
        assert_eq!(
            TimeUnit::Monthly.previous(&january, None).unwrap().key,
            "2026-12"
        );
        let q1 = TimeUnit::Quarterly.period(at(2027, 1, 1));
        assert_eq!(
            TimeUnit::Quarterly.previous(&q1, None).unwrap().key,
            "2026-Q4"
        );
        let day = TimeUnit::Daily.period(at(2026, 3, 1));
        assert_eq!(
            TimeUnit::Daily.previous(&day, None).unwrap().key,
            "2026-02-28"
        );
        let custom = TimeUnit::Custom { start: day.start };
        assert!(
            custom
                .previous(&custom.period(at(2026, 3, 2)), None)
                .is_none()
        );
        assert_eq!(january.hours_in("2027-01-01T07:30:00Z".parse().unwrap()), 7);
    }

    #[test]
    fn cost_explorer_range_leaves_out_the_last_two_days() {
        let (start, end) = complete_days_this_month(at(2026, 11, 24)).unwrap();
        assert_eq!(
            (start.to_string(), end.to_string()),
            ("2026-11-01".into(), "2026-11-23".into())
        );
        assert!(complete_days_this_month(at(2026, 11, 2)).is_none());
        assert!(complete_days_this_month(at(2026, 11, 1)).is_none());
        assert!(complete_days_this_month(at(2026, 11, 3)).is_some());
    }
}
