//! The secret-rotator part of the demo: a PostgreSQL password rotated through the four steps,
//! as Secrets Manager drives them, against the throwaway server.

use harness::postgres::Postgres;
use harness::rotation::{self, RotationWorld};
use watchkeeper_shared::secret::Secret;

/// A PostgreSQL password rotated through the four steps, as Secrets Manager drives them.
pub async fn run(pg: &Postgres) -> harness::Result<()> {
    super::heading("secret-rotator");
    pg.sql(
        "postgres",
        "CREATE ROLE dispatch_user LOGIN PASSWORD 'despacho2025'",
    )
    .await?;
    // Plaintext to the local server only because it has no certificate; the default is verify-full.
    let world = RotationWorld::start(&[("DB_TLS", "disable")]).await?;
    let secret = world
        .create_secret(
            "des/rds/dispatch_user",
            &serde_json::json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port(), "username": "dispatch_user", "password": "despacho2025", "dbname": "postgres"}),
        )
        .await?;
    println!(
        "secret des/rds/dispatch_user: PostgreSQL user dispatch_user on {}",
        pg.addr()
    );
    let token = world.begin_rotation(&secret).await?;
    println!("rotation started (every 90 days in infra), version {token}");
    for step in rotation::STEPS {
        let answer = world.step(&secret, &token, step).await?;
        let outcome = answer.json();
        println!(
            "  {step:<13} -> {}",
            outcome["outcome"]
                .as_str()
                .unwrap_or(if answer.ok { "ok" } else { "failed" })
        );
    }
    let current = world.value(&secret, "AWSCURRENT").await?;
    let new_password = current["password"].as_str().unwrap_or_default();
    println!(
        "AWSCURRENT password: {} ({} characters, redacted here)",
        Secret::new(new_password),
        new_password.len()
    );
    println!(
        "new password logs in: {}",
        pg.can_login("dispatch_user", new_password).await
    );
    println!(
        "old password logs in: {}",
        pg.can_login("dispatch_user", "despacho2025").await
    );
    let stored = pg
        .sql(
            "postgres",
            "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'dispatch_user'",
        )
        .await?;
    println!(
        "stored by the server: {stored}... (a SCRAM verifier computed by the function; the cleartext never reached the server)"
    );
    let mut labels: Vec<String> = world
        .labels(&secret)
        .await?
        .into_iter()
        .map(|(v, l)| format!("{} = {}", &v[..8], l.join(",")))
        .collect();
    labels.sort();
    println!("version labels: {}", labels.join("; "));
    Ok(())
}
