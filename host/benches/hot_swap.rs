//! What a hot swap costs: deploy-to-active time for a ~2 MB module, cold (not
//! in the module cache) and cached, and the ingestion stall around swaps (the
//! longer of the two commit gaps right after a swap, against all the run's
//! gaps) while events flow.
//!
//! Run: `cargo bench -p fvhost --bench hot_swap`. Real redis-server and
//! librdkafka's mock cluster on loopback; prints figures and a JSON line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fvhost::control::{Host, HostOptions};
use fvhost::local::{LocalBroker, RedisServer};
use fvhost::repo;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SWAPS: usize = 40;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn build(workspace: &str) -> PathBuf {
    fvhost::local::build_guest_workspace(&root().join(workspace)).expect("building the transforms")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let v1 = std::fs::read(build("examples/transforms").join("driver_stats.wasm")).unwrap();
    let v2 = std::fs::read(build("tests/guests").join("rates_x1000.wasm")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut repo = repo::load(&root().join("examples/driver_ranking")).unwrap();
    // The swapped view alone: status and metrics below read the first view.
    repo.views
        .retain(|v| v.name == "driver_hourly_stats_stream");
    let cache = tempfile::tempdir().unwrap();
    let redis = RedisServer::start().unwrap();
    let broker = LocalBroker::start(1).unwrap();
    broker.create_topic("drivers", 4).unwrap();
    let bootstrap = broker.bootstrap_servers();

    runtime.block_on(async {
        let options = HostOptions { kafka_bootstrap: Some(bootstrap.clone()), redis_url: Some(redis.url()), cache_dir: Some(cache.path().to_path_buf()), ..HostOptions::default() };
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let host = Host::start(&repo, &options, shutdown).await.unwrap();
        let deployer = host.deployer();
        let metrics = Arc::clone(&host.metrics()[0].1);

        // Events flow all along: about 20k per second.
        let producing = Arc::new(AtomicBool::new(true));
        let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).set("linger.ms", "5").create().unwrap();
        let flag = producing.clone();
        let feeder = tokio::spawn(async move {
            let mut n: u64 = 0;
            while flag.load(Ordering::Relaxed) {
                for _ in 0..200 {
                    let time = chrono::Utc::now().to_rfc3339();
                    let payload = format!(r#"{{"driver_id": {}, "event_timestamp": "{time}", "conv_rate": 0.5, "acc_rate": 0.25}}"#, n % 50_000);
                    let _ = producer.send_result(FutureRecord::to("drivers").key(&(n % 64).to_string()).payload(&payload));
                    n += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });

        // Commit times, sampled every millisecond.
        let sampling = Arc::new(AtomicBool::new(true));
        let (flag, watched) = (sampling.clone(), metrics.clone());
        let sampler = tokio::spawn(async move {
            let mut commits = Vec::new();
            let mut last = watched.snapshot().commits;
            while flag.load(Ordering::Relaxed) {
                let now = watched.snapshot().commits;
                if now != last {
                    commits.push(Instant::now());
                    last = now;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            commits
        });
        while metrics.snapshot().commits < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let deploy = |bytes: Vec<u8>| {
            let deployer = deployer.clone();
            async move { tokio::task::spawn_blocking(move || deployer.deploy("driver_hourly_stats_stream", &bytes, "bench").unwrap()).await.unwrap() }
        };
        let cold = deploy(v2.clone()).await;
        // Cached deploys are measured once the optimized compile of the cold
        // deploy (running in the background) is in the cache.
        let cold_active = Instant::now();
        while deployer.status()[0].tier != Some("optimized") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let optimized_after = cold_active.elapsed().as_secs_f64() * 1e3 + cold.milliseconds;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut cached = Vec::new();
        let mut swap_times = Vec::new();
        for i in 0..SWAPS {
            let bytes = if i % 2 == 0 { v1.clone() } else { v2.clone() };
            swap_times.push(Instant::now());
            cached.push(deploy(bytes).await.milliseconds);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        producing.store(false, Ordering::Relaxed);
        let _ = feeder.await;
        sampling.store(false, Ordering::Relaxed);
        let commits = sampler.await.unwrap();
        let _ = stop.send(true);
        host.wait().await;

        let gaps: Vec<(Instant, f64)> = commits.windows(2).map(|w| (w[1], (w[1] - w[0]).as_secs_f64() * 1e3)).collect();
        let mut baseline: Vec<f64> = gaps.iter().map(|g| g.1).collect();
        baseline.sort_by(f64::total_cmp);
        // The stall a swap causes shows in the commit gaps right after it: the
        // gap in which the swap landed and the next one.
        let mut stalls: Vec<f64> = swap_times
            .iter()
            .map(|t| gaps.iter().filter(|(at, _)| *at >= *t).take(2).map(|g| g.1).fold(0.0, f64::max))
            .collect();
        stalls.sort_by(f64::total_cmp);
        cached.sort_by(f64::total_cmp);
        println!("module: {} bytes (example) / {} bytes (second version)", v1.len(), v2.len());
        println!("deploy-to-active, cold (compile + link + probe):  {:>8.1} ms", cold.milliseconds);
        println!("cold deploy on optimized code after:              {optimized_after:>8.1} ms");
        println!("deploy-to-active, cached (p50 / p99 of {SWAPS}):      {:>8.1} / {:.1} ms", percentile(&cached, 0.5), percentile(&cached, 0.99));
        println!("gap between commits, whole run (p50 / p99 / max): {:>8.1} / {:.1} / {:.1} ms", percentile(&baseline, 0.5), percentile(&baseline, 0.99), baseline.last().copied().unwrap_or(0.0));
        println!("longest of the 2 gaps after a swap (p50 / p99):   {:>8.1} / {:.1} ms", percentile(&stalls, 0.5), percentile(&stalls, 0.99));
        println!(
            "{}",
            serde_json::json!({
                "bench": "hot_swap", "swaps": SWAPS, "module_bytes": v1.len(),
                "deploy_cold_ms": cold.milliseconds, "cold_optimized_after_ms": optimized_after, "deploy_cached_p50_ms": percentile(&cached, 0.5), "deploy_cached_p99_ms": percentile(&cached, 0.99),
                "commit_gap_p50_ms": percentile(&baseline, 0.5), "commit_gap_p99_ms": percentile(&baseline, 0.99),
                "swap_stall_p50_ms": percentile(&stalls, 0.5), "swap_stall_p99_ms": percentile(&stalls, 0.99),
            })
        );
    });
}
