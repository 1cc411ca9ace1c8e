#!/usr/bin/env python3
"""fvhost materialize against Feast 0.67 on the same Parquet and the same Redis.

One run measures, on the dataset of ../shared/peer/feast/gen_data.py (default
1M rows: 100k drivers x 10 events over 7 days):
  - `feast materialize START END --views driver_hourly_stats` (Feast's CLI),
  - `store.materialize(...)` in process (Feast's Python API),
  - `fvhost materialize -r REPO START END --views driver_hourly_stats`,
each into a freshly flushed redis-server, and checks that fvhost left exactly
the bytes Feast left (every key, every field). Prints progress on stderr and
one JSON line on stdout, including fvhost's peak memory.

Needs a virtualenv with feast[redis]==0.67.0 (made under WORK if missing),
redis-server, and a release build of fvhost (built if missing).
  python3 benches/feast/materialize_vs_feast.py [--drivers 100000 --events 10]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    log("$", " ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drivers", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=10)
    ap.add_argument("--work", default=os.environ.get("WORK", "/tmp/fvhost-vs-feast"))
    ap.add_argument("--peer", default=str(ROOT.parent / "shared" / "peer" / "feast"))
    ap.add_argument("--fvhost", default=None, help="fvhost binary (default: build target/release/fvhost)")
    args = ap.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    peer = Path(args.peer)
    venv = work / "venv"
    if not (venv / "bin" / "feast").exists():
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(venv / "bin" / "pip"), "install", "-q", "feast[redis]==0.67.0"])
    py, feast = str(venv / "bin" / "python"), str(venv / "bin" / "feast")

    fvhost = args.fvhost
    if fvhost is None:
        run(["cargo", "build", "--release", "--quiet", "-p", "fvhost"], cwd=ROOT)
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        fvhost = str(target / "release" / "fvhost")

    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        result = compare(args, work, peer, py, feast, fvhost, port)
    finally:
        redis.terminate()
        redis.wait()
    print(json.dumps(result))


def compare(args, work, peer, py, feast, fvhost, port):
    feast_repo, fv_repo = work / "feast_repo", work / "fvhost_repo"
    for repo in (feast_repo, fv_repo):
        (repo / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(peer / "repo" / "definitions.py", feast_repo)
    store_yaml = (peer / "repo" / "feature_store.yaml").read_text().replace("127.0.0.1:6390", f"127.0.0.1:{port}")
    (feast_repo / "feature_store.yaml").write_text(store_yaml)
    (fv_repo / "feature_store.yaml").write_text(store_yaml)
    shutil.copy(HERE / "driver_ranking.yaml", fv_repo)

    data = feast_repo / "data" / "driver_stats.parquet"
    run([py, str(peer / "gen_data.py"), "--n-drivers", str(args.drivers), "--events", str(args.events), "--out", str(data)], stdout=subprocess.DEVNULL)
    shutil.copy(data, fv_repo / "data" / "driver_stats.parquet")
    meta = json.loads(Path(str(data) + ".meta.json").read_text())
    start, end = meta["window_start"], meta["window_end"]
    rows = args.drivers * args.events
    env = dict(os.environ, FEAST_USAGE="False")
    run([feast, "apply"], cwd=feast_repo, env=env, stdout=subprocess.DEVNULL)

    def flush():
        subprocess.run(["redis-cli", "-p", str(port), "FLUSHALL"], check=True, capture_output=True)

    flush()
    t = time.perf_counter()
    run([feast, "materialize", start, end, "--views", "driver_hourly_stats"], cwd=feast_repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    feast_cli = time.perf_counter() - t
    log(f"feast materialize (CLI): {feast_cli:.2f} s")

    flush()
    inproc = subprocess.run([py, "-c", INPROC, str(feast_repo), start, end], env=env, check=True, capture_output=True, text=True)
    feast_inproc = float(inproc.stdout.strip().splitlines()[-1])
    log(f"feast store.materialize (in process): {feast_inproc:.2f} s")
    feast_dump = dump(py, port)

    flush()
    fv_wall, peak_kib, output = measured_run([fvhost, "materialize", "-r", str(fv_repo), start, end, "--views", "driver_hourly_stats", "--json"], dict(os.environ, FVHOST_LOG="warn"))
    summary = json.loads(output.strip().splitlines()[-1])
    log(f"fvhost materialize: {fv_wall:.2f} s, peak RSS {peak_kib / 1024:.0f} MiB")
    fv_dump = dump(py, port)

    same = feast_dump == fv_dump
    differing = sum(1 for k in feast_dump if fv_dump.get(k) != feast_dump[k]) + len(set(fv_dump) - set(feast_dump))
    log(f"identical Redis contents: {same} ({len(feast_dump)} keys from Feast, {len(fv_dump)} from fvhost, {differing} differ)")
    return {
        "bench": "materialize_vs_feast",
        "rows": rows,
        "drivers": args.drivers,
        "window": [start, end],
        "feast_cli_s": round(feast_cli, 3),
        "feast_inprocess_s": round(feast_inproc, 3),
        "fvhost_s": round(fv_wall, 3),
        "fvhost_rows_per_s": round(rows / fv_wall),
        "fvhost_peak_rss_mib": round(peak_kib / 1024, 1),
        "speedup_vs_feast_inprocess": round(feast_inproc / fv_wall, 2),
        "speedup_vs_feast_cli": round(feast_cli / fv_wall, 2),
        "fvhost_summary": summary,
        "identical_redis_contents": same,
        "keys_differing": differing,
    }


def measured_run(cmd, env):
    """Runs `cmd`; returns wall seconds, its own peak RSS (KiB) and its stdout."""
    import tempfile
    log("$", " ".join(str(c) for c in cmd))
    with tempfile.TemporaryFile() as out:
        t = time.perf_counter()
        child = subprocess.Popen(cmd, env=env, stdout=out)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed with {child.returncode}")
        out.seek(0)
        return wall, usage.ru_maxrss, out.read().decode()


def dump(py, port):
    """Every hash in the Redis as {key hex: digest of its sorted fields and values},
    read with the virtualenv's redis-py."""
    out = subprocess.run([py, "-c", DUMP, str(port)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


DUMP = r"""
import hashlib, json, sys
import redis
r = redis.Redis(port=int(sys.argv[1]))
digests = {}
pipe_keys = list(r.scan_iter(count=10000))
for i in range(0, len(pipe_keys), 1000):
    chunk = pipe_keys[i:i + 1000]
    p = r.pipeline(transaction=False)
    for k in chunk:
        p.hgetall(k)
    for k, fields in zip(chunk, p.execute()):
        h = hashlib.sha256()
        for f in sorted(fields):
            h.update(len(f).to_bytes(4, "little") + f + len(fields[f]).to_bytes(4, "little") + fields[f])
        digests[k.hex()] = h.hexdigest()
print(json.dumps(digests))
"""


INPROC = r"""
import sys, time
from datetime import datetime
from feast import FeatureStore
repo, start, end = sys.argv[1:4]
store = FeatureStore(repo_path=repo)
t = time.perf_counter()
store.materialize(datetime.fromisoformat(start), datetime.fromisoformat(end), feature_views=["driver_hourly_stats"])
print(time.perf_counter() - t)
"""

if __name__ == "__main__":
    main()
