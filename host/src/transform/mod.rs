//! Running feature-view transforms: WebAssembly components that implement
//! the `fvhost:transform@0.1.0` contract, sandboxed and bounded by the engine.
//!
//! One small file per concern, the way wasmtime's examples are laid out:
//! - [`engine`]: the wasmtime configuration and the epoch ticker behind time limits;
//! - [`limits`]: what one batch may use, and how an overrun is reported;
//! - [`module`]: loading a component, checking it against the contract;
//! - [`cache`]: compiled components kept on disk by content hash;
//! - [`contract`]: the exports a module must have, checked at link time;
//! - [`guest`]: the per-call store state (empty WASI, logging);
//! - `clocks`: frozen clocks whose subscriptions never block;
//! - [`guest_text`]: guest strings cut and escaped before they are stored or logged;
//! - [`runner`]: one batch through one fresh instance, bounded by a deadline;
//! - [`ipc`]: Arrow IPC stream bytes across the boundary;
//! - [`schema_check`]: a transform's output against the view's declared schema.

mod bindings;
pub mod cache;
mod clocks;
pub mod contract;
mod deadline;
pub mod engine;
mod guest;
pub mod guest_text;
pub mod ipc;
pub mod limits;
pub mod module;
pub mod probe;
pub mod runner;
pub mod schema_check;

pub use engine::{Tier, TransformEngine};
pub use limits::{LimitExceeded, LimitName, Limits};
pub use module::TransformModule;
pub use runner::{Rejected, TransformOutput, Transformer};
pub use schema_check::{CheckedBatch, OutputSchemaError, ViewSchema};

/// Why a transform failed a batch. The whole batch fails; nothing after it is committed.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("cannot load module {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("module does not match the fvhost:transform@0.1.0 contract: {0}")]
    Contract(String),
    #[error("transform init failed: {0}")]
    Init(String),
    #[error("transform returned an error: {0}")]
    Returned(String),
    #[error("transform trapped: {0}")]
    Trap(String),
    #[error("{0}")]
    Limit(#[from] LimitExceeded),
    #[error("transform output is not valid Arrow IPC: {0}")]
    MalformedOutput(#[source] ipc::IpcError),
    #[error("transform rejected row {row}, which does not exist (the input has {input_rows} rows)")]
    UnknownRejectedRow { row: u64, input_rows: usize },
    #[error("cannot encode the input batch as Arrow IPC: {0}")]
    InputEncoding(#[source] arrow_schema::ArrowError),
    #[error("transform output does not match the view's schema: {0}")]
    Schema(#[from] OutputSchemaError),
    #[error("cannot encode the input batch: {0}")]
    Input(String),
}

impl TransformError {
    /// Whether running the same input again in smaller pieces can tell which
    /// rows cause the failure (a trap, a bad output), rather than repeat an
    /// expensive overrun (the time or fuel limit).
    pub fn worth_narrowing(&self) -> bool {
        !matches!(self, TransformError::Limit(limit) if limit.is_compute())
    }
}
