//! `fvhost get-online-features`: read what the pipeline wrote, as Feast would.

use crate::online::ResponseStyle;
use std::process::ExitCode;

use anyhow::Context;

use super::RepoArgs;
use crate::online::request::OnlineRequest;
use crate::online::{FeatureRef, OnlineConnection, OnlineResponse};
use crate::repo::{FeatureRepo, JoinKey};

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Features to read, as view:feature (comma-separated or repeated).
    #[arg(
        long = "features",
        value_delimiter = ',',
        required_unless_present = "feature_service"
    )]
    pub features: Vec<String>,
    /// Read the features of this feature service instead.
    #[arg(long, conflicts_with = "features")]
    pub feature_service: Option<String>,
    /// One entity row, as join_key=value[,join_key=value] (repeat per entity);
    /// none for views without entities (one row).
    #[arg(long = "entity")]
    pub entities: Vec<String>,
    /// Name features view__feature in the response.
    #[arg(long)]
    pub full_feature_names: bool,
    /// Mark every value PRESENT, as Feast 0.67 does, instead of NULL_VALUE
    /// (a stored null) and NOT_FOUND (a key never written).
    #[arg(long)]
    pub feast_statuses: bool,
    /// Redis URL of the online store, instead of the repo's connection_string.
    #[arg(long, env = "FVHOST_REDIS_URL")]
    pub redis: Option<String>,
}

pub async fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let repo = args.repo.load()?;
    let features = match &args.feature_service {
        Some(service) => repo
            .service_features(service)
            .ok_or_else(|| anyhow::anyhow!("no feature service `{service}` in the repo"))?,
        None => args.features.clone(),
    };
    let refs = features
        .iter()
        .map(|f| FeatureRef::parse(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let response = read(
        &repo,
        &refs,
        &args.entities,
        ResponseStyle {
            full_feature_names: args.full_feature_names,
            feast_statuses: args.feast_statuses,
        },
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
    style: ResponseStyle,
    redis_url: Option<&str>,
) -> anyhow::Result<OnlineResponse> {
    let request = OnlineRequest::new(repo, refs)?;
    let rows = match (entities.is_empty(), request.join_keys.is_empty()) {
        // Views without entities only: their one row.
        (true, true) => vec![Vec::new()],
        (true, false) => anyhow::bail!(
            "give an --entity row for the join keys {}",
            request
                .join_keys
                .iter()
                .map(|k| format!("`{}`", k.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (false, _) => entities
            .iter()
            .map(|e| entity_texts(e, &request.join_keys))
            .collect::<anyhow::Result<Vec<_>>>()?,
    };
    let online = OnlineConnection::open(&repo.config.online_store, redis_url)
        .await
        .context("connecting to the Redis online store")?;
    request
        .read(repo, online.store.as_ref(), &rows, style)
        .await
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
