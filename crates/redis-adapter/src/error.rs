//! The adapter's error type, shared by every layer (drivers included) and public as
//! [`crate::Error`].

use socketioxide_core::adapter::errors::AdapterError;

/// Errors of the adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Redis command failed.
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    /// Redis is disconnected; the operation was refused at once instead of waiting.
    #[error("redis is down")]
    RedisDown,
    /// A message could not be encoded.
    #[error("encoding: {0}")]
    Encode(#[from] sio_wire::WireError),
    /// The packet cannot be carried by the Node protocol.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// Sharded pub/sub was asked of a server without it.
    #[error(
        "sharded pub/sub (SSUBSCRIBE/SPUBLISH) needs Redis >= 7; the server is Redis {0}: use --redis-pubsub classic or upgrade Redis"
    )]
    RedisTooOld(String),
    /// No namespace of that name uses this adapter.
    #[error("unknown namespace {0}")]
    UnknownNamespace(String),
}

impl From<Error> for AdapterError {
    fn from(e: Error) -> Self {
        AdapterError::from(Box::new(e) as Box<dyn std::error::Error + Send>)
    }
}
