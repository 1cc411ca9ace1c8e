//! A wall-clock deadline around a whole transform call.
//!
//! Epoch interruption stops guest code, but not a guest waiting inside a host
//! function: the call would sit on its thread (and its transform slot) for
//! as long as that function takes. Calls therefore run as futures (wasmtime's
//! async calls, on a fiber) and are driven here with a timeout: a call still
//! waiting at its deadline is dropped, which unwinds the guest, and the
//! caller gets `None`. The host's own clock subscriptions never wait (see
//! `clocks`), so this is the guard for anything a future version of WASI
//! or the contract might add.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

/// Runs `call` on the calling thread until it finishes (`Some`) or `limit`
/// has passed while it waits (`None`). Must not be called from an async task.
pub fn block_on<F: Future>(limit: Duration, call: F) -> Option<F::Output> {
    let bounded = async move { tokio::time::timeout(limit, call).await.ok() };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(bounded),
        Err(_) => timer_runtime().handle().block_on(bounded),
    }
}

/// A runtime whose only job is to drive the deadlines' timers, for callers
/// that are not inside one (tools, benchmarks).
fn timer_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fvhost-deadlines")
            .enable_time()
            .build()
            .expect("building the runtime that drives transform deadlines")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_finishes_in_time_returns_its_output() {
        assert_eq!(block_on(Duration::from_secs(5), async { 7 }), Some(7));
    }

    #[test]
    fn a_call_still_waiting_at_its_deadline_is_abandoned() {
        let started = std::time::Instant::now();
        let outcome = block_on(Duration::from_millis(100), async {
            tokio::time::sleep(Duration::from_secs(60)).await
        });
        assert_eq!(outcome, None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn works_from_a_blocking_thread_of_the_hosts_runtime() {
        let outcome = tokio::task::spawn_blocking(|| {
            block_on(Duration::from_millis(100), async {
                tokio::time::sleep(Duration::from_secs(60)).await
            })
        })
        .await
        .unwrap();
        assert_eq!(outcome, None);
    }
}
