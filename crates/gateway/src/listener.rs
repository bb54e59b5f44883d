//! The TCP listener, with a registry of live connections that can be cut one by one.
//!
//! socketioxide offers no public way to close a single client at the transport level (its
//! `disconnect()` sends a Socket.IO DISCONNECT, which clients treat as final: "io server
//! disconnect", no reconnection). A drain must instead look like a lost connection so that
//! standard clients reconnect elsewhere. For websocket clients that means ending the TCP
//! connection carrying the websocket; this module makes that possible.
//!
//! Each accepted stream is registered with its raw descriptor; `kill(id)` calls `shutdown(2)` on
//! it, which ends the connection at once whatever task owns the stream (the client sees a close
//! without a close frame and reports "transport close"; a long-poll in flight fails at once).
//! No descriptor is duplicated: at the per-process limit (20,000 here) a `dup` per connection
//! would halve the connections a node can hold. The connection id reaches request handlers
//! (and socketioxide's handshake request parts) through axum's `ConnectInfo<ConnInfo>`.
use std::{
    collections::HashMap,
    io,
    net::{Shutdown, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, RawFd},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{extract::connect_info::Connected, serve::IncomingStream};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};

/// Live connections of one listener, by id.
#[derive(Debug, Default)]
pub struct ConnRegistry {
    next: AtomicU64,
    // Locked once per accepted and per closed TCP connection, never per message.
    conns: Mutex<HashMap<u64, RawFd>>,
}

/// `shutdown(2)` on a registered descriptor. Must be called with the registry locked.
fn shutdown_fd(fd: RawFd) {
    // SAFETY: the caller holds the registry lock and the entry was still registered. A
    // `TrackedStream` removes its entry under that lock in `Drop::drop`, which runs before its
    // `TcpStream` field closes the descriptor, so `fd` is open and still this connection's.
    // `ManuallyDrop`: the descriptor is borrowed, never closed here.
    let s = std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
    let _ = s.shutdown(Shutdown::Both);
}

impl ConnRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, RawFd>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// End connection `id` (both directions). Returns false if it is already gone.
    pub fn kill(&self, id: u64) -> bool {
        let mut conns = self.lock();
        match conns.remove(&id) {
            Some(fd) => {
                shutdown_fd(fd);
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// End every connection (last step of a drain).
    pub fn kill_all(&self) {
        let mut conns = self.lock();
        for (_, fd) in conns.drain() {
            shutdown_fd(fd);
        }
    }
}

/// What a request knows about the TCP connection it arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Registry id (`None` only for the listener's own address).
    pub id: Option<u64>,
    pub remote: SocketAddr,
}

/// A `TcpListener` whose connections are tracked in a [`ConnRegistry`].
pub struct TrackedListener {
    inner: TcpListener,
    registry: Arc<ConnRegistry>,
}

impl TrackedListener {
    pub fn new(inner: TcpListener, registry: Arc<ConnRegistry>) -> TrackedListener {
        TrackedListener { inner, registry }
    }

    fn track(&self, stream: &TcpStream) -> u64 {
        let id = self.registry.next.fetch_add(1, Ordering::Relaxed);
        self.registry.lock().insert(id, stream.as_raw_fd());
        id
    }
}

/// The stream handed to hyper; deregisters itself when hyper drops it.
pub struct TrackedStream {
    inner: TcpStream,
    id: u64,
    registry: Arc<ConnRegistry>,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        // Before `inner` closes the descriptor (fields drop after this): see `shutdown_fd`.
        self.registry.lock().remove(&self.id);
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl axum::serve::Listener for TrackedListener {
    type Io = TrackedStream;
    type Addr = ConnInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    let id = self.track(&stream);
                    let io = TrackedStream {
                        inner: stream,
                        id,
                        registry: self.registry.clone(),
                    };
                    return (
                        io,
                        ConnInfo {
                            id: Some(id),
                            remote,
                        },
                    );
                }
                Err(e) => {
                    // Same policy as axum's own TcpListener: resource errors (EMFILE, ...)
                    // are transient, back off briefly instead of spinning or dying.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(ConnInfo {
            id: None,
            remote: self.inner.local_addr()?,
        })
    }
}

impl Connected<IncomingStream<'_, TrackedListener>> for ConnInfo {
    fn connect_info(stream: IncomingStream<'_, TrackedListener>) -> Self {
        stream.remote_addr().clone()
    }
}
