//! The YAML definition objects as written in a feature repo, before validation.
//!
//! Field names are Feast's (`join_keys`, `timestamp_field`, `batch_source`,
//! `watermark_delay_threshold`, ...). Unknown fields are errors, so a typo
//! never silently drops a setting.
#![allow(
    dead_code,
    reason = "description, owner, tags and class_path are Feast metadata: accepted so one repo serves Feast and fvhost, not used by fvhost yet"
)]

use std::collections::BTreeMap;

use serde::Deserialize;

/// One definitions file: any `*.yaml` beside `feature_store.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionsFile {
    #[serde(default)]
    pub entities: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub sources: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub feature_views: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub stream_feature_views: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub feature_services: Vec<serde_yaml::Value>,
}

/// Feast's `FeatureService`: a named set of features, by view.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeatureService {
    pub name: String,
    pub features: Vec<RawServiceEntry>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// One entry of a feature service: a view (all its features), or a view
/// and some of its features (Feast's `view[["a", "b"]]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawServiceEntry {
    View(String),
    Projection { view: String, features: Vec<String> },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntity {
    pub name: String,
    #[serde(default)]
    pub join_keys: Option<Vec<String>>,
    pub value_type: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Fields every source kind shares.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileSource {
    pub name: String,
    pub path: String,
    pub timestamp_field: String,
    #[serde(default)]
    pub created_timestamp_column: Option<String>,
    #[serde(default)]
    pub field_mapping: BTreeMap<String, String>,
    /// fvhost: how far ahead of the host's clock an event time may be.
    #[serde(default)]
    pub max_future_skew: Option<serde_yaml::Value>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaSource {
    pub name: String,
    pub kafka_bootstrap_servers: String,
    pub topic: String,
    pub timestamp_field: String,
    #[serde(default)]
    pub created_timestamp_column: Option<String>,
    #[serde(default)]
    pub field_mapping: BTreeMap<String, String>,
    pub batch_source: String,
    pub message_format: RawMessageFormat,
    #[serde(default)]
    pub watermark_delay_threshold: Option<serde_yaml::Value>,
    /// fvhost: how far ahead of the host's clock an event time may be.
    #[serde(default)]
    pub max_future_skew: Option<serde_yaml::Value>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPushSource {
    pub name: String,
    pub batch_source: String,
    /// fvhost: how far ahead of the host's clock an event time may be.
    #[serde(default)]
    pub max_future_skew: Option<serde_yaml::Value>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `message_format:` of a Kafka source; Feast's `JsonFormat`, `AvroFormat`, `ProtoFormat`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMessageFormat {
    #[serde(rename = "type")]
    pub format_type: String,
    #[serde(default)]
    pub schema_json: Option<String>,
    #[serde(default)]
    pub class_path: Option<String>,
}

/// A feature view or stream feature view.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeatureView {
    pub name: String,
    #[serde(default)]
    pub entities: Vec<String>,
    pub schema: Vec<RawField>,
    #[serde(default)]
    pub ttl: Option<serde_yaml::Value>,
    #[serde(default = "yes")]
    pub online: bool,
    #[serde(default)]
    pub offline: bool,
    pub source: String,
    #[serde(default)]
    pub transform: Option<RawTransform>,
    #[serde(default)]
    pub dead_letter: Option<RawDeadLetter>,
    /// Windowed aggregations (stream feature views), Feast's fields.
    #[serde(default)]
    pub aggregations: Vec<RawAggregation>,
    /// Feast's switch; fvhost always tiles.
    #[serde(default)]
    pub enable_tiling: Option<bool>,
    #[serde(default)]
    pub tiling_hop_size: Option<serde_yaml::Value>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// One entry of a view's `aggregations:` (Feast's `Aggregation`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAggregation {
    pub column: String,
    pub function: String,
    pub time_window: serde_yaml::Value,
    #[serde(default)]
    pub slide_interval: Option<serde_yaml::Value>,
    #[serde(default)]
    pub name: Option<String>,
    /// fvhost's: distinct values a `count_distinct` counts exactly.
    #[serde(default)]
    pub max_distinct: Option<u64>,
}

/// One entry of a view's `schema:` (Feast's `Field`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub name: String,
    pub dtype: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A view's `transform:`: the Wasm module and the config handed to its `init`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransform {
    pub module: String,
    #[serde(default)]
    pub config: serde_yaml::Mapping,
}

/// A stream view's `dead_letter:` destination.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawDeadLetter {
    /// Only the log (the default).
    Log,
    /// A Redis stream in the project's key space.
    RedisStream,
    /// A Kafka topic on the source's cluster.
    Kafka { topic: String },
}
