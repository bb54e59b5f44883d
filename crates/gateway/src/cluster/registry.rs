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
//! # What is signed, what is checked
//!
//! Anyone who can write to this Redis could otherwise name a forwarding target: a node entry
//! whose advertise URL points at an internal service (the client's poll, cookies and a valid
//! forwarding signature sent there, its answer returned to the client), or a session record
//! pointing an honest session's polls at a node of theirs. So, with `--cluster-secret`:
//! * a node entry carries `sig`: hex HMAC-SHA256(secret, JSON array of `"sio-gateway/node/1"`,
//!   the Redis key it is stored under, and every field of [`NodeInfo`]); the other fields are
//!   unchanged, so the value is the documented JSON with one more field;
//! * a session record is `<node-id> <hex HMAC-SHA256(secret, JSON array of
//!   "sio-gateway/sid/1", its Redis key (which holds the session key's digest), node id)>`;
//! * a reader ignores an entry that is malformed, unsigned, wrongly signed, stored under
//!   another key, or whose advertise URL is not an origin ([`crate::config::advertise`]); each is
//!   counted in `polling_forwards_total{result="untrusted"}` and warned at most every 10 s.
//!
//! Without `--cluster-secret` a node never forwards: it writes its entry unsigned and lists
//! entries without checking signatures (the advertise rule still applies).
//!
//! Listing uses `SCAN MATCH <prefix>:node:*` (every primary of a Redis Cluster) plus one
//! pipelined `GET` per node; no index key that could go stale. Every command has a short timeout: a request path
//! waiting on a dead Redis would turn a Redis outage into a client outage.
use std::{sync::OnceLock, time::Duration};

use fred::{
    clients::Client,
    interfaces::{ClientLike, KeysInterface},
    types::{Expiration, Key},
};
use futures_util::StreamExt;
use prometheus::IntCounter;
use serde::{Deserialize, Serialize};

use super::forward::Signer;
use crate::{
    config::advertise::{self, BadAdvertise},
    warn_limit::WarnLimit,
};

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

/// A node entry as stored: [`NodeInfo`]'s fields and its signature.
#[derive(Serialize)]
struct SignedOut<'a> {
    #[serde(flatten)]
    info: &'a NodeInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<String>,
}

#[derive(Deserialize)]
struct SignedIn {
    #[serde(flatten)]
    info: NodeInfo,
    #[serde(default)]
    sig: Option<String>,
}

/// Why an entry read from Redis was ignored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Untrusted {
    #[error("malformed entry")]
    Malformed,
    #[error("stored under another node's key")]
    WrongKey,
    #[error("advertise URL refused ({})", advertise::RULE)]
    Advertise(#[source] BadAdvertise),
    #[error(
        "no signature (written without --cluster-secret, by an older version, or not by a node)"
    )]
    Unsigned,
    #[error("bad signature (another --cluster-secret, or not written by a node)")]
    BadSignature,
}

/// What a node entry's signature covers: the key it is stored under and every field.
fn node_message(key: &str, n: &NodeInfo) -> Vec<u8> {
    serde_json::to_vec(&(
        "sio-gateway/node/1",
        key,
        &n.id,
        &n.advertise,
        n.started_at,
        n.connections,
        n.updated_at,
        &n.version,
    ))
    .unwrap_or_default()
}

/// What a session record's signature covers: its key (the session key's digest) and the owner.
fn sid_message(key: &str, node: &str) -> Vec<u8> {
    serde_json::to_vec(&("sio-gateway/sid/1", key, node)).unwrap_or_default()
}

/// The value stored under `key` for `info`.
fn encode_node(signer: Option<&Signer>, key: &str, info: &NodeInfo) -> serde_json::Result<String> {
    serde_json::to_string(&SignedOut {
        info,
        sig: signer.map(|s| s.tag(&node_message(key, info))),
    })
}

/// The entry stored under `key` (the key of node `id`), if it can be trusted.
fn decode_node(
    signer: Option<&Signer>,
    key: &str,
    id: &str,
    raw: &str,
) -> Result<NodeInfo, Untrusted> {
    let SignedIn { mut info, sig } = serde_json::from_str(raw).map_err(|_| Untrusted::Malformed)?;
    if info.id != id {
        return Err(Untrusted::WrongKey);
    }
    if let Some(signer) = signer {
        let sig = sig.ok_or(Untrusted::Unsigned)?;
        if !signer.check_tag(&node_message(key, &info), &sig) {
            return Err(Untrusted::BadSignature);
        }
    }
    info.advertise = advertise::normalize(&info.advertise).map_err(Untrusted::Advertise)?;
    Ok(info)
}

/// The session record stored under `key` for `node`: `<node-id> <tag>` (node ids hold no space).
fn encode_sid(signer: Option<&Signer>, key: &str, node: &str) -> String {
    match signer {
        Some(s) => format!("{node} {}", s.tag(&sid_message(key, node))),
        None => node.to_owned(),
    }
}

/// The owner named by the session record stored under `key`, if it can be trusted.
fn decode_sid(signer: Option<&Signer>, key: &str, raw: &str) -> Result<String, Untrusted> {
    let (node, sig) = match raw.split_once(' ') {
        Some((n, s)) => (n, Some(s)),
        None => (raw, None),
    };
    if node.is_empty() {
        return Err(Untrusted::Malformed);
    }
    if let Some(signer) = signer {
        let sig = sig.ok_or(Untrusted::Unsigned)?;
        if !signer.check_tag(&sid_message(key, node), sig) {
            return Err(Untrusted::BadSignature);
        }
    }
    Ok(node.to_owned())
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
    /// Signs what this node writes and checks what it reads (`--cluster-secret`).
    signer: Option<Signer>,
    /// `polling_forwards_total{result="untrusted"}`, once the node's metrics exist.
    untrusted: OnceLock<IntCounter>,
}

impl Registry {
    pub async fn connect(
        url: &str,
        prefix: String,
        node_id: String,
        node_ttl: Duration,
        sid_ttl: Duration,
        secret: Option<&str>,
    ) -> Result<Registry, RegistryError> {
        let client = crate::redis_client::client(url)?;
        timed(client.init()).await?;
        Ok(Registry {
            client,
            prefix,
            node_id,
            node_ttl,
            sid_ttl,
            signer: secret.map(Signer::new),
            untrusted: OnceLock::new(),
        })
    }

    /// Count ignored entries on `counter` from now on.
    pub fn count_untrusted(&self, counter: IntCounter) {
        let _ = self.untrusted.set(counter);
    }

    /// An entry read from Redis was ignored: counted, warned at most every 10 s (anyone who
    /// can write to Redis can write many).
    fn reject(&self, what: &str, why: &Untrusted) {
        if let Some(c) = self.untrusted.get() {
            c.inc();
        }
        static WARN: WarnLimit = WarnLimit::new(Duration::from_secs(10));
        if let Some(held_back) = WARN.allow() {
            tracing::warn!(node_id = %self.node_id, entry = %what, reason = %why, held_back, "ignored an untrusted registry entry: nothing is forwarded to it (each is counted in polling_forwards_total{{result=\"untrusted\"}}; warned at most every 10 s)");
        }
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
        let key = self.node_key(&info.id);
        let json = encode_node(self.signer.as_ref(), &key, info)?;
        let ttl = Expiration::PX(self.node_ttl.as_millis() as i64);
        timed(
            self.client
                .set::<(), _, _>(key, json, Some(ttl), None, false),
        )
        .await
    }

    fn trusted_node(&self, key: &str, id: &str, raw: &str) -> Option<NodeInfo> {
        decode_node(self.signer.as_ref(), key, id, raw)
            .inspect_err(|why| self.reject(key, why))
            .ok()
    }

    /// Delete this node's entry.
    pub async fn remove(&self) -> Result<(), RegistryError> {
        timed(self.client.del::<(), _>(self.node_key(&self.node_id))).await
    }

    /// One node's live entry.
    pub async fn get(&self, id: &str) -> Result<Option<NodeInfo>, RegistryError> {
        let key = self.node_key(id);
        let v: Option<String> = timed(self.client.get(key.as_str())).await?;
        Ok(v.and_then(|v| self.trusted_node(&key, id, &v)))
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
        let node_prefix = format!("{}:node:", self.prefix);
        let mut nodes: Vec<NodeInfo> = keys
            .iter()
            .zip(values)
            .filter_map(|(k, v)| {
                let v = v?;
                let key = k.as_str_lossy();
                let id = key.strip_prefix(node_prefix.as_str()).unwrap_or("");
                self.trusted_node(&key, id, &v)
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// Record that this node owns polling session `sid`.
    pub async fn set_sid(&self, sid: &str) -> Result<(), RegistryError> {
        let ttl = Expiration::PX(self.sid_ttl.as_millis() as i64);
        let key = self.sid_key(sid);
        let value = encode_sid(self.signer.as_ref(), &key, &self.node_id);
        timed(
            self.client
                .set::<(), _, _>(key, value, Some(ttl), None, false),
        )
        .await
    }

    /// The node owning `sid`, if recorded (and the record can be trusted).
    pub async fn get_sid(&self, sid: &str) -> Result<Option<String>, RegistryError> {
        let key = self.sid_key(sid);
        let v = timed(self.client.get::<Option<String>, _>(key.as_str())).await?;
        Ok(v.and_then(|v| {
            decode_sid(self.signer.as_ref(), &key, &v)
                .inspect_err(|why| self.reject("a session-owner record (sid:...)", why))
                .ok()
        }))
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sio-gateway:socket.io:node:gateway-1";

    fn info() -> NodeInfo {
        NodeInfo {
            id: "gateway-1".into(),
            advertise: "http://10.0.0.1:3000".into(),
            started_at: 1,
            connections: 2,
            updated_at: 3,
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn a_signed_entry_reads_back_and_keeps_the_documented_fields() {
        let s = Signer::new("0123456789abcdef");
        let raw = encode_node(Some(&s), KEY, &info()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        for f in [
            "id",
            "advertise",
            "started_at",
            "connections",
            "updated_at",
            "version",
            "sig",
        ] {
            assert!(v.get(f).is_some(), "{f} in {raw}");
        }
        assert_eq!(decode_node(Some(&s), KEY, "gateway-1", &raw), Ok(info()));
    }

    #[test]
    fn forged_or_altered_entries_are_refused() {
        let s = Signer::new("0123456789abcdef");
        let raw = encode_node(Some(&s), KEY, &info()).unwrap();
        // The attack: an entry written straight into Redis, no signature.
        let forged = r#"{"id":"evil","advertise":"http://127.0.0.1:31420/internal/admin/secrets?x=","started_at":1,"connections":0,"updated_at":1,"version":"x"}"#;
        let evil_key = "sio-gateway:socket.io:node:evil";
        assert_eq!(
            decode_node(Some(&s), evil_key, "evil", forged),
            Err(Untrusted::Unsigned)
        );
        // An honest node's entry (valid URL) without a signature: an older node.
        let unsigned = encode_node(None, KEY, &info()).unwrap();
        assert_eq!(
            decode_node(Some(&s), KEY, "gateway-1", &unsigned),
            Err(Untrusted::Unsigned)
        );
        // A signed entry with its advertise URL changed.
        let moved = raw.replace("http://10.0.0.1:3000", "http://10.6.6.6:3000");
        assert_eq!(
            decode_node(Some(&s), KEY, "gateway-1", &moved),
            Err(Untrusted::BadSignature)
        );
        // Signed with another secret.
        let other = encode_node(Some(&Signer::new("another-secret-xx")), KEY, &info()).unwrap();
        assert_eq!(
            decode_node(Some(&s), KEY, "gateway-1", &other),
            Err(Untrusted::BadSignature)
        );
        // Copied under another node's key (with its id changed to match).
        let copied = raw.replace("\"gateway-1\"", "\"gateway-2\"");
        assert_eq!(
            decode_node(
                Some(&s),
                "sio-gateway:socket.io:node:gateway-2",
                "gateway-2",
                &copied
            ),
            Err(Untrusted::BadSignature)
        );
        // Copied under another key as is.
        assert_eq!(
            decode_node(
                Some(&s),
                "sio-gateway:socket.io:node:gateway-2",
                "gateway-2",
                &raw
            ),
            Err(Untrusted::WrongKey)
        );
        assert_eq!(
            decode_node(Some(&s), KEY, "gateway-1", "not json"),
            Err(Untrusted::Malformed)
        );
    }

    #[test]
    fn an_advertise_url_that_is_not_an_origin_is_refused_even_if_signed() {
        // Without a secret (nothing is forwarded then) the URL rule still applies; with one,
        // a node holding the secret that advertises a path is refused too.
        let mut bad = info();
        bad.advertise = "http://127.0.0.1:31420/internal/admin/secrets?x=".into();
        for signer in [None, Some(Signer::new("0123456789abcdef"))] {
            let raw = encode_node(signer.as_ref(), KEY, &bad).unwrap();
            assert!(matches!(
                decode_node(signer.as_ref(), KEY, "gateway-1", &raw),
                Err(Untrusted::Advertise(_))
            ));
        }
        // A trailing slash is canonicalised, not refused.
        let mut slash = info();
        slash.advertise = "http://10.0.0.1:3000/".into();
        let raw = encode_node(None, KEY, &slash).unwrap();
        assert_eq!(decode_node(None, KEY, "gateway-1", &raw), Ok(info()));
    }

    #[test]
    fn session_records_are_signed_with_their_key() {
        let s = Signer::new("0123456789abcdef");
        let key = "sio-gateway:socket.io:sid:aaaa";
        let raw = encode_sid(Some(&s), key, "gateway-1");
        assert!(raw.starts_with("gateway-1 "));
        assert_eq!(decode_sid(Some(&s), key, &raw).as_deref(), Ok("gateway-1"));
        // The attack: an honest session's record pointed at another node.
        assert_eq!(decode_sid(Some(&s), key, "evil"), Err(Untrusted::Unsigned));
        let tag = raw.split_once(' ').unwrap().1;
        assert_eq!(
            decode_sid(Some(&s), key, &format!("evil {tag}")),
            Err(Untrusted::BadSignature)
        );
        // A valid record copied onto another session's key.
        assert_eq!(
            decode_sid(Some(&s), "sio-gateway:socket.io:sid:bbbb", &raw),
            Err(Untrusted::BadSignature)
        );
        assert_eq!(decode_sid(Some(&s), key, ""), Err(Untrusted::Malformed));
        assert_eq!(
            decode_sid(None, key, "gateway-1").as_deref(),
            Ok("gateway-1")
        );
    }
}
