//! What a node shares with its fleet and what it keeps (cluster mode, SPEC §13).
//!
//! Control path only. The fleet's config in etcd is a JSON object of the config's
//! shared parts: listeners, target groups and rate limits. Each node adds its
//! own tables ([`NODE_TABLES`]) from its file and its `listener_binds`, then
//! validates the whole with the same validator as a file ([`Config::localize`]).
//! Going the other way ([`Config::fleet_value`]), a node's own tables are left
//! out and a listener this node binds elsewhere gets back the fleet's address,
//! so an admin API write on one node never leaks its local addresses to others.

use std::net::SocketAddr;

use serde_json::{Map, Value};

use crate::{Config, ConfigError, ConfigErrors};

/// The tables each node keeps for itself, whatever the fleet's config says.
pub const NODE_TABLES: [&str; 5] = ["server", "admin", "state", "access_log", "cluster"];

impl Config {
    /// This config's shared part, as stored in etcd. `fleet` is the fleet's
    /// config this one was derived from (its listeners' addresses are restored
    /// where `listener_binds` moved them on this node).
    pub fn fleet_value(&self, fleet: Option<&Value>) -> Result<Value, ConfigErrors> {
        let mut value = serde_json::to_value(self).map_err(|e| {
            ConfigErrors::one(ConfigError::new("", None, format!("cannot encode: {e}")))
        })?;
        let Value::Object(map) = &mut value else {
            return Ok(value);
        };
        for table in NODE_TABLES {
            map.remove(table);
        }
        let binds = self.cluster.as_ref().map(|c| &c.listener_binds);
        if let (Some(binds), Some(Value::Array(listeners))) = (binds, map.get_mut("listeners")) {
            for l in listeners {
                let Some(name) = l.get("name").and_then(Value::as_str).map(str::to_owned) else {
                    continue;
                };
                let Some(local) = binds.get(&name) else {
                    continue;
                };
                let written = l.get("bind").and_then(Value::as_str);
                if written != Some(local.to_string().as_str()) {
                    continue; // changed through this node: the fleet takes the new address
                }
                let shared = fleet.and_then(|f| listener_bind(f, &name));
                if let (Some(shared), Value::Object(l)) = (shared, l) {
                    l.insert("bind".into(), Value::String(shared));
                }
            }
        }
        Ok(value)
    }

    /// The config this node runs for the fleet's `fleet`: the fleet's shared
    /// tables, this node's own tables from `node`, its `listener_binds` applied;
    /// validated as a whole. A bind for a listener the fleet lacks is returned in
    /// the second part (worth a warning, not an error).
    pub fn localize(fleet: &Value, node: &Config) -> Result<(Config, Vec<String>), ConfigErrors> {
        let Value::Object(shared) = fleet else {
            return Err(ConfigErrors::one(ConfigError::new(
                "",
                None,
                "the fleet's config is not a JSON object",
            )));
        };
        let mut map = Map::new();
        for (key, value) in shared {
            if !NODE_TABLES.contains(&key.as_str()) {
                map.insert(key.clone(), value.clone());
            }
        }
        let own = serde_json::to_value(node).map_err(|e| {
            ConfigErrors::one(ConfigError::new("", None, format!("cannot encode: {e}")))
        })?;
        for table in NODE_TABLES {
            if let Some(v) = own.get(table) {
                map.insert(table.to_string(), v.clone());
            }
        }
        let mut unknown = Vec::new();
        if let Some(cluster) = &node.cluster {
            for (name, addr) in &cluster.listener_binds {
                if !set_listener_bind(&mut map, name, *addr) {
                    unknown.push(name.clone());
                }
            }
        }
        let config = Config::from_json(&Value::Object(map))?;
        Ok((config, unknown))
    }
}

fn listener_bind(fleet: &Value, name: &str) -> Option<String> {
    fleet
        .get("listeners")?
        .as_array()?
        .iter()
        .find(|l| l.get("name").and_then(Value::as_str) == Some(name))?
        .get("bind")?
        .as_str()
        .map(str::to_owned)
}

fn set_listener_bind(map: &mut Map<String, Value>, name: &str, addr: SocketAddr) -> bool {
    let Some(Value::Array(listeners)) = map.get_mut("listeners") else {
        return false;
    };
    for l in listeners {
        if l.get("name").and_then(Value::as_str) == Some(name) {
            if let Value::Object(l) = l {
                l.insert("bind".into(), Value::String(addr.to_string()));
            }
            return true;
        }
    }
    false
}
