//! The HTTP webhook sink: POST each event as JSON; the response body is the client's ack.
//!
//! A 2xx answer's body (JSON; an empty body means `{ok:true}`) is passed to the client as
//! is, so a backend can answer a request/response style event directly. Other statuses,
//! timeouts and connection errors (a failed TLS handshake with an `https://` backend included)
//! become `{ok:false, error}`.
use std::path::Path;

use serde_json::{Value, json};

use super::{SinkError, UpstreamEvent};
use crate::{config::UpstreamConfig, webhook_client::WebhookClient};

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
            client: WebhookClient::new(url, c.webhook_timeout, ca_file)?,
        })
    }

    pub async fn post(&self, ev: &UpstreamEvent<'_>) -> Result<Value, SinkError> {
        let body = serde_json::to_vec(ev).map_err(|e| SinkError::Refused(e.to_string()))?;
        let (status, resp) = self
            .client
            .post_json(body)
            .await
            .map_err(|e| SinkError::Unavailable(e.to_string()))?;
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
