//! A Kafka-protocol broker on loopback TCP that any Kafka client (fvhost,
//! kcat) can use:
//! - librdkafka's mock cluster, living in this process (fault injection;
//!   it keeps about 50k messages per partition);
//! - tansu, a Kafka-compatible broker run as a child process with in-memory
//!   storage (a real broker: group coordination and logs of millions of
//!   messages). `scripts/setup.sh` installs it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};

/// A broker on loopback; stops when dropped.
pub struct LocalBroker {
    // Dropped first: the producer must go before the brokers it talks to.
    producer: FutureProducer,
    backend: Backend,
}

enum Backend {
    Mock(MockCluster<'static, DefaultProducerContext>),
    Tansu {
        /// Kept for its drop: the broker stops with this value.
        _process: TansuProcess,
        bootstrap: String,
    },
}

/// The optimization level `scripts/setup.sh` built the tansu in use at
/// (its `.opt-level` marker; `None` for a tansu installed otherwise).
/// Benchmarks on tansu report it: an unoptimized broker (as CI builds it)
/// bounds their figures.
pub fn tansu_opt_level() -> Option<String> {
    let binary = tansu_binary()?;
    let root = binary.parent()?.parent()?;
    let level = std::fs::read_to_string(root.join(".opt-level")).ok()?;
    Some(level.trim().to_string())
}

/// Where tansu is looked for: `$FVHOST_TANSU`, then where setup installs
/// it, then `PATH`.
pub fn tansu_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FVHOST_TANSU") {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let installed = home.join(".cache/fvhost/tansu/bin/tansu");
    if installed.is_file() {
        return Some(installed);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|candidate| candidate.is_file())
    })
}

fn producer_for(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .context("creating a producer for the local broker")
}

impl LocalBroker {
    /// Starts a mock cluster of `brokers` brokers on loopback ports.
    pub fn start(brokers: i32) -> anyhow::Result<Self> {
        let cluster = MockCluster::new(brokers).context("starting the mock Kafka cluster")?;
        let producer = producer_for(&cluster.bootstrap_servers())?;
        Ok(Self {
            producer,
            backend: Backend::Mock(cluster),
        })
    }

    /// Starts tansu (see [`tansu_binary`]) on a free loopback port with
    /// in-memory storage, and waits until it answers.
    pub fn start_tansu() -> anyhow::Result<Self> {
        let binary = tansu_binary().context(
            "tansu is not installed (scripts/setup.sh installs it; or set FVHOST_TANSU)",
        )?;
        let port = super::free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("running {}", binary.display()))?;
        let bootstrap = format!("127.0.0.1:{port}");
        let mut process = TansuProcess(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = process.0.try_wait()? {
                bail!("tansu exited at start with {status}");
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("tansu did not listen on {bootstrap} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self {
            producer: producer_for(&bootstrap)?,
            backend: Backend::Tansu {
                _process: process,
                bootstrap,
            },
        })
    }

    /// `host:port,...` of the brokers.
    pub fn bootstrap_servers(&self) -> String {
        match &self.backend {
            Backend::Mock(cluster) => cluster.bootstrap_servers(),
            Backend::Tansu { bootstrap, .. } => bootstrap.clone(),
        }
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Mock(cluster) => cluster
                .create_topic(topic, partitions, 1)
                .with_context(|| format!("creating topic `{topic}`")),
            Backend::Tansu { bootstrap, .. } => create_topic_on(bootstrap, topic, partitions),
        }
    }

    /// The underlying mock cluster, for fault injection in tests.
    ///
    /// # Panics
    /// On a tansu broker, which has no fault injection.
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        match &self.backend {
            Backend::Mock(cluster) => cluster,
            Backend::Tansu { .. } => panic!("fault injection needs the mock cluster"),
        }
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

/// Creates `topic` through the Kafka admin API of the broker at `bootstrap`.
fn create_topic_on(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating an admin client")?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &options))
        .with_context(|| format!("creating topic `{topic}`"))?;
    for result in results {
        result.map_err(|(name, code)| anyhow::anyhow!("creating topic `{name}`: {code}"))?;
    }
    Ok(())
}

/// The tansu child process, killed when dropped (after the producer).
struct TansuProcess(Child);

impl Drop for TansuProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
