//! This node's registration: `{prefix}nodes/{name}`, a JSON value attached to a
//! lease, so that a node that stops (or is cut off) leaves the fleet's list by
//! itself within the lease's TTL.
//!
//! Control path. One task: it grants a lease of `lease_ttl`, puts the
//! registration (name, admin address, the revision applied and when, health),
//! renews the lease every third of its TTL (so two renewals may be lost before
//! it expires), and puts the registration again whenever the node applies or
//! refuses a revision (`Node::changed`). A lease that expired while etcd was
//! unreachable is granted anew. At a clean stop the lease is revoked, so the
//! node leaves the list at once.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::etcd::EtcdError;
use crate::node::{Node, RETRY};

/// The lease of this process's registration (0: none).
static LEASE: AtomicI64 = AtomicI64::new(0);

/// Keep this node registered until the process ends.
pub async fn register(node: Arc<Node>) {
    let key = format!("{}{}", node.cluster.nodes_prefix(), node.cluster.node_name);
    let ttl = node.cluster.lease_ttl;
    let mut lease = 0i64;
    let mut dirty = true;
    // When the lease is renewed next: on its own schedule, however often the
    // registration is put (a put does not renew the lease it is attached to).
    let mut renew_at = tokio::time::Instant::now();
    loop {
        let step: Result<(), EtcdError> = async {
            if lease == 0 {
                lease = node.etcd.grant(ttl).await?;
                LEASE.store(lease, Ordering::Relaxed);
                renew_at = tokio::time::Instant::now() + ttl / 3;
                dirty = true;
            }
            if dirty {
                let value = serde_json::to_vec(&node.registration())
                    .map_err(|e| EtcdError::Protocol(e.to_string()))?;
                node.etcd.put(&key, &value, lease).await?;
                dirty = false;
            }
            if tokio::time::Instant::now() >= renew_at {
                if node.etcd.keep_alive(lease).await? <= 0 {
                    lease = 0; // expired: granted anew at once
                    return Ok(());
                }
                renew_at = tokio::time::Instant::now() + ttl / 3;
            }
            Ok(())
        }
        .await;
        let wait = match &step {
            Ok(()) if lease == 0 => Duration::ZERO,
            Ok(()) => {
                node.reached();
                renew_at.saturating_duration_since(tokio::time::Instant::now())
            }
            Err(e) => {
                if !e.is_unreachable() {
                    // etcd answered but refused: the lease is gone; start afresh.
                    tracing::warn!(error = %e, "cluster registration refused; registering again");
                    lease = 0;
                } else {
                    node.lost(e);
                }
                dirty = true;
                RETRY
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = node.changed.notified() => dirty = true,
        }
    }
}

/// Leave the fleet's list now (a clean stop): revoke the registration's lease.
pub async fn leave(node: &Node) {
    let lease = LEASE.swap(0, Ordering::Relaxed);
    if lease != 0 {
        match node.etcd.revoke(lease).await {
            Ok(()) => tracing::info!("left the fleet's list (lease revoked)"),
            Err(e) => {
                tracing::info!(error = %e, "could not revoke the registration's lease; it expires on its own")
            }
        }
    }
}
