//! Many tenants in one host: hostile transforms are contained with the right
//! reason, their events dead-lettered, while two well-behaved tenants keep
//! ingesting; each tenant's credential opens its own views only. Real
//! redis-server, librdkafka's mock cluster over TCP, the real `fvhost`
//! binary, every guest built from source (tests/guests).

mod support;

use std::path::Path;
use std::time::Duration;

use redis::Commands;
use support::*;

const TIMEOUT: Duration = Duration::from_secs(120);
const BASE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z: event times are in the past
const VIEW: &str = "driver_stats_view";

const ALPHA_TOKEN: &str = "alpha-token-8c1f";
const BETA_TOKEN: &str = "beta-token-52aa";
const HOSTILE_TOKEN: &str = "hostile-token-e07d";
const OPERATOR_TOKEN: &str = "operator-token-9b3e";

/// Each hostile view, the attack it runs, and what its dead letters must say.
const ATTACKS: &[(&str, &str)] = &[
    ("loop", "time limit of 300 ms per batch exceeded"),
    ("recursion", "transform trapped"),
    ("memory", "memory limit of 32 MiB exceeded"),
    ("huge_output", "output size limit of 1048576 bytes exceeded"),
    (
        "many_rows",
        "output row limit of 1000 exceeded: the batch has 100000 rows",
    ),
    ("wrong_schema", "does not match the view's schema"),
    ("panic", "hostile guest panicked on purpose"),
    ("exit", "transform trapped"),
    ("filesystem", "filesystem: /etc/passwd: denied"),
    ("environment", "environment: 0 variables, 0 arguments"),
    ("network", "network: denied"),
    ("chatty", "said too much"),
    // A sleep is a WASI poll on a clock subscription, which never blocks a
    // guest: it returns at once (the clock says no time passed), and a
    // guest sleeping in a loop spins into its time limit.
    ("sleep", "woke up after 0 ns"),
    ("sleep_forever", "time limit of 300 ms per batch exceeded"),
    (
        "init_sleep",
        "transform init failed: init woke up after 0 ns",
    ),
    ("huge_error", "more bytes cut)"),
    ("init_huge_error", "transform init failed: EEEE"),
    (
        "log_injection",
        "failed\\n2026-11-30T00:00:00.000000Z  INFO fvhost: operator token accepted\\r\\u{0}\\u{1b}[2J\\u{202e}",
    ),
];

/// The well-behaved example view over `topic`, its factor set to `factor`.
fn well_behaved(topic: &str, factor: u32) -> String {
    Definitions::new()
        .driver_stats(VIEW, topic, "Float32")
        .yaml()
        .replace("factor: 100", &format!("factor: {factor}"))
}

/// One view per attack, plus a module returning bytes that are not Arrow and
/// one that traps on a single row; every view dead-letters to a Redis stream.
fn hostile_definitions(network_port: u16) -> String {
    let mut definitions = Definitions::new();
    for (attack, _) in ATTACKS {
        definitions = definitions
            .kafka_source(attack, DRIVER_EVENT_SCHEMA)
            .stream_view(
                &format!("attack_{attack}"),
                attack,
                &[("conv_rate", "Float64")],
                &test_guest("hostile"),
                &format!("attack: {attack}, port: {network_port}"),
            )
            .dead_letter("{type: redis_stream}");
    }
    definitions
        .kafka_source("reject_storm", DRIVER_EVENT_SCHEMA)
        .stream_view(
            "attack_reject_storm",
            "reject_storm",
            &[("conv_rate", "Float64")],
            &test_guest("hostile"),
            "attack: reject_storm",
        )
        .dead_letter("{type: redis_stream}")
        .kafka_source("malformed", DRIVER_EVENT_SCHEMA)
        .stream_view(
            "attack_malformed",
            "malformed",
            &[("conv_rate", "Float64")],
            &test_guest("raw_output"),
            "",
        )
        .dead_letter("{type: redis_stream}")
        .kafka_source("poison_row", DRIVER_EVENT_SCHEMA)
        .stream_view(
            "attack_poison_row",
            "poison_row",
            &[("conv_rate", "Float64")],
            &test_guest("trap_on_driver"),
            "trap_on: 13",
        )
        .dead_letter("{type: redis_stream}")
        .yaml()
}

fn host_yaml(
    dir: &Path,
    alpha: &TestRepo,
    beta: &TestRepo,
    hostile: &TestRepo,
) -> std::path::PathBuf {
    std::fs::write(dir.join("beta.token"), format!("{BETA_TOKEN}\n")).unwrap();
    let yaml = format!(
        "admin:\n  operator_token_env: SANDBOX_OPERATOR_TOKEN\n\
         tenants:\n\
         \x20 - name: alpha\n    repo: {}\n    token_env: SANDBOX_ALPHA_TOKEN\n\
         \x20 - name: beta\n    repo: {}\n    token_file: beta.token\n\
         \x20 - name: hostile\n    repo: {}\n    token_env: SANDBOX_HOSTILE_TOKEN\n\
         \x20   limits: {{memory: 32MiB, time_per_batch: 300ms, output: 1MiB, output_rows: 1000, instances_in_flight: 1}}\n",
        alpha.path().display(),
        beta.path().display(),
        hostile.path().display()
    );
    let path = dir.join("host.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The host of `config`, with the tokens host.yaml reads from the environment.
fn start_host(config: &Path, broker: &LocalBroker, redis: &RedisServer) -> HostProcess {
    HostProcess::start_config(
        config,
        broker,
        redis,
        &[
            ("SANDBOX_ALPHA_TOKEN", ALPHA_TOKEN),
            ("SANDBOX_HOSTILE_TOKEN", HOSTILE_TOKEN),
            ("SANDBOX_OPERATOR_TOKEN", OPERATOR_TOKEN),
        ],
    )
}

fn events(drivers: std::ops::Range<i64>, seconds: i64) -> Vec<(String, Vec<u8>)> {
    drivers
        .map(|d| (d.to_string(), driver_event(d, seconds, 0.5, 0.25)))
        .collect()
}

fn status_json(port: u16, token: &str, path: &str) -> serde_json::Value {
    let (code, body) = http_as(port, Some(token), "GET", path, b"");
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn hostile_transforms_are_contained_while_other_tenants_keep_ingesting() {
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let network_port = listener.local_addr().unwrap().port();
    let alpha = TestRepo::new("sandbox_alpha", &well_behaved("alpha", 100));
    let beta = TestRepo::new("sandbox_beta", &well_behaved("beta", 10));
    let hostile = TestRepo::new("sandbox_hostile", &hostile_definitions(network_port));
    let config_dir = tempfile::tempdir().unwrap();
    let config = host_yaml(config_dir.path(), &alpha, &beta, &hostile);
    let topics = ["alpha", "beta", "malformed", "poison_row", "reject_storm"]
        .into_iter()
        .chain(ATTACKS.iter().map(|(attack, _)| *attack));
    for topic in topics {
        broker.create_topic(topic, 1).unwrap();
    }
    let rt = runtime();
    for (attack, _) in ATTACKS {
        rt.block_on(broker.produce(attack, &events(1..4, BASE)))
            .unwrap();
    }
    rt.block_on(broker.produce("malformed", &events(1..4, BASE)))
        .unwrap();
    rt.block_on(broker.produce("poison_row", &events(12..15, BASE)))
        .unwrap();
    rt.block_on(broker.produce("reject_storm", &events(1..4, BASE)))
        .unwrap();
    rt.block_on(broker.produce("alpha", &events(1..41, BASE)))
        .unwrap();
    rt.block_on(broker.produce("beta", &events(1..41, BASE)))
        .unwrap();

    let mut host = start_host(&config, &broker, &redis);
    let mut connection = redis_connection(&redis);
    let field = fvhost::online::murmur3::feature_field(VIEW, "conv_percentage");
    let stored = |connection: &mut redis::Connection, driver: i64, project: &str| {
        let value: Option<Vec<u8>> = connection
            .hget(driver_key(driver, project), &field[..])
            .unwrap();
        value
    };

    // The well-behaved tenants ingest everything, each in its own key space.
    wait_for("both tenants' events written", TIMEOUT, || {
        (1..41).all(|d| {
            stored(&mut connection, d, "sandbox_alpha").is_some()
                && stored(&mut connection, d, "sandbox_beta").is_some()
        })
    });
    assert_eq!(
        stored(&mut connection, 7, "sandbox_alpha"),
        Some(float_value(50.0))
    );
    assert_eq!(
        stored(&mut connection, 7, "sandbox_beta"),
        Some(float_value(5.0))
    );

    // Every hostile view's events are dead-lettered with the reason that names what it hit.
    for (attack, reason) in ATTACKS {
        let view = format!("attack_{attack}");
        wait_for(&format!("{view}'s dead letters"), TIMEOUT, || {
            redis_dead_letters(&mut connection, "sandbox_hostile", &view).len() == 3
        });
        for letter in redis_dead_letters(&mut connection, "sandbox_hostile", &view) {
            assert_eq!(text(&letter, "kind"), "batch_failed", "{view}: {letter:?}");
            assert!(
                text(&letter, "reason").contains(reason),
                "{view}: expected {reason:?} in {:?}",
                text(&letter, "reason")
            );
        }
    }
    // Guest strings are cut to 4 KiB and escaped before they are stored or logged.
    for view in ["attack_huge_error", "attack_init_huge_error"] {
        for letter in redis_dead_letters(&mut connection, "sandbox_hostile", view) {
            let reason = text(&letter, "reason");
            assert!(
                reason.len() < 4300,
                "{view}: a {} byte reason",
                reason.len()
            );
        }
    }
    let log = host.log();
    assert!(
        log.lines()
            .all(|line| !line.starts_with("2026-11-30T00:00:00.000000Z")),
        "no forged line in the host's log"
    );
    assert!(
        !log.contains('\u{1b}') && !log.contains('\u{202e}') && !log.contains('\u{0}'),
        "no terminal escape, bidi override or NUL in the host's log"
    );
    assert!(
        log.contains(
            "innocent\\n2026-11-30T00:00:00.000000Z  INFO fvhost: operator token accepted\\r"
        ),
        "the guest's log line is kept, escaped"
    );
    assert!(
        log.len() < 8 << 20,
        "16 MiB errors do not flood the log: {} bytes",
        log.len()
    );
    let filesystem = redis_dead_letters(&mut connection, "sandbox_hostile", "attack_filesystem");
    let report = text(&filesystem[0], "reason");
    assert!(
        !report.contains("READ") && !report.contains("LISTED"),
        "no file was read or listed: {report}"
    );
    let environment = redis_dead_letters(&mut connection, "sandbox_hostile", "attack_environment");
    let report = text(&environment[0], "reason");
    assert!(
        report.contains("clock advanced 0 ns"),
        "the guest's clocks do not move: {report}"
    );
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the guest never reached the loopback listener"
    );
    wait_for("attack_malformed's dead letters", TIMEOUT, || {
        redis_dead_letters(&mut connection, "sandbox_hostile", "attack_malformed").len() == 3
    });
    let malformed = redis_dead_letters(&mut connection, "sandbox_hostile", "attack_malformed");
    assert!(
        text(&malformed[0], "reason").contains("not valid Arrow IPC"),
        "{malformed:?}"
    );
    wait_for("attack_poison_row's good rows", TIMEOUT, || {
        [12, 14].iter().all(|d| {
            stored_ts(&mut connection, "attack_poison_row", *d, "sandbox_hostile").is_some()
        })
    });
    let poison = redis_dead_letters(&mut connection, "sandbox_hostile", "attack_poison_row");
    assert_eq!(poison.len(), 1, "only the poison row: {poison:?}");
    assert_eq!(poison[0]["key"], b"13");

    // A row rejected 10,000 times is one dead letter; the rows beside it are written.
    wait_for("attack_reject_storm's rows", TIMEOUT, || {
        [2, 3].iter().all(|d| {
            stored_ts(
                &mut connection,
                "attack_reject_storm",
                *d,
                "sandbox_hostile",
            )
            .is_some()
        })
    });
    let storm = redis_dead_letters(&mut connection, "sandbox_hostile", "attack_reject_storm");
    assert_eq!(storm.len(), 1, "one dead letter per event: {}", storm.len());
    assert_eq!(text(&storm[0], "kind"), "rejected_by_transform");

    // A view that fails batch after batch is paused, and status says why.
    for round in 0..2 {
        rt.block_on(broker.produce("panic", &events(10 + round..11 + round, BASE)))
            .unwrap();
        wait_for("the next panic dead letter", TIMEOUT, || {
            redis_dead_letters(&mut connection, "sandbox_hostile", "attack_panic").len()
                == 4 + round as usize
        });
    }
    wait_for("attack_panic paused", TIMEOUT, || {
        let view = status_json(
            host.admin_port,
            HOSTILE_TOKEN,
            "/tenants/hostile/views/attack_panic",
        );
        view["state"] == "paused"
            && view["pause"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("panicked on purpose"))
    });

    // Hostile modules are refused at deploy, and nothing changes.
    let port = host.admin_port;
    let deploy = |view: &str, body: &[u8]| {
        http_as(
            port,
            Some(HOSTILE_TOKEN),
            "POST",
            &format!("/tenants/hostile/views/{view}/deploy"),
            body,
        )
    };
    let before =
        status_json(port, HOSTILE_TOKEN, "/tenants/hostile/views/attack_loop")["version"].clone();
    let (code, body) = deploy("attack_loop", b"#!/bin/sh\nrm -rf /\n");
    assert_eq!(
        (code, body.contains("not a WebAssembly file")),
        (422, true),
        "{body}"
    );
    let unknown = std::fs::read(test_guest("unknown_import")).unwrap();
    let (code, body) = deploy("attack_loop", &unknown);
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("secrets"),
        "names the import it lacks: {body}"
    );
    let mut huge = b"\0asm\x0d\0\x01\0".to_vec();
    huge.resize(100 << 20, 0);
    let (code, body) = deploy("attack_loop", &huge);
    assert_eq!(
        code, 413,
        "a 100 MB module is refused before it is read: {body}"
    );
    assert!(
        body.contains(
            "module size limit of 67108864 bytes exceeded: the upload is 104857600 bytes"
        ),
        "{body}"
    );
    assert_eq!(
        status_json(port, HOSTILE_TOKEN, "/tenants/hostile/views/attack_loop")["version"],
        before
    );

    // Guest logging is capped per call (50 lines) and per tenant (100 a
    // second): the chatty view's batch of 3 takes at most 7 calls (3
    // attempts, 4 narrowing) of 10,000 lines each; the host keeps a few hundred.
    let chatty_lines = host.log().matches("chatty line").count();
    assert!(
        (1..=350).contains(&chatty_lines),
        "{chatty_lines} guest lines kept of 70,000 written"
    );
    assert!(
        host.log()
            .contains("guest log lines over the per-batch or per-tenant limit were dropped")
    );

    assert!(host.is_running(), "no guest took the host down");
    let exit = host.stop();
    assert!(exit.success, "stderr:\n{}", exit.stderr);
    let alpha_report = exit
        .reports
        .iter()
        .find(|r| r["tenant"] == "alpha")
        .expect("alpha's report");
    assert_eq!(alpha_report["messages"], 40);
    assert_eq!(alpha_report["dead_letters"], 0);
}

/// A host of three tenants (alpha, beta, hostile; each one view of the
/// example), projects prefixed with `prefix`, its admin API answering.
struct ThreeTenants {
    host: HostProcess,
    _repos: [TestRepo; 3],
    _config_dir: tempfile::TempDir,
    _broker: LocalBroker,
    _redis: RedisServer,
}

impl ThreeTenants {
    fn start(prefix: &str) -> Self {
        let redis = RedisServer::start().unwrap();
        let broker = LocalBroker::start(1).unwrap();
        for topic in ["alpha", "beta", "loop"] {
            broker.create_topic(topic, 1).unwrap();
        }
        let alpha = TestRepo::new(&format!("{prefix}_alpha"), &well_behaved("alpha", 100));
        let beta = TestRepo::new(&format!("{prefix}_beta"), &well_behaved("beta", 10));
        let hostile = TestRepo::new(
            &format!("{prefix}_hostile"),
            &Definitions::new()
                .driver_stats(VIEW, "loop", "Float32")
                .yaml(),
        );
        let config_dir = tempfile::tempdir().unwrap();
        let config = host_yaml(config_dir.path(), &alpha, &beta, &hostile);
        let host = start_host(&config, &broker, &redis);
        let port = host.admin_port;
        wait_for("the admin API", TIMEOUT, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Self {
            host,
            _repos: [alpha, beta, hostile],
            _config_dir: config_dir,
            _broker: broker,
            _redis: redis,
        }
    }

    /// Stops the host (SIGTERM), the broker and redis-server after it.
    fn stop(self) -> HostExit {
        self.host.stop()
    }
}

#[test]
fn each_tenant_token_opens_its_own_views_only() {
    let three = ThreeTenants::start("authz");
    let port = three.host.admin_port;
    let call =
        |token: Option<&str>, method: &str, path: &str| http_as(port, token, method, path, b"").0;
    let module = std::fs::read(driver_stats_module()).unwrap();

    assert_eq!(call(None, "GET", "/status"), 401, "no token");
    assert_eq!(
        call(Some("not-a-token"), "GET", "/status"),
        401,
        "unknown token"
    );
    assert_eq!(
        call(
            None,
            "POST",
            "/tenants/alpha/views/driver_stats_view/rollback"
        ),
        401
    );

    for (method, path) in [
        ("GET", "/tenants/beta/status"),
        ("GET", "/tenants/beta/views/driver_stats_view"),
        ("POST", "/tenants/beta/views/driver_stats_view/rollback"),
        ("POST", "/tenants/beta/apply"),
    ] {
        assert_eq!(
            call(Some(ALPHA_TOKEN), method, path),
            403,
            "{method} {path}"
        );
    }
    let (code, body) = http_as(
        port,
        Some(ALPHA_TOKEN),
        "POST",
        "/tenants/beta/views/driver_stats_view/deploy",
        &module,
    );
    assert_eq!(code, 403, "{body}");

    let own = status_json(port, ALPHA_TOKEN, "/status");
    let tenants: Vec<&str> = own
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["alpha"], "a tenant's /status shows its own views");
    let beta_view = status_json(port, BETA_TOKEN, "/tenants/beta/views/driver_stats_view");
    assert_eq!(
        beta_view["tenant"], "beta",
        "the token read from a file works"
    );
    let (code, body) = http_as(
        port,
        Some(ALPHA_TOKEN),
        "POST",
        "/views/driver_stats_view/deploy?by=alpha-ci",
        &module,
    );
    assert_eq!(
        code, 200,
        "a tenant deploys to its own view without naming itself: {body}"
    );
    assert_eq!(
        status_json(port, ALPHA_TOKEN, "/tenants/alpha/views/driver_stats_view")["deployed_by"],
        "alpha-ci"
    );
    assert_eq!(
        status_json(port, BETA_TOKEN, "/tenants/beta/views/driver_stats_view")["deployed_by"],
        "repo",
        "beta's view of the same name is untouched"
    );

    let all = status_json(port, OPERATOR_TOKEN, "/status");
    let mut tenants: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["tenant"].as_str().unwrap())
        .collect();
    tenants.sort();
    assert_eq!(
        tenants,
        ["alpha", "beta", "hostile"],
        "the operator sees every tenant"
    );
    assert_eq!(
        call(
            Some(OPERATOR_TOKEN),
            "GET",
            "/tenants/beta/views/driver_stats_view"
        ),
        200
    );
    assert_eq!(
        call(Some(OPERATOR_TOKEN), "POST", "/apply"),
        400,
        "which tenant?"
    );

    let exit = three.stop();
    assert!(exit.success, "stderr:\n{}", exit.stderr);
    for token in [ALPHA_TOKEN, BETA_TOKEN, HOSTILE_TOKEN, OPERATOR_TOKEN] {
        assert!(!exit.stderr.contains(token), "a token was logged");
    }
}

#[test]
fn fuel_metering_stops_a_transform_at_its_budget_and_not_before() {
    use fvhost::transform::cache::ModuleCache;
    use fvhost::transform::{
        LimitName, Limits, TransformEngine, TransformError, TransformModule, Transformer,
    };

    let engine = TransformEngine::with_fuel_metering().unwrap();
    let cache = ModuleCache::new(Some(root().join("target/fvhost-test-module-cache")));
    let schema = fvhost::format::parse_ddl(DRIVER_EVENT_SCHEMA).unwrap();
    let input = fvhost::transform::probe::probe_batch(&std::sync::Arc::new(schema)).unwrap();
    let limits = Limits {
        fuel_per_batch: Some(50_000_000),
        ..Limits::default()
    };
    let transformer = |module: &Path, config: &[(&str, &str)]| {
        let module = TransformModule::load(&engine, &cache, module, &limits).unwrap();
        let config = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Transformer::new(
            std::sync::Arc::new(module),
            config,
            limits.clone(),
            "fuel_test",
        )
    };

    let spinning = transformer(&test_guest("hostile"), &[("attack", "loop")]);
    match spinning.run(&input) {
        Err(TransformError::Limit(limit)) => {
            assert_eq!((limit.name, limit.limit), (LimitName::Fuel, 50_000_000));
            assert_eq!(
                limit.to_string(),
                "fuel limit of 50000000 per batch exceeded"
            );
        }
        other => panic!("expected the fuel limit, got {other:?}"),
    }
    let example = transformer(&driver_stats_module(), &[("factor", "100")]);
    let output = example.run(&input).expect("the example fits its fuel");
    assert_eq!(output.batch.num_rows(), input.num_rows());
}

/// Sends a request head (and the start of a body) and leaves the
/// connection open, as a slow or hostile client would.
fn open_request(port: u16, head: &str, body_start: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body_start).unwrap();
    stream
}

/// The status of the answer on `stream`, 0 if none came within `timeout`.
fn answer_status(stream: &mut std::net::TcpStream, timeout: Duration) -> u16 {
    use std::io::Read;
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut answer = [0u8; 64];
    let read = stream.read(&mut answer).unwrap_or(0);
    String::from_utf8_lossy(&answer[..read])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn upload_head(token: &str, view_path: &str, length: usize) -> String {
    format!(
        "POST {view_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[test]
fn the_admin_api_answers_before_reading_a_body_and_bounds_uploads_and_slow_clients() {
    let three = ThreeTenants::start("bounds");
    let port = three.host.admin_port;
    let deploy_path = format!("/tenants/hostile/views/{VIEW}/deploy");

    // An upload declaring 64 MiB is answered before a byte of it is sent:
    // 401 without a valid token, 403 with another tenant's.
    for (token, expected) in [("not-a-token", 401), (ALPHA_TOKEN, 403)] {
        let mut upload = open_request(port, &upload_head(token, &deploy_path, 64 << 20), b"");
        assert_eq!(
            answer_status(&mut upload, Duration::from_secs(10)),
            expected,
            "answered without waiting for the body"
        );
    }

    // Two uploads in progress hold the tenant's two deploy slots: a third is
    // answered 429 at once, before its body is read.
    let held: Vec<_> = (0..2)
        .map(|_| {
            open_request(
                port,
                &upload_head(HOSTILE_TOKEN, &deploy_path, 60 << 20),
                &[0; 1024],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut third = open_request(
        port,
        &upload_head(HOSTILE_TOKEN, &deploy_path, 60 << 20),
        b"",
    );
    assert_eq!(answer_status(&mut third, Duration::from_secs(10)), 429);
    drop(held);
    let module = std::fs::read(driver_stats_module()).unwrap();
    wait_for("a deploy slot free again", TIMEOUT, || {
        http_as(port, Some(HOSTILE_TOKEN), "POST", &deploy_path, &module).0 == 200
    });

    // A client that never finishes its headers is cut off (10 s).
    let mut slow = open_request(port, "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"");
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let closed = std::io::Read::read_to_end(&mut slow, &mut rest).is_ok();
    assert!(
        closed && started.elapsed() < Duration::from_secs(20),
        "closed after {:?}",
        started.elapsed()
    );
    assert!(three.stop().success);
}
