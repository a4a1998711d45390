//! A real `terraform init → apply → plan → destroy` of `infra/` against the emulator.
//!
//! The machine image ships Terraform and a filesystem mirror of the AWS provider (no registry):
//! [`Terraform::find`] finds both, or says what is missing so the test can skip loudly. A
//! [`Deployment`] is a scratch copy of `infra/` with the test-only files of `tests/infra-apply/`
//! added (each line there says why), and without `modules/deploy-notifier/function_url_v6.tf`,
//! whose one argument (`invoked_via_function_url`) exists from provider 6.29 only, where the
//! mirror holds 5.100.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::Command;

use crate::paths::workspace_root;
use crate::process::tail;
use crate::{Result, fail};

/// Where machine images of this kind keep the provider mirror (`find / -name
/// 'terraform-provider-aws*'`); `WATCHKEEPER_TF_MIRROR` names another.
const MIRRORS: [&str; 2] = ["/opt/tf-plugins", "/usr/share/terraform/plugins"];

/// The file left out of the copy (see the module's documentation).
const PROVIDER_6_ONLY: &str = "modules/deploy-notifier/function_url_v6.tf";

/// The Terraform binary and the provider mirror.
#[derive(Debug, Clone)]
pub struct Terraform {
    pub binary: PathBuf,
    pub mirror: PathBuf,
}

impl Terraform {
    /// Terraform on `PATH` and a mirror holding `hashicorp/aws`, or why not.
    pub fn find() -> std::result::Result<Self, String> {
        let binary = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .map(|dir| dir.join("terraform"))
            .find(|path| path.is_file())
            .ok_or("no `terraform` on PATH")?;
        let candidates: Vec<PathBuf> = std::env::var_os("WATCHKEEPER_TF_MIRROR")
            .map(|m| vec![PathBuf::from(m)])
            .unwrap_or_else(|| MIRRORS.iter().map(PathBuf::from).collect());
        let mirror = candidates
            .into_iter()
            .find(|dir| dir.join("registry.terraform.io/hashicorp/aws").is_dir())
            .ok_or("no filesystem mirror of hashicorp/aws (looked in /opt/tf-plugins, /usr/share/terraform/plugins and WATCHKEEPER_TF_MIRROR)")?;
        Ok(Self { binary, mirror })
    }
}

/// One scratch copy of `infra/`, applied against one emulator.
pub struct Deployment {
    terraform: Terraform,
    dir: tempfile::TempDir,
    log: PathBuf,
    var_file: PathBuf,
}

/// How long each command may take (an apply is about 90 s here).
const COMMAND_LIMIT: Duration = Duration::from_secs(600);

impl Deployment {
    /// Copies `infra/`, adds the test-only files with `endpoint` filled in, writes `tfvars`
    /// (HCL), and runs `terraform init`.
    pub async fn init(terraform: &Terraform, endpoint: &str, tfvars: &str) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("wk-tf-").tempdir()?;
        let infra = dir.path().join("infra");
        copy_tree(&workspace_root().join("infra"), &infra)?;
        std::fs::remove_file(infra.join(PROVIDER_6_ONLY))?;
        let state = dir.path().join("terraform.tfstate");
        let overrides = workspace_root().join("tests/infra-apply");
        for file in files_under(&overrides)? {
            let relative = file.strip_prefix(&overrides)?;
            let text = std::fs::read_to_string(&file)?
                .replace("@ENDPOINT@", endpoint)
                .replace("@STATE@", &state.display().to_string());
            let target = infra.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(target, text)?;
        }
        std::fs::write(
            dir.path().join("cli.tfrc"),
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n}}\n",
                terraform.mirror.display()
            ),
        )?;
        let var_file = dir.path().join("test.tfvars");
        std::fs::write(
            &var_file,
            tfvars.replace("@DIR@", &dir.path().display().to_string()),
        )?;
        let deployment = Self {
            terraform: terraform.clone(),
            log: dir.path().join("terraform.log"),
            dir,
            var_file,
        };
        deployment
            .run(&["init", "-input=false", "-no-color"])
            .await?;
        Ok(deployment)
    }

    /// The scratch folder (artifacts and zips can be put there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub async fn apply(&self) -> Result<Duration> {
        let var_file = format!("-var-file={}", self.var_file.display());
        let started = Instant::now();
        self.run(&[
            "apply",
            "-input=false",
            "-auto-approve",
            "-no-color",
            &var_file,
        ])
        .await?;
        Ok(started.elapsed())
    }

    /// `plan -detailed-exitcode`: `Ok(None)` when there is nothing to change, else the plan.
    pub async fn plan_changes(&self) -> Result<Option<String>> {
        let var_file = format!("-var-file={}", self.var_file.display());
        let output = self
            .command(&[
                "plan",
                "-input=false",
                "-no-color",
                "-detailed-exitcode",
                &var_file,
            ])
            .output()
            .await?;
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        match output.status.code() {
            Some(0) => Ok(None),
            Some(2) => Ok(Some(text)),
            _ => fail(format!(
                "terraform plan failed:\n{text}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )),
        }
    }

    pub async fn outputs(&self) -> Result<Value> {
        let output = self
            .command(&["output", "-json", "-no-color"])
            .output()
            .await?;
        Ok(serde_json::from_slice(&output.stdout)?)
    }

    pub async fn destroy(&self) -> Result<()> {
        let var_file = format!("-var-file={}", self.var_file.display());
        self.run(&[
            "destroy",
            "-input=false",
            "-auto-approve",
            "-no-color",
            &var_file,
        ])
        .await
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.terraform.binary);
        command
            .args(args)
            .current_dir(self.dir.path().join("infra"))
            .env("TF_CLI_CONFIG_FILE", self.dir.path().join("cli.tfrc"))
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            // Nothing from the environment may point the provider at a real account.
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs `terraform <args>`, appending its output to the log; fails with the log's tail.
    async fn run(&self, args: &[&str]) -> Result<()> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = self.command(args);
        command
            .stdout(std::process::Stdio::from(out.try_clone()?))
            .stderr(std::process::Stdio::from(out));
        let status = tokio::time::timeout(COMMAND_LIMIT, command.status())
            .await
            .map_err(|_| format!("terraform {} took over {COMMAND_LIMIT:?}", args[0]))??;
        if !status.success() {
            return fail(format!(
                "terraform {} failed ({status}):\n{}",
                args.join(" "),
                tail(&self.log)
            ));
        }
        Ok(())
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(files_under(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

/// Copies `from` to `to`, leaving out Terraform's working files and local settings.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if name_text.starts_with(".terraform")
            || name_text.ends_with(".tfstate")
            || name_text.ends_with(".tfvars")
            || name_text == "backend.hcl"
            || name_text == "rds-ca"
        {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name))?;
        } else {
            std::fs::copy(&path, to.join(&name))?;
        }
    }
    Ok(())
}

/// A zip holding `files` (`(name in the zip, content)`), made with Python's zipfile (the
/// harness's tools are Python's too): the placeholder artifacts Terraform uploads.
pub async fn zip(path: &Path, files: &[(&str, &str)]) -> Result<()> {
    let work = tempfile::tempdir()?;
    for (name, content) in files {
        let file = work.path().join(name);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(file, content)?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut command = Command::new("python3");
    command
        .args(["-m", "zipfile", "-c"])
        .arg(path)
        .args(files.iter().map(|(name, _)| *name))
        .current_dir(work.path());
    crate::process::run(command, "python3 -m zipfile")
        .await
        .map(|_| ())
}

/// Credentials of a role, from the emulator's STS `AssumeRole`.
#[derive(Debug, Clone)]
pub struct RoleCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl RoleCredentials {
    /// The environment a function process uses them through.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                self.secret_access_key.clone(),
            ),
            ("AWS_SESSION_TOKEN".into(), self.session_token.clone()),
        ]
    }
}

/// Reading back what the apply made, over the emulator's plain HTTP APIs (with IAM
/// enforcement off: the emulator routes on the credential scope and does not check signatures
/// then), which keeps the IAM, STS and Lambda SDKs out of the build.
pub struct Readback<'a> {
    moto: &'a crate::moto::Moto,
    http: reqwest::Client,
}

impl<'a> Readback<'a> {
    pub fn new(moto: &'a crate::moto::Moto) -> Self {
        watchkeeper_shared::tls::install();
        Self {
            moto,
            http: reqwest::Client::new(),
        }
    }

    fn auth(service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/{}/{service}/aws4_request, SignedHeaders=host, Signature=0",
            crate::moto::REGION
        )
    }

    /// A query-protocol call (IAM, STS): the XML answer.
    async fn query(&self, service: &str, form: &str) -> Result<String> {
        let answer = self
            .http
            .post(format!("{}/", self.moto.endpoint()))
            .header("authorization", Self::auth(service))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string())
            .send()
            .await?;
        let status = answer.status();
        let text = answer.text().await?;
        if !status.is_success() {
            return fail(format!("{service} {form}: {status}: {text}"));
        }
        Ok(text)
    }

    /// `lambda:GetFunctionConfiguration` of `name`: its role, environment, ...
    pub async fn function_configuration(&self, name: &str) -> Result<Value> {
        let answer = self
            .http
            .get(format!(
                "{}/2015-03-31/functions/{name}/configuration",
                self.moto.endpoint()
            ))
            .header("authorization", Self::auth("lambda"))
            .send()
            .await?;
        let status = answer.status();
        let text = answer.text().await?;
        if !status.is_success() {
            return fail(format!("GetFunctionConfiguration {name}: {status}: {text}"));
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// STS `AssumeRole` of `role_arn`.
    pub async fn assume_role(&self, role_arn: &str) -> Result<RoleCredentials> {
        use watchkeeper_shared::notify::percent_encode;
        let xml = self
            .query(
                "sts",
                &format!(
                    "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=watchkeeper-test",
                    percent_encode(role_arn)
                ),
            )
            .await?;
        let field = |name: &str| {
            xml_values(&xml, name)
                .into_iter()
                .next()
                .ok_or_else(|| format!("AssumeRole answered no {name}: {xml}"))
        };
        Ok(RoleCredentials {
            access_key_id: field("AccessKeyId")?,
            secret_access_key: field("SecretAccessKey")?,
            session_token: field("SessionToken")?,
        })
    }

    /// Every policy document of role `name`: its inline policies and the managed ones attached.
    pub async fn role_policies(&self, name: &str) -> Result<Vec<Value>> {
        use watchkeeper_shared::notify::percent_encode;
        let mut documents = Vec::new();
        let role = percent_encode(name);
        let names = self
            .query(
                "iam",
                &format!("Action=ListRolePolicies&Version=2010-05-08&RoleName={role}"),
            )
            .await?;
        for policy in xml_values(&names, "member") {
            let xml = self
                .query(
                    "iam",
                    &format!(
                        "Action=GetRolePolicy&Version=2010-05-08&RoleName={role}&PolicyName={}",
                        percent_encode(&policy)
                    ),
                )
                .await?;
            documents.push(policy_document(&xml, "PolicyDocument")?);
        }
        let attached = self
            .query(
                "iam",
                &format!("Action=ListAttachedRolePolicies&Version=2010-05-08&RoleName={role}"),
            )
            .await?;
        for arn in xml_values(&attached, "PolicyArn") {
            let arn = percent_encode(&arn);
            let policy = self
                .query(
                    "iam",
                    &format!("Action=GetPolicy&Version=2010-05-08&PolicyArn={arn}"),
                )
                .await?;
            let version = xml_values(&policy, "DefaultVersionId")
                .into_iter()
                .next()
                .ok_or("GetPolicy answered no DefaultVersionId")?;
            let xml = self
                .query(
                    "iam",
                    &format!(
                        "Action=GetPolicyVersion&Version=2010-05-08&PolicyArn={arn}&VersionId={version}"
                    ),
                )
                .await?;
            documents.push(policy_document(&xml, "Document")?);
        }
        Ok(documents)
    }
}

/// The text of every `<tag>...</tag>` in `xml`, entities decoded.
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut values = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        values.push(
            after[..end]
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    values
}

/// A policy document from an IAM answer: URL-encoded JSON, as IAM sends it (or plain JSON).
fn policy_document(xml: &str, tag: &str) -> Result<Value> {
    let raw = xml_values(xml, tag)
        .into_iter()
        .next()
        .ok_or_else(|| format!("no {tag} in {xml}"))?;
    let text = if raw.trim_start().starts_with('{') {
        raw
    } else {
        percent_decode(&raw)
    };
    Ok(serde_json::from_str(&text)?)
}

/// `%XX` decoded (and `+` as a space, as in a form).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).to_string()
}
