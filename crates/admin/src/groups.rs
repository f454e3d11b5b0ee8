//! Target groups: reading their targets and health, registering and deregistering.
//!
//! Control path. Reads come from the running snapshot, so they show live state
//! (health, in-flight counts, draining targets until they are removed). Register
//! and deregister produce a new `Config` from the running one (clone, modify,
//! validate) and apply it through `Control`, like any other change: deregistering
//! removes the target from the config, and the snapshot keeps it `draining` for up
//! to the group's `deregistration_delay`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use ballast_config::{TargetAddress, TargetConfig};
use ballast_proxy::{rfc3339, HealthState, Target, TargetGroup};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{ReadAccess, WriteAccess};
use crate::error::ApiError;
use crate::AdminState;

pub async fn list(State(state): State<AdminState>, _read: ReadAccess) -> Json<Value> {
    let snapshot = state.control.server.snapshot();
    let mut groups: Vec<_> = snapshot.groups().collect();
    groups.sort_by(|a, b| a.name().cmp(b.name()));
    let groups: Vec<Value> = groups.iter().map(|g| group_json(g)).collect();
    Json(json!({ "version": snapshot.version, "target_groups": groups }))
}

pub async fn get(
    State(state): State<AdminState>,
    _read: ReadAccess,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let snapshot = state.control.server.snapshot();
    let group = snapshot.group(&name).ok_or_else(|| unknown_group(&name))?;
    Ok(Json(group_json(group)))
}

pub async fn health(
    State(state): State<AdminState>,
    _read: ReadAccess,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let snapshot = state.control.server.snapshot();
    let group = snapshot.group(&name).ok_or_else(|| unknown_group(&name))?;
    let failing_open = group.is_failing_open();
    let targets: Vec<Value> = group
        .targets
        .iter()
        .map(|t| {
            let (state, reason) = t.health();
            let routable = match state {
                HealthState::Healthy => true,
                HealthState::Initial | HealthState::Unhealthy => failing_open,
                HealthState::Draining | HealthState::Unused => false,
            };
            let ramp = group.config.slow_start;
            let slow_start = t
                .ramp_elapsed()
                .filter(|_| !ramp.is_zero())
                .map(|e| (e.as_secs_f64() / ramp.as_secs_f64()).min(1.0));
            let effective = if routable {
                t.effective_weight() as f64 / f64::from(Target::FULL)
            } else {
                0.0
            };
            json!({
                "address": t.addr.to_string(),
                "name": group.target_name(t),
                "state": state.as_str(),
                "reason": reason_json(reason.as_str()),
                "weight": t.weight(),
                "effective_weight": effective,
                "slow_start": slow_start,
                "anomaly": anomaly_json(t),
                "in_flight": t.in_flight(),
                "last_check": last_check_json(t),
                "transitions": transitions_json(t),
            })
        })
        .collect();
    Ok(Json(json!({
        "target_group": group.name(),
        "failing_open": failing_open,
        "healthy_targets": group.healthy_count(),
        "targets": targets,
        "dns": dns_json(state.control.server.dns_status(&name)),
    })))
}

/// The target's last health check; `null` before the first.
fn last_check_json(t: &Target) -> Value {
    let Some(c) = t.history.last_check() else {
        return Value::Null;
    };
    json!({
        "at": rfc3339::millis(c.at),
        "status": c.status,
        "duration_ms": c.duration.as_secs_f64() * 1e3,
        "result": if c.pass { "pass" } else { "fail" },
        "error": c.error,
    })
}

/// The target's recent state changes, oldest first.
fn transitions_json(t: &Target) -> Value {
    t.history
        .transitions()
        .iter()
        .map(|tr| {
            json!({
                "at": rfc3339::millis(tr.at),
                "from": tr.from.as_str(),
                "to": tr.to.as_str(),
                "reason": tr.reason,
            })
        })
        .collect()
}

/// The group's DNS names: `null` without any, else each name's addresses, when it
/// last resolved, its error while lookups fail (the last good addresses stay) and
/// when it is looked up next.
fn dns_json(names: Option<Vec<ballast_proxy::NameStatus>>) -> Value {
    let Some(names) = names else {
        return Value::Null;
    };
    let rfc3339 = |t: std::time::SystemTime| ballast_proxy::rfc3339::millis(t);
    names
        .into_iter()
        .map(|n| {
            json!({
                "name": n.name,
                "addresses": n.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "resolved_at": n.resolved_at.map(rfc3339),
                "error": n.error,
                "next_refresh_at": rfc3339(n.next_refresh_at),
            })
        })
        .collect()
}

/// The anomaly detector's verdict on a target and the figures behind it (SPEC §13).
fn anomaly_json(t: &Target) -> Value {
    let v = t.anomaly.load();
    json!({
        "result": if v.anomalous { "anomalous" } else { "normal" },
        "mitigation_in_effect": t.is_mitigated(),
        "error_rate": v.error_rate,
        "baseline": v.baseline,
        "requests": v.requests,
    })
}

/// `GET /api/v1/target-groups/{name}/anomalies`: the group's anomaly mitigation
/// decisions, oldest first, each with the figures behind it.
pub async fn anomalies(
    State(state): State<AdminState>,
    _read: ReadAccess,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let server = &state.control.server;
    let snapshot = server.snapshot();
    let group = snapshot.group(&name).ok_or_else(|| unknown_group(&name))?;
    let mode = serde_json::to_value(group.config.anomaly_mitigation).unwrap_or(Value::Null);
    Ok(Json(json!({
        "target_group": group.name(),
        "anomaly_mitigation": mode,
        "decisions": server.anomalies(&name),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    address: String,
    weight: Option<u32>,
    name: Option<String>,
}

/// A registration as read: the address, the weight (default 1) and the name.
struct Registered {
    address: TargetAddress,
    weight: u32,
    name: Option<String>,
}

pub async fn register(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    write: WriteAccess,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut created = false;
    let mut registered = None;
    let version = state
        .control
        .update(&write.origin, |running| {
            let mut reg = registration(&body)?;
            let mut config = running.clone();
            let group = config
                .target_groups
                .iter_mut()
                .find(|g| g.name == name)
                .ok_or_else(|| unknown_group(&name))?;
            match group.targets.iter_mut().find(|t| t.address == reg.address) {
                Some(existing) => {
                    // A registration without a name keeps the one it had.
                    existing.weight = reg.weight;
                    reg.name = reg.name.take().or_else(|| existing.name.clone());
                    existing.name = reg.name.clone();
                }
                None => {
                    created = true;
                    group.targets.push(TargetConfig {
                        address: reg.address.clone(),
                        weight: reg.weight,
                        name: reg.name.clone(),
                    });
                }
            }
            registered = Some(reg);
            // The name's form and uniqueness are checked by validation (`update`).
            Ok(config)
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let (address, weight, target_name) = match registered {
        Some(r) => {
            let shown = r.name.unwrap_or_else(|| r.address.to_string());
            (r.address.to_string(), r.weight, shown)
        }
        None => (String::new(), TargetConfig::DEFAULT_WEIGHT, String::new()),
    };
    Ok((
        status,
        Json(json!({
            "version": version,
            "target_group": name,
            "address": address,
            "name": target_name,
            "weight": weight,
        })),
    ))
}

pub async fn deregister(
    State(state): State<AdminState>,
    Path((name, address)): Path<(String, String)>,
    write: WriteAccess,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut delay = String::new();
    let mut removed = None;
    let version = state
        .control
        .update(&write.origin, |running| {
            let address = TargetAddress::parse(&address).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid address {address:?}; expected IP:PORT or HOST:PORT"
                ))
            })?;
            let mut config = running.clone();
            let group = config
                .target_groups
                .iter_mut()
                .find(|g| g.name == name)
                .ok_or_else(|| unknown_group(&name))?;
            let before = group.targets.len();
            group.targets.retain(|t| t.address != address);
            if group.targets.len() == before {
                return Err(ApiError::not_found(format!(
                    "target {address} is not registered in target group {name:?}"
                )));
            }
            delay = ballast_config::duration::format(group.deregistration_delay);
            removed = Some(address);
            Ok(config)
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "version": version,
            "target_group": name,
            "address": removed.map(|a| a.to_string()).unwrap_or(address),
            "state": "draining",
            "deregistration_delay": delay,
        })),
    ))
}

/// `{"address": "IP:PORT", "weight": N, "name": "a"}`, the weight defaulting
/// to 1, the name optional. A `HOST:PORT` address registers a DNS name: one
/// target per A/AAAA record.
fn registration(body: &[u8]) -> Result<Registered, ApiError> {
    let reg: Registration = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"address\": \"IP:PORT\", \"weight\": N, \"name\": \"NAME\"}}: {e}"
        ))
    })?;
    let address = TargetAddress::parse(&reg.address).ok_or_else(|| {
        ApiError::bad_request(format!("invalid address {:?}", reg.address)).with_detail(json!({
            "path": "address",
            "message": "expected IP:PORT such as \"127.0.0.1:9001\" or HOST:PORT such as \"app.internal:8080\""
        }))
    })?;
    Ok(Registered {
        address,
        weight: reg.weight.unwrap_or(TargetConfig::DEFAULT_WEIGHT),
        name: reg.name,
    })
}

fn unknown_group(name: &str) -> ApiError {
    ApiError::not_found(format!("no target group named {name:?}"))
}

fn reason_json(reason: &str) -> Value {
    if reason.is_empty() {
        Value::Null
    } else {
        Value::from(reason)
    }
}

fn target_json(g: &TargetGroup, t: &Target) -> Value {
    let (state, reason) = t.health();
    json!({
        "address": t.addr.to_string(),
        "name": g.target_name(t),
        "weight": t.weight(),
        "state": state.as_str(),
        "reason": reason_json(reason.as_str()),
        "in_flight": t.in_flight(),
    })
}

fn group_json(g: &TargetGroup) -> Value {
    let c = &g.config;
    json!({
        "name": g.name(),
        "algorithm": c.algorithm,
        "protocol": c.protocol,
        "deregistration_delay": ballast_config::duration::format(c.deregistration_delay),
        "failing_open": g.is_failing_open(),
        "healthy_targets": g.healthy_count(),
        "targets": g.targets.iter().map(|t| target_json(g, t)).collect::<Vec<_>>(),
        "load_shedding": shedding_json(g),
    })
}

/// The adaptive concurrency limit's figures, `null` without `load_shedding`.
fn shedding_json(g: &TargetGroup) -> Value {
    let (Some(config), Some(v)) = (g.config.load_shedding, ballast_proxy::shedding_view(g)) else {
        return Value::Null;
    };
    json!({
        "latency_target": ballast_config::duration::format(config.latency_target),
        "latency_ms": v.latency.as_secs_f64() * 1e3,
        "limit": v.limit,
        "min_limit": config.min_limit,
        "max_limit": config.max_limit,
        "in_flight": v.in_flight,
        "shed": v.shed,
    })
}
