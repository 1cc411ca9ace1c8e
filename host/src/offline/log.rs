//! The offline log: a stream view's served rows appended to its batch source
//! as Parquet, so the next materialization or training job reads exactly
//! what was served.
//!
//! Files are written under `date=YYYY-MM-DD/` (the event date, UTC) as
//! `_<view>-<time>-<n>.parquet.inprogress`, invisible to readers, and renamed
//! to `<view>-<time>-<n>.parquet` once complete and synced: a reader never
//! sees a half-written file. Files rotate by size and by age; the stream loop
//! commits its offsets only after a rotation made the rows durable.
//!
//! A batch source that is one Parquet file gets the rows appended instead
//! (see [`super::append`]): they are staged in a hidden folder beside it and
//! appended at each rotation.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::append::{append_files, sibling};
use super::files::WriteTarget;
use super::{OfflineError, TRANSFORMED_FOR_VIEW};
use crate::transform::{CheckedBatch, ViewSchema};

/// When to start a new file.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    pub max_bytes: u64,
    pub max_age: Duration,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(60),
        }
    }
}

/// The open files of one view's offline log, one per event date.
pub struct OfflineLog {
    dir: PathBuf,
    view: String,
    schema: SchemaRef,
    rotation: Rotation,
    open: BTreeMap<String, FileWriter>,
    opened_at: Option<Instant>,
    sequence: u64,
    /// The single file rotated rows are appended to, when the source is one.
    append_to: Option<PathBuf>,
}

impl OfflineLog {
    /// A log into `target` for the view described by `view`.
    pub fn new(target: &WriteTarget, view: &ViewSchema, rotation: Rotation) -> Self {
        let (dir, append_to) = match target {
            WriteTarget::Folder(dir) => (dir.clone(), None),
            WriteTarget::SingleFile(file) => {
                // Per process, so hosts sharing the file never touch each
                // other's staged rows; what a crashed run left was never
                // committed (its events are read again), so it goes.
                let staging = sibling(
                    file,
                    &format!("{}.{}.staging", view.view, std::process::id()),
                );
                let _ = std::fs::remove_dir_all(&staging);
                (staging, Some(file.clone()))
            }
        };
        Self {
            append_to,
            dir,
            view: view.view.clone(),
            schema: log_schema(view),
            rotation,
            open: BTreeMap::new(),
            opened_at: None,
            sequence: 0,
        }
    }

    /// The schema of the log's files: join keys, timestamp, created, features.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Appends the rows of `checked` whose index is not in `skip`.
    pub fn append(&mut self, checked: &CheckedBatch, skip: &[usize]) -> Result<(), OfflineError> {
        let batch = self.log_batch(checked)?;
        for (date, rows) in split_by_date(&batch, checked, skip) {
            let part = arrow_select::filter::filter_record_batch(&batch, &rows)
                .map_err(|e| OfflineError::file(&self.dir, e))?;
            if part.num_rows() == 0 {
                continue;
            }
            self.file_for(&date)?.write(&part)?;
        }
        Ok(())
    }

    /// Whether the open files are due to be finished.
    pub fn should_rotate(&self) -> bool {
        let too_old = self
            .opened_at
            .is_some_and(|t| t.elapsed() >= self.rotation.max_age);
        let too_big = self
            .open
            .values()
            .any(|f| f.size() >= self.rotation.max_bytes);
        too_old || too_big
    }

    /// Whether rows were appended since the last rotation.
    pub fn has_open_files(&self) -> bool {
        !self.open.is_empty()
    }

    /// Finishes every open file: footer written, synced, renamed into view
    /// (or appended to the source's single file). Returns the files written.
    pub fn rotate(&mut self) -> Result<Vec<PathBuf>, OfflineError> {
        let mut finished = Vec::new();
        for (_, file) in std::mem::take(&mut self.open) {
            finished.push(file.finish()?);
        }
        self.opened_at = None;
        let Some(target) = &self.append_to else {
            return Ok(finished);
        };
        if finished.is_empty() {
            return Ok(finished);
        }
        let appended = append_files(target, &finished);
        // Appended or not, the staged rows go: on failure the stream commits
        // nothing and reads the events again.
        let _ = std::fs::remove_dir_all(&self.dir);
        appended.map(|_| vec![target.clone()])
    }

    fn file_for(&mut self, date: &str) -> Result<&mut FileWriter, OfflineError> {
        if !self.open.contains_key(date) {
            let dir = self.dir.join(format!("date={date}"));
            self.sequence += 1;
            let stem = format!(
                "{}-{}-{}",
                self.view,
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
                self.sequence
            );
            let metadata = KeyValue::new(TRANSFORMED_FOR_VIEW.to_string(), self.view.clone());
            let file = FileWriter::create(&dir, &stem, self.schema.clone(), vec![metadata])?;
            self.open.insert(date.to_string(), file);
            self.opened_at.get_or_insert_with(Instant::now);
        }
        self.open
            .get_mut(date)
            .ok_or_else(|| OfflineError::file(&self.dir, "no open file"))
    }

    fn log_batch(&self, checked: &CheckedBatch) -> Result<RecordBatch, OfflineError> {
        let mut columns: Vec<ArrayRef> = checked.join_keys.clone();
        columns.push(Arc::new(checked.event_time.clone().with_timezone("UTC")));
        if self.schema.fields().len() > checked.join_keys.len() + 1 + checked.features.len() {
            let created = match &checked.created {
                Some(c) => Arc::new(c.clone().with_timezone("UTC")) as ArrayRef,
                None => arrow_array::new_null_array(&utc_micros(), checked.rows),
            };
            columns.push(created);
        }
        columns.extend(checked.features.iter().cloned());
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| OfflineError::file(&self.dir, e))
    }
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The columns of the log's rows: join keys, timestamp, created timestamp
/// (if the source has one), features.
pub fn log_schema(view: &ViewSchema) -> SchemaRef {
    let mut fields: Vec<Field> = view
        .join_keys
        .iter()
        .map(|k| Field::new(&k.name, k.value_type.arrow_type(), true))
        .collect();
    fields.push(Field::new(&view.timestamp_field, utc_micros(), false));
    if let Some(created) = &view.created_timestamp_column {
        fields.push(Field::new(created, utc_micros(), true));
    }
    fields.extend(
        view.features
            .iter()
            .map(|f| Field::new(&f.name, f.dtype.arrow_type(), true)),
    );
    Arc::new(Schema::new(fields))
}

/// Row masks per event date (UTC), leaving out `skip` and null timestamps.
fn split_by_date(
    batch: &RecordBatch,
    checked: &CheckedBatch,
    skip: &[usize],
) -> BTreeMap<String, BooleanArray> {
    let mut dates: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let rows = batch.num_rows();
    for row in 0..rows {
        if skip.contains(&row) || arrow_array::Array::is_null(&checked.event_time, row) {
            continue;
        }
        let date = chrono::DateTime::from_timestamp_micros(checked.event_time.value(row))
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "invalid".into());
        dates.entry(date).or_insert_with(|| vec![false; rows])[row] = true;
    }
    dates
        .into_iter()
        .map(|(date, mask)| (date, BooleanArray::from(mask)))
        .collect()
}

/// A Parquet file written batch by batch as `_<stem>.parquet.inprogress`,
/// which readers skip, then fsynced and renamed to `<stem>.parquet`: the
/// offline log's files and offline pushes.
pub struct FileWriter {
    in_progress: PathBuf,
    finished: PathBuf,
    writer: ArrowWriter<File>,
}

impl FileWriter {
    /// Opens the in-progress file; `metadata` goes into the Parquet footer.
    pub fn create(
        dir: &Path,
        stem: &str,
        schema: SchemaRef,
        metadata: Vec<KeyValue>,
    ) -> Result<Self, OfflineError> {
        std::fs::create_dir_all(dir).map_err(|e| OfflineError::file(dir, e))?;
        let in_progress = dir.join(format!("_{stem}.parquet.inprogress"));
        let finished = dir.join(format!("{stem}.parquet"));
        // Created new and never through a link: the folder is the repo
        // writer's, who could have planted one at this name.
        let handle = File::options()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&in_progress)
            .map_err(|e| OfflineError::file(&in_progress, e))?;
        let properties = WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .set_key_value_metadata((!metadata.is_empty()).then_some(metadata))
            .build();
        let writer = ArrowWriter::try_new(handle, schema, Some(properties))
            .map_err(|e| OfflineError::file(&in_progress, e))?;
        Ok(Self {
            in_progress,
            finished,
            writer,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), OfflineError> {
        self.writer
            .write(batch)
            .map_err(|e| OfflineError::file(&self.in_progress, e))
    }

    /// Bytes written so far, buffered rows included: what rotation goes by.
    pub fn size(&self) -> u64 {
        self.writer.bytes_written() as u64 + self.writer.in_progress_size() as u64
    }

    /// Completes the file: durable, then visible under its final name (the
    /// folder synced too, so the rename survives a crash).
    pub fn finish(self) -> Result<PathBuf, OfflineError> {
        let handle = self
            .writer
            .into_inner()
            .map_err(|e| OfflineError::file(&self.in_progress, e))?;
        handle
            .sync_all()
            .map_err(|e| OfflineError::file(&self.in_progress, e))?;
        std::fs::rename(&self.in_progress, &self.finished)
            .map_err(|e| OfflineError::file(&self.finished, e))?;
        if let Some(dir) = self.finished.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(self.finished)
    }
}
