//! The one error type of sio-wire: every decoder returns it instead of panicking, so a
//! malformed message from Redis can be counted and dropped by the caller.

use thiserror::Error;

/// Why a message could not be decoded (or, rarely, encoded).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum WireError {
    /// The msgpack input ended before the value it announced was complete.
    #[error("msgpack: unexpected end of input at byte {0}")]
    UnexpectedEof(usize),
    /// A msgpack marker byte that no encoder produces (0xc1).
    #[error("msgpack: invalid marker 0x{marker:02x} at byte {offset}")]
    InvalidMarker { marker: u8, offset: usize },
    /// Bytes were left after the top-level msgpack value.
    #[error("msgpack: {0} trailing bytes")]
    TrailingBytes(usize),
    /// Arrays/maps nested deeper than [`crate::msgpack::MAX_DEPTH`].
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    /// The JSON text could not be parsed.
    #[error("json: {0}")]
    Json(String),
    /// The message parsed but does not have the expected shape.
    #[error("unexpected message shape: {0}")]
    Shape(String),
    /// A request or response carried a `type` this crate does not know.
    #[error("unknown message type {0}")]
    UnknownType(i64),
    /// A binary placeholder pointed at an attachment that does not exist.
    #[error("binary placeholder {num} out of range ({count} attachments)")]
    BadPlaceholder { num: i64, count: usize },
    /// Event data holding an object with a `_placeholder` key that is not one of the packet's
    /// own attachments. Every Socket.IO parser (JS `reconstructPacket`, python-socketio,
    /// socketioxide) reads such an object as an attachment reference, so relaying it would
    /// hand receivers a malformed packet or another attachment; see
    /// [`crate::event_data::check_no_placeholders`].
    #[error(
        "data holds an object with a `_placeholder` key (the Socket.IO binary attachment marker), which receivers would misread; send binary as binary"
    )]
    PlaceholderInData,
    /// A map key that cannot be written as a JSON object key.
    #[error("map key is not a string or number")]
    NonStringKey,
    /// A python-socketio message in the legacy pickle format: refused, never unpickled.
    #[error("python pickle payload refused (python-socketio < 5.14 format)")]
    Pickle,
    /// Base64 text (python-socketio binary attachments) that does not decode.
    #[error("invalid base64 attachment")]
    Base64,
}

impl WireError {
    pub(crate) fn shape(msg: impl Into<String>) -> Self {
        WireError::Shape(msg.into())
    }
}

impl From<serde_json::Error> for WireError {
    fn from(e: serde_json::Error) -> Self {
        WireError::Json(e.to_string())
    }
}

/// Result alias used across the crate.
pub type Result<T, E = WireError> = std::result::Result<T, E>;
