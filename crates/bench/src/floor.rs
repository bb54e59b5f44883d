//! `sio-bench floor-server`: the least a Socket.IO server can do per broadcast
//! delivery, to measure what this machine's kernel and hardware cost on their
//! own. The fan-out figures in BENCHMARKS.md are read against it: a target
//! below the floor cannot be met by any server that writes each delivery with
//! its own system call, however its user space is written.
//!
//! It speaks just enough Engine.IO v4 / Socket.IO v5 over WebSocket for
//! `sio-bench` and stock clients: the open packet, the main namespace's
//! connect, heartbeats, and the gateway's relay events `join`, `leave` and
//! `publish {room?, event, data}` with acks. A `publish` encodes the frame
//! once and writes it to every member with `try_write` straight from the task
//! that read it: no queue and no task woken per delivery, one `write(2)` per
//! delivery. Only a member whose kernel buffer is full keeps the rest in its
//! backlog, flushed by its own task. With `--coalesce-ms N` broadcasts are
//! instead appended to each member's batch and written every N ms, one write
//! per member: the floor at high rates for a latency budget of about N ms.
//! One thread, no long-polling, no auth, no cluster: a calibration reference,
//! not a server to deploy.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use base64::Engine as _;
use sha1::{Digest, Sha1};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A client frame larger than this closes the connection (Engine.IO's default `maxPayload`).
const MAX_PAYLOAD: usize = 1_000_000;
/// A member whose unsent bytes exceed this is disconnected rather than buffered without end.
const MAX_BACKLOG: usize = 4 << 20;
/// RFC 6455's fixed GUID for `Sec-WebSocket-Accept`.
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#[derive(clap::Args, Debug)]
pub struct FloorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3100")]
    pub listen: SocketAddr,
    /// Engine.IO heartbeat interval (ms); clients answer each ping.
    #[arg(long, default_value_t = 25_000)]
    pub ping_interval: u64,
    /// Coalesce: broadcasts go into each member's batch, written with one `write(2)` per
    /// member every this many ms (0: one write per delivery, at once). The floor for a
    /// given latency budget at high rates.
    #[arg(long, default_value_t = 0)]
    pub coalesce_ms: u64,
}

/// One connected websocket.
struct Peer {
    stream: TcpStream,
    /// Bytes the kernel did not take yet, in order; flushed by the peer's own task.
    backlog: RefCell<Vec<u8>>,
    /// Wakes the peer's task when its backlog gained bytes or it must close.
    wake: Notify,
    dead: Cell<bool>,
    /// Rooms joined, to leave them on disconnect.
    rooms: RefCell<Vec<String>>,
    /// With `--coalesce-ms`: broadcast frames waiting for the next flush tick.
    batch: RefCell<Vec<u8>>,
}

impl Peer {
    /// Queue one complete frame: written now if the kernel takes it, else kept in order.
    fn send(&self, frame: &[u8]) {
        if self.dead.get() {
            return;
        }
        let mut backlog = self.backlog.borrow_mut();
        if backlog.is_empty() {
            match self.stream.try_write(frame) {
                Ok(n) if n == frame.len() => return,
                Ok(n) => backlog.extend_from_slice(&frame[n..]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => backlog.extend_from_slice(frame),
                Err(_) => self.dead.set(true),
            }
        } else if backlog.len() + frame.len() > MAX_BACKLOG {
            self.dead.set(true);
        } else {
            backlog.extend_from_slice(frame);
        }
        self.wake.notify_one();
    }
}

/// Who is connected and who is in which room. Single-threaded: `RefCell`s, no locks.
#[derive(Default)]
struct Hub {
    all: RefCell<HashMap<u64, Rc<Peer>>>,
    rooms: RefCell<HashMap<String, HashMap<u64, Rc<Peer>>>>,
    /// `--coalesce-ms` is on: broadcasts are batched per member.
    coalesce: bool,
    /// Members whose batch is not empty, for the next flush tick.
    dirty: RefCell<Vec<Rc<Peer>>>,
}

impl Hub {
    /// Write `frame` to every member of `room` (or of the namespace), `except` the sender;
    /// with `--coalesce-ms`, append it to their batches for the next flush instead.
    fn broadcast(&self, room: Option<&str>, except: u64, frame: &[u8]) {
        let rooms = self.rooms.borrow();
        let all = self.all.borrow();
        let members = match room {
            Some(r) => match rooms.get(r) {
                Some(m) => m,
                None => return,
            },
            None => &*all,
        };
        let mut dirty = self.dirty.borrow_mut();
        for (_, p) in members.iter().filter(|(id, _)| **id != except) {
            if !self.coalesce {
                p.send(frame);
                continue;
            }
            let mut batch = p.batch.borrow_mut();
            if batch.is_empty() {
                dirty.push(p.clone());
            }
            batch.extend_from_slice(frame);
        }
    }

    /// Write every pending batch, one `write(2)` per member.
    fn flush(&self, scratch: &mut Vec<Rc<Peer>>) {
        std::mem::swap(&mut *self.dirty.borrow_mut(), scratch);
        for p in scratch.drain(..) {
            let mut batch = p.batch.borrow_mut();
            p.send(&batch);
            batch.clear();
        }
    }

    fn leave_all(&self, id: u64, peer: &Peer) {
        self.all.borrow_mut().remove(&id);
        let mut rooms = self.rooms.borrow_mut();
        for r in peer.rooms.borrow_mut().drain(..) {
            leave(&mut rooms, &r, id);
        }
    }
}

/// Take `id` out of `room`, dropping the room when it empties.
fn leave(rooms: &mut HashMap<String, HashMap<u64, Rc<Peer>>>, room: &str, id: u64) {
    if let Some(m) = rooms.get_mut(room) {
        m.remove(&id);
        if m.is_empty() {
            rooms.remove(room);
        }
    }
}

pub async fn run(a: FloorArgs, quiet: bool) -> Result<()> {
    let listener = TcpListener::bind(a.listen).await?;
    if !quiet {
        eprintln!("floor-server listening on {}", listener.local_addr()?);
    }
    let hub = Rc::new(Hub {
        coalesce: a.coalesce_ms > 0,
        ..Hub::default()
    });
    let ping_interval = a.ping_interval.max(100);
    tokio::task::spawn_local(heartbeat(hub.clone(), ping_interval));
    if a.coalesce_ms > 0 {
        tokio::task::spawn_local(flusher(hub.clone(), a.coalesce_ms));
    }
    let mut next_id = 0u64;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and the like: keep serving the connections we have.
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        next_id += 1;
        let hub = hub.clone();
        let id = next_id;
        tokio::task::spawn_local(async move {
            if let Err(e) = serve(&hub, stream, id, ping_interval).await
                && !quiet
            {
                eprintln!("connection {id}: {e}");
            }
        });
    }
}

/// Engine.IO ping to everyone every `interval` ms (clients that get none close after a while).
async fn heartbeat(hub: Rc<Hub>, interval: u64) {
    let mut ping = Vec::new();
    text_frame(&mut ping, b"2");
    let mut t = tokio::time::interval(Duration::from_millis(interval));
    t.tick().await;
    loop {
        t.tick().await;
        for p in hub.all.borrow().values() {
            p.send(&ping);
        }
    }
}

/// With `--coalesce-ms`: write the batches every `ms` milliseconds.
async fn flusher(hub: Rc<Hub>, ms: u64) {
    let mut t = tokio::time::interval(Duration::from_millis(ms));
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scratch = Vec::new();
    loop {
        t.tick().await;
        hub.flush(&mut scratch);
    }
}

async fn serve(hub: &Hub, stream: TcpStream, id: u64, ping_interval: u64) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let head_len = read_head(&stream, &mut buf).await?;
    let key = match upgrade_key(&buf[..head_len]) {
        Ok(k) => k,
        Err(reason) => {
            let body = format!("{reason}\n");
            let resp = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            write_all(&stream, resp.as_bytes()).await?;
            return Ok(());
        }
    };
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    );
    write_all(&stream, resp.as_bytes()).await?;
    buf.drain(..head_len);

    let peer = Rc::new(Peer {
        stream,
        backlog: RefCell::default(),
        wake: Notify::new(),
        dead: Cell::new(false),
        rooms: RefCell::default(),
        batch: RefCell::default(),
    });
    let sid = format!("{id:016x}");
    let mut out = Vec::with_capacity(128);
    text_frame(
        &mut out,
        format!(
            r#"0{{"sid":"{sid}","upgrades":[],"pingInterval":{ping_interval},"pingTimeout":20000,"maxPayload":{MAX_PAYLOAD}}}"#
        )
        .as_bytes(),
    );
    peer.send(&out);
    let mut session = Session {
        hub,
        peer: &peer,
        id,
        sid,
        connected: false,
        out,
    };
    let res = session.run(&mut buf).await;
    hub.leave_all(id, &peer);
    res
}

/// The per-connection protocol state, driven by the peer's task.
struct Session<'a> {
    hub: &'a Hub,
    peer: &'a Rc<Peer>,
    id: u64,
    sid: String,
    /// Socket.IO connected to the main namespace.
    connected: bool,
    /// Reused buffer for this connection's own replies and its broadcasts' frame.
    out: Vec<u8>,
}

impl Session<'_> {
    async fn run(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        loop {
            // Frames already read (the upgrade's read may have taken some).
            let mut at = 0;
            while let Some((op, range, used)) = next_frame(&mut buf[at..])? {
                let payload = &buf[at + range.start..at + range.end];
                match op {
                    0x1 => self.on_text(payload)?,
                    0x8 => {
                        let mut close = Vec::new();
                        frame(&mut close, 0x8, &[]);
                        self.peer.send(&close);
                        return Ok(());
                    }
                    0x9 => {
                        let mut pong = Vec::new();
                        frame(&mut pong, 0xA, payload);
                        self.peer.send(&pong);
                    }
                    0x2 | 0xA => {}
                    other => bail!("unsupported websocket opcode {other:#x}"),
                }
                at += used;
            }
            buf.drain(..at);
            if self.peer.dead.get() {
                bail!("write failed or backlog over {MAX_BACKLOG} bytes");
            }
            let pending = !self.peer.backlog.borrow().is_empty();
            tokio::select! {
                r = self.peer.stream.readable() => {
                    r?;
                    match self.peer.stream.try_read_buf(buf) {
                        Ok(0) => return Ok(()),
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e.into()),
                    }
                    if buf.capacity() - buf.len() < 512 {
                        buf.reserve(4096);
                    }
                }
                _ = self.peer.wake.notified() => {}
                r = self.peer.stream.writable(), if pending => {
                    r?;
                    let mut b = self.peer.backlog.borrow_mut();
                    match self.peer.stream.try_write(&b) {
                        Ok(n) => { b.drain(..n); }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e.into()),
                    }
                    if b.is_empty() && b.capacity() > 64 << 10 {
                        *b = Vec::new();
                    }
                }
            }
        }
    }

    /// One Engine.IO packet.
    fn on_text(&mut self, p: &[u8]) -> Result<()> {
        match p {
            b"2" => self.reply(b"3"),
            b"3" | b"6" => {}
            b"1" => bail!("client closed the Engine.IO session"),
            [b'4', b'0', rest @ ..] => {
                if rest.first() == Some(&b'/') {
                    // Only the main namespace exists here; answer as socket.io does.
                    let nsp = rest.split(|&c| c == b',').next().unwrap_or(rest);
                    let mut r = b"44".to_vec();
                    r.extend_from_slice(nsp);
                    r.extend_from_slice(br#",{"message":"Invalid namespace"}"#);
                    self.reply(&r);
                } else {
                    self.connected = true;
                    self.hub.all.borrow_mut().insert(self.id, self.peer.clone());
                    let r = format!(r#"40{{"sid":"{}"}}"#, self.sid);
                    self.reply(r.as_bytes());
                }
            }
            [b'4', b'1', ..] => {
                self.connected = false;
                self.hub.leave_all(self.id, self.peer);
            }
            [b'4', b'2', rest @ ..] if self.connected => self.on_event(rest)?,
            _ => {}
        }
        Ok(())
    }

    /// `42[id][...]`: the relay's events; anything else is acked with an error if it asks.
    fn on_event(&mut self, p: &[u8]) -> Result<()> {
        let digits = p.iter().take_while(|c| c.is_ascii_digit()).count();
        let ack: Option<u64> = match digits {
            0 => None,
            _ => Some(
                std::str::from_utf8(&p[..digits])?
                    .parse()
                    .map_err(|e| anyhow!("bad ack id: {e}"))?,
            ),
        };
        let args: Vec<serde_json::Value> = match serde_json::from_slice(&p[digits..]) {
            Ok(a) => a,
            Err(e) => bail!("bad event payload: {e}"),
        };
        let answer = match (args.first().and_then(|v| v.as_str()), args.get(1)) {
            (Some("join"), Some(arg)) => self.join(arg, true),
            (Some("leave"), Some(arg)) => self.join(arg, false),
            (Some("publish"), Some(arg)) => self.publish(arg),
            (Some(name), _) => Err(format!("no handler for `{name}`")),
            (None, _) => Err("event name missing".to_string()),
        };
        if let Some(id) = ack {
            let body = match answer {
                Ok(()) => serde_json::json!([{ "ok": true }]),
                Err(e) => serde_json::json!([{ "ok": false, "error": e }]),
            };
            self.reply(format!("43{id}{body}").as_bytes());
        }
        Ok(())
    }

    /// `join`/`leave` with a room name or a list of them.
    fn join(&self, arg: &serde_json::Value, join: bool) -> Result<(), String> {
        let names: Vec<&str> = match arg {
            serde_json::Value::String(s) => vec![s.as_str()],
            serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => return Err("expects a room name or a list of them".into()),
        };
        let mut rooms = self.hub.rooms.borrow_mut();
        let mut mine = self.peer.rooms.borrow_mut();
        for n in names {
            if join {
                rooms
                    .entry(n.to_string())
                    .or_default()
                    .insert(self.id, self.peer.clone());
                if !mine.iter().any(|r| r == n) {
                    mine.push(n.to_string());
                }
            } else {
                leave(&mut rooms, n, self.id);
                mine.retain(|r| r != n);
            }
        }
        Ok(())
    }

    /// `publish {room?, event, data}`: one frame encoded here, written to every member.
    fn publish(&mut self, arg: &serde_json::Value) -> Result<(), String> {
        let event = arg
            .get("event")
            .and_then(|v| v.as_str())
            .ok_or("publish expects {room?, event, data}")?;
        let room = match arg.get("room") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(r)) => Some(r.as_str()),
            Some(_) => return Err("room must be a string".into()),
        };
        let packet = match arg.get("data") {
            Some(d) => format!("42{}", serde_json::json!([event, d])),
            None => format!("42{}", serde_json::json!([event])),
        };
        self.out.clear();
        text_frame(&mut self.out, packet.as_bytes());
        self.hub.broadcast(room, self.id, &self.out);
        Ok(())
    }

    fn reply(&mut self, packet: &[u8]) {
        self.out.clear();
        text_frame(&mut self.out, packet);
        self.peer.send(&self.out);
    }
}

/// Read until the end of the HTTP request head; returns its length.
async fn read_head(stream: &TcpStream, buf: &mut Vec<u8>) -> Result<usize> {
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(p + 4);
        }
        if buf.len() > 16 << 10 {
            bail!("request head over 16 KiB");
        }
        stream.readable().await?;
        match stream.try_read_buf(buf) {
            Ok(0) => bail!("closed before the request head ended"),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Check that the head asks for an Engine.IO v4 websocket; returns `Sec-WebSocket-Key`.
fn upgrade_key(head: &[u8]) -> Result<String, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err("malformed HTTP request"),
    }
    if req.method != Some("GET") {
        return Err("only GET upgrades to a websocket here");
    }
    let path = req.path.unwrap_or("");
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
    let has = |kv: &str| query.split('&').any(|p| p == kv);
    if !path.starts_with("/socket.io/") || !has("EIO=4") || !has("transport=websocket") {
        return Err("expected /socket.io/?EIO=4&transport=websocket (no long-polling here)");
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err("missing Upgrade: websocket");
    }
    header("sec-websocket-key")
        .map(|k| k.trim().to_string())
        .ok_or("missing Sec-WebSocket-Key")
}

fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(WS_GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

async fn write_all(stream: &TcpStream, mut b: &[u8]) -> Result<()> {
    while !b.is_empty() {
        stream.writable().await?;
        match stream.try_write(b) {
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Append an unmasked server frame (FIN set) to `out`.
fn frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

fn text_frame(out: &mut Vec<u8>, payload: &[u8]) {
    frame(out, 0x1, payload)
}

/// Parse (and unmask in place) one complete client frame at the start of `buf`:
/// `(opcode, payload range, bytes used)`, or `None` if more bytes are needed.
fn next_frame(buf: &mut [u8]) -> Result<Option<(u8, std::ops::Range<usize>, usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x80 == 0 || b0 & 0x0f == 0 {
        bail!("fragmented websocket messages are not supported");
    }
    if b0 & 0x70 != 0 {
        bail!("websocket extensions (RSV bits) are not supported");
    }
    if b1 & 0x80 == 0 {
        bail!("client frames must be masked (RFC 6455 5.1)");
    }
    let (len, mut at) = match b1 & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (
                usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX),
                10,
            )
        }
        126 | 127 => return Ok(None),
        n => (n as usize, 2),
    };
    if len > MAX_PAYLOAD {
        bail!("frame of {len} bytes is over the {MAX_PAYLOAD}-byte limit");
    }
    if buf.len() < at + 4 + len {
        return Ok(None);
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buf[at..at + 4]);
    at += 4;
    for (i, b) in buf[at..at + len].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
    Ok(Some((b0 & 0x0f, at..at + len, at + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(op: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x11, 0x22, 0x33, 0x44];
        let mut f = vec![0x80 | op];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        f
    }

    #[test]
    fn parses_masked_frames_and_waits_for_more() {
        let long = vec![b'x'; 300];
        let mut buf = masked(0x1, b"42[\"join\",\"r\"]");
        buf.extend(masked(0x1, &long));
        let (op, r, used) = next_frame(&mut buf).unwrap().unwrap();
        assert_eq!((op, &buf[r]), (0x1, &b"42[\"join\",\"r\"]"[..]));
        let rest = &mut buf[used..];
        let (_, r, used2) = next_frame(rest).unwrap().unwrap();
        assert_eq!(&rest[r], &long[..]);
        assert_eq!(used2, rest.len());
        // Every proper prefix of a frame is "need more", never an error or a short frame.
        let whole = masked(0x1, &long);
        for cut in 0..whole.len() {
            let mut part = whole[..cut].to_vec();
            assert!(next_frame(&mut part).unwrap().is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn refuses_what_it_does_not_speak() {
        let mut unmasked = vec![0x81, 0x02, b'4', b'0'];
        assert!(next_frame(&mut unmasked).is_err());
        let mut fragment = masked(0x1, b"4");
        fragment[0] &= 0x7f;
        assert!(next_frame(&mut fragment).is_err());
        let mut huge = vec![0x81, 0x80 | 127];
        huge.extend_from_slice(&(10_000_000u64).to_be_bytes());
        assert!(next_frame(&mut huge).is_err());
    }

    #[test]
    fn server_frames_use_the_short_and_16_bit_lengths() {
        let mut out = Vec::new();
        text_frame(&mut out, b"3");
        assert_eq!(out, [0x81, 1, b'3']);
        out.clear();
        text_frame(&mut out, &[b'a'; 200]);
        assert_eq!(&out[..4], &[0x81, 126, 0, 200]);
        assert_eq!(out.len(), 204);
    }

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn upgrade_requires_an_engine_io_v4_websocket() {
        let ok = b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n\
                   Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc==\r\n\r\n";
        assert_eq!(upgrade_key(ok).unwrap(), "abc==");
        let polling = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(upgrade_key(polling).unwrap_err().contains("long-polling"));
        let no_key =
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(
            upgrade_key(no_key).unwrap_err(),
            "missing Sec-WebSocket-Key"
        );
    }
}
