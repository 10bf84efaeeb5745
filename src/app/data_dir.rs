//! The data directory: `latchkey.redb` (the database) and `server.key` (the HMAC keys
//! behind every stored token hash and sealed seed). The first key is made once, before the
//! first database, as 32 raw bytes (version 1); `latchkey key rotate` turns the file into
//! a keyring of versioned keys. A database whose key is gone is refused: its tokens could
//! never verify again.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::app::AppError;
use crate::domain::token::{Keyring, SecretHasher};

const DATABASE: &str = "latchkey.redb";
const SERVER_KEY: &str = "server.key";

/// Paths inside one data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The directory at `root` (not touched until used).
    pub fn new(root: &Path) -> Self {
        DataDir {
            root: root.to_owned(),
        }
    }

    /// The database file.
    pub fn database(&self) -> PathBuf {
        self.root.join(DATABASE)
    }

    fn key_path(&self) -> PathBuf {
        self.root.join(SERVER_KEY)
    }

    /// The server key. A data directory is whole (both files) or new (neither): with
    /// `create`, a new one is made here; anything else, a missing file beside the other,
    /// an empty database or no directory at all, is refused, and nothing is created.
    /// (A database beside a fresh key, or a fresh database beside an old key, would
    /// either verify no token or bootstrap a second first administrator.)
    pub fn server_keys(&self, create: bool) -> Result<ServerKeys, AppError> {
        let path = self.key_path();
        let database = self.database();
        let fail = |what: &str, err: std::io::Error| {
            AppError::DataDir(format!("{what} {}: {err}", path.display()))
        };
        let database_size = match fs::metadata(&database) {
            Ok(meta) => Some(meta.len()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => {
                return Err(AppError::DataDir(format!(
                    "cannot read {}: {err}",
                    database.display()
                )));
            }
        };
        match (fs::read(&path), database_size) {
            (Ok(bytes), Some(size)) if size > 0 => ServerKeys::parse(&Zeroizing::new(bytes), &path),
            (Ok(_), Some(_)) => Err(AppError::DataDir(format!(
                "{} is empty (0 bytes): restore it from a backup; latchkey makes a new database only in a directory with neither it nor {}",
                database.display(),
                path.display()
            ))),
            (Ok(_), None) => Err(AppError::DataDir(format!(
                "{} is missing beside {}: restore it from a backup; latchkey makes a new database only in a directory with neither",
                database.display(),
                path.display()
            ))),
            (Err(err), Some(_)) if err.kind() == std::io::ErrorKind::NotFound => {
                Err(AppError::DataDir(format!(
                    "{} is missing, but {} exists: restore the key from backup (without it no stored token can be verified)",
                    path.display(),
                    database.display()
                )))
            }
            (Err(err), None) if err.kind() == std::io::ErrorKind::NotFound => {
                if !create {
                    return Err(AppError::DataDir(format!(
                        "no latchkey data directory at {} (neither server.key nor latchkey.redb): make one with `latchkey init` or `latchkey serve`",
                        self.root.display()
                    )));
                }
                create_private_dir(&self.root)
                    .map_err(|e| fail("cannot create the data directory for", e))?;
                let key = SecretHasher::generate_key()?;
                write_private(&path, key.as_ref()).map_err(|e| fail("cannot write", e))?;
                Ok(ServerKeys(vec![(1, key)]))
            }
            (Err(err), _) => Err(fail("cannot read", err)),
        }
    }
}

/// The server keys of `server.key`, by version: 32 raw bytes are one key, version 1 (as
/// every data directory starts); after a rotation the file is a keyring, a first line
/// `latchkey-keyring v1` then one `<version> <64 hex digits>` line per key.
pub struct ServerKeys(Vec<(u32, Zeroizing<[u8; SecretHasher::KEY_LEN]>)>);

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let versions: Vec<u32> = self.0.iter().map(|(v, _)| *v).collect();
        write!(f, "ServerKeys({versions:?}, [redacted])")
    }
}

const KEYRING_HEADER: &str = "latchkey-keyring v1";

impl ServerKeys {
    fn parse(bytes: &[u8], path: &Path) -> Result<ServerKeys, AppError> {
        let bad = |why: &str| {
            AppError::DataDir(format!(
                "{} is not a latchkey server key ({why})",
                path.display()
            ))
        };
        if let Ok(raw) = <[u8; SecretHasher::KEY_LEN]>::try_from(bytes) {
            return Ok(ServerKeys(vec![(1, Zeroizing::new(raw))]));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("expected 32 bytes or a keyring"))?;
        let mut lines = text.lines();
        if lines.next() != Some(KEYRING_HEADER) {
            return Err(bad("expected 32 bytes or a keyring"));
        }
        let mut keys = Vec::new();
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let (version, hex) = line
                .split_once(' ')
                .ok_or_else(|| bad("a keyring line is not `<version> <hex>`"))?;
            let version: u32 = version
                .parse()
                .map_err(|_| bad("a keyring version is not a number"))?;
            let mut key = Zeroizing::new([0u8; SecretHasher::KEY_LEN]);
            if hex.len() != 2 * key.len() {
                return Err(bad("a keyring key is not 64 hex digits"));
            }
            for (at, byte) in key.iter_mut().enumerate() {
                *byte = hex
                    .get(2 * at..2 * at + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| bad("a keyring key is not 64 hex digits"))?;
            }
            keys.push((version, key));
        }
        let keys = ServerKeys(keys);
        keys.keyring().map_err(|e| bad(&e.to_string()))?;
        Ok(keys)
    }

    /// The keyring these keys make.
    pub fn keyring(&self) -> Result<Keyring, AppError> {
        Ok(Keyring::new(
            self.0
                .iter()
                .map(|(version, key)| (*version, SecretHasher::new(key)))
                .collect(),
        )?)
    }

    /// The versions, ascending.
    pub fn versions(&self) -> Vec<u32> {
        let mut versions: Vec<u32> = self.0.iter().map(|(v, _)| *v).collect();
        versions.sort_unstable();
        versions
    }

    /// Add a fresh random key one version past the newest; returns its version.
    pub fn add_new(&mut self) -> Result<u32, AppError> {
        let version = self.0.iter().map(|(v, _)| *v).max().unwrap_or(0) + 1;
        self.0.push((version, SecretHasher::generate_key()?));
        Ok(version)
    }

    /// The keyring file's text.
    fn text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(format!("{KEYRING_HEADER}\n"));
        let mut keys: Vec<&(u32, Zeroizing<[u8; SecretHasher::KEY_LEN]>)> = self.0.iter().collect();
        keys.sort_by_key(|(v, _)| *v);
        for (version, key) in keys {
            text.push_str(&version.to_string());
            text.push(' ');
            for byte in key.iter() {
                text.push_str(&format!("{byte:02x}"));
            }
            text.push('\n');
        }
        text
    }
}

impl DataDir {
    /// Replace `server.key` with `keys`, atomically and durably: written beside it
    /// (0600), synced, renamed over it, and the directory synced. A crash leaves the old
    /// file or the new one, never a part.
    pub fn write_server_keys(&self, keys: &ServerKeys) -> Result<(), AppError> {
        let path = self.key_path();
        let staging = self.root.join("server.key.new");
        let _ = fs::remove_file(&staging);
        let written = write_private(&staging, keys.text().as_bytes())
            .and_then(|()| fs::rename(&staging, &path))
            .and_then(|()| fs::File::open(&self.root)?.sync_all());
        written.map_err(|e| AppError::DataDir(format!("cannot write {}: {e}", path.display())))
    }
}

/// What `latchkey restore` made, or why it refused.
#[derive(Debug)]
pub enum Restore {
    /// The data directory was made from the backup, which the check found whole.
    Made {
        /// The full check of the restored file.
        report: crate::store::CheckReport,
        /// What the backup says of itself.
        snapshot: crate::store::Snapshot,
    },
    /// The backup is damaged or is not this key's: nothing was made. Each problem in a
    /// sentence.
    Refused(Vec<String>),
}

impl DataDir {
    /// Make this (new) data directory from the snapshot at `backup` and the server key at
    /// `key`. The backup is copied in under a temporary name and checked in full there
    /// (redb's integrity check, every record, the indexes, the chains), and the key must
    /// be the one the backup records; only then do `latchkey.redb` and `server.key`
    /// appear. A directory that holds either file already is refused: a restore never
    /// overwrites a data directory.
    pub fn restore(&self, backup: &Path, key: &Path) -> Result<Restore, AppError> {
        let database = self.database();
        let key_path = self.key_path();
        for existing in [&database, &key_path] {
            if existing.exists() {
                return Err(AppError::DataDir(format!(
                    "{} exists: restore makes a new data directory, it never overwrites one",
                    existing.display()
                )));
            }
        }
        let key_bytes = Zeroizing::new(fs::read(key).map_err(|e| {
            AppError::DataDir(format!("cannot read the server key {}: {e}", key.display()))
        })?);
        let keys = ServerKeys::parse(&key_bytes, key)?;
        let fingerprints = super::fingerprints(&keys.keyring()?);
        fs::metadata(backup)
            .map_err(|e| AppError::DataDir(format!("cannot read {}: {e}", backup.display())))?;

        let made_root = !self.root.exists();
        create_private_dir(&self.root).map_err(|e| {
            AppError::DataDir(format!("cannot create {}: {e}", self.root.display()))
        })?;
        let staging = self.root.join("latchkey.redb.restoring");
        let copied = copy_private(backup, &staging)
            .map_err(|e| AppError::DataDir(format!("cannot copy {}: {e}", backup.display())));
        // A damaged file can make the storage library panic: that is damage too.
        let judged = copied.and_then(|()| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                judge(&staging, &fingerprints)
            }))
            .unwrap_or_else(|_| {
                Ok(Restore::Refused(vec![
                    "the storage library failed on this file: it is damaged".into(),
                ]))
            })
        });
        match judged {
            Ok(Restore::Made { report, snapshot }) => {
                write_private(&key_path, &key_bytes).map_err(|e| {
                    AppError::DataDir(format!("cannot write {}: {e}", key_path.display()))
                })?;
                fs::rename(&staging, &database).map_err(|e| {
                    AppError::DataDir(format!("cannot write {}: {e}", database.display()))
                })?;
                fs::File::open(&self.root)
                    .and_then(|dir| dir.sync_all())
                    .map_err(|e| {
                        AppError::DataDir(format!("cannot sync {}: {e}", self.root.display()))
                    })?;
                Ok(Restore::Made { report, snapshot })
            }
            other => {
                let _ = fs::remove_file(&staging);
                if made_root {
                    let _ = fs::remove_dir(&self.root);
                }
                other
            }
        }
    }
}

/// Check a staged backup in full and match its key fingerprints: every key version the
/// backup records must be in the key file, and be that key.
fn judge(staging: &Path, fingerprints: &[(u32, u64)]) -> Result<Restore, AppError> {
    let snapshot = match crate::store::describe(staging) {
        Ok(snapshot) => snapshot,
        Err(err) => {
            return Ok(Restore::Refused(vec![format!(
                "not a latchkey backup: {err}"
            )]));
        }
    };
    if snapshot.schema_version != crate::store::SCHEMA_VERSION {
        return Err(AppError::DataDir(format!(
            "the backup is at schema version {}, this latchkey writes {}: restore it with the latchkey that made it, then upgrade",
            snapshot.schema_version,
            crate::store::SCHEMA_VERSION
        )));
    }
    let matches = snapshot.key_fingerprints.iter().all(|(version, recorded)| {
        fingerprints
            .iter()
            .any(|(v, f)| v == version && f == recorded)
    });
    if !matches {
        return Err(AppError::DataDir(
            "the server key given is not the one this backup was made with (or lacks one of its versions): no stored token, session or TOTP seed would work; give the server.key of the backed-up data directory".into(),
        ));
    }
    let report = crate::store::check(staging).map_err(AppError::Store)?;
    if report.problems.is_empty() {
        Ok(Restore::Made { report, snapshot })
    } else {
        Ok(Restore::Refused(report.problems))
    }
}

/// Copy `from` to a new file `to` readable only by its owner, durably.
fn copy_private(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut target = options.open(to)?;
    std::io::copy(&mut fs::File::open(from)?, &mut target)?;
    target.sync_all()
}

/// Make `path` (and missing parents) a directory only its owner may enter: made 0700, or,
/// when it exists already (an operator's `mkdir`), narrowed to 0700, since it is about to
/// hold the server key, the database and the admin socket.
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)?;
    #[cfg(unix)]
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

impl DataDir {
    /// Keep the database file to its owner (0600): redb creates it with the process's
    /// default mode. Called after every open, so a file copied in wider is narrowed too.
    pub fn restrict_database(&self) -> Result<(), AppError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = self.database();
            let mode = fs::metadata(&path)
                .map_err(|e| AppError::DataDir(format!("cannot read {}: {e}", path.display())))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(|e| {
                    AppError::DataDir(format!("cannot restrict {}: {e}", path.display()))
                })?;
            }
        }
        Ok(())
    }
}

/// Write a new file readable only by its owner, and make it durable before returning.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}
