//! Where a view's dead letters go.
//!
//! - a **Kafka topic** named in the view's definition: each dead letter is the
//!   original key and bytes, with headers carrying the reason, the view, its
//!   version and the original topic/partition/offset (a replay tool can send
//!   the bytes back unchanged);
//! - a **Redis stream** in the project's key space,
//!   `fvhost:<project>:dead_letter:<view>`, one entry per event with the same
//!   fields;
//! - the **log** alone (the default), where every dead letter is written anyway.

use std::time::Duration;

use crate::online::RedisConnection;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{DeadLetter, LetterOrigin};

/// How long the broker has to take a dead letter before the send fails.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// A view's dead-letter destination, connected.
#[derive(Clone)]
pub enum DeadLetterSink {
    Log,
    RedisStream {
        connection: RedisConnection,
        key: String,
    },
    KafkaTopic {
        producer: FutureProducer,
        topic: String,
    },
}

/// A destination that did not take the dead letters; the batch is not committed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterSinkError {
    #[error("cannot add dead letters to redis stream `{key}`: {source}")]
    Redis {
        key: String,
        source: redis::RedisError,
    },
    #[error("cannot send dead letters to kafka topic `{topic}`: {source}")]
    Kafka {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
}

/// The Redis stream holding `view`'s dead letters in `project`'s key space.
pub fn redis_stream_key(project: &str, view: &str) -> String {
    format!("fvhost:{project}:dead_letter:{view}")
}

impl DeadLetterSink {
    /// The destination `view` names in `project`: Redis streams go through
    /// `redis`; a Kafka topic needs `bootstrap_servers` (its stream source's).
    pub fn for_view(
        project: &str,
        view: &crate::repo::FeatureView,
        redis: &RedisConnection,
        bootstrap_servers: Option<&str>,
    ) -> anyhow::Result<Self> {
        use crate::repo::DeadLetterTarget;
        Ok(match &view.dead_letter {
            DeadLetterTarget::Log => DeadLetterSink::Log,
            DeadLetterTarget::RedisStream => DeadLetterSink::RedisStream {
                connection: redis.clone(),
                key: redis_stream_key(project, &view.name),
            },
            DeadLetterTarget::KafkaTopic(topic) => {
                let bootstrap = bootstrap_servers.ok_or_else(|| {
                    anyhow::anyhow!(
                        "view `{}` dead-letters to kafka topic `{topic}`, but its source is not a kafka source to take the brokers from",
                        view.name
                    )
                })?;
                DeadLetterSink::kafka(bootstrap, topic)?
            }
        })
    }

    /// A producer for dead letters sent to `topic` on `bootstrap_servers`.
    pub fn kafka(bootstrap_servers: &str, topic: &str) -> rdkafka::error::KafkaResult<Self> {
        let producer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap_servers)
            .set("client.id", "fvhost-dead-letter")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", KAFKA_TIMEOUT.as_millis().to_string())
            .create()?;
        Ok(Self::KafkaTopic {
            producer,
            topic: topic.to_string(),
        })
    }

    /// Stores `letters`; returns once the destination has them all.
    pub async fn send(&self, letters: &[DeadLetter]) -> Result<(), DeadLetterSinkError> {
        if letters.is_empty() {
            return Ok(());
        }
        match self {
            DeadLetterSink::Log => Ok(()),
            DeadLetterSink::RedisStream { connection, key } => {
                send_to_redis(connection.clone(), key, letters)
                    .await
                    .map_err(|source| DeadLetterSinkError::Redis {
                        key: key.clone(),
                        source,
                    })
            }
            DeadLetterSink::KafkaTopic { producer, topic } => {
                send_to_kafka(producer, topic, letters)
                    .await
                    .map_err(|source| DeadLetterSinkError::Kafka {
                        topic: topic.clone(),
                        source,
                    })
            }
        }
    }
}

/// The metadata every destination carries, as name/value pairs: the
/// origin as `topic`/`partition`/`offset` for a Kafka message, as
/// `source`/`row` for a batch input's row.
fn fields(letter: &DeadLetter) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("project", letter.project.clone()),
        ("view", letter.view.clone()),
        ("version", letter.version.clone()),
        ("module", letter.module.clone().unwrap_or_default()),
        ("kind", letter.kind.as_str().to_string()),
        ("reason", letter.reason.clone()),
    ];
    match &letter.origin {
        LetterOrigin::Event(origin) => fields.extend([
            ("topic", origin.topic.clone()),
            ("partition", origin.partition.to_string()),
            ("offset", origin.offset.to_string()),
        ]),
        LetterOrigin::Row { source, row } => {
            fields.extend([("source", source.clone()), ("row", row.to_string())])
        }
    }
    fields
}

async fn send_to_redis(
    mut connection: RedisConnection,
    key: &str,
    letters: &[DeadLetter],
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for letter in letters {
        let command = pipe.cmd("XADD").arg(key).arg("*");
        for (name, value) in fields(letter) {
            command.arg(name).arg(value);
        }
        if let Some(k) = &letter.key {
            command.arg("key").arg(k.as_slice());
        }
        if let Some(payload) = &letter.payload {
            command.arg("payload").arg(payload.as_slice());
        }
        command.ignore();
    }
    pipe.query_async(&mut connection).await
}

async fn send_to_kafka(
    producer: &FutureProducer,
    topic: &str,
    letters: &[DeadLetter],
) -> rdkafka::error::KafkaResult<()> {
    let sends = letters.iter().map(|letter| {
        let mut headers = OwnedHeaders::new_with_capacity(9);
        for (name, value) in fields(letter) {
            headers = headers.insert(Header {
                key: &format!("fvhost.{name}"),
                value: Some(value.as_bytes()),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(key) = &letter.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &letter.payload {
            record = record.payload(payload.as_slice());
        }
        producer.send(record, KAFKA_TIMEOUT)
    });
    for result in futures::future::join_all(sends).await {
        result.map_err(|(error, _)| error)?;
    }
    Ok(())
}
