#!/usr/bin/env python3
"""Online reads over HTTP: `fvhost serve` against `feast serve` and Feast's SDK, same Redis.

One run, on the dataset of ../shared/peer/feast/gen_data.py (default 100k
drivers x 1 event), materialized into a fresh redis-server by
`feast materialize` (so every reader reads the same bytes), measures for
1, 100 and 1000 entities per request:
  - `fvhost serve -r REPO --redis ...`  POST /get-online-features,
  - `feast serve` (Feast 0.67, 1 worker) POST /get-online-features,
  - `store.get_online_features(features=..., entity_rows=[...]).to_dict()`
    in process (Feast's Python SDK, in the virtualenv's Python),
with the same sequence of request bodies (random existing driver ids, three
features of driver_hourly_stats). Each server gets one keep-alive connection
(a lean raw-socket client, the same for both), warm-up requests first; the
two servers are asked in turns of ten bodies, so both see the same machine
noise and neither is timed while the other is still busy with its last
answer. Latency is client-side wall time
of request + full response read; the client's own floor (a keep-alive
GET /health to fvhost) is reported beside it.

Before timing, each size's first body (and one body holding a never-written
id) is sent to both servers and their JSON answers are compared column by
column, matched by feature name (Feast 0.67's column order follows Python set
iteration, so it changes with PYTHONHASHSEED; a different order is reported
apart), values, statuses and event timestamps alike, floats with a relative
tolerance. Every difference is reported by JSON path, never raised.

Prints progress on stderr and one JSON line on stdout: per size p50/p99 (ms)
for fvhost_serve, feast_serve and feast_sdk, fvhost's p50 over the best Feast
p50, and whether the goal (a tenth of the best Feast path or less) holds.

Needs redis-server, a virtualenv with feast[redis]==0.67.0 (default
~/.cache/fvhost/feast-venv) and a release build of fvhost; the script never
builds it (cargo build --release -p fvhost).
  python3 benches/feast/online_reads.py [--drivers 100000] [--fvhost PATH] [--venv DIR]
                                       [--fvhost-threads N] [--baseline PATH] [--read-cache-mb N]

`--read-cache-mb N` (default 64; 0 skips it) also starts `fvhost serve
--read-cache-mb N` beside them, asked in the same turns, after one untimed
read of every driver has filled its cache (the timed ids are drawn from
them): the figures of a warm cache, reported as fvhost_serve_read_cache,
with its hit and invalidation counters from /metrics. Its answers are
compared with Feast's like the others'.

`--baseline PATH` also starts `PATH serve` (another build of fvhost, say
the last commit's) beside the first, asked in the same turns on the same
Redis, and reports it as fvhost_baseline: a before/after of a change in
one run, under the same noise.
"""
import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

FEATURES = [
    "driver_hourly_stats:conv_rate",
    "driver_hourly_stats:acc_rate",
    "driver_hourly_stats:avg_daily_trips",
]
SIZES = (1, 100, 1000)
BLOCK = 10  # bodies each server is asked in a row before the other's turn
FLOAT_REL_TOL = 1e-6


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    log("$", " ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kw)


def default_fvhost():
    """The first existing release binary: $CARGO_TARGET_DIR, the CI cache, ./target."""
    candidates = []
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "release" / "fvhost")
    candidates.append(Path.home() / ".cache" / "fvhost-ci" / "target" / "release" / "fvhost")
    candidates.append(ROOT / "target" / "release" / "fvhost")
    return next((c for c in candidates if c.exists()), None), candidates


class Children:
    """Child processes started here, each in its own session, ended on exit."""

    def __init__(self):
        self.procs = []

    def start(self, name, cmd, **kw):
        log("$", " ".join(str(c) for c in cmd))
        proc = subprocess.Popen(cmd, start_new_session=True, **kw)
        self.procs.append((name, proc))
        return proc

    def stop_all(self):
        for name, proc in reversed(self.procs):
            if proc.poll() is not None:
                continue
            try:
                # the child leads its own process group (gunicorn's worker included)
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop on SIGTERM; killing")
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self.procs.clear()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drivers", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1, help="events per driver in the generated data")
    ap.add_argument("--requests", type=int, default=200, help="timed requests for 1 and 100 entities")
    ap.add_argument("--requests-1000", type=int, default=100, help="timed requests for 1000 entities")
    ap.add_argument("--warmup", type=int, default=20, help="untimed requests before each size")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fvhost-threads", type=int, default=None,
                    help="`fvhost serve --threads N` (default: serve's own, one per core)")
    ap.add_argument("--read-cache-mb", type=int, default=64,
                    help="also time `fvhost serve --read-cache-mb N`, its cache warmed by one read of every driver (0: skip)")
    ap.add_argument("--baseline", default=None,
                    help="another fvhost binary, served beside and timed in the same turns (before/after)")
    ap.add_argument("--work", default=os.environ.get("WORK", "/tmp/fvhost-online-reads"))
    ap.add_argument("--peer", default=str(ROOT.parent / "shared" / "peer" / "feast"))
    ap.add_argument("--venv", default=str(Path.home() / ".cache" / "fvhost" / "feast-venv"),
                    help="virtualenv with feast[redis]==0.67.0")
    ap.add_argument("--fvhost", default=None, help="fvhost release binary (default: $CARGO_TARGET_DIR, "
                    "~/.cache/fvhost-ci/target or ./target, release/fvhost)")
    args = ap.parse_args()

    if args.fvhost is None:
        found, candidates = default_fvhost()
        if found is None:
            log("no fvhost release binary at " + ", ".join(str(c) for c in candidates))
            log("build one with `cargo build --release -p fvhost` or pass --fvhost PATH")
            sys.exit(2)
        args.fvhost = str(found)
    venv = Path(args.venv)
    py, feast = venv / "bin" / "python", venv / "bin" / "feast"
    if not feast.exists():
        log(f"no Feast in {venv}: make one with `python3 -m venv {venv} && "
            f"{venv}/bin/pip install 'feast[redis]==0.67.0'` or pass --venv")
        sys.exit(2)

    t0 = time.perf_counter()
    children = Children()
    try:
        result = bench(args, str(py), str(feast), children)
    finally:
        children.stop_all()
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result))


def bench(args, py, feast, children):
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    feast_repo, fv_repo = work / "feast_repo", work / "fvhost_repo"
    for repo in (feast_repo, fv_repo):
        (repo / "data").mkdir(parents=True)
    peer = Path(args.peer)

    port = free_port()
    children.start("redis-server", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    wait_until("redis-server", lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                                      capture_output=True, text=True).stdout.strip() == "PONG")

    shutil.copy(peer / "repo" / "definitions.py", feast_repo)
    store_yaml = (peer / "repo" / "feature_store.yaml").read_text().replace("127.0.0.1:6390", f"127.0.0.1:{port}")
    (feast_repo / "feature_store.yaml").write_text(store_yaml)
    (fv_repo / "feature_store.yaml").write_text(store_yaml)
    shutil.copy(HERE / "driver_ranking.yaml", fv_repo)

    data = feast_repo / "data" / "driver_stats.parquet"
    run([py, str(peer / "gen_data.py"), "--n-drivers", str(args.drivers), "--events", str(args.events),
         "--out", str(data)], stdout=subprocess.DEVNULL)
    shutil.copy(data, fv_repo / "data" / "driver_stats.parquet")
    meta = json.loads(Path(str(data) + ".meta.json").read_text())
    env = dict(os.environ, FEAST_USAGE="False")
    run([feast, "apply"], cwd=feast_repo, env=env, stdout=subprocess.DEVNULL)
    t = time.perf_counter()
    run([feast, "materialize", meta["window_start"], meta["window_end"], "--views", "driver_hourly_stats"],
        cwd=feast_repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    keys = subprocess.run(["redis-cli", "-p", str(port), "DBSIZE"], capture_output=True, text=True).stdout.strip()
    log(f"feast materialize: {time.perf_counter() - t:.1f} s, {keys} keys in Redis")

    # request bodies: the same id sequences for every reader
    rng = random.Random(args.seed)
    first, n = meta["first_id"], meta["n_drivers"]
    counts = {size: args.warmup + (args.requests_1000 if size >= 1000 else args.requests) for size in SIZES}
    ids = {size: [[first + rng.randrange(n) for _ in range(size)] for _ in range(counts[size])] for size in SIZES}
    missing_probe = [first, first - 1, first + n - 1]  # first - 1 was never written

    fv_port, feast_port, base_port, cached_port = free_port(), free_port(), free_port(), free_port()
    fv_log = open(work / "fvhost-serve.log", "wb")
    feast_log = open(work / "feast-serve.log", "wb")
    try:
        threads = [] if args.fvhost_threads is None else ["--threads", str(args.fvhost_threads)]
        cache = ["--read-cache-mb", str(args.read_cache_mb)]
        servers = (("fvhost serve", args.fvhost, fv_port, []),
                   ("baseline serve", args.baseline, base_port, []),
                   ("fvhost serve (read cache)", args.fvhost if args.read_cache_mb else None, cached_port, cache))
        for name, binary, listen, extra in servers:
            if binary is None:
                continue
            children.start(name, [binary, "serve", "-r", str(fv_repo), "--listen", f"127.0.0.1:{listen}",
                                  "--redis", f"redis://127.0.0.1:{port}", *threads, *extra],
                           env=dict(os.environ, FVHOST_LOG="warn"), stdout=fv_log, stderr=subprocess.STDOUT)
        # --max-requests 0: gunicorn's default (1000) would restart the worker mid-run
        children.start("feast serve", [feast, "serve", "--host", "127.0.0.1", "-p", str(feast_port), "--workers", "1",
                                       "--no-access-log", "--max-requests", "0"],
                       cwd=feast_repo, env=env, stdout=feast_log, stderr=subprocess.STDOUT)
    finally:
        fv_log.close()
        feast_log.close()
    fv, fs = Client(fv_port), Client(feast_port)
    base = Client(base_port) if args.baseline else None
    cached = Client(cached_port) if args.read_cache_mb else None
    wait_until("fvhost serve", lambda: fv.get("/health")[0] == 200, children, timeout=30)
    probe = body_of([first])
    wait_until("feast serve", lambda: fs.post(probe)[0] == 200, children, timeout=90)
    # connected once Feast is up: a keep-alive connection left idle while
    # Feast starts (over 10 s) is closed by the server's header timeout
    fv.close()
    if base is not None:
        wait_until("baseline serve", lambda: base.get("/health")[0] == 200, children, timeout=30)
    if cached is not None:
        wait_until("fvhost serve (read cache)", lambda: cached.get("/health")[0] == 200, children, timeout=30)
        # warm: every driver read once (the timed ids are drawn from them)
        t = time.perf_counter()
        everyone = list(range(first - 1, first + n))
        for at in range(0, len(everyone), 1000):
            code, _ = cached.post(body_of(everyone[at:at + 1000]))
            assert code == 200, f"warming the read cache: {code}"
        log(f"read cache warmed with {len(everyone)} drivers in {time.perf_counter() - t:.1f} s")
    log("the servers answer")

    # correctness: each size's first body, and one with a never-written id
    checks = {}
    for label, entity_ids in [*((str(size), ids[size][0]) for size in SIZES), ("missing_id", missing_probe)]:
        body = body_of(entity_ids)
        feast_answer = fs.post(body)
        checks[label] = compare_responses(fv.post(body), feast_answer)
        if cached is not None:
            checks[f"{label}_read_cache"] = compare_responses(cached.post(body), feast_answer)
        check = checks[label]
        state = "same" if check["same"] else f"{check['differences']} difference(s)"
        log(f"responses for {label} ({len(entity_ids)} entities): {state}")
        if "feature_order" in check:
            log(f"  feature order: fvhost {check['feature_order']['fvhost']}, feast {check['feature_order']['feast']}")
        for summary in check["by_path"]:
            log(f"  {summary}")

    # the client's own floor: a keep-alive GET /health round trip to fvhost
    floor = []
    for i in range(args.warmup + args.requests):
        t = time.perf_counter()
        fv.get("/health")
        if i >= args.warmup:
            floor.append((time.perf_counter() - t) * 1e3)
    floor = stats(floor)
    log(f"client floor (fvhost GET /health): {fmt(floor)}")

    results = {}
    for size in SIZES:
        bodies = [body_of(x) for x in ids[size]]
        fv_ms, fs_ms, base_ms, cached_ms = [], [], [], []
        turns = [(fv, fv_ms), (fs, fs_ms)] + ([(base, base_ms)] if base is not None else []) \
            + ([(cached, cached_ms)] if cached is not None else [])
        # in turns of BLOCK bodies: each server's answer is timed while the
        # other is idle (a Python server is still freeing its last answer
        # for a while after sending it), and both see the same noise
        for at in range(0, len(bodies), BLOCK):
            block = list(enumerate(bodies[at:at + BLOCK], start=at))
            for client, out in turns:
                for i, body in block:
                    ms = client.timed_post(body)
                    if i >= args.warmup:
                        out.append(ms)
        results[size] = {"fvhost_serve": stats(fv_ms), "feast_serve": stats(fs_ms)}
        baseline = ""
        if cached is not None:
            results[size]["fvhost_serve_read_cache"] = stats(cached_ms)
            baseline += f", with read cache {fmt(results[size]['fvhost_serve_read_cache'])}"
        if base is not None:
            results[size]["fvhost_baseline"] = stats(base_ms)
            baseline += f", baseline {fmt(results[size]['fvhost_baseline'])}"
        log(f"{size} entities: fvhost serve {fmt(results[size]['fvhost_serve'])}, "
            f"feast serve {fmt(results[size]['feast_serve'])}{baseline}")
    fv.close()
    fs.close()
    if base is not None:
        base.close()
    cache_metrics = {}
    if cached is not None:
        text = cached.get("/metrics")[1].decode()
        for line in text.splitlines():
            if line.startswith("fvhost_read_cache_"):
                name, value = line.rsplit(" ", 1)
                cache_metrics[name] = float(value)
        log(f"read cache: {cache_metrics}")
        cached.close()

    log("Feast SDK in process ...")
    sdk = subprocess.run([py, "-c", INPROC, str(feast_repo), json.dumps(FEATURES), str(args.warmup)],
                         input=json.dumps({str(s): ids[s] for s in SIZES}), env=env,
                         check=True, capture_output=True, text=True)
    sdk_ms = json.loads(sdk.stdout.strip().splitlines()[-1])
    for size in SIZES:
        results[size]["feast_sdk"] = stats(sdk_ms[str(size)])
        log(f"{size} entities: feast sdk {fmt(results[size]['feast_sdk'])}")

    sizes_out = {}
    for size in SIZES:
        r = results[size]
        best = min(("feast_serve", "feast_sdk"), key=lambda k: r[k]["p50_ms"])
        ratio = r["fvhost_serve"]["p50_ms"] / r[best]["p50_ms"]
        sizes_out[str(size)] = {
            **r,
            "best_feast": best,
            "fvhost_p50_over_best_feast_p50": round(ratio, 4),
            "goal_tenth_met": ratio <= 0.1,
        }
        if "fvhost_serve_read_cache" in r:
            cached_ratio = r["fvhost_serve_read_cache"]["p50_ms"] / r[best]["p50_ms"]
            sizes_out[str(size)]["read_cache_p50_over_best_feast_p50"] = round(cached_ratio, 4)
            sizes_out[str(size)]["goal_tenth_met_with_read_cache"] = cached_ratio <= 0.1
    return {
        "bench": "online_reads",
        "drivers": args.drivers,
        "events_per_driver": args.events,
        "features": FEATURES,
        "fvhost_serve_threads": args.fvhost_threads or "one per core",
        "fvhost": args.fvhost,
        "baseline": args.baseline,
        "requests": {str(s): counts[s] - args.warmup for s in SIZES},
        "warmup": args.warmup,
        "client_floor_health": floor,
        "sizes": sizes_out,
        "goal_tenth_met_everywhere": all(v["goal_tenth_met"] for v in sizes_out.values()),
        "read_cache_mb": args.read_cache_mb,
        "read_cache_metrics": cache_metrics,
        "goal_tenth_met_everywhere_with_read_cache": args.read_cache_mb > 0 and all(
            v["goal_tenth_met_with_read_cache"] for v in sizes_out.values()),
        "responses_values_match": {k: v["values_match"] for k, v in checks.items()},
        "responses_same": {k: v["same"] for k, v in checks.items()},
        "response_differences": {k: v["by_path"] for k, v in checks.items() if not v["same"]},
        "feature_order_differs": {k: v["feature_order"] for k, v in checks.items() if "feature_order" in v},
    }


def body_of(entity_ids):
    return json.dumps({"features": FEATURES, "entities": {"driver_id": entity_ids}}).encode()


class Client:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port, lean on purpose:
    a request is one prebuilt `sendall`, the answer is read into one reused
    buffer (Content-Length or chunked). Python's http.client costs about
    0.15 ms a request on this kind of machine, more than fvhost's whole
    answer to one entity, and it would be measured for both servers alike."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.buf = bytearray(16 << 20)
        self.view = memoryview(self.buf)

    def _connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _request(self, method, path, body=None):
        if self.sock is None:
            self._connect()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        try:
            self.sock.sendall(head.encode() + b"\r\n" + (body or b""))
            return self._read_response()
        except (OSError, ValueError):
            self.close()
            raise

    def _fill(self, got):
        n = self.sock.recv_into(self.view[got:])
        if n == 0:
            raise ConnectionError("the server closed the connection")
        return got + n

    def _read_response(self):
        got, buf = 0, self.buf
        while (end := buf.find(b"\r\n\r\n", 0, got)) < 0:
            got = self._fill(got)
        lines = bytes(buf[:end]).split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
        start = end + 4
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body, at = bytearray(), start
            while True:
                while (eol := buf.find(b"\r\n", at, got)) < 0:
                    got = self._fill(got)
                size = int(bytes(buf[at:eol]).split(b";")[0], 16)
                while got < eol + 2 + size + 2:
                    got = self._fill(got)
                body += buf[eol + 2:eol + 2 + size]
                at = eol + 2 + size + 2
                if size == 0:
                    break
            data = bytes(body)
        else:
            length = int(headers.get(b"content-length", b"0"))
            while got < start + length:
                got = self._fill(got)
            data = bytes(buf[start:start + length])
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, data

    def get(self, path):
        try:
            return self._request("GET", path)
        except (OSError, ValueError):
            return None, b""

    def post(self, body):
        try:
            return self._request("POST", "/get-online-features", body)
        except (OSError, ValueError):
            return None, b""

    def timed_post(self, body):
        """Milliseconds for one request and its whole answer; a non-200 stops the run."""
        t = time.perf_counter()
        status, data = self._request("POST", "/get-online-features", body)
        ms = (time.perf_counter() - t) * 1e3
        if status != 200:
            raise SystemExit(f"127.0.0.1:{self.port} answered {status}: {data[:300]!r}")
        return ms

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def wait_until(name, ready, children=None, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if children:
            dead = [(n, p.returncode) for n, p in children.procs if p.poll() is not None]
            if dead:
                raise SystemExit(f"{dead[0][0]} exited with {dead[0][1]} before answering (see its log in --work)")
        if ready():
            return
        time.sleep(0.1)
    raise SystemExit(f"{name} did not answer within {timeout:.0f} s")


def stats(ms):
    ms = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "n": len(ms),
    }


def percentile(sorted_ms, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    k = (len(sorted_ms) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_ms[lo] + (sorted_ms[hi] - sorted_ms[lo]) * (k - lo)


def fmt(s):
    return f"p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms"


def compare_responses(fv, fs, examples=3):
    """Differences between fvhost's and Feast's answers to one body. Columns are
    matched by feature name (Feast 0.67 orders them by Python set iteration, so
    its order changes with PYTHONHASHSEED); a different order is reported apart.
    Differences are grouped by JSON path (list indices folded to [*]), each with
    a count and a few examples."""
    (fv_status, fv_body), (fs_status, fs_body) = fv, fs
    out = {"same": True, "values_match": True, "differences": 0, "by_path": []}
    if fv_status != 200 or fs_status != 200:
        out.update(same=False, values_match=False, differences=1, by_path=[
            f"HTTP status: fvhost {fv_status} {fv_body[:200]!r}, feast {fs_status} {fs_body[:200]!r}"])
        return out
    a, b = by_feature(json.loads(fv_body)), by_feature(json.loads(fs_body))
    if a["feature_names"] != b["feature_names"]:
        out["feature_order"] = {"fvhost": a["feature_names"], "feast": b["feature_names"]}
    diffs = []
    diff_json({k: v for k, v in a.items() if k != "feature_names"},
              {k: v for k, v in b.items() if k != "feature_names"}, "$", diffs)
    grouped = {}
    for path, x, y in diffs:
        grouped.setdefault(re.sub(r"\[\d+\]", "[*]", path), []).append((path, x, y))
    out["same"] = not diffs
    out["values_match"] = not any(".values" in path for path, _, _ in diffs)
    out["differences"] = len(diffs)
    for path, items in grouped.items():
        shown = "; ".join(f"{p}: fvhost {json.dumps(x)} vs feast {json.dumps(y)}" for p, x, y in items[:examples])
        out["by_path"].append(f"{path} ({len(items)}x): {shown}")
    return out


def by_feature(response):
    """A get-online-features answer with its `results` keyed by feature name
    (`$.results.<name>`); other top-level keys kept as they are."""
    out = {k: v for k, v in response.items() if k not in ("metadata", "results")}
    names = (response.get("metadata") or {}).get("feature_names") or []
    results = response.get("results") or []
    out["feature_names"] = names
    if len(names) != len(results):
        out["results"] = results  # shape differs: compared positionally
        out["metadata"] = response.get("metadata")
        return out
    out["results"] = dict(zip(names, results))
    return out


MISSING = "<absent>"


def diff_json(a, b, path, diffs):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            diff_json(a.get(k, MISSING), b.get(k, MISSING), f"{path}.{k}", diffs)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append((f"{path}.length", len(a), len(b)))
        for i, (x, y) in enumerate(zip(a, b)):
            diff_json(x, y, f"{path}[{i}]", diffs)
    elif is_number(a) and is_number(b):
        if not math.isclose(a, b, rel_tol=FLOAT_REL_TOL, abs_tol=1e-9):
            diffs.append((path, a, b))
        elif type(a) is not type(b):
            diffs.append((path + " (number type)", a, b))
    elif a != b or type(a) is not type(b):
        diffs.append((path, a, b))


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


INPROC = r"""
import json, sys, time
from feast import FeatureStore
repo, features, warmup = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
ids = json.load(sys.stdin)
store = FeatureStore(repo_path=repo)
out = {}
for size, seqs in ids.items():
    ms = []
    for i, seq in enumerate(seqs):
        rows = [{"driver_id": x} for x in seq]
        t = time.perf_counter()
        store.get_online_features(features=features, entity_rows=rows).to_dict()
        if i >= warmup:
            ms.append((time.perf_counter() - t) * 1e3)
    out[size] = ms
print(json.dumps(out))
"""

if __name__ == "__main__":
    main()
