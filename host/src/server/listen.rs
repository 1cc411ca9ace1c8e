//! Serving a router on a TCP listener with the bounds every fvhost HTTP
//! listener keeps, whoever connects:
//! - at most [`Bounds::max_connections`] connections at once (the next one
//!   waits in the kernel's accept queue, costing the host nothing);
//! - a request's headers must arrive within [`Bounds::header_read_timeout`]
//!   (a client that sends them a byte at a time is cut off);
//! - on shutdown, connections finish their request in hand, for at most
//!   [`Bounds::shutdown_grace`].
//!
//! Bodies are bounded where they are read (see [`super::body`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most connections one listener keeps open at once, by default.
pub const MAX_CONNECTIONS: usize = 256;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, within `bounds`:
/// every connection on the runtime this is called on.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    bounds: Bounds,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let connections = Connections::new(router, bounds);
    accept(&listener, bounds, shutdown, |stream, permit| {
        connections.serve(stream, permit)
    })
    .await;
    connections.finish().await;
}

/// Accepts connections on `listener` until `shutdown` resolves, at most
/// [`Bounds::max_connections`] at once, and hands each to `hand_off` with
/// the permit it holds until it ends.
pub async fn accept(
    listener: &TcpListener,
    bounds: Bounds,
    shutdown: impl Future<Output = ()>,
    mut hand_off: impl FnMut(TcpStream, OwnedSemaphorePermit),
) {
    let permits = Arc::new(Semaphore::new(bounds.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Answers go out whole: no waiting on Nagle's algorithm for the
        // acknowledgement of an earlier piece.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        hand_off(stream, permit);
    }
}

/// The HTTP connections one runtime serves: each answered by `router`
/// within the bounds, and all of them given the shutdown grace together.
pub struct Connections {
    router: Router,
    builder: http1::Builder,
    graceful: GracefulShutdown,
    grace: Duration,
}

impl Connections {
    pub fn new(router: Router, bounds: Bounds) -> Self {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(bounds.header_read_timeout);
        Self {
            router,
            builder,
            graceful: GracefulShutdown::new(),
            grace: bounds.shutdown_grace,
        }
    }

    /// Serves `stream` on a task of the current runtime; `held` (the
    /// connection's permit) is dropped when the connection ends.
    pub fn serve(&self, stream: TcpStream, held: impl Send + 'static) {
        let service = TowerToHyperService::new(self.router.clone());
        let connection = self.builder.serve_connection(TokioIo::new(stream), service);
        let connection = self.graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(held);
        });
    }

    /// Lets the open connections finish the request in hand, for at most
    /// the shutdown grace; the rest are dropped.
    pub async fn finish(self) {
        if tokio::time::timeout(self.grace, self.graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_ms = self.grace.as_millis() as u64,
                "connections still open after the shutdown grace were dropped"
            );
        }
    }
}
