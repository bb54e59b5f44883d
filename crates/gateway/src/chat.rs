//! The embedded demo: a small chat page at `/` using the stock socket.io-client.
//!
//! The client bundle is served at `/socket.io.min.js` when a copy of the npm package is found
//! on disk: `--client-js`, or `node_modules/socket.io-client/dist/socket.io.min.js` where
//! [`crate::installed`] looks (`web/`, installed by `scripts/run.sh` from
//! `web/package-lock.json`, first). Otherwise the page loads it from the
//! public CDN, which a start-up warning says. The bundle is read once at start-up.
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use bytes::Bytes;

use crate::sticky::Sticky;

const PAGE: &str = include_str!("../assets/chat.html");
/// Same major version as the tests' pinned socket.io-client.
pub const CDN_URL: &str = "https://cdn.socket.io/4.8.1/socket.io.min.js";
const BUNDLE: &str = "node_modules/socket.io-client/dist/socket.io.min.js";

fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    // An explicit file is the only candidate: serving another copy would be a surprise.
    match explicit {
        Some(p) => vec![p.to_owned()],
        None => crate::installed::candidates(BUNDLE),
    }
}

/// Find and read the client bundle, if installed.
pub fn load_client_js(explicit: Option<&Path>) -> Option<Bytes> {
    for path in candidates(explicit) {
        if let Ok(bytes) = std::fs::read(&path) {
            tracing::debug!(path = %path.display(), "serving socket.io client bundle");
            return Some(Bytes::from(bytes));
        }
    }
    match explicit {
        Some(p) => tracing::warn!(
            path = %p.display(),
            cdn = CDN_URL,
            "--client-js not readable: the chat page loads socket.io-client from the CDN, and does not work offline"
        ),
        None => tracing::warn!(
            cdn = CDN_URL,
            "no socket.io-client bundle found (npm ci --prefix web, or --client-js FILE): the chat page loads it from the CDN, and does not work offline"
        ),
    }
    None
}

/// The demo's state: the page rendered once, the client bundle if one was found, and the
/// sticky headers the page carries.
pub struct Chat {
    page: String,
    client_js: Option<Bytes>,
    sticky: Arc<Sticky>,
}

impl Chat {
    /// Find the client bundle (see the module doc) and render the page for this node.
    pub fn new(client_js: Option<&Path>, node_id: &str, sticky: Arc<Sticky>) -> Chat {
        let client_js = load_client_js(client_js);
        let src = if client_js.is_some() {
            "/socket.io.min.js"
        } else {
            CDN_URL
        };
        let page = PAGE
            .replace("{{CLIENT_JS}}", src)
            .replace("{{NODE_ID}}", &html_escape(node_id));
        Chat {
            page,
            client_js,
            sticky,
        }
    }

    /// Is the client bundle served from disk (else the page uses the CDN)?
    pub fn serves_client(&self) -> bool {
        self.client_js.is_some()
    }
}

/// The page names the node that served it, and carries the same sticky cookie as a handshake:
/// behind a sticky balancer the page's socket then lands on that node too. Other sites may not
/// frame it (clickjacking its forms), browsers may not sniff it, caches may not keep it (review
/// 8). No script policy: the page's script is inline, and the client bundle may come from a CDN.
pub async fn page(State(chat): State<Arc<Chat>>) -> Response {
    (
        [
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("frame-ancestors 'none'"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::SET_COOKIE, chat.sticky.cookie.clone()),
            (
                header::HeaderName::from_static(crate::sticky::NODE_HEADER),
                chat.sticky.node.clone(),
            ),
        ],
        Html(chat.page.clone()),
    )
        .into_response()
}

/// Text for an HTML text node or a quoted attribute.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The room history helper for socket.io-client (`assets/history-client.js`), which the page
/// uses; apps may load it from here too.
const HISTORY_JS: &str = include_str!("../assets/history-client.js");

pub async fn history_js() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        HISTORY_JS,
    )
        .into_response()
}

pub async fn client_js(State(chat): State<Arc<Chat>>) -> Response {
    match &chat.client_js {
        Some(js) => (
            [
                (
                    header::CONTENT_TYPE,
                    "application/javascript; charset=utf-8",
                ),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            js.clone(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "socket.io client not installed; use the CDN",
        )
            .into_response(),
    }
}
