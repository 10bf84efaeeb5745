//! Issue 11, the trust holes an outside audit found, each replayed through the real server
//! over TLS: what one account, a lower role or a scoped key must not be able to do, and
//! that a refusal leaves every object and trail as it was.

use serde_json::{Value, json};

use crate::api::{Server, assert_error, start_server};

/// The id of an API key or authtoken, read from its token (`lk_ak_<id>_<secret>`).
fn token_id(token: &str) -> String {
    let (prefix, rest) = match token.strip_prefix("lk_ak_") {
        Some(rest) => ("ak_", rest),
        None => ("cr_", token.strip_prefix("lk_at_").unwrap()),
    };
    format!("{prefix}{}", &rest[..22])
}

/// The newest event of the server's first account: any committed change moves it.
fn newest_event(server: &Server) -> Value {
    let page = server.get(&server.admin_key, "/events?limit=1");
    assert_eq!(page.status, 200, "{:?}", page.body);
    page.body["events"][0]["id"].clone()
}

/// Every API key of the server's first account, as listed.
fn keys(server: &Server) -> Value {
    let page = server.get(&server.admin_key, "/api_keys");
    assert_eq!(page.status, 200, "{:?}", page.body);
    page.body["keys"].clone()
}

/// A new API key made by `maker` with `body`; its (id, token, view).
fn mint(server: &Server, maker: &str, body: Value) -> (String, String, Value) {
    let made = server.post(maker, "/api_keys", body);
    assert_eq!(made.status, 201, "{:?}", made.body);
    let token = made.body["token"].as_str().unwrap().to_owned();
    (
        made.body["id"].as_str().unwrap().to_owned(),
        token,
        made.body,
    )
}

/// Refused with `status`/`code`, and the keys and the trail are as they were.
fn refused_unchanged(server: &Server, reply: &crate::api::Reply, status: u16, code: u16) {
    let (before_keys, before_event) = (keys(server), newest_event(server));
    assert_error(reply, status, code);
    assert_eq!(keys(server), before_keys);
    assert_eq!(newest_event(server), before_event);
}

// ---- 2. a credential never grants more than the credential that made it -----------------

#[test]
fn a_key_scoped_to_create_keys_cannot_mint_a_wider_one() {
    let server = start_server();
    let (_, scoped, _) = mint(
        &server,
        &server.admin_key,
        json!({"scopes": ["iam.api_keys.create"]}),
    );
    for scopes in [json!(["*"]), json!(["iam.*"]), json!(["iam.users.list"])] {
        let wider = server.post(&scoped, "/api_keys", json!({"scopes": scopes}));
        refused_unchanged(&server, &wider, 403, 101);
        assert_eq!(wider.body["details"]["policy"], "account-rbac");
        assert!(
            wider.body["details"]["reason"]
                .as_str()
                .unwrap()
                .contains("is outside the scopes of credential ak_"),
            "{:?}",
            wider.body
        );
    }
    // No scopes from a scoped caller means the caller's scopes, never "everything".
    let (_, child, view) = mint(&server, &scoped, json!({}));
    assert_eq!(view["scopes"], json!(["iam.api_keys.create"]));
    assert_error(&server.get(&child, "/users"), 403, 101);
    // The same scope is fine.
    let (_, _, same) = mint(&server, &scoped, json!({"scopes": ["iam.api_keys.create"]}));
    assert_eq!(same["scopes"], json!(["iam.api_keys.create"]));
}

#[test]
fn a_key_scoped_to_update_keys_cannot_widen_itself_or_a_wider_key() {
    let server = start_server();
    let (id, scoped, _) = mint(
        &server,
        &server.admin_key,
        json!({"scopes": ["iam.api_keys.update"]}),
    );
    let path = format!("/api_keys/{id}");
    for scopes in [json!(["*"]), json!(["iam.api_keys.*"])] {
        let widened = server.patch(&scoped, &path, json!({"scopes": scopes}));
        refused_unchanged(&server, &widened, 403, 101);
    }
    // An empty list is the caller's own scopes: nothing widens.
    let emptied = server.patch(&scoped, &path, json!({"scopes": []}));
    assert_eq!(emptied.status, 200, "{:?}", emptied.body);
    assert_eq!(emptied.body["scopes"], json!(["iam.api_keys.update"]));
    assert_error(&server.get(&scoped, "/users"), 403, 101);
    // A key wider than the caller cannot be changed by it at all, not even its text.
    let (wide, _, _) = mint(&server, &server.admin_key, json!({}));
    let touched = server.patch(
        &scoped,
        &format!("/api_keys/{wide}"),
        json!({"description": "mine now"}),
    );
    refused_unchanged(&server, &touched, 403, 101);
}

#[test]
fn a_key_made_by_a_bounded_key_keeps_its_networks_and_expiry() {
    let server = start_server();
    let expiry = "2099-01-01T00:00:00Z";
    let (_, parent, _) = mint(
        &server,
        &server.admin_key,
        json!({"scopes": ["iam.api_keys.*", "iam.credentials.*"],
               "allowed_cidrs": ["127.0.0.0/8", "::1/128"], "expires_at": expiry}),
    );
    let (child_id, child, view) = mint(&server, &parent, json!({}));
    assert_eq!(view["allowed_cidrs"], json!(["127.0.0.0/8", "::1/128"]));
    assert_eq!(view["expires_at"], expiry);
    assert_eq!(server.get(&child, "/api_keys").status, 200);
    // Narrower is fine.
    let (_, _, narrow) = mint(
        &server,
        &parent,
        json!({"allowed_cidrs": ["127.0.0.1"], "expires_at": "2098-01-01T00:00:00Z"}),
    );
    assert_eq!(narrow["allowed_cidrs"], json!(["127.0.0.1/32"]));
    // Wider networks or a later expiry, stated: a 400 naming the field.
    for (body, field) in [
        (json!({"allowed_cidrs": ["10.0.0.0/8"]}), "allowed_cidrs"),
        (json!({"allowed_cidrs": ["0.0.0.0/0"]}), "allowed_cidrs"),
        (json!({"expires_at": "2099-06-01T00:00:00Z"}), "expires_at"),
    ] {
        let wider = server.post(&parent, "/api_keys", body);
        refused_unchanged(&server, &wider, 400, 105);
        assert_eq!(wider.body["details"]["field"], field);
    }
    // Emptying the networks of a key it made means its own networks, not anywhere.
    let emptied = server.patch(
        &parent,
        &format!("/api_keys/{child_id}"),
        json!({"allowed_cidrs": []}),
    );
    assert_eq!(emptied.status, 200, "{:?}", emptied.body);
    assert_eq!(
        emptied.body["allowed_cidrs"],
        json!(["127.0.0.0/8", "::1/128"])
    );
    // An authtoken it makes is bound alike.
    let agent = server.post(&parent, "/credentials", json!({}));
    assert_eq!(agent.status, 201, "{:?}", agent.body);
    assert_eq!(
        agent.body["allowed_cidrs"],
        json!(["127.0.0.0/8", "::1/128"])
    );
    assert_eq!(agent.body["expires_at"], expiry);
    // An unbounded key of the caller's owner is out of its reach.
    let (unbounded, _, _) = mint(&server, &server.admin_key, json!({}));
    let touched = server.patch(
        &parent,
        &format!("/api_keys/{unbounded}"),
        json!({"scopes": ["iam.api_keys.get"]}),
    );
    refused_unchanged(&server, &touched, 403, 101);
    assert_eq!(touched.body["details"]["policy"], "latchkey");
}

// ---- 3. administrators' credentials are administrators' business ------------------------

#[test]
fn a_read_write_developer_cannot_change_an_administrators_credentials() {
    let server = start_server();
    let (_, developer) = server.member_with_key(
        "dev@example.com",
        json!({"developer": "read_write", "team": "manager"}),
    );
    let admin_key = token_id(&server.admin_key);
    let listed = server.get(&server.admin_key, "/credentials");
    let personal = listed.body["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["owner_id"] == server.admin_id.as_str() && c["personal"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let attempts = [
        server.patch(
            &developer,
            &format!("/api_keys/{admin_key}"),
            json!({"allowed_cidrs": ["192.0.2.1"]}),
        ),
        server.delete(&developer, &format!("/api_keys/{admin_key}")),
        server.patch(
            &developer,
            &format!("/credentials/{personal}"),
            json!({"acl": ["bind:nothing.example"]}),
        ),
        server.post(
            &developer,
            &format!("/credentials/{personal}/rotate"),
            json!({}),
        ),
    ];
    for attempt in &attempts {
        refused_unchanged(&server, attempt, 403, 101);
        assert_eq!(attempt.body["details"]["policy"], "account-rbac");
    }
    assert!(
        attempts[0].body["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("a credential an administrator owns"),
        "{:?}",
        attempts[0].body
    );
    // The administrator's key still works, from anywhere; reading it stays open.
    assert_eq!(server.get(&server.admin_key, "/account").status, 200);
    assert_eq!(
        server
            .get(&developer, &format!("/api_keys/{admin_key}"))
            .status,
        200
    );
    // The developer still manages its own and a bot's credentials.
    let bot = server.post(&developer, "/bot_users", json!({"name": "ci"}));
    let bot_key = server.post(&developer, "/api_keys", json!({"owner_id": bot.body["id"]}));
    assert_eq!(bot_key.status, 201, "{:?}", bot_key.body);
    let changed = server.patch(
        &developer,
        &format!("/api_keys/{}", bot_key.body["id"].as_str().unwrap()),
        json!({"description": "ci deploys"}),
    );
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    let own = token_id(&developer);
    let own_changed = server.patch(
        &developer,
        &format!("/api_keys/{own}"),
        json!({"description": "mine"}),
    );
    assert_eq!(own_changed.status, 200, "{:?}", own_changed.body);
    // Another administrator may.
    let (_, other_admin) = server.member_with_key("boss2@example.com", json!({"admin": true}));
    let by_admin = server.patch(
        &other_admin,
        &format!("/api_keys/{admin_key}"),
        json!({"description": "checked"}),
    );
    assert_eq!(by_admin.status, 200, "{:?}", by_admin.body);
}
