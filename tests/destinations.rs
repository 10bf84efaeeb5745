//! Event destinations through the real binary: administrators only, isolated between
//! accounts, validated, and delivering every event of the trail exactly as
//! `GET /events/{id}` shows it, to a real HTTPS receiver (signed, retried, across a
//! restart) and to a real syslog-over-TLS receiver (RFC 5424, octet-counted), on loopback.

use std::io::Read;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{Reply, Server, assert_error, start_configured, start_server};
use crate::isolation::two_accounts_with;
use crate::support::policies_dir;

const ALLOW_PRIVATE: (&str, &str) = ("LATCHKEY_ALLOW_PRIVATE_DESTINATIONS", "true");
/// Event `uri`s stay the same across a restart on another port.
const PUBLIC_URL: (&str, &str) = ("LATCHKEY_PUBLIC_URL", "https://iam.example.test");

fn start_allowing_private() -> Server {
    start_configured(
        Arc::new(tempfile::tempdir().unwrap()),
        &policies_dir(),
        None,
        &[ALLOW_PRIVATE, PUBLIC_URL],
    )
}

/// A self-signed certificate for 127.0.0.1 and localhost: (PEM, rustls server config).
fn receiver_tls() -> (String, Arc<rustls::ServerConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    (cert.pem(), Arc::new(config))
}

/// One request an HTTPS receiver got.
#[derive(Debug, Clone)]
struct Received {
    signature: String,
    destination: String,
    body: Vec<u8>,
}

/// An HTTPS receiver on 127.0.0.1 (hyper + rustls on its own runtime): records every
/// `POST` and answers with `status` (200 unless changed).
struct HttpsReceiver {
    port: u16,
    ca_pem: String,
    requests: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

impl HttpsReceiver {
    fn start() -> HttpsReceiver {
        let (ca_pem, config) = receiver_tls();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let (seen, answer) = (Arc::clone(&requests), Arc::clone(&status));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let (acceptor, seen, answer) =
                        (acceptor.clone(), Arc::clone(&seen), Arc::clone(&answer));
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(
                            move |request: hyper::Request<hyper::body::Incoming>| {
                                let (seen, answer) = (Arc::clone(&seen), Arc::clone(&answer));
                                async move {
                                    use http_body_util::BodyExt;
                                    let header = |name: &str| {
                                        request
                                            .headers()
                                            .get(name)
                                            .map(|v| v.to_str().unwrap().to_owned())
                                            .unwrap_or_default()
                                    };
                                    let signature = header("latchkey-signature");
                                    let destination = header("latchkey-destination-id");
                                    assert_eq!(request.method(), hyper::Method::POST);
                                    assert_eq!(request.uri().path(), "/hook");
                                    assert_eq!(header("content-type"), "application/json");
                                    let body = request
                                        .into_body()
                                        .collect()
                                        .await
                                        .unwrap()
                                        .to_bytes()
                                        .to_vec();
                                    let status = answer.load(Ordering::SeqCst);
                                    if status == 200 {
                                        seen.lock().unwrap().push(Received {
                                            signature,
                                            destination,
                                            body,
                                        });
                                    }
                                    let reply = hyper::Response::builder()
                                        .status(status)
                                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                                        .unwrap();
                                    Ok::<_, std::convert::Infallible>(reply)
                                }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
        });
        HttpsReceiver {
            port,
            ca_pem,
            requests,
            status,
        }
    }

    /// Every event received so far, in order of arrival.
    fn events(&self) -> Vec<Value> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .flat_map(|r| {
                let batch: Value = serde_json::from_slice(&r.body).unwrap();
                batch["events"].as_array().unwrap().clone()
            })
            .collect()
    }
}

/// A syslog receiver over TLS on 127.0.0.1: collects the bytes of every connection.
struct SyslogReceiver {
    port: u16,
    ca_pem: String,
    streams: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl SyslogReceiver {
    fn start() -> SyslogReceiver {
        let (ca_pem, config) = receiver_tls();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let streams = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&streams);
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(mut tcp) = tcp else { continue };
                let mut connection = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
                let mut tls = rustls::Stream::new(&mut connection, &mut tcp);
                let mut bytes = Vec::new();
                // Until close_notify (a clean end) or an error.
                let _ = tls.read_to_end(&mut bytes);
                seen.lock().unwrap().push(bytes);
            }
        });
        SyslogReceiver {
            port,
            ca_pem,
            streams,
        }
    }

    /// Every message received so far, split by octet counting (RFC 5425).
    fn messages(&self) -> Vec<String> {
        let mut messages = Vec::new();
        for stream in self.streams.lock().unwrap().iter() {
            let mut rest = stream.as_slice();
            while !rest.is_empty() {
                let space = rest.iter().position(|b| *b == b' ').unwrap();
                let len: usize = std::str::from_utf8(&rest[..space])
                    .unwrap()
                    .parse()
                    .unwrap();
                let message = &rest[space + 1..space + 1 + len];
                messages.push(String::from_utf8(message.to_vec()).unwrap());
                rest = &rest[space + 1 + len..];
            }
        }
        messages
    }
}

/// Poll `probe` every 100 ms until it holds, for at most `limit`.
fn wait_until(limit: Duration, what: &str, mut probe: impl FnMut() -> bool) {
    let started = Instant::now();
    while !probe() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every event of the caller's account, oldest first, through the API.
fn trail(server: &Server, key: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut path = "/events?limit=100".to_owned();
    loop {
        let page = server.get(key, &path);
        assert_eq!(page.status, 200, "{:?}", page.body);
        events.extend(page.body["events"].as_array().unwrap().iter().cloned());
        match page.body["next_page_uri"].as_str() {
            Some(next) => path = next.to_owned(),
            None => break,
        }
    }
    events.reverse();
    events
}

/// The trail from event `first` on.
fn trail_from(server: &Server, first: &str) -> Vec<Value> {
    let all = trail(server, &server.admin_key);
    let at = all.iter().position(|e| e["id"] == first).unwrap();
    all[at..].to_vec()
}

fn newest_event(server: &Server, key: &str) -> Value {
    server.get(key, "/events?limit=1").body["events"][0]["id"].clone()
}

/// The account's destinations as listed, without their delivery status (which moves by
/// itself as deliveries are tried).
fn destinations(server: &Server) -> Value {
    let mut listed = server.get(&server.admin_key, "/event_destinations").body;
    for found in listed["event_destinations"].as_array_mut().unwrap() {
        found.as_object_mut().unwrap().remove("status");
    }
    listed
}

/// Refused with `status`/`code`, and nothing changed: the same destinations and the same
/// newest event.
fn refused_unchanged(
    server: &Server,
    reply: impl FnOnce() -> Reply,
    status: u16,
    code: u16,
) -> Reply {
    let key = &server.admin_key;
    let before = (destinations(server), newest_event(server, key));
    let reply = reply();
    assert_error(&reply, status, code);
    let after = (destinations(server), newest_event(server, key));
    assert_eq!(before, after, "a refused call changed something");
    reply
}

fn hook(port: u16) -> String {
    format!("https://127.0.0.1:{port}/hook")
}

#[test]
fn event_destinations_are_administrators_only_validated_and_isolated() {
    // Without the operator's leave, a loopback or private receiver is refused.
    let strict = start_server();
    let key = strict.admin_key.clone();
    for url in [
        "https://127.0.0.1:9/hook",
        "https://10.0.0.7/hook",
        "https://[::1]:9/",
        "https://169.254.169.254/latest/meta-data",
    ] {
        let refused = refused_unchanged(
            &strict,
            || {
                strict.post(
                    &key,
                    "/event_destinations",
                    json!({"target": {"https": {"url": url}}}),
                )
            },
            400,
            105,
        );
        assert_eq!(refused.body["details"]["field"], "target.https.url");
        assert!(
            refused.body["msg"]
                .as_str()
                .unwrap()
                .contains("not a public address")
        );
    }
    drop(strict);

    let two = two_accounts_with(&[ALLOW_PRIVATE]);
    let server = &two.server;
    let key = server.admin_key.clone();
    let b_key = two.b_key.clone();

    // Bad bodies: each a 400 naming its field, and nothing changes.
    let long = "x".repeat(256);
    for (body, field) in [
        (json!({}), "target"),
        (json!({"target": {}}), "target"),
        (
            json!({"target": {"https": {"url": "https://a.example/"}, "syslog": {"address": "a.example:6514"}}}),
            "target",
        ),
        (json!({"target": {"https": {}}}), "target.https.url"),
        (
            json!({"target": {"https": {"url": "http://a.example/"}}}),
            "target.https.url",
        ),
        (
            json!({"target": {"https": {"url": "https://u:p@a.example/"}}}),
            "target.https.url",
        ),
        (
            json!({"target": {"https": {"url": "https://a.example/#x"}}}),
            "target.https.url",
        ),
        (
            json!({"target": {"syslog": {"address": "a.example"}}}),
            "target.syslog.address",
        ),
        (
            json!({"target": {"syslog": {"address": "a.example:0"}}}),
            "target.syslog.address",
        ),
        (
            json!({"target": {"https": {"url": "https://a.example/", "trusted_ca_pem": "not a certificate"}}}),
            "target.https.trusted_ca_pem",
        ),
        (
            json!({"target": {"https": {"url": "https://a.example/"}}, "format": "xml"}),
            "format",
        ),
        (
            json!({"target": {"https": {"url": "https://a.example/"}}, "description": long}),
            "description",
        ),
        (
            json!({"target": {"https": {"url": "https://a.example/"}}, "id": "ed_1"}),
            "id",
        ),
    ] {
        let refused = refused_unchanged(
            server,
            || server.post(&key, "/event_destinations", body.clone()),
            400,
            105,
        );
        assert_eq!(
            refused.body["details"]["field"], field,
            "{body}: {:?}",
            refused.body
        );
    }
    let unknown = refused_unchanged(
        server,
        || {
            server.post(
                &key,
                "/event_destinations",
                json!({"target": {"https": {"url": "https://a.example/", "secret": "x"}}}),
            )
        },
        400,
        106,
    );
    assert!(
        unknown.body["msg"].as_str().unwrap().contains("secret"),
        "{:?}",
        unknown.body
    );

    // An administrator makes one; the secret is shown this once.
    let made = server.post(
        &key,
        "/event_destinations",
        json!({"description": "SIEM", "target": {"https": {"url": "https://127.0.0.1:9/hook"}}}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ed_"));
    let secret = made.body["signing_secret"].as_str().unwrap();
    assert!(
        secret.starts_with("lkwhsec_") && secret.len() > 40,
        "{secret}"
    );
    assert_eq!(made.body["format"], "json");
    assert_eq!(made.body["enabled"], true);
    assert_eq!(made.body["status"]["delivered"], 0);
    let path = format!("/event_destinations/{id}");
    let got = server.get(&key, &path);
    assert_eq!(got.status, 200);
    assert!(got.body.get("signing_secret").is_none(), "{:?}", got.body);
    assert_eq!(got.body["description"], "SIEM");
    let listed = server.get(&key, "/event_destinations");
    assert_eq!(listed.body["event_destinations"][0]["id"], id.as_str());
    // The creation is in the trail, without the secret.
    let created = server.get(&key, "/events?action=iam.event_destinations.create");
    assert_eq!(created.body["events"][0]["object_id"], id.as_str());
    assert!(!created.body.to_string().contains(secret));

    // Lower roles, bots and keys scoped elsewhere: 403, nothing changes.
    let (_, developer) =
        server.member_with_key("dev@acme.example", json!({"developer": "read_write"}));
    let (_, manager) = server.member_with_key("tm@acme.example", json!({"team": "manager"}));
    let bot = server.post(&key, "/bot_users", json!({"name": "ci"}));
    let bot_key = server.post(&key, "/api_keys", json!({"owner_id": bot.body["id"]}));
    let bot_key = bot_key.body["token"].as_str().unwrap().to_owned();
    let scoped = server.post(
        &key,
        "/api_keys",
        json!({"scopes": ["iam.api_keys.*", "iam.events.list"]}),
    );
    let scoped = scoped.body["token"].as_str().unwrap().to_owned();
    let body = json!({"target": {"https": {"url": "https://127.0.0.1:9/other"}}});
    for caller in [&developer, &manager, &bot_key, &scoped] {
        refused_unchanged(
            server,
            || server.post(caller, "/event_destinations", body.clone()),
            403,
            101,
        );
        refused_unchanged(
            server,
            || server.get(caller, "/event_destinations"),
            403,
            101,
        );
        refused_unchanged(server, || server.get(caller, &path), 403, 101);
        refused_unchanged(
            server,
            || server.patch(caller, &path, json!({"enabled": false})),
            403,
            101,
        );
        refused_unchanged(server, || server.delete(caller, &path), 403, 101);
    }
    // Another account's administrator cannot see, change or delete it: it does not exist
    // from there; and B's list is empty.
    refused_unchanged(server, || server.get(&b_key, &path), 404, 102);
    refused_unchanged(
        server,
        || server.patch(&b_key, &path, json!({"enabled": false})),
        404,
        102,
    );
    refused_unchanged(server, || server.delete(&b_key, &path), 404, 102);
    assert_eq!(
        server.get(&b_key, "/event_destinations").body["event_destinations"],
        json!([])
    );

    // Pause, then delete: both in the trail.
    let paused = server.patch(&key, &path, json!({"enabled": false, "id": id}));
    assert_eq!(paused.status, 200, "{:?}", paused.body);
    assert_eq!(paused.body["status"]["state"], "paused");
    assert_eq!(server.delete(&key, &path).status, 204);
    assert_error(&server.get(&key, &path), 404, 102);
    let changes = server.get(&key, &format!("/events?object_id={id}"));
    let actions: Vec<&str> = changes.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "iam.event_destinations.delete",
            "iam.event_destinations.update",
            "iam.event_destinations.create"
        ]
    );
}

/// `hex(HMAC-SHA-256(secret, "<t>.<body>"))`, as a receiver checks it.
fn expected_signature(secret: &str, header: &str, body: &[u8]) -> (String, String) {
    use hmac::{KeyInit, Mac};
    let (t, v1) = header.split_once(",v1=").unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (want, v1.to_owned())
}

#[test]
fn an_https_destination_receives_every_event_exactly_once_signed_retried_and_across_a_restart() {
    let receiver = HttpsReceiver::start();
    let server = start_allowing_private();
    let key = server.admin_key.clone();
    let made = server.post(
        &key,
        "/event_destinations",
        json!({"target": {"https": {"url": hook(receiver.port), "trusted_ca_pem": receiver.ca_pem}}}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    let secret = made.body["signing_secret"].as_str().unwrap().to_owned();
    let path = format!("/event_destinations/{id}");
    let first = server.get(&key, "/events?limit=1").body["events"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 0..5 {
        let bot = server.post(&key, "/bot_users", json!({"name": format!("bot {n}")}));
        assert_eq!(bot.status, 201);
    }
    let expected = trail_from(&server, &first);
    assert_eq!(expected.len(), 6);
    wait_until(Duration::from_secs(20), "the first events", || {
        receiver.events().len() >= expected.len()
    });

    // The receiver refuses for a while: the failure is visible, nothing is lost.
    receiver.status.store(503, Ordering::SeqCst);
    for n in 5..8 {
        server.post(&key, "/bot_users", json!({"name": format!("bot {n}")}));
    }
    wait_until(Duration::from_secs(20), "a failed attempt", || {
        server.get(&key, &path).body["status"]["failures"].as_u64() >= Some(1)
    });
    let failing = server.get(&key, &path).body["status"].clone();
    assert_eq!(failing["state"], "retrying", "{failing}");
    assert!(
        failing["last_error"].as_str().unwrap().contains("503"),
        "{failing}"
    );
    assert!(failing["retry_at"].is_string(), "{failing}");
    assert_eq!(failing["delivered"], 6);

    // Restart while events wait; the receiver recovers meanwhile.
    let known = (
        key.clone(),
        server.account_id.clone(),
        server.admin_id.clone(),
    );
    let dir = Arc::clone(&server.dir);
    let (status, _) = server.stop();
    assert!(status.success());
    receiver.status.store(200, Ordering::SeqCst);
    let server = start_configured(
        dir,
        &policies_dir(),
        Some(known),
        &[ALLOW_PRIVATE, PUBLIC_URL],
    );
    // A server key rotation re-seals the signing secret: the receiver's copy still verifies.
    let rotated = crate::login::rotate(&server);
    assert_eq!(rotated["resealed_destination_secrets"], 1, "{rotated}");
    for n in 8..10 {
        server.post(&key, "/bot_users", json!({"name": format!("bot {n}")}));
    }
    let expected = trail_from(&server, &first);
    assert_eq!(expected.len(), 11);
    wait_until(Duration::from_secs(30), "every event", || {
        receiver.events().len() >= expected.len()
    });
    std::thread::sleep(Duration::from_millis(600));
    // Every event, in order, once, exactly as the trail shows it.
    assert_eq!(receiver.events(), expected);
    let status = server.get(&key, &path).body["status"].clone();
    assert_eq!(status["state"], "ok", "{status}");
    assert_eq!(status["delivered"], 11);
    assert_eq!(status["failures"], 0);
    assert_eq!(status["last_error"], Value::Null);
    assert_eq!(status["last_delivered_event_id"], expected[10]["id"]);
    // Each request names the destination and is signed with its secret.
    for request in receiver.requests.lock().unwrap().iter() {
        assert_eq!(request.destination, id);
        let (want, got) = expected_signature(&secret, &request.signature, &request.body);
        assert_eq!(want, got, "a request's signature does not verify");
        let batch: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(batch["destination_id"], id.as_str());
    }
}

#[test]
fn a_syslog_destination_receives_rfc5424_messages_over_tls() {
    let receiver = SyslogReceiver::start();
    let server = start_allowing_private();
    let key = server.admin_key.clone();
    let made = server.post(
        &key,
        "/event_destinations",
        json!({"target": {"syslog": {"address": format!("127.0.0.1:{}", receiver.port), "trusted_ca_pem": receiver.ca_pem}}}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let first = server.get(&key, "/events?limit=1").body["events"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.post(&key, "/ip_policies", json!({"description": "office"}));
    server.post(&key, "/bot_users", json!({"name": "ci"}));
    let expected = trail_from(&server, &first);
    assert_eq!(expected.len(), 3);
    wait_until(Duration::from_secs(20), "three messages", || {
        receiver.messages().len() >= 3
    });
    let messages = receiver.messages();
    assert_eq!(messages.len(), 3);
    for (message, event) in messages.iter().zip(&expected) {
        // <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG
        let parts: Vec<&str> = message.splitn(8, ' ').collect();
        assert_eq!(parts[0], "<110>1", "{message}");
        assert_eq!(parts[1], event["created_at"].as_str().unwrap());
        assert!(!parts[2].is_empty() && parts[2].is_ascii());
        assert_eq!(
            &parts[3..7],
            ["latchkey", "-", event["action"].as_str().unwrap(), "-"]
        );
        let json = parts[7]
            .strip_prefix('\u{feff}')
            .expect("MSG is UTF-8 with a BOM");
        assert_eq!(&serde_json::from_str::<Value>(json).unwrap(), event);
    }
}

#[test]
fn a_name_that_resolves_to_loopback_is_not_reached_without_the_operators_leave() {
    let receiver = HttpsReceiver::start();
    let server = start_server();
    let key = server.admin_key.clone();
    // A name passes at creation (it is resolved at each attempt) ...
    let made = server.post(
        &key,
        "/event_destinations",
        json!({"target": {"https": {"url": format!("https://localhost:{}/hook", receiver.port), "trusted_ca_pem": receiver.ca_pem}}}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let path = format!("/event_destinations/{}", made.body["id"].as_str().unwrap());
    // ... and every attempt stops before connecting.
    wait_until(Duration::from_secs(20), "a refused attempt", || {
        server.get(&key, &path).body["status"]["failures"].as_u64() >= Some(1)
    });
    let status = server.get(&key, &path).body["status"].clone();
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("not public"),
        "{status}"
    );
    assert_eq!(status["delivered"], 0);
    assert!(receiver.requests.lock().unwrap().is_empty());
}
