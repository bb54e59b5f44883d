//! A small HTTP/1 JSON client for the backend webhooks (auth and upstream): POST a JSON body
//! to an `http://` URL with a timeout, return the status and body.
//!
//! hyper (already under axum) rather than reqwest keeps a single HTTP stack in the binary.
//! TLS is not supported: a webhook backend is expected on the private network, or behind a
//! local TLS-originating proxy.
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode, header};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// Largest response body read from a backend.
const MAX_RESPONSE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("backend unreachable: {0}")]
    Connect(String),
    #[error("bad response: {0}")]
    Body(String),
    #[error("invalid request: {0}")]
    Request(String),
}

#[derive(Clone)]
pub struct WebhookClient {
    client: Client<HttpConnector, Full<Bytes>>,
    url: hyper::Uri,
    timeout: Duration,
}

impl WebhookClient {
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<WebhookClient> {
        let url: hyper::Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid webhook URL `{url}`: {e}"))?;
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(timeout));
        conn.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(conn);
        Ok(WebhookClient {
            client,
            url,
            timeout,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POST `body` (JSON) and read the whole response, all within the timeout.
    pub async fn post_json(&self, body: Vec<u8>) -> Result<(StatusCode, Bytes), WebhookError> {
        let req = Request::post(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("sio-gateway/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| WebhookError::Request(e.to_string()))?;
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| WebhookError::Connect(error_chain(&e)))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| WebhookError::Body(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| WebhookError::Timeout(self.timeout))?
    }
}

/// hyper's errors hide the cause (e.g. "connection refused") one level down.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
