//! The Redis Stream sink: one `XADD` per client event, capped with `MAXLEN ~ N`.
//!
//! Backends read the stream with consumer groups (`XREADGROUP`), which gives them
//! at-least-once processing and load sharing among workers. The entry id is returned to the
//! relay, which puts it in the client's ack only after Redis confirmed the write.
use anyhow::Context as _;
use fred::prelude::*;

use super::{SinkError, UpstreamEvent};
use crate::config::UpstreamConfig;

pub struct StreamSink {
    client: Client,
    key: String,
    maxlen: i64,
}

impl StreamSink {
    pub async fn connect(c: &UpstreamConfig) -> anyhow::Result<StreamSink> {
        let url = c
            .redis
            .as_deref()
            .context("--upstream redis-stream needs --upstream-redis or --redis")?;
        let client =
            crate::redis_client::client(url).context("building the upstream Redis client")?;
        client
            .init()
            .await
            .with_context(|| format!("connecting to upstream Redis {url}"))?;
        Ok(StreamSink {
            client,
            key: c.stream.clone(),
            maxlen: i64::try_from(c.maxlen).unwrap_or(i64::MAX),
        })
    }

    /// `XADD`; the new entry's id.
    pub async fn add(&self, ev: &UpstreamEvent<'_>) -> Result<String, SinkError> {
        let data = serde_json::to_string(ev.data).unwrap_or_else(|_| "null".into());
        let fields: Vec<(&str, &str)> = vec![
            ("node", ev.node),
            ("nsp", ev.nsp),
            ("sid", ev.sid),
            ("user", ev.user.unwrap_or("")),
            ("event", ev.event),
            ("data", &data),
        ];
        self.client
            .xadd::<String, _, _, _, _>(
                self.key.as_str(),
                false,
                ("MAXLEN", "~", self.maxlen),
                "*",
                fields,
            )
            .await
            .map_err(|e| SinkError::Unavailable(e.to_string()))
    }
}
