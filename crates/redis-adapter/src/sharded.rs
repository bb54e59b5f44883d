//! The sharded protocol seen from the classic one: the adapter builds its requests and answers
//! as classic [`Request`]s and [`Response`]s, and in sharded mode they are carried as
//! socket.io-adapter `ClusterAdapter` messages ([`ClusterBody`]). Pure conversions, both ways.

use sio_wire::{BroadcastOptions as WireOpts, ClusterBody, Request, Response, RoomsOpts};

use crate::stats::MsgType;

fn wire_opts(o: RoomsOpts) -> WireOpts {
    WireOpts {
        rooms: o.rooms,
        except: o.except,
        ..WireOpts::default()
    }
}

/// `{rooms, except}` of cluster options (flags are not used by join/leave/disconnect/fetch).
pub(crate) fn rooms_of(o: WireOpts) -> RoomsOpts {
    RoomsOpts {
        rooms: o.rooms,
        except: o.except,
    }
}

/// A classic request as the sharded adapter sends it; `None` for the requests the
/// ClusterAdapter has no message for (allRooms and the legacy single-socket forms).
pub(crate) fn request_body(req: Request) -> Option<ClusterBody> {
    Some(match req {
        Request::SocketsJoin { opts, rooms, .. } => ClusterBody::SocketsJoin {
            opts: wire_opts(opts),
            rooms,
        },
        Request::SocketsLeave { opts, rooms, .. } => ClusterBody::SocketsLeave {
            opts: wire_opts(opts),
            rooms,
        },
        Request::DisconnectSockets { opts, close, .. } => ClusterBody::DisconnectSockets {
            opts: wire_opts(opts),
            close,
        },
        Request::FetchSockets {
            request_id, opts, ..
        } => ClusterBody::FetchSockets {
            opts: wire_opts(opts),
            request_id,
        },
        Request::ServerSideEmit {
            request_id, data, ..
        } => ClusterBody::ServerSideEmit {
            request_id,
            packet: data,
        },
        Request::BroadcastWithAck {
            request_id,
            packet,
            opts,
            ..
        } => ClusterBody::Broadcast {
            packet,
            request_id: Some(request_id),
            opts,
        },
        Request::Sockets { .. }
        | Request::AllRooms { .. }
        | Request::RemoteJoin { .. }
        | Request::RemoteLeave { .. }
        | Request::RemoteDisconnect { .. } => return None,
    })
}

/// A classic answer as the sharded adapter sends it (to the requester's own channel).
pub(crate) fn response_body(resp: Response) -> Option<ClusterBody> {
    Some(match resp {
        Response::FetchSockets {
            request_id,
            sockets,
        } => ClusterBody::FetchSocketsResponse {
            request_id,
            sockets,
        },
        Response::ServerSideEmitAck { request_id, data } => ClusterBody::ServerSideEmitResponse {
            request_id,
            packet: data,
        },
        Response::BroadcastClientCount {
            request_id,
            client_count,
        } => ClusterBody::BroadcastClientCount {
            request_id,
            client_count,
        },
        Response::BroadcastAck { request_id, packet } => {
            ClusterBody::BroadcastAck { request_id, packet }
        }
        Response::Sockets { .. } | Response::AllRooms { .. } | Response::Done { .. } => {
            return None;
        }
    })
}

/// A received cluster message: an answer (as the classic [`Response`] the pending requests
/// wait for) or anything else.
#[derive(Debug, PartialEq)]
pub(crate) enum Received {
    Answer(Response),
    Message(ClusterBody),
}

/// Splits answers from the other messages.
pub(crate) fn as_response(body: ClusterBody) -> Received {
    Received::Answer(match body {
        ClusterBody::FetchSocketsResponse {
            request_id,
            sockets,
        } => Response::FetchSockets {
            request_id,
            sockets,
        },
        ClusterBody::ServerSideEmitResponse { request_id, packet } => Response::ServerSideEmitAck {
            request_id,
            data: packet,
        },
        ClusterBody::BroadcastClientCount {
            request_id,
            client_count,
        } => Response::BroadcastClientCount {
            request_id,
            client_count,
        },
        ClusterBody::BroadcastAck { request_id, packet } => {
            Response::BroadcastAck { request_id, packet }
        }
        other => return Received::Message(other),
    })
}

/// The counter label of a cluster message.
pub(crate) fn msg_type(body: &ClusterBody) -> MsgType {
    match body {
        ClusterBody::Broadcast {
            request_id: None, ..
        } => MsgType::Broadcast,
        ClusterBody::Broadcast { .. } => MsgType::BroadcastWithAck,
        ClusterBody::SocketsJoin { .. } => MsgType::SocketsJoin,
        ClusterBody::SocketsLeave { .. } => MsgType::SocketsLeave,
        ClusterBody::DisconnectSockets { .. } => MsgType::DisconnectSockets,
        ClusterBody::FetchSockets { .. } => MsgType::FetchSockets,
        ClusterBody::ServerSideEmit { .. } => MsgType::ServerSideEmit,
        ClusterBody::FetchSocketsResponse { .. }
        | ClusterBody::ServerSideEmitResponse { .. }
        | ClusterBody::BroadcastClientCount { .. }
        | ClusterBody::BroadcastAck { .. } => MsgType::Response,
        ClusterBody::InitialHeartbeat | ClusterBody::Heartbeat | ClusterBody::AdapterClose => {
            MsgType::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sio_wire::Value;

    #[test]
    fn requests_and_answers_map_both_ways() {
        let opts = RoomsOpts {
            rooms: vec!["r".into()],
            except: vec!["x".into()],
        };
        let body = request_body(Request::SocketsJoin {
            uid: None,
            opts: opts.clone(),
            rooms: vec!["g".into()],
        });
        assert_eq!(
            body,
            Some(ClusterBody::SocketsJoin {
                opts: wire_opts(opts),
                rooms: vec!["g".into()]
            })
        );
        assert_eq!(
            request_body(Request::AllRooms {
                uid: None,
                request_id: "1".into()
            }),
            None
        );
        let resp = Response::ServerSideEmitAck {
            request_id: "7".into(),
            data: Value::from("pong"),
        };
        let body = response_body(resp.clone()).expect("carried");
        assert_eq!(msg_type(&body), MsgType::Response);
        assert_eq!(as_response(body), Received::Answer(resp));
        assert_eq!(
            as_response(ClusterBody::Heartbeat),
            Received::Message(ClusterBody::Heartbeat)
        );
    }
}
