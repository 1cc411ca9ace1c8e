//! The batch side: Parquet history materialized through the same transforms
//! and writer as the stream, incremental runs, push, and the offline log,
//! against real Parquet files and a real redis-server.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use fvhost::online::murmur3::feature_field;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use redis::Commands;
use support::*;

const VIEW: &str = "driver_hourly_stats";
const HOUR: i64 = 3_600_000_000;
/// 2027-01-15T00:00:00Z in microseconds.
const DAY0: i64 = 1_767_225_600_000_000 - 1_767_225_600_000_000 % (24 * HOUR);

/// One row of the driver-stats history.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Row {
    driver: i64,
    event: i64,
    created: i64,
    conv: f32,
    acc: f32,
    trips: i64,
}

/// Deterministic rows: `drivers` x `per_driver` events over four days, sorted by time.
fn history(drivers: i64, per_driver: i64) -> Vec<Row> {
    let mut state: u64 = 42;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    let mut rows = Vec::new();
    for driver in 1000..1000 + drivers {
        for _ in 0..per_driver {
            let event = DAY0 + (next() % (96 * 3600)) as i64 * 1_000_000;
            rows.push(Row {
                driver,
                event,
                created: event + (next() % 1000) as i64,
                conv: (next() % 1000) as f32 / 1000.0,
                acc: (next() % 1000) as f32 / 1000.0,
                trips: (next() % 500) as i64,
            });
        }
    }
    rows.sort_by_key(|r| r.event);
    rows
}

fn stats_schema() -> Arc<Schema> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, false),
        Field::new("event_timestamp", ts.clone(), false),
        Field::new("created", ts, false),
        Field::new("conv_rate", DataType::Float32, true),
        Field::new("acc_rate", DataType::Float32, true),
        Field::new("avg_daily_trips", DataType::Int64, true),
    ]))
}

fn to_batch(rows: &[Row]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.driver))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.event))
                .with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.created))
                .with_timezone("UTC"),
        ),
        Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.conv))),
        Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.acc))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.trips))),
    ];
    RecordBatch::try_new(stats_schema(), columns).unwrap()
}

/// Writes rows as Parquet with small row groups, so pruning has something to skip.
fn write_parquet(path: &Path, rows: &[Row]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1000))
        .build();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        stats_schema(),
        Some(properties),
    )
    .unwrap();
    writer.write(&to_batch(rows)).unwrap();
    writer.close().unwrap();
}

/// Writes rows as a CSV file with the push source's columns.
fn write_csv(path: &Path, rows: &[Row]) {
    let mut text =
        String::from("driver_id,event_timestamp,created,conv_rate,acc_rate,avg_daily_trips\n");
    for r in rows {
        text.push_str(&format!(
            "{},{},{},{},{},{}\n",
            r.driver,
            rfc3339(r.event),
            rfc3339(r.created),
            r.conv,
            r.acc,
            r.trips
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// The newest row per driver with event time in [start, end], computed here,
/// independently of fvhost: greatest (event, created).
fn newest_in(rows: &[Row], start: i64, end: i64) -> HashMap<i64, Row> {
    let mut newest: HashMap<i64, Row> = HashMap::new();
    for row in rows.iter().filter(|r| r.event >= start && r.event <= end) {
        let kept = newest.entry(row.driver).or_insert(*row);
        if (row.event, row.created) > (kept.event, kept.created) {
            *kept = *row;
        }
    }
    newest
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The exact hash of one driver for `view`, from Feast's documented layout.
fn expected_hash(view: &str, row: &Row) -> HashMap<Vec<u8>, Vec<u8>> {
    let mut ts = vec![0x08];
    varint((row.event / 1_000_000) as u64, &mut ts);
    if row.event % 1_000_000 != 0 {
        ts.push(0x10);
        varint((row.event % 1_000_000 * 1000) as u64, &mut ts);
    }
    let mut trips = vec![0x20];
    varint(row.trips as u64, &mut trips);
    HashMap::from([
        (format!("_ts:{view}").into_bytes(), ts),
        (
            feature_field(view, "conv_rate").to_vec(),
            float_value(row.conv),
        ),
        (
            feature_field(view, "acc_rate").to_vec(),
            float_value(row.acc),
        ),
        (feature_field(view, "avg_daily_trips").to_vec(), trips),
    ])
}

fn assert_redis_holds(
    redis: &RedisServer,
    project: &str,
    view: &str,
    expected: &HashMap<i64, Row>,
) {
    let mut connection = redis_connection(redis);
    let dbsize: usize = redis::cmd("DBSIZE").query(&mut connection).unwrap();
    assert_eq!(
        dbsize,
        expected.len(),
        "one hash per driver with rows in range"
    );
    for (driver, row) in expected {
        let stored: HashMap<Vec<u8>, Vec<u8>> =
            connection.hgetall(driver_key(*driver, project)).unwrap();
        assert_eq!(stored, expected_hash(view, row), "driver {driver}");
    }
}

const DEFINITIONS: &str = r#"
entities:
  - name: driver
    join_keys: [driver_id]
    value_type: INT64
sources:
  - name: driver_stats_source
    type: file
    path: data/driver_stats
    timestamp_field: event_timestamp
    created_timestamp_column: created
  - name: driver_stats_push
    type: push
    batch_source: driver_stats_source
feature_views:
  - name: driver_hourly_stats
    entities: [driver]
    ttl: 2d
    source: driver_stats_source
    schema:
      - {name: conv_rate, dtype: Float32}
      - {name: acc_rate, dtype: Float32}
      - {name: avg_daily_trips, dtype: Int64}
  - name: driver_hourly_stats_fresh
    entities: [driver]
    ttl: 2d
    source: driver_stats_push
    schema:
      - {name: conv_rate, dtype: Float32}
      - {name: acc_rate, dtype: Float32}
      - {name: avg_daily_trips, dtype: Int64}
"#;

fn fvhost(args: &[&str], redis: &RedisServer) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    fvhost_exiting(&args, redis, 0)
}

/// Runs `fvhost` with `--redis`; returns its output after checking its
/// exit code is `code`.
fn fvhost_exiting(args: &[&std::ffi::OsStr], redis: &RedisServer, code: i32) -> Output {
    run_fvhost(args, Some(redis), code)
}

fn summaries(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn rfc3339(micros: i64) -> String {
    fvhost::online::EventTime::from_micros(micros).to_rfc3339()
}

#[test]
fn a_view_without_entities_is_written_and_read_under_feasts_dummy_key() {
    let definitions = format!(
        "{DEFINITIONS}  - name: fleet_stats\n    entities: []\n    ttl: 2d\n    source: driver_stats_source\n    schema:\n      - {{name: conv_rate, dtype: Float32}}\n"
    );
    let repo = TestRepo::new("batch_entityless", &definitions);
    let rows = history(20, 5);
    write_parquet(&repo.path().join("data/driver_stats/part-0.parquet"), &rows);
    let redis = RedisServer::start().unwrap();
    fvhost(
        &[
            "materialize",
            "-r",
            repo.path().to_str().unwrap(),
            &rfc3339(DAY0 - 96 * HOUR),
            &rfc3339(DAY0 + 96 * HOUR),
            "--views",
            "fleet_stats",
        ],
        &redis,
    );
    // Feast's key for the entity-less case: join key `__dummy_id`, value "".
    let mut key = vec![1, 0, 0, 0, 2, 0, 0, 0, 10, 0, 0, 0];
    key.extend_from_slice(b"__dummy_id");
    key.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
    key.extend_from_slice(repo.project.as_bytes());
    let stored: HashMap<Vec<u8>, Vec<u8>> = redis_connection(&redis).hgetall(&key).unwrap();
    let newest = rows.iter().max_by_key(|r| (r.event, r.created)).unwrap();
    assert_eq!(
        stored.get(feature_field("fleet_stats", "conv_rate").as_slice()),
        Some(&float_value(newest.conv)),
        "the newest row of all: {stored:?}"
    );

    let from_cli = fvhost(
        &[
            "get-online-features",
            "-r",
            repo.path().to_str().unwrap(),
            "--features",
            "fleet_stats:conv_rate",
        ],
        &redis,
    );
    let response: serde_json::Value = serde_json::from_slice(&from_cli.stdout).unwrap();
    assert_eq!(
        response["results"][0]["values"][0].as_f64(),
        Some(f64::from(newest.conv)),
        "no --entity for a view without entities: {response}"
    );

    let (_server, port) = start_serve(&repo, &redis);
    let request = serde_json::json!({"entities": {}, "features": ["fleet_stats:conv_rate"]});
    let (status, body) = http(port, "POST", "/get-online-features", Some(&request));
    assert_eq!(status, 200, "{body}");
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    let value = response["results"].as_array().unwrap().last().unwrap()["values"][0].clone();
    assert_eq!(value.as_f64(), Some(f64::from(newest.conv)), "{body}");

    // Beside a keyed view, the entity-less view answers every entity row.
    let request = serde_json::json!({
        "entities": {"driver_id": [rows[0].driver, 424_242]},
        "features": ["driver_hourly_stats:conv_rate", "fleet_stats:conv_rate"],
        "full_feature_names": true
    });
    let (status, body) = http(port, "POST", "/get-online-features", Some(&request));
    assert_eq!(status, 200, "{body}");
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    let fleet = &response["results"][2]["values"];
    assert_eq!(fleet[0].as_f64(), Some(f64::from(newest.conv)), "{body}");
    assert_eq!(fleet[1].as_f64(), Some(f64::from(newest.conv)), "{body}");
}

#[test]
fn materialize_writes_exactly_the_newest_row_per_driver_inside_the_range() {
    let repo = TestRepo::new("batch_range", DEFINITIONS);
    let mut rows = history(800, 8);
    // Rows exactly on both bounds, and a tie on event time broken by created.
    let (start, end) = (DAY0 + 30 * HOUR, DAY0 + 66 * HOUR);
    rows.push(Row {
        driver: 5000,
        event: start,
        created: start,
        conv: 0.25,
        acc: 0.5,
        trips: 1,
    });
    rows.push(Row {
        driver: 5001,
        event: end,
        created: end,
        conv: 0.75,
        acc: 0.5,
        trips: 2,
    });
    rows.push(Row {
        driver: 5002,
        event: end + 1,
        created: end,
        conv: 0.75,
        acc: 0.5,
        trips: 3,
    });
    rows.push(Row {
        driver: 5003,
        event: start + HOUR,
        created: start + 5,
        conv: 0.5,
        acc: 0.5,
        trips: 4,
    });
    rows.push(Row {
        driver: 5003,
        event: start + HOUR,
        created: start + 9,
        conv: 0.125,
        acc: 0.5,
        trips: 5,
    });
    rows.sort_by_key(|r| r.event);
    write_parquet(&repo.path().join("data/driver_stats/part-0.parquet"), &rows);
    let redis = RedisServer::start().unwrap();

    let out = fvhost(
        &[
            "materialize",
            "-r",
            repo.path().to_str().unwrap(),
            &rfc3339(start),
            &rfc3339(end),
            "--views",
            VIEW,
            "--json",
        ],
        &redis,
    );

    let expected = newest_in(&rows, start, end);
    assert!(
        expected.contains_key(&5000)
            && expected.contains_key(&5001)
            && !expected.contains_key(&5002)
    );
    assert_eq!(
        expected[&5003].trips, 5,
        "the later created timestamp wins a tie"
    );
    assert_redis_holds(&redis, &repo.project, VIEW, &expected);
    let summary = &summaries(&out)[0];
    let in_range = rows
        .iter()
        .filter(|r| r.event >= start && r.event <= end)
        .count();
    assert_eq!(summary["rows_in_range"], in_range);
    assert_eq!(summary["entities"], expected.len());
    assert!(
        summary["row_groups_read"].as_u64() < summary["row_groups"].as_u64(),
        "row groups outside the range are pruned: {summary}"
    );
}

#[test]
fn materialize_incremental_covers_consecutive_ranges_with_no_gap_and_no_overlap() {
    let repo = TestRepo::new("batch_incremental", DEFINITIONS);
    let rows = history(500, 8);
    write_parquet(&repo.path().join("data/driver_stats/part-0.parquet"), &rows);
    let redis = RedisServer::start().unwrap();
    let path = repo.path().to_str().unwrap().to_string();
    let (end1, end2) = (DAY0 + 60 * HOUR, DAY0 + 90 * HOUR);

    let first = summaries(&fvhost(
        &[
            "materialize-incremental",
            "-r",
            &path,
            &rfc3339(end1),
            "--views",
            VIEW,
            "--json",
        ],
        &redis,
    ));
    let second = summaries(&fvhost(
        &[
            "materialize-incremental",
            "-r",
            &path,
            &rfc3339(end2),
            "--views",
            VIEW,
            "--json",
        ],
        &redis,
    ));

    let ttl_start = end1 - 48 * HOUR;
    assert_eq!(
        first[0]["start"],
        rfc3339(ttl_start),
        "a first run starts at END - ttl"
    );
    assert_eq!(
        second[0]["start"],
        rfc3339(end1 + 1),
        "the next run starts just after the last end"
    );
    let count =
        |a: i64, b: i64| rows.iter().filter(|r| r.event >= a && r.event <= b).count() as u64;
    assert_eq!(
        first[0]["rows_in_range"].as_u64().unwrap() + second[0]["rows_in_range"].as_u64().unwrap(),
        count(ttl_start, end2),
        "no gap, no overlap"
    );
    assert_redis_holds(
        &redis,
        &repo.project,
        VIEW,
        &newest_in(&rows, ttl_start, end2),
    );

    let again = summaries(&fvhost(
        &[
            "materialize-incremental",
            "-r",
            &path,
            &rfc3339(end2),
            "--views",
            VIEW,
            "--json",
        ],
        &redis,
    ));
    assert!(again.is_empty(), "nothing left to do up to the same end");

    std::fs::write(
        repo.path().join("data/driver_stats/broken.parquet"),
        b"not parquet",
    )
    .unwrap();
    let failed = Command::new(env!("CARGO_BIN_EXE_fvhost"))
        .args([
            "materialize-incremental",
            "-r",
            &path,
            &rfc3339(end2 + HOUR),
            "--views",
            VIEW,
            "--redis",
            &redis.url(),
        ])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("broken.parquet"),
        "the error names the file"
    );
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo.path().join(".fvhost/materialize_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["views"][VIEW]["end_micros"], end2,
        "a failed run records nothing"
    );
}

#[test]
fn push_to_offline_then_materialize_equals_push_to_online() {
    let repo = TestRepo::new("batch_push", DEFINITIONS);
    let rows = history(300, 3);
    let csv = repo.path().join("push.csv");
    write_csv(&csv, &rows);
    let path = repo.path().to_str().unwrap().to_string();
    let fresh = "driver_hourly_stats_fresh";

    let online = RedisServer::start().unwrap();
    fvhost(
        &[
            "push",
            "-r",
            &path,
            "--source",
            "driver_stats_push",
            csv.to_str().unwrap(),
            "--to",
            "online",
        ],
        &online,
    );
    assert_redis_holds(
        &online,
        &repo.project,
        fresh,
        &newest_in(&rows, i64::MIN, i64::MAX),
    );

    let offline = RedisServer::start().unwrap();
    let pushed = summaries(&fvhost(
        &[
            "push",
            "-r",
            &path,
            "--source",
            "driver_stats_push",
            csv.to_str().unwrap(),
            "--to",
            "offline",
        ],
        &offline,
    ));
    assert!(
        pushed[0]["offline_file"]
            .as_str()
            .unwrap()
            .contains("data/driver_stats/push-driver_stats_push-")
    );
    let dbsize: usize = redis::cmd("DBSIZE")
        .query(&mut redis_connection(&offline))
        .unwrap();
    assert_eq!(dbsize, 0, "an offline push writes nothing online");
    fvhost(
        &[
            "materialize",
            "-r",
            &path,
            &rfc3339(DAY0),
            &rfc3339(DAY0 + 96 * HOUR),
            "--views",
            fresh,
        ],
        &offline,
    );
    assert_redis_holds(
        &offline,
        &repo.project,
        fresh,
        &newest_in(&rows, i64::MIN, i64::MAX),
    );
}

#[test]
fn an_offline_push_appends_to_a_single_file_source_as_feast_does() {
    let definitions = DEFINITIONS.replace(
        "path: data/driver_stats\n",
        "path: data/driver_stats.parquet\n",
    );
    let repo = TestRepo::new("batch_single_file", &definitions);
    let rows = history(200, 2);
    let (old, pushed) = rows.split_at(rows.len() / 2);
    let file = repo.path().join("data/driver_stats.parquet");
    write_parquet(&file, old);
    let csv = repo.path().join("push.csv");
    write_csv(&csv, pushed);
    let path = repo.path().to_str().unwrap().to_string();
    let redis = RedisServer::start().unwrap();
    let push = |csv: &Path, code| {
        let args = ["push", "-r", &path, "--source", "driver_stats_push"];
        let mut args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        args.extend([csv.as_os_str(), "--to".as_ref(), "offline".as_ref()]);
        fvhost_exiting(&args, &redis, code)
    };
    let summary = summaries(&push(&csv, 0));
    assert!(
        summary[0]["offline_file"]
            .as_str()
            .unwrap()
            .ends_with("data/driver_stats.parquet"),
        "{summary:?}"
    );
    let in_file: usize = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&file).unwrap(),
    )
    .unwrap()
    .metadata()
    .file_metadata()
    .num_rows() as usize;
    assert_eq!(in_file, rows.len(), "the old rows and the pushed ones");
    let left: Vec<String> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "driver_stats.parquet" && !n.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "nothing staged is left: {left:?}");

    // Rows that do not fit the file are refused before anything is written.
    let odd = repo.path().join("odd.csv");
    std::fs::write(
        &odd,
        "driver_id,event_timestamp,created,conv_rate,acc_rate,avg_daily_trips,surge\n1,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z,0.5,0.5,1,2\n",
    )
    .unwrap();
    let refused = push(&odd, 1);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("the file has no column `surge`"),
        "{stderr}"
    );

    fvhost(
        &[
            "materialize",
            "-r",
            &path,
            &rfc3339(DAY0),
            &rfc3339(DAY0 + 96 * HOUR),
            "--views",
            "driver_hourly_stats",
        ],
        &redis,
    );
    assert_redis_holds(
        &redis,
        &repo.project,
        "driver_hourly_stats",
        &newest_in(&rows, i64::MIN, i64::MAX),
    );
}

#[test]
fn the_stream_offline_log_materializes_back_to_the_values_served_online() {
    let definitions = Definitions::new()
        .driver_stats("driver_stats_view", "drivers", "Float32")
        .yaml();
    let definitions = definitions
        .replace("path: data/driver_stats.parquet", "path: data/driver_stats")
        .replace("    ttl: 1d\n", "    ttl: 1d\n    offline: true\n");
    let repo = TestRepo::new("batch_offline_log", &definitions);
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("drivers", 2).unwrap();
    let base = 1_767_225_600;
    let messages: Vec<(String, Vec<u8>)> = (0..3i64)
        .flat_map(|round| {
            (1..201i64).map(move |d| {
                (
                    d.to_string(),
                    driver_event(
                        d,
                        base + round * 60 + d,
                        (d % 10) as f64 / 10.0,
                        (round + 1) as f64 / 10.0,
                    ),
                )
            })
        })
        .collect();
    runtime()
        .block_on(broker.produce("drivers", &messages))
        .unwrap();

    let host = HostProcess::start(repo.path(), &broker, &redis);
    let mut connection = redis_connection(&redis);
    wait_for("every driver served", Duration::from_secs(90), || {
        (1..201i64).all(|d| {
            let ts: Option<Vec<u8>> = connection
                .hget(driver_key(d, &repo.project), "_ts:driver_stats_view")
                .unwrap();
            ts == Some(timestamp_value(base + 120 + d))
        })
    });
    let exit = host.stop();
    assert!(exit.success, "{}", exit.stderr);

    let log_dir = repo.path().join("data/driver_stats");
    let files: Vec<_> = walk(&log_dir);
    assert!(
        files
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "parquet")),
        "no half-written file is left visible: {files:?}"
    );
    assert!(
        files.iter().all(|f| f
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("date=")),
        "{files:?}"
    );

    let replay = RedisServer::start().unwrap();
    let start = chrono::DateTime::from_timestamp(base - 60, 0)
        .unwrap()
        .to_rfc3339();
    let end = chrono::DateTime::from_timestamp(base + 3600, 0)
        .unwrap()
        .to_rfc3339();
    fvhost(
        &[
            "materialize",
            "-r",
            repo.path().to_str().unwrap(),
            &start,
            &end,
        ],
        &replay,
    );
    let mut served = redis_connection(&redis);
    let mut replayed = redis_connection(&replay);
    for d in 1..201i64 {
        let key = driver_key(d, &repo.project);
        let a: HashMap<Vec<u8>, Vec<u8>> = served.hgetall(&key).unwrap();
        let b: HashMap<Vec<u8>, Vec<u8>> = replayed.hgetall(&key).unwrap();
        assert_eq!(
            a, b,
            "driver {d}: materialized from the offline log == served online"
        );
        assert_eq!(a.len(), 3);
    }
}

/// A `fvhost serve` child, killed when dropped (also when a test panics).
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `fvhost serve` over `repo` on a free port, once it answers /health.
fn start_serve(repo: &TestRepo, redis: &RedisServer) -> (Serve, u16) {
    start_serve_with(repo, redis, &[])
}

/// [`start_serve`] with more `serve` arguments.
fn start_serve_with(repo: &TestRepo, redis: &RedisServer, extra: &[&str]) -> (Serve, u16) {
    let port = fvhost::local::free_port().unwrap();
    let server = Command::new(env!("CARGO_BIN_EXE_fvhost"))
        .args([
            "serve",
            "-r",
            repo.path().to_str().unwrap(),
            "--redis",
            &redis.url(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--max-push-bytes",
            "1048576",
        ])
        .args(extra)
        .env(
            "FVHOST_CACHE_DIR",
            root().join("target/fvhost-test-module-cache"),
        )
        .spawn()
        .unwrap();
    let server = Serve(server);
    wait_for(
        "the server to answer /health",
        Duration::from_secs(30),
        || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http(port, "GET", "/health", None).0 == 200
        },
    );
    (server, port)
}

/// `serve` answers from the repo as it is on disk: a feature service added
/// to the definitions is served once the file holds still; a broken edit
/// leaves the repo served before; `--no-watch` keeps the repo of the start.
#[test]
fn serve_reloads_the_repo_when_its_files_change() {
    let repo = TestRepo::new("batch_http_reload", DEFINITIONS);
    let redis = RedisServer::start().unwrap();
    let (_watching, port) = start_serve(&repo, &redis);
    let (_fixed, fixed_port) = start_serve_with(&repo, &redis, &["--no-watch"]);
    let by_service = serde_json::json!({
        "entities": {"driver_id": [1001]},
        "feature_service": "driver_activity"
    });
    let read = |port| http(port, "POST", "/get-online-features", Some(&by_service));
    let (status, body) = read(port);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("no feature service `driver_activity`"),
        "{body}"
    );

    std::fs::write(
        repo.path().join("definitions.yaml"),
        format!(
            "{DEFINITIONS}feature_services:\n  - name: driver_activity\n    features:\n      - {{view: driver_hourly_stats, features: [avg_daily_trips]}}\n"
        ),
    )
    .unwrap();
    wait_for(
        "serve to answer from the changed repo",
        Duration::from_secs(15),
        || read(port).0 == 200,
    );
    let (_, body) = read(port);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["metadata"]["feature_names"],
        serde_json::json!(["driver_id", "avg_daily_trips"]),
        "{body}"
    );
    assert_eq!(
        read(fixed_port).0,
        400,
        "--no-watch serves the repo of the start"
    );

    // A broken edit is not served: the repo loaded before stays.
    std::fs::write(repo.path().join("definitions.yaml"), "feature_views: [").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let (status, body) = read(port);
    assert_eq!(
        status, 200,
        "the repo served before a broken edit stays: {body}"
    );
}

/// `serve` with an online store that does not answer stops at start, with
/// the reason, rather than listening and failing every request.
#[test]
fn serve_stops_at_start_when_the_online_store_does_not_answer() {
    let repo = TestRepo::new("batch_http_no_store", DEFINITIONS);
    let nowhere = fvhost::local::free_port().unwrap();
    let listen = fvhost::local::free_port().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fvhost"))
        .args(["serve", "-r", repo.path().to_str().unwrap()])
        .args(["--redis", &format!("redis://127.0.0.1:{nowhere}")])
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("connecting to the Redis online store"),
        "{stderr}"
    );
}

/// One keep-alive HTTP/1.1 connection: every request on the same socket.
struct KeepAlive(std::io::BufReader<std::net::TcpStream>);

impl KeepAlive {
    fn connect(port: u16) -> Self {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Self(std::io::BufReader::new(stream))
    }

    /// Sends one request (`null`: no body) in one write and reads its
    /// answer (by Content-Length).
    fn request(&mut self, method: &str, path: &str, body: &serde_json::Value) -> (u16, String) {
        use std::io::{BufRead, Read, Write};
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.0.get_mut().write_all(request.as_bytes()).unwrap();
        let mut status_line = String::new();
        self.0.read_line(&mut status_line).unwrap();
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.0.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut answer = vec![0; length];
        self.0.read_exact(&mut answer).unwrap();
        (status, String::from_utf8(answer).unwrap())
    }
}

/// Many clients at once, each on its own keep-alive connection, spread over
/// `serve`'s threads (each with its own Redis connection): every write is
/// read back by its writer, and the request counts cover every thread.
#[test]
fn serve_answers_many_keep_alive_clients_at_once_on_its_threads() {
    let repo = TestRepo::new("batch_http_threads", DEFINITIONS);
    let redis = RedisServer::start().unwrap();
    let (_server, port) = start_serve_with(&repo, &redis, &["--threads", "3"]);
    const CLIENTS: i64 = 8;
    const ROUNDS: i64 = 10;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            std::thread::spawn(move || {
                let mut connection = KeepAlive::connect(port);
                for round in 0..ROUNDS {
                    let driver = 5000 + client * 100 + round;
                    let trips = client * 1000 + round;
                    let write = serde_json::json!({
                        "feature_view_name": VIEW,
                        "df": {
                            "driver_id": [driver], "event_timestamp": ["2026-01-01T03:00:00Z"],
                            "created": ["2026-01-01T03:00:00Z"], "conv_rate": [0.25], "acc_rate": [0.5],
                            "avg_daily_trips": [trips]
                        }
                    });
                    let (status, body) = connection.request("POST", "/write-to-online-store", &write);
                    assert_eq!(status, 200, "client {client} round {round}: {body}");
                    let read = serde_json::json!({
                        "entities": {"driver_id": [driver]},
                        "features": ["driver_hourly_stats:avg_daily_trips"]
                    });
                    let (status, body) = connection.request("POST", "/get-online-features", &read);
                    assert_eq!(status, 200, "client {client} round {round}: {body}");
                    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(
                        answer["results"][1]["values"],
                        serde_json::json!([trips]),
                        "client {client} reads back its own write: {body}"
                    );
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client failed");
    }
    let (status, text) = http(port, "GET", "/metrics", None);
    assert_eq!(status, 200);
    let total = CLIENTS * ROUNDS;
    for route in ["/write-to-online-store", "/get-online-features"] {
        let line = format!(r#"fvhost_http_requests_total{{route="{route}",code="200"}} {total}"#);
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
}

#[test]
fn the_http_server_rides_out_a_redis_restart_and_says_503_while_redis_is_down() {
    let repo = TestRepo::new(
        "batch_http_outage",
        &format!(
            "{DEFINITIONS}feature_services:\n  - name: driver_activity\n    features:\n      - {{view: driver_hourly_stats_fresh, features: [conv_rate, avg_daily_trips]}}\n"
        ),
    );
    let mut redis = RedisServer::start().unwrap();
    let (_server, port) = start_serve(&repo, &redis);
    let read = serde_json::json!({
        "entities": {"driver_id": [1001]},
        "features": ["driver_hourly_stats_fresh:conv_rate"]
    });
    assert_eq!(
        http(port, "POST", "/get-online-features", Some(&read)).0,
        200
    );
    assert_eq!(http(port, "GET", "/ready", None).0, 200);

    // Restarted while the server was idle: its connections are dead, and
    // the first request on each serve thread finds out and asks again.
    // Keep-alive clients open at once land on every thread (connected
    // after the restart: an idle connection is closed after 10 s).
    redis.restart().unwrap();
    let mut clients: Vec<KeepAlive> = (0..4).map(|_| KeepAlive::connect(port)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let (status, body) = client.request("GET", "/ready", &serde_json::Value::Null);
        assert_eq!(
            status, 200,
            "client {i}'s first /ready after a restart: {body}"
        );
    }
    drop(clients);
    redis.restart().unwrap();
    let (status, body) = http(port, "POST", "/get-online-features", Some(&read));
    assert_eq!(status, 200, "the first read after a restart: {body}");

    redis.kill();
    let (status, body) = http(port, "POST", "/get-online-features", Some(&read));
    assert_eq!(
        status, 503,
        "the store's outage is the server's trouble: {body}"
    );
    let at = format!("redis read from --redis {} failed", redis.url());
    assert!(body.starts_with(&format!("{{\"error\":\"{at}")), "{body}");
    let (status, body) = http(port, "GET", "/ready", None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        http(port, "GET", "/health", None).0,
        200,
        "the process is alive"
    );

    redis.restart().unwrap();
    let (status, body) = http(port, "POST", "/get-online-features", Some(&read));
    assert_eq!(status, 200, "the first request after the restart: {body}");
    let push = serde_json::json!({
        "push_source_name": "driver_stats_push",
        "df": {
            "driver_id": [1001], "event_timestamp": ["2026-01-01T02:00:00Z"],
            // Epoch seconds, the form Feast's server takes for a timestamp.
            "created": [1_767_232_800], "conv_rate": [0.5], "acc_rate": [0.5],
            "avg_daily_trips": [10]
        },
        "to": "online"
    });
    let (status, body) = http(port, "POST", "/push", Some(&push));
    assert_eq!(status, 200, "{body}");

    // A feature service's features, as Feast's server reads them.
    let by_service = serde_json::json!({
        "entities": {"driver_id": [1001]},
        "feature_service": "driver_activity"
    });
    let (status, body) = http(port, "POST", "/get-online-features", Some(&by_service));
    assert_eq!(status, 200, "{body}");
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        response["metadata"]["feature_names"],
        serde_json::json!(["driver_id", "conv_rate", "avg_daily_trips"]),
        "{body}"
    );
    assert_eq!(response["results"][1]["values"], serde_json::json!([0.5]));
    let (status, body) = http(
        port,
        "POST",
        "/get-online-features",
        Some(&serde_json::json!({"entities": {"driver_id": [1]}, "feature_service": "nope"})),
    );
    assert_eq!(status, 400);
    assert!(body.contains("no feature service `nope`"), "{body}");

    // Feast's write_to_online_store route: a view's own rows, no push source.
    let write = serde_json::json!({
        "feature_view_name": "driver_hourly_stats",
        "df": {
            "driver_id": [1002], "event_timestamp": ["2026-01-01T03:00:00Z"],
            "created": ["2026-01-01T03:00:00Z"], "conv_rate": [0.125], "acc_rate": [0.5],
            "avg_daily_trips": [3]
        },
        "allow_registry_cache": true
    });
    let (status, body) = http(port, "POST", "/write-to-online-store", Some(&write));
    assert_eq!(status, 200, "{body}");
    let written = serde_json::json!({
        "entities": {"driver_id": [1002]},
        "features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:avg_daily_trips"]
    });
    let (status, body) = http(port, "POST", "/get-online-features", Some(&written));
    assert_eq!(status, 200, "{body}");
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(response["results"][1]["values"], serde_json::json!([0.125]));
    assert_eq!(response["results"][2]["values"], serde_json::json!([3]));
    let (status, body) = http(
        port,
        "POST",
        "/write-to-online-store",
        Some(&serde_json::json!({"feature_view_name": "nope", "df": {"driver_id": [1]}})),
    );
    assert_eq!(status, 400);
    assert!(body.contains("no feature view `nope`"), "{body}");

    let (status, body) = http(port, "GET", "/nowhere", None);
    assert_eq!(status, 404);
    assert!(body.contains("no route GET /nowhere"), "{body}");
    let (status, body) = http(port, "GET", "/push", None);
    assert_eq!(status, 405);
    assert!(body.contains("/push does not take GET"), "{body}");

    // Requests counted by route and status; unknown paths as `other`.
    let (status, text) = http(port, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        text.contains(r#"fvhost_http_requests_total{route="/write-to-online-store",code="200"} 1"#)
            && text.contains(r#"fvhost_http_requests_total{route="other",code="404"} 1"#)
            && text.contains("fvhost_http_request_seconds_bucket"),
        "{text}"
    );
}

#[test]
fn switches_answer_reads_as_feast_does_where_fvhost_differs() {
    let repo = TestRepo::new("batch_switches", DEFINITIONS);
    let redis = RedisServer::start().unwrap();
    let push = serde_json::json!({
        "push_source_name": "driver_stats_push",
        "df": {
            "driver_id": [1001, 1], "event_timestamp": ["2026-01-01T02:00:00Z", "2026-01-01T02:00:00Z"],
            "created": ["2026-01-01T02:00:00Z", "2026-01-01T02:00:00Z"],
            "conv_rate": [0.5, null], "acc_rate": [0.5, 0.5], "avg_daily_trips": [10, 1]
        },
        "to": "online"
    });
    let read = |port, ids: serde_json::Value| {
        let request = serde_json::json!({
            "entities": {"driver_id": ids},
            "features": ["driver_hourly_stats_fresh:conv_rate"]
        });
        let (status, body) = http(port, "POST", "/get-online-features", Some(&request));
        let answer = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        (status, answer, body)
    };
    let ids = serde_json::json!([1001.7, true, 7]);

    let (precise, port) = start_serve(&repo, &redis);
    assert_eq!(http(port, "POST", "/push", Some(&push)).0, 200);
    let (status, _, body) = read(port, ids.clone());
    assert_eq!(status, 400, "a lossy key is refused by default: {body}");
    let (status, _, body) = read(port, serde_json::json!([1001.0000000000001_f64]));
    assert_eq!(status, 400, "however small the fraction: {body}");
    let (status, answer, body) = read(port, serde_json::json!([1001, 1, 7]));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        answer["results"][1]["statuses"],
        serde_json::json!(["PRESENT", "NULL_VALUE", "NOT_FOUND"])
    );
    drop(precise);

    let (_feast_like, port) =
        start_serve_with(&repo, &redis, &["--feast-statuses", "--feast-key-coercion"]);
    let (status, answer, body) = read(port, ids);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        answer["results"][0]["values"],
        serde_json::json!([1001, 1, 7]),
        "the keys as read"
    );
    assert_eq!(
        answer["results"][1]["values"],
        serde_json::json!([0.5, null, null]),
        "1001.7 read as 1001 and true as 1, as Feast truncates them"
    );
    assert_eq!(
        answer["results"][1]["statuses"],
        serde_json::json!(["PRESENT", "PRESENT", "PRESENT"])
    );
}

#[test]
fn the_http_server_pushes_and_reads_in_feasts_shapes() {
    let repo = TestRepo::new("batch_http", DEFINITIONS);
    let redis = RedisServer::start().unwrap();
    let (mut server, port) = start_serve(&repo, &redis);

    let push = serde_json::json!({
        "push_source_name": "driver_stats_push",
        "df": {
            "driver_id": [1001, 1002, 1001],
            "event_timestamp": ["2026-01-01T02:00:00Z", "2026-01-01T02:00:00Z", "2026-01-01T01:00:00Z"],
            "created": ["2026-01-01T02:00:00Z", "2026-01-01T02:00:00Z", "2026-01-01T02:00:00Z"],
            "conv_rate": [0.5, 0.25, 0.75],
            "acc_rate": [0.5, 0.5, 0.5],
            "avg_daily_trips": [10, 20, 30]
        },
        "to": "online"
    });
    let (status, body) = http(port, "POST", "/push", Some(&push));
    assert_eq!(status, 200, "{body}");
    let summary: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary["keys_written"], 2, "{body}");

    let request = serde_json::json!({
        "entities": {"driver_id": [1001, 1002, 7]},
        "features": ["driver_hourly_stats_fresh:conv_rate", "driver_hourly_stats_fresh:avg_daily_trips"]
    });
    let (status, body) = http(port, "POST", "/get-online-features", Some(&request));
    assert_eq!(status, 200, "{body}");
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        response["metadata"]["feature_names"],
        serde_json::json!(["driver_id", "conv_rate", "avg_daily_trips"])
    );
    assert_eq!(
        response["results"][1]["values"],
        serde_json::json!([0.5, 0.25, null]),
        "the newer of 1001's two rows wins"
    );
    assert_eq!(
        response["results"][1]["statuses"],
        serde_json::json!(["PRESENT", "PRESENT", "NOT_FOUND"])
    );
    assert_eq!(
        response["results"][2]["values"],
        serde_json::json!([10, 20, null])
    );
    assert_eq!(
        response["results"][1]["event_timestamps"][0],
        "2026-01-01T02:00:00Z"
    );

    // An integral number for an Int64 key reads as the integer (Feast does);
    // entity lists of different lengths are refused.
    let request = serde_json::json!({
        "entities": {"driver_id": [1001.0]},
        "features": ["driver_hourly_stats_fresh:conv_rate"]
    });
    let (status, body) = http(port, "POST", "/get-online-features", Some(&request));
    assert_eq!(status, 200, "{body}");
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(response["results"][1]["values"], serde_json::json!([0.5]));
    let request = serde_json::json!({
        "entities": {"driver_id": [1001], "customer": ["c7", "c8"]},
        "features": ["driver_hourly_stats_fresh:conv_rate"]
    });
    let (status, body) = http(port, "POST", "/get-online-features", Some(&request));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("every entity list needs the same number of values"),
        "{body}"
    );

    let (status, body) = http(
        port,
        "POST",
        "/push",
        Some(&serde_json::json!({"push_source_name": "nope", "df": {"driver_id": [1]}})),
    );
    assert_eq!(status, 400);
    assert!(body.contains("no push source `nope`"), "{body}");

    // Refused whole, naming column and row, nothing written: a key that
    // lost its digits in JSON, an event time far in the future.
    let refused = |df: serde_json::Value| {
        let push =
            serde_json::json!({"push_source_name": "driver_stats_push", "df": df, "to": "online"});
        http(port, "POST", "/push", Some(&push))
    };
    // Written as text: -9223372036854775809 is not an i64, and JSON parsers
    // read it as the float -2^63.
    let too_small = br#"{"push_source_name": "driver_stats_push", "to": "online", "df": {
        "driver_id": [1003, -9223372036854775809],
        "event_timestamp": ["2026-01-01T02:00:00Z", "2026-01-01T02:00:00Z"],
        "created": ["2026-01-01T02:00:00Z", "2026-01-01T02:00:00Z"],
        "conv_rate": [0.5, 0.5], "acc_rate": [0.5, 0.5], "avg_daily_trips": [1, 2]}}"#;
    let (status, body) = http_bytes(port, "POST", "/push", too_small);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("df column `driver_id` row 1: ")
            && body.contains("is not an integer that fits Int64"),
        "{body}"
    );
    let (status, body) = refused(serde_json::json!({
        "driver_id": [1003, 1004],
        "event_timestamp": ["2026-01-01T02:00:00Z", "3000-01-01T00:00:00Z"],
        "created": ["2026-01-01T02:00:00Z", "2026-01-01T02:00:00Z"],
        "conv_rate": [0.5, 0.5], "acc_rate": [0.5, 0.5], "avg_daily_trips": [1, 2]
    }));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("row 1: column `event_timestamp`: event time 3000-01-01T00:00:00Z is more than 5m ahead of the host's clock"),
        "{body}"
    );
    for (column, value, expected) in [
        (
            "conv_rate",
            serde_json::json!(1e300),
            "row 1: column `conv_rate`: the value does not fit Float32",
        ),
        (
            "avg_daily_trips",
            serde_json::json!(true),
            "column `avg_daily_trips` (Boolean) cannot become Int64",
        ),
        (
            "event_timestamp",
            serde_json::json!("last tuesday"),
            "row 1: column `event_timestamp`: the value does not fit",
        ),
        (
            "avg_daily_trips",
            serde_json::json!("seven"),
            "df column `avg_daily_trips`: row 1 is a string but row 0 is a number",
        ),
        (
            "avg_daily_trips",
            serde_json::json!(["7", "seven"]),
            "row 1: column `avg_daily_trips`: the value does not fit Int64",
        ),
    ] {
        let mut df = serde_json::json!({
            "driver_id": [1003, 1004],
            "event_timestamp": ["2026-01-01T02:00:00Z", "2026-01-01T02:00:00Z"],
            "created": ["2026-01-01T02:00:00Z", "2026-01-01T02:00:00Z"],
            "conv_rate": [0.5, 0.5], "acc_rate": [0.5, 0.5], "avg_daily_trips": [1, 2]
        });
        if value.is_boolean() {
            df[column] = serde_json::json!([value, value]);
        } else if value.is_array() {
            df[column] = value;
        } else {
            df[column][1] = value;
        }
        let (status, body) = refused(df);
        assert_eq!(status, 400, "{column}: {body}");
        assert!(body.contains(expected), "{column}: {body}");
    }
    let mut connection = redis_connection(&redis);
    for driver in [1003, 1004] {
        let stored: HashMap<Vec<u8>, Vec<u8>> = connection
            .hgetall(driver_key(driver, &repo.project))
            .unwrap();
        assert!(stored.is_empty(), "nothing of a refused push is written");
    }

    // A feature asked for twice, or more values than one answer holds, is refused.
    let request = serde_json::json!({
        "entities": {"driver_id": [1001]},
        "features": ["driver_hourly_stats_fresh:conv_rate", "driver_hourly_stats_fresh:conv_rate"]
    });
    let (status, body) = http(port, "POST", "/get-online-features", Some(&request));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("asked for more than once"), "{body}");
    let features: Vec<String> = ["driver_hourly_stats", "driver_hourly_stats_fresh"]
        .iter()
        .flat_map(|view| {
            ["conv_rate", "acc_rate", "avg_daily_trips"].map(|feature| format!("{view}:{feature}"))
        })
        .collect();
    let request = serde_json::json!({
        "entities": {"driver_id": (0..166_668).collect::<Vec<i64>>()},
        "features": features
    });
    let (status, body) = http(port, "POST", "/get-online-features", Some(&request));
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("at most 1000000 are answered at once"),
        "{body}"
    );

    // A body over --max-push-bytes is answered 413, even to a client that
    // writes all of it before reading.
    let (status, body) = http_bytes(port, "POST", "/push", &vec![b' '; 3 << 20]);
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("the /push body is over the 1048576-byte limit"),
        "{body}"
    );

    let _ = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status();
    assert!(
        server.0.wait().unwrap().success(),
        "the server stops cleanly on SIGTERM"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Driver events as the stream's JSON schema declares them (Int32 ids,
/// Float64 rates), written to `path`.
fn write_driver_events(path: &Path, rows: &[(i32, i64, f64)]) {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int32, false),
        Field::new("event_timestamp", ts, false),
        Field::new("conv_rate", DataType::Float64, true),
        Field::new("acc_rate", DataType::Float64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(arrow_array::Int32Array::from_iter_values(
            rows.iter().map(|r| r.0),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.1))
                .with_timezone("UTC"),
        ),
        Arc::new(arrow_array::Float64Array::from_iter_values(
            rows.iter().map(|r| r.2),
        )),
        Arc::new(arrow_array::Float64Array::from_iter_values(
            rows.iter().map(|_| 0.5),
        )),
    ];
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema.clone(), None).unwrap();
    writer
        .write(&RecordBatch::try_new(schema, columns).unwrap())
        .unwrap();
    writer.close().unwrap();
}

#[test]
fn materialize_and_push_dead_letter_the_rows_a_transform_rejects_or_fails_on() {
    let view = "guarded";
    let pushed_view = "pushed";
    // A push source and a view over it whose transform rejects the first row of every push.
    let push_view = format!(
        "feature_views:\n  - name: {pushed_view}\n    entities: [driver]\n    source: driver_pushes\n    schema:\n      - {{name: conv_rate, dtype: Float64}}\n    transform:\n      module: {}\n      config: {{attack: reject_storm}}\n    dead_letter: {{type: redis_stream}}\n",
        test_guest("hostile").display()
    );
    let definitions = Definitions::new()
        .kafka_source("drivers", DRIVER_EVENT_SCHEMA)
        .stream_view(
            view,
            "drivers",
            &[("conv_rate", "Float64")],
            &test_guest("trap_on_driver"),
            "trap_on: 13",
        )
        .dead_letter("{type: redis_stream}")
        .yaml()
        .replace(
            "stream_feature_views:\n",
            "  - {name: driver_pushes, type: push, batch_source: driver_stats_source}\nstream_feature_views:\n",
        )
        + &push_view;
    let repo = TestRepo::new("batch_dead_letters", &definitions);
    let redis = RedisServer::start().unwrap();
    // Driver 13 traps the transform; driver 7's negative rate is rejected.
    let rows: Vec<(i32, i64, f64)> = (1..=20)
        .map(|d| {
            (
                d,
                DAY0 + i64::from(d) * HOUR,
                if d == 7 { -0.5 } else { 0.25 },
            )
        })
        .collect();
    write_driver_events(&repo.path().join("data/driver_stats.parquet"), &rows);

    let (start, end) = (rfc3339(DAY0), rfc3339(DAY0 + 24 * HOUR));
    let materialize = [
        "materialize",
        "-r",
        repo.path().to_str().unwrap(),
        "--json",
        "--views",
        view,
        &start,
        &end,
    ];
    let materialize: Vec<&std::ffi::OsStr> = materialize.iter().map(std::ffi::OsStr::new).collect();
    // Dead-lettered rows exit 1, once the rest is written.
    let out = fvhost_exiting(&materialize, &redis, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = summaries(&out)
        .pop()
        .unwrap_or_else(|| panic!("no summary:\n{stderr}"));
    assert_eq!(summary["rejected_rows"], 1, "{summary}");
    assert_eq!(summary["failed_rows"], 1, "{summary}");
    assert_eq!(
        summary["keys_written"], 18,
        "every other driver is written: {summary}"
    );

    let mut connection = redis_connection(&redis);
    let letters = redis_dead_letters(&mut connection, &repo.project, view);
    let described: Vec<(String, String)> = letters
        .iter()
        .map(|l| (text(l, "kind"), text(l, "payload")))
        .collect();
    assert_eq!(described.len(), 2, "{described:?}");
    assert_eq!(described[0].0, "rejected_by_transform");
    assert!(described[0].1.contains(r#""driver_id":7"#), "{described:?}");
    assert_eq!(described[1].0, "batch_failed");
    assert!(
        described[1].1.contains(r#""driver_id":13"#),
        "{described:?}"
    );
    assert!(text(&letters[1], "reason").contains("driver 13 is poison"));
    assert!(
        text(&letters[1], "source").starts_with("materialize "),
        "{:?}",
        letters[1]
    );
    for driver in [7, 13] {
        let stored: HashMap<Vec<u8>, Vec<u8>> = connection
            .hgetall(driver_key(driver, &repo.project))
            .unwrap();
        assert!(stored.is_empty(), "driver {driver} is not written");
    }
    assert!(stored_ts(&mut connection, view, 12, &repo.project).is_some());

    let pushed = repo.path().join("pushed.jsonl");
    std::fs::write(
        &pushed,
        (101..104)
            .map(|d| format!(r#"{{"driver_id": {d}, "event_timestamp": "2026-01-01T00:00:00Z", "conv_rate": 0.5}}"#))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let push = [
        std::ffi::OsStr::new("push"),
        std::ffi::OsStr::new("-r"),
        repo.path().as_os_str(),
        std::ffi::OsStr::new("--source"),
        std::ffi::OsStr::new("driver_pushes"),
        pushed.as_os_str(),
    ];
    let out = fvhost_exiting(&push, &redis, 1);
    let summary = &summaries(&out)[0];
    assert_eq!(summary["rejected_rows"], 1, "{summary}");
    assert_eq!(summary["keys_written"], 2, "{summary}");
    let letters = redis_dead_letters(&mut connection, &repo.project, pushed_view);
    assert_eq!(letters.len(), 1);
    assert_eq!(text(&letters[0], "kind"), "rejected_by_transform");
    assert_eq!(text(&letters[0], "source"), "push driver_pushes");
    assert_eq!(text(&letters[0], "row"), "0");
    assert!(text(&letters[0], "payload").contains(r#""driver_id":101"#));
    assert!(stored_ts(&mut connection, pushed_view, 102, &repo.project).is_some());
    assert!(stored_ts(&mut connection, pushed_view, 101, &repo.project).is_none());
}

/// A view with an offline log commits what it wrote once the log's files
/// are due to rotate, also when no further event comes: an idle host must
/// not leave its offsets (and its files) open until it stops.
#[test]
fn an_idle_stream_view_with_an_offline_log_rotates_and_commits_without_new_events() {
    let definitions = Definitions::new()
        .driver_stats("driver_stats_view", "drivers", "Float32")
        .yaml()
        .replace("path: data/driver_stats.parquet", "path: data/driver_stats")
        .replace("    ttl: 1d\n", "    ttl: 1d\n    offline: true\n");
    let repo_dir = TestRepo::new("idle_offline_log", &definitions);
    let repo = fvhost::repo::load(repo_dir.path()).unwrap();
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("drivers", 2).unwrap();
    let base = 1_767_225_600;
    let messages: Vec<(String, Vec<u8>)> = (1..101i64)
        .map(|d| (d.to_string(), driver_event(d, base + d, 0.5, 0.25)))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(broker.produce("drivers", &messages)).unwrap();
    rt.block_on(async {
        let options = fvhost::control::HostOptions {
            kafka_bootstrap: Some(broker.bootstrap_servers()),
            redis_url: Some(redis.url()),
            offline_rotation: fvhost::offline::log::Rotation {
                max_bytes: 64 << 20,
                max_age: Duration::from_secs(1),
            },
            ..Default::default()
        };
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let host = fvhost::control::Host::start(&repo, &options, shutdown)
            .await
            .unwrap();
        let metrics = Arc::clone(&host.metrics()[0].1);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while metrics.snapshot().messages < 100 {
            assert!(
                std::time::Instant::now() < deadline,
                "the events were not read"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // No more events come; the log's files are due after 1 s, and the
        // idle view looks every few seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while metrics.snapshot().commits == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "an idle view never committed what it wrote: {:?}",
                metrics.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let files = walk(&repo_dir.path().join("data/driver_stats"));
        assert!(
            !files.is_empty()
                && files
                    .iter()
                    .all(|f| f.extension().is_some_and(|e| e == "parquet")),
            "the log's files are complete while the host still runs: {files:?}"
        );
        let _ = stop.send(true);
        host.wait().await;
    });
}
