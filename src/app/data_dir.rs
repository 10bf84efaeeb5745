//! The data directory: `latchkey.redb` (the database) and `server.key` (the HMAC key
//! behind every stored token hash). The key is made once, before the first database, and
//! a database whose key is gone is refused: its tokens could never verify again.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::app::AppError;
use crate::domain::token::SecretHasher;

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
    pub fn server_key(
        &self,
        create: bool,
    ) -> Result<Zeroizing<[u8; SecretHasher::KEY_LEN]>, AppError> {
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
            (Ok(bytes), Some(size)) if size > 0 => {
                let bytes = Zeroizing::new(bytes);
                let mut key = Zeroizing::new([0u8; SecretHasher::KEY_LEN]);
                if bytes.len() != key.len() {
                    return Err(AppError::DataDir(format!(
                        "{} is not a latchkey server key (expected {} bytes)",
                        path.display(),
                        key.len()
                    )));
                }
                key.copy_from_slice(&bytes);
                Ok(key)
            }
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
                Ok(key)
            }
            (Err(err), _) => Err(fail("cannot read", err)),
        }
    }
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
