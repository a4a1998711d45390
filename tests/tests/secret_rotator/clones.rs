//! secret-rotator's alternating users: the clone is made all or nothing (a failure mid-creation
//! leaves nothing, or is repaired by the retry), ends with exactly the original's privileges
//! (roles, settings, grants, REQUIRE SSL, resource limits, default role), and acts as the owner
//! so objects made through either login stay usable by both. Real PostgreSQL and MariaDB (TLS).

use harness::mariadb::{MariaDb, MariaDbOptions};
use harness::postgres::{PgOptions, Postgres, SUPERUSER};
use harness::rotation::RotationWorld;
use harness::tls::TestCa;
use serde_json::json;

#[tokio::test]
async fn postgres_clone_is_all_or_nothing_repaired_and_acts_as_the_owner() {
    let pg = Postgres::start(PgOptions {
        log_statements: true,
        ..PgOptions::default()
    })
    .await
    .unwrap();
    pg.sql(
        "postgres",
        "CREATE ROLE readers NOLOGIN; CREATE SCHEMA app_schema; \
         CREATE ROLE app LOGIN PASSWORD 'app-password-0'; GRANT readers TO app; \
         GRANT ALL ON SCHEMA app_schema TO app; \
         ALTER ROLE app SET search_path = app_schema, public; ALTER ROLE app SET work_mem = '8MB'",
    )
    .await
    .unwrap();
    let world = RotationWorld::start(&[("DB_TLS", "disable"), ("DB_LOCK_TIMEOUT_MS", "1000")])
        .await
        .unwrap();
    // The master is mid-rotation itself: its AWSCURRENT no longer logs in, its AWSPENDING does.
    let master = world
        .create_secret(
            "des/db/master",
            &json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port(), "username": SUPERUSER, "password": "stale-master-password"}),
        )
        .await
        .unwrap();
    world
        .put_version(
            &master,
            &json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port(), "username": SUPERUSER, "password": pg.superuser_password()}),
            &["AWSPENDING"],
        )
        .await
        .unwrap();
    let secret = world
        .create_secret(
            "des/db/app",
            &json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port(), "username": "app", "password": "app-password-0", "dbname": "postgres", "masterarn": master}),
        )
        .await
        .unwrap();
    let clones = || {
        pg.sql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'app_clone'",
        )
    };
    let token = world.begin_rotation(&secret).await.unwrap();
    assert!(
        world
            .step(&secret, &token, "createSecret")
            .await
            .unwrap()
            .ok
    );

    // The GRANT after CREATE ROLE cannot get its lock: the whole creation is rolled back.
    let lock = pg
        .hold_lock("pg_catalog.pg_auth_members", "SHARE")
        .await
        .unwrap();
    let failed = world.step(&secret, &token, "setSecret").await.unwrap();
    assert!(
        !failed.ok && failed.output.contains("Retryable."),
        "{}",
        failed.output
    );
    assert!(
        pg.server_log()
            .contains("CREATE ROLE \"app_clone\" WITH LOGIN PASSWORD 'SCRAM-SHA-256$"),
        "the failure came after CREATE ROLE"
    );
    assert_eq!(clones().await.unwrap(), "0", "no half-made clone is left");
    lock.release().await.unwrap();
    for step in ["setSecret", "testSecret"] {
        let answer = world.step(&secret, &token, step).await.unwrap();
        assert!(answer.ok, "{step}: {}", answer.output);
    }

    // A clone that lost a setting fails testSecret; setSecret's retry repairs it. (One that lost
    // its membership of `app` or its `role` setting is no longer recognisable as the clone: see
    // takeover.rs.)
    pg.sql("postgres", "ALTER ROLE app_clone RESET work_mem")
        .await
        .unwrap();
    let test = world.step(&secret, &token, "testSecret").await.unwrap();
    assert!(
        !test.ok
            && test
                .output
                .contains("app_clone lacks the setting work_mem of app"),
        "{}",
        test.output
    );
    for step in ["setSecret", "testSecret", "finishSecret"] {
        let answer = world.step(&secret, &token, step).await.unwrap();
        assert!(answer.ok, "{step}: {}", answer.output);
    }
    let settings = pg
        .sql("postgres", "SELECT array_to_string(setconfig, ';') FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = 'app_clone'")
        .await
        .unwrap();
    for wanted in ["search_path=app_schema, public", "work_mem=8MB", "role=app"] {
        assert!(settings.contains(wanted), "{wanted} in {settings}");
    }

    // Both logins act as one owner: what the clone creates, `app` reads and writes after the flip.
    let clone = world.value(&secret, "AWSCURRENT").await.unwrap();
    assert_eq!(clone["username"], "app_clone");
    pg.sql_as(
        "app_clone",
        clone["password"].as_str().unwrap(),
        "postgres",
        "CREATE TABLE made_by_clone (id int); INSERT INTO made_by_clone VALUES (1)",
    )
    .await
    .unwrap();
    world.rotate(&secret).await.unwrap();
    let app = world.value(&secret, "AWSCURRENT").await.unwrap();
    assert_eq!(app["username"], "app");
    let app_password = app["password"].as_str().unwrap();
    pg.sql_as(
        "app",
        app_password,
        "postgres",
        "INSERT INTO app_schema.made_by_clone VALUES (2)",
    )
    .await
    .unwrap();
    assert_eq!(
        pg.sql_as(
            "app",
            app_password,
            "postgres",
            "SELECT count(*) FROM app_schema.made_by_clone"
        )
        .await
        .unwrap(),
        "2"
    );
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_clone'"
        )
        .await
        .unwrap(),
        "app"
    );
}

#[tokio::test]
async fn mariadb_clone_over_tls_copies_every_grant_after_failed_attempts() {
    let ca = TestCa::create().await.unwrap();
    let db = MariaDb::start(MariaDbOptions {
        tls: Some((ca.server_cert.clone(), ca.server_key.clone())),
        ..MariaDbOptions::default()
    })
    .await
    .unwrap();
    db.sql(
        "CREATE DATABASE dispatch; CREATE TABLE dispatch.report (id INT PRIMARY KEY, note TEXT); \
         CREATE TABLE dispatch.audit (id INT); \
         CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-password-0' REQUIRE SSL WITH MAX_USER_CONNECTIONS 5; \
         GRANT SELECT, INSERT ON dispatch.* TO 'app'@'127.0.0.1'; GRANT UPDATE ON dispatch.audit TO 'app'@'127.0.0.1'; \
         CREATE ROLE reporting; GRANT SELECT ON dispatch.report TO reporting; \
         GRANT reporting TO 'app'@'127.0.0.1'; SET DEFAULT ROLE reporting FOR 'app'@'127.0.0.1'; \
         DROP TABLE dispatch.audit",
    )
    .await
    .unwrap();
    let ca_file = ca.ca_cert.display().to_string();
    // An RDS-managed master (no host of its own) is bound to this server by configuration.
    let binding = format!("des/mysql/master=127.0.0.1:{}", db.port());
    let world = RotationWorld::start(&[
        ("DB_TLS", "verify-full"),
        ("DB_TLS_CA_FILE", &ca_file),
        ("ROTATION_MASTER_HOSTS", &binding),
    ])
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
    let secret = world
        .create_secret(
            "des/mysql/app",
            &json!({"engine": "mariadb", "host": "127.0.0.1", "port": db.port(), "username": "app", "password": "app-password-0", "dbname": "dispatch", "masterarn": master, "test_table": "dispatch.report"}),
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
    let clone_hosts = || db.sql("SELECT count(*) FROM mysql.user WHERE User = 'app_clone'");

    // A grant that fails after CREATE USER (its table is gone): what was created is dropped.
    let failed = world.step(&secret, &token, "setSecret").await.unwrap();
    assert!(
        !failed.ok && failed.output.contains("Retryable.DatabaseFailed"),
        "{}",
        failed.output
    );
    assert_eq!(
        clone_hosts().await.unwrap(),
        "0",
        "no half-made clone is left"
    );

    // A connection lost mid-creation leaves a clone (created and marked) with some grants: the
    // retry makes it again.
    db.sql("CREATE TABLE dispatch.audit (id INT); CREATE USER 'app_clone'@'127.0.0.1' IDENTIFIED BY 'half-made-0'; \
            INSERT INTO watchkeeper.rotator_clones (user, host, clone_of) VALUES ('app_clone', '127.0.0.1', 'app'); \
            GRANT SELECT ON dispatch.* TO 'app_clone'@'127.0.0.1'")
        .await
        .unwrap();
    for step in ["setSecret", "testSecret", "finishSecret"] {
        let answer = world.step(&secret, &token, step).await.unwrap();
        assert!(
            answer.ok,
            "{step}: {}\n{}",
            answer.output,
            world.runtime.logs()
        );
    }
    let db_ref = &db;
    let grants = |user: &'static str| async move {
        let text = db_ref
            .sql(&format!("SHOW GRANTS FOR '{user}'@'127.0.0.1'"))
            .await
            .unwrap()
            .replace(&format!("`{user}`"), "`USER`");
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| match l.find(" IDENTIFIED BY PASSWORD '") {
                // The hash differs; what follows it (REQUIRE, WITH) must not.
                Some(i) => format!("{}{}", &l[..i], &l[i + 67..]),
                None => l.to_string(),
            })
            .collect();
        lines.sort();
        lines
    };
    let (original, clone) = (grants("app").await, grants("app_clone").await);
    assert_eq!(original, clone);
    let all = clone.join("\n");
    for wanted in [
        "REQUIRE SSL",
        "MAX_USER_CONNECTIONS 5",
        "SET DEFAULT ROLE `reporting`",
        "`dispatch`.`audit`",
    ] {
        assert!(all.contains(wanted), "{wanted} in {all}");
    }
    let current = world.value(&secret, "AWSCURRENT").await.unwrap();
    assert_eq!(current["username"], "app_clone");
    assert!(
        db.can_login("app_clone", current["password"].as_str().unwrap())
            .await
    );
    assert!(
        !world
            .runtime
            .logs()
            .contains(current["password"].as_str().unwrap())
    );
}

/// A MariaDB clone's creation cut short where a Lambda timeout or a kill can cut it: the process
/// is killed (SIGKILL) while its first statement of the clone waits on a lock, and the server ends
/// that statement. The retry finishes the clone: no account is ever left that the function would
/// have to refuse as "not marked", needing a person.
#[tokio::test]
async fn a_mariadb_clone_cut_short_is_finished_by_the_retry() {
    use harness::rotation::FUNCTION;
    use harness::runtime_api::RuntimeApi;
    use std::time::Duration;

    let db = MariaDb::start(MariaDbOptions::default()).await.unwrap();
    db.sql(
        "CREATE DATABASE dispatch; \
         CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-password-0'; \
         GRANT SELECT, INSERT ON dispatch.* TO 'app'@'127.0.0.1'; \
         CREATE DATABASE watchkeeper; \
         CREATE TABLE watchkeeper.rotator_clones (`user` VARCHAR(128) NOT NULL, `host` VARCHAR(255) NOT NULL, `clone_of` VARCHAR(128) NOT NULL, `created` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (`user`, `host`))",
    )
    .await
    .unwrap();
    let binding = format!("des/mysql/master=127.0.0.1:{}", db.port());
    let world = RotationWorld::start(&[
        ("DB_TLS", "disable"),
        ("ROTATION_MASTER_HOSTS", &binding),
        ("DB_LOCK_TIMEOUT_MS", "60000"),
        ("DB_STATEMENT_TIMEOUT_MS", "60000"),
    ])
    .await
    .unwrap();
    world
        .create_secret(
            "des/mysql/master",
            &json!({"username": "root", "password": db.root_password()}),
        )
        .await
        .unwrap();
    let secret = world
        .create_secret(
            "des/mysql/app",
            &json!({"engine": "mariadb", "host": "127.0.0.1", "port": db.port(), "username": "app", "password": "app-password-0", "masterarn": "des/mysql/master"}),
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

    // Another transaction holds the clone's row of the mark table: the clone's creation waits
    // when it writes its mark (a row lock: creating the table if missing does not wait on it).
    let mut locker = db
        .sql_in_background(
            "BEGIN; INSERT INTO watchkeeper.rotator_clones (`user`, `host`, `clone_of`) \
             VALUES ('app_clone', '127.0.0.1', 'app'); SELECT SLEEP(3600)",
        )
        .unwrap();
    let waiting = |info: &'static str| {
        let db = &db;
        async move {
            for _ in 0..600 {
                let id = db
                    .sql(&format!(
                        "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '{info}' AND ID <> CONNECTION_ID() LIMIT 1"
                    ))
                    .await
                    .unwrap();
                if !id.is_empty() {
                    return id;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("no session ran {info}");
        }
    };
    let locker_id = waiting("SELECT SLEEP(3600)").await;

    let api = RuntimeApi::start(Duration::from_secs(60)).await.unwrap();
    let mut process = api.spawn(FUNCTION, &world.env).unwrap();
    let event = json!({"SecretId": secret, "ClientRequestToken": token, "Step": "setSecret"});
    let invocation = {
        let api = &api;
        let event = event.clone();
        async move { api.invoke(&event, Duration::from_secs(120)).await }
    };
    let cut_short = async {
        let statement = waiting("REPLACE INTO%rotator_clones%").await;
        let users_then = db
            .sql("SELECT GROUP_CONCAT(User ORDER BY User) FROM mysql.user WHERE User LIKE 'app%'")
            .await
            .unwrap();
        process.kill().await.unwrap();
        // The server ends what the dead process left waiting, as it would after a timeout.
        db.sql(&format!("KILL {statement}")).await.unwrap();
        users_then
    };
    let users_then = tokio::select! {
        answer = invocation => panic!("setSecret answered before it was cut short: {answer:?}"),
        users = cut_short => users,
    };
    api.forget_pending();
    db.sql(&format!("KILL {locker_id}")).await.unwrap();
    let _ = locker.wait().await;
    eprintln!("accounts when the process was killed: {users_then}");

    // Secrets Manager's retry, then the rest of the rotation.
    for step in ["setSecret", "testSecret", "finishSecret"] {
        let answer = world.step(&secret, &token, step).await.unwrap();
        assert!(answer.ok, "{step} after the cut: {}", answer.output);
    }
    let current = world.value(&secret, "AWSCURRENT").await.unwrap();
    assert_eq!(current["username"], "app_clone");
    assert!(
        db.can_login("app_clone", current["password"].as_str().unwrap())
            .await
    );
}
