//! The stream path end to end, against a real redis-server, librdkafka's mock
//! cluster over TCP, the real `fvhost` binary and transforms built from source.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use fvhost::online::murmur3::feature_field;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use redis::Commands;
use support::*;

const VIEW: &str = "driver_stats_view";
const TIMEOUT: Duration = Duration::from_secs(90);
/// 2026-01-01T00:00:00Z: event times of the tests, in the past (events
/// further ahead of the host's clock than 5 minutes are refused).
const BASE: i64 = 1_767_225_600;

/// A message to produce: (key, payload).
type Message = (String, Vec<u8>);

/// What one driver's hash must hold: the newest event's values, times 100.
#[derive(Debug, Clone, Copy)]
struct Newest {
    seconds: i64,
    conv_rate: f64,
    acc_rate: f64,
}

fn rate(driver: i64, event: i64, salt: i64) -> f64 {
    ((driver * 37 + event * 11 + salt) % 97) as f64 / 97.0
}

/// Events for `drivers`, `per_driver` each 30 s apart from `start`, sent in
/// rounds with neighbours swapped, so every driver's events arrive out of order.
fn out_of_order_events(
    drivers: std::ops::Range<i64>,
    per_driver: i64,
    start: i64,
) -> (Vec<Message>, HashMap<i64, Newest>) {
    let order: Vec<i64> = (0..per_driver)
        .map(|i| {
            if i % 2 == 0 {
                (i + 1).min(per_driver - 1)
            } else {
                i - 1
            }
        })
        .collect();
    let mut messages = Vec::new();
    let mut newest = HashMap::new();
    for event in order {
        for driver in drivers.clone() {
            let seconds = start + event * 30;
            let (conv, acc) = (rate(driver, event, 1), rate(driver, event, 2));
            messages.push((driver.to_string(), driver_event(driver, seconds, conv, acc)));
            let entry = newest.entry(driver).or_insert(Newest {
                seconds,
                conv_rate: conv,
                acc_rate: acc,
            });
            if seconds > entry.seconds {
                *entry = Newest {
                    seconds,
                    conv_rate: conv,
                    acc_rate: acc,
                };
            }
        }
    }
    (messages, newest)
}

/// The exact hash Feast's layout requires for one driver of the example view.
fn expected_hash(view: &str, newest: &Newest) -> HashMap<Vec<u8>, Vec<u8>> {
    HashMap::from([
        (
            format!("_ts:{view}").into_bytes(),
            timestamp_value(newest.seconds),
        ),
        (
            feature_field(view, "conv_percentage").to_vec(),
            float_value((newest.conv_rate * 100.0) as f32),
        ),
        (
            feature_field(view, "acc_percentage").to_vec(),
            float_value((newest.acc_rate * 100.0) as f32),
        ),
    ])
}

fn wait_for_newest(redis: &RedisServer, project: &str, newest: &HashMap<i64, Newest>) {
    let mut connection = redis_connection(redis);
    wait_for("every driver's newest event in Redis", TIMEOUT, || {
        newest.iter().all(|(driver, n)| {
            stored_ts(&mut connection, VIEW, *driver, project) == Some(timestamp_value(n.seconds))
        })
    });
}

fn assert_hashes_exact(redis: &RedisServer, project: &str, newest: &HashMap<i64, Newest>) {
    let mut connection = redis_connection(redis);
    for (driver, n) in newest {
        let stored: HashMap<Vec<u8>, Vec<u8>> =
            connection.hgetall(driver_key(*driver, project)).unwrap();
        assert_eq!(stored, expected_hash(VIEW, n), "hash of driver {driver}");
    }
}

#[test]
fn newest_event_per_driver_is_written_in_feasts_exact_layout() {
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("drivers", 4).unwrap();
    let repo = TestRepo::new(
        "e2e_newest",
        &Definitions::new()
            .driver_stats(VIEW, "drivers", "Float32")
            .yaml(),
    );
    let (messages, newest) = out_of_order_events(1000..1300, 6, BASE);
    runtime()
        .block_on(broker.produce("drivers", &messages))
        .unwrap();

    let host = HostProcess::start(repo.path(), &broker, &redis);
    wait_for_newest(&redis, &repo.project, &newest);
    let exit = host.stop();

    assert!(
        exit.success,
        "SIGTERM must drain and exit 0; stderr:\n{}",
        exit.stderr
    );
    let report = exit.report(VIEW);
    assert_eq!(report["messages"], 1800);
    assert_eq!(
        (&report["status"], &report["state"]),
        (&serde_json::json!("stopped"), &serde_json::json!("stopped")),
        "the final report says the view stopped, in both fields"
    );
    assert_eq!(report["decode_errors"], 0);
    assert_eq!(report["late_events"], 0);
    let dbsize: i64 = redis::cmd("DBSIZE")
        .query(&mut redis_connection(&redis))
        .unwrap();
    assert_eq!(dbsize, 300, "one hash per driver, nothing else");
    assert_hashes_exact(&redis, &repo.project, &newest);

    let read = std::process::Command::new(env!("CARGO_BIN_EXE_fvhost"))
        .args([
            "get-online-features",
            "-r",
            repo.path().to_str().unwrap(),
            "--redis",
            &redis.url(),
        ])
        .args([
            "--features",
            &format!("{VIEW}:conv_percentage,{VIEW}:acc_percentage"),
        ])
        .args([
            "--entity",
            "driver_id=1000",
            "--entity",
            "driver_id=1299",
            "--entity",
            "driver_id=5",
        ])
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let response: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(
        response["metadata"]["feature_names"],
        serde_json::json!(["driver_id", "conv_percentage", "acc_percentage"])
    );
    assert_eq!(
        response["results"][0]["values"],
        serde_json::json!([1000, 1299, 5])
    );
    let conv = &response["results"][1];
    for (i, driver) in [1000i64, 1299].into_iter().enumerate() {
        let n = newest[&driver];
        assert_eq!(
            conv["values"][i].as_f64().unwrap() as f32,
            (n.conv_rate * 100.0) as f32
        );
        assert_eq!(conv["statuses"][i], "PRESENT");
        let seconds =
            chrono::DateTime::parse_from_rfc3339(conv["event_timestamps"][i].as_str().unwrap())
                .unwrap()
                .timestamp();
        assert_eq!(seconds, n.seconds);
    }
    assert_eq!(conv["statuses"][2], "NOT_FOUND");
    assert_eq!(conv["values"][2], serde_json::Value::Null);
}

#[test]
fn bad_and_late_events_are_counted_with_their_offsets_and_good_ones_still_written() {
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("mixed", 1).unwrap();
    let repo = TestRepo::new(
        "e2e_bad",
        &Definitions::new()
            .driver_stats(VIEW, "mixed", "Float32")
            .yaml(),
    );
    let (mut messages, newest) = out_of_order_events(1..51, 2, BASE);
    let bad: Vec<&[u8]> = vec![
        b"{\"driver_id\": 7, \"event_ti",
        b"[1, 2, 3]",
        br#"{"event_timestamp": "2026-01-01T00:00:00Z", "conv_rate": 0.5, "acc_rate": 0.5}"#,
        br#"{"driver_id": "seven", "event_timestamp": "2026-01-01T00:00:00Z", "conv_rate": 0.5, "acc_rate": 0.5}"#,
        br#"{"driver_id": 7, "event_timestamp": "last tuesday", "conv_rate": 0.5, "acc_rate": 0.5}"#,
        br#"{"driver_id": 99999999999, "event_timestamp": "2026-01-01T00:00:00Z", "conv_rate": 0.5, "acc_rate": 0.5}"#,
        b"",
    ];
    for (i, payload) in bad.iter().enumerate() {
        messages.insert(10 + i * 7, ("7".into(), payload.to_vec()));
    }
    // Milliseconds where seconds are expected: the year 57971. Early in the
    // stream, so that had it moved the watermark every event after it
    // would be late, and driver 3 would keep its value for ever.
    let millis = format!(
        r#"{{"driver_id": 3, "event_timestamp": {}, "conv_rate": 0.99, "acc_rate": 0.99}}"#,
        BASE * 1000
    );
    messages.insert(3, ("3".into(), millis.into_bytes()));
    // Ten minutes behind the newest event seen: beyond the 5 minute watermark.
    messages.push(("1".into(), driver_event(1, BASE - 600, 0.99, 0.99)));
    runtime()
        .block_on(broker.produce("mixed", &messages))
        .unwrap();

    let host = HostProcess::start(repo.path(), &broker, &redis);
    wait_for_newest(&redis, &repo.project, &newest);
    let exit = host.stop();

    assert!(exit.success, "stderr:\n{}", exit.stderr);
    let report = exit.report(VIEW);
    assert_eq!(report["messages"], messages.len());
    assert_eq!(report["decode_errors"], bad.len());
    assert_eq!(report["late_events"], 1);
    assert_eq!(report["future_events"], 1);
    assert_hashes_exact(&redis, &repo.project, &newest);
    for reason in [
        "not valid JSON",
        "not a JSON object",
        "field `driver_id`: missing",
        "found string \"seven\"",
        "`last tuesday`",
        "out of range",
        "behind the watermark",
        "event time +57971-02-25T00:00:00Z is more than 5m ahead of the host's clock",
    ] {
        assert!(
            exit.stderr.contains(reason),
            "the log should name `{reason}`; stderr:\n{}",
            exit.stderr
        );
    }
    assert!(
        exit.stderr.contains("topic=mixed partition=0 offset="),
        "dead letters carry topic, partition and offset"
    );
}

#[test]
fn a_restarted_host_resumes_from_committed_offsets_and_loses_nothing() {
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("restart", 3).unwrap();
    let repo = TestRepo::new(
        "e2e_restart",
        &Definitions::new()
            .driver_stats(VIEW, "restart", "Float32")
            .yaml(),
    );

    let (first, mut newest) = out_of_order_events(1..101, 4, BASE);
    runtime()
        .block_on(broker.produce("restart", &first))
        .unwrap();
    let host = HostProcess::start(repo.path(), &broker, &redis);
    wait_for_newest(&redis, &repo.project, &newest);
    let exit = host.stop();
    assert!(exit.success, "stderr:\n{}", exit.stderr);
    assert_eq!(exit.report(VIEW)["messages"], first.len());

    let (second, newer) = out_of_order_events(51..151, 4, BASE + 600);
    newest.extend(newer);
    runtime()
        .block_on(broker.produce("restart", &second))
        .unwrap();
    let host = HostProcess::start(repo.path(), &broker, &redis);
    wait_for_newest(&redis, &repo.project, &newest);
    let exit = host.stop();

    assert!(exit.success, "stderr:\n{}", exit.stderr);
    assert_eq!(
        exit.report(VIEW)["messages"],
        second.len(),
        "the second run starts after the first run's commits"
    );
    assert_hashes_exact(&redis, &repo.project, &newest);
}

/// The committed offset of `group` on partition 0 of `topic`.
fn committed_offset(broker: &LocalBroker, group: &str, topic: &str) -> Offset {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    committed.find_partition(topic, 0).unwrap().offset()
}

#[test]
fn a_failing_transform_dead_letters_only_the_events_it_fails_on_while_every_view_keeps_ingesting() {
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    for topic in ["healthy", "poisoned", "mistyped", "mistyped.dead_letter"] {
        broker.create_topic(topic, 1).unwrap();
    }
    let definitions = Definitions::new()
        .driver_stats(VIEW, "healthy", "Float32")
        .driver_stats("mistyped_view", "mistyped", "Int64")
        .dead_letter("{type: kafka, topic: mistyped.dead_letter}")
        .kafka_source("poisoned", DRIVER_EVENT_SCHEMA)
        .stream_view(
            "poisoned_view",
            "poisoned",
            &[("conv_rate", "Float64")],
            &test_guest("trap_on_driver"),
            "trap_on: 13",
        )
        .dead_letter("{type: redis_stream}");
    let repo = TestRepo::new("e2e_isolation", &definitions.yaml());
    let rt = runtime();

    let (healthy_first, mut healthy_newest) = out_of_order_events(1..21, 2, BASE);
    rt.block_on(broker.produce("healthy", &healthy_first))
        .unwrap();
    // Drivers 1..=5 are fine, 6 is rejected by the transform (negative rate),
    // 13 traps it: each bad event is set aside, the good ones around them written.
    let mut poisoned: Vec<Message> = (1..6)
        .map(|d| (d.to_string(), driver_event(d, BASE, 0.5, 0.5)))
        .collect();
    poisoned.push(("6".into(), driver_event(6, BASE, -1.0, 0.5)));
    poisoned.extend((12..16).map(|d| (d.to_string(), driver_event(d, BASE + 60, 0.5, 0.5))));
    rt.block_on(broker.produce("poisoned", &poisoned)).unwrap();
    let mistyped: Vec<Message> = (1..4)
        .map(|d| (d.to_string(), driver_event(d, BASE, 0.5, 0.5)))
        .collect();
    rt.block_on(broker.produce("mistyped", &mistyped)).unwrap();

    let host = HostProcess::start(repo.path(), &broker, &redis);
    let mut connection = redis_connection(&redis);
    wait_for("the poisoned view's last good event", TIMEOUT, || {
        stored_ts(&mut connection, "poisoned_view", 15, &repo.project).is_some()
    });
    for driver in [1, 2, 3, 4, 5, 12, 14, 15] {
        assert!(
            stored_ts(&mut connection, "poisoned_view", driver, &repo.project).is_some(),
            "driver {driver} is written"
        );
    }
    for driver in [6, 13] {
        assert_eq!(
            stored_ts(&mut connection, "poisoned_view", driver, &repo.project),
            None,
            "driver {driver} is not written"
        );
    }
    wait_for(
        "the poisoned view's commit past the poison",
        TIMEOUT,
        || {
            committed_offset(
                &broker,
                &format!("fvhost.{}.poisoned_view", repo.project),
                "poisoned",
            ) == Offset::Offset(poisoned.len() as i64)
        },
    );
    let letters = redis_dead_letters(&mut connection, &repo.project, "poisoned_view");
    assert_eq!(
        letters.len(),
        2,
        "one rejected, one failing event: {letters:?}"
    );
    let rejected = letters.iter().find(|l| text(l, "offset") == "5").unwrap();
    assert_eq!(text(rejected, "kind"), "rejected_by_transform");
    assert_eq!(rejected["payload"], poisoned[5].1, "the original bytes");
    let trapped = letters.iter().find(|l| text(l, "offset") == "7").unwrap();
    assert_eq!(text(trapped, "kind"), "batch_failed");
    assert!(
        text(trapped, "reason").contains("trapped")
            && text(trapped, "reason").contains("driver 13 is poison"),
        "{trapped:?}"
    );
    assert_eq!(
        (
            text(trapped, "topic"),
            text(trapped, "partition"),
            text(trapped, "view")
        ),
        (
            "poisoned".to_string(),
            "0".to_string(),
            "poisoned_view".to_string()
        )
    );
    assert_eq!(trapped["payload"], poisoned[7].1);
    assert_eq!(trapped["key"], b"13");
    assert_eq!(text(trapped, "version").len(), 12, "{trapped:?}");
    let module = std::fs::read(test_guest("trap_on_driver")).unwrap();
    let module_hash: String = <sha2::Sha256 as sha2::Digest>::digest(&module)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(text(trapped, "module"), module_hash, "the module's SHA-256");

    // The mistyped view fails every batch: its events go to its Kafka topic,
    // with the reason in the headers, and its offsets move on.
    let dead = broker
        .read_partition("mistyped.dead_letter", 0, mistyped.len(), TIMEOUT)
        .unwrap();
    assert_eq!(dead.len(), mistyped.len());
    for (message, (key, payload)) in dead.iter().zip(&mistyped) {
        use rdkafka::message::{Headers, Message as _};
        assert_eq!(message.payload(), Some(payload.as_slice()));
        assert_eq!(message.key(), Some(key.as_bytes()));
        let headers = message.headers().expect("dead letters carry headers");
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        assert!(
            header("fvhost.reason").contains("`conv_percentage`")
                && header("fvhost.reason").contains("Int64"),
            "{}",
            header("fvhost.reason")
        );
        assert_eq!(header("fvhost.topic"), "mistyped");
        assert_eq!(header("fvhost.view"), "mistyped_view");
    }
    wait_for("the mistyped view's commit", TIMEOUT, || {
        committed_offset(
            &broker,
            &format!("fvhost.{}.mistyped_view", repo.project),
            "mistyped",
        ) == Offset::Offset(mistyped.len() as i64)
    });

    let (healthy_second, newer) = out_of_order_events(21..41, 2, BASE + 60);
    healthy_newest.extend(newer);
    rt.block_on(broker.produce("healthy", &healthy_second))
        .unwrap();
    wait_for_newest(&redis, &repo.project, &healthy_newest);
    let exit = host.stop();
    assert!(exit.success, "no view stopped; stderr:\n{}", exit.stderr);
    assert_eq!(
        exit.report(VIEW)["messages"],
        healthy_first.len() + healthy_second.len()
    );
    let report = exit.report("poisoned_view");
    assert_eq!(report["rejected_by_transform"], 1);
    assert_eq!(report["dead_letters"], 2);
    assert_eq!(exit.report("mistyped_view")["dead_letters"], mistyped.len());
}

#[test]
fn a_refused_commit_leaves_the_view_running_and_a_later_commit_covers_its_batch() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("commits", 1).unwrap();
    let repo = TestRepo::new(
        "e2e_commits",
        &Definitions::new()
            .driver_stats(VIEW, "commits", "Float32")
            .yaml(),
    );
    let rt = runtime();
    let group = format!("fvhost.{}.{VIEW}", repo.project);
    let mut host = HostProcess::start(repo.path(), &broker, &redis);
    let mut connection = redis_connection(&redis);
    let produce_and_wait = |drivers: std::ops::Range<i64>, connection: &mut redis::Connection| {
        let events: Vec<Message> = drivers
            .clone()
            .map(|d| (d.to_string(), driver_event(d, BASE, 0.5, 0.5)))
            .collect();
        rt.block_on(broker.produce("commits", &events)).unwrap();
        wait_for("the batch written", TIMEOUT, || {
            drivers
                .clone()
                .all(|d| stored_ts(connection, VIEW, d, &repo.project).is_some())
        });
    };

    produce_and_wait(0..5, &mut connection);
    wait_for("the first commit", TIMEOUT, || {
        committed_offset(&broker, &group, "commits") == Offset::Offset(5)
    });

    // The broker refuses the next commit, as it does to a member whose
    // group generation moved on (a rebalance).
    broker.cluster().request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION],
    );
    produce_and_wait(5..10, &mut connection);
    host.wait_for_log("offsets not committed", TIMEOUT);
    assert!(host.is_running(), "a refused commit does not stop the view");

    produce_and_wait(10..15, &mut connection);
    wait_for("a later commit covering every batch", TIMEOUT, || {
        committed_offset(&broker, &group, "commits") == Offset::Offset(15)
    });
    let exit = host.stop();
    assert!(exit.success, "stderr:\n{}", exit.stderr);
    let report = exit.report(VIEW);
    // The refused commit made the member rejoin its group, which hands it its
    // partition again from the last committed offset: the uncommitted batch
    // may be read twice, never lost (its second write changes nothing).
    let messages = report["messages"].as_u64().unwrap();
    assert!((15..=20).contains(&messages), "{report}");
    assert!(report["commit_failures"].as_u64().unwrap() >= 1, "{report}");
}

/// A view trapping on driver 13 sends it to `destination`; `count` tells
/// how many dead letters the destination holds. The cause is fixed, the
/// letters replayed with `fvhost dead-letters --replay`, and the event is
/// written. Returns the replay's stderr and a second replay's.
fn replay_scenario(
    project: &str,
    destination: &str,
    extra_topic: Option<&str>,
    count: &dyn Fn(&RedisServer, &LocalBroker, &str) -> usize,
) -> (String, String) {
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("replayed", 1).unwrap();
    if let Some(topic) = extra_topic {
        broker.create_topic(topic, 1).unwrap();
    }
    let definitions = Definitions::new()
        .kafka_source("replayed", DRIVER_EVENT_SCHEMA)
        .stream_view(
            "replayed_view",
            "replayed",
            &[("conv_rate", "Float64")],
            &test_guest("trap_on_driver"),
            "trap_on: 13",
        )
        .dead_letter(destination)
        .yaml();
    let repo = TestRepo::new(project, &definitions);
    let rt = runtime();
    let host = HostProcess::start(repo.path(), &broker, &redis);
    let mut connection = redis_connection(&redis);
    let events: Vec<Message> = (12..15)
        .map(|d| (d.to_string(), driver_event(d, BASE, 0.5, 0.5)))
        .collect();
    rt.block_on(broker.produce("replayed", &events)).unwrap();
    wait_for("the poison event set aside", TIMEOUT, || {
        count(&redis, &broker, &repo.project) == 1
    });
    let fvhost = |arguments: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fvhost"))
            .arg("dead-letters")
            .args(["-r", repo.path().to_str().unwrap(), "replayed_view"])
            .args([
                "--redis",
                &redis.url(),
                "--kafka-bootstrap",
                &broker.bootstrap_servers(),
            ])
            .args(arguments)
            .output()
            .unwrap()
    };

    let listed = fvhost(&[]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{stdout}");
    let letter: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(letter["fields"]["kind"], "batch_failed");
    assert_eq!(letter["fields"]["offset"], "1");
    assert_eq!(letter["fields"]["key"], "13");
    assert!(
        letter["fields"]["reason"]
            .as_str()
            .unwrap()
            .contains("driver 13 is poison"),
        "{letter}"
    );

    // The cause is fixed (the transform's config), the running host applies it,
    // and the event goes back to its topic.
    let definitions_path = repo.path().join("definitions.yaml");
    let fixed = std::fs::read_to_string(&definitions_path)
        .unwrap()
        .replace("trap_on: 13", "trap_on: 99");
    std::fs::write(&definitions_path, fixed).unwrap();
    let (code, body) = http(host.admin_port, "POST", "/apply", None);
    assert_eq!(code, 200, "{body}");
    let replayed = fvhost(&["--replay"]);
    let replay_log = String::from_utf8_lossy(&replayed.stderr).into_owned();
    assert!(replayed.status.success(), "{replay_log}");
    wait_for("the replayed event written", TIMEOUT, || {
        stored_ts(&mut connection, "replayed_view", 13, &repo.project).is_some()
    });
    let again = fvhost(&["--replay"]);
    let again_log = String::from_utf8_lossy(&again.stderr).into_owned();
    let exit = host.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert_eq!(
        exit.report("replayed_view")["messages"],
        4,
        "three events and one replay"
    );
    (replay_log, again_log)
}

#[test]
fn dead_letters_in_a_redis_stream_are_listed_and_replayed_once_their_cause_is_fixed() {
    let count = |redis: &RedisServer, _: &LocalBroker, project: &str| {
        redis_dead_letters(&mut redis_connection(redis), project, "replayed_view").len()
    };
    let (replay, again) = replay_scenario("e2e_replay_redis", "{type: redis_stream}", None, &count);
    assert!(replay.contains("replayed 1 dead letter"), "{replay}");
    assert!(
        again.contains("replayed 0 dead letter"),
        "a replayed entry leaves the stream: {again}"
    );
}

#[test]
fn dead_letters_in_a_kafka_topic_are_listed_and_replayed_once_their_cause_is_fixed() {
    let count = |_: &RedisServer, broker: &LocalBroker, _: &str| {
        broker
            .read_partition("replayed.dead", 0, 10, Duration::from_millis(500))
            .unwrap()
            .len()
    };
    let (replay, again) = replay_scenario(
        "e2e_replay_kafka",
        "{type: kafka, topic: replayed.dead}",
        Some("replayed.dead"),
        &count,
    );
    assert!(replay.contains("replayed 1 dead letter"), "{replay}");
    assert!(
        again.contains("replayed 0 dead letter"),
        "the replay group remembers: {again}"
    );
}

#[test]
fn a_redis_outage_holds_the_commit_and_the_batch_is_written_once_redis_is_back() {
    let mut redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("outage", 1).unwrap();
    let repo = TestRepo::new(
        "e2e_outage",
        &Definitions::new()
            .driver_stats(VIEW, "outage", "Float32")
            .yaml(),
    );
    let rt = runtime();
    let group = format!("fvhost.{}.{VIEW}", repo.project);
    let mut host = HostProcess::start(repo.path(), &broker, &redis);
    let produce = |drivers: std::ops::Range<i64>| {
        let events: Vec<Message> = drivers
            .map(|d| (d.to_string(), driver_event(d, BASE, 0.5, 0.5)))
            .collect();
        rt.block_on(broker.produce("outage", &events)).unwrap();
    };
    let all_written = |redis: &RedisServer, drivers: std::ops::Range<i64>| {
        let mut connection = redis_connection(redis);
        drivers
            .into_iter()
            .all(|d| stored_ts(&mut connection, VIEW, d, &repo.project).is_some())
    };

    produce(0..5);
    wait_for("the first batch", TIMEOUT, || all_written(&redis, 0..5));
    wait_for("its commit", TIMEOUT, || {
        committed_offset(&broker, &group, "outage") == Offset::Offset(5)
    });

    redis.kill();
    produce(5..10);
    host.wait_for_log("nothing committed, retrying", TIMEOUT);
    assert_eq!(
        committed_offset(&broker, &group, "outage"),
        Offset::Offset(5),
        "nothing is committed while the write fails"
    );
    assert!(host.is_running(), "an outage does not stop the host");

    redis.restart().unwrap();
    wait_for(
        "the held batch written to the restarted redis",
        TIMEOUT,
        || all_written(&redis, 5..10),
    );
    wait_for("its commit", TIMEOUT, || {
        committed_offset(&broker, &group, "outage") == Offset::Offset(10)
    });
    let exit = host.stop();
    assert!(exit.success, "stderr:\n{}", exit.stderr);
    assert_eq!(exit.report(VIEW)["messages"], 10);
}

#[test]
fn a_host_killed_mid_stream_loses_nothing_when_started_again() {
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("crash", 4).unwrap();
    let repo = TestRepo::new(
        "e2e_crash",
        &Definitions::new()
            .driver_stats(VIEW, "crash", "Float32")
            .yaml(),
    );
    let group = format!("fvhost.{}.{VIEW}", repo.project);
    let rt = runtime();
    let (events, newest) = out_of_order_events(1..2001, 6, BASE);
    let (first, second) = events.split_at(events.len() / 2);
    rt.block_on(broker.produce("crash", first)).unwrap();

    // Killed as soon as it has committed something: some batches are written
    // and committed, some written and not committed, some not read yet.
    let host = HostProcess::start(repo.path(), &broker, &redis);
    let committed_any = || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("group.id", &group)
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        for partition in 0..4 {
            list.add_partition("crash", partition);
        }
        consumer
            .committed_offsets(list, Duration::from_secs(10))
            .unwrap()
            .elements()
            .iter()
            .any(|e| matches!(e.offset(), Offset::Offset(_)))
    };
    wait_for("a first commit", TIMEOUT, committed_any);
    let crashed = host.crash();
    assert!(!crashed.success, "the process was killed");
    rt.block_on(broker.produce("crash", second)).unwrap();

    let host = HostProcess::start(repo.path(), &broker, &redis);
    wait_for_newest(&redis, &repo.project, &newest);
    let exit = host.stop();
    assert!(exit.success, "stderr:\n{}", exit.stderr);
    assert_hashes_exact(&redis, &repo.project, &newest);
    let reread = exit.report(VIEW)["messages"].as_u64().unwrap() as usize;
    assert!(
        (second.len()..events.len()).contains(&reread),
        "the restart reads from the last commit: {reread} of {} messages",
        events.len()
    );
}

/// A kill schedule's next delay, from a small linear congruential generator.
fn next_delay_ms(seed: &mut u64, range: std::ops::Range<u64>) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    range.start + (*seed >> 33) % (range.end - range.start)
}

#[test]
fn ten_kills_at_random_moments_across_three_partitions_lose_nothing() {
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("kills", 3).unwrap();
    let repo = TestRepo::new(
        "e2e_kills",
        &Definitions::new()
            .driver_stats(VIEW, "kills", "Float32")
            .yaml(),
    );
    let rt = runtime();
    let (events, newest) = out_of_order_events(1..3001, 10, BASE);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill schedule seed: {seed}");
    // Each round produces more events and kills the host at a random moment:
    // before its group join, mid-batch, between a write and its commit.
    for chunk in events.chunks(events.len().div_ceil(10)) {
        rt.block_on(broker.produce("kills", chunk)).unwrap();
        let host = HostProcess::start(repo.path(), &broker, &redis);
        std::thread::sleep(Duration::from_millis(next_delay_ms(&mut seed, 300..5000)));
        assert!(!host.crash().success, "the process was killed");
    }
    let host = HostProcess::start(repo.path(), &broker, &redis);
    wait_for_newest(&redis, &repo.project, &newest);
    let exit = host.stop();
    assert!(exit.success, "stderr:\n{}", exit.stderr);
    assert_hashes_exact(&redis, &repo.project, &newest);
}

#[test]
fn two_hosts_share_a_views_partitions_and_one_takes_over_when_the_other_stops() {
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("shared", 4).unwrap();
    let repo = TestRepo::new(
        "e2e_rebalance",
        &Definitions::new()
            .driver_stats(VIEW, "shared", "Float32")
            .yaml(),
    );
    let rt = runtime();
    let (first, mut newest) = out_of_order_events(1..401, 4, BASE);
    let (second, newer) = out_of_order_events(201..601, 4, BASE + 600);
    newest.extend(newer);

    let one = HostProcess::start(repo.path(), &broker, &redis);
    let two = HostProcess::start(repo.path(), &broker, &redis);
    rt.block_on(broker.produce("shared", &first)).unwrap();
    let first_newest: HashMap<i64, Newest> = newest
        .iter()
        .filter(|(driver, _)| **driver < 201)
        .map(|(d, n)| (*d, *n))
        .collect();
    wait_for_newest(&redis, &repo.project, &first_newest);

    // One host leaves; the group hands its partitions to the other.
    let first_exit = one.stop();
    assert!(first_exit.success, "stderr:\n{}", first_exit.stderr);
    rt.block_on(broker.produce("shared", &second)).unwrap();
    wait_for_newest(&redis, &repo.project, &newest);
    let second_exit = two.stop();
    assert!(second_exit.success, "stderr:\n{}", second_exit.stderr);

    assert_hashes_exact(&redis, &repo.project, &newest);
    let read = |exit: &HostExit| exit.report(VIEW)["messages"].as_u64().unwrap() as usize;
    assert!(read(&first_exit) > 0, "the partitions were shared");
    assert!(
        read(&first_exit) + read(&second_exit) >= first.len() + second.len(),
        "every event was read by one host or the other"
    );
    assert!(
        read(&second_exit) >= second.len(),
        "the remaining host read all of the second round"
    );
}

#[test]
fn three_hosts_one_killed_and_one_added_mid_stream_leave_a_single_hosts_bytes() {
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("scaled", 6).unwrap();
    let repo = TestRepo::new(
        "e2e_scaled",
        &Definitions::new()
            .driver_stats(VIEW, "scaled", "Float32")
            .yaml(),
    );
    let rt = runtime();
    let (first, mut newest) = out_of_order_events(1..301, 4, BASE);
    let (second, newer) = out_of_order_events(101..401, 4, BASE + 600);
    newest.extend(newer);
    rt.block_on(broker.produce("scaled", &first)).unwrap();
    rt.block_on(broker.produce("scaled", &second)).unwrap();

    // One host over every event: the reference.
    let single = RedisServer::start().unwrap();
    let host = HostProcess::start(repo.path(), &broker, &single);
    wait_for_newest(&single, &repo.project, &newest);
    assert!(host.stop().success);

    // The same events again (a group of its own: another project's name
    // would change the keys, so the group reads from a second broker).
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("scaled", 6).unwrap();
    let shared = RedisServer::start().unwrap();
    let hosts: Vec<HostProcess> = (0..3)
        .map(|_| HostProcess::start(repo.path(), &broker, &shared))
        .collect();
    rt.block_on(broker.produce("scaled", &first)).unwrap();
    let first_newest: HashMap<i64, Newest> = newest
        .iter()
        .filter(|(driver, _)| **driver < 101)
        .map(|(d, n)| (*d, *n))
        .collect();
    wait_for_newest(&shared, &repo.project, &first_newest);
    let mut hosts = hosts.into_iter();
    let killed = hosts.next().unwrap().crash();
    assert!(!killed.success, "SIGKILL: no draining, no final commit");
    let added = HostProcess::start(repo.path(), &broker, &shared);
    rt.block_on(broker.produce("scaled", &second)).unwrap();
    wait_for_newest(&shared, &repo.project, &newest);
    for host in hosts.chain([added]) {
        let exit = host.stop();
        assert!(exit.success, "stderr:\n{}", exit.stderr);
    }
    assert_hashes_exact(&shared, &repo.project, &newest);
    assert_eq!(
        redis_dump(&shared),
        redis_dump(&single),
        "hosts that came and went leave one host's bytes"
    );
}
