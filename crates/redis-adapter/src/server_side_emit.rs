//! serverSideEmit as the application sees it: what another node emitted, and the handler type
//! that answers it.

use std::sync::Arc;

/// Handler for serverSideEmit requests from other nodes.
pub type ServerSideEmitHandler =
    Arc<dyn Fn(ServerSideEmit) -> Option<serde_json::Value> + Send + Sync + 'static>;

/// A serverSideEmit received from another node.
#[derive(Debug, Clone)]
pub struct ServerSideEmit {
    /// Namespace it was emitted on.
    pub nsp: String,
    /// `[event, ...args]`.
    pub data: Vec<serde_json::Value>,
    /// The sender waits for an answer; the handler's return value (or `null`) is sent back.
    pub wants_ack: bool,
}
