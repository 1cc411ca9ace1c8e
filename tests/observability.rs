//! Operating a host: `/metrics` scraped by a real Prometheus server (Debian's
//! package, started here on loopback), the consumer lag falling to 0 once a
//! view has caught up, `/health` and `/ready`, and who may read what.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

const OPERATOR_TOKEN: &str = "operator-token-0123456789";
const ALPHA_TOKEN: &str = "alpha-token-0123456789abc";
const BETA_TOKEN: &str = "beta-token-0123456789abcd";
const TIMEOUT: Duration = Duration::from_secs(90);

/// A child process killed when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn host_yaml(dir: &Path, alpha: &TestRepo, beta: &TestRepo) -> std::path::PathBuf {
    let yaml = format!(
        "admin:\n  operator_token_env: OBS_OPERATOR_TOKEN\n\
         tenants:\n\
         \x20 - name: alpha\n    repo: {}\n    token_env: OBS_ALPHA_TOKEN\n\
         \x20 - name: beta\n    repo: {}\n    token_env: OBS_BETA_TOKEN\n",
        alpha.path().display(),
        beta.path().display(),
    );
    let path = dir.join("host.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn events(drivers: std::ops::RangeInclusive<i64>, seconds: i64) -> Vec<(String, Vec<u8>)> {
    drivers
        .map(|d| (d.to_string(), driver_event(d, seconds, 0.5, 0.25)))
        .collect()
}

fn get(port: u16, token: Option<&str>, path: &str) -> (u16, String) {
    http_as(port, token, "GET", path, b"")
}

fn view_status(port: u16, view: &str) -> serde_json::Value {
    let (code, body) = get(port, Some(OPERATOR_TOKEN), "/status");
    assert_eq!(code, 200, "{body}");
    let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    all.into_iter()
        .find(|v| v["view"] == view)
        .unwrap_or_else(|| panic!("no view {view} in {body}"))
}

/// The value of the sample `name{labels...}` in Prometheus text, if present.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|label| l.contains(label))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Percent-encodes a PromQL query for a URL.
fn encoded(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The single value Prometheus's query API answers for `query`, if any.
fn prometheus_value(port: u16, query: &str) -> Option<f64> {
    std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let (code, body) = get(
        port,
        None,
        &format!("/api/v1/query?query={}", encoded(query)),
    );
    if code != 200 {
        return None;
    }
    let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
    answer["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

fn start_prometheus(dir: &Path, admin_port: u16) -> (Daemon, u16) {
    let port = fvhost::local::free_port().unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: fvhost\n    metrics_path: /metrics\n\
             \x20   authorization:\n      credentials: {OPERATOR_TOKEN}\n\
             \x20   static_configs:\n      - targets: ['127.0.0.1:{admin_port}']\n"
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting prometheus (scripts/setup.sh installs Debian's package)");
    (Daemon(child), port)
}

#[test]
fn prometheus_scrapes_counts_lag_and_freshness_and_tenants_see_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let alpha = TestRepo::new(
        "obs_alpha",
        &Definitions::new()
            .driver_stats("alpha_stats", "obs_alpha", "Float32")
            .yaml(),
    );
    let beta = TestRepo::new(
        "obs_beta",
        &Definitions::new()
            .driver_stats("beta_stats", "obs_beta", "Float32")
            .yaml(),
    );
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("obs_alpha", 2).unwrap();
    broker.create_topic("obs_beta", 1).unwrap();
    let redis = RedisServer::start().unwrap();
    let host = HostProcess::start_config(
        &host_yaml(dir.path(), &alpha, &beta),
        &broker,
        &redis,
        &[
            ("OBS_OPERATOR_TOKEN", OPERATOR_TOKEN),
            ("OBS_ALPHA_TOKEN", ALPHA_TOKEN),
            ("OBS_BETA_TOKEN", BETA_TOKEN),
            ("FVHOST_LOG_FORMAT", "json"),
        ],
    );
    let admin = host.admin_port;
    wait_for("the admin API", TIMEOUT, || {
        std::net::TcpStream::connect(("127.0.0.1", admin)).is_ok()
    });
    assert_eq!(get(admin, None, "/health"), (200, "ok".into()));

    let event_time = chrono::Utc::now().timestamp() - 30;
    runtime()
        .block_on(broker.produce("obs_alpha", &events(1..=300, event_time)))
        .unwrap();
    runtime()
        .block_on(broker.produce("obs_beta", &events(1..=50, event_time)))
        .unwrap();
    wait_for("every message consumed", TIMEOUT, || {
        view_status(admin, "alpha_stats")["messages"] == 300
            && view_status(admin, "beta_stats")["messages"] == 50
    });
    // The lag is measured from what was written, and refreshed while idle.
    let caught_up = |view: &str, partitions: usize| {
        let status = view_status(admin, view);
        let lag = status["partition_lag"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        lag.len() == partitions && lag.values().all(|l| l == 0) && status["consumer_lag"] == 0
    };
    wait_for(
        "the lag to be measured as 0",
        Duration::from_secs(30),
        || caught_up("alpha_stats", 2) && caught_up("beta_stats", 1),
    );
    assert_eq!(get(admin, None, "/ready"), (200, "ready".into()));

    // `fvhost top --once`: one frame, rates from two samples a second apart.
    let top = Command::new(env!("CARGO_BIN_EXE_fvhost"))
        .args(["top", "--once", "--admin", &format!("127.0.0.1:{admin}")])
        .env("FVHOST_ADMIN_TOKEN", OPERATOR_TOKEN)
        .output()
        .unwrap();
    let frame = String::from_utf8_lossy(&top.stdout);
    assert!(
        top.status.success(),
        "{frame}{}",
        String::from_utf8_lossy(&top.stderr)
    );
    let alpha_row: Vec<&str> = frame
        .lines()
        .find(|l| l.contains("alpha_stats"))
        .unwrap_or_else(|| panic!("{frame}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        (alpha_row[0], alpha_row[3], alpha_row[7]),
        ("alpha", "running", "0"),
        "tenant, state, lag: {frame}"
    );
    assert!(frame.contains("beta_stats"), "{frame}");

    // Who may read what.
    assert_eq!(get(admin, None, "/metrics").0, 401);
    let (code, beta_text) = get(admin, Some(BETA_TOKEN), "/metrics");
    assert_eq!(code, 200, "{beta_text}");
    assert_eq!(
        sample(
            &beta_text,
            "fvhost_messages_total",
            &["view=\"beta_stats\""]
        ),
        Some(50.0)
    );
    assert!(
        !beta_text.contains("alpha_stats"),
        "a tenant sees only its own views"
    );
    let (_, text) = get(admin, Some(OPERATOR_TOKEN), "/metrics");
    assert_eq!(
        sample(
            &text,
            "fvhost_messages_total",
            &["tenant=\"alpha\"", "view=\"alpha_stats\""]
        ),
        Some(300.0),
        "{text}"
    );
    for partition in ["partition=\"0\"", "partition=\"1\""] {
        assert_eq!(
            sample(
                &text,
                "fvhost_consumer_lag",
                &["view=\"alpha_stats\"", partition]
            ),
            Some(0.0)
        );
    }
    assert!(text.contains("fvhost_build_info{version=\""), "{text}");
    let memory = sample(
        &text,
        "fvhost_transform_memory_high_water_bytes",
        &["view=\"alpha_stats\""],
    );
    assert!(memory.is_some_and(|bytes| bytes > 0.0), "{text}");
    assert!(
        sample(
            &text,
            "fvhost_version_transform_seconds_total",
            &["view=\"alpha_stats\""]
        )
        .is_some_and(|s| s > 0.0),
        "{text}"
    );

    // A real Prometheus server scrapes the operator's view of the host.
    let (_prometheus, port) = start_prometheus(dir.path(), admin);
    let query = r#"fvhost_messages_total{view="alpha_stats"}"#;
    wait_for("Prometheus to scrape the host", TIMEOUT, || {
        prometheus_value(port, query) == Some(300.0)
    });
    assert_eq!(
        prometheus_value(port, r#"fvhost_keys_written_total{view="beta_stats"}"#),
        Some(50.0)
    );
    assert_eq!(
        prometheus_value(port, "sum(fvhost_consumer_lag)"),
        Some(0.0)
    );
    let freshness =
        prometheus_value(port, r#"fvhost_freshness_seconds{view="alpha_stats"}"#).unwrap();
    assert!(
        (25.0..300.0).contains(&freshness),
        "events 30 s old when produced: freshness {freshness} s"
    );
    let writes = prometheus_value(
        port,
        r#"fvhost_batch_stage_seconds_count{view="alpha_stats",stage="write"}"#,
    )
    .unwrap();
    assert!(writes >= 1.0, "the write stage was timed: {writes}");
    assert_eq!(
        prometheus_value(port, r#"fvhost_view_paused{view="alpha_stats"}"#),
        Some(0.0)
    );
    let exit = host.stop();
    assert!(exit.success);

    // `--log-format json` (here from the environment): one object a line,
    // a view's lines naming its tenant and view.
    let lines: Vec<serde_json::Value> = exit
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["tenant"] == "alpha" && l["span"]["view"] == "alpha_stats"),
        "{}",
        exit.stderr
    );
}
