//! Feast registry objects as the definitions a YAML repo would hold.
//!
//! Each registry object becomes the YAML value a user would have written
//! for it, so a registry goes through the very checks a YAML repo does and
//! its mistakes read the same way. fvhost's own settings come from tags
//! (see [`TAG_PREFIX`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_yaml::{Mapping, Value};

use super::messages::*;
use crate::repo::definitions::DefinitionsFile;

/// Tags starting with this are fvhost settings, not Feast metadata.
pub const TAG_PREFIX: &str = "fvhost.";
/// A stream feature view's Wasm module, relative to the repo folder.
pub const TAG_MODULE: &str = "fvhost.transform.module";
/// `fvhost.transform.config.<key>`: one entry of the config the module's `init` gets.
pub const TAG_CONFIG_PREFIX: &str = "fvhost.transform.config.";
/// Where a stream view's dead letters go: `log`, `redis_stream` or `kafka:<topic>`.
pub const TAG_DEAD_LETTER: &str = "fvhost.dead_letter";
/// `true` on a stream view: keep its offline log (Feast's stream feature
/// views have no `offline` field).
pub const TAG_OFFLINE: &str = "fvhost.offline";
/// On a source: how far ahead of the host's clock an event time may be.
pub const TAG_MAX_FUTURE_SKEW: &str = "fvhost.max_future_skew";
/// `fvhost.max_distinct.<aggregation name>` on a stream view: a
/// `count_distinct`'s exact-count bound.
pub const TAG_MAX_DISTINCT_PREFIX: &str = "fvhost.max_distinct.";

/// Feast's stand-in entity for views declared without entities.
const DUMMY_ENTITY: &str = "__dummy";

/// The definitions of `project` in `registry`, and the problems found on the
/// way (objects fvhost cannot represent), each naming the object.
pub fn definitions(registry: &Registry, project: &str) -> (DefinitionsFile, Vec<String>) {
    let mut converter = Converter {
        project,
        errors: Vec::new(),
        join_key_types: join_key_types(registry, project),
        view_features: HashMap::new(),
    };
    let definitions = DefinitionsFile {
        entities: converter.entities(registry),
        sources: converter.sources(registry),
        feature_views: converter.feature_views(registry),
        stream_feature_views: converter.stream_feature_views(registry),
        feature_services: converter.feature_services(registry),
    };
    (definitions, converter.errors)
}

struct Converter<'a> {
    project: &'a str,
    errors: Vec<String>,
    /// Join key name -> value type, from the views' entity columns, for
    /// entities registered without a value type.
    join_key_types: HashMap<String, i32>,
    /// View name -> the features its registry entry lists (join keys left
    /// out), to tell a service's whole-view entries from projections.
    view_features: HashMap<String, Vec<String>>,
}

fn join_key_types(registry: &Registry, project: &str) -> HashMap<String, i32> {
    let columns = registry
        .feature_views
        .iter()
        .filter_map(|v| v.spec.as_ref())
        .filter(|s| s.project == project)
        .flat_map(|s| &s.entity_columns)
        .chain(
            registry
                .stream_feature_views
                .iter()
                .filter_map(|v| v.spec.as_ref())
                .filter(|s| s.project == project)
                .flat_map(|s| &s.entity_columns),
        );
    columns
        .filter(|c| c.value_type != 0)
        .map(|c| (c.name.clone(), c.value_type))
        .collect()
}

impl Converter<'_> {
    fn entities(&mut self, registry: &Registry) -> Vec<Value> {
        let specs = registry.entities.iter().filter_map(|e| e.spec.as_ref());
        let mine: Vec<&EntitySpec> = specs
            .filter(|s| s.project == self.project && s.name != DUMMY_ENTITY)
            .collect();
        mine.into_iter()
            .filter_map(|spec| self.entity(spec))
            .collect()
    }

    fn entity(&mut self, spec: &EntitySpec) -> Option<Value> {
        let number = match spec.value_type {
            0 => self
                .join_key_types
                .get(&spec.join_key)
                .copied()
                .unwrap_or(0),
            number => number,
        };
        let Some(value_type) = value_type_name(number) else {
            self.errors.push(format!(
                "entity `{}`: value type {number} is not one fvhost reads (set value_type on the entity)",
                spec.name
            ));
            return None;
        };
        let mut object = named(&spec.name);
        object.insert("join_keys".into(), strings([spec.join_key.as_str()]));
        object.insert("value_type".into(), value_type.into());
        metadata(&mut object, &spec.description, &spec.owner, &spec.tags);
        Some(Value::Mapping(object))
    }

    /// Every source of the project: the registered ones, and the sources
    /// embedded in views and in other sources (Feast registers a source only
    /// when the definitions module names it).
    fn sources(&mut self, registry: &Registry) -> Vec<Value> {
        let mut by_name: BTreeMap<&str, &DataSourceProto> = BTreeMap::new();
        let mut pending: Vec<&DataSourceProto> = registry
            .data_sources
            .iter()
            .filter(|s| s.project == self.project)
            .collect();
        for spec in registry
            .feature_views
            .iter()
            .filter_map(|v| v.spec.as_ref())
        {
            if spec.project == self.project {
                pending.extend(spec.batch_source.iter().chain(&spec.stream_source));
            }
        }
        for spec in registry
            .stream_feature_views
            .iter()
            .filter_map(|v| v.spec.as_ref())
        {
            if spec.project == self.project {
                pending.extend(spec.batch_source.iter().chain(&spec.stream_source));
            }
        }
        while let Some(source) = pending.pop() {
            if let Some(batch) = source.batch_source.as_deref() {
                pending.push(batch);
            }
            if !source.name.is_empty() {
                by_name.entry(source.name.as_str()).or_insert(source);
            }
        }
        by_name
            .into_values()
            .filter_map(|source| self.source(source))
            .collect()
    }

    fn source(&mut self, source: &DataSourceProto) -> Option<Value> {
        let mut object = named(&source.name);
        if let Some(file) = &source.file_options {
            object.insert("type".into(), "file".into());
            object.insert("path".into(), local_path(&file.uri).into());
        } else if let Some(kafka) = &source.kafka_options {
            object.insert("type".into(), "kafka".into());
            self.kafka(&mut object, source, kafka);
        } else if is_push(source) {
            object.insert("type".into(), "push".into());
        } else {
            // Not representable; a view that uses it is refused naming it.
            object.insert("type".into(), source_type_name(source.source_type).into());
        }
        if is_push(source) {
            if let Some(batch) = &source.batch_source {
                object.insert("batch_source".into(), batch.name.as_str().into());
            }
        } else {
            object.insert(
                "timestamp_field".into(),
                source.timestamp_field.as_str().into(),
            );
            if !source.created_timestamp_column.is_empty() {
                object.insert(
                    "created_timestamp_column".into(),
                    source.created_timestamp_column.as_str().into(),
                );
            }
            if !source.field_mapping.is_empty() {
                object.insert("field_mapping".into(), string_map(&source.field_mapping));
            }
        }
        let (fvhost_tags, tags) = split_tags(&source.tags);
        if let Some(skew) = fvhost_tags.get(TAG_MAX_FUTURE_SKEW) {
            object.insert("max_future_skew".into(), skew.as_str().into());
        }
        for unknown in fvhost_tags.keys().filter(|k| *k != TAG_MAX_FUTURE_SKEW) {
            self.errors.push(format!(
                "source `{}`: tag `{unknown}` is not an fvhost setting (sources take `{TAG_MAX_FUTURE_SKEW}`)",
                source.name
            ));
        }
        metadata(&mut object, &source.description, &source.owner, &tags);
        Some(Value::Mapping(object))
    }

    fn kafka(&mut self, object: &mut Mapping, source: &DataSourceProto, kafka: &KafkaOptions) {
        object.insert(
            "kafka_bootstrap_servers".into(),
            kafka.kafka_bootstrap_servers.as_str().into(),
        );
        object.insert("topic".into(), kafka.topic.as_str().into());
        match &source.batch_source {
            Some(batch) => object.insert("batch_source".into(), batch.name.as_str().into()),
            None => object.insert("batch_source".into(), "".into()),
        };
        let mut format = Mapping::new();
        match &kafka.message_format {
            Some(StreamFormat {
                json_format: Some(json),
                ..
            }) => {
                format.insert("type".into(), "json".into());
                format.insert("schema_json".into(), json.schema_json.as_str().into());
            }
            Some(StreamFormat {
                avro_format: Some(avro),
                ..
            }) => {
                format.insert("type".into(), "avro".into());
                format.insert("schema_json".into(), avro.schema_json.as_str().into());
            }
            Some(StreamFormat {
                proto_format: Some(proto),
                ..
            }) => {
                format.insert("type".into(), "proto".into());
                format.insert("class_path".into(), proto.class_path.as_str().into());
            }
            _ => {
                format.insert("type".into(), "unset".into());
            }
        }
        object.insert("message_format".into(), Value::Mapping(format));
        if let Some(delay) = kafka.watermark_delay_threshold.filter(|d| !is_zero(d)) {
            object.insert("watermark_delay_threshold".into(), duration(&delay).into());
        }
    }

    fn feature_views(&mut self, registry: &Registry) -> Vec<Value> {
        let specs = registry
            .feature_views
            .iter()
            .filter_map(|v| v.spec.as_ref());
        let mine: Vec<&FeatureViewSpec> = specs
            .filter(|s| s.project == self.project && !s.disabled)
            .collect();
        mine.into_iter()
            .filter_map(|spec| self.view(&ViewParts::of_view(spec), None))
            .collect()
    }

    fn stream_feature_views(&mut self, registry: &Registry) -> Vec<Value> {
        let specs = registry
            .stream_feature_views
            .iter()
            .filter_map(|v| v.spec.as_ref());
        let mine: Vec<&StreamFeatureViewSpec> = specs
            .filter(|s| s.project == self.project && !s.disabled)
            .collect();
        mine.into_iter()
            .filter_map(|spec| self.view(&ViewParts::of_stream_view(spec), Some(spec)))
            .collect()
    }

    /// One view; `stream` holds what only stream feature views have.
    fn view(
        &mut self,
        view: &ViewParts<'_>,
        stream: Option<&StreamFeatureViewSpec>,
    ) -> Option<Value> {
        let kind = if stream.is_some() {
            "stream feature view"
        } else {
            "feature view"
        };
        let mut object = named(view.name);
        let entities: Vec<&str> = view
            .entities
            .iter()
            .map(String::as_str)
            .filter(|e| *e != DUMMY_ENTITY)
            .collect();
        object.insert("entities".into(), strings(entities));
        let mut schema = Vec::new();
        let join_keys: Vec<&str> = view
            .entity_columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        for feature in view
            .features
            .iter()
            .filter(|f| !join_keys.contains(&f.name.as_str()))
        {
            let Some(dtype) = value_type_name(feature.value_type) else {
                self.errors.push(format!(
                    "{kind} `{}`: feature `{}` has value type {}, which fvhost does not write",
                    view.name, feature.name, feature.value_type
                ));
                return None;
            };
            let mut field = named(&feature.name);
            field.insert("dtype".into(), dtype.into());
            schema.push(Value::Mapping(field));
        }
        object.insert("schema".into(), Value::Sequence(schema));
        let names = view.features.iter().map(|f| f.name.clone());
        let names = names.filter(|n| !join_keys.contains(&n.as_str())).collect();
        self.view_features.insert(view.name.to_string(), names);
        if let Some(ttl) = view.ttl.filter(|d| !is_zero(d)) {
            object.insert("ttl".into(), duration(&ttl).into());
        }
        object.insert("online".into(), view.online.into());
        if stream.is_none() {
            object.insert("offline".into(), view.offline.into());
        }
        let source = view
            .stream_source
            .filter(|s| !s.name.is_empty())
            .or(view.batch_source);
        object.insert(
            "source".into(),
            source.map_or("", |s| s.name.as_str()).into(),
        );
        let (fvhost_tags, tags) = split_tags(view.tags);
        if let Some(spec) = stream {
            self.stream_parts(&mut object, spec, &fvhost_tags)?;
        } else if let Some(tag) = fvhost_tags.keys().next() {
            self.errors.push(format!(
                "feature view `{}`: tag `{tag}` applies to stream feature views only",
                view.name
            ));
        }
        metadata(&mut object, view.description, view.owner, &tags);
        Some(Value::Mapping(object))
    }

    /// A stream view's aggregations and its fvhost settings from tags.
    fn stream_parts(
        &mut self,
        object: &mut Mapping,
        spec: &StreamFeatureViewSpec,
        fvhost_tags: &BTreeMap<String, String>,
    ) -> Option<()> {
        let mut config = Mapping::new();
        let mut module = None;
        for (tag, value) in fvhost_tags {
            if tag == TAG_MODULE {
                module = Some(value.clone());
            } else if let Some(key) = tag.strip_prefix(TAG_CONFIG_PREFIX) {
                config.insert(key.into(), value.as_str().into());
            } else if tag == TAG_DEAD_LETTER {
                object.insert("dead_letter".into(), dead_letter(value));
            } else if tag == TAG_OFFLINE {
                match value.as_str() {
                    "true" => object.insert("offline".into(), true.into()),
                    "false" => object.insert("offline".into(), false.into()),
                    other => {
                        self.errors.push(format!(
                            "stream feature view `{}`: tag `{TAG_OFFLINE}` is `{}`; use `true` or `false`",
                            spec.name,
                            other.escape_debug()
                        ));
                        None
                    }
                };
            } else if !tag.starts_with(TAG_MAX_DISTINCT_PREFIX) {
                self.errors.push(format!(
                    "stream feature view `{}`: tag `{tag}` is not an fvhost setting (see the README's tag list)",
                    spec.name
                ));
            }
        }
        let udf = spec
            .user_defined_function
            .as_ref()
            .or(spec
                .feature_transformation
                .as_ref()
                .and_then(|t| t.user_defined_function.as_ref()))
            .filter(|udf| !udf.body.is_empty() || !udf.name.is_empty());
        match (module, udf) {
            (Some(module), _) => {
                let mut transform = Mapping::new();
                transform.insert("module".into(), module.into());
                if !config.is_empty() {
                    transform.insert("config".into(), Value::Mapping(config));
                }
                object.insert("transform".into(), Value::Mapping(transform));
            }
            (None, Some(udf)) => {
                self.errors.push(format!(
                    "stream feature view `{}`: its Python udf `{}` cannot run in fvhost; compile the transform to WebAssembly and name the module in tag `{TAG_MODULE}`",
                    spec.name, udf.name
                ));
                return None;
            }
            (None, None) if !config.is_empty() => {
                self.errors.push(format!(
                    "stream feature view `{}`: `{TAG_CONFIG_PREFIX}*` tags without `{TAG_MODULE}`",
                    spec.name
                ));
            }
            (None, None) => {}
        }
        if !spec.aggregations.is_empty() {
            let aggregations = spec
                .aggregations
                .iter()
                .map(|a| aggregation(a, fvhost_tags))
                .collect();
            object.insert("aggregations".into(), Value::Sequence(aggregations));
        }
        if let Some(hop) = spec.tiling_hop_size.filter(|d| !is_zero(d)) {
            object.insert("tiling_hop_size".into(), duration(&hop).into());
        }
        Some(())
    }

    fn feature_services(&mut self, registry: &Registry) -> Vec<Value> {
        let specs: Vec<&FeatureServiceSpec> = registry
            .feature_services
            .iter()
            .filter_map(|s| s.spec.as_ref())
            .filter(|s| s.project == self.project)
            .collect();
        specs
            .into_iter()
            .filter_map(|spec| self.feature_service(spec))
            .collect()
    }

    fn feature_service(&mut self, spec: &FeatureServiceSpec) -> Option<Value> {
        let mut entries = Vec::new();
        for projection in &spec.features {
            if !projection.feature_view_name_alias.is_empty() || !projection.join_key_map.is_empty()
            {
                self.errors.push(format!(
                    "feature service `{}`: view `{}` is renamed or has its join keys mapped (`with_name`, `with_join_key_map`), which fvhost does not serve",
                    spec.name, projection.feature_view_name
                ));
                return None;
            }
            let features: BTreeSet<&str> = projection
                .feature_columns
                .iter()
                .map(|f| f.name.as_str())
                .collect();
            let whole_view = self
                .view_features
                .get(&projection.feature_view_name)
                .is_some_and(|all| {
                    all.iter().map(String::as_str).collect::<BTreeSet<_>>() == features
                });
            if whole_view {
                // `features=[view]`: every feature the view writes (for an
                // aggregating view, its aggregations, not its input columns).
                entries.push(projection.feature_view_name.as_str().into());
                continue;
            }
            let mut entry = Mapping::new();
            entry.insert("view".into(), projection.feature_view_name.as_str().into());
            let features = projection.feature_columns.iter().map(|f| f.name.as_str());
            entry.insert("features".into(), strings(features));
            entries.push(Value::Mapping(entry));
        }
        let mut object = named(&spec.name);
        object.insert("features".into(), Value::Sequence(entries));
        metadata(&mut object, &spec.description, &spec.owner, &spec.tags);
        Some(Value::Mapping(object))
    }
}

/// What feature views and stream feature views share.
struct ViewParts<'a> {
    name: &'a str,
    entities: &'a [String],
    features: &'a [FeatureSpec],
    entity_columns: &'a [FeatureSpec],
    ttl: Option<DurationProto>,
    online: bool,
    offline: bool,
    batch_source: Option<&'a DataSourceProto>,
    stream_source: Option<&'a DataSourceProto>,
    description: &'a str,
    owner: &'a str,
    tags: &'a HashMap<String, String>,
}

impl<'a> ViewParts<'a> {
    fn of_view(spec: &'a FeatureViewSpec) -> Self {
        Self {
            name: &spec.name,
            entities: &spec.entities,
            features: &spec.features,
            entity_columns: &spec.entity_columns,
            ttl: spec.ttl,
            online: spec.online,
            offline: spec.offline,
            batch_source: spec.batch_source.as_ref(),
            stream_source: spec.stream_source.as_ref(),
            description: &spec.description,
            owner: &spec.owner,
            tags: &spec.tags,
        }
    }

    /// A stream feature view (Feast's has no `offline`).
    fn of_stream_view(spec: &'a StreamFeatureViewSpec) -> Self {
        Self {
            name: &spec.name,
            entities: &spec.entities,
            features: &spec.features,
            entity_columns: &spec.entity_columns,
            ttl: spec.ttl,
            online: spec.online,
            offline: false,
            batch_source: spec.batch_source.as_ref(),
            stream_source: spec.stream_source.as_ref(),
            description: &spec.description,
            owner: &spec.owner,
            tags: &spec.tags,
        }
    }
}

fn aggregation(proto: &AggregationProto, fvhost_tags: &BTreeMap<String, String>) -> Value {
    let mut object = Mapping::new();
    object.insert("column".into(), proto.column.as_str().into());
    object.insert("function".into(), proto.function.as_str().into());
    let window = proto.time_window.unwrap_or_default();
    object.insert("time_window".into(), duration(&window).into());
    if let Some(slide) = proto.slide_interval.filter(|d| !is_zero(d)) {
        object.insert("slide_interval".into(), duration(&slide).into());
    }
    if !proto.name.is_empty() {
        object.insert("name".into(), proto.name.as_str().into());
        let tag = format!("{TAG_MAX_DISTINCT_PREFIX}{}", proto.name);
        if let Some(bound) = fvhost_tags.get(&tag) {
            let bound = bound
                .parse::<u64>()
                .map_or_else(|_| Value::from(bound.as_str()), Value::from);
            object.insert("max_distinct".into(), bound);
        }
    }
    Value::Mapping(object)
}

/// `log`, `redis_stream` or `kafka:<topic>` as a `dead_letter:` value.
fn dead_letter(tag: &str) -> Value {
    let mut object = Mapping::new();
    match tag.split_once(':') {
        Some(("kafka", topic)) => {
            object.insert("type".into(), "kafka".into());
            object.insert("topic".into(), topic.into());
        }
        _ => {
            object.insert("type".into(), tag.into());
        }
    }
    Value::Mapping(object)
}

/// Feast writes a push source with its type and no options.
fn is_push(source: &DataSourceProto) -> bool {
    source.source_type == PUSH_SOURCE_TYPE || source.push_options.is_some()
}

/// Feast keeps a file source's path as given; `file://` URIs name local files too.
fn local_path(uri: &str) -> &str {
    uri.strip_prefix("file://").unwrap_or(uri)
}

fn is_zero(duration: &DurationProto) -> bool {
    duration.seconds == 0 && duration.nanos == 0
}

/// A protobuf duration in the spelling definitions use (`300s`, `250ms`).
fn duration(duration: &DurationProto) -> String {
    let millis = i128::from(duration.seconds) * 1000 + i128::from(duration.nanos) / 1_000_000;
    if millis % 1000 == 0 {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// Tags split into fvhost's settings and Feast metadata, each sorted.
fn split_tags(
    tags: &HashMap<String, String>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    tags.iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| k.starts_with(TAG_PREFIX))
}

fn named(name: &str) -> Mapping {
    let mut object = Mapping::new();
    object.insert("name".into(), name.into());
    object
}

fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    Value::Sequence(items.into_iter().map(Value::from).collect())
}

fn string_map(map: &HashMap<String, String>) -> Value {
    let sorted: BTreeMap<&String, &String> = map.iter().collect();
    Value::Mapping(
        sorted
            .into_iter()
            .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
            .collect(),
    )
}

/// Feast's description, owner and tags, kept as the YAML format keeps them.
fn metadata<'a>(
    object: &mut Mapping,
    description: &str,
    owner: &str,
    tags: impl IntoIterator<Item = (&'a String, &'a String)>,
) {
    if !description.is_empty() {
        object.insert("description".into(), description.into());
    }
    if !owner.is_empty() {
        object.insert("owner".into(), owner.into());
    }
    let tags: Mapping = tags
        .into_iter()
        .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
        .collect();
    if !tags.is_empty() {
        object.insert("tags".into(), Value::Mapping(tags));
    }
}
