//! Reading and validating a feature repo folder.
//!
//! Every error names the file, the object and the field, so a user can go
//! straight to the line to fix.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::DataType;
use serde::de::DeserializeOwned;

use super::aggregation::{
    AggregateFunction, Aggregation, DEFAULT_HOP, DEFAULT_MAX_DISTINCT, MAX_DISTINCT_PER_ENTITY,
    MAX_WINDOW, MIN_HOP, check_multiple_of_hop,
};
use super::definitions::*;
use super::duration::parse_duration;
use super::feast_registry;
use super::model::*;
use super::store_config::{ConnectionString, RedisType, StoreConfig};
use crate::format::{mapped_schema, parse_ddl};
use crate::types::{FeatureType, ScalarType};

/// The name of a repo's main config file.
pub const STORE_CONFIG_FILE: &str = "feature_store.yaml";

/// Why a feature repo is invalid; the message names file, object and field.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct RepoError(pub Vec<String>);

/// Loads and validates the repo in `root`.
pub fn load_repo(root: &Path) -> Result<FeatureRepo, RepoError> {
    let mut loader = Loader::new(root);
    let config = loader.store_config();
    let files = definition_files(root).map_err(RepoError)?;
    let registry = config
        .as_ref()
        .and_then(|config| loader.registry_file(config, &files));
    match (&registry, &config) {
        (Some(path), Some(config)) => loader.registry_definitions(path, &config.project),
        _ => {
            for file in &files {
                loader.definitions_file(file);
            }
        }
    }
    let (entities, sources, views) = loader.objects;
    let services = loader.services;
    let errors = loader.errors;
    match config {
        Some(config) if errors.is_empty() => {
            let repo = FeatureRepo {
                root: root.to_path_buf(),
                config,
                entities,
                sources,
                views,
                feature_services: Vec::new(),
                registry,
            };
            let mut errors = check_references(&repo);
            let repo = FeatureRepo {
                feature_services: resolve_services(&repo, services, &mut errors),
                ..repo
            };
            if errors.is_empty() {
                let mut repo = repo;
                inherit_push_timestamps(&mut repo);
                Ok(repo)
            } else {
                Err(RepoError(errors))
            }
        }
        _ => Err(RepoError(errors)),
    }
}

/// A definitions file's name, for messages.
fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// `*.yaml` / `*.yml` files in the repo folder other than `feature_store.yaml`,
/// sorted. A folder entry that cannot be read, or a YAML file whose name is
/// not UTF-8, is an error naming it rather than a file silently left out.
fn definition_files(root: &Path) -> Result<Vec<PathBuf>, Vec<String>> {
    let entries = std::fs::read_dir(root).map_err(|e| {
        vec![format!(
            "{}: cannot read the repo folder: {e}",
            root.display()
        )]
    })?;
    let (mut files, mut errors) = (Vec::new(), Vec::new());
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                errors.push(format!(
                    "{}: cannot read a folder entry: {e}",
                    root.display()
                ));
                continue;
            }
        };
        let name = path
            .file_name()
            .map(|n| n.as_encoded_bytes())
            .unwrap_or_default();
        let is_yaml = name.ends_with(b".yaml") || name.ends_with(b".yml");
        if !is_yaml || name == STORE_CONFIG_FILE.as_bytes() {
            continue;
        }
        if path.file_name().and_then(|n| n.to_str()).is_none() {
            errors.push(format!(
                "{}: the file name is not UTF-8; rename it so it can be named in messages",
                path.display()
            ));
            continue;
        }
        files.push(path);
    }
    files.sort();
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// Whether `path` is inside the repo folder once links are resolved: a
/// repo's definitions are its own (in a multi-tenant host, a tenant must not
/// load another's by pointing at it).
fn inside_repo(root: &Path, path: &Path) -> Result<(), String> {
    let inside = match (root.canonicalize(), path.canonicalize()) {
        (Ok(root), Ok(resolved)) => resolved.starts_with(&root),
        (_, Err(e)) => return Err(format!("{}: {e}", path.display())),
        (Err(e), _) => return Err(format!("{}: {e}", root.display())),
    };
    match inside {
        true => Ok(()),
        false => Err(format!(
            "{} leads outside the repo folder: only the repo's own registry is read",
            path.display()
        )),
    }
}

/// Reads one of the repo's YAML files, bounded (see [`crate::bounded_file`]).
/// The file must be inside the repo folder once links are resolved: a YAML
/// error quotes what it could not parse, so a link to a file elsewhere
/// (another tenant's token, `/etc/shadow`) would echo that file's content
/// to whoever can edit the repo.
fn read_config(root: &Path, path: &Path) -> Result<String, String> {
    let inside = match (root.canonicalize(), path.canonicalize()) {
        (Ok(root), Ok(resolved)) => resolved.starts_with(&root),
        (_, Err(e)) => return Err(format!("{}: {e}", path.display())),
        (Err(e), _) => return Err(format!("{}: {e}", root.display())),
    };
    if !inside {
        return Err(format!(
            "{} leads outside the repo folder (a symbolic link?): only the repo's own files are read",
            path.display()
        ));
    }
    crate::bounded_file::read_text(path, crate::bounded_file::MAX_CONFIG_BYTES, "a YAML file")
        .map_err(|e| e.to_string())
}

type Objects = (Vec<Entity>, Vec<Source>, Vec<FeatureView>);

struct Loader<'a> {
    root: &'a Path,
    errors: Vec<String>,
    objects: Objects,
    /// Feature services as declared, with the file each came from.
    services: Vec<(String, RawFeatureService)>,
}

/// Where an object was defined, for error messages: `file: kind `name``.
struct Place<'a> {
    file: &'a str,
    kind: &'static str,
    name: String,
}

impl Place<'_> {
    fn error(&self, field: &str, message: impl std::fmt::Display) -> String {
        format!(
            "{}: {} `{}`: field `{field}`: {message}",
            self.file, self.kind, self.name
        )
    }

    fn parse_error(&self, message: impl std::fmt::Display) -> String {
        format!("{}: {} `{}`: {message}", self.file, self.kind, self.name)
    }
}

impl<'a> Loader<'a> {
    fn new(root: &'a Path) -> Self {
        Self {
            root,
            errors: Vec::new(),
            objects: (Vec::new(), Vec::new(), Vec::new()),
            services: Vec::new(),
        }
    }

    fn store_config(&mut self) -> Option<StoreConfig> {
        let path = self.root.join(STORE_CONFIG_FILE);
        let text = match read_config(self.root, &path) {
            Ok(text) => text,
            Err(e) => {
                self.errors.push(e.to_string());
                return None;
            }
        };
        let config: StoreConfig = match serde_yaml::from_str(&text) {
            Ok(config) => config,
            Err(e) => {
                self.errors.push(format!("{STORE_CONFIG_FILE}: {e}"));
                return None;
            }
        };
        let before = self.errors.len();
        self.check_store_config(&config);
        (self.errors.len() == before).then_some(config)
    }

    fn check_store_config(&mut self, config: &StoreConfig) {
        let field =
            |name: &str, message: String| format!("{STORE_CONFIG_FILE}: field `{name}`: {message}");
        if config.project.trim().is_empty() {
            self.errors
                .push(field("project", "must not be empty".into()));
        }
        let online = &config.online_store;
        if online.store_type != "redis" {
            self.errors.push(field(
                "online_store.type",
                format!(
                    "`{}` is not supported; fvhost writes Feast's `redis` online store",
                    online.store_type
                ),
            ));
        }
        let redis_type = RedisType::parse(&online.redis_type);
        if let Err(e) = &redis_type {
            self.errors
                .push(field("online_store.redis_type", e.clone()));
        }
        match ConnectionString::parse(&online.connection_string) {
            Err(e) => self.errors.push(field("online_store.connection_string", e)),
            Ok(parsed) => {
                if !parsed.ssl && (parsed.ssl_ca_certs.is_some() || parsed.ssl_insecure) {
                    self.errors.push(field(
                        "online_store.connection_string",
                        "ssl_ca_certs and ssl_cert_reqs need ssl=true".into(),
                    ));
                }
                if redis_type == Ok(RedisType::Sentinel) && parsed.ssl_ca_certs.is_some() {
                    self.errors.push(field(
                        "online_store.connection_string",
                        "ssl_ca_certs is not supported with redis_sentinel (the system's roots are used)".into(),
                    ));
                }
                if redis_type == Ok(RedisType::Cluster) && parsed.db != 0 {
                    self.errors.push(field(
                        "online_store.connection_string",
                        format!("db={}: a Redis Cluster has only database 0", parsed.db),
                    ));
                }
            }
        }
        if config.key_version().is_none() {
            self.errors.push(field(
                "entity_key_serialization_version",
                format!(
                    "{} is not a Feast version (2 or 3)",
                    config.entity_key_serialization_version
                ),
            ));
        }
    }

    /// Feast's registry file, when the definitions come from it: the repo
    /// has no YAML definitions and `feature_store.yaml` names a registry.
    /// Both at once is refused, so nobody edits a copy that is not read.
    fn registry_file(&mut self, config: &StoreConfig, files: &[PathBuf]) -> Option<PathBuf> {
        let path = match feast_registry::registry_file(self.root, config) {
            Ok(path) => path?,
            Err(e) if files.is_empty() => {
                self.errors
                    .push(format!("{STORE_CONFIG_FILE}: field `registry`: {e}"));
                return None;
            }
            Err(_) => return None,
        };
        let exists = std::fs::symlink_metadata(&path).is_ok();
        match (exists, files.is_empty()) {
            (true, true) => match inside_repo(self.root, &path) {
                Ok(()) => Some(path),
                Err(e) => {
                    self.errors
                        .push(format!("{STORE_CONFIG_FILE}: field `registry`: {e}"));
                    None
                }
            },
            (false, true) => {
                self.errors.push(format!(
                    "{STORE_CONFIG_FILE}: no definitions: no YAML definitions beside it, and Feast's registry {} does not exist (run `feast apply` in the repo, or add YAML definitions)",
                    path.display()
                ));
                None
            }
            (true, false) => {
                let names: Vec<String> = files.iter().map(|f| file_label(f)).collect();
                self.errors.push(format!(
                    "{STORE_CONFIG_FILE}: the repo is defined twice, by YAML ({}) and by Feast's registry {}; keep one (fvhost reads the registry when there is no YAML)",
                    names.join(", "),
                    path.display()
                ));
                None
            }
            (false, false) => None,
        }
    }

    /// The definitions of `project` in Feast's registry at `path`.
    fn registry_definitions(&mut self, path: &Path, project: &str) {
        let label = path
            .strip_prefix(self.root)
            .unwrap_or(path)
            .display()
            .to_string();
        match feast_registry::read(path, project) {
            Ok((definitions, problems)) => {
                self.errors
                    .extend(problems.into_iter().map(|p| format!("{label}: {p}")));
                self.definitions(&label, path, definitions);
            }
            Err(e) => self.errors.push(e),
        }
    }

    fn definitions_file(&mut self, path: &Path) {
        let file = file_label(path);
        let text = match read_config(self.root, path) {
            Ok(text) => text,
            Err(e) => return self.errors.push(format!("{file}: {e}")),
        };
        let definitions: DefinitionsFile = match serde_yaml::from_str(&text) {
            Ok(d) => d,
            Err(e) => return self.errors.push(format!("{file}: {e}")),
        };
        self.definitions(&file, path, definitions);
    }

    /// Checks and records every object of one definitions file (or registry).
    fn definitions(&mut self, file: &str, path: &Path, mut definitions: DefinitionsFile) {
        let file = file.to_string();
        for (kind, values) in [
            ("entity", &mut definitions.entities),
            ("source", &mut definitions.sources),
            ("feature view", &mut definitions.feature_views),
            ("stream feature view", &mut definitions.stream_feature_views),
            ("feature service", &mut definitions.feature_services),
        ] {
            values.retain(|value| {
                let problem = value
                    .get("name")
                    .and_then(|n| n.as_str())
                    .and_then(name_problem);
                if let Some(problem) = &problem {
                    let place = place(&file, kind, value);
                    self.errors.push(place.error("name", problem));
                }
                problem.is_none()
            });
        }
        for value in definitions.entities {
            self.entity(&file, value);
        }
        for value in definitions.sources {
            self.source(&file, value);
        }
        for (value, stream) in definitions
            .feature_views
            .into_iter()
            .map(|v| (v, false))
            .chain(
                definitions
                    .stream_feature_views
                    .into_iter()
                    .map(|v| (v, true)),
            )
        {
            self.view(&file, path, value, stream);
        }
        for value in definitions.feature_services {
            let place = place(&file, "feature service", &value);
            if let Some(raw) = self.typed::<RawFeatureService>(&place, value) {
                self.services.push((file.clone(), raw));
            }
        }
    }

    /// Parses `value` as `T`, recording a located error on failure.
    fn typed<T: DeserializeOwned>(
        &mut self,
        place: &Place<'_>,
        value: serde_yaml::Value,
    ) -> Option<T> {
        match serde_yaml::from_value(value) {
            Ok(parsed) => Some(parsed),
            Err(e) => {
                self.errors.push(place.parse_error(e));
                None
            }
        }
    }

    fn entity(&mut self, file: &str, value: serde_yaml::Value) {
        let place = place(file, "entity", &value);
        let Some(raw) = self.typed::<RawEntity>(&place, value) else {
            return;
        };
        let join_keys = raw.join_keys.unwrap_or_else(|| vec![raw.name.clone()]);
        if join_keys.is_empty() {
            self.errors
                .push(place.error("join_keys", "must name at least one join key"));
        }
        match raw.value_type.parse::<ScalarType>() {
            Ok(value_type) if value_type.is_join_key_type() => {
                self.objects.0.push(Entity { name: raw.name, join_keys, value_type })
            }
            Ok(value_type) => self.errors.push(place.error(
                "value_type",
                format!("{value_type} cannot be a join key type (Feast rejects float, double and bool keys)"),
            )),
            Err(e) => self.errors.push(place.error("value_type", e)),
        }
    }

    fn source(&mut self, file: &str, value: serde_yaml::Value) {
        let mut place = place(file, "source", &value);
        let Some((source_type, value)) = take_type(value) else {
            self.errors
                .push(place.error("type", "missing; expected one of `file`, `kafka`, `push`"));
            return;
        };
        place.kind = match source_type.as_str() {
            "file" => "file source",
            "kafka" => "kafka source",
            "push" => "push source",
            other => {
                let message =
                    format!("`{other}` is not a source type (expected `file`, `kafka` or `push`)");
                return self.errors.push(place.error("type", message));
            }
        };
        let source = match source_type.as_str() {
            "file" => self.typed::<RawFileSource>(&place, value).and_then(|raw| {
                let max_future_skew = self.max_future_skew(&place, &raw.max_future_skew)?;
                Some(Source {
                    name: raw.name,
                    timestamp_field: raw.timestamp_field,
                    created_timestamp_column: raw.created_timestamp_column,
                    field_mapping: raw.field_mapping.into_iter().collect(),
                    max_future_skew,
                    kind: SourceKind::File { path: raw.path },
                })
            }),
            "kafka" => self
                .typed::<RawKafkaSource>(&place, value)
                .and_then(|raw| self.kafka_source(&place, raw)),
            _ => self.typed::<RawPushSource>(&place, value).and_then(|raw| {
                let max_future_skew = self.max_future_skew(&place, &raw.max_future_skew)?;
                Some(Source {
                    name: raw.name,
                    timestamp_field: String::new(),
                    created_timestamp_column: None,
                    field_mapping: Vec::new(),
                    max_future_skew,
                    kind: SourceKind::Push {
                        batch_source: raw.batch_source,
                    },
                })
            }),
        };
        if let Some(source) = source {
            self.objects.1.push(source);
        }
    }

    /// `max_future_skew:` of a source, or the default.
    fn max_future_skew(
        &mut self,
        place: &Place<'_>,
        raw: &Option<serde_yaml::Value>,
    ) -> Option<std::time::Duration> {
        let Some(value) = raw else {
            return Some(crate::event_time::DEFAULT_MAX_FUTURE_SKEW);
        };
        parse_duration(&duration_text(value))
            .map_err(|e| self.errors.push(place.error("max_future_skew", e)))
            .ok()
    }

    fn kafka_source(&mut self, place: &Place<'_>, raw: RawKafkaSource) -> Option<Source> {
        let before = self.errors.len();
        let max_future_skew = self.max_future_skew(place, &raw.max_future_skew);
        let format = match raw.message_format.format_type.as_str() {
            "json" => match raw.message_format.schema_json.as_deref().map(parse_ddl) {
                Some(Ok(schema)) => Some(MessageFormat::Json {
                    schema: Arc::new(schema),
                }),
                Some(Err(e)) => {
                    self.errors
                        .push(place.error("message_format.schema_json", e));
                    None
                }
                None => {
                    self.errors.push(
                        place.error("message_format.schema_json", "required for JSON messages"),
                    );
                    None
                }
            },
            other => {
                self.errors.push(place.error(
                    "message_format.type",
                    format!("`{other}` is not supported yet (supported: `json`)"),
                ));
                None
            }
        };
        let watermark_delay = match raw.watermark_delay_threshold.as_ref().map(duration_text) {
            None => None,
            Some(text) => match parse_duration(&text) {
                Ok(delay) => Some(delay),
                Err(e) => {
                    self.errors
                        .push(place.error("watermark_delay_threshold", e));
                    None
                }
            },
        };
        if raw.topic.trim().is_empty() {
            self.errors.push(place.error("topic", "must not be empty"));
        }
        let field_mapping: Vec<(String, String)> = raw.field_mapping.into_iter().collect();
        if let Some(MessageFormat::Json { schema }) = &format {
            let mapped = mapped_schema(schema, &field_mapping);
            match mapped.field_with_name(&raw.timestamp_field) {
                Ok(field) if matches!(field.data_type(), DataType::Timestamp(..)) => {}
                Ok(field) => self.errors.push(place.error(
                    "timestamp_field",
                    format!(
                        "`{}` is {} in schema_json; it must be a timestamp",
                        raw.timestamp_field,
                        field.data_type()
                    ),
                )),
                Err(_) => self.errors.push(place.error(
                    "timestamp_field",
                    format!(
                        "`{}` is not a column of message_format.schema_json",
                        raw.timestamp_field
                    ),
                )),
            }
        }
        if self.errors.len() != before {
            return None;
        }
        Some(Source {
            name: raw.name,
            timestamp_field: raw.timestamp_field,
            created_timestamp_column: raw.created_timestamp_column,
            field_mapping,
            max_future_skew: max_future_skew?,
            kind: SourceKind::Kafka(KafkaSource {
                bootstrap_servers: raw.kafka_bootstrap_servers,
                topic: raw.topic,
                batch_source: raw.batch_source,
                format: format?,
                watermark_delay,
            }),
        })
    }

    fn view(&mut self, file: &str, path: &Path, value: serde_yaml::Value, stream: bool) {
        let kind = if stream {
            "stream feature view"
        } else {
            "feature view"
        };
        let place = place(file, kind, &value);
        let Some(raw) = self.typed::<RawFeatureView>(&place, value) else {
            return;
        };
        let before = self.errors.len();
        let mut features = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, field) in raw.schema.iter().enumerate() {
            if let Some(problem) = name_problem(&field.name) {
                self.errors
                    .push(place.error(&format!("schema[{i}].name"), problem));
            }
            if !seen.insert(field.name.as_str()) {
                self.errors.push(place.error(
                    &format!("schema[{i}].name"),
                    format!("`{}` is declared twice", field.name),
                ));
            }
            match field.dtype.parse::<FeatureType>() {
                Ok(dtype) => features.push(Feature {
                    name: field.name.clone(),
                    dtype,
                }),
                Err(e) => self
                    .errors
                    .push(place.error(&format!("schema[{i}].dtype"), e)),
            }
        }
        let ttl = match raw.ttl.as_ref().map(duration_text) {
            None => None,
            Some(text) => match parse_duration(&text) {
                Ok(ttl) => Some(ttl),
                Err(e) => {
                    self.errors.push(place.error("ttl", e));
                    None
                }
            },
        };
        let windowing = self.windowing(&place, stream, &raw, &features);
        if let Some(windowing) = &windowing {
            features = windowing.features();
        }
        let transform = raw.transform.map(|t| TransformSpec {
            module: resolve(self.root, &t.module),
            config: flatten_config(&t.config),
        });
        if let Some(spec) = &transform {
            let problem = match std::fs::metadata(&spec.module) {
                Ok(metadata) if metadata.is_file() => None,
                Ok(_) => Some("is not a regular file: a module must be a .wasm file"),
                Err(_) => Some("does not exist (build the transform first)"),
            };
            if let Some(problem) = problem {
                self.errors.push(place.error(
                    "transform.module",
                    format!("{} {problem}", spec.module.display()),
                ));
            }
        }
        if self.errors.len() != before {
            return;
        }
        self.objects.2.push(FeatureView {
            name: raw.name,
            stream,
            entities: raw.entities,
            join_keys: Vec::new(),
            features,
            ttl,
            online: raw.online,
            offline: raw.offline,
            source: raw.source,
            transform,
            dead_letter: match raw.dead_letter {
                None | Some(RawDeadLetter::Log) => DeadLetterTarget::Log,
                Some(RawDeadLetter::RedisStream) => DeadLetterTarget::RedisStream,
                Some(RawDeadLetter::Kafka { topic }) => DeadLetterTarget::KafkaTopic(topic),
            },
            windowing,
            defined_in: path.to_path_buf(),
        });
    }

    /// The view's aggregations, checked against its schema (the columns its
    /// rows carry), or `None` without any. Errors name the entry and field.
    fn windowing(
        &mut self,
        place: &Place<'_>,
        stream: bool,
        raw: &RawFeatureView,
        columns: &[Feature],
    ) -> Option<Windowing> {
        if raw.aggregations.is_empty() {
            if raw.tiling_hop_size.is_some() {
                self.errors.push(place.error(
                    "tiling_hop_size",
                    "is set, but the view declares no aggregations",
                ));
            }
            return None;
        }
        if !stream {
            self.errors.push(place.error(
                "aggregations",
                "only stream feature views aggregate (move the view to stream_feature_views)",
            ));
            return None;
        }
        let before = self.errors.len();
        let hop = match raw.tiling_hop_size.as_ref().map(duration_text) {
            None => DEFAULT_HOP,
            Some(text) => match parse_duration(&text) {
                Ok(hop) if hop >= MIN_HOP && hop <= MAX_WINDOW => hop,
                Ok(_) => {
                    self.errors.push(place.error(
                        "tiling_hop_size",
                        "must be between 1s (tiles are kept per hop) and 366d",
                    ));
                    DEFAULT_HOP
                }
                Err(e) => {
                    self.errors.push(place.error("tiling_hop_size", e));
                    DEFAULT_HOP
                }
            },
        };
        let mut aggregations: Vec<Aggregation> = Vec::new();
        for (i, entry) in raw.aggregations.iter().enumerate() {
            let field = |name: &str| format!("aggregations[{i}].{name}");
            match self.aggregation(place, &field, entry, hop, columns) {
                Some(aggregation) => {
                    if aggregations.iter().any(|a| a.name == aggregation.name)
                        || columns.iter().any(|c| c.name == aggregation.name)
                    {
                        self.errors.push(place.error(
                            &field("name"),
                            format!(
                                "`{}` is already a feature or an aggregation of this view; give it another `name`",
                                aggregation.name
                            ),
                        ));
                    }
                    aggregations.push(aggregation);
                }
                None => continue,
            }
        }
        if self.errors.len() != before {
            // Indexes below name raw entries only when every one was kept.
            return None;
        }
        let tiles = aggregations
            .iter()
            .map(|a| a.time_window.as_nanos() / hop.as_nanos().max(1))
            .max()
            .unwrap_or(1);
        for (i, aggregation) in aggregations.iter().enumerate() {
            let kept = tiles.saturating_mul(aggregation.max_distinct as u128);
            if aggregation.function == AggregateFunction::CountDistinct
                && kept > MAX_DISTINCT_PER_ENTITY
            {
                self.errors.push(place.error(
                    &format!("aggregations[{i}].max_distinct"),
                    format!(
                        "{} distinct values in each of the view's {tiles} tiles make {kept} per entity; at most {MAX_DISTINCT_PER_ENTITY} are kept (a lower max_distinct, or a longer tiling_hop_size)",
                        aggregation.max_distinct
                    ),
                ));
            }
        }
        if self.errors.len() != before {
            return None;
        }
        Some(Windowing {
            aggregations,
            hop,
            columns: columns.to_vec(),
        })
    }

    /// One aggregation entry, checked; `None` after recording its errors.
    fn aggregation(
        &mut self,
        place: &Place<'_>,
        field: &dyn Fn(&str) -> String,
        entry: &RawAggregation,
        hop: std::time::Duration,
        columns: &[Feature],
    ) -> Option<Aggregation> {
        let before = self.errors.len();
        let function = AggregateFunction::parse(&entry.function)
            .map_err(|e| self.errors.push(place.error(&field("function"), e)))
            .ok();
        let column = columns.iter().find(|c| c.name == entry.column);
        if column.is_none() {
            self.errors.push(place.error(
                &field("column"),
                format!(
                    "`{}` is not in the view's schema (the columns its rows carry: the transform's output, or the source's fields)",
                    entry.column
                ),
            ));
        }
        let mut window = |name: &str, value: &serde_yaml::Value| {
            let checked = parse_duration(&duration_text(value))
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    check_multiple_of_hop(d, hop)
                        .map(|()| d)
                        .map_err(|e| e.to_string())
                });
            checked
                .map_err(|e| self.errors.push(place.error(&field(name), e)))
                .ok()
        };
        let time_window = window("time_window", &entry.time_window);
        let slide_interval = match &entry.slide_interval {
            Some(value) => window("slide_interval", value),
            None => time_window,
        };
        if let (Some(slide), Some(time_window)) = (slide_interval, time_window)
            && slide > time_window
        {
            self.errors.push(place.error(
                &field("slide_interval"),
                "is longer than the time_window (values advance every hop)",
            ));
        }
        if let Some(name) = &entry.name
            && (name.is_empty() || name.contains(':') || name.chars().any(char::is_control))
        {
            self.errors.push(place.error(
                &field("name"),
                format!(
                    "{name:?} cannot be a feature name (empty, or holds `:` or a control character)"
                ),
            ));
        }
        let output_type = match (function, column) {
            (Some(function), Some(column)) => function
                .output_type(&entry.function, &entry.column, column.dtype)
                .map_err(|e| self.errors.push(place.error(&field("function"), e)))
                .ok(),
            _ => None,
        };
        let max_distinct = match (entry.max_distinct, function) {
            (None, _) => DEFAULT_MAX_DISTINCT,
            (Some(_), Some(f)) if f != AggregateFunction::CountDistinct => {
                self.errors.push(place.error(
                    &field("max_distinct"),
                    "only count_distinct keeps distinct values",
                ));
                DEFAULT_MAX_DISTINCT
            }
            (Some(0), _) => {
                self.errors
                    .push(place.error(&field("max_distinct"), "must be at least 1"));
                DEFAULT_MAX_DISTINCT
            }
            (Some(n), _) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        if self.errors.len() != before {
            return None;
        }
        let (function, time_window, slide_interval, output_type) =
            (function?, time_window?, slide_interval?, output_type?);
        Some(Aggregation {
            name: entry.name.clone().unwrap_or_else(|| {
                Aggregation::default_name(&entry.function, &entry.column, time_window)
            }),
            column: entry.column.clone(),
            function,
            function_name: entry.function.clone(),
            time_window,
            slide_interval,
            output_type,
            max_distinct,
        })
    }
}

/// Feature services resolved against the views: each names views of the
/// repo and features they have; names are unique. Errors name the file, the
/// service and the entry.
fn resolve_services(
    repo: &FeatureRepo,
    services: Vec<(String, RawFeatureService)>,
    errors: &mut Vec<String>,
) -> Vec<FeatureService> {
    let mut resolved: Vec<FeatureService> = Vec::new();
    for (file, raw) in services {
        let at = |i: usize| {
            format!(
                "{file}: feature service `{}`: field `features[{i}]`",
                raw.name
            )
        };
        if resolved.iter().any(|s| s.name == raw.name) {
            errors.push(format!(
                "{file}: feature service `{}` is defined twice",
                raw.name
            ));
            continue;
        }
        let mut features = Vec::new();
        for (i, entry) in raw.features.iter().enumerate() {
            let (view_name, wanted) = match entry {
                RawServiceEntry::View(view) => (view, None),
                RawServiceEntry::Projection { view, features } => (view, Some(features)),
            };
            let Some(view) = repo.view(view_name) else {
                errors.push(format!(
                    "{}: no feature view `{view_name}` in the repo",
                    at(i)
                ));
                continue;
            };
            let names: Vec<String> = match wanted {
                None => view.features.iter().map(|f| f.name.clone()).collect(),
                Some(wanted) => {
                    for name in wanted {
                        if !view.features.iter().any(|f| &f.name == name) {
                            errors.push(format!(
                                "{}: view `{view_name}` has no feature `{name}`",
                                at(i)
                            ));
                        }
                    }
                    wanted.clone()
                }
            };
            features.push((view_name.clone(), names));
        }
        resolved.push(FeatureService {
            name: raw.name,
            features,
        });
    }
    resolved
}

/// Cross-object checks: names are unique, references resolve, kinds fit.
/// Also fills each view's join keys from its entities.
fn check_references(repo: &FeatureRepo) -> Vec<String> {
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    for name in repo
        .entities
        .iter()
        .map(|e| ("entity", &e.name))
        .chain(repo.sources.iter().map(|s| ("source", &s.name)))
        .chain(repo.views.iter().map(|v| ("feature view", &v.name)))
    {
        if !names.insert(name) {
            errors.push(format!("{} `{}` is defined twice", name.0, name.1));
        }
    }
    for source in &repo.sources {
        let batch = match &source.kind {
            SourceKind::Kafka(k) => Some(&k.batch_source),
            SourceKind::Push { batch_source } => Some(batch_source),
            SourceKind::File { .. } => None,
        };
        if let Some(batch) = batch
            && !matches!(
                repo.source(batch).map(|s| &s.kind),
                Some(SourceKind::File { .. })
            )
        {
            errors.push(format!(
                "source `{}`: field `batch_source`: `{batch}` is not a file source of this repo",
                source.name
            ));
        }
    }
    for view in &repo.views {
        if let Some(error) = dead_letter_error(repo, view) {
            errors.push(format!(
                "feature view `{}`: field `dead_letter`: {error}",
                view.name
            ));
        }
    }
    errors
}

/// Any view may keep its dead letters in a Redis stream (the stream, and
/// materialize and push through its transform, write there). A Kafka topic
/// needs the view's source to be a Kafka source (its brokers take the dead
/// letters), and must not be the topic the view reads (its dead letters
/// would come back to it).
fn dead_letter_error(repo: &FeatureRepo, view: &FeatureView) -> Option<String> {
    let DeadLetterTarget::KafkaTopic(topic) = &view.dead_letter else {
        return None;
    };
    let source = repo.source(&view.source).map(|s| &s.kind);
    let Some(SourceKind::Kafka(kafka)) = source else {
        return Some(
            "a kafka topic needs a view on a kafka source (whose brokers take the dead letters); use {type: redis_stream}".into(),
        );
    };
    (*topic == kafka.topic).then(|| {
        format!("topic `{topic}` is the view's own source topic; dead letters would be read again")
    })
}

/// A push source takes its timestamp columns and field mapping from its
/// batch source, as Feast's `PushSource` does.
fn inherit_push_timestamps(repo: &mut FeatureRepo) {
    let batch_sources = repo.sources.clone();
    for source in &mut repo.sources {
        let SourceKind::Push { batch_source } = &source.kind else {
            continue;
        };
        if let Some(batch) = batch_sources.iter().find(|s| &s.name == batch_source) {
            source.timestamp_field = batch.timestamp_field.clone();
            source.created_timestamp_column = batch.created_timestamp_column.clone();
            source.field_mapping = batch.field_mapping.clone();
        }
    }
}

/// Resolves each view's join keys; separate so `check_references` stays read-only.
pub(super) fn resolve_join_keys(repo: &mut FeatureRepo) -> Result<(), RepoError> {
    let mut errors = Vec::new();
    let entities = repo.entities.clone();
    let sources = repo.sources.clone();
    for view in &mut repo.views {
        let file = view
            .defined_in
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = if view.stream {
            "stream feature view"
        } else {
            "feature view"
        };
        let place = Place {
            file: &file,
            kind,
            name: view.name.clone(),
        };
        for entity_name in &view.entities {
            match entities.iter().find(|e| &e.name == entity_name) {
                Some(entity) => view
                    .join_keys
                    .extend(entity.join_keys.iter().map(|k| JoinKey {
                        name: k.clone(),
                        value_type: entity.value_type,
                    })),
                None => errors.push(place.error(
                    "entities",
                    format!("`{entity_name}` is not an entity of this repo"),
                )),
            }
        }
        match sources
            .iter()
            .find(|s| s.name == view.source)
            .map(|s| (&s.kind, s))
        {
            None => errors.push(place.error(
                "source",
                format!("`{}` is not a source of this repo", view.source),
            )),
            Some((SourceKind::File { .. }, _)) if view.stream => errors.push(place.error(
                "source",
                format!(
                    "`{}` is a file source; a stream feature view reads a kafka or push source",
                    view.source
                ),
            )),
            Some((SourceKind::Kafka(_), _)) if !view.stream => errors.push(place.error(
                "source",
                format!(
                    "`{}` is a kafka source; declare the view under stream_feature_views",
                    view.source
                ),
            )),
            Some((_, source)) => {
                for feature in &view.features {
                    if view.join_keys.iter().any(|k| k.name == feature.name)
                        || feature.name == source.timestamp_field
                    {
                        errors.push(place.error(
                            "schema",
                            format!(
                                "feature `{}` has the name of a join key or the timestamp field",
                                feature.name
                            ),
                        ));
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RepoError(errors))
    }
}

fn place<'a>(file: &'a str, kind: &'static str, value: &serde_yaml::Value) -> Place<'a> {
    let name = value
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or("<unnamed>");
    // Escaped: a name is shown before it is checked (see `name_problem`).
    let name = name.escape_debug().to_string();
    Place { file, kind, name }
}

/// The longest object or feature name accepted, in bytes.
const MAX_NAME_BYTES: usize = 256;

/// Why `name` cannot name an object: names reach logs, metrics labels,
/// terminals (`fvhost top`) and other tenants' operators, so control
/// characters (a newline forges a log line, an escape sequence drives a
/// terminal) and bidi overrides are refused, as are very long names.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Some(format!(
            "is {} bytes long; names are at most {MAX_NAME_BYTES}",
            name.len()
        ));
    }
    let bidi = |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    name.chars()
        .find(|c| c.is_control() || bidi(*c))
        .map(|c| {
            format!(
                "holds the character {:?}; names appear in logs, metrics and terminals, so control characters are refused",
                c
            )
        })
}

/// Splits the `type:` key off a mapping.
fn take_type(value: serde_yaml::Value) -> Option<(String, serde_yaml::Value)> {
    let serde_yaml::Value::Mapping(mut map) = value else {
        return None;
    };
    let source_type = map.remove("type")?.as_str()?.to_string();
    Some((source_type, serde_yaml::Value::Mapping(map)))
}

fn duration_text(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

fn resolve(root: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    }
}

/// `transform.config` as key/value text: scalars as written, nested values as JSON.
fn flatten_config(config: &serde_yaml::Mapping) -> Vec<(String, String)> {
    config
        .iter()
        .map(|(key, value)| (scalar_text(key), scalar_text(value)))
        .collect()
}

fn scalar_text(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Null => String::new(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}
