//! budget-alerter: AWS Budgets notifications (SNS) and a daily check of `DescribeBudgets`
//! become one alert per budget, threshold, type and period, with where the money goes.

/// The function's name: its state namespace, the source of its notifications, the `Function`
/// dimension of its metrics.
pub const NAME: &str = "budget-alerter";

pub mod alert;
pub mod budget;
pub mod budgets_text;
pub mod config;
pub mod costs;
pub mod error;
pub mod event;
pub mod handler;
pub mod money;
pub mod period;
pub mod render;
