//! A throwaway `redis-server` (the Debian package) on a free loopback port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running redis-server child; killed when dropped.
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts redis-server with no persistence on a free 127.0.0.1 port.
    pub fn start() -> anyhow::Result<Self> {
        let mut last_error = None;
        for _ in 0..3 {
            match Self::try_start() {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    /// Starts redis-server with more arguments (`--requirepass ...`, say).
    /// It is ready once its port accepts connections (a server with a
    /// password answers `PING` only after `AUTH`).
    pub fn start_with(extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_listening(super::free_port()?, extra)
    }

    /// Starts redis-server with `extra` and waits until `port` accepts
    /// connections (`extra` may move the plain port elsewhere).
    fn start_listening(port: u16, extra: &[&str]) -> anyhow::Result<Self> {
        let child = spawn_with(port, &std::env::temp_dir(), extra)?;
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("redis-server on port {port} did not listen within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, port })
    }

    /// Starts redis-server answering only over TLS on its port, with the
    /// certificate and key in `dir` (`server.crt`, `server.key`, `ca.crt`).
    pub fn start_tls(dir: &std::path::Path) -> anyhow::Result<Self> {
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let port = super::free_port()?;
        let tls_port = port.to_string();
        let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.crt"));
        Self::start_listening(
            port,
            &[
                "--port",
                "0",
                "--tls-port",
                &tls_port,
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca,
                "--tls-auth-clients",
                "no",
            ],
        )
    }

    fn try_start() -> anyhow::Result<Self> {
        let port = super::free_port()?;
        let child = spawn(port)?;
        let mut server = Self { child, port };
        server.wait_ready(Duration::from_secs(10))?;
        Ok(server)
    }

    /// Kills the server, as an outage would (nothing is persisted).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts an empty server again on the same port, after [`Self::kill`].
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.child = spawn(self.port)?;
        self.wait_ready(Duration::from_secs(10))
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "redis-server on port {} exited at start with {status}",
                    self.port
                );
            }
            if ping(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "redis-server on port {} did not answer PING within {timeout:?}",
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

fn spawn(port: u16) -> anyhow::Result<Child> {
    spawn_with(port, &std::env::temp_dir(), &[])
}

/// Starts redis-server on `port` (no persistence) with its files in `dir`
/// and `extra` arguments (cluster mode, replication).
pub(super) fn spawn_with(
    port: u16,
    dir: &std::path::Path,
    extra: &[&str],
) -> anyhow::Result<Child> {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run redis-server; install it (Debian: apt-get install redis-server), or pass --redis URL")
}

/// Waits until the server on `port` answers `PING`.
pub(super) fn wait_for_ping(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if ping(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("redis-server on port {port} did not answer PING within {timeout:?}")
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
