// The dashboard in a real browser: Debian's Chromium, driven by playwright-core, against
// the real server that tests/browser.rs starts (it passes the configuration in the
// environment as JSON). Each step acts as a person would (labels, buttons, links), and
// every page it reaches is checked by axe-core (no serious or critical violation) and
// kept as a screenshot. Exits non-zero at the first failure, naming the step.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const config = JSON.parse(process.env.LATCHKEY_BROWSER ?? "{}");
const { url, shots, admin, reader, sso, saml } = config;
const axeSource = readFileSync(
  createRequire(import.meta.url).resolve("axe-core/axe.min.js"),
  "utf8",
);
mkdirSync(shots, { recursive: true });

// RFC 4648 base32, as the page prints the secret (spaces between groups).
function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of text.replace(/[\s=]/g, "").toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

// RFC 6238 TOTP (SHA-1, 30 s, 6 digits), computed here, independently of the server.
function totp(seed, unixSeconds) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const mac = createHmac("sha1", seed).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return value.toString().padStart(6, "0");
}

// Wait, when the current 30 s step ends within 5 s, for the next one to begin: a code of
// the step before now, filled late in a step, would reach the server two steps back,
// past its one step of skew, on a slow machine.
async function awayFromStepEnd() {
  const into = (Date.now() / 1000) % 30;
  if (into > 25) await new Promise((done) => setTimeout(done, (30 - into) * 1000 + 100));
}

let current = "start";
let lastPage = null;
const seen = [];

// Check the page with axe-core and keep its screenshot as `name`.png.
async function look(page, name) {
  lastPage = page;
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  // Evaluated through the DevTools protocol: the page's CSP (no inline script) stays on.
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    globalThis.axe.run(document, { resultTypes: ["violations"] }),
  );
  const bad = result.violations.filter((v) => ["serious", "critical"].includes(v.impact));
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target).join(", ")})`),
    [],
    `accessibility of ${name}`,
  );
  seen.push({
    name,
    path: new URL(page.url()).pathname,
    // The lesser findings (moderate, minor), kept for a reviewer.
    other: result.violations.map((v) => `${v.impact}: ${v.id}`),
  });
}

async function step(name, work) {
  current = name;
  await work();
  console.log(`ok - ${name}`);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const context = (options = {}) =>
  browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 900 }, ...options });

async function signIn(page, email, password) {
  lastPage = page;
  await page.goto(`${url}/ui/`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

// Chromium's virtual authenticator (DevTools protocol) in `page`: a platform
// authenticator that holds discoverable credentials and verifies its user.
async function virtualAuthenticator(page) {
  const session = await page.context().newCDPSession(page);
  await session.send("WebAuthn.enable");
  const { authenticatorId } = await session.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
    },
  });
  return { session, authenticatorId };
}

try {
  const adminContext = await context({ acceptDownloads: true });
  const page = await adminContext.newPage();

  await step("the administrator signs in and turns two-factor on from its profile", async () => {
    await page.goto(`${url}/ui/`);
    await look(page, "sign-in");
    await signIn(page, admin.email, admin.password);
    await page.getByRole("heading", { name: "Home" }).waitFor();
    await look(page, "home");
    await page.getByRole("link", { name: "My profile" }).click();
    await look(page, "profile");
    await page.getByRole("button", { name: "Set up two-factor authentication" }).click();
    const qr = page.getByRole("img", { name: "QR code of your two-factor secret" });
    assert.ok(await qr.isVisible(), "the QR code is an image");
    assert.ok((await qr.evaluate((img) => img.naturalWidth)) > 100, "the image decodes");
    await look(page, "totp-setup");
    const secret = await page.locator("code.secret").innerText();
    // The code of the step before now (the server accepts one step of skew), so that
    // the next sign-in can use the current step's code.
    await awayFromStepEnd();
    await page.getByLabel("Code").fill(totp(base32(secret), Date.now() / 1000 - 30));
    await page.getByRole("button", { name: "Turn on" }).click();
    await page.getByText("shown only now").waitFor();
    assert.equal(await page.locator("ul.codes li").count(), 10);
    await look(page, "recovery-codes");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Download the codes" }).click(),
    ]);
    assert.equal(download.suggestedFilename(), "latchkey-recovery-codes.txt");
    const saved = readFileSync(await download.path(), "utf8").trim().split("\n");
    assert.equal(saved.length, 10);
    config.secret = secret;
  });

  await step("signing in again asks for the code, computed here", async () => {
    await page.getByRole("button", { name: "Sign out", exact: true }).click();
    await signIn(page, admin.email, admin.password);
    await page.getByRole("heading", { name: "Two-factor authentication" }).waitFor();
    await look(page, "sign-in-code");
    await page.getByLabel("Code").fill(totp(base32(config.secret), Date.now() / 1000));
    await page.getByRole("button", { name: "Verify" }).click();
    await page.getByRole("heading", { name: "Home" }).waitFor();
  });

  let link;
  await step("the administrator invites a member", async () => {
    await page.getByRole("link", { name: "Team members" }).click();
    await look(page, "members");
    await page.getByLabel("Email").fill("nina@example.com");
    await page.getByLabel("Developer").selectOption("read_write");
    await page.getByLabel("Team", { exact: true }).selectOption("invite");
    await page.getByRole("button", { name: "Invite" }).click();
    await page.getByRole("heading", { name: "Invitation made" }).waitFor();
    await look(page, "invited");
    link = await page.getByLabel("The invitation link").inputValue();
    assert.match(link, /\/invitations\/inv_[^/]+\/accept\?token=/);
  });

  await step("the invited person joins from the link in a browser of its own", async () => {
    const nina = await (await context()).newPage();
    await nina.goto(link);
    assert.equal(new URL(nina.url()).pathname, "/ui/invitation", "the token left the URL");
    await look(nina, "invitation");
    await nina.getByLabel("Your name").fill("Nina Park");
    await nina.getByLabel("Choose a password").fill(admin.password);
    await nina.getByLabel("The same again").fill(admin.password);
    await nina.getByRole("button", { name: /^Join/ }).click();
    await nina.getByRole("heading", { name: "Invitation accepted" }).waitFor();
    await signIn(nina, "nina@example.com", admin.password);
    await nina.getByRole("heading", { name: "Home" }).waitFor();
    assert.ok(await nina.getByText("Developer read/write, Team invite").isVisible());
    await page.reload();
    assert.ok(await page.getByRole("link", { name: "Nina Park" }).isVisible());
  });

  await step("a member's page names the credentials a removal revokes", async () => {
    await page.getByRole("link", { name: "Nina Park" }).click();
    await page.getByRole("heading", { name: "Remove from the account" }).waitFor();
    await look(page, "member");
  });

  await step("bot users are made from their page", async () => {
    await page.getByRole("link", { name: "Bot users" }).click();
    await page.getByLabel("Name").fill("ci-runner");
    await page.getByRole("button", { name: "Create bot user" }).click();
    await page.getByText("The bot user is created.").waitFor();
    await look(page, "bot");
    await page.getByRole("link", { name: "All bot users" }).click();
    await look(page, "bots");
  });

  await step("an API key is made with a scope and seen once", async () => {
    await page.getByRole("link", { name: "Credentials" }).click();
    await look(page, "api-keys");
    await page.getByLabel("Description").fill("deploys");
    await page.getByLabel(/^Scopes/).fill("iam.bot_users.*");
    await page.getByRole("button", { name: "Create API key" }).click();
    const secret = page.getByLabel("The new API key");
    assert.match(await secret.inputValue(), /^lk_ak_/);
    await look(page, "api-key-once");
    const value = await secret.inputValue();
    await page.getByRole("link", { name: "Done" }).click();
    assert.ok(await page.getByRole("cell", { name: "iam.bot_users.*" }).isVisible());
    assert.equal(await page.getByLabel("The new API key").count(), 0);
    assert.ok(!(await page.content()).includes(value), "never shown again");
    await page.getByRole("link", { name: "SSH public keys" }).click();
    await look(page, "ssh-keys");
  });

  await step("a tenant, a custom role built from checkboxes, and tenant access", async () => {
    await page.getByRole("link", { name: "Tenants" }).click();
    await page.getByLabel("Name").fill("Contoso");
    await page.getByRole("button", { name: "Create tenant" }).click();
    await page.getByText("The tenant is saved.").waitFor();
    await look(page, "tenant");
    await page.getByRole("link", { name: "Roles" }).click();
    await page.getByLabel("Name").fill("Remote helper");
    await page.getByRole("checkbox", { name: /^computers\.view/ }).check();
    await page.getByRole("checkbox", { name: /^computers\.remote_control/ }).check();
    await look(page, "roles");
    await page.getByRole("button", { name: "Create role" }).click();
    await page.getByText("The role is saved.").waitFor();
    assert.equal(await page.getByRole("checkbox", { checked: true }).count(), 2);
    await look(page, "role");
    await page.getByRole("link", { name: "Team members" }).click();
    await page.getByRole("link", { name: "Nina Park" }).click();
    await page.getByLabel("Tenant", { exact: true }).selectOption({ label: "Contoso" });
    await page.getByLabel("Role", { exact: true }).selectOption({ label: "Remote helper" });
    await page.getByRole("button", { name: "Give access" }).click();
    await page.getByText("The tenant access is given.").waitFor();
    assert.ok(await page.getByRole("cell", { name: "Contoso" }).isVisible());
    await look(page, "tenant-access");
  });

  await step("the events are filtered, and the access review downloads as CSV", async () => {
    await page.getByRole("link", { name: "Events" }).click();
    await look(page, "events");
    await page.getByLabel("Action").fill("iam.role_assignments.create");
    await page.getByRole("button", { name: "Filter" }).click();
    const rows = page.locator("tbody tr");
    assert.equal(await rows.count(), 1, "one tenant access was given");
    await page.getByText("Before and after").click();
    assert.ok(await page.locator("pre", { hasText: "Remote helper" }).or(page.locator("pre", { hasText: "role_id" })).first().isVisible());
    await look(page, "events-filtered");
    await page.getByRole("link", { name: "Access review" }).click();
    await look(page, "access-review");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Download CSV" }).click(),
    ]);
    const csv = readFileSync(await download.path(), "utf8");
    assert.match(csv, /^principal_id,principal_kind,name,tenant_id,role,permissions\r\n/);
    assert.match(csv, /Remote helper/);
  });

  await step("an IP policy with a rule, a warn-only restriction, and the settings", async () => {
    await page.getByRole("link", { name: "IP restrictions" }).click();
    await page.getByLabel("Description").fill("office");
    await page.getByRole("button", { name: "Create policy" }).click();
    await page.getByLabel("Network").fill("127.0.0.1/32");
    await page.getByRole("button", { name: "Add rule" }).click();
    await page.getByText("The change is saved.").waitFor();
    await page.getByLabel("Applies to").selectOption("api");
    await page.getByRole("checkbox", { name: "office" }).check();
    await page.getByRole("button", { name: "Create restriction" }).click();
    await page.getByRole("cell", { name: "warn-only" }).waitFor();
    await look(page, "ip-restrictions");
    await page.getByRole("link", { name: "Settings" }).click();
    await look(page, "settings");
    const visitor = await (await context()).newPage();
    await visitor.goto(`${url}/ui/sign-in`);
    await visitor.getByRole("link", { name: "Forgot your password?" }).click();
    await look(visitor, "forgot-password");
  });

  await step("a read-only developer sees no control it may not use, and rotates its authtoken", async () => {
    const readerPage = await (await context()).newPage();
    await signIn(readerPage, reader.email, reader.password);
    await readerPage.getByRole("link", { name: "Team members" }).click();
    assert.equal(await readerPage.getByRole("heading", { name: "Invite a member" }).count(), 0);
    await readerPage.getByRole("link", { name: "Bot users" }).click();
    assert.equal(await readerPage.getByRole("button", { name: "Create bot user" }).count(), 0);
    await readerPage.getByRole("link", { name: "My profile" }).click();
    await readerPage.getByRole("button", { name: "Rotate authtoken" }).click();
    const token = readerPage.getByLabel("The new authtoken");
    assert.match(await token.inputValue(), /^lk_at_/);
    assert.ok(await readerPage.getByRole("button", { name: "Copy" }).isVisible(), "the script shows the copy button");
    await look(readerPage, "authtoken-once");
    await readerPage.goto(`${url}/ui/profile`);
    assert.equal(await readerPage.getByLabel("The new authtoken").count(), 0, "shown once");
  });

  await step("passkeys: added on the profile, then signing in alone and as the second factor", async () => {
    // WebAuthn needs a host name (not an IP address): this browser opens the dashboard
    // as localhost, a secure context the virtual authenticator accepts.
    const local = url.replace("127.0.0.1", "localhost");
    const keyPage = await (await context()).newPage();
    const { session, authenticatorId } = await virtualAuthenticator(keyPage);
    await keyPage.goto(`${local}/ui/sign-in`);
    await keyPage.getByLabel("Email").fill(reader.email);
    await keyPage.getByLabel("Password").fill(reader.password);
    await keyPage.getByRole("button", { name: "Sign in", exact: true }).click();
    await keyPage.getByRole("heading", { name: "Home" }).waitFor();
    await keyPage.getByRole("link", { name: "My profile" }).click();
    await keyPage.getByLabel("Name it (which device or key)").fill("Work laptop");
    await keyPage.getByRole("button", { name: "Add a passkey" }).click();
    await keyPage.getByText("The passkey is added.").waitFor();
    assert.ok(await keyPage.getByRole("cell", { name: "Work laptop", exact: true }).isVisible());
    assert.ok(await keyPage.getByRole("cell", { name: "localhost", exact: true }).isVisible());
    const { credentials } = await session.send("WebAuthn.getCredentials", { authenticatorId });
    assert.equal(credentials.length, 1, "the authenticator holds the passkey");
    assert.equal(credentials[0].isResidentCredential, true, "discoverable, for passwordless sign-in");
    await look(keyPage, "profile-passkeys");

    await keyPage.getByRole("button", { name: "Sign out", exact: true }).click();
    await keyPage.goto(`${local}/ui/sign-in`);
    await keyPage.getByRole("button", { name: "Sign in with a passkey" }).click();
    await keyPage.getByRole("heading", { name: "Home" }).waitFor();

    await keyPage.getByRole("button", { name: "Sign out", exact: true }).click();
    await keyPage.goto(`${local}/ui/sign-in`);
    await keyPage.getByLabel("Email").fill(reader.email);
    await keyPage.getByLabel("Password").fill(reader.password);
    await keyPage.getByRole("button", { name: "Sign in", exact: true }).click();
    await keyPage.getByRole("heading", { name: "Two-factor authentication" }).waitFor();
    assert.equal(await keyPage.getByLabel("Code").count(), 0, "no TOTP to ask for");
    await look(keyPage, "sign-in-passkey");
    await keyPage.getByRole("button", { name: "Use a passkey" }).click();
    await keyPage.getByRole("heading", { name: "Home" }).waitFor();

    await keyPage.getByRole("button", { name: "Sign out", exact: true }).click();

    // On an IP address passkeys cannot work: the profile says why and offers none.
    const ipPage = await (await context()).newPage();
    await signIn(ipPage, reader.email, reader.password);
    await ipPage.getByRole("heading", { name: "Two-factor authentication" }).waitFor();
    assert.ok(await ipPage.getByText("Passkeys work only where the dashboard is opened by its host name").isVisible());
    assert.equal(await ipPage.getByRole("button", { name: "Use a passkey" }).count(), 0);
  });

  await step("single sign-on: a person signs in through the identity provider; the settings list it", async () => {
    const ssoPage = await (await context()).newPage();
    await ssoPage.goto(`${url}/ui/sign-in`);
    await look(ssoPage, "sign-in-sso");
    await ssoPage.getByRole("link", { name: `Sign in with ${sso.name}` }).click();
    await ssoPage.getByRole("heading", { name: "Home" }).waitFor();
    await ssoPage.getByRole("link", { name: "My profile" }).click();
    assert.equal(await ssoPage.getByLabel("Email").inputValue(), sso.email);
    await page.goto(`${url}/ui/settings`);
    await page.getByRole("heading", { name: "Identity providers" }).waitFor();
    assert.ok(await page.getByText("/callback").first().isVisible(), "the redirect URI to register");
    await look(page, "settings-sso");
  });

  await step("an administrator maps a SCIM group to roles in the settings", async () => {
    await page.goto(`${url}/ui/settings#scim-groups`);
    const editor = page.locator("details", { hasText: "Map \u201cContoso technicians\u201d" });
    await editor.locator("summary").click();
    await editor.getByLabel("Grant these account roles").check();
    await editor.getByLabel("Team", { exact: true }).selectOption("manager");
    await editor.getByLabel("Role", { exact: true }).selectOption({ label: "Technician" });
    await editor.getByLabel("In", { exact: true }).selectOption({ label: "all tenants" });
    await editor.getByRole("button", { name: "Save the mapping of Contoso technicians" }).click();
    await page.getByText("The group's mapping is saved").waitFor();
    assert.ok(await page.getByRole("cell", { name: "Team manager; Technician in all tenants", exact: true }).isVisible());
    await look(page, "settings-scim");
    // The README's picture: the SCIM part alone, with the editor open as saved.
    await page.locator("details", { hasText: "Map \u201cContoso technicians\u201d" }).locator("summary").click();
    await page.locator("section", { has: page.locator("#scim") }).screenshot({ path: `${shots}/scim-groups.png` });
  });

  await step("a member connects a SAML provider from its profile: the provider's cross-site answer comes home", async () => {
    // On localhost the provider (127.0.0.1) is another site: its post to the ACS carries
    // no session cookie, and latchkey's own page carries the answer on to the session.
    const local = url.replace("127.0.0.1", "localhost");
    const samlPage = await (await context()).newPage();
    lastPage = samlPage;
    await samlPage.goto(`${local}/ui/sign-in`);
    await samlPage.getByLabel("Email").fill(saml.email);
    await samlPage.getByLabel("Password").fill(saml.password);
    await samlPage.getByRole("button", { name: "Sign in", exact: true }).click();
    await samlPage.getByRole("heading", { name: "Home" }).waitFor();
    await samlPage.goto(`${local}/ui/profile`);
    await samlPage.getByRole("button", { name: `Connect ${saml.name}` }).click();
    await samlPage.getByRole("button", { name: `Disconnect ${saml.name}` }).waitFor();
    assert.ok(samlPage.url().endsWith("/ui/profile?done=connected"), samlPage.url());
    assert.ok(await samlPage.getByRole("cell", { name: "sara-corp" }).isVisible());
  });

  await step("a form posted from another site is refused and changes nothing", async () => {
    // A page of another origin (a loopback server of this script) that posts a form to
    // the dashboard as soon as it loads, in the administrator's signed-in browser.
    const evil = createServer((_, response) => {
      response.writeHead(200, { "content-type": "text/html" });
      response.end(`<!doctype html><title>win a prize</title>
        <form id="f" method="post" action="${url}/ui/bots/new">
        <input name="name" value="planted"><input name="csrf" value="guess"></form>
        <script>document.getElementById("f").submit()</script>`);
    });
    await new Promise((resolve) => evil.listen(0, "127.0.0.1", resolve));
    const attacked = await adminContext.newPage();
    const [answer] = await Promise.all([
      attacked.waitForResponse((r) => r.url().startsWith(`${url}/ui/bots/new`)),
      attacked.goto(`http://127.0.0.1:${evil.address().port}/`),
    ]);
    assert.equal(answer.status(), 403);
    evil.close();
    await page.goto(`${url}/ui/bots`);
    assert.equal(await page.getByRole("link", { name: "planted" }).count(), 0);
  });

  await step("the pages read on a phone", async () => {
    const phone = await (await context({ viewport: { width: 390, height: 844 }, isMobile: true })).newPage();
    await signIn(phone, "nina@example.com", admin.password);
    await phone.getByRole("link", { name: "Team members" }).click();
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert.equal(overflow, false, "no sideways scrolling of the page");
    await look(phone, "members-phone");
  });

  writeFileSync(`${shots}/pages.json`, JSON.stringify(seen, null, 2));
  console.log(`ok - ${seen.length} pages checked by axe-core, screenshots in ${shots}`);
} catch (error) {
  console.error(`not ok - ${current}: ${error.stack ?? error}`);
  if (lastPage) {
    await lastPage.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {});
    console.error(`the page at the failure (${lastPage.url()}): ${shots}/failure.png`);
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
