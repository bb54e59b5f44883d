//! The history of a room in cluster mode: a capped Redis Stream per namespace and room, with
//! the epoch in a hash beside it. Every node reads and writes the same stream, so a client
//! recovers on any node. The format (keys, Lua scripts, arguments) is sio-wire's
//! ([`sio_wire::history::stream`]), shared with the emitter, which appends the same way;
//! this runs the scripts.
//!
//! Every byte read from Redis is untrusted: anyone who can write to the gateway's Redis can
//! `XADD` to a room's stream. The read script leaves out entries larger than
//! [`StreamStore::max_entry`] (they never cross the wire) and entries without the `e` or `a`
//! field; [`Stored::checked_args`] refuses the rest of what a gateway or emitter would not
//! have written (arguments that are not a JSON array, a `_placeholder` object, an event name
//! a client may not publish). Each is counted (`history_skipped_total`) and the replay goes on
//! with the next entry; its client is told (`recovered: false, reason: "skipped"`).
//!
//! Reads run on a Redis connection of their own ([`StreamStore::connect`]): a long or big
//! replay read never delays the appends of publishes (one more connection per node, not per
//! replay).
use fred::{clients::Client, interfaces::LuaInterface, prelude::ClientLike};
use sio_wire::history::{
    StreamId,
    stream::{APPEND, EVICT, READ, TRIM, append_args, append_reply, keys, ttl_ms},
};

use super::epoch::{self, Epoch};
use crate::config::HistorySpec;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("unexpected answer from Redis: {0}")]
    Answer(&'static str),
    #[error(
        "the message takes {0} bytes in the room's history, more than its largest entry ({1} bytes, 4 x --max-payload)"
    )]
    TooLarge(usize, usize),
}

/// The largest entry (event, arguments as JSON text and field names) a history read returns
/// and an append writes: 4 x `--max-payload`. A message a client (or the HTTP API) may send is
/// at most `--max-payload` bytes, but the stream keeps it as JSON, where a binary argument
/// takes up to 4 bytes per byte (`[255,255,...]`). A larger entry was not written by a gateway:
/// a read leaves it out, an append refuses it.
pub fn max_entry(max_payload: u64) -> usize {
    usize::try_from(max_payload.saturating_mul(4)).unwrap_or(usize::MAX)
}

/// Why a stored entry was left out of a read (`history_skipped_total`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// Larger than the largest entry (left out by the read script).
    Oversized,
    /// Not as a gateway or emitter writes them: a field missing, arguments that are not a
    /// JSON array, a `_placeholder` object, an event name no client may publish.
    Malformed,
}

impl Skipped {
    pub fn as_str(self) -> &'static str {
        match self {
            Skipped::Oversized => "oversized",
            Skipped::Malformed => "malformed",
        }
    }
}

/// One stored message.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: StreamId,
    pub event: String,
    /// The arguments as JSON text (an array).
    pub args: String,
}

/// What a read found.
#[derive(Debug)]
pub enum Read {
    /// No `since`: the position only.
    Position,
    /// `since` is of another epoch.
    OtherEpoch,
    /// What followed `since` is no longer all there (trimmed, or the stream was lost).
    Miss,
    /// What followed `since`, oldest first (a page of it).
    Replay(Page),
}

/// A page of what followed `since`.
#[derive(Debug, Default)]
pub struct Page {
    /// The entries returned, oldest first (not checked yet: see [`Stored::checked_args`]).
    pub entries: Vec<Stored>,
    /// Entries left out by the read script: larger than [`StreamStore::max_entry`].
    pub oversized: u64,
    /// Entries left out by the read script: the `e` or `a` field missing.
    pub malformed: u64,
    /// The id of the last entry looked at, returned or not (`since` when none): the next page
    /// starts after it.
    pub cursor: StreamId,
    /// The page was cut short (by its count or its bytes): more may follow `cursor`.
    pub more: bool,
}

impl Page {
    /// Count what the read script left out of this page in `skipped` (`history_skipped_total`,
    /// by reason); how many that was.
    pub fn count_skipped(&self, skipped: &prometheus::IntCounterVec) -> u64 {
        for (n, why) in [
            (self.oversized, Skipped::Oversized),
            (self.malformed, Skipped::Malformed),
        ] {
            if n > 0 {
                skipped.with_label_values(&[why.as_str()]).inc_by(n);
            }
        }
        self.oversized + self.malformed
    }
}

impl Stored {
    /// The arguments, as a gateway or emitter writes them: a JSON array of values holding no
    /// `_placeholder` object (receivers would read one as a binary attachment reference: the
    /// check every other path runs, `sio_wire::check_no_placeholders_json`), with an event
    /// name a client may publish. `Err` for anything else: left out of the replay and counted.
    pub fn checked_args(&self) -> Result<Vec<serde_json::Value>, Skipped> {
        if !crate::names::valid_len(&self.event) || crate::names::is_reserved(&self.event) {
            return Err(Skipped::Malformed);
        }
        let args: Vec<serde_json::Value> =
            serde_json::from_str(&self.args).map_err(|_| Skipped::Malformed)?;
        args.iter()
            .try_for_each(sio_wire::check_no_placeholders_json)
            .map_err(|_| Skipped::Malformed)?;
        Ok(args)
    }
}

#[derive(Debug)]
pub struct ReadResult {
    pub epoch: Epoch,
    pub last: StreamId,
    pub read: Read,
}

pub struct StreamStore {
    /// Appends, evictions, trims: what publishes wait for.
    client: Client,
    /// Reads (replays, the HTTP API, positions): a connection of their own, so that a long or
    /// big read does not hold up the publishes' appends queued behind it.
    reader: Client,
    /// The largest entry a read returns and an append writes ([`max_entry`]).
    max_entry: usize,
}

impl StreamStore {
    /// Connect two clients of its own (see `redis_client`): one for writes, one for reads.
    /// `max_payload`: the node's `--max-payload` (see [`max_entry`]).
    pub async fn connect(url: &str, max_payload: u64) -> anyhow::Result<StreamStore> {
        let client = crate::redis_client::client(url)?;
        let reader = crate::redis_client::client(url)?;
        client.init().await?;
        reader.init().await?;
        Ok(StreamStore {
            client,
            reader,
            max_entry: max_entry(max_payload),
        })
    }

    /// The largest entry a read returns and an append writes, in bytes.
    pub fn max_entry(&self) -> usize {
        self.max_entry
    }

    /// Append a message (the single append point in cluster mode, see `history`).
    pub async fn append(
        &self,
        nsp: &str,
        room: &str,
        spec: &HistorySpec,
        event: &str,
        args_json: &str,
    ) -> Result<(StreamId, Epoch), StoreError> {
        // What the read script counts: the fields' names (`e`, `a`) and values.
        let bytes = 2 + event.len() + args_json.len();
        if bytes > self.max_entry {
            return Err(StoreError::TooLarge(bytes, self.max_entry));
        }
        let args = append_args(spec, &epoch::random(), event, args_json);
        let v: Vec<String> = self
            .client
            .eval(APPEND, keys(nsp, room).to_vec(), args)
            .await?;
        append_reply(&v).map_err(|_| StoreError::Answer("append"))
    }

    /// Delete an evicted room's stream and meta hash (`wrote`: this node appended to it), or
    /// only a meta hash without a stream (see [`EVICT`]).
    pub async fn evict(&self, nsp: &str, room: &str, wrote: bool) -> Result<(), StoreError> {
        let arg = if wrote { "1" } else { "0" };
        let _: i64 = self
            .client
            .eval(EVICT, keys(nsp, room).to_vec(), vec![arg.to_owned()])
            .await?;
        Ok(())
    }

    /// Keep only the newest `keep` messages of a room's stream (see [`TRIM`]).
    pub async fn trim(&self, nsp: &str, room: &str, keep: usize) -> Result<(), StoreError> {
        let [stream, _] = keys(nsp, room);
        let _: i64 = self
            .client
            .eval(TRIM, vec![stream], vec![keep.to_string()])
            .await?;
        Ok(())
    }

    /// The position of a history and, with `since` (offset, epoch), what followed it (at most
    /// `limit` entries looked at, all when 0; and when `max_bytes` is not 0, up to the message
    /// that brings their events' and arguments' text to `max_bytes`), entries larger than
    /// [`StreamStore::max_entry`] or without their fields left out and counted.
    pub async fn read(
        &self,
        nsp: &str,
        room: &str,
        spec: &HistorySpec,
        since: Option<(StreamId, &Epoch)>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<ReadResult, StoreError> {
        let (since_s, cepoch) = match since {
            Some((id, e)) => (id.to_string(), e.as_str().to_owned()),
            None => (String::new(), String::new()),
        };
        let args = vec![
            since_s,
            cepoch,
            epoch::random().as_str().to_owned(),
            ttl_ms(spec),
            limit.to_string(),
            max_bytes.to_string(),
            self.max_entry.to_string(),
        ];
        let v: Vec<String> = self
            .reader
            .eval(READ, keys(nsp, room).to_vec(), args)
            .await?;
        read_reply(v)
    }
}

/// [`READ`]'s answer (see its doc).
fn read_reply(v: Vec<String>) -> Result<ReadResult, StoreError> {
    let mut it = v.into_iter();
    let (Some(epoch), Some(last), Some(status)) = (it.next(), it.next(), it.next()) else {
        return Err(StoreError::Answer("read"));
    };
    let epoch = Epoch::parse(&epoch).ok_or(StoreError::Answer("epoch"))?;
    let last = StreamId::parse(&last).ok_or(StoreError::Answer("stream id"))?;
    let read = match status.as_str() {
        "pos" => Read::Position,
        "epoch" => Read::OtherEpoch,
        "miss" => Read::Miss,
        "ok" => {
            let count = |s: Option<String>| {
                s.and_then(|s| s.parse::<u64>().ok())
                    .ok_or(StoreError::Answer("count"))
            };
            let oversized = count(it.next())?;
            let malformed = count(it.next())?;
            let cursor = it
                .next()
                .and_then(|c| StreamId::parse(&c))
                .ok_or(StoreError::Answer("cursor"))?;
            let more = match it.next().as_deref() {
                Some("1") => true,
                Some("0") => false,
                _ => return Err(StoreError::Answer("more")),
            };
            let mut entries = Vec::new();
            while let Some(id) = it.next() {
                let (Some(event), Some(args)) = (it.next(), it.next()) else {
                    return Err(StoreError::Answer("entry"));
                };
                let id = StreamId::parse(&id).ok_or(StoreError::Answer("stream id"))?;
                entries.push(Stored { id, event, args });
            }
            Read::Replay(Page {
                entries,
                oversized,
                malformed,
                cursor,
                more,
            })
        }
        _ => return Err(StoreError::Answer("status")),
    };
    Ok(ReadResult { epoch, last, read })
}

/// The scripts against a private redis-server (skipped, with a note, when none is installed):
/// what someone else wrote to a room's stream is left out of reads and counted, never loaded.
#[cfg(test)]
mod tests {
    use std::{
        net::TcpListener,
        process::{Child, Command, Stdio},
        time::Duration,
    };

    use fred::interfaces::{KeysInterface, StreamsInterface};

    use super::*;

    struct Redis {
        child: Child,
        url: String,
    }

    impl Redis {
        fn start() -> Option<Redis> {
            let port = TcpListener::bind("127.0.0.1:0")
                .ok()?
                .local_addr()
                .ok()?
                .port();
            let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
            let child = Command::new(bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(std::time::Instant::now() < deadline, "redis-server start");
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(Redis {
                child,
                url: format!("redis://127.0.0.1:{port}"),
            })
        }
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn setup(max_payload: u64) -> Option<(Redis, StreamStore, Client)> {
        let Some(redis) = Redis::start() else {
            eprintln!("redis-server not installed: skipped");
            return None;
        };
        let store = StreamStore::connect(&redis.url, max_payload).await.unwrap();
        let raw = crate::redis_client::client(&redis.url).unwrap();
        raw.init().await.unwrap();
        Some((redis, store, raw))
    }

    fn page(r: ReadResult) -> Page {
        match r.read {
            Read::Replay(p) => p,
            other => panic!("expected a page, got {other:?}"),
        }
    }

    /// XADD by someone else (not through the append script).
    async fn xadd(raw: &Client, key: &str, fields: Vec<(&str, String)>) -> String {
        raw.xadd(key, false, None::<()>, "*", fields).await.unwrap()
    }

    #[tokio::test]
    async fn reads_leave_out_oversized_and_malformed_entries_and_go_on() {
        let Some((_redis, store, raw)) = setup(1000).await else {
            return;
        };
        assert_eq!(store.max_entry(), 4000);
        let spec = HistorySpec::parse("chat:*=100").unwrap();
        let (a, epoch) = store
            .append("/", "chat:x", &spec, "m", "[1]")
            .await
            .unwrap();
        let [key, _] = keys("/", "chat:x");
        let big = xadd(&raw, &key, vec![("e", "m".into()), ("a", "x".repeat(5000))]).await;
        let bare = xadd(&raw, &key, vec![("e", "m".into())]).await;
        let (b, _) = store
            .append("/", "chat:x", &spec, "m", "[2]")
            .await
            .unwrap();
        let not_json = xadd(&raw, &key, vec![("e", "m".into()), ("a", "{x".into())]).await;
        let placeholder = r#"[{"_placeholder":true,"num":0}]"#.to_owned();
        let ph = xadd(&raw, &key, vec![("e", "m".into()), ("a", placeholder)]).await;
        let reserved = xadd(
            &raw,
            &key,
            vec![("e", "connect".into()), ("a", "[]".into())],
        )
        .await;
        let (c, _) = store
            .append("/", "chat:x", &spec, "m", "[3]")
            .await
            .unwrap();

        let r = store
            .read("/", "chat:x", &spec, Some((StreamId::ZERO, &epoch)), 0, 0)
            .await
            .unwrap();
        assert_eq!(r.last, c);
        let p = page(r);
        assert_eq!((p.oversized, p.malformed), (1, 1), "left out by the script");
        assert_eq!(p.cursor, c);
        assert!(!p.more);
        let ids: Vec<_> = p.entries.iter().map(|m| m.id.to_string()).collect();
        assert_eq!(
            ids,
            [
                a.to_string(),
                b.to_string(),
                not_json,
                ph,
                reserved,
                c.to_string()
            ]
        );
        assert!(!ids.contains(&big) && !ids.contains(&bare));
        let checked: Vec<_> = p.entries.iter().map(|m| m.checked_args().ok()).collect();
        assert_eq!(
            checked,
            [
                Some(vec![serde_json::json!(1)]),
                Some(vec![serde_json::json!(2)]),
                None,
                None,
                None,
                Some(vec![serde_json::json!(3)]),
            ]
        );

        // A page of only left-out entries still moves on: its cursor is past them.
        let r = store
            .read("/", "chat:x", &spec, Some((a, &epoch)), 2, 0)
            .await
            .unwrap();
        let p = page(r);
        assert!(p.entries.is_empty() && p.more);
        assert_eq!(
            (p.oversized, p.malformed, p.cursor.to_string()),
            (1, 1, bare)
        );

        // The gateway's own append refuses what a read would leave out.
        let e = store
            .append("/", "chat:x", &spec, "m", &"y".repeat(4000))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::TooLarge(4003, 4000)), "{e}");
    }

    #[tokio::test]
    async fn a_stream_that_cannot_be_appended_to_starts_a_new_epoch() {
        let Some((_redis, store, raw)) = setup(1000).await else {
            return;
        };
        let spec = HistorySpec::parse("chat:*=100").unwrap();
        let (_, e1) = store
            .append("/", "chat:x", &spec, "m", "[1]")
            .await
            .unwrap();
        let [key, _] = keys("/", "chat:x");
        // The largest id: every later `XADD *` fails ("exhausted the last possible ID").
        let max = format!("{}-{}", u64::MAX, u64::MAX);
        let _: String = raw
            .xadd(
                &key,
                false,
                None::<()>,
                max.as_str(),
                vec![("e", "m"), ("a", "[]")],
            )
            .await
            .unwrap();
        let (id, e2) = store
            .append("/", "chat:x", &spec, "m", "[2]")
            .await
            .unwrap();
        assert_ne!(e1, e2, "a new epoch");
        let r = store
            .read("/", "chat:x", &spec, Some((StreamId::ZERO, &e2)), 0, 0)
            .await
            .unwrap();
        let p = page(r);
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].id, id);
        // The key replaced by another type: the same.
        let _: () = raw.set(&key, "x", None, None, false).await.unwrap();
        let (_, e3) = store
            .append("/", "chat:x", &spec, "m", "[3]")
            .await
            .unwrap();
        assert_ne!(e2, e3);
        // A far-future id is no failure: later ids follow it, in the same epoch.
        let _: String = raw
            .xadd(
                &key,
                false,
                None::<()>,
                "99999999999999-0",
                vec![("e", "m"), ("a", "[]")],
            )
            .await
            .unwrap();
        let (id, e4) = store
            .append("/", "chat:x", &spec, "m", "[4]")
            .await
            .unwrap();
        assert_eq!(e3, e4);
        assert!(id > StreamId::parse("99999999999999-0").unwrap());
    }
}
