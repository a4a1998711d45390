//! The database stand-ins themselves: password authentication is really enforced.

use harness::mariadb::{MariaDb, MariaDbOptions, ROOT};
use harness::postgres::{PgOptions, Postgres, SUPERUSER};

#[tokio::test]
async fn postgres_checks_scram_passwords() {
    let pg = Postgres::start(PgOptions::default()).await.unwrap();
    assert_eq!(
        pg.sql("postgres", "SHOW password_encryption")
            .await
            .unwrap(),
        "scram-sha-256"
    );
    assert!(pg.can_login(SUPERUSER, pg.superuser_password()).await);
    assert!(!pg.can_login(SUPERUSER, "wrong-password").await);
    pg.sql("postgres", "CREATE ROLE app LOGIN PASSWORD 'app-pw-1'")
        .await
        .unwrap();
    let stored = pg
        .sql(
            "postgres",
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'",
        )
        .await
        .unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$"), "{stored}");
    assert!(pg.can_login("app", "app-pw-1").await);
}

#[tokio::test]
async fn mariadb_checks_passwords() {
    let db = MariaDb::start(MariaDbOptions::default()).await.unwrap();
    assert!(db.can_login(ROOT, db.root_password()).await);
    assert!(!db.can_login(ROOT, "wrong-password").await);
    db.sql("CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-pw-1'")
        .await
        .unwrap();
    assert!(db.can_login("app", "app-pw-1").await);
    assert!(!db.can_login("app", "app-pw-2").await);
}
