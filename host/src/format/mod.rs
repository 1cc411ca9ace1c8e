//! Message formats: turning Kafka message bytes into Arrow rows.
//!
//! A [`Decoder`] decodes one message at a time into the batch it builds, so
//! a bad message is refused on its own with a reason while its neighbours
//! stay. [`MessageFormat`] (a source's `message_format:`) makes the decoder:
//! a new format is a variant there and a `Decoder` implementation beside
//! `json.rs`.

mod ddl;
mod json;
mod json_fields;

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Schema, SchemaRef};

pub use ddl::parse_ddl;
pub use json::{JsonBatchBuilder, RowError};

/// How a Kafka message's bytes become a row.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageFormat {
    /// JSON objects, decoded by the declared schema (column names before `field_mapping`).
    Json { schema: Arc<Schema> },
}

impl MessageFormat {
    /// The declared schema of a message, before `field_mapping`.
    pub fn schema(&self) -> &Arc<Schema> {
        match self {
            MessageFormat::Json { schema } => schema,
        }
    }

    /// A decoder building batches of this format's messages, with
    /// `field_mapping` applied and `required` columns (the entity keys and
    /// the timestamp, as the view names them) checked on every message.
    pub fn decoder(
        &self,
        field_mapping: &[(String, String)],
        required: &[String],
    ) -> Box<dyn Decoder> {
        match self {
            MessageFormat::Json { schema } => {
                Box::new(JsonBatchBuilder::new(schema, field_mapping, required))
            }
        }
    }
}

/// Message bytes into the rows of one batch, a message at a time.
pub trait Decoder: Send {
    /// Adds one message's row; an error names what was wrong (and, when it
    /// can, the field) and leaves the batch as it was.
    fn append(&mut self, message: &[u8]) -> Result<(), RowError>;

    /// The rows appended since the last call, as one batch of [`Self::schema`].
    fn finish(&mut self) -> Result<RecordBatch, ArrowError>;

    /// The schema of the batches, with `field_mapping` applied.
    fn schema(&self) -> &SchemaRef;
}

impl Decoder for JsonBatchBuilder {
    fn append(&mut self, message: &[u8]) -> Result<(), RowError> {
        JsonBatchBuilder::append(self, message)
    }

    fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        JsonBatchBuilder::finish(self)
    }

    fn schema(&self) -> &SchemaRef {
        JsonBatchBuilder::schema(self)
    }
}

/// The schema a view sees: `schema` with `field_mapping` applied.
pub fn mapped_schema(
    schema: &arrow_schema::Schema,
    field_mapping: &[(String, String)],
) -> arrow_schema::Schema {
    let fields: Vec<arrow_schema::Field> = schema
        .fields()
        .iter()
        .map(
            |f| match field_mapping.iter().find(|(from, _)| from == f.name()) {
                Some((_, to)) => f.as_ref().clone().with_name(to),
                None => f.as_ref().clone(),
            },
        )
        .collect();
    arrow_schema::Schema::new(fields)
}
