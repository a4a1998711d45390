//! budget-alerter: AWS Budgets notifications (SNS) and a daily check of `DescribeBudgets`
//! become one alert per budget, threshold, type and period, with where the money goes.

pub mod alert;
pub mod budget;
pub mod config;
pub mod costs;
pub mod error;
pub mod event;
pub mod handler;
pub mod message;
pub mod money;
pub mod period;
pub mod render;
