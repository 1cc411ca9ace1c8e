//! fvhost: the stream-ingestion job Feast leaves to its users, done properly.
//!
//! It consumes Kafka topics, hands Arrow batches to feature-view transforms
//! compiled to WebAssembly, and writes the results into a Redis online store
//! in Feast's exact layout, so Feast's SDK and feature server read them
//! unchanged.
//!
//! Modules by role, the way Vector splits sources, transforms and sinks:
//! - [`repo`]: the feature repo (Feast's `feature_store.yaml` plus YAML definitions);
//! - [`source`]: where events come from (Kafka);
//! - [`format`]: message bytes into Arrow rows (JSON by a declared schema);
//! - [`transform`]: the Wasm engine, modules, limits, the output schema check;
//! - [`aggregate`]: windowed aggregations: tiles per entity per hop, exactly once;
//! - [`online`]: Feast's online layout (keys, fields, values), the store seam
//!   ([`online::OnlineStore`]) and its Redis implementation, reads in Feast's shape;
//! - [`pipeline`]: the data path: the stream loop (intake and output overlapping), the
//!   transform stage shared by stream, materialize and push, watermark, dead letters, metrics;
//! - [`offline`]: Parquet history: reading a batch source, the offline log;
//! - [`server`]: HTTP: Feast's feature-server routes and the admin API;
//! - [`control`]: the control path: the host, its tenants, hot swap and deploys;
//! - [`tenancy`]: host.yaml, tenants, their limits and admin credentials;
//! - [`local`]: a redis-server and a Kafka-protocol broker on loopback, for the
//!   quickstart and the tests;
//! - [`authoring`]: tools for transform authors (`fvhost build`, the Python SDK it carries);
//! - [`cli`]: the `fvhost` commands;
//! - [`bounded_file`]: reading files whose paths others chose, bounded;
//! - [`event_time`]: event times too far ahead of the host's clock.

pub mod aggregate;
pub mod authoring;
pub mod bounded_file;
pub mod cli;
pub mod control;
pub mod event_time;
pub mod format;
pub mod local;
pub mod offline;
pub mod online;
pub mod pipeline;
pub mod repo;
pub mod server;
pub mod source;
pub mod tenancy;
pub mod transform;
pub mod types;
