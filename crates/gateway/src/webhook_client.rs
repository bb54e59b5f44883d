//! A small HTTP/1 JSON client for the backend webhooks (auth and upstream): POST a JSON body
//! to an `http://` or `https://` URL with a timeout, return the status and body.
//!
//! hyper (already under axum) rather than reqwest keeps a single HTTP stack in the binary;
//! `https://` goes through hyper-rustls on the rustls + ring already linked for Redis TLS.
//! The server certificate is checked against the system's trust store (rustls-native-certs:
//! the OS bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR`) plus, optionally, the PEM certificates
//! of `--webhook-ca-file` (a private CA). Host names and IP addresses are checked against the
//! certificate's subject alternative names.
//!
//! A TLS failure (untrusted certificate, wrong host name, a plain-HTTP server on an https
//! URL...) is [`WebhookError::Tls`]: callers answer it like an unreachable backend, and its
//! reason is logged here (warn), not passed on to clients. Every call, the TLS handshake
//! included, is bounded by the client's timeout.
//!
//! Each client has a number of slots (`--auth-webhook-concurrency`,
//! `--upstream-webhook-concurrency`): at most that many calls are in flight. A call waits for
//! a slot at most half its timeout ([`WebhookError::Busy`] when none frees by then), so the
//! wait and the call together stay within the timeout and a call that starts has at least half
//! of it: waiting the whole timeout, a queued call (slots are handed out in turn, all with the
//! same timeout) got its slot just before its own deadline, and went to the backend with
//! milliseconds left, to be abandoned there. Its pool
//! keeps at most as many idle keep-alive connections to the backend, so calls reuse
//! connections and a node holds at most about twice that many descriptors for one webhook,
//! however many clients call it.
use std::{
    error::Error as StdError,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode, Uri, header};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, pem::PemObject},
};
use tokio::{sync::Semaphore, time::Instant};

use crate::warn_limit::WarnLimit;

/// Largest response body read from a backend.
const MAX_RESPONSE: usize = 1 << 20;

/// Why one webhook call failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("backend unreachable: {0}")]
    Connect(String),
    /// The TLS handshake failed; `reason` (logged, not shown to clients) says why.
    #[error("backend unreachable: TLS handshake failed")]
    Tls { reason: String },
    #[error("bad response: {0}")]
    Body(String),
    #[error("invalid request: {0}")]
    Request(String),
    /// No slot freed within `waited` (half the timeout): `limit` calls were in flight.
    #[error("backend busy: no free slot within {waited:?} ({limit} calls in flight)")]
    Busy { limit: usize, waited: Duration },
}

/// Why a webhook client could not be built (a start-up error).
#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    #[error("invalid webhook URL `{url}`: {reason}")]
    Url { url: String, reason: String },
    #[error(transparent)]
    CaFile(#[from] CaFileError),
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why `--webhook-ca-file` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a PEM certificate bundle: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    Empty { path: PathBuf },
    #[error("{path}: certificate #{index} is not a usable CA certificate: {reason}")]
    BadCertificate {
        path: PathBuf,
        index: usize,
        reason: String,
    },
}

/// Read the PEM certificates of an extra CA bundle, checking that each one can serve as a
/// trust anchor. Used at start-up and by `check-config`.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaFileError> {
    let pem_err = |e: rustls::pki_types::pem::Error| match e {
        rustls::pki_types::pem::Error::Io(source) => CaFileError::Read {
            path: path.to_owned(),
            source,
        },
        other => CaFileError::Pem {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err)?;
    if certs.is_empty() {
        return Err(CaFileError::Empty {
            path: path.to_owned(),
        });
    }
    let mut store = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        store
            .add(cert.clone())
            .map_err(|e| CaFileError::BadCertificate {
                path: path.to_owned(),
                index: i + 1,
                reason: e.to_string(),
            })?;
    }
    Ok(certs)
}

/// The roots an https webhook is checked against: the system's, plus `extra_ca_file`.
fn root_store(extra_ca_file: Option<&Path>) -> Result<RootCertStore, CaFileError> {
    let mut store = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "webhook TLS: could not load some system root certificates");
    }
    let (added, ignored) = store.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "webhook TLS: system root certificates");
    if let Some(path) = extra_ca_file {
        for cert in load_ca_file(path)? {
            // Checked by load_ca_file: cannot fail.
            let _ = store.add(cert);
        }
    }
    if store.is_empty() {
        tracing::warn!(
            "webhook TLS: no trusted root certificate (no system bundle, no --webhook-ca-file): \
             every https:// webhook call will fail"
        );
    }
    Ok(store)
}

/// `scheme://host[:port]` of a URL, for logs (no path or query: they may carry secrets).
fn origin(url: &Uri) -> String {
    // Host and port only: userinfo (`user:password@`) may hold a credential.
    let scheme = url.scheme_str().unwrap_or("?");
    let host = url.host().unwrap_or("?");
    match url.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

/// Parse a webhook URL: `http://` or `https://` with a host.
pub fn parse_url(url: &str) -> Result<Uri, WebhookSetupError> {
    let bad = |reason: &str| WebhookSetupError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| {
        bad(&format!("{e} (use an http:// or https:// URL)"))
    })?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(bad(&format!(
                "unsupported scheme `{other}` (use http:// or https://)"
            )));
        }
        None => return Err(bad("missing scheme (use http:// or https://)")),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(uri),
        _ => Err(bad("missing host")),
    }
}

#[derive(Clone)]
pub struct WebhookClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: Uri,
    timeout: Duration,
    /// One permit per call in flight (see the module doc).
    slots: Arc<Semaphore>,
    concurrency: usize,
    /// TLS failures since the last logged one; a misconfigured backend behind a busy gateway
    /// gives one warning per 10 s with the count, not one per call.
    tls_warn: Arc<WarnLimit>,
}

impl WebhookClient {
    /// A client for `url` with `concurrency` slots (at least 1) and as many idle pooled
    /// connections. For an `https://` URL the system roots are loaded, plus the certificates
    /// of `extra_ca_file` if given.
    pub fn new(
        url: &str,
        timeout: Duration,
        concurrency: usize,
        extra_ca_file: Option<&Path>,
    ) -> Result<WebhookClient, WebhookSetupError> {
        let concurrency = concurrency.max(1);
        let url = parse_url(url)?;
        let roots = if url.scheme_str() == Some("https") {
            root_store(extra_ca_file)?
        } else {
            // Never used: the connector only does TLS for https:// URLs.
            RootCertStore::empty()
        };
        // ring, explicitly: the provider the rest of the binary (fred, jsonwebtoken) uses.
        let tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(timeout));
        conn.set_nodelay(true);
        // Without this the HTTP connector refuses https:// URIs before TLS gets a chance.
        conn.enforce_http(false);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(conn);
        // hyper's pool keeps any number of idle connections per host by default: after a
        // burst of N calls at once, N descriptors stayed open.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(concurrency)
            .build(https);
        Ok(WebhookClient {
            client,
            url,
            timeout,
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            tls_warn: Arc::new(WarnLimit::new(Duration::from_secs(10))),
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POST `body` (JSON) and read the whole response, all within the timeout: the wait for
    /// a slot included, at most half of it ([`WebhookError::Busy`] when none frees by then).
    pub async fn post_json(&self, body: Vec<u8>) -> Result<(StatusCode, Bytes), WebhookError> {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let max_wait = self.timeout / 2;
        let busy = || WebhookError::Busy {
            limit: self.concurrency,
            waited: max_wait,
        };
        let _slot = match tokio::time::timeout_at(start + max_wait, self.slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            // The semaphore is never closed; treat it like no slot.
            Ok(Err(_)) | Err(_) => return Err(busy()),
        };
        self.call(body, deadline).await
    }

    /// One request, within `deadline`.
    async fn call(
        &self,
        body: Vec<u8>,
        deadline: Instant,
    ) -> Result<(StatusCode, Bytes), WebhookError> {
        let req = Request::post(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("sio-gateway/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| WebhookError::Request(e.to_string()))?;
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| self.request_error(&e))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| WebhookError::Body(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout_at(deadline, call)
            .await
            .map_err(|_| WebhookError::Timeout(self.timeout))?
    }

    /// Classify a failed request; a TLS failure is logged with its reason.
    fn request_error(&self, e: &hyper_util::client::legacy::Error) -> WebhookError {
        match find_tls_error(e) {
            Some(tls) => {
                let reason = tls.to_string();
                if let Some(suppressed) = self.tls_warn.allow() {
                    tracing::warn!(
                        backend = %origin(&self.url),
                        reason = %reason,
                        suppressed,
                        "webhook TLS handshake failed"
                    );
                }
                WebhookError::Tls { reason }
            }
            None => WebhookError::Connect(error_chain(e)),
        }
    }
}

/// The rustls error behind a failed request, if the failure is TLS. hyper-rustls wraps it in
/// `io::Error`s, whose `source()` skips the wrapped error, so those are opened by hand.
fn find_tls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            cur = Some(inner as &(dyn StdError + 'static));
            continue;
        }
        cur = err.source();
    }
    None
}

/// hyper's errors hide the cause (e.g. "connection refused") one level down.
fn error_chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(parse_url("http://127.0.0.1:9/auth").is_ok());
        assert!(parse_url("https://backend.internal/auth").is_ok());
        for bad in ["ftp://x/y", "backend/auth", "https:///nohost", "http://"] {
            let e = parse_url(bad).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        assert!(
            parse_url("ftp://x/y")
                .map(|_| ())
                .unwrap_err()
                .to_string()
                .contains("unsupported scheme `ftp`")
        );
    }

    #[test]
    fn origin_hides_credentials_path_and_query() {
        let u = parse_url("https://user:pw@h.example:8443/a?token=secret").unwrap();
        assert_eq!(origin(&u), "https://h.example:8443");
        let u = parse_url("http://127.0.0.1/a").unwrap();
        assert_eq!(origin(&u), "http://127.0.0.1");
    }

    #[test]
    fn ca_file_errors() {
        let dir = std::env::temp_dir().join(format!("sio-ca-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        assert!(matches!(
            load_ca_file(&missing),
            Err(CaFileError::Read { .. })
        ));
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(
            load_ca_file(&empty),
            Err(CaFileError::Empty { .. })
        ));
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = load_ca_file(&garbage).unwrap_err();
        assert!(
            matches!(e, CaFileError::BadCertificate { index: 1, .. }),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A backend that accepts but never answers: with one slot, a second call waits for it
    /// half its timeout and is `Busy` (it never reaches the backend); the first one times out;
    /// a later call gets the freed slot.
    #[tokio::test]
    async fn a_call_waits_for_a_slot_within_its_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(s);
            }
        });
        let timeout = Duration::from_millis(300);
        let c =
            WebhookClient::new(&format!("http://127.0.0.1:{port}/e"), timeout, 1, None).unwrap();
        let (first, second) = tokio::join!(c.post_json(b"{}".to_vec()), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.post_json(b"{}".to_vec()).await
        });
        assert!(matches!(first, Err(WebhookError::Timeout(_))), "{first:?}");
        assert!(
            matches!(second, Err(WebhookError::Busy { limit: 1, .. })),
            "{second:?}"
        );
        assert_eq!(
            second.map(|_| ()).unwrap_err().to_string(),
            "backend busy: no free slot within 150ms (1 calls in flight)"
        );
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        // The slot is free again.
        let third = c.post_json(b"{}".to_vec()).await;
        assert!(matches!(third, Err(WebhookError::Timeout(_))), "{third:?}");
    }

    #[test]
    fn tls_error_found_through_io_wrappers() {
        let inner = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let outer = std::io::Error::other(inner);
        let found = find_tls_error(&outer).map(ToString::to_string);
        assert_eq!(
            found.as_deref(),
            Some("invalid peer certificate: UnknownIssuer")
        );
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(find_tls_error(&plain).is_none());
    }
}
