//! The dashboard in a real browser: tests/browser/console.mjs drives Debian's Chromium
//! with playwright-core against this server, checks every page it reaches with axe-core
//! and keeps a screenshot of each in `target/dashboard-screenshots/` (scripts/test
//! installs Chromium and the npm packages).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::login::{PASSWORD, admin_email, admin_password};
use crate::web::member_with_roles_and_password;

/// The most the whole browser run may take.
const LIMIT: Duration = Duration::from_secs(240);

#[test]
fn the_dashboard_works_in_chromium_and_every_page_passes_the_accessibility_check() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Chromium and tests/browser's npm packages: run scripts/test, which installs them"
    );
    let server = crate::sso::server();
    admin_password(&server);
    // An OpenID Connect provider (oidc-provider) the account signs people in through.
    let idp_dir = tempfile::tempdir().unwrap();
    let mut idp = crate::sso::Idp::start("oidc.mjs", idp_dir.path());
    let (_, provider) = crate::sso::provider(&server, &idp, "Corp IdP", json!({}));
    idp.configure(&json!({ "redirect_uris": [provider["redirect_uri"]] }));
    let set = server.patch(
        &server.admin_key,
        "/account",
        json!({"sso_mode": "mixed", "provisioning": "jit"}),
    );
    assert_eq!(set.status, 200, "{:?}", set.body);
    idp.next_person("sso-person", "sam@example.com", true, &["pwd"]);
    // A SAML provider (pysaml2) a member connects from its profile, on localhost: the
    // provider at 127.0.0.1 is then another site, so its answer is a real cross-site post.
    let mut saml_idp = crate::sso::Idp::start_with("python3", "saml_idp.py", idp_dir.path());
    let (_, sp) = crate::sso::saml_provider(&server, &saml_idp, "Corp SAML");
    let on_localhost =
        |url: &serde_json::Value| url.as_str().unwrap().replace("127.0.0.1", "localhost");
    saml_idp.configure(&json!({"sp_entity_id": on_localhost(&sp["entity_id"]), "acs_url": on_localhost(&sp["acs_url"])}));
    saml_idp.control(
        "/_test/user",
        &json!({"name_id": "sara-corp", "email": "sara@corp.example.com", "name": "Sara", "groups": []}),
    );
    // A group the identity provider pushed over SCIM (provisioning is SCIM for that
    // while, then Just-in-Time again), for the settings page's mapping editor.
    let scim_token = {
        let set = server.patch(
            &server.admin_key,
            "/account",
            json!({"provisioning": "scim"}),
        );
        assert_eq!(set.status, 200, "{:?}", set.body);
        let made = server.post(
            &server.admin_key,
            "/scim_tokens",
            json!({"description": "Okta"}),
        );
        made.body["token"].as_str().unwrap().to_owned()
    };
    let gus = crate::scim::scim(
        &server,
        &scim_token,
        "POST",
        "/Users",
        Some(json!({"userName": "gus@example.com", "emails": [{"value": "gus@example.com"}]})),
    );
    assert_eq!(gus.status, 201, "{:?}", gus.body);
    let gus = gus.body["id"].as_str().unwrap().to_owned();
    let group = crate::scim::scim(
        &server,
        &scim_token,
        "POST",
        "/Groups",
        Some(json!({"displayName": "Contoso technicians", "members": [{"value": gus}]})),
    );
    assert_eq!(group.status, 201, "{:?}", group.body);
    let jit = server.patch(
        &server.admin_key,
        "/account",
        json!({"provisioning": "jit"}),
    );
    assert_eq!(jit.status, 200, "{:?}", jit.body);
    member_with_roles_and_password(&server, "sara@example.com", json!({}));
    member_with_roles_and_password(
        &server,
        "reader@example.com",
        json!({"developer": "read_only", "team": "read_only"}),
    );
    let shots = root.join("target/dashboard-screenshots");
    // Only this run's pages: a screenshot left by an earlier run would pass for one.
    let _ = std::fs::remove_dir_all(&shots);
    let config = json!({
        "url": server.url,
        "shots": shots,
        "admin": {"email": admin_email(&server), "password": PASSWORD},
        "reader": {"email": "reader@example.com", "password": crate::web::PASSWORD},
        "sso": {"name": "Corp IdP", "email": "sam@example.com"},
        "saml": {"name": "Corp SAML", "email": "sara@example.com", "password": crate::web::PASSWORD},
    });
    let mut child = Command::new("node")
        .arg(browser_dir.join("console.mjs"))
        .current_dir(&browser_dir)
        .env("LATCHKEY_BROWSER", config.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("the browser run took more than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("pages checked by axe-core"), "{stdout}");
    // The person who signed in through the provider is a member, made Just-in-Time.
    let sam = server.get(&server.admin_key, "/users").body["users"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["email"] == "sam@example.com");
    assert!(sam, "signed in through the provider");
    // What the browser did is on the server too: the invited person is a member with a
    // role in a tenant, and the administrator has two-factor on.
    let users = server.get(&server.admin_key, "/users").body["users"].clone();
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["email"] == "nina@example.com"),
        "{users}"
    );
    assert_eq!(
        server.get(&server.admin_key, "/me").body["mfa_enrolled"],
        true
    );
    // The group mapped in the settings page: its member is a Technician in all tenants,
    // held through the group, and a team manager.
    let held = server.get(
        &server.admin_key,
        &format!("/role_assignments?principal_id={gus}"),
    );
    let held = &held.body["role_assignments"][0];
    assert_eq!(held["role"], "Technician", "{held}");
    assert_eq!(held["sources"][0]["type"], "scim_group", "{held}");
    let gus = server.get(&server.admin_key, &format!("/users/{gus}")).body;
    assert_eq!(gus["roles"]["team"], "manager", "{gus}");
}
