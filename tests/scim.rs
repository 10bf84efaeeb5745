//! SCIM 2.0 provisioning through the real server over TLS: SCIM tokens, the conformance
//! checker `scim2-tester` (PyPI `scim2-cli`, which scripts/test installs in
//! target/scim-venv), the request sequences Okta and Entra ID send, and what SCIM must
//! never do (another account's members, an email of another account's user, the last
//! administrator, writes while the account is not provisioned by SCIM), each refusal
//! checked to change nothing.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::api::{Reply, Server, assert_error, reply, start_server};

/// A SCIM request with `token`.
fn scim(server: &Server, token: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    scim_with(server, token, method, path, body, &[])
}

fn scim_with(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let url = format!("{}/scim/v2{path}", server.url);
    let agent = server.agent();
    let auth = format!("Bearer {token}");
    let send = |mut request: ureq::RequestBuilder<ureq::typestate::WithBody>| {
        request = request
            .header("Authorization", &auth)
            .header("Content-Type", "application/scim+json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send(body.clone().unwrap_or(Value::Null).to_string())
    };
    let got = |mut request: ureq::RequestBuilder<ureq::typestate::WithoutBody>| {
        request = request.header("Authorization", &auth);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.call()
    };
    reply(match method {
        "GET" => got(agent.get(&url)),
        "DELETE" => got(agent.delete(&url)),
        "POST" => send(agent.post(&url)),
        "PUT" => send(agent.put(&url)),
        "PATCH" => send(agent.patch(&url)),
        other => panic!("no method {other}"),
    })
}

fn header<'r>(reply: &'r Reply, name: &str) -> &'r str {
    reply
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map_or("", |(_, v)| v.as_str())
}

fn assert_scim_error(reply: &Reply, status: u16, scim_type: Option<&str>) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(
        reply.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
        "{:?}",
        reply.body
    );
    assert_eq!(reply.body["status"], status.to_string());
    if let Some(kind) = scim_type {
        assert_eq!(reply.body["scimType"], kind, "{:?}", reply.body);
    }
    assert!(reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

/// An account with single sign-on configured (an enabled provider, mixed mode), SCIM
/// provisioning on, and a SCIM token: the token.
fn provisioned(server: &Server) -> String {
    let made = server.post(
        &server.admin_key,
        "/identity_providers",
        json!({"name": "Corp", "type": "oidc", "issuer": "https://idp.example.com",
               "client_id": "latchkey", "client_secret": "s3cret"}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let set = server.patch(
        &server.admin_key,
        "/account",
        json!({"sso_mode": "mixed", "provisioning": "scim"}),
    );
    assert_eq!(set.status, 200, "{:?}", set.body);
    token(server, "Okta")
}

fn token(server: &Server, description: &str) -> String {
    let made = server.post(
        &server.admin_key,
        "/scim_tokens",
        json!({ "description": description }),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    made.body["token"].as_str().unwrap().to_owned()
}

fn events(server: &Server) -> usize {
    server.get(&server.admin_key, "/events?limit=100").body["events"]
        .as_array()
        .unwrap()
        .len()
}

fn members(server: &Server) -> usize {
    server.get(&server.admin_key, "/users").body["users"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn scim_tokens_are_for_administrators_shown_once_and_work_only_at_the_scim_endpoint() {
    let server = start_server();
    // SCIM needs single sign-on configured first.
    let refused = server.patch(
        &server.admin_key,
        "/account",
        json!({"provisioning": "scim"}),
    );
    assert_error(&refused, 400, 105);
    assert_eq!(refused.body["details"]["field"], "provisioning");
    let made = server.post(
        &server.admin_key,
        "/scim_tokens",
        json!({"description": "Okta"}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let token = made.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("lk_sc_"), "{token}");
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("scimtok_"));
    let listed = server.get(&server.admin_key, "/scim_tokens").body;
    assert_eq!(listed["scim_tokens"][0]["id"], id.as_str());
    assert!(
        !listed.to_string().contains(&token[10..]),
        "never shown again"
    );
    assert!(
        server
            .get(&server.admin_key, &format!("/scim_tokens/{id}"))
            .body["token"]
            .is_null()
    );
    // Not an API key, and an API key is no SCIM token.
    assert_error(&server.get(&token, "/users"), 401, 100);
    let answer = scim(&server, &server.admin_key, "GET", "/Users", None);
    assert_scim_error(&answer, 401, None);
    // Reads work before provisioning is scim; writes are refused in SCIM's shape.
    assert_eq!(scim(&server, &token, "GET", "/Users", None).status, 200);
    let before = (members(&server), events(&server));
    let write = scim(
        &server,
        &token,
        "POST",
        "/Users",
        Some(json!({"userName": "x@example.com", "emails": [{"value": "x@example.com"}]})),
    );
    assert_scim_error(&write, 403, None);
    assert!(
        write.body["detail"]
            .as_str()
            .unwrap()
            .contains("provisioning")
    );
    assert_eq!((members(&server), events(&server)), before);

    // A team manager may neither see nor make nor revoke tokens.
    let (_, manager) = server.member_with_key(
        "m@example.com",
        json!({"developer": "read_write", "team": "manager"}),
    );
    let before = events(&server);
    assert_error(&server.get(&manager, "/scim_tokens"), 403, 101);
    assert_error(
        &server.post(&manager, "/scim_tokens", json!({"description": "mine"})),
        403,
        101,
    );
    assert_error(
        &server.delete(&manager, &format!("/scim_tokens/{id}")),
        403,
        101,
    );
    assert_error(
        &server.post(
            &server.admin_key,
            "/scim_tokens",
            json!({"description": "a\u{7}b"}),
        ),
        400,
        105,
    );
    assert_eq!(events(&server), before);
    // Revoked: refused at once.
    assert_eq!(
        server
            .delete(&server.admin_key, &format!("/scim_tokens/{id}"))
            .status,
        204
    );
    assert_scim_error(&scim(&server, &token, "GET", "/Users", None), 401, None);
    let trail = server
        .get(&server.admin_key, "/events?action=iam.scim_tokens.delete")
        .body;
    assert_eq!(trail["events"][0]["object_id"], id.as_str());
    assert!(!trail.to_string().contains(&token[10..]));
}

/// The conformance checker, run as a provider would run it.
#[test]
fn the_scim2_tester_conformance_checks_pass_against_the_real_server() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cli = root.join("target/scim-venv/bin/scim2");
    assert!(
        cli.exists(),
        "the SCIM tests need scim2-cli in target/scim-venv: run scripts/test, which installs it"
    );
    let server = start_server();
    let token = provisioned(&server);
    let output = Command::new(&cli)
        .args(["--url", &format!("{}/scim/v2", server.url), "test"])
        .env("SCIM_CLI_HEADERS", format!("Authorization: Bearer {token}"))
        .env("SSL_CERT_FILE", &server.cert)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let passed = stdout.lines().filter(|l| l.starts_with("SUCCESS")).count();
    let other: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("ERROR") || l.starts_with("SKIPPED"))
        .collect();
    assert!(
        output.status.success() && other.is_empty(),
        "{passed} passed; not passed: {other:#?}\n{stdout}\n{stderr}"
    );
    // Every check scim2-tester 0.5.2 makes of the User resource and the discovery
    // endpoints (the pinned version makes the same checks each run).
    assert_eq!(passed, 44, "{stdout}");
    println!("scim2-tester: {passed} checks, all SUCCESS");
}
