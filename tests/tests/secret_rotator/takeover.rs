//! secret-rotator against someone who can write one rotated secret and aims at another database's
//! master or at a role that merely has a clone's name: a master secret without a host is used
//! only where `ROTATION_MASTER_HOSTS` binds it (no connection as the master anywhere else), and an
//! existing `<user>_clone` that is not the rotator's clone is neither reset, dropped, nor used to
//! reset `<user>`. Real PostgreSQL and MariaDB, the built binary through the Lambda runtime.

use harness::mariadb::{MariaDb, MariaDbOptions};
use harness::postgres::{PgOptions, Postgres, SUPERUSER};
use harness::rotation::RotationWorld;
use serde_json::{Value, json};

/// Starts a rotation of a new secret `name` and runs setSecret, which must be refused for `why`.
async fn set_secret_refused(world: &RotationWorld, name: &str, value: &Value, why: &str) {
    let secret = world.create_secret(name, value).await.unwrap();
    let token = world.begin_rotation(&secret).await.unwrap();
    let created = world.step(&secret, &token, "createSecret").await.unwrap();
    assert!(created.ok, "{name}: {}", created.output);
    let answer = world.step(&secret, &token, "setSecret").await.unwrap();
    assert!(
        !answer.ok && answer.output.contains("Permanent.Refused") && answer.output.contains(why),
        "{name}: expected a refusal for \"{why}\", got {}",
        answer.output
    );
}

/// `app` and a role that only shares its clone's name (`app_clone`, password
/// `unrelated-password-0`): neither rotation may touch the other.
async fn clone_takeover_refused_both_ways(
    world: &RotationWorld,
    prefix: &str,
    secret: impl Fn(&str, &str) -> Value,
    why: &str,
) {
    // Forward: app's rotation would reset app_clone's password and grant it app.
    set_secret_refused(
        world,
        &format!("{prefix}/app"),
        &secret("app", "app-password-0"),
        why,
    )
    .await;
    // Backward: whoever knows app_clone's password would get app's reset.
    set_secret_refused(
        world,
        &format!("{prefix}/app-clone"),
        &secret("app_clone", "unrelated-password-0"),
        why,
    )
    .await;
}

#[tokio::test]
async fn host_less_master_is_used_only_where_bound() {
    let pg = Postgres::start(PgOptions::default()).await.unwrap();
    pg.sql(
        "postgres",
        "CREATE ROLE rotmaster LOGIN CREATEROLE PASSWORD 'rotmaster-password-0'; \
         CREATE ROLE app LOGIN PASSWORD 'app-password-0'",
    )
    .await
    .unwrap();
    // Every connection lands in the server log, with its user.
    for statement in [
        "ALTER SYSTEM SET log_connections = on",
        "SELECT pg_reload_conf()",
    ] {
        pg.sql("postgres", statement).await.unwrap();
    }
    let port = pg.port();
    let bindings = format!(
        "des/db/master=127.0.0.1:{port},des/db/elsewhere=localhost:{port},des/db/other-port=127.0.0.1:{}",
        port + 1
    );
    let world =
        RotationWorld::start(&[("DB_TLS", "disable"), ("ROTATION_MASTER_HOSTS", &bindings)])
            .await
            .unwrap();
    // RDS-managed masters: a login and nothing about where it belongs.
    for name in [
        "des/db/master",
        "des/db/unbound",
        "des/db/elsewhere",
        "des/db/other-port",
    ] {
        world
            .create_secret(
                name,
                &json!({"username": "rotmaster", "password": "rotmaster-password-0"}),
            )
            .await
            .unwrap();
    }
    let app = |master: &str| json!({"engine": "postgres", "host": "127.0.0.1", "port": port, "username": "app", "password": "app-password-0", "dbname": "postgres", "masterarn": master});
    let mut renamed = app("des/db/master");
    renamed["tls_server_name"] = json!("attacker.example");
    let cases = [
        ("des/db/app-unbound", app("des/db/unbound")),
        ("des/db/app-elsewhere", app("des/db/elsewhere")),
        ("des/db/app-other-port", app("des/db/other-port")),
        ("des/db/app-tls-name", renamed),
    ];
    for (name, value) in &cases {
        set_secret_refused(&world, name, value, "ROTATION_MASTER_HOSTS").await;
    }
    let log = pg.server_log();
    assert!(
        log.contains("connection authorized: user=app"),
        "connections are logged"
    );
    assert!(
        !log.contains("rotmaster"),
        "no connection was made as the master:\n{log}"
    );
    assert!(pg.can_login("app", "app-password-0").await);
    assert!(!world.runtime.logs().contains("rotmaster-password-0"));

    // Bound to this host and port: the rotation works, as the master.
    let secret = world
        .create_secret("des/db/app", &app("des/db/master"))
        .await
        .unwrap();
    world.rotate(&secret).await.unwrap();
    let current = world.value(&secret, "AWSCURRENT").await.unwrap();
    assert_eq!(current["username"], "app_clone");
    assert!(
        pg.can_login("app_clone", current["password"].as_str().unwrap())
            .await
    );
    assert!(
        pg.server_log()
            .contains("connection authorized: user=rotmaster")
    );
    for alert in world.alerts().await.unwrap() {
        assert!(!format!("{alert:?}").contains("rotmaster-password-0"));
    }
}

#[tokio::test]
async fn postgres_role_that_only_shares_the_clone_name_is_not_taken_over() {
    let pg = Postgres::start(PgOptions::default()).await.unwrap();
    pg.sql(
        "postgres",
        "CREATE ROLE app LOGIN PASSWORD 'app-password-0'; \
         CREATE ROLE app_clone LOGIN PASSWORD 'unrelated-password-0'; \
         CREATE TABLE ledger (id int); GRANT SELECT ON ledger TO app_clone",
    )
    .await
    .unwrap();
    let world = RotationWorld::start(&[("DB_TLS", "disable")])
        .await
        .unwrap();
    let master = world
        .create_secret(
            "des/db/master",
            &json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port(), "username": SUPERUSER, "password": pg.superuser_password()}),
        )
        .await
        .unwrap();
    let roles = || {
        pg.sql(
            "postgres",
            "SELECT string_agg(rolname || ':' || coalesce(rolpassword, ''), ',' ORDER BY rolname) FROM pg_authid WHERE rolname LIKE 'app%'",
        )
    };
    let before = roles().await.unwrap();
    let secret = |user: &str, password: &str| json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port(), "username": user, "password": password, "dbname": "postgres", "masterarn": master});
    clone_takeover_refused_both_ways(
        &world,
        "des/db",
        secret,
        "is not the rotator's clone of app",
    )
    .await;
    assert_eq!(roles().await.unwrap(), before, "no role changed");
    assert!(pg.can_login("app_clone", "unrelated-password-0").await);
    assert!(pg.can_login("app", "app-password-0").await);
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT pg_has_role('app_clone', 'app', 'MEMBER')::text || ',' || has_table_privilege('app_clone', 'ledger', 'SELECT')::text",
        )
        .await
        .unwrap(),
        "false,true"
    );
}

#[tokio::test]
async fn mariadb_user_that_only_shares_the_clone_name_is_neither_reset_nor_dropped() {
    let db = MariaDb::start(MariaDbOptions::default()).await.unwrap();
    db.sql(
        "CREATE DATABASE dispatch; CREATE TABLE dispatch.report (id INT); CREATE TABLE dispatch.ledger (id INT); \
         CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-password-0'; GRANT SELECT ON dispatch.report TO 'app'@'127.0.0.1'; \
         CREATE USER 'app_clone'@'127.0.0.1' IDENTIFIED BY 'unrelated-password-0'; GRANT SELECT ON dispatch.ledger TO 'app_clone'@'127.0.0.1'",
    )
    .await
    .unwrap();
    let world = RotationWorld::start(&[("DB_TLS", "disable")])
        .await
        .unwrap();
    let master = world
        .create_secret(
            "des/mysql/master",
            &json!({"engine": "mariadb", "host": "127.0.0.1", "port": db.port(), "username": "root", "password": db.root_password()}),
        )
        .await
        .unwrap();
    let users = || {
        db.sql("SELECT GROUP_CONCAT(User, '@', Host, ':', authentication_string ORDER BY User, Host) FROM mysql.user WHERE User LIKE 'app%'")
    };
    let before = users().await.unwrap();
    let secret = |user: &str, password: &str| json!({"engine": "mariadb", "host": "127.0.0.1", "port": db.port(), "username": user, "password": password, "dbname": "dispatch", "masterarn": master});
    clone_takeover_refused_both_ways(
        &world,
        "des/mysql",
        secret,
        "is not marked as the rotator's clone of app",
    )
    .await;
    assert_eq!(users().await.unwrap(), before, "no user changed or dropped");
    assert!(db.can_login("app_clone", "unrelated-password-0").await);
    assert!(db.can_login("app", "app-password-0").await);
    assert_eq!(
        db.sql_as(
            "app_clone",
            "unrelated-password-0",
            "SELECT COUNT(*) FROM dispatch.ledger"
        )
        .await
        .unwrap(),
        "0",
        "its own grant is intact"
    );

    // Once that user is gone, the rotator's own clone is made, marked, and rotated back and forth.
    db.sql("DROP USER 'app_clone'@'127.0.0.1'").await.unwrap();
    let secret = world
        .create_secret("des/mysql/app-pair", &secret("app", "app-password-0"))
        .await
        .unwrap();
    for expected in ["app_clone", "app", "app_clone"] {
        world.rotate(&secret).await.unwrap();
        let current = world.value(&secret, "AWSCURRENT").await.unwrap();
        assert_eq!(current["username"], expected);
        assert!(
            db.can_login(expected, current["password"].as_str().unwrap())
                .await
        );
    }
    assert_eq!(
        db.sql("SELECT CONCAT(user, '@', host, '=', clone_of) FROM watchkeeper.rotator_clones")
            .await
            .unwrap(),
        "app_clone@127.0.0.1=app"
    );
}
