//! Passwords, dashboard sessions and the brute-force defence: over real TLS through the
//! binary, and (for the lockout's release, which needs time to pass) at library level
//! with an injected clock.

use serde_json::{Value, json};

use crate::api::{Reply, Server, assert_error, reply, start_server};
use crate::support::Fixture;
use latchkey::app::{AppError, Limited};
use latchkey::domain::user::User;

pub const PASSWORD: &str = "copper kettle orbit 42 lantern";

pub fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub fn login(server: &Server, body: Value) -> Reply {
    reply(
        server
            .agent()
            .post(&format!("{}/login", server.url))
            .send_json(body),
    )
}

/// The session secret a successful login set.
pub fn cookie_of(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let set = header(reply, "set-cookie").unwrap();
    let (pair, _) = set.split_once(';').unwrap();
    pair.strip_prefix("latchkey_session=").unwrap().to_owned()
}

pub fn with_cookie(
    server: &Server,
    method: &str,
    path: &str,
    cookie: &str,
    body: Option<Value>,
) -> Reply {
    let url = format!("{}{path}", server.url);
    let cookie = format!("latchkey_session={cookie}");
    let agent = server.agent();
    reply(match (method, body) {
        ("GET", _) => agent.get(&url).header("Cookie", &cookie).call(),
        ("POST", Some(body)) => agent.post(&url).header("Cookie", &cookie).send_json(body),
        ("POST", None) => agent.post(&url).header("Cookie", &cookie).send_empty(),
        ("PATCH", Some(body)) => agent.patch(&url).header("Cookie", &cookie).send_json(body),
        _ => agent.delete(&url).header("Cookie", &cookie).call(),
    })
}

/// The administrator sets its first password with its API key (it has none yet).
pub fn admin_password(server: &Server) {
    let set = server.post(
        &server.admin_key,
        "/me/password",
        json!({"new_password": PASSWORD}),
    );
    assert_eq!(set.status, 204, "{:?}", set.body);
}

pub fn admin_email(server: &Server) -> String {
    let me = server.get(&server.admin_key, "/me");
    me.body["email"].as_str().unwrap().to_owned()
}

#[test]
fn a_user_logs_in_with_a_password_and_its_session_cookie_acts_for_it() {
    let server = start_server();
    // Weak and short passwords are refused, naming the field.
    for weak in ["short", "password1234", "latchkeyadmin"] {
        let refused = server.post(
            &server.admin_key,
            "/me/password",
            json!({"new_password": weak}),
        );
        assert_error(&refused, 400, 105);
        assert_eq!(refused.body["details"]["field"], "new_password");
    }
    admin_password(&server);
    let email = admin_email(&server);
    let logged_in = login(&server, json!({"email": email, "password": PASSWORD}));
    let set = header(&logged_in, "set-cookie").unwrap().to_owned();
    for attribute in [
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=43200",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    assert_eq!(logged_in.body["user_id"], json!(server.admin_id));
    assert_eq!(logged_in.body["account_id"], json!(server.account_id));
    let cookie = cookie_of(&logged_in);

    let me = with_cookie(&server, "GET", "/me", &cookie, None);
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!(me.body["email"], json!(email));
    assert_eq!(me.body["session_id"], logged_in.body["session_id"]);
    assert_eq!(me.body["password_set"], true);
    // The session acts as its user on the rest of the API.
    let users = with_cookie(&server, "GET", "/users", &cookie, None);
    assert_eq!(users.status, 200, "{:?}", users.body);

    // Logging out ends it, server-side.
    let out = with_cookie(&server, "POST", "/logout", &cookie, None);
    assert_eq!(out.status, 204);
    assert!(header(&out, "set-cookie").unwrap().contains("Max-Age=0"));
    assert_error(&with_cookie(&server, "GET", "/me", &cookie, None), 401, 100);
    assert_error(
        &with_cookie(&server, "GET", "/me", "forged", None),
        401,
        100,
    );

    // Success and failure are both events, with the source address.
    login(
        &server,
        json!({"email": email, "password": "wrong wrong wrong"}),
    );
    let events = server.get(&server.admin_key, "/events?action=iam.sessions.refuse");
    assert_eq!(events.body["events"][0]["after"]["ip"], "127.0.0.1");
    let events = server.get(&server.admin_key, "/events?action=iam.sessions.create");
    assert_eq!(events.body["events"][0]["after"]["ip"], "127.0.0.1");

    // No password, cookie secret or hash in the log.
    let (_, log) = server.stop();
    for secret in [PASSWORD, cookie.as_str(), "$argon2id$"] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
}

#[test]
fn wrong_and_unknown_credentials_get_one_answer_and_repeated_failures_are_locked_out() {
    let server = start_server();
    admin_password(&server);
    let email = admin_email(&server);
    let unknown = login(
        &server,
        json!({"email": "nobody@example.com", "password": PASSWORD}),
    );
    let wrong = login(
        &server,
        json!({"email": email, "password": "not the password"}),
    );
    assert_error(&unknown, 401, 100);
    assert_error(&wrong, 401, 100);
    assert_eq!(unknown.body["msg"], wrong.body["msg"]);
    // A bot has no email or password: its id gets the same answer.
    let bot = server.post(&server.admin_key, "/bot_users", json!({"name": "ci"}));
    let bot_login = login(
        &server,
        json!({"email": bot.body["id"], "password": PASSWORD}),
    );
    assert_error(&bot_login, 401, 100);

    for _ in 0..4 {
        assert_error(
            &login(&server, json!({"email": email, "password": "nope nope"})),
            401,
            100,
        );
    }
    // Five failures in the window: now refused whatever the password.
    let locked = login(&server, json!({"email": email, "password": PASSWORD}));
    assert_error(&locked, 429, 117);
    let retry: u64 = header(&locked, "retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Another email is not locked by this one's failures.
    assert_error(
        &login(
            &server,
            json!({"email": "other@example.com", "password": PASSWORD}),
        ),
        401,
        100,
    );
}

#[test]
fn changing_a_password_needs_the_current_one_and_ends_the_other_sessions() {
    let server = start_server();
    admin_password(&server);
    let email = admin_email(&server);
    let first = cookie_of(&login(
        &server,
        json!({"email": email, "password": PASSWORD}),
    ));
    let second = cookie_of(&login(
        &server,
        json!({"email": email, "password": PASSWORD}),
    ));
    let missing = with_cookie(
        &server,
        "POST",
        "/me/password",
        &first,
        Some(json!({"new_password": "granite meadow violin 77 harbor"})),
    );
    assert_error(&missing, 400, 105);
    assert_eq!(missing.body["details"]["field"], "current_password");
    let changed = with_cookie(
        &server,
        "POST",
        "/me/password",
        &first,
        Some(
            json!({"current_password": PASSWORD, "new_password": "granite meadow violin 77 harbor"}),
        ),
    );
    assert_eq!(changed.status, 204, "{:?}", changed.body);
    assert_eq!(with_cookie(&server, "GET", "/me", &first, None).status, 200);
    assert_error(&with_cookie(&server, "GET", "/me", &second, None), 401, 100);
    assert_error(
        &login(&server, json!({"email": email, "password": PASSWORD})),
        401,
        100,
    );
    let again = login(
        &server,
        json!({"email": email, "password": "granite meadow violin 77 harbor"}),
    );
    assert_eq!(again.status, 200, "{:?}", again.body);
}

#[test]
fn a_disabled_or_removed_member_loses_its_sessions_at_once() {
    let server = start_server();
    let (dana, key) = server.member_with_key("dana@example.com", json!({}));
    let set = server.post(&key, "/me/password", json!({"new_password": PASSWORD}));
    assert_eq!(set.status, 204, "{:?}", set.body);
    let cookie = cookie_of(&login(
        &server,
        json!({"email": "dana@example.com", "password": PASSWORD}),
    ));
    assert_eq!(
        with_cookie(&server, "GET", "/me", &cookie, None).status,
        200
    );
    let disabled = server.patch(
        &server.admin_key,
        &format!("/users/{dana}"),
        json!({"state": "disabled"}),
    );
    assert_eq!(disabled.status, 200, "{:?}", disabled.body);
    assert_error(&with_cookie(&server, "GET", "/me", &cookie, None), 401, 100);
    // While disabled it cannot log in again either.
    let refused = login(
        &server,
        json!({"email": "dana@example.com", "password": PASSWORD}),
    );
    assert_error(&refused, 403, 101);
}

/// Warn-only, then enforced dashboard restrictions against a server on `loopback`
/// (IPv4 or IPv6), with the lockout guard in between.
fn dashboard_restrictions_on(server: &Server, office: &str, here: &str) {
    admin_password(server);
    let email = admin_email(server);
    let key = &server.admin_key;
    let policy = server.post(key, "/ip_policies", json!({"description": "office"}));
    let policy = policy.body["id"].as_str().unwrap().to_owned();
    let rule = server.post(
        key,
        "/ip_policy_rules",
        json!({"ip_policy_id": policy, "cidr": office, "action": "allow"}),
    );
    assert_eq!(rule.status, 201, "{:?}", rule.body);
    let restriction = server.post(
        key,
        "/ip_restrictions",
        json!({"type": "dashboard", "ip_policy_ids": [policy], "enforced": false}),
    );
    assert_eq!(restriction.status, 201, "{:?}", restriction.body);
    let warned = login(server, json!({"email": email, "password": PASSWORD}));
    assert_eq!(warned.status, 200, "{:?}", warned.body);
    let warning = header(&warned, "latchkey-ip-restriction-warning").unwrap();
    assert!(warning.contains(here), "{warning}");
    let cookie = cookie_of(&warned);

    // Enforcing it would lock its author out: refused unless confirmed, and unchanged.
    let id = restriction.body["id"].as_str().unwrap();
    let path = format!("/ip_restrictions/{id}");
    let guarded = server.patch(key, &path, json!({"enforced": true}));
    assert_error(&guarded, 409, 118);
    assert_eq!(guarded.body["details"]["field"], "confirm_lockout");
    assert_eq!(server.get(key, &path).body["enforced"], false);
    let enforce = server.patch(
        key,
        &path,
        json!({"enforced": true, "confirm_lockout": true}),
    );
    assert_eq!(enforce.status, 200, "{:?}", enforce.body);

    let refused = login(server, json!({"email": email, "password": PASSWORD}));
    assert_error(&refused, 403, 115);
    // The live session is held to it too; the API key is not (it is an `api` request).
    assert_error(&with_cookie(server, "GET", "/me", &cookie, None), 403, 115);
    // So are the dashboard's pages with that session: a page that says why.
    let page = server
        .agent()
        .get(format!("{}/ui/", server.url))
        .header("Cookie", format!("latchkey_session={cookie}"))
        .call()
        .unwrap();
    assert_eq!(page.status().as_u16(), 403);
    let html = page.into_body().read_to_string().unwrap();
    assert!(
        html.contains("does not allow dashboard sessions from"),
        "{html}"
    );
    assert_eq!(server.get(key, "/me").status, 200);
    let events = server.get(key, "/events?action=iam.sessions.refuse");
    assert_eq!(events.body["events"][0]["after"]["ip"], here);
}

#[test]
fn dashboard_ip_restrictions_apply_to_login_over_ipv4() {
    dashboard_restrictions_on(&start_server(), "10.0.0.0/8", "127.0.0.1");
}

#[test]
fn dashboard_ip_restrictions_apply_to_login_over_ipv6() {
    let server = crate::api::start_configured(
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &crate::support::policies_dir(),
        None,
        &[("LATCHKEY_LISTEN", "[::1]:0")],
    );
    assert!(server.url.starts_with("https://[::1]:"), "{}", server.url);
    dashboard_restrictions_on(&server, "2001:db8::/32", "::1");
}

/// A fixture whose administrator has [`PASSWORD`]; the administrator.
fn fixture_with_admin_password() -> (Fixture, User) {
    let fx = Fixture::new();
    let admin = fx.admin().clone();
    fx.lk
        .change_password(fx.me(admin.id), None, PASSWORD)
        .unwrap();
    (fx, admin)
}

/// The lockout lifts when the window passes: at library level, with the clock moved
/// instead of a test that sleeps.
#[test]
fn a_locked_out_email_may_log_in_again_once_the_window_has_passed() {
    let (fx, admin) = fixture_with_admin_password();
    let email = admin.email.as_str();
    for _ in 0..5 {
        let wrong = fx.lk.login(email, "not it at all", None, None, None);
        assert!(
            matches!(wrong, Err(AppError::Unauthenticated(_))),
            "{wrong:?}"
        );
    }
    let locked = fx.lk.login(email, PASSWORD, None, None, None);
    let Err(AppError::RateLimited {
        what: Limited::Logins,
        retry_after_secs,
    }) = locked
    else {
        panic!("expected a lockout, got {locked:?}");
    };
    assert_eq!(retry_after_secs, 15 * 60);
    fx.clock.advance(14 * 60 * 1000);
    assert!(matches!(
        fx.lk.login(email, PASSWORD, None, None, None),
        Err(AppError::RateLimited {
            what: Limited::Logins,
            retry_after_secs: 60
        })
    ));
    fx.clock.advance(60 * 1000);
    let session = fx
        .lk
        .login(email, PASSWORD, None, None, None)
        .unwrap()
        .session;
    assert_eq!(session.user, admin.id);
}

// ------------------------------------------------------------------ TOTP, independently

/// RFC 4648 base32 (no padding), as authenticator apps read the `secret` of a URI.
pub fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0);
    for c in text.trim_end_matches('=').chars() {
        let value = ALPHABET.find(c.to_ascii_uppercase()).unwrap() as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

/// RFC 6238 TOTP (SHA-1, 6 digits, 30 s), written here from the RFC: not totp-rs.
pub fn totp_at(seed: &[u8], unix: u64) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(seed).unwrap();
    mac.update(&(unix / 30).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Enroll TOTP for whoever `auth` is (a cookie or an API key) and return the seed.
pub fn enroll(server: &Server, cookie: Option<&str>, key: &str) -> Vec<u8> {
    let enrolled = match cookie {
        Some(cookie) => with_cookie(server, "POST", "/me/mfa/totp", cookie, Some(json!({}))),
        None => server.post(key, "/me/mfa/totp", json!({})),
    };
    assert_eq!(enrolled.status, 200, "{:?}", enrolled.body);
    let uri = enrolled.body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/latchkey:"), "{uri}");
    let png = enrolled.body["qr_png_base64"].as_str().unwrap();
    assert!(png.starts_with("iVBORw0KGgo"), "a PNG in base64");
    seed_of(uri)
}

#[test]
fn totp_guards_login_codes_work_once_and_recovery_codes_once() {
    let server = start_server();
    admin_password(&server);
    let email = admin_email(&server);
    let key = &server.admin_key;
    let seed = enroll(&server, None, key);
    let wrong = server.post(key, "/me/mfa/totp/confirm", json!({"code": "000000"}));
    assert_error(&wrong, 400, 105);
    let confirmed_at = unix_now();
    let first = totp_at(&seed, confirmed_at);
    let confirmed = server.post(key, "/me/mfa/totp/confirm", json!({"code": first}));
    assert_eq!(confirmed.status, 200, "{:?}", confirmed.body);
    let recovery: Vec<String> = confirmed.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    assert_eq!(server.get(key, "/me").body["mfa_enrolled"], true);
    let admin = server.get(key, &format!("/users/{}", server.admin_id));
    assert_eq!(admin.body["mfa_enrolled"], true);

    // The password alone is not enough now.
    let asked = login(&server, json!({"email": email, "password": PASSWORD}));
    assert_error(&asked, 401, 100);
    assert_eq!(asked.body["details"]["mfa_required"], true);
    // The code used to confirm is spent; the next step's code works once.
    let replayed = login(
        &server,
        json!({"email": email, "password": PASSWORD, "totp_code": first}),
    );
    assert_error(&replayed, 401, 100);
    let next = totp_at(&seed, confirmed_at + 30);
    let ok = login(
        &server,
        json!({"email": email, "password": PASSWORD, "totp_code": next}),
    );
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let again = login(
        &server,
        json!({"email": email, "password": PASSWORD, "totp_code": next}),
    );
    assert_error(&again, 401, 100);

    // A recovery code works once.
    let rescue = json!({"email": email, "password": PASSWORD, "recovery_code": recovery[0]});
    assert_eq!(login(&server, rescue.clone()).status, 200);
    assert_error(&login(&server, rescue), 401, 100);

    // Turning TOTP off needs a current code (here, a recovery code).
    let bad = reply(
        server
            .agent()
            .delete(&format!("{}/me/mfa/totp", server.url))
            .header("Authorization", &format!("Bearer {key}"))
            .force_send_body()
            .send_json(json!({"code": "123456"})),
    );
    assert_error(&bad, 400, 105);
    let off = reply(
        server
            .agent()
            .delete(&format!("{}/me/mfa/totp", server.url))
            .header("Authorization", &format!("Bearer {key}"))
            .force_send_body()
            .send_json(json!({"recovery_code": recovery[1]})),
    );
    assert_eq!(off.status, 204, "{:?}", off.body);
    assert_eq!(
        login(&server, json!({"email": email, "password": PASSWORD})).status,
        200
    );

    let events = server.get(key, "/events?action=iam.mfa.enroll");
    assert_eq!(events.body["events"].as_array().unwrap().len(), 1);
    let (_, log) = server.stop();
    let seed_text: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    for secret in [
        first.as_str(),
        next.as_str(),
        recovery[2].as_str(),
        &seed_text,
    ] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
}

#[test]
fn an_account_that_requires_mfa_lets_a_member_without_it_only_enroll() {
    let server = start_server();
    let required = server.patch(&server.admin_key, "/account", json!({"mfa_required": true}));
    assert_eq!(required.status, 200, "{:?}", required.body);
    let (_, key) = server.member_with_key("dana@example.com", json!({}));
    let set = server.post(&key, "/me/password", json!({"new_password": PASSWORD}));
    assert_eq!(set.status, 204, "{:?}", set.body);
    let logged_in = login(
        &server,
        json!({"email": "dana@example.com", "password": PASSWORD}),
    );
    assert_eq!(logged_in.body["mfa_enrollment_required"], true);
    let cookie = cookie_of(&logged_in);
    let limited = with_cookie(&server, "GET", "/users", &cookie, None);
    assert_error(&limited, 403, 101);
    assert_eq!(
        with_cookie(&server, "GET", "/me", &cookie, None).status,
        200
    );

    let seed = enroll(&server, Some(&cookie), &key);
    let code = totp_at(&seed, unix_now());
    let confirmed = with_cookie(
        &server,
        "POST",
        "/me/mfa/totp/confirm",
        &cookie,
        Some(json!({"code": code})),
    );
    assert_eq!(confirmed.status, 200, "{:?}", confirmed.body);
    // Enrolled in this session: it now reaches the rest of the API.
    assert_eq!(
        with_cookie(&server, "GET", "/users", &cookie, None).status,
        200
    );
}

#[test]
fn an_administrator_issues_a_one_time_password_reset_link() {
    let server = start_server();
    let (dana, dana_key) = server.member_with_key("dana@example.com", json!({}));
    let set = server.post(&dana_key, "/me/password", json!({"new_password": PASSWORD}));
    assert_eq!(set.status, 204, "{:?}", set.body);
    let session = cookie_of(&login(
        &server,
        json!({"email": "dana@example.com", "password": PASSWORD}),
    ));
    // A team manager manages roles, not logins.
    let (_, manager) = server.member_with_key("m@example.com", json!({"team": "manager"}));
    let refused = server.post(
        &manager,
        &format!("/users/{dana}/password_reset"),
        json!({}),
    );
    assert_error(&refused, 403, 101);
    assert_eq!(
        refused.body["details"]["reason"],
        "only administrators may issue password resets"
    );

    let issued = server.post(
        &server.admin_key,
        &format!("/users/{dana}/password_reset"),
        json!({}),
    );
    assert_eq!(issued.status, 200, "{:?}", issued.body);
    let url = issued.body["reset_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/password_reset?token=", server.url)),
        "{url}"
    );
    let token = url.split("token=").nth(1).unwrap().to_owned();
    let reset = |new: &str| {
        reply(
            server
                .agent()
                .post(&format!("{}/password_reset", server.url))
                .send_json(json!({"token": token, "new_password": new})),
        )
    };
    // A weak password is refused and the link still works.
    assert_error(&reset("password1234"), 400, 105);
    let new = "granite meadow violin 77 harbor";
    assert_eq!(reset(new).status, 204);
    // Once only; every session of the user ended; the new password logs in.
    let again = reset("another long passphrase 9 quietly");
    assert_error(&again, 400, 105);
    assert_eq!(again.body["details"]["field"], "token");
    assert_error(
        &with_cookie(&server, "GET", "/me", &session, None),
        401,
        100,
    );
    assert_error(
        &login(
            &server,
            json!({"email": "dana@example.com", "password": PASSWORD}),
        ),
        401,
        100,
    );
    assert_eq!(
        login(
            &server,
            json!({"email": "dana@example.com", "password": new})
        )
        .status,
        200
    );
    let (_, log) = server.stop();
    assert!(!log.contains(&token), "the log holds the reset token");
}

#[test]
fn a_password_reset_link_expires_after_an_hour() {
    let fx = Fixture::new();
    let admin = fx.admin().clone();
    let (secret, _) = fx
        .lk
        .issue_password_reset(fx.admin_actor(), fx.account(), admin.id)
        .unwrap();
    fx.clock.advance(60 * 60 * 1000);
    let late = fx.lk.reset_password(secret.expose(), PASSWORD);
    assert!(
        matches!(
            &late,
            Err(AppError::Domain(latchkey::domain::DomainError::Invalid {
                field: "token",
                ..
            }))
        ),
        "{late:?}"
    );
}

#[test]
fn a_member_of_several_accounts_picks_one_to_log_in_to() {
    let fx = Fixture::new();
    let (user, _) = fx.member("multi@example.com", Default::default());
    fx.lk
        .change_password(fx.me(user.id), None, PASSWORD)
        .unwrap();
    let (globex, _) = fx.also_member_elsewhere("multi@example.com");
    let unnamed = fx.lk.login("multi@example.com", PASSWORD, None, None, None);
    let Err(AppError::ChooseAccount(accounts)) = unnamed else {
        panic!("expected a choice, got {unnamed:?}");
    };
    assert_eq!(accounts.len(), 2);
    assert!(accounts.contains(&globex) && accounts.contains(&fx.account()));
    let chosen = fx
        .lk
        .login("multi@example.com", PASSWORD, None, Some(globex), None)
        .unwrap();
    assert_eq!(chosen.session.account, globex);
    // A session belongs to the account it was opened in.
    let session = fx.lk.session(chosen.secret.expose()).unwrap();
    assert_eq!(session.account, globex);
}

/// The audit's finding: the brute-force counters lived in memory, so a restart reset
/// them. Now they are written (coalesced, once a second) and come back after a restart,
/// even one by SIGKILL: a locked-out email stays locked, and other emails do not.
#[test]
fn a_lockout_survives_a_restart_even_a_kill() {
    let server = start_server();
    admin_password(&server);
    let email = admin_email(&server);
    for _ in 0..5 {
        assert_error(
            &login(&server, json!({"email": email, "password": "nope nope"})),
            401,
            100,
        );
    }
    assert_error(
        &login(&server, json!({"email": email, "password": PASSWORD})),
        429,
        117,
    );
    // Past one flush, then no chance to write anything more.
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    server.signal("KILL");
    let known = (
        server.admin_key.clone(),
        server.account_id.clone(),
        server.admin_id.clone(),
    );
    let dir = std::sync::Arc::clone(&server.dir);
    drop(server);
    let again = crate::api::start_in(dir, &crate::support::policies_dir(), Some(known));
    let locked = login(&again, json!({"email": email, "password": PASSWORD}));
    assert_error(&locked, 429, 117);
    let retry: u64 = header(&locked, "retry-after").unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry), "{retry}");
    // The lockout is this email's only: another user still logs in.
    let (other, _) = again.member_with_key("second@example.com", json!({"admin": false}));
    let set = again.post(
        &again.admin_key,
        &format!("/users/{other}/password_reset"),
        json!({}),
    );
    assert_eq!(set.status, 200, "{:?}", set.body);
    let token = set.body["reset_url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_owned();
    let reset = reply(
        again
            .agent()
            .post(&format!("{}/password_reset", again.url))
            .send_json(json!({"token": token, "new_password": PASSWORD})),
    );
    assert_eq!(reset.status, 204, "{:?}", reset.body);
    let other_login = login(
        &again,
        json!({"email": "second@example.com", "password": PASSWORD}),
    );
    assert_eq!(other_login.status, 200, "{:?}", other_login.body);
}

pub fn rotate(server: &Server) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["key", "rotate", "--data-dir"])
        .arg(server.dir.path().join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `latchkey key rotate`: a new key version from then on, and everything made under the
/// old one keeps working (API keys, sessions, recovery codes), the TOTP seed re-sealed
/// under the new key; across a restart too. The data directory then needs every version:
/// the old 32-byte key alone is refused.
#[test]
fn a_rotated_server_key_keeps_old_material_working() {
    let server = start_server();
    admin_password(&server);
    let email = admin_email(&server);
    let key = server.admin_key.clone();
    let seed = enroll(&server, None, &key);
    let confirmed_at = unix_now();
    let confirmed = server.post(
        &key,
        "/me/mfa/totp/confirm",
        json!({"code": totp_at(&seed, confirmed_at)}),
    );
    assert_eq!(confirmed.status, 200, "{:?}", confirmed.body);
    let recovery = confirmed.body["recovery_codes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let session = cookie_of(&login(
        &server,
        json!({"email": email, "password": PASSWORD, "recovery_code": recovery}),
    ));
    let recovery = confirmed.body["recovery_codes"][1]
        .as_str()
        .unwrap()
        .to_owned();
    let data = server.dir.path().join("data");
    let old_key = std::fs::read(data.join("server.key")).unwrap();
    assert_eq!(old_key.len(), 32);
    let scim_token = server
        .post(&key, "/scim_tokens", json!({"description": "before"}))
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let rotated = rotate(&server);
    assert_eq!(rotated["ok"], true, "{rotated}");
    assert_eq!(rotated["version"], 2);
    assert_eq!(rotated["versions"], json!([1, 2]));
    assert_eq!(rotated["resealed_totp_seeds"], 1);
    let file = std::fs::read_to_string(data.join("server.key")).unwrap();
    assert!(
        file.starts_with("latchkey-keyring v1\n1 "),
        "{}",
        file.len()
    );
    assert_eq!(file.lines().count(), 3);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("server.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let check_all = |server: &Server, new_key: &str| {
        // Made before the rotation: the API key, the session, a SCIM token, a
        // recovery code.
        assert_eq!(server.get(&key, "/me").status, 200);
        let scim = reply(
            server
                .agent()
                .get(&format!("{}/scim/v2/ServiceProviderConfig", server.url))
                .header("Authorization", &format!("Bearer {scim_token}"))
                .call(),
        );
        assert_eq!(scim.status, 200, "{:?}", scim.body);
        assert_eq!(
            with_cookie(server, "GET", "/me", &session, None).status,
            200
        );
        // Made after: a key under the new version.
        assert_eq!(server.get(new_key, "/me").status, 200);
        let verified = server.post(&key, "/verify", json!({"token": new_key}));
        assert_eq!(verified.body["valid"], true);
    };
    let made = server.post(&key, "/api_keys", json!({"description": "after"}));
    let new_key = made.body["token"].as_str().unwrap().to_owned();
    check_all(&server, &new_key);
    // The re-sealed TOTP seed opens under the new key: a fresh code logs in.
    let code = totp_at(&seed, confirmed_at + 30);
    let ok = login(
        &server,
        json!({"email": email, "password": PASSWORD, "totp_code": code}),
    );
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let rescue = json!({"email": email, "password": PASSWORD, "recovery_code": recovery});
    assert_eq!(login(&server, rescue).status, 200);

    let known = (
        key.clone(),
        server.account_id.clone(),
        server.admin_id.clone(),
    );
    let dir = std::sync::Arc::clone(&server.dir);
    let (status, _) = server.stop();
    assert!(status.success());
    // The old key alone does not open the database any more.
    std::fs::write(data.join("server.key.rotated"), &file).unwrap();
    std::fs::write(data.join("server.key"), &old_key).unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["verify", "--data-dir"])
        .arg(&data)
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("lacks one of its versions"));
    std::fs::rename(data.join("server.key.rotated"), data.join("server.key")).unwrap();
    let again = crate::api::start_in(dir, &crate::support::policies_dir(), Some(known));
    check_all(&again, &new_key);
}

/// The seed in an `otpauth://` URI.
fn seed_of(uri: &str) -> Vec<u8> {
    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap();
    base32_decode(secret)
}

#[test]
fn a_login_in_steps_asks_for_the_second_factor_and_the_account_with_a_sealed_ticket() {
    use latchkey::app::{LoginStep, SecondFactor};
    use latchkey::domain::user::Roles;
    const PASSWORD: &str = "copper kettle orbit lantern";
    let fx = Fixture::new();
    let (tess, _) = fx.member("tess@example.com", Roles::default());
    let me = fx.me(tess.id);
    fx.lk.change_password(me, None, PASSWORD).unwrap();
    use latchkey::domain::time::Clock;
    let now_unix = || u64::try_from(fx.clock.now().as_millis() / 1000).unwrap();

    // Without a second factor, one step.
    let step = fx
        .lk
        .start_login("tess@example.com", PASSWORD, None, None)
        .unwrap();
    assert!(matches!(step, LoginStep::Done(_)), "{step:?}");
    assert!(matches!(
        fx.lk
            .start_login("tess@example.com", "wrong horse battery", None, None),
        Err(AppError::Unauthenticated(_))
    ));

    // With TOTP: the password gives a ticket, the ticket and a code a session.
    let enrolled = fx.lk.enroll_totp(me).unwrap();
    let seed = seed_of(enrolled.otpauth_uri.expose());
    fx.lk.confirm_totp(me, &totp_at(&seed, now_unix())).unwrap();
    fx.clock.advance(30_000);
    let LoginStep::SecondFactor(ticket) = fx
        .lk
        .start_login("tess@example.com", PASSWORD, None, None)
        .unwrap()
    else {
        panic!("a second factor is asked for");
    };
    assert!(!ticket.0.contains("tess"), "the ticket is sealed");
    let (state, events) = fx.state();
    let wrong = fx
        .lk
        .resume_login(&ticket.0, Some(SecondFactor::Code("000000")), None, None);
    assert!(
        matches!(wrong, Err(AppError::Unauthenticated(_))),
        "{wrong:?}"
    );
    assert_ne!(
        fx.state(),
        (state, events),
        "a wrong code is a recorded failure"
    );
    let code = totp_at(&seed, now_unix());
    let LoginStep::Done(done) = fx
        .lk
        .resume_login(&ticket.0, Some(SecondFactor::Code(&code)), None, None)
        .unwrap()
    else {
        panic!("signed in");
    };
    assert_eq!(done.session.user, tess.id);
    assert!(done.session.mfa_verified);

    // A damaged ticket, and one five minutes old, are refused and say to start again.
    let mut damaged = ticket.0.clone();
    damaged.replace_range(..1, if damaged.starts_with('A') { "B" } else { "A" });
    fx.clock.advance(30_000);
    let code = totp_at(&seed, now_unix());
    for bad in [damaged.as_str(), "", "not a ticket"] {
        let refused = fx
            .lk
            .resume_login(bad, Some(SecondFactor::Code(&code)), None, None);
        assert!(
            matches!(&refused, Err(AppError::Unauthenticated(why)) if why.contains("start again")),
            "{refused:?}"
        );
    }
    fx.clock.advance(5 * 60 * 1000);
    let code = totp_at(&seed, now_unix());
    let late = fx
        .lk
        .resume_login(&ticket.0, Some(SecondFactor::Code(&code)), None, None);
    assert!(
        matches!(late, Err(AppError::Unauthenticated(_))),
        "{late:?}"
    );

    // A member of two accounts picks one (here with no second factor: a new user).
    let (casey, _) = fx.member("casey@example.com", Roles::default());
    fx.lk
        .change_password(fx.me(casey.id), None, PASSWORD)
        .unwrap();
    let (globex, _) = fx.also_member_elsewhere("casey@example.com");
    let LoginStep::ChooseAccount(ticket, accounts) = fx
        .lk
        .start_login("casey@example.com", PASSWORD, None, None)
        .unwrap()
    else {
        panic!("an account is asked for");
    };
    assert!(accounts.contains(&globex) && accounts.contains(&fx.account()));
    let elsewhere = latchkey::domain::id::AccountId(7);
    assert!(matches!(
        fx.lk.resume_login(&ticket.0, None, Some(elsewhere), None),
        Err(AppError::Forbidden { .. })
    ));
    let LoginStep::Done(done) = fx
        .lk
        .resume_login(&ticket.0, None, Some(globex), None)
        .unwrap()
    else {
        panic!("signed in to globex");
    };
    assert_eq!(
        (done.session.user, done.session.account),
        (casey.id, globex)
    );
    // A ticket is its user's: tess's cannot sign casey in, nor the other way round.
    assert_ne!(done.session.user, tess.id);
}

#[test]
fn a_session_unused_for_thirty_minutes_ends_and_use_keeps_one_alive() {
    let (fx, admin) = fixture_with_admin_password();
    let email = admin.email.as_str();
    let busy = fx.lk.login(email, PASSWORD, None, None, None).unwrap();
    let idle = fx.lk.login(email, PASSWORD, None, None, None).unwrap();
    let minute = 60 * 1000;
    for _ in 0..4 {
        // Used every 29 minutes: alive for two hours.
        fx.clock.advance(29 * minute);
        fx.lk.session(busy.secret.expose()).unwrap();
    }
    match fx.lk.session(idle.secret.expose()) {
        Err(AppError::Unauthenticated(why)) => assert!(why.contains("without use"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Ended for good: it is gone from the store, not only refused once.
    assert!(matches!(
        fx.lk.session(idle.secret.expose()),
        Err(AppError::Unauthenticated(_))
    ));
    assert_eq!(fx.lk.sessions_of(admin.id).unwrap().len(), 1);
    fx.clock.advance(30 * minute);
    assert!(fx.lk.session(busy.secret.expose()).is_err());
}
