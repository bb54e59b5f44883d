//! Acks that are never dropped in silence.
//!
//! socketioxide's `AckSender::send` fails at once when the connection's outgoing queue
//! (`--max-buffer` packets) is full. A client that sends a burst of acked events — 200 `join`s
//! when it re-joins its rooms after a reconnect — fills that queue faster than its writer task
//! drains it, and the acks that do not fit were lost: no error, no metric, and an `emitWithAck`
//! without a timeout waited forever.
//!
//! The relay answers through [`Ack`] instead. The extractor keeps the socket and the ack id (it
//! is built from socketioxide's public `FromMessageParts`, the same way `AckSender` is), so a
//! reply that finds the queue full can be tried again: it waits with a short back-off
//! (1 ms doubling to 50 ms) until the writer has made room, which in the burst case takes
//! milliseconds. Each waiting reply is counted in `acks_delayed_total`. A client that does not
//! read at all for [`ACK_DEADLINE`] is not served any more: the reply is counted as
//! `dropped_messages_total{reason="ack_undeliverable"}`, logged, and the connection is closed
//! (transport closed, so a stock client reconnects). Waiting replies are bounded by the event
//! rate limit, which every acked event passes first.
use std::{sync::Arc, time::Duration};

use serde::Serialize;
use socketioxide::{
    SendError, SocketError, TransportType,
    adapter::Adapter,
    extract::AckSender,
    handler::{FromMessageParts, Value},
    socket::Socket,
};

use crate::state::Gateway;

/// How long a reply waits for room in a client's queue before the client counts as not reading.
pub const ACK_DEADLINE: Duration = Duration::from_secs(10);

/// Longest pause between two tries.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// The ack of one client event (a no-op when the client asked for none).
pub struct Ack<A: Adapter> {
    socket: Arc<Socket<A>>,
    id: Option<i64>,
}

impl<A: Adapter> FromMessageParts<A> for Ack<A> {
    type Error = std::convert::Infallible;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        _: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        Ok(Ack {
            socket: s.clone(),
            id: *ack_id,
        })
    }
}

impl<A: Adapter> Ack<A> {
    /// A fresh `AckSender` for this ack id (socketioxide's `send` consumes it).
    fn sender(&self) -> AckSender<A> {
        let mut unused = Value::Bytes(bytes::Bytes::new());
        match AckSender::from_message_parts(&self.socket, &mut unused, &self.id) {
            Ok(a) => a,
            Err(never) => match never {},
        }
    }

    /// Send `v`, waiting for room in the client's queue if needed (see the module doc).
    pub async fn send<T: Serialize + ?Sized>(self, gw: &Gateway, v: &T) {
        if self.id.is_none() {
            return;
        }
        let mut backoff = Duration::from_millis(1);
        let mut waited = Duration::ZERO;
        loop {
            match self.sender().send(v) {
                Ok(()) => return,
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {}
                Err(SendError::Socket(SocketError::Closed)) => {
                    // Gone: nobody left to answer.
                    return;
                }
                Err(e) => {
                    // Serialising our own JSON replies cannot fail; if it ever does, say so.
                    gw.metrics.dropped_send_failed.inc();
                    tracing::warn!(sid = %self.socket.id, error = %e, "ack not sent");
                    return;
                }
            }
            if waited.is_zero() {
                gw.metrics.acks_delayed_total.inc();
            }
            if waited >= ACK_DEADLINE {
                gw.metrics.dropped_ack_undeliverable.inc();
                tracing::warn!(
                    node_id = %gw.node_id(),
                    sid = %self.socket.id,
                    waited_ms = waited.as_millis() as u64,
                    "client does not read its acks: closing the connection"
                );
                close_transport(gw, self.socket);
                return;
            }
            tokio::time::sleep(backoff).await;
            waited += backoff;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Close a client whose queue stays full. socketioxide's `disconnect` needs room in that same
/// queue; when there is none, a websocket client's TCP connection is cut (the drain's way, see
/// `listener`). A polling client that does not poll is closed by its heartbeat timeout.
fn close_transport<A: Adapter>(gw: &Gateway, s: Arc<Socket<A>>) {
    let sid = s.id;
    let websocket = s.transport_type() == TransportType::Websocket;
    if s.clone().disconnect().is_ok() {
        return;
    }
    if websocket && gw.drain.cut_transport(&gw.conns, &s) {
        return;
    }
    tracing::debug!(%sid, "transport not found; the heartbeat closes it");
}
