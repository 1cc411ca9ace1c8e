//! Windowed aggregations on the stream, end to end: the real `fvhost`
//! binary, librdkafka's mock cluster over TCP and a real redis-server. Every
//! aggregate Feast reads is compared with a computation in this test: after
//! a run in which the host was killed at random moments, and after commits
//! refused by the broker made the host read written batches again (a test
//! that fails when replayed events are applied again).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use fvhost::online::murmur3::feature_field;
use redis::Commands;
use support::*;

const VIEW: &str = "driver_activity";
const TIMEOUT: Duration = Duration::from_secs(120);
/// 2026-01-01T00:00:00Z.
const BASE: i64 = 1_767_225_600;
const HOP: i64 = 300;

/// The view: no transform, the source's rates aggregated over 1 h and 30 min.
fn definitions(topic: &str) -> String {
    let mut yaml = Definitions::new()
        .kafka_source(topic, DRIVER_EVENT_SCHEMA)
        .yaml();
    yaml.push_str(&format!(
        "  - name: {VIEW}\n    entities: [driver]\n    source: {topic}_stream\n    schema:\n      - name: conv_rate\n        dtype: Float64\n      - name: acc_rate\n        dtype: Float64\n    tiling_hop_size: 5m\n    aggregations:\n      - {{column: conv_rate, function: count, time_window: 1h}}\n      - {{column: conv_rate, function: mean, time_window: 1h}}\n      - {{column: acc_rate, function: max, time_window: 30m}}\n      - {{column: acc_rate, function: sum, time_window: 1h, name: acc_total}}\n"
    ));
    yaml
}

#[derive(Debug, Clone, Copy)]
struct Event {
    driver: i64,
    seconds: i64,
    conv_rate: f64,
    acc_rate: f64,
}

/// 12 drivers, 150 events each a minute apart with up to 2 minutes of
/// jitter (out of order, inside the 5-minute watermark), some exactly on
/// hop boundaries.
fn events() -> Vec<Event> {
    let mut seed: u64 = 0x77_1234;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut events = Vec::new();
    for minute in 0..150 {
        for driver in 1..=12 {
            // On every fifth minute, half the events fall exactly on a hop boundary.
            let seconds = if minute % 5 == 0 && next(2) == 0 {
                BASE + minute * 60
            } else {
                BASE + minute * 60 + next(120) as i64
            };
            events.push(Event {
                driver,
                seconds,
                conv_rate: next(1000) as f64 / 1000.0,
                acc_rate: next(1000) as f64 / 1000.0,
            });
        }
    }
    events
}

/// Per driver: (count over 1 h, mean over 1 h, max over 30 min, sum over 1 h)
/// of the windows ending with the hop of the driver's newest event, and that time.
fn expected(events: &[Event]) -> HashMap<i64, (i64, f64, f64, f64, i64)> {
    let mut out = HashMap::new();
    for driver in 1..=12 {
        let mine: Vec<&Event> = events.iter().filter(|e| e.driver == driver).collect();
        let newest = mine.iter().map(|e| e.seconds).max().unwrap();
        let newest_hop = newest.div_euclid(HOP);
        let within = |hops: i64| {
            let from = (newest_hop - hops + 1) * HOP;
            let to = (newest_hop + 1) * HOP;
            mine.iter()
                .filter(move |e| e.seconds >= from && e.seconds < to)
                .copied()
                .collect::<Vec<&Event>>()
        };
        let hour = within(12);
        let half = within(6);
        let count = hour.len() as i64;
        let mean = hour.iter().map(|e| e.conv_rate).sum::<f64>() / count as f64;
        let max = half.iter().map(|e| e.acc_rate).fold(f64::MIN, f64::max);
        let sum = hour.iter().map(|e| e.acc_rate).sum::<f64>();
        out.insert(driver, (count, mean, max, sum, newest));
    }
    out
}

fn message(event: &Event) -> (String, Vec<u8>) {
    (
        event.driver.to_string(),
        driver_event(event.driver, event.seconds, event.conv_rate, event.acc_rate),
    )
}

fn float64_of(bytes: &[u8]) -> f64 {
    assert_eq!(bytes.first(), Some(&0x29), "a Float64 Value: {bytes:?}");
    f64::from_le_bytes(bytes[1..9].try_into().unwrap())
}

/// The driver's stored aggregates, by Feast's field names.
fn stored(redis: &RedisServer, project: &str, driver: i64) -> HashMap<Vec<u8>, Vec<u8>> {
    redis_connection(redis)
        .hgetall(driver_key(driver, project))
        .unwrap()
}

fn field(feature: &str) -> Vec<u8> {
    field_of(VIEW, feature)
}

fn field_of(view: &str, feature: &str) -> Vec<u8> {
    feature_field(view, feature).to_vec()
}

fn counts_match(
    redis: &RedisServer,
    project: &str,
    expected: &HashMap<i64, (i64, f64, f64, f64, i64)>,
) -> bool {
    expected.iter().all(|(driver, (count, ..))| {
        stored(redis, project, *driver).get(&field("count_conv_rate_3600s"))
            == Some(&int64_value(*count))
    })
}

#[test]
fn aggregates_are_exact_after_kills_at_random_moments() {
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("activity", 3).unwrap();
    let repo = TestRepo::new("windowed", &definitions("activity"));
    let rt = runtime();
    let events = events();
    let expected = expected(&events);
    let messages: Vec<_> = events.iter().map(message).collect();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill schedule seed: {seed}");
    for chunk in messages.chunks(messages.len().div_ceil(4)) {
        rt.block_on(broker.produce("activity", chunk)).unwrap();
        let host = HostProcess::start(repo.path(), &broker, &redis);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(300 + (seed >> 33) % 4000));
        assert!(!host.crash().success, "the process was killed");
    }
    let host = HostProcess::start(repo.path(), &broker, &redis);
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !counts_match(&redis, &repo.project, &expected) {
        if std::time::Instant::now() > deadline {
            let hash = stored(&redis, &repo.project, 1);
            panic!(
                "timed out waiting for every driver's count; driver 1 expects {:?} and holds {:?}; host log:\n{}",
                expected[&1],
                hash.get(&field("count_conv_rate_3600s")),
                host.log()
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let exit = host.stop();
    assert!(exit.success, "stderr:\n{}", exit.stderr);
    assert_aggregates(&redis, &repo.project, &expected);
}

fn assert_aggregates(
    redis: &RedisServer,
    project: &str,
    expected: &HashMap<i64, (i64, f64, f64, f64, i64)>,
) {
    assert_view_aggregates(redis, project, VIEW, expected)
}

fn assert_view_aggregates(
    redis: &RedisServer,
    project: &str,
    view: &str,
    expected: &HashMap<i64, (i64, f64, f64, f64, i64)>,
) {
    for (driver, (count, mean, max, sum, newest)) in expected {
        let hash = stored(redis, project, *driver);
        let get = |feature: &str| {
            hash.get(&field_of(view, feature))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(
            get("count_conv_rate_3600s"),
            int64_value(*count),
            "driver {driver}: count"
        );
        let close = |found: f64, want: f64, what: &str| {
            assert!(
                (found - want).abs() < 1e-9,
                "driver {driver}: {what} {found} != {want}"
            )
        };
        close(float64_of(&get("mean_conv_rate_3600s")), *mean, "mean");
        close(float64_of(&get("max_acc_rate_1800s")), *max, "max");
        close(float64_of(&get("acc_total")), *sum, "sum");
        assert_eq!(
            hash.get(format!("_ts:{view}").as_bytes()),
            Some(&timestamp_value(*newest)),
            "driver {driver}: the event time Feast reads is the newest event's"
        );
    }
}

#[test]
fn batches_read_again_after_refused_commits_are_not_counted_twice() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("refusals", 1).unwrap();
    let repo = TestRepo::new("windowed_refusals", &definitions("refusals"));
    let rt = runtime();
    let events = events();
    let messages: Vec<_> = events.iter().map(message).collect();
    let (first, rest) = messages.split_at(messages.len() / 3);
    let host = HostProcess::start(repo.path(), &broker, &redis);
    rt.block_on(broker.produce("refusals", first)).unwrap();
    host.wait_for_log("stream view started", TIMEOUT);
    // Every commit refused for a while, as to a member whose generation moved
    // on: the member rejoins and reads its uncommitted batches again.
    broker.cluster().request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION; 6],
    );
    for chunk in rest.chunks(rest.len().div_ceil(6)) {
        rt.block_on(broker.produce("refusals", chunk)).unwrap();
        std::thread::sleep(Duration::from_millis(700));
    }
    let expected = expected(&events);
    wait_for("every driver's count", TIMEOUT, || {
        counts_match(&redis, &repo.project, &expected)
    });
    let exit = host.stop();
    assert!(exit.success, "stderr:\n{}", exit.stderr);
    let report = exit.report(VIEW);
    assert!(report["commit_failures"].as_u64().unwrap() >= 1, "{report}");
    assert!(
        report["window_events_replayed"].as_u64().unwrap() > 0,
        "a refused commit made the member read written events again: {report}"
    );
    assert_aggregates(&redis, &repo.project, &expected);
}

/// The aggregating view again, over a push source whose batch source is
/// the same Parquet history.
fn with_pushed_view(mut yaml: String) -> String {
    yaml = yaml.replacen(
        "sources:\n",
        "sources:\n  - name: activity_push\n    type: push\n    batch_source: driver_stats_source\n",
        1,
    );
    yaml.push_str(&format!(
        "  - name: {PUSHED_VIEW}\n    entities: [driver]\n    source: activity_push\n    schema:\n      - name: conv_rate\n        dtype: Float64\n      - name: acc_rate\n        dtype: Float64\n    tiling_hop_size: 5m\n    aggregations:\n      - {{column: conv_rate, function: count, time_window: 1h}}\n      - {{column: conv_rate, function: mean, time_window: 1h}}\n      - {{column: acc_rate, function: max, time_window: 30m}}\n      - {{column: acc_rate, function: sum, time_window: 1h, name: acc_total}}\n"
    ));
    yaml
}

const PUSHED_VIEW: &str = "driver_activity_pushed";

/// The events as the view's batch source: one Parquet file.
fn write_history(path: &std::path::Path, events: &[Event]) {
    use arrow_array::{Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("conv_rate", DataType::Float64, false),
        Field::new("acc_rate", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(
                events.iter().map(|e| e.driver),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    events.iter().map(|e| e.seconds * 1_000_000),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from_iter_values(
                events.iter().map(|e| e.conv_rate),
            )),
            Arc::new(Float64Array::from_iter_values(
                events.iter().map(|e| e.acc_rate),
            )),
        ],
    )
    .unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(256))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        schema,
        Some(properties),
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// Runs `fvhost` against `redis` and returns its stdout, after checking it succeeded.
fn fvhost(args: &[&str], redis: &RedisServer) -> String {
    String::from_utf8_lossy(&run_fvhost(args, Some(redis), 0).stdout).into_owned()
}

fn rfc3339(seconds: i64) -> String {
    fvhost::online::EventTime::from_micros(seconds * 1_000_000).to_rfc3339()
}

/// Every driver's fields Feast reads (features and `_ts`), without the window state.
fn feast_fields(redis: &RedisServer, project: &str) -> Vec<HashMap<Vec<u8>, Vec<u8>>> {
    (1..=12)
        .map(|driver| {
            let mut hash = stored(redis, project, driver);
            hash.retain(|field, _| !field.starts_with(b"_fv_state:"));
            hash
        })
        .collect()
}

#[test]
fn stream_and_materialize_over_the_same_events_write_identical_bytes() {
    let events = events();
    let expected = expected(&events);
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("history", 2).unwrap();
    let repo = TestRepo::new("windowed_history", &definitions("history"));
    write_history(&repo.path().join("data/driver_stats.parquet"), &events);
    let path = repo.path().to_str().unwrap();

    let streamed = RedisServer::start().unwrap();
    let host = HostProcess::start(repo.path(), &broker, &streamed);
    let messages: Vec<_> = events.iter().map(message).collect();
    runtime()
        .block_on(broker.produce("history", &messages))
        .unwrap();
    wait_for("every driver's count", TIMEOUT, || {
        counts_match(&streamed, &repo.project, &expected)
    });
    assert!(host.stop().success);
    assert_aggregates(&streamed, &repo.project, &expected);
    let from_stream = feast_fields(&streamed, &repo.project);

    // The whole history, materialized into an empty store.
    let materialized = RedisServer::start().unwrap();
    let (start, end) = (rfc3339(BASE - 3600), rfc3339(BASE + 4 * 3600));
    let summary = fvhost(
        &[
            "materialize",
            "-r",
            path,
            &start,
            &end,
            "--views",
            VIEW,
            "--json",
        ],
        &materialized,
    );
    let summary: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(
        summary["windows"]["events_added"].as_u64(),
        Some(events.len() as u64),
        "{summary}"
    );
    assert_eq!(
        feast_fields(&materialized, &repo.project),
        from_stream,
        "materialize computes the stream's bytes"
    );

    // Over the stream's own state, twice, with edges inside hops: the hops
    // touched are recomputed whole and replaced, so nothing is counted twice.
    let (start, end) = (rfc3339(BASE + 7200 + 17), rfc3339(BASE + 9000 + 1));
    for _ in 0..2 {
        let summary = fvhost(
            &[
                "materialize",
                "-r",
                path,
                &start,
                &end,
                "--views",
                VIEW,
                "--json",
            ],
            &streamed,
        );
        assert!(
            summary.contains("\"read_start\":\"2026-01-01T02:00:00"),
            "{summary}"
        );
        assert_eq!(feast_fields(&streamed, &repo.project), from_stream);
    }
}

#[test]
fn the_offline_log_appends_streamed_events_to_a_single_file_that_materializes_back() {
    let events = events();
    let expected = expected(&events);
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("logged", 2).unwrap();
    let definitions = definitions("logged").replace(
        &format!("  - name: {VIEW}\n"),
        &format!("  - name: {VIEW}\n    offline: true\n"),
    );
    let repo = TestRepo::new("windowed_logged", &definitions);
    let file = repo.path().join("data/driver_stats.parquet");
    assert!(!file.exists());
    let path = repo.path().to_str().unwrap();
    run_fvhost(&["apply", "-r", path], None, 0);

    let streamed = RedisServer::start().unwrap();
    let host = HostProcess::start(repo.path(), &broker, &streamed);
    let messages: Vec<_> = events.iter().map(message).collect();
    runtime()
        .block_on(broker.produce("logged", &messages))
        .unwrap();
    wait_for("every driver's count", TIMEOUT, || {
        counts_match(&streamed, &repo.project, &expected)
    });
    assert!(host.stop().success);
    let logged = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&file).unwrap(),
    )
    .unwrap()
    .metadata()
    .file_metadata()
    .num_rows();
    assert_eq!(logged as usize, events.len(), "every served event, once");

    let materialized = RedisServer::start().unwrap();
    let (start, end) = (rfc3339(BASE - 3600), rfc3339(BASE + 4 * 3600));
    fvhost(
        &["materialize", "-r", path, &start, &end, "--views", VIEW],
        &materialized,
    );
    assert_eq!(
        feast_fields(&materialized, &repo.project),
        feast_fields(&streamed, &repo.project),
        "the single file holds what the stream served"
    );
}

#[test]
fn pushed_events_are_aggregated_like_streamed_ones() {
    let events = events();
    let expected = expected(&events);
    let repo = TestRepo::new("windowed_push", &with_pushed_view(definitions("unused")));
    let path = repo.path().to_str().unwrap();
    let redis = RedisServer::start().unwrap();
    let (first, second) = events.split_at(events.len() / 2);
    for (i, part) in [first, second].into_iter().enumerate() {
        let mut csv = String::from("driver_id,event_timestamp,conv_rate,acc_rate\n");
        for e in part {
            csv.push_str(&format!(
                "{},{},{},{}\n",
                e.driver,
                rfc3339(e.seconds),
                e.conv_rate,
                e.acc_rate
            ));
        }
        let file = repo.path().join(format!("push-{i}.csv"));
        std::fs::write(&file, csv).unwrap();
        let summary = fvhost(
            &[
                "push",
                "-r",
                path,
                "--source",
                "activity_push",
                file.to_str().unwrap(),
                "--to",
                "online",
            ],
            &redis,
        );
        assert!(
            summary.contains(&format!("\"events_aggregated\":{}", part.len())),
            "{summary}"
        );
    }
    assert_view_aggregates(&redis, &repo.project, PUSHED_VIEW, &expected);
}
