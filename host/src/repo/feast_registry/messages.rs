//! The part of Feast's `RegistryProto` (`feast.core.Registry`) fvhost reads.
//!
//! Written for fvhost from the field numbers of Feast's messages (the numbers
//! are the wire format; the names follow Feast's). Fields fvhost does not
//! read are left out, and protobuf decoding skips fields it does not know,
//! so a registry written by a newer Feast still loads.

use std::collections::HashMap;

/// `feast.core.Registry`: every object `feast apply` registered.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Registry {
    #[prost(message, repeated, tag = "1")]
    pub entities: Vec<EntityProto>,
    #[prost(message, repeated, tag = "6")]
    pub feature_views: Vec<FeatureViewProto>,
    #[prost(message, repeated, tag = "7")]
    pub feature_services: Vec<FeatureServiceProto>,
    #[prost(message, repeated, tag = "8")]
    pub on_demand_feature_views: Vec<OnDemandFeatureViewProto>,
    #[prost(message, repeated, tag = "12")]
    pub data_sources: Vec<DataSourceProto>,
    #[prost(message, repeated, tag = "14")]
    pub stream_feature_views: Vec<StreamFeatureViewProto>,
    #[prost(string, tag = "3")]
    pub registry_schema_version: String,
    #[prost(string, tag = "4")]
    pub version_id: String,
}

/// `feast.core.Entity`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntityProto {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<EntitySpec>,
}

/// `feast.core.EntitySpecV2`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntitySpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "9")]
    pub project: String,
    /// A `feast.types.ValueType.Enum` number.
    #[prost(int32, tag = "2")]
    pub value_type: i32,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub join_key: String,
    #[prost(map = "string, string", tag = "8")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "10")]
    pub owner: String,
}

/// `feast.core.DataSource`: one message for every kind of source, told
/// apart by `type` and by which of the options is set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DataSourceProto {
    #[prost(string, tag = "20")]
    pub name: String,
    #[prost(string, tag = "21")]
    pub project: String,
    #[prost(string, tag = "23")]
    pub description: String,
    #[prost(map = "string, string", tag = "24")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "25")]
    pub owner: String,
    /// A `DataSource.SourceType` number (see [`source_type_name`]).
    #[prost(int32, tag = "1")]
    pub source_type: i32,
    #[prost(map = "string, string", tag = "2")]
    pub field_mapping: HashMap<String, String>,
    #[prost(string, tag = "3")]
    pub timestamp_field: String,
    #[prost(string, tag = "5")]
    pub created_timestamp_column: String,
    #[prost(message, optional, boxed, tag = "26")]
    pub batch_source: Option<Box<DataSourceProto>>,
    #[prost(message, optional, tag = "11")]
    pub file_options: Option<FileOptions>,
    #[prost(message, optional, tag = "13")]
    pub kafka_options: Option<KafkaOptions>,
    #[prost(message, optional, tag = "22")]
    pub push_options: Option<PushOptions>,
}

/// `DataSource.FileOptions`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FileOptions {
    #[prost(string, tag = "2")]
    pub uri: String,
    #[prost(string, tag = "3")]
    pub s3_endpoint_override: String,
}

/// `DataSource.KafkaOptions`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KafkaOptions {
    #[prost(string, tag = "1")]
    pub kafka_bootstrap_servers: String,
    #[prost(string, tag = "2")]
    pub topic: String,
    #[prost(message, optional, tag = "3")]
    pub message_format: Option<StreamFormat>,
    #[prost(message, optional, tag = "4")]
    pub watermark_delay_threshold: Option<DurationProto>,
}

/// `DataSource.PushOptions` (no fields; Feast marks a push source by its
/// type and may leave this unset).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushOptions {}

/// `feast.core.StreamFormat`: which of the three is set names the format.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamFormat {
    #[prost(message, optional, tag = "1")]
    pub avro_format: Option<SchemaFormat>,
    #[prost(message, optional, tag = "2")]
    pub proto_format: Option<ProtoFormat>,
    #[prost(message, optional, tag = "3")]
    pub json_format: Option<SchemaFormat>,
}

/// `StreamFormat.JsonFormat` and `StreamFormat.AvroFormat` (same shape).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaFormat {
    #[prost(string, tag = "1")]
    pub schema_json: String,
}

/// `StreamFormat.ProtoFormat`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoFormat {
    #[prost(string, tag = "1")]
    pub class_path: String,
}

/// `google.protobuf.Duration`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct DurationProto {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `feast.core.FeatureSpecV2`: a feature's name and type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub value_type: i32,
    #[prost(map = "string, string", tag = "3")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "4")]
    pub description: String,
}

/// `feast.core.FeatureView`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureViewProto {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<FeatureViewSpec>,
}

/// `feast.core.FeatureViewSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureViewSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    #[prost(string, repeated, tag = "3")]
    pub entities: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub features: Vec<FeatureSpec>,
    #[prost(map = "string, string", tag = "5")]
    pub tags: HashMap<String, String>,
    #[prost(message, optional, tag = "6")]
    pub ttl: Option<DurationProto>,
    #[prost(message, optional, tag = "7")]
    pub batch_source: Option<DataSourceProto>,
    #[prost(bool, tag = "8")]
    pub online: bool,
    #[prost(message, optional, tag = "9")]
    pub stream_source: Option<DataSourceProto>,
    #[prost(string, tag = "10")]
    pub description: String,
    #[prost(string, tag = "11")]
    pub owner: String,
    #[prost(message, repeated, tag = "12")]
    pub entity_columns: Vec<FeatureSpec>,
    #[prost(bool, tag = "13")]
    pub offline: bool,
    #[prost(bool, tag = "20")]
    pub disabled: bool,
}

/// `feast.core.StreamFeatureView`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamFeatureViewProto {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<StreamFeatureViewSpec>,
}

/// `feast.core.StreamFeatureViewSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamFeatureViewSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    #[prost(string, repeated, tag = "3")]
    pub entities: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub features: Vec<FeatureSpec>,
    #[prost(message, repeated, tag = "5")]
    pub entity_columns: Vec<FeatureSpec>,
    #[prost(string, tag = "6")]
    pub description: String,
    #[prost(map = "string, string", tag = "7")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "8")]
    pub owner: String,
    #[prost(message, optional, tag = "9")]
    pub ttl: Option<DurationProto>,
    #[prost(message, optional, tag = "10")]
    pub batch_source: Option<DataSourceProto>,
    #[prost(message, optional, tag = "11")]
    pub stream_source: Option<DataSourceProto>,
    #[prost(bool, tag = "12")]
    pub online: bool,
    #[prost(message, optional, tag = "13")]
    pub user_defined_function: Option<UserDefinedFunction>,
    #[prost(string, tag = "14")]
    pub mode: String,
    #[prost(message, repeated, tag = "15")]
    pub aggregations: Vec<AggregationProto>,
    #[prost(string, tag = "16")]
    pub timestamp_field: String,
    #[prost(message, optional, tag = "17")]
    pub feature_transformation: Option<FeatureTransformation>,
    #[prost(bool, tag = "18")]
    pub enable_tiling: bool,
    #[prost(message, optional, tag = "19")]
    pub tiling_hop_size: Option<DurationProto>,
    #[prost(bool, tag = "23")]
    pub disabled: bool,
}

/// `feast.core.UserDefinedFunction`: a pickled Python function, which
/// fvhost cannot run; only whether one is there matters.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UserDefinedFunction {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub body: Vec<u8>,
}

/// `feast.core.FeatureTransformationV2`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureTransformation {
    #[prost(message, optional, tag = "1")]
    pub user_defined_function: Option<UserDefinedFunction>,
}

/// `feast.core.Aggregation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AggregationProto {
    #[prost(string, tag = "1")]
    pub column: String,
    #[prost(string, tag = "2")]
    pub function: String,
    #[prost(message, optional, tag = "3")]
    pub time_window: Option<DurationProto>,
    #[prost(message, optional, tag = "4")]
    pub slide_interval: Option<DurationProto>,
    #[prost(string, tag = "5")]
    pub name: String,
}

/// `feast.core.OnDemandFeatureView`: only its name and project, so a
/// feature service that uses one can be refused by name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OnDemandFeatureViewProto {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<NamedSpec>,
}

/// The `name` and `project` every Feast spec starts with.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
}

/// `feast.core.FeatureService`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureServiceProto {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<FeatureServiceSpec>,
}

/// `feast.core.FeatureServiceSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureServiceSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    #[prost(message, repeated, tag = "3")]
    pub features: Vec<FeatureViewProjection>,
    #[prost(map = "string, string", tag = "4")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "5")]
    pub description: String,
    #[prost(string, tag = "6")]
    pub owner: String,
}

/// `feast.core.FeatureViewProjection`: a view and the features taken from it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureViewProjection {
    #[prost(string, tag = "1")]
    pub feature_view_name: String,
    #[prost(message, repeated, tag = "2")]
    pub feature_columns: Vec<FeatureSpec>,
    #[prost(string, tag = "3")]
    pub feature_view_name_alias: String,
    #[prost(map = "string, string", tag = "4")]
    pub join_key_map: HashMap<String, String>,
}

/// `DataSource.SourceType.PUSH_SOURCE`.
pub const PUSH_SOURCE_TYPE: i32 = 9;

/// The name Feast gives a `DataSource.SourceType` number, for messages.
pub fn source_type_name(number: i32) -> &'static str {
    match number {
        1 => "BATCH_FILE",
        2 => "BATCH_BIGQUERY",
        3 => "STREAM_KAFKA",
        4 => "STREAM_KINESIS",
        5 => "BATCH_REDSHIFT",
        6 => "CUSTOM_SOURCE",
        7 => "REQUEST_SOURCE",
        8 => "BATCH_SNOWFLAKE",
        9 => "PUSH_SOURCE",
        10 => "BATCH_TRINO",
        11 => "BATCH_SPARK",
        12 => "BATCH_ATHENA",
        13 => "BATCH_ICEBERG",
        _ => "an unknown source type",
    }
}

/// The name Feast gives a `ValueType.Enum` number fvhost reads (the scalar
/// types and their lists), or `None` for the others.
pub fn value_type_name(number: i32) -> Option<&'static str> {
    Some(match number {
        1 => "BYTES",
        2 => "STRING",
        3 => "INT32",
        4 => "INT64",
        5 => "DOUBLE",
        6 => "FLOAT",
        7 => "BOOL",
        8 => "UNIX_TIMESTAMP",
        11 => "BYTES_LIST",
        12 => "STRING_LIST",
        13 => "INT32_LIST",
        14 => "INT64_LIST",
        15 => "DOUBLE_LIST",
        16 => "FLOAT_LIST",
        17 => "BOOL_LIST",
        18 => "UNIX_TIMESTAMP_LIST",
        _ => return None,
    })
}
