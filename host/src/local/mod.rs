//! Real services on loopback for the quickstart and the tests: a
//! `redis-server` child process on a free port (or a Redis Cluster, or a
//! Sentinel set-up), and librdkafka's mock cluster (a Kafka-protocol
//! broker over real TCP) in this process.

mod broker;
mod guests;
mod redis_cluster;
mod redis_sentinel;
mod redis_server;

pub use broker::{LocalBroker, tansu_binary, tansu_opt_level};
pub use guests::build_guest_workspace;
pub use redis_cluster::RedisCluster;
pub use redis_sentinel::{RedisSentinelSet, SENTINEL_MASTER};
pub use redis_server::RedisServer;

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
