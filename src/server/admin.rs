//! The host operator's admin socket: `DATA_DIR/admin.sock`, a Unix socket of mode 0600
//! answered only for a peer running as the socket's owner (the service user) or root.
//! What acts on the whole appliance goes through it (and through signals), never through
//! the network API, whose callers are accounts: today the live policy set (`latchkey
//! policy list`, `latchkey policy reload`).
//!
//! The protocol is one JSON line each way: `{"op": "policy.list"}` in, `{"ok": true, …}`
//! or `{"ok": false, "error": "…"}` out, then the connection closes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::app::{AppError, Latchkey};

/// The socket's file name in the data directory.
pub const SOCKET: &str = "admin.sock";
/// Longest request line read.
const MAX_REQUEST: usize = 64 * 1024;
/// How long a peer has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The listening socket; its file is removed when this is dropped.
#[derive(Debug)]
pub struct AdminSocket {
    path: PathBuf,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        self.accepting.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listen on `data_dir/admin.sock` for the operator of `lk`. A file left there by an
/// earlier run is replaced: this process holds the database, so no other server can be
/// answering on it.
pub fn listen(data_dir: &Path, lk: Arc<Latchkey>) -> Result<AdminSocket, AppError> {
    let path = data_dir.join(SOCKET);
    let fail = |what: &str, err: std::io::Error| {
        AppError::DataDir(format!(
            "the admin socket {}: {what}: {err}",
            path.display()
        ))
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(fail("cannot replace the old one", err)),
    }
    let listener = UnixListener::bind(&path).map_err(|e| fail("cannot listen", e))?;
    // The data directory is 0700 already; the socket itself is 0600 too.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| fail("cannot restrict", e))?;
    let owner = std::fs::metadata(&path)
        .map_err(|e| fail("cannot read", e))?
        .uid();
    let accepting = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, Arc::clone(&lk), owner));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "admin socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(AdminSocket { path, accepting })
}

/// Answer one peer: its request, run on the blocking pool, and the answer line.
async fn answer(stream: UnixStream, lk: Arc<Latchkey>, owner: u32) {
    let peer = stream.peer_cred().ok().map(|c| c.uid());
    let (reader, mut writer) = stream.into_split();
    let reply = if peer.is_some_and(|uid| uid == owner || uid == 0) {
        match read_request(reader).await {
            Ok(op) => tokio::task::spawn_blocking(move || run(&lk, &op))
                .await
                .unwrap_or_else(|_| refused("the operation did not complete")),
            Err(why) => refused(&why),
        }
    } else {
        tracing::warn!(uid = ?peer, "admin socket: a peer of another user was refused");
        refused("only the service user (or root) may use the admin socket")
    };
    let mut line = reply.to_string();
    line.push('\n');
    let _ = writer.write_all(line.as_bytes()).await;
    let _ = writer.shutdown().await;
}

async fn read_request(reader: tokio::net::unix::OwnedReadHalf) -> Result<String, String> {
    let mut line = Vec::new();
    let mut limited =
        tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(reader, MAX_REQUEST as u64));
    tokio::time::timeout(REQUEST_TIMEOUT, limited.read_until(b'\n', &mut line))
        .await
        .map_err(|_| "no request arrived in time".to_owned())?
        .map_err(|e| format!("the request could not be read: {e}"))?;
    let request: Value =
        serde_json::from_slice(&line).map_err(|e| format!("the request is not JSON: {e}"))?;
    request
        .get("op")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "the request names no op".to_owned())
}

fn refused(why: &str) -> Value {
    json!({"ok": false, "error": why})
}

/// Run one operation for the operator.
fn run(lk: &Latchkey, op: &str) -> Value {
    let answer = match op {
        "policy.list" => lk.live_policies(),
        "policy.reload" => {
            let reloaded = lk.reload_policies();
            match &reloaded {
                Ok(set) => tracing::info!(
                    generation = set.generation,
                    policies = ?set.policies.iter().map(|p| (&p.name, &p.sha256)).collect::<Vec<_>>(),
                    "policies reloaded by the operator"
                ),
                Err(err) => tracing::error!(
                    error = %err,
                    "the operator's policy reload was refused; the current set stays"
                ),
            }
            reloaded
        }
        other => return refused(&format!("unknown op {other:?}: policy.list, policy.reload")),
    };
    match answer {
        Ok(set) => {
            let mut view = crate::api::live_set(&set, true);
            if let Some(fields) = view.as_object_mut() {
                fields.insert("ok".into(), true.into());
            }
            view
        }
        Err(AppError::Policy(err)) => refused(&format!(
            "the policy set was not reloaded, the current one stays: {err}"
        )),
        Err(err) => refused(&err.to_string()),
    }
}

/// The operator's side (the `latchkey` CLI): send `op` to the server running on
/// `data_dir` and return its answer. An error when no server answers there.
pub fn call(data_dir: &Path, op: &str) -> Result<Value, String> {
    let path = data_dir.join(SOCKET);
    let stream = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        format!(
            "no latchkey server answers on {} ({e}): is `latchkey serve` running on this data directory, as this user?",
            path.display()
        )
    })?;
    let talk = |stream: std::os::unix::net::UnixStream| -> std::io::Result<String> {
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut writer = stream.try_clone()?;
        writer.write_all(format!("{}\n", json!({"op": op})).as_bytes())?;
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer)?;
        Ok(answer)
    };
    let answer = talk(stream).map_err(|e| format!("the admin socket {}: {e}", path.display()))?;
    serde_json::from_str(&answer).map_err(|_| {
        format!(
            "the admin socket {} did not answer with JSON",
            path.display()
        )
    })
}
