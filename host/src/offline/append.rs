//! Appending rows to a batch source that is one Parquet file, as Feast does
//! (its file offline store rewrites the file with the rows added).
//!
//! Readers never see a half-written file: the old rows and the new ones are
//! written to a new `_<name>.<pid>.<time>.inprogress` beside the file (a
//! name readers skip), synced, and renamed over it. Appenders on this
//! machine take an exclusive lock on `_<name>.lock` first, so two appends (a
//! push and the offline log, say) never lose each other's rows. The new rows
//! must fit the file: each of their columns is one of the file's (cast
//! safely to its type), and a file column they lack must be nullable.
//!
//! The folder belongs to whoever writes the repo, so nothing in it is
//! trusted: no path is followed through a symbolic link (the target, the
//! lock, the staging file), the staging file is created new (never an
//! existing entry), and every open is non-blocking, so a FIFO planted at one
//! of the names is an error, not a hang.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;

use super::OfflineError;
use super::files::WriteTarget;

/// Appends the rows of the Parquet files `staged` to the Parquet file
/// `target` (created if missing, with the first staged file's schema).
/// Returns the rows appended.
pub fn append_files(target: &Path, staged: &[PathBuf]) -> Result<u64, OfflineError> {
    let existing = check_target(target)?;
    let _lock = Lock::take(target)?;
    let schema = match existing {
        true => file_schema(target)?,
        false => match staged.first() {
            Some(first) => file_schema(first)?,
            None => return Ok(0),
        },
    };
    let unique = format!(
        "{}.{}.inprogress",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let in_progress = sibling(target, &unique);
    let written = write_all(target, existing, staged, &schema, &in_progress);
    let appended = match written {
        Ok(appended) => appended,
        Err(e) => {
            let _ = std::fs::remove_file(&in_progress);
            return Err(e);
        }
    };
    std::fs::rename(&in_progress, target).map_err(|e| OfflineError::file(target, e))?;
    if let Some(dir) = target.parent() {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(appended)
}

/// The old rows, then the staged ones fitted to `schema`, into `out` (synced).
fn write_all(
    target: &Path,
    existing: bool,
    staged: &[PathBuf],
    schema: &SchemaRef,
    out: &Path,
) -> Result<u64, OfflineError> {
    let handle = File::options()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(out)
        .map_err(|e| OfflineError::file(out, e))?;
    let properties = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(handle, schema.clone(), Some(properties))
        .map_err(|e| OfflineError::file(out, e))?;
    if existing {
        for batch in read_batches(target)? {
            let batch = batch.map_err(|e| OfflineError::file(target, e))?;
            writer
                .write(&batch)
                .map_err(|e| OfflineError::file(out, e))?;
        }
    }
    let mut appended = 0;
    for file in staged {
        for batch in read_batches(file)? {
            let batch = batch.map_err(|e| OfflineError::file(file, e))?;
            let fitted = fit(&batch, schema).map_err(|e| OfflineError::file(target, e))?;
            appended += fitted.num_rows() as u64;
            writer
                .write(&fitted)
                .map_err(|e| OfflineError::file(out, e))?;
        }
    }
    let handle = writer
        .into_inner()
        .map_err(|e| OfflineError::file(out, e))?;
    handle.sync_all().map_err(|e| OfflineError::file(out, e))?;
    Ok(appended)
}

/// `batch` with `schema`'s columns: its own, cast safely, or nulls where it
/// lacks a nullable one. Any other difference is the reason it cannot be appended.
pub fn fit(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    check_fits(&batch.schema(), schema)?;
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) => arrow_cast::cast_with_options(column, field.data_type(), &options)
                .map_err(|e| format!("column `{}`: {e}", field.name())),
            None => Ok(arrow_array::new_null_array(
                field.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<Result<Vec<ArrayRef>, String>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// Why rows of schema `rows` cannot be appended to a file of schema `file`.
pub fn check_fits(rows: &Schema, file: &Schema) -> Result<(), String> {
    let foreign: Vec<&str> = rows
        .fields()
        .iter()
        .filter(|f| file.field_with_name(f.name()).is_err())
        .map(|f| f.name().as_str())
        .collect();
    if !foreign.is_empty() {
        return Err(format!(
            "the file has no column {}",
            foreign
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for field in file.fields() {
        match rows.field_with_name(field.name()) {
            Ok(row_field)
                if !arrow_cast::can_cast_types(row_field.data_type(), field.data_type()) =>
            {
                return Err(format!(
                    "column `{}` is {} in the file, and {} cannot become it",
                    field.name(),
                    field.data_type(),
                    row_field.data_type()
                ));
            }
            Err(_) if !field.is_nullable() => {
                return Err(format!(
                    "column `{}` of the file is not nullable, and the rows do not have it",
                    field.name()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether the target exists, refusing what cannot be appended to safely:
/// a symbolic link (renaming over it would replace the link, and following
/// it would write wherever it points) or anything but a regular file.
pub fn check_target(target: &Path) -> Result<bool, OfflineError> {
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(OfflineError::file(target, e)),
        Ok(meta) if meta.file_type().is_symlink() => Err(OfflineError::file(
            target,
            "is a symbolic link; name the Parquet file itself (appending replaces the file)",
        )),
        Ok(meta) if !meta.is_file() => Err(OfflineError::file(
            target,
            "is not a regular file; only a Parquet file is appended to",
        )),
        Ok(_) => Ok(true),
    }
}

/// Opens a regular file for reading without following a link or blocking.
fn open_regular(path: &Path) -> Result<File, OfflineError> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| OfflineError::file(path, e))?;
    let meta = file.metadata().map_err(|e| OfflineError::file(path, e))?;
    if !meta.is_file() {
        return Err(OfflineError::file(path, "is not a regular file"));
    }
    Ok(file)
}

/// The Arrow schema of the Parquet file at `path`.
pub fn file_schema(path: &Path) -> Result<SchemaRef, OfflineError> {
    let file = open_regular(path)?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| OfflineError::file(path, e))?;
    // Key-value metadata (pandas', say) stays out: the file is rewritten whole.
    Ok(Arc::new(Schema::new(builder.schema().fields().clone())))
}

fn read_batches(
    path: &Path,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, OfflineError> {
    let file = open_regular(path)?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| OfflineError::file(path, e))
}

/// Rows bound for a FileSource: a new file in its folder, or rows staged
/// beside its single file and appended to it when finished.
pub struct SourceWriter {
    file: super::log::FileWriter,
    append_to: Option<PathBuf>,
}

impl SourceWriter {
    /// A writer of rows of `schema` into `target`. Rows for a single file
    /// must fit it (checked here, before anything is written).
    pub fn create(
        target: &WriteTarget,
        stem: &str,
        schema: SchemaRef,
        metadata: Vec<parquet::file::metadata::KeyValue>,
    ) -> Result<Self, OfflineError> {
        match target {
            WriteTarget::Folder(dir) => Ok(Self {
                file: super::log::FileWriter::create(dir, stem, schema, metadata)?,
                append_to: None,
            }),
            WriteTarget::SingleFile(path) => {
                if check_target(path)? {
                    let file = file_schema(path)?;
                    check_fits(&schema, &file).map_err(|e| OfflineError::file(path, e))?;
                }
                let dir = path.parent().unwrap_or(Path::new("."));
                Ok(Self {
                    file: super::log::FileWriter::create(
                        dir,
                        &format!("_{stem}"),
                        schema,
                        metadata,
                    )?,
                    append_to: Some(path.clone()),
                })
            }
        }
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), OfflineError> {
        self.file.write(batch)
    }

    /// Completes the rows: the new file, or the single file they were appended to.
    pub fn finish(self) -> Result<PathBuf, OfflineError> {
        let staged = self.file.finish()?;
        let Some(target) = self.append_to else {
            return Ok(staged);
        };
        let appended = append_files(&target, std::slice::from_ref(&staged));
        let _ = std::fs::remove_file(&staged);
        appended.map(|_| target)
    }
}

/// `_<name>.<suffix>` beside `target`: a name readers of the folder skip.
pub fn sibling(target: &Path, suffix: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!("_{name}.{suffix}"))
}

/// An exclusive `flock` on `_<name>.lock`, released when dropped.
struct Lock(File);

impl Lock {
    fn take(target: &Path) -> Result<Self, OfflineError> {
        let path = sibling(target, "lock");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| OfflineError::file(dir, e))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| OfflineError::file(&path, e))?;
        let is_file = file.metadata().is_ok_and(|m| m.is_file());
        if !is_file {
            return Err(OfflineError::file(&path, "is not a regular file"));
        }
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if locked != 0 {
            return Err(OfflineError::file(&path, std::io::Error::last_os_error()));
        }
        Ok(Self(file))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: as in `take`; closing the file would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field};

    fn write(path: &Path, batch: &RecordBatch) {
        let mut writer =
            ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
    }

    fn read(path: &Path) -> Vec<RecordBatch> {
        read_batches(path).unwrap().map(Result::unwrap).collect()
    }

    fn file_batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("driver_id", DataType::Int64, true),
            Field::new("conv_rate", DataType::Float64, true),
            Field::new("note", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(Float64Array::from(vec![0.5, 0.25])),
                Arc::new(StringArray::from(vec!["a", "b"])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rows_are_appended_fitted_to_the_files_columns() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("stats.parquet");
        write(&target, &file_batch());
        let staged = dir.path().join("_staged.parquet");
        let rows = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("conv_rate", DataType::Float32, true),
                Field::new("driver_id", DataType::Int32, true),
            ])),
            vec![
                Arc::new(arrow_array::Float32Array::from(vec![0.75])),
                Arc::new(arrow_array::Int32Array::from(vec![3])),
            ],
        )
        .unwrap();
        write(&staged, &rows);
        assert_eq!(append_files(&target, &[staged]).unwrap(), 1);
        let batches = read(&target);
        let all = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(all.num_rows(), 3);
        let ids = all.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.values(), &[1, 2, 3]);
        assert!(
            arrow_array::Array::is_null(all.column(2).as_ref(), 2),
            "a column the rows lack is null"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("inprogress"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn rows_that_do_not_fit_change_nothing_and_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("stats.parquet");
        write(&target, &file_batch());
        let before = std::fs::read(&target).unwrap();
        let staged = dir.path().join("_staged.parquet");
        let rows = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "conv_percentage",
                DataType::Float32,
                true,
            )])),
            vec![Arc::new(arrow_array::Float32Array::from(vec![75.0]))],
        )
        .unwrap();
        write(&staged, &rows);
        let error = append_files(&target, &[staged]).unwrap_err().to_string();
        assert!(
            error.contains("the file has no column `conv_percentage`"),
            "{error}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), before);
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".inprogress")
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn planted_links_and_fifos_are_refused_not_followed_or_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("stats.parquet");
        let staged = dir.path().join("_staged.parquet");
        write(&staged, &file_batch());
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();

        // The lock name linked to a file elsewhere: refused, the file untouched.
        std::os::unix::fs::symlink(&victim, sibling(&target, "lock")).unwrap();
        let error = append_files(&target, std::slice::from_ref(&staged)).unwrap_err();
        assert!(error.to_string().contains("_stats.parquet.lock"), "{error}");
        std::fs::remove_file(sibling(&target, "lock")).unwrap();

        // The target itself a link: refused.
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        let error = append_files(&target, std::slice::from_ref(&staged)).unwrap_err();
        assert!(error.to_string().contains("is a symbolic link"), "{error}");
        std::fs::remove_file(&target).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");

        // A FIFO at the lock or the target: an error at once, not a hang.
        for fifo in [sibling(&target, "lock"), target.clone()] {
            let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: mkfifo on a NUL-terminated path this test owns.
            assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
            assert!(append_files(&target, std::slice::from_ref(&staged)).is_err());
            std::fs::remove_file(&fifo).unwrap();
        }
        assert_eq!(
            append_files(&target, &[staged]).unwrap(),
            2,
            "and then it works"
        );
    }
}
