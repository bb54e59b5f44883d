//! A hook the application may install to say what this node knows of its own sockets when
//! another node asks (`fetchSockets`): the handshake and `data` of a socket. socketioxide does
//! not show an adapter either, so without a hook the answer carries a minimal Node-shaped
//! handshake and empty data (enough for Node's `RemoteSocket`).
//!
//! Set once ([`RedisAdapterHandle::set_socket_info`](crate::RedisAdapterHandle::set_socket_info));
//! called once per socket of a `fetchSockets` answer, never on the broadcast path.
use socketioxide_core::Sid;

/// What one socket shows other nodes.
pub struct SocketInfo {
    /// Node's handshake object (`headers`, `time`, `address`, `xdomain`, `secure`, `issued`,
    /// `url`, `query`, `auth`).
    pub handshake: sio_wire::Value,
    /// `socket.data`.
    pub data: sio_wire::Value,
}

pub trait SocketInfoSource: Send + Sync + 'static {
    /// The socket `sid` of namespace `nsp` on this node; `None` keeps the minimal answer.
    fn socket_info(&self, nsp: &str, sid: Sid) -> Option<SocketInfo>;
}
