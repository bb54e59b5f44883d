//! Test-only stand-ins for socketioxide's namespace, so adapter logic can be unit-tested
//! without sockets: [`Sockets`] (a fixed set of socket ids, nothing delivered) and
//! [`RecordingNs`] (sockets that record what they are sent, answer acks and can be
//! disconnected), the namespace of each node of the multi-node tests.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use futures_util::stream::{self, FusedStream, Stream, StreamExt};
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

/// A namespace of one test node: its sockets record every packet they are sent (as the text the
/// common parser makes of it), answer every ack request with `"ack:<sid>"`, and disconnect.
#[derive(Clone)]
pub(crate) struct RecordingNs(Arc<Recorded>);

struct Recorded {
    path: Str,
    uid: Uid,
    ack_timeout: Duration,
    sockets: Mutex<Vec<Sid>>,
    sent: Mutex<Vec<(Sid, String)>>,
    disconnected: Mutex<Vec<Sid>>,
}

/// The acks of a broadcast with acks to recording sockets.
pub(crate) type RecordedAcks =
    stream::Fuse<stream::Iter<std::vec::IntoIter<(Sid, Result<Value, NoAckError>)>>>;

impl RecordingNs {
    pub(crate) fn new(path: &str, sockets: &[Sid]) -> Self {
        Self(Arc::new(Recorded {
            path: Str::from(path.to_owned()),
            uid: Uid::new(),
            ack_timeout: Duration::from_secs(1),
            sockets: Mutex::new(sockets.to_vec()),
            sent: Mutex::new(Vec::new()),
            disconnected: Mutex::new(Vec::new()),
        }))
    }

    /// Another instance of the same namespace on the same server (same uid, as socketioxide's
    /// are: the uid is the `SocketIo`'s), holding `sockets`.
    pub(crate) fn sibling(&self, sockets: &[Sid]) -> Self {
        Self(Arc::new(Recorded {
            path: self.0.path.clone(),
            uid: self.0.uid,
            ack_timeout: self.0.ack_timeout,
            sockets: Mutex::new(sockets.to_vec()),
            sent: Mutex::new(Vec::new()),
            disconnected: Mutex::new(Vec::new()),
        }))
    }

    /// Packets sent to `sid` so far, in order.
    pub(crate) fn sent_to(&self, sid: Sid) -> Vec<String> {
        self.0
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(s, _)| *s == sid)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Sockets disconnected so far.
    pub(crate) fn disconnected(&self) -> Vec<Sid> {
        self.0
            .disconnected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn connected(&self) -> Vec<Sid> {
        self.0
            .sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn record(&self, sids: impl Iterator<Item = Sid>, data: &Value) {
        let Value::Str(text, _) = data else { return };
        let connected = self.connected();
        let mut sent = self.0.sent.lock().unwrap_or_else(|e| e.into_inner());
        sent.extend(
            sids.filter(|s| connected.contains(s))
                .map(|s| (s, text.to_string())),
        );
    }
}

impl SocketEmitter for RecordingNs {
    type AckError = NoAckError;
    type AckStream = RecordedAcks;
    fn get_all_sids(&self, filter: impl Fn(&Sid) -> bool) -> Vec<Sid> {
        self.connected().into_iter().filter(|s| filter(s)).collect()
    }
    fn get_remote_sockets(&self, sids: BroadcastIter<'_>) -> Vec<RemoteSocketData> {
        let connected = self.connected();
        sids.filter(|s| connected.contains(s))
            .map(|id| RemoteSocketData {
                id,
                server_id: self.0.uid,
                ns: self.0.path.clone(),
            })
            .collect()
    }
    fn send_many(&self, sids: BroadcastIter<'_>, data: Value) -> Result<(), Vec<SocketError>> {
        self.record(sids, &data);
        Ok(())
    }
    fn send_many_volatile(&self, sids: BroadcastIter<'_>, data: Value) {
        self.record(sids, &data);
    }
    fn send_many_with_ack(
        &self,
        sids: BroadcastIter<'_>,
        packet: Packet,
        _: Option<Duration>,
    ) -> (RecordedAcks, u32) {
        let connected = self.connected();
        let sids: Vec<Sid> = sids.filter(|s| connected.contains(s)).collect();
        let data = self.parser().encode(packet);
        self.record(sids.iter().copied(), &data);
        let acks: Vec<_> = sids
            .iter()
            .map(|s| (*s, Ok(Value::Str(format!("[\"ack:{s}\"]").into(), None))))
            .collect();
        (stream::iter(acks).fuse(), sids.len() as u32)
    }
    fn disconnect_many(&self, sids: Vec<Sid>) -> Result<(), Vec<SocketError>> {
        self.0
            .sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| !sids.contains(s));
        self.0
            .disconnected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(sids);
        Ok(())
    }
    fn path(&self) -> &Str {
        &self.0.path
    }
    fn parser(&self) -> impl Parse {
        socketioxide_parser_common::CommonParser
    }
    fn server_id(&self) -> Uid {
        self.0.uid
    }
    fn ack_timeout(&self) -> Duration {
        self.0.ack_timeout
    }
}
