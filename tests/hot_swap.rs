//! Hot swap on a running host: modules deployed and rolled back while events
//! flow, each batch transformed by exactly one version, nothing lost, and a
//! rejected deploy changing nothing.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use fvhost::online::murmur3::feature_field;
use redis::Commands;
use support::*;

const VIEW: &str = "driver_stats_view";
const TOPIC: &str = "swaps";
const BASE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z: event times are in the past

fn conv_rate(offset: i64) -> f64 {
    (offset % 89) as f64 / 89.0
}

/// `first`..=`last` offsets and the version of every written batch, from the host's log.
fn batches(log: &str) -> Vec<(i64, i64, String)> {
    let field = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!(" {name}="))? + name.len() + 2;
        let value: String = line[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        Some(value.trim_matches('"').to_string())
    };
    let offset = |origin: String| -> Option<i64> { origin.rsplit('@').next()?.parse().ok() };
    log.lines()
        .filter(|l| l.contains("batch written"))
        .filter_map(|l| {
            Some((
                offset(field(l, "first")?)?,
                offset(field(l, "last")?)?,
                field(l, "version")?,
            ))
        })
        .collect()
}

/// Produces one event for `driver` to the test topic, waits until its
/// `conv_percentage` is written, and returns the stored value.
fn produce_and_read(
    rt: &tokio::runtime::Runtime,
    broker: &LocalBroker,
    connection: &mut redis::Connection,
    project: &str,
    driver: i64,
) -> Vec<u8> {
    let field = feature_field(VIEW, "conv_percentage");
    rt.block_on(broker.produce(
        TOPIC,
        &[(
            "k".to_string(),
            driver_event(driver, BASE + driver, 0.5, 0.5),
        )],
    ))
    .unwrap();
    let mut stored = None;
    wait_for("the event written", Duration::from_secs(90), || {
        stored = connection
            .hget(driver_key(driver, project), &field[..])
            .unwrap();
        stored.is_some()
    });
    stored.unwrap_or_default()
}

#[test]
fn deploys_and_rollbacks_under_load_apply_each_version_to_whole_batches_and_lose_nothing() {
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic(TOPIC, 1).unwrap();
    let repo = TestRepo::new(
        "hot_swap",
        &Definitions::new()
            .driver_stats(VIEW, TOPIC, "Float32")
            .yaml(),
    );
    let v1 = std::fs::read(driver_stats_module()).unwrap();
    let v2 = std::fs::read(test_guest("rates_x1000")).unwrap();
    let rt = runtime();

    let host = HostProcess::start_logging(
        repo.path(),
        &broker,
        &redis,
        "info,fvhost::pipeline::stream=debug",
    );
    let admin = host.admin_port;
    wait_for("the admin API", Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", admin)).is_ok()
    });
    let status = |port| -> serde_json::Value {
        serde_json::from_str(&http(port, "GET", "/status", None).1).unwrap()
    };
    let v1_id = status(admin)[0]["version"].as_str().unwrap().to_string();

    let mut produced = 0i64;
    let mut factors = BTreeMap::from([(v1_id.clone(), 100.0)]);
    let mut swaps = 0;
    for round in 0..12 {
        let messages: Vec<(String, Vec<u8>)> = (produced..produced + 250)
            .map(|offset| {
                (
                    "k".to_string(),
                    driver_event(100_000 + offset, BASE + offset, conv_rate(offset), 0.5),
                )
            })
            .collect();
        // Swap while events flow: once a batch was written after this round's events went out.
        let written_before = host.log().matches("batch written").count();
        rt.block_on(broker.produce(TOPIC, &messages)).unwrap();
        produced += 250;
        wait_for("a batch of this round", Duration::from_secs(60), || {
            host.log().matches("batch written").count() > written_before
        });
        let (code, body) = match round % 4 {
            0 | 2 => http_bytes(
                admin,
                "POST",
                &format!("/views/{VIEW}/deploy?by=test-{round}"),
                if round % 8 == 0 { &v2 } else { &v1 },
            ),
            _ => http(admin, "POST", &format!("/views/{VIEW}/rollback"), None),
        };
        assert_eq!(code, 200, "round {round}: {body}");
        let deployed: serde_json::Value = serde_json::from_str(&body).unwrap();
        let id = deployed["version"].as_str().unwrap().to_string();
        factors
            .entry(id)
            .or_insert(if round % 8 == 0 { 1000.0 } else { 100.0 });
        swaps += 1;
    }

    // Rejected deploys: not Wasm, an output lacking the view's features, another contract version.
    let before = status(admin)[0]["version"].clone();
    let (code, body) = http_bytes(
        admin,
        "POST",
        &format!("/views/{VIEW}/deploy"),
        b"definitely not wasm",
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("not a WebAssembly file"), "{body}");
    let (code, body) = http_bytes(
        admin,
        "POST",
        &format!("/views/{VIEW}/deploy"),
        &std::fs::read(test_guest("trap_on_driver")).unwrap(),
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("feature column `conv_percentage` is missing"),
        "{body}"
    );
    let (code, body) = http_bytes(
        admin,
        "POST",
        &format!("/views/{VIEW}/deploy"),
        &std::fs::read(test_guest("wrong_contract")).unwrap(),
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("does not match the fvhost:transform@0.1.0 contract"),
        "{body}"
    );
    let (code, _) = http_bytes(admin, "POST", "/views/no_such_view/deploy", &v1);
    assert_eq!(code, 404);
    assert_eq!(
        status(admin)[0]["version"],
        before,
        "a rejected deploy changes nothing"
    );

    let mut connection = redis_connection(&redis);
    wait_for("every event written", Duration::from_secs(90), || {
        let written: Option<Vec<u8>> = connection
            .hget(
                driver_key(100_000 + produced - 1, &repo.project),
                format!("_ts:{VIEW}"),
            )
            .unwrap();
        written.is_some()
    });
    let status = status(admin);
    // The last round rolled back to the version the host started with.
    assert_eq!(status[0]["deployed_by"], "repo", "{status}");
    assert!(
        status[0]["previous_versions"].is_array() && status[0]["consumer_lag"].is_u64(),
        "{status}"
    );
    assert_eq!(
        status[0]["features"],
        serde_json::json!(["conv_percentage:Float32", "acc_percentage:Float32"])
    );
    assert!(
        ["baseline", "optimized"].contains(&status[0]["tier"].as_str().unwrap_or("")),
        "{status}"
    );
    let (view_batches, version_batches) = (
        status[0]["batches"].as_u64().unwrap(),
        status[0]["version_metrics"]["batches"].as_u64().unwrap(),
    );
    assert!(
        version_batches <= view_batches,
        "the active version's own counters are part of the view's: {status}"
    );
    let log = host.log();
    let exit = host.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert_eq!(exit.report(VIEW)["messages"], produced);
    assert_eq!(
        exit.report(VIEW)["keys_written"],
        produced,
        "every event written exactly once"
    );

    let batches = batches(&log);
    let versions: std::collections::BTreeSet<&String> = batches.iter().map(|b| &b.2).collect();
    assert!(
        versions.len() >= 2,
        "batches ran under both modules: {versions:?}"
    );
    assert!(
        log.matches("new version active from this batch on").count() >= 3,
        "swaps took effect while events flowed"
    );
    let field = feature_field(VIEW, "conv_percentage");
    let mut checked = 0;
    for (first, last, version) in &batches {
        let factor = factors[version];
        for offset in *first..=*last {
            let stored: Vec<u8> = connection
                .hget(driver_key(100_000 + offset, &repo.project), &field[..])
                .unwrap();
            assert_eq!(
                stored,
                float_value((conv_rate(offset) * factor) as f32),
                "event {offset} was in a batch of version {version}"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, produced,
        "every event belongs to exactly one logged batch ({swaps} swaps)"
    );
}

#[test]
fn apply_live_swaps_changed_views_starts_added_ones_and_stops_removed_ones_all_or_nothing() {
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic(TOPIC, 1).unwrap();
    let repo = TestRepo::new(
        "apply_live",
        &Definitions::new()
            .driver_stats(VIEW, TOPIC, "Float32")
            .yaml(),
    );
    let definitions = repo.path().join("definitions.yaml");
    let rt = runtime();
    let host = HostProcess::start(repo.path(), &broker, &redis);
    let admin = host.admin_port;
    let mut connection = redis_connection(&redis);
    assert_eq!(
        produce_and_read(&rt, &broker, &mut connection, &repo.project, 1),
        float_value(50.0)
    );

    // A change that fails validation on the host: nothing swaps.
    let original = std::fs::read_to_string(&definitions).unwrap();
    std::fs::write(
        &definitions,
        original.replace("dtype: Float32", "dtype: Int64"),
    )
    .unwrap();
    let (code, body) = http(admin, "POST", "/apply", None);
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("view `driver_stats_view`") && body.contains("declares Int64"),
        "{body}"
    );
    assert_eq!(
        produce_and_read(&rt, &broker, &mut connection, &repo.project, 2),
        float_value(50.0),
        "the rejected apply changed nothing"
    );

    let status_of = |view: &str| -> serde_json::Value {
        let (code, body) = http(admin, "GET", "/status", None);
        assert_eq!(code, 200, "{body}");
        let all: serde_json::Value = serde_json::from_str(&body).unwrap();
        all.as_array()
            .and_then(|views| views.iter().find(|v| v["view"] == view))
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    };
    let before_config_change = status_of(VIEW);

    // A new config and a new view: the config swaps at the next batch, the view starts.
    let changed = Definitions::new()
        .driver_stats(VIEW, TOPIC, "Float32")
        .driver_stats("another_view", "another", "Float32")
        .yaml();
    std::fs::write(
        &definitions,
        changed.replacen("factor: 100", "factor: 10", 1),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fvhost"))
        .args([
            "apply",
            "-r",
            repo.path().to_str().unwrap(),
            "--live",
            "--admin",
            &format!("127.0.0.1:{admin}"),
        ])
        .env(
            "FVHOST_CACHE_DIR",
            root().join("target/fvhost-test-module-cache"),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("\"changed\": [\n    \"driver_stats_view\"\n  ]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"added\": [\n    \"another_view\"\n  ]"),
        "{stdout}"
    );
    assert_eq!(
        produce_and_read(&rt, &broker, &mut connection, &repo.project, 3),
        float_value(5.0),
        "events after the apply use factor 10"
    );
    let after_config_change = status_of(VIEW);
    assert_ne!(
        after_config_change["version"], before_config_change["version"],
        "a config-only change is a new version"
    );
    assert_eq!(
        after_config_change["module"], before_config_change["module"],
        "with the same module"
    );
    assert_eq!(
        after_config_change["previous_versions"][0],
        before_config_change["version"]
    );
    let field = feature_field(VIEW, "conv_percentage");
    let stored: Vec<u8> = connection
        .hget(driver_key(1, &repo.project), &field[..])
        .unwrap();
    assert_eq!(
        stored,
        float_value(50.0),
        "events before it keep what the old definition wrote"
    );

    // The added view runs without a restart; removing it stops it.
    rt.block_on(broker.produce(
        "another",
        &[("k".to_string(), driver_event(77, BASE, 0.5, 0.5))],
    ))
    .unwrap();
    let another = feature_field("another_view", "conv_percentage");
    wait_for("the added view to write", Duration::from_secs(90), || {
        let stored: Option<Vec<u8>> = connection
            .hget(driver_key(77, &repo.project), &another[..])
            .unwrap();
        stored == Some(float_value(50.0))
    });
    std::fs::write(
        &definitions,
        Definitions::new()
            .driver_stats(VIEW, TOPIC, "Float32")
            .yaml()
            .replacen("factor: 100", "factor: 10", 1),
    )
    .unwrap();
    let (code, body) = http(admin, "POST", "/apply", None);
    assert_eq!(code, 200, "{body}");
    let applied: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        applied["removed"],
        serde_json::json!(["another_view"]),
        "{body}"
    );
    assert_eq!(applied["unchanged"], serde_json::json!([VIEW]), "{body}");
    let exit = host.stop();
    assert!(exit.success, "{}", exit.stderr);
    assert_eq!(exit.report(VIEW)["keys_written"], 3);
    assert_eq!(exit.report("another_view")["keys_written"], 1);
}

#[test]
fn run_watch_applies_a_changed_repo_and_ignores_a_broken_one() {
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic(TOPIC, 1).unwrap();
    let repo = TestRepo::new(
        "watched",
        &Definitions::new()
            .driver_stats(VIEW, TOPIC, "Float32")
            .yaml(),
    );
    let definitions = repo.path().join("definitions.yaml");
    let rt = runtime();
    let host = HostProcess::start_with(repo.path(), &broker, &redis, &["--watch"]);
    let mut connection = redis_connection(&redis);
    assert_eq!(
        produce_and_read(&rt, &broker, &mut connection, &repo.project, 1),
        float_value(50.0)
    );

    let original = std::fs::read_to_string(&definitions).unwrap();
    std::fs::write(&definitions, original.replace("factor: 100", "factor: 10")).unwrap();
    host.wait_for_log("repo changed on disk and applied", Duration::from_secs(60));
    assert_eq!(
        produce_and_read(&rt, &broker, &mut connection, &repo.project, 2),
        float_value(5.0),
        "the new config is live"
    );

    std::fs::write(
        &definitions,
        original.replace("dtype: Float32", "dtype: Int64"),
    )
    .unwrap();
    host.wait_for_log(
        "repo changed on disk but was not applied",
        Duration::from_secs(60),
    );
    assert!(
        host.log().contains("declares Int64"),
        "the reason is logged"
    );
    assert_eq!(
        produce_and_read(&rt, &broker, &mut connection, &repo.project, 3),
        float_value(5.0),
        "a broken repo changes nothing"
    );
    let exit = host.stop();
    assert!(exit.success, "{}", exit.stderr);
}
