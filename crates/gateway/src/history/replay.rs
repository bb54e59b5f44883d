//! Sending the missed messages to one recovering socket, in order.
//!
//! A replay can be longer than the socket's send queue (`--max-buffer` packets, 128 by
//! default). The caller sends what fits with [`Sender::try_send`] while it holds the room's
//! history lock; a message that finds no room is sent with [`Sender::send`], which waits for
//! room (1 ms doubling to 50 ms), up to [`DEADLINE`] for the whole recovery, and must be called
//! *without* the room's lock: a client that stops reading would otherwise hold up every
//! publisher of the room (see `relay`'s recovering joins and the module doc of `history`).
//!
//! A [`Sender`] also bounds the replay by bytes (`history::flow`): a
//! message is queued only while the replay's bytes queued and not yet delivered stay within
//! the window and the node's budget; otherwise [`Sender::send`] waits like for a full queue.
//! "Delivered" is the session's transport's count ([`Delivered`]), looked up again in every
//! wait round (a polling session may upgrade to a websocket mid-replay).
use std::time::{Duration, Instant};

use serde::{Serialize, ser::SerializeTuple};
use socketioxide::{SendError, SocketError, TransportType, adapter::Adapter, extract::SocketRef};

use super::flow::{ReplayBudget, Reservation};
use crate::{
    drain::Drain,
    listener::{ConnRegistry, Written},
    polling::{Polled, PollingSessions},
};

/// Where the node's transports say how much they delivered: what a replay reads, not the
/// whole gateway.
#[derive(Clone, Copy)]
pub struct Transports<'a> {
    pub polling: &'a PollingSessions,
    pub drain: &'a Drain,
    pub conns: &'a ConnRegistry,
}

/// Longest a recovery may wait on a socket that does not read.
pub const DEADLINE: Duration = Duration::from_secs(10);

const MAX_BACKOFF: Duration = Duration::from_millis(50);
/// How long after a recovery's start a socket that is not connected may still be connecting.
/// socketioxide 0.18 sends the CONNECT ack before it marks the socket connected
/// (`ns.rs`, `connect`: `socket.send(Packet::connect(..))`, then `set_connected(true)`), and
/// its `emit` refuses a socket not marked yet (`SocketError::Closed`). A client that rejoins its
/// rooms on `connect` (the served helper does) can have its join's replay run in that window,
/// on another worker: under load it was answered "the connection closed during the replay"
/// on a live connection. Within this time such a refusal means "not yet": the replay waits
/// as for a full queue. A socket that really closed is seen as closed after it.
const CONNECTING: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the connection closed during the replay")]
    Closed,
    #[error("the client did not read its replay within {}s", DEADLINE.as_secs())]
    Stalled,
    #[error("a message could not be encoded: {0}")]
    Encode(String),
    #[error("the room's history became unavailable during the replay: {0}")]
    Unavailable(String),
    #[error("{0}")]
    HeldBack(#[from] super::holdback::Overflowed),
}

/// Send one message if the socket's queue has room for it, without waiting: `Ok(false)` when
/// the queue is full (nothing sent).
pub fn try_send<A: Adapter, T: Serialize + ?Sized>(
    s: &SocketRef<A>,
    event: &str,
    data: &T,
) -> Result<bool, ReplayError> {
    match s.emit(event, data) {
        Ok(()) => {
            crate::admin::replayed(s, event, data);
            Ok(true)
        }
        Err(SendError::Socket(SocketError::InternalChannelFull)) => Ok(false),
        Err(SendError::Socket(SocketError::Closed)) => Err(ReplayError::Closed),
        Err(e) => Err(ReplayError::Encode(e.to_string())),
    }
}

/// How far a session's client has taken what was queued for it: bytes written on its
/// websocket's TCP connection, or bytes of the poll answers served to it.
#[derive(Clone)]
pub enum Delivered {
    Websocket(Written),
    Polling(Polled),
}

impl Delivered {
    /// The session's transport now; `None` when its websocket's connection is not known (any
    /// more): nothing then counts as delivered, and the replay ends when the socket closes or
    /// at its deadline. A registry lookup (a short lock): once per wait round.
    pub fn of<A: Adapter>(t: Transports<'_>, s: &SocketRef<A>) -> Option<Delivered> {
        match s.transport_type() {
            TransportType::Polling => Some(Delivered::Polling(t.polling.progress(s.id))),
            TransportType::Websocket => {
                let conn = t
                    .drain
                    .ws_conn(s.id.as_str())
                    .or_else(|| crate::drain::websocket_handshake_conn(s.req_parts()))?;
                t.conns.progress(conn).map(Delivered::Websocket)
            }
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Delivered::Websocket(w) => w.bytes(),
            Delivered::Polling(p) => p.bytes(),
        }
    }

    fn same(&self, other: &Delivered) -> bool {
        match (self, other) {
            (Delivered::Websocket(a), Delivered::Websocket(b)) => a.same(b),
            (Delivered::Polling(a), Delivered::Polling(b)) => a.same(b),
            _ => false,
        }
    }
}

/// One replay to one socket: its byte window and share of the node's replay budget (given
/// back when the sender is dropped, however the replay ended), its transport's progress, and
/// the recovery's deadline.
pub struct Sender<'a, A: Adapter> {
    transports: Transports<'a>,
    s: &'a SocketRef<A>,
    flow: Reservation<'a>,
    transport: Option<Delivered>,
    started: Instant,
}

impl<'a, A: Adapter> Sender<'a, A> {
    /// A replay to `s` whose deadline runs from `started`, counted against `budget`.
    pub fn new(
        transports: Transports<'a>,
        budget: &'a ReplayBudget,
        s: &'a SocketRef<A>,
        started: Instant,
    ) -> Sender<'a, A> {
        let transport = Delivered::of(transports, s);
        let mut flow = Reservation::new(budget);
        flow.new_transport(transport.as_ref().map(Delivered::bytes));
        Sender {
            transports,
            s,
            flow,
            transport,
            started,
        }
    }

    /// Take what the transport delivered since the last look off what is outstanding: one
    /// atomic load.
    fn look(&mut self) {
        if let Some(t) = &self.transport {
            self.flow.delivered(t.bytes());
        }
    }

    /// Look the session's transport up again (it may have upgraded).
    fn resolve(&mut self) {
        let now = Delivered::of(self.transports, self.s);
        let same = match (&self.transport, &now) {
            (Some(a), Some(b)) => a.same(b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.look();
            // Counted from its start, not from now: a session upgrades to a websocket opened
            // after the replay started, and the upgrade flushes what was queued for the old
            // transport onto it at once, before this round may see it (from now, that would
            // never count as delivered, and the replay wait for it until its deadline).
            self.flow.new_transport(now.as_ref().map(|_| 0));
            self.transport = now;
        }
    }

    /// Send one message of about `bytes` ([`super::message::Delivery::wire_floor`]) if the
    /// window, the budget and the socket's queue have room for it, without waiting:
    /// `Ok(false)` when not (nothing sent).
    pub fn try_send<T: Serialize + ?Sized>(
        &mut self,
        event: &str,
        data: &T,
        bytes: u64,
    ) -> Result<bool, ReplayError> {
        self.look();
        if !self.flow.admit(bytes) {
            return Ok(false);
        }
        let sent = match try_send(self.s, event, data) {
            Err(ReplayError::Closed) if self.started.elapsed() < CONNECTING => Ok(false),
            sent => sent,
        };
        if !matches!(sent, Ok(true)) {
            self.flow.cancel(bytes);
        }
        sent
    }

    /// Send one message, waiting (1 ms doubling to 50 ms) for the client to take enough of what
    /// was queued, up to [`DEADLINE`] from the recovery's start. Never call it holding a room's
    /// history lock.
    pub async fn send<T: Serialize + ?Sized>(
        &mut self,
        event: &str,
        data: &T,
        bytes: u64,
    ) -> Result<(), ReplayError> {
        let mut backoff = Duration::from_millis(1);
        loop {
            if self.try_send(event, data, bytes)? {
                return Ok(());
            }
            if !self.s.connected() && self.started.elapsed() >= CONNECTING {
                return Err(ReplayError::Closed);
            }
            if self.started.elapsed() >= DEADLINE {
                return Err(ReplayError::Stalled);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            self.resolve();
        }
    }
}

/// Arguments spread as separate Socket.IO arguments (socketioxide spreads tuples).
pub struct Spread<'a>(pub &'a [serde_json::Value]);

impl Serialize for Spread<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(self.0.len())?;
        for v in self.0 {
            t.serialize_element(v)?;
        }
        t.end()
    }
}
