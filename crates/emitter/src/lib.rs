//! sio-emitter: publish Socket.IO events into a cluster of sio-gateway nodes and/or Node.js
//! socket.io servers using `@socket.io/redis-adapter`, from any Rust backend — the Rust
//! counterpart of `@socket.io/redis-emitter`, producing byte-identical messages.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use fred::prelude::*;
//! use sio_emitter::{Arg, Emitter, EmitterOptions};
//! let client = Builder::from_config(Config::from_url("redis://127.0.0.1:6379")?).build()?;
//! client.init().await?;
//! let emitter = Emitter::new(client, EmitterOptions::default());
//! emitter.to("room1").except("muted").emit("news", [Arg::from(serde_json::json!({"n": 1}))]).await?;
//! emitter.of("/admin").sockets_join("audit").await?;
//! # Ok(()) }
//! ```
//!
//! All wire formats come from `sio-wire`; this crate only chooses what to send and publishes it.
//!
//! Given the gateways' room history rules ([`EmitterOptions::history`], the same as their
//! `--history`), a broadcast into a history room is appended to the room's Redis Stream first,
//! as a gateway appends it, and carries its offset: recoverable like a node's broadcast.

mod args;
mod emitter;
mod error;

pub use args::Arg;
pub use emitter::{BroadcastOperator, Emitter, EmitterOptions, IntoRooms, Outgoing};
pub use error::EmitError;
/// Event names the emitter refuses (as the Node emitter does); defined once in `sio-wire`.
pub use sio_wire::RESERVED_EVENTS;
/// A room history rule (`GLOB=SIZE[/TTL]`), parsed as the gateway parses `--history`.
pub use sio_wire::history::HistorySpec;
