//! Liveness and readiness endpoints.
//!
//! `GET /healthz` answers 200 as long as the process serves HTTP. `GET /readyz` answers 200
//! only when the node should receive new clients: not draining and every registered
//! [`ReadyCheck`] passing (the cluster registers its Redis check here, see `--readiness`);
//! otherwise 503 with a JSON body naming the reasons, so a load balancer takes the node out.
//! A check may also report the node as ready but degraded: `degraded` in the 200 body.
//!
//! A 503 is the readiness contract working, not an error: probes are not logged one by one;
//! a change of readiness is logged once ([`ReadyLog`]), at WARN when the node turns unready
//! and INFO when it is ready again.
use std::sync::{
    Arc,
    atomic::{AtomicU8, Ordering},
};

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;

use crate::drain::Drain;

/// A readiness condition contributed by another part of the gateway.
pub trait ReadyCheck: Send + Sync {
    /// Short name used in the `/readyz` body.
    fn name(&self) -> &'static str;
    /// `Err(reason)` when not ready.
    fn check(&self) -> Result<(), String>;
    /// `Some(reason)` when ready but degraded (shown in `/readyz`'s body, logged once).
    fn degraded(&self) -> Option<String> {
        None
    }
}

/// The readiness last answered, so a change is logged once (0 = not asked yet); the same for
/// degradation.
#[derive(Debug, Default)]
pub struct ReadyLog(AtomicU8, AtomicU8);

const READY: u8 = 1;
const UNREADY: u8 = 2;

impl ReadyLog {
    /// Note the answer of one probe; logs when it differs from the previous one.
    pub fn note(&self, node_id: &str, failing: &[serde_json::Value]) {
        match changed(&self.0, failing) {
            Some(true) => {
                tracing::warn!(node_id, failing = %serde_json::Value::from(failing.to_vec()), "not ready: /readyz answers 503 until this clears")
            }
            Some(false) => tracing::info!(node_id, "ready again"),
            None => {}
        }
    }

    /// Note the degradation of one probe; logs when it starts and when it clears.
    pub fn note_degraded(&self, node_id: &str, degraded: &[serde_json::Value]) {
        match changed(&self.1, degraded) {
            Some(true) => {
                tracing::warn!(node_id, degraded = %serde_json::Value::from(degraded.to_vec()), "degraded, still ready: /readyz answers 200 and names it")
            }
            Some(false) => tracing::info!(node_id, "no longer degraded"),
            None => {}
        }
    }
}

/// Store whether `problems` is non-empty in `cell`; `Some(now)` when that changed (the first
/// answer counts as a change only when it is a problem).
fn changed(cell: &AtomicU8, problems: &[serde_json::Value]) -> Option<bool> {
    let now = if problems.is_empty() { READY } else { UNREADY };
    let before = cell.swap(now, Ordering::Relaxed);
    (before != now && !(before == 0 && now == READY)).then_some(now == UNREADY)
}

pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, Json(json!({ "status": "alive" })))
}

/// What `/readyz` answers from: the drain, the registered checks, and the log of changes.
pub struct Readiness {
    node_id: String,
    drain: Arc<Drain>,
    checks: Vec<Arc<dyn ReadyCheck>>,
    log: ReadyLog,
}

impl Readiness {
    pub fn new(node_id: &str, drain: Arc<Drain>, checks: Vec<Arc<dyn ReadyCheck>>) -> Readiness {
        Readiness {
            node_id: node_id.to_owned(),
            drain,
            checks,
            log: ReadyLog::default(),
        }
    }
}

pub async fn readyz(State(r): State<Arc<Readiness>>) -> impl IntoResponse {
    let node_id = r.node_id.as_str();
    let mut reasons = Vec::new();
    let mut degraded = Vec::new();
    if r.drain.is_draining() {
        reasons.push(json!({ "check": "drain", "reason": "draining" }));
    }
    for c in &r.checks {
        if let Err(reason) = c.check() {
            reasons.push(json!({ "check": c.name(), "reason": reason }));
        } else if let Some(reason) = c.degraded() {
            degraded.push(json!({ "check": c.name(), "reason": reason }));
        }
    }
    r.log.note(node_id, &reasons);
    r.log.note_degraded(node_id, &degraded);
    if reasons.is_empty() {
        let mut body = json!({ "status": "ready", "node_id": node_id });
        if !degraded.is_empty() {
            body["degraded"] = degraded.into();
        }
        (StatusCode::OK, Json(body))
    } else {
        let reason = if r.drain.is_draining() {
            "draining"
        } else {
            "not ready"
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "reason": reason,
                "node_id": node_id,
                "failing": reasons,
            })),
        )
    }
}
