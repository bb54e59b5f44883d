//! Cluster mode's history in Redis: a capped Redis Stream per namespace and room
//! (`XADD MAXLEN ~ SIZE`, key TTL refreshed on every write), offsets = stream ids, and the
//! epoch in a hash beside it. A rule without a TTL still gets an idle expiry,
//! [`IDLE_EXPIRY_WITHOUT_TTL`]: without it the keys of a room nobody writes any more would stay
//! in Redis for ever (a gateway node deletes the streams it evicts for its memory budget, but
//! forgets what it tracked when it restarts). Every gateway node, and the emitter, write the same stream the
//! same way ([`APPEND`]), so a client recovers on any node whoever published.
//!
//! Both keys share one hash tag (`sio:history:{<nsp>#<room>}` and `...:meta`), so the two
//! Lua scripts below work on Redis Cluster too. A stream that vanished (Redis flushed or
//! restarted without persistence, key expired) vanishes with its hash: the next write or read
//! creates a new epoch, and offsets of the old one are answered `reason: "epoch"`.
//!
//! Pure: the scripts, keys and arguments are built here; the caller runs `EVAL`.
use super::{Epoch, HistorySpec, StreamId};
use crate::{Result, Value, WireError};

/// How long the keys of a history whose rule has no TTL live without a write (30 days, the
/// longest TTL a rule may give): the stream is then lost as a whole and comes back with a new
/// epoch, as after a flush. Messages themselves are not expired by age in Redis either way.
pub const IDLE_EXPIRY_WITHOUT_TTL: std::time::Duration = super::spec::MAX_TTL;

/// Append one message; returns `{id, epoch}`.
/// KEYS: stream, meta. ARGV: maxlen, ttl ms (0 = none), new epoch, event, args (JSON).
///
/// A stream that `XADD *` can no longer append to starts over with a new epoch (its readers
/// are then told `reason: "epoch"`), rather than failing every append until the key expires:
/// anyone who can write to Redis can `XADD` the largest id (`ERR ... exhausted the last
/// possible ID`) or replace the key with another type (`WRONGTYPE`). Other errors (out of
/// memory, ...) fail the append as before.
pub const APPEND: &str = r#"
local stream, meta = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[2])
local epoch = redis.call('HGET', meta, 'e')
local first = redis.call('HGET', meta, 'f')
local function restart()
  epoch = ARGV[3]
  redis.call('DEL', stream, meta)
  redis.call('HSET', meta, 'e', epoch)
  first = false
end
if (not epoch) or (first and redis.call('EXISTS', stream) == 0) then restart() end
local function xadd()
  return redis.pcall('XADD', stream, 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[4], 'a', ARGV[5])
end
local id = xadd()
if type(id) == 'table' and id.err then
  local e = tostring(id.err)
  if string.find(e, 'exhausted', 1, true) or string.find(e, 'equal or smaller', 1, true)
    or string.find(e, 'WRONGTYPE', 1, true) then
    restart()
    id = xadd()
  end
  if type(id) == 'table' and id.err then return redis.error_reply(tostring(id.err)) end
end
if not first then redis.call('HSET', meta, 'f', id) end
if ttl > 0 then
  redis.call('PEXPIRE', stream, ttl)
  redis.call('PEXPIRE', meta, ttl)
end
return {id, epoch}
"#;

/// The position of a history, and with `since` what followed it: `{epoch, last, status}`,
/// status `pos`, `epoch` or `miss`, or `{epoch, last, "ok", oversized, malformed, cursor, more,
/// id1, event1, args1, ...}`.
/// KEYS: stream, meta. ARGV: since ('' = position only), client epoch, new epoch, ttl ms,
/// most entries looked at (0 = all), most bytes (0 = no bound): the entries stop after the one
/// that brings their events' and arguments' bytes to it, so a reader can take a long history a
/// page at a time whatever its messages' sizes; and the largest entry returned (0 = no bound).
///
/// Every byte in Redis is untrusted (anyone who can write to it can `XADD` to a room's
/// stream): an entry whose fields' values exceed the largest entry in bytes (`oversized`) or
/// that lacks the `e` or `a` field (`malformed`) is counted and left out, here, so that it
/// never crosses the wire; the reader checks the rest (see the gateway's `history::stream`).
/// `cursor` is the id of the last entry looked at (`since` when none), where the next page
/// starts; `more` is `1` when the page was cut short (by the count or the bytes).
pub const READ: &str = r#"
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
local start = '-'
if since ~= '0-0' then start = '(' .. since end
local count = tonumber(ARGV[5]) or 0
local entries
if count > 0 then
  entries = redis.call('XRANGE', stream, start, '+', 'COUNT', count)
else
  entries = redis.call('XRANGE', stream, start, '+')
end
local cap = tonumber(ARGV[6] or '0') or 0
local most = tonumber(ARGV[7] or '0') or 0
local more = count > 0 and #entries >= count
local total, big, bad, cursor = 0, 0, 0, since
local out = {}
for _, e in ipairs(entries) do
  cursor = e[1]
  local f = e[2]
  local ev, args, size = nil, nil, 0
  for i = 1, #f, 2 do
    local v = f[i + 1] or ''
    size = size + #f[i] + #v
    if f[i] == 'e' then ev = v elseif f[i] == 'a' then args = v end
  end
  if most > 0 and size > most then
    big = big + 1
  elseif not ev or not args then
    bad = bad + 1
  else
    out[#out + 1] = e[1]
    out[#out + 1] = ev
    out[#out + 1] = args
    total = total + #ev + #args
    if cap > 0 and total >= cap then
      more = true
      break
    end
  end
end
local head = {epoch, last, 'ok', tostring(big), tostring(bad), cursor, more and '1' or '0'}
for _, v in ipairs(out) do head[#head + 1] = v end
return head
"#;

/// A node evicts a room's history to stay within its memory budget (`--history-max-bytes`):
/// with `ARGV[1]` = `1` (the node wrote to it) both keys go, and the next write or read starts a
/// new epoch; with `0` (the node only read it) the meta hash goes only if the stream does not
/// exist (a read of a room nobody wrote creates it), so other nodes' history is left alone.
/// Returns the number of keys deleted. KEYS: stream, meta.
pub const EVICT: &str = r#"
if ARGV[1] == '1' then return redis.call('DEL', KEYS[1], KEYS[2]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('DEL', KEYS[2]) end
return 0
"#;

/// Keep only the newest `ARGV[1]` messages of a room's stream (exactly; a room alone over the
/// node's memory budget): a recovery from before them answers `miss`. Returns the number of
/// messages removed. KEYS: stream.
pub const TRIM: &str = r#"
return redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[1])
"#;

/// The stream and meta keys of a room's history, in the scripts' `KEYS` order.
///
/// Unambiguous because namespace paths never contain `#` (the gateway refuses them at CONNECT
/// and in `--namespace`): the first `#` ends the namespace. Before that (review 8) room
/// `#general` of `/t` and room `general` of `/t#` had the same key.
pub fn keys(nsp: &str, room: &str) -> [String; 2] {
    let stream = format!("sio:history:{{{nsp}#{room}}}");
    let meta = format!("{stream}:meta");
    [stream, meta]
}

/// The TTL argument of the scripts, in milliseconds: the rule's, else
/// [`IDLE_EXPIRY_WITHOUT_TTL`]. (The scripts still take `0` as "no expiry".)
pub fn ttl_ms(spec: &HistorySpec) -> String {
    spec.ttl
        .unwrap_or(IDLE_EXPIRY_WITHOUT_TTL)
        .as_millis()
        .to_string()
}

/// [`APPEND`]'s `ARGV`: the rule's size and TTL, the epoch to start with if the history is new
/// or lost, the event and its arguments as JSON (see [`args_json`]).
pub fn append_args(
    spec: &HistorySpec,
    new_epoch: &Epoch,
    event: &str,
    args_json: &str,
) -> Vec<String> {
    vec![
        spec.size.to_string(),
        ttl_ms(spec),
        new_epoch.as_str().to_owned(),
        event.to_owned(),
        args_json.to_owned(),
    ]
}

/// [`APPEND`]'s answer `{id, epoch}`: the message's offset and the history's epoch.
pub fn append_reply(reply: &[String]) -> Result<(StreamId, Epoch)> {
    match reply {
        [id, epoch] => Ok((
            StreamId::parse(id).ok_or_else(|| WireError::shape("history append: stream id"))?,
            Epoch::parse(epoch).ok_or_else(|| WireError::shape("history append: epoch"))?,
        )),
        _ => Err(WireError::shape("history append: expected {id, epoch}")),
    }
}

/// A message's arguments as the stream keeps them: a JSON array (binary as arrays of bytes,
/// as the gateway stores a client's binary `publish`). Map keys must be strings.
pub fn args_json(args: &[Value]) -> Result<String> {
    serde_json::to_string(args).map_err(WireError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_a_hash_tag() {
        let [stream, meta] = keys("/", "chat:a");
        assert_eq!(stream, "sio:history:{/#chat:a}");
        assert_eq!(meta, "sio:history:{/#chat:a}:meta");
        let [s2, _] = keys("/admin", "chat:a");
        assert_eq!(
            s2, "sio:history:{/admin#chat:a}",
            "one history per namespace and room"
        );
    }

    #[test]
    fn append_arguments_and_answer() {
        let spec = HistorySpec::parse("chat:*=200/10m").unwrap();
        let e = Epoch::from_bits(1);
        assert_eq!(
            append_args(&spec, &e, "msg", "[1]"),
            ["200", "600000", "0000000000000001", "msg", "[1]"]
        );
        let no_ttl = HistorySpec::parse("news=5").unwrap();
        assert_eq!(
            append_args(&no_ttl, &e, "m", "[]")[..2],
            ["5", "2592000000"],
            "no TTL: keys still expire after 30 days without a write"
        );
        let ok = append_reply(&["1733400000000-3".into(), "00000000000000ff".into()]).unwrap();
        assert_eq!(ok.0.to_string(), "1733400000000-3");
        assert_eq!(ok.1.as_str(), "00000000000000ff");
        assert!(append_reply(&["x".into(), "e".into()]).is_err());
        assert!(append_reply(&["1-0".into(), "bad epoch".into()]).is_err());
        assert!(append_reply(&["1-0".into()]).is_err());
    }

    #[test]
    fn arguments_as_json() {
        let args = [
            Value::from("hi"),
            Value::Binary(vec![1, 2]),
            Value::Map(vec![(Value::from("n"), Value::from(1))]),
        ];
        assert_eq!(args_json(&args).unwrap(), r#"["hi",[1,2],{"n":1}]"#);
        assert!(args_json(&[Value::Map(vec![(Value::Nil, Value::Nil)])]).is_err());
    }
}
