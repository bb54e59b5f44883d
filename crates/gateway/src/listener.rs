//! The TCP listener, with a registry of live connections that can be cut one by one.
//!
//! socketioxide offers no public way to close a single client at the transport level (its
//! `disconnect()` sends a Socket.IO DISCONNECT, which clients treat as final: "io server
//! disconnect", no reconnection). A drain must instead look like a lost connection so that
//! standard clients reconnect elsewhere. For websocket clients that means ending the TCP
//! connection carrying the websocket; this module makes that possible.
//!
//! Each accepted stream is registered with a `dup` of its socket; `kill(id)` calls
//! `shutdown(2)` on that duplicate, which ends the connection for both descriptors (the client
//! sees a close without a close frame and reports "transport close"). Cost: one extra file
//! descriptor per connection. The connection id reaches request handlers (and socketioxide's
//! handshake request parts) through axum's `ConnectInfo<ConnInfo>`.
use std::{
    collections::HashMap,
    io,
    net::{Shutdown, SocketAddr},
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
    conns: Mutex<HashMap<u64, std::net::TcpStream>>,
}

impl ConnRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, std::net::TcpStream>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// End connection `id` (both directions). Returns false if it is already gone.
    pub fn kill(&self, id: u64) -> bool {
        match self.lock().remove(&id) {
            Some(s) => {
                let _ = s.shutdown(Shutdown::Both);
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
        for (_, s) in self.lock().drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// What a request knows about the TCP connection it arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Registry id; `None` if the socket could not be duplicated (then it cannot be cut alone).
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

    fn track(&self, stream: TcpStream) -> io::Result<(TcpStream, Option<u64>)> {
        let std = stream.into_std()?;
        let dup = match std.try_clone() {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, "cannot duplicate socket; this connection cannot be drained individually");
                None
            }
        };
        let stream = TcpStream::from_std(std)?;
        let id = dup.map(|d| {
            let id = self.registry.next.fetch_add(1, Ordering::Relaxed);
            self.registry.lock().insert(id, d);
            id
        });
        Ok((stream, id))
    }
}

/// The stream handed to hyper; deregisters itself when hyper drops it.
pub struct TrackedStream {
    inner: TcpStream,
    id: Option<u64>,
    registry: Arc<ConnRegistry>,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.registry.lock().remove(&id);
        }
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
                    match self.track(stream) {
                        Ok((inner, id)) => {
                            let io = TrackedStream {
                                inner,
                                id,
                                registry: self.registry.clone(),
                            };
                            return (io, ConnInfo { id, remote });
                        }
                        Err(e) => tracing::warn!(error = %e, "dropping accepted connection"),
                    }
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
