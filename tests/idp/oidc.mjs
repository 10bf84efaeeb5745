// A real OpenID Connect provider on loopback for tests/sso.rs: oidc-provider (OpenID
// Certified), over HTTPS with the certificate the test made. Its interactions complete
// without a page: the login prompt signs in the person the test named last (POST
// /_test/user), the consent prompt grants what was asked.
//
// Protocol with the test: it prints `{"port": N}` once listening, reads one line of JSON
// from stdin `{"redirect_uris": [...]}` (latchkey's callbacks, known only once latchkey
// has the provider's issuer), then prints `{"ready": true}`.

import { readFileSync } from "node:fs";
import https from "node:https";
import { createInterface } from "node:readline";
import Provider from "oidc-provider";

const config = JSON.parse(process.env.LATCHKEY_IDP ?? "{}");
const server = https.createServer({
  key: readFileSync(config.key),
  cert: readFileSync(config.cert),
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = server.address().port;
console.log(JSON.stringify({ port }));

const lines = createInterface({ input: process.stdin });
const first = await new Promise((resolve) => lines.once("line", resolve));
const { redirect_uris } = JSON.parse(first);

const people = new Map();
let current = null;

const provider = new Provider(`https://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: config.client_id,
      client_secret: config.client_secret,
      redirect_uris,
      response_types: ["code"],
      grant_types: ["authorization_code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  async findAccount(_ctx, sub) {
    const person = people.get(sub);
    if (!person) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: person.email,
          email_verified: person.email_verified,
          name: person.name,
          groups: person.groups ?? [],
        };
      },
    };
  },
  claims: {
    // With the openid scope: `amr` (how the person signed in) in every ID token.
    openid: ["sub", "amr", "acr", "auth_time"],
    email: ["email", "email_verified"],
    profile: ["name"],
    groups: ["groups"],
  },
  // The scope's claims in the ID token itself (latchkey reads the ID token only).
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  cookies: { keys: ["latchkey test provider cookie key"] },
});

provider.use(async (ctx, next) => {
  if (ctx.path === "/_test/user" && ctx.method === "POST") {
    let body = "";
    for await (const chunk of ctx.req) body += chunk;
    current = JSON.parse(body);
    people.set(current.sub, current);
    ctx.body = { ok: true };
    return;
  }
  if (ctx.path.startsWith("/interaction/")) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name === "login") {
      await provider.interactionFinished(
        ctx.req,
        ctx.res,
        { login: { accountId: current.sub, amr: current.amr ?? ["pwd"] } },
        { mergeWithLastSubmission: false },
      );
    } else {
      const grant = new provider.Grant({
        accountId: details.session.accountId,
        clientId: details.params.client_id,
      });
      grant.addOIDCScope(details.params.scope);
      const missing = details.prompt.details.missingOIDCClaims;
      if (missing) grant.addOIDCClaims(missing);
      const grantId = await grant.save();
      await provider.interactionFinished(
        ctx.req,
        ctx.res,
        { consent: { grantId } },
        { mergeWithLastSubmission: true },
      );
    }
    ctx.respond = false;
    return;
  }
  await next();
});

server.on("request", provider.callback());
console.log(JSON.stringify({ ready: true }));
// Ends with the test: its stdin closes.
lines.on("close", () => process.exit(0));
