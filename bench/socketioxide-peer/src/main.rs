//! socketioxide-peer: the plain-library peer of bench/compare.sh. socketioxide 0.18 and, with
//! `--redis`, socketioxide-redis 0.4 (its own private msgpack protocol on Redis pub/sub, not
//! the Node adapter's or emitter's), with library defaults and nothing else: the same relay
//! conventions as the gateway and bench/node-server.mjs (see `relay` and `emit_api`), so
//! sio-bench drives all three alike and the comparison shows what the gateway adds on top of
//! its library.
//!
//! Usage: socketioxide-peer --port P [--host 127.0.0.1] [--redis redis://H:P] [--api-key K]
//! Without `--redis` the namespace uses socketioxide's in-memory LocalAdapter.

mod emit_api;
mod relay;

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::routing::{get, post};
use clap::Parser;
use socketioxide::SocketIo;
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::layer::SocketIoLayer;
use socketioxide_redis::drivers::redis::redis_client;
use socketioxide_redis::{RedisAdapter, RedisAdapterCtr};
use tokio::net::TcpListener;

use crate::emit_api::EmitApi;

#[derive(Debug, Parser)]
#[command(
    name = "socketioxide-peer",
    about = "plain socketioxide (+ socketioxide-redis) relay for bench/compare.sh"
)]
struct Cli {
    /// TCP port to listen on.
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Redis URL: join the other nodes through socketioxide-redis (RESP3 is added to the URL,
    /// the crate's driver needs it). Without it: in memory, one node.
    #[arg(long)]
    redis: Option<String>,
    /// Require `Authorization: Bearer <KEY>` on POST /api/v1/emit (any request is accepted without).
    #[arg(long)]
    api_key: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let addr = format!("{}:{}", cli.host, cli.port);
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    match &cli.redis {
        None => {
            let (layer, io) = SocketIo::new_layer();
            io.ns("/", relay::on_connect::<LocalAdapter>);
            println!(
                "socketioxide-peer listening on {addr} pid {} (in memory)",
                std::process::id()
            );
            serve(listener, layer, io, cli.api_key).await
        }
        Some(url) => {
            let client = redis_client::Client::open(resp3(url)).context("parsing --redis")?;
            let adapter = RedisAdapterCtr::new_with_redis(&client)
                .await
                .context("connecting to Redis")?;
            let (layer, io) = SocketIo::builder()
                .with_adapter::<RedisAdapter<_>>(adapter)
                .build_layer();
            // Resolves once the namespace's three channels are subscribed.
            io.ns("/", relay::on_connect)
                .await
                .map_err(|e| anyhow!("subscribing the namespace: {e}"))?;
            println!(
                "socketioxide-peer listening on {addr} pid {} redis {url}",
                std::process::id()
            );
            serve(listener, layer, io, cli.api_key).await
        }
    }
}

/// socketioxide-redis' drivers speak RESP3 only (push messages on the multiplexed connection).
fn resp3(url: &str) -> String {
    if url.to_ascii_lowercase().contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

async fn serve<A: Adapter>(
    listener: TcpListener,
    layer: SocketIoLayer<A>,
    io: SocketIo<A>,
    api_key: Option<String>,
) -> Result<()> {
    let app = Router::new()
        .route("/api/v1/emit", post(emit_api::emit::<A>))
        .route("/healthz", get(async || "ok"))
        .with_state(Arc::new(EmitApi { io, api_key }))
        .layer(layer);
    axum::serve(listener, app).await.context("serving")
}
