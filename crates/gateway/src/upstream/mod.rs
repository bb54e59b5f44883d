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
//! Failures are counted in `dropped_messages_total{reason="upstream_failed"}` and answered
//! with `{ok:false, error}`.
pub mod stream;
pub mod webhook;

use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    config::{Config, UpstreamMode},
    metrics::Metrics,
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

/// Send one event to the sink; the ack for the client.
pub async fn forward(sink: &Sink, m: &Metrics, ev: UpstreamEvent<'_>) -> Value {
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
        Sink::Webhook(w) => w.post(&ev).await,
    };
    match res {
        Ok(ack) => ack,
        Err(e) => {
            m.dropped_messages_total
                .with_label_values(&["upstream_failed"])
                .inc();
            tracing::debug!(node_id = ev.node, sid = ev.sid, event = ev.event, error = %e, "upstream failed");
            json!({ "ok": false, "error": e.to_string() })
        }
    }
}
