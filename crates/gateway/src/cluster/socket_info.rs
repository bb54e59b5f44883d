//! What this node tells other nodes about its sockets in `fetchSockets` answers (the adapter's
//! [`SocketInfoSource`] hook): the handshake as `admin::serialize::handshake` shows it, and
//! `data` = the socket's auth data plus `_admin: {clientId, transport}`, the field
//! `instrument()` keeps there, so an Admin UI on another node (gateway or Node.js) shows the
//! socket's transport and address. `GET /api/v1/sockets` leaves `_admin` out of `data`.
use std::sync::Arc;

use serde_json::{Value, json};
use sio_redis_adapter::{SocketInfo, SocketInfoSource};
use socketioxide::{SocketIo, TransportType, adapter::Adapter, socket::Sid};

use crate::{admin::serialize::ADMIN_FIELDS, auth::Identity};

pub struct GatewaySockets<A: Adapter> {
    pub io: SocketIo<A>,
}

impl<A: Adapter> SocketInfoSource for GatewaySockets<A> {
    fn socket_info(&self, nsp: &str, sid: Sid) -> Option<SocketInfo> {
        let s = self.io.of(nsp)?.get_socket(sid)?;
        let mut data = match s.extensions.get::<Arc<Identity>>().map(|i| i.data.clone()) {
            Some(Value::Object(o)) => o,
            Some(Value::Null) | None => serde_json::Map::new(),
            Some(other) => [("value".to_owned(), other)].into_iter().collect(),
        };
        let transport = match s.transport_type() {
            TransportType::Polling => "polling",
            TransportType::Websocket => "websocket",
        };
        data.insert(
            ADMIN_FIELDS.into(),
            json!({ "clientId": sid.to_string(), "transport": transport }),
        );
        let handshake = crate::admin::serialize::handshake(s.req_parts());
        Some(SocketInfo {
            handshake: sio_wire::json::from_serde(&handshake),
            data: sio_wire::json::from_serde(&Value::Object(data)),
        })
    }
}
