// Throwaway TLS material for the https webhook tests, made at test time with the `openssl`
// command line (scripts/test.sh installs it): a private CA, a server certificate it signed for
// 127.0.0.1 / localhost, and one it signed for another name only (to test host-name checks).
// Plus a Node.js `https` server on 127.0.0.1 to play the webhook backend.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";

function openssl(dir, ...args) {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"], timeout: 30000 });
}

/** Issue a leaf certificate signed by the CA in `dir` for the given subjectAltName. */
function issue(dir, name, cn, san) {
  openssl(dir, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`);
  fs.writeFileSync(path.join(dir, `${name}.ext`), [
    `subjectAltName=${san}`,
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature",
    "extendedKeyUsage=serverAuth",
    "",
  ].join("\n"));
  openssl(dir, "x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key",
    "-set_serial", String(Date.now()), "-days", "2", "-sha256", "-extfile", `${name}.ext`, "-out", `${name}.pem`);
  return {
    key: fs.readFileSync(path.join(dir, `${name}.key`)),
    cert: fs.readFileSync(path.join(dir, `${name}.pem`)),
  };
}

/**
 * Make a CA and two server certificates in a temporary directory removed after the test.
 * Returns { dir, caFile, server: {key, cert} (127.0.0.1 + localhost), otherHost: {key, cert} }.
 */
export function makeTls(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-tls-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  openssl(dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-sha256", "-subj", "/CN=sio-gateway test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  return {
    dir,
    caFile: path.join(dir, "ca.pem"),
    server: issue(dir, "server", "localhost", "IP:127.0.0.1,DNS:localhost"),
    otherHost: issue(dir, "other", "other.invalid", "DNS:other.invalid"),
  };
}

/**
 * An https server on 127.0.0.1 answering JSON POSTs with `handler(body) -> [status, json]`.
 * Records every parsed body in `seen` and the TLS handshakes that clients aborted in
 * `tlsErrors`. Closed after the test.
 */
export async function startHttpsBackend(t, { key, cert }, handler) {
  const seen = [];
  const tlsErrors = [];
  const server = https.createServer({ key, cert }, (req, res) => {
    let data = "";
    req.on("data", (d) => (data += d));
    req.on("end", () => {
      const body = JSON.parse(data);
      seen.push(body);
      const [status, json] = handler(body);
      res.writeHead(status, { "content-type": "application/json" });
      res.end(json === undefined ? "" : JSON.stringify(json));
    });
  });
  server.on("tlsClientError", (e) => tlsErrors.push(e.message));
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => { server.closeAllConnections(); server.close(); });
  return { server, seen, tlsErrors, port: server.address().port, url: (p) => `https://127.0.0.1:${server.address().port}${p}` };
}
