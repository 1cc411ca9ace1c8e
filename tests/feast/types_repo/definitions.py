"""Every value type and key kind fvhost writes, as Feast definitions.

The Feast round-trip tests (tests/feast_round_trip.rs) apply this repo with
Feast's own CLI, write its data with fvhost and with Feast, and read it back
with both. The data comes from ../make_data.py.
"""
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import (
    Array,
    Bool,
    Bytes,
    Float32,
    Float64,
    Int32,
    Int64,
    String,
    UnixTimestamp,
)

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
city = Entity(name="city", join_keys=["city"], value_type=ValueType.STRING)
zone = Entity(name="zone", join_keys=["zone_id"], value_type=ValueType.INT32)


def source(name):
    return FileSource(
        name=f"{name}_file",
        path=f"data/{name}.parquet",
        timestamp_field="event_timestamp",
    )


SCALARS = [
    Field(name="i32", dtype=Int32),
    Field(name="i64", dtype=Int64),
    Field(name="f32", dtype=Float32),
    Field(name="f64", dtype=Float64),
    Field(name="text", dtype=String),
    Field(name="raw", dtype=Bytes),
    Field(name="flag", dtype=Bool),
    Field(name="seen", dtype=UnixTimestamp),
]

scalars = FeatureView(
    name="scalars",
    entities=[driver],
    ttl=timedelta(0),
    schema=SCALARS,
    source=source("scalars"),
)

lists = FeatureView(
    name="lists",
    entities=[city],
    ttl=timedelta(0),
    schema=[Field(name=f"{f.name}_list", dtype=Array(f.dtype)) for f in SCALARS],
    source=source("lists"),
)

pairs = FeatureView(
    name="pairs",
    entities=[driver, city],
    ttl=timedelta(0),
    schema=[Field(name="trips", dtype=Int64), Field(name="rating", dtype=Float64)],
    source=source("pairs"),
)

zones = FeatureView(
    name="zones",
    entities=[zone],
    ttl=timedelta(0),
    schema=[Field(name="demand", dtype=Float32)],
    source=source("zones"),
)

totals = FeatureView(
    name="totals",
    entities=[],
    ttl=timedelta(0),
    schema=[Field(name="open_orders", dtype=Int64)],
    source=source("totals"),
)

driver_overview = FeatureService(
    name="driver_overview",
    features=[scalars[["i64", "f64", "text"]], totals],
)
