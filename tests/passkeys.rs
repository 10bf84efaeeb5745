//! Passkeys through the real server, answered by a software authenticator written here
//! from the WebAuthn spec (ES256 keys, `none` attestation, CBOR by hand), so every
//! forgery a browser would never send can be tried: a replayed answer, another origin
//! or relying party, no user verification, a cloned key's counter, another user's handle
//! or key, a ceremony of another kind. Chromium's own authenticator drives the happy
//! path in tests/browser.

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::{Server, start_server};
use crate::web::{Browser, PASSWORD, member_with_roles_and_password};

/// CBOR (RFC 8949), the little WebAuthn needs.
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(&'static str),
    Map(Vec<(Cbor, Cbor)>),
}

impl Cbor {
    fn head(out: &mut Vec<u8>, major: u8, value: u64) {
        let major = major << 5;
        match value {
            0..=23 => out.push(major | value as u8),
            24..=0xff => out.extend([major | 24, value as u8]),
            0x100..=0xffff => {
                out.push(major | 25);
                out.extend((value as u16).to_be_bytes());
            }
            _ => {
                out.push(major | 26);
                out.extend((value as u32).to_be_bytes());
            }
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Int(n) if *n >= 0 => Cbor::head(out, 0, *n as u64),
            Cbor::Int(n) => Cbor::head(out, 1, (-1 - *n) as u64),
            Cbor::Bytes(b) => {
                Cbor::head(out, 2, b.len() as u64);
                out.extend(b);
            }
            Cbor::Text(t) => {
                Cbor::head(out, 3, t.len() as u64);
                out.extend(t.as_bytes());
            }
            Cbor::Map(entries) => {
                Cbor::head(out, 5, entries.len() as u64);
                for (k, v) in entries {
                    k.encode(out);
                    v.encode(out);
                }
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

/// Flags of authenticator data: user present, user verified, attested credential data.
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

/// A software authenticator holding one ES256 credential.
#[derive(Clone)]
struct SoftKey {
    key: SigningKey,
    id: Vec<u8>,
    user_handle: Vec<u8>,
    counter: u32,
}

/// How an answer is bent, to try what a real browser or authenticator never sends.
#[derive(Clone)]
struct Bend {
    origin: String,
    rp_id: Option<String>,
    flags: u8,
    kind: Option<&'static str>,
}

impl Bend {
    fn honest(origin: &str) -> Bend {
        Bend {
            origin: origin.to_owned(),
            rp_id: None,
            flags: UP | UV,
            kind: None,
        }
    }
}

impl SoftKey {
    fn new() -> SoftKey {
        SoftKey {
            key: SigningKey::from_slice(&random::<32>()).unwrap(),
            id: random::<32>().to_vec(),
            user_handle: Vec::new(),
            counter: 0,
        }
    }

    fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    fn auth_data(rp_id: &str, flags: u8, counter: u32) -> Vec<u8> {
        let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
        data.push(flags);
        data.extend(counter.to_be_bytes());
        data
    }

    /// The answer to a creation ceremony's options, as `PublicKeyCredential` JSON.
    fn create(&mut self, options: &Value, bend: &Bend) -> String {
        let public_key = &options["publicKey"];
        let rp_id = bend
            .rp_id
            .clone()
            .unwrap_or_else(|| public_key["rp"]["id"].as_str().unwrap().to_owned());
        self.user_handle =
            Base64UrlUnpadded::decode_vec(public_key["user"]["id"].as_str().unwrap()).unwrap();
        let challenge = public_key["challenge"].as_str().unwrap();
        let point = self.key.verifying_key().to_encoded_point(false);
        let cose = Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),
            (Cbor::Int(3), Cbor::Int(-7)),
            (Cbor::Int(-1), Cbor::Int(1)),
            (Cbor::Int(-2), Cbor::Bytes(point.x().unwrap().to_vec())),
            (Cbor::Int(-3), Cbor::Bytes(point.y().unwrap().to_vec())),
        ]);
        let mut auth_data = SoftKey::auth_data(&rp_id, bend.flags | AT, self.counter);
        auth_data.extend([0u8; 16]);
        auth_data.extend((self.id.len() as u16).to_be_bytes());
        auth_data.extend(&self.id);
        auth_data.extend(cose.bytes());
        let attestation = Cbor::Map(vec![
            (Cbor::Text("fmt"), Cbor::Text("none")),
            (Cbor::Text("attStmt"), Cbor::Map(Vec::new())),
            (Cbor::Text("authData"), Cbor::Bytes(auth_data)),
        ]);
        let client_data = SoftKey::client_data(
            bend.kind.unwrap_or("webauthn.create"),
            challenge,
            &bend.origin,
        );
        json!({
            "id": b64(&self.id),
            "rawId": b64(&self.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation.bytes()),
            },
            "clientExtensionResults": {},
        })
        .to_string()
    }

    /// The answer to a request ceremony's options, signed with this key (the counter
    /// advanced first, as an authenticator does).
    fn get(&mut self, options: &Value, bend: &Bend) -> String {
        self.counter += 1;
        self.sign(options, bend, self.counter)
    }

    fn sign(&self, options: &Value, bend: &Bend, counter: u32) -> String {
        let public_key = &options["publicKey"];
        let rp_id = bend
            .rp_id
            .clone()
            .unwrap_or_else(|| public_key["rpId"].as_str().unwrap().to_owned());
        let client_data = SoftKey::client_data(
            bend.kind.unwrap_or("webauthn.get"),
            public_key["challenge"].as_str().unwrap(),
            &bend.origin,
        );
        let auth_data = SoftKey::auth_data(&rp_id, bend.flags, counter);
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        json!({
            "id": b64(&self.id),
            "rawId": b64(&self.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(signature.to_der().as_bytes()),
                "userHandle": b64(&self.user_handle),
            },
            "clientExtensionResults": {},
        })
        .to_string()
    }
}

/// A browser of the dashboard opened by host name (`https://localhost:PORT`), where
/// passkeys work (WebAuthn refuses IP addresses).
fn by_name(server: &Server) -> Browser {
    let mut browser = Browser::new(server);
    browser.base = server.url.replace("127.0.0.1", "localhost");
    browser
}

fn signed_in_by_name(server: &Server, email: &str) -> Browser {
    by_name(server).signed_in(email, PASSWORD)
}

fn csrf(browser: &Browser) -> String {
    browser.csrf()
}

/// A ceremony from `path`: its id and options.
fn ceremony(browser: &mut Browser, path: &str) -> (String, Value) {
    let token = csrf(browser);
    let answer = browser.post(path, &[("csrf", &token)]);
    assert_eq!(answer.status, 200, "{}", answer.html);
    assert_eq!(answer.header("content-type"), "application/json");
    let body: Value = serde_json::from_str(&answer.html).unwrap();
    (
        body["ceremony"].as_str().unwrap().to_owned(),
        body["options"].clone(),
    )
}

/// Add `key` as a passkey named `name`: the answer page.
fn add(
    browser: &mut Browser,
    key: &mut SoftKey,
    name: &str,
    bend: Option<Bend>,
) -> crate::web::Page {
    let (id, options) = ceremony(browser, "/ui/profile/passkey-options");
    let bend = bend.unwrap_or_else(|| Bend::honest(&browser.base));
    let credential = key.create(&options, &bend);
    let token = csrf(browser);
    browser.post(
        "/ui/profile/passkey-add",
        &[
            ("csrf", &token),
            ("ceremony", &id),
            ("credential", &credential),
            ("name", name),
        ],
    )
}

fn count(server: &Server, action: &str) -> usize {
    server
        .get(
            &server.admin_key,
            &format!("/events?action={action}&limit=100"),
        )
        .body["events"]
        .as_array()
        .unwrap()
        .len()
}

/// A passwordless sign-in answered by `answer` (given the options); the answer page.
fn sign_in_with(
    server: &Server,
    answer: impl FnOnce(&Value) -> String,
) -> (Browser, crate::web::Page) {
    let mut browser = by_name(server);
    browser.get("/ui/sign-in");
    let (id, options) = ceremony(&mut browser, "/ui/sign-in/passkey/options");
    assert!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "a passwordless ceremony names no credential: {options}"
    );
    let credential = answer(&options);
    let token = csrf(&browser);
    let page = browser.post(
        "/ui/sign-in/passkey",
        &[
            ("csrf", &token),
            ("ceremony", &id),
            ("credential", &credential),
        ],
    );
    (browser, page)
}

#[test]
fn a_passkey_signs_in_alone_and_every_forged_or_replayed_answer_is_refused() {
    let server = start_server();
    let (member, _) = member_with_roles_and_password(&server, "pia@example.com", json!({}));
    let mut browser = signed_in_by_name(&server, "pia@example.com");
    let origin = browser.base.clone();
    let mut key = SoftKey::new();

    // Refused registrations change nothing: another origin, another relying party, no
    // user verification, a `get` answer for a `create`, an unknown ceremony.
    for (bend, why) in [
        (
            Bend {
                origin: "https://evil.localhost".into(),
                ..Bend::honest(&origin)
            },
            "another origin",
        ),
        (
            Bend {
                rp_id: Some("evil.example".into()),
                ..Bend::honest(&origin)
            },
            "another relying party",
        ),
        (
            Bend {
                flags: UP,
                ..Bend::honest(&origin)
            },
            "no user verification",
        ),
        (
            Bend {
                kind: Some("webauthn.get"),
                ..Bend::honest(&origin)
            },
            "the wrong ceremony type",
        ),
    ] {
        let refused = add(&mut browser, &mut key, "bent", Some(bend));
        assert_eq!(refused.status, 401, "{why}: {}", refused.html);
        assert!(
            refused.html.contains("the passkey was not accepted"),
            "{why}"
        );
    }
    let token = csrf(&browser);
    let unknown = browser.post(
        "/ui/profile/passkey-add",
        &[
            ("csrf", &token),
            ("ceremony", "00000000000000000000000000000001"),
            ("credential", "{}"),
            ("name", "x"),
        ],
    );
    assert_eq!(unknown.status, 401);
    assert!(unknown.html.contains("expired"), "{}", unknown.html);
    assert_eq!(count(&server, "iam.passkeys.create"), 0);
    assert_eq!(
        server
            .get(&server.admin_key, &format!("/users/{member}"))
            .body["mfa_enrolled"],
        false
    );

    // A name with a bidirectional control is refused before the ceremony is used.
    let (id, options) = ceremony(&mut browser, "/ui/profile/passkey-options");
    let credential = key.create(&options, &Bend::honest(&origin));
    let token = csrf(&browser);
    let fields = |name| {
        [
            ("csrf", token.as_str()),
            ("ceremony", id.as_str()),
            ("credential", credential.as_str()),
            ("name", name),
        ]
    };
    let refused = browser.post("/ui/profile/passkey-add", &fields("laptop\u{202e}"));
    assert_eq!(refused.status, 400, "{}", refused.html);
    // The honest answer to the same ceremony is accepted: the passkey is added, and it
    // counts as the member's second factor.
    let good = fields("Pia's laptop");
    let added = browser.post("/ui/profile/passkey-add", &good);
    assert_eq!(
        (added.status, added.location.as_str()),
        (303, "/ui/profile?done=passkey-added"),
        "{}",
        added.html
    );
    assert!(browser.get("/ui/profile").html.contains("Pia's laptop"));
    assert_eq!(count(&server, "iam.passkeys.create"), 1);
    assert_eq!(
        server
            .get(&server.admin_key, &format!("/users/{member}"))
            .body["mfa_enrolled"],
        true
    );
    // The same answer again (its ceremony is used up) adds nothing.
    let replayed = browser.post("/ui/profile/passkey-add", &good);
    assert_eq!(replayed.status, 401, "{}", replayed.html);
    assert_eq!(count(&server, "iam.passkeys.create"), 1);

    // Another member cannot register the same credential (it is the first one's).
    member_with_roles_and_password(&server, "quinn@example.com", json!({}));
    let mut quinn = signed_in_by_name(&server, "quinn@example.com");
    let mut copied = key.clone();
    let taken = add(&mut quinn, &mut copied, "copied", None);
    assert_eq!(taken.status, 409, "{}", taken.html);
    assert_eq!(count(&server, "iam.passkeys.create"), 1);

    // Passwordless: the honest answer signs Pia in, with a session marked as having
    // passed two factors.
    let sessions = count(&server, "iam.sessions.create");
    let (mut signed, page) =
        sign_in_with(&server, |options| key.get(options, &Bend::honest(&origin)));
    assert_eq!(
        (page.status, page.location.as_str()),
        (303, "/ui/"),
        "{}",
        page.html
    );
    assert!(signed.get("/ui/").html.contains("pia@example.com"));
    assert_eq!(count(&server, "iam.sessions.create"), sessions + 1);

    // A replayed honest answer: its ceremony is used up.
    let mut browser_b = by_name(&server);
    browser_b.get("/ui/sign-in");
    let (id, options) = ceremony(&mut browser_b, "/ui/sign-in/passkey/options");
    let answer = key.get(&options, &Bend::honest(&origin));
    let token = csrf(&browser_b);
    let fields = [
        ("csrf", token.as_str()),
        ("ceremony", id.as_str()),
        ("credential", answer.as_str()),
    ];
    assert_eq!(browser_b.post("/ui/sign-in/passkey", &fields).status, 303);
    let mut browser_c = by_name(&server);
    browser_c.get("/ui/sign-in");
    let token_c = csrf(&browser_c);
    let again = browser_c.post(
        "/ui/sign-in/passkey",
        &[
            ("csrf", token_c.as_str()),
            ("ceremony", id.as_str()),
            ("credential", answer.as_str()),
        ],
    );
    assert_eq!(again.status, 401, "{}", again.html);
    assert_eq!(count(&server, "iam.sessions.create"), sessions + 2);

    // A registration ceremony is no sign-in ceremony.
    let (register_id, register_options) = ceremony(&mut browser, "/ui/profile/passkey-options");
    let mut fresh = SoftKey::new();
    fresh.create(&register_options, &Bend::honest(&origin));
    let crossed = browser_c.post(
        "/ui/sign-in/passkey",
        &[
            ("csrf", token_c.as_str()),
            ("ceremony", register_id.as_str()),
            ("credential", answer.as_str()),
        ],
    );
    assert_eq!(crossed.status, 401, "{}", crossed.html);
    assert_eq!(count(&server, "iam.sessions.create"), sessions + 2);

    // Every forgery is refused, and no session begins.
    let refusals = count(&server, "iam.sessions.refuse");
    let stolen_id = SoftKey {
        key: SigningKey::from_slice(&random::<32>()).unwrap(),
        ..key.clone()
    };
    let mut someone_else = key.clone();
    someone_else.user_handle = random::<16>().to_vec();
    let honest = Bend::honest(&origin);
    // (why, the key answering, how its answer is bent, its counter)
    let cases = [
        // Two that name no passkey of a user: counted against the address only.
        ("not JSON", None, honest.clone(), 0),
        (
            "another user's handle",
            Some(&someone_else),
            honest.clone(),
            64,
        ),
        // Pia's passkey, bent: each counts as her failed login.
        (
            "a signature by another key",
            Some(&stolen_id),
            honest.clone(),
            50,
        ),
        (
            "another origin",
            Some(&key),
            Bend {
                origin: "https://evil.localhost".into(),
                ..honest.clone()
            },
            60,
        ),
        (
            "another relying party",
            Some(&key),
            Bend {
                rp_id: Some("evil.example".into()),
                ..honest.clone()
            },
            61,
        ),
        (
            "no user verification",
            Some(&key),
            Bend {
                flags: UP,
                ..honest.clone()
            },
            62,
        ),
        (
            "a cloned key's counter (not above the last one seen)",
            Some(&key),
            honest.clone(),
            2,
        ),
    ];
    for (why, signer, bend, counter) in cases {
        let (mut refused_browser, page) = sign_in_with(&server, |options| match signer {
            Some(signer) => signer.sign(options, &bend, counter),
            None => "{not json".to_owned(),
        });
        assert_eq!(page.status, 401, "{why}: {}", page.html);
        assert!(
            page.html.contains("the passkey was not accepted"),
            "{why}: {}",
            page.html
        );
        assert!(
            !refused_browser.cookies.contains_key("latchkey_session"),
            "{why}"
        );
        assert_eq!(refused_browser.get("/ui/").location, "/ui/sign-in", "{why}");
    }
    assert_eq!(count(&server, "iam.sessions.refuse"), refusals + 5);
    // Five failures lock her sign-in for the window, by passkey as by password: a sixth
    // answer, honest or not, is refused before it is checked.
    let (_, locked) = sign_in_with(&server, |options| {
        key.clone().get(options, &Bend::honest(&origin))
    });
    assert_eq!(locked.status, 429, "{}", locked.html);
    assert!(
        locked.html.contains("too many failed attempts"),
        "{}",
        locked.html
    );
    assert_eq!(count(&server, "iam.sessions.create"), sessions + 2);

    // Opened by IP address, the dashboard offers no ceremony, and says why.
    let mut by_ip = Browser::new(&server);
    by_ip.get("/ui/sign-in");
    let token = by_ip.cookies["latchkey_csrf"].clone();
    let refused = by_ip.post("/ui/sign-in/passkey/options", &[("csrf", &token)]);
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(refused.html.contains("host name"), "{}", refused.html);
}

#[test]
fn a_passkey_is_the_second_factor_after_a_password_and_only_its_owner_removes_it() {
    let server = start_server();
    let (pia, _) = member_with_roles_and_password(&server, "pia@example.com", json!({}));
    member_with_roles_and_password(&server, "quinn@example.com", json!({}));
    let mut browser = signed_in_by_name(&server, "pia@example.com");
    let origin = browser.base.clone();
    let mut key = SoftKey::new();
    assert_eq!(add(&mut browser, &mut key, "Pia's key", None).status, 303);
    let mut quinn = signed_in_by_name(&server, "quinn@example.com");
    let mut quinn_key = SoftKey::new();
    assert_eq!(
        add(&mut quinn, &mut quinn_key, "Quinn's key", None).status,
        303
    );

    // The password is right: a passkey is asked for (Pia has no TOTP, so no code field).
    let second_step = |server: &Server| {
        let mut browser = by_name(server);
        let token = browser.get("/ui/sign-in").field("csrf");
        let step = browser.post(
            "/ui/sign-in",
            &[
                ("csrf", &token),
                ("email", "pia@example.com"),
                ("password", PASSWORD),
            ],
        );
        assert_eq!(step.location, "/ui/sign-in/code");
        browser
    };
    let mut pia_browser = second_step(&server);
    let code_page = pia_browser.get("/ui/sign-in/code");
    assert!(code_page.html.contains("Use a passkey"));
    assert!(
        !code_page.html.contains("name=\"code\""),
        "no TOTP to ask for"
    );
    let (id, options) = ceremony(&mut pia_browser, "/ui/sign-in/code/options");
    let allowed: Vec<&str> = options["publicKey"]["allowCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(allowed, [b64(&key.id)], "only Pia's passkeys are named");

    // Quinn's passkey (a valid signature, by the wrong user's key) does not pass Pia's
    // second step; it counts as her failed login.
    let refusals = count(&server, "iam.sessions.refuse");
    let mut quinn_answering = quinn_key.clone();
    let wrong = quinn_answering.get(&options, &Bend::honest(&origin));
    let token = csrf(&pia_browser);
    let refused = pia_browser.post(
        "/ui/sign-in/code",
        &[
            ("csrf", token.as_str()),
            ("ceremony", id.as_str()),
            ("credential", wrong.as_str()),
        ],
    );
    assert_eq!(refused.status, 401, "{}", refused.html);
    assert_eq!(count(&server, "iam.sessions.refuse"), refusals + 1);
    assert!(!pia_browser.cookies.contains_key("latchkey_session"));

    // Her own passkey passes (a new ceremony: the refused one is used up).
    let (id, options) = ceremony(&mut pia_browser, "/ui/sign-in/code/options");
    let answer = key.get(&options, &Bend::honest(&origin));
    let token = csrf(&pia_browser);
    let done = pia_browser.post(
        "/ui/sign-in/code",
        &[
            ("csrf", token.as_str()),
            ("ceremony", id.as_str()),
            ("credential", answer.as_str()),
        ],
    );
    assert_eq!(
        (done.status, done.location.as_str()),
        (303, "/ui/"),
        "{}",
        done.html
    );
    // The same answer cannot pass another login's second step.
    let mut replaying = second_step(&server);
    let token = csrf(&replaying);
    let replayed = replaying.post(
        "/ui/sign-in/code",
        &[
            ("csrf", token.as_str()),
            ("ceremony", id.as_str()),
            ("credential", answer.as_str()),
        ],
    );
    assert_eq!(replayed.status, 401, "{}", replayed.html);

    // Removing needs the password (or a code): without it, or with a wrong one, or by
    // another user, nothing is removed.
    let profile = browser.get("/ui/profile").html;
    let marker = "name=\"passkey_id\" value=\"";
    let at = profile.find(marker).unwrap() + marker.len();
    let passkey_id = profile[at..at + profile[at..].find('"').unwrap()].to_owned();
    let token = csrf(&browser);
    for (confirm, status) in [("", 400), ("not my password at all", 400)] {
        let refused = browser.post(
            "/ui/profile/passkey-remove",
            &[
                ("csrf", &token),
                ("passkey_id", &passkey_id),
                ("confirm", confirm),
            ],
        );
        assert_eq!(refused.status, status, "{}", refused.html);
    }
    let token_q = csrf(&quinn);
    let not_hers = quinn.post(
        "/ui/profile/passkey-remove",
        &[
            ("csrf", &token_q),
            ("passkey_id", &passkey_id),
            ("confirm", PASSWORD),
        ],
    );
    assert_eq!(not_hers.status, 404, "{}", not_hers.html);
    assert_eq!(count(&server, "iam.passkeys.delete"), 0);
    assert_eq!(
        server.get(&server.admin_key, &format!("/users/{pia}")).body["mfa_enrolled"],
        true
    );
    let removed = browser.post(
        "/ui/profile/passkey-remove",
        &[
            ("csrf", &token),
            ("passkey_id", &passkey_id),
            ("confirm", PASSWORD),
        ],
    );
    assert_eq!(
        (removed.status, removed.location.as_str()),
        (303, "/ui/profile?done=passkey-removed"),
        "{}",
        removed.html
    );
    let events = server
        .get(&server.admin_key, "/events?action=iam.passkeys.delete")
        .body;
    assert_eq!(
        events["events"][0]["object_id"],
        passkey_id.as_str(),
        "{events}"
    );
    assert_eq!(
        server.get(&server.admin_key, &format!("/users/{pia}")).body["mfa_enrolled"],
        false
    );
    // The removed passkey signs nobody in.
    let (_, page) = sign_in_with(&server, |options| key.get(options, &Bend::honest(&origin)));
    assert_eq!(page.status, 401, "{}", page.html);
}

#[test]
fn a_session_limited_by_the_mfa_rule_is_freed_by_adding_a_passkey() {
    let server = start_server();
    let (pia, _) = member_with_roles_and_password(&server, "pia@example.com", json!({}));
    let set = server.patch(&server.admin_key, "/account", json!({"mfa_required": true}));
    assert_eq!(set.status, 200, "{:?}", set.body);
    let mut browser = signed_in_by_name(&server, "pia@example.com");
    assert_eq!(
        browser.get("/ui/members").location,
        "/ui/profile",
        "limited to set-up"
    );
    let mut key = SoftKey::new();
    let added = add(&mut browser, &mut key, "Pia's key", None);
    assert_eq!(added.status, 303, "{}", added.html);
    assert_eq!(browser.get("/ui/members").status, 200, "no longer limited");
    assert_eq!(
        server.get(&server.admin_key, &format!("/users/{pia}")).body["mfa_enrolled"],
        true
    );
}
