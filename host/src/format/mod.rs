//! Message formats: turning Kafka message bytes into Arrow rows.
//!
//! Each format decodes one message at a time into a batch builder, so a bad
//! message is rejected on its own with a reason while its neighbours stay.

mod ddl;
mod json;

pub use ddl::parse_ddl;
pub use json::{JsonBatchBuilder, RowError};
