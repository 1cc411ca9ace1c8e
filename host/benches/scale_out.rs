//! Scale-out throughput: events/s end to end with 1 and 3 redis-server
//! masters (a single server, a 3-master cluster) and 1 and 2 fvhost hosts
//! in one consumer group, in one run; and the cost of waiting for a
//! replica (`--wait-for-replicas 1`) behind Sentinel.
//!
//! Run: `cargo bench -p fvhost --bench scale_out`. Sizes:
//! `FVHOST_BENCH_DRIVERS` (default 100000) x 2 events. The broker is
//! librdkafka's mock cluster (about 50k messages per partition at most),
//! or tansu with `FVHOST_BENCH_BROKER=tansu` (a real broker: millions).
//!
//! Hosts run in this process (each its own consumer in the group, as
//! separate processes would be); the figures are per-core costs: CPU
//! seconds of this process (hosts, the in-process mock broker) and of
//! every redis-server, per million events. docs/architecture.md turns
//! them into a model of growth past this 2-core machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fvhost::control::{Host, HostOptions};
use fvhost::local::{LocalBroker, RedisCluster, RedisSentinelSet, RedisServer, SENTINEL_MASTER};
use fvhost::online::ReplicaWait;
use fvhost::repo;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PARTITIONS: i32 = 8;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The online store of one configuration, kept running for its run.
enum Store {
    Single(RedisServer),
    Cluster(RedisCluster),
    Sentinel(RedisSentinelSet),
}

impl Store {
    fn online_store(&self) -> (String, String, Option<String>) {
        match self {
            Store::Single(redis) => ("redis".into(), format!("127.0.0.1:{}", redis.port()), None),
            Store::Cluster(cluster) => ("redis_cluster".into(), cluster.connection_string(), None),
            Store::Sentinel(set) => (
                "redis_sentinel".into(),
                set.connection_string(),
                Some(SENTINEL_MASTER.to_string()),
            ),
        }
    }

    fn pids(&self) -> Vec<u32> {
        match self {
            Store::Single(redis) => vec![redis.pid()],
            Store::Cluster(cluster) => cluster.pids(),
            Store::Sentinel(set) => set.pids(),
        }
    }
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// A run: its name, the store it starts, hosts, replicas each write waits for.
type Configuration = (&'static str, fn() -> Store, usize, u32);

struct Figures {
    rate: f64,
    duplicates: u64,
    host_cpu_per_million: f64,
    redis_cpu_per_million: f64,
    stages: String,
}

fn broker() -> LocalBroker {
    if std::env::var("FVHOST_BENCH_BROKER").as_deref() == Ok("tansu") {
        if let Some(level) = fvhost::local::tansu_opt_level() {
            eprintln!(
                "broker: tansu built at opt-level {level} (scripts/setup.sh, FVHOST_TANSU_OPT_LEVEL)"
            );
        }
        LocalBroker::start_tansu().expect("tansu")
    } else {
        LocalBroker::start(1).unwrap()
    }
}

fn run(
    runtime: &tokio::runtime::Runtime,
    base: &repo::FeatureRepo,
    store: &Store,
    hosts: usize,
    replica_wait: ReplicaWait,
    messages: &[(String, Vec<u8>)],
) -> Figures {
    let total = messages.len();
    let mut repo = base.clone();
    let (redis_type, connection_string, sentinel_master) = store.online_store();
    repo.config.online_store.redis_type = redis_type;
    repo.config.online_store.connection_string = connection_string;
    repo.config.online_store.sentinel_master = sentinel_master;
    let broker = broker();
    broker.create_topic("drivers", PARTITIONS).unwrap();
    runtime
        .block_on(broker.produce("drivers", messages))
        .unwrap();
    runtime.block_on(async {
        let options = HostOptions {
            kafka_bootstrap: Some(broker.bootstrap_servers()),
            replica_wait,
            ..HostOptions::default()
        };
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let started_hosts = futures::future::join_all(
            (0..hosts).map(|_| Host::start(&repo, &options, shutdown.clone())),
        )
        .await;
        let hosts: Vec<Host> = started_hosts.into_iter().map(Result::unwrap).collect();
        let metrics: Vec<_> = hosts
            .iter()
            .map(|h| Arc::clone(&h.metrics()[0].1))
            .collect();
        let redis_pids: Vec<String> = store.pids().iter().map(u32::to_string).collect();
        let mut first = None;
        loop {
            let snapshots: Vec<_> = metrics.iter().map(|m| m.snapshot()).collect();
            let consumed: u64 = snapshots.iter().map(|s| s.messages).sum();
            if first.is_none() && consumed > 0 {
                let redis_cpu: f64 = redis_pids.iter().map(|p| cpu_seconds(p)).sum();
                first = Some((Instant::now(), consumed, cpu_seconds("self"), redis_cpu));
            }
            if consumed as usize >= total && snapshots.iter().all(|s| s.batches == s.commits) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let done = Instant::now();
        let (first_at, first_consumed, host_cpu, redis_cpu) = first.unwrap();
        let host_cpu = cpu_seconds("self") - host_cpu;
        let redis_cpu = redis_pids.iter().map(|p| cpu_seconds(p)).sum::<f64>() - redis_cpu;
        let snapshots: Vec<_> = metrics.iter().map(|m| m.snapshot()).collect();
        let consumed: u64 = snapshots.iter().map(|s| s.messages).sum();
        let stages = snapshots
            .iter()
            .map(|m| {
                format!(
                    "poll {} decode {} transform {} write {} commit {} ms",
                    m.poll_micros / 1000,
                    m.decode_micros / 1000,
                    m.transform_micros / 1000,
                    m.write_micros / 1000,
                    m.commit_micros / 1000
                )
            })
            .collect::<Vec<_>>()
            .join(" | ");
        let _ = stop.send(true);
        for host in hosts {
            host.wait().await;
        }
        let measured = total as f64 - first_consumed as f64;
        let millions = measured / 1e6;
        Figures {
            rate: measured / (done - first_at).as_secs_f64(),
            duplicates: consumed.saturating_sub(total as u64),
            host_cpu_per_million: host_cpu / millions,
            redis_cpu_per_million: redis_cpu / millions,
            stages,
        }
    })
}

fn main() {
    fvhost::local::build_guest_workspace(&root().join("examples/transforms"))
        .expect("building the example transform");
    let drivers: u64 = std::env::var("FVHOST_BENCH_DRIVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut repo = repo::load(&root().join("examples/driver_ranking")).expect("example repo");
    repo.views
        .retain(|v| v.name == "driver_hourly_stats_stream");
    let now = chrono::Utc::now().timestamp();
    let messages: Vec<(String, Vec<u8>)> = (0..2)
        .flat_map(|round| {
            (0..drivers).map(move |d| (d.to_string(), event(1000 + d, now - 60 + round)))
        })
        .collect();
    println!(
        "dataset: {drivers} drivers x 2 events = {} messages, {PARTITIONS} partitions",
        messages.len()
    );
    let mut summary = serde_json::Map::new();
    let configurations: Vec<Configuration> = vec![
        (
            "1 master, 1 host",
            || Store::Single(RedisServer::start().unwrap()),
            1,
            0,
        ),
        (
            "1 master, 2 hosts",
            || Store::Single(RedisServer::start().unwrap()),
            2,
            0,
        ),
        (
            "3 masters, 1 host",
            || Store::Cluster(RedisCluster::start(3, 0).unwrap()),
            1,
            0,
        ),
        (
            "3 masters, 2 hosts",
            || Store::Cluster(RedisCluster::start(3, 0).unwrap()),
            2,
            0,
        ),
        (
            "sentinel, no wait",
            || Store::Sentinel(RedisSentinelSet::start(1).unwrap()),
            1,
            0,
        ),
        (
            "sentinel, WAIT 1",
            || Store::Sentinel(RedisSentinelSet::start(1).unwrap()),
            1,
            1,
        ),
    ];
    for (name, make_store, hosts, wait) in configurations {
        let store = make_store();
        let figures = run(
            &runtime,
            &repo,
            &store,
            hosts,
            ReplicaWait::for_replicas(wait),
            &messages,
        );
        println!(
            "{name:<20} {:>9.0} events/s  fvhost process {:.2} CPU-s/M events, redis {:.2} CPU-s/M events, {} re-read; {}",
            figures.rate,
            figures.host_cpu_per_million,
            figures.redis_cpu_per_million,
            figures.duplicates,
            figures.stages
        );
        summary.insert(
            name.to_string(),
            serde_json::json!({
                "events_per_s": figures.rate.round(),
                "host_cpu_s_per_million": figures.host_cpu_per_million,
                "redis_cpu_s_per_million": figures.redis_cpu_per_million,
                "re_read": figures.duplicates,
            }),
        );
    }
    println!(
        "{}",
        serde_json::json!({"bench": "scale_out", "runs": summary})
    );
}

fn event(driver: u64, seconds: i64) -> Vec<u8> {
    let time = chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap()
        .to_rfc3339();
    serde_json::json!({
        "driver_id": driver,
        "event_timestamp": time,
        "conv_rate": 0.5,
        "acc_rate": 0.9,
        "created": time,
    })
    .to_string()
    .into_bytes()
}
