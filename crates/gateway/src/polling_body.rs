//! What one long-polling `POST` may carry: a few control packets, not hundreds of thousands.
//!
//! # Why (review 9)
//!
//! engineioxide hands every packet of a polling body to socketioxide in one loop that does not
//! yield (upstream proposal E8), and a body may be as large as `--max-payload`. Events are held
//! to `--event-rate` in socketioxide's call at the cost of a counter (`event_rate.rs`), but other
//! packets are not events:
//!
//! * **CONNECT** (`40`, `40/nsp,`): socketioxide spawns one task per CONNECT before any of the
//!   gateway's connect middlewares run (`client.rs` `sock_connect`), so the per-session connect
//!   limits (`engine_sessions.rs`) came too late. Two sessions posting bodies of 180,000 `40`
//!   packets took a node from 14 MB to 3 GB (not given back) in 5 s and honest deliveries' p99
//!   from 1.4 ms to 911 ms; CONNECTs to an unknown namespace each logged an ERROR line once the
//!   session's queue was full (772 MB of log in 8 s).
//! * **DISCONNECT** (`41`) pairs with them (`40␞41` × 60,000).
//! * **Engine.IO control packets** (pings, pongs, upgrades, noops, close) and empty messages:
//!   330,000 pongs per body cost 1.6 cores and honest p99 40 ms.
//! * **Acks** (`43`, `46`) for ids nothing waits for: 120,000 per body, 1.8 cores.
//!
//! A stock client sends at most one or two of each per body (socket.io-client writes its
//! CONNECTs as it connects namespaces, one pong per ping, an ack per acked emit it received).
//! So, before the engine sees a body, it is counted, and one over any of these caps is refused
//! (`400`, Engine.IO code 3, "too many ... in one request"), counted in
//! `dropped_messages_total{reason="polling_body"}`, and its session closed the way a lost
//! connection looks (`Drain::cut_session`: its polls are answered CLOSE, its posts refused):
//!
//! | packets in one body | at most |
//! |---|---:|
//! | CONNECT | [`MAX_CONNECTS`] (the burst `engine_sessions` allows a session) |
//! | DISCONNECT | [`MAX_DISCONNECTS`] |
//! | Engine.IO control packets and empty messages | [`MAX_CONTROL`] |
//! | acks | [`MAX_ACKS`] |
//!
//! Events and binary attachments are not counted here. Cost: polling `POST`s only, whose body
//! engineioxide buffers anyway: one pass over its bytes (a search for the separator).
use std::sync::Arc;

use axum::{
    body::Body,
    extract::Request,
    http::{Method, StatusCode, header},
    response::Response,
};
use prometheus::IntCounter;
use socketioxide::TransportType;

use crate::{
    drain::Drain,
    engine_io,
    hook::{Hook, Step},
    listener::ConnRegistry,
};

/// CONNECT packets in one body (the burst of CONNECTs a session may send, `engine_sessions`).
pub const MAX_CONNECTS: usize = 16;
/// DISCONNECT packets in one body.
pub const MAX_DISCONNECTS: usize = 16;
/// Engine.IO control packets (close, ping, pong, upgrade, noop) and empty messages in one body.
pub const MAX_CONTROL: usize = 16;
/// Acks (`43`, `46`) in one body: answers to acked emits the client received, which backends
/// may send in bursts.
pub const MAX_ACKS: usize = 4096;

/// The packet separator of an Engine.IO v4 polling payload.
const SEP: u8 = 0x1e;

/// Why a body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many CONNECT packets in one request (at most {MAX_CONNECTS})")]
    Connects,
    #[error("too many DISCONNECT packets in one request (at most {MAX_DISCONNECTS})")]
    Disconnects,
    #[error("too many control packets in one request (at most {MAX_CONTROL})")]
    Control,
    #[error("too many acks in one request (at most {MAX_ACKS})")]
    Acks,
}

/// Count the packets of an Engine.IO v4 text payload; `Err` past a cap.
pub fn check(body: &[u8]) -> Result<(), Refusal> {
    let (mut connects, mut disconnects, mut control, mut acks) = (0usize, 0, 0, 0);
    for packet in body.split(|b| *b == SEP) {
        match packet {
            // A message: its Socket.IO type is the next byte.
            [b'4', b'0', ..] => connects += 1,
            [b'4', b'1', ..] => disconnects += 1,
            [b'4', b'3' | b'6', ..] => acks += 1,
            // An empty message, or an Engine.IO control packet.
            [b'4'] | [b'1' | b'2' | b'3' | b'5' | b'6', ..] => control += 1,
            _ => {}
        }
        if connects > MAX_CONNECTS {
            return Err(Refusal::Connects);
        }
        if disconnects > MAX_DISCONNECTS {
            return Err(Refusal::Disconnects);
        }
        if control > MAX_CONTROL {
            return Err(Refusal::Control);
        }
        if acks > MAX_ACKS {
            return Err(Refusal::Acks);
        }
    }
    Ok(())
}

/// Counts the packets of every polling `POST` of a session before the engine sees them (a
/// [`Hook`], inside the drain guard: the `sid` is the socket id there).
#[derive(Clone)]
pub struct PostLimits {
    /// `--max-payload`: a larger body is answered 413 here, as engineioxide would.
    pub max_payload: usize,
    pub drain: Arc<Drain>,
    pub conns: Arc<ConnRegistry>,
    /// `dropped_messages_total{reason="polling_body"}`.
    pub refused: IntCounter,
}

impl Hook for PostLimits {
    type Carry = ();
    const AFTER: bool = false;

    fn before(&self, req: &mut Request) -> Step<()> {
        if req.method() != Method::POST {
            return Step::Continue(());
        }
        let shape = engine_io::Shape::of(req);
        if !shape.engine_io || shape.transport != engine_io::Named::Polling || !shape.has_sid {
            return Step::Continue(());
        }
        // Engine.IO v3's binary payloads are another format (and not what stock v4 clients send).
        let binary = req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/octet-stream"));
        let Some(sid) = engine_io::session_sid(req).map(str::to_owned) else {
            return Step::Continue(());
        };
        if binary {
            return Step::Continue(());
        }
        let this = self.clone();
        Step::Detour(Box::new(move |req, next| {
            Box::pin(async move {
                let (parts, body) = req.into_parts();
                let Ok(bytes) = axum::body::to_bytes(body, this.max_payload).await else {
                    return status(StatusCode::PAYLOAD_TOO_LARGE);
                };
                if let Err(why) = check(&bytes) {
                    this.refused.inc();
                    tracing::debug!(%sid, error = %why, "polling body refused: session closed");
                    this.drain
                        .cut_session(&this.conns, sid, TransportType::Polling, None);
                    return engine_io::error_response(StatusCode::BAD_REQUEST, 3, &why.to_string());
                }
                next.run(Request::from_parts(parts, Body::from(bytes)))
                    .await
            })
        }))
    }
}

fn status(code: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = code;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(packets: &[&str]) -> Vec<u8> {
        packets.join("\u{1e}").into_bytes()
    }

    #[test]
    fn what_stock_clients_send_passes() {
        for b in [
            body(&["40"]),
            body(&["40{\"token\":\"x\"}", "40/chat,{\"token\":\"x\"}"]),
            body(&["3", "42[\"publish\",{}]", "421[\"join\",\"r\"]"]),
            body(&["42[\"e\",1]"; 10_000]),
            body(&["431[{\"ok\":true}]"; 4096]),
            body(&["451-[\"up\",{\"_placeholder\":true,\"num\":0}]", "bAQID"]),
            body(&["1"]),
            b"".to_vec(),
        ] {
            assert_eq!(
                check(&b),
                Ok(()),
                "{}",
                String::from_utf8_lossy(&b[..b.len().min(60)])
            );
        }
    }

    #[test]
    fn floods_of_non_events_are_refused() {
        assert_eq!(check(&body(&["40"; 17])), Err(Refusal::Connects));
        assert_eq!(check(&body(&["40/nope,"; 17])), Err(Refusal::Connects));
        assert_eq!(check(&body(&["41"; 17])), Err(Refusal::Disconnects));
        assert_eq!(check(&body(&["3"; 17])), Err(Refusal::Control));
        assert_eq!(check(&body(&["4"; 17])), Err(Refusal::Control));
        assert_eq!(
            check(&body(&["6", "2", "5", "1"].repeat(5))),
            Err(Refusal::Control)
        );
        assert_eq!(check(&body(&["43999[]"; 4097])), Err(Refusal::Acks));
        assert_eq!(
            check(&body(&["40", "41"].repeat(17))),
            Err(Refusal::Connects)
        );
    }
}
