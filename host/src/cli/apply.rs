//! `fvhost apply`: validate a feature repo before anything runs it.

use std::process::ExitCode;

use super::RepoArgs;
use crate::pipeline::ViewPipeline;
use crate::repo::{self, FeatureRepo};
use crate::transform::cache::{ModuleCache, default_dir};
use crate::transform::{Limits, TransformEngine};

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Then have the running host (its admin API) apply the repo: changed views swap at their next batch.
    #[arg(long)]
    pub live: bool,
    #[command(flatten)]
    pub admin: super::admin::AdminArgs,
}

/// Exit code of an invalid repo.
const INVALID: u8 = 2;

pub async fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let root = &args.repo.repo;
    let repo = match repo::load(root) {
        Ok(repo) => repo,
        Err(e) => {
            eprintln!(
                "fvhost apply: the feature repo in {} is invalid:\n{e}",
                root.display()
            );
            return Ok(ExitCode::from(INVALID));
        }
    };
    let engine = TransformEngine::new()?;
    let cache = ModuleCache::new(default_dir());
    let mut errors = Vec::new();
    let mut lines = Vec::new();
    for view in &repo.views {
        let file = view
            .defined_in
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let place = format!(
            "{file}: {} `{}`",
            if view.stream {
                "stream feature view"
            } else {
                "feature view"
            },
            view.name
        );
        let checked = tokio::task::block_in_place(|| {
            let pipeline = ViewPipeline::new(&repo, view, &engine, &cache, &Limits::default())?;
            let probe = pipeline.probe()?;
            Ok::<_, crate::transform::TransformError>((pipeline.version().to_string(), probe))
        });
        match checked {
            Ok((version, probe)) => lines.push(view_line(view, &version, probe)),
            Err(e) => errors.push(format!("{place}: field `transform`: {e}")),
        }
        if let Some(e) = offline_log_error(&repo, view) {
            errors.push(format!("{place}: field `offline`: {e}"));
        }
    }
    if !errors.is_empty() {
        eprintln!(
            "fvhost apply: the feature repo in {} is invalid:\n{}",
            root.display(),
            errors.join("\n")
        );
        return Ok(ExitCode::from(INVALID));
    }
    print_summary(&repo, &lines);
    if args.live {
        return super::admin::apply_live(&args.admin).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Why `run` could not keep `view`'s offline log, if it could not (the
/// very check `run` makes).
fn offline_log_error(
    repo: &crate::repo::FeatureRepo,
    view: &crate::repo::FeatureView,
) -> Option<String> {
    if !view.offline {
        return None;
    }
    let source = repo.source(&view.source)?;
    let schema = crate::transform::ViewSchema::for_view(view, source);
    crate::control::offline_log_target(repo, view, &schema)
        .err()
        .map(|e| format!("{e:#}"))
}

fn view_line(view: &crate::repo::FeatureView, version: &str, probe: Option<usize>) -> String {
    let features: Vec<String> = view
        .features
        .iter()
        .map(|f| format!("{}:{}", f.name, f.dtype))
        .collect();
    let probe = match probe {
        Some(rows) => format!("probe ok ({rows} rows out)"),
        None => "probe skipped (input schema known at read time)".into(),
    };
    let transform = match &view.transform {
        Some(_) => format!("transform {version}"),
        None => format!("no transform (version {version})"),
    };
    let windows = view
        .windowing
        .as_ref()
        .map(|w| {
            format!(
                " | {} aggregations in {} s hops",
                w.aggregations.len(),
                w.hop.as_secs()
            )
        })
        .unwrap_or_default();
    format!(
        "  {} [{}] <- {} | {} | {transform}{windows} | {probe}",
        view.name,
        features.join(", "),
        view.source,
        view.join_keys
            .iter()
            .map(|k| format!("{}:{}", k.name, k.value_type))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn print_summary(repo: &FeatureRepo, views: &[String]) {
    println!("project {} is valid", repo.project());
    let online = &repo.config.online_store;
    // Nodes, sentinels and master only: the options may hold a password.
    let at = crate::online::redis::target_name(online, None);
    println!(
        "online store: {} {} at {at}, entity key v{}",
        online.store_type, online.redis_type, repo.config.entity_key_serialization_version
    );
    println!(
        "{} entities, {} sources, {} feature views",
        repo.entities.len(),
        repo.sources.len(),
        repo.views.len()
    );
    for line in views {
        println!("{line}");
    }
}
