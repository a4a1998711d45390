//! A built function binary served through the Lambda Runtime API emulator of cargo-lambda
//! (`cargo lambda watch --only-lambda-apis`), invoked with `cargo lambda invoke`: the same runtime
//! protocol (next invocation, response, error) the binary speaks on AWS.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::paths::{cached_tool, free_port, function_binary, workspace_root};
use crate::process::{spawn_logged, wait_for_port};
use crate::{Result, fail, lock};

/// How long one invocation may take before the harness gives up on it.
pub const INVOKE_LIMIT: Duration = Duration::from_secs(90);

pub struct LambdaRuntime {
    port: u16,
    cargo_lambda: PathBuf,
    function_log: PathBuf,
    dir: tempfile::TempDir,
    /// Every invocation's answer or error report, for the secret-leak check.
    answers: std::sync::Mutex<Vec<String>>,
    /// The AWS endpoint it uses, for the secret-leak check when it stops.
    endpoint: Option<String>,
    _watch: Child,
    _function: Child,
}

/// The answer to one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The handler returned `Ok`.
    pub ok: bool,
    /// The handler's response (or the error report when `ok` is false).
    pub output: String,
}

impl Invocation {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.output.trim()).unwrap_or(Value::Null)
    }
}

impl LambdaRuntime {
    /// Starts the runtime API emulator and the function binary `name` with `env` (and nothing else
    /// from this process's environment but PATH and HOME).
    pub async fn start(name: &str, env: &[(String, String)]) -> Result<Self> {
        let binary = function_binary(name)?;
        let cargo_lambda = cached_tool(
            "venv-lambda/bin/cargo-lambda",
            "cargo-lambda (PyPI cargo-lambda)",
        )?;
        let dir = tempfile::tempdir()?;
        let watch_log = dir.path().join("runtime-api.log");
        let function_log = dir.path().join("function.log");

        let port = free_port()?;
        let mut watch = Command::new(&cargo_lambda);
        watch
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(workspace_root());
        let mut watch = spawn_logged(watch, &watch_log)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        wait_for_port(
            addr,
            &mut watch,
            Duration::from_secs(60),
            "cargo lambda watch",
            &watch_log,
        )
        .await?;

        let mut function = Command::new(&binary);
        function.env_clear();
        for key in ["PATH", "HOME"] {
            if let Some(value) = std::env::var_os(key) {
                function.env(key, value);
            }
        }
        function
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_LEVEL", "debug")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let function = spawn_logged(function, &function_log)?;
        Ok(Self {
            port,
            cargo_lambda,
            function_log,
            dir,
            answers: std::sync::Mutex::new(Vec::new()),
            endpoint: crate::leaks::guard::endpoint_of(env),
            _watch: watch,
            _function: function,
        })
    }

    /// The emulator's Function URL endpoint for this function: an HTTP request to it reaches the
    /// function as a Function URL event (payload 2.0), and its answer comes back as HTTP, the way
    /// a client such as curl meets a real Function URL.
    pub fn function_url(&self) -> String {
        // `_`: the function the emulator serves with --only-lambda-apis.
        format!("http://127.0.0.1:{}/lambda-url/_/", self.port)
    }

    /// Invokes the function with a JSON event.
    pub async fn invoke(&self, event: &Value) -> Result<Invocation> {
        if let (Some(endpoint), Some(signature)) = (
            &self.endpoint,
            event["headers"]["x-watchkeeper-signature"].as_str(),
        ) {
            let hex = signature.trim_start_matches("sha256=");
            crate::leaks::guard::secret_used(endpoint, hex);
        }
        let file = self.dir.path().join("event.json");
        std::fs::write(&file, serde_json::to_vec(event)?)?;
        self.invoke_file(&file).await
    }

    /// Invokes the function with an event file (a fixture from `events/`).
    pub async fn invoke_file(&self, event: &Path) -> Result<Invocation> {
        let mut command = Command::new(&self.cargo_lambda);
        command
            .args([
                "lambda",
                "invoke",
                "-A",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
                "--color",
                "never",
            ])
            .arg("--data-file")
            .arg(event)
            .current_dir(workspace_root())
            .kill_on_drop(true);
        let output = match tokio::time::timeout(INVOKE_LIMIT, command.output()).await {
            Ok(output) => output?,
            Err(_) => {
                return fail(format!(
                    "invocation did not finish within {INVOKE_LIMIT:?}; function log:\n{}",
                    self.logs()
                ));
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        lock(&self.answers).push(format!("{stdout}{stderr}"));
        if output.status.success() {
            Ok(Invocation {
                ok: true,
                output: stdout,
            })
        } else {
            // cargo lambda prints the error report boxed and wrapped; unwrap it into one line.
            let report = format!("{stdout}{stderr}")
                .lines()
                .map(|l| l.trim().trim_start_matches(['│', '×']).trim())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            Ok(Invocation {
                ok: false,
                output: report,
            })
        }
    }

    /// Everything the function printed so far (its JSON logs and EMF lines).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.function_log).unwrap_or_default()
    }

    /// Every invocation's answer or error report so far, as printed.
    pub fn answers(&self) -> Vec<String> {
        lock(&self.answers).clone()
    }

    /// The function's log lines that parse as JSON.
    pub fn json_logs(&self) -> Vec<Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for LambdaRuntime {
    fn drop(&mut self) {
        if let Some(endpoint) = &self.endpoint {
            crate::leaks::guard::texts(endpoint, crate::leaks::from_runtime(self));
        }
    }
}
