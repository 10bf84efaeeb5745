//! Loopback load: `POST /verify` with a valid API key and `POST /authorize` (a tenant
//! decision: may a Technician of tenant T1 run maintenance on a computer of T1), over TLS
//! with keep-alive, against the real `latchkey serve`, and in the same run against a
//! minimal hyper + rustls server that answers `200 {}` (the ceiling of this stack on this
//! machine). Both servers are separate processes (the ceiling is this benchmark
//! re-executed), both use the same TLS provider, and the same client drives them. Each
//! round runs the ceiling then `/verify` with the verify request, the ceiling then
//! `/authorize` with the same check every time (its verdict is remembered), and the
//! ceiling then `/authorize` with a check of another resource every time (decided every
//! time); each ratio is the median of the rounds' ratios, and each run reports the CPU
//! time per request of the server and of the client (all their threads' time on a core,
//! from `/proc`). Then `/authorize/batch` of 100 checks against 100 single calls.
//!
//! Then a login flood: `POST /verify` at a fixed rate (`LATCHKEY_FLOOD_VERIFY_RATE`,
//! default 5,000 requests/s, open loop: latency counts from when each request was due),
//! in alternating rounds without and with a flood of failing logins
//! (`LATCHKEY_FLOOD_LOGIN_RATE`, default 30/s, each from another 127.0.0.x address and
//! email, so every one pays an argon2id hash), and the p99 of each. Each flood login
//! opens its own TLS connection, as an attacker's would; `LATCHKEY_FLOOD_KEEPALIVE=1`
//! sends them over 250 kept-alive connections instead (one per address), to separate
//! the cost of the hashes from that of the handshakes.
//!
//! Run: `cargo bench --bench load`. Bounded: `LATCHKEY_LOAD_ROUNDS` (default 3)
//! alternating rounds of `LATCHKEY_LOAD_SECONDS` (default 6) per server, each after a
//! 2 s warm-up, over `LATCHKEY_LOAD_CONNECTIONS` (default 32) connections; 127.0.0.0/8
//! only; both servers are stopped at the end. `LATCHKEY_LOAD_PHASES=throughput` or
//! `=flood` runs one of the two parts (default both).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

const CEILING_ENV: &str = "LATCHKEY_LOAD_CEILING_DIR";

// The same allocator as the latchkey binary, so the ceiling is this stack's, not a
// different allocator's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Re-executed as the ceiling server.
    if let Some(dir) = std::env::var_os(CEILING_ENV) {
        ceiling_server(Path::new(&dir));
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: only run the
    // load when benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let seconds: u64 = env_or("LATCHKEY_LOAD_SECONDS", 6);
    let rounds: usize = env_or("LATCHKEY_LOAD_ROUNDS", 3);
    let connections: usize = env_or("LATCHKEY_LOAD_CONNECTIONS", 32);
    let dir = tempfile::tempdir().unwrap();

    let mut latchkey = start_latchkey(dir.path());
    let ceiling_dir = dir.path().join("ceiling");
    let mut ceiling = start_ceiling(&ceiling_dir);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let target = Target {
        pid: latchkey.child.id(),
        addr: latchkey.addr,
        cert: latchkey.cert.clone(),
        path: "/verify",
        key: latchkey.key.clone(),
        body: format!("{{\"token\":\"{}\"}}", latchkey.key),
        distinct: false,
    };
    let phases =
        std::env::var("LATCHKEY_LOAD_PHASES").unwrap_or_else(|_| "throughput,flood".to_owned());
    if phases.split(',').any(|p| p == "throughput") {
        throughput(&runtime, &target, &ceiling, connections, rounds, seconds);
    }
    if phases.split(',').any(|p| p == "flood") {
        flood(&runtime, &target, rounds, seconds);
    }
    latchkey.child.kill().ok();
    ceiling.child.kill().ok();
    latchkey.child.wait().ok();
    ceiling.child.wait().ok();
}

/// `/verify` and `/authorize` against the ceiling, alternating, and `/authorize/batch`
/// against single calls.
fn throughput(
    runtime: &tokio::runtime::Runtime,
    target: &Target,
    ceiling: &Server,
    connections: usize,
    rounds: usize,
    seconds: u64,
) {
    let check = runtime.block_on(tenant_check(target));
    let authorize_target = Target {
        path: "/authorize",
        body: check.to_string(),
        ..target.clone()
    };
    let batch_target = Target {
        path: "/authorize/batch",
        body: serde_json::json!({"checks": vec![check; 100]}).to_string(),
        ..target.clone()
    };
    eprintln!(
        "load: {connections} connections, {rounds} alternating rounds of {seconds} s per server after 2 s warm-up each, {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // Each latchkey run is compared with the ceiling answering the same request (the
    // client's share of the work, on the same cores, is the same), in the same round.
    let on_ceiling = |t: &Target| Target {
        pid: ceiling.child.id(),
        addr: ceiling.addr,
        cert: ceiling.cert.clone(),
        ..t.clone()
    };
    // The same check again and again (what the policies decided is remembered), and a
    // check of another resource every time (decided every time).
    let distinct_target = Target {
        distinct: true,
        ..authorize_target.clone()
    };
    let compared = [
        ("latchkey `POST /verify`", target.clone()),
        (
            "latchkey `POST /authorize` (tenant decision, the same check)",
            authorize_target.clone(),
        ),
        (
            "latchkey `POST /authorize` (tenant decision, another resource each call)",
            distinct_target,
        ),
    ];
    // Alternate, so drift on a shared machine falls on all alike.
    let mut ceiling_runs = Vec::new();
    let mut runs: Vec<(Vec<Outcome>, Vec<f64>)> =
        compared.iter().map(|_| (Vec::new(), Vec::new())).collect();
    let (mut single_runs, mut batch_runs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for ((_, latchkey), (outcomes, ratios)) in compared.iter().zip(runs.iter_mut()) {
            let ceiling_round = runtime.block_on(run(&on_ceiling(latchkey), connections, seconds));
            let round = runtime.block_on(run(latchkey, connections, seconds));
            ratios.push(round.per_second / ceiling_round.per_second);
            ceiling_runs.push(ceiling_round);
            outcomes.push(round);
        }
        single_runs.push(runtime.block_on(run(&authorize_target, connections, seconds)));
        batch_runs.push(runtime.block_on(run(&batch_target, connections, seconds)));
    }
    let ceiling_result = Outcome::merge(ceiling_runs);
    let singles = Outcome::merge(single_runs);
    let batches = Outcome::merge(batch_runs);

    println!();
    println!(
        "| server | requests/s | p50 | p99 | CPU per request: server / client | of the ceiling (median of rounds) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let (server, client) = ceiling_result.cpu_per_request();
    println!(
        "| hyper + rustls answering `200 {{}}` (ceiling) | {:.0} | {:.0} µs | {:.0} µs | {server:.1} / {client:.1} µs | 100% |",
        ceiling_result.per_second, ceiling_result.p50_micros, ceiling_result.p99_micros
    );
    let mut errors = ceiling_result.errors + batches.errors;
    for ((name, _), (outcomes, mut ratios)) in compared.iter().zip(runs) {
        let r = Outcome::merge(outcomes);
        errors += r.errors;
        let (server, client) = r.cpu_per_request();
        println!(
            "| {name} | {:.0} | {:.0} µs | {:.0} µs | {server:.1} / {client:.1} µs | {:.0}% |",
            r.per_second,
            r.p50_micros,
            r.p99_micros,
            100.0 * median(&mut ratios)
        );
    }
    let per_check_ratio = singles.per_second / (100.0 * batches.per_second);
    println!(
        "\n`POST /authorize/batch` of 100 checks: {:.0} batches/s (p50 {:.0} µs, p99 {:.0} µs) against {:.0} single calls/s: one batch costs {:.2}x of 100 single calls",
        batches.per_second,
        batches.p50_micros,
        batches.p99_micros,
        singles.per_second,
        per_check_ratio
    );
    assert_eq!(errors, 0, "requests answered with an error");
}

/// The same fixed `/verify` rate, alternately without and with failing logins; the
/// ratio of the p99s is the median of the rounds' ratios (a hiccup of a shared host in
/// one round moves one ratio, not the result).
fn flood(runtime: &tokio::runtime::Runtime, target: &Target, rounds: usize, seconds: u64) {
    let verify_rate: u64 = env_or("LATCHKEY_FLOOD_VERIFY_RATE", 5_000);
    let login_rate: u64 = env_or("LATCHKEY_FLOOD_LOGIN_RATE", 30);
    eprintln!(
        "flood: /verify at {verify_rate}/s, {rounds} alternating rounds of {seconds} s without and with {login_rate} failing logins/s"
    );
    let (mut calm_runs, mut flood_runs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut flood_logins = (0u64, 0u64);
    for _ in 0..rounds {
        let (calm, _) = runtime.block_on(fixed_rate(target, verify_rate, seconds, 0));
        let (flooded, logins) =
            runtime.block_on(fixed_rate(target, verify_rate, seconds, login_rate));
        eprintln!(
            "  round: p99 alone {:.0} µs, flooded {:.0} µs",
            calm.p99_micros, flooded.p99_micros
        );
        ratios.push(flooded.p99_micros / calm.p99_micros);
        calm_runs.push(calm);
        flood_runs.push(flooded);
        flood_logins = (flood_logins.0 + logins.0, flood_logins.1 + logins.1);
    }
    let calm = Outcome::merge(calm_runs);
    let flooded = Outcome::merge(flood_runs);
    println!();
    println!("| `POST /verify` at {verify_rate}/s | answered/s | p50 | p99 |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, r) in [
        ("alone", &calm),
        (
            &*format!("with {login_rate} failing logins/s from rotating addresses"),
            &flooded,
        ),
    ] {
        println!(
            "| {name} | {:.0} | {:.0} µs | {:.0} µs |",
            r.per_second, r.p50_micros, r.p99_micros
        );
    }
    println!(
        "\nunder the flood, /verify p99 is {:.2}x its p99 alone (median of the rounds' ratios; {:.2}x over all rounds); {} logins answered 401, {} refused 429",
        median(&mut ratios),
        flooded.p99_micros / calm.p99_micros,
        flood_logins.0,
        flood_logins.1
    );
    assert!(
        calm.errors == 0 && flooded.errors == 0,
        "errors: alone {}, flooded {}",
        calm.errors,
        flooded.errors
    );
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// One JSON call to the target's server as its administrator; the answer's body.
async fn call(
    target: &Target,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let mut sender = connect(
        target.addr,
        &connector(target),
        std::net::Ipv4Addr::LOCALHOST,
    )
    .await;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", target.key))
        .header("content-type", "application/json")
        .body(Full::new(if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        }))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert!(status.is_success(), "{method} {path}: {status} {bytes:?}");
    serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
}

/// A member made a Technician of a new tenant, and the `/authorize` check that asks
/// whether it may run maintenance on a computer of that tenant (an allow).
async fn tenant_check(target: &Target) -> serde_json::Value {
    let tenant = call(
        target,
        "POST",
        "/tenants",
        serde_json::json!({"name": "T1"}),
    )
    .await;
    let member = call(
        target,
        "POST",
        "/users",
        serde_json::json!({"email": "technician@example.com", "name": "Tech"}),
    )
    .await;
    let roles = call(target, "GET", "/roles", serde_json::Value::Null).await;
    let technician = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Technician")
        .unwrap()["id"]
        .clone();
    call(
        target,
        "POST",
        "/role_assignments",
        serde_json::json!({"principal_id": member["id"], "role_id": technician, "tenant_id": tenant["id"]}),
    )
    .await;
    let check = serde_json::json!({
        "principal": {"id": member["id"]},
        "action": "computers.run_maintenance",
        "resource": {"type": "computer", "id": "c-42", "tenant_id": tenant["id"]},
    });
    let answer = call(target, "POST", "/authorize", check.clone()).await;
    assert_eq!(answer["decision"], "allow", "{answer}");
    check
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Server {
    child: Child,
    addr: SocketAddr,
    cert: PathBuf,
    key: String,
}

/// The real binary on a fresh data directory; its bootstrap key verifies itself.
fn start_latchkey(dir: &Path) -> Server {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--policies")
        .arg(policies)
        .env("LATCHKEY_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let boot = json_line(&mut out);
    let listening = json_line(&mut out);
    Server {
        child,
        addr: listening["listening"]
            .as_str()
            .unwrap()
            .trim_start_matches("https://")
            .parse()
            .unwrap(),
        cert: PathBuf::from(listening["tls_cert"].as_str().unwrap()),
        key: boot["api_key"].as_str().unwrap().to_owned(),
    }
}

/// This benchmark re-executed as the ceiling server.
fn start_ceiling(dir: &Path) -> Server {
    std::fs::create_dir_all(dir).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CEILING_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let listening = json_line(&mut out);
    Server {
        child,
        addr: listening["addr"].as_str().unwrap().parse().unwrap(),
        cert: dir.join("cert.pem"),
        key: String::new(),
    }
}

fn json_line(out: &mut impl BufRead) -> serde_json::Value {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// The ceiling: hyper's auto (HTTP/1.1 + HTTP/2) connection builder over tokio-rustls
/// with the same provider and a self-signed certificate, answering `200 {}` to anything.
fn ceiling_server(dir: &Path) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    let cert = CertificateDer::from_pem_slice(made.cert.pem().as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(made.signing_key.serialize_pem().as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!(
            "{}",
            serde_json::json!({"addr": listener.local_addr().unwrap().to_string()})
        );
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |request: Request<hyper::body::Incoming>| async move {
                        // Read the body as a real handler would.
                        let _ = request.into_body().collect().await;
                        let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                        response.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, std::convert::Infallible>(response)
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
}

#[derive(Clone)]
struct Target {
    /// The server's process, whose CPU time each run reads.
    pid: u32,
    addr: SocketAddr,
    cert: PathBuf,
    path: &'static str,
    key: String,
    body: String,
    /// Make each request's resource id (`c-42`) another, so that no two checks are the
    /// same request.
    distinct: bool,
}

struct Outcome {
    per_second: f64,
    p50_micros: f64,
    p99_micros: f64,
    errors: u64,
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// CPU time the server and this client spent in the measured window.
    server_cpu: Duration,
    client_cpu: Duration,
}

impl Outcome {
    fn from(
        mut latencies: Vec<Duration>,
        elapsed: Duration,
        errors: u64,
        (server_cpu, client_cpu): (Duration, Duration),
    ) -> Outcome {
        latencies.sort_unstable();
        let percentile = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e6)
        };
        Outcome {
            per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50_micros: percentile(0.50),
            p99_micros: percentile(0.99),
            errors,
            latencies,
            elapsed,
            server_cpu,
            client_cpu,
        }
    }

    /// CPU time per request of the server and of the client, in µs.
    fn cpu_per_request(&self) -> (f64, f64) {
        let n = self.latencies.len().max(1) as f64;
        (
            self.server_cpu.as_secs_f64() * 1e6 / n,
            self.client_cpu.as_secs_f64() * 1e6 / n,
        )
    }

    /// All rounds as one: requests over total measured time, percentiles over all.
    fn merge(rounds: Vec<Outcome>) -> Outcome {
        let elapsed = rounds.iter().map(|r| r.elapsed).sum();
        let errors = rounds.iter().map(|r| r.errors).sum();
        let cpu = (
            rounds.iter().map(|r| r.server_cpu).sum(),
            rounds.iter().map(|r| r.client_cpu).sum(),
        );
        let latencies = rounds.into_iter().flat_map(|r| r.latencies).collect();
        Outcome::from(latencies, elapsed, errors, cpu)
    }
}

/// A TLS client trusting exactly the target's certificate.
fn connector(target: &Target) -> tokio_rustls::TlsConnector {
    let pem = std::fs::read(&target.cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    tokio_rustls::TlsConnector::from(config)
}

/// An HTTP/1.1 connection to the target from the local address `from` (any of
/// 127.0.0.0/8 on Linux).
async fn connect(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    from: std::net::Ipv4Addr,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// The verify request of `target`.
fn verify_request(target: &Target) -> Request<Full<Bytes>> {
    request_with(target, target.body.clone())
}

/// The target's request with another body.
fn request_with(target: &Target, body: String) -> Request<Full<Bytes>> {
    Request::post(target.path)
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", target.key))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// `POST /verify` at `rate` per second for `seconds` (after a 2 s warm-up), open loop
/// over 16 connections: each request is due at its slot, and when the server's previous
/// answer on the connection kept it past its slot, its latency counts from the slot, so a
/// stalled server is not hidden by a client that waits for it. Meanwhile,
/// `logins` failing logins per second, each from another 127.0.0.x address and email.
/// Returns the verify outcome and (logins answered 401, logins refused 429).
async fn fixed_rate(
    target: &Target,
    rate: u64,
    seconds: u64,
    logins: u64,
) -> (Outcome, (u64, u64)) {
    const CONNECTIONS: u64 = 16;
    let connector = connector(target);
    let begin = tokio::time::Instant::now() + Duration::from_millis(200);
    let warm = begin + Duration::from_secs(2);
    let end = warm + Duration::from_secs(seconds);
    let interval = Duration::from_secs_f64(CONNECTIONS as f64 / rate as f64);
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let mut sender = connect(target.addr, &connector, std::net::Ipv4Addr::LOCALHOST).await;
        let request = verify_request(target);
        let mut due = begin + interval.mul_f64(c as f64 / CONNECTIONS as f64);
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            let mut free_at = begin;
            while due < end {
                tokio::time::sleep_until(due).await;
                // Late because the previous answer came after this request was due: the
                // server's delay, counted from when it was due. Late only because the
                // timer woke after `due` (1 ms granularity): the client's, not counted.
                let started = if free_at > due {
                    due
                } else {
                    tokio::time::Instant::now()
                };
                let ok = match sender.send_request(request.clone()).await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        let _ = response.into_body().collect().await;
                        ok
                    }
                    Err(_) => false,
                };
                free_at = tokio::time::Instant::now();
                if due >= warm {
                    latencies.push(free_at - started);
                    errors += u64::from(!ok);
                }
                due += interval;
            }
            (latencies, errors)
        }));
    }
    let keepalive = env_or("LATCHKEY_FLOOD_KEEPALIVE", 0u8) == 1;
    let flood = tokio::spawn({
        let (addr, connector) = (target.addr, connector.clone());
        async move {
            let mut counts = (0u64, 0u64);
            if logins == 0 {
                return counts;
            }
            let every = Duration::from_secs_f64(1.0 / logins as f64);
            let login = |n: u32| {
                let body = format!(
                    "{{\"email\":\"flood-{n}@example.com\",\"password\":\"not the password at all\"}}"
                );
                Request::post("/login")
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap()
            };
            let mut attempts = Vec::new();
            if keepalive {
                // One kept-alive connection per address, opened before the rounds: the
                // flood's cost without its TLS handshakes.
                const ADDRESSES: u32 = 250;
                for c in 0..ADDRESSES {
                    let from = std::net::Ipv4Addr::from(0x7f00_0002 + c);
                    let mut sender = connect(addr, &connector, from).await;
                    let mut due = begin + every.mul_f64(f64::from(c));
                    attempts.push(tokio::spawn(async move {
                        let mut statuses = Vec::new();
                        let mut n = c;
                        while due < end {
                            tokio::time::sleep_until(due).await;
                            statuses.push(match sender.send_request(login(n)).await {
                                Ok(response) => {
                                    let status = response.status().as_u16();
                                    let _ = response.into_body().collect().await;
                                    status
                                }
                                Err(_) => 0,
                            });
                            n += ADDRESSES;
                            due += every.mul_f64(f64::from(ADDRESSES));
                        }
                        statuses
                    }));
                }
            } else {
                let mut due = begin;
                for n in 0u32.. {
                    if due >= end {
                        break;
                    }
                    tokio::time::sleep_until(due).await;
                    let from = std::net::Ipv4Addr::from(0x7f00_0002 + n % 250);
                    let connector = connector.clone();
                    let request = login(n);
                    attempts.push(tokio::spawn(async move {
                        let mut sender = connect(addr, &connector, from).await;
                        vec![match sender.send_request(request).await {
                            Ok(response) => response.status().as_u16(),
                            Err(_) => 0,
                        }]
                    }));
                    due += every;
                }
            }
            for attempt in attempts {
                for status in attempt.await.unwrap_or_default() {
                    match status {
                        401 => counts.0 += 1,
                        429 => counts.1 += 1,
                        other => panic!("a flood login answered {other}"),
                    }
                }
            }
            counts
        }
    });
    let (mut all, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (latencies, e) = task.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    let counts = flood.await.unwrap();
    (
        Outcome::from(
            all,
            Duration::from_secs(seconds),
            errors,
            (Duration::ZERO, Duration::ZERO),
        ),
        counts,
    )
}

/// `connections` keep-alive HTTP/1.1 connections, each sending one request after the
/// other for the warm-up and then `seconds`; latencies of the measured part only.
async fn run(target: &Target, connections: usize, seconds: u64) -> Outcome {
    let connector = connector(target);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for slot in 0..connections {
        let connector = connector.clone();
        let (measuring, stop) = (Arc::clone(&measuring), Arc::clone(&stop));
        let addr = target.addr;
        let request = verify_request(target);
        let distinct = target.distinct.then(|| target.clone());
        tasks.push(tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let tls = connector.connect(name, tcp).await.unwrap();
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(connection);
            let mut latencies = Vec::with_capacity(200_000);
            let mut errors = 0u64;
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let request = match &distinct {
                    None => request.clone(),
                    Some(target) => {
                        sent += 1;
                        let id = format!("\"c-{slot}-{sent}\"");
                        request_with(target, target.body.replace("\"c-42\"", &id))
                    }
                };
                let started = Instant::now();
                match sender.send_request(request).await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        let _ = response.into_body().collect().await;
                        if !ok {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
                if measuring.load(Ordering::Relaxed) {
                    latencies.push(started.elapsed());
                }
            }
            (latencies, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let cpu_before = (cpu_time(target.pid), cpu_time(std::process::id()));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu = (
        cpu_time(target.pid).saturating_sub(cpu_before.0),
        cpu_time(std::process::id()).saturating_sub(cpu_before.1),
    );
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    Outcome::from(all, elapsed, errors, cpu)
}

/// The CPU time all threads of process `pid` have run (the first field of each
/// thread's `/proc/PID/task/TID/schedstat`, in nanoseconds).
fn cpu_time(pid: u32) -> Duration {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let nanos = threads
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}
