//! The API's handlers: emit, socketsJoin/Leave, disconnectSockets, fetchSockets, allRooms —
//! the same operations as a Node.js server's `io.to(..).except(..)` operators, through
//! socketioxide's, so they span the cluster when the Redis adapter is in use.
//! Presence in cluster mode asks the Redis adapter itself (`ClusterView::presence`): only its
//! answers hold Node.js peers' 20-character socket ids.
use std::{collections::HashSet, sync::Arc};

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Deserializer};

use crate::args::Args;
use serde_json::{Value, json};
use socketioxide::{BroadcastError, adapter::Adapter, operators::BroadcastOperators, socket::Sid};

use super::{ApiError, Body, Params};
use crate::{
    auth::Identity,
    history::{message::Args as HistoryArgs, stream::StoreError},
    names::{MAX_NAME_LEN, is_reserved, valid_len},
    state::AppState,
};

/// Longest event or room name accepted (same bound as the relay).
/// Most sockets listed by one `GET /sockets` (each costs a rooms lookup).
const MAX_LIST: usize = 10_000;

/// A room list written as a string or an array of strings.
fn rooms<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

fn root() -> String {
    "/".into()
}

/// Which sockets an operation applies to: those of `nsp` in any of `rooms` (all when empty)
/// and in none of `except`.
#[derive(Debug, Deserialize)]
pub struct Target {
    #[serde(default = "root")]
    pub nsp: String,
    #[serde(default, deserialize_with = "rooms")]
    pub rooms: Vec<String>,
    #[serde(default, deserialize_with = "rooms")]
    pub except: Vec<String>,
}

fn check_names(what: &str, names: &[String]) -> Result<(), ApiError> {
    match names.iter().find(|n| !valid_len(n)) {
        Some(_) => Err(ApiError::bad_request(format!(
            "`{what}` entries must be 1-{MAX_NAME_LEN} bytes"
        ))),
        None => Ok(()),
    }
}

impl Target {
    fn operators<A: Adapter>(&self, st: &AppState<A>) -> Result<BroadcastOperators<A>, ApiError> {
        check_names("rooms", &self.rooms)?;
        check_names("except", &self.except)?;
        let op = st.io.of(&self.nsp).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown namespace `{}`", self.nsp),
            )
        })?;
        Ok(op.to(self.rooms.clone()).except(self.except.clone()))
    }
}

#[derive(Debug, Deserialize)]
pub struct EmitBody {
    #[serde(flatten)]
    pub target: Target,
    pub event: String,
    /// One argument.
    #[serde(default)]
    pub data: Option<Value>,
    /// Several arguments (instead of `data`).
    #[serde(default)]
    pub args: Option<Vec<Value>>,
}

fn ok() -> Response {
    Json(json!({ "ok": true })).into_response()
}

/// Map a broadcast result: adapter failures are 503; sockets whose buffer was full still
/// count as a done broadcast (the rest got it) but are reported.
fn broadcast_result(r: Result<(), BroadcastError>) -> Result<Response, ApiError> {
    match r {
        Ok(()) => Ok(ok()),
        Err(BroadcastError::Adapter(e)) => Err(ApiError::unavailable(e)),
        Err(BroadcastError::Serialize(e)) => {
            Err(ApiError::bad_request(format!("cannot encode data: {e}")))
        }
        Err(BroadcastError::Socket(errs)) => Ok(Json(
            json!({ "ok": true, "undelivered_local_sockets": errs.len() }),
        )
        .into_response()),
    }
}

/// `POST /api/v1/emit`.
pub async fn emit<A: Adapter>(
    State(st): State<AppState<A>>,
    Body(b): Body<EmitBody>,
) -> Result<Response, ApiError> {
    if !valid_len(&b.event) {
        return Err(ApiError::bad_request(format!(
            "`event` must be 1-{MAX_NAME_LEN} bytes"
        )));
    }
    if is_reserved(&b.event) {
        return Err(ApiError::bad_request(format!(
            "event name `{}` is reserved",
            b.event
        )));
    }
    if b.data.is_some() && b.args.is_some() {
        return Err(ApiError::bad_request("give `data` or `args`, not both"));
    }
    // An object with a `_placeholder` key would be read by receivers as a binary attachment
    // reference (the one check is in sio-wire); one walk of the body just parsed, no allocation.
    if let Err(e) = b
        .args
        .iter()
        .flatten()
        .chain(&b.data)
        .try_for_each(sio_wire::check_no_placeholders_json)
    {
        return Err(ApiError::bad_request(format!("`data`/`args`: {e}")));
    }
    let op = b.target.operators(&st)?;
    let history = history_room(&st, &b.target)?;
    // Deliveries count on the node that writes them (`events_sent_total`): this node's share is
    // listed here, other nodes count theirs when the adapter delivers the broadcast.
    let local_targets = op.clone().local().sockets().len();
    let r = match history {
        // A history room: appended, then delivered with its mark under the room's lock (the
        // single append point, see `history`).
        Some(rh) => {
            let args = match (b.args, b.data) {
                (Some(args), _) => args,
                (None, Some(d)) => vec![d],
                (None, None) => Vec::new(),
            };
            let history = &st.gw.history;
            let mut g = rh.lock(&history.metrics).await;
            match history.store() {
                None => {
                    let d = g.append(b.event, HistoryArgs::Many(args));
                    op.emit(d.event, &d).await
                }
                Some(store) => {
                    let a = history
                        .append_cluster(&mut g, store, b.event, HistoryArgs::Many(args))
                        .await
                        .map_err(|e| match e {
                            StoreError::TooLarge(..) => {
                                ApiError::bad_request(format!("not published: {e}"))
                            }
                            e => ApiError::unavailable(format_args!("the room's history: {e}")),
                        })?;
                    // Sockets recovering in the room get it after their replay.
                    let op = history.holdback.leave_out(op, &b.target.nsp, &a);
                    op.emit(&a.event, &a.delivery()).await
                }
            }
        }
        None => match (&b.args, &b.data) {
            (Some(args), _) => op.emit(&b.event, &Args(args)).await,
            (None, Some(d)) => op.emit(&b.event, d).await,
            (None, None) => op.emit(&b.event, &Args(&[])).await,
        },
    };
    let m = &st.gw.metrics;
    let undelivered = match &r {
        Ok(()) => 0,
        Err(BroadcastError::Socket(errs)) => errs.len(),
        Err(BroadcastError::Adapter(e)) => {
            // The local share was delivered before the adapter failed (as for a client's
            // publish): the answer stays 503 (the cluster was not reached), and its body says
            // who did get it, so a backend does not retry into duplicates unknowingly.
            m.broadcasts_total.with_label_values(&["http"]).inc();
            m.events_sent_total.inc_by(local_targets as u64);
            m.dropped_cluster_unreachable.inc();
            let body = json!({
                "error": format!(
                    "adapter unavailable: delivered on this node ({local_targets} sockets); delivery to other nodes not confirmed: {e}"
                ),
                "local": local_targets,
                "cluster": false,
            });
            return Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response());
        }
        Err(_) => return broadcast_result(r),
    };
    m.broadcasts_total.with_label_values(&["http"]).inc();
    m.events_sent_total
        .inc_by(local_targets.saturating_sub(undelivered) as u64);
    broadcast_result(r)
}

/// The history of the emit's room, if it goes to one history room. A broadcast to several
/// rooms of which one keeps a history is refused: each socket gets a broadcast once, so it
/// could carry only one room's offset.
fn history_room<A: Adapter>(
    st: &AppState<A>,
    t: &Target,
) -> Result<Option<Arc<crate::history::RoomHistory>>, ApiError> {
    let h = &st.gw.history;
    if !h.is_enabled() {
        return Ok(None);
    }
    match t.rooms.as_slice() {
        [room] => Ok(h.room(&t.nsp, room)),
        rooms => match rooms.iter().find(|r| h.spec(r).is_some()) {
            Some(r) => Err(ApiError::bad_request(format!(
                "room `{r}` keeps a history (--history): emit to it alone, not with other rooms"
            ))),
            None => Ok(None),
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct RoomsBody {
    #[serde(flatten)]
    pub target: Target,
    #[serde(deserialize_with = "rooms")]
    pub target_rooms: Vec<String>,
}

fn target_rooms(b: &RoomsBody) -> Result<Vec<String>, ApiError> {
    if b.target_rooms.is_empty() {
        return Err(ApiError::bad_request(
            "`target_rooms` must name at least one room",
        ));
    }
    check_names("target_rooms", &b.target_rooms)?;
    Ok(b.target_rooms.clone())
}

/// `POST /api/v1/sockets/join` (socketsJoin).
pub async fn join<A: Adapter>(
    State(st): State<AppState<A>>,
    Body(b): Body<RoomsBody>,
) -> Result<Response, ApiError> {
    let rooms = target_rooms(&b)?;
    b.target
        .operators(&st)?
        .join(rooms)
        .await
        .map_err(ApiError::unavailable)?;
    // Cluster mode: local sockets' new rooms are subscribed before answering.
    st.gw.sync_rooms(&b.target.nsp).await;
    Ok(ok())
}

/// `POST /api/v1/sockets/leave` (socketsLeave).
pub async fn leave<A: Adapter>(
    State(st): State<AppState<A>>,
    Body(b): Body<RoomsBody>,
) -> Result<Response, ApiError> {
    let rooms = target_rooms(&b)?;
    b.target
        .operators(&st)?
        .leave(rooms)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(ok())
}

/// `POST /api/v1/sockets/disconnect` (disconnectSockets).
pub async fn disconnect<A: Adapter>(
    State(st): State<AppState<A>>,
    Body(t): Body<Target>,
) -> Result<Response, ApiError> {
    broadcast_result(t.operators(&st)?.disconnect().await)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketsQuery {
    #[serde(default = "root")]
    pub nsp: String,
    #[serde(default)]
    pub room: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The `user:<sub>` room's `sub`, if the socket is in one.
fn user_of(rooms: &[String]) -> Option<String> {
    rooms
        .iter()
        .find_map(|r| r.strip_prefix(crate::auth::USER_ROOM_PREFIX))
        .map(str::to_owned)
}

/// Handshake data (from the auth webhook) of a socket of this node: it lives in the socket's
/// extensions, which only the owning node can read.
fn local_data<A: Adapter>(local: Option<&BroadcastOperators<A>>, sid: Sid) -> Option<Value> {
    local
        .and_then(|op| op.get_socket(sid))
        .and_then(|s| s.extensions.get::<Arc<Identity>>())
        .map(|i| i.data.clone())
}

/// `GET /api/v1/sockets?nsp&room&limit` (fetchSockets): presence, cluster-wide.
pub async fn sockets<A: Adapter>(
    State(st): State<AppState<A>>,
    Params(q): Params<SocketsQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(1000).min(MAX_LIST);
    let t = Target {
        nsp: q.nsp,
        rooms: q.room.into_iter().collect(),
        except: Vec::new(),
    };
    let op = t.operators(&st)?;
    let local = st.io.of(&t.nsp);
    let node_id = st.gw.node_id();
    // Cluster mode. The presence future is lazy: unpolled when a listing is shared.
    if let Some(presence) = st.gw.cluster.presence(t.nsp.clone(), t.rooms.clone()) {
        let listing = st
            .gw
            .listings
            .get(t.nsp.clone(), t.rooms.clone(), move || presence);
        return cluster_sockets(listing, op, local, limit, node_id).await;
    }
    let mut found = op.fetch_sockets().await.map_err(ApiError::unavailable)?;
    let total = found.len();
    found.truncate(limit);
    // One rooms lookup per socket (a cluster request for remote ones): a few at a time.
    let list: Vec<Value> = stream::iter(found)
        .map(|s| {
            let local = local.clone();
            async move {
                let d = s.data();
                let own = d.id.to_string();
                // The socket's own-id room is left out, as in cluster mode.
                let rooms: Vec<String> = s
                    .rooms()
                    .await
                    .map(|r| {
                        r.into_iter()
                            .map(|r| r.into_owned())
                            .filter(|r| *r != own)
                            .collect()
                    })
                    .unwrap_or_default();
                let user = user_of(&rooms);
                let data = local_data(local.as_ref(), d.id).unwrap_or(Value::Null);
                json!({
                    "id": d.id.to_string(),
                    "node": node_id,
                    "rooms": rooms,
                    "user": user,
                    "data": data,
                })
            }
        })
        .buffered(16)
        .collect()
        .await;
    Ok(Json(json!({ "sockets": list, "total": total, "complete": true })).into_response())
}

/// Cluster presence from the Redis adapter: one request answered by every node, Node.js peers
/// included, rooms in the answers. Sockets of this node get their webhook data and adapter
/// configured node id; a remote socket carries only what its node sent (Node's `socket.data`)
/// and the node id a gateway gives with its sockets (`null` for a Node.js peer's).
async fn cluster_sockets<A: Adapter>(
    presence: crate::cluster_view::SharedListing,
    op: BroadcastOperators<A>,
    local: Option<BroadcastOperators<A>>,
    limit: usize,
    node_id: &str,
) -> Result<Response, ApiError> {
    // This node's sockets (no network: `local()` stays on this node).
    let here: HashSet<String> = op
        .local()
        .fetch_sockets()
        .await
        .map_err(ApiError::unavailable)?
        .into_iter()
        .map(|s| s.data().id.to_string())
        .collect();
    let answer = presence.await;
    let found = answer.as_ref().as_ref().map_err(ApiError::unavailable)?;
    let complete = found.complete();
    let total = found.items.len();
    let list: Vec<Value> = found
        .items
        .iter()
        .take(limit)
        .map(|s| {
            // This node's sockets, or what the answering gateway said (`None`: a Node peer's).
            let node = if here.contains(&s.id) {
                Some(node_id.to_owned())
            } else {
                s.node.clone()
            };
            let data = match (here.contains(&s.id), s.id.parse::<Sid>()) {
                (true, Ok(sid)) => local_data(local.as_ref(), sid),
                _ => s.data.as_ref().map(sio_wire::json::to_serde).map(|mut d| {
                    // The Admin UI's fields (`instrument()`'s, and gateways' for it).
                    if let Some(o) = d.as_object_mut() {
                        o.remove(crate::admin::serialize::ADMIN_FIELDS);
                    }
                    d
                }),
            };
            // Node reports a socket in the room named after its id; socketioxide (the
            // single-node listing) does not: drop it so both modes answer alike.
            let rooms: Vec<String> = s.rooms.iter().filter(|r| **r != s.id).cloned().collect();
            json!({
                "id": s.id,
                "node": node,
                "user": user_of(&rooms),
                "rooms": rooms,
                "data": data.unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({ "sockets": list, "total": total, "complete": complete })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomsQuery {
    #[serde(default = "root")]
    pub nsp: String,
}

/// `GET /api/v1/rooms?nsp` (allRooms).
pub async fn rooms_list<A: Adapter>(
    State(st): State<AppState<A>>,
    Params(q): Params<RoomsQuery>,
) -> Result<Response, ApiError> {
    let t = Target {
        nsp: q.nsp,
        rooms: Vec::new(),
        except: Vec::new(),
    };
    let mut rooms: Vec<String> = t
        .operators(&st)?
        .rooms()
        .await
        .map_err(ApiError::unavailable)?
        .into_iter()
        .map(|r| r.into_owned())
        .collect();
    rooms.sort();
    Ok(Json(json!({ "rooms": rooms })).into_response())
}
