//! Materialization: a view's batch history over a time range, through the
//! same transform and the same online store as the stream.
//!
//! The scan runs in bounded memory (see [`crate::offline::scan`]); the newest
//! row per entity is kept across the whole range (ties broken by the created
//! timestamp), so memory follows the number of entities, not of rows.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Schema};
use serde::Serialize;

use super::conform::{ConformError, conform, declared_types};
use super::dead_letter::{DeadLetterSink, DeadLetterSinkError};
use super::processor::{BlockingCall, Piece, Processed, Processor, ProcessorSettings};
use super::view::{TransformedBatch, ViewPipeline};
use super::windows::entity_events;
use crate::aggregate::batch::{hops_touched, whole_hops};
use crate::aggregate::{RecomputedTiles, WindowWriteError, replace_hops, state_field};
use crate::offline::OfflineError;
use crate::offline::files::parquet_files;
use crate::offline::scan::{ScanRequest, ScanStats, Scanner};
use crate::online::{EventTime, OnlineRow, OnlineStore, RowFailure, StoreError, fold_newest};
use crate::repo::{FeatureRepo, FeatureView, Source, SourceKind, mapped_schema};
use crate::transform::TransformError;

/// Rows per scanned batch.
pub const SCAN_BATCH: usize = 64 * 1024;
/// Rows per Redis write.
const WRITE_CHUNK: usize = 8192;

/// An inclusive time range in microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start_micros: i64,
    pub end_micros: i64,
}

/// Why a view could not be materialized.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    #[error("view `{view}`: {reason}")]
    Source { view: String, reason: String },
    #[error(transparent)]
    Offline(#[from] OfflineError),
    #[error("{file}: {error}")]
    Transform { file: String, error: TransformError },
    #[error("{file}: {error}")]
    Conform { file: String, error: ConformError },
    #[error(transparent)]
    Write(#[from] StoreError),
    #[error(transparent)]
    Windows(#[from] WindowWriteError),
    #[error(transparent)]
    DeadLetters(#[from] DeadLetterSinkError),
}

/// What materializing one view did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ViewSummary {
    pub view: String,
    pub start: String,
    pub end: String,
    #[serde(flatten)]
    pub scan: ScanStats,
    pub rows_out: u64,
    /// Rows the transform rejected, dead-lettered.
    pub rejected_rows: u64,
    /// Rows the transform failed on (after retries and narrowing), dead-lettered.
    pub failed_rows: u64,
    /// Output rows that cannot be written (counted and logged).
    pub unwritable_rows: u64,
    pub entities: u64,
    pub keys_written: u64,
    pub keys_skipped_older: u64,
    /// An aggregating view's windows: the time range read and its events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<WindowSummary>,
    /// Reading, transforming and keeping the newest rows.
    pub read_seconds: f64,
    /// Writing to Redis.
    pub write_seconds: f64,
    pub seconds: f64,
}

/// What materializing an aggregating view read: whole hops, so the range
/// read is the one asked for widened to hop edges.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowSummary {
    pub read_start: String,
    pub read_end: String,
    /// Events folded into the recomputed tiles.
    pub events_added: u64,
    /// Events older than any window their entity reports.
    pub events_expired: u64,
}

/// Progress of one view, reported while it runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub rows_read: u64,
    /// Rows in the row groups that survive pruning: the scan's upper bound.
    pub rows_estimate: u64,
    pub keys_written: u64,
    pub entities: u64,
}

/// A view ready to materialize: its pipeline, the files of its batch source
/// and the columns to read.
pub struct ViewPlan {
    pub pipeline: ViewPipeline,
    pub source: Source,
    pub files: Vec<PathBuf>,
    /// Columns to read as named in the files; `None` when a transform may read any.
    pub columns: Option<Vec<String>>,
    /// For a view without a transform, the types its columns are cast to
    /// (as a push's are) before the schema check.
    declared: Option<HashMap<String, DataType>>,
}

/// The batch (file) source behind a view: its own, or its stream or push source's `batch_source`.
pub fn batch_source<'a>(
    repo: &'a FeatureRepo,
    view: &FeatureView,
) -> Result<&'a Source, MaterializeError> {
    let error = |reason: String| MaterializeError::Source {
        view: view.name.clone(),
        reason,
    };
    let source = repo
        .source(&view.source)
        .ok_or_else(|| error(format!("source `{}` is not in the repo", view.source)))?;
    let batch_name = match &source.kind {
        SourceKind::File { .. } => return Ok(source),
        SourceKind::Kafka(kafka) => &kafka.batch_source,
        SourceKind::Push { batch_source } => batch_source,
    };
    repo.source(batch_name)
        .ok_or_else(|| error(format!("batch source `{batch_name}` is not in the repo")))
}

impl ViewPlan {
    pub fn new(repo: &FeatureRepo, pipeline: ViewPipeline) -> Result<Self, MaterializeError> {
        let source = batch_source(repo, &pipeline.view)?.clone();
        let SourceKind::File { path } = &source.kind else {
            return Err(MaterializeError::Source {
                view: pipeline.view.name.clone(),
                reason: format!("`{}` is not a file source", source.name),
            });
        };
        let files = parquet_files(&repo.root, path)?;
        let columns = pipeline.transformer.is_none().then(|| {
            let view = &pipeline.view;
            view.join_keys
                .iter()
                .map(|k| k.name.as_str())
                .chain(source.created_timestamp_column.as_deref())
                .chain(view.row_columns().iter().map(|f| f.name.as_str()))
                .map(|name| source_name(&source, name).to_string())
                .collect()
        });
        let declared = pipeline.transformer.is_none().then(|| {
            declared_types(std::slice::from_ref(&pipeline))
                .into_iter()
                .map(|(name, dtype)| (name.to_string(), dtype))
                .collect()
        });
        Ok(Self {
            pipeline,
            source,
            files,
            columns,
            declared,
        })
    }

    fn scan_request(&self, range: TimeRange) -> ScanRequest {
        ScanRequest {
            files: self.files.clone(),
            timestamp_column: source_name(&self.source, &self.source.timestamp_field).to_string(),
            start_micros: range.start_micros,
            end_micros: range.end_micros,
            columns: self.columns.clone(),
            batch_size: SCAN_BATCH,
        }
    }

    /// Reads the range and keeps the newest row per entity. Rows the
    /// transform rejects or fails on (after the processor's retries and
    /// narrowing) go to `dead_letters` and are counted. Blocking: call it
    /// where the runtime may be blocked on (a blocking thread, `block_in_place`).
    pub fn newest_rows(
        &self,
        range: TimeRange,
        summary: &mut ViewSummary,
        progress: &dyn Fn(Progress),
        dead_letters: &DeadLetterSink,
    ) -> Result<Vec<OnlineRow>, MaterializeError> {
        let mut newest: HashMap<Vec<u8>, OnlineRow> = HashMap::new();
        let pipeline = &self.pipeline;
        self.scan(
            range,
            summary,
            progress,
            dead_letters,
            |scanned, summary| {
                for piece in &scanned.pieces {
                    let checked = &piece.transformed.checked;
                    summary.rows_out += checked.rows as u64;
                    let failures =
                        fold_newest(checked, &pipeline.schema, &pipeline.keys, &mut newest);
                    report_unwritable(&pipeline.view.name, scanned.file, &failures);
                    summary.unwritable_rows += failures.len() as u64;
                }
                newest.len()
            },
        )?;
        Ok(newest.into_values().collect())
    }

    /// An aggregating view's tiles over every hop `range` touches,
    /// recomputed from all the events of those hops (the range is widened
    /// to hop edges), and the hops. Blocking, like [`Self::newest_rows`].
    pub fn recomputed_tiles(
        &self,
        range: TimeRange,
        summary: &mut ViewSummary,
        progress: &dyn Fn(Progress),
        dead_letters: &DeadLetterSink,
    ) -> Result<(RangeInclusive<i64>, RecomputedTiles), MaterializeError> {
        let pipeline = &self.pipeline;
        let Some(plan) = pipeline.window.as_deref() else {
            return Err(MaterializeError::Source {
                view: pipeline.view.name.clone(),
                reason: "the view declares no aggregations".into(),
            });
        };
        let hops = hops_touched(plan, range.start_micros, range.end_micros);
        let (start_micros, end_micros) = whole_hops(plan, &hops);
        let read = TimeRange {
            start_micros,
            end_micros,
        };
        let mut tiles = RecomputedTiles::default();
        self.scan(read, summary, progress, dead_letters, |scanned, summary| {
            let (events, failures) = entity_events(
                pipeline,
                plan,
                &scanned.pieces,
                &scanned.refused_rows,
                |_| None,
            );
            for failures in &failures {
                report_unwritable(&pipeline.view.name, scanned.file, failures);
                summary.unwritable_rows += failures.len() as u64;
            }
            summary.rows_out += events.len() as u64;
            for event in &events {
                tiles.add(plan, event);
            }
            tiles.entities()
        })?;
        summary.windows = Some(WindowSummary {
            read_start: EventTime::from_micros(start_micros).to_rfc3339(),
            read_end: EventTime::from_micros(end_micros).to_rfc3339(),
            events_added: tiles.events_added,
            events_expired: tiles.events_expired,
        });
        Ok((hops, tiles))
    }

    /// Scans `range` and hands each batch, transformed, to `take`, which
    /// returns how many entities it holds so far (for the progress line).
    fn scan(
        &self,
        range: TimeRange,
        summary: &mut ViewSummary,
        progress: &dyn Fn(Progress),
        dead_letters: &DeadLetterSink,
        mut take: impl FnMut(&ScannedPieces<'_>, &mut ViewSummary) -> usize,
    ) -> Result<(), MaterializeError> {
        let runtime = tokio::runtime::Handle::current();
        let estimate = crate::offline::scan::estimate_rows(&self.scan_request(range))?;
        let mut scanner = Scanner::new(self.scan_request(range));
        let mut entities = 0;
        let mut rows_read_per_file: HashMap<PathBuf, u64> = HashMap::new();
        let mut last_report = Instant::now();
        while let Some(scanned) = scanner.next() {
            let scanned = scanned?;
            let batch = rename(&scanned.batch, &self.source.field_mapping);
            let first_row = rows_read_per_file
                .entry(scanned.file.as_ref().clone())
                .or_insert(0);
            let file_first_row = *first_row;
            *first_row += batch.num_rows() as u64;
            let already_transformed =
                scanned.transformed_for_view.as_deref() == Some(self.pipeline.view.name.as_str());
            let file = scanned.file.display().to_string();
            let batch = match &self.declared {
                Some(declared) if !already_transformed => {
                    conform(batch, declared).map_err(|error| MaterializeError::Conform {
                        file: file.clone(),
                        error: in_file(error, file_first_row),
                    })?
                }
                _ => batch,
            };
            let pieces = if already_transformed {
                let checked = self.pipeline.schema.check(&batch).map_err(|error| {
                    MaterializeError::Transform {
                        file: file.clone(),
                        error: TransformError::from(error),
                    }
                })?;
                ScannedPieces {
                    file: &file,
                    pieces: vec![Piece {
                        first_row: 0,
                        input_rows: checked.rows,
                        transformed: TransformedBatch {
                            checked,
                            rejected: Vec::new(),
                        },
                    }],
                    refused_rows: Vec::new(),
                }
            } else {
                let source = format!("materialize {file}");
                let processed = runtime.block_on(self.process(&batch, &source));
                let letters = processed.row_letters(
                    &self.pipeline.dead_letter_context(),
                    &batch,
                    &source,
                    file_first_row,
                );
                summary.rejected_rows += processed.rejected_rows() as u64;
                summary.failed_rows += processed.failed_rows() as u64;
                runtime.block_on(dead_letters.send(&letters))?;
                ScannedPieces {
                    file: &file,
                    refused_rows: processed.refused.iter().map(|r| r.row).collect(),
                    pieces: processed.pieces,
                }
            };
            entities = take(&pieces, summary);
            if last_report.elapsed().as_millis() >= 200 {
                progress(Progress {
                    rows_read: scanner.stats.rows_read,
                    rows_estimate: estimate,
                    keys_written: 0,
                    entities: entities as u64,
                });
                last_report = Instant::now();
            }
        }
        summary.scan = scanner.stats;
        summary.entities = entities as u64;
        progress(Progress {
            rows_read: scanner.stats.rows_read,
            rows_estimate: estimate.max(scanner.stats.rows_read),
            keys_written: 0,
            entities: entities as u64,
        });
        Ok(())
    }
}

/// `error` with its row counted from the start of the file.
fn in_file(error: ConformError, file_first_row: u64) -> ConformError {
    match error {
        ConformError::Value {
            row,
            column,
            declared,
        } => ConformError::Value {
            row: row + file_first_row as usize,
            column,
            declared,
        },
        other => other,
    }
}

/// One scanned batch through the transform stage.
struct ScannedPieces<'a> {
    file: &'a str,
    pieces: Vec<Piece>,
    /// Input rows the transform refused, in order.
    refused_rows: Vec<usize>,
}

fn report_unwritable(view: &str, file: &str, failures: &[RowFailure]) {
    for failure in failures.iter().take(3) {
        tracing::warn!(view, file, "row not written: {}", failure.reason);
    }
}

impl ViewPlan {
    /// The batch through the view's transform stage (retries, narrowing).
    async fn process(&self, batch: &RecordBatch, source: &str) -> Processed {
        let call = BlockingCall(&self.pipeline);
        let processor = Processor {
            view: &self.pipeline.view.name,
            version: self.pipeline.version(),
            call: &call,
            settings: ProcessorSettings::default(),
        };
        processor
            .process(batch.clone(), source, &|| false)
            .await
            .unwrap_or_default()
    }
}

/// The name a view column has in the source's files (field_mapping reversed).
fn source_name<'a>(source: &'a Source, view_name: &'a str) -> &'a str {
    source
        .field_mapping
        .iter()
        .find(|(_, to)| to == view_name)
        .map(|(from, _)| from.as_str())
        .unwrap_or(view_name)
}

/// `batch` with `field_mapping` applied to its column names.
pub fn rename(batch: &RecordBatch, field_mapping: &[(String, String)]) -> RecordBatch {
    if field_mapping.is_empty() {
        return batch.clone();
    }
    let schema: Schema = mapped_schema(&batch.schema(), field_mapping);
    RecordBatch::try_new(Arc::new(schema), batch.columns().to_vec())
        .unwrap_or_else(|_| batch.clone())
}

/// Write requests in flight at once: overlaps encoding and network with the
/// server's work (measured in docs/architecture.md).
const WRITES_IN_FLIGHT: usize = 4;

/// Writes `rows` in chunks to the online store, several chunks in flight.
pub async fn write_rows(
    store: &dyn OnlineStore,
    plan: &ViewPlan,
    rows: &[OnlineRow],
    summary: &mut ViewSummary,
    progress: &dyn Fn(Progress),
) -> Result<(), MaterializeError> {
    use futures::StreamExt;
    let fields = &plan.pipeline.fields;
    let mut writes = futures::stream::iter(rows.chunks(WRITE_CHUNK))
        .map(|chunk| store.write(fields, chunk))
        .buffer_unordered(WRITES_IN_FLIGHT);
    while let Some(stats) = writes.next().await {
        let stats = stats?;
        summary.keys_written += stats.written;
        summary.keys_skipped_older += stats.skipped_older;
        progress(Progress {
            rows_read: summary.scan.rows_read,
            rows_estimate: summary.scan.rows_read,
            keys_written: summary.keys_written + summary.keys_skipped_older,
            entities: summary.entities,
        });
    }
    Ok(())
}

/// Entities per replacement of their tiles.
const WINDOW_CHUNK: usize = 4096;

/// Replaces the stored tiles of `hops` with `tiles` entity by entity (see
/// [`crate::aggregate::batch`]) and writes each entity's window values.
pub async fn write_windows(
    store: &dyn OnlineStore,
    plan: &ViewPlan,
    hops: RangeInclusive<i64>,
    tiles: RecomputedTiles,
    summary: &mut ViewSummary,
    progress: &dyn Fn(Progress),
) -> Result<(), MaterializeError> {
    let pipeline = &plan.pipeline;
    let Some(window) = pipeline.window.as_deref() else {
        return Ok(());
    };
    let field = state_field(&pipeline.view.name);
    for chunk in tiles.into_entities().chunks(WINDOW_CHUNK) {
        let stats =
            replace_hops(store, window, &pipeline.fields, &field, hops.clone(), chunk).await?;
        summary.keys_written += stats.keys_written;
        progress(Progress {
            rows_read: summary.scan.rows_read,
            rows_estimate: summary.scan.rows_read,
            keys_written: summary.keys_written,
            entities: summary.entities,
        });
    }
    Ok(())
}
