//! The signed-in dashboard through the real server over HTTPS, as a browser speaks to it:
//! my profile, team members, invitations, bot users. Every change is checked through the
//! API afterwards, and every refusal (a lower role, a forged post, another account's
//! object, the last administrator) is checked to have changed nothing.

use serde_json::json;

use crate::api::{Server, start_server};
use crate::login::{admin_email, admin_password, base32_decode, totp_at, unix_now};
use crate::web::{Browser, PASSWORD, member_with_password, member_with_roles_and_password};

/// A browser signed in as `email` (whose password is `password`).
fn signed_in(server: &Server, email: &str, password: &str) -> Browser {
    Browser::new(server).signed_in(email, password)
}

/// The administrator, signed in (its password set through the API).
fn admin_browser(server: &Server) -> Browser {
    admin_password(server);
    signed_in(server, &admin_email(server), crate::login::PASSWORD)
}

fn csrf(browser: &Browser) -> String {
    browser.csrf()
}

/// The newest event of the account's trail.
fn head(server: &Server) -> serde_json::Value {
    server.get(&server.admin_key, "/events?limit=1").body["events"][0]["id"].clone()
}

#[test]
fn my_profile_renames_changes_the_password_enrolls_totp_and_signs_out_other_sessions() {
    let server = start_server();
    let key = member_with_password(&server, "tess@example.com");
    let mut browser = signed_in(&server, "tess@example.com", PASSWORD);
    let mut laptop = signed_in(&server, "tess@example.com", PASSWORD);
    let token = csrf(&browser);

    let profile = browser.get("/ui/profile");
    assert_eq!(profile.status, 200);
    assert_eq!(profile.html.matches("this session").count(), 1);
    assert!(profile.html.contains("Sign out of other sessions"));

    // Name: a change, then a refusal that changes nothing, then a forged post.
    let renamed = browser.post(
        "/ui/profile/name",
        &[("csrf", &token), ("name", "Tess Ochoa")],
    );
    assert_eq!(
        (renamed.status, renamed.location.as_str()),
        (303, "/ui/profile?done=renamed")
    );
    let shown = browser.get("/ui/profile?done=renamed");
    assert!(shown.html.contains("Your name is changed."));
    assert!(shown.html.contains("value=\"Tess Ochoa\""));
    assert_eq!(server.get(&key, "/me").body["name"], "Tess Ochoa");
    let before = head(&server);
    let empty = browser.post("/ui/profile/name", &[("csrf", &token), ("name", "  ")]);
    assert_eq!(empty.status, 400, "{}", empty.html);
    assert!(empty.html.contains("role=\"alert\""));
    let forged = browser.post_from(
        Some("https://evil.example"),
        "/ui/profile/name",
        &[("csrf", &token), ("name", "Mallory")],
    );
    assert_eq!(forged.status, 403);
    assert_eq!(server.get(&key, "/me").body["name"], "Tess Ochoa");
    assert_eq!(head(&server), before, "refusals leave no event");
    // A notice comes only from the fixed list: a made-up key shows nothing.
    let made_up = browser.get("/ui/profile?done=%3Cscript%3E");
    assert!(!made_up.html.contains("role=\"status\""));

    // Two-factor: the QR code as an image, the secret as text, and a first code.
    let enrolling = browser.post("/ui/profile/totp", &[("csrf", &token)]);
    assert_eq!(enrolling.status, 200, "{}", enrolling.html);
    assert!(
        enrolling
            .html
            .contains("src=\"data:image/png;base64,iVBORw0KGgo")
    );
    let at = enrolling
        .html
        .find("Secret: <code class=\"secret\">")
        .unwrap();
    let rest = &enrolling.html[at + "Secret: <code class=\"secret\">".len()..];
    let secret: String = rest[..rest.find('<').unwrap()].replace(' ', "");
    let seed = base32_decode(&secret);
    let wrong = browser.post(
        "/ui/profile/totp-confirm",
        &[("csrf", &token), ("code", "000000")],
    );
    assert_eq!(wrong.status, 400);
    assert_eq!(server.get(&key, "/me").body["mfa_enrolled"], false);
    let code = totp_at(&seed, unix_now());
    let codes = browser.post(
        "/ui/profile/totp-confirm",
        &[("csrf", &token), ("code", &code)],
    );
    assert_eq!(codes.status, 200, "{}", codes.html);
    assert!(codes.html.contains("shown only now"));
    assert_eq!(codes.html.matches("<li><code>").count(), 10);
    assert!(
        codes
            .html
            .contains("download=\"latchkey-recovery-codes.txt\" href=\"data:text/plain")
    );
    let first_code = {
        let at = codes.html.find("<li><code>").unwrap() + "<li><code>".len();
        codes.html[at..at + codes.html[at..].find('<').unwrap()].to_owned()
    };
    assert_eq!(server.get(&key, "/me").body["mfa_enrolled"], true);
    assert!(
        !browser.get("/ui/profile").html.contains(&first_code),
        "recovery codes are shown once"
    );

    // The other session ends when asked.
    assert_eq!(laptop.get("/ui/").status, 200);
    let ended = browser.post("/ui/profile/sessions", &[("csrf", &token)]);
    assert_eq!(ended.location, "/ui/profile?done=signed-out");
    assert_eq!(laptop.get("/ui/").location, "/ui/sign-in");
    assert_eq!(browser.get("/ui/").status, 200, "this one goes on");

    // Password: the current one is required and checked; the two new ones must agree.
    let bad_current = browser.post(
        "/ui/profile/password",
        &[
            ("csrf", &token),
            ("current_password", "not my password"),
            ("new_password", "granite willow ferry 77 dusk"),
            ("confirm_password", "granite willow ferry 77 dusk"),
        ],
    );
    assert_eq!(bad_current.status, 400, "{}", bad_current.html);
    let differ = browser.post(
        "/ui/profile/password",
        &[
            ("csrf", &token),
            ("current_password", PASSWORD),
            ("new_password", "granite willow ferry 77 dusk"),
            ("confirm_password", "granite willow ferry 78 dusk"),
        ],
    );
    assert_eq!(differ.status, 400);
    let changed = browser.post(
        "/ui/profile/password",
        &[
            ("csrf", &token),
            ("current_password", PASSWORD),
            ("new_password", "granite willow ferry 77 dusk"),
            ("confirm_password", "granite willow ferry 77 dusk"),
        ],
    );
    assert_eq!(changed.location, "/ui/profile?done=password");
    let mut old = Browser::new(&server);
    let t = old.get("/ui/sign-in").field("csrf");
    let refused = old.post(
        "/ui/sign-in",
        &[
            ("csrf", &t),
            ("email", "tess@example.com"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(refused.status, 401, "the old password is gone");

    // Turning two-factor off needs a current code or a recovery code.
    let wrong = browser.post(
        "/ui/profile/totp-disable",
        &[("csrf", &token), ("code", "123456")],
    );
    assert_eq!(wrong.status, 400);
    assert_eq!(server.get(&key, "/me").body["mfa_enrolled"], true);
    let off = browser.post(
        "/ui/profile/totp-disable",
        &[("csrf", &token), ("code", &first_code)],
    );
    assert_eq!(off.location, "/ui/profile?done=totp-off", "{}", off.html);
    assert_eq!(server.get(&key, "/me").body["mfa_enrolled"], false);
}

#[test]
fn a_read_only_developer_sees_no_controls_it_may_not_use_and_the_server_refuses_them() {
    let server = start_server();
    let (tess, _) = member_with_roles_and_password(
        &server,
        "tess@example.com",
        json!({"developer": "read_only", "team": "read_only"}),
    );
    let mut browser = signed_in(&server, "tess@example.com", PASSWORD);
    let token = csrf(&browser);

    let members = browser.get("/ui/members");
    assert_eq!(members.status, 200, "team read-only sees the members");
    assert!(!members.html.contains("Invite a member"));
    let admin = browser.get(&format!("/ui/members/{}", server.admin_id));
    assert_eq!(admin.status, 200);
    for control in ["Save roles", "Remove member", "Disable member"] {
        assert!(!admin.html.contains(control), "{control}");
    }
    let bots = browser.get("/ui/bots");
    assert!(!bots.html.contains("Create bot user"));

    // The server refuses what the page does not offer, and nothing changes.
    let before = head(&server);
    let invite = browser.post(
        "/ui/members/invite",
        &[
            ("csrf", &token),
            ("email", "friend@example.com"),
            ("developer", "read_write"),
            ("team", "manager"),
        ],
    );
    assert_eq!(invite.status, 403, "{}", invite.html);
    assert!(invite.html.contains("role=\"alert\""));
    let removal = browser.post(
        &format!("/ui/members/{}/remove", server.admin_id),
        &[("csrf", &token)],
    );
    assert_eq!(removal.status, 403);
    let bot = browser.post("/ui/bots/new", &[("csrf", &token), ("name", "ci")]);
    assert_eq!(bot.status, 403);
    let own_roles = browser.post(
        &format!("/ui/members/{tess}/roles"),
        &[
            ("csrf", &token),
            ("developer", "read_write"),
            ("team", "manager"),
        ],
    );
    assert_eq!(own_roles.status, 403, "no one raises its own roles");
    assert_eq!(head(&server), before);
    assert_eq!(
        server.get(&server.admin_key, "/invitations").body["invitations"],
        json!([])
    );
    assert_eq!(
        server.get(&server.admin_key, "/bot_users").body["bot_users"],
        json!([])
    );

    // Seed 002: it still sees its personal authtoken and may rotate it, shown once.
    let profile = browser.get("/ui/profile");
    assert!(
        profile.html.contains("Personal authtoken"),
        "{}",
        profile.html
    );
    let rotated = browser.post("/ui/profile/authtoken", &[("csrf", &token)]);
    assert_eq!(rotated.status, 200, "{}", rotated.html);
    let secret = rotated.field("secret");
    assert!(secret.len() > 20, "{secret}");
    assert!(rotated.html.contains("shown only this once"));
    let verified = server.post(&server.admin_key, "/verify", json!({"token": secret}));
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    assert_eq!(verified.body["valid"], true);
    assert_eq!(verified.body["owner_id"], tess.as_str());
    assert!(!browser.get("/ui/profile").html.contains(&secret));
}

#[test]
fn an_administrator_invites_and_the_person_joins_from_the_link_in_another_browser() {
    let server = start_server();
    let mut admin = admin_browser(&server);
    let token = csrf(&admin);
    let page = admin.get("/ui/members");
    assert!(page.html.contains("Invite a member"));
    assert!(
        page.html.contains("Seats used: <strong>1</strong>"),
        "{}",
        page.html
    );

    // Granting Administrator asks who is at the keyboard; refusals make nothing.
    let before = head(&server);
    for confirm in ["", "not my password"] {
        let refused = admin.post(
            "/ui/members/invite",
            &[
                ("csrf", &token),
                ("email", "boss@example.com"),
                ("admin", "on"),
                ("confirm", confirm),
            ],
        );
        assert_eq!(refused.status, 400, "{confirm:?}: {}", refused.html);
    }
    assert_eq!(head(&server), before);
    let boss = admin.post(
        "/ui/members/invite",
        &[
            ("csrf", &token),
            ("email", "boss@example.com"),
            ("admin", "on"),
            ("confirm", crate::login::PASSWORD),
        ],
    );
    assert_eq!(boss.status, 201, "{}", boss.html);

    let invited = admin.post(
        "/ui/members/invite",
        &[
            ("csrf", &token),
            ("email", "nina@example.com"),
            ("developer", "read_write"),
            ("team", "invite"),
        ],
    );
    assert_eq!(invited.status, 201, "{}", invited.html);
    let link = invited.field("invitation-link");
    assert!(link.starts_with("https://"), "{link}");
    let path = link[link.find("/invitations/").unwrap()..].to_owned();
    let listed = admin.get("/ui/members");
    assert!(listed.html.contains("nina@example.com"));
    assert!(listed.html.contains("Pending invitations"));

    // The person opens the link in its own browser: the secret leaves the URL.
    let mut nina = Browser::new(&server);
    let opened = nina.get(&path);
    assert_eq!(
        (opened.status, opened.location.as_str()),
        (303, "/ui/invitation")
    );
    let page = nina.get("/ui/invitation");
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("nina@example.com"));
    assert!(
        !page
            .html
            .contains(&path[path.find("token=").unwrap() + 6..])
    );
    let t = nina.cookies["latchkey_csrf"].clone();
    let differ = nina.post(
        "/ui/invitation",
        &[
            ("csrf", &t),
            ("name", "Nina"),
            ("password", PASSWORD),
            ("confirm_password", "something else"),
        ],
    );
    assert_eq!(differ.status, 400);
    let joined = nina.post(
        "/ui/invitation",
        &[
            ("csrf", &t),
            ("name", "Nina"),
            ("password", PASSWORD),
            ("confirm_password", PASSWORD),
        ],
    );
    assert_eq!(joined.status, 200, "{}", joined.html);
    assert!(joined.html.contains("Invitation accepted"));
    let nina = signed_in(&server, "nina@example.com", PASSWORD);
    let _ = nina;
    let users = server.get(&server.admin_key, "/users").body["users"].clone();
    let row = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "nina@example.com")
        .unwrap()
        .clone();
    assert_eq!(row["roles"]["developer"], "read_write");
    assert_eq!(row["roles"]["team"], "invite");

    // A used link, or a forged one, joins nobody.
    let mut again = Browser::new(&server);
    again.get(&path);
    assert_eq!(again.get("/ui/invitation").status, 400);
    let mut forged = Browser::new(&server);
    forged.get(&path.replace("token=", "token=x"));
    assert_eq!(forged.get("/ui/invitation").status, 400);

    // The administrator revokes boss's pending invitation from the page.
    let pending = server.get(&server.admin_key, "/invitations?state=pending");
    let id = pending.body["invitations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = admin.post(&format!("/ui/members/{id}/revoke"), &[("csrf", &token)]);
    assert_eq!(revoked.location, "/ui/members?done=invitation-revoked");
    assert_eq!(
        server
            .get(&server.admin_key, &format!("/invitations/{id}"))
            .body["state"],
        "revoked"
    );
}

#[test]
fn members_are_edited_disabled_and_removed_from_their_page_and_the_last_administrator_stays() {
    let server = start_server();
    let mut admin = admin_browser(&server);
    let token = csrf(&admin);
    let (dana, dana_key) = server.member_with_key("dana@example.com", json!({}));
    let key_id = server.get(&dana_key, "/api_keys").body["keys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The list says who signed in when: the administrator just did, dana never.
    let list = admin.get("/ui/members");
    assert!(list.html.contains("Last sign-in"));
    assert_eq!(
        list.html.matches("<td>never</td>").count(),
        1,
        "{}",
        list.html
    );
    let page = admin.get(&format!("/ui/members/{dana}"));
    assert_eq!(page.status, 200);
    assert!(page.html.contains("revokes these credentials"));
    assert!(page.html.contains(&key_id), "the removal names the key");

    let roles = admin.post(
        &format!("/ui/members/{dana}/roles"),
        &[
            ("csrf", &token),
            ("developer", "read_only"),
            ("team", "manager"),
        ],
    );
    assert_eq!(roles.location, format!("/ui/members/{dana}?done=roles"));
    let seen = server
        .get(&server.admin_key, &format!("/users/{dana}"))
        .body;
    assert_eq!(seen["roles"]["developer"], "read_only");
    assert_eq!(seen["roles"]["team"], "manager");
    let unconfirmed = admin.post(
        &format!("/ui/members/{dana}/roles"),
        &[("csrf", &token), ("admin", "on")],
    );
    assert_eq!(unconfirmed.status, 400);
    assert_eq!(
        server
            .get(&server.admin_key, &format!("/users/{dana}"))
            .body["roles"]["admin"],
        false
    );

    // Disabled, its key stops working; enabled, it works again.
    let disabled = admin.post(&format!("/ui/members/{dana}/disable"), &[("csrf", &token)]);
    assert_eq!(
        disabled.location,
        format!("/ui/members/{dana}?done=disabled")
    );
    assert_ne!(server.get(&dana_key, "/me").status, 200);
    admin.post(&format!("/ui/members/{dana}/enable"), &[("csrf", &token)]);
    assert_eq!(server.get(&dana_key, "/me").status, 200);

    // The last administrator cannot disable or demote itself: a clear message.
    let before = head(&server);
    let own = admin.post(
        &format!("/ui/members/{}/disable", server.admin_id),
        &[("csrf", &token)],
    );
    assert_eq!(own.status, 409, "{}", own.html);
    assert!(own.html.contains("at least one active administrator"));
    assert_eq!(head(&server), before);

    let removed = admin.post(&format!("/ui/members/{dana}/remove"), &[("csrf", &token)]);
    assert_eq!(removed.location, "/ui/members?done=removed");
    assert_eq!(server.get(&dana_key, "/me").status, 401);
    assert_eq!(admin.get(&format!("/ui/members/{dana}")).status, 404);
}

#[test]
fn another_accounts_members_and_bots_are_not_found_from_this_accounts_pages() {
    let accounts = crate::isolation::two_accounts_with(&[]);
    let server = &accounts.server;
    let mut admin = admin_browser(server);
    let token = csrf(&admin);
    let b_bot = server.post(&accounts.b_key, "/bot_users", json!({"name": "b-bot"}));
    let b_bot = b_bot.body["id"].as_str().unwrap().to_owned();
    let before = server.get(&accounts.b_key, "/events?limit=1").body["events"][0]["id"].clone();
    assert_eq!(
        admin
            .get(&format!("/ui/members/{}", accounts.b_admin))
            .status,
        404
    );
    assert_eq!(admin.get(&format!("/ui/bots/{b_bot}")).status, 404);
    for (path, fields) in [
        (format!("/ui/members/{}/disable", accounts.b_admin), vec![]),
        (format!("/ui/members/{}/remove", accounts.b_admin), vec![]),
        (
            format!("/ui/members/{}/roles", accounts.b_admin),
            vec![("developer", "read_only")],
        ),
        (format!("/ui/bots/{b_bot}/delete"), vec![]),
        (format!("/ui/bots/{b_bot}/deactivate"), vec![]),
    ] {
        let mut all = vec![("csrf", token.as_str())];
        all.extend(fields);
        let refused = admin.post(&path, &all);
        assert_eq!(refused.status, 404, "{path}: {}", refused.html);
    }
    assert_eq!(
        server.get(&accounts.b_key, "/events?limit=1").body["events"][0]["id"],
        before,
        "account B's trail is untouched"
    );
    assert_eq!(
        server
            .get(&accounts.b_key, &format!("/bot_users/{b_bot}"))
            .body["active"],
        true
    );
}

#[test]
fn bot_users_are_made_deactivated_and_deleted_with_their_credentials_named() {
    let server = start_server();
    let mut admin = admin_browser(&server);
    let token = csrf(&admin);
    let empty = admin.post("/ui/bots/new", &[("csrf", &token), ("name", "")]);
    assert_eq!(empty.status, 400);
    let made = admin.post("/ui/bots/new", &[("csrf", &token), ("name", "ci-runner")]);
    assert_eq!(made.status, 303);
    let bot = made.location["/ui/bots/".len()..made.location.find('?').unwrap()].to_owned();
    let key = server.post(&server.admin_key, "/api_keys", json!({"owner_id": bot}));
    let key_id = key.body["id"].as_str().unwrap().to_owned();
    let bot_key = key.body["token"].as_str().unwrap().to_owned();

    let page = admin.get(&format!("/ui/bots/{bot}?done=bot-created"));
    assert!(page.html.contains("The bot user is created."));
    assert!(page.html.contains(&key_id));
    assert!(admin.get("/ui/bots").html.contains("ci-runner"));

    let off = admin.post(&format!("/ui/bots/{bot}/deactivate"), &[("csrf", &token)]);
    assert_eq!(off.location, format!("/ui/bots/{bot}?done=bot-changed"));
    assert_ne!(server.get(&bot_key, "/bot_users").status, 200);
    admin.post(&format!("/ui/bots/{bot}/activate"), &[("csrf", &token)]);
    assert_eq!(server.get(&bot_key, "/bot_users").status, 200);

    let deleted = admin.post(&format!("/ui/bots/{bot}/delete"), &[("csrf", &token)]);
    assert_eq!(deleted.location, "/ui/bots?done=bot-deleted");
    assert_eq!(server.get(&bot_key, "/bot_users").status, 401);
    assert_eq!(
        server
            .get(&server.admin_key, &format!("/bot_users/{bot}"))
            .status,
        404
    );
}

#[test]
fn a_session_the_account_mfa_rule_limits_reaches_only_two_factor_setup() {
    let server = start_server();
    member_with_password(&server, "tess@example.com");
    let required = server.patch(&server.admin_key, "/account", json!({"mfa_required": true}));
    assert_eq!(required.status, 200, "{:?}", required.body);
    let mut browser = signed_in(&server, "tess@example.com", PASSWORD);
    let token = csrf(&browser);
    assert_eq!(browser.get("/ui/").location, "/ui/profile");
    assert_eq!(browser.get("/ui/members").location, "/ui/profile");
    let profile = browser.get("/ui/profile");
    assert!(profile.html.contains("requires two-factor authentication"));
    assert!(!profile.html.contains("Change password"));
    assert!(!profile.html.contains("href=\"/ui/members\""));
    let before = head(&server);
    let blocked = browser.post("/ui/profile/name", &[("csrf", &token), ("name", "X")]);
    assert_eq!(blocked.location, "/ui/profile");
    assert_eq!(head(&server), before);

    let enrolling = browser.post("/ui/profile/totp", &[("csrf", &token)]);
    assert_eq!(enrolling.status, 200, "{}", enrolling.html);
    let at = enrolling
        .html
        .find("Secret: <code class=\"secret\">")
        .unwrap();
    let rest = &enrolling.html[at + "Secret: <code class=\"secret\">".len()..];
    let seed = base32_decode(&rest[..rest.find('<').unwrap()].replace(' ', ""));
    let code = totp_at(&seed, unix_now());
    let done = browser.post(
        "/ui/profile/totp-confirm",
        &[("csrf", &token), ("code", &code)],
    );
    assert_eq!(done.status, 200, "{}", done.html);
    assert_eq!(
        browser.get("/ui/members").status,
        200,
        "the whole console now"
    );
}

#[test]
fn credentials_are_made_with_their_limits_shown_once_rotated_and_deleted_from_the_pages() {
    let server = start_server();
    let mut admin = admin_browser(&server);
    let token = csrf(&admin);
    let page = admin.get("/ui/credentials/api-keys");
    assert_eq!(page.status, 200);
    assert!(page.html.contains("New API key"));

    // A refused key (a malformed scope) makes nothing and says why.
    let count = |server: &Server| {
        server.get(&server.admin_key, "/api_keys").body["keys"]
            .as_array()
            .unwrap()
            .len()
    };
    let keys_before = count(&server);
    let bad = admin.post(
        "/ui/credentials/api-keys/new",
        &[
            ("csrf", &token),
            ("scopes", "iam.bot users!"),
            ("owner_id", ""),
        ],
    );
    assert_eq!(bad.status, 400, "{}", bad.html);
    assert!(bad.html.contains("role=\"alert\""));
    assert_eq!(count(&server), keys_before);

    // A scoped key for this host only: shown once, and its limits hold.
    let made = admin.post(
        "/ui/credentials/api-keys/new",
        &[
            ("csrf", &token),
            ("description", "deploy bot"),
            ("scopes", "iam.bot_users.*"),
            ("allowed_cidrs", "127.0.0.1/32\n::1/128"),
            ("expires", "2099-12-31"),
            ("owner_id", &server.admin_id),
        ],
    );
    assert_eq!(made.status, 201, "{}", made.html);
    let secret = made.field("secret");
    assert!(secret.starts_with("lk_ak_"), "{secret}");
    assert_eq!(server.get(&secret, "/bot_users").status, 200);
    assert_eq!(
        server.get(&secret, "/users").status,
        403,
        "scoped to bot users"
    );
    let listed = admin.get("/ui/credentials/api-keys");
    assert!(listed.html.contains("deploy bot"));
    assert!(listed.html.contains("iam.bot_users.*"));
    assert!(listed.html.contains("127.0.0.1/32"));
    assert!(listed.html.contains("2099-12-31"));
    assert!(!listed.html.contains(&secret), "shown once");

    // An authtoken with bind rules, rotated (the old secret stops), then deleted.
    let made = admin.post(
        "/ui/credentials/authtokens/new",
        &[("csrf", &token), ("acl", "bind:*.example.com")],
    );
    assert_eq!(made.status, 201, "{}", made.html);
    let first = made.field("secret");
    let id = made.html[made.html.find("cr_").unwrap()..]
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let verify = |t: &str| {
        server
            .post(&server.admin_key, "/verify", json!({"token": t}))
            .body["valid"]
            .clone()
    };
    assert_eq!(verify(&first), true);
    let rotated = admin.post(
        &format!("/ui/credentials/authtokens/{id}/rotate"),
        &[("csrf", &token)],
    );
    assert_eq!(rotated.status, 200, "{}", rotated.html);
    let second = rotated.field("secret");
    assert_eq!(verify(&first), false);
    assert_eq!(verify(&second), true);
    // The id of one kind is not found under another kind's path.
    let wrong_kind = admin.post(
        &format!("/ui/credentials/api-keys/{id}/delete"),
        &[("csrf", &token)],
    );
    assert_eq!(wrong_kind.status, 404);
    assert_eq!(verify(&second), true);
    let deleted = admin.post(
        &format!("/ui/credentials/authtokens/{id}/delete"),
        &[("csrf", &token)],
    );
    assert_eq!(
        deleted.location,
        "/ui/credentials/authtokens?done=credential-deleted"
    );
    assert_eq!(verify(&second), false);

    // An SSH key is pasted and shown by its fingerprint; a malformed one is refused.
    let bad = admin.post(
        "/ui/credentials/ssh-keys/new",
        &[("csrf", &token), ("public_key", "ssh-ed25519 not-base64")],
    );
    assert_eq!(bad.status, 400);
    let added = admin.post(
        "/ui/credentials/ssh-keys/new",
        &[
            ("csrf", &token),
            ("public_key", crate::credentials::ED25519),
        ],
    );
    assert_eq!(
        added.location,
        "/ui/credentials/ssh-keys?done=ssh-key-added"
    );
    let listed = admin.get("/ui/credentials/ssh-keys?done=ssh-key-added");
    assert!(listed.html.contains("SHA256:"), "{}", listed.html);
}

#[test]
fn credential_pages_refuse_a_lower_role_and_another_accounts_credentials() {
    let accounts = crate::isolation::two_accounts_with(&[]);
    let server = &accounts.server;
    member_with_roles_and_password(
        server,
        "reader@example.com",
        json!({"developer": "read_only", "team": "read_only"}),
    );
    let mut reader = signed_in(server, "reader@example.com", PASSWORD);
    let token = csrf(&reader);
    let page = reader.get("/ui/credentials/api-keys");
    assert_eq!(page.status, 200);
    assert!(!page.html.contains("New API key"));
    assert!(!page.html.contains(">Delete<"));
    let before = head(server);
    let refused = reader.post("/ui/credentials/api-keys/new", &[("csrf", &token)]);
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert_eq!(head(server), before);

    // Account B's key, named from account A's pages, is not found and keeps working.
    let b_keys = server.get(&accounts.b_key, "/api_keys").body["keys"].clone();
    let b_id = b_keys[0]["id"].as_str().unwrap().to_owned();
    let mut admin = admin_browser(server);
    let token = csrf(&admin);
    let b_before = server.get(&accounts.b_key, "/events?limit=1").body["events"][0]["id"].clone();
    let gone = admin.post(
        &format!("/ui/credentials/api-keys/{b_id}/delete"),
        &[("csrf", &token)],
    );
    assert_eq!(gone.status, 404, "{}", gone.html);
    let owner_b = admin.post(
        "/ui/credentials/api-keys/new",
        &[("csrf", &token), ("owner_id", &accounts.b_admin)],
    );
    assert_eq!(owner_b.status, 404, "{}", owner_b.html);
    assert_eq!(server.get(&accounts.b_key, "/me").status, 200);
    assert_eq!(
        server.get(&accounts.b_key, "/events?limit=1").body["events"][0]["id"],
        b_before
    );
}

/// The decision on `action` for a computer of `tenant`, through `/authorize`.
fn decide(server: &Server, principal: &str, action: &str, tenant: &str) -> String {
    let answer = server.post(
        &server.admin_key,
        "/authorize",
        json!({"principal": {"id": principal}, "action": action,
               "resource": {"type": "computer", "id": "c-1", "tenant_id": tenant}}),
    );
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["decision"].as_str().unwrap().to_owned()
}

#[test]
fn tenants_custom_roles_from_checkboxes_and_tenant_access_decide_as_the_api_does() {
    let server = start_server();
    let mut admin = admin_browser(&server);
    let token = csrf(&admin);
    let (dana, _) = server.member_with_key("dana@example.com", json!({}));

    let made = admin.post(
        "/ui/tenants/new",
        &[
            ("csrf", &token),
            ("name", "Contoso"),
            ("description", "a customer"),
        ],
    );
    assert_eq!(made.status, 303, "{}", made.html);
    let tenant = made.location["/ui/tenants/".len()..made.location.find('?').unwrap()].to_owned();
    let before = head(&server);
    let twice = admin.post("/ui/tenants/new", &[("csrf", &token), ("name", "contoso")]);
    assert_eq!(twice.status, 409, "{}", twice.html);
    assert_eq!(head(&server), before);
    assert!(admin.get("/ui/tenants").html.contains("Contoso"));

    // The roles page: built-ins read-only, the catalog by category as checkboxes.
    let roles = admin.get("/ui/roles");
    assert!(roles.html.contains("Technician"));
    assert!(roles.html.contains("<legend>computers</legend>"));
    assert!(roles.html.contains("value=\"computers.remote_control\""));
    let technician = admin.get("/ui/roles/rol_0000000000000000000003");
    assert!(technician.html.contains("cannot be changed"));
    assert!(technician.html.contains("disabled"));
    assert!(!technician.html.contains("Save role"));
    let refused = admin.post(
        "/ui/roles/rol_0000000000000000000003/update",
        &[
            ("csrf", &token),
            ("name", "Mine now"),
            ("permission", "computers.view"),
        ],
    );
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(refused.html.contains("built-in roles cannot be changed"));
    let unknown = admin.post(
        "/ui/roles/new",
        &[
            ("csrf", &token),
            ("name", "Bad"),
            ("permission", "computers.fly"),
        ],
    );
    assert_eq!(unknown.status, 400, "{}", unknown.html);
    let viewer = admin.post(
        "/ui/roles/new",
        &[
            ("csrf", &token),
            ("name", "Remote helper"),
            ("description", "views and remote-controls computers"),
            ("permission", "computers.view"),
            ("permission", "computers.remote_control"),
        ],
    );
    assert_eq!(viewer.status, 303, "{}", viewer.html);
    let role = viewer.location["/ui/roles/".len()..viewer.location.find('?').unwrap()].to_owned();
    let shown = admin.get(&format!("/ui/roles/{role}"));
    assert!(shown.html.contains("Save role"));
    assert_eq!(shown.html.matches("checked").count(), 2, "{}", shown.html);

    // An invitation may carry a tenant role, offered beside the account roles.
    assert!(
        admin
            .get("/ui/members")
            .html
            .contains("Tenant role (optional)")
    );
    let before = head(&server);
    let bad = admin.post(
        "/ui/members/invite",
        &[
            ("csrf", &token),
            ("email", "tech@example.com"),
            ("role_id", "rol_nope"),
        ],
    );
    assert_eq!(bad.status, 400, "{}", bad.html);
    assert_eq!(head(&server), before);
    let invited = admin.post(
        "/ui/members/invite",
        &[
            ("csrf", &token),
            ("email", "tech@example.com"),
            ("role_id", &role),
            ("tenant_id", &tenant),
        ],
    );
    assert_eq!(invited.status, 201, "{}", invited.html);
    let pending = server.get(&server.admin_key, "/invitations?state=pending");
    assert_eq!(
        pending.body["invitations"][0]["role_assignments"],
        json!([{"role_id": role, "tenant_id": tenant}])
    );

    // Tenant access on the member's page: the role in Contoso, decided by the policies.
    assert_eq!(
        decide(&server, &dana, "computers.remote_control", &tenant),
        "deny"
    );
    let given = admin.post(
        &format!("/ui/members/{dana}/access"),
        &[("csrf", &token), ("role_id", &role), ("tenant_id", &tenant)],
    );
    assert_eq!(
        given.location,
        format!("/ui/members/{dana}?done=access-added"),
        "{}",
        given.html
    );
    assert_eq!(
        decide(&server, &dana, "computers.remote_control", &tenant),
        "allow"
    );
    assert_eq!(decide(&server, &dana, "computers.delete", &tenant), "deny");
    let page = admin.get(&format!("/ui/members/{dana}"));
    assert!(page.html.contains("Remote helper"));
    assert!(
        admin
            .get(&format!("/ui/tenants/{tenant}"))
            .html
            .contains(&dana)
    );
    // Global Administrator is for all tenants only: a clear refusal, nothing given.
    let scoped = admin.post(
        &format!("/ui/members/{dana}/access"),
        &[
            ("csrf", &token),
            ("role_id", "rol_0000000000000000000001"),
            ("tenant_id", &tenant),
        ],
    );
    assert_eq!(scoped.status, 400, "{}", scoped.html);
    assert!(scoped.html.contains("all tenants only"));

    // Removing needs the assignment to be this member's: another's id is not found.
    let assignment = server.get(
        &server.admin_key,
        &format!("/role_assignments?principal_id={dana}"),
    );
    let assignment = assignment.body["role_assignments"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let elsewhere = admin.post(
        &format!("/ui/members/{}/access-remove", server.admin_id),
        &[("csrf", &token), ("assignment_id", &assignment)],
    );
    assert_eq!(elsewhere.status, 404, "{}", elsewhere.html);
    assert_eq!(
        decide(&server, &dana, "computers.remote_control", &tenant),
        "allow"
    );
    let removed = admin.post(
        &format!("/ui/members/{dana}/access-remove"),
        &[("csrf", &token), ("assignment_id", &assignment)],
    );
    assert_eq!(
        removed.location,
        format!("/ui/members/{dana}?done=access-removed")
    );
    assert_eq!(
        decide(&server, &dana, "computers.remote_control", &tenant),
        "deny"
    );

    // The tenant and the role are deleted from their pages.
    let gone = admin.post(&format!("/ui/roles/{role}/delete"), &[("csrf", &token)]);
    assert_eq!(gone.location, "/ui/roles?done=role-deleted");
    let gone = admin.post(&format!("/ui/tenants/{tenant}/delete"), &[("csrf", &token)]);
    assert_eq!(gone.location, "/ui/tenants?done=tenant-deleted");
    assert!(!admin.get("/ui/tenants").html.contains("Contoso"));
}

#[test]
fn events_filter_by_principal_action_object_and_time_and_the_access_review_downloads_as_csv() {
    let server = start_server();
    let mut admin = admin_browser(&server);
    let token = csrf(&admin);
    let (dana, dana_key) =
        server.member_with_key("dana@example.com", json!({"developer": "read_write"}));
    let made = server.post(
        &dana_key,
        "/bot_users",
        json!({"name": "=HYPERLINK(\"x\")"}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let bot = made.body["id"].as_str().unwrap().to_owned();
    admin.post(&format!("/ui/bots/{bot}/deactivate"), &[("csrf", &token)]);

    let all = admin.get("/ui/events");
    assert_eq!(all.status, 200);
    assert!(all.html.contains("iam.bot_users.create"));
    assert!(all.html.contains("Before and after"));
    // Dana's events only: the bot it made, not the administrator's change.
    let by_dana = admin.get(&format!("/ui/events?principal={dana}"));
    assert!(
        by_dana.html.contains("iam.bot_users.create"),
        "{}",
        by_dana.html
    );
    assert!(!by_dana.html.contains("iam.bot_users.update"));
    let by_action = admin.get("/ui/events?action=iam.bot_users.update");
    assert!(by_action.html.contains(&format!("href=\"/ui/bots/{bot}\"")));
    assert!(!by_action.html.contains("iam.bot_users.create"));
    assert!(
        by_action.html.contains("&quot;active&quot;: false"),
        "the after state"
    );
    let by_object = admin.get(&format!("/ui/events?object={bot}"));
    assert_eq!(by_object.html.matches("<code>iam.bot_users.").count(), 2);
    let future = admin.get("/ui/events?since=2099-01-01T00%3A00");
    assert!(future.html.contains("No events match."));
    let bad = admin.get("/ui/events?since=yesterday");
    assert_eq!(bad.status, 400);
    assert!(bad.html.contains("From must be a date and time"));
    let bad = admin.get("/ui/events?principal=mallory");
    assert_eq!(bad.status, 400);

    // The access review, and its CSV with formula-looking names neutralised.
    let role = server.post(
        &server.admin_key,
        "/role_assignments",
        json!({"principal_id": bot, "role_id": "rol_0000000000000000000001"}),
    );
    assert_eq!(role.status, 201, "{:?}", role.body);
    let review = admin.get("/ui/access-review");
    assert_eq!(review.status, 200);
    assert!(review.html.contains("Global Administrator"));
    let csv = admin.get("/ui/access-review.csv");
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").starts_with("text/csv"));
    assert!(csv.header("content-disposition").contains("attachment"));
    assert!(
        csv.html
            .starts_with("principal_id,principal_kind,name,tenant_id,role,permissions\r\n")
    );
    assert!(
        csv.html.contains("\"'=HYPERLINK(\"\"x\"\")\""),
        "{}",
        csv.html
    );

    // A member who may not read the trail is refused, and the link is not offered.
    let set = server.post(&dana_key, "/me/password", json!({"new_password": PASSWORD}));
    assert_eq!(set.status, 204);
    let mut dana_browser = signed_in(&server, "dana@example.com", PASSWORD);
    assert!(
        !dana_browser
            .get("/ui/")
            .html
            .contains("href=\"/ui/events\"")
    );
    assert_eq!(dana_browser.get("/ui/events").status, 403);
    assert_eq!(dana_browser.get("/ui/access-review.csv").status, 403);
}

#[test]
fn ip_restrictions_are_made_warn_only_or_enforced_with_reauthentication_and_the_lockout_guard() {
    let server = start_server();
    let mut admin = admin_browser(&server);
    let token = csrf(&admin);
    let policies =
        |server: &Server| server.get(&server.admin_key, "/ip_policies").body["ip_policies"].clone();

    let office = admin.post(
        "/ui/ip/policies/new",
        &[("csrf", &token), ("description", "office")],
    );
    assert_eq!(office.location, "/ui/ip?done=ip-saved", "{}", office.html);
    let office = policies(&server)[0]["id"].as_str().unwrap().to_owned();
    let bad = admin.post(
        &format!("/ui/ip/policies/{office}/rules"),
        &[
            ("csrf", &token),
            ("action", "allow"),
            ("cidr", "300.1.2.3/8"),
        ],
    );
    assert_eq!(bad.status, 400, "{}", bad.html);
    let rule = admin.post(
        &format!("/ui/ip/policies/{office}/rules"),
        &[
            ("csrf", &token),
            ("action", "allow"),
            ("cidr", "127.0.0.1/32"),
        ],
    );
    assert_eq!(rule.location, "/ui/ip?done=ip-saved");
    admin.post(
        "/ui/ip/policies/new",
        &[("csrf", &token), ("description", "branch")],
    );
    let branch = policies(&server)
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["description"] == "branch")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin.post(
        &format!("/ui/ip/policies/{branch}/rules"),
        &[
            ("csrf", &token),
            ("action", "allow"),
            ("cidr", "10.0.0.0/8"),
        ],
    );
    let page = admin.get("/ui/ip");
    assert!(page.html.contains("127.0.0.1/32") && page.html.contains("10.0.0.0/8"));

    let restrictions = |server: &Server| {
        server.get(&server.admin_key, "/ip_restrictions").body["ip_restrictions"]
            .as_array()
            .unwrap()
            .len()
    };
    // Enforcing needs the password; without it nothing is made.
    let unconfirmed = admin.post(
        "/ui/ip/restrictions/new",
        &[
            ("csrf", &token),
            ("type", "dashboard"),
            ("ip_policy_id", &office),
            ("enforced", "on"),
        ],
    );
    assert_eq!(unconfirmed.status, 400, "{}", unconfirmed.html);
    assert_eq!(restrictions(&server), 0);
    // The branch policy would refuse this very browser: the guard says so, clearly.
    let guarded = admin.post(
        "/ui/ip/restrictions/new",
        &[
            ("csrf", &token),
            ("type", "dashboard"),
            ("ip_policy_id", &branch),
            ("enforced", "on"),
            ("confirm", crate::login::PASSWORD),
        ],
    );
    assert_eq!(guarded.status, 409, "{}", guarded.html);
    assert!(
        guarded
            .html
            .contains("would refuse dashboard sessions from 127.0.0.1")
    );
    assert!(guarded.html.contains("I may lock myself out"));
    assert_eq!(restrictions(&server), 0);
    // The office policy allows it: enforced, and the dashboard still opens.
    let made = admin.post(
        "/ui/ip/restrictions/new",
        &[
            ("csrf", &token),
            ("type", "dashboard"),
            ("ip_policy_id", &office),
            ("enforced", "on"),
            ("confirm", crate::login::PASSWORD),
        ],
    );
    assert_eq!(made.location, "/ui/ip?done=ip-saved", "{}", made.html);
    assert_eq!(admin.get("/ui/ip").status, 200);
    // Warn-only needs no password and refuses nothing.
    let warn = admin.post(
        "/ui/ip/restrictions/new",
        &[("csrf", &token), ("type", "api"), ("ip_policy_id", &branch)],
    );
    assert_eq!(warn.location, "/ui/ip?done=ip-saved");
    let listed = server.get(&server.admin_key, "/ip_restrictions");
    assert_eq!(listed.status, 200);
    assert!(
        listed
            .headers
            .iter()
            .any(|(k, _)| k == "latchkey-ip-restriction-warning"),
        "warn-only lets the request through, flagged"
    );
    assert!(admin.get("/ui/ip").html.contains("warn-only"));

    // A confirmed lockout is made, and the guard was right: this browser is refused.
    let api = listed.body["ip_restrictions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "dashboard")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patched = server.patch(
        &server.admin_key,
        &format!("/ip_restrictions/{api}"),
        json!({"ip_policy_ids": [branch], "confirm_lockout": true}),
    );
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    let refused = admin.get("/ui/ip");
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .html
            .contains("does not allow dashboard sessions from 127.0.0.1")
    );
}

#[test]
fn a_member_who_may_not_change_ip_restrictions_sees_no_form_and_is_refused() {
    let server = start_server();
    member_with_roles_and_password(
        &server,
        "dev@example.com",
        json!({"developer": "read_only"}),
    );
    let mut dev = signed_in(&server, "dev@example.com", PASSWORD);
    let token = csrf(&dev);
    let page = dev.get("/ui/ip");
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(!page.html.contains("Create policy"));
    let before = head(&server);
    let refused = dev.post(
        "/ui/ip/policies/new",
        &[("csrf", &token), ("description", "x")],
    );
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert_eq!(head(&server), before);
}

#[test]
fn account_settings_require_mfa_and_a_forgotten_password_is_mailed_and_set_in_the_browser() {
    let accounts = crate::isolation::two_accounts_with(&[]);
    let server = &accounts.server;
    let mut admin = admin_browser(server);
    let token = csrf(&admin);
    let page = admin.get("/ui/settings");
    assert_eq!(page.status, 200);
    assert!(page.html.contains("Require two-factor authentication"));
    let saved = admin.post(
        "/ui/settings/mfa",
        &[("csrf", &token), ("mfa_required", "on")],
    );
    assert_eq!(saved.location, "/ui/settings?done=settings");
    assert_eq!(
        server.get(&server.admin_key, "/account").body["mfa_required"],
        true
    );
    admin.post("/ui/settings/mfa", &[("csrf", &token)]);
    assert_eq!(
        server.get(&server.admin_key, "/account").body["mfa_required"],
        false
    );

    // A member who may not change settings is refused, and nothing changes.
    member_with_roles_and_password(server, "dev@example.com", json!({}));
    let mut dev = signed_in(server, "dev@example.com", PASSWORD);
    let t = csrf(&dev);
    let refused = dev.post("/ui/settings/mfa", &[("csrf", &t), ("mfa_required", "on")]);
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert_eq!(
        server.get(&server.admin_key, "/account").body["mfa_required"],
        false
    );

    // Forgot: the same answer for a known and an unknown address; the link comes by mail.
    let mut person = Browser::new(server);
    let form = person.get("/ui/forgot-password");
    assert_eq!(form.status, 200);
    let t = form.field("csrf");
    let unknown = person.post(
        "/ui/forgot-password",
        &[("csrf", &t), ("email", "nobody@example.com")],
    );
    let known = person.post(
        "/ui/forgot-password",
        &[("csrf", &t), ("email", "dev@example.com")],
    );
    assert_eq!((unknown.status, known.status), (202, 202));
    assert_eq!(unknown.html, known.html);
    let malformed = person.post(
        "/ui/forgot-password",
        &[("csrf", &t), ("email", "not an email")],
    );
    assert_eq!(malformed.status, 400);
    let link = crate::support::link_in(&accounts.mail("/password_reset"), "/password_reset");
    let path = link[link.find("/password_reset").unwrap()..].to_owned();
    person.get(&path);
    let t = person.get("/ui/reset-password").field("csrf");
    let set = person.post(
        "/ui/reset-password",
        &[
            ("csrf", &t),
            ("new_password", "granite willow ferry 77 dusk"),
            ("confirm_password", "granite willow ferry 77 dusk"),
        ],
    );
    assert_eq!(set.status, 200, "{}", set.html);
    signed_in(server, "dev@example.com", "granite willow ferry 77 dusk");
}

#[test]
fn an_existing_user_joins_a_second_account_from_its_session_and_then_picks_the_account() {
    let accounts = crate::isolation::two_accounts_with(&[]);
    let server = &accounts.server;
    let key = member_with_password(server, "multi@example.com");
    // The person proves its address (else it joins no other account).
    let asked = server.post(&key, "/me/email_verification", json!({}));
    assert_eq!(asked.status, 202, "{:?}", asked.body);
    let link =
        crate::support::link_in(&accounts.mail("/email_verification"), "/email_verification");
    let proved = server.post(
        &key,
        "/email_verification",
        json!({"token": link.split("token=").nth(1).unwrap()}),
    );
    assert_eq!(proved.status, 204, "{:?}", proved.body);
    let invited = server.post(
        &accounts.b_key,
        "/invitations",
        json!({"email": "multi@example.com", "roles": {"developer": "read_write"}}),
    );
    assert_eq!(invited.status, 201, "{:?}", invited.body);
    let accept = invited.body["accept_url"].as_str().unwrap();
    let path = accept[accept.find("/invitations/").unwrap()..].to_owned();

    // Signed out, the page asks to sign in first; signed in, it accepts in one click.
    let mut browser = Browser::new(server);
    browser.get(&path);
    let page = browser.get("/ui/invitation");
    assert!(page.html.contains("Sign in"), "{}", page.html);
    assert!(!page.html.contains("Choose a password"));
    let signed = signed_in(server, "multi@example.com", PASSWORD);
    browser.cookies.extend(signed.cookies);
    let page = browser.get("/ui/invitation");
    assert!(
        page.html.contains("Accept and join globex"),
        "{}",
        page.html
    );
    let token = csrf(&browser);
    let joined = browser.post("/ui/invitation", &[("csrf", &token)]);
    assert_eq!(joined.status, 200, "{}", joined.html);

    // Now a member of two accounts: the sign-in asks which one.
    let mut fresh = Browser::new(server);
    let t = fresh.get("/ui/sign-in").field("csrf");
    let picker = fresh.post(
        "/ui/sign-in",
        &[
            ("csrf", &t),
            ("email", "multi@example.com"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(picker.status, 200, "{}", picker.html);
    assert!(picker.html.contains("acme") && picker.html.contains("globex"));
    assert!(!fresh.cookies.contains_key("latchkey_session"));
    // A forged account id (one the person is not a member of) signs in nowhere.
    let forged = fresh.post(
        "/ui/sign-in/account",
        &[("csrf", &t), ("account_id", "ac_0000000000000000000009")],
    );
    assert!(
        !fresh.cookies.contains_key("latchkey_session"),
        "{}",
        forged.html
    );
    let mut fresh = Browser::new(server);
    let t = fresh.get("/ui/sign-in").field("csrf");
    fresh.post(
        "/ui/sign-in",
        &[
            ("csrf", &t),
            ("email", "multi@example.com"),
            ("password", PASSWORD),
        ],
    );
    let chosen = fresh.post(
        "/ui/sign-in/account",
        &[("csrf", &t), ("account_id", &accounts.b_account)],
    );
    assert_eq!(
        (chosen.status, chosen.location.as_str()),
        (303, "/ui/"),
        "{}",
        chosen.html
    );
    assert!(fresh.get("/ui/").html.contains(&accounts.b_account));
}

#[test]
fn every_console_form_refuses_a_forged_post_and_every_page_carries_the_browser_headers() {
    let server = start_server();
    let mut admin = admin_browser(&server);
    let token = csrf(&admin);
    let (dana, _) = server.member_with_key("dana@example.com", json!({}));
    let bot = server.post(&server.admin_key, "/bot_users", json!({"name": "ci"}));
    let bot = bot.body["id"].as_str().unwrap().to_owned();
    let member = format!("/ui/members/{dana}");
    let bot_page = format!("/ui/bots/{bot}");

    for page in [
        "/ui/",
        "/ui/profile",
        "/ui/members",
        member.as_str(),
        "/ui/bots",
        bot_page.as_str(),
        "/ui/credentials/api-keys",
        "/ui/credentials/authtokens",
        "/ui/credentials/ssh-keys",
        "/ui/ip",
        "/ui/tenants",
        "/ui/roles",
        "/ui/events",
        "/ui/access-review",
        "/ui/settings",
    ] {
        let shown = admin.get(page);
        assert_eq!(shown.status, 200, "{page}: {}", shown.html);
        for (name, must) in [
            ("content-security-policy", "default-src 'none'"),
            ("content-security-policy", "frame-ancestors 'none'"),
            ("content-security-policy", "script-src 'self'"),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("cache-control", "no-store"),
            ("referrer-policy", "same-origin"),
        ] {
            assert!(shown.header(name).contains(must), "{page}: {name}");
        }
        assert!(!shown.html.contains("<script>"), "{page}: no inline script");
    }

    // Every form of the console, posted without the token or from another origin,
    // is refused before anything is read, and the trail does not move.
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/ui/profile/name".into(), vec![("name", "Mallory")]),
        ("/ui/profile/totp".into(), vec![]),
        ("/ui/profile/authtoken".into(), vec![]),
        ("/ui/profile/sessions".into(), vec![]),
        (
            "/ui/members/invite".into(),
            vec![("email", "x@example.com"), ("admin", "on")],
        ),
        (format!("{member}/roles"), vec![("admin", "on")]),
        (format!("{member}/disable"), vec![]),
        (format!("{member}/remove"), vec![]),
        ("/ui/bots/new".into(), vec![("name", "planted")]),
        (format!("{bot_page}/delete"), vec![]),
        ("/ui/credentials/api-keys/new".into(), vec![]),
        ("/ui/ip/policies/new".into(), vec![("description", "x")]),
        ("/ui/tenants/new".into(), vec![("name", "x")]),
        ("/ui/roles/new".into(), vec![("name", "x")]),
        ("/ui/settings/mfa".into(), vec![("mfa_required", "on")]),
        ("/ui/sign-out".into(), vec![]),
    ];
    let before = head(&server);
    for (path, fields) in &forms {
        let without: Vec<(&str, &str)> = fields.clone();
        let refused = admin.post(path, &without);
        assert_eq!(refused.status, 403, "{path} without the token");
        let mut with = vec![("csrf", token.as_str())];
        with.extend(fields.iter().copied());
        let forged = admin.post_from(Some("https://evil.example"), path, &with);
        assert_eq!(forged.status, 403, "{path} from another origin");
        let no_origin = admin.post_from(None, path, &with);
        assert_eq!(no_origin.status, 403, "{path} without an origin");
    }
    assert_eq!(head(&server), before, "no forged post changed anything");
    assert_eq!(admin.get("/ui/").status, 200, "still signed in");
}
