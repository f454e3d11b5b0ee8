//! The refresh task of one target group: look up each DNS-named entry when its
//! last answer expires, record the result, sleep until the next one is due.
//!
//! Control path, one task per group with DNS entries, started and stopped by
//! `server.rs` with each applied config. Entries are looked up one after another
//! (a group has few names, and a slow server then delays only its own group). A
//! restarted task resumes from the table (`names.rs`): an entry resolved before
//! the reload waits for its own expiry, a new entry is looked up at once.

use std::sync::Arc;

use ballast_config::{DnsRefresh, TargetAddress, TargetGroupConfig};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::names::Names;
use super::resolve::Resolver;

/// Start refreshing the DNS names of `group`; `None` when it has none.
pub fn spawn(
    group: &TargetGroupConfig,
    names: Arc<Names>,
    resolver: Arc<Resolver>,
) -> Option<JoinHandle<()>> {
    let mut entries: Vec<TargetAddress> = Vec::new();
    for t in group.targets.iter().filter(|t| t.address.is_dns()) {
        if !entries.contains(&t.address) {
            entries.push(t.address.clone());
        }
    }
    if entries.is_empty() {
        return None;
    }
    let name = group.name.clone();
    let refresh = group.dns;
    Some(tokio::spawn(run(name, entries, refresh, names, resolver)))
}

async fn run(
    group: String,
    entries: Vec<TargetAddress>,
    refresh: DnsRefresh,
    names: Arc<Names>,
    resolver: Arc<Resolver>,
) {
    loop {
        let mut next = Instant::now() + refresh.max_ttl;
        for name in &entries {
            let due = names.due(&group, name).map(Instant::from_std);
            let at = match due {
                Some(at) if at > Instant::now() => at,
                _ => {
                    let result = resolver.lookup(name).await;
                    Instant::from_std(names.record(&group, name, result, &refresh))
                }
            };
            next = next.min(at);
        }
        tokio::time::sleep_until(next).await;
    }
}
