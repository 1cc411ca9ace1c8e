//! Push: rows handed to fvhost directly (a file, or the HTTP `/push`) for the
//! views over a push source, to the online store, the offline store, or both.
//!
//! Online, each view's transform runs and its newest row per entity is
//! written to the online store as the stream writes it. Offline, the rows are appended as one
//! Parquet file to the push source's batch source, where the next
//! materialization runs them through the same transform: so pushing offline
//! then materializing gives what pushing online gives.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow_array::{Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Schema};
use serde::Serialize;

use super::conform::{conform, declared_types};
use super::dead_letter::DeadLetterSink;
use super::processor::{BlockingCall, Processed, Processor, ProcessorSettings};
use super::view::ViewPipeline;
use super::windows::entity_events;
use crate::aggregate::{apply_events, state_field};
use crate::event_time::FutureLimit;
use crate::offline::append::SourceWriter;
use crate::offline::files::write_target;
use crate::online::{OnlineConnection, RowFailure};
use crate::repo::{FeatureRepo, Source, SourceKind};
use crate::transform::cache::ModuleCache;
use crate::transform::{Limits, TransformEngine};

/// Where pushed rows go; Feast's `PushMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushTo {
    Online,
    Offline,
    OnlineAndOffline,
}

impl PushTo {
    fn online(self) -> bool {
        matches!(self, PushTo::Online | PushTo::OnlineAndOffline)
    }

    fn offline(self) -> bool {
        matches!(self, PushTo::Offline | PushTo::OnlineAndOffline)
    }
}

/// What a push did.
#[derive(Debug, Default, Serialize)]
pub struct PushSummary {
    pub source: String,
    pub rows: u64,
    pub views: Vec<String>,
    pub keys_written: u64,
    pub keys_skipped_older: u64,
    /// Rows a view's transform rejected, dead-lettered (summed over views).
    pub rejected_rows: u64,
    /// Rows a view's transform failed on, dead-lettered (summed over views).
    pub failed_rows: u64,
    pub unwritable_rows: u64,
    /// Events added to the windows of views with aggregations (a push is
    /// not deduplicated: pushing the same rows twice counts them twice).
    pub events_aggregated: u64,
    /// Events older than any window their entity reports again (counted, not applied).
    pub events_expired: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_file: Option<String>,
}

/// The push source `name` and the views fed by it, ready to run.
pub struct PushTarget {
    pub source: Source,
    pub views: Vec<ViewPipeline>,
}

impl PushTarget {
    /// Resolves the push source `name` and loads the pipeline of each view over it.
    pub fn new(
        repo: &FeatureRepo,
        name: &str,
        engine: &TransformEngine,
        cache: &ModuleCache,
        limits: &Limits,
    ) -> anyhow::Result<Self> {
        let source = repo
            .source(name)
            .ok_or_else(|| anyhow::anyhow!("no source `{name}` in the repo"))?;
        if !matches!(source.kind, SourceKind::Push { .. }) {
            anyhow::bail!("source `{name}` is not a push source");
        }
        let views = repo
            .views
            .iter()
            .filter(|v| v.source == name)
            .map(|view| ViewPipeline::new(repo, view, engine, cache, limits))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            source: source.clone(),
            views,
        })
    }

    /// Writes straight to `view`'s online store, as Feast's
    /// `write_to_online_store` does: the rows are the view's own (join keys,
    /// timestamps, features), cast to its declared types and checked, with
    /// no transform run. A view whose features fvhost computes (windowed
    /// aggregations) is refused: its events are pushed instead.
    pub fn direct(
        repo: &FeatureRepo,
        view: &str,
        engine: &TransformEngine,
        cache: &ModuleCache,
    ) -> anyhow::Result<Self> {
        let mut definition = repo
            .view(view)
            .ok_or_else(|| anyhow::anyhow!("no feature view `{view}` in the repo"))?
            .clone();
        if definition.windowing.is_some() {
            anyhow::bail!(
                "view `{view}` aggregates over windows, which fvhost computes from events: push the events to its source instead"
            );
        }
        definition.transform = None;
        let source = repo
            .source(&definition.source)
            .ok_or_else(|| anyhow::anyhow!("source `{}` is not in the repo", definition.source))?
            .clone();
        let pipeline = ViewPipeline::new(repo, &definition, engine, cache, &Limits::default())?;
        Ok(Self {
            source,
            views: vec![pipeline],
        })
    }

    /// Pushes `batch` to the online store (through `online`) and/or the
    /// offline store. A row that cannot be pushed refuses the whole push.
    pub async fn push(
        &self,
        repo: &FeatureRepo,
        batch: RecordBatch,
        to: PushTo,
        online: Option<&OnlineConnection>,
    ) -> anyhow::Result<PushSummary> {
        let batch = self.checked(batch)?;
        let mut summary = self.summary();
        let mut offline = self.offline_writer(repo, to, &batch)?;
        self.push_one(&batch, 0, offline.as_mut(), online, repo, to, &mut summary)
            .await?;
        if let Some(file) = offline {
            summary.offline_file = Some(file.finish()?.display().to_string());
        }
        Ok(summary)
    }

    /// Pushes a file batch by batch, so memory follows a batch, not the
    /// file. The file is read twice: every row is checked before anything
    /// is written, so a row that cannot be pushed still refuses the whole push.
    pub async fn push_file(
        &self,
        repo: &FeatureRepo,
        file: &PushFile,
        to: PushTo,
        online: Option<&OnlineConnection>,
    ) -> anyhow::Result<PushSummary> {
        let mut first_row = 0u64;
        for batch in file.batches()? {
            let batch = batch?;
            let rows = batch.num_rows() as u64;
            self.checked(batch).with_context(|| {
                format!(
                    "in the file's rows {first_row}..{} (rows counted from 0)",
                    first_row + rows
                )
            })?;
            first_row += rows;
        }
        let mut summary = self.summary();
        let mut offline: Option<SourceWriter> = None;
        let mut first_row = 0u64;
        for batch in file.batches()? {
            let batch = self.checked(batch?)?;
            if offline.is_none() {
                offline = self.offline_writer(repo, to, &batch)?;
            }
            self.push_one(
                &batch,
                first_row,
                offline.as_mut(),
                online,
                repo,
                to,
                &mut summary,
            )
            .await?;
            first_row += batch.num_rows() as u64;
        }
        if let Some(file) = offline {
            summary.offline_file = Some(file.finish()?.display().to_string());
        }
        if summary.rows == 0 {
            anyhow::bail!("{}: no rows", file.path.display());
        }
        Ok(summary)
    }

    /// `batch` cast to the declared types and checked: every row pushable.
    fn checked(&self, batch: RecordBatch) -> anyhow::Result<RecordBatch> {
        let batch = self.conform(batch)?;
        self.refuse_future_rows(&batch)?;
        Ok(batch)
    }

    fn summary(&self) -> PushSummary {
        PushSummary {
            source: self.source.name.clone(),
            views: self.views.iter().map(|v| v.view.name.clone()).collect(),
            ..PushSummary::default()
        }
    }

    /// One checked batch, whose first row is row `first_row` of the push,
    /// to the offline file and/or through each view to the online store.
    #[allow(clippy::too_many_arguments)]
    async fn push_one(
        &self,
        batch: &RecordBatch,
        first_row: u64,
        offline: Option<&mut SourceWriter>,
        online: Option<&OnlineConnection>,
        repo: &FeatureRepo,
        to: PushTo,
        summary: &mut PushSummary,
    ) -> anyhow::Result<()> {
        summary.rows += batch.num_rows() as u64;
        if let Some(offline) = offline {
            offline.write(batch)?;
        }
        if !to.online() {
            return Ok(());
        }
        let online =
            online.ok_or_else(|| anyhow::anyhow!("pushing online needs a Redis connection"))?;
        for view in &self.views {
            let dead_letters =
                DeadLetterSink::for_view(repo.project(), &view.view, &online.redis, None)?;
            let processed = process(view, batch).await;
            let source = format!("push {}", self.source.name);
            let letters =
                processed.row_letters(&view.dead_letter_context(), batch, &source, first_row);
            summary.rejected_rows += processed.rejected_rows() as u64;
            summary.failed_rows += processed.failed_rows() as u64;
            dead_letters.send(&letters).await?;
            if let Some(plan) = view.window.as_deref() {
                let refused: Vec<usize> = processed.refused.iter().map(|r| r.row).collect();
                let (events, failures) =
                    entity_events(view, plan, &processed.pieces, &refused, |_| None);
                let failures: Vec<_> = failures.into_iter().flatten().collect();
                report_unwritable(&view.view.name, &failures);
                summary.unwritable_rows += failures.len() as u64;
                let state_field = state_field(&view.view.name);
                let stats = apply_events(
                    online.store.as_ref(),
                    plan,
                    &view.fields,
                    &state_field,
                    &events,
                )
                .await?;
                summary.keys_written += stats.keys_written;
                summary.events_aggregated += stats.events_added;
                summary.events_expired += stats.events_expired;
                continue;
            }
            for piece in &processed.pieces {
                let (rows, failures) = view.online_rows(&piece.transformed.checked);
                report_unwritable(&view.view.name, &failures);
                summary.unwritable_rows += failures.len() as u64;
                let stats = online.store.write(&view.fields, &rows).await?;
                summary.keys_written += stats.written;
                summary.keys_skipped_older += stats.skipped_older;
            }
        }
        Ok(())
    }

    /// The push's Parquet file in the push source's batch source, when
    /// pushing offline: written batch by batch, visible once finished.
    fn offline_writer(
        &self,
        repo: &FeatureRepo,
        to: PushTo,
        first: &RecordBatch,
    ) -> anyhow::Result<Option<SourceWriter>> {
        if !to.offline() {
            return Ok(None);
        }
        let SourceKind::Push { batch_source } = &self.source.kind else {
            anyhow::bail!("not a push source")
        };
        let target = repo
            .source(batch_source)
            .ok_or_else(|| anyhow::anyhow!("batch source `{batch_source}` is not in the repo"))?;
        let SourceKind::File { path } = &target.kind else {
            anyhow::bail!("batch source `{batch_source}` is not a file source")
        };
        let target = write_target(&repo.root, path);
        let stem = format!(
            "push-{}-{}",
            self.source.name,
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ")
        );
        let writer = SourceWriter::create(&target, &stem, first.schema(), Vec::new())
            .with_context(|| format!("batch source `{batch_source}`: nothing was pushed"))?;
        Ok(Some(writer))
    }

    /// A push with an event time too far ahead of the host's clock is
    /// refused whole, naming the row: nothing of it is written.
    fn refuse_future_rows(&self, batch: &RecordBatch) -> anyhow::Result<()> {
        let future = FutureLimit::now(self.source.max_future_skew);
        for view in &self.views {
            let column = &view.schema.timestamp_field;
            let Some(times) = batch
                .column_by_name(column)
                .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
            else {
                continue;
            };
            let refused = (0..times.len())
                .find(|&row| times.is_valid(row) && !future.admits(times.value(row)));
            if let Some(row) = refused {
                anyhow::bail!(
                    "row {row}: column `{column}`: {}; nothing was pushed",
                    future.reason(times.value(row))
                );
            }
        }
        Ok(())
    }

    /// The type each view declares for a pushed column (see [`declared_types`]).
    pub fn declared_types(&self) -> HashMap<&str, DataType> {
        declared_types(&self.views)
    }

    /// Casts pushed columns to what the views declare (see [`conform`]); a
    /// value that does not fit fails the push, naming its row and column.
    fn conform(&self, batch: RecordBatch) -> anyhow::Result<RecordBatch> {
        conform(batch, &self.declared_types())
            .map_err(|e| anyhow::anyhow!("{e}; nothing was pushed"))
    }
}

/// The pushed rows through `view`'s transform stage (retries, narrowing).
async fn process(view: &ViewPipeline, batch: &RecordBatch) -> Processed {
    let call = BlockingCall(view);
    let processor = Processor {
        view: &view.view.name,
        version: view.version(),
        call: &call,
        settings: ProcessorSettings::default(),
    };
    let from = format!("push of {} rows", batch.num_rows());
    processor
        .process(batch.clone(), &from, &|| false)
        .await
        .unwrap_or_default()
}

/// Rows per batch when a file is pushed.
pub const PUSH_BATCH: usize = 64 * 1024;

/// A Parquet, CSV (with a header) or JSON-lines file to push, by its
/// extension, read in batches of [`PUSH_BATCH`] rows.
pub struct PushFile {
    pub path: std::path::PathBuf,
    kind: FileKind,
}

enum FileKind {
    Parquet,
    Csv(Arc<Schema>),
    Json(Arc<Schema>),
}

/// Batches of a pushed file.
pub type Batches = Box<dyn Iterator<Item = anyhow::Result<RecordBatch>>>;

impl PushFile {
    /// Opens `path` and, for CSV and JSON lines, infers the schema from its
    /// first 10,000 rows.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let kind = match extension.as_str() {
            "parquet" => FileKind::Parquet,
            "csv" => {
                let format = arrow_csv::reader::Format::default().with_header(true);
                let (schema, _) = format.infer_schema(open(path)?, Some(10_000))?;
                FileKind::Csv(Arc::new(schema))
            }
            "json" | "jsonl" | "ndjson" => {
                let (schema, _) = arrow_json::reader::infer_json_schema_from_seekable(
                    std::io::BufReader::new(open(path)?),
                    Some(10_000),
                )?;
                FileKind::Json(Arc::new(schema))
            }
            other => anyhow::bail!(
                "{}: cannot push a `.{other}` file (use .parquet, .csv or .jsonl)",
                path.display()
            ),
        };
        Ok(Self {
            path: path.to_path_buf(),
            kind,
        })
    }

    /// The file's rows from the start, a batch at a time.
    pub fn batches(&self) -> anyhow::Result<Batches> {
        let file = open(&self.path)?;
        Ok(match &self.kind {
            FileKind::Parquet => Box::new(
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
                    .with_batch_size(PUSH_BATCH)
                    .build()?
                    .map(|b| b.map_err(anyhow::Error::from)),
            ),
            FileKind::Csv(schema) => Box::new(
                arrow_csv::ReaderBuilder::new(schema.clone())
                    .with_format(arrow_csv::reader::Format::default().with_header(true))
                    .with_batch_size(PUSH_BATCH)
                    .build(file)?
                    .map(|b| b.map_err(anyhow::Error::from)),
            ),
            FileKind::Json(schema) => Box::new(
                arrow_json::ReaderBuilder::new(schema.clone())
                    .with_batch_size(PUSH_BATCH)
                    .build(std::io::BufReader::new(file))?
                    .map(|b| b.map_err(anyhow::Error::from)),
            ),
        })
    }
}

fn open(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn report_unwritable(view: &str, failures: &[RowFailure]) {
    for failure in failures.iter().take(3) {
        tracing::warn!(view, "pushed row not written: {}", failure.reason);
    }
}
