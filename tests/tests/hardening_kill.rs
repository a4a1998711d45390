//! Function processes killed (SIGKILL) at a random point of an invocation, a bounded number of
//! times, and the event redelivered to a fresh process, as Lambda does after a crashed sandbox:
//! the end state is the one a run without the kill leaves (one notification per channel, one
//! export, a completed rotation). The kill points come from a seeded generator
//! (`WATCHKEEPER_KILL_SEED`); `WATCHKEEPER_KILLS` sets how many per function (default 4).
//!
//! The one duplicate allowed is the at-least-once window no retry can see into: a message sent
//! and its completion record not yet written when the process died. The requests the process
//! made (seen by a pass-through proxy) say whether a kill landed there; such kills are counted.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use harness::deploy::{self, DeployNotifier, SIGNING_KEY, Setup, WEBHOOK_TOKEN};
use harness::export::{self, ExportWorld, LISTED};
use harness::faults::FaultyProxy;
use harness::fuzz::Rng;
use harness::leaks::{self, Outbound};
use harness::paths::read_event;
use harness::rotation::{self, RotationWorld, STEPS};
use harness::runtime_api::{FunctionProcess, RuntimeApi};
use serde_json::{Value, json};
use snapshot_exporter::rds::SourceKind;

/// Short deadlines: a killed holder's claims are taken over after the deadline plus the lease
/// margin, and the redeliveries wait for that.
const DEADLINE: Duration = Duration::from_secs(4);

fn kills() -> usize {
    std::env::var("WATCHKEEPER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

fn rng(salt: u64) -> Rng {
    let seed = std::env::var("WATCHKEEPER_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6b11_2026u64);
    Rng::new(seed ^ salt)
}

/// Where a kill landed.
#[derive(Debug, Default)]
struct Tally {
    /// The process had taken the invocation and not answered.
    mid_invocation: usize,
    /// The invocation had already been answered (the kill came too late).
    after_answer: usize,
    /// Still queued (the kill came before the process took it).
    before_start: usize,
    redeliveries: usize,
    /// Kills between a send and its completion record (per channel).
    windows: Vec<String>,
}

/// Kills a fresh process of the function at a random point (up to `longest`) of the invocation
/// of `event`, and reports which channels it left sent-but-unrecorded. Returns the requests the
/// killed invocation made.
async fn kill_during(
    api: &RuntimeApi,
    proxy: &FaultyProxy,
    mut process: FunctionProcess,
    event: &Value,
    at: Duration,
    tally: &mut Tally,
) -> Vec<String> {
    let mark = proxy.seen().len();
    let invocation = {
        let event = event.clone();
        async move { api.invoke(&event, Duration::from_secs(60)).await }
    };
    let answered = tokio::select! {
        answer = invocation => answer.unwrap().is_some(),
        _ = tokio::time::sleep(at) => false,
    };
    let taken = api.in_progress() > 0;
    process.kill().await.unwrap();
    api.forget_pending();
    match (answered, taken) {
        (true, _) => tally.after_answer += 1,
        (false, true) => tally.mid_invocation += 1,
        (false, false) => tally.before_start += 1,
    }
    let mine = proxy.seen().split_off(mark.min(proxy.seen().len()));
    for channel in ["sns", "email", "webhook"] {
        if sent_unrecorded(&mine, channel) {
            tally.windows.push(channel.to_string());
        }
    }
    mine
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
/// are in flight until their lease ends).
async fn redeliver(api: &RuntimeApi, event: &Value, tally: &mut Tally) -> Value {
    let started = Instant::now();
    loop {
        tally.redeliveries += 1;
        let answer = api
            .invoke(event, DEADLINE + Duration::from_secs(5))
            .await
            .unwrap()
            .expect("an answer within the deadline");
        if answer.ok {
            return answer.json();
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

/// The time a warm invocation takes, to draw kill points from.
async fn timed(api: &RuntimeApi, event: &Value) -> Duration {
    let started = Instant::now();
    let answer = api
        .invoke(event, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.ok, "{}", answer.body);
    started.elapsed()
}

fn kill_point(rng: &mut Rng, longest: Duration) -> Duration {
    let millis = longest.as_millis() as usize + 50;
    Duration::from_millis(rng.below(millis) as u64)
}

#[tokio::test]
async fn deploy_notifier_killed_mid_invocation_notifies_once() {
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
    let mut rng = rng(1);
    let mut tally = Tally::default();
    let mut windows = Vec::new();

    let warm = api.spawn(deploy::FUNCTION, &env).unwrap();
    timed(&api, &event(0)).await;
    let longest = timed(&api, &event(1)).await;
    drop(warm);
    let events: Vec<Value> = (2..2 + kills()).map(event).collect();
    for e in &events {
        let before = tally.windows.len();
        let process = api.spawn(deploy::FUNCTION, &env).unwrap();
        // Let it start polling: a kill during init is not a kill mid-invocation.
        tokio::time::sleep(Duration::from_millis(300)).await;
        kill_during(
            &api,
            &proxy,
            process,
            e,
            kill_point(&mut rng, longest),
            &mut tally,
        )
        .await;
        windows.push(tally.windows[before..].to_vec());
    }
    let mut survivor = api.spawn(deploy::FUNCTION, &env).unwrap();
    for e in &events {
        redeliver(&api, e, &mut tally).await;
    }
    survivor.check_alive().unwrap();

    let published = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    let emails = world.moto.sent_emails().await.unwrap();
    let posts = world.webhook.requests();
    for (i, open) in windows.iter().enumerate() {
        let id = format!("kill-{:06}", i + 2);
        let allowed = |channel: &str| 1 + usize::from(open.iter().any(|c| c == channel));
        let sns = published.iter().filter(|m| m.message.contains(&id)).count();
        let mail = emails.iter().filter(|m| m.text.contains(&id)).count();
        let chat = posts
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains(&id))
            .count();
        assert!(
            sns >= 1 && sns <= allowed("sns"),
            "{id}: {sns} SNS messages, open {open:?}"
        );
        assert!(
            mail >= 1 && mail <= allowed("email"),
            "{id}: {mail} emails, open {open:?}"
        );
        assert!(
            chat >= 1 && chat <= allowed("webhook"),
            "{id}: {chat} posts, open {open:?}"
        );
    }
    eprintln!("deploy-notifier kills: {tally:?}");

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
    let world = ExportWorld::start().await.unwrap();
    let proxy = FaultyProxy::start(&world.moto).await.unwrap();
    let env = proxy.redirect(&world.env());
    let api = RuntimeApi::start(DEADLINE).await.unwrap();
    let mut rng = rng(2);
    let mut tally = Tally::default();

    let mut arns = Vec::new();
    for n in 0..2 + kills() {
        arns.push(
            world
                .snapshot(LISTED, &format!("des-db-kill-{n}"))
                .await
                .unwrap(),
        );
    }
    let event = |n: usize| {
        export::created_event(
            SourceKind::Instance,
            &arns[n],
            &format!("a1b2c3d4-0000-4000-8000-{n:012}"),
        )
        .unwrap()
    };
    let warm = api.spawn(export::FUNCTION, &env).unwrap();
    timed(&api, &event(0)).await;
    let longest = timed(&api, &event(1)).await;
    drop(warm);
    for n in 2..arns.len() {
        let process = api.spawn(export::FUNCTION, &env).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        kill_during(
            &api,
            &proxy,
            process,
            &event(n),
            kill_point(&mut rng, longest),
            &mut tally,
        )
        .await;
    }
    let mut survivor = api.spawn(export::FUNCTION, &env).unwrap();
    for n in 2..arns.len() {
        let answer = redeliver(&api, &event(n), &mut tally).await;
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
    let ids: BTreeSet<String> = arns
        .iter()
        .map(|a| a.rsplit(':').next().unwrap_or("").to_string())
        .collect();
    for id in &ids {
        let told = started
            .iter()
            .filter(|m| m.message.contains(id.as_str()) || m.subject.contains(id.as_str()))
            .count();
        let open = tally.windows.iter().filter(|c| *c == "sns").count();
        assert!(
            told >= 1 && told <= 1 + open,
            "{id}: told {told} times ({open} kills in the window)"
        );
    }
    eprintln!("snapshot-exporter kills: {tally:?}");
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
    let world = RotationWorld::start(&[]).await.unwrap();
    let proxy = FaultyProxy::start(&world.moto).await.unwrap();
    let env = proxy.redirect(&world.env);
    let api = RuntimeApi::start(DEADLINE).await.unwrap();
    let mut rng = rng(3);
    let mut tally = Tally::default();
    let step_event = |secret: &str, token: &str, step: &str| json!({"SecretId": secret, "ClientRequestToken": token, "Step": step});
    let mut old_keys = Vec::new();
    let mut secrets = Vec::new();
    for n in 0..=kills() {
        let old = format!("old-api-key-value-{n:04}-never-shown");
        let secret = world
            .create_secret(
                &format!("des/api/kill-{n}"),
                &json!({"type": "api-key", "provider": "Maps API", "api_key": old, "owners": "logistics@example.com"}),
            )
            .await
            .unwrap();
        old_keys.push(old);
        secrets.push(secret);
    }
    let mut survivor = api.spawn(rotation::FUNCTION, &env).unwrap();
    // A whole warm rotation of the first secret: kill points are drawn within the shortest step.
    let warm = world.begin_rotation(&secrets[0]).await.unwrap();
    let mut longest = Duration::MAX;
    for step in STEPS {
        longest = longest.min(timed(&api, &step_event(&secrets[0], &warm, step)).await);
    }
    drop(survivor);
    let secrets = secrets.split_off(1);
    let old_keys = old_keys.split_off(1);
    let mut tokens = Vec::new();
    for secret in &secrets {
        tokens.push(world.begin_rotation(secret).await.unwrap());
    }
    let mut killed_at = Vec::new();
    for (secret, token) in secrets.iter().zip(&tokens) {
        let step = STEPS[rng.below(STEPS.len())];
        // The steps before the killed one run normally.
        let runner = api.spawn(rotation::FUNCTION, &env).unwrap();
        for earlier in STEPS.iter().take_while(|s| **s != step) {
            let answer = api
                .invoke(&step_event(secret, token, earlier), Duration::from_secs(60))
                .await
                .unwrap()
                .unwrap();
            assert!(answer.ok, "{earlier}: {}", answer.body);
        }
        drop(runner);
        let process = api.spawn(rotation::FUNCTION, &env).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        kill_during(
            &api,
            &proxy,
            process,
            &step_event(secret, token, step),
            kill_point(&mut rng, longest),
            &mut tally,
        )
        .await;
        killed_at.push(step);
    }
    survivor = api.spawn(rotation::FUNCTION, &env).unwrap();
    for ((secret, token), step) in secrets.iter().zip(&tokens).zip(&killed_at) {
        for later in STEPS.iter().skip_while(|s| *s != step) {
            redeliver(&api, &step_event(secret, token, later), &mut tally).await;
        }
    }
    survivor.check_alive().unwrap();

    for ((secret, token), old) in secrets.iter().zip(&tokens).zip(&old_keys) {
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
    // Failed steps alert (by design); the owners' notice comes once per rotation.
    let notices = world.alerts().await.unwrap();
    let live = notices
        .iter()
        .filter(|n| n.subject.starts_with("New API key live"))
        .count();
    let open = tally.windows.iter().filter(|c| *c == "sns").count();
    // One per killed rotation, one for the warm one.
    let rotations = secrets.len() + 1;
    assert!(
        live >= rotations && live <= rotations + open,
        "one owners' notice per rotation ({live} notices, {rotations} rotations, {open} kills in the window): {:?}",
        notices.iter().map(|n| &n.subject).collect::<Vec<_>>()
    );
    eprintln!("secret-rotator kills (steps {killed_at:?}): {tally:?}");
    let mut secret_values: Vec<String> = old_keys.clone();
    for secret in &secrets {
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
