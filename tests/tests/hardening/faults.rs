//! Faults between a function and AWS, through the built binaries, with the SDK settings the
//! functions are deployed with: the emulator answering 500, throttling, hanging, or stopping
//! mid-run (at every request boundary of an invocation, in turn), one answer lost after its
//! request landed (at every request in turn), and a hanging chat webhook. Each faulted invocation must end within its deadline with
//! a retryable error (`Retryable.*`), never a permanent one, and the redelivered event must then
//! succeed with exactly one notification per channel and no secret in any output.

use std::time::Duration;

use harness::deploy::{DeployNotifier, FUNCTION, SIGNING_KEY, Setup, WEBHOOK_TOKEN};
use harness::faults::{self, Fault, FaultyProxy, invoke_faulted};
use harness::http::Behaviour;
use harness::leaks::{self, Outbound};
use harness::paths::read_event;
use harness::runtime_api::{Answer, FunctionProcess, RuntimeApi};
use serde_json::{Value, json};

/// Each invocation's deadline: short, so a fault that ignored it would show.
const DEADLINE: Duration = Duration::from_secs(6);
/// What the runtime waits for an answer beyond the deadline before calling it a hang.
const GRACE: Duration = Duration::from_secs(3);

/// The failed-deployment fixture as a distinct event (its own id and deployment).
fn deployment_event(n: usize) -> Value {
    let mut event = read_event("ecs-deployment-failed-rollback.json").unwrap();
    event["id"] = json!(format!("b6c2e1f4-52a1-4d0f-9f3e-{n:012}"));
    event["detail"]["deploymentId"] = json!(format!("ecs-svc/fault-{n:06}"));
    event
}

async fn faulted(api: &RuntimeApi, event: &Value, case: &str) -> Answer {
    invoke_faulted(api, event, DEADLINE, GRACE, case).await
}

async fn redeliver(api: &RuntimeApi, event: &Value, case: &str) -> usize {
    faults::redeliver(api, event, DEADLINE, case).await.len()
}

async fn deploy_world() -> (DeployNotifier, FaultyProxy, RuntimeApi, FunctionProcess) {
    let world = DeployNotifier::start(Setup::default()).await.unwrap();
    let proxy = FaultyProxy::start(&world.moto).await.unwrap();
    let api = RuntimeApi::start(DEADLINE).await.unwrap();
    let process = api
        .spawn(
            FUNCTION,
            &faults::production_sdk(&proxy.redirect(&world.env)),
        )
        .unwrap();
    (world, proxy, api, process)
}

/// The emulator answering 500, throttling, hanging or gone, from the first request of an
/// invocation and from each later request boundary in turn ("stopped mid-run").
#[tokio::test]
async fn deploy_notifier_survives_the_emulator_failing_at_every_point() {
    let _alone = crate::alone().await;
    let (world, proxy, api, mut process) = deploy_world().await;

    // A first run loads the secrets; a second, warm, one counts the AWS requests an event takes.
    let mut events = vec![deployment_event(0), deployment_event(1)];
    let first = api.invoke(&events[0], DEADLINE).await.unwrap().unwrap();
    assert!(first.ok, "{}\n{}", first.body, process.logs());
    let before = proxy.passed();
    let clean = api.invoke(&events[1], DEADLINE).await.unwrap().unwrap();
    assert!(clean.ok, "{}\n{}", clean.body, process.logs());
    let requests = proxy.passed() - before;
    assert!(requests >= 6, "claims, sends and completions: {requests}");

    let mut cases = Vec::new();
    for fault in [
        Fault::ServerError,
        Fault::Throttle,
        Fault::Hang,
        Fault::Down,
    ] {
        cases.push((fault, 0));
    }
    for after in 1..requests {
        cases.push((Fault::Down, after));
        cases.push((Fault::ServerError, after));
    }
    // One request lands and its answer is lost, at every request of the invocation in turn.
    for after in 0..requests {
        cases.push((Fault::LostAnswer, after));
    }
    // A send that went out and whose completion record was then lost is sent again on retry:
    // nothing can tell the retry it went out (SNS, SES and webhooks take no idempotency key).
    // So is a send whose answer was lost: the SDK sends it again. Those cases are counted, and
    // their channel may show two messages; every other case exactly one.
    let mut resent: std::collections::BTreeMap<usize, String> = Default::default();
    let mut failed = 0;
    for (fault, after) in &cases {
        let n = events.len();
        let event = deployment_event(n);
        if *fault == Fault::LostAnswer {
            proxy.fail_once_after(*after, *fault);
        } else {
            proxy.fail_after(*after, *fault);
        }
        let mark = proxy.seen().len();
        let answer = faulted(&api, &event, &format!("{fault:?} after {after}")).await;
        failed += usize::from(!answer.ok);
        proxy.set(Fault::None);
        let mine = proxy.seen().split_off(mark);
        if let Some(lost) = mine.iter().find(|r| !r.starts_with("None ")) {
            let path = lost.split_whitespace().nth(2).unwrap_or("").to_string();
            let written_before = mine
                .iter()
                .take_while(|r| r.starts_with("None "))
                .any(|r| r.starts_with("None PUT ") && r.split_whitespace().nth(2) == Some(&path));
            // (A completion whose answer was lost has landed: its retry finds the record.)
            if path.contains("/claims/notify/") && written_before && *fault != Fault::LostAnswer {
                resent.insert(n, path.rsplit('/').next().unwrap_or("").to_string());
            }
            if lost.starts_with("LostAnswer ") {
                if lost.contains("Action=Publish") {
                    resent.insert(n, "sns".into());
                } else if lost.contains("/outbound-emails") {
                    resent.insert(n, "email".into());
                }
            }
        }
        events.push(event);
    }
    process.check_alive().unwrap();
    assert!(
        failed >= 4,
        "the faults from the first request all fail: {failed}"
    );

    let mut redeliveries = 0;
    for (n, event) in events.iter().enumerate() {
        redeliveries += redeliver(&api, event, &format!("event {n}")).await;
    }
    // Once more: every event is now a duplicate.
    for event in &events {
        assert!(api.invoke(event, DEADLINE).await.unwrap().unwrap().ok);
    }

    let published = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    let emails = world.moto.sent_emails().await.unwrap();
    let posts = world.webhook.requests();
    for n in 0..events.len() {
        let id = format!("fault-{n:06}");
        let sns = published.iter().filter(|m| m.message.contains(&id)).count();
        let mail = emails.iter().filter(|m| m.text.contains(&id)).count();
        let chat = posts
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains(&id))
            .count();
        let once = |channel: &str| 1 + usize::from(resent.get(&n).is_some_and(|c| c == channel));
        assert_eq!(
            (sns, mail, chat),
            (once("sns"), once("email"), once("webhook")),
            "event {n} (sns, email, chat); requests:\n{}",
            proxy.seen().join("\n")
        );
    }
    eprintln!(
        "deploy-notifier: {} faults injected over {} faulted invocations ({failed} failed retryably), {redeliveries} redeliveries, {} requests per warm run, {} sent-then-record-lost windows {resent:?}",
        proxy.injected(),
        cases.len(),
        requests,
        resent.len()
    );

    let mut texts = leaks::from_moto(&world.moto).await.unwrap();
    texts.push(Outbound::new("the function's log", process.logs()));
    texts.extend(leaks::from_server("webhook", &world.webhook));
    leaks::assert_no_secrets(&[SIGNING_KEY, WEBHOOK_TOKEN], &texts);
}

/// A chat webhook that hangs: the invocation fails retryably inside its deadline, the other
/// channels are not sent twice, and the retry posts to the webhook once more, only.
#[tokio::test]
async fn deploy_notifier_fails_retryably_on_a_hanging_webhook_and_the_retry_sends_once() {
    let _alone = crate::alone().await;
    let (world, _proxy, api, process) = deploy_world().await;
    world.webhook.set_behaviour(Behaviour::Hang);
    let event = deployment_event(100);
    let answer = faulted(&api, &event, "hanging webhook").await;
    assert!(
        !answer.ok,
        "a hanging channel is a failed send: {}",
        answer.body
    );
    world.webhook.set_behaviour(Behaviour::Status(200));
    redeliver(&api, &event, "hanging webhook").await;
    assert_eq!(
        world
            .moto
            .received_notifications(&world.queue_url)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(world.moto.sent_emails().await.unwrap().len(), 1);
    assert_eq!(world.webhook.requests().len(), 2, "one hung, one answered");

    let mut texts = leaks::from_moto(&world.moto).await.unwrap();
    texts.push(Outbound::new("the function's log", process.logs()));
    texts.push(Outbound::new("the error", answer.body));
    leaks::assert_no_secrets(&[SIGNING_KEY, WEBHOOK_TOKEN], &texts);
}
