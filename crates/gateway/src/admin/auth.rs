//! Who may open the Admin UI's namespace: the credentials `instrument()` takes (a user name and
//! a bcrypt hash of the password), a session id handed out after a successful login, or nobody
//! checked at all when the operator opted out (`--admin-ui-no-auth`).
//!
//! A bcrypt check costs tens of milliseconds of CPU by design, so it runs on the blocking pool,
//! and attempts are rate-limited per client address (a token bucket, 1 per second, burst 5)
//! before any hashing: guessing is slow, and floods cannot eat the node's CPU. Every refusal is
//! counted (`auth_failures_total{reason="admin_credentials"|"admin_rate_limited"}`).
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;

use crate::limits::IpRateLimit;

/// A login session lives this long (the UI reconnects with it instead of the password).
const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);
/// Sessions kept at most; the oldest go first.
const MAX_SESSIONS: usize = 1024;

/// Why an admin connect was refused (the `connect_error` message).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminAuthError {
    #[error("invalid credentials")]
    Credentials,
    #[error("too many login attempts: try again in a few seconds")]
    RateLimited,
}

impl AdminAuthError {
    pub fn reason(&self) -> &'static str {
        match self {
            AdminAuthError::Credentials => "admin_credentials",
            AdminAuthError::RateLimited => "admin_rate_limited",
        }
    }
}

pub enum AdminAuth {
    /// `--admin-ui-no-auth`: explicitly open.
    Open,
    Basic {
        user: String,
        hash: String,
        sessions: Mutex<HashMap<String, Instant>>,
        attempts: IpRateLimit,
    },
}

/// The outcome of a successful check: a new session to hand to the UI, if one was made.
pub type NewSession = Option<String>;

impl AdminAuth {
    pub fn basic(user: String, hash: String) -> AdminAuth {
        AdminAuth::Basic {
            user,
            hash,
            sessions: Mutex::new(HashMap::new()),
            attempts: IpRateLimit::with_burst(1.0, 5),
        }
    }

    /// Check the CONNECT auth payload (`{username, password}` or `{sessionId}`) of a client at
    /// `remote`.
    pub async fn check(
        &self,
        auth: &Value,
        remote: Option<IpAddr>,
    ) -> Result<NewSession, AdminAuthError> {
        let AdminAuth::Basic {
            user,
            hash,
            sessions,
            attempts,
        } = self
        else {
            return Ok(None);
        };
        // A valid session resumes before the rate limit: checking it is a map lookup (no
        // bcrypt), and behind a balancer every client shares one address, so wrong passwords
        // sent once a second would otherwise lock out an admin who is already logged in.
        if let Some(id) = auth.get("sessionId").and_then(Value::as_str) {
            let mut s = sessions.lock().unwrap_or_else(|e| e.into_inner());
            if s.get(id).is_some_and(|t| t.elapsed() < SESSION_TTL) {
                return Ok(None);
            }
            s.remove(id);
        }
        if let Some(remote) = remote
            && !attempts.try_take(remote)
        {
            return Err(AdminAuthError::RateLimited);
        }
        let (Some(u), Some(p)) = (
            auth.get("username").and_then(Value::as_str),
            auth.get("password").and_then(Value::as_str),
        ) else {
            return Err(AdminAuthError::Credentials);
        };
        // The user name is compared after the hash, so a wrong name costs the same time.
        let (password, hash) = (p.to_owned(), hash.clone());
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if !(matches && u == user) {
            return Err(AdminAuthError::Credentials);
        }
        let id = new_session_id();
        let mut s = sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|_, t| t.elapsed() < SESSION_TTL);
        if s.len() >= MAX_SESSIONS
            && let Some(oldest) = s.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
        {
            s.remove(&oldest);
        }
        s.insert(id.clone(), Instant::now());
        Ok(Some(id))
    }
}

/// 128 random bits from the operating system, in hex.
fn new_session_id() -> String {
    let mut b = [0u8; 16];
    // SystemRandom fails only if the OS has no entropy source, where nothing else works either.
    let _ = SystemRandom::new().fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // bcrypt("s3cret", cost 4): cheap for tests; the check reads the cost from the hash.
    fn auth() -> AdminAuth {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        AdminAuth::basic("admin".into(), hash)
    }

    #[tokio::test]
    async fn credentials_sessions_and_refusals() {
        let a = auth();
        let ip = Some("10.0.0.1".parse().unwrap());
        let ok = a
            .check(&json!({"username": "admin", "password": "s3cret"}), ip)
            .await;
        let session = ok.expect("valid credentials").expect("a new session");
        assert_eq!(session.len(), 32);
        assert_eq!(
            a.check(&json!({"sessionId": session}), ip).await,
            Ok(None),
            "the session lets the UI back in"
        );
        assert_eq!(
            a.check(&json!({"username": "admin", "password": "nope"}), ip)
                .await,
            Err(AdminAuthError::Credentials)
        );
        assert_eq!(
            a.check(&json!({"username": "root", "password": "s3cret"}), ip)
                .await,
            Err(AdminAuthError::Credentials)
        );
        assert_eq!(
            a.check(&json!({"sessionId": "made-up"}), ip).await,
            Err(AdminAuthError::Credentials)
        );
        assert_eq!(
            a.check(&json!({"username": "admin", "password": "wrong"}), ip)
                .await,
            Err(AdminAuthError::Credentials)
        );
        // Burst of 5 used (a valid session's resume takes none): the next attempt is refused
        // before any hashing.
        assert_eq!(
            a.check(&json!({"username": "admin", "password": "s3cret"}), ip)
                .await,
            Err(AdminAuthError::RateLimited)
        );
        // An admin already logged in still gets back in from the same (shared) address.
        assert_eq!(
            a.check(&json!({"sessionId": session}), ip).await,
            Ok(None),
            "a valid session resumes whatever the address's guesses"
        );
        // Another address has its own bucket.
        let other = Some("10.0.0.2".parse().unwrap());
        assert!(a.check(&json!({"sessionId": "x"}), other).await.is_err());
        assert!(
            a.check(&json!({"username": "admin", "password": "s3cret"}), other)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn open_lets_anyone_in() {
        assert_eq!(AdminAuth::Open.check(&Value::Null, None).await, Ok(None));
    }
}
