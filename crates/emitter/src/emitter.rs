//! The emitter API, shaped like `@socket.io/redis-emitter`: an [`Emitter`] per namespace and
//! an immutable [`BroadcastOperator`] built with `to`/`except`/`volatile`/`compress`.
//!
//! Every operation first builds an [`Outgoing`] message (channel + bytes) with sio-wire — pure
//! and inspectable, which is how the tests compare it byte for byte with the Node emitter —
//! then publishes it; Redis errors are returned to the caller.
//!
//! With [`EmitterOptions::sharded`] the same operations are socket.io-adapter ClusterAdapter
//! messages (`{type, data, uid:"emitter", nsp}`, what Node's `createShardedAdapter` nodes read)
//! published with `SPUBLISH`: broadcasts on the room's own channel when the subscription mode
//! gives it one, everything else on `key#nsp#`. The Node `@socket.io/redis-emitter` has no
//! such mode.
//!
//! History rooms ([`EmitterOptions::history`], the gateways' `--history` rules): a broadcast
//! into one is first appended to the room's Redis Stream, as a gateway appends it (the format
//! is sio-wire's `history`), then published with the mark `{room, offset, epoch}` as its last
//! argument, so every node delivers it with its offset and a recovering client gets it in its
//! replay. Such a broadcast names that one room only ([`EmitError::HistoryRoomWithOthers`]).

use std::sync::Arc;

use bytes::Bytes;
use fred::clients::Client;
use fred::interfaces::LuaInterface;
use fred::interfaces::PubsubInterface;
use sio_wire::{
    BroadcastFlags, BroadcastMessage, BroadcastOptions, ClusterBody, ClusterMessage, EMITTER_UID,
    Flag, NamespaceChannels, OptsLayout, Packet, RESERVED_EVENTS, Request, SubscriptionMode, Value,
    history::{Epoch, HistorySpec, Mark, StreamId, stream},
    request::RoomsOpts,
    sharded_publish_channel,
};

use crate::args::Arg;
use crate::error::EmitError;

/// Options of an [`Emitter`].
#[derive(Debug, Clone)]
pub struct EmitterOptions {
    /// Channel key shared with the adapters (default `socket.io`).
    pub key: String,
    /// `None`: the classic protocol (`PUBLISH`). `Some(mode)`: the sharded protocol
    /// (`SPUBLISH`), `mode` being the adapters' subscription mode (it decides which broadcasts
    /// go on a room's own channel).
    pub sharded: Option<SubscriptionMode>,
    /// The gateways' room history rules (`--history GLOB=SIZE[/TTL]`, first match wins): give
    /// the same ones. A broadcast into a matching room is appended to its history before it is
    /// published, and carries its offset. Empty (the default): nothing is appended, and such a
    /// broadcast reaches a history room without an offset (counted by the gateways in
    /// `sio_gateway_history_bypassed_total`).
    pub history: Vec<HistorySpec>,
}

impl Default for EmitterOptions {
    fn default() -> Self {
        Self {
            key: sio_wire::DEFAULT_KEY.to_owned(),
            sharded: None,
            history: Vec::new(),
        }
    }
}

/// A message ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Redis channel.
    pub channel: String,
    /// Payload bytes (msgpack for broadcasts, JSON for requests).
    pub payload: Vec<u8>,
}

/// Publishes into one namespace of a Socket.IO Redis cluster. Cheap to clone.
#[derive(Clone)]
pub struct Emitter {
    client: Option<Client>,
    opts: Arc<EmitterOptions>,
    channels: Arc<NamespaceChannels>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("key", &self.opts.key)
            .field("nsp", &self.channels.nsp())
            .finish()
    }
}

impl Emitter {
    /// An emitter for namespace `/` publishing through `client` (an initialised fred client).
    pub fn new(client: Client, opts: EmitterOptions) -> Self {
        Self::build(Some(client), opts)
    }

    /// An emitter that only builds messages ([`BroadcastOperator::emit_message`] and friends);
    /// publishing through it fails. For inspecting or relaying the bytes yourself.
    pub fn detached(opts: EmitterOptions) -> Self {
        Self::build(None, opts)
    }

    fn build(client: Option<Client>, opts: EmitterOptions) -> Self {
        let channels = Arc::new(NamespaceChannels::new(&opts.key, "/"));
        Self {
            client,
            opts: Arc::new(opts),
            channels,
        }
    }

    /// The same emitter for another namespace (a missing leading `/` is added).
    pub fn of(&self, nsp: &str) -> Emitter {
        let nsp = if nsp.starts_with('/') {
            nsp.to_owned()
        } else {
            format!("/{nsp}")
        };
        Emitter {
            client: self.client.clone(),
            opts: self.opts.clone(),
            channels: Arc::new(NamespaceChannels::new(&self.opts.key, &nsp)),
        }
    }

    /// The namespace this emitter targets.
    pub fn nsp(&self) -> &str {
        self.channels.nsp()
    }

    fn operator(&self) -> BroadcastOperator {
        BroadcastOperator {
            emitter: self.clone(),
            rooms: Vec::new(),
            except: Vec::new(),
            flags: Default::default(),
        }
    }

    /// Target a room (or several): see [`BroadcastOperator::to`].
    pub fn to<R: IntoRooms>(&self, rooms: R) -> BroadcastOperator {
        self.operator().to(rooms)
    }

    /// Alias of [`Emitter::to`].
    pub fn in_<R: IntoRooms>(&self, rooms: R) -> BroadcastOperator {
        self.to(rooms)
    }

    /// Exclude the sockets in these rooms.
    pub fn except<R: IntoRooms>(&self, rooms: R) -> BroadcastOperator {
        self.operator().except(rooms)
    }

    /// Volatile: clients not ready to receive drop the event.
    pub fn volatile(&self) -> BroadcastOperator {
        self.operator().volatile()
    }

    /// Set the compress flag.
    pub fn compress(&self, compress: bool) -> BroadcastOperator {
        self.operator().compress(compress)
    }

    /// The broadcast message of [`Emitter::emit`], without publishing it.
    pub fn emit_message<A: Into<Arg>>(
        &self,
        event: &str,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Outgoing, EmitError> {
        self.operator().emit_message(event, args)
    }

    /// Emit `event` to every client of the namespace.
    pub async fn emit<A: Into<Arg>>(
        &self,
        event: &str,
        args: impl IntoIterator<Item = A>,
    ) -> Result<(), EmitError> {
        self.operator().emit(event, args).await
    }

    /// Make every socket of the namespace join `rooms`.
    pub async fn sockets_join<R: IntoRooms>(&self, rooms: R) -> Result<(), EmitError> {
        self.operator().sockets_join(rooms).await
    }

    /// Make every socket of the namespace leave `rooms`.
    pub async fn sockets_leave<R: IntoRooms>(&self, rooms: R) -> Result<(), EmitError> {
        self.operator().sockets_leave(rooms).await
    }

    /// Disconnect every socket of the namespace (`close` also closes the underlying connection).
    pub async fn disconnect_sockets(&self, close: bool) -> Result<(), EmitError> {
        self.operator().disconnect_sockets(close).await
    }

    /// The serverSideEmit message: `{uid:"emitter", type:6, data:[event, ...args]}` (no acks).
    pub fn server_side_emit_message<A: Into<Arg>>(
        &self,
        event: &str,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Outgoing, EmitError> {
        let data = event_data(event, args);
        if self.opts.sharded.is_some() {
            return self.cluster_message(ClusterBody::ServerSideEmit {
                request_id: None,
                packet: data,
            });
        }
        let req = Request::ServerSideEmit {
            uid: Some(EMITTER_UID.to_owned()),
            request_id: None,
            data,
        };
        Ok(Outgoing {
            channel: self.channels.request().to_owned(),
            payload: req.encode()?,
        })
    }

    /// Send `event` to the other servers' `serverSideEmit` handlers (not to clients).
    pub async fn server_side_emit<A: Into<Arg>>(
        &self,
        event: &str,
        args: impl IntoIterator<Item = A>,
    ) -> Result<(), EmitError> {
        let msg = self.server_side_emit_message(event, args)?;
        self.publish(msg).await
    }

    /// A sharded-protocol message from the emitter, on the channel it belongs to.
    fn cluster_message(&self, body: ClusterBody) -> Result<Outgoing, EmitError> {
        let msg = ClusterMessage {
            uid: EMITTER_UID.to_owned(),
            nsp: self.channels.nsp().to_owned(),
            body,
        };
        let mode = self.opts.sharded.unwrap_or_default();
        Ok(Outgoing {
            channel: sharded_publish_channel(&self.channels, &msg, mode),
            payload: msg.encode()?,
        })
    }

    fn client(&self) -> Result<&Client, fred::error::Error> {
        self.client.as_ref().ok_or_else(|| {
            fred::error::Error::new(
                fred::error::ErrorKind::Config,
                "detached emitter has no Redis client",
            )
        })
    }

    /// The history rule `room` falls under (the first that matches), if any.
    pub fn history_spec(&self, room: &str) -> Option<&HistorySpec> {
        self.opts.history.iter().find(|s| s.matches(room))
    }

    /// Append a message to `room`'s history (its Redis Stream, as a gateway appends it);
    /// returns its offset and the history's epoch.
    async fn append(
        &self,
        room: &str,
        spec: &HistorySpec,
        event: &str,
        args: &[Value],
    ) -> Result<(StreamId, Epoch), EmitError> {
        let json = stream::args_json(args)?;
        let argv = stream::append_args(spec, &Epoch::from_bits(rand::random()), event, &json);
        let keys = stream::keys(self.channels.nsp(), room).to_vec();
        let client = self.client().map_err(EmitError::HistoryAppend)?;
        let reply: Vec<String> = client
            .eval(stream::APPEND, keys, argv)
            .await
            .map_err(EmitError::HistoryAppend)?;
        Ok(stream::append_reply(&reply)?)
    }

    /// Publish a prepared message (`SPUBLISH` in sharded mode); returns the number of
    /// subscribers that got it.
    pub async fn publish_counted(&self, msg: Outgoing) -> Result<i64, EmitError> {
        let client = self.client()?;
        let payload = Bytes::from(msg.payload);
        Ok(if self.opts.sharded.is_some() {
            client.spublish::<i64, _, _>(msg.channel, payload).await?
        } else {
            client.publish::<i64, _, _>(msg.channel, payload).await?
        })
    }

    /// Publish a prepared message.
    pub async fn publish(&self, msg: Outgoing) -> Result<(), EmitError> {
        self.publish_counted(msg).await.map(|_| ())
    }
}

fn event_data<A: Into<Arg>>(event: &str, args: impl IntoIterator<Item = A>) -> Vec<Value> {
    let args = args.into_iter();
    let mut data = Vec::with_capacity(args.size_hint().0 + 1);
    data.push(Value::from(event));
    data.extend(args.map(|a| a.into().into_value()));
    data
}

fn check_event(event: &str) -> Result<(), EmitError> {
    if RESERVED_EVENTS.contains(&event) {
        return Err(EmitError::ReservedEvent(event.to_owned()));
    }
    Ok(())
}

/// The trailing argument of a history room's message (sio-wire's shape, as gateways send it).
fn mark(room: &str, offset: StreamId, epoch: &Epoch) -> Value {
    Mark {
        room,
        offset,
        epoch: epoch.as_str(),
    }
    .to_value()
}

/// A room name or a list of them (like the Node emitter's `string | string[]`).
pub trait IntoRooms {
    /// The room names.
    fn into_rooms(self) -> Vec<String>;
}

impl IntoRooms for &str {
    fn into_rooms(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}
impl IntoRooms for String {
    fn into_rooms(self) -> Vec<String> {
        vec![self]
    }
}
impl IntoRooms for &String {
    fn into_rooms(self) -> Vec<String> {
        vec![self.clone()]
    }
}
impl<S: Into<String>> IntoRooms for Vec<S> {
    fn into_rooms(self) -> Vec<String> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<S: Into<String> + Clone, const N: usize> IntoRooms for [S; N] {
    fn into_rooms(self) -> Vec<String> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<S: Into<String> + Clone> IntoRooms for &[S] {
    fn into_rooms(self) -> Vec<String> {
        self.iter().cloned().map(Into::into).collect()
    }
}

/// Adds to an ordered set (JS `Set` semantics: first insertion wins the position).
fn add_unique(set: &mut Vec<String>, items: Vec<String>) {
    for r in items {
        if !set.contains(&r) {
            set.push(r);
        }
    }
}

/// Target selection and flags for one operation. Builder methods return new values, so an
/// operator can be reused like the Node one.
#[derive(Debug, Clone)]
pub struct BroadcastOperator {
    emitter: Emitter,
    rooms: Vec<String>,
    except: Vec<String>,
    flags: BroadcastFlags,
}

impl BroadcastOperator {
    /// Also target these rooms (union).
    pub fn to<R: IntoRooms>(mut self, rooms: R) -> Self {
        add_unique(&mut self.rooms, rooms.into_rooms());
        self
    }

    /// Alias of [`BroadcastOperator::to`].
    pub fn in_<R: IntoRooms>(self, rooms: R) -> Self {
        self.to(rooms)
    }

    /// Exclude the sockets in these rooms.
    pub fn except<R: IntoRooms>(mut self, rooms: R) -> Self {
        add_unique(&mut self.except, rooms.into_rooms());
        self
    }

    /// Volatile flag.
    pub fn volatile(mut self) -> Self {
        self.flags.set(Flag::Volatile, 1);
        self
    }

    /// Compress flag.
    pub fn compress(mut self, compress: bool) -> Self {
        self.flags.set(Flag::Compress, u64::from(compress));
        self
    }

    fn opts(&self) -> RoomsOpts {
        RoomsOpts {
            rooms: self.rooms.clone(),
            except: self.except.clone(),
        }
    }

    /// The history room this broadcast goes to, with its rule: `None` when no targeted room
    /// keeps a history; an error when one does and other rooms are targeted too (each socket
    /// gets a broadcast once, so it could carry only one room's offset).
    pub fn history_room(&self) -> Result<Option<(&str, &HistorySpec)>, EmitError> {
        if self.emitter.opts.history.is_empty() {
            return Ok(None);
        }
        match self.rooms.as_slice() {
            [room] => Ok(self.emitter.history_spec(room).map(|s| (room.as_str(), s))),
            rooms => match rooms
                .iter()
                .find(|r| self.emitter.history_spec(r).is_some())
            {
                Some(r) => Err(EmitError::HistoryRoomWithOthers(r.clone())),
                None => Ok(None),
            },
        }
    }

    /// The broadcast message for `emit(event, args)`: msgpack
    /// `["emitter", {type:2, data:[event, ...args], nsp}, {rooms, flags, except}]` on `key#nsp#`,
    /// or on `key#nsp#room#` when exactly one room is targeted.
    ///
    /// Into a history room this fails ([`EmitError::HistoryNeedsAppend`]): its message needs
    /// the offset the append gives ([`BroadcastOperator::emit_message_appended`]; `emit` does
    /// both).
    pub fn emit_message<A: Into<Arg>>(
        &self,
        event: &str,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Outgoing, EmitError> {
        check_event(event)?;
        if let Some((room, _)) = self.history_room()? {
            return Err(EmitError::HistoryNeedsAppend(room.to_owned()));
        }
        self.broadcast(event_data(event, args))
    }

    /// The broadcast message of a history room's `emit(event, args)`, once appended at
    /// `offset` in `epoch`: the arguments are followed by the mark `{room, offset, epoch}`.
    pub fn emit_message_appended<A: Into<Arg>>(
        &self,
        event: &str,
        args: impl IntoIterator<Item = A>,
        offset: StreamId,
        epoch: &Epoch,
    ) -> Result<Outgoing, EmitError> {
        check_event(event)?;
        let Some((room, _)) = self.history_room()? else {
            return Err(EmitError::NotAHistoryRoom);
        };
        let mut data = event_data(event, args);
        data.push(mark(room, offset, epoch));
        self.broadcast(data)
    }

    /// The broadcast of `data` (`[event, ...args]`) in the emitter's protocol.
    fn broadcast(&self, data: Vec<Value>) -> Result<Outgoing, EmitError> {
        let channels = &self.emitter.channels;
        let packet = Packet::with_data(channels.nsp(), Value::Array(data));
        let opts = BroadcastOptions {
            rooms: self.rooms.clone(),
            except: self.except.clone(),
            flags: self.flags.clone(),
            layout: OptsLayout::Emitter,
        };
        if self.emitter.opts.sharded.is_some() {
            return self.emitter.cluster_message(ClusterBody::Broadcast {
                packet,
                request_id: None,
                opts,
            });
        }
        let msg = BroadcastMessage {
            uid: EMITTER_UID.to_owned(),
            packet,
            opts,
        };
        Ok(Outgoing {
            channel: channels.broadcast_channel(&self.rooms),
            payload: msg.encode(),
        })
    }

    /// Emit `event` with `args` to the selected sockets. Into a history room, the message is
    /// appended to the room's history first and published with its offset; if the append
    /// fails, nothing is published.
    pub async fn emit<A: Into<Arg>>(
        &self,
        event: &str,
        args: impl IntoIterator<Item = A>,
    ) -> Result<(), EmitError> {
        check_event(event)?;
        let msg = match self.history_room()? {
            None => self.broadcast(event_data(event, args))?,
            Some((room, spec)) => {
                let mut data = event_data(event, args);
                let (offset, epoch) = self.emitter.append(room, spec, event, &data[1..]).await?;
                data.push(mark(room, offset, &epoch));
                self.broadcast(data)?
            }
        };
        self.emitter.publish(msg).await
    }

    fn request(&self, req: Request) -> Result<Outgoing, EmitError> {
        if self.emitter.opts.sharded.is_some() {
            let opts = BroadcastOptions {
                rooms: self.rooms.clone(),
                except: self.except.clone(),
                ..BroadcastOptions::default()
            };
            let body = match req {
                Request::SocketsJoin { rooms, .. } => ClusterBody::SocketsJoin { opts, rooms },
                Request::SocketsLeave { rooms, .. } => ClusterBody::SocketsLeave { opts, rooms },
                Request::DisconnectSockets { close, .. } => {
                    ClusterBody::DisconnectSockets { opts, close }
                }
                _ => return Err(EmitError::Unsupported("request in sharded mode")),
            };
            return self.emitter.cluster_message(body);
        }
        Ok(Outgoing {
            channel: self.emitter.channels.request().to_owned(),
            payload: req.encode()?,
        })
    }

    /// `{type:2, opts:{rooms, except}, rooms}` on the request channel.
    pub fn sockets_join_message<R: IntoRooms>(&self, rooms: R) -> Result<Outgoing, EmitError> {
        self.request(Request::SocketsJoin {
            uid: None,
            opts: self.opts(),
            rooms: rooms.into_rooms(),
        })
    }

    /// `{type:3, opts:{rooms, except}, rooms}` on the request channel.
    pub fn sockets_leave_message<R: IntoRooms>(&self, rooms: R) -> Result<Outgoing, EmitError> {
        self.request(Request::SocketsLeave {
            uid: None,
            opts: self.opts(),
            rooms: rooms.into_rooms(),
        })
    }

    /// `{type:4, opts:{rooms, except}, close}` on the request channel.
    pub fn disconnect_sockets_message(&self, close: bool) -> Result<Outgoing, EmitError> {
        self.request(Request::DisconnectSockets {
            uid: None,
            opts: self.opts(),
            close,
        })
    }

    /// Make the selected sockets join `rooms` (applied by every node).
    pub async fn sockets_join<R: IntoRooms>(&self, rooms: R) -> Result<(), EmitError> {
        let msg = self.sockets_join_message(rooms)?;
        self.emitter.publish(msg).await
    }

    /// Make the selected sockets leave `rooms`.
    pub async fn sockets_leave<R: IntoRooms>(&self, rooms: R) -> Result<(), EmitError> {
        let msg = self.sockets_leave_message(rooms)?;
        self.emitter.publish(msg).await
    }

    /// Disconnect the selected sockets.
    pub async fn disconnect_sockets(&self, close: bool) -> Result<(), EmitError> {
        let msg = self.disconnect_sockets_message(close)?;
        self.emitter.publish(msg).await
    }
}
