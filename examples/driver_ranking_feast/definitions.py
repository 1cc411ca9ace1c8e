from datetime import timedelta

from feast import Entity, FeatureService, Field, FileSource, KafkaSource, PushSource, FeatureView, ValueType
from feast.aggregation import Aggregation
from feast.data_format import JsonFormat
from feast.stream_feature_view import StreamFeatureView
from feast.types import Float32, Float64

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64, description="driver id")

driver_stats_source = FileSource(
    name="driver_stats_source",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

driver_stats_stream = KafkaSource(
    name="driver_stats_stream",
    kafka_bootstrap_servers="127.0.0.1:9092",
    topic="drivers",
    timestamp_field="event_timestamp",
    batch_source=driver_stats_source,
    message_format=JsonFormat(
        schema_json="driver_id integer, event_timestamp timestamp, conv_rate double, acc_rate double, created timestamp"
    ),
    watermark_delay_threshold=timedelta(minutes=5),
)

driver_hourly_stats_stream = StreamFeatureView(
    name="driver_hourly_stats_stream",
    entities=[driver],
    ttl=timedelta(days=1),
    online=True,
    source=driver_stats_stream,
    schema=[Field(name="conv_percentage", dtype=Float32), Field(name="acc_percentage", dtype=Float32)],
    tags={
        "fvhost.transform.module": "../transforms/target/wasm32-wasip2/release/driver_stats.wasm",
        "fvhost.transform.config.factor": "100",
    },
)

driver_activity_1h = StreamFeatureView(
    name="driver_activity_1h",
    entities=[driver],
    ttl=timedelta(days=1),
    online=True,
    source=driver_stats_stream,
    schema=[Field(name="conv_rate", dtype=Float64)],
    timestamp_field="event_timestamp",
    tiling_hop_size=timedelta(minutes=5),
    aggregations=[
        Aggregation(column="conv_rate", function="count", time_window=timedelta(hours=1)),
        Aggregation(column="conv_rate", function="mean", time_window=timedelta(hours=1), name="conv_rate_mean_1h"),
    ],
)

driver_activity = FeatureService(name="driver_activity", features=[driver_hourly_stats_stream[["conv_percentage"]], driver_activity_1h])
