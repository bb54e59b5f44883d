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
//! * **Engine.IO control packets** (pings, pongs, upgrades, noops, close): 330,000 pongs per
//!   body cost 1.6 cores and honest p99 40 ms; empty messages, `44` and unknown types as much.
//! * **Binary attachments** (review 10): a `45` declaring 10,000 empty ones, 26 times a body.
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
//! | Engine.IO control packets | [`MAX_CONTROL`] |
//! | acks | [`MAX_ACKS`] |
//! | binary attachments | [`MAX_ATTACHMENTS`] |
//! | packets no client sends (empty, `44`, unknown types) | [`MAX_INVALID`] |
//!
//! Every packet is counted, whatever the request's `Content-Type` (engineioxide decodes an
//! `EIO=4` body as text regardless: review 10). Events are not capped here. Cost: polling `POST`s only, whose body
//! engineioxide buffers anyway: one pass over its bytes (a search for the separator).
use std::sync::Arc;

use axum::{
    body::Body,
    extract::Request,
    http::{Method, StatusCode},
    response::IntoResponse,
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
/// Engine.IO control packets (close, ping, pong, upgrade, noop) in one body.
pub const MAX_CONTROL: usize = 16;
/// Acks (`43`, `46`) in one body: answers to acked emits the client received, which backends
/// may send in bursts.
pub const MAX_ACKS: usize = 4096;
/// Binary attachments (`b...`) in one body: a socket.io-client event carries one per binary
/// argument (review 10: a `45` declaring 10,000 empty ones, 26 times a body, cost 1.9 cores).
pub const MAX_ATTACHMENTS: usize = 256;
/// Packets no client sends (empty, `44`, unknown types) in one body.
pub const MAX_INVALID: usize = 4;

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
    #[error("too many binary attachments in one request (at most {MAX_ATTACHMENTS})")]
    Attachments,
    #[error("invalid packets in one request")]
    Invalid,
}

/// Count the packets of an Engine.IO v4 text payload; `Err` past a cap. Every packet is
/// counted: events (`42`, `45`) are held to `--event-rate` by the gate at a counter's cost; any
/// other kind has a cap, and kinds no client sends have the smallest.
pub fn check(body: &[u8]) -> Result<(), Refusal> {
    let mut n = Counts::default();
    for packet in body.split(|b| *b == SEP) {
        let (count, max, why) = match packet {
            // Events: not counted here.
            [b'4', b'2' | b'5', ..] => continue,
            [b'4', b'0', ..] => (&mut n.connects, MAX_CONNECTS, Refusal::Connects),
            [b'4', b'1', ..] => (&mut n.disconnects, MAX_DISCONNECTS, Refusal::Disconnects),
            [b'4', b'3' | b'6', ..] => (&mut n.acks, MAX_ACKS, Refusal::Acks),
            // A binary attachment (of a `45` / `46` in this body or the one before).
            [b'b', ..] => (&mut n.attachments, MAX_ATTACHMENTS, Refusal::Attachments),
            // Engine.IO control packets a client sends: close, ping, pong, upgrade, noop.
            [b'1' | b'2' | b'3' | b'5' | b'6', ..] => {
                (&mut n.control, MAX_CONTROL, Refusal::Control)
            }
            // Anything else no client sends: an empty packet or message, a CONNECT_ERROR (`44`),
            // a type that does not exist, an `open` (`0`).
            _ => (&mut n.invalid, MAX_INVALID, Refusal::Invalid),
        };
        *count += 1;
        if *count > max {
            return Err(why);
        }
    }
    Ok(())
}

#[derive(Default)]
struct Counts {
    connects: usize,
    disconnects: usize,
    acks: usize,
    attachments: usize,
    control: usize,
    invalid: usize,
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
        // Whatever its Content-Type: engineioxide decodes an `EIO=4` body as text regardless
        // (review 10: an `application/octet-stream` exemption let the CONNECT flood through).
        let Some(sid) = engine_io::session_sid(req).map(str::to_owned) else {
            return Step::Continue(());
        };
        let this = self.clone();
        Step::Detour(Box::new(move |req, next| {
            Box::pin(async move {
                let (parts, body) = req.into_parts();
                let Ok(bytes) = axum::body::to_bytes(body, this.max_payload).await else {
                    return StatusCode::PAYLOAD_TOO_LARGE.into_response();
                };
                if let Err(why) = check(&bytes) {
                    this.refused.inc();
                    tracing::debug!(%sid, error = %why, "polling body refused: session closed");
                    this.drain
                        .cut_session(&this.conns, sid, TransportType::Polling, None);
                    return engine_io::error_response(
                        StatusCode::BAD_REQUEST,
                        engine_io::BAD_REQUEST,
                        &why.to_string(),
                    );
                }
                next.run(Request::from_parts(parts, Body::from(bytes)))
                    .await
            })
        }))
    }
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
        assert_eq!(check(&body(&["4"; 5])), Err(Refusal::Invalid));
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
