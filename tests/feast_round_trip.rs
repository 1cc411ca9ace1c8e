//! Feast 0.67 itself on the other side: for every value type and key kind
//! (`tests/feast/types_repo`: Int64, String, Int32 and compound keys, a view
//! without entities, every scalar and list type, nulls, empty lists):
//!
//! - fvhost and Feast materialize the same Parquet: the Redis bytes match;
//! - Feast's SDK reads what fvhost wrote exactly as what Feast wrote;
//! - fvhost reads what Feast wrote: `fvhost serve` and `feast serve` answer
//!   the same request with the same JSON.
//!
//! Feast comes from the virtualenv `scripts/setup.sh` makes.

mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

/// A temporary copy of `tests/feast/types_repo` with its data, applied with
/// `feast apply`; its feature_store.yaml points at `redis`.
struct TypesRepo {
    dir: tempfile::TempDir,
    requests: serde_json::Value,
}

impl TypesRepo {
    fn new(redis: &RedisServer) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            root().join("tests/feast/types_repo/definitions.py"),
            dir.path().join("definitions.py"),
        )
        .unwrap();
        let repo = Self {
            dir,
            requests: serde_json::Value::Null,
        };
        repo.point_at(redis);
        python(&[
            root().join("tests/feast/make_data.py").as_os_str(),
            repo.path().as_os_str(),
        ]);
        feast_apply(repo.path());
        let requests = std::fs::read_to_string(repo.path().join("requests.json")).unwrap();
        Self {
            requests: serde_json::from_str(&requests).unwrap(),
            ..repo
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites feature_store.yaml so Feast reads and writes `redis`.
    fn point_at(&self, redis: &RedisServer) {
        self.write_store("redis", &format!("127.0.0.1:{}", redis.port()));
    }

    /// Rewrites feature_store.yaml so Feast and fvhost use `cluster`.
    fn point_at_cluster(&self, cluster: &RedisCluster) {
        self.write_store("redis_cluster", &cluster.connection_string());
    }

    fn write_store(&self, redis_type: &str, connection_string: &str) {
        std::fs::write(
            self.path().join("feature_store.yaml"),
            format!(
                "project: feast_types\nregistry: data/registry.db\nprovider: local\nonline_store:\n  type: redis\n  redis_type: {redis_type}\n  connection_string: \"{connection_string}\"\nentity_key_serialization_version: 3\n"
            ),
        )
        .unwrap();
    }

    fn range(&self) -> (String, String) {
        let text = |k: &str| self.requests[k].as_str().unwrap().to_string();
        (text("start"), text("end"))
    }
}

/// Runs the Feast virtualenv's Python; returns its stdout.
fn python(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(feast_python())
        .args(args)
        .env("FEAST_USAGE", "False")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Feast's SDK answers for every request of the repo, read from wherever
/// its feature_store.yaml points.
fn sdk_answers(repo: &TypesRepo) -> serde_json::Value {
    let script = root().join("tests/feast/sdk_read.py");
    let out = python(&[script.as_os_str(), repo.path().as_os_str()]);
    serde_json::from_str(&out).unwrap()
}

/// A server child process, killed when dropped with its process group:
/// `feast serve` runs its answering worker as a child of its own, which
/// outlived the parent's kill and kept the port (and a core's share).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(group) = i32::try_from(self.0.id()) {
            // Started as a group leader (`process_group(0)`): the group's id is its pid.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `fvhost serve` on `repo`, on a free port; `redis` replaces the repo's store.
fn fvhost_serve(repo: &TypesRepo, redis: Option<&RedisServer>) -> (Server, u16) {
    let port = fvhost::local::free_port().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_fvhost"));
    command
        .args(["serve", "-r", repo.path().to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--feast-statuses"]);
    if let Some(redis) = redis {
        command.args(["--redis", &redis.url()]);
    }
    (Server(command.spawn().unwrap()), port)
}

fn wait_until_serving(port: u16, probe: &str) {
    wait_for("the server to answer", Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http_bytes(port, "POST", "/get-online-features", probe.as_bytes()).0 == 200
    });
}

/// The requests both servers answer: each view with its entities (one
/// never written among them), and the feature service.
fn request_bodies(repo: &TypesRepo) -> Vec<(String, serde_json::Value)> {
    let features = |view: &str, names: &[&str]| -> Vec<String> {
        names.iter().map(|f| format!("{view}:{f}")).collect()
    };
    let scalars = ["i32", "i64", "f32", "f64", "text", "raw", "flag", "seen"];
    let lists: Vec<String> = scalars.iter().map(|s| format!("{s}_list")).collect();
    let lists: Vec<&str> = lists.iter().map(String::as_str).collect();
    let entities = &repo.requests["entities"];
    vec![
        (
            "scalars".into(),
            serde_json::json!({"features": features("scalars", &scalars), "entities": entities["scalars"]}),
        ),
        (
            "lists".into(),
            serde_json::json!({"features": features("lists", &lists), "entities": entities["lists"]}),
        ),
        (
            "pairs, full names".into(),
            serde_json::json!({"features": features("pairs", &["trips", "rating"]), "entities": entities["pairs"], "full_feature_names": true}),
        ),
        (
            "zones".into(),
            serde_json::json!({"features": features("zones", &["demand"]), "entities": entities["zones"]}),
        ),
        (
            "totals beside scalars".into(),
            serde_json::json!({"features": ["scalars:text", "totals:open_orders"], "entities": entities["scalars"]}),
        ),
        (
            "entity lists beside the join keys: another entity's echoed, an unknown one dropped"
                .into(),
            serde_json::json!({"features": ["zones:demand"], "entities": {"zone_id": [1, 4], "request_id": ["a", "b"], "driver_id": [1001, 5]}}),
        ),
        (
            "feature service".into(),
            serde_json::json!({"feature_service": "driver_overview", "entities": entities["scalars"]}),
        ),
    ]
}

/// A feature server's answer as column name -> column: Feast 0.67 orders
/// its columns by Python set iteration (it changes with the hash seed),
/// fvhost by the request.
fn by_name(answer: &str) -> std::collections::BTreeMap<String, serde_json::Value> {
    let answer: serde_json::Value = serde_json::from_str(answer).unwrap();
    let names = answer["metadata"]["feature_names"].as_array().unwrap();
    let mut columns = answer["results"].as_array().unwrap().clone();
    for column in &mut columns {
        // Feast's server shows the NaT it stores for a null time as the
        // smallest int64; fvhost answers null (a documented difference).
        for value in column["values"].as_array_mut().unwrap() {
            if value.as_i64() == Some(i64::MIN) {
                *value = serde_json::Value::Null;
            }
        }
    }
    names
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .zip(columns)
        .collect()
}

#[test]
fn feast_and_fvhost_write_read_and_serve_the_same_features() {
    let by_feast = RedisServer::start().unwrap();
    let by_fvhost = RedisServer::start().unwrap();
    let repo = TypesRepo::new(&by_feast);
    let (start, end) = repo.range();
    let path = repo.path().to_str().unwrap();

    // Both write the same history.
    feast(repo.path(), &["materialize", &start, &end]);
    run_fvhost(
        &["materialize", "-r", path, &start, &end],
        Some(&by_fvhost),
        0,
    );
    let feast_bytes = redis_dump(&by_feast);
    assert_eq!(
        feast_bytes.len(),
        5 + 4 + 3 + 3 + 1,
        "every entity of every view"
    );
    assert_eq!(
        redis_dump(&by_fvhost),
        feast_bytes,
        "fvhost writes Feast's bytes"
    );

    // Feast's SDK reads fvhost's store as it reads its own.
    let from_feast = sdk_answers(&repo);
    repo.point_at(&by_fvhost);
    let from_fvhost = sdk_answers(&repo);
    assert_eq!(from_fvhost, from_feast, "Feast's SDK over fvhost's store");
    let written = from_feast["scalars"]["i64"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v.is_i64())
        .count();
    assert_eq!(
        written, 4,
        "real values, not nulls everywhere: {from_feast}"
    );

    // Both servers over Feast's store answer alike.
    repo.point_at(&by_feast);
    let feast_port = fvhost::local::free_port().unwrap();
    let _feast = Server(
        Command::new(feast_python().with_file_name("feast"))
            .args([
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                &feast_port.to_string(),
                "--no-access-log",
            ])
            .current_dir(repo.path())
            .env("FEAST_USAGE", "False")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let (_fvhost, fvhost_port) = fvhost_serve(&repo, Some(&by_feast));
    let probe = r#"{"features": ["zones:demand"], "entities": {"zone_id": [1]}}"#;
    wait_until_serving(fvhost_port, probe);
    wait_until_serving(feast_port, probe);
    let mut differences = Vec::new();
    for (name, body) in request_bodies(&repo) {
        let body = body.to_string();
        let ask = |port| http_bytes(port, "POST", "/get-online-features", body.as_bytes());
        let ((feast_status, feast_answer), (fvhost_status, fvhost_answer)) =
            (ask(feast_port), ask(fvhost_port));
        assert_eq!(
            (feast_status, fvhost_status),
            (200, 200),
            "{name}: {feast_answer} / {fvhost_answer}"
        );
        let feast_answer = by_name(&feast_answer);
        let fvhost_answer = by_name(&fvhost_answer);
        if feast_answer != fvhost_answer {
            differences.push(format!(
                "{name}:\n  feast:  {feast_answer:?}\n  fvhost: {fvhost_answer:?}"
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn on_a_redis_cluster_fvhost_writes_feasts_bytes_and_feasts_sdk_reads_them() {
    let by_feast = RedisServer::start().unwrap();
    let cluster = RedisCluster::start(3, 0).unwrap();
    let repo = TypesRepo::new(&by_feast);
    let (start, end) = repo.range();
    let path = repo.path().to_str().unwrap();
    feast(repo.path(), &["materialize", &start, &end]);
    let feast_bytes = redis_dump(&by_feast);
    let from_feast = sdk_answers(&repo);
    // fvhost serve on Feast's single server, to compare reads with.
    let (_on_single, single_port) = fvhost_serve(&repo, None);

    repo.point_at_cluster(&cluster);
    run_fvhost(&["materialize", "-r", path, &start, &end], None, 0);
    let masters = cluster.master_ports();
    let per_master: Vec<usize> = masters
        .iter()
        .map(|port| redis_dump_nodes(&[*port]).len())
        .collect();
    assert!(
        per_master.iter().filter(|keys| **keys > 0).count() >= 2,
        "the keys spread over the masters: {per_master:?}"
    );
    assert_eq!(
        cluster_dump(&cluster),
        feast_bytes,
        "fvhost writes Feast's bytes to the cluster"
    );
    assert_eq!(
        sdk_answers(&repo),
        from_feast,
        "Feast's SDK (its cluster client) reads fvhost's cluster as Feast's own store"
    );

    // fvhost's reads on the cluster answer as on a single server.
    let (_on_cluster, cluster_port) = fvhost_serve(&repo, None);
    let probe = r#"{"features": ["zones:demand"], "entities": {"zone_id": [1]}}"#;
    wait_until_serving(cluster_port, probe);
    wait_until_serving(single_port, probe);
    for (name, body) in request_bodies(&repo) {
        let body = body.to_string();
        let ask = |port| http_bytes(port, "POST", "/get-online-features", body.as_bytes());
        let (on_cluster, on_single) = (ask(cluster_port), ask(single_port));
        assert_eq!(on_cluster.0, 200, "{name}: {}", on_cluster.1);
        assert_eq!(by_name(&on_cluster.1), by_name(&on_single.1), "{name}");
    }
}
