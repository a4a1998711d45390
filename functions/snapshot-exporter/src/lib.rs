//! snapshot-exporter: RDS snapshots exported to S3 as Parquet, on snapshot events and on a weekly
//! reconcile, exactly once per snapshot, with someone told how it went.

/// The function's name: its state namespace, the source of its notifications, the `Function`
/// dimension of its metrics.
pub const NAME: &str = "snapshot-exporter";

pub mod config;
pub mod deferred;
pub mod error;
pub mod event;
pub mod exporter;
pub mod finished;
pub mod handler;
pub mod identifier;
pub mod notice;
pub mod objects;
pub mod rds;
pub mod rds_sdk;
pub mod reconcile;
