//! A throwaway Sentinel set-up on loopback: a master, its replicas and one
//! sentinel watching them, for the tests of fvhost through a failover.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::redis_cluster::redis_cli;

/// The master name the sentinel watches.
pub const SENTINEL_MASTER: &str = "mymaster";

/// A running master, replicas and sentinel; killed when dropped.
pub struct RedisSentinelSet {
    servers: Vec<(u16, Child)>,
    sentinel: (u16, Child),
    dir: PathBuf,
}

impl RedisSentinelSet {
    /// Starts a master with `replicas` replicas and a sentinel (quorum 1,
    /// a master is down after 1 s), and waits until the sentinel knows
    /// every replica.
    pub fn start(replicas: usize) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "fvhost-redis-sentinel-{}-{}",
            std::process::id(),
            super::free_port()?
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let master = super::free_port()?;
        let mut servers = vec![(master, super::redis_server::spawn_with(master, &dir, &[])?)];
        for _ in 0..replicas {
            let port = super::free_port()?;
            let args = ["--replicaof", "127.0.0.1", &master.to_string()];
            servers.push((port, super::redis_server::spawn_with(port, &dir, &args)?));
        }
        for (port, _) in &servers {
            super::redis_server::wait_for_ping(*port, Duration::from_secs(10))?;
        }
        let sentinel_port = super::free_port()?;
        let config = dir.join(format!("sentinel-{sentinel_port}.conf"));
        std::fs::write(
            &config,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master} 1\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
                 sentinel failover-timeout {SENTINEL_MASTER} 10000\n",
                dir = dir.display()
            ),
        )?;
        let sentinel = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run redis-server --sentinel")?;
        let set = Self {
            servers,
            sentinel: (sentinel_port, sentinel),
            dir,
        };
        super::redis_server::wait_for_ping(sentinel_port, Duration::from_secs(10))?;
        set.wait_for_replicas_known(replicas, Duration::from_secs(30))?;
        Ok(set)
    }

    fn wait_for_replicas_known(&self, replicas: usize, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.known_replica_count().unwrap_or(0) >= replicas {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("the sentinel did not learn of {replicas} replicas within {timeout:?}")
    }

    fn known_replica_count(&self) -> Option<usize> {
        let text = redis_cli(self.sentinel.0, &["sentinel", "master", SENTINEL_MASTER]).ok()?;
        let lines: Vec<&str> = text.lines().collect();
        let at = lines.iter().position(|l| *l == "num-slaves")?;
        lines.get(at + 1)?.trim().parse().ok()
    }

    /// The Redis servers' process ids (benchmarks read their CPU time).
    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(|(_, child)| child.id()).collect()
    }

    /// Feast's `connection_string` for `redis_sentinel`: the sentinel.
    pub fn connection_string(&self) -> String {
        format!("127.0.0.1:{}", self.sentinel.0)
    }

    /// The port of the server the sentinel names master now.
    pub fn master_port(&self) -> anyhow::Result<u16> {
        let text = redis_cli(
            self.sentinel.0,
            &["sentinel", "get-master-addr-by-name", SENTINEL_MASTER],
        )?;
        text.lines()
            .nth(1)
            .and_then(|port| port.trim().parse().ok())
            .with_context(|| format!("the sentinel names no master: {text}"))
    }

    /// Kills the sentinel (SIGKILL); the servers go on.
    pub fn kill_sentinel(&mut self) {
        let _ = self.sentinel.1.kill();
        let _ = self.sentinel.1.wait();
    }

    /// Asks the sentinel to fail over now (`SENTINEL FAILOVER`): a replica
    /// is promoted while the old master still runs; returns the old master's port.
    pub fn failover(&self) -> anyhow::Result<u16> {
        let old = self.master_port()?;
        redis_cli(self.sentinel.0, &["sentinel", "failover", SENTINEL_MASTER])?;
        Ok(old)
    }

    /// Kills the current master (SIGKILL, nothing persisted) and returns
    /// its port; the sentinel promotes a replica about a second later.
    pub fn kill_master(&mut self) -> anyhow::Result<u16> {
        let port = self.master_port()?;
        let (_, child) = self
            .servers
            .iter_mut()
            .find(|(p, _)| *p == port)
            .context("the master is not one of this set's servers")?;
        let _ = child.kill();
        let _ = child.wait();
        Ok(port)
    }

    /// Waits until the sentinel names a master other than `old`, and it
    /// answers as a master; returns its port.
    pub fn wait_for_new_master(&self, old: u16, timeout: Duration) -> anyhow::Result<u16> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(port) = self.master_port()
                && port != old
                && redis_cli(port, &["role"]).is_ok_and(|r| r.starts_with("master"))
            {
                return Ok(port);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("no replica was promoted within {timeout:?}")
    }
}

impl Drop for RedisSentinelSet {
    fn drop(&mut self) {
        let _ = self.sentinel.1.kill();
        let _ = self.sentinel.1.wait();
        for (_, child) in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
