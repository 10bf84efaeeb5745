//! The real binary: `init`, `verify`, `audit verify`, `migrate`, exit codes and outputs.

use std::path::Path;
use std::process::{Command, Output};

use latchkey::app::{Config, Latchkey, Me};
use serde_json::Value;

fn latchkey(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .output()
        .unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("not JSON: {output:?}"))
}

fn init(dir: &Path, account: &str) -> Value {
    let out = latchkey(&[
        "init",
        "--data-dir",
        dir.to_str().unwrap(),
        "--account",
        account,
        "--admin-email",
        "ops@example.com",
    ]);
    assert!(out.status.success(), "{out:?}");
    json(&out)
}

#[test]
fn init_prints_the_ids_and_a_key_that_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let made = init(&dir, "acme");
    let keys: Vec<&str> = made
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["account_id", "user_id", "api_key", "setup_url"]);
    let key = made["api_key"].as_str().unwrap();
    assert!(key.starts_with("lk_ak_"));
    // Offline the server's address is unknown: the link names the default one.
    let setup = made["setup_url"].as_str().unwrap();
    assert!(
        setup.starts_with("https://127.0.0.1:8443/password_reset?token="),
        "{setup}"
    );

    let out = latchkey(&["verify", "--data-dir", dir.to_str().unwrap(), key]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let verified = json(&out);
    assert_eq!(verified["valid"], true);
    assert_eq!(verified["kind"], "api_key");
    assert_eq!(verified["owner_kind"], "user");
    assert_eq!(verified["owner_id"], made["user_id"]);
    assert_eq!(verified["account_id"], made["account_id"]);
    assert!(
        verified["credential_id"]
            .as_str()
            .unwrap()
            .starts_with("ak_")
    );
}

#[test]
fn init_twice_on_one_account_name_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir, "acme");
    let out = latchkey(&[
        "init",
        "--data-dir",
        dir.to_str().unwrap(),
        "--account",
        "ACME",
        "--admin-email",
        "x@example.com",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("account name is already in use"));
    assert!(out.stdout.is_empty());
}

#[test]
fn init_without_a_policies_folder_is_refused_and_makes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = latchkey(&[
        "init",
        "--data-dir",
        dir.to_str().unwrap(),
        "--policies",
        tmp.path().join("nowhere").to_str().unwrap(),
        "--account",
        "acme",
        "--admin-email",
        "x@example.com",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the policies folder"), "{stderr}");
    assert!(
        stderr.contains("--policies or LATCHKEY_POLICIES"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(!dir.exists(), "no half-made data directory is left");
}

#[test]
fn a_flipped_character_is_a_bad_checksum_without_touching_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let made = init(&dir, "acme");
    let key = made["api_key"].as_str().unwrap();
    let mut flipped = key.as_bytes().to_vec();
    flipped[50] = if flipped[50] == b'Q' { b'R' } else { b'Q' };
    let flipped = String::from_utf8(flipped).unwrap();

    // The database is held open by this process: a lookup would fail with "in use".
    let _held = Latchkey::open(Config::new(&dir)).unwrap();
    let out = latchkey(&["verify", "--data-dir", dir.to_str().unwrap(), &flipped]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        json(&out),
        serde_json::json!({"valid": false, "reason": "bad_checksum"})
    );
    // A well-formed token does need the store, and is told clearly that it is in use.
    let out = latchkey(&["verify", "--data-dir", dir.to_str().unwrap(), key]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another latchkey process"));
}

#[test]
fn unknown_and_malformed_tokens_say_why_to_the_operator() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir, "acme");
    let out = latchkey(&["verify", "--data-dir", dir.to_str().unwrap(), "lk_ak_nope"]);
    assert_eq!(
        (out.status.code(), json(&out)["reason"].clone()),
        (Some(1), Value::from("malformed"))
    );
    let stranger =
        latchkey::domain::token::mint(latchkey::domain::token::TokenKind::ApiKey, 42).unwrap();
    let out = latchkey(&[
        "verify",
        "--data-dir",
        dir.to_str().unwrap(),
        stranger.expose(),
    ]);
    assert_eq!(
        (out.status.code(), json(&out)["reason"].clone()),
        (Some(1), Value::from("unknown"))
    );
}

#[test]
fn audit_verify_prints_the_head_and_checks_an_expected_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir, "acme");
    let d = dir.to_str().unwrap();
    let out = latchkey(&["audit", "verify", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out);
    assert_eq!(
        (report["ok"].clone(), report["events"].clone()),
        (Value::from(true), Value::from(5))
    );
    let head = report["head"].as_str().unwrap().to_owned();
    assert_eq!(head.len(), 64);

    let out = latchkey(&["audit", "verify", "--data-dir", d, "--expect-head", &head]);
    assert_eq!(out.status.code(), Some(0));
    // A later change moves the head: the anchored value no longer matches.
    init(&dir, "globex");
    let out = latchkey(&["audit", "verify", "--data-dir", d, "--expect-head", &head]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["ok"], false);
}

#[test]
fn migrate_on_a_current_database_is_a_no_op_that_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir, "acme");
    let out = latchkey(&["migrate", "--data-dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        json(&out),
        serde_json::json!({"ok": true, "schema_version": latchkey::store::SCHEMA_VERSION, "steps": []})
    );
}

#[test]
fn killing_the_process_mid_write_loses_no_acknowledged_write() {
    use std::process::Stdio;
    use std::time::Duration;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = dir.to_str().unwrap();
    init(&dir, "seed");
    let mut acknowledged = Vec::new();
    for round in 0..12u64 {
        let name = format!("account-{round}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args([
                "init",
                "--data-dir",
                d,
                "--account",
                &name,
                "--admin-email",
                "ops@example.com",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill at a different point of each run: before, during or after its commit.
        std::thread::sleep(Duration::from_micros(500 * round * round));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if out.status.success() && !out.stdout.is_empty() {
            acknowledged.push(name);
        }
    }
    // The file opens, the chain holds, and every init that printed its key is there.
    let lk = Latchkey::open(Config::new(&dir)).unwrap();
    assert!(lk.verify_audit_chain().unwrap().broken.is_none());
    let read = lk.read().unwrap();
    use latchkey::store::Reads;
    for name in &acknowledged {
        assert!(
            read.account_by_name(name).unwrap().is_some(),
            "{name} was acknowledged but is gone"
        );
    }
}

#[test]
fn policy_check_and_test_judge_the_committed_modules() {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let module = policies.join("tenant-roles.wasm");
    let out = latchkey(&["policy", "check", module.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json(&out)["abi_version"], 1);

    let cases = policies.join("tenant-roles.cases.json");
    let out = latchkey(&[
        "policy",
        "test",
        module.to_str().unwrap(),
        cases.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["failed"], 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains(" passed, 0 failed"));

    // The wrong module for these cases: every case fails, each with its reason.
    let wrong = policies.join("account-rbac.wasm");
    let out = latchkey(&[
        "policy",
        "test",
        wrong.to_str().unwrap(),
        cases.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["passed"], 0);
    assert!(
        report["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("expected allow, got not_applicable")
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("FAIL"));

    let out = latchkey(&["policy", "check", cases.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json(&out)["error"]
            .as_str()
            .unwrap()
            .contains("not a valid WASM module")
    );
}

#[test]
fn policy_new_scaffolds_a_crate_that_builds_offline_outside_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let out = latchkey(&[
        "policy",
        "new",
        "night-watch",
        "--dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let root = tmp.path().join("night-watch");
    assert_eq!(json(&out)["path"], root.to_str().unwrap());

    // Pinned and vendored: it builds and tests with an empty cargo home (no registry
    // cache, no network), `--locked`.
    assert!(root.join("vendor/serde/Cargo.toml").is_file());
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
    assert!(lock.contains("name = \"night-watch\""), "{lock}");
    let empty_home = tmp.path().join("empty-cargo-home");
    std::fs::create_dir(&empty_home).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let offline = |args: &[&str]| {
        let out = Command::new(&cargo)
            .args(args)
            .args(["--offline", "--locked"])
            .current_dir(&root)
            .env("CARGO_HOME", &empty_home)
            .env("CARGO_TARGET_DIR", root.join("target"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    offline(&["build", "--release", "--target", "wasm32-unknown-unknown"]);
    offline(&["test"]);
    assert_eq!(
        std::fs::read_to_string(root.join("Cargo.lock")).unwrap(),
        lock
    );
    let module = root.join("target/wasm32-unknown-unknown/release/night_watch.wasm");
    std::fs::copy(&module, root.join("night-watch.wasm")).unwrap();
    let manifest = root.join("night-watch.toml");
    let out = latchkey(&["policy", "check", manifest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let cases = root.join("night-watch.cases.json");
    let out = latchkey(&[
        "policy",
        "test",
        module.to_str().unwrap(),
        cases.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for step in [
        "**Test**",
        "**Build**",
        "**Check**",
        "**Install**",
        "**Reload**",
    ] {
        assert!(readme.contains(step), "{step}");
    }

    // Names are checked, and an existing directory is never overwritten.
    let out = latchkey(&[
        "policy",
        "new",
        "Night_Watch",
        "--dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    let out = latchkey(&[
        "policy",
        "new",
        "night-watch",
        "--dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[test]
fn recover_restores_a_locked_out_administrator_and_prints_a_one_time_key() {
    use latchkey::app::IpText;
    use latchkey::domain::event::{Actor, Principal};
    use latchkey::domain::ip::{RestrictionType, RuleAction};
    use latchkey::domain::user::{MemberState, Roles};

    let dir = tempfile::tempdir().unwrap();
    let made = init(dir.path(), "acme");
    let key = made["api_key"].as_str().unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let ops = {
        let lk = Latchkey::open(Config::new(dir.path()).with_policies(&policies)).unwrap();
        let verified = lk.verify_token(key).unwrap();
        let account = verified.account;
        let ops = latchkey::api::actor_of(&verified);
        let Principal::User(ops_id) = ops.principal else {
            panic!("the key is a user's")
        };
        // Locked out three ways: TOTP it lost, an enforced dashboard restriction that
        // does not let it in, and a second administrator who disabled it.
        lk.enroll_totp(Me {
            user: ops_id,
            account,
            session: None,
        })
        .unwrap();
        let policy = lk
            .create_ip_policy(ops, account, IpText::default())
            .unwrap();
        lk.create_ip_rule(
            ops,
            account,
            policy.id,
            "10.9.9.0/24",
            RuleAction::Allow,
            IpText::default(),
        )
        .unwrap();
        let spec = latchkey::app::RestrictionSpec {
            kind: RestrictionType::Dashboard,
            enforced: true,
            policies: vec![policy.id],
            text: IpText::default(),
        };
        lk.create_ip_restriction(ops, account, spec, latchkey::app::Lockout::CONFIRMED)
            .unwrap();
        let second = lk
            .add_member(
                ops,
                account,
                "second@example.com",
                "Second",
                Roles::administrator(),
            )
            .unwrap();
        let (_, second_key) = lk
            .create_token_credential(
                ops,
                account,
                latchkey::domain::token::TokenKind::ApiKey,
                latchkey::domain::credential::Owner::User(second.member.user.id),
                Default::default(),
            )
            .unwrap();
        let second = latchkey::api::actor_of(&lk.verify_token(second_key.expose()).unwrap());
        lk.set_member_state(second, account, ops_id, MemberState::Disabled)
            .unwrap();
        assert!(lk.authorize_verify(ops, account).is_err());
        ops_id
    };

    let data = dir.path().to_str().unwrap();
    let unknown = latchkey(&[
        "recover",
        "--data-dir",
        data,
        "--account",
        "acme",
        "--email",
        "nobody@example.com",
    ]);
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user has the email"));

    let out = latchkey(&[
        "recover",
        "--data-dir",
        data,
        "--account",
        "acme",
        "--email",
        "ops@example.com",
    ]);
    assert!(out.status.success(), "{out:?}");
    let done = json(&out);
    assert_eq!(done["user_id"], ops.to_string());
    assert_eq!(done["enabled"], true);
    assert_eq!(done["made_admin"], false);
    assert_eq!(done["mfa_removed"], true);
    assert_eq!(
        done["ip_restrictions_made_warn_only"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let new_key = done["api_key"].as_str().unwrap();
    let verified = latchkey(&["verify", "--data-dir", data, new_key]);
    assert!(verified.status.success(), "{verified:?}");

    let lk = Latchkey::open(Config::new(dir.path()).with_policies(&policies)).unwrap();
    let verified = lk.verify_token(new_key).unwrap();
    let actor = latchkey::api::actor_of(&verified);
    lk.authorize_verify(actor, verified.account).unwrap();
    assert!(!lk.mfa_enrolled(ops).unwrap());
    let events = lk.events(actor, verified.account).unwrap();
    let recovered = events
        .iter()
        .find(|e| e.action.name() == "iam.users.recover")
        .unwrap();
    assert_eq!(recovered.actor, Actor::SYSTEM);
}

// ---- the right key and the right directory (issue 12, item 3) --------------------------

/// `latchkey serve` on `dir`, on a free port: its exit status and stderr, when it exits
/// by itself (within 20 s; a server that starts is stopped and reported as started).
fn serve_exits(dir: &Path) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .arg("--policies")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            return (None, "the server started".to_owned());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_server_key_replaced_by_other_bytes_is_refused_by_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let made = init(&dir, "acme");
    std::fs::write(dir.join("server.key"), [7u8; 32]).unwrap();
    let d = dir.to_str().unwrap();
    let key = made["api_key"].as_str().unwrap();
    for args in [
        vec!["verify", "--data-dir", d, key],
        vec!["audit", "verify", "--data-dir", d],
    ] {
        let out = latchkey(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("server.key is not the key"), "{err}");
    }
    let (code, err) = serve_exits(&dir);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("server.key is not the key"), "{err}");
}

#[test]
fn an_empty_or_missing_database_beside_a_key_is_refused_and_nothing_is_bootstrapped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir, "acme");
    std::fs::write(dir.join("latchkey.redb"), b"").unwrap();
    let (code, err) = serve_exits(&dir);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is empty (0 bytes)"), "{err}");
    assert_eq!(
        std::fs::metadata(dir.join("latchkey.redb")).unwrap().len(),
        0
    );
    std::fs::remove_file(dir.join("latchkey.redb")).unwrap();
    let (code, err) = serve_exits(&dir);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is missing beside"), "{err}");
    assert!(!dir.join("latchkey.redb").exists(), "a database was made");
}

#[test]
fn offline_commands_on_a_missing_directory_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nowhere");
    let d = dir.to_str().unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let p = policies.to_str().unwrap();
    for args in [
        vec!["audit", "verify", "--data-dir", d],
        vec![
            "verify",
            "--data-dir",
            d,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        ],
        vec!["migrate", "--data-dir", d],
        vec![
            "recover",
            "--data-dir",
            d,
            "--account",
            "acme",
            "--email",
            "a@example.com",
            "--policies",
            p,
        ],
    ] {
        let out = latchkey(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no latchkey data directory"),
            "{args:?}: {out:?}"
        );
        assert!(!dir.exists(), "{args:?} created {}", dir.display());
    }
    // `init` is the one that makes it.
    init(&dir, "acme");
    assert!(dir.join("server.key").exists() && dir.join("latchkey.redb").exists());
}

#[test]
fn check_passes_an_intact_file_and_names_damage_in_a_flipped_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let made = init(&dir, "acme");
    {
        let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let lk = Latchkey::open(Config::new(&dir).with_policies(&policies)).unwrap();
        let verified = lk.verify_token(made["api_key"].as_str().unwrap()).unwrap();
        let admin = latchkey::api::actor_of(&verified);
        lk.create_bot(admin, verified.account, "deploy-robot-7")
            .unwrap();
    }
    let d = dir.to_str().unwrap();
    let out = latchkey(&["check", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = json(&out);
    assert_eq!(report["ok"], true);
    assert_eq!(report["problems"], serde_json::json!([]));
    assert!(report["records"].as_u64().unwrap() > 5);
    // The audit's experiment: one bit of the bot's stored name flipped in the file.
    let file = dir.join("latchkey.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes
        .windows(14)
        .position(|w| w == b"deploy-robot-7")
        .expect("the bot's name is in the file");
    bytes[at + 3] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let out = latchkey(&["check", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report = json(&out);
    assert_eq!(report["ok"], false);
    assert!(
        !report["problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
    // Nothing there to check: could not run.
    let none = tmp.path().join("none");
    let out = latchkey(&["check", "--data-dir", none.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!none.exists());
}

/// The audit's finding: 16 flipped bytes made `serve` and `audit verify` panic inside the
/// storage library (exit 101, a backtrace). Now, for many such damaged files: `check` and
/// `audit verify` answer intact (0) or damaged (1), and `verify` answers (0, 1) or could not
/// run (2); none panics.
#[test]
fn no_damaged_file_makes_a_command_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine");
    let made = init(&pristine, "acme");
    let key = made["api_key"].as_str().unwrap();
    let original = std::fs::read(pristine.join("latchkey.redb")).unwrap();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        // xorshift64*: deterministic, so a failure names its trial.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound as u64) as usize
    };
    for trial in 0..24 {
        let dir = tmp.path().join(format!("trial{trial}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(pristine.join("server.key"), dir.join("server.key")).unwrap();
        let mut bytes = original.clone();
        for _ in 0..16 {
            let at = next(bytes.len());
            bytes[at] ^= 1 << next(8);
        }
        std::fs::write(dir.join("latchkey.redb"), &bytes).unwrap();
        let d = dir.to_str().unwrap();
        for (args, allowed) in [
            (vec!["check", "--data-dir", d], &[0, 1][..]),
            (vec!["audit", "verify", "--data-dir", d], &[0, 1][..]),
            (vec!["verify", "--data-dir", d, key], &[0, 1, 2][..]),
        ] {
            let out = latchkey(&args);
            let code = out.status.code();
            assert!(
                code.is_some_and(|c| allowed.contains(&c)),
                "trial {trial}, {args:?}: {out:?}"
            );
            assert!(!String::from_utf8_lossy(&out.stderr).contains("stack backtrace"));
        }
    }
}

/// `latchkey import --mint-api-keys`: N keys of a bot user in batched transactions, each
/// with its event, their secrets written once to a new 0600 file; an existing file or an
/// unknown account is refused with nothing made.
#[test]
fn import_mints_api_keys_that_verify_and_writes_their_secrets_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir, "acme");
    let data = dir.to_str().unwrap();
    let secrets = tmp.path().join("secrets.txt");
    let mint = |account: &str, out: &Path| {
        latchkey(&[
            "import",
            "--data-dir",
            data,
            "--account",
            account,
            "--mint-api-keys",
            "25",
            "--secrets-out",
            out.to_str().unwrap(),
        ])
    };
    let events_before = json(&latchkey(&["audit", "verify", "--data-dir", data]))["events"]
        .as_u64()
        .unwrap();
    let out = mint("acme", &secrets);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["api_keys"], 25);
    let text = std::fs::read_to_string(&secrets).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 25);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&secrets).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    for secret in [lines[0], lines[24]] {
        let verified = latchkey(&["verify", "--data-dir", data, secret]);
        assert!(verified.status.success(), "{verified:?}");
        assert_eq!(json(&verified)["kind"], "api_key");
        assert_eq!(json(&verified)["owner_kind"], "bot");
    }
    // The bot and every key are in the trail.
    let events_after = json(&latchkey(&["audit", "verify", "--data-dir", data]))["events"]
        .as_u64()
        .unwrap();
    assert_eq!(events_after, events_before + 1 + 25);
    // Refusals make nothing: an existing secrets file, an unknown account.
    let again = mint("acme", &secrets);
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    assert_eq!(std::fs::read_to_string(&secrets).unwrap(), text);
    let unknown = mint("nobody", &tmp.path().join("other.txt"));
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));
    assert!(!tmp.path().join("other.txt").exists());
    let unchanged = json(&latchkey(&["audit", "verify", "--data-dir", data]))["events"]
        .as_u64()
        .unwrap();
    assert_eq!(unchanged, events_after);
}

/// `import --jsonl`: every record type lands through the batched path with its event,
/// names resolve to what the account holds and to earlier lines (across batches), and
/// a bad line stops the import with its whole batch rolled back, naming the line.
#[test]
fn import_reads_json_lines_in_batches_with_events_and_stops_at_a_bad_line() {
    use latchkey::app::AssignmentFilter;
    use latchkey::domain::credential::CredentialKind;
    use latchkey::domain::event::Actor;
    use latchkey::store::PageRequest;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir, "acme");
    let data = dir.to_str().unwrap();
    let events = || {
        json(&latchkey(&["audit", "verify", "--data-dir", data]))["events"]
            .as_u64()
            .unwrap()
    };
    let import = |lines: &str, batch: &str| {
        let file = tmp
            .path()
            .join(format!("import-{batch}-{}.jsonl", lines.len()));
        std::fs::write(&file, lines).unwrap();
        latchkey(&[
            "import",
            "--data-dir",
            data,
            "--account",
            "acme",
            "--jsonl",
            file.to_str().unwrap(),
            "--batch",
            batch,
        ])
    };
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmAQJl2CVY6yK1oCQv1kz5hY3qVyfE4ppmg3DCjmj0Q ana@laptop";
    let good = format!(
        r#"{{"type": "user", "email": "ana@example.com", "name": "Ana", "roles": {{"developer": "read_write", "team": "invite", "billing": "none", "admin": false}}}}
{{"type": "user", "email": "bo@example.com", "name": "Bo"}}

{{"type": "bot", "name": "ci"}}
{{"type": "tenant", "name": "Contoso", "description": "first customer"}}
{{"type": "role", "name": "Helpdesk", "permissions": ["computers.view", "computers.edit"]}}
{{"type": "assignment", "user": "ana@example.com", "role": "technician", "tenant": "contoso"}}
{{"type": "assignment", "bot": "CI", "role": "Read-Only"}}
{{"type": "assignment", "user": "bo@example.com", "role": "Helpdesk", "tenant": "Contoso"}}
{{"type": "ssh_key", "user": "ana@example.com", "public_key": "{key}", "description": "laptop"}}
"#
    );
    let before = events();
    // Batches of 3: names made in one batch resolve in the next.
    let out = import(&good, "3");
    assert!(out.status.success(), "{out:?}");
    let report = json(&out);
    assert_eq!(report["records"], 9, "{report}");
    assert_eq!(report["batches"], 3);
    assert_eq!(report["by_type"]["assignment"], 3);
    assert_eq!(report["by_type"]["user"], 2);
    // Users add the member and its personal authtoken (two events each); the rest one.
    assert_eq!(events(), before + 2 * 2 + 7);

    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let state = || {
        let lk = Latchkey::open(Config::new(&dir).with_policies(&policies)).unwrap();
        let account = lk.account_named("acme").unwrap();
        let all = || PageRequest {
            before: None,
            limit: 1000,
        };
        let members = lk.members(Actor::SYSTEM, account, all()).unwrap().items;
        let ana = members
            .iter()
            .find(|m| m.user.email.as_str() == "ana@example.com")
            .map(|m| (m.user.name.clone(), m.membership.roles));
        let bots = lk.bots(Actor::SYSTEM, account, all()).unwrap().items.len();
        let tenants = lk
            .tenants(Actor::SYSTEM, account, all())
            .unwrap()
            .items
            .len();
        let mut assignments: Vec<String> = lk
            .role_assignments(Actor::SYSTEM, account, AssignmentFilter::default(), all())
            .unwrap()
            .items
            .into_iter()
            .map(|a| format!("{} {}", a.role, a.assignment.tenant.is_some()))
            .collect();
        assignments.sort();
        let ssh = lk
            .credentials(Actor::SYSTEM, account, CredentialKind::SshKey, all())
            .unwrap()
            .items
            .into_iter()
            .map(|(c, _)| c.description)
            .collect::<Vec<_>>();
        format!(
            "{} {ana:?} {bots} {tenants} {assignments:?} {ssh:?}",
            members.len()
        )
    };
    let imported = state();
    assert!(imported.starts_with("3 Some((\"Ana\""), "{imported}");
    assert!(
        imported.contains("ReadWrite") && imported.contains("Invite"),
        "{imported}"
    );
    assert!(
        imported.ends_with(
            r#" 1 1 ["Helpdesk true", "Read-Only false", "Technician true"] ["laptop"]"#
        ),
        "{imported}"
    );

    // Refusals: each stops at its line, its batch rolled back, earlier batches kept,
    // and nothing else changes. Line 2 of each file is the bad one; batch 2 holds lines 1
    // and 2, so the good first line goes back with it.
    let after = events();
    for (bad, why) in [
        (
            r#"{"type": "bot", "name": "x", "colour": "red"}"#,
            "unknown field",
        ),
        (
            r#"{"type": "user", "email": "ana@example.com", "name": "Ana"}"#,
            "already",
        ),
        (
            r#"{"type": "user", "email": "cy@example.com"}"#,
            "missing field `name`",
        ),
        (
            r#"{"type": "assignment", "user": "nobody@example.com", "role": "Technician"}"#,
            "nobody@example.com",
        ),
        (
            r#"{"type": "assignment", "bot": "ci", "role": "Janitor"}"#,
            "Janitor",
        ),
        (
            r#"{"type": "assignment", "bot": "ci", "user": "ana@example.com", "role": "Technician"}"#,
            "exactly one",
        ),
        (
            r#"{"type": "assignment", "bot": "ci", "role": "Tenant Administrator"}"#,
            "tenant",
        ),
        (
            r#"{"type": "ssh_key", "bot": "ci", "public_key": "ssh-rsa nonsense"}"#,
            "public_key",
        ),
        (
            &format!(r#"{{"type": "ssh_key", "bot": "ci", "public_key": "{key}"}}"#),
            "already",
        ),
        (r#"{"type": "tenant", "name": "CONTOSO"}"#, "already in use"),
        ("not json", "record"),
    ] {
        let lines = format!(
            "{{\"type\": \"bot\", \"name\": \"kept-{}\"}}\n{bad}\n",
            bad.len()
        );
        let out = import(&lines, "2");
        assert_eq!(out.status.code(), Some(1), "{bad}: {out:?}");
        let report = json(&out);
        assert_eq!(report["ok"], false);
        assert_eq!(report["line"], 2, "{bad}: {report}");
        assert_eq!(report["imported"], 0, "{bad}: {report}");
        let error = report["error"].as_str().unwrap();
        assert!(
            error.to_lowercase().contains(&why.to_lowercase()),
            "{bad}: {error}"
        );
        assert_eq!(state(), imported, "{bad} changed the account");
        assert_eq!(events(), after, "{bad} changed the trail");
    }
    // With batches of one, the good line before a bad one stays, and the report says so.
    let out = import(
        "{\"type\": \"bot\", \"name\": \"kept\"}\n{\"type\": \"nope\"}\n",
        "1",
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        (json(&out)["line"].clone(), json(&out)["imported"].clone()),
        (2.into(), 1.into())
    );
    assert_eq!(events(), after + 1);
}

/// `latchkey serve` run from `cwd` with no policies folder, until its `listening` line;
/// returns the child, the first lines (bootstrap object when fresh, then `listening`).
fn serve_without_policies(cwd: &Path) -> (std::process::Child, Vec<Value>) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .current_dir(cwd)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", "data"])
        .env_remove("LATCHKEY_POLICIES")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(cwd.join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let Ok(value) = serde_json::from_str::<Value>(&line) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{line:?}: {}",
                std::fs::read_to_string(cwd.join("serve.log")).unwrap_or_default()
            );
        };
        let done = value.get("listening").is_some();
        lines.push(value);
        if done {
            return (child, lines);
        }
    }
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}

#[test]
fn serve_from_an_empty_directory_installs_the_builtins_and_says_when_they_differ() {
    let cwd = tempfile::tempdir().unwrap();
    let (child, lines) = serve_without_policies(cwd.path());
    let key = lines[0]["api_key"].as_str().unwrap().to_owned();
    let listening = &lines[1];
    let folder = cwd.path().join("data/policies");
    for file in [
        "account-rbac.wasm",
        "account-rbac.toml",
        "tenant-roles.wasm",
        "tenant-roles.toml",
    ] {
        let installed = std::fs::read(folder.join(file)).unwrap();
        let shipped = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("policies")
                .join(file),
        )
        .unwrap();
        assert!(installed == shipped, "{file}");
    }
    // The installed set decides: the administrator reads the account, and a decision
    // names the built-in policy.
    let agent = crate::api::agent_trusting(
        &std::fs::read(cwd.path().join(listening["tls_cert"].as_str().unwrap())).unwrap(),
    );
    let url = listening["listening"].as_str().unwrap();
    let account = crate::api::reply(
        agent
            .get(&format!("{url}/account"))
            .header("Authorization", &format!("Bearer {key}"))
            .call(),
    );
    assert_eq!(account.status, 200, "{:?}", account.body);
    stop(child);

    // An operator (or an older binary) changed a built-in: the next start says so and
    // loads what is there.
    let manifest = folder.join("tenant-roles.toml");
    let edited = format!(
        "{}\n# edited\n",
        std::fs::read_to_string(&manifest).unwrap()
    );
    std::fs::write(&manifest, &edited).unwrap();
    let (child, _) = serve_without_policies(cwd.path());
    stop(child);
    let log = std::fs::read_to_string(cwd.path().join("serve.log")).unwrap();
    assert!(
        log.contains("differs from this binary's") && log.contains("tenant-roles"),
        "{log}"
    );
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), edited);

    // `policy install-builtins` puts this binary's back and says what it replaced.
    let data = cwd.path().join("data");
    let install = || {
        latchkey(&[
            "policy",
            "install-builtins",
            "--data-dir",
            data.to_str().unwrap(),
        ])
    };
    let out = install();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let answer = json(&out);
    assert_eq!(answer["changed"], true);
    assert_eq!(
        answer["builtins"][0],
        serde_json::json!({"name": "account-rbac", "was": "same"})
    );
    assert_eq!(
        answer["builtins"][1],
        serde_json::json!({"name": "tenant-roles", "was": "differs"})
    );
    assert_eq!(json(&install())["changed"], false);

    // Never into a data directory that is not there.
    let nowhere = cwd.path().join("nowhere");
    let out = latchkey(&[
        "policy",
        "install-builtins",
        "--data-dir",
        nowhere.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no data directory"));
    assert!(!nowhere.exists());
}

/// Every subcommand's refusals follow README's rule: 2 and a reason on stderr (nothing on
/// stdout) when it could not run, 1 with a JSON answer on stdout when the answer is no;
/// and none of them makes a data directory it was not asked to.
#[test]
fn every_subcommand_exits_by_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let made = init(&data, "acme");
    let key = made["api_key"].as_str().unwrap();
    let absent = tmp.path().join("absent");
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "not what was asked for\n").unwrap();
    let bad_cases = tmp.path().join("bad.json");
    std::fs::write(&bad_cases, "[{").unwrap();
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/account-rbac.wasm");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/account-rbac.toml");
    // A manifest with a misspelled action, beside its (valid) module.
    let typo = tmp.path().join("typo.toml");
    std::fs::copy(&wasm, tmp.path().join("typo.wasm")).unwrap();
    std::fs::write(
        &typo,
        "name = \"typo\"\nmodule = \"typo.wasm\"\nkind = \"custom\"\nactions = [\"computers.remote_controll\"]\n",
    )
    .unwrap();
    let typo = typo.to_str().unwrap();
    let (d, a, t) = (
        data.to_str().unwrap(),
        absent.to_str().unwrap(),
        text.to_str().unwrap(),
    );
    let (w, m, c) = (
        wasm.to_str().unwrap(),
        manifest.to_str().unwrap(),
        bad_cases.to_str().unwrap(),
    );
    let out_file = tmp.path().join("out").to_str().unwrap().to_owned();
    let good_cases = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies/account-rbac.cases.json")
        .to_str()
        .unwrap()
        .to_owned();
    // (arguments, exit code, what stderr (2) or stdout (1) says)
    let rows: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec![
                "init",
                "--data-dir",
                d,
                "--account",
                "acme",
                "--admin-email",
                "x@example.com",
            ],
            2,
            "already in use",
        ),
        (
            vec![
                "init",
                "--data-dir",
                a,
                "--policies",
                a,
                "--account",
                "b",
                "--admin-email",
                "x@example.com",
            ],
            2,
            "policies folder",
        ),
        (vec!["verify", "--data-dir", a, key], 2, ""),
        (
            vec!["verify", "--data-dir", d, "lk_at_nope"],
            1,
            "malformed",
        ),
        (vec!["audit", "verify", "--data-dir", a], 2, ""),
        (
            vec!["audit", "verify", "--data-dir", d, "--expect-head", "00"],
            1,
            "\"ok\":false",
        ),
        (
            vec![
                "audit",
                "export",
                "--data-dir",
                d,
                "--before",
                "2020-01-01T00:00:00Z",
                "--out",
                &out_file,
            ],
            2,
            "admin.sock",
        ),
        (
            vec![
                "audit",
                "export",
                "--data-dir",
                d,
                "--before",
                "yesterday",
                "--out",
                &out_file,
            ],
            2,
            "",
        ),
        (vec!["audit", "verify-export", t], 1, "\"ok\":false"),
        (vec!["audit", "verify-export", a], 2, ""),
        (
            vec![
                "recover",
                "--data-dir",
                d,
                "--account",
                "nope",
                "--email",
                "x@example.com",
            ],
            2,
            "nope",
        ),
        (
            vec![
                "recover",
                "--data-dir",
                a,
                "--account",
                "acme",
                "--email",
                "x@example.com",
            ],
            2,
            "",
        ),
        (vec!["check", "--data-dir", a], 2, ""),
        (
            vec!["backup", "--data-dir", d, "--out", &out_file],
            2,
            "admin.sock",
        ),
        (vec!["restore", "--data-dir", a, "--key", t, t], 2, ""),
        (
            vec!["import", "--data-dir", d, "--account", "acme", "--jsonl", a],
            2,
            "",
        ),
        (
            vec!["import", "--data-dir", a, "--account", "acme", "--jsonl", t],
            2,
            "",
        ),
        (vec!["migrate", "--data-dir", a], 2, ""),
        (
            vec!["serve", "--data-dir", d, "--listen", "nowhere"],
            2,
            "listen",
        ),
        (
            vec!["serve", "--data-dir", d, "--log-level", "loud"],
            2,
            "log_level",
        ),
        (vec!["key", "rotate", "--data-dir", d], 2, "admin.sock"),
        (
            vec!["policy", "new", "BadName", "--dir", a],
            2,
            "not a valid policy name",
        ),
        (vec!["policy", "check", t], 1, "not a WebAssembly binary"),
        (
            vec!["policy", "check", typo],
            1,
            "did you mean computers.remote_control?",
        ),
        (vec!["policy", "check", a], 2, "No such file"),
        (vec!["policy", "test", w, c], 2, "decision cases"),
        (vec!["policy", "test", w, a], 2, "cannot read"),
        (vec!["policy", "test", m, &good_cases], 1, "\"ok\":false"),
        (vec!["policy", "list", "--data-dir", d], 2, "admin.sock"),
        (vec!["policy", "reload", "--data-dir", d], 2, "admin.sock"),
        (
            vec!["policy", "install-builtins", "--data-dir", a],
            2,
            "no data directory",
        ),
        (vec!["no-such-command"], 2, "unrecognized subcommand"),
    ];
    let mut wrong = Vec::new();
    for (args, code, says) in rows {
        let out = latchkey(&args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        let right = out.status.code() == Some(code)
            && !stderr.contains("panicked")
            && match code {
                2 => stdout.is_empty() && !stderr.trim().is_empty() && stderr.contains(says),
                _ => serde_json::from_str::<Value>(stdout.trim()).is_ok() && stdout.contains(says),
            };
        if !right {
            wrong.push(format!(
                "{args:?}: exit {:?}, stdout {stdout:?}, stderr {stderr:?}",
                out.status.code()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        !absent.exists(),
        "no command made the directory it was pointed at"
    );
}

#[test]
fn completions_and_manual_pages_come_from_the_same_definitions() {
    let bash = latchkey(&["completions", "bash"]);
    assert_eq!(bash.status.code(), Some(0));
    let script = String::from_utf8(bash.stdout).unwrap();
    assert!(script.contains("install-builtins") && script.contains("--log-level"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("latchkey.bash"), &script).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(dir.path().join("latchkey.bash"))
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{syntax:?}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = latchkey(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("serve"),
            "{shell}"
        );
    }
    assert_eq!(latchkey(&["completions", "tcsh"]).status.code(), Some(2));

    // The manual renders without a warning (UTF-8 input through preconv, as man(1) reads
    // it), on stdout and as one page per subcommand.
    let render = |page: &Path| {
        let out = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(page)
            .output()
            .expect("groff runs (scripts/test installs groff-base where it is missing)");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: {}",
            page.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let top = latchkey(&["man"]);
    assert_eq!(top.status.code(), Some(0));
    let text = String::from_utf8(top.stdout).unwrap();
    assert!(
        text.starts_with(".ie") || text.contains(".TH latchkey 1"),
        "{text:.200}"
    );
    std::fs::write(dir.path().join("top.1"), &text).unwrap();
    render(&dir.path().join("top.1"));
    let pages = dir.path().join("man");
    let out = latchkey(&["man", "--dir", pages.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let written: Vec<String> = json(&out)["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    for page in [
        "latchkey.1",
        "latchkey-serve.1",
        "latchkey-policy-install-builtins.1",
        "latchkey-audit-verify.1",
    ] {
        assert!(written.iter().any(|w| w == page), "{page} in {written:?}");
    }
    for page in &written {
        render(&pages.join(page));
    }
}

#[test]
fn offline_users_and_keys_commands_act_as_the_system_principal_with_events() {
    use latchkey::domain::event::{Actor, Principal};
    use latchkey::domain::user::Roles;

    let dir = tempfile::tempdir().unwrap();
    let made = init(dir.path(), "acme");
    let key = made["api_key"].as_str().unwrap().to_owned();
    let (member, member_key) = {
        let lk = Latchkey::open(Config::new(dir.path()).with_policies(dir.path().join("policies")))
            .unwrap();
        let account = lk.account_named("acme").unwrap();
        let member = lk
            .add_member(
                Actor::SYSTEM,
                account,
                "dana@example.com",
                "Dana",
                Roles::default(),
            )
            .unwrap()
            .member
            .user
            .id;
        let (credential, secret) = lk
            .create_token_credential(
                Actor::SYSTEM,
                account,
                latchkey::domain::token::TokenKind::ApiKey,
                latchkey::domain::credential::Owner::User(member),
                Default::default(),
            )
            .unwrap();
        (
            member,
            (credential.id.to_string(), secret.expose().to_owned()),
        )
    };
    let d = dir.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--data-dir", d, "--account", "acme"]);
        latchkey(&all)
    };

    let listed = run(&["users", "list"]);
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    let users = json(&listed)["users"].as_array().unwrap().clone();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["email"], "dana@example.com", "newest first");
    assert!(users.iter().all(|u| u.get("uri").is_none()));
    let shown = json(&run(&["users", "show", &member.to_string()]));
    assert_eq!(shown["email"], "dana@example.com");
    assert_eq!(
        json(&run(&["users", "show", "DANA@example.com"]))["id"],
        member.to_string()
    );

    // Disabled: the member's key stops verifying; enabled: it verifies again.
    let disabled = run(&["users", "disable", "dana@example.com"]);
    assert_eq!(json(&disabled)["state"], "disabled", "{disabled:?}");
    assert_eq!(
        latchkey(&["verify", "--data-dir", d, &member_key.1])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        json(&run(&["users", "enable", "dana@example.com"]))["state"],
        "active"
    );
    assert_eq!(
        latchkey(&["verify", "--data-dir", d, &member_key.1])
            .status
            .code(),
        Some(0)
    );

    // Refusals change nothing: the last administrator, someone not in the account, a
    // credential of another account, an id that is none.
    let trail = || json(&latchkey(&["audit", "verify", "--data-dir", d]))["events"].clone();
    let other_made = init(dir.path(), "other");
    let other = json(&latchkey(&[
        "keys",
        "list",
        "--data-dir",
        d,
        "--account",
        "other",
    ]));
    let foreign = other["credentials"][1]["id"].as_str().unwrap().to_owned();
    let before = trail();
    let last = run(&["users", "disable", "ops@example.com"]);
    assert_eq!(last.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&last.stderr).contains("at least one active administrator"));
    for refused in [
        run(&["users", "disable", "nobody@example.com"]),
        run(&["keys", "revoke", &foreign]),
        run(&["keys", "revoke", "ak_nonsense"]),
    ] {
        assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    }
    assert_eq!(trail(), before, "a refusal records nothing");
    let other_key = other_made["api_key"].as_str().unwrap();
    assert_eq!(
        latchkey(&["verify", "--data-dir", d, other_key])
            .status
            .code(),
        Some(0),
        "the other account's key still verifies"
    );

    // Keys: listed without secrets, revoked by id, and then refused.
    let keys = json(&run(&["keys", "list"]));
    let credentials = keys["credentials"].as_array().unwrap();
    assert!(credentials.iter().all(|c| c["token"].is_null()));
    assert!(
        credentials
            .iter()
            .any(|c| c["id"] == member_key.0.as_str() && c["kind"] == "api_key")
    );
    assert!(!keys.to_string().contains(&member_key.1));
    let revoked = run(&["keys", "revoke", &member_key.0]);
    assert_eq!(
        json(&revoked)["revoked"],
        member_key.0.as_str(),
        "{revoked:?}"
    );
    assert_eq!(
        latchkey(&["verify", "--data-dir", d, &member_key.1])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        latchkey(&["verify", "--data-dir", d, &key]).status.code(),
        Some(0)
    );

    // Every change is an event of the system principal, and the chain holds.
    let lk =
        Latchkey::open(Config::new(dir.path()).with_policies(dir.path().join("policies"))).unwrap();
    let account = lk.account_named("acme").unwrap();
    let verified = lk.verify_token(&key).unwrap();
    let admin = latchkey::api::actor_of(&verified);
    let events = lk.events(admin, account).unwrap();
    let by_system: Vec<String> = events
        .iter()
        .filter(|e| e.actor.principal == Principal::System)
        .map(|e| e.action.name().to_owned())
        .collect();
    for action in [
        "iam.users.disable",
        "iam.users.enable",
        "iam.api_keys.delete",
    ] {
        assert!(
            by_system.iter().any(|a| a == action),
            "{action} in {by_system:?}"
        );
    }
    drop(lk);
    assert_eq!(
        latchkey(&["audit", "verify", "--data-dir", d])
            .status
            .code(),
        Some(0)
    );
}
