//! librdkafka's mock cluster: a real Kafka-protocol broker on loopback TCP,
//! living in this process, that any Kafka client (fvhost, kcat) can use.

use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};

/// A mock Kafka cluster; stops when dropped.
pub struct LocalBroker {
    // Dropped first: the producer must go before the brokers it talks to.
    producer: FutureProducer,
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl LocalBroker {
    /// Starts a cluster of `brokers` brokers on loopback ports.
    pub fn start(brokers: i32) -> anyhow::Result<Self> {
        let cluster = MockCluster::new(brokers).context("starting the mock Kafka cluster")?;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("linger.ms", "5")
            .create()
            .context("creating a producer for the mock cluster")?;
        Ok(Self { producer, cluster })
    }

    /// `host:port,...` of the brokers.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        self.cluster
            .create_topic(topic, partitions, 1)
            .with_context(|| format!("creating topic `{topic}`"))
    }

    /// The underlying mock cluster, for fault injection in tests.
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }

    /// Produces `(key, payload)` messages in order and waits for every delivery.
    /// Messages with the same key land in the same partition, in order.
    pub async fn produce(&self, topic: &str, messages: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        let mut deliveries = Vec::with_capacity(messages.len());
        for (key, payload) in messages {
            let mut record = FutureRecord::to(topic).key(key).payload(payload);
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    // The producer's queue is full: wait for deliveries to drain it.
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        returned,
                    )) => {
                        record = returned;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => anyhow::bail!("cannot enqueue a message for `{topic}`: {e}"),
                }
            }
        }
        for delivery in deliveries {
            delivery
                .await
                .context("producer dropped a message")?
                .map_err(|(e, _)| anyhow::anyhow!("delivery to `{topic}` failed: {e}"))?;
        }
        Ok(())
    }

    /// Waits until everything produced so far is delivered.
    pub fn flush(&self) -> anyhow::Result<()> {
        use rdkafka::producer::Producer;
        self.producer
            .flush(Duration::from_secs(10))
            .context("flushing the producer")
    }

    /// Reads partition `partition` of `topic` from the start until `count`
    /// messages arrived or `timeout` passed; returns what arrived.
    pub fn read_partition(
        &self,
        topic: &str,
        partition: i32,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<rdkafka::message::OwnedMessage>> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{Offset, TopicPartitionList};
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap_servers())
            .set("group.id", "fvhost-local-reader")
            .set("enable.auto.commit", "false")
            .create()
            .context("creating a reader for the mock cluster")?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        consumer.assign(&assignment)?;
        let deadline = std::time::Instant::now() + timeout;
        let mut messages = Vec::new();
        while messages.len() < count && std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => messages.push(message.detach()),
                Some(Err(e)) => anyhow::bail!("reading `{topic}`: {e}"),
                None => {}
            }
        }
        Ok(messages)
    }
}
