//! One stickiness key for the fleet: a sticky-session cookie made by one node
//! must be honoured by every other, so the key that authenticates it is the
//! fleet's, kept in etcd at `{prefix}stickiness_key`.
//!
//! Control path: at start and at every full read of the fleet's config. When a
//! node's file names `server.stickiness_key_file`, that file is the key and etcd
//! is not asked (the operator shares it). Otherwise the first node to need a key
//! creates `{prefix}stickiness_key` (a compare-and-swap on "absent", so all nodes
//! agree on one) from the key it already had in `state.dir/stickiness.key`, if any
//! (no client of that node loses its target), or from 32 fresh random bytes; every
//! node writes the fleet's key into its own `state.dir/stickiness.key`, where the
//! data path reads it at each apply (`ballast_proxy`'s `sticky_key.rs`). With etcd
//! unreachable, that file still holds the fleet's key from the last time it was
//! read. Who can read etcd's prefix can read the key: etcd's auth and TLS guard it.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use ballast_config::Config;

use crate::etcd::{Cas, Etcd, EtcdError};

/// The file in `state.dir` the data path reads (`sticky_key::STATE_FILE`).
const STATE_FILE: &str = ballast_proxy::STICKINESS_STATE_FILE;

/// Make this node's key file hold the fleet's key; creates the fleet's key
/// when there is none. Nothing to do when the file names its own key file.
pub async fn share(etcd: &Etcd, prefix: &str, file: &Config) -> Result<(), EtcdError> {
    if file.server.stickiness_key_file.is_some() {
        return Ok(());
    }
    let key = format!("{prefix}stickiness_key");
    let local_path = file.state.dir.join(STATE_FILE);
    let local = fs::read_to_string(&local_path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| s.len() >= 32);
    let fleet = match etcd.get(&key).await?.0 {
        Some(kv) => String::from_utf8_lossy(&kv.value).trim().to_string(),
        None => {
            let mine = match &local {
                Some(k) => k.clone(),
                None => random_hex()?,
            };
            match etcd.compare_and_swap(&key, mine.as_bytes(), 0).await? {
                Cas::Won(_) => {
                    tracing::info!(key = %key, "the fleet's stickiness key created in etcd");
                    mine
                }
                // Another node created it first: read theirs.
                Cas::Lost { .. } => etcd
                    .get(&key)
                    .await?
                    .0
                    .map(|kv| String::from_utf8_lossy(&kv.value).trim().to_string())
                    .unwrap_or(mine),
            }
        }
    };
    if fleet.len() < 32 {
        tracing::error!(key = %key, "the fleet's stickiness key in etcd is shorter than 32 bytes; keeping this node's own");
        return Ok(());
    }
    if local.as_deref() != Some(fleet.as_str()) {
        if let Err(e) = write(&local_path, &fleet) {
            tracing::error!(path = %local_path.display(), error = %e, "cannot write the fleet's stickiness key");
        } else if local.is_some() {
            tracing::warn!(path = %local_path.display(), "this node's stickiness key differed from the fleet's: the fleet's is used from the next config applied");
        }
    }
    Ok(())
}

fn random_hex() -> Result<String, EtcdError> {
    let mut random = [0u8; 32];
    aws_lc_rs::rand::fill(&mut random)
        .map_err(|_| EtcdError::Config("the OS random generator failed".into()))?;
    Ok(random.iter().map(|b| format!("{b:02x}")).collect())
}

/// Replace the key file whole (temporary file, sync, rename), mode 0600.
fn write(path: &Path, key: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let temp = dir.join(format!("{STATE_FILE}.fleet.{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    f.write_all(format!("{key}\n").as_bytes())?;
    f.sync_all()?;
    fs::rename(&temp, path)?;
    fs::File::open(dir)?.sync_all()
}
