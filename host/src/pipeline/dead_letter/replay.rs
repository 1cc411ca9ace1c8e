//! Reading a view's dead letters back from its Redis stream, and replaying
//! them: once the cause is fixed (a new module, a corrected config), each
//! event's original key and bytes go back to the topic it came from, and the
//! entry is deleted only after the broker has it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::online::RedisConnection;
use anyhow::Context;
use rdkafka::producer::{FutureProducer, FutureRecord};
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

/// The first `limit` entries of the stream at `key`, oldest first.
pub async fn read(
    connection: &mut RedisConnection,
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
/// failure, leaving that letter and the rest in the stream. Letters of batch
/// rows (materialize, push: no topic) are left in the stream: they are
/// applied again by running materialize or push again. Returns how many
/// were replayed.
pub async fn replay(
    connection: &mut RedisConnection,
    key: &str,
    letters: &[StoredLetter],
    producer: &FutureProducer,
) -> anyhow::Result<usize> {
    let (events, rows): (Vec<&StoredLetter>, Vec<&StoredLetter>) = letters
        .iter()
        .partition(|letter| letter.fields.contains_key("topic"));
    if !rows.is_empty() {
        tracing::warn!(
            rows = rows.len(),
            "dead letters of batch rows (materialize, push) are not replayed to a topic: fix the cause and run materialize or push again"
        );
    }
    for (done, letter) in events.iter().enumerate() {
        send_back(producer, &letter.fields).await.with_context(|| {
            format!(
                "replaying dead letter {} ({done} replayed before it)",
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
    Ok(events.len())
}

/// A dead letter read from a Kafka dead-letter topic: the original key and
/// bytes, and the `fvhost.*` headers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KafkaLetter {
    /// Where it sits in the dead-letter topic.
    pub partition: i32,
    pub offset: i64,
    #[serde(serialize_with = "as_text")]
    pub fields: BTreeMap<String, Vec<u8>>,
}

/// Reads the dead-letter topic through consumer group `group`, from its
/// committed position (the start for a new group), until `limit` letters or
/// `idle` without one. With `producer`, each letter is sent back to the topic
/// its `fvhost.topic` header names and its offset committed once delivered,
/// so a replay that stops half-way resumes where it stopped; without, nothing
/// is committed. Returns the letters read.
pub async fn read_kafka(
    bootstrap_servers: &str,
    topic: &str,
    group: &str,
    limit: usize,
    idle: Duration,
    producer: Option<&FutureProducer>,
) -> anyhow::Result<Vec<KafkaLetter>> {
    use rdkafka::Message;
    use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
    use rdkafka::message::Headers;

    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the dead-letter reader")?;
    consumer
        .subscribe(&[topic])
        .with_context(|| format!("subscribing to `{topic}`"))?;
    let mut letters = Vec::new();
    while letters.len() < limit {
        let message = match tokio::time::timeout(idle, consumer.recv()).await {
            Err(_) => break,
            Ok(message) => message.with_context(|| format!("reading `{topic}`"))?,
        };
        let mut fields = BTreeMap::new();
        if let Some(headers) = message.headers() {
            for header in headers.iter() {
                if let (Some(name), Some(value)) =
                    (header.key.strip_prefix("fvhost."), header.value)
                {
                    fields.insert(name.to_string(), value.to_vec());
                }
            }
        }
        if let Some(key) = message.key() {
            fields.insert("key".into(), key.to_vec());
        }
        if let Some(payload) = message.payload() {
            fields.insert("payload".into(), payload.to_vec());
        }
        let letter = KafkaLetter {
            partition: message.partition(),
            offset: message.offset(),
            fields,
        };
        if let Some(producer) = producer {
            send_back(producer, &letter.fields).await.with_context(|| {
                format!("replaying the dead letter at offset {}", letter.offset)
            })?;
            consumer
                .commit_message(&message, CommitMode::Sync)
                .context("recording the replay in the dead-letter topic's group")?;
        }
        letters.push(letter);
    }
    Ok(letters)
}

/// Sends a dead letter's original key and bytes (its `key` and `payload`
/// fields) to the topic its `topic` field names, and waits for delivery.
async fn send_back(
    producer: &FutureProducer,
    fields: &BTreeMap<String, Vec<u8>>,
) -> anyhow::Result<()> {
    let topic = fields
        .get("topic")
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .context("the dead letter names no topic")?;
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic);
    if let Some(key) = fields.get("key") {
        record = record.key(key.as_slice());
    }
    if let Some(payload) = fields.get("payload") {
        record = record.payload(payload.as_slice());
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .with_context(|| format!("sending it back to `{topic}`"))?;
    Ok(())
}
