//! `sio-emit`: a command-line emitter for scripts and operators, built on the sio-emitter
//! library. Arguments are parsed (JSON) before Redis is contacted, and every failure exits
//! non-zero with a message saying what went wrong.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use fred::prelude::{Builder, ClientLike, Config};
use sio_emitter::{Arg, Emitter, EmitterOptions};
use sio_wire::{SubscriptionMode, history::HistorySpec};

#[derive(Parser, Debug)]
#[command(
    name = "sio-emit",
    version,
    about = "Publish Socket.IO events into a Redis-backed socket.io / sio-gateway cluster"
)]
struct Cli {
    /// Redis URL (redis://, rediss://, redis-sentinel://, redis-cluster://).
    #[arg(long, env = "SIO_EMIT_REDIS")]
    redis: String,
    /// Channel key shared with the adapters.
    #[arg(long, default_value = sio_wire::DEFAULT_KEY, env = "SIO_EMIT_KEY")]
    key: String,
    /// Namespace (a missing leading `/` is added).
    #[arg(long, default_value = "/")]
    nsp: String,
    /// Target room (repeatable; none = every socket of the namespace). May start with `-`: a
    /// socket id's own room does one time in 64 (`--to -fKJ89TT5xfhDQpJ`).
    #[arg(long = "to", value_name = "ROOM", allow_hyphen_values = true)]
    to: Vec<String>,
    /// Excluded room (repeatable; may start with `-`, as `--to`).
    #[arg(long = "except", value_name = "ROOM", allow_hyphen_values = true)]
    except: Vec<String>,
    /// Volatile emit (clients that are not ready drop it).
    #[arg(long)]
    volatile: bool,
    /// Set the compress flag (true/false).
    #[arg(long, value_name = "BOOL")]
    compress: Option<bool>,
    /// Redis pub/sub of the cluster: classic (PUBLISH, Node's createAdapter) or sharded
    /// (SPUBLISH, Node's createShardedAdapter / sio-gateway --redis-pubsub sharded).
    #[arg(long, value_enum, default_value_t = PubSub::Classic, env = "SIO_EMIT_PUBSUB")]
    pubsub: PubSub,
    /// With --pubsub sharded: the adapters' subscription mode (which broadcasts go on a
    /// room's own channel).
    #[arg(long, value_enum, default_value_t = Mode::Dynamic, env = "SIO_EMIT_SUBSCRIPTION_MODE")]
    subscription_mode: Mode,
    /// The gateways' room history rules, `GLOB=SIZE[/TTL]` (give the same as their
    /// `--history`; repeat or comma-separate; first match wins): an emit into a matching room
    /// is appended to its history first and delivered with its offset
    #[arg(
        long = "history",
        env = "SIO_EMIT_HISTORY",
        value_name = "GLOB=SIZE[/TTL]",
        value_delimiter = ',',
        value_parser = parse_history
    )]
    history: Vec<HistorySpec>,
    /// Seconds to wait for the Redis connection.
    #[arg(long, default_value_t = 5)]
    connect_timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum PubSub {
    Classic,
    Sharded,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Mode {
    Dynamic,
    DynamicPrivate,
    Static,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Emit EVENT with JSON arguments to the selected sockets.
    Emit {
        event: String,
        /// Each argument is a JSON value (`'"text"'`, `42`, `'{"a":1}'`); prefix with `hex:`
        /// for a binary argument (`hex:deadbeef`); a negative number (`-1`) is a value.
        #[arg(allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Make the selected sockets join ROOM(s).
    Join {
        #[arg(required = true, allow_hyphen_values = true)]
        rooms: Vec<String>,
    },
    /// Make the selected sockets leave ROOM(s).
    Leave {
        #[arg(required = true, allow_hyphen_values = true)]
        rooms: Vec<String>,
    },
    /// Disconnect the selected sockets.
    Disconnect {
        /// Also close the underlying connection (no reconnection to the namespace).
        #[arg(long)]
        close: bool,
    },
    /// Send EVENT with JSON arguments to the servers' serverSideEmit handlers.
    ServerSideEmit {
        event: String,
        #[arg(allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `--history`: the same rules and errors as the gateway's.
fn parse_history(s: &str) -> Result<HistorySpec, String> {
    HistorySpec::parse(s)
}

fn parse_args(args: &[String]) -> Result<Vec<Arg>> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            if let Some(h) = a.strip_prefix("hex:") {
                return parse_hex(h)
                    .with_context(|| format!("argument {}: invalid hex `{h}`", i + 1));
            }
            serde_json::from_str::<serde_json::Value>(a)
                .map(Arg::Json)
                .with_context(|| {
                    format!(
                        "argument {} is not valid JSON: `{a}` (quote strings: '\"text\"')",
                        i + 1
                    )
                })
        })
        .collect()
}

fn parse_hex(h: &str) -> Result<Arg> {
    if !h.len().is_multiple_of(2) {
        bail!("odd number of digits");
    }
    let bytes = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2).unwrap_or("x"), 16))
        .collect::<Result<Vec<u8>, _>>()?;
    Ok(Arg::Binary(bytes))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("sio-emit: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    // Validate everything local before touching the network.
    let args = match &cli.command {
        Command::Emit { args, .. } | Command::ServerSideEmit { args, .. } => parse_args(args)?,
        _ => Vec::new(),
    };
    let config = Config::from_url(&cli.redis)
        .with_context(|| format!("invalid Redis URL `{}`", cli.redis))?;
    let timeout = Duration::from_secs(cli.connect_timeout);
    let client = Builder::from_config(config)
        .with_connection_config(|c| c.connection_timeout = timeout)
        .build()
        .context("cannot build the Redis client")?;
    tokio::time::timeout(timeout + Duration::from_secs(1), client.init())
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to Redis at {}", cli.redis))?
        .with_context(|| format!("cannot connect to Redis at {}", cli.redis))?;

    let emitter = Emitter::new(
        client.clone(),
        EmitterOptions {
            key: cli.key.clone(),
            sharded: (cli.pubsub == PubSub::Sharded).then_some(match cli.subscription_mode {
                Mode::Dynamic => SubscriptionMode::Dynamic,
                Mode::DynamicPrivate => SubscriptionMode::DynamicPrivate,
                Mode::Static => SubscriptionMode::Static,
            }),
            history: cli.history.clone(),
        },
    )
    .of(&cli.nsp);
    let mut op = emitter.to(cli.to.clone()).except(cli.except.clone());
    if cli.volatile {
        op = op.volatile();
    }
    if let Some(c) = cli.compress {
        op = op.compress(c);
    }
    let result = match cli.command {
        Command::Emit { event, .. } => op.emit(&event, args).await,
        Command::Join { rooms } => op.sockets_join(rooms).await,
        Command::Leave { rooms } => op.sockets_leave(rooms).await,
        Command::Disconnect { close } => op.disconnect_sockets(close).await,
        Command::ServerSideEmit { event, .. } => {
            if !cli.to.is_empty() || !cli.except.is_empty() {
                bail!("server-side-emit goes to servers: --to/--except do not apply");
            }
            emitter.server_side_emit(&event, args).await
        }
    };
    let _ = client.quit().await;
    result.context("publish failed")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Socket ids are base64url: one in 64 starts with `-`, and `--to <id>` must take it (it
    /// was refused as an unknown flag, seen in a clean-clone run of adapter-sharded).
    #[test]
    fn rooms_may_start_with_a_hyphen() {
        let cli = Cli::try_parse_from([
            "sio-emit",
            "--redis",
            "redis://127.0.0.1:6379",
            "--to",
            "-fKJ89TT5xfhDQpJ",
            "--except",
            "-x",
            "emit",
            "ev",
        ])
        .expect("parses");
        assert_eq!(cli.to, vec!["-fKJ89TT5xfhDQpJ"]);
        assert_eq!(cli.except, vec!["-x"]);
        let parse = |tail: &[&str]| {
            let head = ["sio-emit", "--redis", "redis://127.0.0.1:6379"];
            Cli::try_parse_from(head.iter().chain(tail))
                .expect("parses")
                .command
        };
        assert!(
            matches!(parse(&["emit", "ev", "-1"]), Command::Emit { args, .. } if args == ["-1"])
        );
        assert!(matches!(parse(&["join", "-r"]), Command::Join { rooms } if rooms == ["-r"]));
        assert!(matches!(parse(&["leave", "-r"]), Command::Leave { rooms } if rooms == ["-r"]));
    }
}
