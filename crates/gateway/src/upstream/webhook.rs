//! The HTTP webhook sink: POST each event as JSON; the response body is the client's ack.
//!
//! A 2xx answer's body (JSON; an empty body means `{ok:true}`) is passed to the client as
//! is, so a backend can answer a request/response style event directly. Other statuses,
//! timeouts and connection errors (a failed TLS handshake with an `https://` backend included)
//! become `{ok:false, error}`.
//!
//! Each event is one HTTP call, so the calls are bounded (a slow backend otherwise had the node
//! open one connection per event for the whole timeout: 100 events/s from each client, ~500
//! descriptors per client, until the node ran out):
//! * per node, `--upstream-webhook-concurrency` calls in flight on at most as many pooled
//!   keep-alive connections; an event waits for a slot at most half the call's timeout (the
//!   wait counts in it), else its ack is `{ok:false, error:"backend busy: ..."}`
//!   ([`SinkError::Busy`]);
//! * per connection (Engine.IO session: all its namespace sockets together,
//!   [`super::Sessions`]), [`PER_CONNECTION`] events at the backend or waiting for a slot
//!   ([`super::InFlight`]); more are refused at once with a `backend busy` ack. One client
//!   thus holds at most that many of the node's slots however many namespaces it opens, and
//!   what its waiting events keep in memory is bounded by it too. The per-node slots are
//!   first come, first served: clients that flood hold their share each (four at 16 fill the
//!   default 64), which `--upstream-webhook-concurrency` sizes.
use std::path::Path;

use serde_json::{Value, json};

use super::{InFlight, SinkError, UpstreamEvent};
use crate::{
    config::UpstreamConfig,
    webhook_client::{WebhookClient, WebhookError},
};

/// Events of one connection at the backend or waiting for a slot; more are refused.
pub const PER_CONNECTION: u32 = 16;

pub struct WebhookSink {
    client: WebhookClient,
}

impl WebhookSink {
    /// `ca_file`: `--webhook-ca-file`, extra roots for an https:// backend.
    pub fn new(c: &UpstreamConfig, ca_file: Option<&Path>) -> anyhow::Result<WebhookSink> {
        let url = c
            .webhook
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--upstream webhook needs --upstream-webhook URL"))?;
        Ok(WebhookSink {
            client: WebhookClient::new(url, c.webhook_timeout, c.webhook_concurrency, ca_file)?,
        })
    }

    /// POST one event of the connection whose upstream events `conn` counts.
    pub async fn post(&self, conn: &InFlight, ev: &UpstreamEvent<'_>) -> Result<Value, SinkError> {
        let Some(_entry) = conn.enter(PER_CONNECTION) else {
            return Err(SinkError::Busy(format!(
                "{PER_CONNECTION} events of this connection (all its namespaces) already at the backend; \
                 wait for their acks"
            )));
        };
        let body = serde_json::to_vec(ev).map_err(|e| SinkError::Refused(e.to_string()))?;
        let (status, resp) = self.client.post_json(body).await.map_err(|e| match e {
            WebhookError::Busy { limit, waited } => SinkError::Busy(format!(
                "no free slot within {waited:?} ({limit} calls of this node in flight)"
            )),
            e => SinkError::Unavailable(e.to_string()),
        })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&resp);
            let text = text.trim();
            let mut cut = text.len().min(200);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let text = &text[..cut];
            return Err(SinkError::Refused(format!(
                "backend answered {status}: {text}"
            )));
        }
        if resp.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({ "ok": true }));
        }
        serde_json::from_slice(&resp).map_err(|e| {
            SinkError::Unavailable(format!("backend answered {status} with invalid JSON: {e}"))
        })
    }
}
