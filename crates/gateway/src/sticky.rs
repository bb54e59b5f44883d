//! Sticky-session hints: every Engine.IO handshake response names the node that answered it.
//!
//! `Set-Cookie: <--sticky-cookie>=<node-id>` lets a load balancer pin the client's later
//! requests to this node (HAProxy `cookie sio_node preserve indirect`, nginx
//! `map $cookie_sio_node`, ingress-nginx affinity), and the cluster's polling forwarding uses
//! the same cookie to find a session's owner. `x-sio-node` says the same to humans and tools.
use std::sync::Arc;

use axum::{
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};

use crate::{
    config::Config,
    hook::{Finish, Hook, Step},
};

/// Response header naming the node that answered a handshake.
pub const NODE_HEADER: &str = "x-sio-node";

/// [`NODE_HEADER`] as a header name made at compile time (a `&str` name is parsed and checked
/// on every insert).
const NODE: header::HeaderName = header::HeaderName::from_static(NODE_HEADER);

/// The two header values, rendered once at start-up.
pub struct Sticky {
    pub cookie: HeaderValue,
    pub node: HeaderValue,
}

impl Sticky {
    pub fn new(config: &Config) -> Sticky {
        // node_id and the cookie name are validated as header-safe tokens by `config`; the
        // fallback only guards against a future validation gap.
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax",
            config.sticky_cookie, config.node_id
        );
        Sticky {
            cookie: HeaderValue::from_str(&cookie)
                .unwrap_or(HeaderValue::from_static("sio_node=invalid")),
            node: HeaderValue::from_str(&config.node_id)
                .unwrap_or(HeaderValue::from_static("invalid")),
        }
    }
}

/// Stamps successful handshakes (polling 200 or websocket 101): a [`Hook`] on `Arc<Sticky>`.
#[derive(Clone)]
pub struct Stamp(pub Arc<Sticky>);

impl Hook for Stamp {
    /// Whether the request is a handshake.
    type Carry = bool;

    fn before(&self, req: &mut Request) -> Step<bool> {
        Step::Continue(crate::engine_io::is_handshake(req))
    }

    fn after(&self, handshake: bool, mut resp: Response) -> Finish {
        if handshake
            && (resp.status().is_success() || resp.status() == StatusCode::SWITCHING_PROTOCOLS)
        {
            let h = resp.headers_mut();
            h.append(header::SET_COOKIE, self.0.cookie.clone());
            h.insert(NODE, self.0.node.clone());
        }
        Finish::Done(resp)
    }
}
