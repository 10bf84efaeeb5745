//! Single sign-on through the real binary against real identity providers on loopback:
//! `oidc-provider` (an OpenID Certified provider, tests/idp/oidc.mjs) for the flows, and
//! a hostile provider that follows the protocol's shape and bends its ID tokens
//! (tests/idp/hostile-oidc.mjs) for the attacks. Each provider has its own CA, made here
//! with rcgen, which latchkey is told to trust for it. Browsers are played by hand
//! (cookies kept per host, redirects followed one by one), so every hop can be checked.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::api::{Server, assert_error, start_configured};
use crate::web::{Browser, PASSWORD, Page, member_with_roles_and_password};

const CLIENT_ID: &str = "latchkey-test";
const CLIENT_SECRET: &str = "a client secret of the test provider";

/// A CA and a certificate for 127.0.0.1 it signed, as PEM files in `dir`.
struct Tls {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

fn tls(dir: &std::path::Path) -> Tls {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "latchkey test identity provider CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let cert = dir.join("idp.pem");
    let key = dir.join("idp.key");
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    Tls {
        ca_pem: ca.pem(),
        cert,
        key,
    }
}

/// An identity provider process on loopback.
pub struct Idp {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// What it printed first (its port, and for SAML its entity id, SSO URL, certificate).
    pub info: Value,
    pub url: String,
    pub ca_pem: String,
    agent: Agent,
}

impl Drop for Idp {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_line(stdout: &mut BufReader<ChildStdout>) -> Value {
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

impl Idp {
    /// Start tests/idp/`script`; it listens, and waits for its configuration.
    pub fn start(script: &str, dir: &std::path::Path) -> Idp {
        Idp::start_with("node", script, dir)
    }

    /// Start tests/idp/`script` with `program` (node, python3).
    pub fn start_with(program: &str, script: &str, dir: &std::path::Path) -> Idp {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/idp");
        assert!(
            root.join("node_modules/oidc-provider").is_dir(),
            "the SSO tests need tests/idp's npm packages: run scripts/test, which installs them"
        );
        let tls = tls(dir);
        let config = json!({
            "cert": tls.cert, "key": tls.key,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        });
        let mut child = Command::new(program)
            .arg(root.join(script))
            .current_dir(&root)
            .env("LATCHKEY_IDP", config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join(format!("{script}.log"))).unwrap())
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let info = read_line(&mut stdout);
        let port = info["port"].as_u64().unwrap();
        let tls_config = TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(vec![
                Certificate::from_pem(tls.ca_pem.as_bytes()).unwrap(),
            ])))
            .build();
        let agent = Agent::config_builder()
            .tls_config(tls_config)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Idp {
            child,
            stdin,
            stdout,
            info,
            url: format!("https://127.0.0.1:{port}"),
            ca_pem: tls.ca_pem,
            agent,
        }
    }

    /// Hand the provider its configuration line; it answers ready.
    pub fn configure(&mut self, line: &Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        assert_eq!(read_line(&mut self.stdout)["ready"], true);
    }

    /// A control request of the test (`/_test/…`).
    pub fn control(&self, path: &str, body: &Value) {
        let answer = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
        assert_eq!(answer.status(), 200);
    }

    /// The person the next login at the real provider is.
    pub fn next_person(&self, sub: &str, email: &str, verified: bool, amr: &[&str]) {
        self.control(
            "/_test/user",
            &json!({"sub": sub, "email": email, "email_verified": verified,
                    "name": format!("Person {sub}"), "amr": amr}),
        );
    }
}

/// A server with oidc-provider configured as `name`, SSO mixed, provisioning
/// Just-in-Time: (the provider's directory, the server, the provider, its id).
fn oidc_jit(name: &str) -> (tempfile::TempDir, Server, Idp, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let mut idp = Idp::start("oidc.mjs", dir.path());
    let (id, view) = provider(&server, &idp, name, json!({}));
    idp.configure(&json!({ "redirect_uris": [view["redirect_uri"]] }));
    settings(&server, json!({"sso_mode": "mixed", "provisioning": "jit"}));
    (dir, server, idp, id)
}

/// A latchkey server allowed to reach loopback providers.
pub fn server() -> Server {
    start_configured(
        Arc::new(tempfile::tempdir().unwrap()),
        &crate::support::policies_dir(),
        None,
        &[("LATCHKEY_ALLOW_PRIVATE_DESTINATIONS", "true")],
    )
}

/// Configure an OIDC provider in latchkey for `idp`: its id.
pub fn provider(server: &Server, idp: &Idp, name: &str, extra: Value) -> (String, Value) {
    let mut body = json!({
        "name": name, "type": "oidc", "issuer": idp.url,
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "trusted_ca_pem": idp.ca_pem, "domains": ["example.com"],
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let made = server.post(&server.admin_key, "/identity_providers", body);
    assert_eq!(made.status, 201, "{:?}", made.body);
    (made.body["id"].as_str().unwrap().to_owned(), made.body)
}

fn settings(server: &Server, body: Value) {
    let set = server.patch(&server.admin_key, "/account", body);
    assert_eq!(set.status, 200, "{:?}", set.body);
}

/// A browser's cookies at the provider (names only; every path).
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn get(&mut self, agent: &Agent, url: &str) -> (u16, String) {
        let cookies: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let answer = agent
            .get(url)
            .header("Cookie", cookies.join("; "))
            .call()
            .unwrap();
        for value in answer.headers().get_all("set-cookie") {
            let value = value.to_str().unwrap_or_default();
            let pair = value.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || value.contains("expires=Thu, 01 Jan 1970") {
                    self.0.remove(k.trim());
                } else {
                    self.0.insert(k.trim().to_owned(), v.to_owned());
                }
            }
        }
        let location = answer
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (answer.status().as_u16(), location)
    }
}

/// Follow the provider's redirects from `location` until it sends the browser back to
/// latchkey: that callback path (not yet fetched).
fn through_provider(idp: &Idp, mut location: String, latchkey: &str) -> String {
    let mut jar = Jar::default();
    for _ in 0..12 {
        if let Some(path) = location.strip_prefix(latchkey) {
            return path.to_owned();
        }
        if location.starts_with('/') {
            location = format!("{}{location}", idp.url);
        }
        assert!(location.starts_with(&idp.url), "left for {location}");
        let (status, next) = jar.get(&idp.agent, &location);
        assert!((300..400).contains(&status), "{status} at {location}");
        location = next;
    }
    panic!("the provider never sent the browser back");
}

/// A sign-in through provider `id` in `browser`: the callback's answer.
fn sign_in(browser: &mut Browser, idp: &Idp, id: &str) -> Page {
    let start = browser.get(&format!("/sso/{id}/login"));
    assert_eq!(start.status, 303, "{}", start.html);
    let callback = through_provider(idp, start.location, &browser.base);
    browser.get(&callback)
}

fn count(server: &Server, path: &str, key: &str) -> usize {
    server.get(&server.admin_key, path).body[key]
        .as_array()
        .unwrap()
        .len()
}

fn last_refusal(server: &Server) -> Value {
    server
        .get(
            &server.admin_key,
            "/events?action=iam.sessions.refuse&limit=1",
        )
        .body["events"][0]
        .clone()
}

#[test]
fn oidc_sign_in_against_oidc_provider_by_invitation_jit_link_mixed_and_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let mut idp = Idp::start("oidc.mjs", dir.path());
    let (id, view) = provider(&server, &idp, "Test IdP", json!({}));
    assert!(view.get("client_secret").is_none(), "never shown: {view}");
    assert_eq!(view["client_secret_set"], true);
    let redirect = view["redirect_uri"].as_str().unwrap().to_owned();
    assert_eq!(redirect, format!("{}/sso/{id}/callback", server.url));
    idp.configure(&json!({ "redirect_uris": [redirect] }));
    let users = || count(&server, "/users", "users");
    let before = users();

    // SSO off: the provider signs nobody in.
    let mut browser = Browser::new(&server);
    let off = browser.get(&format!("/sso/{id}/login"));
    assert_eq!(off.status, 400, "{}", off.html);
    assert!(off.html.contains("single sign-on is off"), "{}", off.html);
    // Enforcing before any provider completed a sign-in would lock everyone out.
    let refused = server.patch(
        &server.admin_key,
        "/account",
        json!({"sso_mode": "enforced"}),
    );
    assert_error(&refused, 409, 118);
    assert_eq!(
        server.get(&server.admin_key, "/account").body["sso_mode"],
        "off"
    );
    settings(&server, json!({"sso_mode": "mixed"}));

    // Invite-only: a stranger is refused with a clear page and an event; nobody is made.
    idp.next_person("stranger", "stranger@example.com", true, &["pwd"]);
    let page = sign_in(&mut Browser::new(&server), &idp, &id);
    assert_eq!(page.status, 403, "{}", page.html);
    assert!(page.html.contains("has no invitation"), "{}", page.html);
    assert_eq!(users(), before);
    let event = last_refusal(&server);
    assert_eq!(event["after"]["method"], "sso", "{event}");
    assert_eq!(event["after"]["identity_provider_id"], id.as_str());

    // An invited person's first sign-in accepts the invitation with its roles.
    let invited = server.post(
        &server.admin_key,
        "/invitations",
        json!({"email": "nina@example.com", "roles": {"developer": "read_write", "team": "manager"}}),
    );
    assert_eq!(invited.status, 201, "{:?}", invited.body);
    idp.next_person("nina-sub", "nina@example.com", true, &["pwd"]);
    let mut nina = Browser::new(&server);
    let page = sign_in(&mut nina, &idp, &id);
    assert_eq!(
        (page.status, page.location.as_str()),
        (303, "/ui/"),
        "{}",
        page.html
    );
    assert!(nina.get("/ui/").html.contains("nina@example.com"));
    let member = server.get(&server.admin_key, "/users").body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "nina@example.com")
        .cloned()
        .unwrap();
    assert_eq!(member["roles"]["team"], "manager");
    assert_eq!(
        member["email_verified"], true,
        "the provider vouched for it"
    );
    assert_eq!(
        server
            .get(
                &server.admin_key,
                &format!("/invitations/{}", invited.body["id"].as_str().unwrap())
            )
            .body["state"],
        "accepted"
    );
    let linked = server
        .get(
            &server.admin_key,
            "/events?action=iam.external_identities.create",
        )
        .body;
    assert_eq!(
        linked["events"][0]["after"]["subject"], "nina-sub",
        "{linked}"
    );
    let signed = server
        .get(
            &server.admin_key,
            "/events?action=iam.sessions.create&limit=1",
        )
        .body;
    assert_eq!(signed["events"][0]["after"]["method"], "sso", "{signed}");

    // Later sign-ins match the subject, not the email the provider now says.
    idp.next_person("nina-sub", "someone-else@example.com", true, &["pwd"]);
    let mut again = Browser::new(&server);
    assert_eq!(sign_in(&mut again, &idp, &id).status, 303);
    assert!(again.get("/ui/").html.contains("nina@example.com"));

    // Just-in-Time: a new person becomes a member with developer read/write, team invite.
    settings(&server, json!({"provisioning": "jit"}));
    idp.next_person("omar-sub", "omar@example.com", true, &["pwd"]);
    assert_eq!(sign_in(&mut Browser::new(&server), &idp, &id).status, 303);
    let omar = server.get(&server.admin_key, "/users").body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "omar@example.com")
        .cloned()
        .unwrap();
    assert_eq!(
        omar["roles"],
        json!({"developer": "read_write", "team": "invite", "billing": "none", "admin": false})
    );
    // …but not with an email the provider does not vouch for.
    let count_now = users();
    idp.next_person("unverified-sub", "unverified@example.com", false, &["pwd"]);
    let page = sign_in(&mut Browser::new(&server), &idp, &id);
    assert_eq!(page.status, 403, "{}", page.html);
    assert!(page.html.contains("did not verify"), "{}", page.html);
    assert_eq!(users(), count_now);

    // The provider's word about an existing user's email never takes it over.
    let (reader_id, _) = member_with_roles_and_password(&server, "reader@example.com", json!({}));
    idp.next_person("mallory-sub", "reader@example.com", true, &["pwd"]);
    let page = sign_in(&mut Browser::new(&server), &idp, &id);
    assert_eq!(page.status, 403, "{}", page.html);
    assert!(
        page.html
            .contains("sign in with its password or passkey first"),
        "{}",
        page.html
    );
    assert_eq!(last_refusal(&server)["principal_id"], reader_id.as_str());

    // The user connects the provider itself, after signing in with its password.
    let mut reader = signed_in(&server, "reader@example.com", PASSWORD);
    let profile = reader.get("/ui/profile");
    assert!(
        profile.html.contains("Connect Test IdP"),
        "{}",
        profile.html
    );
    idp.next_person("reader-sub", "reader@corp.example.com", true, &["pwd"]);
    let token = reader.csrf();
    let connect = reader.post(
        "/ui/profile/connect",
        &[("csrf", &token), ("provider_id", &id)],
    );
    let callback = through_provider(&idp, connect.onward(), &reader.base);
    let linked = reader.get(&callback);
    assert_eq!(
        linked.location, "/ui/profile?done=connected",
        "{}",
        linked.html
    );
    let mut via_sso = Browser::new(&server);
    assert_eq!(sign_in(&mut via_sso, &idp, &id).status, 303);
    assert!(via_sso.get("/ui/").html.contains("reader@example.com"));

    // Enforced: members sign in only through the provider; keys still work.
    settings(&server, json!({"sso_mode": "enforced"}));
    let login = crate::login::login(
        &server,
        json!({"email": "reader@example.com", "password": PASSWORD}),
    );
    assert_error(&login, 403, 128);
    assert!(
        login.body["msg"]
            .as_str()
            .unwrap()
            .contains("single sign-on")
    );
    let mut by_password = Browser::new(&server);
    let token = by_password.get("/ui/sign-in").field("csrf");
    let page = by_password.post(
        "/ui/sign-in",
        &[
            ("csrf", &token),
            ("email", "reader@example.com"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(page.status, 403);
    assert!(page.html.contains("single sign-on only"), "{}", page.html);
    assert!(page.html.contains("Sign in with Test IdP"), "{}", page.html);
    assert_eq!(
        server.get(&server.admin_key, "/users").status,
        200,
        "API keys unaffected"
    );
    assert_eq!(sign_in(&mut Browser::new(&server), &idp, &id).status, 303);
    // The last usable provider cannot be disabled or deleted while SSO is enforced.
    let disable = server.patch(
        &server.admin_key,
        &format!("/identity_providers/{id}"),
        json!({"enabled": false}),
    );
    assert_error(&disable, 409, 118);
    assert_error(
        &server.delete(&server.admin_key, &format!("/identity_providers/{id}")),
        409,
        118,
    );

    // MFA required: a provider that asserts no second factor leaves the member to enroll
    // its own; one whose `amr` holds a configured value counts as the second factor.
    settings(&server, json!({"mfa_required": true}));
    idp.next_person("nina-sub", "nina@example.com", true, &["pwd"]);
    let mut limited = Browser::new(&server);
    assert_eq!(sign_in(&mut limited, &idp, &id).status, 303);
    assert_eq!(
        limited.get("/ui/members").location,
        "/ui/profile",
        "limited to enrolling"
    );
    let set = server.patch(
        &server.admin_key,
        &format!("/identity_providers/{id}"),
        json!({"mfa_values": ["mfa"]}),
    );
    assert_eq!(set.status, 200, "{:?}", set.body);
    idp.next_person("nina-sub", "nina@example.com", true, &["pwd", "mfa"]);
    let mut full = Browser::new(&server);
    assert_eq!(sign_in(&mut full, &idp, &id).status, 303);
    assert_eq!(
        full.get("/ui/members").status,
        200,
        "the provider's MFA counts"
    );
}

#[test]
fn identity_providers_are_administrators_only_their_secret_is_write_only_and_changes_are_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let idp = Idp::start("oidc.mjs", dir.path());
    let (_, developer) = member_with_roles_and_password(
        &server,
        "dev@example.com",
        json!({"developer": "read_write", "team": "manager"}),
    );
    let body = json!({"name": "x", "type": "oidc", "issuer": idp.url, "client_id": "c"});
    // An administrator's key scoped to bot users reaches no provider.
    let scoped = server.post(
        &server.admin_key,
        "/api_keys",
        json!({"scopes": ["iam.bot_users.*"]}),
    );
    assert_eq!(scoped.status, 201, "{:?}", scoped.body);
    let scoped = scoped.body["token"].as_str().unwrap().to_owned();
    let head = server.get(&server.admin_key, "/events?limit=1").body["events"][0]["id"].clone();
    assert_error(
        &server.post(&scoped, "/identity_providers", body.clone()),
        403,
        101,
    );
    assert_error(&server.get(&scoped, "/identity_providers"), 403, 101);
    assert_error(
        &server.post(&developer, "/identity_providers", body.clone()),
        403,
        101,
    );
    assert_error(&server.get(&developer, "/identity_providers"), 403, 101);
    for (bad, field) in [
        (
            json!({"name": "x", "type": "oidc", "issuer": "http://127.0.0.1:1", "client_id": "c"}),
            "issuer",
        ),
        (
            json!({"name": "x", "type": "oidc", "client_id": "c"}),
            "issuer",
        ),
        (
            json!({"name": "", "type": "oidc", "issuer": idp.url, "client_id": "c"}),
            "name",
        ),
        (
            json!({"name": "x", "type": "ldap", "issuer": idp.url, "client_id": "c"}),
            "type",
        ),
        (
            json!({"name": "x", "type": "oidc", "issuer": idp.url, "client_id": "c", "domains": ["not a domain"]}),
            "domains",
        ),
        (
            json!({"name": "x", "type": "oidc", "issuer": idp.url, "client_id": "c", "trusted_ca_pem": "not pem"}),
            "trusted_ca_pem",
        ),
        (
            json!({"name": "x", "type": "oidc", "issuer": idp.url, "client_id": "c", "web_url": "https://github.com"}),
            "type",
        ),
    ] {
        let refused = server.post(&server.admin_key, "/identity_providers", bad.clone());
        assert_error(&refused, 400, 105);
        assert_eq!(
            refused.body["details"]["field"], field,
            "{bad}: {:?}",
            refused.body
        );
    }
    assert_eq!(
        server.get(&server.admin_key, "/events?limit=1").body["events"][0]["id"],
        head,
        "refusals change nothing"
    );
    assert_eq!(
        count(&server, "/identity_providers", "identity_providers"),
        0
    );
    // Without the operator's leave, a private address is refused.
    let strict = crate::api::start_server();
    let refused = strict.post(&strict.admin_key, "/identity_providers", body);
    assert_error(&refused, 400, 105);
    assert!(
        refused.body["msg"]
            .as_str()
            .unwrap()
            .contains("not a public address")
    );

    let (id, _) = provider(&server, &idp, "Corp", json!({}));
    let made = server
        .get(
            &server.admin_key,
            "/events?action=iam.identity_providers.create",
        )
        .body;
    assert!(
        !made.to_string().contains(CLIENT_SECRET),
        "never in the trail: {made}"
    );
    let renamed = server.patch(
        &server.admin_key,
        &format!("/identity_providers/{id}"),
        json!({"name": "Corp SSO", "client_secret": "rotated secret"}),
    );
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    assert_eq!(renamed.body["name"], "Corp SSO");
    assert!(!renamed.body.to_string().contains("rotated secret"));
    let kind = server.patch(
        &server.admin_key,
        &format!("/identity_providers/{id}"),
        json!({"type": "github"}),
    );
    assert_error(&kind, 400, 105);
    let events = server
        .get(
            &server.admin_key,
            "/events?action=iam.identity_providers.update",
        )
        .body;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
    assert_eq!(
        server
            .delete(&server.admin_key, &format!("/identity_providers/{id}"))
            .status,
        204
    );
    assert_eq!(
        count(&server, "/identity_providers", "identity_providers"),
        0
    );
    // Discovery names providers by domain only.
    let discover = server
        .agent()
        .get(format!(
            "{}/sso/discover?email=anyone@example.com",
            server.url
        ))
        .call()
        .unwrap()
        .body_mut()
        .read_json::<Value>()
        .unwrap();
    assert_eq!(discover, json!({"providers": []}));
}

#[test]
fn a_hostile_providers_bent_id_tokens_are_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let mut idp = Idp::start("hostile-oidc.mjs", dir.path());
    idp.configure(&json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}));
    let (id, _) = provider(&server, &idp, "Hostile", json!({}));
    settings(&server, json!({"sso_mode": "mixed", "provisioning": "jit"}));
    let users = || count(&server, "/users", "users");
    let person = |sub: &str| json!({"sub": sub, "email": format!("{sub}@example.com"), "email_verified": true, "name": sub});

    // An honest token signs a new person in: the refusals below are the bends' doing.
    idp.control(
        "/_test/mode",
        &json!({"mode": "good", "person": person("first")}),
    );
    let page = sign_in(&mut Browser::new(&server), &idp, &id);
    assert_eq!(page.status, 303, "{}", page.html);
    let before = users();
    for (mode, why) in [
        ("wrong_iss", "issuer"),
        ("wrong_aud", "audience"),
        ("expired", "expired"),
        ("future_iat", "issued in the future"),
        ("old_iat", "more than ten minutes ago"),
        ("bad_nonce", "nonce"),
        ("alg_none", "signature"),
        ("hs256", "HS256"),
        ("other_key", "signature"),
        ("azp_mismatch", "azp"),
        ("several_aud_no_azp", "audience"),
        ("unverified_email", "did not verify"),
        ("no_id_token", "without an ID token"),
    ] {
        idp.control(
            "/_test/mode",
            &json!({"mode": mode, "person": person(mode)}),
        );
        let mut browser = Browser::new(&server);
        let page = sign_in(&mut browser, &idp, &id);
        assert_eq!(page.status, 403, "{mode}: {}", page.html);
        assert!(
            page.html.to_lowercase().contains(&why.to_lowercase()),
            "{mode}: {}",
            page.html
        );
        assert!(!browser.cookies.contains_key("latchkey_session"), "{mode}");
        assert_eq!(users(), before, "{mode}: nobody made");
        let event = last_refusal(&server);
        assert_eq!(
            event["after"]["identity_provider_id"],
            id.as_str(),
            "{mode}"
        );
    }
    // A rotated key is fetched again when a token names it.
    idp.control(
        "/_test/mode",
        &json!({"mode": "rotated_key", "person": person("rotated")}),
    );
    assert_eq!(sign_in(&mut Browser::new(&server), &idp, &id).status, 303);
    assert_eq!(users(), before + 1);

    // The answer belongs to the browser that began the flow: another browser (no flow
    // cookie), a changed state, and a replay are refused.
    idp.control(
        "/_test/mode",
        &json!({"mode": "good", "person": person("bound")}),
    );
    let mut first = Browser::new(&server);
    let start = first.get(&format!("/sso/{id}/login?return_to=https://evil.example/"));
    let callback = through_provider(&idp, start.location.clone(), &first.base);
    let stranger = Browser::new(&server).get(&callback);
    assert_eq!(stranger.status, 401, "{}", stranger.html);
    let tampered = first.get(&callback.replace("state=", "state=x"));
    assert_eq!(tampered.status, 403, "{}", tampered.html);
    assert!(tampered.html.contains("state"), "{}", tampered.html);
    let mut second = Browser::new(&server);
    let start = second.get(&format!("/sso/{id}/login?return_to=https://evil.example/"));
    let callback = through_provider(&idp, start.location, &second.base);
    let done = second.get(&callback);
    assert_eq!(done.location, "/ui/", "return_to stays on this origin");
    let replayed = second.get(&callback);
    assert_eq!(replayed.status, 401, "{}", replayed.html);
    assert_eq!(users(), before + 2);
}

/// A browser signed in as `email` with `password`.
fn signed_in(server: &Server, email: &str, password: &str) -> Browser {
    Browser::new(server).signed_in(email, password)
}

#[test]
fn the_settings_page_adds_providers_and_changes_the_mode_only_with_the_password_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let idp = Idp::start("oidc.mjs", dir.path());
    crate::login::admin_password(&server);
    let admin_email = crate::login::admin_email(&server);
    let mut admin = signed_in(&server, &admin_email, crate::login::PASSWORD);
    let token = admin.csrf();
    let added = admin.post(
        "/ui/settings/providers/new",
        &[
            ("csrf", &token),
            ("type", "oidc"),
            ("name", "Corp"),
            ("issuer", &idp.url),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("domains", "example.com, corp.example.com"),
            ("mfa_values", "mfa"),
            ("trusted_ca_pem", &idp.ca_pem),
        ],
    );
    assert_eq!(
        added.location, "/ui/settings?done=provider-saved",
        "{}",
        added.html
    );
    let listed = server.get(&server.admin_key, "/identity_providers").body;
    let made = &listed["identity_providers"][0];
    assert_eq!(made["domains"], json!(["example.com", "corp.example.com"]));
    assert_eq!(made["client_secret_set"], true);
    let id = made["id"].as_str().unwrap().to_owned();
    let page = admin.get("/ui/settings");
    assert!(
        page.html.contains(&format!("/sso/{id}/callback")),
        "the redirect URI to register"
    );
    // GitHub (here an Enterprise Server's URLs) from the page too; its secret is needed.
    let github = |admin: &mut Browser, secret: &str| {
        admin.post(
            "/ui/settings/providers/new",
            &[
                ("csrf", &token),
                ("type", "github"),
                ("name", "GitHub"),
                ("client_id", "Iv1.abc"),
                ("client_secret", secret),
                ("web_url", "https://github.corp.example"),
                ("api_url", "https://github.corp.example/api/v3"),
            ],
        )
    };
    let refused = github(&mut admin, "");
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert_eq!(
        count(&server, "/identity_providers", "identity_providers"),
        1
    );
    let added = github(&mut admin, "gh-secret");
    assert_eq!(
        added.location, "/ui/settings?done=provider-saved",
        "{}",
        added.html
    );
    let made =
        server.get(&server.admin_key, "/identity_providers").body["identity_providers"][0].clone();
    assert_eq!(
        (&made["type"], &made["web_url"], &made["client_secret_set"]),
        (
            &json!("github"),
            &json!("https://github.corp.example"),
            &json!(true)
        ),
        "{made}"
    );
    let github_id = made["id"].as_str().unwrap().to_owned();
    let deleted = admin.post(
        &format!("/ui/settings/providers/{github_id}/delete"),
        &[("csrf", &token)],
    );
    assert_eq!(deleted.location, "/ui/settings?done=provider-deleted");
    // A form of no known type is refused.
    let refused = admin.post(
        "/ui/settings/providers/new",
        &[("csrf", &token), ("type", "ldap"), ("name", "x")],
    );
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert_eq!(
        count(&server, "/identity_providers", "identity_providers"),
        1
    );

    // The mode changes only with the password again; provisioning alone does not ask.
    let account = || server.get(&server.admin_key, "/account").body;
    let save = |admin: &mut Browser, mode: &str, provisioning: &str, confirm: &str| {
        admin.post(
            "/ui/settings/sso",
            &[
                ("csrf", &token),
                ("sso_mode", mode),
                ("provisioning", provisioning),
                ("confirm", confirm),
            ],
        )
    };
    for confirm in ["", "not the password"] {
        let refused = save(&mut admin, "mixed", "invitations", confirm);
        assert_eq!(refused.status, 400, "{}", refused.html);
        assert_eq!(account()["sso_mode"], "off");
    }
    let saved = save(&mut admin, "off", "jit", "");
    assert_eq!(
        saved.location, "/ui/settings?done=settings",
        "{}",
        saved.html
    );
    assert_eq!(account()["provisioning"], "jit");
    let saved = save(&mut admin, "mixed", "jit", crate::login::PASSWORD);
    assert_eq!(
        saved.location, "/ui/settings?done=settings",
        "{}",
        saved.html
    );
    assert_eq!(account()["sso_mode"], "mixed");
    // Enforcing before a sign-in through a provider is refused with the lockout message.
    let refused = save(&mut admin, "enforced", "jit", crate::login::PASSWORD);
    assert_eq!(refused.status, 409, "{}", refused.html);
    assert_eq!(account()["sso_mode"], "mixed");

    // A member who is no administrator sees no provider and is refused every form.
    member_with_roles_and_password(
        &server,
        "manager@example.com",
        json!({"developer": "read_write", "team": "manager"}),
    );
    let mut manager = signed_in(&server, "manager@example.com", PASSWORD);
    assert!(
        !manager
            .get("/ui/settings")
            .html
            .contains("Identity providers")
    );
    let t = manager.csrf();
    let head = server.get(&server.admin_key, "/events?limit=1").body["events"][0]["id"].clone();
    for (path, fields) in [
        (
            "/ui/settings/providers/new",
            vec![
                ("type", "oidc"),
                ("name", "Mine"),
                ("issuer", idp.url.as_str()),
                ("client_id", "c"),
            ],
        ),
        (&*format!("/ui/settings/providers/{id}/disable"), vec![]),
        (&*format!("/ui/settings/providers/{id}/delete"), vec![]),
        (
            "/ui/settings/sso",
            vec![("sso_mode", "mixed"), ("provisioning", "invitations")],
        ),
    ] {
        let mut all = vec![("csrf", t.as_str())];
        all.extend(fields);
        let refused = manager.post(path, &all);
        assert_eq!(refused.status, 403, "{path}: {}", refused.html);
    }
    assert_eq!(
        server.get(&server.admin_key, "/events?limit=1").body["events"][0]["id"],
        head,
        "nothing changed"
    );

    // Disable and delete from the page.
    let disabled = admin.post(
        &format!("/ui/settings/providers/{id}/disable"),
        &[("csrf", &token)],
    );
    assert_eq!(disabled.location, "/ui/settings?done=provider-saved");
    assert_eq!(
        server
            .get(&server.admin_key, &format!("/identity_providers/{id}"))
            .body["enabled"],
        false
    );
    let deleted = admin.post(
        &format!("/ui/settings/providers/{id}/delete"),
        &[("csrf", &token)],
    );
    assert_eq!(deleted.location, "/ui/settings?done=provider-deleted");
    assert_eq!(
        count(&server, "/identity_providers", "identity_providers"),
        0
    );
}

#[test]
fn github_signs_in_by_its_numeric_id_with_only_a_verified_primary_email() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let mut github = Idp::start("github.mjs", dir.path());
    github.configure(&json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}));
    // GitHub needs the client secret.
    let refused = server.post(
        &server.admin_key,
        "/identity_providers",
        json!({"name": "GitHub", "type": "github", "client_id": CLIENT_ID}),
    );
    assert_error(&refused, 400, 105);
    assert_eq!(refused.body["details"]["field"], "client_secret");
    let made = server.post(
        &server.admin_key,
        "/identity_providers",
        json!({"name": "GitHub", "type": "github", "client_id": CLIENT_ID,
               "client_secret": CLIENT_SECRET, "web_url": github.url,
               "api_url": format!("{}/api/v3", github.url), "trusted_ca_pem": github.ca_pem}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert_eq!(made.body["type"], "github");
    settings(&server, json!({"sso_mode": "mixed", "provisioning": "jit"}));
    let users = || count(&server, "/users", "users");
    let before = users();

    // Only a verified primary address is taken: else the person is refused, nobody made.
    github.control(
        "/_test/mode",
        &json!({"mode": "good", "user": {"id": 4242, "login": "octo", "name": "Octo Cat"},
                "emails": [{"email": "octo@example.com", "primary": true, "verified": false},
                           {"email": "other@example.com", "primary": false, "verified": true}]}),
    );
    let page = sign_in(&mut Browser::new(&server), &github, &id);
    assert_eq!(page.status, 403, "{}", page.html);
    assert!(page.html.contains("gave no email"), "{}", page.html);
    assert_eq!(users(), before);

    github.control(
        "/_test/mode",
        &json!({"emails": [{"email": "octo@example.com", "primary": true, "verified": true}]}),
    );
    let mut octo = Browser::new(&server);
    let page = sign_in(&mut octo, &github, &id);
    assert_eq!(page.status, 303, "{}", page.html);
    assert_eq!(users(), before + 1);
    let linked = server
        .get(
            &server.admin_key,
            "/events?action=iam.external_identities.create",
        )
        .body;
    assert_eq!(
        linked["events"][0]["after"]["subject"], "4242",
        "the numeric id: {linked}"
    );

    // A renamed login is still the same person (the id is the subject).
    github.control(
        "/_test/mode",
        &json!({"user": {"id": 4242, "login": "renamed", "name": "Octo"}}),
    );
    let mut again = Browser::new(&server);
    assert_eq!(sign_in(&mut again, &github, &id).status, 303);
    assert!(again.get("/ui/").html.contains("octo@example.com"));
    assert_eq!(users(), before + 1);

    // GitHub's errors come as 200 with an `error` field: refused all the same.
    github.control("/_test/mode", &json!({"mode": "bad_code"}));
    let page = sign_in(&mut Browser::new(&server), &github, &id);
    assert_eq!(page.status, 403, "{}", page.html);
    assert!(page.html.contains("bad_verification_code"), "{}", page.html);
}

#[test]
fn group_mappings_grant_roles_and_tenant_roles_at_each_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let mut idp = Idp::start("oidc.mjs", dir.path());
    let tenant = server.post(&server.admin_key, "/tenants", json!({"name": "Contoso"}));
    assert_eq!(tenant.status, 201, "{:?}", tenant.body);
    let tenant = tenant.body["id"].as_str().unwrap().to_owned();
    let technician = server.get(&server.admin_key, "/roles").body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Technician")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The groups come with the provider's `groups` scope.
    let mapping = json!({"scopes": ["email", "profile", "groups"], "role_mapping": [
        {"claim_value": "platform", "roles": {"developer": "read_write", "team": "manager"}},
        {"claim_value": "helpdesk", "role_assignments": [{"role_id": technician, "tenant_id": tenant}]},
    ]});
    // A mapping must grant something, and name this account's roles and tenants.
    let empty = server.post(
        &server.admin_key,
        "/identity_providers",
        json!({"name": "x", "type": "oidc", "issuer": idp.url, "client_id": "c",
               "trusted_ca_pem": idp.ca_pem, "role_mapping": [{"claim_value": "g"}]}),
    );
    assert_error(&empty, 400, 105);
    let (id, view) = provider(&server, &idp, "Corp", mapping);
    assert_eq!(
        view["role_mapping"][1]["role_assignments"][0]["tenant_id"],
        tenant.as_str()
    );
    idp.configure(&json!({ "redirect_uris": [view["redirect_uri"]] }));
    settings(&server, json!({"sso_mode": "mixed", "provisioning": "jit"}));

    let person = |groups: Value| {
        json!({"sub": "lena-sub", "email": "lena@example.com", "email_verified": true,
               "name": "Lena", "groups": groups})
    };
    let lena = |server: &Server| {
        server.get(&server.admin_key, "/users").body["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == "lena@example.com")
            .cloned()
            .unwrap()
    };
    idp.control(
        "/_test/user",
        &person(json!(["platform", "helpdesk", "other"])),
    );
    assert_eq!(sign_in(&mut Browser::new(&server), &idp, &id).status, 303);
    let member = lena(&server);
    assert_eq!(
        member["roles"]["team"], "manager",
        "the mapping, over the JIT roles"
    );
    let user = member["id"].as_str().unwrap().to_owned();
    let assignments = server
        .get(
            &server.admin_key,
            &format!("/role_assignments?principal_id={user}"),
        )
        .body["role_assignments"]
        .clone();
    assert_eq!(assignments.as_array().unwrap().len(), 1, "{assignments}");
    assert_eq!(assignments[0]["role_id"], technician.as_str());
    let changed = server
        .get(&server.admin_key, "/events?action=iam.users.update_roles")
        .body;
    assert_eq!(
        changed["events"][0]["principal_kind"], "system",
        "{changed}"
    );

    assert_eq!(
        assignments[0]["sources"],
        json!([{"type": "identity_provider", "id": id}])
    );
    assert_eq!(
        member["role_grants"][1],
        json!({"source": {"type": "identity_provider", "id": id},
               "roles": {"developer": "read_write", "team": "manager", "billing": "none", "admin": false}})
    );

    // Again with the same groups: nothing more.
    let head = server
        .get(
            &server.admin_key,
            "/events?action=iam.role_assignments.create",
        )
        .body;
    idp.control("/_test/user", &person(json!(["platform", "helpdesk"])));
    assert_eq!(sign_in(&mut Browser::new(&server), &idp, &id).status, 303);
    assert_eq!(
        server
            .get(
                &server.admin_key,
                "/events?action=iam.role_assignments.create"
            )
            .body,
        head,
        "no assignment twice"
    );
    // No matching group: the provider grants nothing any more, and exactly what it gave
    // goes; what was set directly (the JIT roles) stays.
    idp.control("/_test/user", &person(json!(["nothing-mapped"])));
    assert_eq!(sign_in(&mut Browser::new(&server), &idp, &id).status, 303);
    let member = lena(&server);
    assert_eq!(member["roles"]["team"], "invite", "{member}");
    assert_eq!(member["role_grants"].as_array().unwrap().len(), 1);
    let gone = server
        .get(
            &server.admin_key,
            &format!("/role_assignments?principal_id={user}"),
        )
        .body;
    assert_eq!(gone["role_assignments"], json!([]));
    let removed = server
        .get(
            &server.admin_key,
            "/events?action=iam.role_assignments.delete",
        )
        .body;
    assert_eq!(removed["events"][0]["principal_kind"], "system");
    // Lower roles from the provider never lower what the member holds otherwise.
    let set = server.patch(
        &server.admin_key,
        &format!("/identity_providers/{id}"),
        json!({"role_mapping": [{"claim_value": "helpdesk", "roles": {"developer": "read_only", "team": "read_only"}}]}),
    );
    assert_eq!(set.status, 200, "{:?}", set.body);
    idp.control("/_test/user", &person(json!(["helpdesk"])));
    assert_eq!(sign_in(&mut Browser::new(&server), &idp, &id).status, 303);
    let member = lena(&server);
    assert_eq!(member["roles"]["team"], "invite");
    assert_eq!(member["roles"]["developer"], "read_write");
}

#[test]
fn a_provider_of_one_account_signs_nobody_into_another_and_is_not_anothers_to_touch() {
    let dir = tempfile::tempdir().unwrap();
    let accounts =
        crate::isolation::two_accounts_with(&[("LATCHKEY_ALLOW_PRIVATE_DESTINATIONS", "true")]);
    let server = &accounts.server;
    let b_key = &accounts.b_key;
    let mut idp = Idp::start("oidc.mjs", dir.path());
    let (id, view) = provider(server, &idp, "Acme IdP", json!({}));
    idp.configure(&json!({ "redirect_uris": [view["redirect_uri"]] }));
    settings(server, json!({"sso_mode": "mixed", "provisioning": "jit"}));
    let set = server.patch(
        b_key,
        "/account",
        json!({"sso_mode": "mixed", "provisioning": "jit"}),
    );
    assert_eq!(set.status, 200, "{:?}", set.body);
    let b_members = || {
        server.get(b_key, "/users").body["users"]
            .as_array()
            .unwrap()
            .len()
    };
    let b_head = || server.get(b_key, "/events?limit=1").body["events"][0]["id"].clone();
    let members = b_members();

    // Account B's administrator can neither see nor change A's provider.
    assert_eq!(count_with(server, b_key, "/identity_providers"), 0);
    for reply in [
        server.get(b_key, &format!("/identity_providers/{id}")),
        server.patch(
            b_key,
            &format!("/identity_providers/{id}"),
            json!({"enabled": false}),
        ),
        server.delete(b_key, &format!("/identity_providers/{id}")),
    ] {
        assert_error(&reply, 404, 102);
    }
    assert_eq!(
        server
            .get(&server.admin_key, &format!("/identity_providers/{id}"))
            .body["enabled"],
        true
    );

    // A new person signed in through A's provider joins A only.
    idp.next_person("acme-person", "person@example.com", true, &["pwd"]);
    assert_eq!(sign_in(&mut Browser::new(server), &idp, &id).status, 303);
    assert_eq!(b_members(), members);

    // B's administrator cannot connect A's provider to itself, nor be taken over by it.
    let set = server.post(b_key, "/me/password", json!({"new_password": PASSWORD}));
    assert_eq!(set.status, 204, "{:?}", set.body);
    let mut b_admin = signed_in(server, crate::isolation::B_ADMIN, PASSWORD);
    assert!(!b_admin.get("/ui/profile").html.contains("Connect Acme IdP"));
    let head = b_head();
    idp.next_person("b-admin-at-acme", crate::isolation::B_ADMIN, true, &["pwd"]);
    let token = b_admin.csrf();
    let connect = b_admin.post(
        "/ui/profile/connect",
        &[("csrf", &token), ("provider_id", &id)],
    );
    let callback = through_provider(&idp, connect.onward(), &b_admin.base);
    let refused = b_admin.get(&callback);
    assert_eq!(refused.status, 404, "{}", refused.html);
    let taken = sign_in(&mut Browser::new(server), &idp, &id);
    assert_eq!(taken.status, 403, "{}", taken.html);
    // A's trail records the refusal without naming B's user.
    let refusal = last_refusal(server);
    assert_eq!(refusal["principal_kind"], "system", "{refusal}");
    assert_ne!(refusal["principal_id"], accounts.b_admin.as_str());
    assert_eq!(b_head(), head, "nothing happened in account B");
}

fn count_with(server: &Server, key: &str, path: &str) -> usize {
    server.get(key, path).body["identity_providers"]
        .as_array()
        .unwrap()
        .len()
}

/// Make member `user` (signed in in `browser`) an administrator: the change it then
/// tries (single sign-on off, `provisioning`), which asks it to confirm it is itself.
fn promoted_to_change_sso(
    server: &Server,
    user: &str,
    browser: &mut Browser,
    provisioning: &'static str,
) -> impl Fn(&mut Browser) -> Page + use<> {
    let promoted = server.patch(
        &server.admin_key,
        &format!("/users/{user}"),
        json!({"roles": {"admin": true}}),
    );
    assert_eq!(promoted.status, 200, "{:?}", promoted.body);
    browser.get("/ui/profile");
    let token = browser.csrf();
    move |browser: &mut Browser| {
        browser.post(
            "/ui/settings/sso",
            &[
                ("csrf", &token),
                ("sso_mode", "off"),
                ("provisioning", provisioning),
            ],
        )
    }
}

#[test]
fn a_member_without_a_password_confirms_sensitive_changes_through_its_provider() {
    let (_dir, server, idp, id) = oidc_jit("Corp");
    idp.next_person("ops-sub", "ops@example.com", true, &["pwd"]);
    let mut ops = Browser::new(&server);
    assert_eq!(sign_in(&mut ops, &idp, &id).status, 303);
    // Made an administrator; it has no password.
    let user = server.get(&server.admin_key, "/users").body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ops@example.com")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let change = promoted_to_change_sso(&server, &user, &mut ops, "jit");
    let token = ops.csrf();
    let refused = change(&mut ops);
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(
        refused
            .html
            .contains("confirm through your identity provider"),
        "{}",
        refused.html
    );
    assert_eq!(
        server.get(&server.admin_key, "/account").body["sso_mode"],
        "mixed"
    );

    // Someone else at the provider cannot confirm for it.
    idp.next_person("intruder-sub", "intruder@example.com", true, &["pwd"]);
    let start = ops.post(
        "/ui/profile/reconfirm",
        &[("csrf", &token), ("provider_id", &id)],
    );
    let callback = through_provider(&idp, start.onward(), &ops.base);
    let wrong = ops.get(&callback);
    assert_eq!(wrong.status, 401, "{}", wrong.html);
    assert_eq!(change(&mut ops).status, 400);

    // Its own identity confirms: for five minutes the change needs no password.
    idp.next_person("ops-sub", "ops@example.com", true, &["pwd"]);
    assert!(
        ops.get("/ui/profile")
            .html
            .contains("Confirm it is you through Corp")
    );
    let start = ops.post(
        "/ui/profile/reconfirm",
        &[("csrf", &token), ("provider_id", &id)],
    );
    let callback = through_provider(&idp, start.onward(), &ops.base);
    let confirmed = ops.get(&callback);
    assert_eq!(
        confirmed.location, "/ui/profile?done=reconfirmed",
        "{}",
        confirmed.html
    );
    let saved = change(&mut ops);
    assert_eq!(
        saved.location, "/ui/settings?done=settings",
        "{}",
        saved.html
    );
    assert_eq!(
        server.get(&server.admin_key, "/account").body["sso_mode"],
        "off"
    );
}

#[test]
fn two_providers_on_one_account_and_a_members_own_second_factor_after_the_provider() {
    use crate::login::{enroll, totp_at, unix_now};
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let mut first = Idp::start("oidc.mjs", dir.path());
    let second_dir = tempfile::tempdir().unwrap();
    let mut second = Idp::start("oidc.mjs", second_dir.path());
    let (one, view) = provider(&server, &first, "First IdP", json!({}));
    first.configure(&json!({ "redirect_uris": [view["redirect_uri"]] }));
    let (two, view) = provider(&server, &second, "Second IdP", json!({}));
    second.configure(&json!({ "redirect_uris": [view["redirect_uri"]] }));
    settings(&server, json!({"sso_mode": "mixed", "provisioning": "jit"}));
    let page = Browser::new(&server).get("/ui/sign-in").html;
    assert!(page.contains("Sign in with First IdP") && page.contains("Sign in with Second IdP"));

    // A member with a password and TOTP connects the first provider; signing in through
    // it (which asserts no second factor) then asks for the member's own code.
    let (_, key) = member_with_roles_and_password(&server, "tess@example.com", json!({}));
    let seed = enroll(&server, None, &key);
    let confirmed = server.post(
        &key,
        "/me/mfa/totp/confirm",
        json!({"code": totp_at(&seed, unix_now() - 30)}),
    );
    assert_eq!(confirmed.status, 200, "{:?}", confirmed.body);
    let mut tess = Browser::new(&server);
    let token = tess.get("/ui/sign-in").field("csrf");
    let step = tess.post(
        "/ui/sign-in",
        &[
            ("csrf", &token),
            ("email", "tess@example.com"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(step.location, "/ui/sign-in/code");
    let code = totp_at(&seed, unix_now());
    let done = tess.post("/ui/sign-in/code", &[("csrf", &token), ("code", &code)]);
    assert_eq!(done.location, "/ui/", "{}", done.html);
    first.next_person("tess-at-first", "tess@corp.example", true, &["pwd"]);
    let token = tess.csrf();
    let connect = tess.post(
        "/ui/profile/connect",
        &[("csrf", &token), ("provider_id", &one)],
    );
    let callback = through_provider(&first, connect.onward(), &tess.base);
    assert_eq!(tess.get(&callback).location, "/ui/profile?done=connected");

    let mut via_first = Browser::new(&server);
    let page = sign_in(&mut via_first, &first, &one);
    assert_eq!(page.location, "/ui/sign-in/code", "{}", page.html);
    assert!(
        via_first.get("/ui/").location.ends_with("/ui/sign-in"),
        "no session yet"
    );
    let token = via_first.get("/ui/sign-in/code").field("csrf");
    let wrong = via_first.post("/ui/sign-in/code", &[("csrf", &token), ("code", "000000")]);
    assert_eq!(wrong.status, 401, "{}", wrong.html);
    let code = totp_at(&seed, unix_now() + 30);
    let done = via_first.post("/ui/sign-in/code", &[("csrf", &token), ("code", &code)]);
    assert_eq!(done.location, "/ui/", "{}", done.html);
    let signed = server
        .get(
            &server.admin_key,
            "/events?action=iam.sessions.create&limit=1",
        )
        .body;
    assert_eq!(signed["events"][0]["after"]["method"], "sso", "{signed}");
    assert_eq!(
        signed["events"][0]["after"]["identity_provider_id"],
        one.as_str()
    );

    // Each provider is its own: the second does not know Tess's link to the first.
    second.next_person("tess-at-first", "tess@example.com", true, &["pwd"]);
    let page = sign_in(&mut Browser::new(&server), &second, &two);
    assert_eq!(page.status, 403, "{}", page.html);
    assert!(
        page.html
            .contains("sign in with its password or passkey first"),
        "{}",
        page.html
    );
    second.next_person("uma", "uma@example.com", true, &["pwd"]);
    assert_eq!(
        sign_in(&mut Browser::new(&server), &second, &two).status,
        303
    );
}

#[test]
fn failed_passwords_for_an_email_do_not_lock_its_owner_out_of_its_provider() {
    let (_dir, server, idp, id) = oidc_jit("Corp");
    idp.next_person("vic-sub", "vic@example.com", true, &["pwd"]);
    assert_eq!(sign_in(&mut Browser::new(&server), &idp, &id).status, 303);
    // Someone hammers the password sign-in for Vic's email until it is locked.
    for _ in 0..6 {
        crate::login::login(
            &server,
            json!({"email": "vic@example.com", "password": "guessing wrong"}),
        );
    }
    let locked = crate::login::login(
        &server,
        json!({"email": "vic@example.com", "password": "guessing wrong"}),
    );
    assert_error(&locked, 429, 117);
    // Vic still signs in through the provider.
    assert_eq!(sign_in(&mut Browser::new(&server), &idp, &id).status, 303);
}

/// The last SAMLResponse the SAML provider made (base64).
fn last_saml_response(idp: &Idp) -> String {
    let mut answer = idp
        .agent
        .post(format!("{}/_test/last", idp.url))
        .send("{}")
        .unwrap();
    let body: Value = answer.body_mut().read_json().unwrap();
    body["saml_response"].as_str().unwrap().to_owned()
}

/// Post `saml_response` to provider `id`'s ACS from `browser`, as the provider's page
/// does (a cross-site form post: the session cookie stays home).
fn post_to_acs(
    browser: &mut Browser,
    idp: &Idp,
    id: &str,
    saml_response: &str,
    relay: &str,
) -> Page {
    browser.post_cross_site(
        &idp.url,
        &format!("/sso/{id}/acs"),
        &[("SAMLResponse", saml_response), ("RelayState", relay)],
    )
}

/// An SP-initiated SAML sign-in in `browser`: the ACS's answer.
fn saml_sign_in(browser: &mut Browser, idp: &Idp, id: &str) -> Page {
    let start = browser.get(&format!("/sso/{id}/login"));
    assert_eq!(start.status, 303, "{}", start.html);
    saml_answer(browser, idp, id, &start.location)
}

/// The ACS's answer to the SAML flow that sent `browser` to `location`: the provider
/// signs the person in and its page posts the response back (cross-site).
fn saml_answer(browser: &mut Browser, idp: &Idp, id: &str, location: &str) -> Page {
    assert!(
        location.starts_with(idp.info["sso_url"].as_str().unwrap()),
        "{location}"
    );
    let relay = location
        .split("RelayState=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let (status, _) = Jar::default().get(&idp.agent, location);
    assert_eq!(status, 200, "the provider's auto-submit page");
    let response = last_saml_response(idp);
    post_to_acs(browser, idp, id, &response, &relay)
}

/// A SAML provider on `server` for pysaml2 `idp`: its id and latchkey's service-provider
/// URLs for it (to tell the provider).
pub fn saml_provider(server: &Server, idp: &Idp, name: &str) -> (String, Value) {
    let made = server.post(
        &server.admin_key,
        "/identity_providers",
        json!({"name": name, "type": "saml",
               "idp_entity_id": idp.info["entity_id"], "sso_url": idp.info["sso_url"],
               "certificates": [idp.info["certificate"]], "email_verified": true}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    (
        made.body["id"].as_str().unwrap().to_owned(),
        made.body["sp"].clone(),
    )
}

#[test]
fn saml_against_pysaml2_sp_and_idp_initiated_with_replays_forgeries_and_unsigned_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let mut idp = Idp::start_with("python3", "saml_idp.py", dir.path());
    let made = server.post(
        &server.admin_key,
        "/identity_providers",
        json!({"name": "Corp SAML", "type": "saml",
               "idp_entity_id": idp.info["entity_id"], "sso_url": idp.info["sso_url"],
               "certificates": [idp.info["certificate"]], "email_verified": true}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        made.body["want_assertions_signed"], true,
        "the safe default"
    );
    let sp = made.body["sp"].clone();
    assert_eq!(sp["acs_url"], format!("{}/sso/{id}/acs", server.url));
    idp.configure(&json!({"sp_entity_id": sp["entity_id"], "acs_url": sp["acs_url"]}));
    // latchkey's SP metadata, for the provider.
    let metadata = server
        .agent()
        .get(sp["metadata_url"].as_str().unwrap())
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metadata.contains(&format!("Location=\"{}/sso/{id}/acs\"", server.url)),
        "{metadata}"
    );
    settings(&server, json!({"sso_mode": "mixed", "provisioning": "jit"}));
    let users = || count(&server, "/users", "users");
    let before = users();

    // SP-initiated: a new person signs in, made Just-in-Time.
    let person = |name_id: &str| json!({"name_id": name_id, "email": name_id, "name": "Sam L", "groups": ["eng"]});
    idp.control("/_test/user", &person("saml-sam@example.com"));
    let mut sam = Browser::new(&server);
    let page = saml_sign_in(&mut sam, &idp, &id);
    assert_eq!(
        (page.status, page.location.as_str()),
        (303, "/ui/"),
        "{}",
        page.html
    );
    assert!(sam.get("/ui/").html.contains("saml-sam@example.com"));
    assert_eq!(users(), before + 1);
    // The same response again is a replay, even from the same browser.
    let replay = last_saml_response(&idp);
    let page = post_to_acs(&mut Browser::new(&server), &idp, &id, &replay, "");
    assert_eq!(page.status, 403, "{}", page.html);

    // IdP-initiated is off by default; on, it signs in, and a replay is refused.
    let (status, _) = Jar::default().get(&idp.agent, &format!("{}/idp-initiated", idp.url));
    assert_eq!(status, 200);
    let unsolicited = last_saml_response(&idp);
    let page = post_to_acs(&mut Browser::new(&server), &idp, &id, &unsolicited, "");
    assert_eq!(page.status, 403, "{}", page.html);
    assert!(
        page.html.contains("IdP-initiated sign-in is off"),
        "{}",
        page.html
    );
    let set = server.patch(
        &server.admin_key,
        &format!("/identity_providers/{id}"),
        json!({"allow_idp_initiated": true}),
    );
    assert_eq!(set.status, 200, "{:?}", set.body);
    let (status, _) = Jar::default().get(&idp.agent, &format!("{}/idp-initiated", idp.url));
    assert_eq!(status, 200);
    let unsolicited = last_saml_response(&idp);
    let page = post_to_acs(&mut Browser::new(&server), &idp, &id, &unsolicited, "");
    assert_eq!(page.location, "/ui/", "{}", page.html);
    let page = post_to_acs(&mut Browser::new(&server), &idp, &id, &unsolicited, "");
    assert_eq!(page.status, 403, "{}", page.html);
    assert!(page.html.contains("replay"), "{}", page.html);

    // Forged: the NameID changed after signing; unsigned; only the response signed while
    // the provider must sign its assertions. Nobody is made by any of them.
    let count_now = users();
    idp.control("/_test/user", &person("victim@example.com"));
    let (status, _) = Jar::default().get(&idp.agent, &format!("{}/idp-initiated", idp.url));
    assert_eq!(status, 200);
    let genuine = last_saml_response(&idp);
    let xml =
        String::from_utf8(<base64ct::Base64 as base64ct::Encoding>::decode_vec(&genuine).unwrap())
            .unwrap();
    let forged = xml.replace("victim@example.com", "mallory@example.com");
    let forged = <base64ct::Base64 as base64ct::Encoding>::encode_string(forged.as_bytes());
    let page = post_to_acs(&mut Browser::new(&server), &idp, &id, &forged, "");
    assert_eq!(page.status, 403, "{}", page.html);
    assert!(page.html.contains("does not verify"), "{}", page.html);
    for (sign, why) in [
        ("none", "not signed"),
        ("response", "assertion itself is not signed"),
    ] {
        idp.control("/_test/mode", &json!({"sign": sign}));
        let (status, _) = Jar::default().get(&idp.agent, &format!("{}/idp-initiated", idp.url));
        assert_eq!(status, 200);
        let response = last_saml_response(&idp);
        let page = post_to_acs(&mut Browser::new(&server), &idp, &id, &response, "");
        assert_eq!(page.status, 403, "{sign}: {}", page.html);
        assert!(page.html.contains(why), "{sign}: {}", page.html);
    }
    assert_eq!(users(), count_now);
    let refusal = last_refusal(&server);
    assert_eq!(
        refusal["after"]["identity_provider_id"],
        id.as_str(),
        "{refusal}"
    );
    // A provider that may sign the response only: then accepted.
    let set = server.patch(
        &server.admin_key,
        &format!("/identity_providers/{id}"),
        json!({"want_assertions_signed": false}),
    );
    assert_eq!(set.status, 200, "{:?}", set.body);
    let page = saml_sign_in(&mut Browser::new(&server), &idp, &id);
    assert_eq!(page.location, "/ui/", "{}", page.html);
}

#[test]
fn a_saml_provider_is_configured_from_its_metadata_pasted_or_fetched_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let mut idp = Idp::start_with("python3", "saml_idp.py", dir.path());
    idp.configure(&json!({"sp_entity_id": "https://sp.example/metadata", "acs_url": "https://sp.example/acs"}));
    let metadata = idp
        .agent
        .get(format!("{}/metadata", idp.url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let check = |made: &crate::api::Reply| {
        assert_eq!(made.status, 201, "{:?}", made.body);
        assert_eq!(made.body["idp_entity_id"], idp.info["entity_id"]);
        assert_eq!(made.body["sso_url"], idp.info["sso_url"]);
        let pem = made.body["certificates"][0].as_str().unwrap();
        let strip = |text: &str| text.split_whitespace().collect::<String>();
        assert_eq!(strip(pem), strip(idp.info["certificate"].as_str().unwrap()));
    };
    let pasted = server.post(
        &server.admin_key,
        "/identity_providers",
        json!({"name": "Pasted", "type": "saml", "metadata_xml": metadata}),
    );
    check(&pasted);
    let fetched = server.post(
        &server.admin_key,
        "/identity_providers",
        json!({"name": "Fetched", "type": "saml", "metadata_url": format!("{}/metadata", idp.url),
               "trusted_ca_pem": idp.ca_pem}),
    );
    check(&fetched);
    // Not metadata, a DOCTYPE, both ways at once, a CA without a URL: refused, nothing made.
    let providers = count(&server, "/identity_providers", "identity_providers");
    for (body, field) in [
        (
            json!({"name": "x", "type": "saml", "metadata_xml": "<x/>"}),
            "metadata_xml",
        ),
        (
            json!({"name": "x", "type": "saml", "metadata_xml": format!("<!DOCTYPE x>{metadata}")}),
            "metadata_xml",
        ),
        (
            json!({"name": "x", "type": "saml", "metadata_xml": metadata, "metadata_url": idp.url}),
            "metadata_url",
        ),
        (
            json!({"name": "x", "type": "saml", "metadata_xml": metadata, "trusted_ca_pem": idp.ca_pem}),
            "type",
        ),
    ] {
        let refused = server.post(&server.admin_key, "/identity_providers", body);
        assert_error(&refused, 400, 105);
        assert_eq!(
            refused.body["details"]["field"], field,
            "{:?}",
            refused.body
        );
    }
    assert_eq!(
        count(&server, "/identity_providers", "identity_providers"),
        providers
    );

    // A member who may not make a provider never has the server fetch a metadata URL,
    // through the API or the dashboard (a listener on loopback sees no connection).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let bait = format!(
        "https://127.0.0.1:{}/metadata",
        listener.local_addr().unwrap().port()
    );
    let (_, manager_key) = member_with_roles_and_password(
        &server,
        "manager@example.com",
        json!({"developer": "read_write", "team": "manager"}),
    );
    let refused = server.post(
        &manager_key,
        "/identity_providers",
        json!({"name": "x", "type": "saml", "metadata_url": bait}),
    );
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    let mut manager = signed_in(&server, "manager@example.com", PASSWORD);
    let t = manager.csrf();
    let refused = manager.post(
        "/ui/settings/providers/new",
        &[
            ("csrf", &t),
            ("type", "saml"),
            ("name", "x"),
            ("metadata_url", &bait),
        ],
    );
    assert_eq!(refused.status, 403, "{}", refused.html);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        listener.accept().is_err(),
        "nothing was fetched for a member who may not"
    );

    // The administrator adds one from the settings page by its metadata URL; the page
    // then shows what to register at the provider.
    crate::login::admin_password(&server);
    let admin_email = crate::login::admin_email(&server);
    let mut admin = signed_in(&server, &admin_email, crate::login::PASSWORD);
    let token = admin.csrf();
    fn form<'a>(
        token: &'a str,
        name: &'a str,
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut fields = vec![("csrf", token), ("type", "saml"), ("name", name)];
        fields.extend_from_slice(extra);
        fields
    }
    let url = format!("{}/metadata", idp.url);
    let added = admin.post(
        "/ui/settings/providers/new",
        &form(
            &token,
            "From the page",
            &[
                ("metadata_url", &url),
                ("trusted_ca_pem", &idp.ca_pem),
                ("domains", "corp.example"),
                ("email_verified", "on"),
            ],
        ),
    );
    assert_eq!(
        added.location, "/ui/settings?done=provider-saved",
        "{}",
        added.html
    );
    let made =
        server.get(&server.admin_key, "/identity_providers").body["identity_providers"][0].clone();
    assert_eq!(
        (
            &made["name"],
            &made["type"],
            &made["sso_url"],
            &made["email_verified"],
            &made["allow_idp_initiated"]
        ),
        (
            &json!("From the page"),
            &json!("saml"),
            &idp.info["sso_url"],
            &json!(true),
            &json!(false)
        ),
        "{made}"
    );
    let id = made["id"].as_str().unwrap();
    let page = admin.get("/ui/settings");
    assert!(
        page.html.contains(&format!("{}/sso/{id}/acs", server.url)),
        "the ACS URL to register"
    );
    // By fields, with IdP-initiated sign-in allowed.
    let cert = idp.info["certificate"].as_str().unwrap();
    let entity = idp.info["entity_id"].as_str().unwrap();
    let sso_url = idp.info["sso_url"].as_str().unwrap();
    let added = admin.post(
        "/ui/settings/providers/new",
        &form(
            &token,
            "By fields",
            &[
                ("idp_entity_id", entity),
                ("sso_url", sso_url),
                ("certificate", cert),
                ("allow_idp_initiated", "on"),
            ],
        ),
    );
    assert_eq!(
        added.location, "/ui/settings?done=provider-saved",
        "{}",
        added.html
    );
    let made =
        server.get(&server.admin_key, "/identity_providers").body["identity_providers"][0].clone();
    assert_eq!(
        (&made["allow_idp_initiated"], &made["email_verified"]),
        (&json!(true), &json!(false))
    );
    // Nothing to go by, metadata that is none, an http SSO URL: the page says why, nothing is made.
    let providers = count(&server, "/identity_providers", "identity_providers");
    for (extra, why) in [
        (vec![], "idp_entity_id"),
        (vec![("metadata_xml", "<x/>")], "metadata"),
        (
            vec![
                ("idp_entity_id", entity),
                ("sso_url", "http://idp.example/sso"),
                ("certificate", cert),
            ],
            "https",
        ),
    ] {
        let refused = admin.post("/ui/settings/providers/new", &form(&token, "Bad", &extra));
        assert_eq!(refused.status, 400, "{why}: {}", refused.html);
        assert!(refused.html.contains(why), "{why}: {}", refused.html);
    }
    assert_eq!(
        count(&server, "/identity_providers", "identity_providers"),
        providers
    );
}

#[test]
fn saml_accepts_an_invitation_connects_from_the_profile_and_confirms_a_member() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let mut idp = Idp::start_with("python3", "saml_idp.py", dir.path());
    let (id, sp) = saml_provider(&server, &idp, "Corp SAML");
    idp.configure(&json!({"sp_entity_id": sp["entity_id"], "acs_url": sp["acs_url"]}));
    settings(&server, json!({"sso_mode": "mixed"}));
    let users = || count(&server, "/users", "users");
    let links = || {
        server
            .get(
                &server.admin_key,
                "/events?action=iam.external_identities.create",
            )
            .body["events"]
            .as_array()
            .unwrap()
            .len()
    };
    let person = |name_id: &str, email: &str| json!({"name_id": name_id, "email": email, "name": "Ivy S", "groups": []});

    // Invite-only: the invited person's first SAML sign-in accepts the invitation.
    let invited = server.post(
        &server.admin_key,
        "/invitations",
        json!({"email": "ivy@example.com", "roles": {"developer": "read_only", "team": "manager"}}),
    );
    assert_eq!(invited.status, 201, "{:?}", invited.body);
    let before = users();
    idp.control("/_test/user", &person("ivy-corp", "ivy@example.com"));
    let mut ivy = Browser::new(&server);
    let page = saml_sign_in(&mut ivy, &idp, &id);
    assert_eq!(
        (page.status, page.location.as_str()),
        (303, "/ui/"),
        "{}",
        page.html
    );
    assert!(ivy.get("/ui/").html.contains("ivy@example.com"));
    assert_eq!(users(), before + 1);
    let ivy_member = server.get(&server.admin_key, "/users").body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ivy@example.com")
        .cloned()
        .unwrap();
    assert_eq!(
        (
            &ivy_member["roles"]["developer"],
            &ivy_member["roles"]["team"]
        ),
        (&json!("read_only"), &json!("manager"))
    );
    let invitation = format!("/invitations/{}", invited.body["id"].as_str().unwrap());
    assert_eq!(
        server.get(&server.admin_key, &invitation).body["state"],
        "accepted"
    );
    // Nobody else: a stranger is refused, nobody is made.
    idp.control("/_test/user", &person("stranger", "stranger@example.com"));
    let page = saml_sign_in(&mut Browser::new(&server), &idp, &id);
    assert_eq!(page.status, 403, "{}", page.html);
    assert!(page.html.contains("has no invitation"), "{}", page.html);
    assert_eq!(users(), before + 1);

    // A member connects the provider from its profile. The answer is a cross-site post,
    // which carries no session: it is handed back through a same-origin form.
    let (rex_id, _) = member_with_roles_and_password(&server, "rex@example.com", json!({}));
    let mut rex = signed_in(&server, "rex@example.com", PASSWORD);
    assert!(rex.get("/ui/profile").html.contains("Connect Corp SAML"));
    idp.control("/_test/user", &person("rex-corp", "rex@corp.example.com"));
    let token = rex.csrf();
    let start = rex.post(
        "/ui/profile/connect",
        &[("csrf", &token), ("provider_id", &id)],
    );
    let answer = saml_answer(&mut rex, &idp, &id, &start.onward());
    assert_eq!(answer.status, 200, "{}", answer.html);
    let finish = format!("/sso/{id}/finish");
    assert!(
        answer.html.contains(&format!("action=\"{finish}\""))
            && answer.html.contains("data-autosubmit"),
        "{}",
        answer.html
    );
    let sealed = answer.field("token");
    let linked_before = links();
    // Nobody but the session that began it finishes it: not another member, not a page
    // of another site, not a post without an origin, not a token bent by one byte.
    member_with_roles_and_password(&server, "otto@example.com", json!({}));
    let mut other = signed_in(&server, "otto@example.com", PASSWORD);
    let stolen = other.post(&finish, &[("token", &sealed)]);
    assert_eq!(stolen.status, 403, "{}", stolen.html);
    assert!(stolen.html.contains("another session"), "{}", stolen.html);
    let cross = rex.post_cross_site(&idp.url, &finish, &[("token", &sealed)]);
    assert_eq!(cross.status, 403, "{}", cross.html);
    let no_origin = rex.post_from(None, &finish, &[("token", &sealed)]);
    assert_eq!(no_origin.status, 403, "{}", no_origin.html);
    let mut bent = sealed.clone().into_bytes();
    bent[10] = if bent[10] == b'A' { b'B' } else { b'A' };
    let bent = rex.post(&finish, &[("token", &String::from_utf8(bent).unwrap())]);
    assert_eq!(bent.status, 401, "{}", bent.html);
    assert_eq!(links(), linked_before, "nothing was linked by a refusal");
    let done = rex.post(&finish, &[("token", &sealed)]);
    assert_eq!(done.location, "/ui/profile?done=connected", "{}", done.html);
    assert_eq!(links(), linked_before + 1);
    let event = server
        .get(
            &server.admin_key,
            "/events?action=iam.external_identities.create&limit=1",
        )
        .body;
    assert_eq!(
        event["events"][0]["after"]["subject"], "rex-corp",
        "{event}"
    );
    assert_eq!(
        event["events"][0]["principal_id"],
        rex_id.as_str(),
        "{event}"
    );
    // From now on, the provider signs Rex in by that subject.
    let mut via_saml = Browser::new(&server);
    assert_eq!(saml_sign_in(&mut via_saml, &idp, &id).location, "/ui/");
    assert!(via_saml.get("/ui/").html.contains("rex@example.com"));

    // Someone else's identity at the provider cannot be connected to Rex.
    idp.control("/_test/user", &person("ivy-corp", "ivy@example.com"));
    let start = rex.post(
        "/ui/profile/connect",
        &[("csrf", &token), ("provider_id", &id)],
    );
    let flow = rex.cookies["latchkey_sso"].clone();
    let answer = saml_answer(&mut rex, &idp, &id, &start.onward());
    // A flow's own sealed cookie is no finishing token.
    let not_a_token = rex.post(&finish, &[("token", &flow)]);
    assert_eq!(not_a_token.status, 401, "{}", not_a_token.html);
    let taken = rex.post(&finish, &[("token", &answer.field("token"))]);
    assert_eq!(taken.status, 409, "{}", taken.html);
    assert_eq!(links(), linked_before + 1);

    // Ivy (no password) confirms it is her through the provider before a sensitive
    // change; someone else's identity there does not confirm her.
    let ivy_id = ivy_member["id"].as_str().unwrap();
    let change = promoted_to_change_sso(&server, ivy_id, &mut ivy, "invitations");
    let token = ivy.csrf();
    assert_eq!(change(&mut ivy).status, 400);
    idp.control("/_test/user", &person("rex-corp", "rex@corp.example.com"));
    let start = ivy.post(
        "/ui/profile/reconfirm",
        &[("csrf", &token), ("provider_id", &id)],
    );
    let answer = saml_answer(&mut ivy, &idp, &id, &start.onward());
    let wrong = ivy.post(&finish, &[("token", &answer.field("token"))]);
    assert_eq!(wrong.status, 401, "{}", wrong.html);
    assert_eq!(change(&mut ivy).status, 400);
    idp.control("/_test/user", &person("ivy-corp", "ivy@example.com"));
    let start = ivy.post(
        "/ui/profile/reconfirm",
        &[("csrf", &token), ("provider_id", &id)],
    );
    let answer = saml_answer(&mut ivy, &idp, &id, &start.onward());
    let confirmed = ivy.post(&finish, &[("token", &answer.field("token"))]);
    assert_eq!(
        confirmed.location, "/ui/profile?done=reconfirmed",
        "{}",
        confirmed.html
    );
    let saved = change(&mut ivy);
    assert_eq!(
        saved.location, "/ui/settings?done=settings",
        "{}",
        saved.html
    );
    assert_eq!(
        server.get(&server.admin_key, "/account").body["sso_mode"],
        "off"
    );
}
