//! The stream of acknowledgements of a broadcast with acks: local clients' acks from
//! socketioxide merged with remote ones arriving as Node type 8 (client count) and type 9
//! (one ack) responses. The remote half ends when every node reported its count and that many
//! acks arrived, or at the deadline — never later.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::stream::{FusedStream, Stream};
use socketioxide_core::{
    Sid,
    adapter::{AckStreamItem, SocketEmitter},
};
use tokio::time::Sleep;

use crate::{
    packets::remote_ack_value,
    requests::PendingGuard,
    stats::{AdapterStats, MsgType},
};
use sio_wire::Response;

/// Remote part of an ack stream.
pub(crate) struct RemoteAcks {
    pub(crate) guard: PendingGuard,
    /// Nodes that have not sent their client count yet.
    pub(crate) servers_left: usize,
    /// Acks announced by client counts and not received yet.
    pub(crate) acks_left: u64,
    pub(crate) deadline: Pin<Box<Sleep>>,
    pub(crate) stats: Arc<AdapterStats>,
}

/// Acks of a broadcast with acks across the cluster. Remote acks carry `Sid::ZERO`: the Node
/// protocol does not say which socket answered.
pub struct AckStream<E: SocketEmitter> {
    // Boxed because socketioxide's ack stream is not Unpin; one allocation per
    // broadcast-with-ack, which is a request, not the plain broadcast hot path.
    local: Pin<Box<E::AckStream>>,
    local_done: bool,
    remote: Option<RemoteAcks>,
}

impl<E: SocketEmitter> AckStream<E> {
    pub(crate) fn new(local: E::AckStream, remote: Option<RemoteAcks>) -> Self {
        Self {
            local: Box::pin(local),
            local_done: false,
            remote,
        }
    }
}

impl<E: SocketEmitter> Stream for AckStream<E> {
    type Item = AckStreamItem<E::AckError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if !this.local_done {
            match this.local.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => return Poll::Ready(Some(item)),
                Poll::Ready(None) => this.local_done = true,
                Poll::Pending => {}
            }
        }
        if let Some(r) = this.remote.as_mut() {
            loop {
                if r.servers_left == 0 && r.acks_left == 0 {
                    this.remote = None;
                    break;
                }
                if r.deadline.as_mut().poll(cx).is_ready() {
                    r.stats.request_timeout(MsgType::BroadcastWithAck);
                    this.remote = None;
                    break;
                }
                match r.guard.rx.poll_recv(cx) {
                    Poll::Ready(Some(Response::BroadcastClientCount { client_count, .. })) => {
                        r.servers_left = r.servers_left.saturating_sub(1);
                        r.acks_left += client_count;
                    }
                    Poll::Ready(Some(Response::BroadcastAck { packet, .. })) => {
                        r.acks_left = r.acks_left.saturating_sub(1);
                        if let Some(v) = remote_ack_value(packet) {
                            return Poll::Ready(Some((Sid::ZERO, Ok(v))));
                        }
                        r.stats.decode_error();
                    }
                    Poll::Ready(Some(_)) => {}
                    Poll::Ready(None) => {
                        this.remote = None;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        if this.local_done && this.remote.is_none() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

impl<E: SocketEmitter> FusedStream for AckStream<E> {
    fn is_terminated(&self) -> bool {
        self.local_done && self.remote.is_none()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;
    use sio_wire::Response;
    use socketioxide_core::Value;

    use super::*;
    use crate::{
        requests::Pending,
        test_support::{NoAcks, Sockets},
    };

    fn remote(pending: &Arc<Pending>, servers: usize, timeout: Duration) -> (RemoteAcks, String) {
        let guard = pending.register(16);
        let id = guard.id.clone();
        (
            RemoteAcks {
                guard,
                servers_left: servers,
                acks_left: 0,
                deadline: Box::pin(tokio::time::sleep(timeout)),
                stats: Arc::new(AdapterStats::default()),
            },
            id,
        )
    }

    fn count(id: &str, n: u64) -> Response {
        Response::BroadcastClientCount {
            request_id: id.into(),
            client_count: n,
        }
    }

    fn ack(id: &str, v: &str) -> Response {
        Response::BroadcastAck {
            request_id: id.into(),
            packet: sio_wire::Value::from(v),
        }
    }

    #[tokio::test]
    async fn ends_when_every_node_counted_and_acked() {
        let pending = Arc::new(Pending::default());
        let (r, id) = remote(&pending, 2, Duration::from_secs(10));
        let stats = r.stats.clone();
        pending.dispatch(count(&id, 2));
        pending.dispatch(ack(&id, "a"));
        pending.dispatch(count(&id, 0));
        pending.dispatch(ack(&id, "b"));
        let stream = AckStream::<Sockets>::new(NoAcks, Some(r));
        let items: Vec<_> =
            tokio::time::timeout(Duration::from_secs(2), stream.collect::<Vec<_>>())
                .await
                .expect("stream ends without waiting for the deadline");
        let values: Vec<_> = items.into_iter().map(|(sid, v)| (sid, v.ok())).collect();
        assert_eq!(
            values,
            vec![
                (Sid::ZERO, Some(Value::Str("[\"a\"]".into(), None))),
                (Sid::ZERO, Some(Value::Str("[\"b\"]".into(), None))),
            ]
        );
        assert_eq!(stats.request_timeout_count(MsgType::BroadcastWithAck), 0);
    }

    #[tokio::test]
    async fn deadline_ends_a_stream_missing_answers() {
        let pending = Arc::new(Pending::default());
        let (r, id) = remote(&pending, 2, Duration::from_millis(200));
        let stats = r.stats.clone();
        pending.dispatch(count(&id, 1));
        pending.dispatch(ack(&id, "only"));
        // The second node never answers.
        let stream = AckStream::<Sockets>::new(NoAcks, Some(r));
        let items: Vec<_> =
            tokio::time::timeout(Duration::from_secs(2), stream.collect::<Vec<_>>())
                .await
                .expect("deadline bounds the stream");
        assert_eq!(items.len(), 1);
        assert_eq!(stats.request_timeout_count(MsgType::BroadcastWithAck), 1);
        // Dropping the stream forgets the request: late answers find nobody.
        assert_eq!(
            pending.dispatch(ack(&id, "late")),
            crate::requests::Dispatch::Unknown
        );
    }

    #[test]
    fn remote_ack_value_keeps_binary_as_attachment() {
        let v = remote_ack_value(sio_wire::Value::Binary(vec![7, 8])).unwrap();
        match v {
            Value::Str(text, Some(bins)) => {
                assert_eq!(&*text, r#"[{"_placeholder":true,"num":0}]"#);
                assert_eq!(bins.len(), 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
