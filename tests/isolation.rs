//! Issue 11, the trust holes an outside audit found, each replayed through the real server
//! over TLS: what one account, a lower role or a scoped key must not be able to do, and
//! that a refusal leaves every object and trail as it was.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{Reply, Server, assert_error, reply, start_configured, start_server};
use crate::login::{PASSWORD, cookie_of, header, login, with_cookie};
use crate::support::{link_in, policies_dir, smtp_inbox};

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
fn refused_unchanged(server: &Server, reply: &Reply, status: u16, code: u16) {
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

// ---- 1. no account can act on what another account relies on --------------------------

/// One server over a data directory holding two accounts made by the host operator
/// (`latchkey init` twice), mailing through an inbox on loopback.
pub struct TwoAccounts {
    /// Acts as account A's administrator (`admin_key`, `account_id`, `admin_id`).
    pub server: Server,
    pub b_key: String,
    pub b_account: String,
    pub b_admin: String,
    inbox: Receiver<String>,
}

const A_ADMIN: &str = "admin@acme.example";
pub const B_ADMIN: &str = "admin@globex.example";

fn init(data: &Path, account: &str, email: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["init", "--data-dir"])
        .arg(data)
        .args(["--account", account, "--admin-email", email, "--policies"])
        .arg(policies_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn two_accounts() -> TwoAccounts {
    two_accounts_with(&[])
}

/// [`two_accounts`], with more settings given as environment variables.
pub fn two_accounts_with(env: &[(&str, &str)]) -> TwoAccounts {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    let a = init(&data, "acme", A_ADMIN);
    let b = init(&data, "globex", B_ADMIN);
    let text = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();
    let (port, inbox) = smtp_inbox();
    let smtp = format!("smtp://127.0.0.1:{port}");
    let server = start_configured(
        dir,
        &policies_dir(),
        Some((
            text(&a, "api_key"),
            text(&a, "account_id"),
            text(&a, "user_id"),
        )),
        &[&[("LATCHKEY_SMTP_URL", smtp.as_str())], env].concat(),
    );
    TwoAccounts {
        server,
        b_key: text(&b, "api_key"),
        b_account: text(&b, "account_id"),
        b_admin: text(&b, "user_id"),
        inbox,
    }
}

impl TwoAccounts {
    /// B's administrator (its password [`PASSWORD`] set) joins A by accepting A's
    /// invitation: a user of both accounts.
    pub fn b_admin_joins_a(&self) {
        let s = &self.server;
        let invited = s.post(&s.admin_key, "/invitations", json!({"email": B_ADMIN}));
        assert_eq!(invited.status, 201, "{:?}", invited.body);
        let session = cookie_of(&login(
            s,
            json!({"email": B_ADMIN, "password": PASSWORD, "account_id": self.b_account}),
        ));
        let accepted = accept(s, &invited.body, &session);
        assert_eq!(accepted.status, 200, "{:?}", accepted.body);
    }

    /// The newest event of each account's trail.
    fn heads(&self) -> (Value, Value) {
        let b = self.server.get(&self.b_key, "/events?limit=1");
        (
            newest_event(&self.server),
            b.body["events"][0]["id"].clone(),
        )
    }

    /// The members of each account.
    fn members(&self) -> (Value, Value) {
        let s = &self.server;
        (
            s.get(&s.admin_key, "/users").body["users"].clone(),
            s.get(&self.b_key, "/users").body["users"].clone(),
        )
    }

    /// The next mail carrying a `path` link (others, such as invitations, are skipped),
    /// within 20 s.
    pub fn mail(&self, path: &str) -> String {
        loop {
            let mail = self.inbox.recv_timeout(Duration::from_secs(20)).unwrap();
            if mail
                .replace("=\r\n", "")
                .contains(&format!("{path}?token="))
            {
                return mail;
            }
        }
    }

    /// The actions recorded about `object` in the trail `key` reads.
    fn actions_on(&self, key: &str, object: &str) -> Vec<String> {
        let page = self.server.get(key, &format!("/events?object_id={object}"));
        assert_eq!(page.status, 200, "{:?}", page.body);
        page.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A refusal of account A that leaves both accounts' members and trails as they were.
fn refused_in_neither(two: &TwoAccounts, reply: &Reply, status: u16, code: u16) {
    let (heads, members) = (two.heads(), two.members());
    assert_error(reply, status, code);
    assert_eq!(two.heads(), heads, "a trail moved");
    assert_eq!(two.members(), members, "members changed");
}

pub fn set_password(server: &Server, key: &str) {
    let set = server.post(key, "/me/password", json!({"new_password": PASSWORD}));
    assert_eq!(set.status, 204, "{:?}", set.body);
}

/// Accept the invitation `invited` (its create answer, with `accept_url`) from the
/// session `session`.
fn accept(server: &Server, invited: &Value, session: &str) -> Reply {
    let token = invited["accept_url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap();
    reply(
        server
            .agent()
            .post(&format!(
                "{}/invitations/{}/accept",
                server.url,
                invited["id"].as_str().unwrap()
            ))
            .header("Cookie", &format!("latchkey_session={session}"))
            .send_json(json!({"token": token})),
    )
}

#[test]
fn account_a_cannot_take_over_account_bs_administrator() {
    let two = two_accounts();
    let s = &two.server;
    set_password(s, &two.b_key);
    // The audit's opening move: add B's administrator to A by its email.
    let added = s.post(
        &s.admin_key,
        "/users",
        json!({"email": B_ADMIN, "roles": {"admin": false}}),
    );
    refused_in_neither(&two, &added, 409, 121);
    assert!(added.body["msg"].as_str().unwrap().contains("invite"));
    let said = added.body.to_string();
    assert!(
        !said.contains(&two.b_account) && !said.contains("globex"),
        "{said}"
    );
    // Nor can A reach B's administrator while it is not A's member.
    let reset = s.post(
        &s.admin_key,
        &format!("/users/{}/password_reset", two.b_admin),
        json!({}),
    );
    refused_in_neither(&two, &reset, 404, 102);

    // Invited, it joins A by its own choice; it is now a member of both.
    two.b_admin_joins_a();

    // A's administrator may not change what B relies on about it.
    let path = format!("/users/{}", two.b_admin);
    for attempt in [
        s.post(&s.admin_key, &format!("{path}/password_reset"), json!({})),
        s.patch(&s.admin_key, &path, json!({"name": "taken over"})),
    ] {
        refused_in_neither(&two, &attempt, 403, 122);
        assert_eq!(attempt.body["details"]["policy"], "latchkey");
    }
    // Nor through a key it makes for that member (administrators may name the owner).
    let minted = s.post(&s.admin_key, "/api_keys", json!({"owner_id": two.b_admin}));
    assert_eq!(minted.status, 201, "{:?}", minted.body);
    let as_them = minted.body["token"].as_str().unwrap();
    for attempt in [
        s.post(as_them, "/me/mfa/totp", json!({})),
        s.patch(as_them, "/me", json!({"name": "taken over"})),
    ] {
        refused_in_neither(&two, &attempt, 403, 122);
    }
    let password = s.post(
        as_them,
        "/me/password",
        json!({"new_password": "granite meadow violin 77 harbor"}),
    );
    refused_in_neither(&two, &password, 400, 105);
    assert_eq!(password.body["details"]["field"], "current_password");
    // B's administrator still logs in to B with its own password, as itself.
    let again = login(
        s,
        json!({"email": B_ADMIN, "password": PASSWORD, "account_id": two.b_account}),
    );
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(s.get(&two.b_key, "/me").body["name"], "admin");
}

/// One account's trail is invisible from another: an event id of A is not found from B
/// (nor through any filter), and a page of B's cannot start before A's event.
#[test]
fn account_b_cannot_read_account_as_trail() {
    let two = two_accounts();
    let s = &two.server;
    let made = s.post(&s.admin_key, "/bot_users", json!({"name": "a-only"}));
    assert_eq!(made.status, 201);
    let a_event = newest_event(s);
    let a_id = a_event.as_str().unwrap();
    let heads = two.heads();
    let from_b = s.get(&two.b_key, &format!("/events/{a_id}"));
    assert_error(&from_b, 404, 102);
    assert!(!from_b.body.to_string().contains("a-only"));
    let before = s.get(&two.b_key, &format!("/events?before_id={a_id}"));
    assert_error(&before, 400, 112);
    for filter in [
        format!("object_id={}", made.body["id"].as_str().unwrap()),
        format!("principal_id={}", s.admin_id),
        "action=iam.bot_users.create".to_owned(),
    ] {
        let page = s.get(&two.b_key, &format!("/events?{filter}"));
        assert_eq!(page.status, 200, "{:?}", page.body);
        assert_eq!(page.body["events"], json!([]), "{filter}");
    }
    // A sees its own; reading changed neither trail.
    assert_eq!(s.get(&s.admin_key, &format!("/events/{a_id}")).status, 200);
    assert_eq!(two.heads(), heads);
}

#[test]
fn an_account_cannot_pre_register_someone_elses_email() {
    let two = two_accounts();
    let s = &two.server;
    const VICTIM: &str = "victim@corp.example";
    // A makes a user for an address it does not control and sets its password.
    let made = s.post(
        &s.admin_key,
        "/users",
        json!({"email": VICTIM, "name": "V"}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    assert_eq!(made.body["email_verified"], false);
    let victim = made.body["id"].as_str().unwrap().to_owned();
    let issued = s.post(
        &s.admin_key,
        &format!("/users/{victim}/password_reset"),
        json!({}),
    );
    assert_eq!(issued.status, 200, "{:?}", issued.body);
    let token = issued.body["reset_url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap();
    let reset = reply(
        s.agent()
            .post(&format!("{}/password_reset", s.url))
            .send_json(json!({"token": token, "new_password": PASSWORD})),
    );
    assert_eq!(reset.status, 204, "{:?}", reset.body);
    let hijacked = cookie_of(&login(s, json!({"email": VICTIM, "password": PASSWORD})));

    // B invites the real person; A, holding the user, tries to accept in its place.
    let invited = s.post(&two.b_key, "/invitations", json!({"email": VICTIM}));
    assert_eq!(invited.status, 201, "{:?}", invited.body);
    let invitation = invited.body["id"].as_str().unwrap().to_owned();
    let stolen = accept(s, &invited.body, &hijacked);
    refused_in_neither(&two, &stolen, 403, 123);
    assert_eq!(
        s.get(&two.b_key, &format!("/invitations/{invitation}"))
            .body["state"],
        "pending"
    );

    // The person asks for a reset itself: the link goes only to its mailbox.
    let asked = reply(
        s.agent()
            .post(&format!("{}/password_reset/request", s.url))
            .send_json(json!({"email": VICTIM})),
    );
    assert_eq!(asked.status, 202, "{:?}", asked.body);
    let mail = two.mail("/password_reset");
    assert!(mail.contains(&format!("To: {VICTIM}")), "{mail}");
    let link = link_in(&mail, "/password_reset");
    assert!(link.starts_with(&s.url), "{link}");
    let own = "granite meadow violin 77 harbor";
    let used = reply(
        s.agent()
            .post(&format!("{}/password_reset", s.url))
            .send_json(json!({"token": link.split("token=").nth(1).unwrap(), "new_password": own})),
    );
    assert_eq!(used.status, 204, "{:?}", used.body);
    // Every session ended (A's among them); the email is proven, in A's trail too.
    assert_error(&with_cookie(s, "GET", "/me", &hijacked, None), 401, 100);
    let trail = two.actions_on(&s.admin_key, &victim);
    assert!(
        trail.contains(&"iam.users.prove_email".to_owned()),
        "{trail:?}"
    );
    assert!(
        trail.contains(&"iam.users.update_password".to_owned()),
        "{trail:?}"
    );
    // Now the person accepts B's invitation itself.
    let session = cookie_of(&login(s, json!({"email": VICTIM, "password": own})));
    let joined = accept(s, &invited.body, &session);
    assert_eq!(joined.status, 200, "{:?}", joined.body);
    // And A can no longer reset it.
    let reset = s.post(
        &s.admin_key,
        &format!("/users/{victim}/password_reset"),
        json!({}),
    );
    refused_in_neither(&two, &reset, 403, 122);
}

#[test]
fn a_forgotten_password_request_answers_alike_and_only_mails_the_address_on_file() {
    let two = two_accounts();
    let s = &two.server;
    let ask = |email: &str, host: Option<&str>| {
        let mut request = s.agent().post(&format!("{}/password_reset/request", s.url));
        if let Some(host) = host {
            request = request.header("Host", host);
        }
        reply(request.send_json(json!({"email": email})))
    };
    let known = ask(&B_ADMIN.to_uppercase(), Some("evil.example"));
    let unknown = ask("nobody@nowhere.example", None);
    assert_eq!(known.status, 202, "{:?}", known.body);
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    let names = |r: &Reply| {
        let mut names: Vec<String> = r.headers.iter().map(|(k, _)| k.to_lowercase()).collect();
        names.sort();
        names
    };
    assert_eq!(names(&known), names(&unknown));
    // One mail, to the address on file, pointing at the appliance, not at the Host sent.
    let mail = two.mail("/password_reset");
    assert!(mail.contains(&format!("To: {B_ADMIN}")), "{mail}");
    let link = link_in(&mail, "/password_reset");
    assert!(link.starts_with(&s.url), "{link}");
    assert!(
        two.inbox.recv_timeout(Duration::from_secs(2)).is_err(),
        "an unknown email got mail"
    );
    // Limited per email, alike for a known and an unknown one.
    for email in [B_ADMIN, "nobody@nowhere.example"] {
        for _ in 0..2 {
            assert_eq!(ask(email, None).status, 202);
        }
        let limited = ask(email, None);
        assert_error(&limited, 429, 125);
        assert!(header(&limited, "retry-after").is_some());
    }
    // The link is nowhere but in the mail: not in the output, not in the log.
    let secret = link.split("token=").nth(1).unwrap().to_owned();
    let dir = Arc::clone(&s.dir);
    let (_, out) = two.server.stop();
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(!out.contains(&secret) && !log.contains(&secret));
}

#[test]
fn a_change_to_a_shared_user_is_in_the_trail_of_every_account_and_proof_is_by_mail() {
    let two = two_accounts();
    let s = &two.server;
    // A user of A alone, made by A, proves its email through a link mailed to it.
    let made = s.post(
        &s.admin_key,
        "/users",
        json!({"email": "sam@corp.example", "name": "Sam"}),
    );
    let sam = made.body["id"].as_str().unwrap().to_owned();
    let key = s.post(&s.admin_key, "/api_keys", json!({"owner_id": sam}));
    let sam_key = key.body["token"].as_str().unwrap().to_owned();
    set_password(s, &sam_key);
    let session = cookie_of(&login(
        s,
        json!({"email": "sam@corp.example", "password": PASSWORD}),
    ));
    let asked = with_cookie(s, "POST", "/me/email_verification", &session, None);
    assert_eq!(asked.status, 202, "{:?}", asked.body);
    let link = link_in(&two.mail("/email_verification"), "/email_verification");
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let prove = |token: &str| {
        reply(
            s.agent()
                .post(&format!("{}/email_verification", s.url))
                .send_json(json!({"token": token})),
        )
    };
    assert_eq!(prove(&token).status, 204);
    let again = prove(&token);
    assert_error(&again, 400, 105);
    assert_eq!(again.body["details"]["field"], "token");
    assert_eq!(
        with_cookie(s, "GET", "/me", &session, None).body["email_verified"],
        true
    );

    // Invited by B, it joins B; from now on each change to it is in both trails.
    let invited = s.post(
        &two.b_key,
        "/invitations",
        json!({"email": "sam@corp.example"}),
    );
    let accepted = accept(s, &invited.body, &session);
    assert_eq!(accepted.status, 200, "{:?}", accepted.body);
    let renamed = with_cookie(
        s,
        "PATCH",
        "/me",
        &session,
        Some(json!({"name": "Samantha"})),
    );
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    assert_eq!(renamed.body["name"], "Samantha");
    let changed = with_cookie(
        s,
        "POST",
        "/me/password",
        &session,
        Some(
            json!({"current_password": PASSWORD, "new_password": "granite meadow violin 77 harbor"}),
        ),
    );
    assert_eq!(changed.status, 204, "{:?}", changed.body);
    for key in [&s.admin_key, &two.b_key] {
        let trail = two.actions_on(key, &sam);
        for action in ["iam.users.update", "iam.users.update_password"] {
            assert!(
                trail.contains(&action.to_owned()),
                "{action} missing in {trail:?}"
            );
        }
    }
    // B sees the name Sam gave itself; A may no longer rename Sam.
    let in_b = s.get(&two.b_key, &format!("/users/{sam}"));
    assert_eq!(in_b.body["name"], "Samantha");
    refused_in_neither(
        &two,
        &s.patch(
            &s.admin_key,
            &format!("/users/{sam}"),
            json!({"name": "Sam"}),
        ),
        403,
        122,
    );
}

#[test]
fn without_mail_no_link_can_be_asked_for_and_the_answer_says_so_alike() {
    let server = start_server();
    let ask = |email: &str| {
        reply(
            server
                .agent()
                .post(&format!("{}/password_reset/request", server.url))
                .send_json(json!({"email": email})),
        )
    };
    let me = server.get(&server.admin_key, "/me");
    let known = ask(me.body["email"].as_str().unwrap());
    let unknown = ask("nobody@nowhere.example");
    assert_error(&known, 503, 126);
    assert_eq!(known.body["msg"], unknown.body["msg"]);
    assert_eq!(known.status, unknown.status);
    assert_error(
        &server.post(&server.admin_key, "/me/email_verification", json!({})),
        503,
        126,
    );
}

#[test]
fn concurrent_failed_logins_from_one_address_stop_at_the_limit() {
    let server = start_server();
    let results: Vec<u16> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                let server = &server;
                scope.spawn(move || {
                    (0..8)
                        .map(|i| {
                            login(
                                server,
                                json!({"email": format!("n{worker}-{i}@nowhere.example"),
                                       "password": "not the password at all"}),
                            )
                            .status
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let refused = results.iter().filter(|s| **s == 401).count();
    let limited = results.iter().filter(|s| **s == 429).count();
    assert_eq!((refused, limited), (50, 14), "{results:?}");
}

// ---- 4. secrets are not cached, and the browser-facing surface is hardened -------------

#[test]
fn every_answer_is_hardened_and_none_but_the_document_is_cached() {
    let server = start_server();
    let get = |path: &str| reply(server.agent().get(&format!("{}{path}", server.url)).call());
    let minted = server.post(&server.admin_key, "/api_keys", json!({}));
    let answers = [
        ("GET /healthz", get("/healthz")),
        ("POST /api_keys", minted),
        ("GET /users (no key)", get("/users")),
        ("GET /nowhere", server.get(&server.admin_key, "/nowhere")),
        (
            "PATCH /verify",
            server.patch(&server.admin_key, "/verify", json!({})),
        ),
    ];
    for (what, answer) in &answers {
        for (name, value) in [
            ("strict-transport-security", "max-age=31536000"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(header(answer, name), Some(value), "{what}: {name}");
        }
    }
    let document = get("/openapi.json");
    assert_eq!(header(&document, "cache-control"), None);
    assert_eq!(header(&document, "x-content-type-options"), Some("nosniff"));
    // A 405 says what the path takes.
    for (method, path, allow) in [
        ("PATCH", "/verify", "POST"),
        ("PUT", "/users", "GET, POST"),
        (
            "POST",
            "/users/usr_0352FHSFuCpzwuA2PPTNK4",
            "GET, PATCH, DELETE",
        ),
        ("DELETE", "/healthz", "GET, HEAD"),
        ("GET", "/login", "POST"),
        ("POST", "/policies", "GET"),
    ] {
        let url = format!("{}{path}", server.url);
        let auth = format!("Bearer {}", server.admin_key);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", &auth)
            .body(())
            .unwrap();
        let answer = reply(server.agent().run(request));
        assert_error(&answer, 405, 110);
        assert_eq!(header(&answer, "allow"), Some(allow), "{method} {path}");
    }
}

#[test]
fn a_cross_site_request_riding_on_the_session_cookie_is_refused_and_changes_nothing() {
    let server = start_server();
    set_password(&server, &server.admin_key);
    let email = server.get(&server.admin_key, "/me").body["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = cookie_of(&login(
        &server,
        json!({"email": email, "password": PASSWORD}),
    ));
    let personal = server.get(&server.admin_key, "/credentials").body["credentials"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let send = |path: &str, headers: &[(&str, &str)], with_cookie: bool| {
        let mut request = server
            .agent()
            .post(&format!("{}{path}", server.url))
            .header("Content-Type", "text/plain");
        if with_cookie {
            request = request.header("Cookie", &format!("latchkey_session={cookie}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        reply(request.send(""))
    };
    let evil = [("Origin", "https://evil.example")];
    let cross = [("Sec-Fetch-Site", "cross-site")];
    let before = newest_event(&server);
    let attempts = [
        send("/logout", &evil, true),
        send("/me/mfa/totp", &cross, true),
        send(&format!("/credentials/{personal}/rotate"), &evil, true),
        send("/logout", &[("Origin", "null")], true),
        send("/logout", &[("Sec-Fetch-Site", "same-site")], true),
        // Forged logins and resets are refused alike.
        send("/login", &evil, false),
        send("/password_reset", &cross, false),
    ];
    for attempt in &attempts {
        assert_error(attempt, 403, 124);
        assert_eq!(attempt.body["details"]["policy"], "latchkey");
    }
    assert_eq!(newest_event(&server), before);
    assert_eq!(
        with_cookie(&server, "GET", "/me", &cookie, None).status,
        200
    );
    // The server's own pages may: a same-origin logout works.
    let own = server.url.clone();
    let out = send(
        "/logout",
        &[("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")],
        true,
    );
    assert_eq!(out.status, 204, "{:?}", out.body);
    assert_error(&with_cookie(&server, "GET", "/me", &cookie, None), 401, 100);
}

// ---- 5. smaller findings ----------------------------------------------------------------

#[test]
fn details_field_names_the_field_and_never_echoes_the_value() {
    let server = start_server();
    let key = &server.admin_key;
    for (path, body, field) in [
        (
            "/users",
            json!({"email": "a@example.com", "roles": {"developer": "superuser-x1"}}),
            "roles.developer",
        ),
        ("/api_keys", json!({"scopes": "superuser-x1"}), "scopes"),
        (
            "/bot_users",
            json!({"name": "ci", "superuser-x1": true}),
            "superuser-x1",
        ),
        (
            "/authorize/batch",
            json!({"checks": [{"principal": {"id": "usr_x"}, "action": 7, "resource": {"type": "t"}}]}),
            "checks[0].action",
        ),
        (
            "/authorize",
            json!({"action": "x", "resource": {"type": "t"}}),
            "principal",
        ),
    ] {
        let refused = server.post(key, path, body);
        assert_error(&refused, 400, 106);
        assert_eq!(
            refused.body["details"]["field"], field,
            "{path}: {:?}",
            refused.body
        );
        if field != "superuser-x1" {
            assert!(!refused.body["details"].to_string().contains("superuser-x1"));
        }
    }
}

#[test]
fn a_before_id_that_is_not_an_id_of_the_list_is_400() {
    let server = start_server();
    let key = &server.admin_key;
    let some_key = token_id(key);
    for path in [
        "/api_keys?before_id=garbage".to_owned(),
        "/users?before_id=x".to_owned(),
        format!("/users?before_id={some_key}"),
        "/events?before_id=ev_%E2%80%AE".to_owned(),
    ] {
        let refused = server.get(key, &path);
        assert_error(&refused, 400, 112);
        assert_eq!(refused.body["details"]["field"], "before_id", "{path}");
    }
    assert_eq!(
        server
            .get(key, &format!("/api_keys?before_id={some_key}"))
            .status,
        200
    );
}

#[test]
fn names_that_look_alike_collide_and_invisible_characters_are_refused() {
    let server = start_server();
    let key = &server.admin_key;
    assert_eq!(
        server
            .post(key, "/tenants", json!({"name": "Acme Straße"}))
            .status,
        201
    );
    assert_eq!(
        server
            .post(key, "/roles", json!({"name": "Patcher", "permissions": []}))
            .status,
        201
    );
    for (path, body) in [
        ("/tenants", json!({"name": "ＡＣＭＥ STRASSE"})),
        ("/tenants", json!({"name": "acme strasse"})),
        ("/roles", json!({"name": "PATCHER", "permissions": []})),
        (
            "/roles",
            json!({"name": "global administrator", "permissions": []}),
        ),
    ] {
        refused_unchanged(&server, &server.post(key, path, body), 409, 103);
    }
    for (path, body) in [
        ("/tenants", json!({"name": "Acme\u{200B}"})),
        (
            "/roles",
            json!({"name": "Patch\u{202E}er", "permissions": []}),
        ),
        ("/bot_users", json!({"name": "ci\u{2066}"})),
        (
            "/users",
            json!({"email": "z@example.com", "name": "Zo\u{200D}e"}),
        ),
    ] {
        let refused = server.post(key, path, body);
        refused_unchanged(&server, &refused, 400, 105);
        assert_eq!(refused.body["details"]["field"], "name");
    }
    let renamed = server.patch(key, "/me", json!({"name": "admin\u{FEFF}"}));
    refused_unchanged(&server, &renamed, 400, 105);
    // Account names too: the operator's second account named like the first is refused.
    let dir = Arc::clone(&server.dir);
    let data = dir.path().join("data");
    drop(server);
    let twin = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["init", "--data-dir"])
        .arg(&data)
        .args([
            "--account",
            "ＤＥＦＡＵＬＴ",
            "--admin-email",
            "x@example.com",
            "--policies",
        ])
        .arg(policies_dir())
        .output()
        .unwrap();
    assert_eq!(twin.status.code(), Some(2), "{twin:?}");
}

#[test]
fn the_data_directory_and_everything_secret_in_it_is_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    // An operator's mkdir, open to all: latchkey narrows it before writing into it.
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = start_configured(Arc::clone(&dir), &policies_dir(), None, &[]);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for file in ["latchkey.redb", "server.key", "admin.sock", "tls/key.pem"] {
        let path = data.join(file);
        assert!(
            path.exists(),
            "{file} missing: {:?}",
            std::fs::read_dir(&data).unwrap().collect::<Vec<_>>()
        );
        assert_eq!(mode(&path), 0o600, "{file}");
    }
    drop(server);
}

/// The validity of a PEM certificate, read by Python's own X.509 decoder (CPython's
/// `ssl` module), as (notBefore, notAfter) in seconds since the epoch.
fn validity(cert: &Path) -> (i64, i64) {
    let script = "import ssl,sys\nc=ssl._ssl._test_decode_cert(sys.argv[1])\nprint(int(ssl.cert_time_to_seconds(c['notBefore'])), int(ssl.cert_time_to_seconds(c['notAfter'])))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace().map(|p| p.parse::<i64>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

#[test]
fn the_self_signed_certificate_lives_a_year_and_is_renewed_near_its_end() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let server = start_server();
    let (from, until) = validity(&server.cert);
    let day = 86_400;
    assert!(from <= now() && from > now() - day, "not before {from}");
    assert!(
        until - now() <= 2 * 365 * day,
        "valid past two years: {until}"
    );
    assert!(
        until - now() >= 364 * day,
        "valid less than a year: {until}"
    );
    let known = (
        server.admin_key.clone(),
        server.account_id.clone(),
        server.admin_id.clone(),
    );
    let dir = Arc::clone(&server.dir);
    let cert = server.cert.clone();
    let first = std::fs::read(&cert).unwrap();
    let (status, _) = server.stop();
    assert!(status.success());
    // Unchanged while far from its end; renewed on start when within 30 days of it.
    let again = start_configured(Arc::clone(&dir), &policies_dir(), Some(known.clone()), &[]);
    assert_eq!(std::fs::read(&cert).unwrap(), first);
    again.stop();
    std::fs::write(cert.with_file_name("cert.expires"), "2000-01-01T00:00:00Z").unwrap();
    let renewed = start_configured(dir, &policies_dir(), Some(known), &[]);
    assert_ne!(std::fs::read(&cert).unwrap(), first);
    let (_, until) = validity(&renewed.cert);
    assert!(until - now() >= 364 * day);
    // Clients trusting the new certificate are served.
    assert_eq!(renewed.get(&renewed.admin_key, "/account").status, 200);
}

/// `/authorize` decides from principals cached in memory (keyed by account): once A's
/// member is cached by A's own questions, B still cannot learn anything about it, by id
/// or by its token, single or batched, first call or cached; and a key whose scopes do
/// not include `iam.credentials.verify` cannot ask, however warm the cache. Refusals
/// change neither trail.
#[test]
fn authorize_from_cached_principals_never_crosses_accounts_or_widens_a_scoped_key() {
    let two = two_accounts();
    let s = &two.server;
    let (dana, dana_key) =
        s.member_with_key("dana@acme.example", json!({"developer": "read_write"}));
    let ask = |key: &str, principal: Value| {
        s.post(
            key,
            "/authorize",
            json!({"principal": principal, "action": "iam.api_keys.create", "resource": {"type": "api_key", "id": "new"}}),
        )
    };
    // A warms its cache with dana, by id and by token: allowed both times.
    for _ in 0..2 {
        assert_eq!(
            ask(&s.admin_key, json!({"id": dana})).body["decision"],
            "allow"
        );
        assert_eq!(
            ask(&s.admin_key, json!({"token": dana_key})).body["decision"],
            "allow"
        );
    }
    let heads = two.heads();
    for _ in 0..2 {
        let by_id = ask(&two.b_key, json!({"id": dana}));
        assert_eq!(by_id.status, 200, "{:?}", by_id.body);
        assert_eq!(by_id.body["decision"], "deny", "{:?}", by_id.body);
        assert!(
            by_id.body["reason"]
                .as_str()
                .unwrap()
                .contains("is not a member"),
            "{:?}",
            by_id.body
        );
        let by_token = ask(&two.b_key, json!({"token": dana_key}));
        assert_eq!(
            (
                by_token.body["decision"].as_str(),
                by_token.body["policy"].as_str()
            ),
            (Some("deny"), Some("latchkey")),
            "{:?}",
            by_token.body
        );
        let batch = s.post(
            &two.b_key,
            "/authorize/batch",
            json!({"checks": [
                {"principal": {"id": dana}, "action": "iam.api_keys.create", "resource": {"type": "api_key"}, "explain": true},
                {"principal": {"token": dana_key}, "action": "computers.view", "resource": {"type": "computer", "id": "c-1"}, "explain": true},
            ]}),
        );
        let decisions = batch.body["decisions"]
            .as_array()
            .unwrap_or_else(|| panic!("{:?}", batch.body));
        assert!(
            decisions.iter().all(|d| d["decision"] == "deny"),
            "{:?}",
            batch.body
        );
        // Nothing of A's member leaks into the explanation either.
        assert!(
            !batch.body.to_string().contains("read_write"),
            "{:?}",
            batch.body
        );
    }

    // A key of A's administrator scoped to listing users may not ask /authorize.
    let scoped = s.post(
        &s.admin_key,
        "/api_keys",
        json!({"scopes": ["iam.users.list"]}),
    );
    assert_eq!(scoped.status, 201, "{:?}", scoped.body);
    let scoped = scoped.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.get(&scoped, "/users").status,
        200,
        "the scope itself works (and caches the key)"
    );
    // Making the key was a write: warm dana again, so the key's second attempt finds
    // everything in memory (its first one caches the key itself, then is refused).
    assert_eq!(
        ask(&s.admin_key, json!({"id": dana})).body["decision"],
        "allow"
    );
    let heads_a = two.heads();
    for _ in 0..2 {
        assert_error(&ask(&scoped, json!({"id": dana})), 403, 101);
        let batch = s.post(
            &scoped,
            "/authorize/batch",
            json!({"checks": [{"principal": {"id": dana}, "action": "iam.users.list", "resource": {"type": "user"}}]}),
        );
        assert_error(&batch, 403, 101);
    }
    assert_eq!(two.heads(), heads_a);
    assert_eq!(heads.1, heads_a.1, "B's trail is untouched");
}
