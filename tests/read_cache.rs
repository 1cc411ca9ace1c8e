//! `serve --read-cache-mb`: reads answered from memory, never staler than
//! Redis lets them be. Each test fills the cache, changes the key behind
//! it in a way a user does (another server's push, a Redis restart, a
//! flushed database, a key's TTL running out) and asserts what the next
//! read answers — and, through `/metrics`, that the cache was in use.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use fvhost::local::RedisServer;
use support::*;

/// A repo on `redis`, with `extra` lines under `online_store:`.
fn repo_on(redis: &RedisServer, extra: &str) -> TestRepo {
    let repo = TestRepo::new("cached", TRIPS_PUSH_DEFINITIONS);
    std::fs::write(
        repo.path().join("feature_store.yaml"),
        format!(
            "project: cached\nprovider: local\nregistry: data/registry.db\nonline_store:\n  type: redis\n  connection_string: \"127.0.0.1:{}\"\n{extra}entity_key_serialization_version: 3\n",
            redis.port()
        ),
    )
    .unwrap();
    repo
}

/// `fvhost serve` on one thread (one cache) with `extra` arguments.
fn serve(repo: &TestRepo, extra: &[&str]) -> (ServeProcess, u16) {
    start_serve_on(repo.path(), &[&["--threads", "1"], extra].concat())
}

fn cached_serve(repo: &TestRepo) -> (ServeProcess, u16) {
    serve(repo, &["--read-cache-mb", "16"])
}

fn push(port: u16, driver: i64, trips: i64, hour: u32) {
    let (code, answer) = push_trips(port, driver, trips, hour);
    assert_eq!(code, 200, "{answer}");
}

/// `driver`'s trips and their status, as `serve` on `port` answers.
fn trips(port: u16, driver: i64) -> (serde_json::Value, String) {
    let body = serde_json::json!({
        "features": ["driver_trips:avg_daily_trips"],
        "entities": {"driver_id": [driver]}
    });
    let (code, answer) = http(port, "POST", "/get-online-features", Some(&body));
    assert_eq!(code, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let column = &answer["results"][1];
    (
        column["values"][0].clone(),
        column["statuses"][0].as_str().unwrap().to_string(),
    )
}

/// A counter of `serve`'s `/metrics`, 0 if absent.
fn metric(port: u16, name: &str) -> f64 {
    let (code, text) = http(port, "GET", "/metrics", None);
    assert_eq!(code, 200, "{text}");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Reads `driver` until it answers `expected`, within a second (an
/// invalidation travels from Redis to the cache after the write's answer).
fn read_until(port: u16, driver: i64, expected: (serde_json::Value, &str)) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let (value, status) = trips(port, driver);
        if (value.clone(), status.as_str()) == (expected.0.clone(), expected.1) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "driver {driver} still reads {value} ({status}), expected {} ({})",
            expected.0,
            expected.1
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `driver` twice: the second answer comes from memory.
fn fill(port: u16, driver: i64, expected: i64) {
    let hits = metric(port, "fvhost_read_cache_hits_total");
    for _ in 0..2 {
        assert_eq!(
            trips(port, driver),
            (serde_json::json!(expected), "PRESENT".into())
        );
    }
    assert!(
        metric(port, "fvhost_read_cache_hits_total") > hits,
        "the second read was answered from the cache"
    );
}

#[test]
fn a_write_by_another_server_is_read_at_once_instead_of_the_cached_value() {
    let redis = RedisServer::start().unwrap();
    let repo = repo_on(&redis, "");
    let (_cached, port) = cached_serve(&repo);
    let (_other, other_port) = serve(&repo, &[]);
    push(other_port, 1, 10, 1);
    fill(port, 1, 10);
    push(other_port, 1, 20, 2);
    read_until(port, 1, (serde_json::json!(20), "PRESENT"));
    assert!(metric(port, "fvhost_read_cache_invalidations_total") >= 1.0);
    // a key never written is cached as absent, until it is written
    fill_absent(port, 2);
    push(other_port, 2, 7, 1);
    read_until(port, 2, (serde_json::json!(7), "PRESENT"));
}

/// Reads a driver never written twice: NOT_FOUND, the second from memory.
fn fill_absent(port: u16, driver: i64) {
    let hits = metric(port, "fvhost_read_cache_hits_total");
    for _ in 0..2 {
        assert_eq!(
            trips(port, driver),
            (serde_json::Value::Null, "NOT_FOUND".into())
        );
    }
    assert!(metric(port, "fvhost_read_cache_hits_total") > hits);
}

#[test]
fn a_restarted_redis_empties_the_cache() {
    let mut redis = RedisServer::start().unwrap();
    let repo = repo_on(&redis, "");
    let (_server, port) = cached_serve(&repo);
    push(port, 1, 10, 1);
    fill(port, 1, 10);
    // redis-server restarts empty (no persistence): the changes it lost
    // were never reported, so nothing cached before may be answered
    redis.restart().unwrap();
    read_until(port, 1, (serde_json::Value::Null, "NOT_FOUND"));
    assert!(metric(port, "fvhost_read_cache_flushes_total") >= 1.0);
    push(port, 1, 30, 3);
    read_until(port, 1, (serde_json::json!(30), "PRESENT"));
}

#[test]
fn a_flushed_database_empties_the_cache() {
    let redis = RedisServer::start().unwrap();
    let repo = repo_on(&redis, "");
    let (_server, port) = cached_serve(&repo);
    push(port, 1, 10, 1);
    fill(port, 1, 10);
    let mut connection = redis_connection(&redis);
    redis::cmd("FLUSHDB").exec(&mut connection).unwrap();
    read_until(port, 1, (serde_json::Value::Null, "NOT_FOUND"));
}

/// A redis-server whose active expiry is off: only an access would expire a
/// key, so Redis reports no expiry and the cache must know the TTL itself.
fn redis_without_active_expiry() -> RedisServer {
    let redis = RedisServer::start_with(&["--enable-debug-command", "local"]).unwrap();
    redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .exec(&mut redis_connection(&redis))
        .unwrap();
    redis
}

#[test]
fn a_key_is_not_answered_from_the_cache_past_its_ttl() {
    let redis = redis_without_active_expiry();
    let repo = repo_on(&redis, "  key_ttl_seconds: 1\n");
    let (_server, port) = cached_serve(&repo);
    push(port, 1, 10, 1);
    fill(port, 1, 10);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        trips(port, 1),
        (serde_json::Value::Null, "NOT_FOUND".into())
    );
}

#[test]
fn a_ttl_another_client_gave_the_key_is_honoured_too() {
    let redis = redis_without_active_expiry();
    let repo = repo_on(&redis, "");
    let (_server, port) = cached_serve(&repo);
    push(port, 1, 10, 1);
    redis::cmd("PEXPIRE")
        .arg(driver_key(1, "cached"))
        .arg(800)
        .exec(&mut redis_connection(&redis))
        .unwrap();
    fill(port, 1, 10);
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(
        trips(port, 1),
        (serde_json::Value::Null, "NOT_FOUND".into())
    );
}

#[test]
fn the_read_cache_refuses_a_cluster_or_sentinel_store_at_start() {
    let redis = RedisServer::start().unwrap();
    let repo = repo_on(&redis, "");
    let yaml = repo.path().join("feature_store.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        text.replace(
            "  type: redis\n",
            "  type: redis\n  redis_type: redis_cluster\n",
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fvhost"))
        .args([
            "serve",
            "-r",
            repo.path().to_str().unwrap(),
            "--read-cache-mb",
            "16",
        ])
        .args([
            "--listen",
            &format!("127.0.0.1:{}", fvhost::local::free_port().unwrap()),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--read-cache-mb needs a single Redis server (redis_type: redis)"),
        "{stderr}"
    );
}
