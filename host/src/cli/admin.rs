//! `fvhost deploy`, `fvhost rollback`, `fvhost status`: the admin API of a
//! running host, from the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The running host's admin API.
    #[arg(long, default_value = "127.0.0.1:6570", env = "FVHOST_ADMIN")]
    pub admin: SocketAddr,
    /// The tenant whose views to act on (hosts run with --config); by
    /// default the token's own tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// A file holding the admin token (a tenant's or the operator's); the
    /// environment variable FVHOST_ADMIN_TOKEN is used otherwise.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

impl AdminArgs {
    /// `/tenants/{tenant}` when a tenant is named, else nothing.
    pub(super) fn tenant_prefix(&self) -> String {
        self.tenant
            .as_deref()
            .map(|t| format!("/tenants/{}", encode(t)))
            .unwrap_or_default()
    }

    /// The token to send, if any: never printed.
    fn token(&self) -> anyhow::Result<Option<String>> {
        if let Some(path) = &self.token_file {
            let text = crate::bounded_file::read_text(
                path,
                crate::bounded_file::MAX_TOKEN_BYTES,
                "a token file",
            )?;
            return Ok(Some(text.trim_end().to_string()));
        }
        Ok(std::env::var("FVHOST_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()))
    }
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The stream feature view to deploy to.
    pub view: String,
    /// The transform module (.wasm) to deploy.
    pub module: PathBuf,
    /// Who deploys, shown in status (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The view to roll back to its previous version.
    pub view: String,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Largest module the CLI reads to upload (the host applies its own, smaller, limits).
const MAX_UPLOAD_BYTES: u64 = 1 << 30;

pub async fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let module = crate::bounded_file::read(&args.module, MAX_UPLOAD_BYTES, "a module")?;
    let by = args
        .by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    let path = format!(
        "{}/views/{}/deploy?by={}",
        args.admin.tenant_prefix(),
        encode(&args.view),
        encode(&by)
    );
    report(request(&args.admin, "POST", &path, &module).await?)
}

pub async fn rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let path = format!(
        "{}/views/{}/rollback",
        args.admin.tenant_prefix(),
        encode(&args.view)
    );
    report(request(&args.admin, "POST", &path, &[]).await?)
}

/// Asks the running host to apply its repo (after `fvhost apply` validated it here).
pub async fn apply_live(admin: &AdminArgs) -> anyhow::Result<ExitCode> {
    let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let path = format!("{}/apply?by={}", admin.tenant_prefix(), encode(&by));
    report(request(admin, "POST", &path, &[]).await?)
}

pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let path = match &args.admin.tenant {
        Some(_) => format!("{}/status", args.admin.tenant_prefix()),
        None => "/status".to_string(),
    };
    report(request(&args.admin, "GET", &path, &[]).await?)
}

/// Prints the answer; a refusal is an error exit with the host's reason.
fn report((status, body): (u16, String)) -> anyhow::Result<ExitCode> {
    if (200..300).contains(&status) {
        let pretty = serde_json::from_str::<serde_json::Value>(&body)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or(body);
        println!("{pretty}");
        return Ok(ExitCode::SUCCESS);
    }
    let reason = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or(body);
    eprintln!("fvhost: the host refused ({status}): {reason}");
    Ok(ExitCode::FAILURE)
}

/// One HTTP/1.1 request to the admin API; returns the status and body.
pub(super) async fn request(
    admin: &AdminArgs,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let address = admin.admin;
    let authorization = admin
        .token()?
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| {
            format!("connecting to the admin API at {address} (is `fvhost run` running?)")
        })?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Content-Type: application/wasm\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP status line")?;
    Ok((status, body.to_string()))
}

/// Percent-encodes a path or query component.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
