//! `fvhost materialize` and `fvhost materialize-incremental`: the batch
//! history into the online store, through each view's transform.

use crate::pipeline::dead_letter::DeadLetterSink;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::RepoArgs;
use crate::aggregate::RecomputedTiles;
use crate::online::OnlineConnection;
use crate::pipeline::ViewPipeline;
use crate::pipeline::materialize::{
    Progress, TimeRange, ViewPlan, ViewSummary, write_rows, write_windows,
};
use crate::pipeline::materialize_state::MaterializeState;
use crate::repo::{FeatureRepo, FeatureView};
use crate::transform::cache::{ModuleCache, default_dir};
use crate::transform::{Limits, TransformEngine};

#[derive(Debug, clap::Args)]
pub struct MaterializeArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Start of the range, inclusive (RFC 3339, or YYYY-MM-DD[THH:MM:SS] in UTC).
    pub start: String,
    /// End of the range, inclusive.
    pub end: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Args)]
pub struct IncrementalArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// End of the range, inclusive; each view starts just after its last run (else END - ttl).
    pub end: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Only these views (comma-separated); default: every online view.
    #[arg(long, value_delimiter = ',')]
    pub views: Vec<String>,
    /// Print a one-line JSON summary per view instead of text.
    #[arg(long)]
    pub json: bool,
    /// Redis URL of the online store, instead of the repo's connection_string.
    #[arg(long, env = "FVHOST_REDIS_URL")]
    pub redis: Option<String>,
}

pub async fn materialize(args: MaterializeArgs) -> anyhow::Result<ExitCode> {
    let repo = args.repo.load()?;
    let range = TimeRange {
        start_micros: parse_time(&args.start)?,
        end_micros: parse_time(&args.end)?,
    };
    if range.start_micros > range.end_micros {
        bail!("START {} is after END {}", args.start, args.end);
    }
    let views = selected_views(&repo, &args.common.views)?;
    let plans = views.iter().map(|v| (*v, range)).collect();
    run(&repo, plans, &args.common, false).await
}

pub async fn materialize_incremental(args: IncrementalArgs) -> anyhow::Result<ExitCode> {
    let repo = args.repo.load()?;
    let end = parse_time(&args.end)?;
    let state = MaterializeState::load(&repo.root)?;
    let mut plans = Vec::new();
    for view in selected_views(&repo, &args.common.views)? {
        let start = match state.views.get(&view.name) {
            Some(last) => last.end_micros + 1,
            None => view
                .ttl
                .map(|ttl| end - ttl.as_micros() as i64)
                .unwrap_or(i64::MIN / 2),
        };
        if start > end {
            tracing::info!(view = %view.name, "already materialized up to {}", args.end);
            continue;
        }
        plans.push((
            view,
            TimeRange {
                start_micros: start,
                end_micros: end,
            },
        ));
    }
    run(&repo, plans, &args.common, true).await
}

fn selected_views<'a>(
    repo: &'a FeatureRepo,
    names: &[String],
) -> anyhow::Result<Vec<&'a FeatureView>> {
    if names.is_empty() {
        return Ok(repo.views.iter().filter(|v| v.online).collect());
    }
    names
        .iter()
        .map(|n| {
            repo.view(n)
                .with_context(|| format!("no feature view `{n}` in the repo"))
        })
        .collect()
}

async fn run(
    repo: &FeatureRepo,
    plans: Vec<(&FeatureView, TimeRange)>,
    common: &CommonArgs,
    record_state: bool,
) -> anyhow::Result<ExitCode> {
    let engine = TransformEngine::new()?;
    let cache = ModuleCache::new(default_dir());
    let online = OnlineConnection::open(&repo.config.online_store, common.redis.as_deref())
        .await
        .context("connecting to the Redis online store")?;
    let bar = ProgressBar::new(!common.json && std::io::stderr().is_terminal());
    let mut dead_lettered = 0;
    for (view, range) in plans {
        let started = Instant::now();
        let pipeline = ViewPipeline::new(repo, view, &engine, &cache, &Limits::default())
            .with_context(|| format!("view `{}`", view.name))?;
        let plan = ViewPlan::new(repo, pipeline)?;
        let mut summary = ViewSummary {
            view: view.name.clone(),
            start: crate::online::EventTime::from_micros(range.start_micros).to_rfc3339(),
            end: crate::online::EventTime::from_micros(range.end_micros).to_rfc3339(),
            ..ViewSummary::default()
        };
        let dead_letters = DeadLetterSink::for_view(
            repo.project(),
            view,
            &online.redis,
            kafka_bootstrap(repo, view).as_deref(),
        )
        .with_context(|| format!("view `{}`: dead-letter destination", view.name))?;
        let show = |p| bar.show(&view.name, p, started);
        let read = |summary: &mut ViewSummary| {
            tokio::task::block_in_place(|| match plan.pipeline.window {
                Some(_) => plan
                    .recomputed_tiles(range, summary, &show, &dead_letters)
                    .map(Scanned::Windows),
                None => plan
                    .newest_rows(range, summary, &show, &dead_letters)
                    .map(Scanned::Rows),
            })
        };
        let scanned = read(&mut summary);
        summary.read_seconds = started.elapsed().as_secs_f64();
        let scanned = scanned.with_context(|| format!("materializing view `{}`", view.name))?;
        let writing = Instant::now();
        let store = online.store.as_ref();
        match scanned {
            Scanned::Rows(rows) => write_rows(store, &plan, &rows, &mut summary, &show).await?,
            Scanned::Windows((hops, tiles)) => {
                write_windows(store, &plan, hops, tiles, &mut summary, &show).await?
            }
        }
        summary.write_seconds = writing.elapsed().as_secs_f64();
        summary.seconds = started.elapsed().as_secs_f64();
        bar.finish();
        if record_state {
            MaterializeState::record(&repo.root, &view.name, range.end_micros)?;
        }
        dead_lettered += summary.rejected_rows + summary.failed_rows;
        if common.json {
            println!("{}", serde_json::to_string(&summary)?);
        } else {
            println!(
                "{}: {} rows read ({} in range, {}/{} row groups), {} entities, {} keys written, {} older skipped, {} rejected, {} failed, {} unwritable, {:.2} s",
                summary.view,
                summary.scan.rows_read,
                summary.scan.rows_in_range,
                summary.scan.row_groups_read,
                summary.scan.row_groups,
                summary.entities,
                summary.keys_written,
                summary.keys_skipped_older,
                summary.rejected_rows,
                summary.failed_rows,
                summary.unwritable_rows,
                summary.seconds
            );
            if let Some(windows) = &summary.windows {
                println!(
                    "{}: windows recomputed over {} .. {} (whole hops): {} events aggregated, {} older than every window",
                    summary.view,
                    windows.read_start,
                    windows.read_end,
                    windows.events_added,
                    windows.events_expired
                );
            }
        }
    }
    if dead_lettered > 0 {
        eprintln!(
            "{dead_lettered} rows were rejected by or failed in their view's transform and were dead-lettered (see `fvhost dead-letters`); the rest is written"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// What a view's scan kept: its newest row per entity, or (an aggregating
/// view) its recomputed tiles and the hops they replace.
enum Scanned {
    Rows(Vec<crate::online::OnlineRow>),
    Windows((std::ops::RangeInclusive<i64>, RecomputedTiles)),
}

/// The brokers of `view`'s source, when it is a Kafka source (for a Kafka
/// dead-letter destination).
fn kafka_bootstrap(repo: &FeatureRepo, view: &FeatureView) -> Option<String> {
    match &repo.source(&view.source)?.kind {
        crate::repo::SourceKind::Kafka(kafka) => Some(kafka.bootstrap_servers.clone()),
        _ => None,
    }
}

/// Parses RFC 3339, `YYYY-MM-DDTHH:MM:SS[.f]` or `YYYY-MM-DD` (UTC) into microseconds.
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_micros());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .context("midnight")?
            .and_utc()
            .timestamp_micros());
    }
    bail!("`{text}` is not a time (expected RFC 3339 such as 2026-11-26T10:00:00Z, or YYYY-MM-DD)")
}

/// A one-line progress bar on stderr, only on a terminal.
struct ProgressBar {
    enabled: bool,
}

impl ProgressBar {
    fn new(enabled: bool) -> Self {
        Self { enabled }
    }

    fn show(&self, view: &str, p: Progress, started: Instant) {
        if !self.enabled {
            return;
        }
        let elapsed = started.elapsed().max(Duration::from_millis(1));
        let rate = p.rows_read as f64 / elapsed.as_secs_f64();
        let (done, total) = if p.keys_written > 0 {
            (p.keys_written, p.entities.max(1))
        } else {
            (p.rows_read, p.rows_estimate.max(1))
        };
        let fraction = (done as f64 / total as f64).min(1.0);
        let eta = if fraction > 0.0 {
            elapsed.as_secs_f64() * (1.0 - fraction) / fraction
        } else {
            0.0
        };
        let filled = (fraction * 30.0) as usize;
        eprint!(
            "\r{view} [{}{}] {:>3.0}% read {} rows ({:.0}/s), written {} of {} keys, ETA {:.0}s   ",
            "#".repeat(filled),
            " ".repeat(30 - filled),
            fraction * 100.0,
            p.rows_read,
            rate,
            p.keys_written,
            p.entities,
            eta
        );
    }

    fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}
