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

/// Every role as stored (password, every `rol*` flag, validity), every membership and every
/// per-role setting: equal before and after means nothing changed, including a refused path that
/// still granted a role or planted a setting.
async fn pg_roles(pg: &Postgres) -> String {
    pg.sql(
        "postgres",
        "SELECT concat_ws(E'\\n', \
           (SELECT string_agg(a::text, ',' ORDER BY a.rolname) FROM pg_authid a), \
           (SELECT string_agg(m.roleid::regrole || '>' || m.member::regrole || ':' || m.admin_option, ',' \
              ORDER BY m.roleid, m.member) FROM pg_auth_members m), \
           (SELECT string_agg(s.setdatabase || '/' || s.setrole || ':' || array_to_string(s.setconfig, ';'), ',' \
              ORDER BY s.setdatabase, s.setrole) FROM pg_db_role_setting s))",
    )
    .await
    .unwrap()
}

/// Every MariaDB account with everything it holds (`SHOW GRANTS`: its password hash, global,
/// database, table, column and routine privileges, roles, PROXY) and every role mapping. PUBLIC
/// is left out: a case grants to it on purpose.
async fn mariadb_accounts(db: &MariaDb) -> String {
    let accounts = db
        .sql("SELECT IF(is_role = 'Y', QUOTE(User), CONCAT(QUOTE(User), '@', QUOTE(Host))) FROM mysql.user WHERE User <> 'PUBLIC' ORDER BY User, Host")
        .await
        .unwrap();
    let mut out = String::new();
    for account in accounts.lines() {
        // (An account the server cannot show, such as `root@<hostname>` made by the installer
        // and skipped by name resolution, is compared by its error.)
        let grants = db.sql(&format!("SHOW GRANTS FOR {account}")).await;
        out.push_str(&grants.unwrap_or_else(|e| e.to_string()));
        out.push('\n');
    }
    out.push_str(
        &db.sql("SELECT CONCAT_WS(':', Host, User, Role, Admin_option) FROM mysql.roles_mapping WHERE User <> 'PUBLIC' ORDER BY Host, User, Role")
            .await
            .unwrap(),
    );
    out
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
         CREATE ROLE rds_superuser NOLOGIN; CREATE ROLE rdsish LOGIN PASSWORD 'rdsish-password-0'; GRANT rds_superuser TO rdsish; \
         CREATE ROLE filer LOGIN PASSWORD 'filer-password-0'; GRANT pg_write_server_files TO filer; \
         CREATE ROLE runner LOGIN PASSWORD 'runner-password-0'; GRANT pg_execute_server_program TO runner",
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
            "is not the counterpart",
        ),
        (
            "master-clone",
            app.clone(),
            Some(with(&app, "username", json!("postgres_clone"))),
            "is not the counterpart",
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
            "clone-of-file-writer",
            with(
                &with(&app, "username", json!("filer")),
                "password",
                json!("filer-password-0"),
            ),
            None,
            "can act as pg_write_server_files, a role that runs programs or reads or writes files",
        ),
        (
            "clone-of-program-runner",
            with(
                &with(&app, "username", json!("runner")),
                "password",
                json!("runner-password-0"),
            ),
            None,
            "can act as pg_execute_server_program",
        ),
        (
            "pending-is-the-current-user",
            app.clone(),
            Some(app.clone()),
            "the current user is never altered",
        ),
        (
            "pending-is-an-api-key",
            app.clone(),
            Some(json!({"type": "api-key", "api_key": "k-0"})),
            "another kind of secret",
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
         CREATE USER 'via_role'@'127.0.0.1' IDENTIFIED BY 'role-password-0'; GRANT admins TO 'via_role'@'127.0.0.1'; \
         CREATE USER 'filer'@'127.0.0.1' IDENTIFIED BY 'filer-password-0'; GRANT FILE ON *.* TO 'filer'@'127.0.0.1'; \
         CREATE USER 'definer'@'127.0.0.1' IDENTIFIED BY 'definer-password-0'; GRANT SET USER ON *.* TO 'definer'@'127.0.0.1'; \
         CREATE USER 'proxy'@'127.0.0.1' IDENTIFIED BY 'proxy-password-0'; GRANT PROXY ON ''@'%' TO 'proxy'@'127.0.0.1'; \
         CREATE USER 'pattern'@'127.0.0.1' IDENTIFIED BY 'pattern-password-0'; GRANT INSERT ON `my%`.* TO 'pattern'@'127.0.0.1'; \
         CREATE USER 'columns'@'127.0.0.1' IDENTIFIED BY 'columns-password-0'; GRANT UPDATE (Password) ON mysql.user TO 'columns'@'127.0.0.1'; \
         CREATE ROLE outer_role; CREATE ROLE inner_role; GRANT FILE ON *.* TO inner_role; GRANT inner_role TO outer_role; \
         CREATE USER 'nested'@'127.0.0.1' IDENTIFIED BY 'nested-password-0'; GRANT outer_role TO 'nested'@'127.0.0.1'; \
         CREATE USER 'plain'@'127.0.0.1' IDENTIFIED BY 'plain-password-0'; GRANT SELECT ON dispatch.* TO 'plain'@'127.0.0.1'",
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
    let before = mariadb_accounts(&db).await;
    let cases = [
        ("granter", "granter-password-0", "GRANT OPTION"),
        ("super", "super-password-0", "SUPER"),
        (
            "everything",
            "everything-password-0",
            "ALL PRIVILEGES on *.*",
        ),
        ("via_role", "role-password-0", "through admins"),
        ("root", db.root_password(), "is the master user"),
        ("filer", "filer-password-0", "holds FILE"),
        (
            "definer",
            "definer-password-0",
            "act as another account (SET USER)",
        ),
        ("proxy", "proxy-password-0", "holds PROXY"),
        (
            "pattern",
            "pattern-password-0",
            "write access to the grant tables",
        ),
        (
            "columns",
            "columns-password-0",
            "write access to the grant tables",
        ),
        (
            "nested",
            "nested-password-0",
            "holds FILE (the server's files) through",
        ),
        // What PUBLIC holds, every account holds (granted just before this case).
        (
            "plain",
            "plain-password-0",
            "write access to the grant tables through PUBLIC",
        ),
    ];
    for (user, password, why) in cases {
        if user == "plain" {
            db.sql("GRANT INSERT ON mysql.* TO PUBLIC").await.unwrap();
        }
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
        mariadb_accounts(&db).await,
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

/// An application role that owns its database plants what a master session could resolve: an
/// operator `public.=(oid,int4)` (an exact match that beats pg_catalog's implicit casts even with
/// the default search_path) and, in a second database, a database-level
/// `search_path = evil, pg_catalog` with `evil.=(name,name)`. Alternating rotations (the first,
/// and the second, which checks the existing clone) and a single-user rotation of a privileged
/// role in that database run; the planted functions never run (a sequence, which no rollback
/// undoes, counts their calls) and nobody becomes superuser.
#[tokio::test]
async fn objects_an_application_role_plants_never_run_with_the_masters_rights() {
    let pg = Postgres::start(PgOptions::default()).await.unwrap();
    // One statement per call: CREATE DATABASE cannot run in psql -c's implicit transaction.
    for statement in [
        "CREATE ROLE app LOGIN PASSWORD 'app-password-0'",
        "CREATE DATABASE appdb OWNER app",
        "CREATE ROLE app2 LOGIN PASSWORD 'app2-password-0'",
        "CREATE DATABASE app2db OWNER app2",
        "CREATE ROLE ops LOGIN CREATEROLE PASSWORD 'ops-password-0'",
    ] {
        pg.sql("postgres", statement).await.unwrap();
    }
    // The planted operators: each call bumps a sequence, then tries to make its owner superuser.
    pg.sql_as(
        "app",
        "app-password-0",
        "appdb",
        "CREATE SEQUENCE public.fired; GRANT USAGE, UPDATE ON SEQUENCE public.fired TO PUBLIC; \
         CREATE FUNCTION public.planted_eq(oid, int4) RETURNS boolean LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_catalog.nextval('public.fired'); \
           BEGIN EXECUTE 'ALTER ROLE app SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END; \
           RETURN $1::pg_catalog.int4 OPERATOR(pg_catalog.=) $2; END $$; \
         CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = int4, FUNCTION = public.planted_eq)",
    )
    .await
    .unwrap();
    pg.sql_as(
        "app2",
        "app2-password-0",
        "app2db",
        "CREATE SCHEMA evil; CREATE SEQUENCE evil.fired; \
         GRANT USAGE ON SCHEMA evil TO PUBLIC; GRANT USAGE, UPDATE ON SEQUENCE evil.fired TO PUBLIC; \
         CREATE FUNCTION evil.planted_eq(name, name) RETURNS boolean LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_catalog.nextval('evil.fired'); \
           BEGIN EXECUTE 'ALTER ROLE app2 SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END; \
           RETURN $1::pg_catalog.text OPERATOR(pg_catalog.=) $2::pg_catalog.text; END $$; \
         CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.planted_eq); \
         ALTER DATABASE app2db SET search_path = evil, pg_catalog",
    )
    .await
    .unwrap();
    let fired = || async {
        let first = pg
            .sql("appdb", "SELECT is_called FROM public.fired")
            .await
            .unwrap();
        let second = pg
            .sql("app2db", "SELECT is_called FROM evil.fired")
            .await
            .unwrap();
        (first, second)
    };
    // The planted operators work: a session that resolves them runs them.
    pg.sql_as("app", "app-password-0", "appdb", "SELECT 1::oid = 1::int4")
        .await
        .unwrap();
    assert_eq!(fired().await.0, "t", "the planted operator is resolvable");
    pg.sql(
        "appdb",
        "SELECT pg_catalog.setval('public.fired', 1, false)",
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
    let secret_in = |name: &str, user: &str, password: &str, db: &str, masterarn: Option<&str>| {
        let mut value = pg_secret(&pg, user, password);
        value["dbname"] = json!(db);
        if let Some(arn) = masterarn {
            value["masterarn"] = json!(arn);
        }
        let name = name.to_string();
        let world = &world;
        async move { world.create_secret(&name, &value).await.unwrap() }
    };
    let app = secret_in(
        "des/db/app",
        "app",
        "app-password-0",
        "appdb",
        Some(&master),
    )
    .await;
    let app2 = secret_in(
        "des/db/app2",
        "app2",
        "app2-password-0",
        "app2db",
        Some(&master),
    )
    .await;
    let mut outcomes = Vec::new();
    for secret in [&app, &app2] {
        for rotation in ["first", "second"] {
            let outcome = world.rotate(secret).await.map(|_| ());
            outcomes.push(format!("{secret}, {rotation} rotation: {outcome:?}"));
        }
    }
    // A privileged role's own single-user rotation, in the database whose search_path is
    // planted: refused (whoever writes AWSPENDING would choose its password), and the refusal's
    // own catalog queries, made as that role, resolve nothing planted.
    let ops = secret_in("des/db/ops", "ops", "ops-password-0", "app2db", None).await;
    let token = world.begin_rotation(&ops).await.unwrap();
    assert!(world.step(&ops, &token, "createSecret").await.unwrap().ok);
    let refused = world.step(&ops, &token, "setSecret").await.unwrap();
    assert!(
        !refused.ok && refused.output.contains("CREATEROLE"),
        "{}",
        refused.output
    );

    assert_eq!(
        fired().await,
        ("f".to_string(), "f".to_string()),
        "a planted operator ran in a session of the rotator"
    );
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT string_agg(rolname || '=' || rolsuper, ',' ORDER BY rolname) FROM pg_roles \
             WHERE rolname IN ('app', 'app_clone', 'app2', 'app2_clone', 'ops')"
        )
        .await
        .unwrap(),
        "app=false,app2=false,app2_clone=false,app_clone=false,ops=false"
    );
    // And the rotations themselves are unaffected by what was planted.
    for outcome in &outcomes {
        assert!(outcome.ends_with("Ok(())"), "{outcome}");
    }

    // A user whose clone's name would not fit: a permanent error at createSecret, naming the
    // limit, instead of a retryable failure at every later step.
    let long_user = "u".repeat(58);
    let long = secret_in(
        "des/db/long",
        &long_user,
        "long-password-0",
        "appdb",
        Some(&master),
    )
    .await;
    let token = world.begin_rotation(&long).await.unwrap();
    let created = world.step(&long, &token, "createSecret").await.unwrap();
    assert!(
        !created.ok
            && created.output.contains("Permanent.Refused")
            && created.output.contains("63 bytes"),
        "{}",
        created.output
    );
}

/// `DB_TLS=disable` (plaintext allowed inside the VPC), a master secret that says
/// `sslmode: verify-full`, and an application secret that says `sslmode: disable`: the
/// application's logins may go in plaintext, the master's never does (the server's own log of
/// each connection says which were encrypted).
#[tokio::test]
async fn the_masters_session_keeps_its_own_tls_whatever_the_application_secret_says() {
    let ca = harness::tls::TestCa::create().await.unwrap();
    let pg = Postgres::start(PgOptions {
        tls: Some((ca.server_cert.clone(), ca.server_key.clone())),
        ..PgOptions::default()
    })
    .await
    .unwrap();
    for statement in [
        "CREATE ROLE app LOGIN PASSWORD 'app-password-0'",
        "ALTER SYSTEM SET log_connections = on",
        "SELECT pg_reload_conf()",
    ] {
        pg.sql("postgres", statement).await.unwrap();
    }
    let ca_file = ca.ca_cert.display().to_string();
    let world = RotationWorld::start(&[("DB_TLS", "disable"), ("DB_TLS_CA_FILE", &ca_file)])
        .await
        .unwrap();
    let mut master_value = pg_secret(&pg, SUPERUSER, pg.superuser_password());
    master_value["host"] = json!("localhost");
    master_value["sslmode"] = json!("verify-full");
    let master = world
        .create_secret("des/db/master", &master_value)
        .await
        .unwrap();
    let mut app_value = pg_secret(&pg, "app", "app-password-0");
    app_value["host"] = json!("localhost");
    app_value["sslmode"] = json!("disable");
    app_value["masterarn"] = json!(master);
    let app = world.create_secret("des/db/app", &app_value).await.unwrap();
    world.rotate(&app).await.unwrap();

    let log = pg.server_log();
    let sessions: Vec<&str> = log
        .lines()
        .filter(|line| {
            line.contains("connection authorized")
                && line.contains("application_name=watchkeeper-secret-rotator")
        })
        .collect();
    let masters: Vec<&&str> = sessions
        .iter()
        .filter(|line| line.contains(&format!("user={SUPERUSER} ")))
        .collect();
    assert!(!masters.is_empty(), "the master logged in: {sessions:#?}");
    for line in &masters {
        assert!(
            line.contains("SSL enabled"),
            "a master session without TLS: {line}"
        );
    }
    assert!(
        sessions
            .iter()
            .any(|line| line.contains("user=app") && !line.contains("SSL enabled")),
        "the application's own logins follow its sslmode: {sessions:#?}"
    );
}

/// Two ways a login could "prove" a user it does not belong to, on MariaDB: an anonymous account
/// `''@'127.0.0.1'` matches any user name before `'victim'@'%'` does, so its password "logs in as
/// victim"; and an account named `victim2_clone`, marked as the rotator's clone in a mark table it
/// can write itself. Neither gets the master to reset the victim's password or clone it.
#[tokio::test]
async fn mariadb_logins_that_prove_another_account_are_refused() {
    let db = MariaDb::start(MariaDbOptions::default()).await.unwrap();
    db.sql(
        "CREATE DATABASE dispatch; \
         CREATE USER 'victim'@'%' IDENTIFIED BY 'victim-password-0'; GRANT SELECT ON dispatch.* TO 'victim'@'%'; \
         CREATE USER ''@'127.0.0.1' IDENTIFIED BY 'anonymous-password-0'; \
         CREATE USER 'victim2'@'127.0.0.1' IDENTIFIED BY 'victim2-password-0'; GRANT SELECT ON dispatch.* TO 'victim2'@'127.0.0.1'; \
         CREATE DATABASE watchkeeper; \
         CREATE TABLE watchkeeper.rotator_clones (`user` VARCHAR(128) NOT NULL, `host` VARCHAR(255) NOT NULL, `clone_of` VARCHAR(128) NOT NULL, `created` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (`user`, `host`)); \
         CREATE USER 'victim2_clone'@'127.0.0.1' IDENTIFIED BY 'forger-password-0'; GRANT INSERT ON watchkeeper.* TO 'victim2_clone'@'127.0.0.1'; \
         CREATE USER 'victim3'@'127.0.0.1' IDENTIFIED BY 'victim3-password-0'; GRANT SELECT ON dispatch.* TO 'victim3'@'127.0.0.1'; \
         CREATE ROLE markers; GRANT INSERT ON watchkeeper.* TO markers; \
         CREATE USER 'victim3_clone'@'127.0.0.1' IDENTIFIED BY 'forger3-password-0'; GRANT markers TO 'victim3_clone'@'127.0.0.1'; \
         INSERT INTO watchkeeper.rotator_clones (`user`, `host`, `clone_of`) VALUES ('victim3_clone', '127.0.0.1', 'victim3')",
    )
    .await
    .unwrap();
    // The forger marks itself as the clone.
    db.sql_as(
        "victim2_clone",
        "forger-password-0",
        "INSERT INTO watchkeeper.rotator_clones (`user`, `host`, `clone_of`) VALUES ('victim2_clone', '127.0.0.1', 'victim2')",
    )
    .await
    .unwrap();
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
    let before = mariadb_accounts(&db).await;
    for (name, user, password, why) in [
        (
            "anonymous",
            "victim",
            "anonymous-password-0",
            "does not log in as victim",
        ),
        (
            "forged-mark",
            "victim2_clone",
            "forger-password-0",
            "can write the rotator's mark table",
        ),
        (
            "forged-mark-through-a-role",
            "victim3_clone",
            "forger3-password-0",
            "can write the rotator's mark table",
        ),
    ] {
        let secret = world
            .create_secret(
                &format!("des/mysql/{name}"),
                &json!({"engine": "mariadb", "host": "127.0.0.1", "port": db.port(), "username": user, "password": password, "masterarn": "des/mysql/master"}),
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
    }
    assert_eq!(
        mariadb_accounts(&db).await,
        before,
        "no account was created or changed"
    );
}
