//! The only module that imports redb: the file, its tables, schema migrations, write
//! transactions that keep secondary indexes, audit chain and the in-memory credential
//! index in step, and coalesced `last_used_at` writes.
//!
//! It enforces uniqueness (account names, emails, SSH fingerprints) because only the
//! store can see every record; all other rules live in `domain` and are applied by `app`
//! inside a [`WriteTx`]. It knows nothing of HTTP or policies.

pub(crate) mod audit;
mod backup;
mod check;
mod codec;
mod index;
mod retention;
mod tables;
#[cfg(test)]
mod tests;
mod tx;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable};
use rustc_hash::FxHashMap;

use crate::domain::DomainError;
use crate::domain::bot::BotUser;
use crate::domain::credential::{Credential, OwnerStanding, RevokedCredential};
use crate::domain::time::{Clock, SystemClock, Timestamp};
use crate::domain::token::SecretHash;
use crate::domain::user::{MemberState, Membership};
pub use audit::{AuditReport, ChainBreak};
pub use backup::{Snapshot, describe};
pub use check::{CheckReport, check};
pub use index::CredentialIndex;
use index::{IndexOp, LiveEntry};
pub use retention::{ExportedChain, verify_export};
use tables::*;
use tx::meta;
pub use tx::{EventQuery, Page, PageRequest, ReadTx, Reads, SignalTx, WriteTx};

/// Entry points of the fuzz targets (`fuzz/`), built only under cargo-fuzz.
#[cfg(fuzzing)]
pub mod fuzzing {
    /// Decode arbitrary bytes as every stored record type (see `codec`).
    pub fn decode_every_record_type(bytes: &[u8]) {
        super::codec::decode_as_every_type(bytes);
    }
}

/// redb's page cache unless configured: 32 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// The schema this build writes.
pub const SCHEMA_VERSION: u64 = 11;

/// Why the store failed. Domain refusals found by the store (a unique value already
/// taken, an object missing) travel as [`StoreError::Domain`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process holds the file's exclusive lock.
    #[error(
        "the database is in use by another latchkey process (is `latchkey serve` running on this data directory? stop it first)"
    )]
    Locked,
    /// The file was written by a newer latchkey.
    #[error(
        "the database is at schema version {found}, newer than this build supports ({supported}); upgrade latchkey"
    )]
    TooNew { found: u64, supported: u64 },
    /// The file is at an older schema and must be migrated explicitly first.
    #[error(
        "the database is at schema version {found}; run `latchkey migrate` to bring it to version {current}"
    )]
    NeedsMigration { found: u64, current: u64 },
    /// A record could not be decoded.
    #[error("corrupt {table} record: {detail}")]
    Corrupt { table: &'static str, detail: String },
    /// redb reported an error other than I/O.
    #[error("storage error: {0}")]
    Storage(String),
    /// The file could not be read or written (a full disk, a failing device), or the
    /// store is reopening it after such a failure. Writes resume by themselves once the
    /// cause clears (see [`Store::readiness`]).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The server key is not the one the database was made with.
    #[error(
        "server.key is not the key this database was made with (or lacks one of its versions): no stored token would verify; restore the key that belongs with this database"
    )]
    WrongKey,
    /// A rule the store checks (uniqueness, existence) refused the change.
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl StoreError {
    pub(crate) fn corrupt(table: &'static str, detail: impl Into<String>) -> Self {
        StoreError::Corrupt {
            table,
            detail: detail.into(),
        }
    }

    /// A damaged record's error, naming the key it is stored under.
    pub(crate) fn at_key(self, key: u128) -> Self {
        match self {
            StoreError::Corrupt { table, detail } => StoreError::Corrupt {
                table,
                detail: format!("{detail} (key {key:#034x})"),
            },
            other => other,
        }
    }
}

/// redb's storage error, I/O failures apart: after one, redb refuses every later
/// operation until the file is reopened.
impl From<redb::StorageError> for StoreError {
    fn from(err: redb::StorageError) -> Self {
        match err {
            // A read past the end of the file: its structure points at pages that are not
            // there. That is damage (a flipped pointer, a truncated copy), not an I/O
            // failure that clears by itself.
            redb::StorageError::Io(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                StoreError::Storage(format!("the file is damaged: {err}"))
            }
            redb::StorageError::Io(_)
            | redb::StorageError::PreviousIo
            | redb::StorageError::DatabaseClosed => StoreError::Unavailable(err.to_string()),
            other => StoreError::Storage(other.to_string()),
        }
    }
}

macro_rules! storage_errors {
    ($($ty:ty),*) => {$(
        impl From<$ty> for StoreError {
            fn from(err: $ty) -> Self {
                match err.into() {
                    redb::Error::Io(io) => redb::StorageError::Io(io).into(),
                    redb::Error::PreviousIo => redb::StorageError::PreviousIo.into(),
                    redb::Error::DatabaseClosed => redb::StorageError::DatabaseClosed.into(),
                    other => StoreError::Storage(other.to_string()),
                }
            }
        }
    )*};
}
storage_errors!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError
);

impl From<redb::DatabaseError> for StoreError {
    fn from(err: redb::DatabaseError) -> Self {
        match err {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
            redb::DatabaseError::Storage(err) => err.into(),
            other => StoreError::Storage(other.to_string()),
        }
    }
}

/// One explicit schema step.
struct Migration {
    to: u64,
    what: &'static str,
    run: fn(&redb::WriteTransaction) -> Result<(), StoreError>,
}

/// Every step from an empty file to [`SCHEMA_VERSION`], in order.
const MIGRATIONS: &[Migration] = &[
    Migration {
        to: 1,
        what: "create the tables of schema 1",
        run: create_tables_v1,
    },
    Migration {
        to: 2,
        what: "create the IP policy, rule and restriction tables",
        run: create_ip_tables,
    },
    Migration {
        to: 3,
        what: "create the tenant, role, role assignment and permission tables",
        run: create_tenancy_tables,
    },
    Migration {
        to: 4,
        what: "create the password, session, TOTP, password reset and invitation tables",
        run: create_login_tables,
    },
    Migration {
        to: 5,
        what: "create the email proof table (one-time links name their purpose from now on); key account names by NFKC and case folding",
        run: schema_5,
    },
    Migration {
        to: 6,
        what: "index events by id, principal, action, object and time, credentials by account and kind, and role assignments by principal, so every list page reads only itself; keep rate-limiter counts across restarts; anchor pruned audit chains",
        run: schema_6,
    },
    Migration {
        to: 7,
        what: "create the event destination tables (destinations, their sealed signing secrets and delivery cursors)",
        run: schema_7,
    },
    Migration {
        to: 8,
        what: "create the passkey tables (passkeys, each user's, and the credential id index)",
        run: schema_8,
    },
    Migration {
        to: 9,
        what: "create the single sign-on tables (identity providers, their sealed client secrets, external identities, used SAML assertions)",
        run: schema_9,
    },
    Migration {
        to: 10,
        what: "create the SCIM tables (tokens, what SCIM keeps per member, userNames, groups and each member's groups)",
        run: schema_10,
    },
    Migration {
        to: 11,
        what: "create the tables of SCIM group mappings and of roles and role assignments by source",
        run: schema_11,
    },
];

/// Every record of a table, in key order (for a migration).
fn every_record<K: redb::Key + 'static, R: codec::Record>(
    txn: &redb::WriteTransaction,
    table: redb::TableDefinition<'static, K, &'static [u8]>,
) -> Result<Vec<R>, StoreError> {
    let table = txn.open_table(table)?;
    let rows = table.iter()?;
    rows.map(|row| codec::decode(row?.1.value())).collect()
}

fn schema_11(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(SCIM_GROUP_MAPPINGS)?;
    txn.open_table(ACCOUNT_SCIM_GROUP_MAPPINGS)?;
    txn.open_table(SCIM_GROUP_MAPPED)?;
    txn.open_table(MEMBER_GRANTS)?;
    txn.open_table(ASSIGNMENT_SOURCES)?;
    Ok(())
}

fn schema_10(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(SCIM_TOKENS)?;
    txn.open_table(ACCOUNT_SCIM_TOKENS)?;
    txn.open_table(SCIM_PROFILES)?;
    txn.open_table(SCIM_USER_NAMES)?;
    txn.open_table(SCIM_GROUPS)?;
    txn.open_table(ACCOUNT_SCIM_GROUPS)?;
    txn.open_table(USER_SCIM_GROUPS)?;
    Ok(())
}

fn schema_9(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(IDENTITY_PROVIDERS)?;
    txn.open_table(ACCOUNT_IDENTITY_PROVIDERS)?;
    txn.open_table(IDENTITY_PROVIDER_SECRETS)?;
    txn.open_table(EXTERNAL_IDENTITIES)?;
    txn.open_table(EXTERNAL_SUBJECTS)?;
    txn.open_table(USER_EXTERNAL_IDENTITIES)?;
    txn.open_table(SAML_ASSERTIONS)?;
    Ok(())
}

fn schema_8(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(PASSKEYS)?;
    txn.open_table(USER_PASSKEYS)?;
    txn.open_table(PASSKEY_CREDENTIALS)?;
    Ok(())
}

fn schema_7(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(DESTINATIONS)?;
    txn.open_table(ACCOUNT_DESTINATIONS)?;
    txn.open_table(DESTINATION_SECRETS)?;
    txn.open_table(DELIVERY_STATUS)?;
    Ok(())
}

fn schema_6(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(EVENT_IDS)?;
    txn.open_table(EVENTS_BY_PRINCIPAL)?;
    txn.open_table(EVENTS_BY_ACTION)?;
    txn.open_table(EVENTS_BY_OBJECT)?;
    txn.open_table(EVENTS_BY_TIME)?;
    txn.open_table(ACCOUNT_CREDENTIALS)?;
    txn.open_table(RECENT_ATTEMPTS)?;
    txn.open_table(AUDIT_CHECKPOINTS)?;
    let assignments: Vec<crate::domain::tenancy::RoleAssignment> =
        every_record(txn, ROLE_ASSIGNMENTS)?;
    let mut by_principal = txn.open_table(PRINCIPAL_ROLE_ASSIGNMENTS)?;
    for assignment in &assignments {
        by_principal.insert(
            (
                assignment.account.0,
                assignment.principal.raw(),
                assignment.id.0,
            ),
            (),
        )?;
    }
    drop(by_principal);
    let events: Vec<crate::domain::event::Event> = every_record(txn, EVENTS)?;
    for event in &events {
        tx::index_event(txn, event)?;
    }
    let credentials: Vec<Credential> = every_record(txn, CREDENTIALS)?;
    let mut index = txn.open_table(ACCOUNT_CREDENTIALS)?;
    for credential in &credentials {
        index.insert(
            (
                credential.account.0,
                tx::kind_key(credential.id.kind),
                credential.id.raw,
            ),
            (),
        )?;
    }
    Ok(())
}

fn schema_5(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(EMAIL_PROOFS)?;
    // Account names were unique by `to_lowercase`; now by `name::unique_key`, which
    // folds more (full-width forms, `ß`, ligatures). Re-key the index; two names that now
    // collide stop the migration, naming both, rather than silently losing one.
    let accounts = txn.open_table(ACCOUNTS)?;
    let mut keyed: Vec<(String, u128, String)> = Vec::new();
    for row in accounts.iter()? {
        let (id, bytes) = row?;
        let account: crate::domain::account::Account = codec::decode(bytes.value())?;
        keyed.push((
            crate::domain::account::Account::name_key(&account.name),
            id.value(),
            account.name,
        ));
    }
    keyed.sort();
    if let Some(pair) = keyed.windows(2).find(|w| matches!(w, [a, b] if a.0 == b.0)) {
        let names: Vec<&str> = pair.iter().map(|(_, _, name)| name.as_str()).collect();
        return Err(StoreError::Storage(format!(
            "the account names {names:?} now count as the same name; rename one with the previous latchkey before migrating"
        )));
    }
    let mut names = txn.open_table(ACCOUNT_NAMES)?;
    names.retain(|_, _| false)?;
    for (key, id, _) in &keyed {
        names.insert(key.as_str(), *id)?;
    }
    Ok(())
}

fn create_login_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(PASSWORDS)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(USER_SESSIONS)?;
    txn.open_table(TOTP)?;
    txn.open_table(PASSWORD_RESETS)?;
    txn.open_table(INVITATIONS)?;
    txn.open_table(ACCOUNT_INVITATIONS)?;
    Ok(())
}

fn create_tenancy_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(TENANTS)?;
    txn.open_table(ACCOUNT_TENANTS)?;
    txn.open_table(ROLES)?;
    txn.open_table(ACCOUNT_ROLES)?;
    txn.open_table(ROLE_ASSIGNMENTS)?;
    txn.open_table(ACCOUNT_ROLE_ASSIGNMENTS)?;
    txn.open_table(PERMISSIONS)?;
    txn.open_table(ACCOUNT_PERMISSIONS)?;
    Ok(())
}

fn create_ip_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(IP_POLICIES)?;
    txn.open_table(ACCOUNT_IP_POLICIES)?;
    txn.open_table(IP_RULES)?;
    txn.open_table(ACCOUNT_IP_RULES)?;
    txn.open_table(IP_RESTRICTIONS)?;
    txn.open_table(ACCOUNT_IP_RESTRICTIONS)?;
    Ok(())
}

fn create_tables_v1(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(ACCOUNTS)?;
    txn.open_table(ACCOUNT_NAMES)?;
    txn.open_table(USERS)?;
    txn.open_table(USER_EMAILS)?;
    txn.open_table(MEMBERS)?;
    txn.open_table(USER_ACCOUNTS)?;
    txn.open_table(BOTS)?;
    txn.open_table(ACCOUNT_BOTS)?;
    txn.open_table(CREDENTIALS)?;
    txn.open_table(CREDENTIAL_SECRETS)?;
    txn.open_table(OWNER_CREDENTIALS)?;
    txn.open_table(SSH_FINGERPRINTS)?;
    txn.open_table(REVOKED)?;
    txn.open_table(LAST_USED)?;
    txn.open_table(EVENTS)?;
    txn.open_table(AUDIT_HEADS)?;
    Ok(())
}

/// The schema version recorded in the file; `None` for a file never initialised.
fn schema_version(db: &Database) -> Result<Option<u64>, StoreError> {
    let txn = db.begin_read()?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    Ok(meta.get(meta::SCHEMA_VERSION)?.map(|v| v.value()))
}

/// Run every migration step after `from`, and record the new version, in one transaction.
fn run_migrations(db: &Database, from: u64) -> Result<Vec<&'static str>, StoreError> {
    let txn = db.begin_write()?;
    let mut done = Vec::new();
    for step in MIGRATIONS.iter().filter(|step| step.to > from) {
        (step.run)(&txn)?;
        done.push(step.what);
    }
    txn.open_table(META)?
        .insert(meta::SCHEMA_VERSION, SCHEMA_VERSION)?;
    txn.commit()?;
    Ok(done)
}

/// An open latchkey database: the redb file plus the in-memory credential index.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    /// redb's page cache bound, kept for reopening.
    cache_bytes: usize,
    /// The open file; `None` only while a reopen after an I/O failure has not succeeded.
    /// Replaced only with the writer lock held.
    db: RwLock<Option<Database>>,
    index: CredentialIndex,
    /// Serialises writers from `begin_write` until the index reflects the commit, so the
    /// index sees commits in commit order (redb alone only serialises until commit).
    /// Reopening the file after an I/O failure happens under it too.
    writer: Mutex<()>,
    /// Committed writes (see [`Store::generation`]).
    generation: std::sync::atomic::AtomicU64,
    /// The file's commit counter (`meta::COMMITS`) as this store last committed it;
    /// changed only under the writer lock.
    commits: std::sync::atomic::AtomicU64,
    health: Health,
}

/// How long after a reopen the next may be tried, doubling while writes keep failing up to
/// [`REOPEN_BACKOFF_MAX`]: a full disk is not retried on every request (reopening repairs
/// the file, which reads all of it), and a write answers at once while it waits.
const REOPEN_BACKOFF: Duration = Duration::from_secs(1);
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(8);

/// Whether writes work, as the store last saw them.
#[derive(Debug, Default)]
struct Health {
    /// I/O failures seen since the store was opened.
    io_errors: std::sync::atomic::AtomicU64,
    state: Mutex<HealthState>,
}

#[derive(Debug, Default)]
struct HealthState {
    /// Why writes fail, and since when; `None` while the last write committed.
    failing: Option<(String, Timestamp)>,
    /// redb refuses everything after an I/O failure until the file is reopened.
    needs_reopen: bool,
    /// When the next reopen may be tried, and the wait after it.
    next_reopen: Option<(Instant, Duration)>,
}

/// What the store can do now, for a readiness probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The last write committed.
    Ready,
    /// Writes fail: why, and since when. Reads of the in-memory index still answer;
    /// writes resume by themselves once the cause clears.
    Degraded {
        /// The storage error, as the operating system gave it.
        reason: String,
        /// When writes began to fail.
        since: Timestamp,
    },
}

impl Health {
    fn state(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Note `err` if it is an I/O failure; hand it back either way.
    fn saw(&self, err: StoreError) -> StoreError {
        if let StoreError::Unavailable(reason) = &err {
            self.io_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut state = self.state();
            state.needs_reopen = true;
            if state.failing.is_none() {
                tracing::error!(error = %reason, "storage failing: writes are refused until it recovers");
                state.failing = Some((reason.clone(), SystemClock.now()));
            }
        }
        err
    }

    fn committed(&self) {
        let mut state = self.state();
        state.next_reopen = None;
        if let Some((reason, since)) = state.failing.take() {
            tracing::info!(failing_since = %since.to_rfc3339(), was = %reason, "storage recovered: writes commit again");
        }
    }
}

impl Store {
    /// Open (or create) the database at `path`. A new file is initialised at the current
    /// schema; an older one is refused until `Store::migrate` has run.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with redb's page cache bounded to `cache_bytes`. Lookups never
    /// read redb (the credential index answers them), so the cache serves list pages,
    /// writes and startup; redb's own default (1 GiB) would keep most of a large file
    /// resident after the index is loaded from it.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        let db = open_at_schema(path, cache_bytes)?;
        let index = load_index(&db)?;
        let commits = ReadTx::begin(&db)?.meta(meta::COMMITS)?.unwrap_or(0);
        Ok(Store {
            path: path.to_path_buf(),
            cache_bytes,
            db: RwLock::new(Some(db)),
            index,
            writer: Mutex::new(()),
            generation: std::sync::atomic::AtomicU64::new(0),
            commits: std::sync::atomic::AtomicU64::new(commits),
            health: Health::default(),
        })
    }

    /// The open file, reopened first if an I/O failure requires it. Call with the writer
    /// lock held.
    fn usable_db(&self) -> Result<RwLockReadGuard<'_, Option<Database>>, StoreError> {
        let reopen = {
            let mut state = self.health.state();
            let now = Instant::now();
            let (due, wait) = state.next_reopen.unwrap_or((now, REOPEN_BACKOFF));
            match (state.needs_reopen, now >= due) {
                (false, _) => false,
                (true, true) => {
                    state.next_reopen = Some((now + wait, (wait * 2).min(REOPEN_BACKOFF_MAX)));
                    true
                }
                (true, false) => {
                    let reason = state.failing.as_ref().map_or("", |(r, _)| r.as_str());
                    return Err(StoreError::Unavailable(format!(
                        "{reason} (retrying in {} ms)",
                        due.saturating_duration_since(now).as_millis()
                    )));
                }
            }
        };
        if reopen {
            self.reopen().map_err(|err| self.health.saw(err))?;
            self.health.state().needs_reopen = false;
        }
        let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
        if db.is_none() {
            return Err(StoreError::Unavailable(
                "the database file is not open".into(),
            ));
        }
        Ok(db)
    }

    /// Close the file and open it again. A commit that failed may still have reached the
    /// file: if the file's commit counter says one did, the credential index is rebuilt
    /// from the file (keeping the uses not yet flushed), so it stays exact. Call with the
    /// writer lock held.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = slot.take() {
            // Closing releases the file lock at once; read transactions still open on the
            // old file fail from now on, which their requests report.
            if let Err(err) = old.close() {
                tracing::warn!(error = %err, "closing the failed database");
            }
        }
        let db = open_at_schema(&self.path, self.cache_bytes)?;
        let on_file = ReadTx::begin(&db)?.meta(meta::COMMITS)?.unwrap_or(0);
        let expected = self.commits.load(std::sync::atomic::Ordering::Relaxed);
        if on_file != expected {
            tracing::warn!(
                on_file,
                expected,
                "a commit reported as failed reached the file: rebuilding the credential index"
            );
            self.index.replace(load_index(&db)?);
            self.commits
                .store(on_file, std::sync::atomic::Ordering::Relaxed);
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::Release);
        }
        *slot = Some(db);
        tracing::info!("database reopened after a storage failure");
        Ok(())
    }

    /// Whether writes work, as the last write (or [`Store::probe`]) found.
    pub fn readiness(&self) -> Readiness {
        match &self.health.state().failing {
            None => Readiness::Ready,
            Some((reason, since)) => Readiness::Degraded {
                reason: reason.clone(),
                since: *since,
            },
        }
    }

    /// I/O failures seen since the store was opened (the storage-error metric).
    pub fn io_errors(&self) -> u64 {
        self.health
            .io_errors
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// While writes fail, try one (a heartbeat in the metadata table), so readiness
    /// recovers without waiting for a client's write. Does nothing while writes work.
    pub fn probe(&self) -> Result<(), StoreError> {
        if self.health.state().failing.is_none() {
            return Ok(());
        }
        let now = u64::try_from(SystemClock.now().as_millis()).unwrap_or_default();
        self.write_signals(|tx| tx.heartbeat(now))
    }

    /// Check that the server keys are the ones this database was made with: every key
    /// version it records must be among `keys` (version, fingerprint) with that
    /// fingerprint. Versions it does not record yet are recorded (a database from before
    /// fingerprints, or a rotation that wrote the key file but not yet the database).
    pub fn check_key_fingerprints(&self, keys: &[(u32, u64)]) -> Result<(), StoreError> {
        let recorded = self.read()?.key_fingerprints()?;
        for (version, fingerprint) in &recorded {
            if !keys.contains(&(*version, *fingerprint)) {
                return Err(StoreError::WrongKey);
            }
        }
        let new: Vec<(u32, u64)> = keys
            .iter()
            .filter(|(v, _)| !recorded.iter().any(|(r, _)| r == v))
            .copied()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            for (version, fingerprint) in &new {
                tx.set_key_fingerprint(*version, *fingerprint)?;
            }
            Ok(())
        })
    }

    /// Bring an existing file to the current schema; returns the steps that ran.
    pub fn migrate(path: &Path) -> Result<Vec<&'static str>, StoreError> {
        let db = Database::open(path)?;
        match schema_version(&db)?.unwrap_or(0) {
            found if found > SCHEMA_VERSION => Err(StoreError::TooNew {
                found,
                supported: SCHEMA_VERSION,
            }),
            found => run_migrations(&db, found),
        }
    }

    /// The credential index, for lookups.
    pub fn index(&self) -> &CredentialIndex {
        &self.index
    }

    /// Run `f` in one write transaction: everything it writes, including its audit events,
    /// commits together or not at all. The credential index is updated after the commit,
    /// before this returns. An I/O failure is [`StoreError::Unavailable`]: the store
    /// reopens the file before the next write, so writes resume once the cause clears.
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> Result<T, E>,
    ) -> Result<T, E> {
        self.commit(f, true)
    }

    /// Run `f` in one write transaction that records only signals: credential uses,
    /// rate-limiter counts, delivery cursors, the recovery heartbeat. They change nothing
    /// a decision reads, so the [`Store::generation`] stays and caches derived from the
    /// model stay warm (a flush a second would otherwise empty them every second).
    pub fn write_signals<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut SignalTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.commit(|tx| f(&mut SignalTx::new(tx)), false)
    }

    fn commit<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> Result<T, E>,
        model: bool,
    ) -> Result<T, E> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let db = self.usable_db()?;
        let db = db
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable(String::new()))?;
        let mut tx = WriteTx::begin(db).map_err(|err| self.health.saw(err))?;
        let out = f(&mut tx)?;
        let commits = self.commits.load(std::sync::atomic::Ordering::Relaxed) + 1;
        let (txn, ops) = tx.finish(commits).map_err(|err| self.health.saw(err))?;
        txn.commit()
            .map_err(|err| self.health.saw(StoreError::from(err)))?;
        self.commits
            .store(commits, std::sync::atomic::Ordering::Relaxed);
        self.index.apply(ops);
        if model {
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::Release);
        }
        self.health.committed();
        Ok(out)
    }

    /// How many write transactions that could change the model (every write but
    /// [`Store::write_signals`]) have committed since the store was opened; anything
    /// derived from a snapshot of the model is current while this has not moved.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A consistent read-only snapshot.
    pub fn read(&self) -> Result<ReadTx, StoreError> {
        let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
        match db.as_ref() {
            Some(db) => ReadTx::begin(db).map_err(|err| self.health.saw(err)),
            None => Err(StoreError::Unavailable(
                "the database file is not open".into(),
            )),
        }
    }

    /// Write the `last_used_at` of every credential used since the last flush, in one
    /// transaction; returns how many were written. Usage is a signal, not a change, so it
    /// writes no audit event. Uses that could not be written stay pending for the next.
    pub fn flush_last_used(&self, now: Timestamp) -> Result<usize, StoreError> {
        let (usage, watermark) = self.index.unflushed_usage(now.as_millis());
        if usage.is_empty() {
            self.index.mark_flushed(watermark);
            return Ok(0);
        }
        self.write_signals(|tx| tx.put_last_used(&usage))?;
        self.index.mark_flushed(watermark);
        Ok(usage.len())
    }

    /// Check every account's audit chain.
    pub fn verify_audit_chain(&self) -> Result<AuditReport, StoreError> {
        let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
        match db.as_ref() {
            Some(db) => audit::verify(db),
            None => Err(StoreError::Unavailable(
                "the database file is not open".into(),
            )),
        }
    }
}

/// Open the file at `path` (creating it when missing) and bring a new one to the current
/// schema; an older or newer one is refused.
fn open_at_schema(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    let db = Database::builder()
        .set_cache_size(cache_bytes)
        .create(path)?;
    match schema_version(&db)? {
        None => {
            run_migrations(&db, 0)?;
        }
        Some(SCHEMA_VERSION) => {}
        Some(found) if found > SCHEMA_VERSION => {
            return Err(StoreError::TooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Some(found) => {
            return Err(StoreError::NeedsMigration {
                found,
                current: SCHEMA_VERSION,
            });
        }
    }
    Ok(db)
}

/// The standing of every owner, keyed by (account, owner).
fn owner_standings(
    txn: &redb::ReadTransaction,
) -> Result<FxHashMap<(u128, u128), OwnerStanding>, StoreError> {
    let mut standings = FxHashMap::default();
    for row in txn.open_table(MEMBERS)?.iter()? {
        let (key, value) = row?;
        let member: Membership = codec::decode(value.value())?;
        let standing = match member.state {
            MemberState::Active => OwnerStanding::Active,
            MemberState::Disabled => OwnerStanding::Disabled,
        };
        standings.insert(key.value(), standing);
    }
    for row in txn.open_table(BOTS)?.iter()? {
        let (_, value) = row?;
        let bot: BotUser = codec::decode(value.value())?;
        let standing = if bot.active {
            OwnerStanding::Active
        } else {
            OwnerStanding::Inactive
        };
        standings.insert((bot.account.0, bot.id.0), standing);
    }
    Ok(standings)
}

/// Index operations applied at once while loading: bounds what loading holds besides
/// the index itself.
const LOAD_CHUNK: usize = 16_384;

/// The value stored under `id` in `rows` (a table keyed like `CREDENTIALS`, read in key
/// order alongside it), skipping keys below `id`; `None` when there is none. `seen` is
/// called with every value passed over or taken.
fn value_for<V: redb::Value + 'static, T>(
    rows: &mut std::iter::Peekable<redb::Range<'_, u128, V>>,
    id: u128,
    read: impl Fn(&redb::AccessGuard<'_, V>) -> T,
    mut seen: impl FnMut(&T),
) -> Result<Option<T>, StoreError> {
    loop {
        let key = match rows.peek() {
            None => return Ok(None),
            Some(Ok((key, _))) => key.value(),
            Some(Err(_)) => {
                return match rows.next() {
                    Some(Err(err)) => Err(err.into()),
                    _ => Ok(None),
                };
            }
        };
        if key > id {
            return Ok(None);
        }
        let Some(row) = rows.next() else {
            return Ok(None);
        };
        let value = read(&row?.1);
        seen(&value);
        if key == id {
            return Ok(Some(value));
        }
    }
}

/// Build the in-memory index from the file, reading each table once in key order: the
/// credentials, and beside them (merged by id, not collected into maps) their secrets'
/// hashes and last uses; applied in chunks, so loading a million credentials holds little
/// more than the index itself.
fn load_index(db: &Database) -> Result<CredentialIndex, StoreError> {
    let txn = db.begin_read()?;
    let standings = owner_standings(&txn)?;
    let secrets_table = txn.open_table(CREDENTIAL_SECRETS)?;
    let used_table = txn.open_table(LAST_USED)?;
    let mut secrets = secrets_table.iter()?.peekable();
    let mut used = used_table.iter()?.peekable();
    let mut newest_use = i64::MIN;
    let index = CredentialIndex::default();
    let mut ops = Vec::with_capacity(LOAD_CHUNK);
    for row in txn.open_table(CREDENTIALS)?.iter()? {
        let (key, value) = row?;
        let raw = key.value();
        let credential: Credential = codec::decode(value.value())?;
        let standing = standings
            .get(&(credential.account.0, credential.owner.raw()))
            .copied()
            .ok_or_else(|| {
                StoreError::corrupt(
                    "credential",
                    format!("{} has no owner in its account", credential.id),
                )
            })?;
        let secret = value_for(&mut secrets, raw, |v| SecretHash(*v.value()), |_| {})?;
        let last_used = value_for(
            &mut used,
            raw,
            |v| v.value(),
            |at| {
                newest_use = newest_use.max(*at);
            },
        )?;
        let entry = LiveEntry::new(&credential, secret, standing, last_used);
        let fingerprint = credential.ssh_key.as_ref().map(|key| key.fingerprint());
        ops.push(IndexOp::Put(raw, entry, fingerprint));
        if ops.len() == LOAD_CHUNK {
            index.apply(std::mem::replace(&mut ops, Vec::with_capacity(LOAD_CHUNK)));
        }
    }
    // Uses of credentials revoked since count toward the watermark too.
    for row in used {
        newest_use = newest_use.max(row?.1.value());
    }
    for row in txn.open_table(REVOKED)?.iter()? {
        let (key, value) = row?;
        let revoked: RevokedCredential = codec::decode(value.value())?;
        ops.push(IndexOp::Revoke(key.value(), revoked.cause));
        if ops.len() == LOAD_CHUNK {
            index.apply(std::mem::replace(&mut ops, Vec::with_capacity(LOAD_CHUNK)));
        }
    }
    index.apply(ops);
    // What was loaded is already in redb.
    index.mark_flushed(newest_use.saturating_add(1));
    Ok(index)
}
