//! The end of deregistration: removing draining targets once they are done.
//!
//! Control path, one task per server. It sleeps until something can change:
//! a new snapshot (a target started draining), the last request in flight on a
//! draining target ending (`Target::idle`, woken by the request's guard), or the
//! earliest `deregistration_delay` running out. Then it asks the server to rebuild
//! the snapshot without the targets that are done. Event-driven rather than polling,
//! so a target disappears the moment its last request finishes.

use std::future::Future;
use std::sync::{Arc, Weak};

use futures_util::future::select_all;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::upstream::target::Target;

/// What the task needs of the server that owns it.
pub trait Deregistering: Send + Sync + 'static {
    /// The targets of the snapshot in effect that are draining.
    fn draining(&self) -> Vec<Arc<Target>>;
    /// Publish a snapshot without the draining targets that are done.
    fn prune(&self) -> impl Future<Output = ()> + Send;
}

pub fn spawn<S: Deregistering>(
    server: Weak<S>,
    mut published: watch::Receiver<()>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            published.mark_unchanged();
            let draining: Vec<Arc<Target>> = match server.upgrade() {
                Some(s) => s.draining(),
                None => return,
            };
            if !draining.iter().any(|t| t.drain_finished()) {
                if draining.is_empty() {
                    if published.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                let soonest = draining
                    .iter()
                    .map(|t| t.drain_remaining())
                    .min()
                    .unwrap_or_default();
                let idle = select_all(draining.iter().map(|t| Box::pin(t.idle())));
                tokio::select! {
                    changed = published.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        continue;
                    }
                    _ = idle => {}
                    () = tokio::time::sleep(soonest) => {}
                }
            }
            match server.upgrade() {
                Some(s) => s.prune().await,
                None => return,
            }
        }
    })
}
