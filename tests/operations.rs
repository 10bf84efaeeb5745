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
    assert_eq!(exported as usize, before_prune - 2, "{said}");

    // A damaged copy does not verify, and is not pruned.
    let text = std::fs::read_to_string(&export).unwrap();
    let damaged = work.path().join("damaged.jsonl");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut event: Value = serde_json::from_str(&lines[2]).unwrap();
    let bytes = event["bytes"].as_str().unwrap().to_owned();
    let flipped = if bytes.starts_with('A') { "B" } else { "A" };
    event["bytes"] = Value::String(format!("{flipped}{}", &bytes[1..]));
    lines[2] = event.to_string();
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
