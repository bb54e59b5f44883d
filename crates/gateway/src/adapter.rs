//! The plug point for socketioxide adapters.
//!
//! The whole server (`server::serve`) is generic over the adapter type `A`. An adapter usable
//! by the gateway implements [`GatewayAdapter`]: socketioxide's `Adapter`, `DefinedAdapter`
//! (so static namespaces can be created with `SocketIo::ns`), plus one hook to wait for a
//! namespace's adapter initialisation (`SocketIo::ns` returns the adapter's `InitRes`, e.g. a
//! future that subscribes to Redis). The in-memory `LocalAdapter` needs nothing.
//!
//! The two adapters in use: `local_adapter::WatchedLocalAdapter` (a single node: socketioxide's
//! `LocalAdapter` with a room watch) and the Redis adapter, whose
//! `GatewayAdapter` impl is in `cluster` (`cluster::ClusterAdapter`: the hook awaits the
//! namespace's Redis subscriptions). `lib::run` picks one from the configuration and calls
//! `server::serve::<A>(config, adapter_state, ready_checks, cluster)`.
use std::future::Future;

use std::sync::Arc;

use sio_redis_adapter::RoomWatch;
use socketioxide::adapter::Adapter;
use socketioxide_core::adapter::DefinedAdapter;

use crate::local_adapter::{LocalState, WatchedLocalAdapter};

pub trait GatewayAdapter: Adapter + DefinedAdapter {
    /// Wait until the adapter of a static namespace is ready (subscribed, ...).
    fn init_namespace(res: Self::InitRes) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Tell `watch` of the joins and leaves broadcast operators apply to this node's sockets
    /// (wherever the operator ran); see `sio_redis_adapter::RoomWatch`.
    fn set_room_watch(state: &Self::State, watch: Arc<dyn RoomWatch>);
}

impl GatewayAdapter for WatchedLocalAdapter {
    async fn init_namespace(_res: ()) -> anyhow::Result<()> {
        Ok(())
    }

    fn set_room_watch(state: &LocalState, watch: Arc<dyn RoomWatch>) {
        state.set_room_watch(watch);
    }
}
