//! Function processes killed (SIGKILL) mid-invocation, and the event redelivered to a fresh
//! process, as Lambda does after a crashed sandbox: the end state is the one a run without the
//! kill leaves (one notification per channel, one export, a completed rotation).
//!
//! Each kill is placed, not drawn: the fault proxy kills the process the moment the `k`-th AWS
//! request of its invocation has landed in the emulator (its answer never reaches the process),
//! for every `k` from the first request to the last of an invocation. A kill that does not fire
//! there, or an invocation that answers anyway, fails the test.
//!
//! The one duplicate allowed is the at-least-once window no retry can see into: a message sent
//! and its completion record not yet written when the process died. Whether a kill fell there is
//! read, per event, from the requests the killed invocation made.

use std::time::{Duration, Instant};

use harness::deploy::{self, DeployNotifier, SIGNING_KEY, Setup, WEBHOOK_TOKEN};
use harness::export::{self, ExportWorld, LISTED};
use harness::faults::FaultyProxy;
use harness::leaks::{self, Outbound};
use harness::paths::read_event;
use harness::rotation::{self, RotationWorld, STEPS};
use harness::runtime_api::RuntimeApi;
use serde_json::{Value, json};
use snapshot_exporter::rds::SourceKind;

/// Short deadlines: a killed holder's claims are taken over after the deadline plus the lease
/// margin, and the redeliveries wait for that.
const DEADLINE: Duration = Duration::from_secs(4);

/// Where one kill fell and what the killed invocation had done by then.
#[derive(Debug)]
struct Kill {
    /// The request (1-based, of the invocation) whose landing set the kill off.
    at: usize,
    /// That request, as the proxy saw it.
    request: String,
    /// Every request the invocation made, the last one the one killed at.
    requests: Vec<String>,
}

impl Kill {
    /// Channels the process left sent but not recorded: a redelivery may send them again.
    fn open_windows(&self) -> Vec<&'static str> {
        ["sns", "email", "webhook"]
            .into_iter()
            .filter(|channel| sent_unrecorded(&self.requests, channel))
            .collect()
    }
}

/// Spawns a fresh process of `function`, waits until it has finished its init and polls, arms the
/// proxy to kill it when the `at`-th request of the invocation of `event` has landed, and checks
/// that the kill fell there: the process died without answering, at that request.
async fn kill_at(
    api: &RuntimeApi,
    proxy: &FaultyProxy,
    function: &str,
    env: &[(String, String)],
    event: &Value,
    at: usize,
) -> Kill {
    let polls = api.polls();
    let mut process = api.spawn(function, env).unwrap();
    api.poll_after(polls, Duration::from_secs(30))
        .await
        .unwrap();
    let mark = proxy.seen().len();
    proxy.kill_after_request(process.pid().expect("a running process"), at);
    let answered = tokio::select! {
        answer = api.invoke(event, DEADLINE + Duration::from_secs(10)) => answer.unwrap(),
        _ = process.exited(DEADLINE + Duration::from_secs(10)) => None,
    };
    api.forget_pending();
    let fired = proxy.kill_fired();
    assert!(
        answered.is_none(),
        "{function}: the invocation answered before its request {at}: {answered:?}"
    );
    let request =
        fired.unwrap_or_else(|| panic!("{function}: the kill at request {at} never fired"));
    assert!(
        process.exited(Duration::from_secs(5)).await,
        "{function}: still running after the kill at request {at}"
    );
    let requests = proxy.seen().split_off(mark);
    Kill {
        at,
        request,
        requests,
    }
}

/// The AWS requests one invocation of `event` makes in a fresh process (the killed processes are
/// fresh too).
async fn requests_of(
    api: &RuntimeApi,
    proxy: &FaultyProxy,
    function: &str,
    env: &[(String, String)],
    event: &Value,
) -> usize {
    let polls = api.polls();
    let _process = api.spawn(function, env).unwrap();
    api.poll_after(polls, Duration::from_secs(30))
        .await
        .unwrap();
    let before = proxy.seen().len();
    let answer = api
        .invoke(event, Duration::from_secs(60))
        .await
        .unwrap()
        .expect("an answer");
    assert!(answer.ok, "{function}: {}", answer.body);
    let requests = proxy.seen().len() - before;
    assert!(requests >= 2, "{function}: {requests} requests");
    requests
}

/// Whether the requests show `channel` sent (or being sent) and its completion not written.
fn sent_unrecorded(requests: &[String], channel: &str) -> bool {
    let claim_puts = requests
        .iter()
        .filter(|r| {
            r.contains(" PUT ")
                && r.contains("/claims/notify/")
                && r.split_whitespace()
                    .nth(2)
                    .is_some_and(|p| p.ends_with(&format!("/{channel}")))
        })
        .count();
    let sent = match channel {
        "sns" => requests.iter().any(|r| r.contains("Action=Publish")),
        "email" => requests.iter().any(|r| r.contains("/outbound-emails")),
        // The webhook is posted directly, between its claim and its completion.
        _ => claim_puts >= 1,
    };
    sent && claim_puts < 2
}

/// Redelivers until the invocation succeeds (retryable errors allowed: a dead holder's claims
/// are in flight until their lease ends). Returns the answer and the attempts it took.
async fn redeliver(api: &RuntimeApi, event: &Value) -> (Value, usize) {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let answer = api
            .invoke(event, DEADLINE + Duration::from_secs(5))
            .await
            .unwrap()
            .expect("an answer within the deadline");
        if answer.ok {
            return (answer.json(), attempts);
        }
        let kind = answer.json()["errorType"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            kind.starts_with("Retryable."),
            "a redelivery failed for good: {}",
            answer.body
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never succeeded: {}",
            answer.body
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// One line per kill: where it fell and the windows it left open.
fn report(function: &str, kills: &[Kill], redeliveries: usize) {
    for kill in kills {
        eprintln!(
            "{function}: killed after request {} landed ({}), open windows {:?}",
            kill.at,
            kill.request,
            kill.open_windows()
        );
    }
    eprintln!(
        "{function}: {} kills, all mid-invocation, {redeliveries} redeliveries",
        kills.len()
    );
}

#[tokio::test]
async fn deploy_notifier_killed_mid_invocation_notifies_once() {
    let _alone = crate::alone().await;
    let world = DeployNotifier::start(Setup::default()).await.unwrap();
    let proxy = FaultyProxy::start(&world.moto).await.unwrap();
    let env = proxy.redirect(&world.env);
    let api = RuntimeApi::start(DEADLINE).await.unwrap();
    let event = |n: usize| {
        let mut event = read_event("ecs-deployment-failed-rollback.json").unwrap();
        event["id"] = json!(format!("b6c2e1f4-52a1-4d0f-9f3e-{n:012}"));
        event["detail"]["deploymentId"] = json!(format!("ecs-svc/kill-{n:06}"));
        event
    };
    let requests = requests_of(&api, &proxy, deploy::FUNCTION, &env, &event(0)).await;
    // Event n is killed after its request n landed: claims, sends and completions, each one.
    let mut kills = Vec::new();
    for at in 1..=requests {
        kills.push(kill_at(&api, &proxy, deploy::FUNCTION, &env, &event(at), at).await);
    }
    let mut survivor = api.spawn(deploy::FUNCTION, &env).unwrap();
    let mut redeliveries = 0;
    for at in 1..=requests {
        redeliveries += redeliver(&api, &event(at)).await.1;
    }
    survivor.check_alive().unwrap();

    let published = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    let emails = world.moto.sent_emails().await.unwrap();
    let posts = world.webhook.requests();
    for kill in &kills {
        let id = format!("kill-{:06}", kill.at);
        let open = kill.open_windows();
        let allowed = |channel: &str| 1 + usize::from(open.contains(&channel));
        let sns = published.iter().filter(|m| m.message.contains(&id)).count();
        let mail = emails.iter().filter(|m| m.text.contains(&id)).count();
        let chat = posts
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains(&id))
            .count();
        assert!(
            sns >= 1 && sns <= allowed("sns"),
            "{id}: {sns} SNS messages, killed at {kill:?}"
        );
        assert!(
            mail >= 1 && mail <= allowed("email"),
            "{id}: {mail} emails, killed at {kill:?}"
        );
        assert!(
            chat >= 1 && chat <= allowed("webhook"),
            "{id}: {chat} posts, killed at {kill:?}"
        );
    }
    report("deploy-notifier", &kills, redeliveries);

    let mut texts = leaks::from_moto(&world.moto).await.unwrap();
    texts.extend(leaks::from_server("webhook", &world.webhook));
    texts.push(Outbound::new(
        "the surviving process's log",
        survivor.logs(),
    ));
    leaks::assert_no_secrets(&[SIGNING_KEY, WEBHOOK_TOKEN], &texts);
}

#[tokio::test]
async fn snapshot_exporter_killed_mid_invocation_exports_once() {
    let _alone = crate::alone().await;
    let world = ExportWorld::start().await.unwrap();
    let proxy = FaultyProxy::start(&world.moto).await.unwrap();
    let env = proxy.redirect(&world.env());
    let api = RuntimeApi::start(DEADLINE).await.unwrap();

    let first = world.snapshot(LISTED, "des-db-kill-0").await.unwrap();
    let event = |n: usize, arn: &str| {
        export::created_event(
            SourceKind::Instance,
            arn,
            &format!("a1b2c3d4-0000-4000-8000-{n:012}"),
        )
        .unwrap()
    };
    let requests = requests_of(&api, &proxy, export::FUNCTION, &env, &event(0, &first)).await;
    let mut arns = vec![first];
    let mut kills = Vec::new();
    for at in 1..=requests {
        let arn = world
            .snapshot(LISTED, &format!("des-db-kill-{at}"))
            .await
            .unwrap();
        kills.push(kill_at(&api, &proxy, export::FUNCTION, &env, &event(at, &arn), at).await);
        arns.push(arn);
    }
    let mut survivor = api.spawn(export::FUNCTION, &env).unwrap();
    let mut redeliveries = 0;
    for (at, arn) in arns.iter().enumerate().skip(1) {
        let (answer, attempts) = redeliver(&api, &event(at, arn)).await;
        redeliveries += attempts;
        let outcome = answer["outcome"].as_str().unwrap_or("");
        assert!(
            ["started", "already-exported"].contains(&outcome),
            "{answer}"
        );
    }
    survivor.check_alive().unwrap();

    let tasks = world.export_tasks().await.unwrap();
    for arn in &arns {
        let exports = tasks
            .iter()
            .filter(|t| t.source_arn() == Some(arn.as_str()))
            .count();
        assert_eq!(exports, 1, "{arn}: one export");
    }
    let notices = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    let started: Vec<_> = notices
        .iter()
        .filter(|m| m.subject.to_lowercase().contains("start"))
        .collect();
    for (at, arn) in arns.iter().enumerate() {
        let id = arn.rsplit(':').next().unwrap_or("");
        // The whole subject: `des-db-kill-1` is also the start of `des-db-kill-10`.
        let told = started
            .iter()
            .filter(|m| m.subject == format!("RDS export started: {id}"))
            .count();
        let open = at > 0 && kills[at - 1].open_windows().contains(&"sns");
        assert!(
            told >= 1 && told <= 1 + usize::from(open),
            "{id}: told {told} times (killed in the send window: {open})"
        );
    }
    report("snapshot-exporter", &kills, redeliveries);
    let mut texts = leaks::from_moto(&world.moto).await.unwrap();
    texts.extend(leaks::from_notifications(&notices));
    texts.push(Outbound::new(
        "the surviving process's log",
        survivor.logs(),
    ));
    leaks::assert_no_secrets(&["local-only-password"], &texts);
}

#[tokio::test]
async fn secret_rotator_killed_mid_step_completes_the_rotation() {
    let _alone = crate::alone().await;
    let world = RotationWorld::start(&[]).await.unwrap();
    let proxy = FaultyProxy::start(&world.moto).await.unwrap();
    let env = proxy.redirect(&world.env);
    let api = RuntimeApi::start(DEADLINE).await.unwrap();
    let step_event = |secret: &str, token: &str, step: &str| json!({"SecretId": secret, "ClientRequestToken": token, "Step": step});
    let mut created = 0;
    let mut new_secret = async || {
        let old = format!("old-api-key-value-{created:04}-never-shown");
        let secret = world
            .create_secret(
                &format!("des/api/kill-{created}"),
                &json!({"type": "api-key", "provider": "Maps API", "api_key": old, "owners": "logistics@example.com"}),
            )
            .await
            .unwrap();
        created += 1;
        (secret, old)
    };

    // A whole rotation, each step in a fresh process: the requests each step makes.
    let (first, first_old) = new_secret().await;
    let token = world.begin_rotation(&first).await.unwrap();
    let mut per_step = Vec::new();
    for step in STEPS {
        let event = step_event(&first, &token, step);
        per_step.push(requests_of(&api, &proxy, rotation::FUNCTION, &env, &event).await);
    }
    let mut rotations = vec![(first, token, first_old, None)];
    // Then one rotation per (step, request): the steps before run normally, the step is killed
    // after that request landed, and the rest is redelivered below.
    let mut kills = Vec::new();
    for (index, step) in STEPS.iter().enumerate() {
        for at in 1..=per_step[index] {
            let (secret, old) = new_secret().await;
            let token = world.begin_rotation(&secret).await.unwrap();
            let polls = api.polls();
            let runner = api.spawn(rotation::FUNCTION, &env).unwrap();
            api.poll_after(polls, Duration::from_secs(30))
                .await
                .unwrap();
            for earlier in &STEPS[..index] {
                let answer = api
                    .invoke(
                        &step_event(&secret, &token, earlier),
                        Duration::from_secs(60),
                    )
                    .await
                    .unwrap()
                    .unwrap();
                assert!(answer.ok, "{earlier}: {}", answer.body);
            }
            drop(runner);
            let event = step_event(&secret, &token, step);
            let kill = kill_at(&api, &proxy, rotation::FUNCTION, &env, &event, at).await;
            rotations.push((secret, token, old, Some((index, kills.len()))));
            kills.push(kill);
        }
    }
    let mut survivor = api.spawn(rotation::FUNCTION, &env).unwrap();
    let mut redeliveries = 0;
    for (secret, token, _, killed) in &rotations {
        let Some((index, _)) = killed else { continue };
        for later in &STEPS[*index..] {
            redeliveries += redeliver(&api, &step_event(secret, token, later)).await.1;
        }
    }
    survivor.check_alive().unwrap();

    for (secret, token, old, _) in &rotations {
        let labels = world.labels(secret).await.unwrap();
        assert!(
            labels[token].contains(&"AWSCURRENT".to_string()),
            "{secret}: {labels:?}"
        );
        assert!(
            !labels
                .values()
                .any(|l| l.contains(&"AWSPENDING".to_string())),
            "{labels:?}"
        );
        let current = world.value(secret, "AWSCURRENT").await.unwrap();
        assert_ne!(
            current["api_key"].as_str(),
            Some(old.as_str()),
            "{secret} rotated"
        );
    }
    // Failed steps alert (by design); the owners' notice comes once per rotation, twice only
    // where the kill fell between its send and its record.
    let notices = world.alerts().await.unwrap();
    let live = notices
        .iter()
        .filter(|n| n.subject.starts_with("New API key live"))
        .count();
    let open = kills
        .iter()
        .filter(|k| k.open_windows().contains(&"sns"))
        .count();
    assert!(
        live >= rotations.len() && live <= rotations.len() + open,
        "one owners' notice per rotation ({live} notices, {} rotations, {open} kills in the window): {:?}",
        rotations.len(),
        notices.iter().map(|n| &n.subject).collect::<Vec<_>>()
    );
    eprintln!("secret-rotator: requests per step {per_step:?} ({STEPS:?})");
    report("secret-rotator", &kills, redeliveries);
    let mut secret_values: Vec<String> = Vec::new();
    for (secret, _, old, _) in &rotations {
        secret_values.push(old.clone());
        let current = world.value(secret, "AWSCURRENT").await.unwrap();
        secret_values.push(current["api_key"].as_str().unwrap_or_default().to_string());
    }
    let mut texts = leaks::from_moto(&world.moto).await.unwrap();
    texts.extend(leaks::from_notifications(&notices));
    texts.push(Outbound::new(
        "the surviving process's log",
        survivor.logs(),
    ));
    let refs: Vec<&str> = secret_values.iter().map(String::as_str).collect();
    leaks::assert_no_secrets(&refs, &texts);
}
