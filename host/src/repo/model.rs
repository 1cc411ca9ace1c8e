//! The validated feature repo: what the rest of fvhost works from.

use std::path::PathBuf;
use std::time::Duration;

use super::store_config::StoreConfig;
use crate::types::{FeatureType, ScalarType};

/// A feature repo that passed validation.
#[derive(Debug, Clone)]
pub struct FeatureRepo {
    /// The folder holding `feature_store.yaml`.
    pub root: PathBuf,
    pub config: StoreConfig,
    pub entities: Vec<Entity>,
    pub sources: Vec<Source>,
    pub views: Vec<FeatureView>,
    pub feature_services: Vec<FeatureService>,
    /// Feast's registry file the definitions were read from, when they were
    /// (otherwise they are the repo's YAML files).
    pub registry: Option<PathBuf>,
}

/// Feast's `FeatureService`: a named set of features a model reads.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureService {
    pub name: String,
    /// Each view and the features taken from it, in the declared order
    /// (every feature of the view when the entry names the view alone).
    pub features: Vec<(String, Vec<String>)>,
}

/// Feast's `Entity`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub name: String,
    pub join_keys: Vec<String>,
    pub value_type: ScalarType,
}

/// A data source, with what all kinds share.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    pub timestamp_field: String,
    pub created_timestamp_column: Option<String>,
    /// Source column name -> name the views see.
    pub field_mapping: Vec<(String, String)>,
    /// Events whose time is further ahead of the host's clock are set aside
    /// (`max_future_skew`; see [`crate::event_time`]).
    pub max_future_skew: std::time::Duration,
    pub kind: SourceKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// Parquet files; `path` is relative to the repo root unless absolute.
    File {
        path: String,
    },
    Kafka(KafkaSource),
    Push {
        batch_source: String,
    },
}

/// Feast's `KafkaSource`.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSource {
    pub bootstrap_servers: String,
    pub topic: String,
    pub batch_source: String,
    pub format: MessageFormat,
    /// Events older than the newest seen event time minus this are too late.
    pub watermark_delay: Option<Duration>,
}

pub use crate::format::MessageFormat;

/// A join key of a view, with the type its values are encoded as.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinKey {
    pub name: String,
    pub value_type: ScalarType,
}

/// One feature of a view.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub name: String,
    pub dtype: FeatureType,
}

/// A feature view or stream feature view.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureView {
    pub name: String,
    /// True for `stream_feature_views`.
    pub stream: bool,
    pub entities: Vec<String>,
    /// Join keys of all entities, in declaration order.
    pub join_keys: Vec<JoinKey>,
    /// The features written online (with aggregations: their outputs).
    pub features: Vec<Feature>,
    pub ttl: Option<Duration>,
    pub online: bool,
    pub offline: bool,
    pub source: String,
    pub transform: Option<TransformSpec>,
    /// Where events this view cannot apply go.
    pub dead_letter: DeadLetterTarget,
    /// Windowed aggregations over the view's rows, when it declares any.
    pub windowing: Option<Windowing>,
    /// The definitions file the view came from, for messages.
    pub defined_in: PathBuf,
}

/// A stream view's windowed aggregations and the hop their tiles span.
#[derive(Debug, Clone, PartialEq)]
pub struct Windowing {
    pub aggregations: Vec<super::aggregation::Aggregation>,
    pub hop: Duration,
    /// The columns the view's rows carry (its `schema:`), which the aggregations read.
    pub columns: Vec<Feature>,
}

impl Windowing {
    /// The features the aggregations write: one per aggregation, its output type.
    pub fn features(&self) -> Vec<Feature> {
        self.aggregations
            .iter()
            .map(|a| Feature {
                name: a.name.clone(),
                dtype: FeatureType::Scalar(a.output_type),
            })
            .collect()
    }
}

impl FeatureView {
    /// The columns the view's rows carry, checked against its transform's
    /// output: its features, or with aggregations the columns they read.
    pub fn row_columns(&self) -> &[Feature] {
        self.windowing
            .as_ref()
            .map_or(&self.features, |w| &w.columns)
    }
}

/// Where a stream view's dead letters go (`dead_letter:` in its definition).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum DeadLetterTarget {
    /// Logged and counted only.
    #[default]
    Log,
    /// A Redis stream `fvhost:<project>:dead_letter:<view>` in the online store.
    RedisStream,
    /// A Kafka topic on the view's source cluster.
    KafkaTopic(String),
}

/// A view's Wasm transform.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformSpec {
    /// Resolved path of the `.wasm` component.
    pub module: PathBuf,
    /// `transform.config`, flattened to key/value text for the guest's `init`.
    pub config: Vec<(String, String)>,
}

impl FeatureRepo {
    pub fn project(&self) -> &str {
        &self.config.project
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }

    pub fn view(&self, name: &str) -> Option<&FeatureView> {
        self.views.iter().find(|v| v.name == name)
    }

    pub fn feature_service(&self, name: &str) -> Option<&FeatureService> {
        self.feature_services.iter().find(|s| s.name == name)
    }

    /// The `view:feature` references of feature service `name`, in order.
    pub fn service_features(&self, name: &str) -> Option<Vec<String>> {
        self.feature_service(name).map(|service| {
            service
                .features
                .iter()
                .flat_map(|(view, features)| features.iter().map(move |f| format!("{view}:{f}")))
                .collect()
        })
    }

    /// Stream feature views fed by a Kafka source, with that source.
    pub fn kafka_views(&self) -> impl Iterator<Item = (&FeatureView, &Source, &KafkaSource)> {
        self.views.iter().filter_map(|view| {
            let source = self.source(&view.source)?;
            match &source.kind {
                SourceKind::Kafka(kafka) if view.stream => Some((view, source, kafka)),
                _ => None,
            }
        })
    }
}

impl Source {
    /// The name a view sees for source column `column`.
    pub fn mapped_name<'a>(&'a self, column: &'a str) -> &'a str {
        self.field_mapping
            .iter()
            .find(|(from, _)| from == column)
            .map(|(_, to)| to.as_str())
            .unwrap_or(column)
    }
}
