//! `--auth webhook`: ask a backend whether a connection may proceed.
//!
//! The handshake is POSTed as JSON `{namespace, auth, headers, query, remote_address}` (only
//! a fixed list of headers is forwarded, so hop-by-hop and proxy internals do not leak). A 2xx
//! JSON answer accepts, and may carry `user` (the subject), `rooms` (joined on connect),
//! `data` (kept with the socket), `can_join` / `can_publish` (extra room globs) and `exp` (when
//! the grant ends, seconds since the Unix epoch: the session is cut then, `--auth-expiry`; an
//! `exp` already past refuses the connection, one that is not a number is a bad answer). Any other
//! status refuses with the backend's message (`message` or `error` field, else the body
//! text). A timeout or an unreachable backend (a failed TLS handshake included: `https://`
//! backends are checked against the system roots and `--webhook-ca-file`) refuses too, with a
//! message that says so. At most
//! `--auth-webhook-concurrency` calls are in flight; the wait for a slot (at most half the
//! timeout) counts in the timeout (the slots and the bounded connection pool are the shared client's, `webhook_client`).
use std::path::Path;

use serde_json::{Map, Value, json};

use super::{AuthError, Handshake, Identity, grants, room_list};
use crate::{config::AuthConfig, webhook_client::WebhookClient};

/// Headers forwarded to the backend. Also the headers a session's kept request head retains
/// when this authenticator is on (`request_head`): add one here and it is kept too.
pub const FORWARDED_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "origin",
    "user-agent",
    "referer",
    "accept-language",
    "x-forwarded-for",
    "x-real-ip",
    "x-request-id",
];

/// Longest backend message passed on to the client.
const MAX_MESSAGE: usize = 200;

pub struct WebhookAuth {
    client: WebhookClient,
}

/// The refusal text of a non-2xx answer.
fn backend_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        ["message", "error"]
            .iter()
            .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_owned))
    });
    let mut m = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    if m.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
    }
    m
}

impl WebhookAuth {
    /// `ca_file`: `--webhook-ca-file`, extra roots for an https:// backend.
    pub fn from_config(c: &AuthConfig, ca_file: Option<&Path>) -> anyhow::Result<WebhookAuth> {
        let url = c
            .webhook
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("--auth webhook needs --auth-webhook URL"))?;
        Ok(WebhookAuth {
            client: WebhookClient::new(url, c.webhook_timeout, c.webhook_concurrency, ca_file)?,
        })
    }

    pub async fn check(&self, h: &Handshake<'_>) -> Result<Identity, AuthError> {
        let mut headers = Map::new();
        for name in FORWARDED_HEADERS {
            if let Some(v) = h.headers.get(*name).and_then(|v| v.to_str().ok()) {
                headers.insert((*name).to_owned(), Value::String(v.to_owned()));
            }
        }
        let body = json!({
            "namespace": h.nsp,
            "auth": h.auth,
            "headers": headers,
            "query": h.query,
            "remote_address": h.remote.map(|a| a.ip().to_string()),
        });
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let (status, resp) = self
            .client
            .post_json(body)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        if !status.is_success() {
            let msg = backend_message(&resp);
            return Err(AuthError::Refused(if msg.is_empty() {
                format!("backend answered {status}")
            } else {
                msg
            }));
        }
        let v: Value = if resp.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Map::new())
        } else {
            serde_json::from_slice(&resp).map_err(|e| {
                AuthError::Unavailable(format!("backend answered {status} with invalid JSON: {e}"))
            })?
        };
        let expires_at = match v.get("exp") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(exp) if exp > super::expiry::unix_now() as f64 => Some(exp as u64),
                _ => {
                    return Err(AuthError::Refused(
                        "the backend's grant has expired (exp)".into(),
                    ));
                }
            },
            Some(_) => {
                return Err(AuthError::Unavailable(
                    "backend answered with an invalid exp (seconds since the Unix epoch expected)"
                        .into(),
                ));
            }
        };
        let sub = match v.get("user") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(Identity {
            sub,
            rooms: room_list(v.get("rooms")),
            data: v.get("data").cloned().unwrap_or(Value::Null),
            can_join: grants(v.get("can_join")),
            can_publish: grants(v.get("can_publish")),
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(backend_message(br#"{"message":"banned"}"#), "banned");
        assert_eq!(backend_message(br#"{"error":"nope"}"#), "nope");
        assert_eq!(backend_message(b"  go away \n"), "go away");
        assert_eq!(backend_message("é".repeat(150).as_bytes()).len(), 200);
    }
}
