"""Writes the Parquet history of types_repo: every value type, nulls, and
several events per entity (only the newest must be read back).

  python make_data.py REPO_DIR   # writes REPO_DIR/data/*.parquet and expected.json
"""
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

NOW = datetime.now(timezone.utc).replace(microsecond=0)
rng = random.Random(7)


def times(n):
    """n distinct event times over the last two days, oldest first."""
    start = NOW - timedelta(days=2)
    return [start + timedelta(minutes=17 * i + 1) for i in range(n)]


def scalar_values(i):
    """One row of every scalar type; row i % 7 == 3 is all nulls."""
    if i % 7 == 3:
        return dict(i32=None, i64=None, f32=None, f64=None, text=None, raw=None, flag=None, seen=None)
    return dict(
        i32=rng.randint(-2**31, 2**31 - 1),
        # within 2**53: Feast reads an Int64 column with nulls through float64
        # (pandas) and rounds larger values; fvhost keeps them exact.
        i64=rng.randint(-2**53, 2**53),
        f32=rng.choice([0.1, -2.5, 3.4028234e38, 1e-7, 0.0]),
        f64=rng.uniform(-1e6, 1e6),
        text=rng.choice(["", "plain", "ünïcödé ✓", "quote\"and\\slash", "x" * 300]),
        raw=bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12))),
        flag=rng.random() < 0.5,
        seen=NOW - timedelta(seconds=rng.randrange(10**7)),
    )


SCALAR_TYPES = dict(
    i32=pa.int32(), i64=pa.int64(), f32=pa.float32(), f64=pa.float64(),
    text=pa.string(), raw=pa.binary(), flag=pa.bool_(), seen=pa.timestamp("us", tz="UTC"),
)


def write(repo, name, rows, types):
    columns = {k: [r[k] for r in rows] for k in types}
    table = pa.table({k: pa.array(v, type=types[k]) for k, v in columns.items()})
    pq.write_table(table, repo / "data" / f"{name}.parquet")


def main():
    repo = Path(sys.argv[1])
    (repo / "data").mkdir(exist_ok=True)
    ts = pa.timestamp("us", tz="UTC")

    drivers = [1001, 1002, 1003, -5, 2**40]
    rows = []
    for i, t in enumerate(times(len(drivers) * 3)):
        rows.append(dict(driver_id=drivers[i % len(drivers)], event_timestamp=t, **scalar_values(i)))
    write(repo, "scalars", rows, dict(driver_id=pa.int64(), event_timestamp=ts, **SCALAR_TYPES))

    cities = ["Paris", "São Paulo", "", "New York"]
    rows = []
    for i, t in enumerate(times(len(cities) * 2)):
        first, second = scalar_values(i + 1), scalar_values(i + 2)
        row = dict(city=cities[i % len(cities)], event_timestamp=t)
        for k in SCALAR_TYPES:
            items = [v for v in (first[k], second[k]) if v is not None]
            # one null list and one empty list among the newest rows
            row[f"{k}_list"] = None if i == 5 else [] if i == 6 else items
        rows.append(row)
    write(repo, "lists", rows, dict(city=pa.string(), event_timestamp=ts, **{f"{k}_list": pa.list_(v) for k, v in SCALAR_TYPES.items()}))

    rows = [dict(driver_id=d, city=c, event_timestamp=t, trips=i, rating=i / 3)
            for i, ((d, c), t) in enumerate(zip([(1001, "Paris"), (1001, "Lyon"), (1002, "Paris"), (1001, "Paris")], times(4)))]
    write(repo, "pairs", rows, dict(driver_id=pa.int64(), city=pa.string(), event_timestamp=ts, trips=pa.int64(), rating=pa.float64()))

    rows = [dict(zone_id=z, event_timestamp=t, demand=z / 4) for z, t in zip([1, 2, -3, 2], times(4))]
    write(repo, "zones", rows, dict(zone_id=pa.int32(), event_timestamp=ts, demand=pa.float32()))

    rows = [dict(event_timestamp=t, open_orders=n) for n, t in zip([5, 9, 7], times(3))]
    write(repo, "totals", rows, dict(event_timestamp=ts, open_orders=pa.int64()))

    entities = dict(
        scalars={"driver_id": drivers + [777]},
        lists={"city": cities + ["Nowhere"]},
        pairs={"driver_id": [1001, 1001, 1002, 1002], "city": ["Paris", "Lyon", "Paris", "Lyon"]},
        zones={"zone_id": [1, 2, -3, 4]},
        totals={},
    )
    (repo / "requests.json").write_text(json.dumps(dict(
        start=(NOW - timedelta(days=3)).isoformat(), end=NOW.isoformat(), entities=entities)))


if __name__ == "__main__":
    main()
