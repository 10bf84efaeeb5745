//! The HTTPS API through the real binary: `latchkey serve` on 127.0.0.1:0 with its
//! self-signed certificate, driven by an independent client (ureq over rustls) that
//! trusts exactly the printed certificate.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest;
use tempfile::TempDir;
use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::support::{copy_builtins, drop_in, policies_dir};
use latchkey::policy::Outcome;

/// A running `latchkey serve`, stopped (SIGTERM) when dropped.
pub struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// Holds `data/`; clone it to keep the data directory past this server.
    pub dir: Arc<TempDir>,
    pub url: String,
    pub admin_key: String,
    pub account_id: String,
    pub admin_id: String,
    pub cert: PathBuf,
    /// Whether this start bootstrapped the data directory.
    pub bootstrapped: bool,
    /// The first administrator's one-time setup link, when it did.
    pub setup_url: Option<String>,
    agent: Agent,
}

/// Start the server on a fresh data directory with the built-in policies.
pub fn start_server() -> Server {
    start_server_with(&policies_dir())
}

/// Start the server with the policies of `policies`.
pub fn start_server_with(policies: &Path) -> Server {
    start_in(Arc::new(tempfile::tempdir().unwrap()), policies, None)
}

/// Start the server on `dir/data`; `known` is (admin key, account id, admin id) when the
/// directory was bootstrapped before.
pub fn start_in(
    dir: Arc<TempDir>,
    policies: &Path,
    known: Option<(String, String, String)>,
) -> Server {
    start_configured(dir, policies, known, &[])
}

/// [`start_in`], with more settings given as environment variables.
pub fn start_configured(
    dir: Arc<TempDir>,
    policies: &Path,
    known: Option<(String, String, String)>,
    env: &[(&str, &str)],
) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command.envs(env.iter().copied());
    // `LATCHKEY_LISTEN` among `env` picks the address (the flag would win over it).
    let listen = env
        .iter()
        .find(|(k, _)| *k == "LATCHKEY_LISTEN")
        .map_or("127.0.0.1:0", |(_, v)| *v);
    launch(command, dir, policies, listen, known, |cert| {
        std::fs::read(cert).unwrap()
    })
}

/// Start `latchkey serve` by `command` (the binary, or a program that runs it, such as
/// `nsenter`), on `dir/data`; `read` reads a file the server wrote (its certificate).
pub fn launch(
    mut command: Command,
    dir: Arc<TempDir>,
    policies: &Path,
    listen: &str,
    known: Option<(String, String, String)>,
    read: impl Fn(&Path) -> Vec<u8>,
) -> Server {
    let mut child = command
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--policies")
        .arg(policies)
        .env("LATCHKEY_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = read_json_line(&mut stdout, &dir.path().join("serve.log"));
    let bootstrapped = line.get("api_key").is_some();
    let mut setup_url = None;
    let (admin_key, account_id, admin_id) = if bootstrapped {
        let next = read_json_line(&mut stdout, &dir.path().join("serve.log"));
        let boot = std::mem::replace(&mut line, next);
        let text = |k: &str| boot[k].as_str().unwrap().to_owned();
        setup_url = Some(text("setup_url"));
        (text("api_key"), text("account_id"), text("user_id"))
    } else {
        known.expect("a data directory that was not bootstrapped needs its admin key")
    };
    let cert = PathBuf::from(line["tls_cert"].as_str().unwrap());
    let agent = agent_trusting(&read(&cert));
    Server {
        child,
        stdout,
        dir,
        url: line["listening"].as_str().unwrap().to_owned(),
        admin_key,
        account_id,
        admin_id,
        cert,
        bootstrapped,
        setup_url,
        agent,
    }
}

/// The next JSON line the server printed; if there is none, fail with its log.
fn read_json_line(stdout: &mut BufReader<ChildStdout>, log: &Path) -> Value {
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        panic!("{e}: {line:?}\nserver log:\n{log}")
    })
}

pub fn agent_trusting(pem: &[u8]) -> Agent {
    let root = Certificate::from_pem(pem).unwrap();
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(vec![root])))
        .build();
    Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A response: status and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

pub fn reply(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = response.unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let text = response.body_mut().read_to_string().unwrap();
    // JSON, or (for /metrics) the text itself.
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        body,
        headers,
    }
}

impl Server {
    pub fn get(&self, key: &str, path: &str) -> Reply {
        let url = self.absolute(path);
        reply(
            self.agent
                .get(&url)
                .header("Authorization", &bearer(key))
                .call(),
        )
    }

    pub fn post(&self, key: &str, path: &str, body: Value) -> Reply {
        let url = self.absolute(path);
        reply(
            self.agent
                .post(&url)
                .header("Authorization", &bearer(key))
                .send_json(body),
        )
    }

    pub fn patch(&self, key: &str, path: &str, body: Value) -> Reply {
        let url = self.absolute(path);
        reply(
            self.agent
                .patch(&url)
                .header("Authorization", &bearer(key))
                .send_json(body),
        )
    }

    pub fn delete(&self, key: &str, path: &str) -> Reply {
        let url = self.absolute(path);
        reply(
            self.agent
                .delete(&url)
                .header("Authorization", &bearer(key))
                .call(),
        )
    }

    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    fn absolute(&self, path: &str) -> String {
        if path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.url)
        }
    }

    /// Add a member with `roles` and give it an API key of its own, made by the
    /// administrator; returns (user id, API key).
    pub fn member_with_key(&self, email: &str, roles: Value) -> (String, String) {
        let user = self.post(
            &self.admin_key,
            "/users",
            json!({"email": email, "name": "M", "roles": roles}),
        );
        assert_eq!(user.status, 201, "{:?}", user.body);
        let id = user.body["id"].as_str().unwrap().to_owned();
        let key = self.post(&self.admin_key, "/api_keys", json!({"owner_id": id}));
        assert_eq!(key.status, 201, "{:?}", key.body);
        (id, key.body["token"].as_str().unwrap().to_owned())
    }

    /// Send a signal to the server process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then wait for the exit; returns the exit status and the rest of stdout.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        self.signal("TERM");
        let status = wait_bounded(&mut self.child, Duration::from_secs(40));
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
        (status, rest)
    }
}

fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the server did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

pub fn assert_error(reply: &Reply, status: u16, code: u16) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(
        reply.body["error_code"],
        format!("ERR_LATCHKEY_{code}"),
        "{:?}",
        reply.body
    );
    assert_eq!(reply.body["status_code"], status);
    assert!(reply.body["msg"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        reply.body["details"]["operation_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("op_"))
    );
}

/// The audit trail length, read offline after the server stops is not possible while it
/// runs; the count of API keys stands in for "nothing changed" on credential refusals.
fn count(server: &Server, path: &str, field: &str) -> usize {
    let list = server.get(&server.admin_key, path);
    assert_eq!(list.status, 200, "{:?}", list.body);
    list.body[field].as_array().unwrap().len()
}

// ---- the server -----------------------------------------------------------------------

#[test]
fn a_fresh_data_directory_is_bootstrapped_and_answers_with_the_printed_key() {
    let server = start_server();
    assert!(server.admin_key.starts_with("lk_ak_"));
    assert!(server.cert.starts_with(server.dir.path()));
    let health = reply(
        server
            .agent()
            .get(&format!("{}/healthz", server.url))
            .call(),
    );
    assert_eq!(
        (health.status, &health.body),
        (200, &json!({"status": "ok"}))
    );
    let account = server.get(&server.admin_key, "/account");
    assert_eq!(account.status, 200);
    assert_eq!(account.body["id"], server.account_id);
    assert_eq!(account.body["name"], "default");
    assert_eq!(account.body["seats_used"], 1);
    assert_eq!(account.body["uri"], format!("{}/account", server.url));

    let (status, rest) = server.stop();
    assert!(status.success(), "{status:?}");
    assert!(rest.contains("\"stopped\":true"), "{rest}");
}

#[test]
fn a_restart_does_not_bootstrap_again_and_keeps_the_certificate() {
    let server = start_server();
    let dir = Arc::clone(&server.dir);
    let cert = std::fs::read(&server.cert).unwrap();
    let known = (
        server.admin_key.clone(),
        server.account_id.clone(),
        server.admin_id.clone(),
    );
    let (status, _) = server.stop();
    assert!(status.success());

    let again = start_in(dir, &policies_dir(), Some(known));
    assert!(!again.bootstrapped, "no second bootstrap");
    assert_eq!(std::fs::read(&again.cert).unwrap(), cert);
    let account = again.get(&again.admin_key, "/account");
    assert_eq!(
        (account.status, &account.body["id"]),
        (200, &json!(again.account_id))
    );
}

/// A raw TLS connection to `server` (trusting its certificate), offering `alpn`, with
/// its handshake done and a 10 s read timeout.
fn raw_tls(
    server: &Server,
    alpn: &[&[u8]],
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let pem = std::fs::read(&server.cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut socket = raw_tcp(server);
    while connection.is_handshaking() {
        connection.complete_io(&mut socket).unwrap();
    }
    rustls::StreamOwned::new(connection, socket)
}

/// A plain TCP connection to `server`'s port, with a 10 s read timeout.
fn raw_tcp(server: &Server) -> TcpStream {
    let socket = TcpStream::connect(server.url.trim_start_matches("https://")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket
}

/// Read until the server ends the connection; what it sent before. Fails if the
/// connection is still open when the read timeout passes.
fn until_closed(stream: &mut impl Read) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server kept the connection open; it had sent {received:?}")
            }
            // A reset, or TLS ended without close_notify: closed either way.
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[test]
fn http2_is_offered_by_alpn() {
    let server = start_server();
    let connection = raw_tls(&server, &[b"h2", b"http/1.1"]);
    assert_eq!(connection.conn.alpn_protocol(), Some(&b"h2"[..]));
}

#[test]
fn a_slow_client_is_cut_off_at_every_step_and_others_are_served() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = start_configured(
        dir,
        &policies_dir(),
        None,
        &[("LATCHKEY_CLIENT_TIMEOUT_MS", "300")],
    );
    // Never starts the TLS handshake.
    let mut silent = raw_tcp(&server);
    assert_eq!(until_closed(&mut silent), "");

    // Starts a request's head and never finishes it.
    let mut stalled = raw_tls(&server, &[b"http/1.1"]);
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    assert_eq!(until_closed(&mut stalled), "");

    // Keeps a connection alive after one answer and sends nothing more.
    let mut idle = raw_tls(&server, &[b"http/1.1"]);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let answered = until_closed(&mut idle);
    assert!(answered.starts_with("HTTP/1.1 200 OK"), "{answered}");
    assert_eq!(answered.matches("HTTP/1.1").count(), 1, "{answered}");

    // Sends a head promising 100 bytes of body and then one byte.
    let mut trickle = raw_tls(&server, &[b"http/1.1"]);
    let head = format!(
        "POST /verify HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        server.admin_key
    );
    trickle.write_all(head.as_bytes()).unwrap();
    let answered = until_closed(&mut trickle);
    assert!(answered.starts_with("HTTP/1.1 408"), "{answered}");
    assert!(answered.contains("ERR_LATCHKEY_116"), "{answered}");

    // Refused before its body is read, a request's answer says the connection closes
    // with it, so no client sends its next request on it: the API (a forged key, a body
    // declared far too large), SCIM (a forged token), the dashboard (a method the path
    // does not take); a body read whole keeps the connection.
    let admin = format!(
        "POST /verify HTTP/1.1\r\nAuthorization: Bearer {}",
        server.admin_key
    );
    for (head, length, status) in [
        (
            "POST /verify HTTP/1.1\r\nAuthorization: Bearer lk_ak_forged",
            100,
            "401",
        ),
        (admin.as_str(), 1 << 30, "413"),
        (
            "POST /scim/v2/Users HTTP/1.1\r\nAuthorization: Bearer forged",
            100,
            "401",
        ),
        (
            "POST /sso/oidc/start HTTP/1.1\r\nAccept: text/html",
            100,
            "405",
        ),
        ("PUT /ui/profile HTTP/1.1\r\nAccept: text/html", 100, "405"),
    ] {
        let mut refused = raw_tls(&server, &[b"http/1.1"]);
        let request = format!(
            "{head}\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\n\r\n{{"
        );
        refused.write_all(request.as_bytes()).unwrap();
        let answered = until_closed(&mut refused).to_ascii_lowercase();
        assert!(
            answered.starts_with(&format!("http/1.1 {status}")),
            "{head}: {answered}"
        );
        assert!(
            answered.contains("\r\nconnection: close\r\n"),
            "{head}: {answered}"
        );
    }
    let mut kept = raw_tls(&server, &[b"http/1.1"]);
    let body = format!("{{\"token\":\"{}\"}}", server.admin_key);
    let request = format!(
        "POST /verify HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        server.admin_key,
        body.len()
    );
    kept.write_all(request.as_bytes()).unwrap();
    let answered = until_closed(&mut kept).to_ascii_lowercase();
    assert!(answered.starts_with("http/1.1 200"), "{answered}");
    assert!(!answered.contains("connection: close"), "{answered}");

    // Meanwhile, and after, the server answers everyone else.
    let health = server.get(&server.admin_key, "/healthz");
    assert_eq!(health.status, 200);
}

use rustls::pki_types::pem::PemObject;

/// `latchkey policy <verb> --data-dir` against the running `server`: (exit code, answer).
pub fn operator(server: &Server, verb: &str) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["policy", verb, "--data-dir"])
        .arg(server.dir.path().join("data"))
        .output()
        .unwrap();
    let answer = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), answer)
}

#[test]
fn the_policy_set_is_the_operators_signals_and_the_admin_socket_reload_it() {
    let policies = copy_builtins();
    let server = start_server_with(policies.path());
    let bot = server.post(&server.admin_key, "/bot_users", json!({"name": "ci"}));
    assert_eq!(bot.status, 201);
    let bot_path = format!("/bot_users/{}", bot.body["id"].as_str().unwrap());

    // The socket is the service user's alone.
    let socket = server.dir.path().join("data/admin.sock");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (code, listed) = operator(&server, "list");
    assert_eq!(code, 0, "{listed}");
    let names: Vec<&str> = listed["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["account-rbac", "tenant-roles"]);
    let rbac = &listed["policies"][0];
    assert_eq!(rbac["kind"], "builtin");
    assert_eq!(rbac["limits"]["fuel"], 10_000_000);
    let wasm = std::fs::read(policies.path().join("account-rbac.wasm")).unwrap();
    let digest: String = sha2::Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(rbac["sha256"], digest.as_str());

    // Over the network an administrator reads the names and hashes, nothing more, and
    // cannot reload: that acts on every account.
    let seen = server.get(&server.admin_key, "/policies");
    assert_eq!(seen.status, 200, "{:?}", seen.body);
    assert_eq!(seen.body["generation"], listed["generation"]);
    assert_eq!(seen.body["policies"][0]["sha256"], digest.as_str());
    assert!(seen.body["policies"][0].get("limits").is_none());
    let (_, developer) = server.member_with_key(
        "dev@example.com",
        json!({"developer": "read_write", "team": "manager"}),
    );
    let hidden = server.get(&developer, "/policies");
    assert_error(&hidden, 403, 101);
    for key in [&server.admin_key, &developer] {
        let reload = server.post(key, "/policies/reload", json!({}));
        assert_error(&reload, 404, 109);
    }

    drop_in(
        policies.path(),
        "no-bot-deletes",
        Outcome::Deny,
        "bots are retired, not deleted",
        "\"iam.bot_users.delete\", \"iam.bot_users.get\"",
    );
    // Nothing changes until the operator reloads; a network request did not.
    assert_eq!(server.get(&server.admin_key, &bot_path).status, 200);
    server.signal("HUP");
    // The reload runs in the background: poll a read until the new set answers.
    let started = Instant::now();
    let refused = loop {
        let reply = server.get(&server.admin_key, &bot_path);
        if reply.status != 200 || started.elapsed() > Duration::from_secs(20) {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_error(&refused, 403, 101);
    assert_eq!(refused.body["details"]["policy"], "no-bot-deletes");
    // The signal's reload is in the appliance trail, as the operator's are.
    let trail = server.get(&server.admin_key, "/policies/events?limit=1");
    let reload = &trail.body["events"][0];
    assert_eq!(
        (&reload["action"], &reload["trigger"]),
        (&json!("appliance.policies.reload"), &json!("signal")),
        "{:?}",
        trail.body
    );
    assert_eq!(reload["after"]["policies"].as_array().unwrap().len(), 3);
    assert_eq!(
        refused.body["details"]["reason"],
        "bots are retired, not deleted"
    );
    assert_error(&server.delete(&server.admin_key, &bot_path), 403, 101);

    // A broken module: the operator's reload reports it and the current set stays.
    std::fs::write(policies.path().join("broken.wasm"), b"\0asm\x01\0\0\0junk").unwrap();
    std::fs::write(
        policies.path().join("broken.toml"),
        "name = \"broken\"\nmodule = \"broken.wasm\"\nkind = \"custom\"\nactions = [\"*\"]\n",
    )
    .unwrap();
    let (code, refused) = operator(&server, "reload");
    assert_eq!(code, 1, "{refused}");
    assert_eq!(refused["ok"], false);
    assert!(
        refused["error"].as_str().unwrap().contains("broken"),
        "{refused}"
    );
    assert_eq!(server.delete(&server.admin_key, &bot_path).status, 403);

    for file in [
        "broken.toml",
        "broken.wasm",
        "no-bot-deletes.toml",
        "no-bot-deletes.wasm",
    ] {
        std::fs::remove_file(policies.path().join(file)).unwrap();
    }
    let (code, reloaded) = operator(&server, "reload");
    assert_eq!(code, 0, "{reloaded}");
    assert_eq!(reloaded["policies"].as_array().unwrap().len(), 2);
    assert!(reloaded["generation"].as_u64() > listed["generation"].as_u64());
    assert_eq!(server.delete(&server.admin_key, &bot_path).status, 204);

    // Stopped, the server leaves no socket, and the command says nobody answers.
    let dir = Arc::clone(&server.dir);
    let (status, _) = server.stop();
    assert!(status.success());
    assert!(!dir.path().join("data/admin.sock").exists());
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["policy", "list", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no latchkey server answers"));
}

// ---- conventions ----------------------------------------------------------------------

#[test]
fn requests_without_a_valid_api_key_are_401_in_the_error_shape() {
    let server = start_server();
    let none = reply(
        server
            .agent()
            .get(&format!("{}/bot_users", server.url))
            .call(),
    );
    assert_error(&none, 401, 100);
    assert!(
        none.headers
            .iter()
            .any(|(k, v)| k == "www-authenticate" && v == "Bearer")
    );
    assert_error(&server.get("lk_ak_nonsense", "/bot_users"), 401, 100);
    let mut flipped = server.admin_key.clone().into_bytes();
    flipped[40] = if flipped[40] == b'a' { b'b' } else { b'a' };
    assert_error(
        &server.get(&String::from_utf8(flipped).unwrap(), "/bot_users"),
        401,
        100,
    );
    // An authtoken is for agents, not the API.
    let token = server.post(&server.admin_key, "/credentials", json!({}));
    assert_eq!(token.status, 201);
    let authtoken = token.body["token"].as_str().unwrap();
    assert_error(&server.get(authtoken, "/bot_users"), 401, 100);
}

#[test]
fn bad_requests_get_stable_codes_and_change_nothing() {
    let server = start_server();
    let key = &server.admin_key;
    let before = count(&server, "/bot_users", "bot_users");

    assert_error(&server.get(key, "/nowhere"), 404, 109);
    assert_error(&server.put_empty(key, "/bot_users"), 405, 110);
    let version = reply(
        server
            .agent()
            .get(&format!("{}/bot_users", server.url))
            .header("Authorization", &bearer(key))
            .header("ngrok-version", "3")
            .call(),
    );
    assert_error(&version, 400, 111);
    let v2 = reply(
        server
            .agent()
            .get(&format!("{}/bot_users", server.url))
            .header("Authorization", &bearer(key))
            .header("ngrok-version", "2")
            .call(),
    );
    assert_eq!(v2.status, 200);

    let text = reply(
        server
            .agent()
            .post(&format!("{}/bot_users", server.url))
            .header("Authorization", &bearer(key))
            .content_type("text/plain")
            .send("name=ci"),
    );
    assert_error(&text, 415, 107);
    let malformed = reply(
        server
            .agent()
            .post(&format!("{}/bot_users", server.url))
            .header("Authorization", &bearer(key))
            .content_type("application/json")
            .send("{\"name\": "),
    );
    assert_error(&malformed, 400, 106);
    let unknown = server.post(key, "/bot_users", json!({"name": "ci", "colour": "red"}));
    assert_error(&unknown, 400, 106);
    assert_eq!(unknown.body["details"]["field"], "colour");
    let wrong_type = server.post(key, "/bot_users", json!({"name": 7}));
    assert_error(&wrong_type, 400, 106);
    let huge = "x".repeat(1024 * 1024 + 1);
    let too_large = reply(
        server
            .agent()
            .post(&format!("{}/bot_users", server.url))
            .header("Authorization", &bearer(key))
            .content_type("application/json")
            .send(huge),
    );
    assert_error(&too_large, 413, 108);
    let empty_name = server.post(key, "/bot_users", json!({"name": ""}));
    assert_error(&empty_name, 400, 105);
    assert_eq!(empty_name.body["details"]["field"], "name");
    for limit in ["0", "101", "x"] {
        let bad = server.get(key, &format!("/bot_users?limit={limit}"));
        assert_error(&bad, 400, 112);
        assert_eq!(bad.body["details"]["field"], "limit");
    }
    assert_error(&server.get(key, "/bot_users/bot_nope"), 404, 102);
    assert_error(
        &server.get(key, "/api_keys/cr_0352FHSFuJxUu468mtOaHr"),
        404,
        102,
    );

    assert_eq!(count(&server, "/bot_users", "bot_users"), before);
}

impl Server {
    fn put_empty(&self, key: &str, path: &str) -> Reply {
        reply(
            self.agent
                .put(&self.absolute(path))
                .header("Authorization", &bearer(key))
                .send_empty(),
        )
    }
}

#[test]
fn lists_are_newest_first_and_paginate_with_before_id() {
    let server = start_server();
    let key = &server.admin_key;
    let mut made = Vec::new();
    for i in 0..5 {
        let bot = server.post(key, "/bot_users", json!({"name": format!("bot-{i}")}));
        assert_eq!(bot.status, 201);
        made.push(bot.body["id"].as_str().unwrap().to_owned());
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut next = Some(format!("{}/bot_users?limit=2", server.url));
    let mut pages = 0;
    while let Some(url) = next {
        let page = server.get(key, &url);
        assert_eq!(page.status, 200, "{:?}", page.body);
        assert_eq!(page.body["uri"], format!("{}/bot_users", server.url));
        for bot in page.body["bot_users"].as_array().unwrap() {
            seen.push(bot["id"].as_str().unwrap().to_owned());
        }
        next = page.body["next_page_uri"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(seen, made);
    assert_eq!(pages, 3);
}

// ---- resources ------------------------------------------------------------------------

#[test]
fn bot_users_are_created_read_updated_and_deleted_in_ngrok_shape() {
    let server = start_server();
    let key = &server.admin_key;
    let bot = server.post(key, "/bot_users", json!({"name": "ci", "active": false}));
    assert_eq!(bot.status, 201, "{:?}", bot.body);
    let id = bot.body["id"].as_str().unwrap();
    assert!(id.starts_with("bot_"));
    assert_eq!(bot.body["uri"], format!("{}/bot_users/{id}", server.url));
    assert_eq!(bot.body["active"], false);
    assert!(bot.body["created_at"].as_str().unwrap().ends_with('Z'));

    let patched = server.patch(
        key,
        &format!("/bot_users/{id}"),
        json!({"id": id, "active": true, "name": "deploy"}),
    );
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(
        (&patched.body["name"], &patched.body["active"]),
        (&json!("deploy"), &json!(true))
    );
    assert_eq!(
        server.get(key, &format!("/bot_users/{id}")).body,
        patched.body
    );

    let bot_key = server.post(
        key,
        "/api_keys",
        json!({"owner_id": id, "description": "ci key"}),
    );
    assert_eq!(bot_key.status, 201);
    let bot_token = bot_key.body["token"].as_str().unwrap().to_owned();
    assert_eq!(server.get(&bot_token, "/bot_users").status, 200);

    assert_eq!(server.delete(key, &format!("/bot_users/{id}")).status, 204);
    assert_error(&server.get(key, &format!("/bot_users/{id}")), 404, 102);
    assert_error(&server.get(&bot_token, "/bot_users"), 401, 100);
}

#[test]
fn api_keys_show_their_token_once_and_can_be_updated_and_deleted() {
    let server = start_server();
    let key = &server.admin_key;
    let made = server.post(
        key,
        "/api_keys",
        json!({"description": "deploy", "metadata": "{\"team\":1}", "expires_at": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    let token = made.body["token"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ak_"));
    assert_eq!(made.body["owner_id"], server.admin_id);
    assert_eq!(made.body["expires_at"], "2099-01-01T00:00:00Z");
    assert_eq!(server.get(&token, "/api_keys").status, 200);
    let got = server.get(key, &format!("/api_keys/{id}"));
    assert_eq!(
        got.body["token"],
        Value::Null,
        "the secret is shown only once"
    );
    assert!(
        got.body["last_used_at"].is_string(),
        "used just now: {:?}",
        got.body
    );

    let listed = server.get(key, "/api_keys");
    assert!(
        listed.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == id.as_str())
    );
    assert!(
        listed.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["token"].is_null())
    );

    let patched = server.patch(
        key,
        &format!("/api_keys/{id}"),
        json!({"description": "renamed"}),
    );
    assert_eq!(patched.body["description"], "renamed");
    assert_eq!(patched.body["metadata"], "{\"team\":1}");
    assert_error(
        &server.patch(
            key,
            &format!("/api_keys/{id}"),
            json!({"description": "x".repeat(256)}),
        ),
        400,
        105,
    );
    assert_error(
        &server.post(key, "/api_keys", json!({"acl": ["bind:x.example.com"]})),
        400,
        105,
    );
    assert_error(
        &server.post(key, "/api_keys", json!({"expires_at": "yesterday"})),
        400,
        105,
    );

    assert_eq!(server.delete(key, &format!("/api_keys/{id}")).status, 204);
    assert_error(&server.get(&token, "/api_keys"), 401, 100);
}

#[test]
fn authtokens_take_bind_rules_and_bad_rules_are_refused() {
    let server = start_server();
    let key = &server.admin_key;
    let made = server.post(
        key,
        "/credentials",
        json!({"acl": ["bind:*.example.com", "bind:region=eu"]}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    assert_eq!(
        made.body["acl"],
        json!(["bind:*.example.com", "bind:region=eu"])
    );
    assert_eq!(made.body["personal"], false);
    assert!(made.body["token"].as_str().unwrap().starts_with("lk_at_"));
    let before = count(&server, "/credentials", "credentials");
    let bad = server.post(key, "/credentials", json!({"acl": ["connect:foo"]}));
    assert_error(&bad, 400, 105);
    assert_eq!(bad.body["details"]["field"], "acl");
    assert_eq!(count(&server, "/credentials", "credentials"), before);

    let id = made.body["id"].as_str().unwrap();
    let patched = server.patch(
        key,
        &format!("/credentials/{id}"),
        json!({"acl": ["bind:api.example.com"]}),
    );
    assert_eq!(patched.body["acl"], json!(["bind:api.example.com"]));
}

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmAQJl2CVY6yK1oCQv1kz5hY3qVyfE4ppmg3DCjmj0Q ops@laptop";

#[test]
fn ssh_credentials_are_validated_and_unique() {
    let server = start_server();
    let key = &server.admin_key;
    let made = server.post(
        key,
        "/ssh_credentials",
        json!({"public_key": ED25519, "acl": ["bind:ssh.example.com"]}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    assert!(made.body["id"].as_str().unwrap().starts_with("sshcr_"));
    assert_eq!(made.body["public_key"], ED25519);
    assert!(made.body.get("token").is_none());
    assert_error(
        &server.post(key, "/ssh_credentials", json!({"public_key": ED25519})),
        409,
        103,
    );
    let bad = server.post(
        key,
        "/ssh_credentials",
        json!({"public_key": "ssh-dss AAAAB3NzaC1kc3M="}),
    );
    assert_error(&bad, 400, 105);
    assert_eq!(bad.body["details"]["field"], "public_key");
    assert_error(&server.post(key, "/ssh_credentials", json!({})), 400, 105);
    let id = made.body["id"].as_str().unwrap();
    assert_error(
        &server.post(key, &format!("/credentials/{id}/rotate"), json!({})),
        404,
        102,
    );
}

// ---- account RBAC through the API ------------------------------------------------------

#[test]
fn a_read_only_developer_cannot_create_an_api_key_but_sees_and_rotates_its_authtoken() {
    let server = start_server();
    let (dana, dana_key) = server.member_with_key("dana@example.com", json!({}));
    let before = count(&server, "/api_keys", "keys");
    let refused = server.post(&dana_key, "/api_keys", json!({}));
    assert_error(&refused, 403, 101);
    assert_eq!(refused.body["details"]["policy"], "account-rbac");
    assert_eq!(
        refused.body["details"]["reason"],
        "developer read_only may only read api_keys"
    );
    assert_eq!(count(&server, "/api_keys", "keys"), before);

    let tokens = server.get(&dana_key, "/credentials");
    let personal = tokens.body["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["personal"] == true && c["owner_id"] == dana.as_str())
        .unwrap()
        .clone();
    let id = personal["id"].as_str().unwrap();
    let rotated = server.post(&dana_key, &format!("/credentials/{id}/rotate"), json!({}));
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    assert!(
        rotated.body["token"]
            .as_str()
            .unwrap()
            .starts_with("lk_at_")
    );
    assert_error(
        &server.delete(&dana_key, &format!("/credentials/{id}")),
        403,
        101,
    );
}

#[test]
fn a_team_manager_cannot_disable_an_administrator() {
    let server = start_server();
    let (_, manager) = server.member_with_key(
        "mgr@example.com",
        json!({"team": "manager", "developer": "read_write"}),
    );
    let (dev, _) = server.member_with_key("dev@example.com", json!({}));
    let refused = server.patch(
        &manager,
        &format!("/users/{}", server.admin_id),
        json!({"state": "disabled"}),
    );
    assert_error(&refused, 403, 101);
    assert_eq!(
        refused.body["details"]["reason"],
        "team manager may not change or remove an administrator"
    );
    let disabled = server.patch(
        &manager,
        &format!("/users/{dev}"),
        json!({"state": "disabled"}),
    );
    assert_eq!(disabled.status, 200, "{:?}", disabled.body);
    assert_eq!(disabled.body["state"], "disabled");
    let grant = server.patch(
        &manager,
        &format!("/users/{dev}"),
        json!({"roles": {"admin": true}}),
    );
    assert_error(&grant, 403, 101);
    let bad_role = server.patch(
        &manager,
        &format!("/users/{dev}"),
        json!({"roles": {"team": "boss"}}),
    );
    assert_error(&bad_role, 400, 106);
}

#[test]
fn the_last_administrator_cannot_be_removed() {
    let server = start_server();
    let removed = server.delete(&server.admin_key, &format!("/users/{}", server.admin_id));
    assert_error(&removed, 409, 104);
    let demoted = server.patch(
        &server.admin_key,
        &format!("/users/{}", server.admin_id),
        json!({"roles": {"admin": false}}),
    );
    assert_error(&demoted, 409, 104);
    let me = server.get(&server.admin_key, &format!("/users/{}", server.admin_id));
    assert_eq!(me.body["roles"]["admin"], true);
}

#[test]
fn a_bot_cannot_read_members() {
    let server = start_server();
    let bot = server.post(&server.admin_key, "/bot_users", json!({"name": "ci"}));
    let id = bot.body["id"].as_str().unwrap();
    let key = server.post(&server.admin_key, "/api_keys", json!({"owner_id": id}));
    let token = key.body["token"].as_str().unwrap();
    let refused = server.get(token, "/users");
    assert_error(&refused, 403, 101);
    assert!(
        refused.body["details"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("bot users act as read/write developers only")
    );
    // It is a read/write developer: its own credentials it may make.
    let own = server.post(token, "/credentials", json!({}));
    assert_eq!(own.status, 201, "{:?}", own.body);
}

#[test]
fn members_are_added_with_least_privilege_by_default() {
    let server = start_server();
    let made = server.post(
        &server.admin_key,
        "/users",
        json!({"email": "erin@example.com", "name": "Erin"}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    assert_eq!(
        made.body["roles"],
        json!({"developer": "read_only", "team": "read_only", "billing": "none", "admin": false})
    );
    assert_eq!(made.body["state"], "active");
    assert_eq!(made.body["email"], "erin@example.com");
    assert_error(
        &server.post(
            &server.admin_key,
            "/users",
            json!({"email": "ERIN@example.com"}),
        ),
        409,
        103,
    );
    assert_error(
        &server.post(
            &server.admin_key,
            "/users",
            json!({"email": "not-an-email"}),
        ),
        400,
        105,
    );
    let users = server.get(&server.admin_key, "/users");
    assert_eq!(users.body["users"].as_array().unwrap().len(), 2);
    assert_eq!(
        server.get(&server.admin_key, "/account").body["seats_used"],
        2
    );
    let id = made.body["id"].as_str().unwrap();
    assert_eq!(
        server
            .delete(&server.admin_key, &format!("/users/{id}"))
            .status,
        204
    );
    assert_error(
        &server.get(&server.admin_key, &format!("/users/{id}")),
        404,
        102,
    );
}

// ---- verify ---------------------------------------------------------------------------

#[test]
fn verify_answers_who_for_valid_credentials_and_only_valid_false_otherwise() {
    let server = start_server();
    let key = &server.admin_key;
    let token = server.post(key, "/credentials", json!({"acl": ["bind:a.example.com"]}));
    let authtoken = token.body["token"].as_str().unwrap();
    let valid = server.post(key, "/verify", json!({"token": authtoken}));
    assert_eq!(valid.status, 200);
    assert_eq!(valid.body["valid"], true);
    assert_eq!(valid.body["kind"], "authtoken");
    assert_eq!(valid.body["owner_id"], server.admin_id);
    assert_eq!(valid.body["owner_kind"], "user");
    assert_eq!(valid.body["account_id"], server.account_id);
    assert_eq!(valid.body["acl"], json!(["bind:a.example.com"]));

    let ssh = server.post(key, "/ssh_credentials", json!({"public_key": ED25519}));
    assert_eq!(ssh.status, 201);
    let by_key = server.post(key, "/verify", json!({"ssh_public_key": ED25519}));
    assert_eq!(by_key.body["credential_id"], ssh.body["id"]);

    let mut flipped = authtoken.as_bytes().to_vec();
    flipped[40] = if flipped[40] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).unwrap();
    for presented in ["lk_at_bogus", &flipped, ""] {
        let invalid = server.post(key, "/verify", json!({"token": presented}));
        assert_eq!(
            (invalid.status, &invalid.body),
            (200, &json!({"valid": false}))
        );
    }
    assert_error(&server.post(key, "/verify", json!({})), 400, 105);
    assert_error(
        &server.post(
            key,
            "/verify",
            json!({"token": authtoken, "ssh_public_key": ED25519}),
        ),
        400,
        105,
    );
}

// ---- scopes and allowed networks -------------------------------------------------------

#[test]
fn an_api_keys_scopes_narrow_its_owners_rights() {
    let server = start_server();
    let key = &server.admin_key;
    let scoped = server.post(
        key,
        "/api_keys",
        json!({"scopes": ["iam.bot_users.*", "iam.bot_users.*"]}),
    );
    assert_eq!(scoped.status, 201, "{:?}", scoped.body);
    assert_eq!(scoped.body["scopes"], json!(["iam.bot_users.*"]));
    let token = scoped.body["token"].as_str().unwrap();
    assert_eq!(
        server
            .post(token, "/bot_users", json!({"name": "ci"}))
            .status,
        201
    );
    let refused = server.get(token, "/users");
    assert_error(&refused, 403, 101);
    assert!(
        refused.body["details"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("the scopes of credential ak_"),
        "{:?}",
        refused.body
    );
    // Scopes never widen: a read-only developer's key scoped to everything still cannot
    // create a key.
    let (_, dana) = server.member_with_key("dana@example.com", json!({}));
    let wide = server.post(key, "/api_keys", json!({"scopes": ["*"]}));
    assert_eq!(wide.status, 201);
    assert_error(
        &server.post(&dana, "/api_keys", json!({"scopes": ["*"]})),
        403,
        101,
    );

    for (body, field) in [
        (json!({"scopes": ["iam.*.get"]}), "scopes"),
        (json!({"scopes": [""]}), "scopes"),
    ] {
        let bad = server.post(key, "/api_keys", body);
        assert_error(&bad, 400, 105);
        assert_eq!(bad.body["details"]["field"], field);
    }
    // /verify needs iam.credentials.verify, which these scopes leave out.
    let refused = server.post(token, "/verify", json!({"token": key}));
    assert_error(&refused, 403, 101);
    assert!(
        refused.body["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("iam.credentials.verify")
    );
    let on_authtoken = server.post(key, "/credentials", json!({"scopes": ["iam.*"]}));
    assert_error(&on_authtoken, 400, 105);
    assert_eq!(on_authtoken.body["details"]["field"], "scopes");

    let id = scoped.body["id"].as_str().unwrap();
    let widened = server.patch(key, &format!("/api_keys/{id}"), json!({"scopes": []}));
    assert_eq!(widened.body["scopes"], json!([]));
    assert_eq!(server.get(token, "/users").status, 200);
}

#[test]
fn allowed_cidrs_limit_where_a_credential_works() {
    let server = start_server();
    let key = &server.admin_key;
    let here = server.post(key, "/api_keys", json!({"allowed_cidrs": ["127.0.0.0/8"]}));
    assert_eq!(here.status, 201, "{:?}", here.body);
    assert_eq!(here.body["allowed_cidrs"], json!(["127.0.0.0/8"]));
    assert_eq!(
        server
            .get(here.body["token"].as_str().unwrap(), "/bot_users")
            .status,
        200
    );
    let elsewhere = server.post(
        key,
        "/api_keys",
        json!({"allowed_cidrs": ["10.1.2.3", "2001:db8::/32"]}),
    );
    assert_eq!(
        elsewhere.body["allowed_cidrs"],
        json!(["10.1.2.3/32", "2001:db8::/32"])
    );
    let refused = server.get(elsewhere.body["token"].as_str().unwrap(), "/bot_users");
    assert_error(&refused, 401, 100);

    let bad = server.post(key, "/api_keys", json!({"allowed_cidrs": ["10.0.0.0/33"]}));
    assert_error(&bad, 400, 105);
    assert_eq!(bad.body["details"]["field"], "allowed_cidrs");
    let ssh = server.post(
        key,
        "/ssh_credentials",
        json!({"public_key": ED25519, "allowed_cidrs": ["10.0.0.0/8"]}),
    );
    assert_error(&ssh, 400, 106);
    assert_eq!(ssh.body["details"]["field"], "allowed_cidrs");

    // /verify with source_ip: inside the networks is valid, outside is just invalid.
    let agent = server.post(
        key,
        "/credentials",
        json!({"allowed_cidrs": ["192.0.2.0/24"]}),
    );
    let authtoken = agent.body["token"].as_str().unwrap();
    let inside = server.post(
        key,
        "/verify",
        json!({"token": authtoken, "source_ip": "192.0.2.7"}),
    );
    assert_eq!(inside.body["valid"], true);
    let outside = server.post(
        key,
        "/verify",
        json!({"token": authtoken, "source_ip": "198.51.100.1"}),
    );
    assert_eq!(outside.body, json!({"valid": false}));
    // Without a source_ip the networks cannot be shown to hold: fail closed.
    let unspecified = server.post(key, "/verify", json!({"token": authtoken}));
    assert_eq!(unspecified.body, json!({"valid": false}));
    let bad_ip = server.post(
        key,
        "/verify",
        json!({"token": authtoken, "source_ip": "nope"}),
    );
    assert_error(&bad_ip, 400, 105);
    assert_eq!(bad_ip.body["details"]["field"], "source_ip");
}

// ---- events ---------------------------------------------------------------------------

#[test]
fn events_are_newest_first_filterable_and_name_the_principal_and_credential() {
    let server = start_server();
    let key = &server.admin_key;
    let bot = server.post(key, "/bot_users", json!({"name": "ci"}));
    let bot_id = bot.body["id"].as_str().unwrap().to_owned();
    server.patch(
        key,
        &format!("/bot_users/{bot_id}"),
        json!({"name": "deploy"}),
    );
    let all = server.get(key, "/events");
    assert_eq!(all.status, 200, "{:?}", all.body);
    let events = all.body["events"].as_array().unwrap();
    let newest = &events[0];
    assert_eq!(newest["action"], "iam.bot_users.update");
    assert_eq!(newest["object_id"], bot_id.as_str());
    assert_eq!(newest["principal_id"], server.admin_id);
    assert_eq!(newest["principal_kind"], "user");
    assert!(newest["credential_id"].as_str().unwrap().starts_with("ak_"));
    assert_eq!(newest["before"]["name"], "ci");
    assert_eq!(newest["after"]["name"], "deploy");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    // The bootstrap was done by the system principal.
    assert_eq!(events.last().unwrap()["principal_kind"], "system");

    let on_bot = server.get(key, &format!("/events?object_id={bot_id}"));
    assert_eq!(on_bot.body["events"].as_array().unwrap().len(), 2);
    let created = server.get(key, "/events?action=iam.bot_users.create");
    assert_eq!(created.body["events"].as_array().unwrap().len(), 1);
    let by_system = server.get(key, "/events?principal_id=system");
    assert!(
        by_system.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["principal_kind"] == "system")
    );
    let future = server.get(key, "/events?since=2999-01-01T00:00:00Z");
    assert_eq!(future.body["events"], json!([]));
    let past = server.get(key, "/events?until=2000-01-01T00:00:00%2B00:00");
    assert_eq!(past.body["events"], json!([]));
    let bad = server.get(key, "/events?since=yesterday");
    assert_error(&bad, 400, 112);
    assert_eq!(bad.body["details"]["field"], "since");

    // Paging by before_id walks every event once, in order.
    let mut seen = Vec::new();
    let mut next = Some(format!("{}/events?limit=2", server.url));
    while let Some(url) = next {
        let page = server.get(key, &url);
        for e in page.body["events"].as_array().unwrap() {
            seen.push(e["seq"].as_u64().unwrap());
        }
        next = page.body["next_page_uri"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, seqs);

    let one = server.get(key, &format!("/events/{}", newest["id"].as_str().unwrap()));
    assert_eq!(one.body, *newest);
    // Only administrators read the audit trail.
    let (_, manager) = server.member_with_key("m@example.com", json!({"team": "manager"}));
    assert_error(&server.get(&manager, "/events"), 403, 101);
}

// ---- IP policies, rules and restrictions ------------------------------------------------

#[test]
fn ip_policies_rules_and_restrictions_in_ngrok_shape() {
    let server = start_server();
    let key = &server.admin_key;
    let policy = server.post(key, "/ip_policies", json!({"description": "office"}));
    assert_eq!(policy.status, 201, "{:?}", policy.body);
    let pid = policy.body["id"].as_str().unwrap().to_owned();
    assert!(pid.starts_with("ipp_"));
    assert_eq!(
        policy.body["uri"],
        format!("{}/ip_policies/{pid}", server.url)
    );

    let rule = server.post(
        key,
        "/ip_policy_rules",
        json!({"ip_policy_id": pid, "cidr": "10.1.2.3/8", "action": "allow", "description": "lan"}),
    );
    assert_eq!(rule.status, 201, "{:?}", rule.body);
    assert_eq!(rule.body["cidr"], "10.0.0.0/8");
    assert_eq!(rule.body["action"], "allow");
    assert_eq!(rule.body["ip_policy"]["id"], pid.as_str());
    assert_eq!(rule.body["ip_policy"]["uri"], policy.body["uri"]);
    let rid = rule.body["id"].as_str().unwrap().to_owned();
    assert!(rid.starts_with("ipr_"));
    let moved = server.patch(
        key,
        &format!("/ip_policy_rules/{rid}"),
        json!({"cidr": "2001:db8::/32"}),
    );
    assert_eq!(moved.body["cidr"], "2001:db8::/32");

    let restriction = server.post(
        key,
        "/ip_restrictions",
        json!({"type": "agent", "ip_policy_ids": [pid], "description": "agents"}),
    );
    assert_eq!(restriction.status, 201, "{:?}", restriction.body);
    assert!(restriction.body["id"].as_str().unwrap().starts_with("ipx_"));
    assert_eq!(restriction.body["enforced"], false, "warn-only by default");
    assert_eq!(restriction.body["type"], "agent");
    assert_eq!(restriction.body["ip_policies"][0]["id"], pid.as_str());

    let listed = server.get(key, "/ip_policy_rules");
    assert_eq!(listed.body["ip_policy_rules"].as_array().unwrap().len(), 1);
    assert_eq!(
        server.get(key, "/ip_restrictions").body["ip_restrictions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Bad input: each names its field and changes nothing.
    let before = count(&server, "/ip_policy_rules", "ip_policy_rules");
    for (body, field) in [
        (
            json!({"ip_policy_id": pid, "cidr": "10.0.0.0/33", "action": "allow"}),
            "cidr",
        ),
        (
            json!({"ip_policy_id": pid, "cidr": "10.0.0.0/8", "action": "maybe"}),
            "action",
        ),
        (json!({"ip_policy_id": pid, "action": "allow"}), "cidr"),
        (
            json!({"cidr": "10.0.0.0/8", "action": "allow"}),
            "ip_policy_id",
        ),
        (
            json!({"ip_policy_id": "ipp_0352FHSFuCpzwuA2PPTNK4", "cidr": "10.0.0.0/8", "action": "allow"}),
            "ip_policy_id",
        ),
    ] {
        let bad = server.post(key, "/ip_policy_rules", body);
        assert_error(&bad, 400, 105);
        assert_eq!(bad.body["details"]["field"], field, "{:?}", bad.body);
    }
    assert_eq!(
        count(&server, "/ip_policy_rules", "ip_policy_rules"),
        before
    );
    for (body, field) in [
        (
            json!({"type": "everything", "ip_policy_ids": [pid]}),
            "type",
        ),
        (json!({"type": "api"}), "ip_policy_ids"),
        (json!({"type": "api", "ip_policy_ids": []}), "ip_policy_ids"),
        (
            json!({"type": "api", "ip_policy_ids": ["nope"]}),
            "ip_policy_ids",
        ),
        (
            json!({"type": "api", "ip_policy_ids": [pid, pid]}),
            "ip_policy_ids",
        ),
    ] {
        let bad = server.post(key, "/ip_restrictions", body);
        assert_error(&bad, 400, 105);
        assert_eq!(bad.body["details"]["field"], field, "{:?}", bad.body);
    }
    let misplaced = server.post(key, "/ip_policies", json!({"cidr": "10.0.0.0/8"}));
    assert_error(&misplaced, 400, 106);

    // Deleting the policy deletes its rules; the restriction keeps its reference.
    assert_eq!(
        server.delete(key, &format!("/ip_policies/{pid}")).status,
        204
    );
    assert_error(
        &server.get(key, &format!("/ip_policy_rules/{rid}")),
        404,
        102,
    );
    let kept = server.get(
        key,
        &format!(
            "/ip_restrictions/{}",
            restriction.body["id"].as_str().unwrap()
        ),
    );
    assert_eq!(kept.body["ip_policies"][0]["id"], pid.as_str());
}

#[test]
fn api_ip_restrictions_warn_then_enforce() {
    let server = start_server();
    let key = &server.admin_key;
    let policy = server.post(key, "/ip_policies", json!({}));
    let pid = policy.body["id"].as_str().unwrap().to_owned();
    let rule = server.post(
        key,
        "/ip_policy_rules",
        json!({"ip_policy_id": pid, "cidr": "10.0.0.0/8", "action": "allow"}),
    );
    let rid = rule.body["id"].as_str().unwrap().to_owned();
    let restriction = server.post(
        key,
        "/ip_restrictions",
        json!({"type": "api", "ip_policy_ids": [pid]}),
    );
    assert_eq!(restriction.status, 201);
    let xid = restriction.body["id"].as_str().unwrap().to_owned();

    // Warn-only: 127.0.0.1 is outside 10/8, but the requests go through, flagged.
    for _ in 0..3 {
        let warned = server.get(key, "/bot_users");
        assert_eq!(warned.status, 200);
        let header = warned
            .headers
            .iter()
            .find(|(k, _)| k == "latchkey-ip-restriction-warning")
            .map(|(_, v)| v.clone())
            .expect("the warning header");
        assert!(
            header.contains(&xid) && header.contains("127.0.0.1"),
            "{header}"
        );
    }
    // The misses are recorded, coalesced into one event, within the flush interval.
    let started = Instant::now();
    let event = loop {
        let events = server.get(key, "/events?action=iam.ip_restrictions.warn");
        if let Some(event) = events.body["events"]
            .as_array()
            .and_then(|e| e.first())
            .cloned()
        {
            break event;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no warning event"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(event["object_id"], xid.as_str());
    assert_eq!(event["after"]["ip"], "127.0.0.1");
    assert!(event["after"]["count"].as_u64().unwrap() >= 3, "{event}");

    // Enforced with 127.0.0.1 allowed: no warning. Then a deny rule covers it: refused.
    let allow_here = server.post(
        key,
        "/ip_policy_rules",
        json!({"ip_policy_id": pid, "cidr": "127.0.0.1/32", "action": "allow"}),
    );
    assert_eq!(allow_here.status, 201, "{:?}", allow_here.body);
    let enforced = server.patch(
        key,
        &format!("/ip_restrictions/{xid}"),
        json!({"enforced": true}),
    );
    assert_eq!(enforced.status, 200, "{:?}", enforced.body);
    let fine = server.get(key, "/bot_users");
    assert_eq!(fine.status, 200);
    assert!(
        fine.headers
            .iter()
            .all(|(k, _)| k != "latchkey-ip-restriction-warning")
    );
    let deny_here = server.post(
        key,
        "/ip_policy_rules",
        json!({"ip_policy_id": pid, "cidr": "127.0.0.0/8", "action": "deny"}),
    );
    assert_eq!(deny_here.status, 201);
    let refused = server.get(key, "/bot_users");
    assert_error(&refused, 403, 115);
    assert_eq!(refused.body["details"]["policy"], "ip_restrictions");
    assert!(
        refused.body["details"]["reason"]
            .as_str()
            .unwrap()
            .contains(&xid)
    );
    let _ = rid;
}

#[test]
fn only_administrators_change_what_dashboard_restrictions_use() {
    let server = start_server();
    let (_, dev) = server.member_with_key("dev@example.com", json!({"developer": "read_write"}));
    // A read/write developer manages IP policies and non-dashboard restrictions.
    let policy = server.post(&dev, "/ip_policies", json!({"description": "ci"}));
    assert_eq!(policy.status, 201, "{:?}", policy.body);
    let pid = policy.body["id"].as_str().unwrap().to_owned();
    let rule = server.post(
        &dev,
        "/ip_policy_rules",
        json!({"ip_policy_id": pid, "cidr": "0.0.0.0/0", "action": "allow"}),
    );
    assert_eq!(rule.status, 201);
    let agent = server.post(
        &dev,
        "/ip_restrictions",
        json!({"type": "agent", "ip_policy_ids": [pid]}),
    );
    assert_eq!(agent.status, 201, "{:?}", agent.body);
    let dashboard = server.post(
        &dev,
        "/ip_restrictions",
        json!({"type": "dashboard", "ip_policy_ids": [pid]}),
    );
    assert_error(&dashboard, 403, 101);

    // Once an administrator attaches the policy to a dashboard restriction, it and its
    // rules are the administrators' alone.
    let dashboard = server.post(
        &server.admin_key,
        "/ip_restrictions",
        json!({"type": "dashboard", "ip_policy_ids": [pid]}),
    );
    assert_eq!(dashboard.status, 201);
    let rid = rule.body["id"].as_str().unwrap();
    assert_error(
        &server.patch(
            &dev,
            &format!("/ip_policies/{pid}"),
            json!({"description": "x"}),
        ),
        403,
        101,
    );
    assert_error(
        &server.patch(
            &dev,
            &format!("/ip_policy_rules/{rid}"),
            json!({"cidr": "10.0.0.0/8"}),
        ),
        403,
        101,
    );
    assert_error(
        &server.delete(&dev, &format!("/ip_policies/{pid}")),
        403,
        101,
    );
    assert_eq!(
        server
            .patch(
                &server.admin_key,
                &format!("/ip_policies/{pid}"),
                json!({"description": "x"})
            )
            .status,
        200
    );
    // Reading stays open to developers.
    assert_eq!(server.get(&dev, &format!("/ip_policies/{pid}")).status, 200);
}

#[test]
fn verify_checks_agents_against_agent_ip_restrictions() {
    let server = start_server();
    let key = &server.admin_key;
    let token = server.post(key, "/credentials", json!({}));
    let authtoken = token.body["token"].as_str().unwrap().to_owned();
    let policy = server.post(key, "/ip_policies", json!({}));
    let pid = policy.body["id"].as_str().unwrap().to_owned();
    server.post(
        key,
        "/ip_policy_rules",
        json!({"ip_policy_id": pid, "cidr": "192.0.2.0/24", "action": "allow"}),
    );
    let restriction = server.post(
        key,
        "/ip_restrictions",
        json!({"type": "agent", "ip_policy_ids": [pid]}),
    );
    let xid = restriction.body["id"].as_str().unwrap().to_owned();

    // Warn-only: an agent outside is still valid, and the answer is flagged.
    let outside = server.post(
        key,
        "/verify",
        json!({"token": authtoken, "source_ip": "198.51.100.7"}),
    );
    assert_eq!(outside.body["valid"], true);
    assert!(
        outside
            .headers
            .iter()
            .any(|(k, v)| k == "latchkey-ip-restriction-warning" && v.contains(&xid))
    );
    let inside = server.post(
        key,
        "/verify",
        json!({"token": authtoken, "source_ip": "192.0.2.9"}),
    );
    assert_eq!(inside.body["valid"], true);
    assert!(
        inside
            .headers
            .iter()
            .all(|(k, _)| k != "latchkey-ip-restriction-warning")
    );

    // Enforced: outside (or unknown) is invalid; inside stays valid; API keys are not agents.
    server.patch(
        key,
        &format!("/ip_restrictions/{xid}"),
        json!({"enforced": true}),
    );
    for body in [
        json!({"token": authtoken, "source_ip": "198.51.100.7"}),
        json!({"token": authtoken}),
    ] {
        assert_eq!(
            server.post(key, "/verify", body).body,
            json!({"valid": false})
        );
    }
    let inside = server.post(
        key,
        "/verify",
        json!({"token": authtoken, "source_ip": "192.0.2.9"}),
    );
    assert_eq!(inside.body["valid"], true);
    let api_key = server.post(
        key,
        "/verify",
        json!({"token": key, "source_ip": "198.51.100.7"}),
    );
    assert_eq!(api_key.body["valid"], true);
}

#[test]
fn the_readme_documents_every_error_code() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let documented: Vec<(String, String)> = readme
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells
                .get(1)?
                .strip_prefix("`ERR_LATCHKEY_")?
                .strip_suffix('`')?;
            Some((code.to_owned(), cells.get(2)?.to_string()))
        })
        .collect();
    let actual: Vec<(String, String)> = latchkey::api::error::ALL
        .iter()
        .map(|(code, _)| (code.0.to_string(), code.1.as_u16().to_string()))
        .collect();
    assert_eq!(documented, actual);
}

// ---- authorize ---------------------------------------------------------------------------

#[test]
fn authorize_answers_for_a_principal_by_id_or_token_with_the_deciding_policy() {
    let server = start_server();
    let key = &server.admin_key;
    let (dana, dana_key) = server.member_with_key("dana@example.com", json!({}));

    let allowed = server.post(
        key,
        "/authorize",
        json!({"principal": {"id": server.admin_id}, "action": "iam.api_keys.create", "resource": {"type": "api_key", "id": "new"}, "context": {}}),
    );
    assert_eq!(allowed.status, 200, "{:?}", allowed.body);
    assert_eq!(allowed.body["decision"], "allow");
    assert_eq!(allowed.body["policy"], "account-rbac");
    assert!(allowed.body.get("evaluated").is_none());

    // api.md's own example.
    let app = server.post(
        key,
        "/authorize",
        json!({"principal": {"id": dana}, "action": "computers.delete", "resource": {"type": "computer", "id": "c-42", "tenant_id": "tnt_0352FHSFuCpzwuA2PPTNK4"}, "context": {}}),
    );
    assert_eq!(
        app.body,
        json!({"decision": "deny", "policy": "tenant-roles", "reason": "no role assignment for tenant tnt_0352FHSFuCpzwuA2PPTNK4"})
    );

    let by_token = server.post(
        key,
        "/authorize",
        json!({"principal": {"token": dana_key}, "action": "iam.api_keys.create", "resource": {"type": "api_key"}, "explain": true}),
    );
    assert_eq!(by_token.body["decision"], "deny");
    assert_eq!(
        by_token.body["reason"],
        "developer read_only may only read api_keys"
    );
    assert_eq!(
        by_token.body["evaluated"],
        json!([{"policy": "account-rbac", "decision": "deny", "reason": "developer read_only may only read api_keys"}])
    );

    let invalid = server.post(
        key,
        "/authorize",
        json!({"principal": {"token": "lk_ak_nope"}, "action": "iam.api_keys.list", "resource": {"type": "api_key"}}),
    );
    assert_eq!(
        (
            invalid.body["decision"].as_str(),
            invalid.body["policy"].as_str()
        ),
        (Some("deny"), Some("latchkey"))
    );
    let stranger = server.post(
        key,
        "/authorize",
        json!({"principal": {"id": "usr_0352FHSFuNBfF8jRYTDbFU"}, "action": "iam.api_keys.list", "resource": {"type": "api_key"}}),
    );
    assert_eq!(stranger.body["decision"], "deny");
    assert!(
        stranger.body["reason"]
            .as_str()
            .unwrap()
            .contains("is not a member"),
        "{:?}",
        stranger.body
    );

    assert_error(
        &server.post(
            key,
            "/authorize",
            json!({"principal": {}, "action": "x", "resource": {"type": "t"}}),
        ),
        400,
        105,
    );
    assert_error(
        &server.post(key, "/authorize", json!({"action": "x"})),
        400,
        106,
    );
}

#[test]
fn authorize_batch_answers_in_order_and_bounds_the_batch() {
    let server = start_server();
    let key = &server.admin_key;
    let check = |action: &str| json!({"principal": {"id": server.admin_id}, "action": action, "resource": {"type": "x"}});
    let batch = server.post(
        key,
        "/authorize/batch",
        json!({"checks": [check("iam.bot_users.delete"), check("computers.view"), check("agent.bind")]}),
    );
    assert_eq!(batch.status, 200, "{:?}", batch.body);
    let decisions: Vec<&str> = batch.body["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["allow", "deny", "deny"]);
    assert_eq!(batch.body["decisions"][1]["policy"], "tenant-roles");
    assert_eq!(
        batch.body["decisions"][2]["reason"],
        "agent.bind needs the credential the agent presented"
    );
    let too_many: Vec<Value> = (0..101).map(|_| check("computers.view")).collect();
    assert_error(
        &server.post(key, "/authorize/batch", json!({"checks": too_many})),
        400,
        105,
    );
    assert_error(
        &server.post(key, "/authorize/batch", json!({"checks": []})),
        400,
        105,
    );
}

#[test]
fn effective_permissions_are_what_the_policies_allow() {
    let server = start_server();
    let (dana, dana_key) = server.member_with_key("dana@example.com", json!({}));
    let read_only = server.get(
        &server.admin_key,
        &format!("/users/{dana}/effective_permissions"),
    );
    assert_eq!(read_only.status, 200, "{:?}", read_only.body);
    let actions: Vec<&str> = read_only.body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(actions.contains(&"iam.api_keys.list"));
    assert!(actions.contains(&"iam.users.list"));
    assert!(!actions.contains(&"iam.api_keys.create"));
    assert!(!actions.contains(&"iam.events.list"));
    assert_eq!(
        read_only.body["permissions"],
        json!([]),
        "no tenant roles yet"
    );
    let admin = server.get(
        &server.admin_key,
        &format!("/users/{}/effective_permissions", server.admin_id),
    );
    let every: usize = latchkey::app::IAM_ACTIONS
        .iter()
        .map(|(_, _, verbs)| verbs.len())
        .sum();
    assert_eq!(
        admin.body["actions"].as_array().unwrap().len(),
        every,
        "every iam action"
    );
    // A member may look at itself (team read_only may get users).
    assert_eq!(
        server
            .get(&dana_key, &format!("/users/{dana}/effective_permissions"))
            .status,
        200
    );
    assert_error(
        &server.get(
            &server.admin_key,
            "/users/usr_0352FHSFuNBfF8jRYTDbFU/effective_permissions",
        ),
        404,
        102,
    );
}

#[test]
fn account_settings_are_for_administrators_and_sso_and_scim_keep_their_defaults() {
    let server = start_server();
    let key = &server.admin_key;
    let updated = server.patch(
        key,
        "/account",
        json!({"mfa_required": true, "sso_mode": "off", "provisioning": "invitations"}),
    );
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["mfa_required"], true);
    for (body, field) in [
        (json!({"sso_mode": "required"}), "sso_mode"),
        (json!({"provisioning": "scim"}), "provisioning"),
    ] {
        let refused = server.patch(key, "/account", body);
        assert_error(&refused, 400, 105);
        assert_eq!(refused.body["details"]["field"], field);
    }
    assert_eq!(server.get(key, "/account").body["sso_mode"], "off");
    let (_, manager) = server.member_with_key(
        "m@example.com",
        json!({"team": "manager", "billing": "access"}),
    );
    assert_error(
        &server.patch(&manager, "/account", json!({"mfa_required": false})),
        403,
        101,
    );
    assert_eq!(server.get(key, "/account").body["mfa_required"], true);
    let events = server.get(key, "/events?action=iam.account.update");
    assert_eq!(events.body["events"][0]["after"]["mfa_required"], true);
}

// ---- operations ----------------------------------------------------------------------------

#[test]
fn metrics_count_requests_decisions_and_policy_faults_without_authentication() {
    let policies = copy_builtins();
    let trap = wat::parse_str(include_str!("../src/policy/fixtures/trap.wat")).unwrap();
    std::fs::write(policies.path().join("trap.wasm"), trap).unwrap();
    std::fs::write(
        policies.path().join("trap.toml"),
        "name = \"trap\"\nmodule = \"trap.wasm\"\nkind = \"custom\"\nactions = [\"iam.access_review.get\"]\n",
    )
    .unwrap();
    let server = start_server_with(policies.path());
    let key = &server.admin_key;
    for _ in 0..3 {
        assert_eq!(server.get(key, "/bot_users").status, 200);
    }
    assert_eq!(server.get(key, "/bot_users/bot_nope").status, 404);
    // Paths nobody serves are counted as such, never as a route that exists.
    for path in ["/policies/x", "/authorize/x", "/nowhere", "/users/x/y/z"] {
        assert_eq!(server.get(key, path).status, 404, "{path}");
    }
    server.post(key, "/verify", json!({"token": key}));
    server.post(key, "/verify", json!({"token": "lk_at_nope"}));
    let faulted = server.post(
        key,
        "/authorize",
        json!({"principal": {"id": server.admin_id}, "action": "iam.access_review.get", "resource": {"type": "access_review"}}),
    );
    assert_eq!(faulted.body["decision"], "deny");
    assert_eq!(faulted.body["policy"], "trap");

    let mut response = server
        .agent()
        .get(&format!("{}/metrics", server.url))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "Prometheus text"
    );
    let text = response.body_mut().read_to_string().unwrap();
    for line in [
        "latchkey_http_requests_total{route=\"/bot_users\",status=\"200\"} 3",
        "latchkey_http_requests_total{route=\"/bot_users/{id}\",status=\"404\"} 1",
        "latchkey_http_requests_total{route=\"other\",status=\"404\"} 4",
        "latchkey_verify_total{result=\"valid\"} 1",
        "latchkey_verify_total{result=\"invalid\"} 1",
        "latchkey_authorize_total{decision=\"deny\"} 1",
        "latchkey_policy_faults_total{policy=\"trap\"} 1",
        "latchkey_policy_faults_total{policy=\"account-rbac\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let count = text
        .lines()
        .find_map(|l| l.strip_prefix("latchkey_http_request_duration_seconds_count "))
        .unwrap();
    assert!(count.parse::<u64>().unwrap() >= 7, "{count}");
    assert!(!text.contains("lk_ak_"), "no secret in metrics");
}

#[test]
fn every_route_of_the_openapi_document_is_served_and_the_document_is_too() {
    let server = start_server();
    let served = reply(
        server
            .agent()
            .get(&format!("{}/openapi.json", server.url))
            .call(),
    );
    assert_eq!(served.status, 200);
    let file: Value = serde_json::from_str(latchkey::api::OPENAPI).unwrap();
    assert_eq!(served.body, file);
    let mut routes = 0;
    for (path, item) in file["paths"].as_object().unwrap() {
        for method in ["get", "post", "patch", "delete", "put"] {
            if item.get(method).is_none() {
                continue;
            }
            routes += 1;
            let concrete = path
                .replace("{id}", "x_0352FHSFuCpzwuA2PPTNK4")
                .replace("{name}", "app.nothing");
            let url = format!("{}{concrete}", server.url);
            let auth = bearer(&server.admin_key);
            let request = match method {
                "get" => server
                    .agent()
                    .get(&url)
                    .header("Authorization", &auth)
                    .call(),
                "delete" => server
                    .agent()
                    .delete(&url)
                    .header("Authorization", &auth)
                    .call(),
                "post" => server
                    .agent()
                    .post(&url)
                    .header("Authorization", &auth)
                    .send_json(json!({})),
                "patch" => server
                    .agent()
                    .patch(&url)
                    .header("Authorization", &auth)
                    .send_json(json!({})),
                _ => server
                    .agent()
                    .put(&url)
                    .header("Authorization", &auth)
                    .send_json(json!({})),
            };
            let answer = reply(request);
            let code = answer.body["error_code"].as_str().unwrap_or("");
            assert!(
                code != "ERR_LATCHKEY_109" && code != "ERR_LATCHKEY_110",
                "{method} {path} is documented but not served: {:?}",
                answer.body
            );
        }
    }
    assert_eq!(routes, 137);
}

/// Make sure Python can import `module`, installing `requirement` from PyPI if not (so the
/// README's test command works on a fresh machine; `.ci/run` installs both ahead).
fn python_package(module: &str, requirement: &str) {
    let importable = || {
        Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !importable() {
        let pip = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(requirement)
            .status();
        assert!(
            pip.is_ok_and(|s| s.success()) && importable(),
            "this test needs {requirement} (python3 -m pip install {requirement})"
        );
    }
}

/// schemathesis, the schema-driven API fuzzer.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// schemathesis (PyPI; installed by `.ci/run`, or here when missing) runs `--checks all`
/// against the document the real server serves, with a bounded example count and a fixed
/// seed: every operation's answers must match what the document says, valid requests
/// must be accepted and invalid ones refused, on every declared status, header and
/// schema. `tests/schemathesis.toml` lists the few operations left out (they would
/// delete, demote or lock out the caller itself) and the error statuses declared where
/// validity depends on state a schema cannot know.
#[test]
fn schemathesis_finds_nothing_wrong_with_the_served_document() {
    python_package("schemathesis", SCHEMATHESIS);
    let (port, _inbox) = crate::support::smtp_inbox();
    let smtp = format!("smtp://127.0.0.1:{port}");
    let server = start_configured(
        Arc::new(tempfile::tempdir().unwrap()),
        &policies_dir(),
        None,
        &[("LATCHKEY_SMTP_URL", &smtp)],
    );
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let out = Command::new("python3")
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(&config)
        .args([
            "run",
            &format!("{}/openapi.json", server.url),
            "--checks",
            "all",
        ])
        .args(["-H", &format!("Authorization: Bearer {}", server.admin_key)])
        .arg("--tls-verify")
        .arg(&server.cert)
        .args(["--max-examples", "10", "--workers", "1", "--seed", "1"])
        .args(["--phases", "examples,coverage,fuzzing", "--no-color"])
        // The server closes a kept-alive connection idle past its client timeout (10 s);
        // a busy machine can make the client reuse one just closed: retry that.
        .args(["--request-timeout", "30", "--request-retries", "2"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains(" passed"), "{report}");
}

/// ngrok's official Python API client (`ngrok-api` on PyPI, installed by `.ci/run`),
/// unmodified, with its base URL set to the server and the certificate trusted, manages
/// every ngrok-compatible resource (tests/compat/ngrok_client.py).
#[test]
fn the_official_ngrok_client_manages_every_compatible_resource() {
    python_package("ngrok", "ngrok-api==0.19.0");
    let server = start_server();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/ngrok_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&server.url)
        .arg(&server.admin_key)
        .env("REQUESTS_CA_BUNDLE", &server.cert)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.ends_with("all ok\n"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn secrets_never_reach_the_log() {
    let server = start_server();
    let key = server.admin_key.clone();
    let made = server.post(&key, "/api_keys", json!({}));
    let token = made.body["token"].as_str().unwrap().to_owned();
    let authtoken = server.post(&key, "/credentials", json!({})).body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    server.post(&key, "/verify", json!({"token": authtoken}));
    server.post(&key, "/verify", json!({"token": "lk_at_wrong"}));
    server.get("lk_ak_not_a_key", "/bot_users");
    let dir = Arc::clone(&server.dir);
    let (status, _) = server.stop();
    assert!(status.success());
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(log.contains("request"), "debug logging was on: {log}");
    for secret in [&key, &token, &authtoken] {
        let body = &secret[secret.len() - 40..];
        assert!(!log.contains(body), "a secret reached the log");
    }
    assert!(!log.contains("lk_ak_") && !log.contains("lk_at_"), "{log}");
}

#[test]
fn members_are_renamed_but_a_manager_cannot_rename_an_administrator() {
    let server = start_server();
    let (dev, _) = server.member_with_key("dev@example.com", json!({}));
    let (_, manager) = server.member_with_key("mgr@example.com", json!({"team": "manager"}));
    let renamed = server.patch(&manager, &format!("/users/{dev}"), json!({"name": "Devon"}));
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    assert_eq!(renamed.body["name"], "Devon");
    let refused = server.patch(
        &manager,
        &format!("/users/{}", server.admin_id),
        json!({"name": "x"}),
    );
    assert_error(&refused, 403, 101);
    assert_error(
        &server.patch(
            &server.admin_key,
            &format!("/users/{dev}"),
            json!({"name": ""}),
        ),
        400,
        105,
    );
    let events = server.get(
        &server.admin_key,
        &format!("/events?action=iam.users.update&object_id={dev}"),
    );
    assert_eq!(events.body["events"][0]["after"]["name"], "Devon");
}

/// Filtered pages keep their filters in `next_page_uri`, so walking the links yields
/// exactly the filtered list; a `before_id` of another kind of object is a 400.
#[test]
fn filtered_pages_link_to_the_next_page_with_the_same_filters() {
    let server = start_server();
    let key = &server.admin_key;
    for i in 0..5 {
        let made = server.post(key, "/bot_users", json!({"name": format!("b{i}")}));
        assert_eq!(made.status, 201);
        let made = server.post(key, "/tenants", json!({"name": format!("t{i}")}));
        assert_eq!(made.status, 201, "{:?}", made.body);
    }
    let mut actions = Vec::new();
    let mut next = Some("/events?action=iam.bot_users.create&limit=2".to_owned());
    let mut pages = 0;
    while let Some(path) = next {
        let page = server.get(key, &path);
        assert_eq!(page.status, 200, "{:?}", page.body);
        pages += 1;
        for event in page.body["events"].as_array().unwrap() {
            actions.push(event["action"].as_str().unwrap().to_owned());
        }
        next = page.body["next_page_uri"].as_str().map(str::to_owned);
        if let Some(uri) = &next {
            assert!(uri.contains("action=iam.bot_users.create"), "{uri}");
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(actions, vec!["iam.bot_users.create"; 5]);

    let bots = server.get(key, "/bot_users?limit=2");
    let names: Vec<&str> = bots.body["bot_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b4", "b3"]);
    let tenant = server.get(key, "/tenants?limit=1").body["tenants"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_error(
        &server.get(key, &format!("/bot_users?before_id={tenant}")),
        400,
        112,
    );
    assert_error(
        &server.get(key, &format!("/api_keys?before_id={tenant}")),
        400,
        112,
    );
    assert_error(
        &server.get(key, &format!("/events?before_id={tenant}")),
        400,
        112,
    );
}

#[test]
fn every_path_of_the_contract_is_in_the_openapi_document() {
    let contract =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md")).unwrap();
    let document: Value = serde_json::from_str(latchkey::api::OPENAPI).unwrap();
    let paths = document["paths"].as_object().unwrap();
    // The first column of the contract's table of latchkey resources.
    let table = contract
        .split("## latchkey resources")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap();
    let mut named = Vec::new();
    for row in table.lines().filter(|l| l.starts_with("| `/")) {
        let first = row.split(" | ").next().unwrap();
        named.extend(
            first
                .split('`')
                .filter(|p| p.starts_with('/'))
                .map(str::to_owned),
        );
    }
    assert!(named.len() >= 15, "{named:?}");
    for path in &named {
        assert!(
            paths.contains_key(path),
            "{path} is in docs/api.md but not in openapi.json"
        );
    }
    // And the ngrok-compatible resources it names.
    for path in [
        "/bot_users",
        "/credentials",
        "/api_keys",
        "/ssh_credentials",
        "/ip_policies",
        "/ip_policy_rules",
        "/ip_restrictions",
        "/credentials/{id}/rotate",
    ] {
        assert!(contract.contains(path), "{path}");
        assert!(paths.contains_key(path), "{path}");
    }
}
