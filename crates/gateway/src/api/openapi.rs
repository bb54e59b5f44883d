//! The OpenAPI 3 document of `/api/v1`, served at `/api/v1/openapi.json`.
//!
//! Hand-written rather than derived (utoipa): the API is seven small endpoints, the request
//! types use serde features (flatten, string-or-list rooms) that derive macros describe poorly,
//! and a schemathesis test (tests/python/test_backend_openapi.py) drives the real handlers
//! from this document, so a drift between the two fails a test instead of hiding behind a macro.
use axum::{Json, http::header, response::IntoResponse};
use serde_json::{Value, json};

fn error_response(desc: &str) -> Value {
    json!({
        "description": desc,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn ok_response() -> Value {
    json!({
        "description": "done",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Ok" } } }
    })
}

fn common_errors(with_body: bool) -> Value {
    let mut m = json!({
        "200": ok_response(),
        "400": error_response("invalid request (bad field value, missing field)"),
        "401": error_response("missing or invalid API key"),
        "404": error_response("unknown namespace, or API disabled"),
        "503": error_response("the adapter (Redis) could not take the operation"),
    });
    if with_body {
        m["413"] = error_response("body larger than --max-payload");
        m["415"] = error_response("body is not application/json");
        m["422"] = error_response("JSON of the wrong shape");
    }
    m
}

fn post(summary: &str, schema: &str) -> Value {
    json!({
        "post": {
            "summary": summary,
            "requestBody": {
                "required": true,
                "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
            },
            "responses": common_errors(true),
        }
    })
}

/// The document (built once per request; it is small and rarely fetched).
pub fn spec() -> Value {
    let rooms = json!({
        "oneOf": [
            { "type": "string", "minLength": 1, "maxLength": 256 },
            { "type": "array", "items": { "type": "string", "minLength": 1, "maxLength": 256 } }
        ]
    });
    let target_props = json!({
        "nsp": { "type": "string", "default": "/", "description": "namespace path" },
        "rooms": rooms.clone(),
        "except": rooms.clone(),
    });
    let mut emit_props = target_props.clone();
    emit_props["event"] = json!({ "type": "string", "minLength": 1, "maxLength": 256 });
    emit_props["data"] = json!({ "description": "one event argument (any JSON)" });
    emit_props["args"] =
        json!({ "type": "array", "description": "several event arguments (instead of data)" });
    let mut rooms_props = target_props.clone();
    rooms_props["target_rooms"] = rooms.clone();

    let mut sockets = json!({
        "get": {
            "summary": "fetchSockets: the sockets of a namespace (or a room), cluster-wide",
            "parameters": [
                { "name": "nsp", "in": "query", "schema": { "type": "string", "default": "/" } },
                { "name": "room", "in": "query", "schema": { "type": "string", "minLength": 1, "maxLength": 256 } },
                { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 0, "default": 1000 } }
            ],
            "responses": common_errors(false),
        }
    });
    sockets["get"]["responses"]["200"] = json!({
        "description": "the sockets",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Sockets" } } }
    });
    let mut rooms_get = json!({
        "get": {
            "summary": "allRooms: every room of a namespace, cluster-wide",
            "parameters": [
                { "name": "nsp", "in": "query", "schema": { "type": "string", "default": "/" } }
            ],
            "responses": common_errors(false),
        }
    });
    rooms_get["get"]["responses"]["200"] = json!({
        "description": "the rooms",
        "content": { "application/json": { "schema": {
            "type": "object", "required": ["rooms"],
            "properties": { "rooms": { "type": "array", "items": { "type": "string" } } }
        } } }
    });

    let mut history_get = json!({
        "get": {
            "summary": "A room's history (--history): the messages after `since`, oldest first",
            "parameters": [
                { "name": "room", "in": "path", "required": true, "schema": { "type": "string", "minLength": 1, "maxLength": 256 } },
                { "name": "nsp", "in": "query", "schema": { "type": "string", "default": "/" } },
                { "name": "since", "in": "query", "description": "offset after which to read, as delivered (from the oldest kept when absent): decimal digits on a single node, a stream id <ms>-<seq> in cluster mode", "schema": { "type": "string", "pattern": "^[0-9]{1,20}(-[0-9]{1,20})?$" } },
                { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } },
                { "name": "epoch", "in": "query", "description": "the epoch `since` belongs to: another one answers 409", "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" } }
            ],
            "responses": common_errors(false),
        }
    });
    history_get["get"]["responses"]["404"] =
        error_response("unknown namespace, a room without history, or API disabled");
    history_get["get"]["responses"]["409"] = json!({
        "description": "`epoch` is not the history's current one (it was lost and started over)",
        "content": { "application/json": { "schema": {
            "type": "object", "required": ["error", "epoch"],
            "properties": { "error": { "type": "string" }, "epoch": { "type": "string" } }
        } } }
    });
    history_get["get"]["responses"]["200"] = json!({
        "description": "a page of the history",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/History" } } }
    });

    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "sio-gateway HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Reach Socket.IO clients from backends. Operations go through the adapter, so they are cluster-wide with --redis."
        },
        "servers": [ { "url": "/api/v1" } ],
        "security": [ { "bearer": [] } ],
        "paths": {
            "/emit": post("Emit an event to the sockets of a namespace, in rooms, except rooms", "Emit"),
            "/sockets/join": post("socketsJoin: make the matching sockets join target_rooms", "RoomsChange"),
            "/sockets/leave": post("socketsLeave: make the matching sockets leave target_rooms", "RoomsChange"),
            "/sockets/disconnect": post("disconnectSockets: disconnect the matching sockets", "Target"),
            "/sockets": sockets,
            "/rooms": rooms_get,
            "/rooms/{room}/history": history_get,
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "one of the --api-key values" } },
            "schemas": {
                "Target": { "type": "object", "properties": target_props },
                "Emit": { "type": "object", "required": ["event"], "properties": emit_props },
                "RoomsChange": { "type": "object", "required": ["target_rooms"], "properties": rooms_props },
                "Ok": {
                    "type": "object", "required": ["ok"],
                    "properties": {
                        "ok": { "type": "boolean" },
                        "undelivered_local_sockets": { "type": "integer", "description": "local sockets whose send buffer was full" }
                    }
                },
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": {
                        "error": { "type": "string" },
                        "local": { "type": "integer", "description": "503 of POST /emit: sockets of this node that got the event before the adapter failed" },
                        "cluster": { "type": "boolean", "description": "503 of POST /emit: false, the other nodes were not reached" }
                    }
                },
                "History": {
                    "type": "object", "required": ["nsp", "room", "epoch", "offset", "gap", "messages"],
                    "properties": {
                        "nsp": { "type": "string" },
                        "room": { "type": "string" },
                        "epoch": { "type": "string", "description": "the history's epoch: offsets are comparable within one epoch only" },
                        "offset": { "type": "string", "description": "the last offset handed out (\"0\" before the first message)" },
                        "gap": { "type": "string", "nullable": true, "enum": ["trimmed", "expired", null], "description": "messages right after `since` are gone (over SIZE, or older than TTL)" },
                        "messages": { "type": "array", "items": {
                            "type": "object", "required": ["offset", "event", "args"],
                            "properties": {
                                "offset": { "type": "string" },
                                "event": { "type": "string" },
                                "args": { "type": "array", "description": "the event arguments (binary ones as arrays of bytes)" }
                            }
                        } }
                    }
                },
                "Sockets": {
                    "type": "object", "required": ["sockets", "total", "complete"],
                    "properties": {
                        "total": { "type": "integer" },
                        "complete": { "type": "boolean", "description": "every node answered in time (always true on a single node); false: partial list" },
                        "sockets": { "type": "array", "items": {
                            "type": "object", "required": ["id", "node", "rooms", "user", "data"],
                            "properties": {
                                "id": { "type": "string" },
                                "node": { "type": "string", "nullable": true, "description": "the --node-id of the node holding the socket, from every node; null for a socket of a Node.js peer (its answer does not name its node)" },
                                "rooms": { "type": "array", "items": { "type": "string" } },
                                "user": { "type": "string", "nullable": true, "description": "authenticated subject (from the user:<sub> room)" },
                                "data": { "nullable": true, "description": "auth webhook data for sockets on the answering node; for a socket of another node in cluster mode, what that node reported (a gateway's auth webhook data, a Node.js peer's socket.data), else null" }
                            }
                        } }
                    }
                }
            }
        }
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn document(
    axum::extract::State(config): axum::extract::State<std::sync::Arc<crate::config::Config>>,
) -> axum::response::Response {
    if config.api_key.is_empty() {
        return super::ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "HTTP API disabled: no --api-key configured",
        )
        .into_response();
    }
    ([(header::CACHE_CONTROL, "no-cache")], Json(spec())).into_response()
}
