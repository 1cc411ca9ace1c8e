//! A feature read request resolved against a repo: which views, which join
//! keys, and entity values typed by the entities' declared types.

use super::{
    EchoedColumn, EntityRow, FeatureRef, KeyBuilder, KeyValue, KeyVersion, OnlineResponse,
    OnlineStore, ResponseStyle, get_online_features,
};
use crate::repo::{FeatureRepo, FeatureView, JoinKey};
use crate::types::ScalarType;
use anyhow::{Context, bail};

/// Requested features grouped by view, with the join keys they share.
pub struct OnlineRequest<'a> {
    pub views: Vec<(&'a FeatureView, Vec<String>)>,
    pub join_keys: Vec<JoinKey>,
}

impl<'a> OnlineRequest<'a> {
    /// Resolves `refs`; every view must exist, hold the feature, and share one set of join keys.
    pub fn new(repo: &'a FeatureRepo, refs: &[FeatureRef]) -> anyhow::Result<Self> {
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
            bail!("no feature requested")
        }
        // Views without entities answer every entity row: the join keys are
        // those of the keyed views, which must agree.
        let keyed: Vec<&FeatureView> = views
            .iter()
            .map(|(view, _)| *view)
            .filter(|view| !view.join_keys.is_empty())
            .collect();
        let join_keys = keyed
            .first()
            .map(|view| view.join_keys.clone())
            .unwrap_or_default();
        for view in keyed.iter().skip(1) {
            if view.join_keys != join_keys {
                bail!(
                    "views `{}` and `{}` have different join keys; request them separately",
                    keyed[0].name,
                    view.name
                );
            }
        }
        Ok(Self { views, join_keys })
    }

    /// Reads entity rows given as text values in join-key order; the answer
    /// is Feast's JSON, with `echoed` after the join keys.
    pub async fn read_json(
        &self,
        repo: &FeatureRepo,
        store: &dyn OnlineStore,
        rows: &[Vec<String>],
        echoed: &[EchoedColumn],
        style: ResponseStyle,
    ) -> anyhow::Result<Vec<u8>> {
        let entities = rows
            .iter()
            .map(|values| {
                self.join_keys
                    .iter()
                    .zip(values)
                    .map(|(key, text)| key_value(key, text))
                    .collect::<anyhow::Result<Vec<_>>>()
                    .map(|values| EntityRow { values })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let names: Vec<String> = self.join_keys.iter().map(|k| k.name.clone()).collect();
        let version = repo.config.key_version().unwrap_or(KeyVersion::V3);
        let keys = KeyBuilder::new(version, &names, repo.project());
        let views = &self.views;
        Ok(get_online_features(store, &keys, &names, views, &entities, echoed, style).await?)
    }

    /// [`Self::read_json`], typed.
    pub async fn read(
        &self,
        repo: &FeatureRepo,
        store: &dyn OnlineStore,
        rows: &[Vec<String>],
        style: ResponseStyle,
    ) -> anyhow::Result<OnlineResponse> {
        let json = self.read_json(repo, store, rows, &[], style).await?;
        OnlineResponse::from_json(&json).context("reading back fvhost's own answer")
    }
}

/// `text` as a value of the join key's declared type.
fn key_value<'t>(key: &JoinKey, text: &'t str) -> anyhow::Result<KeyValue<'t>> {
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
