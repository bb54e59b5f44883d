//! Sending the missed messages to one recovering socket, in order.
//!
//! A replay can be longer than the socket's send queue (`--max-buffer` packets, 128 by
//! default). The caller sends what fits with [`try_send`] while it holds the room's history
//! lock; a message that finds the queue full is sent with [`send_one`], which waits for room
//! (1 ms doubling to 50 ms), up to [`DEADLINE`] for the whole recovery, and must be called
//! *without* the room's lock: a client that stops reading would otherwise hold up every
//! publisher of the room (see `relay`'s recovering joins and the module doc of `history`).
use std::time::{Duration, Instant};

use serde::{Serialize, ser::SerializeTuple};
use socketioxide::{SendError, SocketError, adapter::Adapter, extract::SocketRef};

/// Longest a recovery may wait on a socket that does not read.
pub const DEADLINE: Duration = Duration::from_secs(10);

const MAX_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the connection closed during the replay")]
    Closed,
    #[error("the client did not read its replay within {}s", DEADLINE.as_secs())]
    Stalled,
    #[error("a message could not be encoded: {0}")]
    Encode(String),
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

/// Send one message, waiting for room in the queue (the deadline runs from `started`). Never
/// call it holding a room's history lock.
pub async fn send_one<A: Adapter, T: Serialize + ?Sized>(
    s: &SocketRef<A>,
    event: &str,
    data: &T,
    started: Instant,
) -> Result<(), ReplayError> {
    let mut backoff = Duration::from_millis(1);
    loop {
        if try_send(s, event, data)? {
            return Ok(());
        }
        if started.elapsed() >= DEADLINE {
            return Err(ReplayError::Stalled);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
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
