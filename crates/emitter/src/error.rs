//! Errors of the emitter: a publish that did not reach Redis is reported, never swallowed.

use thiserror::Error;

/// Why an emit/join/leave/disconnect/serverSideEmit was not published.
#[derive(Debug, Error)]
pub enum EmitError {
    /// Socket.IO reserves these event names for its own lifecycle (same list as the Node emitter).
    #[error("\"{0}\" is a reserved event name")]
    ReservedEvent(String),
    /// The message could not be encoded (e.g. a map key that is not a string).
    #[error("cannot encode message: {0}")]
    Encode(#[from] sio_wire::WireError),
    /// The operation has no message in the chosen protocol.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// A broadcast to several rooms of which this one keeps a history
    /// ([`crate::EmitterOptions::history`]): each socket gets a broadcast once, so it could
    /// carry only one room's offset. Emit to the history room alone (as the gateway's HTTP API
    /// requires).
    #[error("room `{0}` keeps a history: emit to it alone, not with other rooms")]
    HistoryRoomWithOthers(String),
    /// A history room's message was asked for without its offset (`emit_message`): it is only
    /// built once appended (`emit`, or `emit_message_appended`).
    #[error("room `{0}` keeps a history: its message needs the offset the append gives")]
    HistoryNeedsAppend(String),
    /// `emit_message_appended` for a broadcast that goes to no history room.
    #[error("not a broadcast into a history room")]
    NotAHistoryRoom,
    /// Appending to the room's history failed (Redis refused or could not be reached):
    /// nothing was published.
    #[error("history append failed, not published: {0}")]
    HistoryAppend(fred::error::Error),
    /// Redis refused or could not be reached.
    #[error("redis publish failed: {0}")]
    Publish(#[from] fred::error::Error),
}
