//! `ballast cluster export` and `ballast cluster import`: the fleet's config out
//! of etcd as a TOML file, and a TOML file into etcd.
//!
//! Control path, one call each. Both find etcd through a node's own file
//! (`--config`, its `[cluster]`: endpoints, prefix, TLS, auth) or `--etcd` and
//! `--prefix`. Export prints the fleet's tables (no node's own), headed by the
//! revision, so the output is a file `ballast check` accepts and `import` takes
//! back. Import validates the file as `ballast check` does, then writes its
//! fleet tables as one compare-and-swap: on the revision given (`--revision`, as
//! the header of an export says) or the one it read just before, so a change
//! made by someone else in between is never overwritten: it exits 1 and says
//! which revision is current.

use std::path::Path;

use anyhow::Context as _;
use ballast_cluster::etcd::{Cas, Etcd};
use ballast_config::cluster::ClusterConfig;
use ballast_config::Config;

/// Where etcd is: a node's file, or `--etcd` and `--prefix`.
pub struct Target<'a> {
    pub config: &'a Path,
    pub etcd: Option<String>,
    pub prefix: Option<String>,
}

fn connect(target: &Target<'_>) -> anyhow::Result<(Etcd, ClusterConfig)> {
    let mut cluster = match &target.etcd {
        Some(url) => ClusterConfig {
            node_name: "cli".into(),
            etcd: vec![url.clone()],
            prefix: ClusterConfig::DEFAULT_PREFIX.into(),
            etcd_tls: None,
            etcd_auth: None,
            lease_ttl: ClusterConfig::DEFAULT_LEASE_TTL,
            redis: None,
            on_redis_error: Default::default(),
            listener_binds: Default::default(),
        },
        None => {
            let file = Config::load(target.config).map_err(|e| {
                anyhow::anyhow!("{}: {e} (or pass --etcd URL)", target.config.display())
            })?;
            match file.cluster {
                Some(c) if c.shares_config() => c,
                _ => anyhow::bail!(
                    "{} has no [cluster] etcd: pass the node's file with --config, or --etcd URL",
                    target.config.display()
                ),
            }
        }
    };
    if let Some(p) = &target.prefix {
        if !(p.starts_with('/') && p.ends_with('/')) {
            anyhow::bail!("--prefix must start and end with '/', such as /ballast/");
        }
        cluster.prefix = p.clone();
    }
    let etcd = Etcd::new(&cluster).map_err(anyhow::Error::msg)?;
    Ok((etcd, cluster))
}

/// The fleet's config as a TOML file.
pub async fn export(target: &Target<'_>) -> anyhow::Result<String> {
    let (etcd, cluster) = connect(target)?;
    let key = cluster.config_key();
    let (kv, _) = etcd.get(&key).await?;
    let Some(kv) = kv else {
        anyhow::bail!("etcd holds no config under {key}: `ballast cluster import FILE` writes one");
    };
    let value: serde_json::Value =
        serde_json::from_slice(&kv.value).with_context(|| format!("{key} is not JSON"))?;
    let config = Config::from_json(&value)
        .map_err(|e| anyhow::anyhow!("the config under {key} is invalid: {e}"))?;
    Ok(format!(
        "# ballast fleet config, revision {} of {key} (ballast cluster export).\n\
         # Import it back with: ballast cluster import FILE --revision {}\n\n{}",
        kv.mod_revision,
        kv.mod_revision,
        config.to_fleet_toml()?
    ))
}

/// Write `file` as the fleet's config; the new revision.
pub async fn import(
    target: &Target<'_>,
    file: &Path,
    revision: Option<i64>,
) -> anyhow::Result<String> {
    let config = Config::load(file).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {e}", file.display()))
            .collect();
        anyhow::anyhow!(
            "{}\n{} error(s); nothing was written",
            lines.join("\n"),
            errors.len()
        )
    })?;
    if config.listeners.is_empty() {
        anyhow::bail!("{} has no listeners: nothing to import", file.display());
    }
    let (etcd, cluster) = connect(target)?;
    let key = cluster.config_key();
    let expected = match revision {
        Some(r) => r,
        None => etcd.get(&key).await?.0.map_or(0, |kv| kv.mod_revision),
    };
    let shared = config.fleet_value(None)?;
    let body = serde_json::to_vec(&shared)?;
    match etcd.compare_and_swap(&key, &body, expected).await? {
        Cas::Won(rev) => Ok(format!(
            "imported {} as revision {rev} of {key}; every node applies it",
            file.display()
        )),
        Cas::Lost { current } => anyhow::bail!(
            "the fleet's config is at revision {current}, not {expected}: someone changed it; \
             export it again, merge, and import with --revision {current}"
        ),
    }
}
