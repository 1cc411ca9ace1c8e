//! The `fvhost` commands as a user runs them: `apply` on valid and invalid
//! repos, and `quickstart` from a checkout.

mod support;

use std::process::{Command, Output};

use support::*;

fn fvhost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fvhost"))
        .args(args)
        .env(
            "FVHOST_CACHE_DIR",
            root().join("target/fvhost-test-module-cache"),
        )
        .output()
        .expect("running fvhost")
}

fn apply(repo: &TestRepo) -> (Option<i32>, String, String) {
    let out = fvhost(&["apply", "-r", repo.path().to_str().unwrap()]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Applies `definitions` and expects exit code 2 with every `expected` text in the message.
fn assert_invalid(definitions: &str, expected: &[&str]) {
    let repo = TestRepo::new("invalid", definitions);
    let (code, _, stderr) = apply(&repo);
    assert_eq!(code, Some(2), "an invalid repo exits 2; stderr:\n{stderr}");
    for text in expected {
        assert!(
            stderr.contains(text),
            "the message should contain {text:?}; it was:\n{stderr}"
        );
    }
}

#[test]
fn apply_accepts_the_example_repo_and_probes_its_transform() {
    driver_stats_module();
    let repo = root().join("examples/driver_ranking");
    let out = fvhost(&["apply", "-r", repo.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("project driver_ranking is valid"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "driver_hourly_stats_stream [conv_percentage:Float32, acc_percentage:Float32]"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("probe ok (4 rows out)"), "{stdout}");
    assert!(
        stdout.contains(
            "driver_activity_1h [count_conv_rate_3600s:Int64, conv_rate_mean_1h:Float64]"
        ),
        "the example's aggregating view, its features named as Feast names them: {stdout}"
    );
    assert!(stdout.contains("2 aggregations in 300 s hops"), "{stdout}");
}

#[test]
fn apply_names_file_object_and_field_of_each_mistake() {
    let good = Definitions::new()
        .driver_stats("stats", "drivers", "Float32")
        .yaml();
    // Names reach logs, metrics and terminals: a newline or an escape
    // sequence in one would forge a log line or drive a terminal.
    let forged = good.replace(
        "name: stats\n",
        "name: \"stats\\e[31m\\nFAKE: operator line\"\n",
    );
    assert_ne!(forged, good);
    assert_invalid(
        &forged,
        &[
            "stream feature view `stats\\u{1b}[31m\\nFAKE: operator line`: field `name`",
            "control characters are refused",
        ],
    );
    assert_invalid(
        &good.replace("    ttl: 1d\n", "    tll: 1d\n"),
        &[
            "definitions.yaml: stream feature view `stats`",
            "unknown field `tll`",
        ],
    );
    assert_invalid(
        &format!(
            "{good}feature_services:\n  - name: ranking\n    features:\n      - stats\n      - {{view: gone, features: [x]}}\n      - {{view: stats, features: [speed]}}\n"
        ),
        &[
            "definitions.yaml: feature service `ranking`: field `features[1]`: no feature view `gone`",
            "definitions.yaml: feature service `ranking`: field `features[2]`: view `stats` has no feature `speed`",
        ],
    );
    assert_invalid(
        &good.replace("    ttl: 1d\n", "    ttl: 1d\n    offline: true\n"),
        &[
            "definitions.yaml: stream feature view `stats`: field `offline`",
            "batch source `driver_stats_source` is the single file",
            "the view's transform serves rows of its own columns",
        ],
    );
    assert_invalid(
        &good.replace("value_type: INT64", "value_type: FLOAT"),
        &[
            "definitions.yaml: entity `driver`: field `value_type`",
            "cannot be a join key type",
        ],
    );
    assert_invalid(
        &good.replace("entities: [driver]", "entities: [rider]"),
        &[
            "stream feature view `stats`: field `entities`",
            "`rider` is not an entity",
        ],
    );
    assert_invalid(
        &good.replace("dtype: Float32", "dtype: Float128"),
        &[
            "stream feature view `stats`: field `schema[0].dtype`",
            "unknown type `Float128`",
        ],
    );
    assert_invalid(
        &good.replace("driver_stats.wasm", "missing.wasm"),
        &["field `transform.module`", "missing.wasm does not exist"],
    );
    assert_invalid(
        &good.replace(
            "timestamp_field: event_timestamp\n    batch_source",
            "timestamp_field: event_time\n    batch_source",
        ),
        &[
            "kafka source `drivers_stream`: field `timestamp_field`",
            "`event_time` is not a column",
        ],
    );
    assert_invalid(
        &good.replace(
            "watermark_delay_threshold: 5m",
            "watermark_delay_threshold: 5 minutes",
        ),
        &["field `watermark_delay_threshold`", "`5 minutes`"],
    );
    assert_invalid(
        &good.replace(
            "schema_json: \"driver_id integer",
            "schema_json: \"driver_id decimal(10,2)",
        ),
        &[
            "field `message_format.schema_json`",
            "unsupported type `decimal(10,2)`",
        ],
    );
    assert_invalid(
        &good.replace("source: drivers_stream", "source: driver_stats_source"),
        &["field `source`", "is a file source"],
    );
}

#[test]
fn apply_checks_each_aggregation_naming_file_view_and_field() {
    let good = Definitions::new()
        .driver_stats("stats", "drivers", "Float32")
        .yaml();
    let with = |aggregations: &str| {
        good.replace(
            "    ttl: 1d\n",
            &format!("    ttl: 1d\n    tiling_hop_size: 5m\n    aggregations:\n{aggregations}"),
        )
    };
    let entry = |column: &str, function: &str, window: &str| {
        format!(
            "      - column: {column}\n        function: {function}\n        time_window: {window}\n"
        )
    };
    let file_and_view = "definitions.yaml: stream feature view `stats`";
    assert_invalid(
        &with(&entry("conv_percentage", "median", "1h")),
        &[
            file_and_view,
            "field `aggregations[0].function`",
            "unknown function `median`",
        ],
    );
    assert_invalid(
        &with(&entry("trips", "count", "1h")),
        &[
            file_and_view,
            "field `aggregations[0].column`",
            "`trips` is not in the view's schema",
        ],
    );
    assert_invalid(
        &with(&(entry("conv_percentage", "count", "1h") + &entry("acc_percentage", "mean", "62m"))),
        &[
            file_and_view,
            "field `aggregations[1].time_window`",
            "not a multiple of the hop",
        ],
    );
    assert_invalid(
        &with(&(entry("conv_percentage", "sum", "1h") + &entry("conv_percentage", "sum", "1h"))),
        &[
            "field `aggregations[1].name`",
            "`sum_conv_percentage_3600s` is already",
        ],
    );
    let text_column = good.replace(
        "name: acc_percentage\n        dtype: Float32",
        "name: acc_percentage\n        dtype: String",
    );
    assert_invalid(
        &text_column.replace(
            "    ttl: 1d\n",
            &format!(
                "    ttl: 1d\n    aggregations:\n{}",
                entry("acc_percentage", "mean", "1h")
            ),
        ),
        &[
            "field `aggregations[0].function`",
            "`mean` needs a numeric column; `acc_percentage` is String",
        ],
    );
    assert_invalid(
        &with(&entry("conv_percentage", "count", "1h"))
            .replace("tiling_hop_size: 5m", "tiling_hop_size: 10ms"),
        &["field `tiling_hop_size`", "must be between 1s"],
    );
    assert_invalid(
        &with(&entry("conv_percentage", "count", "30d")),
        &["field `aggregations[0].time_window`", "spans 8640 hops"],
    );
    assert_invalid(
        &with(
            &entry("conv_percentage", "count", "1h")
                .replace("time_window: 1h", "time_window: 1h\n        name: \"a:b\""),
        ),
        &["field `aggregations[0].name`", "cannot be a feature name"],
    );
    assert_invalid(
        &with(&entry("conv_percentage", "count", "1h").replace(
            "time_window: 1h",
            "time_window: 1h\n        slide_interval: 2h",
        )),
        &[
            "field `aggregations[0].slide_interval`",
            "longer than the time_window",
        ],
    );
    let with_max_distinct = |function: &str, window: &str, max: &str| {
        with(&entry("conv_percentage", function, window).replace(
            &format!("time_window: {window}"),
            &format!("time_window: {window}\n        max_distinct: {max}"),
        ))
    };
    assert_invalid(
        &with_max_distinct("count", "1h", "10"),
        &[
            "field `aggregations[0].max_distinct`",
            "only count_distinct keeps distinct values",
        ],
    );
    assert_invalid(
        &with_max_distinct("count_distinct", "1h", "0"),
        &["field `aggregations[0].max_distinct`", "at least 1"],
    );
    assert_invalid(
        &with_max_distinct("count_distinct", "2d", "5000"),
        &[
            "field `aggregations[0].max_distinct`",
            "5000 distinct values in each of the view's 576 tiles make 2880000 per entity",
        ],
    );
    // A correct declaration applies; its features are the aggregates.
    let repo = TestRepo::new(
        "windowed",
        &with(&(entry("conv_percentage", "count", "1h") + &entry("acc_percentage", "avg", "30m"))),
    );
    let (code, stdout, stderr) = apply(&repo);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(
            "stats [count_conv_percentage_3600s:Int64, avg_acc_percentage_1800s:Float64]"
        ),
        "{stdout}"
    );
}

#[test]
fn apply_reads_a_module_bounded_and_only_from_a_regular_file() {
    let good = Definitions::new()
        .driver_stats("stats", "drivers", "Float32")
        .yaml();
    let module = driver_stats_module().display().to_string();
    // /proc/self/pagemap says it is 0 bytes long and reads on for gigabytes.
    let started = std::time::Instant::now();
    let repo = TestRepo::new("pagemap", &good.replace(&module, "/proc/self/pagemap"));
    let (code, _, stderr) = apply(&repo);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "cannot load module /proc/self/pagemap: module size limit of 67108864 bytes exceeded"
        ),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let repo = TestRepo::new("devzero", &good.replace(&module, "/dev/zero"));
    let (code, _, stderr) = apply(&repo);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("/dev/zero is not a regular file"),
        "{stderr}"
    );
}

#[test]
fn apply_names_a_definitions_file_whose_name_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let repo = TestRepo::new(
        "not_utf8",
        &Definitions::new()
            .driver_stats("stats", "drivers", "Float32")
            .yaml(),
    );
    let name = std::ffi::OsStr::from_bytes(b"more-\xff.yaml");
    std::fs::write(repo.path().join(name), "entities: []\n").unwrap();
    let (code, _, stderr) = apply(&repo);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("more-\u{fffd}.yaml: the file name is not UTF-8"),
        "{stderr}"
    );
}

#[test]
fn apply_never_reads_a_yaml_file_that_leads_outside_the_repo() {
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("operator.token");
    std::fs::write(&secret, "tok-operator-5f1e0c2a9b\n").unwrap();
    let repo = TestRepo::new(
        "linked",
        &Definitions::new()
            .driver_stats("stats", "drivers", "Float32")
            .yaml(),
    );
    std::os::unix::fs::symlink(&secret, repo.path().join("zz.yaml")).unwrap();
    let (code, _, stderr) = apply(&repo);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("zz.yaml leads outside the repo folder"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("tok-operator"),
        "the file's content is never shown: {stderr}"
    );
}

#[test]
fn apply_runs_the_module_on_a_probe_batch_and_rejects_a_schema_mismatch() {
    let mistyped = Definitions::new()
        .driver_stats("stats", "drivers", "Int64")
        .yaml();
    assert_invalid(
        &mistyped,
        &[
            "stream feature view `stats`: field `transform`",
            "feature column `conv_percentage` is Float32, but the view declares Int64",
        ],
    );
    let missing_feature = Definitions::new()
        .kafka_source("drivers", DRIVER_EVENT_SCHEMA)
        .stream_view(
            "stats",
            "drivers",
            &[("speed", "Float32")],
            &driver_stats_module(),
            "",
        )
        .yaml();
    assert_invalid(&missing_feature, &["feature column `speed` is missing"]);
    let bad_config = Definitions::new()
        .driver_stats("stats", "drivers", "Float32")
        .yaml()
        .replace("factor: 100", "factor: lots");
    assert_invalid(
        &bad_config,
        &["transform init failed", "config key `factor`"],
    );
}

#[test]
fn apply_rejects_a_module_that_is_not_a_transform() {
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("notes.wasm");
    std::fs::write(&not_wasm, "this is not WebAssembly").unwrap();
    let definitions = Definitions::new()
        .kafka_source("drivers", DRIVER_EVENT_SCHEMA)
        .stream_view("stats", "drivers", &[("x", "Float32")], &not_wasm, "")
        .yaml();
    assert_invalid(
        &definitions,
        &[
            "stream feature view `stats`: field `transform`",
            "not a WebAssembly file",
        ],
    );
}

#[test]
fn apply_rejects_an_unsupported_online_store() {
    let repo = TestRepo::new(
        "store",
        &Definitions::new()
            .driver_stats("stats", "drivers", "Float32")
            .yaml(),
    );
    let config = std::fs::read_to_string(repo.path().join("feature_store.yaml")).unwrap();
    std::fs::write(
        repo.path().join("feature_store.yaml"),
        config.replace("type: redis", "type: sqlite"),
    )
    .unwrap();
    let (code, _, stderr) = apply(&repo);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("feature_store.yaml: field `online_store.type`: `sqlite` is not supported"),
        "{stderr}"
    );
}

#[test]
fn quickstart_runs_end_to_end_from_the_checkout() {
    driver_stats_module();
    let out = fvhost(&[
        "quickstart",
        "--no-build",
        "--examples",
        root().join("examples").to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("every driver shows its newest event and its last hour's count and mean"),
        "{stdout}"
    );
    assert!(stdout.contains("3 malformed, 1 too late"), "{stdout}");
    assert!(
        stdout.contains("stopped the broker and redis-server"),
        "{stdout}"
    );
}
