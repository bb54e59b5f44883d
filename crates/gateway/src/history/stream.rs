//! The history of a room in cluster mode: a capped Redis Stream per namespace and room
//! (`XADD MAXLEN ~ SIZE`, key TTL refreshed on every write), offsets = stream ids, and the
//! epoch in a hash beside it. Every node reads and writes the same stream, so a client
//! recovers on any node.
//!
//! Both keys share one hash tag (`sio:history:{<nsp>#<room>}` and `...:meta`), so the two
//! Lua scripts below work on Redis Cluster too. A stream that vanished (Redis flushed or
//! restarted without persistence, key expired) vanishes with its hash: the next write or read
//! creates a new epoch, and offsets of the old one are answered `reason: "epoch"`.
use fred::{clients::Client, interfaces::LuaInterface, prelude::ClientLike};

use super::{epoch::Epoch, stream_id::StreamId};
use crate::config::HistorySpec;

/// Append one message; returns `{id, epoch}`.
/// KEYS: stream, meta. ARGV: maxlen, ttl ms (0 = none), new epoch, event, args (JSON).
const APPEND: &str = r#"
local stream, meta = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[2])
local epoch = redis.call('HGET', meta, 'e')
local first = redis.call('HGET', meta, 'f')
if (not epoch) or (first and redis.call('EXISTS', stream) == 0) then
  epoch = ARGV[3]
  redis.call('DEL', stream, meta)
  redis.call('HSET', meta, 'e', epoch)
  first = false
end
local id = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[4], 'a', ARGV[5])
if not first then redis.call('HSET', meta, 'f', id) end
if ttl > 0 then
  redis.call('PEXPIRE', stream, ttl)
  redis.call('PEXPIRE', meta, ttl)
end
return {id, epoch}
"#;

/// The position of a history, and with `since` what followed it:
/// `{epoch, last, status, id1, event1, args1, ...}`, status `pos`, `epoch`, `miss` or `ok`.
/// KEYS: stream, meta. ARGV: since ('' = position only), client epoch, new epoch, ttl ms,
/// most entries (0 = all).
const READ: &str = r#"
local stream, meta = KEYS[1], KEYS[2]
local since, cepoch = ARGV[1], ARGV[2]
local ttl = tonumber(ARGV[4])
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  epoch = ARGV[3]
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', epoch)
  if ttl > 0 then redis.call('PEXPIRE', meta, ttl) end
end
local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
local last = '0-0'
if #newest > 0 then last = newest[1][1] end
if since == '' then return {epoch, last, 'pos'} end
if cepoch ~= epoch then return {epoch, last, 'epoch'} end
local first = redis.call('HGET', meta, 'f')
local present
if since == '0-0' then
  present = (not first) or (#redis.call('XRANGE', stream, first, first) > 0)
else
  present = #redis.call('XRANGE', stream, since, since) > 0
end
if not present then return {epoch, last, 'miss'} end
local out = {epoch, last, 'ok'}
local start = '-'
if since ~= '0-0' then start = '(' .. since end
local entries
if tonumber(ARGV[5]) > 0 then
  entries = redis.call('XRANGE', stream, start, '+', 'COUNT', ARGV[5])
else
  entries = redis.call('XRANGE', stream, start, '+')
end
for _, e in ipairs(entries) do
  local f = e[2]
  local ev, args = '', '[]'
  for i = 1, #f, 2 do
    if f[i] == 'e' then ev = f[i + 1] elseif f[i] == 'a' then args = f[i + 1] end
  end
  out[#out + 1] = e[1]
  out[#out + 1] = ev
  out[#out + 1] = args
end
return out
"#;

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

fn keys(nsp: &str, room: &str) -> Vec<String> {
    let stream = format!("sio:history:{{{nsp}#{room}}}");
    let meta = format!("{stream}:meta");
    vec![stream, meta]
}

fn ttl_ms(spec: &HistorySpec) -> String {
    spec.ttl.map_or(0, |t| t.as_millis()).to_string()
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
        let args = vec![
            spec.size.to_string(),
            ttl_ms(spec),
            Epoch::random().as_str().to_owned(),
            event.to_owned(),
            args_json.to_owned(),
        ];
        let v: Vec<String> = self.client.eval(APPEND, keys(nsp, room), args).await?;
        match v.as_slice() {
            [id, epoch] => Ok((
                StreamId::parse(id).ok_or(StoreError::Answer("stream id"))?,
                Epoch::parse(epoch).ok_or(StoreError::Answer("epoch"))?,
            )),
            _ => Err(StoreError::Answer("append")),
        }
    }

    /// The position of a history and, with `since` (offset, epoch), what followed it (at most
    /// `limit` messages, all when 0).
    pub async fn read(
        &self,
        nsp: &str,
        room: &str,
        spec: &HistorySpec,
        since: Option<(StreamId, &Epoch)>,
        limit: usize,
    ) -> Result<ReadResult, StoreError> {
        let (since_s, cepoch) = match since {
            Some((id, e)) => (id.to_string(), e.as_str().to_owned()),
            None => (String::new(), String::new()),
        };
        let args = vec![
            since_s,
            cepoch,
            Epoch::random().as_str().to_owned(),
            ttl_ms(spec),
            limit.to_string(),
        ];
        let v: Vec<String> = self.client.eval(READ, keys(nsp, room), args).await?;
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
