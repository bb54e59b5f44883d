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
    /// Redis refused or could not be reached.
    #[error("redis publish failed: {0}")]
    Publish(#[from] fred::error::Error),
}
