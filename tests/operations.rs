//! The host operator's commands against the real binary: `latchkey backup` of a running
//! server under concurrent writes, and `latchkey restore` of what it made.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{Server, start_in, start_server};
use crate::support::policies_dir;

fn latchkey(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .output()
        .unwrap()
}

fn answer(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn backup(data: &Path, out: &Path) -> Output {
    latchkey(&[
        "backup".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ])
}

fn restore(data: &Path, key: &Path, file: &Path) -> Output {
    latchkey(&[
        "restore".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
        file.as_os_str(),
    ])
}

/// Every bot user name the server holds, across pages.
fn bot_names(server: &Server) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut next = Some("/bot_users?limit=100".to_owned());
    while let Some(path) = next {
        let page = server.get(&server.admin_key, &path);
        assert_eq!(page.status, 200, "{:?}", page.body);
        for bot in page.body["bot_users"].as_array().unwrap() {
            names.insert(bot["name"].as_str().unwrap().to_owned());
        }
        next = page.body["next_page_uri"].as_str().map(str::to_owned);
    }
    names
}

/// The audit's finding: copying the file while the server wrote gave 8 unusable copies
/// of 10. Backups through the admin socket under four concurrent writers each restore
/// into a data directory that passes the full check and holds every write acknowledged
/// before its backup began.
#[test]
fn backups_under_concurrent_writes_restore_whole_with_every_acknowledged_write() {
    let server = Arc::new(start_server());
    let data = server.dir.path().join("data");
    let work = tempfile::tempdir().unwrap();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (server, acknowledged, stop) = (
                Arc::clone(&server),
                Arc::clone(&acknowledged),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("writer-{w}-{n}");
                    let made = server.post(&server.admin_key, "/bot_users", json!({"name": name}));
                    assert_eq!(made.status, 201, "{:?}", made.body);
                    acknowledged.lock().unwrap().push(name);
                    n += 1;
                }
            })
        })
        .collect();

    let mut taken: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        let before = acknowledged.lock().unwrap().clone();
        let file = work.path().join(format!("backup-{i}.redb"));
        let out = backup(&data, &file);
        assert!(out.status.success(), "{out:?}");
        let said = answer(&out);
        assert_eq!(said["ok"], true, "{said}");
        assert!(
            said["key"].as_str().unwrap().contains("not included"),
            "{said}"
        );
        assert_eq!(
            said["bytes"].as_u64(),
            Some(std::fs::metadata(&file).unwrap().len())
        );
        taken.push((file, before));
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    assert!(
        taken.last().unwrap().1.len() > 20,
        "the writers barely ran: {}",
        taken.last().unwrap().1.len()
    );
    // Nothing is left behind in the data directory.
    let leftovers: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("backup"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new());

    let key = data.join("server.key");
    for (i, (file, before)) in taken.iter().enumerate() {
        let restored = Arc::new(tempfile::tempdir().unwrap());
        let target = restored.path().join("data");
        let out = restore(&target, &key, file);
        assert!(out.status.success(), "backup {i}: {out:?}");
        assert_eq!(answer(&out)["ok"], true);
        let check = latchkey(&["check".as_ref(), "--data-dir".as_ref(), target.as_os_str()]);
        assert!(check.status.success(), "backup {i}: {check:?}");
        let copy = start_in(
            Arc::clone(&restored),
            &policies_dir(),
            Some((
                server.admin_key.clone(),
                server.account_id.clone(),
                server.admin_id.clone(),
            )),
        );
        let held = bot_names(&copy);
        let missing: Vec<&String> = before.iter().filter(|n| !held.contains(*n)).collect();
        assert!(missing.is_empty(), "backup {i} lost {missing:?}");
    }
}

/// A restore checks before it writes: a damaged backup, a wrong key, an existing data
/// directory and a missing server are each refused with nothing made.
#[test]
fn restore_refuses_damage_a_wrong_key_and_an_existing_directory() {
    let server = start_server();
    let data = server.dir.path().join("data");
    let made = server.post(
        &server.admin_key,
        "/bot_users",
        json!({"name": "findme-in-the-file"}),
    );
    assert_eq!(made.status, 201);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("backup.redb");
    assert!(backup(&data, &file).status.success());
    let key = data.join("server.key");

    // One flipped bit inside the bot's record.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes
        .windows(18)
        .position(|w| w == b"findme-in-the-file")
        .expect("the record is in the file");
    bytes[at] ^= 0x01;
    let damaged = work.path().join("damaged.redb");
    std::fs::write(&damaged, &bytes).unwrap();
    let target = work.path().join("from-damaged");
    let out = restore(&target, &key, &damaged);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = answer(&out);
    assert_eq!(said["ok"], false);
    assert!(!said["problems"].as_array().unwrap().is_empty(), "{said}");
    assert!(
        !target.exists(),
        "a refused restore made {}",
        target.display()
    );

    // Another 32-byte key.
    let other_key = work.path().join("other.key");
    std::fs::write(&other_key, [7u8; 32]).unwrap();
    let target = work.path().join("wrong-key");
    let out = restore(&target, &other_key, &file);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the one this backup was made with"));
    assert!(!target.exists());

    // Never over an existing data directory (here, the live one).
    let out = restore(&data, &key, &file);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("never overwrites"));

    // No server on the directory: the command could not run, and wrote nothing.
    let (status, _) = server.stop();
    assert!(status.success());
    let out = backup(&data, &work.path().join("none.redb"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no latchkey server answers"));
    assert!(!work.path().join("none.redb").exists());
}

/// Crash trials: the real server is killed with SIGKILL while four writers create bot
/// users; after each kill the file passes the full check (records, indexes, every audit
/// chain) and the restarted server holds every write it acknowledged. 10 trials here;
/// `LATCHKEY_CRASH_TRIALS=200 cargo test --release --test tests crash` runs a longer set.
#[test]
fn crash_trials_lose_no_acknowledged_write_and_keep_the_chain() {
    let trials: usize = std::env::var("LATCHKEY_CRASH_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let mut server = start_server();
    let dir = Arc::clone(&server.dir);
    let data = dir.path().join("data");
    let known = (
        server.admin_key.clone(),
        server.account_id.clone(),
        server.admin_id.clone(),
    );
    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    for trial in 0..trials {
        let live = Arc::new(server);
        let landed = Arc::new(Mutex::new(Vec::<String>::new()));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (live, landed) = (Arc::clone(&live), Arc::clone(&landed));
                std::thread::spawn(move || {
                    for n in 0.. {
                        let name = format!("t{trial}-w{w}-{n}");
                        let sent = live
                            .agent()
                            .post(format!("{}/bot_users", live.url))
                            .header("Authorization", &format!("Bearer {}", live.admin_key))
                            .send_json(json!({"name": name}));
                        match sent {
                            Ok(response) if response.status() == 201 => {
                                landed.lock().unwrap().push(name);
                            }
                            // The kill: connection reset, refused, or cut short.
                            _ => return,
                        }
                    }
                })
            })
            .collect();
        // Kill at a different point of the write stream each trial.
        std::thread::sleep(Duration::from_millis(150 + 37 * (trial as u64 % 7)));
        live.signal("KILL");
        for writer in writers {
            writer.join().unwrap();
        }
        acknowledged.extend(landed.lock().unwrap().drain(..));
        drop(Arc::try_unwrap(live).ok().unwrap());

        let check = latchkey(&["check".as_ref(), "--data-dir".as_ref(), data.as_os_str()]);
        assert!(check.status.success(), "trial {trial}: {check:?}");
        server = start_in(Arc::clone(&dir), &policies_dir(), Some(known.clone()));
        let held = bot_names(&server);
        let lost: Vec<&String> = acknowledged.iter().filter(|n| !held.contains(*n)).collect();
        assert!(lost.is_empty(), "trial {trial} lost {lost:?}");
    }
    assert!(
        acknowledged.len() > trials * 4,
        "the writers barely ran: {} writes",
        acknowledged.len()
    );
}

/// Audit retention: the operator exports the events before a time (JSON lines that
/// verify on their own, a damaged copy does not), prunes exactly those, and the rest of
/// each chain stays verifiable from the anchored checkpoint. Pruning the same export
/// twice, or an export that does not verify, removes nothing.
#[test]
fn old_events_are_exported_verified_pruned_and_the_chain_still_verifies() {
    let server = start_server();
    let _keep = Arc::clone(&server.dir);
    let data = server.dir.path().join("data");
    let key = server.admin_key.clone();
    for name in ["a", "b", "c"] {
        assert_eq!(
            server
                .post(&key, "/bot_users", json!({"name": name}))
                .status,
            201
        );
    }
    std::thread::sleep(Duration::from_millis(1_100));
    let cut = latchkey::domain::time::Timestamp::from_millis(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1_100));
    for name in ["d", "e"] {
        assert_eq!(
            server
                .post(&key, "/bot_users", json!({"name": name}))
                .status,
            201
        );
    }
    let before_prune = server.get(&key, "/events?limit=100").body["events"]
        .as_array()
        .unwrap()
        .len();
    let work = tempfile::tempdir().unwrap();
    let export = work.path().join("export.jsonl");
    let out = latchkey(&[
        "audit".as_ref(),
        "export".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--before".as_ref(),
        cut.to_rfc3339().as_ref(),
        "--out".as_ref(),
        export.as_os_str(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let said = answer(&out);
    assert_eq!(said["verified"], true, "{said}");
    let exported = said["events"].as_u64().unwrap();
    // The account's events before the cut, and the appliance trail's start (its own
    // chain, exported and pruned like an account's).
    assert_eq!(exported as usize, before_prune - 2 + 1, "{said}");
    assert_eq!(said["accounts"], 2, "{said}");

    // A damaged copy does not verify, and is not pruned.
    let text = std::fs::read_to_string(&export).unwrap();
    let damaged = work.path().join("damaged.jsonl");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // The last event of the account's chain (the appliance trail's comes first).
    let at = lines.iter().rposition(|l| l.contains("\"bytes\"")).unwrap();
    let mut event: Value = serde_json::from_str(&lines[at]).unwrap();
    let bytes = event["bytes"].as_str().unwrap().to_owned();
    let flipped = if bytes.starts_with('A') { "B" } else { "A" };
    event["bytes"] = Value::String(format!("{flipped}{}", &bytes[1..]));
    lines[at] = event.to_string();
    std::fs::write(&damaged, lines.join("\n")).unwrap();
    let check = latchkey(&[
        "audit".as_ref(),
        "verify-export".as_ref(),
        damaged.as_os_str(),
    ]);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    let prune = |file: &Path| {
        latchkey(&[
            "audit".as_ref(),
            "prune".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            file.as_os_str(),
        ])
    };
    assert_eq!(prune(&damaged).status.code(), Some(1));
    assert_eq!(
        server.get(&key, "/events?limit=100").body["events"]
            .as_array()
            .unwrap()
            .len(),
        before_prune
    );

    let pruned = prune(&export);
    assert!(pruned.status.success(), "{pruned:?}");
    assert_eq!(answer(&pruned)["pruned"], exported);
    let left = server.get(&key, "/events?limit=100").body;
    let actions: Vec<&str> = left["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["iam.bot_users.create", "iam.bot_users.create"]);
    // The same export again: it no longer starts where the chain does.
    let again = prune(&export);
    assert_eq!(again.status.code(), Some(1), "{again:?}");

    let (status, _) = server.stop();
    assert!(status.success());
    let verified = latchkey(&[
        "audit".as_ref(),
        "verify".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    assert!(verified.status.success(), "{verified:?}");
    assert_eq!(answer(&verified)["events"], 2);
    let checked = latchkey(&["check".as_ref(), "--data-dir".as_ref(), data.as_os_str()]);
    assert!(checked.status.success(), "{checked:?}");
}

/// A self-signed certificate and its key for localhost and 127.0.0.1, as PEM.
fn certificate_pair() -> (String, String) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// A TLS connection to `addr` that trusts only `pem`; the handshake's error if the server
/// presents anything else.
fn connect_trusting(
    addr: &str,
    pem: &str,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut socket = std::net::TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    while connection.is_handshaking() {
        connection.complete_io(&mut socket)?;
    }
    Ok(rustls::StreamOwned::new(connection, socket))
}

/// `GET /healthz` on an open connection, kept alive; the status line.
fn health_over(
    stream: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
) -> String {
    use std::io::{Read, Write};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    // `{"status":"ok"}` ends the answer.
    while !seen.ends_with(b"}") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "the connection closed");
        seen.extend_from_slice(&buffer[..n]);
    }
    let text = String::from_utf8(seen).unwrap();
    text.lines().next().unwrap().to_owned()
}

#[test]
fn sighup_serves_a_rotated_certificate_to_new_connections_and_keeps_open_ones() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (first_cert, first_key) = certificate_pair();
    std::fs::write(&cert_file, &first_cert).unwrap();
    std::fs::write(&key_file, &first_key).unwrap();
    let server = crate::api::start_configured(
        Arc::clone(&dir),
        &policies_dir(),
        None,
        &[
            ("LATCHKEY_TLS_CERT", cert_file.to_str().unwrap()),
            ("LATCHKEY_TLS_KEY", key_file.to_str().unwrap()),
        ],
    );
    let addr = server.url.trim_start_matches("https://").to_owned();
    let mut open = connect_trusting(&addr, &first_cert).unwrap();
    assert_eq!(health_over(&mut open), "HTTP/1.1 200 OK");

    // The operator renews: new files in place, then SIGHUP.
    let (second_cert, second_key) = certificate_pair();
    std::fs::write(&key_file, &second_key).unwrap();
    std::fs::write(&cert_file, &second_cert).unwrap();
    assert!(
        connect_trusting(&addr, &second_cert).is_err(),
        "nothing changes before the signal"
    );
    server.signal("HUP");
    let started = std::time::Instant::now();
    while connect_trusting(&addr, &second_cert).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the renewed certificate is not served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(connect_trusting(&addr, &first_cert).is_err());
    // The connection made before the reload is still served.
    assert_eq!(health_over(&mut open), "HTTP/1.1 200 OK");

    // A key that does not belong to the certificate: refused, and the current pair stays.
    let (_, stray_key) = certificate_pair();
    std::fs::write(&key_file, &stray_key).unwrap();
    server.signal("HUP");
    let log = dir.path().join("serve.log");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("TLS certificate not reloaded")
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the refused reload is not logged"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut after = connect_trusting(&addr, &second_cert).unwrap();
    assert_eq!(health_over(&mut after), "HTTP/1.1 200 OK");
    assert_eq!(health_over(&mut open), "HTTP/1.1 200 OK");
}

/// `deploy/latchkey.service`, with its `ExecStart` pointing at the binary under test.
fn unit_for_this_binary(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/latchkey.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/latchkey serve"));
    let path = dir.join("latchkey.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/latchkey", env!("CARGO_BIN_EXE_latchkey")),
    )
    .unwrap();
    path
}

fn systemd_analyze(args: &[&std::ffi::OsStr]) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze runs (scripts/test installs systemd where it is missing)")
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_binary(dir.path());
    let verified = systemd_analyze(&["verify".as_ref(), unit.as_os_str()]);
    assert!(
        verified.status.success() && verified.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // systemd's exposure score, 0 (locked down) to 10: README's table shows it.
    let scored = systemd_analyze(&[
        "security".as_ref(),
        "--offline=true".as_ref(),
        unit.as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&scored.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for latchkey.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in {text}"));
    assert!(exposure <= 2.0, "exposure {exposure}:\n{text}");
    // The settings the operator relies on.
    let unit = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "User=latchkey",
        "StateDirectory=latchkey",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
}
