//! Where events come from. Today: Kafka topics of stream feature views.

pub mod kafka;

/// Where one event came from: enough to find its bytes again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventOrigin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl std::fmt::Display for EventOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]@{}", self.topic, self.partition, self.offset)
    }
}
