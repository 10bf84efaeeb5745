//! Invitations through the real binary over TLS (and, for expiry and for users who exist
//! elsewhere, at library level).

use serde_json::{Value, json};

use crate::api::{Reply, Server, assert_error, reply, start_server};
use crate::support::Fixture;
use latchkey::app::{Acceptor, AppError};
use latchkey::domain::user::Roles;

const PASSWORD: &str = "copper kettle orbit 42 lantern";

fn accept(server: &Server, accept_url: &str, body: Value, cookie: Option<&str>) -> Reply {
    let (path, query) = accept_url.split_once('?').unwrap();
    let token = query.strip_prefix("token=").unwrap();
    let mut body = body;
    body["token"] = json!(token);
    let request = server.agent().post(path);
    reply(match cookie {
        Some(cookie) => request
            .header("Cookie", &format!("latchkey_session={cookie}"))
            .send_json(body),
        None => request.send_json(body),
    })
}

fn technician(server: &Server) -> String {
    let roles = server.get(&server.admin_key, "/roles");
    roles.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Technician")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_new_person_accepts_an_invitation_once_and_gets_what_it_grants() {
    let server = start_server();
    let key = &server.admin_key;
    let tenant = server.post(key, "/tenants", json!({"name": "Contoso"}));
    let tenant = tenant.body["id"].as_str().unwrap().to_owned();
    let made = server.post(
        key,
        "/invitations",
        json!({"email": "new@example.com", "roles": {"developer": "read_write"},
               "role_assignments": [{"role_id": technician(&server), "tenant_id": tenant}]}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    assert_eq!(made.body["state"], "pending");
    assert_eq!(made.body["roles"]["developer"], "read_write");
    let url = made.body["accept_url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/invitations/inv_", server.url)),
        "{url}"
    );
    let id = made.body["id"].as_str().unwrap().to_owned();
    // The outbox: an administrator reads the link again; the list does not carry it.
    let outbox = server.get(key, &format!("/invitations/{id}"));
    assert_eq!(outbox.body["accept_url"], json!(url));
    let pending = server.get(key, "/invitations?state=pending");
    assert_eq!(pending.body["invitations"][0]["id"], json!(id));
    assert!(pending.body["invitations"][0].get("accept_url").is_none());

    // A wrong token, or a weak password, changes nothing.
    let forged = url.replace("token=", "token=0");
    assert_error(
        &accept(
            &server,
            &forged,
            json!({"name": "N", "password": PASSWORD}),
            None,
        ),
        400,
        105,
    );
    let weak = accept(
        &server,
        &url,
        json!({"name": "N", "password": "password1234"}),
        None,
    );
    assert_error(&weak, 400, 105);
    assert_eq!(weak.body["details"]["field"], "password");

    let joined = accept(
        &server,
        &url,
        json!({"name": "Nia", "password": PASSWORD}),
        None,
    );
    assert_eq!(joined.status, 200, "{:?}", joined.body);
    assert_eq!(joined.body["email"], "new@example.com");
    assert_eq!(joined.body["roles"]["developer"], "read_write");
    let user = joined.body["id"].as_str().unwrap().to_owned();
    let login = reply(
        server
            .agent()
            .post(&format!("{}/login", server.url))
            .send_json(json!({"email": "new@example.com", "password": PASSWORD})),
    );
    assert_eq!(login.status, 200, "{:?}", login.body);
    let decision = server.post(
        key,
        "/authorize",
        json!({"principal": {"id": user}, "action": "computers.run_maintenance",
               "resource": {"type": "computer", "id": "c-1", "tenant_id": tenant}}),
    );
    assert_eq!(decision.body["decision"], "allow", "{:?}", decision.body);

    let again = accept(
        &server,
        &url,
        json!({"name": "Nia", "password": PASSWORD}),
        None,
    );
    assert_error(&again, 400, 105);
    assert_eq!(
        server.get(key, &format!("/invitations/{id}")).body["state"],
        "accepted"
    );
    let events = server.get(key, "/events?action=iam.invitations.accept");
    assert_eq!(events.body["events"][0]["object_id"], json!(id));
    let (_, log) = server.stop();
    let token = url.split("token=").nth(1).unwrap();
    assert!(!log.contains(token), "the log holds the invitation token");
}

#[test]
fn only_the_invited_email_accepts_and_revoked_invitations_are_refused() {
    let server = start_server();
    let key = &server.admin_key;
    let (_, dana_key) = server.member_with_key("dana@example.com", json!({}));
    let set = server.post(&dana_key, "/me/password", json!({"new_password": PASSWORD}));
    assert_eq!(set.status, 204);
    let login = reply(
        server
            .agent()
            .post(&format!("{}/login", server.url))
            .send_json(json!({"email": "dana@example.com", "password": PASSWORD})),
    );
    let cookie = login
        .headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .map(|(_, v)| {
            v.split(';')
                .next()
                .unwrap()
                .trim_start_matches("latchkey_session=")
                .to_owned()
        })
        .unwrap();
    let made = server.post(key, "/invitations", json!({"email": "erin@example.com"}));
    let url = made.body["accept_url"].as_str().unwrap().to_owned();
    // Dana is logged in, but the invitation is Erin's.
    let wrong = accept(&server, &url, json!({}), Some(&cookie));
    assert_error(&wrong, 403, 101);

    let id = made.body["id"].as_str().unwrap();
    assert_eq!(
        server.delete(key, &format!("/invitations/{id}")).status,
        204
    );
    let revoked = accept(
        &server,
        &url,
        json!({"name": "Erin", "password": PASSWORD}),
        None,
    );
    assert_error(&revoked, 400, 105);
    assert!(revoked.body["msg"].as_str().unwrap().contains("revoked"));
    assert_eq!(
        server.get(key, "/invitations?state=revoked").body["invitations"][0]["id"],
        json!(id)
    );
    // An existing member cannot be invited again.
    assert_error(
        &server.post(key, "/invitations", json!({"email": "dana@example.com"})),
        409,
        103,
    );
}

#[test]
fn an_inviter_grants_no_more_than_its_own_roles_and_only_administrators_invite_administrators() {
    let server = start_server();
    let (_, inviter) = server.member_with_key("i@example.com", json!({"team": "invite"}));
    let (_, manager) = server.member_with_key("m@example.com", json!({"team": "manager"}));
    let ok = server.post(&inviter, "/invitations", json!({"email": "a@example.com"}));
    assert_eq!(ok.status, 201, "{:?}", ok.body);
    assert!(ok.body["accept_url"].is_string());
    let above = server.post(
        &inviter,
        "/invitations",
        json!({"email": "b@example.com", "roles": {"developer": "read_write"}}),
    );
    assert_error(&above, 403, 101);
    assert_eq!(
        above.body["details"]["reason"],
        "team invite may not grant roles above its own"
    );
    let tenant_roles = server.post(
        &inviter,
        "/invitations",
        json!({"email": "c@example.com", "role_assignments": [{"role_id": technician(&server)}]}),
    );
    assert_error(&tenant_roles, 403, 101);
    for who in [&inviter, &manager] {
        let admin = server.post(
            who,
            "/invitations",
            json!({"email": "d@example.com", "roles": {"admin": true}}),
        );
        assert_error(&admin, 403, 101);
    }
    let by_manager = server.post(
        &manager,
        "/invitations",
        json!({"email": "e@example.com", "roles": {"developer": "read_write", "team": "manager"}}),
    );
    assert_eq!(by_manager.status, 201, "{:?}", by_manager.body);
    let by_admin = server.post(
        &server.admin_key,
        "/invitations",
        json!({"email": "f@example.com", "roles": {"admin": true}}),
    );
    assert_eq!(by_admin.status, 201, "{:?}", by_admin.body);
}

#[test]
fn an_existing_user_accepts_as_itself_and_an_expired_invitation_is_refused() {
    let fx = Fixture::new();
    fx.also_member_elsewhere("old@example.com");
    let invited = fx
        .lk
        .invite(
            fx.admin_actor(),
            fx.account(),
            "old@example.com",
            Roles::default(),
            vec![],
        )
        .unwrap();
    let token = invited.token.unwrap();
    let old = fx.lk.read().unwrap();
    let old = latchkey::store::Reads::user_by_email(
        &old,
        &latchkey::domain::user::Email::parse("old@example.com").unwrap(),
    )
    .unwrap()
    .unwrap();
    // A new-person acceptance for an email that has a user is refused: it must log in.
    let as_new = fx.lk.accept_invitation(
        invited.invitation.id,
        token.expose(),
        Acceptor::NewPerson {
            name: "Impostor",
            password: PASSWORD,
        },
    );
    assert!(
        matches!(as_new, Err(AppError::Unauthenticated(_))),
        "{as_new:?}"
    );
    // Made by another account's administrator, the user has not proven its email: it
    // accepts no invitation until it does, and the refusal changes nothing.
    let before = fx.state();
    let unproven = fx.lk.accept_invitation(
        invited.invitation.id,
        token.expose(),
        Acceptor::User(old.id),
    );
    assert!(
        matches!(
            unproven,
            Err(AppError::Domain(
                latchkey::domain::DomainError::EmailUnproven(_)
            ))
        ),
        "{unproven:?}"
    );
    assert_eq!(fx.state(), before);
    fx.prove_email(old.id);
    let joined = fx
        .lk
        .accept_invitation(
            invited.invitation.id,
            token.expose(),
            Acceptor::User(old.id),
        )
        .unwrap();
    assert_eq!(joined.member.user.id, old.id);

    let late = fx
        .lk
        .invite(
            fx.admin_actor(),
            fx.account(),
            "late@example.com",
            Roles::default(),
            vec![],
        )
        .unwrap();
    fx.clock.advance(7 * 24 * 60 * 60 * 1000);
    let refused = fx.lk.accept_invitation(
        late.invitation.id,
        late.token.unwrap().expose(),
        Acceptor::NewPerson {
            name: "Late",
            password: PASSWORD,
        },
    );
    assert!(
        matches!(&refused, Err(AppError::Domain(e)) if e.to_string().contains("expired")),
        "{refused:?}"
    );
}

#[test]
fn with_smtp_configured_the_invitation_is_mailed() {
    let (port, received) = crate::support::smtp_inbox();
    let url = format!("smtp://127.0.0.1:{port}");
    let server = crate::api::start_configured(
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &crate::support::policies_dir(),
        None,
        &[
            ("LATCHKEY_SMTP_URL", &url),
            ("LATCHKEY_MAIL_FROM", "Ops <ops@example.com>"),
        ],
    );
    let made = server.post(
        &server.admin_key,
        "/invitations",
        json!({"email": "mail@example.com"}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let link = made.body["accept_url"].as_str().unwrap();
    let message = received
        .recv_timeout(std::time::Duration::from_secs(20))
        .unwrap();
    assert!(message.contains("To: mail@example.com"), "{message}");
    assert!(message.contains("From: Ops <ops@example.com>"), "{message}");
    // The body may be wrapped by the transfer encoding; the token is in it either way.
    let token = link.split("token=").nth(1).unwrap();
    let unfolded = message.replace("=\r\n", "");
    assert!(unfolded.contains(token), "{message}");
}
