//! Room history (`--history GLOB=SIZE[/TTL]`) as the gateway and the emitter both write it, so
//! that a broadcast `sio-emitter` / `sio-emit` appends is the same as one a gateway appends:
//!
//! - [`spec`]: the rules (`GLOB=SIZE[/TTL]`): parsing, checking, which room they match;
//! - [`stream`]: cluster mode's Redis format: the stream and meta keys of a room, the Lua
//!   scripts that append to and read from them, their arguments and answers;
//! - [`mark`]: the trailing argument `{"room", "offset", "epoch"}` every message of a history
//!   room is delivered with, and reading its offset back from a broadcast;
//! - [`stream_id`], [`epoch`]: the offsets (Redis Stream ids) and the epoch of a history.
pub mod epoch;
pub mod mark;
pub mod spec;
pub mod stream;
pub mod stream_id;

pub use epoch::Epoch;
pub use mark::{Mark, mark_offset};
pub use spec::HistorySpec;
pub use stream_id::StreamId;
