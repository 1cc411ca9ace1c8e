//! Running from Feast's own registry: the `registry.db` that `feast apply`
//! writes from the driver-stats example's Python definitions
//! (`examples/driver_ranking_feast`) gives the same Redis bytes as the
//! example's YAML repo (`examples/driver_ranking`), streaming and
//! materializing alike.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;

const TIMEOUT: Duration = Duration::from_secs(90);
/// A driver whose only event is produced last: once both views have
/// written it, every event before it (one partition) has been written.
const LAST_DRIVER: i64 = 999_999;

/// The two example repos side by side in a temporary folder, with the
/// transform where both name it (`../transforms/target/...`) and the same
/// history in each.
struct Examples {
    dir: tempfile::TempDir,
}

impl Examples {
    fn new(events: &[Event]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let module = dir
            .path()
            .join("transforms/target/wasm32-wasip2/release/driver_stats.wasm");
        std::fs::create_dir_all(module.parent().unwrap()).unwrap();
        std::fs::copy(driver_stats_module(), &module).unwrap();
        for (example, files) in [
            (
                "driver_ranking",
                ["feature_store.yaml", "driver_ranking.yaml"],
            ),
            (
                "driver_ranking_feast",
                ["feature_store.yaml", "definitions.py"],
            ),
        ] {
            let repo = dir.path().join(example);
            std::fs::create_dir_all(repo.join("data")).unwrap();
            for file in files {
                std::fs::copy(
                    root().join("examples").join(example).join(file),
                    repo.join(file),
                )
                .unwrap();
            }
            write_history(&repo.join("data/driver_stats.parquet"), events);
        }
        Self { dir }
    }

    fn yaml(&self) -> PathBuf {
        self.dir.path().join("driver_ranking")
    }

    fn feast(&self) -> PathBuf {
        self.dir.path().join("driver_ranking_feast")
    }
}

#[derive(Clone, Copy)]
struct Event {
    driver: i64,
    seconds: i64,
    conv_rate: f64,
    acc_rate: f64,
}

/// Events over the last two hours for 30 drivers, in time order, then one
/// for [`LAST_DRIVER`].
fn events() -> Vec<Event> {
    let now = chrono::Utc::now().timestamp();
    let start = now - 2 * 3600;
    let mut events: Vec<Event> = (0..240)
        .map(|i| Event {
            driver: 1000 + (i * 7) % 30,
            seconds: start + i * 29,
            conv_rate: (i % 17) as f64 / 17.0,
            acc_rate: (i % 5) as f64 / 5.0,
        })
        .collect();
    events.push(Event {
        driver: LAST_DRIVER,
        seconds: now - 60,
        conv_rate: 0.5,
        acc_rate: 0.5,
    });
    events
}

fn write_history(path: &Path, events: &[Event]) {
    use arrow_array::{Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, false),
        Field::new("event_timestamp", time.clone(), false),
        Field::new("conv_rate", DataType::Float64, false),
        Field::new("acc_rate", DataType::Float64, false),
        Field::new("created", time, false),
    ]));
    let micros = || {
        TimestampMicrosecondArray::from_iter_values(events.iter().map(|e| e.seconds * 1_000_000))
            .with_timezone("UTC")
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(
                events.iter().map(|e| e.driver),
            )),
            Arc::new(micros()),
            Arc::new(Float64Array::from_iter_values(
                events.iter().map(|e| e.conv_rate),
            )),
            Arc::new(Float64Array::from_iter_values(
                events.iter().map(|e| e.acc_rate),
            )),
            Arc::new(micros()),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// Streams `events` through `fvhost run -r repo` into `redis`, until the
/// last one is written by both views.
fn stream(repo: &Path, events: &[Event], redis: &RedisServer) {
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("drivers", 1).unwrap();
    let host = HostProcess::start(repo, &broker, redis);
    let messages: Vec<_> = events
        .iter()
        .map(|e| {
            let body = driver_event(e.driver, e.seconds, e.conv_rate, e.acc_rate);
            (e.driver.to_string(), body)
        })
        .collect();
    runtime()
        .block_on(broker.produce("drivers", &messages))
        .unwrap();
    let last = driver_key(LAST_DRIVER, "driver_ranking");
    wait_for("the last event in both views", TIMEOUT, || {
        let hash: std::collections::HashMap<Vec<u8>, Vec<u8>> =
            redis::Commands::hgetall(&mut redis_connection(redis), &last).unwrap();
        hash.contains_key(&b"_ts:driver_hourly_stats_stream"[..])
            && hash.contains_key(&b"_ts:driver_activity_1h"[..])
    });
    let exit = host.stop();
    assert!(exit.success, "{}", exit.stderr);
}

#[test]
fn a_feast_registry_runs_and_materializes_like_the_yaml_repo() {
    let events = events();
    let examples = Examples::new(&events);
    feast_apply(&examples.feast());
    assert!(examples.feast().join("data/registry.db").is_file());

    let out = run_fvhost(
        &["apply", "-r", examples.feast().to_str().unwrap()],
        None,
        0,
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("driver_hourly_stats_stream") && report.contains("driver_activity_1h"),
        "{report}"
    );

    let from_yaml = RedisServer::start().unwrap();
    let from_registry = RedisServer::start().unwrap();
    stream(&examples.yaml(), &events, &from_yaml);
    stream(&examples.feast(), &events, &from_registry);
    let streamed = redis_dump(&from_yaml);
    assert_eq!(streamed.len(), 31, "30 drivers and the last one");
    assert_eq!(
        redis_dump(&from_registry),
        streamed,
        "fvhost run: registry vs YAML"
    );

    for redis in [&from_yaml, &from_registry] {
        let _: () = redis::cmd("FLUSHALL")
            .query(&mut redis_connection(redis))
            .unwrap();
    }
    let (start, end) = (
        chrono::DateTime::from_timestamp(events[0].seconds - 3600, 0)
            .unwrap()
            .to_rfc3339(),
        chrono::Utc::now().to_rfc3339(),
    );
    for (repo, redis) in [
        (examples.yaml(), &from_yaml),
        (examples.feast(), &from_registry),
    ] {
        run_fvhost(
            &["materialize", "-r", repo.to_str().unwrap(), &start, &end],
            Some(redis),
            0,
        );
    }
    let materialized = redis_dump(&from_yaml);
    assert_eq!(materialized.len(), 31);
    assert_eq!(
        redis_dump(&from_registry),
        materialized,
        "fvhost materialize: registry vs YAML"
    );
}
