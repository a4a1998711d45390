//! secret-rotator against someone who can write a rotated secret's versions: every way of steering
//! the master user at another user, database or master is refused before the master changes
//! anything, alerted, and leaves the database and the secret as they were. Also: a version that
//! does not log in is never promoted, and clones are made all or nothing and act as the owner.
//! Real PostgreSQL and MariaDB, the built binary through the Lambda runtime, the emulator.

use harness::mariadb::{MariaDb, MariaDbOptions};
use harness::postgres::{PgOptions, Postgres, SUPERUSER};
use harness::rotation::{RotationWorld, STEPS};
use serde_json::{Value, json};

const PLAINTEXT: &[(&str, &str)] = &[("DB_TLS", "disable")];

fn pg_secret(pg: &Postgres, user: &str, password: &str) -> Value {
    json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port(), "username": user, "password": password, "dbname": "postgres"})
}

/// Every role with its stored password: equal before and after means nothing changed.
async fn pg_roles(pg: &Postgres) -> String {
    pg.sql(
        "postgres",
        "SELECT string_agg(rolname || ':' || coalesce(rolpassword, '') || ':' || rolsuper, ',' ORDER BY rolname) FROM pg_authid",
    )
    .await
    .unwrap()
}

/// Runs setSecret for a secret whose versions an attacker shaped, and checks the refusal.
async fn assert_refused(world: &RotationWorld, secret: &str, token: &str, why: &str) {
    let answer = world.step(secret, token, "setSecret").await.unwrap();
    assert!(!answer.ok, "{why}: setSecret succeeded");
    assert!(
        answer.output.contains("Permanent.Refused"),
        "{why}: {}",
        answer.output
    );
    assert!(
        answer.output.contains(why),
        "expected \"{why}\" in {}",
        answer.output
    );
}

#[tokio::test]
async fn postgres_escalation_attempts_are_refused_and_change_nothing() {
    let pg = Postgres::start(PgOptions::default()).await.unwrap();
    pg.sql(
        "postgres",
        "CREATE ROLE app LOGIN PASSWORD 'app-password-0'; \
         CREATE ROLE other_app LOGIN PASSWORD 'other-password-0'; \
         CREATE ROLE admin_app LOGIN CREATEROLE PASSWORD 'admin-password-0'; \
         CREATE ROLE sneaky LOGIN PASSWORD 'sneaky-password-0'; GRANT postgres TO sneaky; \
         CREATE ROLE rds_superuser NOLOGIN; CREATE ROLE rdsish LOGIN PASSWORD 'rdsish-password-0'; GRANT rds_superuser TO rdsish",
    )
    .await
    .unwrap();
    let world = RotationWorld::start(PLAINTEXT).await.unwrap();
    let master = world
        .create_secret(
            "des/db/master",
            &pg_secret(&pg, SUPERUSER, pg.superuser_password()),
        )
        .await
        .unwrap();
    let mut foreign = pg_secret(&pg, SUPERUSER, pg.superuser_password());
    foreign["port"] = json!(pg.port() + 1);
    let foreign_master = world
        .create_secret("des/db/other-master", &foreign)
        .await
        .unwrap();
    let roles_before = pg_roles(&pg).await;

    // (name, AWSCURRENT, pending overrides or None for the function's own, expected reason)
    let app = {
        let mut v = pg_secret(&pg, "app", "app-password-0");
        v["masterarn"] = json!(master);
        v
    };
    let with = |base: &Value, field: &str, value: Value| {
        let mut v = base.clone();
        v[field] = value;
        v
    };
    let single = pg_secret(&pg, "app", "app-password-0");
    let cases: Vec<(&str, Value, Option<Value>, &str)> = vec![
        (
            "single-user-redirect",
            single.clone(),
            Some(with(&single, "port", json!(pg.port() + 3))),
            "another engine, host or port",
        ),
        (
            "single-user-other-role",
            single.clone(),
            Some(with(&single, "username", json!("other_app"))),
            "is not the current user",
        ),
        (
            "another-role",
            app.clone(),
            Some(with(&app, "username", json!("other_app"))),
            "is neither the current user",
        ),
        (
            "master-clone",
            app.clone(),
            Some(with(&app, "username", json!("postgres_clone"))),
            "is neither the current user",
        ),
        (
            "foreign-master-pending",
            app.clone(),
            Some(with(&app, "masterarn", json!(foreign_master))),
            "another master secret",
        ),
        (
            "host-mismatch",
            app.clone(),
            Some(with(&app, "port", json!(pg.port() + 2))),
            "another engine, host or port",
        ),
        (
            "foreign-master",
            with(&app, "masterarn", json!(foreign_master)),
            None,
            "the master secret names another engine, host or port",
        ),
        (
            "current-does-not-log-in",
            with(&app, "password", json!("a-guess")),
            None,
            "does not log in",
        ),
        (
            "clone-of-superuser-member",
            with(
                &with(&app, "username", json!("sneaky")),
                "password",
                json!("sneaky-password-0"),
            ),
            None,
            "can act as postgres",
        ),
        (
            "clone-of-createrole",
            with(
                &with(&app, "username", json!("admin_app")),
                "password",
                json!("admin-password-0"),
            ),
            None,
            "a role with CREATEROLE",
        ),
        (
            "clone-of-rds-superuser",
            with(
                &with(&app, "username", json!("rdsish")),
                "password",
                json!("rdsish-password-0"),
            ),
            None,
            "rds_superuser",
        ),
        (
            "clone-of-master",
            with(
                &with(&app, "username", json!("postgres")),
                "password",
                json!(pg.superuser_password()),
            ),
            None,
            "the master user",
        ),
    ];
    for (name, current, attack, why) in &cases {
        let secret = world
            .create_secret(&format!("des/db/{name}"), current)
            .await
            .unwrap();
        let mut token = world.begin_rotation(&secret).await.unwrap();
        assert!(
            world
                .step(&secret, &token, "createSecret")
                .await
                .unwrap()
                .ok,
            "{name}"
        );
        if let Some(pending) = attack {
            // The attacker's own version, labelled AWSPENDING, driven as a rotation of its own.
            token = world
                .put_version(&secret, pending, &["AWSPENDING"])
                .await
                .unwrap();
        }
        let labels_before = world.labels(&secret).await.unwrap();
        assert_refused(&world, &secret, &token, why).await;
        assert_eq!(
            world.labels(&secret).await.unwrap(),
            labels_before,
            "{name}: the secret changed"
        );
        assert_eq!(
            world.value(&secret, "AWSCURRENT").await.unwrap(),
            *current,
            "{name}"
        );
    }
    assert_eq!(
        pg_roles(&pg).await,
        roles_before,
        "nothing changed in the database"
    );
    assert!(pg.can_login(SUPERUSER, pg.superuser_password()).await);
    assert!(pg.can_login("other_app", "other-password-0").await);

    let alerts = world.alerts().await.unwrap();
    assert_eq!(alerts.len(), cases.len(), "one alert per refusal");
    for (alert, (name, _, _, why)) in alerts.iter().zip(&cases) {
        assert_eq!(
            alert.subject,
            format!("Secret rotation refused: des/db/{name} at setSecret")
        );
        assert!(alert.message.contains(why), "{}", alert.message);
        assert!(
            alert.message.contains("Nothing was changed"),
            "{}",
            alert.message
        );
    }

    // finishSecret driven for an attacker's version that points elsewhere: refused, not promoted.
    let secret = world
        .create_secret("des/db/redirect-finish", &single)
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
    let attack = world
        .put_version(
            &secret,
            &with(&single, "port", json!(pg.port() + 3)),
            &["AWSPENDING"],
        )
        .await
        .unwrap();
    let labels_before = world.labels(&secret).await.unwrap();
    let finish = world.step(&secret, &attack, "finishSecret").await.unwrap();
    assert!(
        !finish.ok && finish.output.contains("Permanent.Refused"),
        "{}",
        finish.output
    );
    assert_eq!(world.labels(&secret).await.unwrap(), labels_before);
    assert_eq!(world.value(&secret, "AWSCURRENT").await.unwrap(), single);

    let everything = format!("{alerts:?}{}", world.runtime.logs());
    for password in [
        pg.superuser_password(),
        "app-password-0",
        "sneaky-password-0",
        "admin-password-0",
        "a-guess",
    ] {
        assert!(
            !everything.contains(password),
            "a password reached an alert or the log"
        );
    }
}

#[tokio::test]
async fn mariadb_escalation_attempts_are_refused_and_change_nothing() {
    let db = MariaDb::start(MariaDbOptions::default()).await.unwrap();
    db.sql(
        "CREATE DATABASE dispatch; \
         CREATE USER 'granter'@'127.0.0.1' IDENTIFIED BY 'granter-password-0'; GRANT SELECT ON dispatch.* TO 'granter'@'127.0.0.1' WITH GRANT OPTION; \
         CREATE USER 'super'@'127.0.0.1' IDENTIFIED BY 'super-password-0'; GRANT SUPER ON *.* TO 'super'@'127.0.0.1'; \
         CREATE USER 'everything'@'127.0.0.1' IDENTIFIED BY 'everything-password-0'; GRANT ALL PRIVILEGES ON *.* TO 'everything'@'127.0.0.1'; \
         CREATE ROLE admins; GRANT ALL PRIVILEGES ON *.* TO admins; \
         CREATE USER 'via_role'@'127.0.0.1' IDENTIFIED BY 'role-password-0'; GRANT admins TO 'via_role'@'127.0.0.1'",
    )
    .await
    .unwrap();
    // An RDS-managed master (no host of its own) is bound to this server by configuration.
    let binding = format!("des/mysql/master=127.0.0.1:{}", db.port());
    let world = RotationWorld::start(&[("DB_TLS", "disable"), ("ROTATION_MASTER_HOSTS", &binding)])
        .await
        .unwrap();
    world
        .create_secret(
            "des/mysql/master",
            &json!({"username": "root", "password": db.root_password()}),
        )
        .await
        .unwrap();
    let master = "des/mysql/master";
    let users = || {
        db.sql("SELECT GROUP_CONCAT(User, '@', Host, ':', authentication_string ORDER BY User, Host) FROM mysql.user")
    };
    let before = users().await.unwrap();
    let cases = [
        ("granter", "granter-password-0", "GRANT OPTION"),
        ("super", "super-password-0", "SUPER"),
        (
            "everything",
            "everything-password-0",
            "ALL PRIVILEGES on *.*",
        ),
        ("via_role", "role-password-0", "through role admins"),
        ("root", db.root_password(), "is the master user"),
    ];
    for (user, password, why) in cases {
        let secret = world
            .create_secret(
                &format!("des/mysql/{user}"),
                &json!({"engine": "mariadb", "host": "127.0.0.1", "port": db.port(), "username": user, "password": password, "masterarn": master}),
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
        assert_refused(&world, &secret, &token, why).await;
        assert!(
            db.can_login(user, password).await,
            "{user} keeps its password"
        );
    }
    assert_eq!(
        users().await.unwrap(),
        before,
        "no user was created or changed"
    );
    assert_eq!(world.alerts().await.unwrap().len(), cases.len());
}

#[tokio::test]
async fn finish_secret_never_promotes_a_password_that_was_never_set() {
    let pg = Postgres::start(PgOptions::default()).await.unwrap();
    pg.sql(
        "postgres",
        "CREATE ROLE app LOGIN PASSWORD 'app-password-0'",
    )
    .await
    .unwrap();
    let world = RotationWorld::start(PLAINTEXT).await.unwrap();
    let secret = world
        .create_secret("des/db/app", &pg_secret(&pg, "app", "app-password-0"))
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
    // setSecret never ran (or failed): a caller drives finishSecret anyway.
    let labels = world.labels(&secret).await.unwrap();
    let refused = world.step(&secret, &token, "finishSecret").await.unwrap();
    assert!(
        !refused.ok && refused.output.contains("Permanent.Refused"),
        "{}",
        refused.output
    );
    assert_eq!(
        world.labels(&secret).await.unwrap(),
        labels,
        "AWSCURRENT did not move"
    );
    let current = world.value(&secret, "AWSCURRENT").await.unwrap();
    assert!(
        pg.can_login("app", current["password"].as_str().unwrap())
            .await
    );
    let alerts = world.alerts().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert!(
        alerts[0].message.contains("AWSCURRENT was not moved"),
        "{}",
        alerts[0].message
    );

    // The same rotation, completed properly, then promotes.
    for step in &STEPS[1..] {
        let answer = world.step(&secret, &token, step).await.unwrap();
        assert!(answer.ok, "{step}: {}", answer.output);
    }
    let current = world.value(&secret, "AWSCURRENT").await.unwrap();
    assert!(
        pg.can_login("app", current["password"].as_str().unwrap())
            .await
    );
}
