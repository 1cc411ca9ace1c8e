//! Python transforms: the guest SDK's pure-Python Arrow IPC against
//! arrow-rs's bytes for every type a Feast feature or key can have; the
//! example transform written in Python writing exactly the Rust example's
//! bytes to Redis; hostile Python transforms contained by a tenant's limits
//! with the reasons a Rust one gets; the author's loop (new, build, test,
//! test-transform). The real `fvhost` binary, the mock Kafka cluster over
//! TCP, real redis-servers.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
    ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use fvhost::transform::ipc;
use redis::Commands;
use support::*;

/// Runs the SDK's round trip over `batch`'s IPC bytes (as the host encodes
/// them); returns the batch the SDK wrote back and its JSON view of the values.
fn python_round_trip(batch: &RecordBatch) -> (RecordBatch, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.arrow"), dir.path().join("out.arrow"));
    std::fs::write(&input, ipc::encode(batch).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(root().join("guest-sdk/python/tests/ipc_roundtrip.py"))
        .arg(&input)
        .arg(&output)
        .output()
        .expect("python3 on the PATH");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = ipc::decode_one(&std::fs::read(&output).unwrap()).unwrap();
    (written, serde_json::from_slice(&out.stdout).unwrap())
}

/// A column of every scalar type and a list of each, nulls in every column.
fn every_type(rows: usize, all_null: bool) -> RecordBatch {
    let valid = |row: usize| !all_null && row % 3 != 1;
    let mut columns: Vec<(&str, ArrayRef)> = Vec::new();
    macro_rules! scalar_and_list {
        ($name:literal, $list:literal, $builder:expr, $value:expr) => {{
            let mut scalar = $builder;
            let mut list = ListBuilder::new($builder);
            for row in 0..rows {
                if valid(row) {
                    scalar.append_value($value(row));
                    list.values().append_value($value(row));
                    list.values().append_null();
                    list.values().append_value($value(row + 1));
                    list.append(true);
                } else {
                    scalar.append_null();
                    list.append(row % 2 == 0 && !all_null);
                }
            }
            columns.push(($name, Arc::new(scalar.finish())));
            columns.push(($list, Arc::new(list.finish())));
        }};
    }
    scalar_and_list!("int32", "int32_list", Int32Builder::new(), |r: usize| {
        (r as i32 - 2) * 1_000_000
    });
    scalar_and_list!("int64", "int64_list", Int64Builder::new(), |r: usize| {
        i64::MIN + r as i64
    });
    scalar_and_list!(
        "float32",
        "float32_list",
        Float32Builder::new(),
        |r: usize| { r as f32 / 3.0 }
    );
    scalar_and_list!(
        "float64",
        "float64_list",
        Float64Builder::new(),
        |r: usize| { 1e300 / (r as f64 + 1.0) }
    );
    scalar_and_list!("bool", "bool_list", BooleanBuilder::new(), |r: usize| {
        r.is_multiple_of(2)
    });
    scalar_and_list!("string", "string_list", StringBuilder::new(), |r: usize| {
        format!("ü{r}🙂")
    });
    scalar_and_list!("bytes", "bytes_list", BinaryBuilder::new(), |r: usize| {
        vec![0u8, 255, r as u8]
    });
    let mut times = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut time_lists = ListBuilder::new(TimestampMicrosecondBuilder::new().with_timezone("UTC"));
    for row in 0..rows {
        let micros = 1_767_225_600_000_000 + row as i64;
        if valid(row) {
            times.append_value(micros);
            time_lists.values().append_value(micros);
            time_lists.append(true);
        } else {
            times.append_null();
            time_lists.append(false);
        }
    }
    columns.push(("event_timestamp", Arc::new(times.finish())));
    columns.push(("timestamp_list", Arc::new(time_lists.finish())));
    RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, c)| (n, c, true)))
        .unwrap()
}

#[test]
fn the_python_sdk_reads_and_writes_every_feast_type_as_arrow_rs_does() {
    for (rows, all_null, what) in [
        (7, false, "values and nulls"),
        (0, false, "an empty batch"),
        (4, true, "all-null columns"),
    ] {
        let batch = every_type(rows, all_null);
        let (written, seen) = python_round_trip(&batch);
        assert_eq!(
            written, batch,
            "{what}: the SDK's bytes decode to the same batch"
        );
        assert_eq!(seen["rows"], rows, "{what}");
        if rows == 7 {
            let columns = &seen["columns"];
            assert_eq!(columns["int64"][1][0], i64::MIN, "{what}");
            assert_eq!(columns["int64"][1][1], serde_json::Value::Null);
            assert_eq!(columns["string"][1][0], "ü0🙂");
            assert_eq!(columns["bytes"][1][2]["hex"], "00ff02");
            assert_eq!(columns["float32_list"][1][0][1], serde_json::Value::Null);
            assert_eq!(columns["event_timestamp"][0], "timestamp[us, tz=UTC]");
        }
    }
}

fn all_hashes(redis: &RedisServer) -> BTreeMap<Vec<u8>, HashMap<Vec<u8>, Vec<u8>>> {
    let mut connection = redis_connection(redis);
    let keys: Vec<Vec<u8>> = connection.keys("*").unwrap();
    keys.into_iter()
        .map(|key| {
            let hash = connection.hgetall(&key).unwrap();
            (key, hash)
        })
        .collect()
}

#[test]
fn the_python_example_writes_the_rust_examples_bytes() {
    const VIEW: &str = "driver_hourly_stats_stream";
    let events: Vec<(String, Vec<u8>)> = (0..400)
        .map(|i| {
            let driver = 1000 + i % 40;
            let rate = |k: i64| ((i * k) % 1000) as f64 / 997.0;
            (
                driver.to_string(),
                driver_event(driver, 1_767_225_600 + i, rate(7), rate(13)),
            )
        })
        .collect();
    let broker = LocalBroker::start(1).unwrap();
    let mut stores = Vec::new();
    for (topic, module) in [
        ("rust_drivers", driver_stats_module()),
        ("python_drivers", python_driver_stats_module()),
    ] {
        broker.create_topic(topic, 2).unwrap();
        runtime().block_on(broker.produce(topic, &events)).unwrap();
        let definitions = Definitions::new()
            .kafka_source(topic, DRIVER_EVENT_SCHEMA)
            .stream_view(
                VIEW,
                topic,
                &[
                    ("conv_percentage", "Float32"),
                    ("acc_percentage", "Float32"),
                ],
                &module,
                "factor: 100",
            )
            .yaml();
        let repo = TestRepo::new("python_parity", &definitions);
        let redis = RedisServer::start().unwrap();
        let host = HostProcess::start(repo.path(), &broker, &redis);
        wait_for("40 drivers written", Duration::from_secs(120), || {
            all_hashes(&redis).len() == 40
        });
        let exit = host.stop();
        assert!(exit.success, "{topic}: {}", exit.stderr);
        assert_eq!(exit.report(VIEW)["rows_out"], 400, "{topic}");
        stores.push((repo, redis));
    }
    let (rust, python) = (all_hashes(&stores[0].1), all_hashes(&stores[1].1));
    assert_eq!(rust.len(), 40);
    assert_eq!(python, rust, "the same keys, fields and bytes");
}

fn fvhost(args: &[&std::ffi::OsStr]) -> std::process::Output {
    run_fvhost(args, None, 0)
}

#[test]
fn a_new_python_transform_passes_its_test_builds_and_applies_from_its_repo_entry() {
    let work = tempfile::tempdir().unwrap();
    let os = |s: &str| std::ffi::OsString::from(s);
    fvhost(&[
        &os("new"),
        &os("scale"),
        &os("--lang"),
        &os("python"),
        &os("--dir"),
        work.path().as_os_str(),
    ]);
    let dir = work.path().join("scale");
    let unit = Command::new("python3")
        .args(["-m", "unittest"])
        .current_dir(&dir)
        .env("PYTHONPATH", root().join("guest-sdk/python"))
        .output()
        .unwrap();
    assert!(
        unit.status.success(),
        "the scaffold's own test: {}",
        String::from_utf8_lossy(&unit.stderr)
    );
    fvhost(&[&os("build"), dir.as_os_str()]);
    let repo = work.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    std::fs::write(
        repo.join("feature_store.yaml"),
        "project: scaffolded\nprovider: local\nonline_store:\n  type: redis\n  connection_string: \"127.0.0.1:6379\"\n",
    )
    .unwrap();
    std::fs::copy(dir.join("view.yaml"), repo.join("view.yaml")).unwrap();
    let applied = fvhost(&[&os("apply"), &os("-r"), repo.as_os_str()]);
    let stdout = String::from_utf8_lossy(&applied.stdout);
    assert!(
        stdout.contains("scale [value_scaled:Float64]") && stdout.contains("probe ok"),
        "{stdout}"
    );
    // The author's loop: sample events through the module as the host runs it.
    let module = dir.join("build/scale.wasm");
    let test_transform = |events: &std::path::Path| {
        fvhost(&[
            &os("test-transform"),
            module.as_os_str(),
            &os("-r"),
            repo.as_os_str(),
            &os("--view"),
            &os("scale"),
            &os("--events"),
            events.as_os_str(),
        ])
    };
    let events = work.path().join("events.jsonl");
    std::fs::write(
        &events,
        "{\"entity_id\": 1, \"event_timestamp\": \"2026-01-01T00:00:00Z\", \"value\": 0.5}\n\
         {\"entity_id\": 2, \"event_timestamp\": \"2026-01-01T00:00:01Z\", \"value\": -1.0}\n\
         {\"entity_id\": 3, \"event_timestamp\": \"2026-01-01T00:00:02Z\"}\n",
    )
    .unwrap();
    let tested = test_transform(&events);
    let stdout = String::from_utf8_lossy(&tested.stdout);
    // CSV too, its columns cast to the view's declared types as a push's are.
    let csv = work.path().join("events.csv");
    std::fs::write(
        &csv,
        "entity_id,event_timestamp,value\n7,2026-01-01T00:00:00Z,2\n8,2026-01-01T00:00:01Z,-3\n",
    )
    .unwrap();
    let from_csv = test_transform(&csv);
    let csv_out = String::from_utf8_lossy(&from_csv.stdout);
    assert!(
        csv_out.contains("batch 0: 2 events in, 1 rows out, 1 refused")
            && csv_out.contains("7         | 2026-01-01T00:00:00 | 20.0"),
        "{csv_out}"
    );
    for expected in [
        "batch 0: 3 events in, 2 rows out, 1 refused",
        "entity_id | event_timestamp     | value_scaled",
        "1         | 2026-01-01T00:00:00 | 5.0",
        "3         | 2026-01-01T00:00:02 | null",
        "row 1: rejected_by_transform: value -1.0 is negative",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in:\n{stdout}");
    }
}

/// The hostile Python transform (tests/guests/python_hostile), built once.
fn python_hostile_module() -> std::path::PathBuf {
    let dir = root().join("tests/guests/python_hostile");
    let os = |s: &str| std::ffi::OsString::from(s);
    fvhost(&[&os("build"), dir.as_os_str()]);
    dir.join("build/python_hostile.wasm")
}

/// Each Python attack and what its dead letters must say.
const PYTHON_ATTACKS: &[(&str, &str)] = &[
    ("loop", "time limit of 300 ms per batch exceeded"),
    (
        "memory",
        "MemoryError: out of memory: the transform reached the view's memory limit",
    ),
    (
        "escape",
        "filesystem: denied (FileNotFoundError); environment: 0 variables, 0 arguments; network: denied (no socket module)",
    ),
    (
        "raise",
        "transform.py:49: ValueError: hostile guest raised on purpose",
    ),
    ("exit", "SystemExit: the transform called exit(3)"),
];

#[test]
fn hostile_python_transforms_are_contained_by_the_tenants_limits() {
    let module = python_hostile_module();
    let mut definitions = Definitions::new();
    for (attack, _) in PYTHON_ATTACKS {
        definitions = definitions
            .kafka_source(attack, DRIVER_EVENT_SCHEMA)
            .stream_view(
                &format!("py_{attack}"),
                attack,
                &[("conv_rate", "Float64")],
                &module,
                &format!("attack: {attack}"),
            )
            .dead_letter("{type: redis_stream}");
    }
    let repo = TestRepo::new("py_hostile", &definitions.yaml());
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("host.yaml");
    std::fs::write(
        &config,
        format!(
            "tenants:\n  - name: py_hostile\n    repo: {}\n    token_env: PY_HOSTILE_TOKEN\n    limits: {{memory: 32MiB, time_per_batch: 300ms, output: 1MiB, output_rows: 1000, instances_in_flight: 1}}\n",
            repo.path().display()
        ),
    )
    .unwrap();
    let broker = LocalBroker::start(1).unwrap();
    let redis = RedisServer::start().unwrap();
    for (attack, _) in PYTHON_ATTACKS {
        broker.create_topic(attack, 1).unwrap();
        let events: Vec<_> = (1..4)
            .map(|d| (d.to_string(), driver_event(d, 1_767_225_600, 0.5, 0.25)))
            .collect();
        runtime().block_on(broker.produce(attack, &events)).unwrap();
    }
    let host = HostProcess::start_config(
        &config,
        &broker,
        &redis,
        &[("PY_HOSTILE_TOKEN", "py-hostile-token-4a1c")],
    );
    let mut connection = redis_connection(&redis);
    for (attack, reason) in PYTHON_ATTACKS {
        let view = format!("py_{attack}");
        wait_for(&view, Duration::from_secs(180), || {
            redis_dead_letters(&mut connection, "py_hostile", &view).len() == 3
        });
        for letter in redis_dead_letters(&mut connection, "py_hostile", &view) {
            assert_eq!(text(&letter, "kind"), "batch_failed", "{view}: {letter:?}");
            assert!(
                text(&letter, "reason").contains(reason),
                "{view}: {:?} should say {reason:?}",
                text(&letter, "reason")
            );
        }
    }
    let exit = host.stop();
    assert!(
        exit.success,
        "the host survived every attack: {}",
        exit.stderr
    );
}
