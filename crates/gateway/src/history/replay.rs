//! Sending the missed messages to one recovering socket, in order.
//!
//! A replay can be longer than the socket's send queue (`--max-buffer` packets, 128 by
//! default): a message that finds the queue full waits for room (1 ms doubling to 50 ms)
//! instead of being dropped, up to [`DEADLINE`] for the whole replay. This runs under the
//! room's history lock, so the room's publishers wait meanwhile: that is what keeps live
//! messages behind the replay (see the module doc of `history`).
use std::time::{Duration, Instant};

use serde::{Serialize, ser::SerializeTuple};
use socketioxide::{SendError, SocketError, adapter::Adapter, extract::SocketRef};

use super::message::Delivery;

/// Longest a replay may wait on a socket that does not read.
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

/// Send `msgs` to `s` in order; returns how many were sent.
pub async fn send<A: Adapter>(
    s: &SocketRef<A>,
    msgs: &[Delivery<'_>],
) -> Result<usize, ReplayError> {
    let started = Instant::now();
    for d in msgs {
        send_one(s, d.event, d, started).await?;
    }
    Ok(msgs.len())
}

/// Send one message, waiting for room in the queue (the deadline runs from `started`).
pub async fn send_one<A: Adapter, T: Serialize + ?Sized>(
    s: &SocketRef<A>,
    event: &str,
    data: &T,
    started: Instant,
) -> Result<(), ReplayError> {
    let mut backoff = Duration::from_millis(1);
    loop {
        match s.emit(event, data) {
            Ok(()) => {
                crate::admin::replayed(s, event, data);
                return Ok(());
            }
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {}
            Err(SendError::Socket(SocketError::Closed)) => return Err(ReplayError::Closed),
            Err(e) => return Err(ReplayError::Encode(e.to_string())),
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
