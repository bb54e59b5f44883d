//! Sockets as the Admin UI lists them (`instrument()`'s `SerializedSocket`): `id`, `clientId`,
//! `transport`, `nsp`, `data`, `handshake`, `rooms`.
//!
//! A socket of this node is read from socketioxide; one of another node from the cluster
//! presence answer (`FetchedSocket`). The handshake carries what this gateway keeps of the
//! opening request (see `request_head`: only the headers authentication reads), never the
//! `auth` payload; `x-forwarded-for` is honoured for the address as `instrument()` does.
use std::sync::Arc;

use serde_json::{Map, Value, json};
use socketioxide::{adapter::Adapter, extract::SocketRef};

use crate::{auth::Identity, listener::ConnInfo};

/// The key of the Admin UI's fields in `socket.data` (as `instrument()` writes it).
pub const ADMIN_FIELDS: &str = "_admin";

/// A socket of this node.
pub fn local<A: Adapter>(s: &SocketRef<A>, nsp: &str) -> Value {
    from_parts(
        &s.id.to_string(),
        nsp,
        match s.transport_type() {
            socketioxide::TransportType::Polling => "polling",
            socketioxide::TransportType::Websocket => "websocket",
        },
        s.req_parts(),
        s.extensions
            .get::<Arc<Identity>>()
            .map(|i| i.data.clone())
            .unwrap_or(Value::Null),
        s.rooms().into_iter().map(|r| r.into_owned()).collect(),
    )
}

fn from_parts(
    id: &str,
    nsp: &str,
    transport: &str,
    parts: &axum::http::request::Parts,
    data: Value,
    rooms: Vec<String>,
) -> Value {
    json!({
        "id": id,
        "clientId": id,
        "transport": transport,
        "nsp": nsp,
        "data": if data.is_null() { json!({}) } else { data },
        "handshake": handshake(parts),
        "rooms": rooms,
    })
}

/// What a socket's opening request shows, in Node's handshake shape (`headers`, `query`,
/// `address`, `url`, `secure`, `xdomain`; `time`/`issued` unknown here, `auth` never shown).
/// Not the `Authorization` or `Cookie` header, not the `sid` or `token` query parameters.
pub fn handshake(parts: &axum::http::request::Parts) -> Value {
    let headers: Map<String, Value> = parts
        .headers
        .iter()
        .filter(|(k, _)| {
            *k != axum::http::header::AUTHORIZATION && *k != axum::http::header::COOKIE
        })
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), Value::from(v.to_str().ok()?))))
        .collect();
    let query: Map<String, Value> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| !matches!(*k, "sid" | "token"))
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect();
    let address = headers
        .get("x-forwarded-for")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<ConnInfo>>()
                .map(|c| c.0.remote.ip().to_string())
        });
    json!({
        "address": address,
        "headers": headers,
        "query": query,
        "url": parts.uri.path(),
        "secure": false,
        "xdomain": parts.headers.contains_key(axum::http::header::ORIGIN),
        "auth": {},
    })
}

/// A socket another node reported in the cluster presence answer.
pub fn remote(s: &sio_wire::FetchedSocket, nsp: &str) -> Value {
    let mut data = s
        .data
        .as_ref()
        .map(sio_wire::json::to_serde)
        .unwrap_or(Value::Null);
    // `instrument()` keeps its own fields in `socket.data._admin` (Node peers' sockets).
    let admin = data.as_object_mut().and_then(|o| o.remove(ADMIN_FIELDS));
    let field = |k: &str| admin.as_ref().and_then(|a| a.get(k)).cloned();
    let mut handshake = sio_wire::json::to_serde(&s.handshake);
    if let Some(h) = handshake.as_object_mut() {
        h.remove("auth");
    }
    json!({
        "id": s.id,
        "clientId": field("clientId").unwrap_or_else(|| Value::from(s.id.clone())),
        "transport": field("transport").unwrap_or(Value::Null),
        "nsp": nsp,
        "data": if data.is_null() { json!({}) } else { data },
        "handshake": handshake,
        "rooms": s.rooms,
    })
}
