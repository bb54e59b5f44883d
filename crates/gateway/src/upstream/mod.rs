//! Upstream sinks: where client events other than `join`/`leave`/`publish` go
//! (`--upstream none|redis-stream|webhook`).
//!
//! [`forward`] is called by the relay after the connection's event-rate bucket let the event
//! through. It returns the ack the client gets (if it asked for one):
//! * redis-stream ([`stream`]): `XADD <stream> MAXLEN ~ N * node .. nsp .. sid .. user ..
//!   event .. data <json>`; the ack `{ok:true, id:"<entry id>"}` is sent only after Redis
//!   answered, so an acked event is in the stream.
//! * webhook ([`webhook`]): POST the same fields as JSON; the response body is the ack.
//! * none: the event is dropped and counted (`dropped_messages_total{reason="no_sink"}`); the
//!   ack carries an error.
//!
//! An event larger than `--upstream-max-event-bytes` (its name and its data as JSON; default
//! 64 KiB, 0 = only `--max-payload`) is refused before any sink sees it: counted in
//! `dropped_messages_total{reason="upstream_too_large"}` and answered `{ok:false, error}`.
//! `--upstream-maxlen` caps the stream's entries, not their size: without this cap one client
//! at the default event rate filled Redis with 1.23 GB of 900 KB events in 20 s.
//!
//! Failures are counted in `dropped_messages_total{reason="upstream_failed"}` and answered
//! with `{ok:false, error}`. Events the webhook sink had no room for (see [`webhook`]: per node
//! and per connection) are counted in `dropped_messages_total{reason="upstream_busy"}` and
//! answered with `{ok:false, error:"backend busy: ..."}`; an event sent without an ack is
//! counted the same.
pub mod stream;
pub mod webhook;

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use socketioxide::socket::Sid;

use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    config::{Config, UpstreamMode},
    metrics::Metrics,
    per_session::PerSession,
};

/// One client event on its way upstream.
#[derive(Debug, Serialize)]
pub struct UpstreamEvent<'a> {
    pub node: &'a str,
    pub nsp: &'a str,
    pub sid: &'a str,
    pub user: Option<&'a str>,
    pub event: &'a str,
    pub data: &'a Value,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    #[error("upstream refused the event: {0}")]
    Refused(String),
    /// No room for the event (see [`webhook`]); nothing was sent.
    #[error("backend busy: {0}")]
    Busy(String),
}

/// One client's upstream events in progress (at the sink or waiting for it): shared by every
/// namespace socket of its Engine.IO session ([`Sessions`]), so opening more namespaces on one
/// connection does not multiply the cap.
#[derive(Debug, Default)]
pub struct InFlight(AtomicU32);

/// The [`InFlight`] count of each Engine.IO session of this node ([`PerSession`]).
#[derive(Debug, Default)]
pub struct Sessions {
    counts: PerSession<InFlight>,
    /// Handed to every connection when the sink counts nothing (not a webhook): no lookup,
    /// no allocation per connection.
    unused: Arc<InFlight>,
}

impl Sessions {
    /// The count for a new namespace socket of session `sid`: its session's with a webhook
    /// sink (the only one that caps), else one shared, never read.
    pub fn for_socket(&self, sink: &Sink, sid: Sid) -> Arc<InFlight> {
        match sink {
            Sink::Webhook(_) => self.of(sid),
            Sink::None | Sink::Stream(_) => self.unused.clone(),
        }
    }

    /// The count of session `sid` (made if no namespace socket of it holds one).
    pub fn of(&self, sid: Sid) -> Arc<InFlight> {
        self.counts.get_or(sid, InFlight::default)
    }
}

/// An event's place in an [`InFlight`] count, given back when dropped.
#[derive(Debug)]
pub struct Entry<'a>(&'a AtomicU32);

impl InFlight {
    /// Take a place; `None` when `max` are taken.
    pub fn enter(&self, max: u32) -> Option<Entry<'_>> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Entry(&self.0))
    }

    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub enum Sink {
    None,
    Stream(stream::StreamSink),
    /// Boxed: the HTTPS client is large next to the other variants.
    Webhook(Box<webhook::WebhookSink>),
}

impl Sink {
    /// Build (and for Redis, connect) the configured sink.
    pub async fn from_config(config: &Config) -> anyhow::Result<Sink> {
        let u = &config.upstream;
        Ok(match u.mode {
            UpstreamMode::None => Sink::None,
            UpstreamMode::RedisStream => Sink::Stream(stream::StreamSink::connect(u).await?),
            UpstreamMode::Webhook => Sink::Webhook(Box::new(webhook::WebhookSink::new(
                u,
                config.webhook_ca_file.as_deref(),
            )?)),
        })
    }
}

/// Counts the bytes written to it (an event's size without keeping its JSON).
struct ByteCount(u64);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len() as u64);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The size `--upstream-max-event-bytes` is compared with: the event's name and its data as
/// JSON (what each sink stores or sends, besides fields of the gateway's own).
pub fn event_bytes(ev: &UpstreamEvent<'_>) -> u64 {
    let mut n = ByteCount(0);
    // Writing to a counter cannot fail; a value that cannot be serialized is stored as `null`.
    let _ = serde_json::to_writer(&mut n, ev.data);
    n.0.saturating_add(ev.event.len() as u64)
}

/// Send one event of the connection whose events `conn` counts to the sink; the ack for the
/// client. `max_bytes`: `--upstream-max-event-bytes` (0: no cap).
pub async fn forward(
    sink: &Sink,
    m: &Metrics,
    conn: &InFlight,
    max_bytes: u64,
    ev: UpstreamEvent<'_>,
) -> Value {
    if max_bytes > 0 && !matches!(sink, Sink::None) {
        let n = event_bytes(&ev);
        if n > max_bytes {
            m.dropped_upstream_too_large.inc();
            tracing::debug!(
                node_id = ev.node,
                sid = ev.sid,
                event = ev.event,
                bytes = n,
                "upstream event too large"
            );
            return json!({
                "ok": false,
                "error": format!(
                    "event `{}` too large for the backend: {n} bytes, at most {max_bytes}",
                    ev.event
                ),
            });
        }
    }
    let res = match sink {
        Sink::None => {
            m.dropped_no_sink.inc();
            tracing::trace!(
                sid = ev.sid,
                ns = ev.nsp,
                event = ev.event,
                "dropped: no upstream sink"
            );
            return json!({
                "ok": false,
                "error": format!("no upstream sink configured for event `{}`", ev.event),
            });
        }
        Sink::Stream(s) => s.add(&ev).await.map(|id| json!({ "ok": true, "id": id })),
        Sink::Webhook(w) => w.post(conn, &ev).await,
    };
    match res {
        Ok(ack) => ack,
        Err(e @ SinkError::Busy(_)) => {
            m.dropped_upstream_busy.inc();
            tracing::debug!(node_id = ev.node, sid = ev.sid, event = ev.event, error = %e, "upstream busy");
            json!({ "ok": false, "error": e.to_string() })
        }
        Err(e) => {
            m.dropped_messages_total
                .with_label_values(&[crate::metrics::drop_reason::UPSTREAM_FAILED])
                .inc();
            tracing::debug!(node_id = ev.node, sid = ev.sid, event = ev.event, error = %e, "upstream failed");
            json!({ "ok": false, "error": e.to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_caps_and_gives_back() {
        let c = InFlight::default();
        let held: Vec<_> = (0..3).map(|_| c.enter(3).expect("room")).collect();
        assert_eq!(c.get(), 3);
        assert!(c.enter(3).is_none(), "the fourth is refused");
        assert_eq!(c.get(), 3, "a refusal takes nothing");
        drop(held);
        assert_eq!(c.get(), 0);
        let e = c.enter(1);
        assert!(e.is_some());
        assert!(c.enter(1).is_none());
        drop(e);
        assert!(c.enter(1).is_some());
    }

    #[test]
    fn event_bytes_counts_the_name_and_the_json() {
        let data = json!({"a": "xyz"});
        let ev = UpstreamEvent {
            node: "n",
            nsp: "/",
            sid: "s",
            user: None,
            event: "ev",
            data: &data,
        };
        assert_eq!(
            event_bytes(&ev),
            2 + serde_json::to_string(&data).unwrap().len() as u64
        );
    }

    #[test]
    fn busy_reads_as_backend_busy() {
        assert_eq!(SinkError::Busy("x".into()).to_string(), "backend busy: x");
    }

    #[test]
    fn the_namespace_sockets_of_one_session_share_its_count() {
        let sessions = Sessions::default();
        let (a, b) = (Sid::new(), Sid::new());
        let a1 = sessions.of(a);
        let a2 = sessions.of(a);
        let _held = a1.enter(2).unwrap();
        let _also = a2.enter(2).unwrap();
        assert!(
            a1.enter(2).is_none(),
            "two namespaces of one session share the cap"
        );
        assert!(
            sessions.of(b).enter(2).is_some(),
            "another session has its own"
        );
        drop((_held, _also));
        drop((a1, a2));
        assert_eq!(
            sessions.of(a).get(),
            0,
            "a session's count goes with its sockets"
        );
    }
}
