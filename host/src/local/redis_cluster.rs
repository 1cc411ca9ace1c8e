//! A throwaway Redis Cluster on loopback: `redis-server` nodes in cluster
//! mode, joined by `redis-cli --cluster create`, for the tests and
//! benchmarks of fvhost on a cluster.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running cluster: its nodes are killed and its folder removed when dropped.
pub struct RedisCluster {
    nodes: Vec<ClusterNode>,
    dir: PathBuf,
    /// The folder of `ca.crt`, `server.crt`, `server.key` when the nodes
    /// talk TLS only (clients and the cluster bus).
    tls: Option<PathBuf>,
}

struct ClusterNode {
    port: u16,
    child: Child,
}

impl RedisCluster {
    /// Starts `masters` masters, each with `replicas_per_master` replicas,
    /// and waits until every node reports the cluster ok.
    pub fn start(masters: usize, replicas_per_master: usize) -> anyhow::Result<Self> {
        Self::start_with_tls(masters, replicas_per_master, None)
    }

    /// [`Self::start`], the nodes answering only over TLS with the
    /// certificates in `certificates` (`ca.crt`, `server.crt`, `server.key`).
    pub fn start_tls(
        masters: usize,
        replicas_per_master: usize,
        certificates: &std::path::Path,
    ) -> anyhow::Result<Self> {
        Self::start_with_tls(
            masters,
            replicas_per_master,
            Some(certificates.to_path_buf()),
        )
    }

    fn start_with_tls(
        masters: usize,
        replicas_per_master: usize,
        tls: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        if masters < 3 {
            bail!("a Redis Cluster needs at least 3 masters ({masters} asked)");
        }
        let dir = std::env::temp_dir().join(format!(
            "fvhost-redis-cluster-{}-{}",
            std::process::id(),
            super::free_port()?
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
            tls,
        };
        for _ in 0..masters * (1 + replicas_per_master) {
            let port = cluster_port()?;
            let child = cluster.spawn_node(port)?;
            cluster.nodes.push(ClusterNode { port, child });
        }
        for node in &cluster.nodes {
            cluster.wait_for_node(node.port)?;
        }
        cluster.create(replicas_per_master)?;
        cluster.wait_until_ok(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// The arguments that make redis-server or redis-cli talk TLS, if the nodes do.
    fn tls_args(&self, server: bool) -> Vec<String> {
        let Some(dir) = &self.tls else {
            return Vec::new();
        };
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        if !server {
            return vec!["--tls".into(), "--cacert".into(), file("ca.crt")];
        }
        [
            "--tls-cert-file",
            &file("server.crt"),
            "--tls-key-file",
            &file("server.key"),
            "--tls-ca-cert-file",
            &file("ca.crt"),
            "--tls-auth-clients",
            "no",
            "--tls-cluster",
            "yes",
            "--tls-replication",
            "yes",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    }

    fn wait_for_node(&self, port: u16) -> anyhow::Result<()> {
        let started = Instant::now();
        while self
            .cli(port, &["ping"])
            .map(|r| r.trim() != "PONG")
            .unwrap_or(true)
        {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("the cluster node on {port} did not answer PING within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// `redis-cli` against the node on `port`, over TLS if the nodes talk it.
    fn cli(&self, port: u16, args: &[&str]) -> anyhow::Result<String> {
        let tls = self.tls_args(false);
        let mut all: Vec<&str> = tls.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        redis_cli(port, &all)
    }

    fn spawn_node(&self, port: u16) -> anyhow::Result<Child> {
        let port_text = port.to_string();
        let mut tls = self.tls_args(true);
        if self.tls.is_some() {
            tls.extend(["--port".into(), "0".into(), "--tls-port".into(), port_text]);
        }
        let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
        super::redis_server::spawn_with(
            port,
            &self.dir,
            &[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
                "--cluster-node-timeout",
                "2000",
                // A replica may take over however long ago it last heard
                // from its master (the default refuses a replica whose
                // sync had just begun).
                "--cluster-replica-validity-factor",
                "0",
            ]
            .iter()
            .chain(tls.iter())
            .copied()
            .collect::<Vec<&str>>(),
        )
    }

    /// Kills the node on `port` (SIGKILL, nothing persisted but its
    /// cluster config); its replica is promoted after the node timeout (2 s).
    pub fn kill_node(&mut self, port: u16) -> anyhow::Result<()> {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .with_context(|| format!("no node on port {port}"))?;
        let _ = node.child.kill();
        let _ = node.child.wait();
        Ok(())
    }

    /// Starts the node on `port` again after [`Self::kill_node`]: it
    /// rejoins the cluster (as a replica, if it was failed over).
    pub fn restart_node(&mut self, port: u16) -> anyhow::Result<()> {
        let child = self.spawn_node(port)?;
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .with_context(|| format!("no node on port {port}"))?;
        node.child = child;
        self.wait_for_node(port)
    }

    fn create(&self, replicas_per_master: usize) -> anyhow::Result<()> {
        let output = Command::new("redis-cli")
            .args(self.tls_args(false))
            .arg("--cluster")
            .arg("create")
            .args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", &replicas_per_master.to_string()])
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .context("cannot run redis-cli (Debian: apt-get install redis-tools)")?;
        if !output.status.success() {
            bail!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Waits until every running node says `cluster_state:ok` and knows every node.
    pub fn wait_until_ok(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.nodes.iter().all(|n| self.node_is_settled(n.port)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("the Redis Cluster did not become ok within {timeout:?}")
    }

    fn node_is_settled(&self, port: u16) -> bool {
        let info = self.cli(port, &["cluster", "info"]).unwrap_or_default();
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        info.contains("cluster_state:ok") && info.contains(&known)
    }

    /// Feast's `connection_string` for the cluster: every node as a seed.
    pub fn connection_string(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The nodes' process ids (benchmarks read their CPU time).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.child.id()).collect()
    }

    /// The ports of the running nodes that are masters now.
    pub fn master_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .map(|n| n.port)
            .filter(|&port| {
                self.cli(port, &["role"])
                    .map(|role| role.starts_with("master"))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Waits until a replica of the killed master `old` took its slots: the
    /// running nodes say the cluster is ok and `old` serves no slot.
    pub fn wait_for_failover(&self, old: u16, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            let survivor = self.nodes.iter().find(|n| n.port != old).map(|n| n.port);
            if let Some(port) = survivor {
                let info = self.cli(port, &["cluster", "info"]).unwrap_or_default();
                let nodes = self.cli(port, &["cluster", "nodes"]).unwrap_or_default();
                let address = format!("127.0.0.1:{old}@");
                let old_serves_slots = nodes.lines().any(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    fields.get(1).is_some_and(|a| a.starts_with(&address)) && fields.len() > 8
                });
                if info.contains("cluster_state:ok") && !old_serves_slots {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("no replica took over the slots of {old} within {timeout:?}")
    }

    /// Moves `slots` hash slots from the master on `from` to the master on
    /// `to`, key by key, as an operator resharding a live cluster would.
    pub fn reshard(&self, from: u16, to: u16, slots: usize) -> anyhow::Result<()> {
        let id = |port: u16| -> anyhow::Result<String> {
            Ok(self.cli(port, &["cluster", "myid"])?.trim().to_string())
        };
        let output = Command::new("redis-cli")
            .args(self.tls_args(false))
            .args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
            .args(["--cluster-from", &id(from)?, "--cluster-to", &id(to)?])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .args(["--cluster-pipeline", "100"])
            .stdin(Stdio::null())
            .output()
            .context("cannot run redis-cli")?;
        if !output.status.success() {
            bail!(
                "redis-cli --cluster reshard failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

/// Runs `redis-cli -p port args...` and returns what it printed.
pub(super) fn redis_cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run redis-cli")?;
    if !output.status.success() {
        bail!(
            "redis-cli -p {port} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn cluster_port() -> anyhow::Result<u16> {
    for _ in 0..200 {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let Some(bus) = port.checked_add(10000) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            return Ok(port);
        }
    }
    bail!("found no free port whose cluster bus port is free too")
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
