//! The online store: Feast's Redis layout, byte for byte, behind one seam.
//!
//! Feast's encodings, shared by every store:
//! - [`entity_key`]: the hash key (serialized entity key + project);
//! - [`murmur3`], [`fields`]: hash field names of features, and `_ts:<view>`;
//! - [`value`]: feature values as `feast.types.Value` protobufs;
//! - [`timestamp`]: event times as `google.protobuf.Timestamp`;
//! - [`rows`]: output batches into per-entity rows, newest kept;
//! - [`reader`], [`request`], [`answer`]: reads, answered as Feast's JSON.
//!
//! The stores, behind [`OnlineStore`] (write rows newer-wins, read fields):
//! - [`redis`]: the Redis store Feast reads (atomic script writes, pipelined;
//!   one server, a cluster grouped by hash slot, or a Sentinel-managed master);
//! - [`memory`]: the same semantics in memory, for tests and tools;
//! - [`cache`]: reads answered from memory, invalidated by Redis (`serve --read-cache-mb`);
//! - [`connection`]: the store a repo names, opened.

pub mod answer;
pub mod cache;
pub mod connection;
pub mod entity_key;
pub mod fields;
pub mod memory;
pub mod murmur3;
mod proto;
pub mod reader;
pub mod redis;
pub mod request;
pub mod rows;
pub mod store;
pub mod timestamp;
pub mod value;

pub use self::redis::{RedisConnection, RedisStore, ReplicaWait, connect};
pub use connection::OnlineConnection;
pub use entity_key::{KeyBuilder, KeyValue, KeyVersion};
pub use fields::ViewFields;
pub use memory::MemoryStore;
pub use reader::{
    EchoedColumn, EntityRow, FeatureRef, OnlineResponse, ResponseStyle, get_online_features,
};
pub use rows::{OnlineRow, RowFailure, build_rows, fold_newest, newest_per_entity};
pub use store::{GuardedUpdate, HashRead, OnlineStore, StoreError, WriteStats};
pub use timestamp::EventTime;
