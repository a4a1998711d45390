//! A throwaway MariaDB server (Debian's `mariadb-server`): its own data folder, a free loopback
//! port, a root password, removed when dropped. As root, it runs as the `mysql` user.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::Result;
use crate::paths::{free_port, system_tool};
use crate::postgres::is_root;
use crate::process::{run, spawn_logged, wait_for_port};

pub const ROOT: &str = "root";

#[derive(Debug, Clone, Default)]
pub struct MariaDbOptions {
    /// The general query log: every statement the server receives, to prove what did not.
    pub general_log: bool,
    /// Serve TLS with this certificate and key (PEM files); the client tools then use TLS too.
    pub tls: Option<(PathBuf, PathBuf)>,
}

pub struct MariaDb {
    port: u16,
    password: String,
    client: PathBuf,
    dir: tempfile::TempDir,
    tls: bool,
    _server: Child,
}

impl MariaDb {
    pub async fn start(options: MariaDbOptions) -> Result<Self> {
        let server = system_tool(
            &[
                "/usr/sbin/mariadbd",
                "mariadbd",
                "/usr/sbin/mysqld",
                "mysqld",
            ],
            "mariadb-server",
        )?;
        let install = system_tool(
            &[
                "/usr/bin/mariadb-install-db",
                "mariadb-install-db",
                "mysql_install_db",
            ],
            "mariadb-server",
        )?;
        let client = system_tool(&["/usr/bin/mariadb", "mariadb", "mysql"], "mariadb-client")?;
        let root = is_root().await;
        let dir = tempfile::Builder::new().prefix("wk-maria-").tempdir()?;
        let data = dir.path().join("data");
        // A temporary folder of its own: a starting server removes the stale `#sql*` files it
        // finds in its tmpdir, and in a shared /tmp those are another server's live ones (seen:
        // a bootstrap failing with "Could not remove temporary table" while another test's
        // server started).
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp)?;
        let dir_arg = dir.path().display().to_string();
        if root {
            let mut chown = Command::new("chown");
            chown.args(["-R", "mysql:mysql", &dir_arg]);
            run(chown, "chown").await?;
        }
        let mut init = Command::new(&install);
        init.arg("--no-defaults")
            .env("TMPDIR", &tmp)
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if root {
            init.arg("--user=mysql");
        }
        run(init, "mariadb-install-db").await?;

        let port = free_port()?;
        let socket = dir.path().join("mysqld.sock");
        let mut command = Command::new(&server);
        command
            .arg("--no-defaults")
            .env("TMPDIR", &tmp)
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
            ]);
        if options.general_log {
            command.arg("--general-log=1").arg(format!(
                "--general-log-file={}",
                dir.path().join("general.log").display()
            ));
        }
        if let Some((cert, key)) = &options.tls {
            let (cert_copy, key_copy) =
                (dir.path().join("server.crt"), dir.path().join("server.key"));
            std::fs::copy(cert, &cert_copy)?;
            std::fs::copy(key, &key_copy)?;
            if root {
                let mut chown = Command::new("chown");
                chown.args(["mysql:mysql"]).arg(&cert_copy).arg(&key_copy);
                run(chown, "chown").await?;
            }
            command
                .arg(format!("--ssl-cert={}", cert_copy.display()))
                .arg(format!("--ssl-key={}", key_copy.display()));
        }
        if root {
            command.arg("--user=mysql");
        }
        let log = dir.path().join("server.log");
        if root {
            // The log file must be writable by the server's user too.
            std::fs::write(&log, "")?;
            let mut chown = Command::new("chown");
            chown.args(["mysql:mysql", &log.display().to_string()]);
            run(chown, "chown").await?;
        }
        let mut child = spawn_logged(command, &log)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        wait_for_port(addr, &mut child, Duration::from_secs(60), "mariadbd", &log).await?;

        let password = format!("maria-root-{}", std::process::id());
        // The port answering is not proof that this server is up: on a busy machine another
        // process's server can hold the port for a moment. The socket is this server's own, so
        // wait for it to accept, and report the server's log if it died instead.
        let mut attempt = 0;
        loop {
            let mut setup = Command::new(&client);
            setup
                .arg("--no-defaults")
                .arg(format!("--socket={}", socket.display()))
                .args(["-u", "root", "-e"])
                .arg(format!(
                    "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; \
                 ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{password}'; \
                 GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; \
                 ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}';"
                ));
            match run(setup, "mariadb root password").await {
                Ok(_) => break,
                Err(e) if attempt < 40 && e.to_string().contains("Can't connect") => {
                    if let Some(status) = child.try_wait()? {
                        return crate::fail(format!(
                            "mariadbd exited ({status}) before accepting on its socket:\n{}",
                            crate::process::tail(&log)
                        ));
                    }
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            port,
            password,
            client,
            dir,
            tls: options.tls.is_some(),
            _server: child,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn root_password(&self) -> &str {
        &self.password
    }

    pub fn general_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("general.log")).unwrap_or_default()
    }

    /// Runs SQL as root over TCP.
    pub async fn sql(&self, sql: &str) -> Result<String> {
        self.sql_as(ROOT, &self.password.clone(), sql).await
    }

    /// Runs SQL as `user` over TCP with password authentication; fails if the login fails.
    pub async fn sql_as(&self, user: &str, password: &str, sql: &str) -> Result<String> {
        run(self.client_command(user, password, sql), "mariadb client")
            .await
            .map(|out| out.trim().to_string())
    }

    /// Runs SQL as root in a session of its own that lasts as long as the SQL does (hold a lock
    /// with `LOCK TABLES ...; SELECT SLEEP(n)`); the child is killed when dropped.
    pub fn sql_in_background(&self, sql: &str) -> Result<Child> {
        let mut command = self.client_command(ROOT, &self.password, sql);
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        Ok(command.spawn()?)
    }

    fn client_command(&self, user: &str, password: &str, sql: &str) -> Command {
        let mut client = Command::new(&self.client);
        client
            .arg("--no-defaults")
            .args([
                "-h",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
                "--protocol=TCP",
                "-u",
                user,
                "-N",
                "-B",
            ])
            .arg("--connect-timeout=5");
        if self.tls {
            // TLS without verification: the tool only stands in for an application.
            client.arg("--ssl").arg("--disable-ssl-verify-server-cert");
        }
        client.arg("-e").arg(sql).env("MYSQL_PWD", password);
        client
    }

    /// True when `user` can log in with `password`; false when the server refuses the login.
    /// Any other failure (the server down, a TLS mismatch) panics.
    pub async fn can_login(&self, user: &str, password: &str) -> bool {
        match self.sql_as(user, password, "SELECT 1").await {
            Ok(_) => true,
            Err(e) => {
                let shown = e.to_string();
                assert!(
                    shown.contains("Access denied"),
                    "the login of {user} failed for another reason than its password: {shown}"
                );
                false
            }
        }
    }
}
