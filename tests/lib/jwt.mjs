// A tiny JWT signer for the tests (node:crypto, no JWT library): HS* with a string/Buffer
// secret, RS256 with a private KeyObject, or alg none; `header` adds or overrides header members.
import crypto from "node:crypto";

export const b64u = (b) => Buffer.from(b).toString("base64url");
export const now = () => Math.floor(Date.now() / 1000);

export function jwt(claims, { alg = "HS256", key, kid, header = {} } = {}) {
  const h = { alg, typ: "JWT", ...(kid ? { kid } : {}), ...header };
  const input = `${b64u(JSON.stringify(h))}.${b64u(JSON.stringify(claims))}`;
  let sig = "";
  if (alg.startsWith("HS")) sig = crypto.createHmac(`sha${alg.slice(2)}`, key).update(input).digest("base64url");
  else if (alg === "RS256") sig = crypto.sign("sha256", Buffer.from(input), key).toString("base64url");
  return `${input}.${sig}`;
}
