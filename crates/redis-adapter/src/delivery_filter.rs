//! A hook the application may install to look at each broadcast from another node before it
//! is delivered to this node's sockets, and leave some sockets out of it (the gateway's room
//! history holds back live messages from a socket while it is being replayed what it missed).
//!
//! Set once ([`RedisAdapterHandle::set_delivery_filter`](crate::RedisAdapterHandle::set_delivery_filter));
//! read without a lock on every inbound broadcast. Without one, nothing is called.
use socketioxide_core::Value;

pub trait DeliveryFilter: Send + Sync + 'static {
    /// Called on the namespace's inbound task, in order, for each broadcast event from another
    /// node (`data` is the packet's data: `[event, ...args]`). Returns extra rooms to leave out
    /// (e.g. socket ids: every gateway socket is in the room named after its id); return an
    /// empty `Vec` (no allocation) to change nothing.
    fn before_deliver(&self, nsp: &str, rooms: &[String], data: &Value) -> Vec<String>;
}
