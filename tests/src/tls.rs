//! A throwaway certificate authority and a server certificate for `localhost` / 127.0.0.1, made
//! with the `openssl` command, for TLS tests against the database stand-ins.

use std::path::{Path, PathBuf};

use std::time::Duration;

use tokio::process::Command;

use crate::Result;
use crate::paths::system_tool;
use crate::process::run;

pub struct TestCa {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    /// A CA and a server certificate for `localhost` and 127.0.0.1.
    pub async fn create() -> Result<Self> {
        Self::create_for("DNS:localhost,IP:127.0.0.1").await
    }

    /// A CA and a server certificate whose subjectAltName is `san` (`DNS:db.internal`, ...).
    pub async fn create_for(san: &str) -> Result<Self> {
        let openssl = system_tool(&["openssl"], "openssl")?;
        let dir = tempfile::Builder::new().prefix("wk-ca-").tempdir()?;
        let p = |name: &str| dir.path().join(name);
        let ext = p("server.ext");
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
            ),
        )?;
        let steps: [Vec<&str>; 3] = [
            vec![
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=Watchkeeper Test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
            vec![
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
            vec![
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        ];
        for args in steps {
            let mut command = Command::new(&openssl);
            command.args(&args).current_dir(dir.path());
            run(command, "openssl").await?;
        }
        Ok(Self {
            ca_cert: p("ca.pem"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
            _dir: dir,
        })
    }

    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

/// An HTTPS backend: `openssl s_server -HTTP` on a loopback address, answering `GET /<name>`
/// with the file `<name>` as it is (the files hold whole HTTP answers), under a certificate of
/// [`TestCa`]. It takes one connection at a time: enough for a few probes. Stops when dropped.
pub struct HttpsBackend {
    pub addr: std::net::SocketAddr,
    _server: tokio::process::Child,
    _ca: TestCa,
}

impl HttpsBackend {
    /// Serves `answers` (`(path without the leading /, whole HTTP answer)`) on `ip`.
    pub async fn start(ip: std::net::Ipv4Addr, answers: &[(&str, &str)]) -> Result<Self> {
        use tokio::io::AsyncBufReadExt;
        let ca = TestCa::create_for(&format!("IP:{ip}")).await?;
        for (name, answer) in answers {
            std::fs::write(ca.dir().join(name), answer)?;
        }
        let openssl = system_tool(&["openssl"], "openssl")?;
        let mut server = Command::new(openssl)
            .arg("s_server")
            .arg("-accept")
            .arg(format!("{ip}:0"))
            .arg("-cert")
            .arg(&ca.server_cert)
            .arg("-key")
            .arg(&ca.server_key)
            .arg("-HTTP")
            .current_dir(ca.dir())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        // It says where it listens (`ACCEPT 127.0.0.1:41669`) once it does: the port is the
        // kernel's choice, so nothing else can hold it.
        let stdout = server.stdout.take().ok_or("s_server has no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix("ACCEPT ") {
                    return Ok::<_, std::io::Error>(addr.trim().parse().ok());
                }
            }
            Ok(None)
        })
        .await
        .map_err(|_| "s_server did not start in 20 s")??
        .ok_or("s_server did not say where it listens")?;
        // Keep reading what it prints so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            addr,
            _server: server,
            _ca: ca,
        })
    }
}
