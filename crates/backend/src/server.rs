//! The accept loop and the backend's lifecycle: serve, stop gracefully, or die.
//!
//! One task accepts connections and owns every connection task in a `JoinSet`, so
//! whatever ends the accept task (the handle's `kill()`, the last handle dropping, the
//! runtime shutting down) also aborts every connection: nothing outlives the backend.
//! A graceful `shutdown()` instead breaks the accept loop and lets hyper-util's
//! `GracefulShutdown` finish in-flight requests before the task returns.
//!
//! The listening socket is also kept by the [`Lifecycle`] so that stopping can close it
//! synchronously: aborting a tokio task only drops its future the next time the runtime
//! gets to it, but a test calling `kill()` wants the very next `connect` refused. On
//! Linux `shutdown(SHUT_RD)` on a listening socket takes it out of the LISTEN state right
//! away (new SYNs are answered with RST, queued connections reset); elsewhere that call
//! may fail and the port closes when the aborted task is dropped, moments later.

use std::io;
use std::net::Shutdown;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use crate::connection;
use crate::control::{BackendHandle, Shared};
use crate::BackendConfig;

/// Pause after an accept error that is not about one connection (out of file
/// descriptors, out of memory), so the loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(20);

pub(crate) fn spawn(listener: TcpListener, config: BackendConfig) -> BackendHandle {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    let shared = Arc::new(Shared::new(config));
    let listener = Arc::new(listener);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (finished_tx, finished_rx) = watch::channel(());
    let task = tokio::spawn(accept_loop(
        Arc::clone(&listener),
        Arc::clone(&shared),
        stop_rx,
        finished_tx,
    ));
    let lifecycle = Lifecycle {
        listener: Mutex::new(Some(listener)),
        stop: stop_tx,
        finished: finished_rx,
        task: task.abort_handle(),
    };
    BackendHandle::new(addr, shared, lifecycle)
}

/// How the handle stops the server.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    /// Taken (and closed) by the first stop of any kind.
    listener: Mutex<Option<Arc<TcpListener>>>,
    /// `true` asks the accept loop to stop accepting and drain.
    stop: watch::Sender<bool>,
    /// Closed (its sender dropped) when the accept task has ended, drained or aborted.
    finished: watch::Receiver<()>,
    task: AbortHandle,
}

impl Lifecycle {
    pub(crate) async fn shutdown(&self) {
        self.stop.send_replace(true);
        self.close_listener();
        let mut finished = self.finished.clone();
        // Only ever `Err`: the sender is never used, just dropped when the task ends.
        while finished.changed().await.is_ok() {}
    }

    pub(crate) fn kill(&self) {
        self.close_listener();
        self.task.abort();
    }

    fn close_listener(&self) {
        let taken = self
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(listener) = taken {
            // Best effort, see the module docs; on failure the port closes when the
            // accept task lets go of its clone.
            let _ = socket2::SockRef::from(listener.as_ref()).shutdown(Shutdown::Read);
        }
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        self.close_listener();
        self.task.abort();
    }
}

async fn accept_loop(
    listener: Arc<TcpListener>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    _finished: watch::Sender<()>,
) {
    let builder = Arc::new(connection::builder());
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let open = shared.connection_opened();
                    connections.spawn(connection::serve(
                        stream,
                        Arc::clone(&builder),
                        Arc::clone(&shared),
                        graceful.watcher(),
                        open,
                    ));
                }
                Err(err) if is_connection_error(&err) => {
                    tracing::debug!(%err, "accept: connection failed before it was accepted");
                }
                Err(err) => {
                    tracing::warn!(%err, "accept failed, backing off");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
}

/// Resolves once a stop is asked for (or the handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // `Ref` is not `Send`: drop it here rather than hold it in the select's output.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Errors about one connection that died in the accept queue; the next accept is fine.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}
