#!/usr/bin/env python3
"""The example transform in Python and in Rust under fvhost, against Feast's
own Python path, on the same events in one run.

The events (default 200k: 20k drivers x 10 events, conv_rate and acc_rate
as Float64, as the stream's JSON carries them) are written as Parquet, then:
  - `fvhost materialize` of `driver_hourly_stats_stream` with the Rust
    module (examples/transforms/driver_stats),
  - the same with the Python module (examples/python/driver_stats),
  - Feast 0.67: the same transform as a pandas function over the DataFrame,
    then `store.write_to_online_store(...)`,
each into a freshly flushed redis-server; the three leave identical Redis
contents (checked). The modules are built with `fvhost build --precompile`,
so their optimized code is cached, as on a host that has run a while.
Prints progress on stderr and one JSON line on stdout.

Needs a virtualenv with feast[redis]==0.67.0 (made under WORK if missing),
redis-server, componentize-py (scripts/setup.sh) and a release build of
fvhost (built if missing).
  python3 benches/feast/python_transforms.py [--drivers 20000 --events 10]
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from materialize_vs_feast import dump, free_port, log, measured_run, run  # noqa: E402

FEAST_DEFINITIONS = '''
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
source = FileSource(name="driver_events", path="data/events.parquet",
                    timestamp_field="event_timestamp", created_timestamp_column="created")
driver_hourly_stats_stream = FeatureView(
    name="driver_hourly_stats_stream", entities=[driver], ttl=timedelta(days=1), online=True,
    source=source,
    schema=[Field(name="conv_percentage", dtype=Float32), Field(name="acc_percentage", dtype=Float32)],
)
'''

FVHOST_DEFINITIONS = """
entities:
  - name: driver
    join_keys: [driver_id]
    value_type: INT64
sources:
  - name: driver_events
    type: file
    path: data/events.parquet
    timestamp_field: event_timestamp
    created_timestamp_column: created
feature_views:
  - name: driver_hourly_stats_stream
    entities: [driver]
    ttl: 1d
    online: true
    source: driver_events
    schema:
      - {name: conv_percentage, dtype: Float32}
      - {name: acc_percentage, dtype: Float32}
    transform:
      module: MODULE
      config: {factor: 100}
"""

GENERATE = r"""
import sys
import numpy as np, pandas as pd
drivers, events, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(42)
n = drivers * events
start = pd.Timestamp("2026-01-01", tz="UTC")
times = start + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
pd.DataFrame({
    "driver_id": np.repeat(np.arange(1000, 1000 + drivers, dtype=np.int64), events),
    "event_timestamp": times.astype("datetime64[us, UTC]"),
    "created": times.astype("datetime64[us, UTC]"),
    "conv_rate": rng.random(n),
    "acc_rate": rng.random(n),
}).to_parquet(out, index=False)
"""

FEAST_PATH = r"""
import sys, time
import pandas as pd
from feast import FeatureStore
repo, data = sys.argv[1], sys.argv[2]
store = FeatureStore(repo_path=repo)
df = pd.read_parquet(data)
t = time.perf_counter()
# The example transform, as a Feast user writes it over a DataFrame.
df["conv_percentage"] = (df["conv_rate"] * 100.0).astype("float32")
df["acc_percentage"] = (df["acc_rate"] * 100.0).astype("float32")
df = df.drop(columns=["conv_rate", "acc_rate"])
udf = time.perf_counter() - t
t = time.perf_counter()
store.write_to_online_store("driver_hourly_stats_stream", df)
write = time.perf_counter() - t
print(udf, write)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drivers", type=int, default=20_000)
    ap.add_argument("--events", type=int, default=10)
    ap.add_argument("--work", default=os.environ.get("WORK", "/tmp/fvhost-vs-feast"))
    ap.add_argument("--fvhost", default=None, help="fvhost binary (default: build it)")
    args = ap.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    venv = work / "venv"
    if not (venv / "bin" / "feast").exists():
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(venv / "bin" / "pip"), "install", "-q", "feast[redis]==0.67.0"])
    py, feast = str(venv / "bin" / "python"), str(venv / "bin" / "feast")
    fvhost = args.fvhost
    if fvhost is None:
        run(["cargo", "build", "--release", "--quiet", "-p", "fvhost"], cwd=ROOT)
        fvhost = str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "fvhost")
    modules = {}
    for language, folder in [("rust", "examples/transforms/driver_stats"), ("python", "examples/python/driver_stats")]:
        out = subprocess.run([fvhost, "build", "--precompile", str(ROOT / folder)], check=True, capture_output=True, text=True)
        modules[language] = out.stdout.splitlines()[0].split(" transform ", 1)[1].rsplit(" in ", 1)[0]
        log(f"{language} module: {modules[language]}")

    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        result = compare(args, work, py, feast, fvhost, modules, port)
    finally:
        redis.terminate()
        redis.wait()
    print(json.dumps(result))


def compare(args, work, py, feast, fvhost, modules, port):
    rows = args.drivers * args.events
    store_yaml = f"project: python_transforms\nregistry: data/registry.db\nprovider: local\noffline_store:\n  type: file\nonline_store:\n  type: redis\n  connection_string: \"127.0.0.1:{port}\"\nentity_key_serialization_version: 3\n"
    feast_repo = work / "python_transforms_feast"
    (feast_repo / "data").mkdir(parents=True, exist_ok=True)
    (feast_repo / "feature_store.yaml").write_text(store_yaml)
    (feast_repo / "definitions.py").write_text(FEAST_DEFINITIONS)
    data = feast_repo / "data" / "events.parquet"
    run([py, "-c", GENERATE, str(args.drivers), str(args.events), str(data)])
    env = dict(os.environ, FEAST_USAGE="False")
    run([feast, "apply"], cwd=feast_repo, env=env, stdout=subprocess.DEVNULL)

    def flush():
        subprocess.run(["redis-cli", "-p", str(port), "FLUSHALL"], check=True, capture_output=True)

    result = {"bench": "python_transforms", "rows": rows, "drivers": args.drivers}
    dumps = {}
    for language, module in modules.items():
        repo = work / f"python_transforms_{language}"
        (repo / "data").mkdir(parents=True, exist_ok=True)
        (repo / "feature_store.yaml").write_text(store_yaml)
        (repo / "definitions.yaml").write_text(FVHOST_DEFINITIONS.replace("MODULE", module))
        (repo / "data" / "events.parquet").write_bytes(data.read_bytes())
        command = [fvhost, "materialize", "-r", str(repo), "2025-12-31T00:00:00Z", "2026-01-02T00:00:00Z", "--json"]
        flush()
        wall, peak_kib, output = measured_run(command, dict(os.environ, FVHOST_LOG="warn"))
        summary = json.loads(output.strip().splitlines()[-1])
        log(f"fvhost + {language}: {wall:.2f} s ({rows / wall:,.0f} rows/s); read+transform {summary['read_seconds']:.2f} s, write {summary['write_seconds']:.2f} s")
        result[f"fvhost_{language}_s"] = round(wall, 3)
        result[f"fvhost_{language}_rows_per_s"] = round(rows / wall)
        result[f"fvhost_{language}_read_transform_s"] = round(summary["read_seconds"], 3)
        result[f"fvhost_{language}_write_s"] = round(summary["write_seconds"], 3)
        dumps[language] = dump(py, port)

    flush()
    out = subprocess.run([py, "-c", FEAST_PATH, str(feast_repo), str(data)], env=env, check=True, capture_output=True, text=True)
    udf, write = (float(x) for x in out.stdout.strip().splitlines()[-1].split())
    log(f"feast: pandas transform {udf:.3f} s, write_to_online_store {write:.2f} s ({rows / (udf + write):,.0f} rows/s)")
    result["feast_pandas_transform_s"] = round(udf, 3)
    result["feast_write_to_online_store_s"] = round(write, 3)
    result["feast_rows_per_s"] = round(rows / (udf + write))
    dumps["feast"] = dump(py, port)
    result["identical_redis_contents"] = dumps["rust"] == dumps["python"] == dumps["feast"]
    log(f"identical Redis contents (Rust, Python, Feast): {result['identical_redis_contents']}")
    return result


if __name__ == "__main__":
    main()
