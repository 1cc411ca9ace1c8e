//! `fvhost get-online-features`: read what the pipeline wrote, as Feast would.

use std::process::ExitCode;

use anyhow::{Context, bail};

use super::RepoArgs;
use crate::online::{
    EntityRow, FeatureRef, KeyBuilder, KeyValue, OnlineResponse, connect, get_online_features,
};
use crate::repo::{self, FeatureRepo, FeatureView, JoinKey};
use crate::types::ScalarType;

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Features to read, as view:feature (comma-separated or repeated).
    #[arg(long = "features", value_delimiter = ',', required = true)]
    pub features: Vec<String>,
    /// One entity row, as join_key=value[,join_key=value] (repeat per entity).
    #[arg(long = "entity", required = true)]
    pub entities: Vec<String>,
    /// Name features view__feature in the response.
    #[arg(long)]
    pub full_feature_names: bool,
    /// Redis URL of the online store, instead of the repo's connection_string.
    #[arg(long, env = "FVHOST_REDIS_URL")]
    pub redis: Option<String>,
}

pub async fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let repo = repo::load(&args.repo.repo).map_err(|e| {
        anyhow::anyhow!(
            "the feature repo in {} is invalid:\n{e}",
            args.repo.repo.display()
        )
    })?;
    let refs = args
        .features
        .iter()
        .map(|f| FeatureRef::parse(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let response = read(
        &repo,
        &refs,
        &args.entities,
        args.full_feature_names,
        args.redis.as_deref(),
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&response)?);
    Ok(ExitCode::SUCCESS)
}

/// Reads `refs` for entity rows written as `key=value[,key=value]`.
pub async fn read(
    repo: &FeatureRepo,
    refs: &[FeatureRef],
    entities: &[String],
    full_feature_names: bool,
    redis_url: Option<&str>,
) -> anyhow::Result<OnlineResponse> {
    let views = group_by_view(repo, refs)?;
    let join_keys = views[0].0.join_keys.clone();
    for (view, _) in &views[1..] {
        if view.join_keys != join_keys {
            bail!(
                "views `{}` and `{}` have different join keys; request them separately",
                views[0].0.name,
                view.name
            );
        }
    }
    let texts = entities
        .iter()
        .map(|e| entity_texts(e, &join_keys))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rows = texts
        .iter()
        .map(|values| {
            join_keys
                .iter()
                .zip(values)
                .map(|(key, text)| key_value(key, text))
                .collect::<anyhow::Result<Vec<_>>>()
                .map(|values| EntityRow { values })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let names: Vec<String> = join_keys.iter().map(|k| k.name.clone()).collect();
    let version = repo
        .config
        .key_version()
        .unwrap_or(crate::online::KeyVersion::V3);
    let keys = KeyBuilder::new(version, &names, repo.project());
    let mut connection = connect(&repo.config.online_store, redis_url)
        .await
        .context("connecting to the Redis online store")?;
    Ok(get_online_features(
        &mut connection,
        &keys,
        &names,
        &views,
        &rows,
        full_feature_names,
    )
    .await?)
}

fn group_by_view<'a>(
    repo: &'a FeatureRepo,
    refs: &[FeatureRef],
) -> anyhow::Result<Vec<(&'a FeatureView, Vec<String>)>> {
    let mut views: Vec<(&FeatureView, Vec<String>)> = Vec::new();
    for r in refs {
        let view = repo.view(&r.view).with_context(|| {
            format!(
                "`{}:{}`: no feature view `{}` in the repo",
                r.view, r.feature, r.view
            )
        })?;
        if !view.features.iter().any(|f| f.name == r.feature) {
            bail!(
                "`{}:{}`: view `{}` has no feature `{}`",
                r.view,
                r.feature,
                r.view,
                r.feature
            );
        }
        match views.iter_mut().find(|(v, _)| v.name == view.name) {
            Some((_, features)) => features.push(r.feature.clone()),
            None => views.push((view, vec![r.feature.clone()])),
        }
    }
    if views.is_empty() {
        bail!("no feature requested");
    }
    Ok(views)
}

/// Splits `driver_id=1001,...` into values in join-key order.
fn entity_texts(text: &str, join_keys: &[JoinKey]) -> anyhow::Result<Vec<String>> {
    let mut values = vec![None; join_keys.len()];
    for pair in text.split(',') {
        let (name, value) = pair
            .split_once('=')
            .with_context(|| format!("entity `{text}`: `{pair}` is not join_key=value"))?;
        let index = join_keys
            .iter()
            .position(|k| k.name == name.trim())
            .with_context(|| {
                format!("entity `{text}`: `{name}` is not a join key of the requested views")
            })?;
        values[index] = Some(value.trim().to_string());
    }
    values
        .into_iter()
        .zip(join_keys)
        .map(|(v, k)| {
            v.with_context(|| format!("entity `{text}`: join key `{}` is missing", k.name))
        })
        .collect()
}

fn key_value<'a>(key: &JoinKey, text: &'a str) -> anyhow::Result<KeyValue<'a>> {
    let bad = |e: std::num::ParseIntError| {
        anyhow::anyhow!(
            "join key `{}`: `{text}` is not a valid {}: {e}",
            key.name,
            key.value_type
        )
    };
    Ok(match key.value_type {
        ScalarType::Int32 => KeyValue::Int32(text.parse().map_err(bad)?),
        ScalarType::Int64 => KeyValue::Int64(text.parse().map_err(bad)?),
        ScalarType::UnixTimestamp => KeyValue::UnixTimestamp(text.parse().map_err(bad)?),
        ScalarType::String => KeyValue::String(text),
        ScalarType::Bytes => KeyValue::Bytes(text.as_bytes()),
        other => bail!(
            "join key `{}` has type {other}, which cannot be a key",
            key.name
        ),
    })
}
