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

    /// The period `at` falls in.
    pub fn period(self, at: DateTime<Utc>) -> Period {
        let day = at.date_naive();
        match self {
            Self::Daily => Period {
                key: day.format("%Y-%m-%d").to_string(),
                label: day.format("%d %B %Y").to_string(),
            },
            Self::Monthly => Period {
                key: day.format("%Y-%m").to_string(),
                label: day.format("%B %Y").to_string(),
            },
            Self::Quarterly => {
                let quarter = day.month0() / 3 + 1;
                Period {
                    key: format!("{}-Q{quarter}", day.year()),
                    label: format!("Q{quarter} {}", day.year()),
                }
            }
            Self::Annually => Period {
                key: day.year().to_string(),
                label: day.year().to_string(),
            },
            Self::Custom { start } => Period {
                key: format!("custom-{}", start.format("%Y-%m-%d")),
                label: format!("the budget's period from {}", start.format("%d %B %Y")),
            },
        }
    }
}

/// One budget period: `key` goes into state keys (`2026-11`, `2026-Q4`), `label` into messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub key: String,
    pub label: String,
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
