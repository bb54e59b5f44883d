//! The node registry and the `sid -> node` records, in Redis.
//!
//! Keys (prefix derived from the adapter's channel key, so two clusters sharing one Redis with
//! different keys do not see each other):
//! * `sio-gateway:<key>:node:<node-id>`: JSON [`NodeInfo`], `PX` = `--cluster-node-ttl`,
//!   rewritten every `--cluster-heartbeat`, deleted when the node drains. A node killed without
//!   a drain disappears when the TTL runs out.
//! * `sio-gateway:<key>:sid:<hex SHA-256 of the session key>`: the node id owning a long-polling
//!   session, written at the handshake, refreshed while the session lives, deleted after it
//!   ends. The session key is the secret `sid` the client presents ([`crate::session_key`]);
//!   only its digest is stored, so reading Redis reveals no key that could drive a session.
//!
//! Listing uses `SCAN MATCH <prefix>:node:*` (every primary of a Redis Cluster) plus one
//! pipelined `GET` per node; no index key that could go stale. Every command has a short timeout: a request path
//! waiting on a dead Redis would turn a Redis outage into a client outage.
use std::time::Duration;

use fred::{
    clients::Client,
    interfaces::{ClientLike, KeysInterface},
    types::{Expiration, Key},
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

/// Registry entry of one node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    /// Base URL peers forward requests to (`--advertise`).
    pub advertise: String,
    /// Unix time (ms) the node started.
    pub started_at: u64,
    /// Socket.IO connections at the last heartbeat.
    pub connections: usize,
    /// Unix time (ms) of the last heartbeat.
    pub updated_at: u64,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error(transparent)]
    Client(#[from] crate::redis_client::RedisClientError),
    #[error("redis command timed out")]
    Timeout,
    #[error("cannot encode the registry entry: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Key prefix for adapter key `key` (`socket.io` by default).
pub fn prefix(key: &str) -> String {
    format!("sio-gateway:{key}")
}

/// Longest a registry command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(1500);

async fn timed<T>(
    f: impl Future<Output = Result<T, fred::error::Error>>,
) -> Result<T, RegistryError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(RegistryError::Timeout),
    }
}

pub struct Registry {
    client: Client,
    prefix: String,
    node_id: String,
    node_ttl: Duration,
    pub sid_ttl: Duration,
}

impl Registry {
    pub async fn connect(
        url: &str,
        prefix: String,
        node_id: String,
        node_ttl: Duration,
        sid_ttl: Duration,
    ) -> Result<Registry, RegistryError> {
        let client = crate::redis_client::client(url)?;
        timed(client.init()).await?;
        Ok(Registry {
            client,
            prefix,
            node_id,
            node_ttl,
            sid_ttl,
        })
    }

    fn node_key(&self, id: &str) -> String {
        format!("{}:node:{id}", self.prefix)
    }

    /// Every `*_sid*` method takes the session key as the client presents it.
    fn sid_key(&self, key: &str) -> String {
        format!(
            "{}:sid:{}",
            self.prefix,
            crate::session_key::digest_hex(key)
        )
    }

    /// Write (or refresh) this node's entry.
    pub async fn announce(&self, info: &NodeInfo) -> Result<(), RegistryError> {
        let json = serde_json::to_string(info)?;
        let ttl = Expiration::PX(self.node_ttl.as_millis() as i64);
        timed(
            self.client
                .set::<(), _, _>(self.node_key(&info.id), json, Some(ttl), None, false),
        )
        .await
    }

    /// Delete this node's entry.
    pub async fn remove(&self) -> Result<(), RegistryError> {
        timed(self.client.del::<(), _>(self.node_key(&self.node_id))).await
    }

    /// One node's live entry.
    pub async fn get(&self, id: &str) -> Result<Option<NodeInfo>, RegistryError> {
        let v: Option<String> = timed(self.client.get(self.node_key(id))).await?;
        Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// Every node with a live entry, sorted by id.
    pub async fn list(&self) -> Result<Vec<NodeInfo>, RegistryError> {
        let pattern = format!("{}:node:*", self.prefix);
        let scan = async {
            let mut keys: Vec<Key> = Vec::new();
            // A Redis Cluster spreads the keys over its shards: scan every primary.
            let mut stream = if self.client.is_clustered() {
                self.client
                    .scan_cluster_buffered(pattern, Some(100), None)
                    .boxed()
            } else {
                self.client.scan_buffered(pattern, Some(100), None).boxed()
            };
            while let Some(k) = stream.next().await {
                keys.push(k?);
            }
            Ok::<_, fred::error::Error>(keys)
        };
        let keys = timed(scan).await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let pipe = self.client.pipeline();
        for k in &keys {
            timed(pipe.get::<(), _>(k.clone())).await?;
        }
        let values: Vec<Option<String>> = timed(pipe.all()).await?;
        let mut nodes: Vec<NodeInfo> = values
            .into_iter()
            .flatten()
            .filter_map(|v| match serde_json::from_str::<NodeInfo>(&v) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::debug!(error = %e, "ignoring a malformed registry entry");
                    None
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// Record that this node owns polling session `sid`.
    pub async fn set_sid(&self, sid: &str) -> Result<(), RegistryError> {
        let ttl = Expiration::PX(self.sid_ttl.as_millis() as i64);
        timed(self.client.set::<(), _, _>(
            self.sid_key(sid),
            self.node_id.as_str(),
            Some(ttl),
            None,
            false,
        ))
        .await
    }

    /// The node owning `sid`, if recorded.
    pub async fn get_sid(&self, sid: &str) -> Result<Option<String>, RegistryError> {
        timed(self.client.get::<Option<String>, _>(self.sid_key(sid))).await
    }

    /// Push the expiry of these sessions' records forward (pipelined).
    pub async fn refresh_sids(&self, sids: &[String]) -> Result<(), RegistryError> {
        if sids.is_empty() {
            return Ok(());
        }
        let ms = self.sid_ttl.as_millis() as i64;
        for chunk in sids.chunks(500) {
            let pipe = self.client.pipeline();
            for sid in chunk {
                timed(pipe.pexpire::<(), _>(self.sid_key(sid), ms, None)).await?;
            }
            timed(pipe.all::<Vec<i64>>()).await?;
        }
        Ok(())
    }

    /// Delete the records of ended sessions.
    pub async fn delete_sids(&self, sids: &[String]) -> Result<(), RegistryError> {
        for chunk in sids.chunks(500) {
            let pipe = self.client.pipeline();
            for sid in chunk {
                timed(pipe.del::<(), _>(self.sid_key(sid))).await?;
            }
            timed(pipe.all::<Vec<i64>>()).await?;
        }
        Ok(())
    }
}
