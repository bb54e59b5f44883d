//! `sio-bench`: a load generator that speaks Engine.IO v4 / Socket.IO v5 over
//! WebSocket itself, to measure a Socket.IO server from the outside.
//!
//! Modes: `idle` (memory per held connection), `fanout` (broadcast deliveries/s,
//! loss, latency and server CPU per delivery, optionally ramping the rate) and
//! `connect` (handshake rate); `floor-server` is the reference server those
//! figures are read against (see `floor.rs`). It runs on one thread (a current-thread tokio
//! runtime) so that pinning it to one core with `taskset` gives a fair,
//! repeatable load; only the fan-out sender gets its own thread so that its
//! pacing is not starved by the receive loop. It depends on none of the
//! project's crates: it must behave like any third-party client.

mod conn;
mod connect;
mod emitter;
mod fanout;
mod floor;
mod frame;
mod http1;
mod idle;
mod origin;
mod pool;
mod procstat;
mod report;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "sio-bench", version, about = "Socket.IO load generator")]
struct Cli {
    /// Print the result as one JSON document on stdout instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// No progress line on stderr.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Open N connections, hold them, report server RSS per connection.
    Idle(IdleArgs),
    /// Broadcast to N receivers at a fixed (or ramped) rate; deliveries, loss, latency, CPU.
    Fanout(FanoutArgs),
    /// Handshakes per second (Engine.IO open + Socket.IO connect) and their latency.
    Connect(ConnectArgs),
    /// Serve the cheapest possible Socket.IO broadcast (one write per delivery), to
    /// measure this machine's floor; a calibration reference, not a server to deploy.
    FloorServer(floor::FloorArgs),
}

/// Where and how to connect.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// Server URL(s), e.g. http://127.0.0.1:3000; connections are spread round-robin.
    #[arg(long = "url", required = true)]
    pub urls: Vec<String>,
    /// Socket.IO namespace.
    #[arg(long, default_value = "/")]
    pub nsp: String,
    /// Raw JSON object sent as the CONNECT auth payload, e.g. '{"token":"..."}'.
    #[arg(long)]
    pub auth: Option<String>,
    /// Handshakes in flight at once while opening connections.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Give up on one handshake after this many seconds.
    #[arg(long, default_value_t = 30)]
    pub connect_timeout: u64,
}

#[derive(Args, Debug)]
pub struct IdleArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Connections to open.
    #[arg(long)]
    pub connections: usize,
    /// Server PID(s) whose RSS is sampled before and after.
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// Seconds to wait after the last connection before sampling RSS.
    #[arg(long, default_value_t = 3)]
    pub settle: u64,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A backend publishing through Redis in the @socket.io/redis-emitter format.
    Emitter,
    /// A client socket sending `publish {room?, event, data}` (the relay).
    Client,
    /// `POST /api/v1/emit` on the first URL.
    Http,
}

#[derive(Args, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Receiving connections (spread over the URLs).
    #[arg(long)]
    pub receivers: usize,
    /// Broadcasts per second (deliveries/s = rate × receivers). With --ramp, the first step.
    #[arg(long)]
    pub rate: f64,
    /// Seconds of sending per step.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Where broadcasts come from.
    #[arg(long, value_enum, default_value_t = Origin::Emitter)]
    pub origin: Origin,
    /// Redis URL (for --origin emitter).
    #[arg(long)]
    pub redis: Option<String>,
    /// Room the receivers join (with ack) and broadcasts target; none = whole namespace.
    #[arg(long)]
    pub room: Option<String>,
    /// Spread the receivers over N rooms `<room>-0` .. `<room>-(N-1)` (receiver i joins room
    /// i mod N; --receivers must be a multiple of N); broadcasts go to the rooms in turn, each
    /// reaching receivers/N clients. Needs --room (the prefix) and --origin emitter.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// --origin emitter: publish the sharded adapter's message (createShardedAdapter protocol)
    /// with SPUBLISH, for nodes running --redis-pubsub sharded, instead of PUBLISH.
    #[arg(long)]
    pub sharded: bool,
    /// Server PID(s) whose CPU time is sampled per step.
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// Event name of the broadcasts.
    #[arg(long, default_value = "bench")]
    pub event: String,
    /// Extra payload bytes per message (a padding string).
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: usize,
    /// API key for --origin http.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Seconds of unmeasured sending before the first step (subscriptions settle).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// After sending, wait at most this long for late deliveries (then they count as lost).
    #[arg(long, default_value_t = 5.0)]
    pub drain_timeout: f64,
    /// Raise the rate step by step until loss appears; report the highest lossless rate.
    #[arg(long)]
    pub ramp: bool,
    /// Rate multiplier between ramp steps.
    #[arg(long, default_value_t = 1.5)]
    pub ramp_factor: f64,
    /// Highest rate a ramp tries.
    #[arg(long, default_value_t = 1e6)]
    pub ramp_max: f64,
    /// Also report the highest lossless ramp step whose p99 latency is at most this (ms).
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Never sleep in epoll: the receive thread spins (the whole generator core). On loopback
    /// a server's write that must wake a sleeping reader pays for that wake-up, and a reader
    /// that sleeps reads one frame per wake-up; spinning takes both out of the figures.
    #[arg(long)]
    pub busy_poll: bool,
    /// Loss ratio above which a ramp step counts as lossy.
    #[arg(long, default_value_t = 0.0)]
    pub loss_threshold: f64,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Handshakes to perform.
    #[arg(long)]
    pub count: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let nofile = procstat::raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        match cli.cmd {
            Cmd::Idle(a) => idle::run(a, nofile, cli.json, cli.quiet).await,
            Cmd::Fanout(a) => fanout::run(a, cli.json, cli.quiet).await,
            Cmd::Connect(a) => connect::run(a, cli.json, cli.quiet).await,
            Cmd::FloorServer(a) => floor::run(a, cli.quiet).await,
        }
    })
}
