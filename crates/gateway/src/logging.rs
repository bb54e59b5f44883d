//! Log set-up: tracing with a text (default) or JSON formatter.
//!
//! The filter comes from `--log-level` if given, else `RUST_LOG`, else `info`. Handlers log
//! with `node_id`, `sid` and `ns` fields; JSON output keeps them as separate keys.
//!
//! The libraries under the gateway (socketioxide, engineioxide) log some client input at
//! ERROR or WARN, once per packet: a CONNECT to an unknown namespace whose `connect_error` finds
//! the session's queue full logs "error while sending invalid namespace packet" each time, and
//! two clients posting such packets wrote 772 MB of log in 8 s (review 9). Lines of theirs are
//! let through at most once per call site per [`LIBRARY_LINE_EVERY`], as the gateway's own
//! warnings that input can set off are (`warn_limit`); the gateway's lines are not limited here.
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use tracing::{Metadata, callsite::Identifier, subscriber::Interest};
use tracing_subscriber::{
    EnvFilter, Layer, filter::DynFilterFn, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::config::{Config, LogFormat};

/// At most one line per call site of socketioxide / engineioxide this often.
pub const LIBRARY_LINE_EVERY: Duration = Duration::from_secs(10);

/// Is this line one of the libraries' (the targets their `tracing` macros use)?
fn is_library(meta: &Metadata<'_>) -> bool {
    let t = meta.target();
    t.starts_with("socketioxide") || t.starts_with("engineioxide")
}

/// When each library call site last had a line through.
#[derive(Default)]
struct LibraryLines(Mutex<HashMap<Identifier, Instant>>);

impl LibraryLines {
    fn allow(&self, meta: &Metadata<'_>, now: Instant) -> bool {
        if !meta.is_event() || !is_library(meta) {
            return true;
        }
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match last.get(&meta.callsite()) {
            Some(t) if now.saturating_duration_since(*t) < LIBRARY_LINE_EVERY => false,
            _ => {
                last.insert(meta.callsite(), now);
                true
            }
        }
    }
}

pub fn init(config: &Config) {
    let filter = match &config.log_level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let lines = LibraryLines::default();
    // Decided per event for the libraries' call sites (`sometimes`), once for the others.
    let limit = DynFilterFn::new(move |meta, _| lines.allow(meta, Instant::now()))
        .with_callsite_filter(|meta| {
            if is_library(meta) {
                Interest::sometimes()
            } else {
                Interest::always()
            }
        });
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt = match config.log_format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    // try_init: a second call (tests) must not panic.
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(limit).with_filter(filter))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_lines_pass_once_per_call_site_per_interval() {
        let lib = tracing::callsite! {
            name: "lib",
            kind: tracing::metadata::Kind::EVENT,
            target: "socketioxide::client",
            level: tracing::Level::ERROR,
            fields: []
        };
        let own = tracing::callsite! {
            name: "own",
            kind: tracing::metadata::Kind::EVENT,
            target: "sio_gateway::relay",
            level: tracing::Level::WARN,
            fields: []
        };
        let (lib, own) = (
            tracing::callsite::Callsite::metadata(lib),
            tracing::callsite::Callsite::metadata(own),
        );
        let lines = LibraryLines::default();
        let t0 = Instant::now();
        assert!(lines.allow(lib, t0));
        assert!(!lines.allow(lib, t0 + Duration::from_secs(1)));
        assert!(!lines.allow(lib, t0 + Duration::from_secs(9)));
        assert!(lines.allow(lib, t0 + LIBRARY_LINE_EVERY));
        // The gateway's own lines are not limited here.
        assert!((0..3).all(|_| lines.allow(own, t0)));
    }
}
