//! `serve`'s threads: one acceptor, and worker threads that each run their
//! own single-threaded runtime with their own online-store connection.
//!
//! A connection is handed to a worker once, when it is accepted, and all of
//! its requests are answered there: reading the request, asking Redis and
//! writing the answer happen on one thread, with no hand-off between threads
//! on the way. On the machines measured, each hand-off between threads (a
//! futex wake-up of another core) cost 50–100 µs, several times fvhost's own
//! work for a one-entity read (docs/architecture.md, "Online reads, third
//! round"). More workers answer more clients at once; a lone keep-alive
//! client is answered as soon as by one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::listen::{Bounds, Connections, accept};
use super::{ServerState, Worker, router};

/// A connection on its way from the acceptor to a worker.
struct Accepted {
    stream: std::net::TcpStream,
    permit: OwnedSemaphorePermit,
}

/// The acceptor's handle on one worker thread.
struct WorkerHandle {
    connections: mpsc::UnboundedSender<Accepted>,
    /// Connections the worker serves now; a new one goes to the least busy.
    open: Arc<AtomicUsize>,
    thread: JoinHandle<()>,
}

/// Serves `listener` on `threads` worker threads until `shutdown` resolves,
/// then lets each worker's connections finish within the shutdown grace.
/// Fails at start if a worker cannot connect to the online store.
pub async fn serve(
    state: Arc<ServerState>,
    listener: TcpListener,
    threads: usize,
    bounds: Bounds,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let threads = threads.max(1);
    let workers = start(&state, threads, bounds).await?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, threads, "serving /push, /get-online-features, /health and /ready");
    }
    accept(&listener, bounds, shutdown, |stream, permit| {
        hand_off(&workers, stream, permit)
    })
    .await;
    stop(workers).await;
    Ok(())
}

/// Starts the worker threads and waits until each has connected to the
/// online store.
async fn start(
    state: &Arc<ServerState>,
    threads: usize,
    bounds: Bounds,
) -> anyhow::Result<Vec<WorkerHandle>> {
    let mut workers = Vec::with_capacity(threads);
    let mut connected = Vec::with_capacity(threads);
    for index in 0..threads {
        let (sender, receiver) = mpsc::unbounded_channel();
        let (ready, ready_receiver) = oneshot::channel();
        let open = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name(format!("fvhost-serve-{index}"))
            .spawn({
                let state = Arc::clone(state);
                let open = Arc::clone(&open);
                move || run_worker(state, bounds, receiver, open, ready)
            })
            .context("starting a serve thread")?;
        workers.push(WorkerHandle {
            connections: sender,
            open,
            thread,
        });
        connected.push(ready_receiver);
    }
    for ready in connected {
        let outcome = ready
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a serve thread ended at start")));
        if let Err(e) = outcome {
            stop(workers).await;
            return Err(e);
        }
    }
    Ok(workers)
}

/// Gives `stream` to the worker serving the fewest connections.
fn hand_off(workers: &[WorkerHandle], stream: TcpStream, permit: OwnedSemaphorePermit) {
    let Some(worker) = workers
        .iter()
        .min_by_key(|w| w.open.load(Ordering::Relaxed))
    else {
        return;
    };
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!("cannot hand a connection to a serve thread: {e}");
            return;
        }
    };
    worker.open.fetch_add(1, Ordering::Relaxed);
    if worker
        .connections
        .send(Accepted { stream, permit })
        .is_err()
    {
        worker.open.fetch_sub(1, Ordering::Relaxed);
        tracing::warn!("a serve thread has ended; a connection was closed unanswered");
    }
}

/// Closes the workers' queues (each then finishes its open connections
/// within the grace) and waits for their threads.
async fn stop(workers: Vec<WorkerHandle>) {
    let threads: Vec<JoinHandle<()>> = workers
        .into_iter()
        .map(|worker| {
            drop(worker.connections);
            worker.thread
        })
        .collect();
    let joined = tokio::task::spawn_blocking(move || {
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a serve thread panicked");
            }
        }
    })
    .await;
    if let Err(e) = joined {
        tracing::error!("waiting for the serve threads failed: {e}");
    }
}

/// One worker thread: its runtime, its online-store connection, then the
/// connections handed to it until the acceptor closes its queue.
fn run_worker(
    state: Arc<ServerState>,
    bounds: Bounds,
    mut queue: mpsc::UnboundedReceiver<Accepted>,
    open: Arc<AtomicUsize>,
    ready: oneshot::Sender<anyhow::Result<()>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(anyhow::anyhow!(
                "cannot start a serve thread's runtime: {e}"
            )));
            return;
        }
    };
    runtime.block_on(async move {
        let online = match state.connect().await {
            Ok(online) => online,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let worker = Arc::new(Worker {
            shared: state,
            online,
        });
        let connections = Connections::new(router(worker), bounds);
        while let Some(Accepted { stream, permit }) = queue.recv().await {
            let held = OpenConnection {
                open: Arc::clone(&open),
                _permit: permit,
            };
            match TcpStream::from_std(stream) {
                Ok(stream) => connections.serve(stream, held),
                Err(e) => tracing::debug!("cannot serve a handed-off connection: {e}"),
            }
        }
        connections.finish().await;
    });
}

/// A connection counted as open on its worker, and holding its place among
/// the listener's connections, until it ends.
struct OpenConnection {
    open: Arc<AtomicUsize>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}
