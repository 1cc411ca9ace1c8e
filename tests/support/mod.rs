//! Shared fixtures of the end-to-end tests: real parts, really started.
//!
//! - a `redis-server` child on a free loopback port and a mock Kafka cluster
//!   (real TCP) come from `fvhost::local`;
//! - the transforms are built from source (`examples/transforms`, `tests/guests`);
//! - the host under test is the real `fvhost` binary, run as a child process.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use fvhost::local::{LocalBroker, RedisCluster, RedisServer};
use redis::Commands;

/// The checkout's root folder.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds a guest workspace for wasm32-wasip2; returns its release folder.
fn build_guest_workspace(relative: &str) -> PathBuf {
    fvhost::local::build_guest_workspace(&root().join(relative)).expect("building the guests")
}

/// The example transform `driver_stats.wasm`, built from source.
pub fn driver_stats_module() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| build_guest_workspace("examples/transforms"))
        .join("driver_stats.wasm")
}

/// The example transform in Python (`examples/python/driver_stats`),
/// built with `fvhost build` (componentize-py, from the project's setup).
pub fn python_driver_stats_module() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = root().join("examples/python/driver_stats");
            run_fvhost(&["build".as_ref(), dir.as_os_str()], None, 0);
            dir.join("build/driver_stats.wasm")
        })
        .clone()
}

/// Runs the real `fvhost` with `args` (and `--redis` when given), with the
/// tests' module cache; returns its output after checking its exit code.
pub fn run_fvhost<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    redis: Option<&RedisServer>,
    code: i32,
) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fvhost"));
    command.args(args);
    if let Some(redis) = redis {
        command.args(["--redis", &redis.url()]);
    }
    let out = command
        .env(
            "FVHOST_CACHE_DIR",
            root().join("target/fvhost-test-module-cache"),
        )
        .output()
        .expect("running fvhost");
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert_eq!(
        out.status.code(),
        Some(code),
        "fvhost {shown:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A test guest from `tests/guests`, built from source.
pub fn test_guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| build_guest_workspace("tests/guests"))
        .join(format!("{name}.wasm"))
}

/// A feature repo written to a fresh temporary folder.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub project: String,
}

impl TestRepo {
    /// A repo with `definitions` (YAML) beside a feature_store.yaml for `project`.
    pub fn new(project: &str, definitions: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("feature_store.yaml"),
            format!(
                "project: {project}\nprovider: local\nregistry: data/registry.db\nonline_store:\n  type: redis\n  connection_string: \"127.0.0.1:1\"\nentity_key_serialization_version: 3\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("definitions.yaml"), definitions).unwrap();
        Self {
            dir,
            project: project.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The JSON schema of the example's driver events.
pub const DRIVER_EVENT_SCHEMA: &str = "driver_id integer, event_timestamp timestamp, conv_rate double, acc_rate double, created timestamp";

/// Definitions YAML assembled from parts: the `driver` entity and a file
/// source always, plus Kafka sources and stream views as a test needs.
pub struct Definitions {
    sources: Vec<String>,
    views: Vec<String>,
}

impl Definitions {
    pub fn new() -> Self {
        Self {
            sources: vec![
                "  - name: driver_stats_source\n    type: file\n    path: data/driver_stats.parquet\n    timestamp_field: event_timestamp\n".into(),
            ],
            views: Vec::new(),
        }
    }

    /// A Kafka source `<topic>_stream` with JSON messages of `schema_json`.
    pub fn kafka_source(mut self, topic: &str, schema_json: &str) -> Self {
        self.sources.push(format!(
            "  - name: {topic}_stream\n    type: kafka\n    kafka_bootstrap_servers: 127.0.0.1:1\n    topic: {topic}\n    timestamp_field: event_timestamp\n    batch_source: driver_stats_source\n    message_format:\n      type: json\n      schema_json: \"{schema_json}\"\n    watermark_delay_threshold: 5m\n"
        ));
        self
    }

    /// A stream view over `<topic>_stream` with `features` (name, dtype) and a transform.
    pub fn stream_view(
        mut self,
        view: &str,
        topic: &str,
        features: &[(&str, &str)],
        module: &Path,
        config: &str,
    ) -> Self {
        let schema: String = features
            .iter()
            .map(|(name, dtype)| format!("      - name: {name}\n        dtype: {dtype}\n"))
            .collect();
        self.views.push(format!(
            "  - name: {view}\n    entities: [driver]\n    ttl: 1d\n    source: {topic}_stream\n    schema:\n{schema}    transform:\n      module: {}\n      config: {{{config}}}\n",
            module.display()
        ));
        self
    }

    /// The example's view: the driver-stats transform over `topic`, `conv_percentage` declared as `conv_dtype`.
    pub fn driver_stats(self, view: &str, topic: &str, conv_dtype: &str) -> Self {
        self.kafka_source(topic, DRIVER_EVENT_SCHEMA).stream_view(
            view,
            topic,
            &[
                ("conv_percentage", conv_dtype),
                ("acc_percentage", "Float32"),
            ],
            &driver_stats_module(),
            "factor: 100",
        )
    }

    /// Gives the last view added a `dead_letter:` destination (YAML flow mapping).
    pub fn dead_letter(mut self, destination: &str) -> Self {
        if let Some(view) = self.views.last_mut() {
            view.push_str(&format!("    dead_letter: {destination}\n"));
        }
        self
    }

    pub fn yaml(&self) -> String {
        format!(
            "entities:\n  - name: driver\n    join_keys: [driver_id]\n    value_type: INT64\nsources:\n{}stream_feature_views:\n{}",
            self.sources.concat(),
            self.views.concat()
        )
    }
}

/// The real `fvhost run`, as a child process. Its log (stderr) is collected
/// as it comes, so a test can wait for a line.
pub struct HostProcess {
    child: Child,
    /// The port of its admin API on 127.0.0.1.
    pub admin_port: u16,
    log: Arc<Mutex<String>>,
    log_reader: Option<std::thread::JoinHandle<()>>,
}

/// How a host process ended.
pub struct HostExit {
    pub success: bool,
    pub code: Option<i32>,
    /// One JSON report per view, as printed on stdout.
    pub reports: Vec<serde_json::Value>,
    pub stderr: String,
}

impl HostExit {
    /// The final report of `view`.
    pub fn report(&self, view: &str) -> &serde_json::Value {
        self.reports
            .iter()
            .find(|r| r["view"] == view)
            .unwrap_or_else(|| panic!("no report for view {view}; stderr:\n{}", self.stderr))
    }
}

impl HostProcess {
    pub fn start(repo: &Path, broker: &LocalBroker, redis: &RedisServer) -> Self {
        Self::start_logging(repo, broker, redis, "info")
    }

    /// Starts with `FVHOST_LOG` set to `filter`.
    pub fn start_logging(
        repo: &Path,
        broker: &LocalBroker,
        redis: &RedisServer,
        filter: &str,
    ) -> Self {
        Self::spawn(
            &["-r".as_ref(), repo.as_os_str()],
            broker,
            redis,
            filter,
            &[],
        )
    }

    /// Starts on `repo` with more `fvhost run` arguments (`--watch`, say).
    pub fn start_with(
        repo: &Path,
        broker: &LocalBroker,
        redis: &RedisServer,
        arguments: &[&str],
    ) -> Self {
        let mut target: Vec<&std::ffi::OsStr> = vec!["-r".as_ref(), repo.as_os_str()];
        target.extend(arguments.iter().map(|a| std::ffi::OsStr::new(*a)));
        Self::spawn(&target, broker, redis, "info", &[])
    }

    /// Starts a multi-tenant host from `host.yaml`, with `env` set (the
    /// tenants' tokens).
    pub fn start_config(
        config: &Path,
        broker: &LocalBroker,
        redis: &RedisServer,
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn(
            &["--config".as_ref(), config.as_os_str()],
            broker,
            redis,
            "info",
            env,
        )
    }

    /// Starts on `repo` against the online store its feature_store.yaml
    /// names (a cluster, a Sentinel set), with more `fvhost run` arguments.
    pub fn start_on_repo_store(repo: &Path, broker: &LocalBroker, arguments: &[&str]) -> Self {
        let mut target: Vec<&std::ffi::OsStr> = vec!["-r".as_ref(), repo.as_os_str()];
        target.extend(arguments.iter().map(|a| std::ffi::OsStr::new(*a)));
        Self::spawn_on(&target, broker, None, "info", &[])
    }

    fn spawn(
        target: &[&std::ffi::OsStr],
        broker: &LocalBroker,
        redis: &RedisServer,
        filter: &str,
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn_on(target, broker, Some(redis), filter, env)
    }

    fn spawn_on(
        target: &[&std::ffi::OsStr],
        broker: &LocalBroker,
        redis: Option<&RedisServer>,
        filter: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let admin_port = fvhost::local::free_port().expect("a free port");
        let redis_args = match redis {
            Some(redis) => vec!["--redis".to_string(), redis.url()],
            None => Vec::new(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_fvhost"))
            .arg("run")
            .args(target)
            .args(redis_args)
            .args([
                "--kafka-bootstrap",
                &broker.bootstrap_servers(),
                "--linger-ms",
                "50",
            ])
            .args(["--admin", &format!("127.0.0.1:{admin_port}")])
            .env("FVHOST_LOG", filter)
            .env(
                "FVHOST_CACHE_DIR",
                root().join("target/fvhost-test-module-cache"),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting fvhost run");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&log);
        let log_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self {
            child,
            admin_port,
            log,
            log_reader: Some(log_reader),
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The host's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the host has logged a line containing `text`.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) {
        wait_for(&format!("the host to log {text:?}"), timeout, || {
            self.log.lock().unwrap().contains(text)
        });
    }

    /// Sends SIGTERM and collects the exit and the reports.
    pub fn stop(self) -> HostExit {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait()
    }

    /// Kills the process with SIGKILL, as a crash would: no draining, no commit.
    pub fn crash(self) -> HostExit {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        self.wait()
    }

    /// Waits for the process to end on its own.
    pub fn wait(mut self) -> HostExit {
        let output = self.child.wait_with_output().expect("waiting for fvhost");
        if let Some(reader) = self.log_reader.take() {
            let _ = reader.join();
        }
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = self.log.lock().unwrap().clone();
        HostExit {
            success: output.status.success(),
            code: output.status.code(),
            reports: stdout
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect(),
            stderr,
        }
    }
}

/// Polls `condition` every 100 ms until it holds or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The dead letters of `view` in its Redis stream, oldest first, as field maps.
pub fn redis_dead_letters(
    connection: &mut redis::Connection,
    project: &str,
    view: &str,
) -> Vec<HashMap<String, Vec<u8>>> {
    let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(format!("fvhost:{project}:dead_letter:{view}"))
        .arg("-")
        .arg("+")
        .query(connection)
        .unwrap();
    entries
        .into_iter()
        .map(|(_id, fields)| {
            fields
                .chunks(2)
                .map(|pair| {
                    (
                        String::from_utf8_lossy(&pair[0]).into_owned(),
                        pair[1].clone(),
                    )
                })
                .collect()
        })
        .collect()
}

pub fn text(letter: &HashMap<String, Vec<u8>>, field: &str) -> String {
    String::from_utf8_lossy(letter.get(field).map(Vec::as_slice).unwrap_or_default()).into_owned()
}

/// The stored `_ts:<view>` of `driver` in `project`, if the view wrote it.
pub fn stored_ts(
    connection: &mut redis::Connection,
    view: &str,
    driver: i64,
    project: &str,
) -> Option<Vec<u8>> {
    connection
        .hget(driver_key(driver, project), format!("_ts:{view}"))
        .unwrap()
}

/// A blocking connection to the test's redis-server.
pub fn redis_connection(redis: &RedisServer) -> redis::Connection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// A current-thread runtime for producing to the broker.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One driver event as the example's JSON schema declares it.
pub fn driver_event(driver_id: i64, event_seconds: i64, conv_rate: f64, acc_rate: f64) -> Vec<u8> {
    let time = chrono::DateTime::from_timestamp(event_seconds, 0)
        .unwrap()
        .to_rfc3339();
    serde_json::json!({
        "driver_id": driver_id,
        "event_timestamp": time,
        "conv_rate": conv_rate,
        "acc_rate": acc_rate,
        "created": time,
    })
    .to_string()
    .into_bytes()
}

/// Feast's Redis key for an Int64 `driver_id` in `project`, written out by hand
/// from the documented layout (not with fvhost's encoder).
pub fn driver_key(driver_id: i64, project: &str) -> Vec<u8> {
    let mut key = Vec::new();
    key.extend_from_slice(&1u32.to_le_bytes());
    key.extend_from_slice(&2u32.to_le_bytes());
    key.extend_from_slice(&9u32.to_le_bytes());
    key.extend_from_slice(b"driver_id");
    key.extend_from_slice(&4u32.to_le_bytes());
    key.extend_from_slice(&8u32.to_le_bytes());
    key.extend_from_slice(&driver_id.to_le_bytes());
    key.extend_from_slice(project.as_bytes());
    key
}

/// A serialized `feast.types.Value` holding a float, by hand: tag 0x35 + f32 LE.
pub fn float_value(v: f32) -> Vec<u8> {
    let mut out = vec![0x35];
    out.extend_from_slice(&v.to_le_bytes());
    out
}

/// A serialized `google.protobuf.Timestamp` of whole seconds, by hand.
pub fn timestamp_value(seconds: i64) -> Vec<u8> {
    varint_field(0x08, seconds)
}

/// A serialized `feast.types.Value` holding an Int64 (field 4), by hand.
pub fn int64_value(v: i64) -> Vec<u8> {
    varint_field(0x20, v)
}

/// A protobuf varint field: its tag byte, then the value 7 bits at a time.
fn varint_field(tag: u8, value: i64) -> Vec<u8> {
    let mut out = vec![tag];
    let mut v = value as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// A minimal HTTP/1.1 client for the tests: one request, `Connection: close`.
/// Returns the status code and the body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, String) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    http_bytes(port, method, path, body.as_bytes())
}

/// [`http`] with a raw body.
pub fn http_bytes(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    http_as(port, None, method, path, body)
}

/// [`http_bytes`] with `Authorization: Bearer <token>` when a token is given.
pub fn http_as(
    port: u16,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connecting to the server");
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{authorization}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // A server may answer and close before taking the whole body (a body
    // over its limit): the answer is still there to read.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The Python of the virtualenv holding Feast 0.67 (`scripts/setup.sh`
/// makes it): `FVHOST_FEAST_VENV`, or `~/.cache/fvhost/feast-venv`.
pub fn feast_python() -> PathBuf {
    let venv = std::env::var_os("FVHOST_FEAST_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/fvhost/feast-venv"))
        })
        .expect("HOME or FVHOST_FEAST_VENV");
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "Feast's virtualenv is missing at {}: run scripts/setup.sh",
        venv.display()
    );
    python
}

/// Runs `feast apply` (Feast's own CLI, from its virtualenv) in `repo`,
/// which writes the registry the repo's feature_store.yaml names.
pub fn feast_apply(repo: &Path) {
    feast(repo, &["apply"]);
}

/// Runs Feast's own CLI with `args` in `repo`, checking it succeeds.
pub fn feast(repo: &Path, args: &[&str]) {
    let out = Command::new(feast_python().with_file_name("feast"))
        .args(args)
        .current_dir(repo)
        .env("FEAST_USAGE", "False")
        .output()
        .expect("running feast");
    assert!(
        out.status.success(),
        "feast {args:?} in {}:\n{}{}",
        repo.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every hash of a store: key -> field -> value, sorted, for comparing stores.
pub type RedisDump =
    std::collections::BTreeMap<Vec<u8>, std::collections::BTreeMap<Vec<u8>, Vec<u8>>>;

/// Every hash in `redis`.
pub fn redis_dump(redis: &RedisServer) -> RedisDump {
    redis_dump_nodes(&[redis.port()])
}

/// Every hash on the masters of `cluster`, merged.
pub fn cluster_dump(cluster: &RedisCluster) -> RedisDump {
    redis_dump_nodes(&cluster.master_ports())
}

/// Every hash on the servers at `ports` (each scanned on its own: a
/// cluster node lists only its own keys), merged.
pub fn redis_dump_nodes(ports: &[u16]) -> RedisDump {
    let mut dump = RedisDump::new();
    for port in ports {
        let mut connection = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
            .unwrap()
            .get_connection()
            .unwrap();
        let keys: Vec<Vec<u8>> = connection
            .scan()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for key in keys {
            if connection.key_type::<_, String>(&key).unwrap() == "hash" {
                let hash = connection.hgetall(&key).unwrap();
                dump.insert(key, hash);
            }
        }
    }
    dump
}

/// A repo whose one view, `driver_trips` (avg_daily_trips, Int64), is fed
/// by the push source `driver_stats_push`: for tests of `serve` itself.
pub const TRIPS_PUSH_DEFINITIONS: &str = r#"
entities:
  - name: driver
    join_keys: [driver_id]
    value_type: INT64
sources:
  - name: driver_stats_source
    type: file
    path: data/driver_stats
    timestamp_field: event_timestamp
  - name: driver_stats_push
    type: push
    batch_source: driver_stats_source
feature_views:
  - name: driver_trips
    entities: [driver]
    ttl: 2d
    source: driver_stats_push
    schema:
      - {name: avg_daily_trips, dtype: Int64}
"#;

/// A running `fvhost serve`, killed when dropped.
pub struct ServeProcess(pub Child);

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `fvhost serve` on `repo`'s own store with `extra` arguments, on a free
/// port, once it answers `/health`.
pub fn start_serve_on(repo: &Path, extra: &[&str]) -> (ServeProcess, u16) {
    let port = fvhost::local::free_port().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_fvhost"))
        .args(["serve", "-r", repo.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .spawn()
        .unwrap();
    let server = ServeProcess(child);
    wait_for("serve to answer", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/health", None).0 == 200
    });
    (server, port)
}

/// `POST /push` of `driver`'s trips at `hour` on 2026-01-01, to the online
/// store (a repo of [`TRIPS_PUSH_DEFINITIONS`]).
pub fn push_trips(port: u16, driver: i64, trips: i64, hour: u32) -> (u16, String) {
    let body = serde_json::json!({
        "push_source_name": "driver_stats_push",
        "df": {
            "driver_id": [driver],
            "event_timestamp": [format!("2026-01-01T{hour:02}:00:00Z")],
            "avg_daily_trips": [trips]
        },
        "to": "online"
    });
    http(port, "POST", "/push", Some(&body))
}
