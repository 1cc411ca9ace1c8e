//! The online store: Feast's Redis layout, byte for byte.
//!
//! - [`entity_key`]: the Redis key (serialized entity key + project);
//! - [`murmur3`]: hash field names of features, and `_ts:<view>`;
//! - [`value`]: feature values as `feast.types.Value` protobufs;
//! - [`timestamp`]: event times as `google.protobuf.Timestamp`;
//! - [`rows`]: output batches into per-entity rows, newest kept;
//! - [`writer`]: atomic newer-wins writes; [`reader`]: reads in Feast's response shape.

pub mod entity_key;
pub mod murmur3;
mod proto;
pub mod reader;
pub mod request;
pub mod rows;
pub mod timestamp;
pub mod value;
pub mod writer;

pub use entity_key::{KeyBuilder, KeyValue, KeyVersion};
pub use reader::{EntityRow, FeatureRef, OnlineResponse, get_online_features};
pub use rows::{OnlineRow, RowFailure, build_rows, fold_newest, newest_per_entity};
pub use timestamp::EventTime;
pub use writer::{OnlineWriter, ViewFields, WriteError, WriteStats, connect};
