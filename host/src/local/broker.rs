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
            let record = FutureRecord::to(topic).key(key).payload(payload);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) => anyhow::bail!("cannot enqueue a message for `{topic}`: {e}"),
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
}
