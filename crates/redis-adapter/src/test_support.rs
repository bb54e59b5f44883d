//! Test-only stand-ins for socketioxide's namespace (a `SocketEmitter` with a fixed set of
//! sockets and no clients behind them), so adapter logic can be unit-tested without sockets.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::stream::{FusedStream, Stream};
use socketioxide_core::{
    Sid, Str, Uid, Value,
    adapter::{BroadcastIter, RemoteSocketData, SocketEmitter, errors::SocketError},
    packet::Packet,
    parser::Parse,
};

/// A namespace with a fixed set of sockets (the adapter only needs ids from it here).
pub(crate) struct Sockets(pub(crate) Vec<Sid>, pub(crate) Str);

pub(crate) struct NoAcks;
impl Stream for NoAcks {
    type Item = (Sid, Result<Value, NoAckError>);
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(None)
    }
}
impl FusedStream for NoAcks {
    fn is_terminated(&self) -> bool {
        true
    }
}
#[derive(Debug, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("no ack")]
pub(crate) struct NoAckError;

impl SocketEmitter for Sockets {
    type AckError = NoAckError;
    type AckStream = NoAcks;
    fn get_all_sids(&self, filter: impl Fn(&Sid) -> bool) -> Vec<Sid> {
        self.0.iter().copied().filter(|s| filter(s)).collect()
    }
    fn get_remote_sockets(&self, sids: BroadcastIter<'_>) -> Vec<RemoteSocketData> {
        sids.filter(|s| self.0.contains(s))
            .map(|id| RemoteSocketData {
                id,
                server_id: Uid::ZERO,
                ns: self.1.clone(),
            })
            .collect()
    }
    fn send_many(&self, _: BroadcastIter<'_>, _: Value) -> Result<(), Vec<SocketError>> {
        Ok(())
    }
    fn send_many_volatile(&self, _: BroadcastIter<'_>, _: Value) {}
    fn send_many_with_ack(
        &self,
        _: BroadcastIter<'_>,
        _: Packet,
        _: Option<Duration>,
    ) -> (NoAcks, u32) {
        (NoAcks, 0)
    }
    fn disconnect_many(&self, _: Vec<Sid>) -> Result<(), Vec<SocketError>> {
        Ok(())
    }
    fn path(&self) -> &Str {
        &self.1
    }
    fn parser(&self) -> impl Parse {
        socketioxide_parser_common::CommonParser
    }
    fn server_id(&self) -> Uid {
        Uid::ZERO
    }
    fn ack_timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
}
