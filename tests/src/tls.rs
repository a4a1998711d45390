//! A throwaway certificate authority and a server certificate for `localhost` / 127.0.0.1, made
//! with the `openssl` command, for TLS tests against the database stand-ins.

use std::path::{Path, PathBuf};

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
