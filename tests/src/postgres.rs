//! A throwaway PostgreSQL 15 server (Debian's `postgresql-15`): its own data folder, a free
//! loopback port, SCRAM-SHA-256 password authentication (so passwords are really checked), removed
//! when dropped. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::paths::{free_port, system_tool};
use crate::process::{run, tail};
use crate::{Result, fail};

const BIN: &str = "/usr/lib/postgresql/15/bin";
pub const SUPERUSER: &str = "postgres";

/// Server settings a test may want.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// `log_statement = 'all'`: every statement lands in the server log, to prove what did not.
    pub log_statements: bool,
    /// Serve TLS with this certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
}

pub struct Postgres {
    settings: String,
    port: u16,
    password: String,
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    psql: PathBuf,
    run_as: Option<&'static str>,
}

impl Postgres {
    pub async fn start(options: PgOptions) -> Result<Self> {
        let initdb = system_tool(&[&format!("{BIN}/initdb"), "initdb"], "postgresql-15")?;
        let pg_ctl = system_tool(&[&format!("{BIN}/pg_ctl"), "pg_ctl"], "postgresql-15")?;
        let psql = system_tool(&["psql"], "postgresql-client-15")?;
        let run_as = if is_root().await {
            Some("postgres")
        } else {
            None
        };
        let dir = tempfile::Builder::new().prefix("wk-pg-").tempdir()?;
        let password = format!("pg-super-{}", std::process::id());
        std::fs::write(dir.path().join("pwfile"), &password)?;
        if let Some(user) = run_as {
            run(
                command(
                    &["chown", "-R", user, &dir.path().display().to_string()],
                    None,
                ),
                "chown",
            )
            .await?;
        }
        let data = dir.path().join("data");
        let data_arg = data.display().to_string();
        let pwfile = dir.path().join("pwfile").display().to_string();
        run(
            command(
                &[
                    &initdb.display().to_string(),
                    "-D",
                    &data_arg,
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    "--pwfile",
                    &pwfile,
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                run_as,
            ),
            "initdb",
        )
        .await?;

        let port = free_port()?;
        let mut settings = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c password_encryption=scram-sha-256 -c fsync=off",
            dir.path().display()
        );
        if options.log_statements {
            settings.push_str(" -c log_statement=all");
        }
        if let Some((cert, key)) = &options.tls {
            for (file, name) in [(cert, "server.crt"), (key, "server.key")] {
                std::fs::copy(file, dir.path().join(name))?;
            }
            let key_path = dir.path().join("server.key");
            if let Some(user) = run_as {
                run(
                    command(
                        &[
                            "chown",
                            user,
                            &key_path.display().to_string(),
                            &dir.path().join("server.crt").display().to_string(),
                        ],
                        None,
                    ),
                    "chown",
                )
                .await?;
            }
            run(
                command(&["chmod", "600", &key_path.display().to_string()], None),
                "chmod",
            )
            .await?;
            settings.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                dir.path().join("server.crt").display(),
                key_path.display()
            ));
        }
        let log = dir.path().join("server.log").display().to_string();
        let started = run(
            command(
                &[
                    &pg_ctl.display().to_string(),
                    "-D",
                    &data_arg,
                    "-l",
                    &log,
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    &settings,
                    "start",
                ],
                run_as,
            ),
            "pg_ctl start",
        )
        .await;
        if let Err(e) = started {
            return fail(format!("{e}\nserver log:\n{}", tail(Path::new(&log))));
        }
        Ok(Self {
            settings,
            port,
            password,
            dir,
            pg_ctl,
            psql,
            run_as,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (fast shutdown), as a database outage.
    pub async fn stop(&self) -> Result<()> {
        let data = self.dir.path().join("data").display().to_string();
        run(
            command(
                &[
                    &self.pg_ctl.display().to_string(),
                    "-D",
                    &data,
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
                self.run_as,
            ),
            "pg_ctl stop",
        )
        .await
        .map(|_| ())
    }

    /// Starts the server again after [`Postgres::stop`], same port and settings.
    pub async fn start_again(&self) -> Result<()> {
        let data = self.dir.path().join("data").display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        run(
            command(
                &[
                    &self.pg_ctl.display().to_string(),
                    "-D",
                    &data,
                    "-l",
                    &log,
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    &self.settings,
                    "start",
                ],
                self.run_as,
            ),
            "pg_ctl start",
        )
        .await
        .map(|_| ())
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn superuser_password(&self) -> &str {
        &self.password
    }

    /// The server's log (statements too, with `log_statements`).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs SQL as the superuser over TCP with password authentication.
    pub async fn sql(&self, database: &str, sql: &str) -> Result<String> {
        self.sql_as(SUPERUSER, &self.password, database, sql).await
    }

    /// Runs SQL as `user` with `password` over TCP; fails if the login fails.
    pub async fn sql_as(
        &self,
        user: &str,
        password: &str,
        database: &str,
        sql: &str,
    ) -> Result<String> {
        let mut psql = Command::new(&self.psql);
        psql.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            user,
            "-d",
            database,
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .env("PGSSLMODE", "prefer");
        run(psql, "psql").await.map(|out| out.trim().to_string())
    }

    /// Takes `LOCK TABLE <table> IN <mode> MODE` as the superuser in a session of its own, and
    /// returns once the server says the lock is granted. The lock is held until
    /// [`HeldLock::release`]: a test that needs a statement to meet the lock waits for it, not for
    /// a guessed time.
    pub async fn hold_lock(&self, table: &str, mode: &str) -> Result<HeldLock<'_>> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("wk_lock_holder_{}", NEXT.fetch_add(1, Ordering::SeqCst));
        let mut psql = Command::new(&self.psql);
        psql.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            SUPERUSER,
        ])
        .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-X"])
        .args([
            "-c",
            &format!("BEGIN; LOCK TABLE {table} IN {mode} MODE; SELECT pg_sleep(3600)"),
        ])
        .env("PGPASSWORD", &self.password)
        .env("PGAPPNAME", &name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
        let mut child = psql.spawn()?;
        let granted = format!(
            "SELECT count(*) FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a \
             ON a.pid = l.pid WHERE a.application_name = '{name}' \
             AND l.relation = '{table}'::regclass AND l.granted"
        );
        let start = std::time::Instant::now();
        while self.sql("postgres", &granted).await? != "1" {
            if let Some(status) = child.try_wait()? {
                return fail(format!("the session locking {table} exited ({status})"));
            }
            if start.elapsed() > std::time::Duration::from_secs(60) {
                return fail(format!("{table} was not locked within 60 s"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(HeldLock {
            pg: self,
            name,
            child,
        })
    }

    /// True when `user` can log in with `password`; false when the server refuses the login.
    /// Any other failure (the server down, a TLS mismatch) panics: "cannot log in" must mean the
    /// password was refused, not that nothing answered.
    pub async fn can_login(&self, user: &str, password: &str) -> bool {
        match self.sql_as(user, password, "postgres", "SELECT 1").await {
            Ok(_) => true,
            Err(e) => {
                let shown = e.to_string();
                let refused = [
                    "password authentication failed",
                    "does not exist",
                    "is not permitted to log in",
                    "no pg_hba.conf entry",
                ];
                assert!(
                    refused.iter().any(|r| shown.contains(r)),
                    "the login of {user} failed for another reason than its password: {shown}"
                );
                false
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let pg_ctl = self.pg_ctl.display().to_string();
        let args = [
            pg_ctl.as_str(),
            "-D",
            data.as_str(),
            "-m",
            "immediate",
            "stop",
        ];
        let mut stop = match self.run_as {
            Some(user) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", user, "--"]).args(args);
                c
            }
            None => {
                let mut c = std::process::Command::new(args[0]);
                c.args(&args[1..]);
                c
            }
        };
        let _ = stop
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn command(args: &[&str], run_as: Option<&str>) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).args(args);
            c
        }
        None => {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        }
    }
}

/// A loopback listener that accepts connections and never answers: a database that hangs after
/// the TCP handshake. Connections are held until the returned task is dropped with the runtime.
pub async fn silent_server() -> Result<(u16, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok((port, task))
}

pub(crate) async fn is_root() -> bool {
    match Command::new("id").arg("-u").output().await {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim() == "0",
        Err(_) => false,
    }
}

/// A table lock held by a session of its own (see [`Postgres::hold_lock`]).
pub struct HeldLock<'a> {
    pg: &'a Postgres,
    name: String,
    child: tokio::process::Child,
}

impl HeldLock<'_> {
    /// Ends the holding session (its transaction rolls back, the lock goes) and waits for it.
    pub async fn release(mut self) -> Result<()> {
        self.pg
            .sql(
                "postgres",
                &format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
                     WHERE application_name = '{}'",
                    self.name
                ),
            )
            .await?;
        self.child.wait().await?;
        Ok(())
    }
}
