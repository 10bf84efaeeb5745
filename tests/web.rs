//! The dashboard through the real server over HTTPS, as a browser speaks to it (forms,
//! cookies, redirects by hand): sign-in in steps, the double-submit token and the origin
//! check on every post, the headers of every page. (Chromium drives it too: see
//! tests/browser once it lands.)

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::api::{Server, start_server};

pub const PASSWORD: &str = "copper kettle orbit lantern";

/// A browser of one person: its cookies, no redirects followed.
pub struct Browser {
    pub agent: Agent,
    pub base: String,
    pub cookies: BTreeMap<String, String>,
    /// The cookies set `SameSite=None`: the only ones a cross-site post carries.
    pub cross_site: BTreeSet<String>,
}

/// One answer: status, `Location`, every header, the page.
pub struct Page {
    pub status: u16,
    pub location: String,
    pub headers: Vec<(String, String)>,
    pub html: String,
}

impl Page {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }

    /// The value of the first `<input name=...>` (or `id=...`) in the page.
    pub fn field(&self, name: &str) -> String {
        let at = self
            .html
            .find(&format!("name=\"{name}\""))
            .or_else(|| self.html.find(&format!("id=\"{name}\"")))
            .unwrap_or_else(|| panic!("no field {name} in {}", self.html));
        let rest = &self.html[at..];
        let value = rest.find("value=\"").unwrap() + "value=\"".len();
        rest[value..rest[value..].find('"').unwrap() + value].to_owned()
    }
}

impl Page {
    /// Where a page that sends the browser on (to an identity provider) leads: its
    /// `a[data-autofollow]`, which the script follows (asserted to be there).
    pub fn onward(&self) -> String {
        assert_eq!(self.status, 200, "{}", self.html);
        let at = self
            .html
            .find("data-autofollow")
            .unwrap_or_else(|| panic!("no onward link in {}", self.html));
        let tag = &self.html[self.html[..at].rfind('<').unwrap()..];
        let href = tag.find("href=\"").unwrap() + "href=\"".len();
        tag[href..href + tag[href..].find('"').unwrap()].replace("&amp;", "&")
    }
}

impl Browser {
    pub fn new(server: &Server) -> Browser {
        let pem = std::fs::read(&server.cert).unwrap();
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::Specific(std::sync::Arc::new(vec![
                Certificate::from_pem(&pem).unwrap(),
            ])))
            .build();
        let agent = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Browser {
            agent,
            base: server.url.clone(),
            cookies: BTreeMap::new(),
            cross_site: BTreeSet::new(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn take(&mut self, mut response: ureq::http::Response<ureq::Body>) -> Page {
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        for (name, value) in &headers {
            if name == "set-cookie" {
                let pair = value.split(';').next().unwrap();
                let (k, v) = pair.split_once('=').unwrap();
                if value.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
                if value.contains("SameSite=None") {
                    self.cross_site.insert(k.to_owned());
                } else {
                    self.cross_site.remove(k);
                }
            }
        }
        let location = headers
            .iter()
            .find(|(k, _)| k == "location")
            .map_or(String::new(), |(_, v)| v.clone());
        Page {
            status: response.status().as_u16(),
            location,
            headers,
            html: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    pub fn get(&mut self, path: &str) -> Page {
        let response = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Accept", "text/html")
            .header("Cookie", self.cookie_header())
            .call()
            .unwrap();
        self.take(response)
    }

    /// Post a form as a page of `origin` would (`None`: without an `Origin`).
    pub fn post_from(&mut self, origin: Option<&str>, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Cookie", self.cookie_header());
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let response = request.send(body.as_str()).unwrap();
        self.take(response)
    }

    /// Post a form as a page of another site `origin` would: only the cookies set
    /// `SameSite=None` go with it (a Strict or Lax cookie stays home).
    pub fn post_cross_site(&mut self, origin: &str, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let cookies = self
            .cookies
            .iter()
            .filter(|(k, _)| self.cross_site.contains(*k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Cookie", cookies)
            .header("Origin", origin)
            .send(body.as_str())
            .unwrap();
        self.take(response)
    }

    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let origin = self.base.clone();
        self.post_from(Some(&origin), path, fields)
    }

    /// This browser, signed in as `email` with `password` (asserted to succeed).
    pub fn signed_in(mut self, email: &str, password: &str) -> Browser {
        let csrf = self.get("/ui/sign-in").field("csrf");
        let done = self.post(
            "/ui/sign-in",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        );
        assert_eq!(
            (done.status, done.location.as_str()),
            (303, "/ui/"),
            "{}",
            done.html
        );
        self
    }

    /// The double-submit token this browser holds.
    pub fn csrf(&self) -> String {
        self.cookies["latchkey_csrf"].clone()
    }
}

/// A member `email` with a password, made through the API; its API key.
pub fn member_with_password(server: &Server, email: &str) -> String {
    member_with_roles_and_password(server, email, json!({})).1
}

/// A member `email` with `roles` and a password ([`PASSWORD`]), made through the API;
/// its id and API key.
pub fn member_with_roles_and_password(
    server: &Server,
    email: &str,
    roles: serde_json::Value,
) -> (String, String) {
    let (id, key) = server.member_with_key(email, roles);
    let set = server.post(&key, "/me/password", json!({"new_password": PASSWORD}));
    assert_eq!(set.status, 204, "{:?}", set.body);
    (id, key)
}

#[test]
fn a_member_signs_in_and_out_through_forms_that_only_this_origin_can_post() {
    let server = start_server();
    member_with_password(&server, "tess@example.com");
    let mut browser = Browser::new(&server);

    // A browser asking for / is sent to the dashboard, which asks it to sign in.
    let root = browser.get("/");
    assert_eq!((root.status, root.location.as_str()), (303, "/ui/"));
    let home = browser.get("/ui/");
    assert_eq!((home.status, home.location.as_str()), (303, "/ui/sign-in"));
    let form = browser.get("/ui/sign-in");
    assert_eq!(form.status, 200);
    for (name, must) in [
        ("content-security-policy", "default-src 'none'"),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
        ("content-type", "text/html"),
    ] {
        assert!(
            form.header(name).contains(must),
            "{name}: {}",
            form.header(name)
        );
    }
    let csrf = form.field("csrf");
    assert!(csrf.len() >= 32, "{csrf}");
    assert_eq!(
        form.html.matches("<script").count(),
        form.html
            .matches("<script src=\"/ui/static/app.js\"")
            .count(),
        "no inline script: only the one embedded file"
    );

    // Forged posts change nothing: another origin, no origin, no or a wrong token.
    let fields = |token: &str| {
        [
            ("csrf", token.to_owned()),
            ("email", "tess@example.com".to_owned()),
            ("password", PASSWORD.to_owned()),
        ]
    };
    let head = server.get(&server.admin_key, "/events?limit=1").body["events"][0]["id"].clone();
    for (origin, token) in [
        (Some("https://evil.example"), csrf.as_str()),
        (None, csrf.as_str()),
        (Some(server.url.as_str()), ""),
        (Some(server.url.as_str()), "not-the-token"),
    ] {
        let f = fields(token);
        let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = browser.post_from(origin, "/ui/sign-in", &pairs);
        assert_eq!(refused.status, 403, "{origin:?} {token:?}");
        // A form refused unread closes its connection, and says so.
        if token == csrf.as_str() && origin != Some(server.url.as_str()) {
            assert_eq!(refused.header("connection"), "close", "{origin:?}");
        }
        assert!(
            refused
                .html
                .contains("did not come from a page of this dashboard")
        );
        assert!(!browser.cookies.contains_key("latchkey_session"));
    }
    assert_eq!(
        server.get(&server.admin_key, "/events?limit=1").body["events"][0]["id"],
        head,
        "no login was attempted"
    );

    // A hostile body: far past the API's body limit, refused unread.
    let huge = "x".repeat(2 * 1024 * 1024);
    let oversized = browser.post(
        "/ui/sign-in",
        &[
            ("csrf", &csrf),
            ("email", "tess@example.com"),
            ("password", &huge),
        ],
    );
    assert_eq!(oversized.status, 400);
    assert!(!browser.cookies.contains_key("latchkey_session"));

    // A wrong password: the form again, with the reason and the email kept.
    let wrong = browser.post(
        "/ui/sign-in",
        &[
            ("csrf", &csrf),
            ("email", "tess@example.com"),
            ("password", "not it at all"),
        ],
    );
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.html.contains("the email or password is not correct"),
        "{}",
        wrong.html
    );
    assert!(wrong.html.contains("value=\"tess@example.com\""));
    assert!(
        !wrong.html.contains("not it at all"),
        "a password is never sent back"
    );

    // The right one: a session, and home says who.
    let signed_in = browser.post(
        "/ui/sign-in",
        &[
            ("csrf", &csrf),
            ("email", "tess@example.com"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(
        (signed_in.status, signed_in.location.as_str()),
        (303, "/ui/")
    );
    assert!(browser.cookies.contains_key("latchkey_session"));
    let home = browser.get("/ui/");
    assert_eq!(home.status, 200);
    assert!(home.html.contains("tess@example.com"), "{}", home.html);
    // The same cookie is the API's session too.
    let me = browser
        .agent
        .get(format!("{}/me", server.url))
        .header("Cookie", browser.cookie_header())
        .call()
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);

    // Signing out needs the token too, and ends the session on the server.
    let forged = browser.post_from(
        Some("https://evil.example"),
        "/ui/sign-out",
        &[("csrf", &csrf)],
    );
    assert_eq!(forged.status, 403);
    assert_eq!(browser.get("/ui/").status, 200, "still signed in");
    let session = browser.cookies["latchkey_session"].clone();
    let out = browser.post("/ui/sign-out", &[("csrf", &csrf)]);
    assert_eq!((out.status, out.location.as_str()), (303, "/ui/sign-in"));
    assert!(!browser.cookies.contains_key("latchkey_session"));
    let replayed = browser
        .agent
        .get(format!("{}/me", server.url))
        .header("Cookie", format!("latchkey_session={session}"))
        .call()
        .unwrap();
    assert_eq!(
        replayed.status().as_u16(),
        401,
        "the session is over on the server"
    );
}

#[test]
fn a_member_with_totp_gives_its_code_on_a_second_page_and_never_its_password_again() {
    let server = start_server();
    let key = member_with_password(&server, "tess@example.com");
    // TOTP enrolled through the API, with tess's own key.
    let seed = crate::login::enroll(&server, None, &key);
    let first = crate::login::totp_at(&seed, crate::login::unix_now() - 30);
    let confirmed = server.post(&key, "/me/mfa/totp/confirm", json!({"code": first}));
    assert_eq!(confirmed.status, 200, "{:?}", confirmed.body);
    let mut browser = Browser::new(&server);
    let csrf = browser.get("/ui/sign-in").field("csrf");
    let step = browser.post(
        "/ui/sign-in",
        &[
            ("csrf", &csrf),
            ("email", "tess@example.com"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(
        (step.status, step.location.as_str()),
        (303, "/ui/sign-in/code")
    );
    assert!(!browser.cookies.contains_key("latchkey_session"));
    let ticket = browser.cookies["latchkey_login"].clone();
    assert!(!ticket.contains("tess"), "the ticket is sealed");
    let page = browser.get("/ui/sign-in/code");
    assert_eq!(page.status, 200);
    assert!(!page.html.contains(PASSWORD));

    let wrong = browser.post("/ui/sign-in/code", &[("csrf", &csrf), ("code", "000000")]);
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.html.contains("second factor is not correct"),
        "{}",
        wrong.html
    );
    // The code, computed here from the seed (RFC 6238), signs in.
    std::thread::sleep(Duration::from_millis(50));
    let code = crate::login::totp_at(&seed, crate::login::unix_now());
    let done = browser.post("/ui/sign-in/code", &[("csrf", &csrf), ("code", &code)]);
    assert_eq!(
        (done.status, done.location.as_str()),
        (303, "/ui/"),
        "{}",
        done.html
    );
    assert!(browser.cookies.contains_key("latchkey_session"));
    assert!(
        !browser.cookies.contains_key("latchkey_login"),
        "the ticket is spent"
    );
    assert!(
        browser
            .get("/ui/")
            .html
            .contains("Two-factor authentication")
    );

    // Without a ticket the code page sends to the start; a forged ticket stops there.
    let mut other = Browser::new(&server);
    assert_eq!(other.get("/ui/sign-in/code").location, "/ui/sign-in");
    let csrf = other.get("/ui/sign-in").field("csrf");
    other.cookies.insert("latchkey_login".into(), "AAAA".into());
    let forged = other.post("/ui/sign-in/code", &[("csrf", &csrf), ("code", &code)]);
    assert_eq!(forged.status, 401);
    assert!(forged.html.contains("start again"), "{}", forged.html);
    assert!(!other.cookies.contains_key("latchkey_session"));
}

#[test]
fn the_first_administrator_sets_its_password_from_the_setup_link_once_and_signs_in() {
    let server = start_server();
    let setup = server
        .setup_url
        .clone()
        .expect("a bootstrap prints its setup link");
    let path = setup.strip_prefix(&server.url).unwrap().to_owned();
    assert!(path.starts_with("/password_reset?token="), "{setup}");
    let mut browser = Browser::new(&server);

    // The link's secret leaves the URL at once, for a cookie of the reset page.
    let opened = browser.get(&path);
    assert_eq!(
        (opened.status, opened.location.as_str()),
        (303, "/ui/reset-password")
    );
    let link = browser.cookies["latchkey_link"].clone();
    assert!(path.ends_with(&link));
    let form = browser.get("/ui/reset-password");
    assert_eq!(form.status, 200);
    assert!(!form.html.contains(&link), "the secret is never in a page");
    let csrf = form.field("csrf");

    // Refusals keep the link: different passwords, a weak one.
    let differ = browser.post(
        "/ui/reset-password",
        &[
            ("csrf", &csrf),
            ("new_password", PASSWORD),
            ("confirm_password", "something else entirely"),
        ],
    );
    assert_eq!(differ.status, 400);
    assert!(differ.html.contains("not the same"));
    let weak = browser.post(
        "/ui/reset-password",
        &[
            ("csrf", &csrf),
            ("new_password", "password1234"),
            ("confirm_password", "password1234"),
        ],
    );
    assert_eq!(weak.status, 400);
    assert!(browser.cookies.contains_key("latchkey_link"));

    let set = browser.post(
        "/ui/reset-password",
        &[
            ("csrf", &csrf),
            ("new_password", PASSWORD),
            ("confirm_password", PASSWORD),
        ],
    );
    assert_eq!(set.status, 200, "{}", set.html);
    assert!(set.html.contains("Your password is set"));
    assert!(!browser.cookies.contains_key("latchkey_link"));

    // Once: the same link again sets nothing.
    let mut again = Browser::new(&server);
    again.get(&path);
    let csrf2 = again.get("/ui/reset-password").field("csrf");
    let reused = again.post(
        "/ui/reset-password",
        &[
            ("csrf", &csrf2),
            ("new_password", "another long passphrase here"),
            ("confirm_password", "another long passphrase here"),
        ],
    );
    assert_eq!(reused.status, 400, "{}", reused.html);

    // And the administrator signs in with the password it chose.
    let email = crate::login::admin_email(&server);
    let signed_in = browser.post(
        "/ui/sign-in",
        &[("csrf", &csrf), ("email", &email), ("password", PASSWORD)],
    );
    assert_eq!(
        (signed_in.status, signed_in.location.as_str()),
        (303, "/ui/")
    );
    assert!(browser.get("/ui/").html.contains("Administrator"));
}
