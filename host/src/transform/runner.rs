//! One batch through one fresh instance of a transform.
//!
//! A fresh store and instance per batch costs tens of microseconds and buys
//! isolation: no state, leak or trap carries over from one batch to the next.

use std::sync::Arc;

use arrow_array::RecordBatch;
use wasmtime::Store;

use super::guest::GuestState;
use super::module::Code;
use super::{
    LimitExceeded, LimitName, Limits, TransformEngine, TransformError, TransformModule, deadline,
    guest_text, ipc,
};

/// An input row a transform refused, with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub row: usize,
    pub reason: String,
}

/// The result of one successful call.
#[derive(Debug)]
pub struct TransformOutput {
    pub batch: RecordBatch,
    pub rejected: Vec<Rejected>,
}

/// Runs one view's module with that view's config and limits.
#[derive(Clone)]
pub struct Transformer {
    module: Arc<TransformModule>,
    config: Vec<(String, String)>,
    limits: Limits,
    view: String,
    /// The most memory one call of this transform grew to, in bytes
    /// (shared by clones: they run the same version).
    memory_high_water: Arc<std::sync::atomic::AtomicU64>,
}

impl Transformer {
    /// The most linear memory one call grew to so far, in bytes.
    pub fn memory_high_water(&self) -> u64 {
        self.memory_high_water
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn new(
        module: Arc<TransformModule>,
        config: Vec<(String, String)>,
        limits: Limits,
        view: &str,
    ) -> Self {
        Self {
            module,
            config,
            limits,
            view: view.to_string(),
            memory_high_water: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    pub fn module(&self) -> &Arc<TransformModule> {
        &self.module
    }

    /// Transforms `input`. Blocks the calling thread for up to the time limit:
    /// call it from a blocking-capable thread, not an async task.
    ///
    /// The time limit holds whatever the guest does: epoch interruption ends
    /// guest code that runs too long, and the call as a whole (instantiation,
    /// `init`, `transform`) is abandoned at the same deadline if it is
    /// waiting in a host function instead of running.
    pub fn run(&self, input: &RecordBatch) -> Result<TransformOutput, TransformError> {
        let bytes = ipc::encode(input).map_err(TransformError::InputEncoding)?;
        let code = self.module.code();
        let mut store = Store::new(
            &code.engine,
            GuestState::new(
                &self.view,
                self.limits.memory_bytes,
                self.limits.log_lines_per_batch,
                self.limits.log_rate.clone(),
            ),
        );
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(TransformEngine::ticks_for(self.limits.time_per_batch));
        if code.metered {
            // An engine that meters fuel needs fuel in every store; without a
            // fuel limit the call is bounded by time alone.
            let fuel = self.limits.fuel_per_batch.unwrap_or(u64::MAX);
            if let Err(e) = store.set_fuel(fuel) {
                return Err(TransformError::Trap(format!("cannot set fuel: {e}")));
            }
        }

        let call = self.call(&mut store, &code, &bytes, input.num_rows());
        let result = deadline::block_on(self.limits.time_per_batch, call)
            .unwrap_or_else(|| Err(self.time_limit_exceeded()));
        let dropped = store.data().dropped_log_lines();
        if dropped > 0 {
            tracing::warn!(view = %self.view, dropped, "guest log lines over the per-batch or per-tenant limit were dropped");
        }
        result
    }

    async fn call(
        &self,
        store: &mut Store<GuestState>,
        code: &Code,
        input: &[u8],
        input_rows: usize,
    ) -> Result<TransformOutput, TransformError> {
        let started = std::time::Instant::now();
        let instance = code
            .pre
            .instantiate_async(&mut *store)
            .await
            .map_err(|e| self.trap(store, e))?;
        let instantiated = started.elapsed();
        instance
            .fvhost_transform_transformer()
            .call_init(&mut *store, &self.config)
            .await
            .map_err(|e| self.trap(store, e))?
            .map_err(|e| TransformError::Init(guest_text::error(&e)))?;
        let initialized = started.elapsed();
        let output = instance
            .fvhost_transform_transformer()
            .call_transform(&mut *store, input)
            .await
            .map_err(|e| self.trap(store, e))?
            .map_err(|e| TransformError::Returned(guest_text::error(&e)))?;
        self.memory_high_water.fetch_max(
            store.data().limiter.memory_peak as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        tracing::trace!(
            view = %self.view,
            instantiate_us = instantiated.as_micros() as u64,
            init_us = (initialized - instantiated).as_micros() as u64,
            transform_us = (started.elapsed() - initialized).as_micros() as u64,
            "transform call"
        );
        if output.batch.len() > self.limits.output_bytes {
            return Err(LimitExceeded::new(
                LimitName::OutputBytes,
                self.limits.output_bytes as u64,
                Some(output.batch.len() as u64),
            )
            .into());
        }
        let batch = ipc::decode_one(&output.batch).map_err(TransformError::MalformedOutput)?;
        if batch.num_rows() > self.limits.output_rows {
            return Err(LimitExceeded::new(
                LimitName::OutputRows,
                self.limits.output_rows as u64,
                Some(batch.num_rows() as u64),
            )
            .into());
        }
        let mut rejected = output.rejected;
        // One dead letter per event, however often the guest names its row.
        rejected.sort_by_key(|r| r.row);
        rejected.dedup_by_key(|r| r.row);
        if let Some(bad) = rejected.iter().find(|r| r.row as usize >= input_rows) {
            return Err(TransformError::UnknownRejectedRow {
                row: bad.row.into(),
                input_rows,
            });
        }
        let rejected = rejected
            .into_iter()
            .map(|r| Rejected {
                row: r.row as usize,
                reason: guest_text::sanitize(&r.reason, guest_text::MAX_REASON_BYTES),
            })
            .collect();
        Ok(TransformOutput { batch, rejected })
    }

    fn time_limit_exceeded(&self) -> TransformError {
        let millis = u64::try_from(self.limits.time_per_batch.as_millis()).unwrap_or(u64::MAX);
        LimitExceeded::new(LimitName::Time, millis, None).into()
    }

    /// Names the limit behind a trap when one was hit, else describes the trap.
    fn trap(&self, store: &Store<GuestState>, error: wasmtime::Error) -> TransformError {
        if let Some(desired) = store.data().limiter.memory_exceeded {
            return LimitExceeded::new(
                LimitName::Memory,
                self.limits.memory_bytes as u64,
                Some(desired as u64),
            )
            .into();
        }
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => return self.time_limit_exceeded(),
            Some(wasmtime::Trap::OutOfFuel) => {
                let fuel = self.limits.fuel_per_batch.unwrap_or(u64::MAX);
                return LimitExceeded::new(LimitName::Fuel, fuel, None).into();
            }
            _ => {}
        }
        let cause = guest_text::error(&error.root_cause().to_string());
        match store.data().last_error_line() {
            Some(line) => TransformError::Trap(format!("{cause} (guest's last error: {line})")),
            None => TransformError::Trap(cause),
        }
    }
}
