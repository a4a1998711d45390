//! Per function: the emulator seeded as its tests seed it, the function's environment, the
//! events of a warm run, and the event kinds whose AWS calls are counted.

use chrono::Utc;
use harness::Result;
use harness::budget::{BudgetWorld, budgets_event_at, seed_004};
use harness::deploy::{DeployNotifier, Setup, signed_ci_event};
use harness::export::{ExportWorld, LISTED, fixture_for};
use harness::http::Behaviour;
use harness::moto::Moto;
use harness::paths::read_event;
use harness::rotation::{begin_rotation, placeholder_rotation_lambda};
use harness::sweep::SweepWorld;
use serde_json::{Value, json};

pub const FUNCTIONS: [&str; 5] = [
    "deploy-notifier",
    "secret-rotator",
    "health-sweeper",
    "snapshot-exporter",
    "budget-alerter",
];

const BUDGET_FIXTURES: [&str; 6] = [
    "budgets-cost-actual-50.json",
    "budgets-cost-actual-80.json",
    "budgets-cost-forecasted.json",
    "budgets-service-actual-100.json",
    "budgets-usage-actual.json",
    "budgets-cost-annual-thousands.json",
];

/// What a scenario keeps alive (servers, the emulator) and how it makes events.
pub enum World {
    Deploy(harness::deploy::Seeded),
    Rotation {
        moto: Moto,
        secrets: aws_sdk_secretsmanager::Client,
        lambda_arn: String,
        secret: String,
        token: String,
    },
    Sweep(SweepWorld),
    Export {
        world: ExportWorld,
        snapshots: Vec<String>,
    },
    Budget(BudgetWorld),
}

pub struct Scenario {
    pub function: &'static str,
    pub env: Vec<(String, String)>,
    pub world: World,
}

impl Scenario {
    /// `events`: how many distinct events the runs will ask for (the exporter needs that many
    /// snapshots to exist).
    pub async fn start(function: &'static str, events: usize) -> Result<Self> {
        let (world, env) = match function {
            "deploy-notifier" => {
                let seeded = DeployNotifier::seed(Setup::default()).await?;
                let env = seeded.env.clone();
                (World::Deploy(seeded), env)
            }
            "secret-rotator" => {
                let moto = Moto::start().await?;
                let (topic, _) = moto
                    .seed_state_and_topic(
                        harness::STATE_BUCKET,
                        "des-security-alerts",
                        "security-inbox",
                    )
                    .await?;
                let lambda_arn = placeholder_rotation_lambda(&moto).await?;
                let secrets = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
                let value = json!({"type": "api-key", "provider": "Maps API", "api_key": "old-key-value", "owners": "logistics-team@example.com"});
                let secret = secrets
                    .create_secret()
                    .name("des/api/maps")
                    .secret_string(value.to_string())
                    .send()
                    .await?
                    .arn
                    .unwrap_or_default();
                let mut env = moto.env();
                env.push(("STATE_BUCKET".into(), harness::STATE_BUCKET.into()));
                env.push(("NOTIFY_SNS_TOPIC_ARN".into(), topic));
                let world = World::Rotation {
                    moto,
                    secrets,
                    lambda_arn,
                    secret,
                    token: String::new(),
                };
                (world, env)
            }
            "health-sweeper" => {
                let world = SweepWorld::start(&[Behaviour::Status(200); 3]).await?;
                let env = world.env(2000);
                (World::Sweep(world), env)
            }
            "snapshot-exporter" => {
                let world = ExportWorld::start().await?;
                let mut snapshots = Vec::new();
                for i in 0..events {
                    snapshots.push(world.snapshot(LISTED, &format!("des-db-bench-{i}")).await?);
                }
                let env = world.env();
                (World::Export { world, snapshots }, env)
            }
            _ => {
                let world = BudgetWorld::start().await?;
                world
                    .set_budgets(&seed_004("21.25", "5.30", "2.40", "1.00"))
                    .await?;
                let env = world.env(&[]);
                (World::Budget(world), env)
            }
        };
        Ok(Self {
            function,
            env,
            world,
        })
    }

    pub fn moto(&self) -> &Moto {
        match &self.world {
            World::Deploy(s) => &s.moto,
            World::Rotation { moto, .. } => moto,
            World::Sweep(w) => &w.moto,
            World::Export { world, .. } => &world.moto,
            World::Budget(w) => &w.moto,
        }
    }

    /// Event number `i` of a run (a fresh deployment, rotation step, snapshot, ...). Events from
    /// `first` on are new to the function; a run passes a `first` no earlier run used.
    pub async fn event(&mut self, first: usize, i: usize) -> Result<Value> {
        let n = first + i;
        match &mut self.world {
            World::Deploy(_) => ecs_deployment(n),
            World::Rotation {
                secrets,
                lambda_arn,
                secret,
                token,
                ..
            } => {
                let step = ["createSecret", "setSecret", "testSecret", "finishSecret"][n % 4];
                // A rotation left unfinished (a failed step) keeps the emulator from starting the
                // next: its steps then fail too, and the run counts them as failures.
                if n.is_multiple_of(4) {
                    match begin_rotation(secrets, lambda_arn, secret).await {
                        Ok(next) => *token = next,
                        Err(e) => eprintln!("starting rotation {}: {e}", n / 4),
                    }
                }
                Ok(json!({"SecretId": secret, "ClientRequestToken": token, "Step": step}))
            }
            World::Sweep(_) => read_event("scheduled-event.json"),
            World::Export { snapshots, .. } => {
                let arn = snapshots.get(n).cloned().unwrap_or_default();
                fixture_for(
                    "rds-snapshot-created-manual.json",
                    &arn,
                    &format!("00000000-0000-4000-8000-{n:012}"),
                )
            }
            World::Budget(_) => {
                let fixture = BUDGET_FIXTURES[n % BUDGET_FIXTURES.len()];
                budgets_event_at(fixture, &Utc::now().to_rfc3339())
            }
        }
    }

    /// The event kinds whose AWS calls are counted, each with its event, in an order that makes
    /// each one what its name says (a duplicate follows its first delivery). `n` is unused by
    /// earlier runs.
    pub async fn kinds(&mut self, n: usize) -> Result<Vec<(String, Value)>> {
        Ok(match self.function {
            "deploy-notifier" => {
                let event = ecs_deployment(n)?;
                vec![
                    ("ECS deployment event, first delivery".into(), event.clone()),
                    ("the same event delivered again".into(), event),
                    ("signed CI POST (Function URL)".into(), signed_ci_event()?),
                ]
            }
            "secret-rotator" => {
                let mut kinds = Vec::new();
                for (i, step) in ["createSecret", "setSecret", "testSecret", "finishSecret"]
                    .iter()
                    .enumerate()
                {
                    let event = self.event(0, n * 4 + i).await?;
                    kinds.push((format!("API-key rotation: {step}"), event));
                }
                kinds
            }
            "health-sweeper" => vec![(
                "scheduled sweep, 3 targets, no change".into(),
                read_event("scheduled-event.json")?,
            )],
            "snapshot-exporter" => {
                let event = self.event(n, 0).await?;
                vec![
                    (
                        "snapshot created, selected source, first delivery".into(),
                        event.clone(),
                    ),
                    ("the same event delivered again".into(), event),
                    (
                        "weekly reconcile (4 sources)".into(),
                        read_event("rds-weekly-export-schedule.json")?,
                    ),
                ]
            }
            _ => vec![
                (
                    "Budgets notification, first delivery".into(),
                    budgets_event_at("budgets-cost-actual-80.json", &Utc::now().to_rfc3339())?,
                ),
                (
                    "the same notification again".into(),
                    budgets_event_at("budgets-cost-actual-80.json", &Utc::now().to_rfc3339())?,
                ),
                (
                    "daily check (4 budgets)".into(),
                    read_event("scheduled-event.json")?,
                ),
                (
                    "daily check, nothing new to tell".into(),
                    read_event("scheduled-event.json")?,
                ),
            ],
        })
    }
}

/// An ECS deployment event about deployment `n` (new to the function).
fn ecs_deployment(n: usize) -> Result<Value> {
    let mut event = read_event("ecs-deployment-completed.json")?;
    event["id"] = format!("00000000-0000-4000-8000-{n:012}").into();
    event["detail"]["deploymentId"] = format!("ecs-svc/{n}").into();
    Ok(event)
}
