//! `fvhost test-transform`: a module run on sample events as the host
//! would run it for a view (the view's config, the same limits, the same
//! transform stage with retries and narrowing, the same output schema
//! check), without Kafka or Redis: the loop a transform author lives in.
//!
//! Events come from a file: JSON lines decoded exactly as the view's Kafka
//! source decodes its messages (when the source is a JSON Kafka source), or
//! Parquet, CSV or JSON lines cast to the view's declared types, as `push`
//! reads them.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, RecordBatch};

use crate::pipeline::conform::{conform, declared_types};
use crate::pipeline::processor::{BlockingCall, Processor, ProcessorSettings, RefusedRow};
use crate::pipeline::push::PushFile;
use crate::pipeline::view::ViewPipeline;
use crate::repo::{FeatureRepo, SourceKind, TransformSpec};
use crate::transform::cache::ModuleCache;
use crate::transform::schema_check::CheckedBatch;
use crate::transform::{Limits, TransformEngine};

/// Largest events file read (its lines are decoded in memory).
const MAX_EVENTS_FILE: u64 = 256 * 1024 * 1024;

/// One input batch's run.
pub struct BatchRun {
    /// Rows given to the transform.
    pub input_rows: usize,
    /// The checked output, one batch per piece that transformed.
    pub output: Vec<RecordBatch>,
    /// Input rows rejected by the transform or failed in it, with reasons.
    pub refused: Vec<RefusedRow>,
    /// Transform calls that failed before the batch was narrowed down.
    pub failed_attempts: u32,
    pub micros: u64,
}

/// A test run over a file of events.
pub struct TestRun {
    pub view: String,
    /// Events the source's decoder refused: (line, reason).
    pub undecodable: Vec<(usize, String)>,
    pub batches: Vec<BatchRun>,
}

/// Runs `module` as view `view`'s transform over the events in `events`,
/// `batch_rows` events per batch.
pub async fn test_transform(
    repo: &FeatureRepo,
    view: &str,
    module: &Path,
    events: &Path,
    batch_rows: usize,
) -> anyhow::Result<TestRun> {
    let mut definition = repo
        .view(view)
        .ok_or_else(|| anyhow::anyhow!("no feature view `{view}` in the repo"))?
        .clone();
    let config = definition
        .transform
        .as_ref()
        .map(|t| t.config.clone())
        .unwrap_or_default();
    definition.transform = Some(TransformSpec {
        module: module.to_path_buf(),
        config,
    });
    let engine = TransformEngine::new()?;
    let cache = ModuleCache::new(crate::transform::cache::default_dir());
    let limits = Limits::default();
    let pipeline = tokio::task::block_in_place(|| {
        ViewPipeline::new(repo, &definition, &engine, &cache, &limits)
    })
    .map_err(|e| anyhow::anyhow!("view `{view}` with {}: {e}", module.display()))?;
    let Events {
        batches: inputs,
        undecodable,
    } = read_events(&pipeline, events, batch_rows.max(1))?;
    let mut batches = Vec::new();
    for input in inputs {
        let call = BlockingCall(&pipeline);
        let processor = Processor {
            view: &pipeline.view.name,
            version: pipeline.version(),
            call: &call,
            settings: ProcessorSettings::default(),
        };
        let started = Instant::now();
        let processed = processor
            .process(input.clone(), "test-transform", &|| false)
            .await
            .unwrap_or_default();
        batches.push(BatchRun {
            input_rows: input.num_rows(),
            output: processed
                .pieces
                .into_iter()
                .map(|piece| checked_batch(&pipeline, &piece.transformed.checked))
                .collect::<anyhow::Result<_>>()?,
            refused: processed.refused,
            failed_attempts: processed.failed_attempts,
            micros: started.elapsed().as_micros() as u64,
        });
    }
    Ok(TestRun {
        view: view.to_string(),
        undecodable,
        batches,
    })
}

/// An events file as input batches.
struct Events {
    batches: Vec<RecordBatch>,
    /// Lines the source's decoder refused: (line, reason).
    undecodable: Vec<(usize, String)>,
}

/// The events file as input batches, and the lines its decoder refused.
fn read_events(pipeline: &ViewPipeline, path: &Path, batch_rows: usize) -> anyhow::Result<Events> {
    let json_lines = path
        .extension()
        .is_some_and(|e| e == "jsonl" || e == "ndjson" || e == "json");
    if let (true, SourceKind::Kafka(kafka)) = (json_lines, &pipeline.source.kind) {
        let bytes = crate::bounded_file::read(path, MAX_EVENTS_FILE, "an events file")?;
        let required = pipeline.required_columns();
        let mut decoder = kafka
            .format
            .decoder(&pipeline.source.field_mapping, &required);
        let mut batches = Vec::new();
        let mut undecodable = Vec::new();
        let mut pending = 0;
        for (line, text) in bytes.split(|b| *b == b'\n').enumerate() {
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match decoder.append(text) {
                Ok(()) => pending += 1,
                Err(e) => undecodable.push((line + 1, e.to_string())),
            }
            if pending == batch_rows {
                batches.push(decoder.finish()?);
                pending = 0;
            }
        }
        if pending > 0 {
            batches.push(decoder.finish()?);
        }
        return Ok(Events {
            batches,
            undecodable,
        });
    }
    let file = PushFile::open(path)?;
    let declared = declared_types(std::slice::from_ref(pipeline));
    let mut batches = Vec::new();
    for batch in file.batches()? {
        let batch =
            conform(batch?, &declared).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut offset = 0;
        while offset < batch.num_rows() {
            let length = batch_rows.min(batch.num_rows() - offset);
            batches.push(batch.slice(offset, length));
            offset += length;
        }
    }
    Ok(Events {
        batches,
        undecodable: Vec::new(),
    })
}

/// `batch` as a text table of at most `max_rows` rows.
pub fn table(batch: &RecordBatch, max_rows: usize) -> String {
    use arrow_cast::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("null");
    let schema = batch.schema();
    let mut cells: Vec<Vec<String>> =
        vec![schema.fields().iter().map(|f| f.name().clone()).collect()];
    let formatters: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect();
    for row in 0..batch.num_rows().min(max_rows) {
        cells.push(
            formatters
                .iter()
                .map(|f| match f {
                    Ok(f) => f.value(row).to_string(),
                    Err(_) => "?".into(),
                })
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..cells[0].len())
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
                .min(40)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| {
                let cell: String = cell.chars().take(*width).collect();
                format!("{cell:<width$}")
            })
            .collect();
        out.push_str(line.join(" | ").trim_end());
        out.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("-+-"));
            out.push('\n');
        }
    }
    if batch.num_rows() > max_rows {
        out.push_str(&format!("... {} more rows\n", batch.num_rows() - max_rows));
    }
    out
}

/// The checked output as the view writes it: join keys, event time,
/// created time, features, with the view's names and declared types.
fn checked_batch(pipeline: &ViewPipeline, checked: &CheckedBatch) -> anyhow::Result<RecordBatch> {
    let schema = &pipeline.schema;
    let mut columns: Vec<(String, ArrayRef)> = schema
        .join_keys
        .iter()
        .zip(&checked.join_keys)
        .map(|(key, column)| (key.name.clone(), column.clone()))
        .collect();
    columns.push((
        schema.timestamp_field.clone(),
        Arc::new(checked.event_time.clone()),
    ));
    if let (Some(name), Some(created)) = (&schema.created_timestamp_column, &checked.created) {
        columns.push((name.clone(), Arc::new(created.clone())));
    }
    columns.extend(
        schema
            .features
            .iter()
            .zip(&checked.features)
            .map(|(feature, column)| (feature.name.clone(), column.clone())),
    );
    Ok(RecordBatch::try_from_iter(columns)?)
}
