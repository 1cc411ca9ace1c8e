//! Reading a FileSource over a time range, in bounded memory.
//!
//! Only the columns asked for are decoded (projection), row groups whose
//! timestamp statistics fall outside the range are skipped unread (pruning),
//! and rows come out in batches, so memory follows the batch size and the
//! row-group size, never the size of the source.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Schema, TimeUnit};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::{OfflineError, TRANSFORMED_FOR_VIEW};

/// What to read.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    pub files: Vec<PathBuf>,
    /// The event timestamp column, as named in the files.
    pub timestamp_column: String,
    /// Inclusive range, microseconds since the epoch.
    pub start_micros: i64,
    pub end_micros: i64,
    /// Columns to read, as named in the files; `None` reads every column.
    pub columns: Option<Vec<String>>,
    pub batch_size: usize,
}

/// What a scan did, for progress and summaries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ScanStats {
    pub files: u64,
    pub row_groups: u64,
    pub row_groups_read: u64,
    pub rows_read: u64,
    pub rows_in_range: u64,
    /// Rows without an event time: in no range, counted and logged.
    pub rows_without_timestamp: u64,
}

/// One batch of rows inside the range.
#[derive(Debug)]
pub struct ScannedBatch {
    pub batch: RecordBatch,
    /// The file it came from.
    pub file: Arc<PathBuf>,
    /// Set when the file was written by a view's offline log: the rows are
    /// that view's transformed output already.
    pub transformed_for_view: Option<String>,
}

/// Iterates the batches of a scan, file by file.
pub struct Scanner {
    request: ScanRequest,
    next_file: usize,
    current: Option<OpenFile>,
    pub stats: ScanStats,
}

struct OpenFile {
    path: Arc<PathBuf>,
    reader: ParquetRecordBatchReader,
    transformed_for_view: Option<String>,
}

impl Scanner {
    pub fn new(request: ScanRequest) -> Self {
        Self {
            request,
            next_file: 0,
            current: None,
            stats: ScanStats::default(),
        }
    }

    fn open(&mut self, path: &Path) -> Result<OpenFile, OfflineError> {
        let file = File::open(path).map_err(|e| OfflineError::file(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| OfflineError::file(path, e))?;
        let metadata = builder.metadata().clone();
        let schema = builder.schema().clone();
        let ts = &self.request.timestamp_column;
        match schema.field_with_name(ts).map(|f| f.data_type()) {
            Ok(DataType::Timestamp(..)) => {}
            Ok(other) => {
                return Err(column_error(
                    path,
                    ts,
                    format!("is {other}; the timestamp field must be a timestamp"),
                ));
            }
            Err(_) => {
                return Err(column_error(
                    path,
                    ts,
                    "is missing (it is the source's timestamp_field)".into(),
                ));
            }
        }
        let keep = self.row_groups_in_range(
            path,
            &schema,
            builder.parquet_schema(),
            metadata.row_groups(),
        )?;
        self.stats.files += 1;
        self.stats.row_groups += metadata.num_row_groups() as u64;
        self.stats.row_groups_read += keep.len() as u64;
        let mask = match &self.request.columns {
            None => ProjectionMask::all(),
            Some(columns) => {
                let mut indices = Vec::with_capacity(columns.len() + 1);
                for name in columns.iter().chain(std::iter::once(ts)) {
                    let index = schema
                        .index_of(name)
                        .map_err(|_| column_error(path, name, "is missing".into()))?;
                    if !indices.contains(&index) {
                        indices.push(index);
                    }
                }
                indices.sort_unstable();
                ProjectionMask::roots(builder.parquet_schema(), indices)
            }
        };
        let transformed_for_view = metadata
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == TRANSFORMED_FOR_VIEW))
            .and_then(|k| k.value.clone());
        let reader = builder
            .with_row_groups(keep)
            .with_projection(mask)
            .with_batch_size(self.request.batch_size.max(1))
            .build()
            .map_err(|e| OfflineError::file(path, e))?;
        Ok(OpenFile {
            path: Arc::new(path.to_path_buf()),
            reader,
            transformed_for_view,
        })
    }

    /// Row groups whose [min, max] timestamp statistics overlap the range;
    /// a row group without statistics is read.
    fn row_groups_in_range(
        &self,
        path: &Path,
        schema: &Schema,
        parquet_schema: &parquet::schema::types::SchemaDescriptor,
        row_groups: &[parquet::file::metadata::RowGroupMetaData],
    ) -> Result<Vec<usize>, OfflineError> {
        let converter =
            StatisticsConverter::try_new(&self.request.timestamp_column, schema, parquet_schema)
                .map_err(|e| OfflineError::file(path, e))?;
        let mins = converter
            .row_group_mins(row_groups.iter())
            .map_err(|e| OfflineError::file(path, e))?;
        let maxes = converter
            .row_group_maxes(row_groups.iter())
            .map_err(|e| OfflineError::file(path, e))?;
        let (mins, maxes) = (micros(&mins), micros(&maxes));
        Ok((0..row_groups.len())
            .filter(|&i| {
                let below = maxes
                    .as_ref()
                    .is_some_and(|m| m.is_valid(i) && m.value(i) < self.request.start_micros);
                let above = mins
                    .as_ref()
                    .is_some_and(|m| m.is_valid(i) && m.value(i) > self.request.end_micros);
                !below && !above
            })
            .collect())
    }

    fn filter_range(
        &mut self,
        path: &Path,
        batch: RecordBatch,
    ) -> Result<RecordBatch, OfflineError> {
        self.stats.rows_read += batch.num_rows() as u64;
        let column = batch
            .column_by_name(&self.request.timestamp_column)
            .ok_or_else(|| {
                column_error(path, &self.request.timestamp_column, "is missing".into())
            })?;
        let Some(times) = micros(column) else {
            return Err(column_error(
                path,
                &self.request.timestamp_column,
                "is not a timestamp".into(),
            ));
        };
        let without = times.null_count() as u64;
        if without > 0 {
            tracing::warn!(
                file = %path.display(),
                column = %self.request.timestamp_column,
                rows = without,
                "rows without an event time are skipped"
            );
            self.stats.rows_without_timestamp += without;
        }
        let (start, end) = (self.request.start_micros, self.request.end_micros);
        let keep: BooleanArray = times
            .iter()
            .map(|t| Some(t.is_some_and(|t| t >= start && t <= end)))
            .collect();
        let kept = if keep.true_count() == batch.num_rows() {
            batch
        } else {
            arrow_select::filter::filter_record_batch(&batch, &keep)
                .map_err(|e| OfflineError::file(path, e))?
        };
        self.stats.rows_in_range += kept.num_rows() as u64;
        Ok(kept)
    }
}

impl Iterator for Scanner {
    type Item = Result<ScannedBatch, OfflineError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let path = self.request.files.get(self.next_file)?.clone();
                self.next_file += 1;
                match self.open(&path) {
                    Ok(open) => self.current = Some(open),
                    Err(e) => return Some(Err(e)),
                }
            }
            let open = self.current.as_mut()?;
            match open.reader.next() {
                None => self.current = None,
                Some(Err(e)) => return Some(Err(OfflineError::file(&open.path.clone(), e))),
                Some(Ok(batch)) => {
                    let (path, marker) = (open.path.clone(), open.transformed_for_view.clone());
                    let batch = match self.filter_range(&path, batch) {
                        Ok(batch) => batch,
                        Err(e) => return Some(Err(e)),
                    };
                    if batch.num_rows() > 0 {
                        return Some(Ok(ScannedBatch {
                            batch,
                            file: path,
                            transformed_for_view: marker,
                        }));
                    }
                }
            }
        }
    }
}

fn column_error(path: &Path, column: &str, problem: String) -> OfflineError {
    OfflineError::Column {
        path: path.display().to_string(),
        column: column.to_string(),
        problem,
    }
}

/// A timestamp array as microseconds (any unit, any time zone: the instant is kept).
pub fn micros(array: &ArrayRef) -> Option<arrow_array::TimestampMicrosecondArray> {
    let DataType::Timestamp(_, tz) = array.data_type() else {
        return None;
    };
    let cast = arrow_cast::cast(
        array,
        &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
    )
    .ok()?;
    Some(cast.as_primitive::<TimestampMicrosecondType>().clone())
}

/// Rows in the row groups a scan will read (after pruning): the upper bound
/// a progress bar counts towards. Reads footers only.
pub fn estimate_rows(request: &ScanRequest) -> Result<u64, OfflineError> {
    let mut rows = 0u64;
    let scanner = Scanner::new(request.clone());
    for path in &request.files {
        let file = File::open(path).map_err(|e| OfflineError::file(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| OfflineError::file(path, e))?;
        let schema = builder.schema().clone();
        let groups = builder.metadata().row_groups();
        for i in scanner.row_groups_in_range(path, &schema, builder.parquet_schema(), groups)? {
            rows += groups[i].num_rows().max(0) as u64;
        }
    }
    Ok(rows)
}
