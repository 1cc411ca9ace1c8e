//! The Redis deployments an online store can be, seen from `serve` and the
//! CLI: credentials with any character, a Sentinel set with a database, a
//! Sentinel switching masters under a running server, a cluster that stops
//! answering. Each asserts what a user sees: the value read back, the
//! status code and how long it took.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fvhost::local::{RedisSentinelSet, SENTINEL_MASTER};
use support::*;

/// A repo whose online store is `online_store` (YAML lines under `online_store:`).
fn repo_on(project: &str, online_store: &str) -> TestRepo {
    let repo = TestRepo::new(project, TRIPS_PUSH_DEFINITIONS);
    std::fs::write(
        repo.path().join("feature_store.yaml"),
        format!(
            "project: {project}\nprovider: local\nregistry: data/registry.db\nonline_store:\n{online_store}entity_key_serialization_version: 3\n"
        ),
    )
    .unwrap();
    repo
}

/// `fvhost serve` on the repo's own store, once it answers `/health`.
fn serve(repo: &Path) -> (ServeProcess, u16) {
    start_serve_on(repo, &[])
}

fn push(port: u16, driver: i64, trips: i64, hour: u32) -> (u16, String) {
    push_trips(port, driver, trips, hour)
}

/// `fvhost get-online-features` of `driver`'s trips (a new process,
/// connecting afresh), expected to exit with `code`.
fn get_trips(repo: &Path, driver: i64, code: i32) -> std::process::Output {
    run_fvhost(
        &[
            "get-online-features",
            "-r",
            repo.to_str().unwrap(),
            "--features",
            "driver_trips:avg_daily_trips",
            "--entity",
            &format!("driver_id={driver}"),
        ],
        None,
        code,
    )
}

/// `avg_daily_trips` of `driver` as `fvhost get-online-features` reads it.
fn trips_read_afresh(repo: &Path, driver: i64) -> serde_json::Value {
    let out = get_trips(repo, driver, 0);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    answer["results"][1]["values"][0].clone()
}

#[test]
fn a_password_with_url_characters_and_a_sentinel_database_reach_redis() {
    let password = "p@ss/w:rd#1?x%";
    let redis = RedisServer::start_with(&["--requirepass", password]).unwrap();
    let repo = repo_on(
        "deploy_password",
        &format!(
            "  type: redis\n  connection_string: \"127.0.0.1:{},password={password}\"\n",
            redis.port()
        ),
    );
    let (_serve, port) = serve(repo.path());
    let (status, body) = push(port, 1001, 31, 1);
    assert_eq!(status, 200, "{body}");
    assert_eq!(trips_read_afresh(repo.path(), 1001), 31);

    // Sentinel with db=3: the database is the master's, not the sentinel's.
    let sentinels = RedisSentinelSet::start(1).unwrap();
    let repo = repo_on(
        "deploy_sentinel_db",
        &format!(
            "  type: redis\n  redis_type: redis_sentinel\n  sentinel_master: {SENTINEL_MASTER}\n  connection_string: \"{},db=3\"\n",
            sentinels.connection_string()
        ),
    );
    let (_serve, port) = serve(repo.path());
    let (status, body) = push(port, 1002, 7, 1);
    assert_eq!(status, 200, "{body}");
    assert_eq!(trips_read_afresh(repo.path(), 1002), 7);
    let master = sentinels.master_port().unwrap();
    let mut db3 = redis::Client::open(format!("redis://127.0.0.1:{master}/3"))
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: i64 = redis::cmd("DBSIZE").query(&mut db3).unwrap();
    assert_eq!(keys, 1, "the row is in database 3 of the master");
}

#[test]
fn after_a_sentinel_failover_a_running_server_writes_to_the_new_master() {
    let sentinels = RedisSentinelSet::start(1).unwrap();
    let repo = repo_on(
        "deploy_switch",
        &format!(
            "  type: redis\n  redis_type: redis_sentinel\n  sentinel_master: {SENTINEL_MASTER}\n  connection_string: \"{}\"\n",
            sentinels.connection_string()
        ),
    );
    let (_serve, port) = serve(repo.path());
    assert_eq!(push(port, 1001, 31, 1).0, 200);
    // The old master keeps answering as a master for seconds after the
    // sentinels switched: a server that asked once would write there.
    let old = sentinels.failover().unwrap();
    sentinels
        .wait_for_new_master(old, Duration::from_secs(30))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let (status, body) = push(port, 1001, 32, 2);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        trips_read_afresh(repo.path(), 1001),
        32,
        "the push after the switch is on the new master"
    );

    // The sentinel gone, the running server keeps the master it knows.
    let mut sentinels = sentinels;
    sentinels.kill_sentinel();
    std::thread::sleep(Duration::from_millis(1500));
    let (status, body) = push(port, 1001, 33, 3);
    assert_eq!(status, 200, "without a sentinel: {body}");
    let read = serde_json::json!({
        "features": ["driver_trips:avg_daily_trips"],
        "entities": {"driver_id": [1001]}
    });
    let (status, body) = http(port, "POST", "/get-online-features", Some(&read));
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["results"][1]["values"][0], 33, "{body}");
}

#[test]
fn a_cluster_that_stops_answering_gets_a_503_within_the_deadline_not_a_hung_request() {
    let cluster = RedisCluster::start(3, 0).unwrap();
    let repo = repo_on(
        "deploy_frozen",
        &format!(
            "  type: redis\n  redis_type: redis_cluster\n  connection_string: \"{}\"\n",
            cluster.connection_string()
        ),
    );
    let (_serve, port) = serve(repo.path());
    assert_eq!(push(port, 1001, 31, 1).0, 200);
    let read = serde_json::json!({
        "features": ["driver_trips:avg_daily_trips"],
        "entities": {"driver_id": [1001, 1002, 1003, 1004]}
    });
    let signal = |sig: i32| {
        for pid in cluster.pids() {
            // SAFETY: kill(2) on our own child processes.
            unsafe { libc::kill(pid as i32, sig) };
        }
    };
    signal(libc::SIGSTOP);
    let started = Instant::now();
    let (status, body) = http(port, "POST", "/get-online-features", Some(&read));
    let waited = started.elapsed();
    signal(libc::SIGCONT);
    assert_eq!(status, 503, "{body}");
    assert!(
        waited < Duration::from_secs(25),
        "answered after {waited:?}, not held: {body}"
    );
    assert!(body.contains("did not answer"), "{body}");
    let (status, body) = http(port, "POST", "/get-online-features", Some(&read));
    assert_eq!(status, 200, "the cluster back, reads work again: {body}");
}

/// A certificate authority and a server certificate for 127.0.0.1, made
/// with openssl in `dir` (`ca.crt`, `server.crt`, `server.key`).
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (Debian: apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=fvhost test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

#[test]
fn ssl_true_reaches_a_tls_only_redis_and_checks_its_certificate() {
    let certificates = tempfile::tempdir().unwrap();
    make_certificates(certificates.path());
    let redis = RedisServer::start_tls(certificates.path()).unwrap();
    let ca = certificates.path().join("ca.crt");
    let repo = repo_on(
        "deploy_tls",
        &format!(
            "  type: redis\n  connection_string: \"127.0.0.1:{},ssl=true,ssl_ca_certs={}\"\n",
            redis.port(),
            ca.display()
        ),
    );
    let (_serve, port) = serve(repo.path());
    let (status, body) = push(port, 1001, 31, 1);
    assert_eq!(status, 200, "{body}");
    assert_eq!(trips_read_afresh(repo.path(), 1001), 31);

    // Without the authority the certificate is not trusted: a clear refusal.
    let untrusted = repo_on(
        "deploy_tls_untrusted",
        &format!(
            "  type: redis\n  connection_string: \"127.0.0.1:{},ssl=true\"\n",
            redis.port()
        ),
    );
    let out = get_trips(untrusted.path(), 1001, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open the online store") && stderr.contains("127.0.0.1"),
        "{stderr}"
    );

    // An authority file that is not one, or not a file: named, refused.
    let junk = certificates.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    for (path, expected) in [
        (junk.display().to_string(), "holds no PEM certificate"),
        ("/dev/zero".to_string(), "not a regular file"),
    ] {
        let repo = repo_on(
            "deploy_tls_bad_ca",
            &format!(
                "  type: redis\n  connection_string: \"127.0.0.1:{},ssl=true,ssl_ca_certs={path}\"\n",
                redis.port()
            ),
        );
        let out = get_trips(repo.path(), 1001, 1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("ssl_ca_certs") && stderr.contains(expected),
            "{path}: {stderr}"
        );
    }
}

#[test]
fn a_cluster_over_tls_takes_writes_on_every_master_and_reads_them_back() {
    let certificates = tempfile::tempdir().unwrap();
    make_certificates(certificates.path());
    let cluster = RedisCluster::start_tls(3, 0, certificates.path()).unwrap();
    let repo = repo_on(
        "deploy_tls_cluster",
        &format!(
            "  type: redis\n  redis_type: redis_cluster\n  connection_string: \"{},ssl=true,ssl_ca_certs={}\"\n",
            cluster.connection_string(),
            certificates.path().join("ca.crt").display()
        ),
    );
    let (_serve, port) = serve(repo.path());
    // 30 drivers: their keys fall on every master.
    for driver in 1001..1031 {
        let (status, body) = push(port, driver, driver - 1000, 1);
        assert_eq!(status, 200, "{body}");
    }
    let read = serde_json::json!({
        "features": ["driver_trips:avg_daily_trips"],
        "entities": {"driver_id": (1001..1031).collect::<Vec<i64>>()}
    });
    let (status, body) = http(port, "POST", "/get-online-features", Some(&read));
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let trips: Vec<i64> = answer["results"][1]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(trips, (1..31).collect::<Vec<i64>>());
}

#[test]
fn serve_acknowledges_a_push_only_once_a_replica_holds_it_when_asked_to() {
    let sentinels = RedisSentinelSet::start(1).unwrap();
    let repo = repo_on(
        "deploy_wait",
        &format!(
            "  type: redis\n  redis_type: redis_sentinel\n  sentinel_master: {SENTINEL_MASTER}\n  connection_string: \"{}\"\n",
            sentinels.connection_string()
        ),
    );
    let (_serve, port) = start_serve_on(repo.path(), &["--wait-for-replicas", "1"]);
    let (status, body) = push(port, 1001, 31, 1);
    assert_eq!(status, 200, "{body}");
    let master = sentinels.master_port().unwrap();
    // ROLE on a master: "master", its offset, then each replica's ip, port, offset.
    let role = Command::new("redis-cli")
        .args(["-p", &master.to_string(), "role"])
        .output()
        .unwrap();
    let replica: u16 = String::from_utf8_lossy(&role.stdout)
        .lines()
        .nth(3)
        .and_then(|port| port.trim().parse().ok())
        .expect("the master names its replica");
    let mut on_replica = redis::Client::open(format!("redis://127.0.0.1:{replica}/0"))
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: i64 = redis::cmd("DBSIZE").query(&mut on_replica).unwrap();
    assert_eq!(
        keys, 1,
        "the replica held the row when the push was answered"
    );

    // Asking for more replicas than there are: the push is refused, not acknowledged.
    let (_serve, port) = start_serve_on(repo.path(), &["--wait-for-replicas", "2"]);
    let (status, body) = push(port, 1002, 7, 1);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("replicas"), "{body}");
}
