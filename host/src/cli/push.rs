//! `fvhost push`: rows from a file into the views over a push source.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::RepoArgs;
use crate::online::OnlineConnection;
use crate::pipeline::push::{PushFile, PushTarget, PushTo};
use crate::transform::cache::{ModuleCache, default_dir};
use crate::transform::{Limits, TransformEngine};

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The push source to push to.
    #[arg(long)]
    pub source: String,
    /// Rows to push: .parquet, .csv (with a header) or .jsonl.
    pub file: PathBuf,
    /// Where the rows go.
    #[arg(long, value_enum, default_value = "online")]
    pub to: PushTo,
    /// Redis URL of the online store, instead of the repo's connection_string.
    #[arg(long, env = "FVHOST_REDIS_URL")]
    pub redis: Option<String>,
}

pub async fn push(args: PushArgs) -> anyhow::Result<ExitCode> {
    let repo = args.repo.load()?;
    let engine = TransformEngine::new()?;
    let cache = ModuleCache::new(default_dir());
    let target = PushTarget::new(&repo, &args.source, &engine, &cache, &Limits::default())?;
    let file = PushFile::open(&args.file)?;
    let online = match args.to {
        PushTo::Offline => None,
        _ => Some(
            OnlineConnection::open(&repo.config.online_store, args.redis.as_deref())
                .await
                .context("connecting to the Redis online store")?,
        ),
    };
    let summary = target
        .push_file(&repo, &file, args.to, online.as_ref())
        .await?;
    println!("{}", serde_json::to_string(&summary)?);
    let dead_lettered = summary.rejected_rows + summary.failed_rows;
    if dead_lettered > 0 {
        eprintln!(
            "{dead_lettered} rows were rejected by or failed in a view's transform and were dead-lettered (see `fvhost dead-letters`); the rest is written"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
