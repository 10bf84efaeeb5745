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
pub(crate) fn scim(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Reply {
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

pub(crate) fn assert_scim_error(reply: &Reply, status: u16, scim_type: Option<&str>) {
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
pub(crate) fn provisioned(server: &Server) -> String {
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
    // An administrator's key scoped to other work makes, lists and revokes no token.
    let scoped = server.post(
        &server.admin_key,
        "/api_keys",
        json!({"scopes": ["iam.bot_users.*"]}),
    );
    assert_eq!(scoped.status, 201, "{:?}", scoped.body);
    let scoped = scoped.body["token"].as_str().unwrap().to_owned();
    let before = events(&server);
    assert_error(&server.get(&scoped, "/scim_tokens"), 403, 101);
    assert_error(
        &server.post(&scoped, "/scim_tokens", json!({"description": "mine"})),
        403,
        101,
    );
    assert_error(
        &server.delete(&scoped, &format!("/scim_tokens/{id}")),
        403,
        101,
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
    // Every check scim2-tester 0.5.2 makes of the User and Group resources and the
    // discovery endpoints (the pinned version makes the same checks each run).
    assert_eq!(passed, 65, "{stdout}");
    println!("scim2-tester: {passed} checks, all SUCCESS");
}

/// The member `email` as `GET /users` shows it.
fn member(server: &Server, email: &str) -> Option<Value> {
    server.get(&server.admin_key, "/users").body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == email)
        .cloned()
}

fn verifies(server: &Server, key: &str) -> bool {
    server
        .post(&server.admin_key, "/verify", json!({ "token": key }))
        .body["valid"]
        == true
}

/// Okta's documented sequence: an existence check by `userName`, a create (with the
/// password and groups Okta sends, which latchkey never takes), reads, a PUT-heavy
/// update, deactivation by PATCH `active: false` and reactivation by PUT.
#[test]
fn okta_provisions_updates_deactivates_and_reactivates_a_member() {
    let server = start_server();
    let token = provisioned(&server);
    let found = scim(
        &server,
        &token,
        "GET",
        "/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100",
        None,
    );
    assert_eq!(found.status, 200, "{:?}", found.body);
    assert_eq!(found.body["totalResults"], 0);
    assert_eq!(found.body["Resources"], json!([]));
    assert_eq!(header(&found, "content-type"), "application/scim+json");
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    });
    let made = scim(&server, &token, "POST", "/Users", Some(body.clone()));
    assert_eq!(made.status, 201, "{:?}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        header(&made, "location"),
        format!("{}/scim/v2/Users/{id}", server.url)
    );
    assert_eq!(made.body["meta"]["location"], header(&made, "location"));
    assert_eq!(
        header(&made, "etag"),
        made.body["meta"]["version"].as_str().unwrap()
    );
    assert!(made.body.get("password").is_none() && made.body.get("groups").is_none());
    // In latchkey: a member with developer read/write and team invite (seed 001), its
    // name from SCIM, no password, its email unproven.
    let person = member(&server, "test.user@okta.local").unwrap();
    assert_eq!(
        person["roles"],
        json!({"developer": "read_write", "team": "invite", "billing": "none", "admin": false})
    );
    assert_eq!(person["name"], "Test User");
    assert_eq!(person["email_verified"], false);
    let login = crate::login::login(
        &server,
        json!({"email": "test.user@okta.local", "password": "1mz050nq"}),
    );
    assert_eq!(
        login.status, 401,
        "SCIM never sets passwords: {:?}",
        login.body
    );
    // The event names the SCIM token as the principal.
    let created = server
        .get(&server.admin_key, "/events?action=iam.users.create&limit=1")
        .body;
    assert_eq!(
        created["events"][0]["principal_kind"], "scim_token",
        "{created}"
    );
    assert!(
        created["events"][0]["principal_id"]
            .as_str()
            .unwrap()
            .starts_with("scimtok_")
    );
    // The existence check now finds it; so does every filter Okta might send.
    let not_admin = format!(
        r#"not (userName eq "{}") and meta.lastModified ge "2020-01-01T00:00:00Z""#,
        crate::login::admin_email(&server)
    );
    for filter in [
        r#"userName eq "TEST.USER@okta.local""#,
        r#"externalId eq "00ujl29u0le5T6Aj10h7""#,
        r#"emails[type eq "work"].value eq "test.user@okta.local""#,
        r#"emails[type eq "work" and value co "okta"]"#,
        r#"name.familyName sw "Us" and active eq true"#,
        not_admin.as_str(),
    ] {
        let path = format!("/Users?filter={}", urlencode(filter));
        let hit = scim(&server, &token, "GET", &path, None);
        assert_eq!(hit.body["totalResults"], 1, "{filter}: {:?}", hit.body);
        assert_eq!(hit.body["Resources"][0]["id"], id.as_str());
    }
    // Paged: the second of two members, one a page; a count over 100 is lowered to it.
    let second = scim(&server, &token, "GET", "/Users?startIndex=2&count=1", None);
    assert_eq!(
        (
            &second.body["totalResults"],
            &second.body["startIndex"],
            &second.body["itemsPerPage"]
        ),
        (&json!(2), &json!(2), &json!(1)),
        "{:?}",
        second.body
    );
    assert_eq!(second.body["Resources"][0]["id"], id.as_str());
    let all = scim(&server, &token, "GET", "/Users?count=1000", None);
    assert_eq!(all.body["itemsPerPage"], 2);
    let past = scim(&server, &token, "GET", "/Users?startIndex=9", None);
    assert_eq!(
        (&past.body["totalResults"], &past.body["Resources"]),
        (&json!(2), &json!([]))
    );
    // A key the administrator made for the member works while it is active.
    let key = server.post(&server.admin_key, "/api_keys", json!({"owner_id": id}));
    let key = key.body["token"].as_str().unwrap().to_owned();
    assert!(verifies(&server, &key));

    // PUT: the whole User again, renamed.
    let mut renamed = body.clone();
    renamed["name"] = json!({"givenName": "Tess", "familyName": "User"});
    renamed["displayName"] = json!("Tess User");
    let put = scim(
        &server,
        &token,
        "PUT",
        &format!("/Users/{id}"),
        Some(renamed.clone()),
    );
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_eq!(
        put.body["name"],
        json!({"givenName": "Tess", "familyName": "User"})
    );
    assert_eq!(
        member(&server, "test.user@okta.local").unwrap()["name"],
        "Tess User"
    );
    // Deactivated by PATCH: the membership is disabled, its key kept but refused.
    let off = scim(
        &server,
        &token,
        "PATCH",
        &format!("/Users/{id}"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "value": {"active": false}}]}),
        ),
    );
    assert_eq!(
        off.status, 200,
        "PATCH answers the resource: {:?}",
        off.body
    );
    assert_eq!(off.body["active"], false);
    assert_eq!(
        member(&server, "test.user@okta.local").unwrap()["state"],
        "disabled"
    );
    assert!(!verifies(&server, &key));
    // Reactivated by PUT.
    renamed["active"] = json!(true);
    let on = scim(
        &server,
        &token,
        "PUT",
        &format!("/Users/{id}"),
        Some(renamed),
    );
    assert_eq!(on.body["active"], true, "{:?}", on.body);
    assert!(verifies(&server, &key));
    // SCIM manages its name: the member cannot rename itself, nor can an administrator.
    let renamed_by_admin = server.patch(
        &server.admin_key,
        &format!("/users/{id}"),
        json!({"name": "Someone Else"}),
    );
    assert_eq!(renamed_by_admin.status, 403, "{:?}", renamed_by_admin.body);
    assert!(
        renamed_by_admin.body["msg"]
            .as_str()
            .unwrap()
            .contains("SCIM")
    );
    assert_eq!(
        member(&server, "test.user@okta.local").unwrap()["name"],
        "Tess User"
    );
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Entra ID's documented sequence and quirks: capitalised ops, `active` as the string
/// "False", a PATCH path with a value filter that adds an email, a PATCH without a path,
/// an existence check by `externalId`, and DELETE.
#[test]
fn entra_id_provisions_with_its_quirks_and_deletes_a_member() {
    let server = start_server();
    let token = provisioned(&server);
    let made = scim(
        &server,
        &token,
        "POST",
        "/Users",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@testuser.com",
            "active": true,
            "emails": [{"primary": true, "type": "work",
                        "value": "Test_User_fd0ea13b-3e22-4ae2-8c6f-5c5f2a8f1a55@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName",
                     "givenName": "givenName"},
            "roles": [],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "x"}
        })),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    let by_external = scim(
        &server,
        &token,
        "GET",
        &format!(
            "/Users?filter={}",
            urlencode(r#"externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef""#)
        ),
        None,
    );
    assert_eq!(
        by_external.body["totalResults"], 1,
        "{:?}",
        by_external.body
    );
    let key = server.post(&server.admin_key, "/api_keys", json!({"owner_id": id}));
    let key = key.body["token"].as_str().unwrap().to_owned();
    let patched = scim(
        &server,
        &token,
        "PATCH",
        &format!("/Users/{id}"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "Replace", "path": "userName", "value": "ryan@contoso.com"},
                {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "ryan@home.example"},
                {"op": "Replace", "path": "name.familyName", "value": "Leenay"},
                {"op": "Replace", "value": {"displayName": "Ryan Leenay", "name.givenName": "Ryan"}},
                {"op": "Replace", "path": "active", "value": "False"}
            ]}),
        ),
    );
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["userName"], "ryan@contoso.com");
    assert_eq!(patched.body["active"], false);
    assert_eq!(
        patched.body["name"],
        json!({"formatted": "givenName familyName", "familyName": "Leenay", "givenName": "Ryan"})
    );
    assert_eq!(
        patched.body["emails"][1],
        json!({"type": "home", "value": "ryan@home.example"})
    );
    assert!(!verifies(&server, &key), "disabled");
    let person = member(
        &server,
        "Test_User_fd0ea13b-3e22-4ae2-8c6f-5c5f2a8f1a55@testuser.com",
    )
    .unwrap();
    assert_eq!(
        (person["name"].as_str(), person["state"].as_str()),
        (Some("Ryan Leenay"), Some("disabled"))
    );
    // The primary email changes the user's email (a user of this account alone).
    let moved = scim(
        &server,
        &token,
        "PATCH",
        &format!("/Users/{id}"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "emails[type eq \"work\"].value",
                            "value": "ryan@contoso.com"}]}),
        ),
    );
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert!(member(&server, "ryan@contoso.com").is_some());
    // DELETE removes the member and revokes its credentials here.
    let deleted = scim(&server, &token, "DELETE", &format!("/Users/{id}"), None);
    assert_eq!(deleted.status, 204);
    assert!(member(&server, "ryan@contoso.com").is_none());
    assert!(!verifies(&server, &key));
    assert_scim_error(
        &scim(&server, &token, "GET", &format!("/Users/{id}"), None),
        404,
        None,
    );
    assert_scim_error(
        &scim(&server, &token, "DELETE", &format!("/Users/{id}"), None),
        404,
        None,
    );
    // Counted in /metrics by route, never by id.
    let metrics = server.get(&server.admin_key, "/metrics").body;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(
            r#"latchkey_http_requests_total{route="/scim/v2/Users/{id}",status="404"} 2"#
        ),
        "{metrics}"
    );
    assert!(!metrics.contains(&id));
}

/// What SCIM refuses in one account, each refusal in SCIM's shape and changing nothing.
#[test]
fn scim_refuses_taken_names_bad_bodies_and_stale_versions_and_keeps_an_administrator() {
    let server = start_server();
    let token = provisioned(&server);
    let admin_id = server.admin_id.clone();
    // A member made otherwise (its userName is its email).
    server.member_with_key("shared@example.com", json!({}));
    let post = |body: Value| scim(&server, &token, "POST", "/Users", Some(body));
    // A userName or email of a member already: 409 uniqueness.
    let taken = post(json!({"userName": "shared@example.com",
                            "emails": [{"value": "new@example.com", "primary": true}]}));
    assert_scim_error(&taken, 409, Some("uniqueness"));
    let taken = post(json!({"userName": "new", "emails": [{"value": "shared@example.com"}]}));
    assert_scim_error(&taken, 409, Some("uniqueness"));
    // Nor may a member SCIM made take another member's userName (its email) later.
    let carl = post(json!({"userName": "carl", "emails": [{"value": "carl@example.com"}]}));
    assert_eq!(carl.status, 201, "{:?}", carl.body);
    let carl_path = format!("/Users/{}", carl.body["id"].as_str().unwrap());
    let mut renamed = carl.body.clone();
    renamed["userName"] = json!("SHARED@example.com");
    let taken = scim(&server, &token, "PUT", &carl_path, Some(renamed));
    assert_scim_error(&taken, 409, Some("uniqueness"));
    assert_eq!(
        scim(&server, &token, "GET", &carl_path, None).body["userName"],
        "carl"
    );
    let before = (members(&server), events(&server));
    // Malformed: no email, a bad email, two primaries, a bad body, an unknown filter.
    for (body, kind) in [
        (json!({"userName": "a"}), "invalidValue"),
        (
            json!({"userName": "a", "emails": [{"value": "not an email"}]}),
            "invalidValue",
        ),
        (
            json!({"userName": "a", "emails": [{"value": "a@x.example", "primary": true},
                                             {"value": "b@x.example", "primary": true}]}),
            "invalidValue",
        ),
        (
            json!({"userName": "a", "emails": [{"value": "a@x.example"}], "active": "maybe"}),
            "invalidValue",
        ),
        (json!(["not", "an", "object"]), "invalidSyntax"),
    ] {
        assert_scim_error(&post(body.clone()), 400, Some(kind));
    }
    for filter in [
        r#"userName eq"#,
        r#"userName xx "a""#,
        &format!("({}userName pr", "(".repeat(30)),
    ] {
        let bad = scim(
            &server,
            &token,
            "GET",
            &format!("/Users?filter={}", urlencode(filter)),
            None,
        );
        assert_scim_error(&bad, 400, Some("invalidFilter"));
    }
    assert_scim_error(
        &scim(&server, &token, "GET", "/Users?sortBy=userName", None),
        400,
        Some("invalidValue"),
    );
    let wrong_type = reply(
        server
            .agent()
            .post(&format!("{}/scim/v2/Users", server.url))
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "text/plain")
            .send("userName=a"),
    );
    assert_scim_error(&wrong_type, 415, None);
    assert_eq!(
        (members(&server), events(&server)),
        before,
        "nothing changed"
    );

    // The account's last administrator is not disabled or removed by SCIM.
    let admin = scim(&server, &token, "GET", &format!("/Users/{admin_id}"), None);
    assert_eq!(admin.status, 200, "{:?}", admin.body);
    let mut off = admin.body.clone();
    off["active"] = json!(false);
    let refused = scim(
        &server,
        &token,
        "PUT",
        &format!("/Users/{admin_id}"),
        Some(off),
    );
    assert_scim_error(&refused, 409, Some("mutability"));
    assert_scim_error(
        &scim(
            &server,
            &token,
            "DELETE",
            &format!("/Users/{admin_id}"),
            None,
        ),
        409,
        Some("mutability"),
    );
    // A stale version is refused (If-Match), the current one taken.
    let version = admin.body["meta"]["version"].as_str().unwrap().to_owned();
    let stale = scim_with(
        &server,
        &token,
        "PATCH",
        &format!("/Users/{admin_id}"),
        Some(json!({"Operations": [{"op": "add", "path": "externalId", "value": "x"}]})),
        &[("If-Match", "W/\"0000000000000000\"")],
    );
    assert_scim_error(&stale, 412, None);
    assert_eq!(
        (members(&server), events(&server)),
        before,
        "nothing changed"
    );
    let current = scim_with(
        &server,
        &token,
        "PATCH",
        &format!("/Users/{admin_id}"),
        Some(json!({"Operations": [{"op": "add", "path": "externalId", "value": "x"}]})),
        &[("If-Match", &version)],
    );
    assert_eq!(current.status, 200, "{:?}", current.body);

    let listed = scim(&server, &token, "GET", "/Users", None);
    assert!(listed.body.to_string().contains("shared@example.com"));
}

/// Two accounts on one server: a SCIM token of A never reaches B's members, never takes
/// the email of B's user (that person is invited), and never changes the email or name
/// of a user who is also B's.
#[test]
fn scim_of_one_account_reaches_no_other_and_changes_no_shared_user() {
    let two = crate::isolation::two_accounts();
    let s = &two.server;
    let token = provisioned(s);
    let b_members = || s.get(&two.b_key, "/users").body["users"].clone();
    let b_trail = || s.get(&two.b_key, "/events?limit=1").body["events"][0]["id"].clone();
    let b_head = b_trail();
    let before = (members(s), events(s));
    // B's administrator is not A's: not found, whatever the verb.
    let path = format!("/Users/{}", two.b_admin);
    assert_scim_error(&scim(s, &token, "GET", &path, None), 404, None);
    let body =
        json!({"userName": "x", "emails": [{"value": crate::isolation::B_ADMIN}], "active": false});
    assert_scim_error(
        &scim(s, &token, "PUT", &path, Some(body.clone())),
        404,
        None,
    );
    assert_scim_error(
        &scim(
            s,
            &token,
            "PATCH",
            &path,
            Some(json!({"Operations": [{"op": "replace", "path": "active", "value": false}]})),
        ),
        404,
        None,
    );
    assert_scim_error(&scim(s, &token, "DELETE", &path, None), 404, None);
    // Its email is B's user's: A invites that person instead.
    let taken = scim(s, &token, "POST", "/Users", Some(body));
    assert_scim_error(&taken, 409, Some("uniqueness"));
    assert!(taken.body["detail"].as_str().unwrap().contains("invite"));
    let listed = scim(s, &token, "GET", "/Users", None);
    assert!(!listed.body.to_string().contains(crate::isolation::B_ADMIN));
    assert_eq!((members(s), events(s)), before);
    assert_eq!(b_trail(), b_head);

    // Once it accepts A's invitation it is A's member too: A's SCIM sees it (by its
    // email as userName) and may disable its membership in A, but not change the email
    // or name B relies on.
    crate::isolation::set_password(s, &two.b_key);
    two.b_admin_joins_a();
    let (b_before, b_head) = (b_members(), b_trail());
    let found = scim(
        s,
        &token,
        "GET",
        &format!(
            "/Users?filter={}",
            urlencode(&format!("userName eq \"{}\"", crate::isolation::B_ADMIN))
        ),
        None,
    );
    assert_eq!(found.body["totalResults"], 1, "{:?}", found.body);
    let mut user = found.body["Resources"][0].clone();
    user["emails"] = json!([{"value": "taken-over@example.com", "primary": true}]);
    let refused = scim(s, &token, "PUT", &path, Some(user.clone()));
    assert_scim_error(&refused, 403, None);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("another account")
    );
    user["emails"] = found.body["Resources"][0]["emails"].clone();
    user["displayName"] = json!("Renamed by A");
    assert_scim_error(
        &scim(s, &token, "PUT", &path, Some(user.clone())),
        403,
        None,
    );
    user["displayName"] = found.body["Resources"][0]["displayName"].clone();
    user["active"] = json!(false);
    let disabled = scim(s, &token, "PUT", &path, Some(user));
    assert_eq!(disabled.status, 200, "{:?}", disabled.body);
    assert_eq!(disabled.body["active"], false);
    // In B, nothing changed: its administrator is active there with its own email.
    assert_eq!(b_members(), b_before);
    assert_eq!(b_trail(), b_head);
}

/// The dashboard: an administrator makes a SCIM token (shown once, with the endpoint),
/// sets provisioning to SCIM, and revokes the token; a team manager sees none of it and
/// its posts are refused, changing nothing.
#[test]
fn the_settings_page_makes_and_revokes_scim_tokens_for_administrators_only() {
    use crate::web::{Browser, PASSWORD, member_with_roles_and_password};
    let server = start_server();
    crate::login::admin_password(&server);
    let email = crate::login::admin_email(&server);
    let mut admin = Browser::new(&server).signed_in(&email, crate::login::PASSWORD);
    let page = admin.get("/ui/settings");
    assert!(page.html.contains("SCIM provisioning"), "{}", page.html);
    assert!(page.html.contains(&format!("{}/scim/v2", server.url)));
    let csrf = admin.csrf();
    // SCIM needs single sign-on configured: the page says so, nothing changes.
    let refused = admin.post(
        "/ui/settings/sso",
        &[
            ("csrf", &csrf),
            ("sso_mode", "off"),
            ("provisioning", "scim"),
        ],
    );
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(refused.html.contains("single sign-on"), "{}", refused.html);
    let made = admin.post(
        "/ui/settings/scim-tokens/new",
        &[("csrf", &csrf), ("description", "Entra ID")],
    );
    assert_eq!(made.status, 201, "{}", made.html);
    let token = made.field("secret");
    assert!(token.starts_with("lk_sc_"), "{token}");
    assert!(made.html.contains("/scim/v2"));
    assert_eq!(scim(&server, &token, "GET", "/Users", None).status, 200);
    let listed = admin.get("/ui/settings");
    assert!(listed.html.contains("Entra ID") && !listed.html.contains(&token));
    let id = server.get(&server.admin_key, "/scim_tokens").body["scim_tokens"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A team manager: no section, every post refused, nothing changed.
    member_with_roles_and_password(
        &server,
        "manager@example.com",
        json!({"developer": "read_write", "team": "manager"}),
    );
    let mut manager = Browser::new(&server).signed_in("manager@example.com", PASSWORD);
    assert!(
        !manager
            .get("/ui/settings")
            .html
            .contains("SCIM provisioning")
    );
    let t = manager.csrf();
    let before = events(&server);
    for (path, fields) in [
        (
            "/ui/settings/scim-tokens/new",
            vec![("description", "mine")],
        ),
        (&*format!("/ui/settings/scim-tokens/{id}/revoke"), vec![]),
    ] {
        let mut all = vec![("csrf", t.as_str())];
        all.extend(fields);
        let page = manager.post(path, &all);
        assert_eq!(page.status, 403, "{path}: {}", page.html);
    }
    assert_eq!(events(&server), before);
    assert_eq!(scim(&server, &token, "GET", "/Users", None).status, 200);

    // Revoked from the page: refused at once.
    let revoked = admin.post(
        &format!("/ui/settings/scim-tokens/{id}/revoke"),
        &[("csrf", &csrf)],
    );
    assert_eq!(
        revoked.location, "/ui/settings?done=scim-token-revoked",
        "{}",
        revoked.html
    );
    assert_scim_error(&scim(&server, &token, "GET", "/Users", None), 401, None);
}

/// Groups as Entra ID and Okta manage them: made with members, members added and removed
/// (by value, and by `members[value eq "…"]`), renamed (Okta sends the group's `id` in
/// its replace), listed by `displayName`; only members of the account, never another
/// account's group; a member's removal takes it out of its groups; every change an event.
#[test]
fn groups_hold_members_of_the_account_as_entra_id_and_okta_change_them() {
    let server = start_server();
    let token = provisioned(&server);
    let user = |email: &str| {
        let made = scim(
            &server,
            &token,
            "POST",
            "/Users",
            Some(
                json!({"userName": email, "emails": [{"value": email, "primary": true}], "active": true}),
            ),
        );
        assert_eq!(made.status, 201, "{:?}", made.body);
        made.body["id"].as_str().unwrap().to_owned()
    };
    let (ann, bob) = (user("ann@example.com"), user("bob@example.com"));
    let made = scim(
        &server,
        &token,
        "POST",
        "/Groups",
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Contoso technicians", "externalId": "aad-1",
                    "members": [{"value": ann}]}),
        ),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("grp_"));
    assert_eq!(made.body["members"][0]["value"], ann.as_str());
    assert_eq!(
        made.body["members"][0]["$ref"],
        format!("{}/scim/v2/Users/{ann}", server.url)
    );
    let path = format!("/Groups/{id}");
    let patch = |ops: Value| {
        scim(
            &server,
            &token,
            "PATCH",
            &path,
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}),
            ),
        )
    };
    // Entra ID: add and remove members by value.
    let added = patch(json!([{"op": "Add", "path": "members", "value": [{"value": bob}]}]));
    assert_eq!(added.status, 200, "{:?}", added.body);
    assert_eq!(added.body["members"].as_array().unwrap().len(), 2);
    let removed = patch(json!([{"op": "Remove", "path": "members", "value": [{"value": ann}]}]));
    assert_eq!(
        removed.body["members"],
        json!([{"value": bob, "$ref": format!("{}/scim/v2/Users/{bob}", server.url), "type": "User"}])
    );
    // Okta: remove by a value filter, rename with its id in the value.
    let okta = patch(
        json!([{"op": "remove", "path": format!("members[value eq \"{bob}\"]")},
                            {"op": "replace", "value": {"id": id, "displayName": "Technicians"}}]),
    );
    assert_eq!(okta.status, 200, "{:?}", okta.body);
    assert!(okta.body.get("members").is_none(), "{:?}", okta.body);
    assert_eq!(okta.body["displayName"], "Technicians");
    let found = scim(
        &server,
        &token,
        "GET",
        &format!(
            "/Groups?filter={}",
            urlencode(r#"displayName eq "technicians""#)
        ),
        None,
    );
    assert_eq!(found.body["totalResults"], 1, "{:?}", found.body);
    let by_member = scim(
        &server,
        &token,
        "GET",
        &format!(
            "/Groups?filter={}",
            urlencode(&format!(r#"members[value eq "{ann}"]"#))
        ),
        None,
    );
    assert_eq!(by_member.body["totalResults"], 0);
    let both = scim(
        &server,
        &token,
        "POST",
        "/.search",
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "filter": "externalId eq \"aad-1\""}),
        ),
    );
    assert_eq!(
        both.body["Resources"][0]["id"],
        id.as_str(),
        "{:?}",
        both.body
    );
    let events = server
        .get(&server.admin_key, "/events?action=iam.scim_groups.update")
        .body;
    assert_eq!(events["events"].as_array().unwrap().len(), 3, "{events}");
    assert_eq!(events["events"][0]["principal_kind"], "scim_token");

    // Refused, changing nothing: a non-member, a group as a member, an unknown id, a
    // read-only path, a stale version; and another account's group is not found.
    let before = (
        scim(&server, &token, "GET", &path, None).body,
        server.get(&server.admin_key, "/events?limit=1").body["events"][0]["id"].clone(),
    );
    for (ops, status, kind) in [
        (
            json!([{"op": "add", "path": "members", "value": [{"value": server.admin_id.clone()}]}]),
            200,
            None,
        ),
        (
            json!([{"op": "add", "path": "members", "value": [{"value": "usr_0358A7Ok06aBfcZAldRpyR"}]}]),
            400,
            Some("invalidValue"),
        ),
        (
            json!([{"op": "add", "path": "members", "value": [{"value": id, "type": "Group"}]}]),
            400,
            Some("invalidValue"),
        ),
        (
            json!([{"op": "add", "path": "members", "value": [{"value": "not-an-id"}]}]),
            400,
            Some("invalidValue"),
        ),
        (
            json!([{"op": "replace", "path": "id", "value": "grp_x"}]),
            400,
            Some("mutability"),
        ),
    ] {
        let answer = patch(ops.clone());
        if status == 200 {
            // The administrator is a member of the account: taken, then taken out again.
            assert_eq!(answer.status, 200, "{ops}: {:?}", answer.body);
            let back = patch(json!([{"op": "remove", "path": "members"}]));
            assert_eq!(back.status, 200, "{:?}", back.body);
            continue;
        }
        assert_scim_error(&answer, status, kind);
    }
    let after = scim(&server, &token, "GET", &path, None).body;
    assert_eq!(after["members"], before.0["members"]);
    assert_eq!(after["displayName"], before.0["displayName"]);
    let stale = scim_with(
        &server,
        &token,
        "PUT",
        &path,
        Some(json!({"displayName": "x"})),
        &[("If-Match", "W/\"0000000000000000\"")],
    );
    assert_scim_error(&stale, 412, None);
    let elsewhere = start_server();
    let other = provisioned(&elsewhere);
    assert_scim_error(&scim(&elsewhere, &other, "GET", &path, None), 404, None);
    assert_scim_error(&scim(&elsewhere, &other, "DELETE", &path, None), 404, None);

    // A member's removal takes it out of its groups; the group's deletion leaves its
    // members members.
    let put = scim(
        &server,
        &token,
        "PUT",
        &path,
        Some(json!({"displayName": "Technicians", "members": [{"value": ann}, {"value": bob}]})),
    );
    assert_eq!(
        put.body["members"].as_array().unwrap().len(),
        2,
        "{:?}",
        put.body
    );
    assert_eq!(
        scim(&server, &token, "DELETE", &format!("/Users/{bob}"), None).status,
        204
    );
    let left = scim(&server, &token, "GET", &path, None).body;
    assert_eq!(left["members"].as_array().unwrap().len(), 1, "{left}");
    assert_eq!(scim(&server, &token, "DELETE", &path, None).status, 204);
    assert_scim_error(&scim(&server, &token, "GET", &path, None), 404, None);
    assert_eq!(
        scim(&server, &token, "GET", &format!("/Users/{ann}"), None).status,
        200
    );
}
