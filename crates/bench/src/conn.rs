//! One Socket.IO client connection over WebSocket: the Engine.IO open, the
//! namespace connect, `join` with ack, sending events, and the receive loop's
//! per-frame handling (heartbeat answers, timestamps).
//!
//! Only what the generator needs of the protocol is here; frames are classified
//! by [`crate::frame`] without JSON parsing, and outgoing frames are built in a
//! reused buffer and masked in place (no allocation per frame).

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket, WebSocketWrite};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

use crate::frame::{Inbound, classify};
use crate::http1::{Target, ws_upgrade};

/// What a receiver does with an inbound frame that the connection did not handle itself.
pub enum Event<'a> {
    /// A Socket.IO event (the whole Engine.IO frame, for timestamp extraction).
    Delivery(&'a [u8]),
    /// An ack of one of our events.
    Ack { id: u64, body: &'a [u8] },
    /// The server ended the session (Engine.IO close, Socket.IO disconnect, WS close).
    Closed,
    /// Nothing of interest (ping answered, noop, other namespace).
    Nothing,
}

pub struct SioConn {
    ws: WebSocket<TcpStream>,
    /// `/` or `/name`.
    nsp: String,
    /// Reused buffer for outgoing frames.
    out: Vec<u8>,
    next_ack: u64,
    /// The payload of the last event returned by [`SioConn::next_event`]: a
    /// refcounted view into the read buffer, released before the next read so
    /// the buffer can be reused in place rather than reallocated.
    last: Option<Payload<'static>>,
}

/// Socket.IO namespace connect options.
#[derive(Debug, Clone)]
pub struct ConnectOpts {
    pub nsp: String,
    /// Raw JSON object sent as the CONNECT payload (`auth`), e.g. `{"token":"..."}`.
    pub auth: Option<String>,
}

impl SioConn {
    /// Engine.IO open + Socket.IO namespace connect. Errors carry the server's reason.
    pub async fn connect(t: &Target, o: &ConnectOpts) -> Result<Self> {
        let stream = ws_upgrade(t).await?;
        let mut ws = WebSocket::after_handshake(stream, Role::Client);
        ws.set_auto_close(true);
        ws.set_auto_pong(true);
        let mut c = Self {
            ws,
            nsp: o.nsp.clone(),
            out: Vec::with_capacity(256),
            next_ack: 0,
            last: None,
        };
        // Engine.IO open packet first.
        loop {
            let f = c.ws.read_frame().await?;
            match f.opcode {
                OpCode::Text => match classify(&f.payload) {
                    Inbound::EioOpen(_) => break,
                    other => bail!("expected Engine.IO open, got {other:?}"),
                },
                OpCode::Close => bail!("closed during Engine.IO handshake"),
                _ => {}
            }
        }
        c.out.clear();
        c.out.extend_from_slice(b"40");
        if c.nsp != "/" {
            c.out.extend_from_slice(c.nsp.as_bytes());
            c.out.push(b',');
        }
        if let Some(a) = &o.auth {
            c.out.extend_from_slice(a.as_bytes());
        }
        c.flush_out().await?;
        loop {
            let f = c.ws.read_frame().await?;
            if f.opcode == OpCode::Close {
                bail!("closed during Socket.IO connect");
            }
            if f.opcode != OpCode::Text {
                continue;
            }
            match classify(&f.payload) {
                Inbound::SioConnect { nsp, .. } if nsp == c.nsp.as_bytes() => return Ok(c),
                Inbound::SioConnectError { body, .. } => {
                    bail!("connect_error: {}", String::from_utf8_lossy(body))
                }
                Inbound::EioPing => {
                    let mut pong = *b"3";
                    c.ws.write_frame(Frame::text(Payload::BorrowedMut(&mut pong)))
                        .await?;
                }
                Inbound::EioClose => bail!("Engine.IO close during connect"),
                _ => {}
            }
        }
    }

    /// Send the frame built in `self.out`. Masking happens in place in that buffer.
    async fn flush_out(&mut self) -> Result<()> {
        self.ws
            .write_frame(Frame::text(Payload::BorrowedMut(&mut self.out[..])))
            .await?;
        Ok(())
    }

    /// Write the Socket.IO event prefix `42[/nsp,][id]` into the out buffer.
    fn begin_event(&mut self, ack: Option<u64>) {
        self.out.clear();
        self.out.extend_from_slice(b"42");
        if self.nsp != "/" {
            self.out.extend_from_slice(self.nsp.as_bytes());
            self.out.push(b',');
        }
        if let Some(id) = ack {
            use std::io::Write;
            let _ = write!(self.out, "{id}");
        }
    }

    /// Send an event whose JSON argument array (`["name",...]`) is written by `body`.
    pub async fn emit_with(
        &mut self,
        ack: bool,
        body: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Option<u64>> {
        let id = ack.then(|| {
            self.next_ack += 1;
            self.next_ack
        });
        self.begin_event(id);
        body(&mut self.out);
        self.flush_out().await?;
        Ok(id)
    }

    /// `join` a room and wait for the ack; the relay answers `{ok:true}` or
    /// `{ok:false,error}`. Returns how many times the join had to be re-sent:
    /// a server that registers its event handlers only after it sent the
    /// CONNECT ack (socketioxide with an async connect handler) drops an event
    /// sent right after connecting, so after `retry_after` without an ack the
    /// join is sent again (joining is idempotent). The caller reports retries.
    pub async fn join(&mut self, room: &str, retry_after: Duration) -> Result<u32> {
        let arg = serde_json::to_string(room)?;
        let mut retries = 0;
        loop {
            let id = self
                .emit_with(true, |o| {
                    o.extend_from_slice(b"[\"join\",");
                    o.extend_from_slice(arg.as_bytes());
                    o.push(b']');
                })
                .await?;
            let wait_ack = async {
                loop {
                    match self.next_event().await? {
                        Event::Ack { id: got, body } if Some(got) == id => {
                            let v: serde_json::Value = serde_json::from_slice(body)
                                .map_err(|e| anyhow!("bad join ack {e}"))?;
                            if v[0]["ok"] == serde_json::Value::Bool(true) {
                                return Ok(());
                            }
                            bail!("join {room} refused: {v}");
                        }
                        Event::Closed => bail!("closed while joining {room}"),
                        _ => {}
                    }
                }
            };
            // Cancelling the wait can only lose a frame split across TCP reads;
            // while waiting for an ack nothing else is sent to this socket.
            match tokio::time::timeout(retry_after, wait_ack).await {
                Ok(r) => return r.map(|()| retries),
                Err(_) if retries < 3 => retries += 1,
                Err(_) => bail!("no join ack after {} attempts", retries + 1),
            }
        }
    }

    /// Read the next frame, answer heartbeats, and tell the caller what arrived.
    /// The returned slices borrow the connection's read buffer.
    pub async fn next_event(&mut self) -> Result<Event<'_>> {
        self.last = None;
        let f = self.ws.read_frame().await?;
        match f.opcode {
            OpCode::Text => {}
            OpCode::Close => return Ok(Event::Closed),
            _ => return Ok(Event::Nothing),
        }
        let kind = match classify(&f.payload) {
            Inbound::EioPing => 1,
            Inbound::SioEvent { nsp, .. } if nsp == self.nsp.as_bytes() => 2,
            Inbound::SioAck { nsp, .. } if nsp == self.nsp.as_bytes() => 3,
            Inbound::EioClose => 4,
            Inbound::SioDisconnect { nsp } if nsp == self.nsp.as_bytes() => 4,
            _ => 0,
        };
        match kind {
            1 => {
                let mut pong = *b"3";
                self.ws
                    .write_frame(Frame::text(Payload::BorrowedMut(&mut pong)))
                    .await?;
                Ok(Event::Nothing)
            }
            2 | 3 => {
                self.last = Some(f.payload);
                let p: &[u8] = self.last.as_deref().unwrap_or(&[]);
                if kind == 2 {
                    Ok(Event::Delivery(p))
                } else {
                    match classify(p) {
                        Inbound::SioAck { id, body, .. } => Ok(Event::Ack { id, body }),
                        _ => Ok(Event::Nothing),
                    }
                }
            }
            4 => Ok(Event::Closed),
            _ => Ok(Event::Nothing),
        }
    }
}

/// The sending half of a split connection (used by the client-origin sender,
/// whose reads run in their own task so pacing never cancels a half-read frame).
pub struct SioWriter {
    ws: WebSocketWrite<OwnedWriteHalf>,
    nsp: String,
    out: Vec<u8>,
}

impl SioConn {
    /// Split into a writer and a reader task that answers heartbeats by asking
    /// the writer (through `pong_rx`) to send `3`. The reader ends when the
    /// server closes; then `pong_rx` yields `None`.
    pub fn split(self) -> (SioWriter, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let nsp = self.nsp.clone();
        let (mut rd, wr) = self.ws.split(|s| s.into_split());
        rd.set_auto_pong(false);
        rd.set_auto_close(false);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::task::spawn_local(async move {
            // Obligated sends are off (auto pong/close disabled), so this is never called.
            let mut no_send = |_f: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
            while let Ok(f) = rd.read_frame(&mut no_send).await {
                match f.opcode {
                    OpCode::Text
                        if classify(&f.payload) == Inbound::EioPing && tx.send(()).is_err() =>
                    {
                        break;
                    }
                    OpCode::Close => break,
                    _ => {}
                }
            }
        });
        (
            SioWriter {
                ws: wr,
                nsp,
                out: Vec::with_capacity(256),
            },
            rx,
        )
    }
}

impl SioWriter {
    /// Answer an Engine.IO ping.
    pub async fn pong(&mut self) -> Result<()> {
        let mut pong = *b"3";
        self.ws
            .write_frame(Frame::text(Payload::BorrowedMut(&mut pong)))
            .await?;
        Ok(())
    }

    /// Send `42[/nsp,]` followed by the JSON argument array written by `body`.
    pub async fn emit_with(&mut self, body: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        self.out.clear();
        self.out.extend_from_slice(b"42");
        if self.nsp != "/" {
            self.out.extend_from_slice(self.nsp.as_bytes());
            self.out.push(b',');
        }
        body(&mut self.out);
        self.ws
            .write_frame(Frame::text(Payload::BorrowedMut(&mut self.out[..])))
            .await?;
        Ok(())
    }
}
