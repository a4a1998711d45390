//! health-sweeper against the emulator (EC2 discovery, S3 state, SNS) and real HTTP servers on
//! loopback: end to end through the Lambda runtime, and the sweep itself for concurrency, the
//! deadline and maintenance.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use harness::http::{Behaviour, HttpServer};
use harness::lambda::LambdaRuntime;
use harness::paths::event_path;
use harness::sweep::{BUCKET, FUNCTION, PROJECT, SweepWorld};
use harness::tls::HttpsBackend;
use health_sweeper::config::Config;
use health_sweeper::discovery::{Discover, Discovery, Ec2Discovery, TargetGroupDiscovery};
use health_sweeper::handler::{App, state_key};
use health_sweeper::probe::Prober;
use health_sweeper::quorum::SystemState;
use health_sweeper::sweep_state::SweepState;
use health_sweeper::target::{Check, Failure, Outcome, Target};
use serde_json::Value;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::notify::{Channel, ChatFormat, Notifier, SnsChannel, WebhookChannel};
use watchkeeper_shared::runtime::Invocation;
use watchkeeper_shared::secret::SecretUrl;
use watchkeeper_shared::state::{StateStore, Store};
use watchkeeper_shared::testing::RecordingNotifier;

#[tokio::test]
async fn backends_going_down_and_recovering_alert_once_each() {
    let mut world = SweepWorld::start(&[
        Behaviour::Status(200),
        Behaviour::Status(302),
        Behaviour::Status(200),
    ])
    .await
    .unwrap();
    let runtime = LambdaRuntime::start(FUNCTION, &world.env(300))
        .await
        .unwrap();
    let event = event_path("scheduled-event.json");
    let mut last = Value::Null;
    let sweeps = async |n: usize, last: &mut Value| {
        for _ in 0..n {
            let answer = runtime.invoke_file(&event).await.unwrap();
            assert!(answer.ok, "{}\n{}", answer.output, runtime.logs());
            *last = answer.json();
        }
    };

    sweeps(1, &mut last).await;
    assert_eq!(
        (
            last["state"].as_str(),
            last["up"].as_u64(),
            last["unknown"].as_u64()
        ),
        (Some("STARTING"), Some(0), Some(3)),
        "no verdict yet: starting, not OK: {last}"
    );
    sweeps(1, &mut last).await;
    assert_eq!(
        (last["state"].as_str(), last["up"].as_u64()),
        (Some("OK"), Some(3)),
        "{last}"
    );
    assert!(
        world
            .moto
            .received_notifications(&world.queue_url)
            .await
            .unwrap()
            .is_empty(),
        "no alert while ok"
    );

    world.set(1, Some(Behaviour::Status(503))).await.unwrap();
    world.set(2, Some(Behaviour::Hang)).await.unwrap();
    sweeps(2, &mut last).await;
    assert!(
        world
            .moto
            .received_notifications(&world.queue_url)
            .await
            .unwrap()
            .is_empty(),
        "two failures are not enough"
    );
    sweeps(1, &mut last).await;
    let alerts = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        alerts[0].subject,
        "[des] System degraded: only 1 of 3 backends up"
    );
    assert_eq!(alerts[0].attributes["severity"], "WARNING");
    assert!(!alerts[0].attributes.contains_key("sms"), "only DOWN pages");
    let (b, c) = (world.backends[1].1, world.backends[2].1);
    assert!(
        alerts[0]
            .message
            .contains(&format!("des-backend-b ({b}): DOWN")),
        "{}",
        alerts[0].message
    );
    assert!(
        alerts[0].message.contains("last probe: HTTP 503"),
        "{}",
        alerts[0].message
    );
    assert!(
        alerts[0]
            .message
            .contains(&format!("des-backend-c ({c}): DOWN"))
            && alerts[0].message.contains("last probe: timeout"),
        "{}",
        alerts[0].message
    );

    sweeps(1, &mut last).await;
    assert!(
        world
            .moto
            .received_notifications(&world.queue_url)
            .await
            .unwrap()
            .is_empty(),
        "no change, no alert"
    );

    world.set(0, None).await.unwrap();
    sweeps(3, &mut last).await;
    let alerts = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].subject, "[des] System down: 0 of 3 backends up");
    assert_eq!(alerts[0].attributes["severity"], "CRITICAL");
    assert_eq!(alerts[0].attributes["sms"], "true", "DOWN pages by SMS");
    assert!(
        alerts[0].message.contains("connection refused"),
        "{}",
        alerts[0].message
    );

    world.set(0, Some(Behaviour::Status(200))).await.unwrap();
    world.set(1, Some(Behaviour::Status(302))).await.unwrap();
    sweeps(2, &mut last).await;
    let alerts = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        alerts[0].subject,
        "[des] System recovered: 2 of 3 backends up again"
    );
    assert_eq!(last["state"], "OK");

    // Probes went to the discovered loopback addresses, on the configured path, with correlation ids.
    let requests = world.backends[1].2.as_ref().unwrap().requests();
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|r| r.path == harness::sweep::PROBE_PATH
        && r.header("x-correlation-id").is_some_and(|c| !c.is_empty())));

    // One EMF line per sweep, valid JSON, with the expected metrics.
    let emf: Vec<Value> = runtime
        .json_logs()
        .into_iter()
        .filter(|l| l.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 11);
    let names: Vec<&str> = emf[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["Name"].as_str())
        .collect();
    for metric in [
        "Sweeps",
        "HealthyTargets",
        "UnhealthyTargets",
        "UnknownTargets",
        "SweepDuration",
        "ProbeLatency",
    ] {
        assert!(names.contains(&metric), "{metric} missing from {names:?}");
    }
    assert!(
        emf.iter().all(|line| line["Sweeps"] == 1.0),
        "a heartbeat per sweep"
    );
    assert_eq!(emf.last().unwrap()["HealthyTargets"], 2.0);
    assert_eq!(emf.last().unwrap()["Function"], "health-sweeper");
    assert_eq!(
        emf.last().unwrap()["FunctionName"],
        "health-sweeper",
        "the deployed function's name (the runtime emulator names it after the crate)"
    );
}

/// Outside Lambda: the sweep is bounded by `SWEEP_DEADLINE_MS` alone.
fn no_lambda_deadline() -> Deadline {
    Deadline::after(Duration::from_secs(15 * 60))
}

fn config(pairs: &[(&str, String)]) -> Config {
    let mut all = vec![
        ("STATE_BUCKET".to_string(), BUCKET.to_string()),
        (
            "NOTIFY_SNS_TOPIC_ARN".to_string(),
            "arn:aws:sns:us-east-1:123456789012:des-backend-alerts".to_string(),
        ),
        (
            "SWEEP_ALLOWED_NETWORKS".to_string(),
            "127.0.0.0/8".to_string(),
        ),
    ];
    all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
    Config::from_vars(&Vars::from_pairs(all)).unwrap()
}

async fn app(
    world_moto: &harness::moto::Moto,
    config: Config,
    discovery: Discovery,
) -> App<Discovery, RecordingNotifier, StateStore> {
    let s3 = world_moto.s3().await;
    let _ = s3.create_bucket().bucket(BUCKET).send().await;
    let prober = Prober::new(
        config.path.clone(),
        config.host.clone(),
        config.healthy_codes.clone(),
        config.probe_timeout,
        config.concurrency,
    );
    App::new(
        config,
        discovery,
        prober,
        RecordingNotifier::default(),
        StateStore::new(s3, BUCKET, "health-sweeper"),
        "us-east-1".into(),
    )
}

#[tokio::test]
async fn discovery_finds_tagged_running_instances_across_pages() {
    let world = SweepWorld::start(&[Behaviour::Status(200); 7])
        .await
        .unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&world.moto.sdk_config().await);
    // Instances that must not be found: another role, another project, a stopped backend.
    for (project, role) in [(PROJECT, "db"), ("other", "backend")] {
        ec2.run_instances()
            .image_id("ami-12c6146b")
            .min_count(1)
            .max_count(1)
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key("Project")
                            .value(project)
                            .build(),
                    )
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key("Role")
                            .value(role)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    ec2.stop_instances()
        .instance_ids(&world.instance_ids[6])
        .send()
        .await
        .unwrap();

    let discovery =
        Ec2Discovery::new(ec2, PROJECT.into(), "backend".into(), world.port).with_page_size(5);
    let mut found = discovery.discover().await.unwrap();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = found.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "des-backend-a",
            "des-backend-b",
            "des-backend-c",
            "des-backend-d",
            "des-backend-e",
            "des-backend-f"
        ]
    );
    assert!(
        found
            .iter()
            .all(|t| t.addr.ip().is_loopback() && t.addr.port() == world.port)
    );
}

#[tokio::test]
async fn targets_outside_the_allowed_networks_are_never_probed() {
    let world = SweepWorld::start(&[]).await.unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&world.moto.sdk_config().await);
    // The emulator's default VPC gives this one a 172.31.x.x address.
    ec2.run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("Project")
                        .value(PROJECT)
                        .build(),
                )
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("Role")
                        .value("backend")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let discovery = Discovery {
        ec2: Some(Ec2Discovery::new(
            ec2,
            PROJECT.into(),
            "backend".into(),
            8080,
        )),
        target_groups: None,
    };
    let found = discovery.discover().await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(!found[0].addr.ip().is_loopback());
    let app = app(
        &world.moto,
        config(&[("SWEEP_PROJECT", PROJECT.into())]),
        discovery,
    )
    .await;
    let summary = app.sweep("t", &no_lambda_deadline()).await.unwrap();
    assert_eq!(summary["targets"], 0, "{summary}");
}

#[tokio::test]
async fn overlapping_sweeps_keep_both_updates() {
    let world = SweepWorld::start(&[]).await.unwrap();
    let a = HttpServer::local(Behaviour::Status(200)).await.unwrap();
    let b = HttpServer::local(Behaviour::Status(200)).await.unwrap();
    let targets = format!("a={},b={}", a.addr(), b.addr());
    let app = app(
        &world.moto,
        config(&[("SWEEP_STATIC_TARGETS", targets)]),
        Discovery::default(),
    )
    .await;
    let deadline = no_lambda_deadline();
    world.moto.record_calls().await.unwrap();
    let (first, second) = tokio::join!(app.sweep("one", &deadline), app.sweep("two", &deadline));
    first.unwrap();
    second.unwrap();
    // The sweeps did overlap: both created the document, one was refused (412) and re-applied
    // its sweep on the other's, so three conditional writes for two sweeps.
    let writes = world
        .moto
        .recorded_calls()
        .await
        .unwrap()
        .into_iter()
        .filter(|call| call.starts_with("s3:PutObject (conditional)"))
        .count();
    assert_eq!(writes, 3, "two creates and the loser's re-applied update");
    let store = StateStore::new(world.moto.s3().await, BUCKET, "health-sweeper");
    let state = store
        .load::<SweepState>(&state_key("backends"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(state.sweeps, 2);
    assert!(
        state.targets.values().all(|t| t.successes == 2),
        "{:?}",
        state.targets
    );
}

#[tokio::test]
async fn a_sweep_of_hanging_targets_ends_inside_its_deadline() {
    let world = SweepWorld::start(&[]).await.unwrap();
    let mut servers = Vec::new();
    for i in 0..200u32 {
        let ip = Ipv4Addr::new(127, 0, 3 + (i / 250) as u8, (i % 250 + 1) as u8);
        servers.push(HttpServer::start(ip, Behaviour::Hang).await.unwrap());
    }
    let targets: Vec<String> = servers.iter().map(|s| s.addr().to_string()).collect();
    let config = config(&[
        ("SWEEP_STATIC_TARGETS", targets.join(",")),
        ("SWEEP_TIMEOUT_MS", "1000".into()),
        ("SWEEP_DEADLINE_MS", "5000".into()),
        ("SWEEP_CONCURRENCY", "20".into()),
    ]);
    let app = app(&world.moto, config, Discovery::default()).await;
    let started = Instant::now();
    let summary = app.sweep("deadline", &no_lambda_deadline()).await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "sweep took {took:?}");
    // 20 at a time, 1 s each, probes until 4 s: three or four rounds ran their full timeout (new
    // targets, within their start grace: unknown); the round the deadline cut short counts as
    // not probed, like those never started. None is down.
    let not_probed = summary["not_probed"].as_u64().unwrap();
    assert!((110..=150).contains(&not_probed), "{summary}");
    assert_eq!(summary["unknown"], 200, "{summary}");
    assert_eq!(
        summary["state"], "STARTING",
        "unknown targets do not raise alarms: {summary}"
    );
}

#[tokio::test]
async fn maintenance_keeps_sweeping_and_sends_nothing() {
    let world = SweepWorld::start(&[]).await.unwrap();
    let failing = HttpServer::local(Behaviour::Status(500)).await.unwrap();
    let refused: SocketAddr = harness::http::refusing_addr().unwrap();
    let targets = format!("x={},y={refused}", failing.addr());
    let app = app(
        &world.moto,
        config(&[
            ("SWEEP_STATIC_TARGETS", targets),
            ("SWEEP_MAINTENANCE", "true".into()),
        ]),
        Discovery::default(),
    )
    .await;
    for _ in 0..4 {
        app.sweep("m", &no_lambda_deadline()).await.unwrap();
    }
    let store = StateStore::new(world.moto.s3().await, BUCKET, "health-sweeper");
    let state = store
        .load::<SweepState>(&state_key("backends"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(state.system, SystemState::Down);
    assert_eq!(state.alert_seq, 0);
    assert_eq!(failing.requests().len(), 4, "sweeping goes on");
}

#[tokio::test]
async fn target_groups_give_their_registered_targets() {
    use aws_sdk_elasticloadbalancingv2::types::{TargetDescription, TargetTypeEnum};
    let world = SweepWorld::start(&[
        Behaviour::Status(200),
        Behaviour::Status(200),
        Behaviour::Status(200),
    ])
    .await
    .unwrap();
    let sdk = world.moto.sdk_config().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let group = |name: &'static str, kind: TargetTypeEnum| {
        elb.create_target_group()
            .name(name)
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(i32::from(world.port))
            .vpc_id(&world.vpc_id)
            .target_type(kind)
            .send()
    };
    let instances = group("des-backends", TargetTypeEnum::Instance)
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let ips = group("des-ip-backends", TargetTypeEnum::Ip)
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let port = i32::from(world.port);
    elb.register_targets()
        .target_group_arn(&instances)
        .targets(
            TargetDescription::builder()
                .id(&world.instance_ids[0])
                .port(port)
                .build(),
        )
        .targets(
            TargetDescription::builder()
                .id(&world.instance_ids[1])
                .port(port)
                .build(),
        )
        .send()
        .await
        .unwrap();
    elb.register_targets()
        .target_group_arn(&ips)
        .targets(
            TargetDescription::builder()
                .id("127.0.0.22")
                .port(port)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let discovery = TargetGroupDiscovery::new(elb, ec2, vec![instances, ips], 8080);
    let mut found = discovery.discover().await.unwrap();
    found.sort_by_key(|t| t.addr);
    let seen: Vec<(String, String)> = found
        .iter()
        .map(|t| (t.name.clone(), t.addr.to_string()))
        .collect();
    let addr = |i: usize| world.backends[i].1.to_string();
    assert_eq!(
        seen,
        [
            ("des-backend-a".to_string(), addr(0)),
            ("des-backend-b".to_string(), addr(1)),
            (addr(2), addr(2))
        ]
    );

    // And a sweep over them probes all three (the static target is one of them).
    let app = app(
        &world.moto,
        config(&[("SWEEP_STATIC_TARGETS", addr(0))]),
        Discovery {
            ec2: None,
            target_groups: Some(discovery),
        },
    )
    .await;
    let summary = app.sweep("tg", &no_lambda_deadline()).await.unwrap();
    assert_eq!(summary["targets"], 3, "{summary}");
    assert_eq!(summary["probed"], 3, "{summary}");
    for (i, (_, _, server)) in world.backends.iter().enumerate() {
        let requests = server.as_ref().map_or(0, |s| s.requests().len());
        assert_eq!(requests, 1, "backend {i} probed once");
    }
}

/// A registered instance that is stopped (the target group says `unused`) is probed by neither
/// source, so it is never counted DOWN; the running ones are found once per port by both.
#[tokio::test]
async fn a_stopped_registered_instance_is_left_out_by_both_sources() {
    use aws_sdk_elasticloadbalancingv2::types::{TargetDescription, TargetTypeEnum};
    let world = SweepWorld::start(&[Behaviour::Status(200), Behaviour::Status(200)])
        .await
        .unwrap();
    let sdk = world.moto.sdk_config().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let group = elb
        .create_target_group()
        .name("des-backends")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(i32::from(world.port))
        .vpc_id(&world.vpc_id)
        .target_type(TargetTypeEnum::Instance)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let port = i32::from(world.port);
    let mut register = elb.register_targets().target_group_arn(&group);
    for id in &world.instance_ids[..2] {
        register = register.targets(TargetDescription::builder().id(id).port(port).build());
    }
    register.send().await.unwrap();
    ec2.stop_instances()
        .instance_ids(&world.instance_ids[1])
        .send()
        .await
        .unwrap();

    let discovery = Discovery {
        ec2: Some(Ec2Discovery::new(
            ec2.clone(),
            PROJECT.into(),
            "backend".into(),
            world.port,
        )),
        target_groups: Some(TargetGroupDiscovery::new(elb, ec2, vec![group], 8080)),
    };
    let found = discovery.discover().await.unwrap();
    let names: Vec<&str> = found.iter().map(|t| t.name.as_str()).collect();
    assert!(
        names.iter().all(|n| *n == "des-backend-a"),
        "only the running instance: {names:?}"
    );
    assert!(!names.is_empty());
}

/// An app whose alerts go through the real notifier: SNS in the emulator, claims in S3.
async fn app_with_sns(
    world: &SweepWorld,
    config: Config,
    discovery: Discovery,
) -> App<Discovery, Notifier<StateStore>, StateStore> {
    app_with_channels(world, config, discovery, Vec::new()).await
}

/// The same with `more` channels after SNS.
async fn app_with_channels(
    world: &SweepWorld,
    config: Config,
    discovery: Discovery,
    more: Vec<Channel>,
) -> App<Discovery, Notifier<StateStore>, StateStore> {
    let sdk = world.moto.sdk_config().await;
    let store = StateStore::new(world.moto.s3().await, BUCKET, "health-sweeper");
    let sns = SnsChannel::new(aws_sdk_sns::Client::new(&sdk), world.topic_arn.clone());
    let prober = Prober::new(
        config.path.clone(),
        config.host.clone(),
        config.healthy_codes.clone(),
        config.probe_timeout,
        config.concurrency,
    );
    App::new(
        config,
        discovery,
        prober,
        Notifier::new(
            std::iter::once(Channel::Sns(sns)).chain(more).collect(),
            store.clone(),
        ),
        store,
        "us-east-1".into(),
    )
}

#[tokio::test]
async fn an_instance_found_by_its_tags_and_by_a_target_group_on_another_port_is_two_targets() {
    use aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum;
    let world = SweepWorld::start(&[Behaviour::Status(200)]).await.unwrap();
    // The same instance also serves on a second port, registered in a target group (the
    // emulator keeps one registration per instance, so the two ports come from two sources).
    let std::net::IpAddr::V4(ip) = world.backends[0].1.ip() else {
        panic!("the world's backends are IPv4")
    };
    let second = HttpServer::start(ip, Behaviour::Status(200)).await.unwrap();
    let instance = world.instance_ids[0].clone();
    let arn = world
        .target_group(
            "des-second-port",
            TargetTypeEnum::Instance,
            &[(instance, second.addr().port())],
        )
        .await
        .unwrap();
    let config = config(&[
        ("SWEEP_PROJECT", PROJECT.into()),
        ("SWEEP_PORT", world.port.to_string()),
        ("SWEEP_TARGET_GROUP_ARNS", arn.clone()),
    ]);
    let sdk = world.moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let discovery = Discovery {
        ec2: Some(Ec2Discovery::new(
            ec2.clone(),
            PROJECT.into(),
            "backend".into(),
            world.port,
        )),
        target_groups: Some(TargetGroupDiscovery::new(
            aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
            ec2,
            vec![arn],
            8080,
        )),
    };
    let found = discovery.discover().await.unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].instance, found[1].instance, "one instance id");
    let app = app(&world.moto, config, discovery).await;
    app.sweep("one", &no_lambda_deadline()).await.unwrap();
    let summary = app.sweep("two", &no_lambda_deadline()).await.unwrap();
    assert_eq!(
        (
            summary["targets"].as_u64(),
            summary["up"].as_u64(),
            summary["state"].as_str()
        ),
        (Some(2), Some(2), Some("OK")),
        "{summary}"
    );
    assert_eq!(second.requests().len(), 2);
    assert_eq!(world.backends[0].2.as_ref().unwrap().requests().len(), 2);
}

#[tokio::test]
async fn a_state_document_deleted_between_two_alerts_does_not_silence_the_second() {
    let world = SweepWorld::start(&[]).await.unwrap();
    let refused = harness::http::refusing_addr().unwrap();
    let config = config(&[("SWEEP_STATIC_TARGETS", format!("a={refused}"))]);
    let app = app_with_sns(&world, config, Discovery::default()).await;
    let down_alerts = async || {
        for _ in 0..3 {
            let summary = app.sweep("s", &no_lambda_deadline()).await.unwrap();
            assert!(summary["state"] != "OK", "{summary}");
        }
        world
            .moto
            .received_notifications(&world.queue_url)
            .await
            .unwrap()
    };
    let first = down_alerts().await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        first[0].subject,
        "[backends] System down: 0 of 1 backends up"
    );
    // Someone deletes (or resets) the state document: the next sweeps start over.
    world
        .moto
        .s3()
        .await
        .delete_object()
        .bucket(BUCKET)
        .key(format!("health-sweeper/docs/{}", state_key("backends")))
        .send()
        .await
        .unwrap();
    let second = down_alerts().await;
    assert_eq!(second.len(), 1, "the second alert is sent: {second:?}");
    assert!(
        second[0].message.contains("Alert #1"),
        "{}",
        second[0].message
    );
}

#[tokio::test]
async fn two_sweepers_sharing_a_bucket_keep_their_own_state_and_alerts() {
    let world = SweepWorld::start(&[]).await.unwrap();
    let refused = harness::http::refusing_addr().unwrap();
    let sweeper = |name: &str| {
        config(&[
            ("SWEEP_STATIC_TARGETS", format!("a={refused}")),
            ("SWEEP_SYSTEM_NAME", name.to_string()),
        ])
    };
    let red = app_with_sns(&world, sweeper("red"), Discovery::default()).await;
    let blue = app_with_sns(&world, sweeper("blue"), Discovery::default()).await;
    for _ in 0..3 {
        red.sweep("r", &no_lambda_deadline()).await.unwrap();
        blue.sweep("b", &no_lambda_deadline()).await.unwrap();
    }
    let mut subjects: Vec<String> = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.subject)
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "[blue] System down: 0 of 1 backends up",
            "[red] System down: 0 of 1 backends up"
        ]
    );
}

#[tokio::test]
async fn with_every_network_allowed_the_never_probed_addresses_are_still_not_probed() {
    use aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum;
    let world = SweepWorld::start(&[]).await.unwrap();
    // A loopback server the configuration does not list: it must never hear a probe.
    let unlisted = HttpServer::start(Ipv4Addr::new(127, 0, 0, 9), Behaviour::Status(200))
        .await
        .unwrap();
    let port = unlisted.addr().port();
    let addresses = ["169.254.169.254", "0.0.0.0", "127.0.0.9"];
    let config = {
        let mut all = vec![
            ("STATE_BUCKET".to_string(), BUCKET.to_string()),
            ("NOTIFY_SNS_TOPIC_ARN".to_string(), world.topic_arn.clone()),
            (
                "SWEEP_ALLOWED_NETWORKS".to_string(),
                "0.0.0.0/0".to_string(),
            ),
        ];
        all.push((
            "SWEEP_TARGET_GROUP_ARNS".to_string(),
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/x/1".into(),
        ));
        Config::from_vars(&Vars::from_pairs(all)).unwrap()
    };
    // Checked before anything is swept: these must be refused, or this test would send a probe
    // off loopback.
    for ip in addresses {
        let addr = SocketAddr::new(ip.parse().unwrap(), port);
        assert!(!config.is_allowed(&addr), "{addr} would be probed");
    }
    let targets: Vec<(String, u16)> = addresses.iter().map(|ip| (ip.to_string(), port)).collect();
    let arn = world
        .target_group("des-denied", TargetTypeEnum::Ip, &targets)
        .await
        .unwrap();
    let sdk = world.moto.sdk_config().await;
    let discovery = Discovery {
        ec2: None,
        target_groups: Some(TargetGroupDiscovery::new(
            aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
            aws_sdk_ec2::Client::new(&sdk),
            vec![arn],
            8080,
        )),
    };
    assert_eq!(
        discovery.discover().await.unwrap().len(),
        3,
        "discovery finds them"
    );
    let app = app(&world.moto, config, discovery).await;
    let summary = app.sweep("denied", &no_lambda_deadline()).await.unwrap();
    assert_eq!(
        (
            summary["denied"].as_u64(),
            summary["probed"].as_u64(),
            summary["targets"].as_u64()
        ),
        (Some(3), Some(0), Some(0)),
        "{summary}"
    );
    assert!(unlisted.requests().is_empty());
}

/// The state document of a system whose discovery has failed the last two sweeps: the next
/// failure is the third in a row, which is told.
async fn seed_two_failed_discoveries(world: &SweepWorld, system: &str) {
    let store = StateStore::new(world.moto.s3().await, BUCKET, "health-sweeper");
    let state = SweepState {
        discovery_failures: 2,
        discovery_failing: Some(chrono::Utc::now()),
        ..SweepState::new()
    };
    store.create(&state_key(system), &state).await.unwrap();
}

#[tokio::test]
async fn the_whole_sweep_fits_the_lambdas_remaining_time_even_when_discovery_hangs() {
    let world = SweepWorld::start(&[]).await.unwrap();
    let (hanging_ec2, backend, hanging_backend, config) = discovery_hangs().await;
    let discovery = hanging_discovery(&world, &hanging_ec2).await;
    let app = app_with_sns(&world, config, discovery).await;
    // Discovery is told after failing three sweeps in a row: two went by before this one.
    seed_two_failed_discoveries(&world, PROJECT).await;
    // The Lambda has 8 s left: the sweep may use 3 (5 s stay for the runtime).
    let started = Instant::now();
    // Bounded here too, so that a sweep that ignores its deadline fails instead of hanging.
    let summary = tokio::time::timeout(
        Duration::from_secs(20),
        app.handle(serde_json::json!({}), &invocation("req-1", 8_000)),
    )
    .await
    .expect("the sweep ignored the Lambda's deadline")
    .unwrap();
    let took = started.elapsed();
    // The sweep's share is 3 s, the alert through SNS a few milliseconds more; a second of the
    // 5 s kept is slack for a loaded machine, the rest is never touched.
    assert!(
        took < Duration::from_millis(4_000),
        "sweep took {took:?}: {summary}"
    );
    assert!(
        took > Duration::from_millis(2_000),
        "the probes used their share: {took:?}"
    );
    assert!(
        summary["discovery_error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer")),
        "{summary}"
    );
    assert_eq!(
        (summary["probed"].as_u64(), summary["not_probed"].as_u64()),
        (Some(1), Some(1)),
        "the static targets are probed; the hanging one is cut short, not failed: {summary}"
    );
    assert_eq!(backend.requests().len(), 1);
    drop(hanging_backend);
    assert_eq!(summary["alert"]["kind"], "DiscoveryFailing", "{summary}");
    let sent = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].message.contains("Discovery is failing"),
        "{}",
        sent[0].message
    );
    // Told once.
    let summary = app
        .sweep("req-2", &Deadline::after(Duration::from_secs(8)))
        .await
        .unwrap();
    assert!(summary["alert"].is_null(), "{summary}");
}

/// A sweep whose probes use their whole share (one backend hangs) still has time to page: the
/// alert gets the Lambda's deadline, not the rest of the sweep's budget. A chat webhook that
/// hangs is cut off before that deadline, SNS has delivered meanwhile, and the next sweep sends
/// the webhook only.
#[tokio::test]
async fn an_alert_after_probes_cut_short_still_pages_and_a_hung_channel_ends_before_the_deadline() {
    let world = SweepWorld::start(&[]).await.unwrap();
    let (hanging_ec2, backend, _hanging_backend, config) = discovery_hangs().await;
    let discovery = hanging_discovery(&world, &hanging_ec2).await;
    let webhook = HttpServer::local(Behaviour::Hang).await.unwrap();
    let channel = WebhookChannel::new(
        SecretUrl::new(webhook.url("/hooks/sweeper")),
        ChatFormat::Slack,
    )
    .unwrap();
    let app = app_with_channels(&world, config, discovery, vec![Channel::Webhook(channel)]).await;
    seed_two_failed_discoveries(&world, PROJECT).await;
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        app.handle(serde_json::json!({}), &invocation("req-1", 8_000)),
    )
    .await
    .expect("the send ignored the Lambda's deadline");
    let took = started.elapsed();
    let err = result.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("webhook"), "{err}");
    // The webhook's send ends 2 s before the Lambda's deadline (kept for recording it), well
    // before the runtime's own cut-off 0.5 s before it.
    assert!(
        took > Duration::from_millis(5_000) && took < Duration::from_millis(7_000),
        "{took:?}"
    );
    assert_eq!(backend.requests().len(), 1);
    let sent = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    assert_eq!(
        sent.len(),
        1,
        "SNS delivered while the webhook hung: {sent:?}"
    );
    assert_eq!(webhook.requests().len(), 1);
    // The webhook answers again: the next sweep sends the pending alert to it, and only to it.
    webhook.set_behaviour(Behaviour::Status(200));
    let summary = app
        .sweep("req-2", &Deadline::after(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(summary["alert"]["kind"], "DiscoveryFailing", "{summary}");
    assert_eq!(webhook.requests().len(), 2);
    // (Reading the queue drains it: the one message was read above.)
    let again = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    assert!(again.is_empty(), "SNS not sent twice: {again:?}");
}

/// A healthy backend, a hanging one (probes cut short), an EC2 endpoint that never answers, and
/// a configuration that gives probes 10 s each and the sweep 40 s (the Lambda's deadline is
/// what limits it).
async fn discovery_hangs() -> (HttpServer, HttpServer, HttpServer, Config) {
    let hanging_ec2 = HttpServer::local(Behaviour::Hang).await.unwrap();
    let backend = HttpServer::local(Behaviour::Status(200)).await.unwrap();
    let hanging_backend = HttpServer::local(Behaviour::Hang).await.unwrap();
    let config = config(&[
        ("SWEEP_PROJECT", PROJECT.into()),
        (
            "SWEEP_STATIC_TARGETS",
            format!("up={},stuck={}", backend.addr(), hanging_backend.addr()),
        ),
        ("SWEEP_TIMEOUT_MS", "10000".into()),
        ("SWEEP_DEADLINE_MS", "40000".into()),
    ]);
    (hanging_ec2, backend, hanging_backend, config)
}

async fn hanging_discovery(world: &SweepWorld, hanging_ec2: &HttpServer) -> Discovery {
    let sdk = world.moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&sdk)
            .endpoint_url(hanging_ec2.url(""))
            .build(),
    );
    Discovery {
        ec2: Some(Ec2Discovery::new(
            ec2,
            PROJECT.into(),
            "backend".into(),
            8080,
        )),
        target_groups: None,
    }
}

/// An invocation whose Lambda deadline is `left_ms` from now.
fn invocation(request_id: &str, left_ms: u64) -> Invocation {
    Invocation::with_time_left(Duration::from_millis(left_ms)).with_request_id(request_id)
}

/// What an ALB-style HTTPS backend answers: its `/health` is failing, `/ready` (what its target
/// group's health check asks) answers `103 Early Hints` first, then 200.
const READY_AFTER_EARLY_HINTS: &str = "HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
const HEALTH_FAILING: &str =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

async fn probe_one(prober: &Prober, target: Target) -> Outcome {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let probes = prober.probe_all(&[target], deadline, "tls", 0).await;
    probes.outcomes.into_iter().next().unwrap()
}

fn target_at(addr: SocketAddr, check: Check) -> Target {
    Target {
        addr,
        name: addr.to_string(),
        instance: None,
        check,
    }
}

/// HTTPS targets are asked over TLS (the certificate, as an ALB does, not checked), on their
/// target group's health-check protocol, port and path, and an interim `1xx` answer is not the
/// verdict.
#[tokio::test]
async fn https_targets_are_asked_as_their_target_groups_health_check_asks() {
    use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetDescription, TargetTypeEnum};
    let backend = HttpsBackend::start(
        Ipv4Addr::LOCALHOST,
        &[
            ("health", HEALTH_FAILING),
            ("ready", READY_AFTER_EARLY_HINTS),
        ],
    )
    .await
    .unwrap();
    let config = config(&[("SWEEP_STATIC_TARGETS", format!("https://{}", backend.addr))]);
    assert_eq!(config.static_targets[0].check, Check::HTTPS);
    let prober = Prober::new(
        config.path.clone(),
        config.host.clone(),
        config.healthy_codes.clone(),
        config.probe_timeout,
        config.concurrency,
    );
    // `https://` static target: TLS, the sweeper's own path.
    assert_eq!(
        probe_one(&prober, config.static_targets[0].clone()).await,
        Outcome::Unhealthy(Failure::Status(503))
    );
    // Plain HTTP to a TLS port is no answer.
    assert!(matches!(
        probe_one(&prober, target_at(backend.addr, Check::default())).await,
        Outcome::Unhealthy(Failure::Transport(_))
    ));

    // A target group whose health check is HTTPS on its own port and path: a registered target
    // (traffic on port 9) is asked there, and the early hints are skipped.
    let world = SweepWorld::start(&[]).await.unwrap();
    let sdk = world.moto.sdk_config().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let group = elb
        .create_target_group()
        .name("des-https")
        .protocol(ProtocolEnum::Https)
        .port(443)
        .vpc_id(&world.vpc_id)
        .target_type(TargetTypeEnum::Ip)
        .health_check_protocol(ProtocolEnum::Https)
        .health_check_port(backend.addr.port().to_string())
        .health_check_path("/ready")
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    elb.register_targets()
        .target_group_arn(&group)
        .targets(TargetDescription::builder().id("127.0.0.1").port(9).build())
        .send()
        .await
        .unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    // By default only the group's protocol is taken: SWEEP_PATH on the registered port.
    let by_default = TargetGroupDiscovery::new(elb.clone(), ec2.clone(), vec![group.clone()], 8080);
    assert_eq!(
        by_default.discover().await.unwrap(),
        [target_at("127.0.0.1:9".parse().unwrap(), Check::HTTPS)]
    );
    // SWEEP_TARGET_GROUP_CHECK=group: the check's own port and path too.
    let discovery = TargetGroupDiscovery::new(elb, ec2, vec![group], 8080).with_group_paths(true);
    let found = discovery.discover().await.unwrap();
    assert_eq!(
        found,
        [target_at(
            backend.addr,
            Check {
                tls: true,
                path: Some("/ready".into()),
            }
        )]
    );
    match probe_one(&prober, found[0].clone()).await {
        Outcome::Healthy { status: 200, .. } => {}
        other => panic!("the group's own check answers 200 after early hints: {other:?}"),
    }
}

/// A plain backend that answers `100 Continue`, then 200 with a 48 KB report, and records how its
/// connection ended: the probe reads the answer to its end (no reset in the backend's logs) and
/// sends the configured `Host`.
#[tokio::test]
async fn interim_answers_are_skipped_and_a_long_answer_is_read_to_its_end() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 4096];
        let mut read = 0;
        while !request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut request[read..]).await.unwrap() {
                0 => break,
                n => read += n,
            }
        }
        let body = "x".repeat(48 * 1024);
        let answer = format!(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let wrote = socket.write_all(answer.as_bytes()).await;
        let _ = socket.shutdown().await;
        // How the client left: a clean close reads 0; closing with the body unread resets.
        let mut rest = [0u8; 16];
        let ended = socket.read(&mut rest).await;
        (
            String::from_utf8_lossy(&request[..read]).to_string(),
            wrote.is_ok(),
            ended.map_err(|e| e.kind()),
        )
    });
    let config = config(&[
        ("SWEEP_STATIC_TARGETS", addr.to_string()),
        ("SWEEP_HOST_HEADER", "api.des.internal".to_string()),
    ]);
    let prober = Prober::new(
        config.path.clone(),
        config.host.clone(),
        config.healthy_codes.clone(),
        config.probe_timeout,
        config.concurrency,
    );
    match probe_one(&prober, config.static_targets[0].clone()).await {
        Outcome::Healthy { status: 200, .. } => {}
        other => panic!("100 Continue is not the verdict: {other:?}"),
    }
    let (request, wrote, ended) = server.await.unwrap();
    assert!(
        request.contains("\r\nHost: api.des.internal\r\n"),
        "{request}"
    );
    assert!(wrote, "the whole answer was taken");
    assert_eq!(
        ended,
        Ok(0),
        "the probe closed after reading the answer, without a reset"
    );
}
