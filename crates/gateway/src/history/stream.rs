//! The history of a room in cluster mode: a capped Redis Stream per namespace and room, with
//! the epoch in a hash beside it. Every node reads and writes the same stream, so a client
//! recovers on any node. The format (keys, Lua scripts, arguments) is sio-wire's
//! ([`sio_wire::history::stream`]), shared with the emitter, which appends the same way;
//! this runs the scripts.
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
    /// What followed `since`, oldest first.
    Replay(Vec<Stored>),
}

#[derive(Debug)]
pub struct ReadResult {
    pub epoch: Epoch,
    pub last: StreamId,
    pub read: Read,
}

pub struct StreamStore {
    client: Client,
}

impl StreamStore {
    /// Connect a client of its own (see `redis_client`).
    pub async fn connect(url: &str) -> anyhow::Result<StreamStore> {
        let client = crate::redis_client::client(url)?;
        client.init().await?;
        Ok(StreamStore { client })
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
    /// `limit` messages, all when 0; and when `max_bytes` is not 0, up to the message that
    /// brings their events' and arguments' text to `max_bytes`, at least one).
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
        ];
        let v: Vec<String> = self
            .client
            .eval(READ, keys(nsp, room).to_vec(), args)
            .await?;
        let [epoch, last, status, rest @ ..] = v.as_slice() else {
            return Err(StoreError::Answer("read"));
        };
        let epoch = Epoch::parse(epoch).ok_or(StoreError::Answer("epoch"))?;
        let last = StreamId::parse(last).ok_or(StoreError::Answer("stream id"))?;
        let read = match status.as_str() {
            "pos" => Read::Position,
            "epoch" => Read::OtherEpoch,
            "miss" => Read::Miss,
            "ok" => Read::Replay(
                rest.chunks(3)
                    .map(|c| match c {
                        [id, event, args] => Ok(Stored {
                            id: StreamId::parse(id).ok_or(StoreError::Answer("stream id"))?,
                            event: event.clone(),
                            args: args.clone(),
                        }),
                        _ => Err(StoreError::Answer("entry")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(StoreError::Answer("status")),
        };
        Ok(ReadResult { epoch, last, read })
    }
}
