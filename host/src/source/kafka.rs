//! Consuming a Kafka topic in a consumer group, in batches, with offsets
//! committed by the caller only after the batch's writes succeeded.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::time::Instant;

use super::EventOrigin;

/// How to reach and consume one topic.
#[derive(Debug, Clone)]
pub struct TopicConsumerConfig {
    pub bootstrap_servers: String,
    pub topic: String,
    pub group_id: String,
}

/// Wait after a consumer error before receiving again.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

/// A consumer-group member reading one topic.
pub struct TopicConsumer {
    consumer: StreamConsumer,
    topic: String,
}

/// One consumed message, owned.
pub struct Event {
    pub origin: EventOrigin,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

impl TopicConsumer {
    /// Joins the group and subscribes. With no committed offset the group
    /// starts from the earliest message, never from "latest".
    pub fn subscribe(config: &TopicConsumerConfig) -> KafkaResult<Self> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("group.id", &config.group_id)
            .set("client.id", "fvhost")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("fetch.wait.max.ms", "100")
            // Once a partition's local queue holds queued.min.messages,
            // librdkafka waits this long before fetching it again; at the
            // default (1 s) a view catching up on a backlog drains the
            // queue and then idles for half a second (measured: 0.5 s
            // stalls, one view 120k rows/s; at 100 ms, 170-207k).
            .set("fetch.queue.backoff.ms", "100")
            .set("topic.metadata.refresh.interval.ms", "5000")
            .create()?;
        consumer.subscribe(&[config.topic.as_str()])?;
        Ok(Self {
            consumer,
            topic: config.topic.clone(),
        })
    }

    /// Waits for a first message (or shutdown), then gathers more for at most
    /// `linger` or until `max` messages. An empty result means shutdown.
    ///
    /// Consumer errors (a topic not created yet, a broker down) are logged and
    /// retried: librdkafka recovers from them on its own, and a view must not
    /// stop for a transient broker condition.
    pub async fn next_batch(
        &self,
        max: usize,
        linger: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> KafkaResult<Vec<Event>> {
        let mut events = Vec::new();
        while events.is_empty() {
            if *shutdown.borrow() {
                return Ok(events);
            }
            tokio::select! {
                message = self.consumer.recv() => self.keep(message, &mut events).await,
                _ = shutdown.changed() => return Ok(events),
            }
        }
        let deadline = Instant::now() + linger;
        while events.len() < max {
            tokio::select! {
                message = self.consumer.recv() => self.keep(message, &mut events).await,
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.changed() => break,
            }
        }
        Ok(events)
    }

    /// Adds a received message to `events`; an error is logged and waited out.
    async fn keep(
        &self,
        message: KafkaResult<rdkafka::message::BorrowedMessage<'_>>,
        events: &mut Vec<Event>,
    ) {
        match message {
            Ok(message) => events.push(to_event(&message)),
            Err(e) => {
                tracing::warn!(topic = %self.topic, "kafka: {e}; retrying");
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }

    /// Commits, synchronously, `positions` (partition -> next offset to read).
    pub fn commit(&self, positions: &Positions) -> KafkaResult<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (&partition, &next) in positions {
            list.add_partition_offset(&self.topic, partition, Offset::Offset(next))?;
        }
        tokio::task::block_in_place(|| self.consumer.commit(&list, CommitMode::Sync))
    }

    /// The partitions this member is assigned now (empty before the group join).
    pub fn assigned_partitions(&self) -> Vec<i32> {
        self.consumer
            .assignment()
            .map(|list| list.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default()
    }

    /// Messages behind the end of the topic for this member's partitions, if known.
    pub fn lag(&self, written: &Positions) -> Option<BTreeMap<i32, i64>> {
        let assignment = self.consumer.assignment().ok()?;
        let positions = self.consumer.position().ok()?;
        let mut lag = BTreeMap::new();
        for element in assignment.elements() {
            let partition = element.partition();
            let (low, high) = self
                .consumer
                .fetch_watermarks(element.topic(), partition, Duration::from_secs(1))
                .ok()?;
            // What this member wrote; else where the consumer stands (its
            // committed offset once it fetched); else the partition's start.
            let consumed = positions
                .find_partition(element.topic(), partition)
                .and_then(|p| p.offset().to_raw())
                .filter(|o| *o >= 0);
            let next = written.get(&partition).copied().or(consumed).unwrap_or(low);
            lag.insert(partition, (high - next).max(0));
        }
        Some(lag)
    }
}

fn to_event(message: &impl Message) -> Event {
    Event {
        origin: EventOrigin {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
        },
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
    }
}

/// Per partition, the next offset to read: what a commit records.
pub type Positions = BTreeMap<i32, i64>;

/// Per partition, the offset after the last of `events` there.
pub fn next_offsets(events: &[Event]) -> Positions {
    let mut positions = Positions::new();
    for event in events {
        let next = positions.entry(event.origin.partition).or_insert(0);
        *next = (*next).max(event.origin.offset + 1);
    }
    positions
}

/// Moves `positions` forward to `next` (a partition never moves back).
pub fn advance(positions: &mut Positions, next: &Positions) {
    for (&partition, &offset) in next {
        let at = positions.entry(partition).or_insert(0);
        *at = (*at).max(offset);
    }
}
