//! `fvhost quickstart`: the whole path on one machine, nothing to configure.
//!
//! Builds the example transform, starts a Kafka-protocol broker (librdkafka's
//! mock cluster, real TCP) and a redis-server on free loopback ports,
//! produces driver events (several per driver, some out of order, a few
//! malformed, then one too late), runs the driver-ranking repo's stream view until
//! every event is handled, prints the online features next to the values
//! computed independently from the events, and stops what it started.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::watch;

use crate::control::{Host, HostOptions, ViewReport};
use crate::local::{LocalBroker, RedisServer};
use crate::online::FeatureRef;
use crate::repo;

#[derive(Debug, clap::Args)]
pub struct QuickstartArgs {
    /// The fvhost checkout's examples folder (default: the one this binary was built from).
    #[arg(long, env = "FVHOST_EXAMPLES")]
    pub examples: Option<PathBuf>,
    /// Use this Redis instead of starting a redis-server.
    #[arg(long)]
    pub redis: Option<String>,
    /// Skip building the example transform.
    #[arg(long)]
    pub no_build: bool,
    /// Drivers to produce events for.
    #[arg(long, default_value_t = 10)]
    pub drivers: u32,
}

const VIEW: &str = "driver_hourly_stats_stream";
/// The example's view with windowed aggregations over the same topic.
const WINDOWED_VIEW: &str = "driver_activity_1h";
const TOPIC: &str = "drivers";

pub async fn quickstart(args: QuickstartArgs) -> anyhow::Result<ExitCode> {
    let examples = examples_dir(args.examples.as_deref())?;
    if !args.no_build {
        build_example_transform(&examples)?;
    }
    let repo_dir = examples.join("driver_ranking");
    let repo = repo::load(&repo_dir)
        .map_err(|e| anyhow::anyhow!("example repo {}: {e}", repo_dir.display()))?;

    let redis_server = match &args.redis {
        Some(_) => None,
        None => Some(RedisServer::start()?),
    };
    let redis_url = args
        .redis
        .clone()
        .or_else(|| redis_server.as_ref().map(RedisServer::url))
        .context("no Redis")?;
    step(&format!("redis-server on {redis_url}"));

    let broker = LocalBroker::start(1)?;
    broker.create_topic(TOPIC, 3)?;
    step(&format!(
        "Kafka-protocol broker (librdkafka mock cluster) on {}",
        broker.bootstrap_servers()
    ));

    let events = sample::events(args.drivers.max(1), chrono::Utc::now().timestamp());
    broker.produce(TOPIC, &events.messages).await?;
    step(&format!(
        "produced {} messages to `{TOPIC}`: {} drivers, {} malformed ({} more, an hour late, follow once these are consumed)",
        events.messages.len(),
        events.expected.len(),
        events.malformed,
        events.late_messages.len()
    ));

    let options = HostOptions {
        kafka_bootstrap: Some(broker.bootstrap_servers()),
        redis_url: Some(redis_url.clone()),
        ..HostOptions::default()
    };
    let (stop, shutdown) = watch::channel(false);
    let host = Host::start(&repo, &options, shutdown).await?;
    step(&format!(
        "fvhost running `{VIEW}` (Wasm transform: rates x 100) and `{WINDOWED_VIEW}` (count and mean of conv_rate over 1 h, 5 min tiles)"
    ));
    let produced = events.messages.len() as u64;
    wait_until_consumed(&host, produced, Duration::from_secs(120)).await?;
    broker.produce(TOPIC, &events.late_messages).await?;
    let produced = produced + events.late_messages.len() as u64;
    wait_until_consumed(&host, produced, Duration::from_secs(120)).await?;
    let _ = stop.send(true);
    let reports = host.wait().await;
    print_reports(&reports);

    let shown: Vec<i64> = events
        .expected
        .keys()
        .copied()
        .take(5)
        .chain(std::iter::once(9999))
        .collect();
    let entities: Vec<String> = shown.iter().map(|id| format!("driver_id={id}")).collect();
    let read = |view, features| read_features(&repo, view, features, &entities, &redis_url);
    let response = read(VIEW, ["conv_percentage", "acc_percentage"]).await?;
    let newest_match = print_table(&shown, &response, &events.expected);
    let response = read(
        WINDOWED_VIEW,
        ["count_conv_rate_3600s", "conv_rate_mean_1h"],
    )
    .await?;
    let windows_match = print_window_table(&shown, &response, &events.expected);
    let all_match = newest_match && windows_match;
    step(if all_match {
        "every driver shows its newest event and its last hour's count and mean, as computed from the produced events"
    } else {
        "MISMATCH: see the tables above"
    });
    drop(broker);
    drop(redis_server);
    step("stopped the broker and redis-server");
    Ok(if all_match && reports.iter().all(|r| r.error.is_none()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn step(text: &str) {
    println!("==> {text}");
}

fn examples_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = match given {
        Some(path) => vec![path.to_path_buf()],
        None => vec![
            PathBuf::from("examples"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"),
        ],
    };
    candidates
        .into_iter()
        .find(|p| p.join("driver_ranking").is_dir())
        .context(
            "cannot find the examples folder; run from the fvhost checkout or pass --examples PATH",
        )
}

fn build_example_transform(examples: &Path) -> anyhow::Result<()> {
    step("building the example transform (cargo build --release --target wasm32-wasip2)");
    crate::local::build_guest_workspace(&examples.join("transforms")).map(|_| ())
}

async fn wait_until_consumed(host: &Host, produced: u64, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let views: Vec<_> = host
            .metrics()
            .iter()
            .map(|(view, m)| (view.clone(), m.snapshot()))
            .collect();
        if views
            .iter()
            .all(|(_, s)| s.messages >= produced && s.batches == s.commits)
        {
            return Ok(());
        }
        if views.iter().any(|(_, s)| s.batch_failures > 0) {
            bail!("a batch failed; see the log above");
        }
        if started.elapsed() > timeout {
            let behind = views
                .iter()
                .map(|(view, s)| format!("{view}: {}", s.messages))
                .collect::<Vec<_>>()
                .join(", ");
            bail!("not every view handled the {produced} messages within {timeout:?} ({behind})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_reports(reports: &[ViewReport]) {
    for r in reports {
        let m = &r.metrics;
        step(&format!(
            "{}: {} messages, {} malformed, {} too late, {} rows out, {} keys written, {} older skipped, {} commits",
            r.view,
            m.messages,
            m.decode_errors,
            m.late_events,
            m.rows_out,
            m.keys_written,
            m.keys_skipped_older,
            m.commits
        ));
    }
}

/// Reads two features of `view` for the shown drivers, as `get-online-features` does.
async fn read_features(
    repo: &repo::FeatureRepo,
    view: &str,
    features: [&str; 2],
    entities: &[String],
    redis_url: &str,
) -> anyhow::Result<crate::online::OnlineResponse> {
    let refs: Vec<FeatureRef> = features
        .iter()
        .map(|feature| FeatureRef {
            view: view.to_string(),
            feature: feature.to_string(),
        })
        .collect();
    super::get::read(repo, &refs, entities, Default::default(), Some(redis_url)).await
}

/// Prints the features per driver beside the expectation; true when all match.
fn print_table(
    ids: &[i64],
    response: &crate::online::OnlineResponse,
    expected: &BTreeMap<i64, sample::Expected>,
) -> bool {
    println!();
    println!(
        "{:>9}  {:>15}  {:>14}  {:<27}  {:<10}  check",
        "driver_id", "conv_percentage", "acc_percentage", "event_timestamp", "status"
    );
    let mut all_match = true;
    for (i, id) in ids.iter().enumerate() {
        let conv = &response.results[1].values[i];
        let acc = &response.results[2].values[i];
        let status = response.results[1].statuses[i].as_str();
        let ts = &response.results[1].event_timestamps[i];
        let check = match expected.get(id) {
            Some(e) => {
                let ok = close(conv, e.conv_percentage)
                    && close(acc, e.acc_percentage)
                    && ts == &e.event_timestamp;
                all_match &= ok;
                if ok { "= newest event" } else { "MISMATCH" }
            }
            None => {
                let ok = status == "NOT_FOUND";
                all_match &= ok;
                if ok { "= no such driver" } else { "MISMATCH" }
            }
        };
        println!(
            "{:>9}  {:>15}  {:>14}  {:<27}  {:<10}  {}",
            id,
            show(conv),
            show(acc),
            if status == "NOT_FOUND" {
                "-"
            } else {
                ts.as_str()
            },
            status,
            check
        );
    }
    println!();
    all_match
}

/// Prints each driver's last-hour count and mean beside the expectation;
/// true when all match.
fn print_window_table(
    ids: &[i64],
    response: &crate::online::OnlineResponse,
    expected: &BTreeMap<i64, sample::Expected>,
) -> bool {
    println!(
        "{:>9}  {:>21}  {:>17}  check",
        "driver_id", "count_conv_rate_3600s", "conv_rate_mean_1h"
    );
    let mut all_match = true;
    for (i, id) in ids.iter().enumerate() {
        let count = &response.results[1].values[i];
        let mean = &response.results[2].values[i];
        let check = match expected.get(id) {
            Some(e) => {
                let ok = count.as_i64() == Some(e.hour_count)
                    && mean
                        .as_f64()
                        .is_some_and(|m| (m - e.hour_mean_conv_rate).abs() < 1e-9);
                all_match &= ok;
                if ok {
                    "= events of the last hour"
                } else {
                    "MISMATCH"
                }
            }
            None => {
                let ok = count.is_null();
                all_match &= ok;
                if ok { "= no such driver" } else { "MISMATCH" }
            }
        };
        let count = count.as_i64().map_or("-".into(), |c| c.to_string());
        println!("{id:>9}  {count:>21}  {:>17}  {check}", show(mean));
    }
    println!();
    all_match
}

fn show(value: &serde_json::Value) -> String {
    match value.as_f64() {
        Some(v) => format!("{v:.2}"),
        None => "-".into(),
    }
}

fn close(value: &serde_json::Value, expected: f32) -> bool {
    value
        .as_f64()
        .is_some_and(|v| (v as f32 - expected).abs() < 1e-3)
}

/// The quickstart's events and what they should leave in Redis.
mod sample {
    use std::collections::BTreeMap;

    /// Events to produce and the expected newest values per driver.
    pub struct Sample {
        pub messages: Vec<(String, Vec<u8>)>,
        /// Sent once the others are consumed: an hour behind them, so
        /// behind every view's watermark whatever order the partitions'
        /// events were read in.
        pub late_messages: Vec<(String, Vec<u8>)>,
        pub expected: BTreeMap<i64, Expected>,
        pub malformed: usize,
    }

    pub struct Expected {
        pub conv_percentage: f32,
        pub acc_percentage: f32,
        pub event_timestamp: String,
        /// Events in the hour ending with the 5-minute hop of the newest event.
        pub hour_count: i64,
        pub hour_mean_conv_rate: f64,
    }

    const HOP: i64 = 300;

    const EVENTS_PER_DRIVER: i64 = 6;

    /// Drivers 1001.. with events a minute apart ending near `now`; each
    /// driver's two newest events are sent in reverse order, and a few bad
    /// and late messages are mixed in.
    pub fn events(drivers: u32, now: i64) -> Sample {
        let start = now - now % 60 - 10 * 60;
        let mut messages = Vec::new();
        let mut expected = BTreeMap::new();
        for d in 0..i64::from(drivers) {
            let id = 1001 + d;
            let mut order: Vec<i64> = (0..EVENTS_PER_DRIVER).collect();
            order.swap(
                EVENTS_PER_DRIVER as usize - 1,
                EVENTS_PER_DRIVER as usize - 2,
            );
            let mut sent = Vec::new();
            for i in order {
                let ts = start + i * 60;
                let conv = ((id * 7 + i * 13) % 100) as f64 / 100.0;
                let acc = ((id * 3 + i * 29) % 100) as f64 / 100.0;
                messages.push((id.to_string(), event(id, ts, conv, acc)));
                sent.push((ts, conv));
                if i == EVENTS_PER_DRIVER - 1 {
                    expected.insert(
                        id,
                        Expected {
                            conv_percentage: (conv * 100.0) as f32,
                            acc_percentage: (acc * 100.0) as f32,
                            event_timestamp: crate::online::EventTime::from_micros(ts * 1_000_000)
                                .to_rfc3339(),
                            hour_count: 0,
                            hour_mean_conv_rate: 0.0,
                        },
                    );
                }
            }
            if let Some(e) = expected.get_mut(&id) {
                let newest = sent.iter().map(|(ts, _)| *ts).max().unwrap_or(start);
                let end = (newest.div_euclid(HOP) + 1) * HOP;
                let hour: Vec<f64> = sent
                    .iter()
                    .filter(|(ts, _)| *ts >= end - 3600 && *ts < end)
                    .map(|(_, conv)| *conv)
                    .collect();
                e.hour_count = hour.len() as i64;
                e.hour_mean_conv_rate = hour.iter().sum::<f64>() / hour.len().max(1) as f64;
            }
        }
        let bad: [&[u8]; 3] = [
            b"{\"driver_id\": 1001, \"event_timestamp\": ",
            br#"{"driver_id": "one", "event_timestamp": "2026-01-01T00:00:00Z", "conv_rate": 0.1, "acc_rate": 0.1}"#,
            br#"{"driver_id": 1002, "conv_rate": 0.1, "acc_rate": 0.1}"#,
        ];
        for payload in bad {
            messages.push(("1001".into(), payload.to_vec()));
        }
        Sample {
            messages,
            late_messages: vec![("1001".into(), event(1001, start - 3600, 0.99, 0.99))],
            expected,
            malformed: bad.len(),
        }
    }

    fn event(id: i64, ts: i64, conv: f64, acc: f64) -> Vec<u8> {
        let time = chrono::DateTime::from_timestamp(ts, 0)
            .unwrap_or_default()
            .to_rfc3339();
        serde_json::json!({
            "driver_id": id,
            "event_timestamp": time,
            "conv_rate": conv,
            "acc_rate": acc,
            "created": time,
        })
        .to_string()
        .into_bytes()
    }
}
