//! The host operator's admin socket: `DATA_DIR/admin.sock`, a Unix socket of mode 0600
//! answered only for a peer running as the socket's owner (the service user) or root.
//! What acts on the whole appliance goes through it (and through signals), never through
//! the network API, whose callers are accounts: the live policy set (`latchkey policy
//! list`, `latchkey policy reload`), backups (`latchkey backup`: a snapshot holds every
//! account), the server key (`latchkey key rotate`) and audit retention (`latchkey audit
//! export`, `latchkey audit prune`: events are never deleted through the API).
//!
//! The protocol is one JSON line each way: `{"op": "policy.list"}` in, `{"ok": true, …}`
//! or `{"ok": false, "error": "…"}` out, then the connection closes; an op's parameters
//! ride in the same object (`{"op": "audit.export", "before": …}`). A backup's or an
//! export's answer line carries `bytes` and `sha256`, and exactly that many bytes of the
//! file follow.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::Digest;
use std::os::unix::net::UnixStream as UnixStreamStd;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::app::{AppError, Latchkey};

/// The socket's file name in the data directory.
pub const SOCKET: &str = "admin.sock";
/// Longest request line read.
const MAX_REQUEST: usize = 64 * 1024;
/// How long a peer has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Events of the appliance trail `policy.history` answers with, newest first.
const HISTORY: usize = 100;

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
    let data_dir = data_dir.to_path_buf();
    let accepting = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, Arc::clone(&lk), owner, data_dir.clone()));
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

/// Answer one peer: its request, run on the blocking pool, and the answer line (and for
/// a backup, the snapshot's bytes).
async fn answer(stream: UnixStream, lk: Arc<Latchkey>, owner: u32, data_dir: PathBuf) {
    let peer = stream.peer_cred().ok().map(|c| c.uid());
    let (reader, mut writer) = stream.into_split();
    let reply = if peer.is_some_and(|uid| uid == owner || uid == 0) {
        match read_request(reader).await {
            Ok((op, request)) if op == "backup" || op == "audit.export" => {
                let made = tokio::task::spawn_blocking(move || {
                    if op == "backup" {
                        Download::snapshot(&lk, &data_dir)
                    } else {
                        Download::export(&lk, &data_dir, &request)
                    }
                })
                .await
                .unwrap_or_else(|_| Err("the operation did not complete".to_owned()));
                match made {
                    Ok(download) => return download.send(writer).await,
                    Err(why) => refused(&why),
                }
            }
            Ok((op, request)) => tokio::task::spawn_blocking(move || run(&lk, &op, &request))
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

/// A file made for one peer (a backup's snapshot, an audit export) in the data directory,
/// so it is as private as the database; streamed after its answer line, and removed once
/// sent or dropped.
struct Download {
    path: PathBuf,
    header: Value,
    bytes: u64,
}

impl Download {
    /// A new, empty download named for `what`.
    fn new(data_dir: &Path, what: &str) -> Result<Download, String> {
        let mut nonce = [0u8; 8];
        crate::domain::id::os_random(&mut nonce).map_err(|e| e.to_string())?;
        Ok(Download {
            path: data_dir.join(format!("{what}-{}.partial", hex(&nonce))),
            header: Value::Null,
            bytes: 0,
        })
    }

    /// Seal the file with its size and SHA-256 in the answer line, beside `fields`.
    fn finish(mut self, fields: Value) -> Result<Download, String> {
        let (bytes, sha256) =
            digest(&self.path).map_err(|e| format!("the file could not be read back: {e}"))?;
        let mut header = json!({"ok": true, "bytes": bytes, "sha256": sha256});
        if let (Some(header), Value::Object(fields)) = (header.as_object_mut(), fields) {
            header.extend(fields);
        }
        self.bytes = bytes;
        self.header = header;
        Ok(self)
    }

    fn snapshot(lk: &Latchkey, data_dir: &Path) -> Result<Download, String> {
        let download = Download::new(data_dir, "backup")?;
        let made = lk
            .snapshot_into(&download.path)
            .map_err(|e| format!("the snapshot could not be made: {e}"))?;
        tracing::info!(
            commits = made.commits,
            rows = made.rows,
            "backup taken by the operator"
        );
        download.finish(json!({
            "schema_version": made.schema_version,
            "commits": made.commits,
            "rows": made.rows,
            "key_versions": made.key_fingerprints.iter().map(|(v, _)| v).collect::<Vec<_>>(),
        }))
    }

    /// `{"before": RFC 3339}`: every account's events before then, as an export.
    fn export(lk: &Latchkey, data_dir: &Path, request: &Value) -> Result<Download, String> {
        let before = request
            .get("before")
            .and_then(Value::as_str)
            .ok_or_else(|| "audit.export needs before (an RFC 3339 time)".to_owned())
            .and_then(|text| {
                crate::domain::time::Timestamp::parse_rfc3339("before", text)
                    .map_err(|e| e.to_string())
            })?;
        let download = Download::new(data_dir, "audit-export")?;
        let chains = (|| {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(&download.path).map_err(|e| e.to_string())?;
            let mut out = std::io::BufWriter::new(file);
            lk.export_events(before, &mut out)
                .map_err(|e| e.to_string())
        })()
        .map_err(|e| format!("the export could not be made: {e}"))?;
        let events: u64 = chains.iter().map(|c| c.next_seq - c.from_seq).sum();
        tracing::info!(
            accounts = chains.len(),
            events,
            "audit events exported by the operator"
        );
        download.finish(json!({"accounts": chains.len(), "events": events}))
    }

    async fn send(self, mut writer: tokio::net::unix::OwnedWriteHalf) {
        let mut line = self.header.to_string();
        line.push('\n');
        let sent = async {
            writer.write_all(line.as_bytes()).await?;
            let mut file = tokio::fs::File::open(&self.path).await?;
            let copied = tokio::io::copy(&mut file, &mut writer).await?;
            writer.shutdown().await?;
            Ok::<_, std::io::Error>(copied)
        };
        match sent.await {
            Ok(copied) if copied == self.bytes => {}
            Ok(copied) => tracing::warn!(copied, "the backup file changed while it was sent"),
            Err(err) => tracing::warn!(error = %err, "the backup could not be sent"),
        }
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The chains of an `audit.prune` request, as `chain_json` writes them.
fn chains_of(request: &Value) -> Result<Vec<crate::store::ExportedChain>, String> {
    let list = request
        .get("chains")
        .and_then(Value::as_array)
        .ok_or_else(|| "audit.prune needs chains".to_owned())?;
    list.iter()
        .map(|chain| {
            let text = |name: &str| chain.get(name).and_then(Value::as_str);
            let number = |name: &str| chain.get(name).and_then(Value::as_u64);
            let digest = |name: &str| -> Option<[u8; 32]> {
                let text = text(name)?;
                let mut out = [0u8; 32];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
                }
                (text.len() == 64).then_some(out)
            };
            let parsed = || {
                Some(crate::store::ExportedChain {
                    account: text("account")?.parse().ok()?,
                    from_seq: number("from_seq")?,
                    prev: digest("prev")?,
                    next_seq: number("next_seq")?,
                    hash: digest("hash")?,
                })
            };
            parsed().ok_or_else(|| "a chain of audit.prune is malformed".to_owned())
        })
        .collect()
}

/// A chain of an export as `audit.prune` takes it.
pub fn chain_json(chain: &crate::store::ExportedChain) -> Value {
    json!({
        "account": chain.account.to_string(),
        "from_seq": chain.from_seq,
        "prev": hex(&chain.prev),
        "next_seq": chain.next_seq,
        "hash": hex(&chain.hash),
    })
}

/// The size and SHA-256 (hex) of a file.
fn digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = std::io::Read::read(&mut file, &mut chunk)?;
        let Some(part) = chunk.get(..n).filter(|p| !p.is_empty()) else {
            return Ok((bytes, hex(&hasher.finalize())));
        };
        hasher.update(part);
        bytes += n as u64;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn read_request(reader: tokio::net::unix::OwnedReadHalf) -> Result<(String, Value), String> {
    let mut line = Vec::new();
    let mut limited =
        tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(reader, MAX_REQUEST as u64));
    tokio::time::timeout(REQUEST_TIMEOUT, limited.read_until(b'\n', &mut line))
        .await
        .map_err(|_| "no request arrived in time".to_owned())?
        .map_err(|e| format!("the request could not be read: {e}"))?;
    let request: Value =
        serde_json::from_slice(&line).map_err(|e| format!("the request is not JSON: {e}"))?;
    let op = request
        .get("op")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "the request names no op".to_owned())?;
    Ok((op, request))
}

fn refused(why: &str) -> Value {
    json!({"ok": false, "error": why})
}

/// Run one operation for the operator.
fn run(lk: &Latchkey, op: &str, request: &Value) -> Value {
    if op == "audit.prune" {
        return match chains_of(request)
            .and_then(|chains| lk.prune_events(&chains).map_err(|e| e.to_string()))
        {
            Ok(pruned) => {
                tracing::info!(pruned, "audit events pruned by the operator");
                json!({"ok": true, "pruned": pruned})
            }
            Err(why) => refused(&format!("nothing was pruned: {why}")),
        };
    }
    if op == "key.rotate" {
        return match lk.rotate_key() {
            Ok(done) => json!({
                "ok": true,
                "version": done.version,
                "versions": done.versions,
                "resealed_totp_seeds": done.resealed_totp,
                "resealed_invitations": done.resealed_invitations,
                "resealed_destination_secrets": done.resealed_destination_secrets,
                "resealed_provider_secrets": done.resealed_provider_secrets,
                "note": "new tokens, sessions, links and sealed secrets use the new key; those made before keep working under the older one until rotated or expired. Back up server.key again: it now holds every version",
            }),
            Err(err) => {
                tracing::error!(error = %err, "the operator's key rotation failed");
                refused(&format!("the key was not rotated: {err}"))
            }
        };
    }
    let answer = match op {
        "policy.list" => lk.live_policies(),
        "policy.reload" => lk.reload_policies("operator"),
        "policy.history" => {
            return match lk.appliance_trail(HISTORY) {
                Ok(events) => json!({
                    "ok": true,
                    "events": events.iter().map(|e| crate::api::appliance_event(e, true)).collect::<Vec<_>>(),
                }),
                Err(err) => refused(&err.to_string()),
            };
        }
        other => {
            return refused(&format!(
                "unknown op {other:?}: policy.list, policy.reload, policy.history, backup, key.rotate, audit.export, audit.prune"
            ));
        }
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
    let (answer, _) = request(data_dir, op)?;
    Ok(answer)
}

/// Send `op` and read the answer line; the reader is left at what follows it.
fn request(data_dir: &Path, op: &str) -> Result<(Value, BufReader<UnixStreamStd>), String> {
    send(data_dir, &json!({"op": op}))
}

/// Send a request with parameters (`{"op", …}`) and return the answer.
pub fn call_with(data_dir: &Path, request: &Value) -> Result<Value, String> {
    send(data_dir, request).map(|(answer, _)| answer)
}

fn send(data_dir: &Path, request: &Value) -> Result<(Value, BufReader<UnixStreamStd>), String> {
    let path = data_dir.join(SOCKET);
    let stream = UnixStreamStd::connect(&path).map_err(|e| {
        format!(
            "no latchkey server answers on {} ({e}): is `latchkey serve` running on this data directory, as this user?",
            path.display()
        )
    })?;
    let talk = |stream: UnixStreamStd| -> std::io::Result<(String, BufReader<UnixStreamStd>)> {
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut writer = stream.try_clone()?;
        writer.write_all(format!("{request}\n").as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut answer = String::new();
        reader.read_line(&mut answer)?;
        Ok((answer, reader))
    };
    let (answer, reader) =
        talk(stream).map_err(|e| format!("the admin socket {}: {e}", path.display()))?;
    let answer = serde_json::from_str(&answer).map_err(|_| {
        format!(
            "the admin socket {} did not answer with JSON",
            path.display()
        )
    })?;
    Ok((answer, reader))
}

/// `latchkey backup`: ask the server on `data_dir` for a snapshot and write it to `out`
/// (0600, written beside it and renamed into place once its size and SHA-256 match the
/// server's). Returns the server's answer, with `out`; a refusal is returned as is.
pub fn backup(data_dir: &Path, out: &Path) -> Result<Value, String> {
    let mut answer = download(data_dir, &json!({"op": "backup"}), out)?;
    if answer.get("ok").and_then(Value::as_bool) == Some(true)
        && let Some(fields) = answer.as_object_mut()
    {
        fields.insert(
            "key".into(),
            "not included: keep server.key apart; `latchkey restore --key` needs it".into(),
        );
    }
    Ok(answer)
}

/// Send `request`, whose answer line is followed by a file, and write the file to `out`
/// (0600, beside it first, renamed into place once its size and SHA-256 match).
pub fn download(data_dir: &Path, request: &Value, out: &Path) -> Result<Value, String> {
    let (mut answer, mut reader) = send(data_dir, request)?;
    if answer.get("ok").and_then(Value::as_bool) != Some(true) {
        return Ok(answer);
    }
    let bytes = answer.get("bytes").and_then(Value::as_u64);
    let sha256 = answer
        .get("sha256")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (Some(bytes), Some(sha256)) = (bytes, sha256) else {
        return Err("the server's backup answer names no size and hash".to_owned());
    };
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = (|| -> std::io::Result<(u64, String)> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&partial)?;
        let mut hasher = sha2::Sha256::new();
        let mut limited = std::io::Read::take(&mut reader, bytes);
        let mut chunk = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = std::io::Read::read(&mut limited, &mut chunk)?;
            let Some(part) = chunk.get(..n).filter(|p| !p.is_empty()) else {
                break;
            };
            hasher.update(part);
            file.write_all(part)?;
            total += n as u64;
        }
        file.sync_all()?;
        Ok((total, hex(&hasher.finalize())))
    })();
    let fail = |why: String| {
        let _ = std::fs::remove_file(&partial);
        Err(why)
    };
    match written {
        Ok((total, got)) if total == bytes && got == sha256 => {}
        Ok((total, _)) if total != bytes => {
            return fail(format!(
                "the backup arrived cut short ({total} of {bytes} bytes); nothing was written"
            ));
        }
        Ok(_) => {
            return fail(
                "the backup arrived damaged (SHA-256 mismatch); nothing was written".to_owned(),
            );
        }
        Err(err) => return fail(format!("cannot write {}: {err}", partial.display())),
    }
    if let Err(err) = std::fs::rename(&partial, out) {
        return fail(format!("cannot write {}: {err}", out.display()));
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = std::fs::File::open(parent).and_then(|dir| dir.sync_all());
    }
    if let Some(fields) = answer.as_object_mut() {
        fields.insert("out".into(), out.display().to_string().into());
    }
    Ok(answer)
}
