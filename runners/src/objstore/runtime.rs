//! The tokio runtime the object-store client runs on. [`BlobStore`](crate::BlobStore) is a
//! blocking trait, called from threads of the orchestrator's runtime (`spawn_blocking`) and
//! from plain threads; the store's requests run on two worker threads of a runtime of their own
//! (one per process, never dropped) and the calling thread waits on a channel for the result.
//! Nothing here blocks a thread of the caller's runtime, and nothing needs the caller to be in
//! or out of one, so it cannot deadlock against it.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};

fn runtime() -> Result<&'static Runtime, String> {
    static RT: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tuna-objstore")
            .enable_all()
            .build()
            .map_err(|e| format!("starting the object-store client's threads: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The runtime's handle, to spawn background work (a download's read-ahead) on.
pub(crate) fn handle() -> Result<Handle, String> {
    runtime().map(|rt| rt.handle().clone())
}

/// Runs `fut` on the object-store runtime and blocks this thread until it is done.
pub(crate) fn wait<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| "an object-store request stopped without an answer (it panicked)".to_owned())
}

/// Like [`wait`], giving up with `None` after `timeout`.
pub(crate) fn wait_for<T: Send + 'static>(
    timeout: Duration,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<Option<T>, String> {
    wait(async move { tokio::time::timeout(timeout, fut).await.ok() })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// The orchestrator calls blob stores from `spawn_blocking` on its own runtime, including
    /// a current-thread one whose only thread is busy waiting: the call must still finish.
    #[test]
    fn waits_from_blocking_threads_of_another_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = rt.block_on(async {
            tokio::task::spawn_blocking(|| {
                super::wait(async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    7
                })
            })
            .await
            .unwrap()
        });
        assert_eq!(got, Ok(7));
        let late = super::wait_for(Duration::from_millis(10), std::future::pending::<()>());
        assert_eq!(late, Ok(None));
    }
}
