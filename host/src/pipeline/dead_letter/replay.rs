//! Reading a view's dead letters back from its Redis stream, and replaying
//! them: once the cause is fixed (a new module, a corrected config), each
//! event's original key and bytes go back to the topic it came from, and the
//! entry is deleted only after the broker has it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::{FutureProducer, FutureRecord};
use redis::aio::ConnectionManager;
use serde::Serialize;

/// One entry of a dead-letter stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredLetter {
    /// The stream entry id.
    pub id: String,
    /// The fields as written (see `sink::fields`), `key` and `payload` as bytes.
    #[serde(serialize_with = "as_text")]
    pub fields: BTreeMap<String, Vec<u8>>,
}

fn as_text<S: serde::Serializer>(
    fields: &BTreeMap<String, Vec<u8>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(fields.len()))?;
    for (name, value) in fields {
        map.serialize_entry(name, &String::from_utf8_lossy(value))?;
    }
    map.end()
}

impl StoredLetter {
    fn text(&self, field: &str) -> Option<String> {
        self.fields
            .get(field)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// The first `limit` entries of the stream at `key`, oldest first.
pub async fn read(
    connection: &mut ConnectionManager,
    key: &str,
    limit: usize,
) -> redis::RedisResult<Vec<StoredLetter>> {
    let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(limit)
        .query_async(connection)
        .await?;
    Ok(entries
        .into_iter()
        .map(|(id, flat)| StoredLetter {
            id,
            fields: flat
                .chunks(2)
                .filter_map(|pair| match pair {
                    [name, value] => {
                        Some((String::from_utf8_lossy(name).into_owned(), value.clone()))
                    }
                    _ => None,
                })
                .collect(),
        })
        .collect())
}

/// Sends each letter's original key and bytes back to its original topic
/// and deletes it from the stream once delivered. Stops at the first
/// failure, leaving that letter and the rest in the stream. Returns how many
/// were replayed.
pub async fn replay(
    connection: &mut ConnectionManager,
    key: &str,
    letters: &[StoredLetter],
    producer: &FutureProducer,
) -> anyhow::Result<usize> {
    for (done, letter) in letters.iter().enumerate() {
        let topic = letter
            .text("topic")
            .with_context(|| format!("dead letter {} names no topic", letter.id))?;
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic);
        if let Some(k) = letter.fields.get("key") {
            record = record.key(k.as_slice());
        }
        if let Some(payload) = letter.fields.get("payload") {
            record = record.payload(payload.as_slice());
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .with_context(|| {
                format!(
                    "replaying dead letter {} to `{topic}` ({done} replayed before it)",
                    letter.id
                )
            })?;
        let _: i64 = redis::cmd("XDEL")
            .arg(key)
            .arg(&letter.id)
            .query_async(connection)
            .await
            .with_context(|| format!("deleting replayed dead letter {}", letter.id))?;
    }
    Ok(letters.len())
}
