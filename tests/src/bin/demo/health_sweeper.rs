//! The health-sweeper part of the demo: three backends on loopback discovered by their EC2 tags
//! in the emulator; two fail, the system degrades, they come back.

use harness::http::Behaviour;
use harness::lambda::LambdaRuntime;
use harness::sweep::{self, SweepWorld};

/// Three backends discovered by their EC2 tags; two fail, the system degrades, they come back.
pub async fn run() -> harness::Result<()> {
    super::heading("health-sweeper");
    let mut world = SweepWorld::start(&[
        Behaviour::Status(200),
        Behaviour::Status(302),
        Behaviour::Status(200),
    ])
    .await?;
    for (name, addr, _) in &world.backends {
        println!("{name}: EC2 instance tagged Project=des Role=backend, private address {addr}");
    }
    let runtime = LambdaRuntime::start(sweep::FUNCTION, &world.env(500)).await?;
    let event = harness::paths::event_path("scheduled-event.json");
    let mut minute = 0;
    // (what happens, which backend answers how, sweeps to run)
    type Step<'a> = (&'a str, Vec<(usize, Option<Behaviour>)>, usize);
    let steps: [Step; 5] = [
        (
            "all backends answer (the first sweep has no verdict yet: STARTING, never alerted)",
            vec![],
            2,
        ),
        (
            "des-backend-b answers 503, des-backend-c stops answering",
            vec![
                (1, Some(Behaviour::Status(503))),
                (2, Some(Behaviour::Hang)),
            ],
            3,
        ),
        (
            "both come back",
            vec![
                (1, Some(Behaviour::Status(200))),
                (2, Some(Behaviour::Status(200))),
            ],
            2,
        ),
        (
            "every backend refuses connections (as after a security group change)",
            vec![(0, None), (1, None), (2, None)],
            3,
        ),
        (
            "they answer again",
            vec![
                (0, Some(Behaviour::Status(200))),
                (1, Some(Behaviour::Status(200))),
                (2, Some(Behaviour::Status(200))),
            ],
            2,
        ),
    ];
    for (what, changes, sweeps) in steps {
        println!("\n{what}:");
        for (index, behaviour) in changes {
            world.set(index, behaviour).await?;
        }
        for _ in 0..sweeps {
            minute += 1;
            let answer = runtime.invoke_file(&event).await?;
            let summary = answer.json();
            println!(
                "  sweep {minute}: system {:<8} up {} / down {} / unknown {}  ({} ms)",
                summary["state"].as_str().unwrap_or("?"),
                summary["up"],
                summary["down"],
                summary["unknown"],
                summary["millis"]
            );
            for alert in world.moto.received_notifications(&world.queue_url).await? {
                println!(
                    "    ALERT [{}{}] {}",
                    alert
                        .attributes
                        .get("severity")
                        .map(String::as_str)
                        .unwrap_or("?"),
                    if alert.attributes.get("sms").is_some_and(|v| v == "true") {
                        ", sms=true"
                    } else {
                        ""
                    },
                    alert.subject
                );
                // The target lines and any note (such as the sweeper being cut off).
                for line in alert.message.lines().skip(1).filter(|l| {
                    !l.is_empty() && !l.starts_with("Probe:") && !l.starts_with("Alert #")
                }) {
                    println!("      {line}");
                }
            }
        }
    }
    let emf = runtime
        .json_logs()
        .into_iter()
        .filter(|l| l.get("_aws").is_some())
        .count();
    println!(
        "\n{emf} CloudWatch EMF metric lines printed, one per sweep (Sweeps heartbeat, HealthyTargets, UnhealthyTargets, UnknownTargets, SweepDuration, ProbeLatency)"
    );
    Ok(())
}
