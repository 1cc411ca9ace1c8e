//! Stream ingestion throughput, stage by stage and end to end.
//!
//! Run: `cargo bench -p fvhost --bench stream_throughput` (builds the example
//! transform first). Uses a real redis-server and librdkafka's mock cluster on
//! loopback. Prints one line per measurement and a JSON summary last.
//! Sizes: `FVHOST_BENCH_DRIVERS` (default 100000) x 2 events each.
//! `FVHOST_BENCH_ONLY=end_to_end` skips the stage measurements (for
//! profiling the stream loop alone under `perf record`); `=windowed` runs
//! only the aggregating view (3 aggregations over 1 h in 5-minute hops).
//! The Redis writer alone and the stream end to end are measured turn
//! about, `FVHOST_BENCH_ROUNDS` times each (default 3), and compared by
//! their medians.
//!
//! `FVHOST_BENCH_BROKER=tansu` runs the end-to-end figures on tansu, a real
//! Kafka-compatible broker (`scripts/setup.sh` installs it), instead of the
//! mock cluster, which keeps only about 50k messages per partition.
//!
//! Two reference figures come from `redis-benchmark` against the same
//! redis-server: fvhost's write script called with 256 keys per call, and a
//! blind pipelined `HSET` of the same shape (key, timestamp and feature
//! fields), the most a writer could get from this server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fvhost::control::{Host, HostOptions};
use fvhost::format::JsonBatchBuilder;
use fvhost::local::{LocalBroker, RedisServer};
use fvhost::online::{OnlineStore, RedisStore};
use fvhost::pipeline::ViewPipeline;
use fvhost::repo::{self, MessageFormat, SourceKind};
use fvhost::transform::cache::ModuleCache;
use fvhost::transform::{Limits, TransformEngine};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 8192;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn build_example() {
    fvhost::local::build_guest_workspace(&root().join("examples/transforms"))
        .expect("building the example transform");
}

fn event(driver: u64, seconds: i64) -> Vec<u8> {
    let time = chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap()
        .to_rfc3339();
    format!(
        r#"{{"driver_id": {driver}, "event_timestamp": "{time}", "conv_rate": 0.{a:03}, "acc_rate": 0.{b:03}, "created": "{time}"}}"#,
        a = driver % 997,
        b = driver % 991
    )
    .into_bytes()
}

fn rate(rows: usize, elapsed: Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64()
}

fn main() {
    build_example();
    let drivers: u64 = std::env::var("FVHOST_BENCH_DRIVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut repo = repo::load(&root().join("examples/driver_ranking")).expect("example repo");
    // The plain view alone (the example's aggregating view is measured as
    // `windowed`, with its own aggregations).
    repo.views
        .retain(|v| v.name == "driver_hourly_stats_stream");
    let view = repo.view("driver_hourly_stats_stream").unwrap().clone();
    let source = repo.source(&view.source).unwrap().clone();
    let SourceKind::Kafka(kafka) = &source.kind else {
        panic!("kafka source")
    };
    let MessageFormat::Json { schema } = &kafka.format;

    let now = chrono::Utc::now().timestamp();
    let messages: Vec<(String, Vec<u8>)> = (0..2)
        .flat_map(|round| {
            (0..drivers).map(move |d| (d.to_string(), event(1000 + d, now - 60 + round)))
        })
        .collect();
    let total = messages.len();
    println!("dataset: {drivers} drivers x 2 events = {total} JSON messages, batches of {BATCH}");
    if std::env::var("FVHOST_BENCH_ONLY").as_deref() == Ok("end_to_end") {
        let (end_to_end, join) = end_to_end(&runtime, &repo, &messages);
        print_end_to_end(end_to_end, join);
        return;
    }
    if std::env::var("FVHOST_BENCH_ONLY").as_deref() == Ok("windowed") {
        let (windowed, _) = end_to_end(&runtime, &windowed_repo(&repo), &messages);
        println!(
            "end to end, windowed:   {windowed:>12.0} rows/s (3 aggregations, 1 h in 5 min hops)"
        );
        return;
    }

    // Stage 1: JSON decode.
    let required = vec!["driver_id".to_string(), "event_timestamp".to_string()];
    let started = Instant::now();
    let mut batches = Vec::new();
    for chunk in messages.chunks(BATCH) {
        let mut builder = JsonBatchBuilder::new(schema, &source.field_mapping, &required);
        for (_, payload) in chunk {
            builder.append(payload).unwrap();
        }
        batches.push(builder.finish().unwrap());
    }
    let decode = rate(total, started.elapsed());
    println!("json decode:            {decode:>12.0} rows/s");

    // Stage 2: Wasm transform (IPC in, fresh instance, IPC out) + output schema check.
    let engine = TransformEngine::new().unwrap();
    let cache = ModuleCache::new(None);
    let compile_started = Instant::now();
    let pipeline = ViewPipeline::new(&repo, &view, &engine, &cache, &Limits::default()).unwrap();
    let compile = compile_started.elapsed();
    println!(
        "module ready (cold):    {:>12.1} ms (baseline tier)",
        compile.as_secs_f64() * 1e3
    );
    let module = Arc::clone(pipeline.module().expect("the example view has a transform"));
    let transform_rate = |tier: &str| {
        pipeline.transform(&batches[0]).unwrap();
        let started = Instant::now();
        let transformed: Vec<_> = batches
            .iter()
            .map(|b| pipeline.transform(b).unwrap())
            .collect();
        let rate = rate(total, started.elapsed());
        println!(
            "wasm transform + check: {rate:>12.0} rows/s ({:.0} us per {BATCH}-row batch, {tier} code)",
            started.elapsed().as_secs_f64() * 1e6 / batches.len() as f64
        );
        (rate, transformed)
    };
    let (baseline_transform, _) = transform_rate(module.tier().as_str());
    assert!(
        module.wait_until_optimized(Duration::from_secs(60)),
        "the optimized compile did not finish"
    );
    let (transform, transformed) = transform_rate(module.tier().as_str());

    // Stage 3: online rows (keys, Value protobufs, newest per entity).
    let started = Instant::now();
    let rows: Vec<_> = transformed
        .iter()
        .map(|t| pipeline.online_rows(&t.checked).0)
        .collect();
    let encode = rate(total, started.elapsed());
    println!("rows + encoding:        {encode:>12.0} rows/s");

    // Stage 4 and end to end, alternating: this VM's speed drifts by up to
    // 2x within minutes, so the writer alone and the stream are measured
    // turn about, each on a fresh redis-server, and compared by median.
    let rounds: usize = std::env::var("FVHOST_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut writes = Vec::new();
    let mut end_to_ends = Vec::new();
    let mut script_sha = String::new();
    let mut join = Duration::ZERO;
    let mut redis = None;
    for round in 1..=rounds {
        let redis = redis.insert(RedisServer::start().unwrap());
        let (write, sha) = runtime.block_on(write_alone(redis, &repo, &pipeline, &rows));
        script_sha = sha;
        let (stream, joined) = end_to_end(&runtime, &repo, &messages);
        join = joined;
        println!(
            "round {round}: redis write (script) {write:>9.0} rows/s, end to end {stream:>9.0} rows/s ({:.0} %)",
            100.0 * stream / write
        );
        writes.push(write);
        end_to_ends.push(stream);
    }
    let write = median(&mut writes);
    let stream = median(&mut end_to_ends);
    println!("redis write (script):   {write:>12.0} rows/s (median of {rounds})");
    print_end_to_end(stream, join);
    // The last round's server: it holds the write script.
    let redis = redis.expect("at least one round");
    let script_bench = redis_benchmark_script(&redis, &script_sha, pipeline.fields.features.len());
    println!("redis-benchmark script: {script_bench:>12.0} rows/s (256 keys per call)");
    let blind_hset = redis_benchmark_hset(&redis, pipeline.fields.features.len());
    println!("redis-benchmark HSET:   {blind_hset:>12.0} rows/s (blind, pipelined)");

    let (windowed, _) = end_to_end(&runtime, &windowed_repo(&repo), &messages);
    println!(
        "end to end, windowed:   {windowed:>12.0} rows/s (3 aggregations, 1 h in 5 min hops; {:.0} % of the plain view)",
        100.0 * windowed / stream
    );
    println!(
        "end to end / writer:    {:>12.0} %   writer / blind HSET: {:.0} %",
        100.0 * stream / write,
        100.0 * write / blind_hset
    );

    println!(
        "{}",
        serde_json::json!({
            "bench": "stream_throughput", "messages": total, "drivers": drivers, "batch": BATCH,
            "json_decode_rows_per_s": decode.round(), "transform_rows_per_s": transform.round(), "baseline_transform_rows_per_s": baseline_transform.round(),
            "encode_rows_per_s": encode.round(), "redis_write_rows_per_s": write.round(),
            "end_to_end_rows_per_s": stream.round(), "group_join_s": join.as_secs_f64(), "rounds": rounds,
            "module_compile_ms": compile.as_secs_f64() * 1e3,
            "redis_benchmark_script_rows_per_s": script_bench.round(),
            "redis_benchmark_hset_rows_per_s": blind_hset.round(),
            "windowed_end_to_end_rows_per_s": windowed.round(),
        })
    );
}

/// The middle value (the upper one of an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The Redis writer alone: the precomputed rows written batch after batch,
/// one batch in flight, into a fresh `redis`; rows per second and the
/// write script's SHA.
async fn write_alone(
    redis: &RedisServer,
    repo: &repo::FeatureRepo,
    pipeline: &ViewPipeline,
    rows: &[Vec<fvhost::online::OnlineRow>],
) -> (f64, String) {
    let store = RedisStore::connect(&repo.config.online_store, Some(&redis.url()))
        .await
        .unwrap();
    let total: usize = rows.iter().map(Vec::len).sum();
    let started = Instant::now();
    let mut written = 0;
    for batch in rows {
        written += store.write(&pipeline.fields, batch).await.unwrap().written;
    }
    let elapsed = started.elapsed();
    assert_eq!(
        written as usize, total,
        "each round is newer than the one before, so every row is written"
    );
    let sha = store
        .script(pipeline.fields.features.len())
        .get_hash()
        .to_string();
    (rate(total, elapsed), sha)
}

/// Rows per second from the stream, mock cluster to Redis, after the
/// consumer-group join; and how long the join took.
fn end_to_end(
    runtime: &tokio::runtime::Runtime,
    repo: &repo::FeatureRepo,
    messages: &[(String, Vec<u8>)],
) -> (f64, Duration) {
    let total = messages.len();
    let redis = RedisServer::start().unwrap();
    let broker = if std::env::var("FVHOST_BENCH_BROKER").as_deref() == Ok("tansu") {
        if let Some(level) = fvhost::local::tansu_opt_level() {
            eprintln!(
                "broker: tansu built at opt-level {level} (scripts/setup.sh, FVHOST_TANSU_OPT_LEVEL)"
            );
        }
        LocalBroker::start_tansu().expect("tansu")
    } else {
        LocalBroker::start(1).unwrap()
    };
    broker.create_topic("drivers", 8).unwrap();
    runtime
        .block_on(broker.produce("drivers", messages))
        .unwrap();
    runtime.block_on(async {
        let options = HostOptions {
            kafka_bootstrap: Some(broker.bootstrap_servers()),
            redis_url: Some(redis.url()),
            ..HostOptions::default()
        };
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let host = Host::start(repo, &options, shutdown).await.unwrap();
        let metrics = Arc::clone(&host.metrics()[0].1);
        let mut first_batch = None;
        loop {
            let m = metrics.snapshot();
            if first_batch.is_none() && m.messages > 0 {
                first_batch = Some((Instant::now(), m.messages));
            }
            if m.messages as usize >= total && m.batches == m.commits {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let done = Instant::now();
        let m = metrics.snapshot();
        println!(
            "stream loop, ms in all: poll {} decode {} transform {} encode {} write {} commit {} ({} batches, {:.1} s wall)",
            m.poll_micros / 1000,
            m.decode_micros / 1000,
            m.transform_micros / 1000,
            m.encode_micros / 1000,
            m.write_micros / 1000,
            m.commit_micros / 1000,
            m.batches,
            (done - started).as_secs_f64(),
        );
        let _ = stop.send(true);
        host.wait().await;
        let (first_at, first_messages) = first_batch.unwrap();
        (
            rate(total - first_messages as usize, done - first_at),
            first_at - started,
        )
    })
}

fn print_end_to_end(end_to_end: f64, join: Duration) {
    println!(
        "end to end (steady):    {end_to_end:>12.0} rows/s (after a {:.1} s consumer-group join)",
        join.as_secs_f64()
    );
}

/// Keys drawn from a space large enough that a benchmark run rarely repeats
/// one, so newer-wins writes nearly every row.
const BENCH_KEYSPACE: &str = "10000000";

/// Requests per second `redis-benchmark` reports for `command` (its `--csv` output).
fn redis_benchmark(
    redis: &RedisServer,
    (requests, clients, pipeline): (usize, usize, usize),
    command: &[String],
) -> f64 {
    let output = std::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &redis.port().to_string()])
        .args(["-n", &requests.to_string(), "-P", &pipeline.to_string()])
        .args(["-r", BENCH_KEYSPACE, "-c", &clients.to_string(), "--csv"])
        .args(command)
        .output()
        .expect("redis-benchmark (Debian package redis-tools) runs");
    let csv = String::from_utf8_lossy(&output.stdout);
    csv.lines()
        .filter_map(|line| line.split("\",\"").nth(1))
        .find_map(|rps| rps.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no rate in redis-benchmark's output: {csv}"))
}

/// An entity key of the size of the example's (a serialized Int64 key and the project).
fn bench_key() -> String {
    "fvhost-bench-driver_ranking:__rand_int__".to_string()
}

/// fvhost's write script, 256 random keys per call, each newer than anything stored.
fn redis_benchmark_script(redis: &RedisServer, sha: &str, features: usize) -> f64 {
    const KEYS: usize = 256;
    let mut command = vec!["EVALSHA".to_string(), sha.to_string(), KEYS.to_string()];
    command.extend((0..KEYS).map(|_| bench_key()));
    command.extend([
        "_ts:view".into(),
        "0".into(),
        "1".into(),
        features.to_string(),
    ]);
    command.extend((0..features).map(|f| format!("fea{f}")));
    for _ in 0..KEYS {
        command.extend([
            "1767225600".into(),
            "__rand_int__".into(),
            "ts-bytes".into(),
        ]);
        command.extend((0..features).map(|_| "value-of-9".to_string()));
    }
    KEYS as f64 * redis_benchmark(redis, (2_000, 4, 1), &command)
}

/// A blind `HSET` of one row (timestamp and feature fields), pipelined.
fn redis_benchmark_hset(redis: &RedisServer, features: usize) -> f64 {
    let mut command = vec![
        "HSET".to_string(),
        bench_key(),
        "_ts:view".into(),
        "ts-bytes".into(),
    ];
    for f in 0..features {
        command.extend([format!("fea{f}"), "value-of-9".to_string()]);
    }
    redis_benchmark(redis, (1_000_000, 50, 64), &command)
}

/// The example repo with its stream view replaced by one that aggregates
/// the source's rates (no transform): count and mean of conv_rate and max of
/// acc_rate over 1 h in 5-minute hops.
fn windowed_repo(repo: &repo::FeatureRepo) -> repo::FeatureRepo {
    use fvhost::repo::aggregation::{AggregateFunction, Aggregation};
    use fvhost::repo::{Feature, Windowing};
    use fvhost::types::{FeatureType, ScalarType};
    let mut repo = repo.clone();
    let hour = Duration::from_secs(3600);
    let aggregation = |column: &str, function: &str, output: ScalarType| Aggregation {
        column: column.into(),
        function: AggregateFunction::parse(function).unwrap(),
        function_name: function.into(),
        time_window: hour,
        slide_interval: hour,
        name: Aggregation::default_name(function, column, hour),
        output_type: output,
        max_distinct: fvhost::repo::aggregation::DEFAULT_MAX_DISTINCT,
    };
    let windowing = Windowing {
        aggregations: vec![
            aggregation("conv_rate", "count", ScalarType::Int64),
            aggregation("conv_rate", "mean", ScalarType::Float64),
            aggregation("acc_rate", "max", ScalarType::Float64),
        ],
        hop: Duration::from_secs(300),
        columns: ["conv_rate", "acc_rate"]
            .map(|name| Feature {
                name: name.into(),
                dtype: FeatureType::Scalar(ScalarType::Float64),
            })
            .to_vec(),
    };
    let view = repo
        .views
        .iter_mut()
        .find(|v| v.name == "driver_hourly_stats_stream")
        .unwrap();
    view.name = "driver_activity".into();
    view.transform = None;
    view.features = windowing.features();
    view.windowing = Some(windowing);
    repo
}
