//! The little HTTP/1.1 the generator needs: target URLs, the WebSocket upgrade
//! request, and a keep-alive `POST` for the emit API.
//!
//! Hand-written (with httparse for the response head) rather than pulling in a
//! full HTTP client: the upgrade must leave the socket's bytes after the 101
//! head untouched for the WebSocket reader, which we get by `peek`ing the head
//! and consuming exactly its length.

use std::net::SocketAddr;

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server to load: `http://host:port[/path/]` (also `ws://`).
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub addr: SocketAddr,
    /// Engine.IO path, `/socket.io/` by default.
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or_else(|| anyhow!("only http:// or ws:// URLs are supported: {url}"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let path = match path {
            "" | "/" => "/socket.io/".to_string(),
            p if p.ends_with('/') => p.to_string(),
            p => format!("{p}/"),
        };
        let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
            .with_context(|| format!("resolving {hostport}"))?
            .next()
            .ok_or_else(|| anyhow!("no address for {hostport}"))?;
        Ok(Self {
            host: hostport.to_string(),
            addr,
            path,
        })
    }
}

const CHUNKED: usize = usize::MAX;

/// Read one HTTP response head without consuming anything after it.
/// Returns (status, head length, body length): the Content-Length, or
/// `CHUNKED` for a chunked body.
async fn read_head(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(u16, usize, usize)> {
    loop {
        let n = stream.peek(buf).await?;
        if n == 0 {
            bail!("connection closed before the HTTP response");
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf[..n])? {
            httparse::Status::Complete(len) => {
                let status = resp.code.unwrap_or(0);
                let header = |name: &str| {
                    resp.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                };
                let chunked = header("transfer-encoding")
                    .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
                let clen = header("content-length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                return Ok((status, len, if chunked { CHUNKED } else { clen }));
            }
            httparse::Status::Partial => {
                if n == buf.len() {
                    bail!("HTTP response head larger than {} bytes", buf.len());
                }
                // peek returns what is there (and the socket stays readable):
                // back off briefly for the rest of the head.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }
}

/// Open a TCP connection and upgrade it to a WebSocket on the Engine.IO path.
pub async fn ws_upgrade(t: &Target) -> Result<TcpStream> {
    let mut s = TcpStream::connect(t.addr).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "GET {}?EIO=4&transport=websocket HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        t.path, t.host
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = [0u8; 4096];
    let (status, len, clen) = read_head(&mut s, &mut buf).await?;
    if status != 101 {
        let mut body = vec![0u8; len + if clen == CHUNKED { 0 } else { clen.min(512) }];
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            s.read_exact(&mut body),
        )
        .await;
        bail!(
            "WebSocket upgrade refused: HTTP {status} {}",
            String::from_utf8_lossy(&body[len..]).trim()
        );
    }
    // Consume exactly the head; frames that followed it stay in the socket.
    s.read_exact(&mut buf[..len]).await?;
    Ok(s)
}

/// A keep-alive HTTP/1.1 connection for `POST`ing JSON.
pub struct HttpClient {
    target: Target,
    stream: Option<TcpStream>,
    auth: Option<String>,
    req: Vec<u8>,
    scratch: Vec<u8>,
}

impl HttpClient {
    pub fn new(target: Target, api_key: Option<String>) -> Self {
        Self {
            target,
            stream: None,
            auth: api_key,
            req: Vec::with_capacity(1024),
            scratch: vec![0; 8192],
        }
    }

    /// POST `body` to `path`; returns the status and the (lossy) response body.
    pub async fn post_json(&mut self, path: &str, body: &[u8]) -> Result<(u16, String)> {
        use std::io::Write;
        if self.stream.is_none() {
            let s = TcpStream::connect(self.target.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        self.req.clear();
        let _ = write!(
            self.req,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n",
            self.target.host,
            body.len()
        );
        if let Some(k) = &self.auth {
            let _ = write!(self.req, "Authorization: Bearer {k}\r\n");
        }
        self.req.extend_from_slice(b"\r\n");
        self.req.extend_from_slice(body);
        let res = self.exchange().await;
        if res.is_err() {
            self.stream = None;
        }
        res
    }

    async fn exchange(&mut self) -> Result<(u16, String)> {
        let s = self
            .stream
            .as_mut()
            .ok_or_else(|| anyhow!("not connected"))?;
        s.write_all(&self.req).await?;
        let (status, len, clen) = read_head(s, &mut self.scratch).await?;
        s.read_exact(&mut self.scratch[..len]).await?;
        let body = if clen == CHUNKED {
            read_chunked(s).await?
        } else {
            let mut body = vec![0u8; clen];
            s.read_exact(&mut body).await?;
            body
        };
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Read a chunked body (chunk sizes in hex, each chunk followed by CRLF, ended
/// by a zero-size chunk and an empty trailer line).
async fn read_chunked(s: &mut TcpStream) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(s).await?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| anyhow!("bad chunk size {size_hex:?}"))?;
        if size == 0 {
            // Trailers until the empty line.
            while !read_line(s).await?.is_empty() {}
            return Ok(body);
        }
        let at = body.len();
        body.resize(at + size, 0);
        s.read_exact(&mut body[at..]).await?;
        read_line(s).await?;
    }
}

async fn read_line(s: &mut TcpStream) -> Result<String> {
    let mut line = Vec::new();
    loop {
        let b = s.read_u8().await?;
        if b == b'\n' {
            break;
        }
        line.push(b);
        if line.len() > 1024 {
            bail!("HTTP line too long");
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = Target::parse("http://127.0.0.1:3000").unwrap();
        assert_eq!(t.path, "/socket.io/");
        assert_eq!(t.addr.port(), 3000);
        let t = Target::parse("ws://127.0.0.1:3001/custom").unwrap();
        assert_eq!(t.path, "/custom/");
        assert!(Target::parse("https://x").is_err());
    }
}
