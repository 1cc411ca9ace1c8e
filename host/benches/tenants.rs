//! Tenant isolation under load: the throughput of two well-behaved tenants
//! alone, beside a hostile tenant (a transform that never returns and one
//! that exhausts its memory, on every batch), and beside a noisy neighbour
//! flooding its topic with four times their events.
//!
//! Run: `cargo bench -p fvhost --bench tenants`. One host process with the
//! tenants of each scenario, a real redis-server and librdkafka's mock
//! cluster on loopback; prints per-tenant rates and a JSON line.
//! Size: `FVHOST_BENCH_EVENTS` per well-behaved tenant (default 300000; the mock broker keeps about 50k messages per partition, so topics get one partition per 25k events).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fvhost::control::{Host, HostOptions, TenantSpec};
use fvhost::local::{LocalBroker, RedisServer};
use fvhost::transform::Limits;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const SCHEMA: &str = "driver_id integer, event_timestamp timestamp, conv_rate double, acc_rate double, created timestamp";

/// A repo for `project` with one view per `(view, topic, module, config)`.
fn write_repo(dir: &Path, project: &str, views: &[(&str, &str, PathBuf, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("feature_store.yaml"),
        format!("project: {project}\nprovider: local\nregistry: data/registry.db\nonline_store:\n  type: redis\n  connection_string: \"127.0.0.1:1\"\nentity_key_serialization_version: 3\n"),
    )
    .unwrap();
    let mut yaml = String::from(
        "entities:\n  - name: driver\n    join_keys: [driver_id]\n    value_type: INT64\nsources:\n  - name: history\n    type: file\n    path: data/history.parquet\n    timestamp_field: event_timestamp\n",
    );
    for (_, topic, _, _) in views {
        yaml.push_str(&format!("  - name: {topic}_stream\n    type: kafka\n    kafka_bootstrap_servers: 127.0.0.1:1\n    topic: {topic}\n    timestamp_field: event_timestamp\n    batch_source: history\n    message_format:\n      type: json\n      schema_json: \"{SCHEMA}\"\n"));
    }
    yaml.push_str("stream_feature_views:\n");
    for (view, topic, module, config) in views {
        yaml.push_str(&format!("  - name: {view}\n    entities: [driver]\n    source: {topic}_stream\n    schema:\n      - name: conv_percentage\n        dtype: Float32\n      - name: acc_percentage\n        dtype: Float32\n    transform:\n      module: {}\n      config: {{{config}}}\n    dead_letter: {{type: redis_stream}}\n", module.display()));
    }
    std::fs::write(dir.join("definitions.yaml"), yaml).unwrap();
}

/// Produces in chunks: the producer's queue holds 100k messages.
fn produce(
    runtime: &tokio::runtime::Runtime,
    broker: &LocalBroker,
    topic: &str,
    messages: &[(String, Vec<u8>)],
) {
    for chunk in messages.chunks(50_000) {
        runtime.block_on(broker.produce(topic, chunk)).unwrap();
    }
}

fn events(count: usize, drivers: usize) -> Vec<(String, Vec<u8>)> {
    let time = chrono::DateTime::from_timestamp(1_767_225_600, 0)
        .unwrap()
        .to_rfc3339();
    (0..count)
        .map(|i| {
            let driver = i % drivers;
            let payload = format!(r#"{{"driver_id": {driver}, "event_timestamp": "{time}", "conv_rate": 0.5, "acc_rate": 0.25}}"#);
            ((i % 64).to_string(), payload.into_bytes())
        })
        .collect()
}

struct Scenario {
    name: &'static str,
    /// (tenant, events to ingest, well-behaved?)
    tenants: Vec<(&'static str, usize, bool)>,
}

/// Runs one scenario in a fresh host; returns each measured tenant's rows/s.
fn run(scenario: &Scenario, base: &Path, modules: &Modules) -> Vec<(String, f64)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    let dir = base.join(scenario.name);
    let mut specs = Vec::new();
    for (tenant, count, well_behaved) in &scenario.tenants {
        let repo_dir = dir.join(tenant);
        if *well_behaved {
            broker
                .create_topic(tenant, (*count / 25_000).max(4) as i32)
                .unwrap();
            write_repo(
                &repo_dir,
                tenant,
                &[("stats", tenant, modules.example.clone(), "factor: 100")],
            );
            produce(&runtime, &broker, tenant, &events(*count, 50_000));
        } else {
            let (spin, hoard) = (format!("{tenant}_spin"), format!("{tenant}_hoard"));
            broker.create_topic(&spin, 1).unwrap();
            broker.create_topic(&hoard, 1).unwrap();
            write_repo(
                &repo_dir,
                tenant,
                &[
                    ("spin", &spin, modules.hostile.clone(), "attack: loop"),
                    ("hoard", &hoard, modules.hostile.clone(), "attack: memory"),
                ],
            );
            produce(&runtime, &broker, &spin, &events(*count, 1000));
            produce(&runtime, &broker, &hoard, &events(*count, 1000));
        }
        let limits = if *well_behaved {
            Limits::default()
        } else {
            Limits {
                memory_bytes: 32 << 20,
                time_per_batch: Duration::from_millis(300),
                instances_in_flight: 1,
                ..Limits::default()
            }
        };
        specs.push(TenantSpec {
            name: tenant.to_string(),
            repo: fvhost::repo::load(&repo_dir).unwrap(),
            limits,
        });
    }
    let options = HostOptions {
        kafka_bootstrap: Some(broker.bootstrap_servers()),
        redis_url: Some(redis.url()),
        cache_dir: Some(base.join("cache")),
        ..HostOptions::default()
    };
    runtime.block_on(async {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let host = Host::start_tenants(specs, &options, shutdown)
            .await
            .unwrap();
        let metrics = host.metrics();
        let measured: Vec<_> = scenario
            .tenants
            .iter()
            .filter(|t| t.2)
            .map(|(tenant, count, _)| (tenant.to_string(), *count))
            .collect();
        // Views are named `stats` in every well-behaved tenant: their counters come in tenant order.
        let counters: Vec<_> = metrics
            .iter()
            .filter(|(v, _)| v == "stats")
            .map(|(_, m)| m.clone())
            .collect();
        let mut first: Vec<Option<Instant>> = vec![None; measured.len()];
        let mut done: Vec<Option<Instant>> = vec![None; measured.len()];
        let deadline = Instant::now() + Duration::from_secs(120);
        let (mut both_done, mut seen_when_both_done) = (None, vec![0; measured.len()]);
        while done.iter().take(2).any(Option::is_none) && Instant::now() < deadline {
            for (i, counter) in counters.iter().enumerate() {
                let messages = counter.snapshot().messages as usize;
                if messages > 0 && first[i].is_none() {
                    first[i] = Some(Instant::now());
                }
                if messages >= measured[i].1 && done[i].is_none() {
                    done[i] = Some(Instant::now());
                }
            }
            if both_done.is_none() && done.iter().take(2).all(Option::is_some) {
                both_done = Some(Instant::now());
                seen_when_both_done = counters
                    .iter()
                    .map(|c| c.snapshot().messages as usize)
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if done.iter().take(2).any(Option::is_none) {
            let seen: Vec<u64> = counters.iter().map(|c| c.snapshot().messages).collect();
            eprintln!(
                "{}: timed out; messages seen {seen:?} of {measured:?}",
                scenario.name
            );
        }
        let _ = stop.send(true);
        host.wait().await;
        // A tenant still busy when alpha and beta are done (the flood) is
        // measured on what it ingested meanwhile.
        let mut rates: Vec<(String, f64)> = measured
            .iter()
            .enumerate()
            .map(|(i, (tenant, count))| match done[i] {
                Some(_) => (tenant.clone(), rate(*count, first[i], done[i])),
                None => (
                    tenant.clone(),
                    rate(seen_when_both_done[i], first[i], both_done),
                ),
            })
            .collect();
        // alpha and beta together, from the first event either saw to the last either wrote.
        let both = measured.iter().take(2).map(|m| m.1).sum();
        let started = first.iter().take(2).flatten().min().copied();
        let ended = done.iter().take(2).map(|d| d.unwrap_or(deadline)).max();
        rates.push(("alpha+beta".into(), rate(both, started, ended)));
        rates
    })
}

fn rate(events: usize, first: Option<Instant>, done: Option<Instant>) -> f64 {
    match (first, done) {
        (Some(first), Some(done)) if done > first => events as f64 / (done - first).as_secs_f64(),
        _ => 0.0,
    }
}

/// Compiles both modules into the scenarios' cache first, so no scenario
/// runs on baseline code or shares the CPU with an optimizing compile.
fn warm_cache(dir: &Path, modules: &Modules) {
    use fvhost::transform::cache::ModuleCache;
    use fvhost::transform::{TransformEngine, TransformModule};
    let engine = TransformEngine::new().unwrap();
    let cache = ModuleCache::new(Some(dir.to_path_buf()));
    for path in [&modules.example, &modules.hostile] {
        let module = TransformModule::load(&engine, &cache, path, &Limits::default()).unwrap();
        assert!(module.wait_until_optimized(Duration::from_secs(120)));
    }
}

struct Modules {
    example: PathBuf,
    hostile: PathBuf,
}

fn main() {
    let events: usize = std::env::var("FVHOST_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let modules = Modules {
        example: fvhost::local::build_guest_workspace(&root().join("examples/transforms"))
            .unwrap()
            .join("driver_stats.wasm"),
        hostile: fvhost::local::build_guest_workspace(&root().join("tests/guests"))
            .unwrap()
            .join("hostile.wasm"),
    };
    let base = tempfile::tempdir().unwrap();
    warm_cache(&base.path().join("cache"), &modules);
    let scenarios = [
        Scenario {
            name: "alone",
            tenants: vec![("alpha", events, true), ("beta", events, true)],
        },
        Scenario {
            name: "beside_hostile",
            tenants: vec![
                ("alpha", events, true),
                ("beta", events, true),
                ("hostile", 2000, false),
            ],
        },
        Scenario {
            name: "beside_flood",
            tenants: vec![
                ("alpha", events, true),
                ("beta", events, true),
                ("flood", events * 4, true),
            ],
        },
    ];
    let mut results = serde_json::Map::new();
    for scenario in &scenarios {
        let rates = run(scenario, base.path(), &modules);
        for (tenant, rate) in &rates {
            println!("{:<16} {tenant:<8} {rate:>10.0} rows/s", scenario.name);
            results.insert(
                format!("{}_{tenant}_rows_per_s", scenario.name),
                serde_json::json!(rate.round()),
            );
        }
    }
    let ratio = |scenario: &str, tenant: &str| {
        results[&format!("{scenario}_{tenant}_rows_per_s")]
            .as_f64()
            .unwrap()
            / results[&format!("alone_{tenant}_rows_per_s")]
                .as_f64()
                .unwrap()
    };
    for tenant in ["alpha", "beta", "alpha+beta"] {
        println!(
            "{tenant}: beside a hostile tenant {:.0}% of alone, beside a flooding one {:.0}%",
            ratio("beside_hostile", tenant) * 100.0,
            ratio("beside_flood", tenant) * 100.0
        );
    }
    results.insert("bench".into(), "tenants".into());
    results.insert("events_per_tenant".into(), events.into());
    println!("{}", serde_json::Value::Object(results));
}
