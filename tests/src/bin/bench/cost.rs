//! The monthly cost at the example deployment's scale, from the measured AWS calls per event kind and warm durations,
//! at AWS list prices (us-east-1).

use crate::measure::median;
use crate::report::FunctionResult;

/// When the prices below were taken from AWS's public price pages (us-east-1, arm64 Lambda).
pub const PRICES_DATE: &str = "AWS public list prices for us-east-1 as of 2026-11-24 (written in here, not fetched: the bench runs offline)";
const LAMBDA_PER_MILLION: f64 = 0.20;
const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
const S3_PUT_PER_1000: f64 = 0.005;
const S3_GET_PER_1000: f64 = 0.000_4;
const SNS_PUBLISH_PER_MILLION: f64 = 0.50;
const SES_PER_1000: f64 = 0.10;
const SECRETS_CALLS_PER_10000: f64 = 0.05;
const COST_EXPLORER_PER_CALL: f64 = 0.01;
/// In-region AWS API latency added to the local time of each call when estimating billed time.
const AWS_CALL_MS: f64 = 20.0;
const MEMORY_GB: f64 = 0.125;

/// The example deployment's scale: how many events of each counted kind a month brings (kind index, events).
fn monthly(function: &str) -> &'static [(usize, f64)] {
    match function {
        // 3 deployments a day, IN_PROGRESS and COMPLETED each; a CI report per deployment.
        "deploy-notifier" => &[(0, 180.0), (2, 90.0)],
        // Two secrets rotated every 90 days, four steps each.
        "secret-rotator" => &[(0, 0.67), (1, 0.67), (2, 0.67), (3, 0.67)],
        // A sweep every minute.
        "health-sweeper" => &[(0, 43_200.0)],
        // One instance's daily automated snapshot, and the weekly reconcile.
        "snapshot-exporter" => &[(0, 30.0), (2, 4.35)],
        // Four notifications a month; of the daily checks, four find a threshold to tell.
        _ => &[(0, 4.0), (2, 4.0), (3, 26.0)],
    }
}

pub struct Cost {
    pub function: String,
    pub invocations: f64,
    pub gb_seconds: f64,
    pub s3_puts: f64,
    pub s3_gets: f64,
    pub sns: f64,
    pub ses: f64,
    pub secrets: f64,
    pub cost_explorer: f64,
    pub dollars: f64,
}

pub fn estimate(f: &FunctionResult) -> Cost {
    let mut c = Cost {
        function: f.function.clone(),
        invocations: 0.0,
        gb_seconds: 0.0,
        s3_puts: 0.0,
        s3_gets: 0.0,
        sns: 0.0,
        ses: 0.0,
        secrets: 0.0,
        cost_explorer: 0.0,
        dollars: 0.0,
    };
    let local_ms = median(&f.rust.warm_ms);
    for (kind, events) in monthly(&f.function) {
        let Some(calls) = f.rust.kinds.get(*kind) else {
            continue;
        };
        c.invocations += events;
        let billed_ms = (local_ms + AWS_CALL_MS * calls.calls.len() as f64).ceil();
        c.gb_seconds += events * billed_ms / 1000.0 * MEMORY_GB;
        for call in &calls.calls {
            let (service, op) = call.split_once(':').unwrap_or((call, ""));
            match service {
                "s3" if op.starts_with("Put")
                    || op.starts_with("List")
                    || op.starts_with("Delete") =>
                {
                    c.s3_puts += events
                }
                "s3" => c.s3_gets += events,
                "sns" if op == "Publish" => c.sns += events,
                "ses" => c.ses += events,
                "secretsmanager" => c.secrets += events,
                "ce" => c.cost_explorer += events,
                _ => {}
            }
        }
    }
    c.dollars = c.invocations / 1e6 * LAMBDA_PER_MILLION
        + c.gb_seconds * LAMBDA_ARM_GB_SECOND
        + c.s3_puts / 1000.0 * S3_PUT_PER_1000
        + c.s3_gets / 1000.0 * S3_GET_PER_1000
        + c.sns / 1e6 * SNS_PUBLISH_PER_MILLION
        + c.ses / 1000.0 * SES_PER_1000
        + c.secrets / 10_000.0 * SECRETS_CALLS_PER_10000
        + c.cost_explorer * COST_EXPLORER_PER_CALL;
    c
}

pub fn markdown(functions: &[FunctionResult]) -> String {
    let mut md = format!(
        "\n## Monthly cost at the example deployment's scale (before the Free Tier)\n\nPrices: {PRICES_DATE}. Lambda arm64 \
         ${LAMBDA_ARM_GB_SECOND}/GB-s and ${LAMBDA_PER_MILLION}/million requests; S3 PUT/LIST ${S3_PUT_PER_1000}/1,000, \
         GET ${S3_GET_PER_1000}/1,000; SNS publish ${SNS_PUBLISH_PER_MILLION}/million; SES ${SES_PER_1000}/1,000 emails; \
         Secrets Manager ${SECRETS_CALLS_PER_10000}/10,000 calls; Cost Explorer ${COST_EXPLORER_PER_CALL}/call. Billed time \
         per event: the measured warm median plus {AWS_CALL_MS} ms per AWS call, at 128 MB. Calls per event: as counted above.\n\n\
         | function | invocations | GB-s | S3 PUT/LIST | S3 GET | SNS publish | SES emails | Secrets Manager calls | Cost Explorer calls | $ / month |\n\
         |---|---|---|---|---|---|---|---|---|---|\n"
    );
    let mut total = 0.0;
    for f in functions {
        let c = estimate(f);
        total += c.dollars;
        md.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.3} |\n",
            c.function,
            c.invocations,
            c.gb_seconds,
            c.s3_puts,
            c.s3_gets,
            c.sns,
            c.ses,
            c.secrets,
            c.cost_explorer,
            c.dollars
        ));
    }
    md.push_str(&format!("| all | | | | | | | | | {total:.2} |\n"));
    md
}
