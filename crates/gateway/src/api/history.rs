//! `GET /api/v1/rooms/{room}/history?nsp=&since=&limit=&epoch=`: a room's history for
//! backends (a page of the messages after `since`, oldest first), the same history a
//! recovering client is replayed from.
use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;
use socketioxide::adapter::Adapter;

use super::{ApiError, Params};
use sio_wire::history::StreamId;

use crate::{
    history::{
        epoch::Epoch,
        since::parse_offset,
        stream::{Read, StreamStore},
    },
    names::{MAX_NAME_LEN, valid_len},
    state::AppState,
};

/// Largest page.
pub const MAX_LIMIT: usize = 1000;
/// Cluster mode: a page stops after the message that brings its events' and arguments' text
/// to this (one message at least), whatever `limit` (`next` then says where to go on).
const MAX_PAGE_BYTES: usize = 1 << 20;
const DEFAULT_LIMIT: usize = 100;

fn root() -> String {
    "/".into()
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    #[serde(default = "root")]
    pub nsp: String,
    /// The offset after which to read (decimal string); from the oldest kept when absent.
    pub since: Option<String>,
    pub limit: Option<usize>,
    /// The epoch `since` belongs to; a different one answers 409.
    pub epoch: Option<String>,
}

/// `GET /rooms/{room}/history`.
pub async fn read<A: Adapter>(
    State(st): State<AppState<A>>,
    Path(room): Path<String>,
    Params(q): Params<HistoryQuery>,
) -> Result<Response, ApiError> {
    if !valid_len(&room) {
        return Err(ApiError::bad_request(format!(
            "room must be 1-{MAX_NAME_LEN} bytes"
        )));
    }
    // Single node: decimal digits; cluster mode: a stream id (checked where it is read).
    let since_raw = q.since.clone();
    let since = match q.since.as_deref() {
        None => Some(0),
        Some(s) => parse_offset(s),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` must be 1-{MAX_LIMIT}"
        )));
    }
    let epoch = match q.epoch.as_deref() {
        None => None,
        Some(e) => Some(Epoch::parse(e).ok_or_else(|| {
            ApiError::bad_request("`epoch` must be 1-64 characters of A-Z a-z 0-9 _ -")
        })?),
    };
    if st.io.of(&q.nsp).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("unknown namespace `{}`", q.nsp),
        ));
    }
    let history = &st.gw.history;
    let Some(rh) = history.room(&q.nsp, &room) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("room `{room}` keeps no history (no --history rule matches it)"),
        ));
    };
    if let Some(store) = history.store() {
        return read_stream(
            store,
            &st,
            &q.nsp,
            &room,
            since_raw.as_deref(),
            limit,
            epoch,
        )
        .await;
    }
    let Some(since) = since else {
        return Err(ApiError::bad_request(
            "`since` must be an offset (decimal digits, as delivered)",
        ));
    };
    let mut g = rh.lock(&history.metrics).await;
    let current = g.epoch().clone();
    if epoch.as_ref().is_some_and(|e| *e != current) {
        return Ok(conflict(&current));
    }
    let last = g.last();
    let (page, gap) = g
        .read(since, limit)
        .map_err(|e| ApiError::bad_request(format!("`since`: {e}")))?;
    drop(g);
    let messages: Vec<_> = page
        .iter()
        .map(|e| json!({ "offset": e.offset.to_string(), "event": e.event, "args": e.args.to_json() }))
        .collect();
    Ok(Json(json!({
        "nsp": q.nsp,
        "room": room,
        "epoch": current.as_str(),
        "offset": last.to_string(),
        "gap": gap.map(|g| g.as_str()),
        "messages": messages,
    }))
    .into_response())
}

fn conflict(current: &Epoch) -> Response {
    (
        StatusCode::CONFLICT,
        Json(json!({
            "error": "`epoch` is not this history's: it was lost and started over; resync",
            "epoch": current.as_str(),
        })),
    )
        .into_response()
}

/// Cluster mode: the page is read from the room's Redis Stream. When messages right after
/// `since` are gone, `gap` says so and the page is empty (read again without `since`). Entries
/// no gateway or emitter wrote (`history::stream::Skipped`) are left out, counted, and `gap`
/// is `skipped`. A page cut short (`limit` entries looked at, or [`MAX_PAGE_BYTES`]) says in
/// `next` the offset to read on from (it may be past the last message returned).
async fn read_stream<A: Adapter>(
    store: &StreamStore,
    st: &AppState<A>,
    nsp: &str,
    room: &str,
    since: Option<&str>,
    limit: usize,
    epoch: Option<Epoch>,
) -> Result<Response, ApiError> {
    let history = &st.gw.history;
    let spec = history
        .spec(room)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "room keeps no history"))?;
    let since_id = match since {
        None => StreamId::ZERO,
        Some(s) => StreamId::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "`since` must be an offset (a stream id <ms>-<seq>, as delivered)",
            )
        })?,
    };
    // Without `epoch`, `since` is taken in the current epoch: read the position first.
    let started = std::time::Instant::now();
    let current = match epoch {
        Some(e) => e,
        None => {
            store
                .read(nsp, room, spec, None, 0, 0)
                .await
                .map_err(ApiError::unavailable)?
                .epoch
        }
    };
    let r = store
        .read(
            nsp,
            room,
            spec,
            Some((since_id, &current)),
            limit,
            MAX_PAGE_BYTES,
        )
        .await
        .map_err(ApiError::unavailable)?;
    history
        .metrics
        .read_seconds
        .observe(started.elapsed().as_secs_f64());
    let (messages, gap, next) = match r.read {
        Read::OtherEpoch => return Ok(conflict(&r.epoch)),
        Read::Position => (Vec::new(), None, None),
        Read::Miss if since_id > r.last => {
            return Err(ApiError::bad_request(format!(
                "`since`: offset {since_id} is ahead of this history (last offset {})",
                r.last
            )));
        }
        Read::Miss => (Vec::new(), Some("trimmed"), None),
        Read::Replay(page) => {
            let mut skipped = page.count_skipped(&history.metrics.skipped);
            let mut messages = Vec::with_capacity(page.entries.len());
            for m in page.entries {
                match m.checked_args() {
                    Ok(args) => messages.push(
                        json!({ "offset": m.id.to_string(), "event": m.event, "args": args }),
                    ),
                    Err(why) => {
                        history
                            .metrics
                            .skipped
                            .with_label_values(&[why.as_str()])
                            .inc();
                        skipped += 1;
                    }
                }
            }
            let next = page.more.then(|| page.cursor.to_string());
            (messages, (skipped > 0).then_some("skipped"), next)
        }
    };
    Ok(Json(json!({
        "nsp": nsp,
        "room": room,
        "epoch": r.epoch.as_str(),
        "offset": r.last.to_string(),
        "gap": gap,
        "next": next,
        "messages": messages,
    }))
    .into_response())
}
