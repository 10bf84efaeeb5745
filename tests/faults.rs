//! Faults of the host, against the real binary: a disk that fills while the server runs.
//!
//! The disk is a real one: a 24 MiB tmpfs mounted on the data directory in a mount
//! namespace of its own (`unshare -m`, held open by a `sleep`), which the server, the
//! filler and the offline commands all enter with `nsenter`. Filling it makes every write
//! fail with ENOSPC, exactly as a full disk does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::api::{Server, assert_error, launch};
use crate::support::policies_dir;

/// A mount namespace with a tmpfs of `size_mib` on `at`, alive while this is.
struct SmallDisk {
    holder: Child,
    at: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, size_mib: u32) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let mut holder = Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o size={size_mib}m,mode=0700 tmpfs \"$0\" && echo mounted && exec sleep 600"
            ))
            .arg(at)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("unshare (util-linux) runs the small-disk tests");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(
            line.trim(),
            "mounted",
            "a tmpfs could not be mounted in a new mount namespace (the tests need CAP_SYS_ADMIN, as root in CI)"
        );
        SmallDisk {
            holder,
            at: at.to_path_buf(),
        }
    }

    /// `program` run inside the namespace.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &self.holder.id().to_string(), "-m", "--"])
            .arg(program);
        command
    }

    fn sh(&self, script: &str) -> String {
        let out = self.command("sh").args(["-c", script]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn read(&self, path: &Path) -> Vec<u8> {
        let out = self.command("cat").arg(path).output().unwrap();
        assert!(out.status.success(), "cat {}", path.display());
        out.stdout
    }

    fn fill(&self) {
        self.sh(&format!(
            "dd if=/dev/zero of={}/filler bs=64k 2>/dev/null; df -k {}",
            self.at.display(),
            self.at.display()
        ));
    }

    fn free(&self) {
        self.sh(&format!("rm {}/filler", self.at.display()));
    }

    fn serve(
        &self,
        dir: &Arc<tempfile::TempDir>,
        known: Option<(String, String, String)>,
    ) -> Server {
        launch(
            self.command(env!("CARGO_BIN_EXE_latchkey")),
            Arc::clone(dir),
            &policies_dir(),
            "127.0.0.1:0",
            known,
            |path| self.read(path),
        )
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// The audit's finding: once the disk filled, every later write answered 500 until a
/// restart, `/healthz` stayed 200 with nothing to tell, and uses counted meanwhile were
/// lost. Now writes are a clear 503 that changes nothing, readiness says why, a metric
/// counts the failures, and everything resumes by itself once space is back.
#[test]
fn a_full_disk_degrades_writes_and_they_resume_by_themselves_once_space_is_back() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let disk = SmallDisk::mount(&dir.path().join("data"), 24);
    let server = disk.serve(&dir, None);
    let admin = server.admin_key.clone();
    let made = server.post(
        &admin,
        "/api_keys",
        json!({"description": "used while full"}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let (key_id, token) = (
        made.body["id"].as_str().unwrap().to_owned(),
        made.body["token"].as_str().unwrap().to_owned(),
    );
    std::thread::sleep(Duration::from_millis(1_500)); // the admin key's use is flushed

    disk.fill();
    // Credentials still verify (from memory), and the use is counted for later.
    let verified = server.post(&admin, "/verify", json!({"token": token}));
    assert_eq!(verified.body["valid"], true, "{:?}", verified.body);
    // The database file may still hold free pages that take a few commits; past them,
    // every write is refused.
    let mut made_while_filling = Vec::new();
    for n in 0..200 {
        let name = format!("filling-{n}");
        let tried = server.post(&admin, "/bot_users", json!({"name": name}));
        if tried.status != 201 {
            assert_error(&tried, 503, 127);
            break;
        }
        made_while_filling.push(name);
    }
    assert!(made_while_filling.len() < 200, "the disk never filled");
    for name in ["one", "two", "three", "four"] {
        let refused = server.post(&admin, "/bot_users", json!({"name": name}));
        assert_error(&refused, 503, 127);
        assert!(
            refused
                .headers
                .iter()
                .any(|(k, v)| k == "retry-after" && v.parse::<u64>().is_ok()),
            "{:?}",
            refused.headers
        );
    }
    let ready = server.get(&admin, "/readyz");
    assert_eq!(ready.status, 503, "{:?}", ready.body);
    assert_eq!(ready.body["status"], "degraded");
    let reason = ready.body["reasons"][0].as_str().unwrap();
    assert!(reason.contains("No space left on device"), "{reason}");
    assert!(
        !reason.contains(&dir.path().display().to_string()),
        "{reason}"
    );
    assert_eq!(server.get(&admin, "/healthz").status, 200);
    let metrics = server.get(&admin, "/metrics").body;
    let errors: u64 = metrics
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("latchkey_storage_errors_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(errors >= 1, "{metrics}");
    // Reads go on, and the refused writes changed nothing.
    let bots = server.get(&admin, "/bot_users?limit=100");
    assert_eq!(bots.status, 200, "{:?}", bots.body);
    let mut names: Vec<String> = bots.body["bot_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    let mut expected = made_while_filling.clone();
    expected.sort();
    assert_eq!(names, expected, "only the writes that committed");

    disk.free();
    // Readiness recovers with no client write: the server probes by itself.
    assert!(
        until(Duration::from_secs(20), || server
            .get(&admin, "/readyz")
            .status
            == 200),
        "still degraded 20 s after space came back"
    );
    let made = server.post(&admin, "/bot_users", json!({"name": "after"}));
    assert_eq!(made.status, 201, "{:?}", made.body);
    // The trail holds the write that committed right after the last one that did before
    // the disk filled, nothing of the refused ones.
    let events = server.get(&admin, "/events?limit=2");
    let actions: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    let before = if made_while_filling.is_empty() {
        "iam.api_keys.create"
    } else {
        "iam.bot_users.create"
    };
    assert_eq!(actions, ["iam.bot_users.create", before]);
    assert_eq!(
        events.body["events"][0]["seq"].as_u64(),
        events.body["events"][1]["seq"].as_u64().map(|s| s + 1)
    );

    // The use counted while the disk was full reached the file: a restart still knows it.
    let known = Some((
        admin.clone(),
        server.account_id.clone(),
        server.admin_id.clone(),
    ));
    let (status, _) = server.stop();
    assert!(status.success(), "{status:?}");
    let check = disk
        .command(env!("CARGO_BIN_EXE_latchkey"))
        .args(["check", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let again = disk.serve(&dir, known);
    let key = again.get(&admin, &format!("/api_keys/{key_id}"));
    assert!(key.body["last_used_at"].is_string(), "{:?}", key.body);
    let bots = again.get(&admin, "/bot_users?limit=100");
    assert_eq!(
        bots.body["bot_users"].as_array().unwrap().len(),
        made_while_filling.len() + 1
    );
}
