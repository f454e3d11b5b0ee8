//! Which config a node of a fleet starts on.
//!
//! Control path, once at start. In order: the fleet's config in etcd (made this
//! node's by `Config::localize`); if the prefix holds none, this node's file
//! seeds it (one compare-and-swap on "absent", so of several first nodes exactly
//! one seeds and the others take its config); if etcd cannot be reached, the
//! config this node last ran, persisted in `state.dir`, and failing that its
//! file. Each choice is said at start (WARN when etcd was unreachable), and the
//! node catches up as soon as etcd answers (`Node::follow`).

use ballast_admin::Store;
use ballast_config::Config;
use serde_json::Value;

use crate::etcd::{Cas, EtcdError};
use crate::node::Node;

/// The config a node starts on.
pub struct Begin {
    pub config: Config,
    /// The fleet's revision it is (0: none yet).
    pub version: u64,
    /// The fleet's tables it came from, when known.
    pub shared: Option<Value>,
    /// `etcd`, `seeded`, `state` or `file`: what the audit's start line says.
    pub source: &'static str,
}

/// The fleet's tables of a node's file, to seed an empty prefix with; `None`
/// when the file has no listeners (nothing worth seeding).
pub fn seed_value(file: &Config) -> Option<Vec<u8>> {
    if file.listeners.is_empty() {
        return None;
    }
    let shared = file.fleet_value(None).ok()?;
    serde_json::to_vec(&shared).ok()
}

/// Decide the config `node` starts on; an error when there is none to start on.
pub async fn begin(node: &Node, store: &Store) -> Result<Begin, String> {
    let key = node.cluster.config_key();
    // The fleet's stickiness key first, so the first apply reads it.
    if let Err(e) = crate::sticky::share(&node.etcd, &node.cluster.prefix, &node.file).await {
        tracing::warn!(error = %e, "cannot read the fleet's stickiness key now; using this node's state.dir key until etcd answers");
    }
    // A seed lost to another node is read back in the next round; a node with
    // nothing to seed waits for one that has.
    let mut rounds = 0;
    let mut said = false;
    loop {
        rounds += 1;
        if rounds > 3 && !said {
            break;
        }
        match node.etcd.get(&key).await {
            Ok((Some(kv), _)) => {
                node.reached();
                let revision = kv.mod_revision.max(0) as u64;
                match localize(&kv.value, &node.file) {
                    Ok((config, shared)) => {
                        tracing::info!(revision, key = %key, "starting on the fleet's config from etcd");
                        return Ok(Begin {
                            config,
                            version: revision,
                            shared: Some(shared),
                            source: "etcd",
                        });
                    }
                    Err(why) => {
                        tracing::error!(revision, error = %why, "the fleet's config in etcd is invalid on this node");
                        return from_state(
                            node,
                            store,
                            &format!("revision {revision} in etcd is invalid here: {why}"),
                        );
                    }
                }
            }
            Ok((None, _)) => {
                node.reached();
                let Some(seed) = seed_value(&node.file) else {
                    if !said {
                        tracing::warn!(key = %key, "etcd holds no config yet and this node's file has no listeners to seed it with: waiting for a node with a full config, or `ballast cluster import`");
                        said = true;
                    }
                    tokio::time::sleep(crate::node::RETRY).await;
                    continue;
                };
                match node.etcd.compare_and_swap(&key, &seed, 0).await {
                    Ok(Cas::Won(rev)) => {
                        let (config, shared) = localize(&seed, &node.file)?;
                        tracing::info!(revision = rev, key = %key, "etcd held no config: seeded it from this node's file");
                        return Ok(Begin {
                            config,
                            version: rev.max(0) as u64,
                            shared: Some(shared),
                            source: "seeded",
                        });
                    }
                    Ok(Cas::Lost { .. }) => continue,
                    Err(e) => return unreachable(node, store, &e),
                }
            }
            Err(e) => return unreachable(node, store, &e),
        }
    }
    Err(format!(
        "the config under {key} kept changing while this node started; start it again"
    ))
}

fn unreachable(node: &Node, store: &Store, e: &EtcdError) -> Result<Begin, String> {
    node.lost(e);
    from_state(node, store, &e.to_string())
}

/// Start on the persisted state (or the file) because etcd's config cannot be had.
fn from_state(node: &Node, store: &Store, why: &str) -> Result<Begin, String> {
    match store.load() {
        Ok(Some(persisted)) => {
            // The node's own tables come from its file, as always.
            let shared = persisted
                .config
                .fleet_value(None)
                .map_err(|e| e.to_string())?;
            let (config, _) = Config::localize(&shared, &node.file).map_err(|e| e.to_string())?;
            tracing::warn!(revision = persisted.version, state = %store.path().display(), reason = %why,
                "starting from the config persisted in state.dir; following etcd once it answers");
            Ok(Begin {
                config,
                version: persisted.version,
                shared: None,
                source: "state",
            })
        }
        Ok(None) => {
            let shared = node.file.fleet_value(None).map_err(|e| e.to_string())?;
            let (config, _) = Config::localize(&shared, &node.file).map_err(|e| e.to_string())?;
            tracing::warn!(reason = %why, "no persisted state: starting from this node's file; following etcd once it answers");
            Ok(Begin {
                config,
                version: 0,
                shared: None,
                source: "file",
            })
        }
        Err(e) => Err(format!(
            "{why}; and the persisted state cannot be read: {e}"
        )),
    }
}

fn localize(value: &[u8], file: &Config) -> Result<(Config, Value), String> {
    let shared: Value = serde_json::from_slice(value).map_err(|e| format!("not JSON: {e}"))?;
    let (config, unknown) = Config::localize(&shared, file).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    if !unknown.is_empty() {
        tracing::warn!(listeners = %unknown.join(", "), "listener_binds names listeners the fleet's config does not have; ignored");
    }
    Ok((config, shared))
}
