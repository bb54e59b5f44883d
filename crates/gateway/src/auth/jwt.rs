//! `--auth jwt`: verify a JWT from the handshake with a pinned algorithm.
//!
//! The key is an HMAC secret (`--jwt-secret`, HS256/384/512), a PEM public key
//! (`--jwt-public-key`, RS*/PS*/ES*/EdDSA) or a JWKS file (`--jwt-jwks`, key chosen by the
//! token's `kid`, re-read when the file changes or on SIGHUP). The algorithm is pinned
//! (`--jwt-alg`): a token announcing another one — `none`, or HS256 signed with an RSA public
//! key as the secret (the classic confusion attack) — is refused before any signature check.
//! `exp` is required; `exp`/`nbf` are checked with `--jwt-leeway`, and the connection is cut
//! once `exp` + the leeway passes (`--auth-expiry`, [`super::expiry`]). A configured `--jwt-issuer` /
//! `--jwt-audience` makes `iss` / `aud` required: a token without the claim is refused, not only
//! one with a wrong value. A header with `crit` (RFC 7515 §4.1.11: extensions the recipient must
//! understand) is refused, since this verifier understands none.
//!
//! Claims used: `sub` (→ `user:<sub>` room and `{sub}` in rules), `rooms` (joined on
//! connect), `can_join` / `can_publish` (extra room globs granted to this connection).
use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use anyhow::Context as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
use serde_json::Value;

use super::{AuthError, Handshake, Identity, grants, room_list};
use crate::config::AuthConfig;

enum Keys {
    Single(DecodingKey),
    /// Replaced whole by the watcher on reload; read once per connect.
    Jwks(Arc<RwLock<JwkSet>>),
}

pub struct JwtAuth {
    keys: Keys,
    validation: Validation,
}

fn parse_alg(s: &str) -> anyhow::Result<Algorithm> {
    s.parse::<Algorithm>().map_err(|_| {
        anyhow::anyhow!("--jwt-alg `{s}` is not a JWT algorithm (HS256, RS256, ES256, EdDSA, ...)")
    })
}

fn pem_key(alg: Algorithm, pem: &[u8]) -> anyhow::Result<DecodingKey> {
    use Algorithm::*;
    Ok(match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => DecodingKey::from_rsa_pem(pem)?,
        ES256 | ES384 => DecodingKey::from_ec_pem(pem)?,
        EdDSA => DecodingKey::from_ed_pem(pem)?,
        HS256 | HS384 | HS512 => {
            anyhow::bail!(
                "--jwt-alg {alg:?} is an HMAC algorithm: use --jwt-secret, not a public key"
            )
        }
    })
}

fn read_jwks(path: &Path) -> anyhow::Result<JwkSet> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read JWKS file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("invalid JWKS file {}", path.display()))
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Re-read the JWKS file when its modification time changes (polled) or on SIGHUP. A file
/// that fails to parse keeps the previous keys (logged).
fn watch_jwks(path: PathBuf, set: Arc<RwLock<JwkSet>>) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut seen = mtime(&path);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            #[cfg(unix)]
            let forced = match hup.as_mut() {
                Some(h) => tokio::select! { _ = tick.tick() => false, _ = h.recv() => true },
                None => {
                    tick.tick().await;
                    false
                }
            };
            #[cfg(not(unix))]
            let forced = {
                tick.tick().await;
                false
            };
            let now = mtime(&path);
            if !forced && now == seen {
                continue;
            }
            seen = now;
            match read_jwks(&path) {
                Ok(new) => {
                    let n = new.keys.len();
                    if let Ok(mut w) = set.write() {
                        *w = new;
                    }
                    tracing::info!(path = %path.display(), keys = n, forced, "JWKS reloaded");
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "JWKS reload failed, keeping the previous keys")
                }
            }
        }
    });
}

impl JwtAuth {
    pub fn from_config(c: &AuthConfig) -> anyhow::Result<JwtAuth> {
        let alg = match &c.jwt_alg {
            Some(a) => parse_alg(a)?,
            None if c.jwt_secret.is_some() => Algorithm::HS256,
            None => Algorithm::RS256,
        };
        let keys = if let Some(secret) = &c.jwt_secret {
            if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                anyhow::bail!("--jwt-secret needs an HMAC --jwt-alg (HS256/384/512), not {alg:?}");
            }
            Keys::Single(DecodingKey::from_secret(secret.as_bytes()))
        } else if let Some(path) = &c.jwt_public_key {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --jwt-public-key {}", path.display()))?;
            Keys::Single(
                pem_key(alg, &pem)
                    .with_context(|| format!("invalid --jwt-public-key {}", path.display()))?,
            )
        } else if let Some(path) = &c.jwt_jwks {
            let set = Arc::new(RwLock::new(read_jwks(path)?));
            watch_jwks(path.clone(), set.clone());
            Keys::Jwks(set)
        } else {
            anyhow::bail!("--auth jwt needs --jwt-secret, --jwt-public-key or --jwt-jwks");
        };
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = c.jwt_leeway.as_secs();
        validation.validate_nbf = true;
        // jsonwebtoken checks `iss` / `aud` only when the token has them; an operator who
        // configured them means "required", so they join `exp` in the required set.
        let mut required = vec!["exp"];
        if let Some(iss) = &c.jwt_issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match &c.jwt_audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(JwtAuth { keys, validation })
    }

    /// Verify `token`; the claims on success.
    pub fn verify(&self, token: &str) -> Result<Value, AuthError> {
        let bad = |e: jsonwebtoken::errors::Error| AuthError::InvalidToken(describe(&e));
        // jsonwebtoken has no `none` algorithm: such a header fails to parse here.
        let header = decode_header(token).map_err(|_| {
            AuthError::InvalidToken(
                "malformed token header or unsupported algorithm (`none` is never accepted)".into(),
            )
        })?;
        // jsonwebtoken's `Header` drops members it does not know, `crit` among them.
        refuse_crit(token)?;
        // Refuse a foreign algorithm here, with a clear message, before choosing a key.
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(AuthError::InvalidToken(format!(
                "algorithm {:?} not accepted",
                header.alg
            )));
        }
        let data = match &self.keys {
            Keys::Single(k) => decode::<Value>(token, k, &self.validation).map_err(bad)?,
            Keys::Jwks(set) => {
                let key = {
                    let set = set
                        .read()
                        .map_err(|_| AuthError::InvalidToken("key set unavailable".into()))?;
                    let jwk = match &header.kid {
                        Some(kid) => set.find(kid),
                        None if set.keys.len() == 1 => set.keys.first(),
                        None => None,
                    }
                    .ok_or_else(|| {
                        AuthError::InvalidToken(format!(
                            "no key for kid {:?} in the key set",
                            header.kid.as_deref().unwrap_or("(none)")
                        ))
                    })?;
                    DecodingKey::from_jwk(jwk).map_err(bad)?
                };
                decode::<Value>(token, &key, &self.validation).map_err(bad)?
            }
        };
        Ok(data.claims)
    }

    pub fn check(&self, h: &Handshake<'_>) -> Result<Identity, AuthError> {
        let token = h.token().ok_or(AuthError::MissingToken)?;
        let claims = self.verify(&token)?;
        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(Identity {
            sub,
            rooms: room_list(claims.get("rooms")),
            data: Value::Null,
            can_join: grants(claims.get("can_join")),
            can_publish: grants(claims.get("can_publish")),
            // `exp` is required and was checked to be a number. jsonwebtoken accepts a token
            // until `exp < now - leeway`: the first second it refuses it is `exp + leeway + 1`.
            expires_at: claims.get("exp").and_then(Value::as_f64).map(|exp| {
                (exp.max(0.0) as u64)
                    .saturating_add(self.validation.leeway)
                    .saturating_add(1)
            }),
        })
    }
}

/// RFC 7515 §4.1.11: a recipient must refuse a JWS whose `crit` header names an extension it
/// does not understand. This verifier understands none, so any `crit` is refused (an empty
/// or malformed one too: the RFC forbids those).
fn refuse_crit(token: &str) -> Result<(), AuthError> {
    use base64::Engine as _;
    let malformed = || AuthError::InvalidToken("malformed token header".into());
    let head = token.split('.').next().ok_or_else(malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .map_err(|_| malformed())?;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    match header.get("crit") {
        None => Ok(()),
        Some(c) => Err(AuthError::InvalidToken(format!(
            "critical header extension(s) {c} not understood (RFC 7515 crit)"
        ))),
    }
}

/// A short, client-facing reason (no key material, no token echo).
fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind::*;
    match e.kind() {
        ExpiredSignature => "token expired".into(),
        ImmatureSignature => "token not yet valid (nbf)".into(),
        InvalidIssuer => "wrong issuer".into(),
        InvalidAudience => "wrong audience".into(),
        InvalidSignature => "bad signature".into(),
        InvalidAlgorithm => "algorithm not accepted".into(),
        MissingRequiredClaim(c) => format!("missing claim `{c}`"),
        InvalidToken | Base64(_) | Json(_) | Utf8(_) => "malformed token".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;
    use crate::config::{AuthMode, Config, Options};

    fn auth(o: Options) -> Result<JwtAuth, String> {
        let c = Config::resolve(Options {
            auth: Some(AuthMode::Jwt),
            ..o
        })
        .map_err(|e| e.to_string())?;
        JwtAuth::from_config(&c.auth).map_err(|e| format!("{e:#}"))
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn token(alg: Algorithm, claims: Value) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(b"unit-secret-0123456789"),
        )
        .unwrap()
    }

    #[test]
    fn configuration_errors() {
        let e = auth(Options::default()).err().unwrap();
        assert!(e.contains("--jwt-secret"), "{e}");
        let e = auth(Options {
            jwt_secret: Some("x-0123456789abcdef".into()),
            jwt_alg: Some("RS256".into()),
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(e.contains("HMAC"), "{e}");
        let e = auth(Options {
            jwt_secret: Some("x-0123456789abcdef".into()),
            jwt_alg: Some("none".into()),
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(e.contains("not a JWT algorithm"), "{e}");
    }

    #[test]
    fn configured_issuer_and_audience_are_required() {
        let a = auth(Options {
            jwt_secret: Some("unit-secret-0123456789".into()),
            jwt_issuer: Some("https://issuer.example".into()),
            jwt_audience: Some("chat".into()),
            ..Default::default()
        })
        .unwrap();
        let exp = now() + 60;
        let full = json!({"sub": "u1", "exp": exp, "iss": "https://issuer.example", "aud": "chat"});
        assert!(a.verify(&token(Algorithm::HS256, full)).is_ok());
        let no_iss = json!({"sub": "u1", "exp": exp, "aud": "chat"});
        assert_eq!(
            a.verify(&token(Algorithm::HS256, no_iss))
                .unwrap_err()
                .to_string(),
            "invalid token: missing claim `iss`"
        );
        let no_aud = json!({"sub": "u1", "exp": exp, "iss": "https://issuer.example"});
        assert_eq!(
            a.verify(&token(Algorithm::HS256, no_aud))
                .unwrap_err()
                .to_string(),
            "invalid token: missing claim `aud`"
        );
        // Not configured: not required.
        let plain = auth(Options {
            jwt_secret: Some("unit-secret-0123456789".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(
            plain
                .verify(&token(Algorithm::HS256, json!({"sub": "u1", "exp": exp})))
                .is_ok()
        );
    }

    /// An HS256 token signed with the test secret, with `header` as its header, verbatim.
    fn token_with_header(header: &[u8], claims: Value) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let input = format!(
            "{}.{}",
            b64.encode(header),
            b64.encode(serde_json::to_vec(&claims).unwrap())
        );
        let key = EncodingKey::from_secret(b"unit-secret-0123456789");
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{input}.{sig}")
    }

    #[test]
    fn crit_header_is_refused() {
        let a = auth(Options {
            jwt_secret: Some("unit-secret-0123456789".into()),
            ..Default::default()
        })
        .unwrap();
        let claims = json!({"sub": "u1", "exp": now() + 60});
        // Right key, right algorithm, but a `crit` header.
        let crit = br#"{"alg":"HS256","typ":"JWT","crit":["exp-ext"],"exp-ext":1}"#;
        let e = a
            .verify(&token_with_header(crit, claims.clone()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("crit"), "{e}");
        // The same token without `crit` passes: the refusal is the header, not the signature.
        let plain = br#"{"alg":"HS256","typ":"JWT"}"#;
        assert!(a.verify(&token_with_header(plain, claims)).is_ok());
    }

    #[test]
    fn pinned_algorithm_and_time_claims() {
        let a = auth(Options {
            jwt_secret: Some("unit-secret-0123456789".into()),
            ..Default::default()
        })
        .unwrap();
        let ok = token(Algorithm::HS256, json!({"sub": "u1", "exp": now() + 60}));
        assert_eq!(a.verify(&ok).unwrap()["sub"], "u1");
        let other = token(Algorithm::HS384, json!({"sub": "u1", "exp": now() + 60}));
        assert_eq!(
            a.verify(&other).unwrap_err().to_string(),
            "invalid token: algorithm HS384 not accepted"
        );
        let old = token(Algorithm::HS256, json!({"sub": "u1", "exp": now() - 60}));
        assert_eq!(
            a.verify(&old).unwrap_err().to_string(),
            "invalid token: token expired"
        );
        // Within the default 5 s leeway.
        let edge = token(Algorithm::HS256, json!({"sub": "u1", "exp": now() - 2}));
        assert!(a.verify(&edge).is_ok());
    }
}
