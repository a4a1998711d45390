//! The real thing: `terraform init → apply → plan → destroy` of `infra/` against the emulator,
//! with the defaults and with every optional input set, and then the functions run as the roles
//! the apply made. Skipped, loudly, only where Terraform or the AWS provider mirror is absent.
//!
//! What it proves, and how:
//! - The HCL applies (every resource the AWS provider 5.100 creates against moto), and a plan
//!   right after the apply is empty (no attribute drifts on read-back).
//! - The deployed functions' environment (read back from Lambda) is what their configuration
//!   reads, no more, no less.
//! - Least privilege, in two halves. Actions: each function's scenario runs with credentials
//!   from STS `AssumeRole` of the role Terraform made, with moto's IAM enforcement on (it refuses
//!   an action no policy of the caller allows; it does not look at resources or conditions), and
//!   must succeed. Resources and conditions: every call the scenario made (moto's request
//!   recorder) is evaluated against the deployed policies by `policy.rs`, and must be allowed;
//!   and calls just outside them (another bucket, another function's prefix, another secret,
//!   another topic) must be denied.
//!
//! What it cannot prove (the README says so): that AWS itself accepts every policy and service
//! principal (moto accepts any), the Function URL's 6.x-only permission (left out of the copy),
//! KMS key policies (moto does not evaluate them), and what the test-only overrides in
//! `tests/infra-apply/` replace (each says why).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use harness::http::{Behaviour, HttpServer};
use harness::lambda::LambdaRuntime;
use harness::moto::{ACCOUNT, Moto, REGION};
use harness::paths::read_event;
use harness::postgres::{PgOptions, Postgres};
use harness::terraform::{Deployment, Readback, Terraform, zip};
use serde_json::Value;

use crate::policy::{Decision, Request, evaluate};
use crate::recorded::{Account, access_key, requests};

const PREFIX: &str = "wk";
const FUNCTIONS: [&str; 5] = [
    "deploy-notifier",
    "secret-rotator",
    "snapshot-exporter",
    "budget-alerter",
    "health-sweeper",
];

fn terraform_or_skip() -> Option<Terraform> {
    match Terraform::find() {
        Ok(terraform) => Some(terraform),
        Err(why) => {
            eprintln!(
                "\n*** SKIPPED: the real terraform apply of infra/ did not run: {why}. ***\n\
                 *** Install Terraform (1.11+) and a filesystem mirror of hashicorp/aws to run it. ***\n"
            );
            None
        }
    }
}

/// A VPC with two private subnets, as the suite expects to find.
async fn network(moto: &Moto) -> (String, Vec<String>) {
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config().await);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc
        .and_then(|v| v.vpc_id)
        .unwrap();
    let mut subnets = Vec::new();
    for (i, zone) in ["us-east-1a", "us-east-1b"].iter().enumerate() {
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.0.{}.0/24", i + 1))
            .availability_zone(*zone)
            .send()
            .await
            .unwrap()
            .subnet
            .and_then(|s| s.subnet_id)
            .unwrap();
        subnets.push(subnet);
    }
    (vpc, subnets)
}

/// Placeholder function zips (the emulator does not run them: the scenarios run the built
/// binaries with the deployed configuration and role).
async fn artifacts(deployment: &Deployment) {
    for function in FUNCTIONS {
        let zip_path = deployment
            .dir()
            .join("artifacts")
            .join(function)
            .join("bootstrap.zip");
        zip(&zip_path, &[("bootstrap", "placeholder")])
            .await
            .unwrap();
    }
    zip(
        &deployment.dir().join("artifacts/rds-ca-layer.zip"),
        &[("rds-ca/global-bundle.pem", "-----BEGIN CERTIFICATE-----\n")],
    )
    .await
    .unwrap();
}

fn base_vars(vpc: &str, subnets: &[String]) -> String {
    format!(
        r#"
project_prefix        = "{PREFIX}"
manager_email         = "ops@example.com"
vpc_id                = "{vpc}"
private_subnet_ids    = {subnets:?}
database_cidr_blocks  = ["10.0.20.0/24"]
artifacts_dir         = "@DIR@/artifacts"
force_destroy_buckets = true
"#
    )
}

/// The emulator, with the IAM managed policies the roles attach, and a VPC with two subnets.
async fn emulator_with_network() -> (Moto, String, Vec<String>) {
    let moto = Moto::start_with(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")])
        .await
        .unwrap();
    let (vpc, subnets) = network(&moto).await;
    (moto, vpc, subnets)
}

/// A scratch copy of `infra/` initialised with `vars`, its placeholder artifacts, applied; the
/// plan after the apply must be empty.
async fn apply_clean(terraform: &Terraform, moto: &Moto, vars: &str) -> Deployment {
    let deployment = Deployment::init(terraform, moto.endpoint(), vars)
        .await
        .unwrap();
    artifacts(&deployment).await;
    let took = deployment.apply().await.unwrap();
    let started = Instant::now();
    if let Some(plan) = deployment.plan_changes().await.unwrap() {
        panic!("the plan right after apply is not empty:\n{plan}");
    }
    eprintln!(
        "terraform: apply {:.0} s, plan {:.0} s (no changes)",
        took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    deployment
}

/// The deployed functions' environment, read back: each sets only what its crate's code reads,
/// and the functions of one crate together set all of it (deploy-notifier is two functions of
/// one binary, each given its half).
async fn environments_match_the_code(readback: &Readback<'_>, functions: &[(&str, &str)]) {
    let mut set_by_crate: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (deployed, crate_name) in functions {
        let config = readback.function_configuration(deployed).await.unwrap();
        let set: BTreeSet<String> = config["Environment"]["Variables"]
            .as_object()
            .map(|vars| vars.keys().cloned().collect())
            .unwrap_or_default();
        let read = crate::against_code::code_variables(crate_name);
        let unread: Vec<_> = set.difference(&read).collect();
        assert!(
            unread.is_empty(),
            "{deployed} is deployed with {unread:?}, which {crate_name} never reads"
        );
        set_by_crate.entry(crate_name).or_default().extend(set);
    }
    for (crate_name, set) in set_by_crate {
        let read = crate::against_code::code_variables(crate_name);
        let missing: Vec<_> = read.difference(&set).collect();
        assert!(
            missing.is_empty(),
            "{crate_name} reads {missing:?}, which no deployed function of it sets"
        );
    }
}

/// One function run as its deployed role: what it did, and the policies that allowed it.
struct RoleRun {
    role_name: String,
    policies: Vec<Value>,
    calls: Vec<Request>,
    /// The deployed function's environment.
    env: BTreeMap<String, String>,
    /// Its answers, one per event.
    answers: Vec<harness::lambda::Invocation>,
}

/// Runs `crate_name` with the deployed configuration of `deployed` and credentials of its role,
/// IAM enforcement on, and invokes it with each of `events` (every answer must be `ok`).
/// `overrides`: what only a local run needs (loopback targets, plaintext to the local database).
async fn run_as_role(
    moto: &Moto,
    readback: &Readback<'_>,
    deployed: &str,
    crate_name: &str,
    overrides: &[(&str, String)],
    events: &[Value],
) -> RoleRun {
    let config = readback.function_configuration(deployed).await.unwrap();
    let role_arn = config["Role"].as_str().unwrap().to_string();
    let role_name = role_arn.rsplit('/').next().unwrap().to_string();
    let credentials = readback.assume_role(&role_arn).await.unwrap();
    let mut env = deployed_env(moto, &config, &credentials, deployed);
    env.extend(overrides.iter().map(|(k, v)| (k.to_string(), v.clone())));

    moto.record_calls().await.unwrap();
    moto.enforce_iam(true).await.unwrap();
    let runtime = LambdaRuntime::start(crate_name, &env).await.unwrap();
    let mut answers = Vec::new();
    for event in events {
        answers.push(runtime.invoke(event).await.unwrap());
    }
    moto.enforce_iam(false).await.unwrap();
    for (event, answer) in events.iter().zip(&answers) {
        assert!(
            answer.ok
                && !answer.output.contains("\"statusCode\":4")
                && !answer.output.contains("\"statusCode\":5"),
            "{deployed} as its role, IAM enforced: {}\nevent: {event}\nfunction log:\n{}\nemulator:\n{}",
            answer.output,
            runtime.logs(),
            moto.log_tail()
        );
    }
    drop(runtime);

    let secrets = secret_arns(moto).await;
    let account = Account {
        id: ACCOUNT.into(),
        region: REGION.into(),
        secrets,
        keys: encryption_keys(moto).await,
    };
    let mut calls = Vec::new();
    for entry in moto.recorded_requests().await.unwrap() {
        if access_key(&entry).as_deref() != Some(credentials.access_key_id.as_str()) {
            continue;
        }
        calls.extend(requests(&entry, &account).unwrap_or_else(|e| panic!("{deployed}: {e}")));
    }
    assert!(!calls.is_empty(), "{deployed}: no call was recorded");
    let policies = readback.role_policies(&role_name).await.unwrap();
    for call in &calls {
        let decision = evaluate(&policies, call).unwrap();
        assert_eq!(
            decision,
            Decision::Allow,
            "{deployed}: its role does not allow a call it made: {call:?}\npolicies: {policies:#?}"
        );
    }
    let distinct: BTreeSet<&str> = calls.iter().map(|c| c.action.as_str()).collect();
    eprintln!(
        "{deployed}: ran as {role_name} with IAM enforced; {} calls, all allowed by its policies: {distinct:?}",
        calls.len()
    );
    let env = config["Environment"]["Variables"]
        .as_object()
        .map(|vars| {
            vars.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    RoleRun {
        role_name,
        policies,
        calls,
        env,
        answers,
    }
}

/// A function process's environment: the emulator's endpoint, `credentials`, and the deployed
/// function's own variables.
fn deployed_env(
    moto: &Moto,
    config: &Value,
    credentials: &harness::terraform::RoleCredentials,
    deployed: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY") && !k.starts_with("AWS_SECRET"))
        .collect();
    env.extend(credentials.env());
    if let Some(vars) = config["Environment"]["Variables"].as_object() {
        env.extend(
            vars.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
        );
    }
    env.push(("AWS_LAMBDA_FUNCTION_NAME".into(), deployed.to_string()));
    env
}

/// Runs `crate_name` with the deployed configuration of `configured` but the role of
/// `role_of`, IAM enforcement on; returns its answer to `event` and the operations it asked
/// for.
async fn run_with_other_role(
    moto: &Moto,
    readback: &Readback<'_>,
    configured: &str,
    role_of: &str,
    crate_name: &str,
    event: &Value,
) -> (harness::lambda::Invocation, Vec<String>) {
    let config = readback.function_configuration(configured).await.unwrap();
    let other = readback.function_configuration(role_of).await.unwrap();
    let credentials = readback
        .assume_role(other["Role"].as_str().unwrap())
        .await
        .unwrap();
    let env = deployed_env(moto, &config, &credentials, configured);
    moto.enforce_iam(true).await.unwrap();
    moto.record_calls().await.unwrap();
    let runtime = LambdaRuntime::start(crate_name, &env).await.unwrap();
    let answer = runtime.invoke(event).await.unwrap();
    moto.enforce_iam(false).await.unwrap();
    drop(runtime);
    // What this role asked for, in order (moto records refused requests too).
    let asked: Vec<String> = moto
        .recorded_requests()
        .await
        .unwrap()
        .iter()
        .filter(|entry| access_key(entry).as_deref() == Some(credentials.access_key_id.as_str()))
        .map(harness::calls::operation)
        .collect();
    (answer, asked)
}

/// The customer-managed key of every encrypted topic, bucket and secret, as the emulator holds
/// them after the apply.
async fn encryption_keys(moto: &Moto) -> BTreeMap<String, String> {
    let config = moto.sdk_config().await;
    let mut keys = BTreeMap::new();
    let sns = aws_sdk_sns::Client::new(&config);
    for topic in sns.list_topics().send().await.unwrap().topics() {
        let Some(arn) = topic.topic_arn() else {
            continue;
        };
        let attributes = sns
            .get_topic_attributes()
            .topic_arn(arn)
            .send()
            .await
            .unwrap();
        if let Some(key) = attributes
            .attributes()
            .and_then(|a| a.get("KmsMasterKeyId"))
            .filter(|k| !k.is_empty())
        {
            keys.insert(arn.to_string(), key.clone());
        }
    }
    let s3 = aws_sdk_s3::Client::new(&config);
    for bucket in s3.list_buckets().send().await.unwrap().buckets() {
        let Some(name) = bucket.name() else { continue };
        let Ok(encryption) = s3.get_bucket_encryption().bucket(name).send().await else {
            continue;
        };
        let key = encryption
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .and_then(|d| d.kms_master_key_id());
        if let Some(key) = key {
            keys.insert(name.to_string(), key.to_string());
        }
    }
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    for secret in secrets.list_secrets().send().await.unwrap().secret_list() {
        if let (Some(arn), Some(key)) = (secret.arn(), secret.kms_key_id()) {
            keys.insert(arn.to_string(), key.to_string());
        }
    }
    keys
}

/// health-sweeper as its role, sweeping a loopback backend (the deployed allowed networks are
/// private ones): the backend is probed, and calls outside its state are denied.
async fn sweep_as_role(moto: &Moto, readback: &Readback<'_>) -> RoleRun {
    let backend = HttpServer::start(
        std::net::Ipv4Addr::new(127, 0, 0, 1),
        Behaviour::Status(200),
    )
    .await
    .unwrap();
    let sweeper = run_as_role(
        moto,
        readback,
        "wk-health-sweeper",
        "health-sweeper",
        &[
            ("SWEEP_ALLOWED_NETWORKS", "127.0.0.0/8".into()),
            ("SWEEP_STATIC_TARGETS", backend.addr().to_string()),
        ],
        &[read_event("scheduled-event.json").unwrap()],
    )
    .await;
    assert_eq!(backend.requests().len(), 1, "the backend was probed");
    denied(&sweeper, &outside_state(&sweeper, "health-sweeper"));
    sweeper
}

/// budget-alerter's daily check as its role: the budgets are read, calls outside its state
/// are denied.
async fn check_budgets_as_role(moto: &Moto, readback: &Readback<'_>) {
    let budgets = run_as_role(
        moto,
        readback,
        "wk-budget-alerter",
        "budget-alerter",
        &[],
        &[read_event("scheduled-event.json").unwrap()],
    )
    .await;
    assert!(
        budgets
            .calls
            .iter()
            .any(|c| c.action == "budgets:ViewBudget"),
        "the budgets were read"
    );
    denied(&budgets, &outside_state(&budgets, "budget-alerter"));
}

async fn secret_arns(moto: &Moto) -> BTreeMap<String, String> {
    let secrets = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    let listed = secrets.list_secrets().send().await.unwrap();
    listed
        .secret_list()
        .iter()
        .filter_map(|s| Some((s.name()?.to_string(), s.arn()?.to_string())))
        .collect()
}

/// Calls just outside what `run` needed must be denied by its role's policies: each of
/// `outside` is a request a compromised or buggy function might make.
fn denied(run: &RoleRun, outside: &[Request]) {
    for request in outside {
        let decision = evaluate(&run.policies, request).unwrap();
        assert_ne!(
            decision,
            Decision::Allow,
            "{}: allowed beyond its needs: {request:?}",
            run.role_name
        );
    }
}

/// The state bucket's name, as the deployed function has it.
fn state_bucket(run: &RoleRun) -> String {
    run.env
        .get("STATE_BUCKET")
        .cloned()
        .unwrap_or_else(|| panic!("{}: no STATE_BUCKET", run.role_name))
}

fn outside_state(run: &RoleRun, own: &str) -> Vec<Request> {
    let bucket = state_bucket(run);
    let other = if own == "health-sweeper" {
        "deploy-notifier"
    } else {
        "health-sweeper"
    };
    vec![
        Request::new(
            "s3:GetObject",
            &format!("arn:aws:s3:::{bucket}/{other}/docs/x"),
        ),
        Request::new(
            "s3:PutObject",
            &format!("arn:aws:s3:::{bucket}/{other}/claims/x"),
        ),
        Request::new("s3:PutObject", &format!("arn:aws:s3:::{bucket}/x")),
        Request::new("s3:ListBucket", &format!("arn:aws:s3:::{bucket}"))
            .with("s3:prefix", &format!("{other}/")),
        Request::new("s3:ListBucket", &format!("arn:aws:s3:::{bucket}")).with("s3:prefix", ""),
        Request::new(
            "s3:GetObject",
            &format!("arn:aws:s3:::another-bucket/{own}/docs/x"),
        ),
        Request::new(
            "sns:Publish",
            &format!("arn:aws:sns:{REGION}:{ACCOUNT}:another-topic"),
        ),
        Request::new(
            "secretsmanager:GetSecretValue",
            &format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/db-master-AbCdEf"),
        ),
        Request::new(
            "iam:PassRole",
            &format!("arn:aws:iam::{ACCOUNT}:role/admin"),
        ),
    ]
}

#[tokio::test]
async fn the_defaults_apply_plan_clean_run_as_their_roles_and_destroy() {
    let Some(terraform) = terraform_or_skip() else {
        return;
    };
    let started = Instant::now();
    let (moto, vpc, subnets) = emulator_with_network().await;
    let vars = format!("{}db_tls = \"disable\"\n", base_vars(&vpc, &subnets));
    let deployment = apply_clean(&terraform, &moto, &vars).await;
    let outputs = deployment.outputs().await.unwrap();
    let readback = Readback::new(&moto);
    environments_match_the_code(
        &readback,
        &[
            ("wk-deploy-notifier", "deploy-notifier"),
            ("wk-deploy-notifier-ci", "deploy-notifier"),
            ("wk-health-sweeper", "health-sweeper"),
            ("wk-budget-alerter", "budget-alerter"),
            ("wk-snapshot-exporter", "snapshot-exporter"),
            ("wk-secret-rotator", "secret-rotator"),
        ],
    )
    .await;

    // deploy-notifier: an ECS deployment event, told on the deployed topic.
    let notifier = run_as_role(
        &moto,
        &readback,
        "wk-deploy-notifier",
        "deploy-notifier",
        &[],
        &[read_event("ecs-deployment-completed.json").unwrap()],
    )
    .await;
    let topic = outputs["alert_topic_arn"]["value"].as_str().unwrap();
    assert!(
        notifier
            .calls
            .iter()
            .any(|c| c.action == "sns:Publish" && c.resource == topic),
        "the deployment was told on {topic}"
    );
    denied(&notifier, &outside_state(&notifier, "deploy-notifier"));
    denied(
        &notifier,
        &[Request::new(
            "secretsmanager:GetSecretValue",
            outputs["ci_signing_secret_arn"]["value"].as_str().unwrap(),
        )],
    );

    // deploy-notifier-ci: CI's signed report, with the key Terraform generated (read by the
    // harness as CI reads it).
    let key_arn = outputs["ci_signing_secret_arn"]["value"].as_str().unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    let key = secrets
        .get_secret_value()
        .secret_id(key_arn)
        .send()
        .await
        .unwrap()
        .secret_string
        .unwrap();
    assert_eq!(key.len(), 48, "the generated key");
    let mut report = read_event("ci-apply-finished.json").unwrap();
    harness::deploy::sign_request(&mut report, &key, harness::deploy::now());
    let ci = run_as_role(
        &moto,
        &readback,
        "wk-deploy-notifier-ci",
        "deploy-notifier",
        &[],
        &[report],
    )
    .await;
    let (status, _) = harness::deploy::url_answer(&ci.answers[0]);
    assert_eq!(
        status, 202,
        "the report was accepted: {}",
        ci.answers[0].output
    );
    assert!(
        ci.calls
            .iter()
            .any(|c| c.action == "secretsmanager:GetSecretValue" && c.resource == key_arn)
    );
    denied(&ci, &outside_state(&ci, "deploy-notifier"));

    // The enforcement bites: the same signed report, run with the CI function's configuration
    // but the event function's role (which may not read the signing key), is not accepted.
    let mut report = read_event("ci-apply-finished.json").unwrap();
    harness::deploy::sign_request(&mut report, &key, harness::deploy::now());
    let (refused, asked) = run_with_other_role(
        &moto,
        &readback,
        "wk-deploy-notifier-ci",
        "wk-deploy-notifier",
        "deploy-notifier",
        &report,
    )
    .await;
    let (status, body) = harness::deploy::url_answer(&refused);
    assert!(
        status == 503
            && body["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("signing key unavailable")),
        "without the key the report is not accepted: {}",
        refused.output
    );
    // It asked, and was refused: with the key it would have answered 202 (and the event
    // role's policies do not allow the read: checked above).
    assert!(
        asked.contains(&"secretsmanager:GetSecretValue".to_string()),
        "the key was asked for: {asked:?}"
    );

    // health-sweeper: a sweep of a loopback backend (the deployed networks are private ones).
    sweep_as_role(&moto, &readback).await;

    // budget-alerter: the daily check of the budgets Terraform made.
    check_budgets_as_role(&moto, &readback).await;

    deployment.destroy().await.unwrap();
    eprintln!(
        "defaults: apply, plan, four functions as their roles, destroy: {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn every_optional_input_applies_and_plans_clean() {
    let Some(terraform) = terraform_or_skip() else {
        return;
    };
    let started = Instant::now();
    let (moto, vpc, subnets) = emulator_with_network().await;
    // Secrets Manager "invokes" the rotator when rotation is configured: moto without Docker
    // answers for it (the scenario below runs the real binary).
    moto.control(
        "/moto-api/config",
        &serde_json::json!({"lambda": {"use_docker": false}}),
    )
    .await
    .unwrap();
    let config = moto.sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let secret = |name: &'static str, value: String| {
        let secrets = secrets.clone();
        async move {
            secrets
                .create_secret()
                .name(name)
                .secret_string(value)
                .send()
                .await
                .unwrap()
                .arn
                .unwrap()
        }
    };
    // The chat webhook: a loopback receiver (nothing may leave 127.0.0.0/8).
    let hook = HttpServer::start(
        std::net::Ipv4Addr::new(127, 0, 0, 1),
        Behaviour::Status(200),
    )
    .await
    .unwrap();
    let webhook = secret("wk/webhook", hook.url("/hook")).await;
    // The database the rotation scenario rotates a password of (plaintext on loopback: the
    // deployed DB_TLS is verify-full against the layer's bundle, which a local run overrides).
    let pg = Postgres::start(PgOptions::default()).await.unwrap();
    pg.sql(
        "postgres",
        "CREATE ROLE app LOGIN PASSWORD 'app-initial-password-0'",
    )
    .await
    .unwrap();
    let app = secret(
        "wk/rds/app",
        serde_json::json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port(),
            "username": "app", "password": "app-initial-password-0", "dbname": "postgres"})
        .to_string(),
    )
    .await;
    let master = secret(
        "wk/rds/master",
        serde_json::json!({"username": "postgres", "password": "m"}).to_string(),
    )
    .await;
    let sns = aws_sdk_sns::Client::new(&config);
    let ecs_topic = sns
        .create_topic()
        .name("ecs-events")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let alarm_topic = sns
        .create_topic()
        .name("des-alarms")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let group = elb
        .create_target_group()
        .name("wk-api")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Https)
        .port(443)
        .vpc_id(&vpc)
        .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let ci_role = format!("arn:aws:iam::{ACCOUNT}:role/ci-deploy");
    let key = format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000001");
    let vars = format!(
        r#"{base}
architecture              = "x86_64"
log_level                 = "WARN"
sms_phone_number          = "+34600000000"
email_from                = "watchkeeper@example.com"
webhook_secret_arn        = "{webhook}"
webhook_format            = "teams"
deploy_environment        = "prod"
deploy_notify_in_progress = true
ecs_events_topic_arn      = "{ecs_topic}"
alarm_topic_arns          = ["{alarm_topic}"]
alarm_events              = true
health_events             = true
guardduty_min_severity    = 7
alarm_warning_names       = ["*-cpu-*", "des-rds-*"]
alarm_flap_count          = 4
alarm_flap_minutes        = 20
ci_auth                   = "iam"
ci_invoker_arns           = ["{ci_role}"]
ci_reserved_concurrency   = 2
rotated_secret_arns       = ["{app}"]
master_secret_arns        = ["{master}"]
master_secret_hosts       = {{ "{master}" = "10.0.20.5:5432" }}
secrets_kms_key_arns      = ["{key}"]
database_ports            = [5432, 3306]
db_tls                    = "verify-full"
rds_ca_layer_zip          = "@DIR@/artifacts/rds-ca-layer.zip"
export_sources            = ["des-db"]
export_tables             = ["public.orders"]
export_automated_snapshots = "every"
monthly_budget_usd        = 40
sweep_project             = "des"
sweep_probe_ports         = ["8081", "32768-65535"]
sweep_path                = "/despachos/reporte"
sweep_host_header         = "api.des.internal"
sweep_target_group_check  = "group"
sweep_target_group_arns   = ["{group}"]
sweep_static_targets      = ["api=10.0.1.5:8080", "https://10.0.1.6:8443"]
sweep_backend_cidr_blocks = ["10.0.0.0/16"]
sweep_reminder_hours      = 4
"#,
        base = base_vars(&vpc, &subnets)
    );
    let deployment = apply_clean(&terraform, &moto, &vars).await;
    let readback = Readback::new(&moto);
    let rotator = readback
        .function_configuration("wk-secret-rotator")
        .await
        .unwrap();
    assert_eq!(
        rotator["Environment"]["Variables"]["DB_TLS_CA_FILE"],
        "/opt/rds-ca/global-bundle.pem"
    );
    assert_eq!(rotator["Architectures"][0], "x86_64");
    let sweeper = readback
        .function_configuration("wk-health-sweeper")
        .await
        .unwrap();
    assert_eq!(
        sweeper["Environment"]["Variables"]["SWEEP_TARGET_GROUP_ARNS"],
        group.as_str()
    );

    // secret-rotator: a whole rotation of the secret Terraform put on its schedule, against the
    // loopback PostgreSQL, as the deployed role.
    let lambda_arn = rotator["FunctionArn"].as_str().unwrap().to_string();
    let token = harness::rotation::begin_rotation(&secrets, &lambda_arn, &app)
        .await
        .unwrap();
    let steps: Vec<Value> = ["createSecret", "setSecret", "testSecret", "finishSecret"]
        .iter()
        .map(|step| serde_json::json!({"SecretId": app, "ClientRequestToken": token, "Step": step}))
        .collect();
    let rotation = run_as_role(
        &moto,
        &readback,
        "wk-secret-rotator",
        "secret-rotator",
        &[
            ("DB_TLS", "disable".into()),
            ("DB_TLS_CA_FILE", String::new()),
        ],
        &steps,
    )
    .await;
    let current = secrets
        .get_secret_value()
        .secret_id(&app)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    assert_eq!(
        current.version_id(),
        Some(token.as_str()),
        "the rotation finished"
    );
    let password =
        serde_json::from_str::<Value>(current.secret_string().unwrap()).unwrap()["password"]
            .as_str()
            .unwrap()
            .to_string();
    assert_ne!(password, "app-initial-password-0");
    pg.sql_as("app", &password, "postgres", "SELECT 1")
        .await
        .expect("the new password logs in");
    assert!(
        rotation
            .calls
            .iter()
            .any(|c| c.action == "secretsmanager:PutSecretValue" && c.resource == app)
    );
    let mut outside = outside_state(&rotation, "secret-rotator");
    outside.extend([
        Request::new("secretsmanager:PutSecretValue", &webhook),
        Request::new("secretsmanager:PutSecretValue", &master),
        Request::new("kms:Decrypt", &key),
    ]);
    denied(&rotation, &outside);

    // snapshot-exporter: a manual snapshot of a listed source becomes an export, as the
    // deployed role (the export role passed, the key granted to RDS).
    let rds = aws_sdk_rds::Client::new(&config);
    rds.create_db_instance()
        .db_instance_identifier("des-db")
        .engine("postgres")
        .db_instance_class("db.t4g.micro")
        .allocated_storage(20)
        .master_username("despachos")
        .master_user_password("local-only-password")
        .send()
        .await
        .unwrap();
    let snapshot = rds
        .create_db_snapshot()
        .db_instance_identifier("des-db")
        .db_snapshot_identifier("des-db-before-migration")
        .send()
        .await
        .unwrap()
        .db_snapshot
        .and_then(|s| s.db_snapshot_arn)
        .unwrap();
    let event = harness::export::fixture_for(
        "rds-snapshot-created-manual.json",
        &snapshot,
        "3f1c2b4a-0000-4000-8000-000000000001",
    )
    .unwrap();
    let exporter = run_as_role(
        &moto,
        &readback,
        "wk-snapshot-exporter",
        "snapshot-exporter",
        &[],
        &[event],
    )
    .await;
    assert!(
        exporter
            .calls
            .iter()
            .any(|c| c.action == "rds:StartExportTask" && c.resource == snapshot),
        "the snapshot was exported"
    );
    let mut outside = outside_state(&exporter, "snapshot-exporter");
    outside.extend([
        Request::new(
            "kms:CreateGrant",
            &format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-00000000beef"),
        )
        .with("kms:GrantIsForAWSResource", "true"),
        Request::new("kms:CreateGrant", &exporter_key(&exporter))
            .with("kms:GrantIsForAWSResource", "false"),
        Request::new("iam:PassRole", &export_role(&exporter)),
        // The exported data itself: RDS writes it with the export role; the function may
        // touch only the index objects and the `latest` pointers.
        Request::new(
            "s3:PutObject",
            &format!(
                "arn:aws:s3:::{}/des-db/2026/12/06/des-db-before-migration-1/export_info.json",
                exporter.env["EXPORT_BUCKET"]
            ),
        ),
        Request::new(
            "s3:GetObject",
            &format!(
                "arn:aws:s3:::{}/des-db/2026/12/06/des-db-before-migration-1/postgres/public.orders/part-00000.parquet",
                exporter.env["EXPORT_BUCKET"]
            ),
        ),
    ]);
    denied(&exporter, &outside);

    // The channels every optional input adds (SES, the webhook secret, SMS through the topic),
    // as the event function's role: an ECS event told everywhere; then an alarm from the
    // subscribed topic, its OK by EventBridge (the alarm's history under docs/alarms/), and a
    // Health event (docs/health/), with the alarm rules the deployment set.
    let subscribed = sns
        .list_subscriptions_by_topic()
        .topic_arn(&alarm_topic)
        .send()
        .await
        .unwrap();
    assert!(
        subscribed
            .subscriptions()
            .iter()
            .any(|s| s.protocol() == Some("lambda")
                && s.endpoint()
                    .is_some_and(|e| e.ends_with(":function:wk-deploy-notifier"))),
        "deploy-notifier is subscribed to the alarm topic: {subscribed:?}"
    );
    let notifier = run_as_role(
        &moto,
        &readback,
        "wk-deploy-notifier",
        "deploy-notifier",
        &[],
        &[
            read_event("ecs-deployment-failed-rollback.json").unwrap(),
            read_event("sns-cloudwatch-alarm.json").unwrap(),
            read_event("cloudwatch-alarm-state-change.json").unwrap(),
            read_event("cloudwatch-alarm-ok.json").unwrap(),
            read_event("aws-health-rds-maintenance.json").unwrap(),
            // The check that settles flapping folds (deployed with alarm topics).
            read_event("scheduled-event.json").unwrap(),
        ],
    )
    .await;
    assert_eq!(notifier.env["ALARM_FLAP_COUNT"], "4");
    assert_eq!(notifier.env["ALARM_WARNING_NAMES"], "*-cpu-*,des-rds-*");
    for document in ["docs/alarms/", "docs/health/"] {
        assert!(
            notifier
                .calls
                .iter()
                .any(|c| c.action == "s3:PutObject" && c.resource.contains(document)),
            "deploy-notifier wrote its {document} history: {:?}",
            notifier.calls
        );
    }
    for action in [
        "ses:SendEmail",
        "secretsmanager:GetSecretValue",
        "sns:Publish",
    ] {
        assert!(
            notifier.calls.iter().any(|c| c.action == action),
            "deploy-notifier used {action}: {:?}",
            notifier.calls
        );
    }
    assert!(!hook.requests().is_empty(), "the webhook was posted to");
    denied(&notifier, &outside_state(&notifier, "deploy-notifier"));

    // health-sweeper with the target group and its own checks (discovery through ELB and EC2),
    // sweeping a loopback backend instead of the deployed private addresses.
    let sweeper = sweep_as_role(&moto, &readback).await;
    for action in [
        "elasticloadbalancing:DescribeTargetHealth",
        "elasticloadbalancing:DescribeTargetGroups",
        "ec2:DescribeInstances",
    ] {
        assert!(
            sweeper.calls.iter().any(|c| c.action == action),
            "health-sweeper used {action}"
        );
    }

    // budget-alerter's daily check of the budgets this variant made.
    check_budgets_as_role(&moto, &readback).await;

    deployment.destroy().await.unwrap();
    eprintln!(
        "every optional input: apply, plan, destroy: {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// The key an export was granted on (from the calls a scenario made).
fn exporter_key(run: &RoleRun) -> String {
    run.calls
        .iter()
        .find(|c| c.action == "kms:CreateGrant")
        .map(|c| c.resource.clone())
        .expect("an export grant")
}

/// The export role an export passed, asked for without the service it may be passed to.
fn export_role(run: &RoleRun) -> String {
    run.calls
        .iter()
        .find(|c| c.action == "iam:PassRole")
        .map(|c| c.resource.clone())
        .expect("a passed role")
}
