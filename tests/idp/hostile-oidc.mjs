// A hostile OpenID Connect provider on loopback for tests/sso.rs: it follows the
// protocol's published shape (discovery, JWKS, authorization endpoint, token endpoint
// with client authentication and PKCE S256), signs the person in at once, and then
// bends the ID token as the test asks (POST /_test/mode {"mode"}): another issuer or
// audience, expired, issued in the future or long ago, another nonce, alg none, HS256
// keyed with its own public key, another key under the same kid, azp tricks, a rotated
// key, an unverified email, or no ID token at all. "good" gives an honest token, so each
// refusal is the bend's doing.
//
// Protocol with the test: prints `{"port": N}`, reads `{"client_id", "client_secret"}`
// on stdin, prints `{"ready": true}`.

import {
  createHash,
  createHmac,
  generateKeyPairSync,
  randomBytes,
  sign,
  timingSafeEqual,
} from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";
import { createInterface } from "node:readline";

const config = JSON.parse(process.env.LATCHKEY_IDP ?? "{}");
const server = https.createServer({
  key: readFileSync(config.key),
  cert: readFileSync(config.cert),
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = server.address().port;
const issuer = `https://127.0.0.1:${port}`;
console.log(JSON.stringify({ port }));
const lines = createInterface({ input: process.stdin });
const client = JSON.parse(await new Promise((resolve) => lines.once("line", resolve)));

const b64 = (data) => Buffer.from(data).toString("base64url");
const keys = {
  k1: generateKeyPairSync("rsa", { modulusLength: 2048 }),
  k2: generateKeyPairSync("rsa", { modulusLength: 2048 }),
  other: generateKeyPairSync("rsa", { modulusLength: 2048 }),
};
let mode = "good";
let person = { sub: "hostile-1", email: "eve@example.com", email_verified: true, name: "Eve" };
const codes = new Map();

function jwk(kid) {
  const { n, e } = keys[kid].publicKey.export({ format: "jwk" });
  return { kty: "RSA", use: "sig", alg: "RS256", kid, n, e };
}

function jws(header, claims, key) {
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}`;
  return `${input}.${b64(sign("sha256", Buffer.from(input), key))}`;
}

function idToken(grant) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuer,
    sub: person.sub,
    aud: client.client_id,
    exp: now + 300,
    iat: now,
    nonce: grant.nonce,
    email: person.email,
    email_verified: person.email_verified,
    name: person.name,
  };
  let header = { alg: "RS256", typ: "JWT", kid: "k1" };
  let key = keys.k1.privateKey;
  switch (mode) {
    case "wrong_iss": claims.iss = "https://evil.example"; break;
    case "wrong_aud": claims.aud = "someone-else"; break;
    case "expired": claims.exp = now - 300; claims.iat = now - 600; break;
    case "future_iat": claims.iat = now + 900; claims.exp = now + 1200; break;
    case "old_iat": claims.iat = now - 3600; break;
    case "bad_nonce": claims.nonce = "not-the-nonce"; break;
    case "azp_mismatch": claims.azp = "other-client"; break;
    case "several_aud_no_azp": claims.aud = [client.client_id, "other-client"]; break;
    case "unverified_email": claims.email_verified = false; break;
    case "other_key": key = keys.other.privateKey; break;
    case "rotated_key": header.kid = "k2"; key = keys.k2.privateKey; break;
    case "alg_none": {
      header = { alg: "none", typ: "JWT" };
      return `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}.`;
    }
    case "hs256": {
      // The classic confusion: HMAC keyed with the provider's public key.
      header = { alg: "HS256", typ: "JWT", kid: "k1" };
      const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}`;
      const secret = keys.k1.publicKey.export({ format: "pem", type: "spki" });
      return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
    }
    default: break;
  }
  return jws(header, claims, key);
}

function send(response, status, body, headers = {}) {
  response.writeHead(status, { "content-type": "application/json", ...headers });
  response.end(JSON.stringify(body));
}

async function body(request) {
  let text = "";
  for await (const chunk of request) text += chunk;
  return text;
}

server.on("request", async (request, response) => {
  const url = new URL(request.url, issuer);
  if (url.pathname === "/.well-known/openid-configuration") {
    return send(response, 200, {
      issuer,
      authorization_endpoint: `${issuer}/authorize`,
      token_endpoint: `${issuer}/token`,
      jwks_uri: `${issuer}/jwks`,
      response_types_supported: ["code"],
      subject_types_supported: ["public"],
      id_token_signing_alg_values_supported: ["RS256", "HS256", "none"],
      token_endpoint_auth_methods_supported: ["client_secret_basic"],
      code_challenge_methods_supported: ["S256"],
      scopes_supported: ["openid", "email", "profile"],
    });
  }
  if (url.pathname === "/jwks") {
    // k2 is published only once the provider "rotated" to it.
    const published = mode === "rotated_key" ? [jwk("k1"), jwk("k2")] : [jwk("k1")];
    return send(response, 200, { keys: published });
  }
  if (url.pathname === "/_test/mode" && request.method === "POST") {
    const asked = JSON.parse(await body(request));
    mode = asked.mode;
    if (asked.person) person = asked.person;
    return send(response, 200, { ok: true });
  }
  if (url.pathname === "/authorize") {
    const q = url.searchParams;
    if (q.get("client_id") !== client.client_id || q.get("code_challenge_method") !== "S256") {
      return send(response, 400, { error: "invalid_request" });
    }
    const code = randomBytes(16).toString("hex");
    codes.set(code, {
      nonce: q.get("nonce"),
      challenge: q.get("code_challenge"),
      redirect_uri: q.get("redirect_uri"),
    });
    const back = new URL(q.get("redirect_uri"));
    back.searchParams.set("code", code);
    back.searchParams.set("state", q.get("state"));
    response.writeHead(303, { location: back.toString() });
    return response.end();
  }
  if (url.pathname === "/token" && request.method === "POST") {
    // RFC 6749 2.3.1: each part form-urlencoded (a space is "+"), then base64.
    const form = (text) => new URLSearchParams([["", text]]).toString().slice(1);
    const expected = `Basic ${Buffer.from(
      `${form(client.client_id)}:${form(client.client_secret)}`,
    ).toString("base64")}`;
    const given = request.headers.authorization ?? "";
    if (given.length !== expected.length || !timingSafeEqual(Buffer.from(given), Buffer.from(expected))) {
      return send(response, 401, { error: "invalid_client" });
    }
    const asked = new URLSearchParams(await body(request));
    const grant = codes.get(asked.get("code"));
    codes.delete(asked.get("code"));
    const verifier = asked.get("code_verifier") ?? "";
    if (
      !grant ||
      grant.redirect_uri !== asked.get("redirect_uri") ||
      createHash("sha256").update(verifier).digest("base64url") !== grant.challenge
    ) {
      return send(response, 400, { error: "invalid_grant" });
    }
    const answer = { access_token: randomBytes(16).toString("hex"), token_type: "Bearer", expires_in: 300 };
    if (mode !== "no_id_token") answer.id_token = idToken(grant);
    return send(response, 200, answer, { "cache-control": "no-store" });
  }
  send(response, 404, { error: "not_found" });
});

console.log(JSON.stringify({ ready: true }));
lines.on("close", () => process.exit(0));
