//! secret-rotator end to end: the built binary through the Lambda runtime, the emulator's
//! Secrets Manager (staging labels, GetRandomPassword), and real PostgreSQL (scram-sha-256) and
//! MariaDB servers. The steps are driven as Secrets Manager drives them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use harness::mariadb::{MariaDb, MariaDbOptions};
use harness::postgres::{PgOptions, Postgres, SUPERUSER};
use harness::rotation::{RotationWorld, STEPS};
use harness::tls::TestCa;
use serde_json::{Value, json};

const PLAINTEXT: &[(&str, &str)] = &[("DB_TLS", "disable")];

fn pg_secret(pg: &Postgres, user: &str, password: &str) -> Value {
    json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port(), "username": user, "password": password, "dbname": "postgres"})
}

fn current_labels(
    labels: &std::collections::HashMap<String, Vec<String>>,
    token: &str,
) -> Vec<String> {
    let mut l = labels.get(token).cloned().unwrap_or_default();
    l.sort();
    l
}

#[tokio::test]
async fn postgres_single_user_rotation_changes_the_password_and_leaks_it_nowhere() {
    let pg = Postgres::start(PgOptions {
        log_statements: true,
        ..PgOptions::default()
    })
    .await
    .unwrap();
    pg.sql(
        "postgres",
        "CREATE ROLE app LOGIN PASSWORD 'app-initial-password-0'",
    )
    .await
    .unwrap();
    let world = RotationWorld::start(PLAINTEXT).await.unwrap();
    let secret = world
        .create_secret(
            "des/db/app",
            &pg_secret(&pg, "app", "app-initial-password-0"),
        )
        .await
        .unwrap();
    let initial_version = world
        .labels(&secret)
        .await
        .unwrap()
        .into_iter()
        .find(|(_, l)| l.contains(&"AWSCURRENT".to_string()))
        .unwrap()
        .0;

    // Every step twice in a row: the second run changes nothing.
    let log_start = pg.server_log().len();
    let token = world.begin_rotation(&secret).await.unwrap();
    let mut after_first = None;
    for step in STEPS {
        for attempt in 0..2 {
            let answer = world.step(&secret, &token, step).await.unwrap();
            assert!(
                answer.ok,
                "{step} #{attempt}: {}\n{}",
                answer.output,
                world.runtime.logs()
            );
            if step == "setSecret" {
                // AWSCURRENT is tried first: no refused login; a repeat sees one (the old password).
                assert_eq!(answer.json()["failed_logins"], attempt, "{}", answer.output);
            }
            if step == "createSecret" {
                let pending = world
                    .secrets
                    .get_secret_value()
                    .secret_id(&secret)
                    .version_id(&token)
                    .version_stage("AWSPENDING")
                    .send()
                    .await
                    .unwrap();
                let value = pending.secret_string().unwrap().to_string();
                match &after_first {
                    None => after_first = Some(value),
                    Some(first) => assert_eq!(
                        first, &value,
                        "a repeated createSecret keeps the pending value"
                    ),
                }
            }
        }
    }
    let new = world.value(&secret, "AWSCURRENT").await.unwrap();
    let new_password = new["password"].as_str().unwrap().to_string();
    assert_eq!(new_password.len(), 32);
    assert!(
        !new_password.chars().any(|c| ":/@\"'\\".contains(c)),
        "excluded characters stay out"
    );
    assert_eq!(new["dbname"], "postgres", "other fields are kept");
    assert!(
        pg.can_login("app", &new_password).await,
        "the new password logs in"
    );
    assert!(
        !pg.can_login("app", "app-initial-password-0").await,
        "the old one does not"
    );

    let labels = world.labels(&secret).await.unwrap();
    assert_eq!(
        current_labels(&labels, &token),
        ["AWSCURRENT"],
        "no AWSPENDING left behind: {labels:?}"
    );
    assert_eq!(current_labels(&labels, &initial_version), ["AWSPREVIOUS"]);

    // The stored password is a SCRAM verifier, and neither password is in the server's log.
    let stored = pg
        .sql(
            "postgres",
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'",
        )
        .await
        .unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$"), "{stored}");
    let server_log = pg.server_log()[log_start..].to_string();
    assert!(
        server_log.contains("ALTER ROLE \"app\" WITH PASSWORD 'SCRAM-SHA-256$"),
        "log_statement=all is on"
    );
    for secret_text in [new_password.as_str(), "app-initial-password-0"] {
        assert!(
            !server_log.contains(secret_text),
            "a password reached the PostgreSQL log"
        );
        assert!(
            !world.runtime.logs().contains(secret_text),
            "a password reached the function's log"
        );
    }
}

// A runtime of its own for the client: it samples throughout the rotation, not only when the
// rotation's own steps wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_users_never_interrupt_a_client() {
    let pg = Postgres::start(PgOptions::default()).await.unwrap();
    pg.sql("postgres", "CREATE ROLE app LOGIN PASSWORD 'app-initial-password-0'; CREATE TABLE dispatch (id serial PRIMARY KEY, note text); GRANT SELECT, INSERT ON dispatch TO app; GRANT USAGE ON SEQUENCE dispatch_id_seq TO app").await.unwrap();
    let world = Arc::new(RotationWorld::start(PLAINTEXT).await.unwrap());
    let master = world
        .create_secret(
            "des/db/master",
            &pg_secret(&pg, SUPERUSER, pg.superuser_password()),
        )
        .await
        .unwrap();
    let mut app = pg_secret(&pg, "app", "app-initial-password-0");
    app["masterarn"] = json!(master);
    app["test_table"] = json!("public.dispatch");
    let secret = world
        .create_secret("des/db/app-alternating", &app)
        .await
        .unwrap();

    // A client that logs in with whatever is AWSCURRENT, over and over, for the whole time.
    let pg = Arc::new(pg);
    let stop = Arc::new(AtomicBool::new(false));
    let (attempts, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = {
        let (world, pg, secret, stop, attempts, failures) = (
            world.clone(),
            pg.clone(),
            secret.clone(),
            stop.clone(),
            attempts.clone(),
            failures.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let current = world.value(&secret, "AWSCURRENT").await.unwrap();
                attempts.fetch_add(1, Ordering::SeqCst);
                if !pg
                    .can_login(
                        current["username"].as_str().unwrap(),
                        current["password"].as_str().unwrap(),
                    )
                    .await
                {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    // Right after each flip of AWSCURRENT, the new and the previous credentials both log in.
    let both_log_in = async |world: &RotationWorld| {
        for stage in ["AWSCURRENT", "AWSPREVIOUS"] {
            let value = world.value(&secret, stage).await.unwrap();
            let user = value["username"].as_str().unwrap();
            assert!(
                pg.can_login(user, value["password"].as_str().unwrap())
                    .await,
                "{stage} ({user}) logs in just after the flip"
            );
        }
    };
    world.rotate(&secret).await.unwrap();
    both_log_in(&world).await;
    let first = world.value(&secret, "AWSCURRENT").await.unwrap();
    assert_eq!(first["username"], "app_clone");
    world.rotate(&secret).await.unwrap();
    both_log_in(&world).await;
    let second = world.value(&secret, "AWSCURRENT").await.unwrap();
    assert_eq!(second["username"], "app");
    stop.store(true, Ordering::SeqCst);
    client.await.unwrap();
    let (attempts, failures) = (
        attempts.load(Ordering::SeqCst),
        failures.load(Ordering::SeqCst),
    );
    println!(
        "client logins during two alternating rotations: {attempts} attempts, {failures} failures"
    );
    assert!(attempts >= 5, "the client kept trying: {attempts}");
    assert_eq!(failures, 0);

    // The clone can do what the original can; the previous user still logs in (AWSPREVIOUS).
    let clone_password = first["password"].as_str().unwrap();
    pg.sql_as(
        "app_clone",
        clone_password,
        "postgres",
        "INSERT INTO dispatch (note) VALUES ('from clone')",
    )
    .await
    .unwrap();
    assert_eq!(
        pg.sql_as(
            "app_clone",
            clone_password,
            "postgres",
            "SELECT count(*) FROM dispatch"
        )
        .await
        .unwrap(),
        "1"
    );
    assert!(
        pg.can_login("app", second["password"].as_str().unwrap())
            .await
    );
}

#[tokio::test]
async fn an_interrupted_rotation_restarted_loses_no_credential() {
    let pg = Postgres::start(PgOptions::default()).await.unwrap();
    let world = RotationWorld::start(PLAINTEXT).await.unwrap();
    // Interrupted after each step in turn; then a new rotation starts from createSecret.
    for (round, completed) in [1usize, 2, 3].into_iter().enumerate() {
        let user = format!("app{round}");
        pg.sql(
            "postgres",
            &format!("CREATE ROLE {user} LOGIN PASSWORD 'initial-password-{round}'"),
        )
        .await
        .unwrap();
        let secret = world
            .create_secret(
                &format!("des/db/{user}"),
                &pg_secret(&pg, &user, &format!("initial-password-{round}")),
            )
            .await
            .unwrap();
        let abandoned = world.begin_rotation(&secret).await.unwrap();
        for step in &STEPS[..completed] {
            assert!(
                world.step(&secret, &abandoned, step).await.unwrap().ok,
                "{step}"
            );
        }
        world.rotate(&secret).await.unwrap();
        let current = world.value(&secret, "AWSCURRENT").await.unwrap();
        assert!(
            pg.can_login(&user, current["password"].as_str().unwrap())
                .await,
            "interrupted after {}",
            STEPS[completed - 1]
        );
        let labels = world.labels(&secret).await.unwrap();
        assert_eq!(
            labels
                .values()
                .filter(|l| l.contains(&"AWSPENDING".to_string()))
                .count(),
            0,
            "{labels:?}"
        );
    }
}

#[tokio::test]
async fn database_down_during_set_secret_alerts_and_a_retry_completes() {
    let pg = Postgres::start(PgOptions::default()).await.unwrap();
    pg.sql(
        "postgres",
        "CREATE ROLE app LOGIN PASSWORD 'app-initial-password-0'",
    )
    .await
    .unwrap();
    let world = RotationWorld::start(&[("DB_TLS", "disable"), ("DB_CONNECT_TIMEOUT_MS", "2000")])
        .await
        .unwrap();
    let secret = world
        .create_secret(
            "des/db/app",
            &pg_secret(&pg, "app", "app-initial-password-0"),
        )
        .await
        .unwrap();
    let token = world.begin_rotation(&secret).await.unwrap();
    assert!(
        world
            .step(&secret, &token, "createSecret")
            .await
            .unwrap()
            .ok
    );

    pg.stop().await.unwrap();
    let failed = world.step(&secret, &token, "setSecret").await.unwrap();
    assert!(!failed.ok);
    assert!(
        failed.output.contains("Retryable.DatabaseFailed"),
        "{}",
        failed.output
    );
    let alerts = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].subject,
        "Secret rotation failed: des/db/app at setSecret"
    );
    assert!(alerts[0].message.contains("keep working"));
    // A lost connection cannot tell whether the ALTER was committed: the alert says both cases.
    assert!(
        alerts[0].message.contains("may already hold it"),
        "{}",
        alerts[0].message
    );
    let pending = world
        .secrets
        .get_secret_value()
        .secret_id(&secret)
        .version_id(&token)
        .version_stage("AWSPENDING")
        .send()
        .await
        .unwrap();
    let pending_password = serde_json::from_str::<Value>(pending.secret_string().unwrap()).unwrap()
        ["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!alerts[0].message.contains(&pending_password));

    pg.start_again().await.unwrap();
    assert!(
        pg.can_login("app", "app-initial-password-0").await,
        "the current password still works"
    );
    assert!(world.step(&secret, &token, "setSecret").await.unwrap().ok);
    // After setSecret, single user: the alert says the old password no longer works.
    pg.stop().await.unwrap();
    assert!(!world.step(&secret, &token, "testSecret").await.unwrap().ok);
    let alerts = world.alerts().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert!(
        alerts[0]
            .message
            .contains("the AWSCURRENT password no longer works")
            && alerts[0].message.contains(&token),
        "{}",
        alerts[0].message
    );
    pg.start_again().await.unwrap();
    for step in ["testSecret", "finishSecret"] {
        let answer = world.step(&secret, &token, step).await.unwrap();
        assert!(answer.ok, "{step}: {}", answer.output);
    }
    assert!(pg.can_login("app", &pending_password).await);
}

/// Starts rotating `secret` and runs setSecret, which must fail with `expected` in its error.
async fn set_secret_fails(world: &RotationWorld, secret: &str, expected: &[&str]) -> String {
    let token = world.begin_rotation(secret).await.unwrap();
    assert!(world.step(secret, &token, "createSecret").await.unwrap().ok);
    let refused = world.step(secret, &token, "setSecret").await.unwrap();
    assert!(!refused.ok, "setSecret succeeded for {secret}");
    let lower = refused.output.to_ascii_lowercase();
    assert!(
        expected.iter().any(|e| lower.contains(e)),
        "{secret}: expected one of {expected:?} in {}",
        refused.output
    );
    refused.output
}

#[tokio::test]
async fn tls_is_verified_and_never_downgraded() {
    let ca = TestCa::create().await.unwrap();
    let other_name = TestCa::create_for("DNS:db.internal").await.unwrap();
    let untrusted = TestCa::create().await.unwrap();
    let start = |cert: &TestCa| {
        Postgres::start(PgOptions {
            tls: Some((cert.server_cert.clone(), cert.server_key.clone())),
            ..PgOptions::default()
        })
    };
    let tls_pg = start(&ca).await.unwrap();
    // Signed by the trusted CA, but for db.internal only (the RDS endpoint behind a CNAME).
    let named_pg = start(&other_name).await.unwrap();
    let untrusted_pg = start(&untrusted).await.unwrap();
    let plain_pg = Postgres::start(PgOptions::default()).await.unwrap();
    let plain_maria = MariaDb::start(MariaDbOptions::default()).await.unwrap();
    for pg in [&tls_pg, &named_pg, &untrusted_pg, &plain_pg] {
        pg.sql(
            "postgres",
            "CREATE ROLE app LOGIN PASSWORD 'app-initial-password-0'",
        )
        .await
        .unwrap();
    }
    plain_maria
        .sql("CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-initial-password-0'")
        .await
        .unwrap();
    // The CA of `other_name` is trusted too: its certificate fails on its name alone.
    let bundle = ca.dir().join("bundle.pem");
    std::fs::write(
        &bundle,
        [
            std::fs::read_to_string(&ca.ca_cert).unwrap(),
            std::fs::read_to_string(&other_name.ca_cert).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let ca_file = bundle.display().to_string();
    let world = RotationWorld::start(&[("DB_TLS", "verify-full"), ("DB_TLS_CA_FILE", &ca_file)])
        .await
        .unwrap();

    let mut secret_value = pg_secret(&tls_pg, "app", "app-initial-password-0");
    secret_value["host"] = json!("localhost");
    let secret = world
        .create_secret("des/db/tls", &secret_value)
        .await
        .unwrap();
    world.rotate(&secret).await.unwrap();
    let current = world.value(&secret, "AWSCURRENT").await.unwrap();
    assert!(
        tls_pg
            .can_login("app", current["password"].as_str().unwrap())
            .await
    );

    // `sslmode: disable` in the secret does not loosen DB_TLS=verify-full.
    let mut plain_value = pg_secret(&plain_pg, "app", "app-initial-password-0");
    plain_value["sslmode"] = json!("disable");
    let plain = world
        .create_secret("des/db/plain", &plain_value)
        .await
        .unwrap();
    set_secret_fails(&world, &plain, &["tls", "ssl"]).await;
    assert!(
        plain_pg.can_login("app", "app-initial-password-0").await,
        "nothing changed over plaintext"
    );

    // A certificate for another name fails; naming it in tls_server_name verifies against it.
    let named_value = pg_secret(&named_pg, "app", "app-initial-password-0");
    let named = world
        .create_secret("des/db/named", &named_value)
        .await
        .unwrap();
    set_secret_fails(
        &world,
        &named,
        &["not valid for name", "notvalidforname", "certificate"],
    )
    .await;
    let mut aliased_value = named_value.clone();
    aliased_value["tls_server_name"] = json!("db.internal");
    let aliased = world
        .create_secret("des/db/aliased", &aliased_value)
        .await
        .unwrap();
    world.rotate(&aliased).await.unwrap();
    let current = world.value(&aliased, "AWSCURRENT").await.unwrap();
    assert!(
        named_pg
            .can_login("app", current["password"].as_str().unwrap())
            .await
    );

    // A certificate from a CA outside DB_TLS_CA_FILE fails.
    let mut untrusted_value = pg_secret(&untrusted_pg, "app", "app-initial-password-0");
    untrusted_value["host"] = json!("localhost");
    let untrusted_secret = world
        .create_secret("des/db/untrusted", &untrusted_value)
        .await
        .unwrap();
    set_secret_fails(
        &world,
        &untrusted_secret,
        &["unknownissuer", "unknown issuer", "certificate"],
    )
    .await;
    assert!(
        untrusted_pg
            .can_login("app", "app-initial-password-0")
            .await
    );

    // MariaDB without TLS: a clear error, no plaintext session.
    let maria = world
        .create_secret("des/mysql/plain", &json!({"engine": "mariadb", "host": "127.0.0.1", "port": plain_maria.port(), "username": "app", "password": "app-initial-password-0", "sslmode": "disable"}))
        .await
        .unwrap();
    let output = set_secret_fails(&world, &maria, &["tls is required"]).await;
    assert!(output.contains("Permanent."), "{output}");
    assert!(plain_maria.can_login("app", "app-initial-password-0").await);
}

#[tokio::test]
async fn a_database_that_never_answers_is_given_up_within_the_connect_timeout() {
    let (port, _server) = harness::postgres::silent_server().await.unwrap();
    let ca = TestCa::create().await.unwrap();
    let ca_file = ca.ca_cert.display().to_string();
    for tls in ["verify-full", "disable"] {
        let world = RotationWorld::start(&[
            ("DB_TLS", tls),
            ("DB_TLS_CA_FILE", &ca_file),
            ("DB_CONNECT_TIMEOUT_MS", "1000"),
        ])
        .await
        .unwrap();
        let secret = world
            .create_secret("des/db/silent", &json!({"engine": "postgres", "host": "127.0.0.1", "port": port, "username": "app", "password": "p", "dbname": "postgres"}))
            .await
            .unwrap();
        let token = world.begin_rotation(&secret).await.unwrap();
        assert!(
            world
                .step(&secret, &token, "createSecret")
                .await
                .unwrap()
                .ok
        );
        let started = std::time::Instant::now();
        let answer = world.step(&secret, &token, "setSecret").await.unwrap();
        let elapsed = started.elapsed();
        println!("DB_TLS={tls}: setSecret against a silent server gave up after {elapsed:?}");
        assert!(!answer.ok);
        assert!(
            answer.output.contains("Retryable.DatabaseFailed")
                && answer.output.contains("no session within 1000 ms"),
            "{}",
            answer.output
        );
        assert!(
            elapsed < std::time::Duration::from_millis(2500),
            "{elapsed:?}"
        );
    }
}

#[tokio::test]
async fn failed_pre_checks_change_nothing() {
    let pg = Postgres::start(PgOptions::default()).await.unwrap();
    pg.sql(
        "postgres",
        "CREATE ROLE app LOGIN PASSWORD 'app-initial-password-0'",
    )
    .await
    .unwrap();
    let world = RotationWorld::start(PLAINTEXT).await.unwrap();
    let secret = world
        .create_secret(
            "des/db/app",
            &pg_secret(&pg, "app", "app-initial-password-0"),
        )
        .await
        .unwrap();
    let before = world.labels(&secret).await.unwrap();
    let current = before.keys().next().unwrap().clone();

    let disabled = world
        .step(
            &secret,
            "00000000-0000-4000-8000-000000000000",
            "createSecret",
        )
        .await
        .unwrap();
    assert!(
        !disabled.ok && disabled.output.contains("rotation is not enabled"),
        "{}",
        disabled.output
    );

    let token = world.begin_rotation(&secret).await.unwrap();
    let unknown = world
        .step(&secret, "00000000-0000-4000-8000-000000000000", "setSecret")
        .await
        .unwrap();
    assert!(
        !unknown.ok && unknown.output.contains("is not a version"),
        "{}",
        unknown.output
    );
    assert!(
        unknown.output.contains("Permanent.PreCheckFailed"),
        "{}",
        unknown.output
    );

    let _abandoned = token;
    let rotated = world.rotate(&secret).await.unwrap();
    let labels = world.labels(&secret).await.unwrap();
    // The old version is AWSPREVIOUS now: not pending.
    let not_pending = world.step(&secret, &current, "setSecret").await.unwrap();
    assert!(
        !not_pending.ok && not_pending.output.contains("is not AWSPENDING"),
        "{}",
        not_pending.output
    );
    assert_eq!(world.labels(&secret).await.unwrap(), labels);
    // Already current: nothing to do.
    let done = world.step(&secret, &rotated, "finishSecret").await.unwrap();
    assert!(done.ok, "{}", done.output);
    assert_eq!(world.labels(&secret).await.unwrap(), labels);
}

#[tokio::test]
async fn mariadb_single_and_alternating_rotations() {
    let db = MariaDb::start(MariaDbOptions {
        general_log: true,
        ..MariaDbOptions::default()
    })
    .await
    .unwrap();
    db.sql("CREATE DATABASE dispatch; CREATE TABLE dispatch.report (id INT PRIMARY KEY, note TEXT); CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-initial-password-0'; GRANT SELECT, INSERT ON dispatch.* TO 'app'@'127.0.0.1'").await.unwrap();
    let world = RotationWorld::start(PLAINTEXT).await.unwrap();
    let secret_value = json!({"engine": "mariadb", "host": "127.0.0.1", "port": db.port(), "username": "app", "password": "app-initial-password-0", "dbname": "dispatch"});
    let single = world
        .create_secret("des/mysql/app", &secret_value)
        .await
        .unwrap();
    world.rotate(&single).await.unwrap();
    let current = world.value(&single, "AWSCURRENT").await.unwrap();
    let new_password = current["password"].as_str().unwrap().to_string();
    assert!(db.can_login("app", &new_password).await);
    assert!(!db.can_login("app", "app-initial-password-0").await);
    let general_log = db.general_log();
    assert!(
        general_log.contains("SET PASSWORD = '*"),
        "the hash, not the password, was sent"
    );
    assert!(
        !general_log.contains(&new_password),
        "the new password reached the general log"
    );

    let master = world
        .create_secret("des/mysql/master", &json!({"engine": "mariadb", "host": "127.0.0.1", "port": db.port(), "username": "root", "password": db.root_password()}))
        .await
        .unwrap();
    let mut alternating = secret_value.clone();
    alternating["password"] = json!(new_password);
    alternating["masterarn"] = json!(master);
    alternating["test_table"] = json!("dispatch.report");
    let secret = world
        .create_secret("des/mysql/app-alternating", &alternating)
        .await
        .unwrap();
    world.rotate(&secret).await.unwrap();
    let clone = world.value(&secret, "AWSCURRENT").await.unwrap();
    assert_eq!(clone["username"], "app_clone");
    let clone_password = clone["password"].as_str().unwrap();
    db.sql_as(
        "app_clone",
        clone_password,
        "INSERT INTO dispatch.report VALUES (1, 'from clone')",
    )
    .await
    .unwrap();
    assert_eq!(
        db.sql_as(
            "app_clone",
            clone_password,
            "SELECT note FROM dispatch.report"
        )
        .await
        .unwrap(),
        "from clone"
    );
    assert!(
        db.can_login("app", &new_password).await,
        "the original keeps working while the clone is current"
    );
    world.rotate(&secret).await.unwrap();
    assert_eq!(
        world.value(&secret, "AWSCURRENT").await.unwrap()["username"],
        "app"
    );
    assert!(!db.general_log().contains(clone_password));
}

#[tokio::test]
async fn api_keys_rotate_and_owners_are_told() {
    let world = RotationWorld::start(&[]).await.unwrap();
    let secret = world
        .create_secret("des/api/maps", &json!({"type": "api-key", "provider": "Maps API", "api_key": "old-key-value", "owners": "logistics-team@example.com"}))
        .await
        .unwrap();
    world.rotate(&secret).await.unwrap();
    let current = world.value(&secret, "AWSCURRENT").await.unwrap();
    let key = current["api_key"].as_str().unwrap();
    assert_ne!(key, "old-key-value");
    assert_eq!(key.len(), 32);
    let notices = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].subject, "New API key live: des/api/maps");
    assert!(notices[0].message.contains("logistics-team@example.com"));
    assert!(
        !notices[0].message.contains(key),
        "the key itself is never in a notification"
    );
    assert!(
        notices[0].message.contains("must accept the new key"),
        "{}",
        notices[0].message
    );

    // A newer rotation has begun; finishSecret of the finished one is repeated: the newer
    // rotation's AWSPENDING stays, and the owners are not told twice.
    let first = world
        .labels(&secret)
        .await
        .unwrap()
        .into_iter()
        .find(|(_, l)| l.contains(&"AWSCURRENT".to_string()))
        .unwrap()
        .0;
    let newer = world.begin_rotation(&secret).await.unwrap();
    assert!(
        world
            .step(&secret, &newer, "createSecret")
            .await
            .unwrap()
            .ok
    );
    let repeated = world.step(&secret, &first, "finishSecret").await.unwrap();
    assert!(repeated.ok, "{}", repeated.output);
    let labels = world.labels(&secret).await.unwrap();
    assert!(
        labels[&newer].contains(&"AWSPENDING".to_string()),
        "{labels:?}"
    );
    assert!(world.alerts().await.unwrap().is_empty(), "no second notice");
    for step in &STEPS[1..] {
        assert!(
            world.step(&secret, &newer, step).await.unwrap().ok,
            "{step}"
        );
    }
    assert_eq!(
        world.alerts().await.unwrap().len(),
        1,
        "one notice for the newer key"
    );
}

#[test]
fn the_binary_compiles_in_no_public_root_certificate() {
    // Database TLS trusts DB_TLS_CA_FILE only: no public web root is even in the binary.
    let binary = std::fs::read(harness::paths::function_binary("secret-rotator").unwrap()).unwrap();
    for name in ["ISRG Root X1", "DigiCert Global Root", "GlobalSign"] {
        assert!(
            !binary.windows(name.len()).any(|w| w == name.as_bytes()),
            "{name} is compiled in"
        );
    }
}

/// The empty `webpki-roots` patched in for mysql_async must never reach an HTTPS client: a crate
/// that relies on those roots (an AWS SDK client, the webhook client) would trust nothing and
/// fail every call. Only mysql_async may depend on it.
#[test]
fn only_mysql_async_depends_on_the_empty_web_roots() {
    let lock =
        std::fs::read_to_string(harness::paths::workspace_root().join("Cargo.lock")).unwrap();
    let dependents: Vec<&str> = lock
        .split("[[package]]")
        .filter(|package| {
            package.lines().any(|line| {
                line.trim().trim_matches(['"', ',']).split(' ').next() == Some("webpki-roots")
            })
        })
        .filter_map(|package| {
            package
                .lines()
                .find_map(|line| line.strip_prefix("name = "))
                .map(|name| name.trim_matches('"'))
        })
        .filter(|name| *name != "webpki-roots")
        .collect();
    assert_eq!(
        dependents,
        ["mysql_async"],
        "crates depending on webpki-roots"
    );
}
