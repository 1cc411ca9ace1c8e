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
    feature_field(VIEW, feature).to_vec()
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
    for (driver, (count, mean, max, sum, newest)) in expected {
        let hash = stored(redis, project, *driver);
        let get = |feature: &str| hash.get(&field(feature)).cloned().unwrap_or_default();
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
            hash.get(format!("_ts:{VIEW}").as_bytes()),
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
