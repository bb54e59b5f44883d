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
//! would halve the connections a node can hold.
//!
//! Write stalls: a client that stops reading leaves the task writing to it parked on a full
//! socket forever (engineioxide's heartbeat cannot close it: its close waits behind that
//! writer). Each stream notes when a write last found the socket full and made no progress; a
//! sweeper ([`ConnRegistry::sweep`]) cuts connections stalled longer than the heartbeat
//! would allow (`--ping-interval` + `--ping-timeout`), counted in
//! `connections_closed_stalled_total`. The connection id reaches request handlers
//! (and socketioxide's handshake request parts) through axum's `ConnectInfo<ConnInfo>`.
//!
//! Connections per client IP: with `--max-conns-per-ip` ([`ConnRegistry::limit_per_ip`]), a
//! connection accepted from an IP (an IPv6 /64) that already holds that many is closed at
//! once, before hyper reads a byte, and counted in
//! `connections_refused_total{reason="ip_connections"}`. Without it one address could hold
//! connections up to the process's file limit.
use std::{
    collections::HashMap,
    io,
    net::{IpAddr, Shutdown, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, RawFd},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{extract::connect_info::Connected, serve::IncomingStream};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};

use crate::id_hash::IdMap;

/// Live connections of one listener, by id.
#[derive(Debug)]
pub struct ConnRegistry {
    next: AtomicU64,
    // Locked once per accepted and per closed TCP connection and once per stall sweep, never
    // per message.
    conns: Mutex<IdMap<u64, Conn>>,
    /// Origin of the stall clock (milliseconds since, see `Activity::stalled_since`).
    epoch: Instant,
    /// Bytes read from and written to this listener's connections (`bytes_received_total`,
    /// `bytes_sent_total`). One relaxed atomic add per read or write *call* (not per message:
    /// a call carries whatever hyper and tungstenite batched), next to a syscall that costs
    /// far more.
    bytes_in: prometheus::IntCounter,
    bytes_out: prometheus::IntCounter,
    /// `--max-conns-per-ip`, when set.
    per_ip: Option<PerIp>,
}

/// Open connections per client IP, capped.
#[derive(Debug)]
struct PerIp {
    max: u32,
    // Locked once per accepted and per closed connection (only when the cap is set).
    open: Mutex<HashMap<IpAddr, u32>>,
    refused: prometheus::IntCounter,
}

impl Default for ConnRegistry {
    fn default() -> Self {
        let unregistered =
            |name: &str| prometheus::IntCounter::new(name, name).expect("static metric definition");
        ConnRegistry::new(unregistered("bytes_in"), unregistered("bytes_out"))
    }
}

impl ConnRegistry {
    /// A registry that counts its bytes into `bytes_in` / `bytes_out`.
    pub fn new(bytes_in: prometheus::IntCounter, bytes_out: prometheus::IntCounter) -> Self {
        ConnRegistry {
            next: AtomicU64::new(0),
            conns: Mutex::default(),
            epoch: Instant::now(),
            bytes_in,
            bytes_out,
            per_ip: None,
        }
    }

    /// Cap the connections one client IP may hold open at once (0 = no cap); refusals are
    /// counted in `refused`.
    pub fn limit_per_ip(mut self, max: u32, refused: prometheus::IntCounter) -> Self {
        self.per_ip = (max > 0).then(|| PerIp {
            max,
            open: Mutex::default(),
            refused,
        });
        self
    }

    /// Take a place for a connection from `ip`: `Err` when its IP holds the most already,
    /// `Ok(Some(ip))` when counted (give it back with [`ConnRegistry::release_ip`]), `Ok(None)`
    /// when there is no cap.
    fn admit_ip(&self, ip: IpAddr) -> Result<Option<IpAddr>, ()> {
        let Some(p) = &self.per_ip else {
            return Ok(None);
        };
        let ip = client_key(ip);
        let mut open = p.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= p.max {
            p.refused.inc();
            return Err(());
        }
        *n += 1;
        Ok(Some(ip))
    }

    fn release_ip(&self, ip: IpAddr) {
        if let Some(p) = &self.per_ip {
            let mut open = p.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

#[derive(Debug)]
struct Conn {
    fd: RawFd,
    activity: Arc<Activity>,
    /// The sweep's: milliseconds since `epoch` at which it last saw `read` set (or the accept).
    quiet_since: u64,
}

/// What the stream tells the sweep, shared by the two (one allocation per connection).
#[derive(Debug, Default)]
struct Activity {
    /// Milliseconds since `epoch` (+1, so 0 means "not stalled") at which a write last found
    /// the socket full; cleared by the next write that makes progress.
    stalled_since: AtomicU64,
    /// Set by every read that brings bytes, taken by the sweep (no clock read per read).
    read: AtomicBool,
    /// Bytes written on the connection so far: what a replay measures as delivered
    /// ([`ConnRegistry::progress`]). One relaxed add per write call, next to `bytes_out`'s.
    written: AtomicU64,
}

/// The bytes written so far on one connection ([`ConnRegistry::progress`]): how far a
/// websocket session's client has taken what was queued for it (the kernel's buffers count as
/// taken: they are bounded by the kernel, not by this process).
#[derive(Debug, Clone)]
pub struct Written(Arc<Activity>);

impl Written {
    /// Bytes written on the connection since it was accepted.
    pub fn bytes(&self) -> u64 {
        self.0.written.load(Ordering::Relaxed)
    }

    /// Is this the same connection as `other`'s?
    pub fn same(&self, other: &Written) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What one [`ConnRegistry::sweep`] cut.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Writes stalled past the stall limit: the client stopped reading.
    pub stalled: usize,
    /// Nothing read past the idle limit: a connection that never sends a request, sends one
    /// byte by byte, or holds a keep-alive open with nothing to say.
    pub idle: usize,
}

/// What one client is counted as by `--max-conns-per-ip`: an IPv4 address (an IPv4-mapped
/// IPv6 one as the IPv4 it carries), or an IPv6 /64, which is what one host or home is usually
/// given: counting single IPv6 addresses would cap nothing.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
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
    fn lock(&self) -> std::sync::MutexGuard<'_, IdMap<u64, Conn>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// End connection `id` (both directions). Returns false if it is already gone.
    pub fn kill(&self, id: u64) -> bool {
        let mut conns = self.lock();
        match conns.remove(&id) {
            Some(c) => {
                shutdown_fd(c.fd);
                true
            }
            None => false,
        }
    }

    /// Cut every connection whose writes have made no progress for `stall`, or which read
    /// nothing for `idle` (every live client reads: a websocket's pongs, a long-poll's next
    /// request, within the ping interval). One pass under the registry lock, run every second.
    pub fn sweep(&self, stall: Duration, idle: Duration) -> Swept {
        let now = self.now_ms();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (stall, idle) = (ms(stall), ms(idle));
        let mut swept = Swept::default();
        self.lock().retain(|_, c| {
            if c.activity.read.swap(false, Ordering::Relaxed) {
                c.quiet_since = now;
            }
            let since = c.activity.stalled_since.load(Ordering::Relaxed);
            let cut = if since != 0 && now.saturating_sub(since) > stall {
                swept.stalled += 1;
                true
            } else if now.saturating_sub(c.quiet_since) > idle {
                swept.idle += 1;
                true
            } else {
                false
            };
            if cut {
                shutdown_fd(c.fd);
            }
            !cut
        });
        swept
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// The bytes written so far on connection `id`, `None` when it is gone. One registry lock:
    /// a replay resolves it once per wait round, never per message.
    pub fn progress(&self, id: u64) -> Option<Written> {
        self.lock().get(&id).map(|c| Written(c.activity.clone()))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// End every connection (last step of a drain).
    pub fn kill_all(&self) {
        let mut conns = self.lock();
        for (_, c) in conns.drain() {
            shutdown_fd(c.fd);
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

    fn track(&self, stream: &TcpStream) -> (u64, Arc<Activity>) {
        let id = self.registry.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::default());
        let quiet_since = self.registry.now_ms();
        self.registry.lock().insert(
            id,
            Conn {
                fd: stream.as_raw_fd(),
                activity: activity.clone(),
                quiet_since,
            },
        );
        (id, activity)
    }
}

/// The stream handed to hyper; deregisters itself when hyper drops it.
pub struct TrackedStream {
    inner: TcpStream,
    id: u64,
    registry: Arc<ConnRegistry>,
    activity: Arc<Activity>,
    /// Its place in the per-IP count, if one is kept.
    ip: Option<IpAddr>,
}

impl TrackedStream {
    /// Note whether a write made progress. On the write path of every delivery: one relaxed
    /// load when the socket takes the bytes (the common case), a store only on a change.
    fn note_write<T>(&self, res: &Poll<io::Result<T>>) {
        let stalled = &self.activity.stalled_since;
        let since = stalled.load(Ordering::Relaxed);
        match res {
            Poll::Pending if since == 0 => stalled.store(self.registry.now_ms(), Ordering::Relaxed),
            Poll::Ready(_) if since != 0 => stalled.store(0, Ordering::Relaxed),
            _ => {}
        }
    }
}

impl TrackedStream {
    fn count_written(&self, res: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = res {
            self.registry.bytes_out.inc_by(*n as u64);
            // A second relaxed add per write call (not per message), on this connection's own
            // allocation: what a history replay measures as delivered (`history::replay`).
            self.activity
                .written
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        // Before `inner` closes the descriptor (fields drop after this): see `shutdown_fd`.
        self.registry.lock().remove(&self.id);
        if let Some(ip) = self.ip {
            self.registry.release_ip(ip);
        }
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            self.registry.bytes_in.inc_by(n as u64);
            // A load first: the common case (already set since the last sweep) writes nothing.
            if !self.activity.read.load(Ordering::Relaxed) {
                self.activity.read.store(true, Ordering::Relaxed);
            }
        }
        res
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_write(&res);
        self.count_written(&res);
        res
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
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_write(&res);
        self.count_written(&res);
        res
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
                    let Ok(ip) = self.registry.admit_ip(remote.ip()) else {
                        // Over `--max-conns-per-ip`: closed before anything is read.
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let (id, activity) = self.track(&stream);
                    let io = TrackedStream {
                        inner: stream,
                        id,
                        registry: self.registry.clone(),
                        activity,
                        ip,
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
                    static WARN: crate::warn_limit::WarnLimit =
                        crate::warn_limit::WarnLimit::new(Duration::from_secs(10));
                    if let Some(held_back) = WARN.allow() {
                        tracing::warn!(error = %e, held_back, "accept failed");
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener as _;
    use tokio::io::AsyncWriteExt as _;

    #[tokio::test]
    async fn a_connection_whose_peer_stops_reading_is_cut_after_the_limit() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let reg = Arc::new(ConnRegistry::default());
        let mut listener = TrackedListener::new(inner, reg.clone());
        let mut peer = TcpStream::connect(addr).await.unwrap();
        let (mut stream, _) = listener.accept().await;
        // The peer never reads: write until the socket is full and a write stays pending.
        let chunk = vec![0u8; 64 * 1024];
        while tokio::time::timeout(Duration::from_millis(200), stream.write_all(&chunk))
            .await
            .is_ok()
        {}
        assert_ne!(stream.activity.stalled_since.load(Ordering::Relaxed), 0);
        assert_eq!(
            reg.sweep(Duration::from_secs(60), LONG),
            Swept::default(),
            "not yet"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(reg.sweep(Duration::from_millis(10), LONG).stalled, 1);
        assert!(reg.is_empty());
        // The peer sees the connection end once it reads what was sent.
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0usize;
        loop {
            use tokio::io::AsyncReadExt as _;
            match tokio::time::timeout(Duration::from_secs(5), peer.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => total += n,
                Err(_) => panic!("connection not cut"),
            }
        }
        assert!(total > 0);
    }

    #[tokio::test]
    async fn a_write_that_progresses_clears_the_stall() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let reg = Arc::new(ConnRegistry::default());
        let mut listener = TrackedListener::new(inner, reg.clone());
        let _peer = TcpStream::connect(addr).await.unwrap();
        let (mut stream, _) = listener.accept().await;
        stream.activity.stalled_since.store(1, Ordering::Relaxed);
        stream.write_all(b"x").await.unwrap();
        assert_eq!(stream.activity.stalled_since.load(Ordering::Relaxed), 0);
        assert_eq!(reg.sweep(Duration::ZERO, LONG), Swept::default());
    }

    const LONG: Duration = Duration::from_secs(3600);

    /// A connection that sends nothing (no request, or a request head it never finishes) is
    /// cut after the idle limit; one that keeps sending is kept. hyper's own header timeout
    /// needs a timer that `axum::serve` does not give it, so without this such connections
    /// were kept for ever, each holding a descriptor.
    #[tokio::test]
    async fn a_connection_that_sends_nothing_is_cut_after_the_idle_limit() {
        use tokio::io::AsyncReadExt as _;
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let reg = Arc::new(ConnRegistry::default());
        let mut listener = TrackedListener::new(inner, reg.clone());
        let mut quiet = TcpStream::connect(addr).await.unwrap();
        let (_quiet_stream, _) = listener.accept().await;
        let mut talker = TcpStream::connect(addr).await.unwrap();
        let (mut talker_stream, _) = listener.accept().await;
        let idle = Duration::from_millis(100);
        for _ in 0..4 {
            talker.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            talker_stream.read_exact(&mut b).await.unwrap();
            tokio::time::sleep(Duration::from_millis(60)).await;
            reg.sweep(LONG, idle);
        }
        assert_eq!(reg.len(), 1, "the quiet one is cut, the talker kept");
        let mut b = [0u8; 1];
        let end = tokio::time::timeout(Duration::from_secs(5), quiet.read(&mut b)).await;
        assert!(
            matches!(end, Ok(Ok(0)) | Ok(Err(_))),
            "the quiet peer sees the end"
        );
    }

    #[test]
    fn clients_are_counted_by_ipv4_address_or_ipv6_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_key(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(client_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            client_key(ip("2001:db8:1:2::5"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:3::5")),
            client_key(ip("2001:db8:1:2::5"))
        );
    }

    #[tokio::test]
    async fn connections_over_the_per_ip_cap_are_closed_on_accept() {
        use tokio::io::AsyncReadExt as _;
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let refused = prometheus::IntCounter::new("refused", "refused").unwrap();
        let reg = Arc::new(ConnRegistry::default().limit_per_ip(2, refused.clone()));
        let mut listener = TrackedListener::new(inner, reg.clone());
        let _a = TcpStream::connect(addr).await.unwrap();
        let (a_stream, _) = listener.accept().await;
        let _b = TcpStream::connect(addr).await.unwrap();
        let (_b_stream, _) = listener.accept().await;
        // A third from the same IP is closed at once; the accept goes on to the next one.
        let mut c = TcpStream::connect(addr).await.unwrap();
        let accept = tokio::spawn(async move {
            let (s, _) = listener.accept().await;
            (listener, s)
        });
        let mut b = [0u8; 1];
        let end = tokio::time::timeout(Duration::from_secs(5), c.read(&mut b)).await;
        assert!(
            matches!(end, Ok(Ok(0)) | Ok(Err(_))),
            "the third sees the end"
        );
        assert_eq!(refused.get(), 1);
        assert_eq!(reg.len(), 2);
        // One closes: its place is free again.
        drop(a_stream);
        let _d = TcpStream::connect(addr).await.unwrap();
        let (_listener, _d_stream) = tokio::time::timeout(Duration::from_secs(5), accept)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((reg.len(), refused.get()), (2, 1));
    }
}
