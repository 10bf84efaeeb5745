// A stand-in for GitHub on loopback for tests/sso.rs, following GitHub's published API:
// the OAuth web flow (`/login/oauth/authorize`, `/login/oauth/access_token`, which answers
// JSON when asked and reports a bad code as 200 with an `error` field, as GitHub does),
// and the REST API under `/api/v3` (as GitHub Enterprise Server serves it): `GET /user`
// and `GET /user/emails`, with a bearer token. The test sets who signs in and how
// (POST /_test/mode {"mode", "user", "emails"}).
//
// Protocol with the test: prints `{"port": N}`, reads `{"client_id", "client_secret"}`
// on stdin, prints `{"ready": true}`.

import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";
import { createInterface } from "node:readline";

const config = JSON.parse(process.env.LATCHKEY_IDP ?? "{}");
const server = https.createServer({
  key: readFileSync(config.key),
  cert: readFileSync(config.cert),
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const base = `https://127.0.0.1:${server.address().port}`;
console.log(JSON.stringify({ port: server.address().port }));
const lines = createInterface({ input: process.stdin });
const client = JSON.parse(await new Promise((resolve) => lines.once("line", resolve)));

let mode = "good";
let user = { id: 1001, login: "octo", name: "Octo Cat" };
let emails = [{ email: "octo@example.com", primary: true, verified: true, visibility: "private" }];
const codes = new Map();
const tokens = new Map();

function send(response, status, body) {
  response.writeHead(status, { "content-type": "application/json; charset=utf-8" });
  response.end(JSON.stringify(body));
}

async function body(request) {
  let text = "";
  for await (const chunk of request) text += chunk;
  return text;
}

server.on("request", async (request, response) => {
  const url = new URL(request.url, base);
  if (url.pathname === "/_test/mode" && request.method === "POST") {
    const asked = JSON.parse(await body(request));
    mode = asked.mode ?? mode;
    user = asked.user ?? user;
    emails = asked.emails ?? emails;
    return send(response, 200, { ok: true });
  }
  if (url.pathname === "/login/oauth/authorize") {
    const q = url.searchParams;
    if (q.get("client_id") !== client.client_id) return send(response, 404, { message: "Not Found" });
    const code = randomBytes(10).toString("hex");
    codes.set(code, {
      redirect_uri: q.get("redirect_uri"),
      challenge: q.get("code_challenge"),
    });
    const back = new URL(q.get("redirect_uri"));
    back.searchParams.set("code", code);
    back.searchParams.set("state", q.get("state"));
    response.writeHead(302, { location: back.toString() });
    return response.end();
  }
  if (url.pathname === "/login/oauth/access_token" && request.method === "POST") {
    const form = new URLSearchParams(await body(request));
    const grant = codes.get(form.get("code"));
    codes.delete(form.get("code"));
    const verifier = form.get("code_verifier") ?? "";
    const good =
      mode !== "bad_code" &&
      grant &&
      form.get("client_id") === client.client_id &&
      form.get("client_secret") === client.client_secret &&
      grant.redirect_uri === form.get("redirect_uri") &&
      createHash("sha256").update(verifier).digest("base64url") === grant.challenge;
    if (!good) {
      // GitHub reports this with 200.
      return send(response, 200, {
        error: "bad_verification_code",
        error_description: "The code passed is incorrect or expired.",
        error_uri: "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code",
      });
    }
    const token = `gho_${randomBytes(18).toString("hex")}`;
    tokens.set(token, true);
    return send(response, 200, { access_token: token, token_type: "bearer", scope: "read:user,user:email" });
  }
  const auth = request.headers.authorization ?? "";
  const token = auth.startsWith("Bearer ") ? auth.slice(7) : "";
  if (url.pathname.startsWith("/api/v3/")) {
    if (!tokens.has(token)) return send(response, 401, { message: "Bad credentials" });
    if (url.pathname === "/api/v3/user") return send(response, 200, { ...user, type: "User" });
    if (url.pathname === "/api/v3/user/emails") return send(response, 200, emails);
  }
  send(response, 404, { message: "Not Found" });
});

console.log(JSON.stringify({ ready: true }));
lines.on("close", () => process.exit(0));
