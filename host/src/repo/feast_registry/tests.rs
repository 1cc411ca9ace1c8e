//! Registries built here with the same messages (as `feast apply` would
//! write them), loaded through `repo::load` like a user's repo.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use super::messages::*;
use crate::repo;

const STORE: &str = "project: shop\nregistry: data/registry.db\nonline_store:\n  type: redis\n  connection_string: \"127.0.0.1:6379\"\n";

fn spec(name: &str, value_type: i32) -> FeatureSpec {
    FeatureSpec {
        name: name.into(),
        value_type,
        ..Default::default()
    }
}

fn file_source() -> DataSourceProto {
    DataSourceProto {
        name: "orders_file".into(),
        project: "shop".into(),
        source_type: 1,
        timestamp_field: "ts".into(),
        file_options: Some(FileOptions {
            uri: "data/orders.parquet".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn kafka_source() -> DataSourceProto {
    DataSourceProto {
        name: "orders_stream".into(),
        project: "shop".into(),
        source_type: 3,
        timestamp_field: "ts".into(),
        batch_source: Some(Box::new(file_source())),
        kafka_options: Some(KafkaOptions {
            kafka_bootstrap_servers: "127.0.0.1:9092".into(),
            topic: "orders".into(),
            message_format: Some(StreamFormat {
                json_format: Some(SchemaFormat {
                    schema_json: "customer string, ts timestamp, amount double".into(),
                }),
                ..Default::default()
            }),
            watermark_delay_threshold: Some(DurationProto {
                seconds: 300,
                nanos: 0,
            }),
        }),
        ..Default::default()
    }
}

/// An entity `customer`, Feast's `__dummy`, a file and a Kafka source, and
/// a stream view totalling order amounts per customer over an hour.
fn registry() -> Registry {
    let entity = |name: &str, join_key: &str, value_type| EntityProto {
        spec: Some(EntitySpec {
            name: name.into(),
            project: "shop".into(),
            value_type,
            join_key: join_key.into(),
            ..Default::default()
        }),
    };
    let stream_view = StreamFeatureViewSpec {
        name: "spend_1h".into(),
        project: "shop".into(),
        entities: vec!["customer".into()],
        features: vec![spec("amount", 5), spec("customer", 2)],
        entity_columns: vec![spec("customer", 2)],
        ttl: Some(DurationProto {
            seconds: 86_400,
            nanos: 0,
        }),
        batch_source: Some(file_source()),
        stream_source: Some(kafka_source()),
        online: true,
        aggregations: vec![AggregationProto {
            column: "amount".into(),
            function: "sum".into(),
            time_window: Some(DurationProto {
                seconds: 3600,
                nanos: 0,
            }),
            slide_interval: Some(DurationProto {
                seconds: 3600,
                nanos: 0,
            }),
            name: String::new(),
        }],
        timestamp_field: "ts".into(),
        tiling_hop_size: Some(DurationProto {
            seconds: 300,
            nanos: 0,
        }),
        ..Default::default()
    };
    let global_view = FeatureViewSpec {
        name: "store_totals".into(),
        project: "shop".into(),
        entities: vec!["__dummy".into()],
        features: vec![spec("open_orders", 4)],
        entity_columns: vec![spec("__dummy_id", 2)],
        batch_source: Some(file_source()),
        online: true,
        ..Default::default()
    };
    Registry {
        entities: vec![
            entity("customer", "customer", 2),
            entity("__dummy", "__dummy_id", 0),
        ],
        data_sources: vec![file_source(), kafka_source()],
        stream_feature_views: vec![StreamFeatureViewProto {
            spec: Some(stream_view),
        }],
        feature_views: vec![FeatureViewProto {
            spec: Some(global_view),
        }],
        ..Default::default()
    }
}

fn repo_with(registry_bytes: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feature_store.yaml"), STORE).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/registry.db"), registry_bytes).unwrap();
    dir
}

fn load_error(dir: &Path) -> String {
    repo::load(dir)
        .expect_err("the repo must be refused")
        .to_string()
}

#[test]
fn a_registry_loads_as_the_yaml_definitions_would() {
    let dir = repo_with(&registry().encode_to_vec());
    let repo = repo::load(dir.path()).unwrap();
    assert_eq!(repo.registry, Some(dir.path().join("data/registry.db")));
    assert_eq!(
        repo.entities.len(),
        1,
        "Feast's __dummy entity is not a real one"
    );
    let view = repo.view("spend_1h").unwrap();
    assert!(view.stream);
    assert_eq!(view.source, "orders_stream");
    assert_eq!(view.ttl, Some(std::time::Duration::from_secs(86_400)));
    let windowing = view.windowing.as_ref().unwrap();
    assert_eq!(windowing.hop, std::time::Duration::from_secs(300));
    assert_eq!(view.features[0].name, "sum_amount_3600s");
    assert_eq!(
        windowing
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["amount"],
        "the join key Feast lists among the features is not a column"
    );
    let global = repo.view("store_totals").unwrap();
    assert!(global.entities.is_empty() && global.join_keys.is_empty());
    let kafka = repo.kafka_views().next().unwrap().2;
    assert_eq!(
        kafka.watermark_delay,
        Some(std::time::Duration::from_secs(300))
    );
}

#[test]
fn fields_a_newer_feast_adds_are_skipped() {
    let mut bytes = registry().encode_to_vec();
    // Field 99 (length-delimited), unknown to fvhost: a newer Feast's object list.
    bytes.extend_from_slice(&[0x9a, 0x06, 3, b'n', b'e', b'w']);
    let dir = repo_with(&bytes);
    assert!(repo::load(dir.path()).unwrap().view("spend_1h").is_some());
}

#[test]
fn the_module_and_its_config_come_from_tags() {
    let mut registry = registry();
    let view = registry.stream_feature_views[0].spec.as_mut().unwrap();
    view.tags = HashMap::from([
        ("fvhost.transform.module".into(), "missing.wasm".into()),
        ("fvhost.transform.config.factor".into(), "100".into()),
        ("team".into(), "growth".into()),
    ]);
    let dir = repo_with(&registry.encode_to_vec());
    let error = load_error(dir.path());
    assert!(
        error
            .contains("data/registry.db: stream feature view `spend_1h`: field `transform.module`")
            && error.contains("missing.wasm does not exist"),
        "{error}"
    );
}

#[test]
fn a_stream_view_keeps_an_offline_log_when_its_tag_says_so() {
    let mut registry = registry();
    let view = registry.stream_feature_views[0].spec.as_mut().unwrap();
    view.tags = HashMap::from([("fvhost.offline".into(), "true".into())]);
    let dir = repo_with(&registry.encode_to_vec());
    assert!(
        repo::load(dir.path())
            .unwrap()
            .view("spend_1h")
            .unwrap()
            .offline
    );
    let view = registry.stream_feature_views[0].spec.as_mut().unwrap();
    view.tags = HashMap::from([("fvhost.offline".into(), "yes".into())]);
    let error = load_error(repo_with(&registry.encode_to_vec()).path());
    assert!(error.contains("tag `fvhost.offline` is `yes`"), "{error}");
}

#[test]
fn a_python_udf_without_a_module_is_refused_naming_the_tag() {
    let mut registry = registry();
    let view = registry.stream_feature_views[0].spec.as_mut().unwrap();
    view.user_defined_function = Some(UserDefinedFunction {
        name: "add_ratio".into(),
        body: b"pickled".to_vec(),
    });
    let dir = repo_with(&registry.encode_to_vec());
    let error = load_error(dir.path());
    assert!(
        error.contains("`spend_1h`: its Python udf `add_ratio` cannot run in fvhost")
            && error.contains("fvhost.transform.module"),
        "{error}"
    );
}

#[test]
fn an_unknown_fvhost_tag_is_refused_rather_than_ignored() {
    let mut registry = registry();
    let view = registry.stream_feature_views[0].spec.as_mut().unwrap();
    view.tags = HashMap::from([("fvhost.transfrom.module".into(), "x.wasm".into())]);
    let error = load_error(repo_with(&registry.encode_to_vec()).path());
    assert!(
        error.contains("tag `fvhost.transfrom.module` is not an fvhost setting"),
        "{error}"
    );
}

#[test]
fn a_file_that_is_not_a_registry_is_named() {
    let error = load_error(repo_with(b"\xff\xff\xff\xff not protobuf").path());
    assert!(
        error.contains("registry.db: not a Feast registry"),
        "{error}"
    );
}

#[test]
fn yaml_definitions_beside_a_registry_are_refused() {
    let dir = repo_with(&registry().encode_to_vec());
    std::fs::write(dir.path().join("more.yaml"), "entities: []\n").unwrap();
    let error = load_error(dir.path());
    assert!(
        error.contains("defined twice, by YAML (more.yaml)"),
        "{error}"
    );
}

#[test]
fn an_empty_or_foreign_registry_is_refused_not_taken_for_no_views() {
    let error = load_error(repo_with(b"").path());
    assert!(
        error.contains("holds no views or sources of project `shop`"),
        "{error}"
    );
    let mut foreign = registry();
    for source in &mut foreign.data_sources {
        source.project = "other".into();
    }
    foreign.entities.clear();
    foreign.feature_views.clear();
    foreign.stream_feature_views.clear();
    let error = load_error(repo_with(&foreign.encode_to_vec()).path());
    assert!(error.contains("(it holds project other)"), "{error}");
}

#[test]
fn a_registry_outside_the_repo_is_refused() {
    let elsewhere = repo_with(&registry().encode_to_vec());
    let dir = repo_with(b"");
    std::fs::remove_file(dir.path().join("data/registry.db")).unwrap();
    let outside = elsewhere.path().join("data/registry.db");
    std::fs::write(
        dir.path().join("feature_store.yaml"),
        STORE.replace("data/registry.db", outside.to_str().unwrap()),
    )
    .unwrap();
    let error = load_error(dir.path());
    assert!(error.contains("leads outside the repo folder"), "{error}");
    // A link inside the repo to it is no way around.
    std::os::unix::fs::symlink(&outside, dir.path().join("data/registry.db")).unwrap();
    std::fs::write(dir.path().join("feature_store.yaml"), STORE).unwrap();
    let error = load_error(dir.path());
    assert!(error.contains("leads outside the repo folder"), "{error}");
}

#[test]
fn a_remote_or_missing_registry_is_named() {
    let dir = repo_with(b"");
    std::fs::remove_file(dir.path().join("data/registry.db")).unwrap();
    let error = load_error(dir.path());
    assert!(error.contains("run `feast apply`"), "{error}");
    std::fs::write(
        dir.path().join("feature_store.yaml"),
        STORE.replace("data/registry.db", "s3://bucket/registry.pb"),
    )
    .unwrap();
    let error = load_error(dir.path());
    assert!(
        error.contains("`s3://bucket/registry.pb` is not a local file"),
        "{error}"
    );
}
