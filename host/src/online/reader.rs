//! Reading online features back in Feast's response shape.
//!
//! Values match what Feast's SDK returns; a missing entity is reported as
//! `NOT_FOUND` and a stored null as `NULL_VALUE` (Feast 0.67's server says
//! `PRESENT` for both; [`ResponseStyle::feast_statuses`] answers the same).

use serde::Serialize;

use super::entity_key::{KeyBuilder, KeyValue};
use super::murmur3::{feature_field, timestamp_field};
use super::store::{HashRead, OnlineStore, StoreError};
use super::timestamp::{self, EventTime};
use super::value::decode_to_json;
use crate::repo::FeatureView;

/// A `view:feature` reference from a request.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRef {
    pub view: String,
    pub feature: String,
}

impl FeatureRef {
    /// Parses `view:feature`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some((view, feature)) if !view.is_empty() && !feature.is_empty() => Ok(Self {
                view: view.to_string(),
                feature: feature.to_string(),
            }),
            _ => Err(format!(
                "`{text}` is not a feature reference (expected view:feature)"
            )),
        }
    }
}

/// Feast's `GetOnlineFeaturesResponse`, column-wise.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OnlineResponse {
    pub metadata: ResponseMetadata,
    pub results: Vec<FeatureColumn>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResponseMetadata {
    pub feature_names: Vec<String>,
}

/// One requested column across all entities.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FeatureColumn {
    pub values: Vec<serde_json::Value>,
    pub statuses: Vec<&'static str>,
    pub event_timestamps: Vec<String>,
}

/// How an answer marks and names its values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResponseStyle {
    /// Name features `view__feature`.
    pub full_feature_names: bool,
    /// Mark every value `PRESENT`, as Feast 0.67's server does, instead of
    /// `NULL_VALUE` for a stored null and `NOT_FOUND` for a key never written.
    pub feast_statuses: bool,
}

impl ResponseStyle {
    fn status(self, precise: &'static str) -> &'static str {
        match precise {
            "NOT_FOUND" | "NULL_VALUE" if self.feast_statuses => "PRESENT",
            other => other,
        }
    }
}

/// One entity row of a request: join key names and values, in one shared order.
pub struct EntityRow<'a> {
    pub values: Vec<KeyValue<'a>>,
}

/// Reads `features` for `entities` (each with values for `join_keys`), one pipeline in all.
pub async fn get_online_features(
    store: &dyn OnlineStore,
    keys: &KeyBuilder,
    join_keys: &[String],
    views: &[(&FeatureView, Vec<String>)],
    entities: &[EntityRow<'_>],
    style: ResponseStyle,
) -> Result<OnlineResponse, StoreError> {
    let mut reads = Vec::with_capacity(entities.len() * views.len());
    let entityless = keys.entityless_key();
    // The hash fields of each view: the same for every entity.
    let view_fields: Vec<Vec<Vec<u8>>> = views
        .iter()
        .map(|(view, features)| {
            let mut fields: Vec<Vec<u8>> = features
                .iter()
                .map(|feature| feature_field(&view.name, feature).to_vec())
                .collect();
            fields.push(timestamp_field(&view.name));
            fields
        })
        .collect();
    for entity in entities {
        let key = keys.redis_key(&entity.values);
        for ((view, _), fields) in views.iter().zip(&view_fields) {
            // A view without entities has one row, whatever the entity.
            let key = if view.join_keys.is_empty() {
                &entityless
            } else {
                &key
            };
            reads.push(HashRead {
                key: key.clone(),
                fields: fields.clone(),
            });
        }
    }
    let epoch = EventTime::EPOCH.to_rfc3339();
    let replies = store.read(&reads).await?;

    let mut names: Vec<String> = join_keys.to_vec();
    let mut results: Vec<FeatureColumn> = join_keys
        .iter()
        .enumerate()
        .map(|(i, _)| FeatureColumn {
            values: entities.iter().map(|e| key_json(&e.values[i])).collect(),
            statuses: vec!["PRESENT"; entities.len()],
            event_timestamps: vec![epoch.clone(); entities.len()],
        })
        .collect();
    for (view, features) in views {
        for feature in features {
            names.push(if style.full_feature_names {
                format!("{}__{feature}", view.name)
            } else {
                feature.clone()
            });
            results.push(FeatureColumn {
                values: Vec::new(),
                statuses: Vec::new(),
                event_timestamps: Vec::new(),
            });
        }
    }
    let mut reply = replies.into_iter();
    for _ in entities {
        let mut column = join_keys.len();
        for (_, features) in views {
            let fields = reply.next().unwrap_or_default();
            let stored_ts = fields.get(features.len()).cloned().flatten();
            let event_time = stored_ts.as_deref().and_then(|b| timestamp::decode(b).ok());
            let time_text = event_time.map_or_else(|| epoch.clone(), |t| t.to_rfc3339());
            for i in 0..features.len() {
                let raw = fields.get(i).cloned().flatten();
                let (value, status) = match (&event_time, raw) {
                    (None, _) | (_, None) => (serde_json::Value::Null, "NOT_FOUND"),
                    (Some(_), Some(bytes)) => match decode_to_json(&bytes) {
                        Ok(serde_json::Value::Null) => (serde_json::Value::Null, "NULL_VALUE"),
                        Ok(value) => (value, "PRESENT"),
                        Err(_) => (serde_json::Value::Null, "INVALID"),
                    },
                };
                let out = &mut results[column];
                out.values.push(value);
                out.statuses.push(style.status(status));
                out.event_timestamps.push(time_text.clone());
                column += 1;
            }
        }
    }
    Ok(OnlineResponse {
        metadata: ResponseMetadata {
            feature_names: names,
        },
        results,
    })
}

fn key_json(value: &KeyValue<'_>) -> serde_json::Value {
    match value {
        KeyValue::Bytes(b) => serde_json::Value::from(String::from_utf8_lossy(b).into_owned()),
        KeyValue::String(s) => serde_json::Value::from(*s),
        KeyValue::Int32(v) => serde_json::Value::from(*v),
        KeyValue::Int64(v) | KeyValue::UnixTimestamp(v) => serde_json::Value::from(*v),
    }
}
