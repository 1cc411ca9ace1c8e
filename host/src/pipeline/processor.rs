//! One view version's transform stage, the same wherever the rows come from
//! (the stream, materialize, push): a batch of input rows in; the pieces
//! the transform turned into checked output, and every input row it could
//! not, with the dead-letter kind and reason, out.
//!
//! Retries, narrowing a failing batch down to the rows that make it fail,
//! the guest's rejections and the output schema check happen here once.
//! Callers map input rows back to their origins (a Kafka offset, a file, a
//! pushed row), store the dead letters, and write the pieces.
//!
//! How one call runs is the caller's: the stream takes a transform slot and
//! a blocking thread, the batch side a blocking thread ([`TransformCall`]).

use std::ops::Range;

use arrow_array::RecordBatch;

use super::dead_letter::{DeadLetter, DeadLetterContext, DeadLetterKind, row_payload};
use super::view::{TransformedBatch, ViewPipeline};
use crate::transform::TransformError;

/// One call of a view version's transform and schema check.
#[async_trait::async_trait]
pub trait TransformCall: Send + Sync {
    async fn call(&self, input: RecordBatch) -> Result<TransformedBatch, TransformError>;
}

/// Calls `pipeline`'s transform on a blocking thread: the batch side's way.
pub struct BlockingCall<'a>(pub &'a ViewPipeline);

#[async_trait::async_trait]
impl TransformCall for BlockingCall<'_> {
    async fn call(&self, input: RecordBatch) -> Result<TransformedBatch, TransformError> {
        let pipeline = self.0.clone();
        tokio::task::spawn_blocking(move || pipeline.transform(&input))
            .await
            .unwrap_or_else(|e| {
                Err(TransformError::Trap(format!(
                    "transform thread panicked: {e}"
                )))
            })
    }
}

/// How hard a processor tries before it dead-letters rows.
#[derive(Debug, Clone, Copy)]
pub struct ProcessorSettings {
    /// Attempts at the whole batch before its failure is narrowed down.
    pub attempts: u32,
    /// Most extra calls spent narrowing a failed batch down to the rows that
    /// cause the failure (a single bad row in 8192 takes 26).
    pub narrowing_calls: u32,
}

impl Default for ProcessorSettings {
    fn default() -> Self {
        Self {
            attempts: 3,
            narrowing_calls: 32,
        }
    }
}

/// Part of a batch that transformed, and where it starts in the batch.
pub struct Piece {
    pub first_row: usize,
    /// Input rows the piece covers (its output may hold fewer: rejections).
    pub input_rows: usize,
    pub transformed: TransformedBatch,
}

/// An input row that produced no output, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedRow {
    pub row: usize,
    /// [`DeadLetterKind::Rejected`] (the guest refused it) or
    /// [`DeadLetterKind::BatchFailed`] (the transform failed on it).
    pub kind: DeadLetterKind,
    pub reason: String,
}

/// What the transform stage made of one batch.
#[derive(Default)]
pub struct Processed {
    pub pieces: Vec<Piece>,
    /// In input-row order.
    pub refused: Vec<RefusedRow>,
    /// Attempts at the whole batch that failed (narrowing calls not counted).
    pub failed_attempts: u32,
    /// The last failure, when some rows failed.
    pub last_failure: Option<String>,
}

impl Processed {
    /// The dead letters of the refused rows of `batch`, a batch input named
    /// `source` whose first row is row `first_row` there (materialize, push).
    pub fn row_letters(
        &self,
        context: &DeadLetterContext<'_>,
        batch: &RecordBatch,
        source: &str,
        first_row: u64,
    ) -> Vec<DeadLetter> {
        self.refused
            .iter()
            .map(|refused| {
                context.row_letter(
                    refused.kind,
                    source,
                    first_row + refused.row as u64,
                    row_payload(batch, refused.row),
                    &refused.reason,
                )
            })
            .collect()
    }

    /// Rows the guest rejected.
    pub fn rejected_rows(&self) -> usize {
        self.count(DeadLetterKind::Rejected)
    }

    /// Rows the transform failed on.
    pub fn failed_rows(&self) -> usize {
        self.count(DeadLetterKind::BatchFailed)
    }

    fn count(&self, kind: DeadLetterKind) -> usize {
        self.refused.iter().filter(|r| r.kind == kind).count()
    }
}

/// One view version's transform stage.
pub struct Processor<'a> {
    /// For log lines: the view and version.
    pub view: &'a str,
    pub version: &'a str,
    pub call: &'a dyn TransformCall,
    pub settings: ProcessorSettings,
}

/// Rows of a batch that could not be transformed, and why.
type Failed = (Range<usize>, String);

impl Processor<'_> {
    /// Transforms `input`: retried on failure, then narrowed down, so the
    /// rows beside a bad one are still transformed. `from` names the batch
    /// in log lines. `None`: `stopping()` turned true before the batch was
    /// done, so it is left for later (no call starts after that).
    pub async fn process(
        &self,
        input: RecordBatch,
        from: &str,
        stopping: &(dyn Fn() -> bool + Sync),
    ) -> Option<Processed> {
        let mut processed = Processed::default();
        if input.num_rows() == 0 {
            return Some(processed);
        }
        let attempts = self.settings.attempts.max(1);
        let mut error = None;
        for attempt in 1..=attempts {
            if stopping() {
                return None;
            }
            match self.call.call(input.clone()).await {
                Ok(transformed) => {
                    processed.pieces.push(Piece {
                        first_row: 0,
                        input_rows: input.num_rows(),
                        transformed,
                    });
                    processed.refused = rejections(&processed.pieces);
                    return Some(processed);
                }
                Err(e) => {
                    processed.failed_attempts += 1;
                    tracing::error!(
                        view = self.view,
                        version = self.version,
                        attempt,
                        of = attempts,
                        batch = from,
                        "batch failed: {e}"
                    );
                    error = Some(e);
                }
            }
        }
        let error = error.unwrap_or_else(|| TransformError::Trap("no attempt ran".into()));
        let (pieces, failed) = self.narrow(&input, error, stopping).await?;
        let mut refused = rejections(&pieces);
        for (rows, reason) in &failed {
            refused.extend(rows.clone().map(|row| RefusedRow {
                row,
                kind: DeadLetterKind::BatchFailed,
                reason: reason.clone(),
            }));
        }
        refused.sort_by_key(|r| r.row);
        let failed_rows: usize = failed.iter().map(|(rows, _)| rows.len()).sum();
        tracing::warn!(
            view = self.view,
            version = self.version,
            batch = from,
            failed_rows,
            transformed_rows = input.num_rows() - failed_rows,
            "failed batch narrowed down; the failing rows are dead-lettered"
        );
        processed.last_failure = failed.last().map(|(_, reason)| reason.clone());
        processed.pieces = pieces;
        processed.refused = refused;
        Some(processed)
    }

    /// Splits a failing batch until the failure is pinned to single rows, or
    /// the narrowing budget is spent, or the failure is one not worth
    /// repeating (the time limit). Returns the transformed pieces and the
    /// row ranges that failed, with why.
    async fn narrow(
        &self,
        input: &RecordBatch,
        error: TransformError,
        stopping: &(dyn Fn() -> bool + Sync),
    ) -> Option<(Vec<Piece>, Vec<Failed>)> {
        let rows = input.num_rows();
        if rows <= 1 || !error.worth_narrowing() {
            return Some((Vec::new(), vec![(0..rows, error.to_string())]));
        }
        let untried =
            format!("{error} (this part was not narrowed down further: narrowing budget spent)");
        let mut budget = self.settings.narrowing_calls;
        let (mut pieces, mut failed) = (Vec::new(), Vec::new());
        let half = rows / 2;
        let mut todo = vec![(half, rows - half), (0, half)];
        while let Some((start, len)) = todo.pop() {
            if budget == 0 {
                failed.push((start..start + len, untried.clone()));
                continue;
            }
            budget -= 1;
            if stopping() {
                return None;
            }
            match self.call.call(input.slice(start, len)).await {
                Ok(transformed) => pieces.push(Piece {
                    first_row: start,
                    input_rows: len,
                    transformed,
                }),
                Err(error) if len == 1 || !error.worth_narrowing() => {
                    failed.push((start..start + len, error.to_string()))
                }
                Err(_) => {
                    let half = len / 2;
                    todo.push((start + half, len - half));
                    todo.push((start, half));
                }
            }
        }
        pieces.sort_by_key(|p| p.first_row);
        Some((pieces, failed))
    }
}

/// The rows the guest rejected in each piece, as input rows.
fn rejections(pieces: &[Piece]) -> Vec<RefusedRow> {
    pieces
        .iter()
        .flat_map(|piece| {
            piece
                .transformed
                .rejected
                .iter()
                .map(move |rejected| RefusedRow {
                    row: piece.first_row + rejected.row,
                    kind: DeadLetterKind::Rejected,
                    reason: rejected.reason.clone(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{ArrayRef, Int64Array, TimestampMicrosecondArray};

    use super::*;
    use crate::transform::{Rejected, ViewSchema};
    use crate::types::{FeatureType, ScalarType};

    /// A transform that fails any batch holding a poison value, rejects odd
    /// values it is told to (leaving them out of its output), and counts its calls.
    struct Fake {
        poison: Vec<i64>,
        reject_odd: bool,
        error: fn() -> TransformError,
        calls: AtomicU32,
    }

    impl Fake {
        fn poisoned_by(poison: &[i64]) -> Self {
            Self {
                poison: poison.to_vec(),
                reject_odd: false,
                error: || TransformError::Trap("unreachable executed".into()),
                calls: AtomicU32::new(0),
            }
        }

        fn calls(&self) -> u32 {
            self.calls.load(Ordering::Relaxed)
        }
    }

    #[async_trait::async_trait]
    impl TransformCall for Fake {
        async fn call(&self, input: RecordBatch) -> Result<TransformedBatch, TransformError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let ids = input.column(0).as_primitive::<Int64Type>();
            if ids.values().iter().any(|id| self.poison.contains(id)) {
                return Err((self.error)());
            }
            let rejected = ids
                .values()
                .iter()
                .enumerate()
                .filter(|(_, id)| self.reject_odd && *id % 2 == 1)
                .map(|(row, id)| Rejected {
                    row,
                    reason: format!("{id} is odd"),
                })
                .collect();
            // A rejected row produces no output row.
            let kept: arrow_array::BooleanArray = ids
                .values()
                .iter()
                .map(|id| Some(!(self.reject_odd && id % 2 == 1)))
                .collect();
            let output = arrow_select::filter::filter_record_batch(&input, &kept)
                .map_err(|e| TransformError::Input(e.to_string()))?;
            Ok(TransformedBatch {
                checked: schema().check(&output)?,
                rejected,
            })
        }
    }

    fn schema() -> ViewSchema {
        ViewSchema {
            view: "v".into(),
            join_keys: vec![crate::repo::JoinKey {
                name: "id".into(),
                value_type: ScalarType::Int64,
            }],
            timestamp_field: "ts".into(),
            created_timestamp_column: None,
            features: vec![crate::repo::Feature {
                name: "id_again".into(),
                dtype: FeatureType::Scalar(ScalarType::Int64),
            }],
            max_future_skew: std::time::Duration::from_secs(300),
        }
    }

    fn batch(rows: i64) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
        let ts: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from_iter_values(0..rows).with_timezone("UTC"));
        RecordBatch::try_from_iter([("id", ids.clone()), ("ts", ts), ("id_again", ids)]).unwrap()
    }

    fn processor<'a>(call: &'a dyn TransformCall, narrowing_calls: u32) -> Processor<'a> {
        Processor {
            view: "v",
            version: "v1",
            call,
            settings: ProcessorSettings {
                attempts: 3,
                narrowing_calls,
            },
        }
    }

    fn run(processor: &Processor<'_>, rows: i64) -> Processed {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime
            .block_on(processor.process(batch(rows), "test", &|| false))
            .expect("not stopped")
    }

    fn transformed_rows(processed: &Processed) -> Vec<usize> {
        processed
            .pieces
            .iter()
            .flat_map(|p| p.first_row..p.first_row + p.transformed.checked.rows)
            .collect()
    }

    #[test]
    fn a_clean_batch_is_one_call_and_one_piece() {
        let fake = Fake::poisoned_by(&[]);
        let processed = run(&processor(&fake, 32), 100);
        assert_eq!(fake.calls(), 1);
        assert_eq!(transformed_rows(&processed), (0..100).collect::<Vec<_>>());
        assert!(processed.refused.is_empty());
        assert_eq!(processed.failed_attempts, 0);
    }

    #[test]
    fn one_poison_row_in_8192_is_pinned_down_in_26_calls_and_the_rest_transformed() {
        let fake = Fake::poisoned_by(&[4321]);
        let processed = run(&processor(&fake, 32), 8192);
        assert_eq!(
            fake.calls(),
            3 + 26,
            "3 attempts, then two halves per level"
        );
        assert_eq!(processed.failed_attempts, 3);
        assert_eq!(
            processed.refused,
            vec![RefusedRow {
                row: 4321,
                kind: DeadLetterKind::BatchFailed,
                reason: "transform trapped: unreachable executed".into()
            }]
        );
        assert_eq!(transformed_rows(&processed).len(), 8191);
        assert!(!transformed_rows(&processed).contains(&4321));
    }

    #[test]
    fn a_spent_budget_dead_letters_the_untried_parts_whole() {
        let fake = Fake::poisoned_by(&[1, 6]);
        let processed = run(&processor(&fake, 2), 8);
        // Halves [0,4) and [4,8) both fail; the budget is spent on them.
        assert_eq!(fake.calls(), 3 + 2);
        assert_eq!(processed.failed_rows(), 8);
        assert!(
            processed
                .refused
                .iter()
                .all(|r| r.reason.contains("unreachable executed"))
        );
        assert!(transformed_rows(&processed).is_empty());
    }

    #[test]
    fn the_time_limit_is_not_narrowed() {
        let mut fake = Fake::poisoned_by(&[3]);
        fake.error = || {
            crate::transform::LimitExceeded::new(crate::transform::LimitName::Time, 10, None).into()
        };
        let processed = run(&processor(&fake, 32), 64);
        assert_eq!(fake.calls(), 3, "repeating an overrun is what costs");
        assert_eq!(processed.failed_rows(), 64);
    }

    #[test]
    fn rejections_are_input_rows_across_narrowed_pieces() {
        let mut fake = Fake::poisoned_by(&[2]);
        fake.reject_odd = true;
        let processed = run(&processor(&fake, 32), 8);
        let refused: Vec<(usize, DeadLetterKind)> =
            processed.refused.iter().map(|r| (r.row, r.kind)).collect();
        assert_eq!(
            refused,
            vec![
                (1, DeadLetterKind::Rejected),
                (2, DeadLetterKind::BatchFailed),
                (3, DeadLetterKind::Rejected),
                (5, DeadLetterKind::Rejected),
                (7, DeadLetterKind::Rejected),
            ]
        );
        assert_eq!(processed.rejected_rows(), 4);
        assert_eq!(processed.refused[2].reason, "3 is odd");
    }

    #[test]
    fn what_a_processed_batch_writes_is_every_row_but_the_refused_ones() {
        use crate::online::{
            HashRead, KeyBuilder, KeyValue, MemoryStore, OnlineStore, ViewFields, build_rows,
            newest_per_entity,
        };
        let mut fake = Fake::poisoned_by(&[6]);
        fake.reject_odd = true;
        let processed = run(&processor(&fake, 32), 10);
        let keys = KeyBuilder::new(crate::types::KeyVersion::V3, &["id".to_string()], "p");
        let fields = ViewFields {
            timestamp: b"_ts:v".to_vec(),
            features: vec![crate::online::murmur3::feature_field("v", "id_again")],
        };
        let store = MemoryStore::new();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        for piece in &processed.pieces {
            let (rows, failures) = build_rows(&piece.transformed.checked, &schema(), &keys);
            assert!(failures.is_empty());
            runtime
                .block_on(store.write(&fields, &newest_per_entity(rows)))
                .unwrap();
        }
        let reads: Vec<HashRead> = (0..10)
            .map(|id| HashRead {
                key: keys.redis_key(&[KeyValue::Int64(id)]),
                fields: vec![fields.timestamp.clone()].into(),
            })
            .collect();
        let stored = runtime.block_on(store.read(&reads)).unwrap();
        let written: Vec<i64> = (0..10)
            .filter(|&id| stored[id as usize][0].is_some())
            .collect();
        assert_eq!(written, vec![0, 2, 4, 8], "odd ids rejected, 6 failed");
    }

    #[test]
    fn no_call_starts_once_stopping() {
        let fake = Fake::poisoned_by(&[0]);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let calls_before_stop = AtomicU32::new(0);
        let stopping = || calls_before_stop.fetch_add(1, Ordering::Relaxed) >= 2;
        let outcome = runtime.block_on(processor(&fake, 32).process(batch(4), "test", &stopping));
        assert!(outcome.is_none());
        assert_eq!(fake.calls(), 2);
    }
}
