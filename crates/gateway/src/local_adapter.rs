//! The single-node adapter: socketioxide's in-memory `LocalAdapter`, plus the room watch the
//! Redis adapter has (see `sio_redis_adapter::RoomWatch`): joins and leaves applied by a
//! broadcast operator (`POST /api/v1/sockets/join`, the Admin UI's `join`/`leave`, a
//! python-socketio `close_room`) are told to the watch, so the Admin UI sees them live.
//!
//! Everything else is `LocalAdapter`'s: the trait's default methods on the local state. The
//! watch costs nothing until set (only with `--admin-ui`), and then only on an operator join
//! or leave, never on a broadcast.
use std::{
    convert::Infallible,
    future::{self, Future},
    sync::{Arc, OnceLock},
    time::Duration,
};

use sio_redis_adapter::RoomWatch;
use socketioxide::adapter::Emitter;
use socketioxide_core::{
    adapter::{
        BroadcastOptions, CoreAdapter, CoreLocalAdapter, DefinedAdapter, RoomParam, SocketEmitter,
    },
    packet::Packet,
};

/// The adapters' shared state: the room watch, set once after the server is built.
#[derive(Clone, Default)]
pub struct LocalState(Arc<OnceLock<Arc<dyn RoomWatch>>>);

impl LocalState {
    /// Install the watch; only the first call takes effect.
    pub fn set_room_watch(&self, watch: Arc<dyn RoomWatch>) -> bool {
        self.0.set(watch).is_ok()
    }
}

/// One namespace's in-memory adapter.
pub struct WatchedLocalAdapter {
    local: CoreLocalAdapter<Emitter>,
    watch: LocalState,
}

impl WatchedLocalAdapter {
    fn watch(&self) -> Option<&dyn RoomWatch> {
        self.watch.0.get().map(|w| &**w)
    }
}

impl CoreAdapter<Emitter> for WatchedLocalAdapter {
    type Error = Infallible;
    type State = LocalState;
    type AckStream = <Emitter as SocketEmitter>::AckStream;
    type InitRes = ();

    fn new(state: &LocalState, local: CoreLocalAdapter<Emitter>) -> Self {
        Self {
            local,
            watch: state.clone(),
        }
    }

    fn init(self: Arc<Self>, on_success: impl FnOnce() + Send + 'static) {
        on_success();
    }

    async fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Option<Duration>,
    ) -> Result<Self::AckStream, Infallible> {
        Ok(self.local.broadcast_with_ack(packet, opts, timeout).0)
    }

    fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> impl Future<Output = Result<(), Infallible>> + Send {
        let rooms = rooms.into_room_iter().collect();
        sio_redis_adapter::apply_add(&self.local, self.watch(), opts, rooms);
        future::ready(Ok(()))
    }

    fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> impl Future<Output = Result<(), Infallible>> + Send {
        let rooms = rooms.into_room_iter().collect();
        sio_redis_adapter::apply_del(&self.local, self.watch(), opts, rooms);
        future::ready(Ok(()))
    }

    fn get_local(&self) -> &CoreLocalAdapter<Emitter> {
        &self.local
    }
}

impl DefinedAdapter for WatchedLocalAdapter {}
