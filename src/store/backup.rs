//! Online backup: a snapshot of a running store, made from one read transaction (so it is
//! exactly the state after some commit, whatever writes run meanwhile) into a new redb
//! file, which `latchkey check` can judge like any database and `latchkey restore` turns
//! into a data directory.

use std::path::Path;

use redb::{
    Database, MultimapTableHandle, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
};

use super::tables::*;
use super::tx::meta;
use super::{ReadTx, Store, StoreError};

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The schema of the snapshot (this build's).
    pub schema_version: u64,
    /// Commits the source file had seen when the snapshot was taken.
    pub commits: u64,
    /// Rows copied, over every table.
    pub rows: u64,
    /// The fingerprints of the server keys the database was made with, by version: a
    /// restore needs every one of them.
    pub key_fingerprints: Vec<(u32, u64)>,
}

impl Store {
    /// Copy the state after the latest commit into a new database file at `path` (which
    /// must not exist), while writers go on. The file is durable when this returns.
    pub fn snapshot_into(&self, path: &Path) -> Result<Snapshot, StoreError> {
        let source = {
            let db = self
                .db
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match db.as_ref() {
                Some(db) => db.begin_read().map_err(StoreError::from),
                None => Err(StoreError::Unavailable(
                    "the database file is not open".into(),
                )),
            }
        }
        .map_err(|err| self.health.saw(err))?;
        if path.exists() {
            return Err(StoreError::Storage(format!(
                "{} exists already",
                path.display()
            )));
        }
        let target = Database::create(path)?;
        let txn = target.begin_write()?;
        let rows = copy_every_table(&source, &txn)?;
        txn.commit()?;
        drop(target);
        let read = ReadTx::from_txn(source);
        Ok(Snapshot {
            schema_version: read.meta(meta::SCHEMA_VERSION)?.unwrap_or(0),
            commits: read.meta(meta::COMMITS)?.unwrap_or(0),
            rows,
            key_fingerprints: read.key_fingerprints()?,
        })
    }
}

/// What the file at `path` (a snapshot, or a stopped server's database) says of itself:
/// its schema, commits and key fingerprint; `rows` is left 0.
pub fn describe(path: &Path) -> Result<Snapshot, StoreError> {
    let db = Database::open(path)?;
    let read = ReadTx::begin(&db)?;
    Ok(Snapshot {
        schema_version: read.meta(meta::SCHEMA_VERSION)?.unwrap_or(0),
        commits: read.meta(meta::COMMITS)?.unwrap_or(0),
        rows: 0,
        key_fingerprints: read.key_fingerprints()?,
    })
}

/// Copy every table of the schema; a table in the source that this list misses is an
/// error, never a backup silently without it.
fn copy_every_table(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
) -> Result<u64, StoreError> {
    let mut copier = Copier {
        from,
        to,
        rows: 0,
        names: Vec::new(),
    };
    copier.copy(META)?;
    copier.copy(ACCOUNTS)?;
    copier.copy(ACCOUNT_NAMES)?;
    copier.copy(USERS)?;
    copier.copy(USER_EMAILS)?;
    copier.copy(MEMBERS)?;
    copier.copy(USER_ACCOUNTS)?;
    copier.copy(BOTS)?;
    copier.copy(ACCOUNT_BOTS)?;
    copier.copy(CREDENTIALS)?;
    copier.copy(CREDENTIAL_SECRETS)?;
    copier.copy(OWNER_CREDENTIALS)?;
    copier.copy(SSH_FINGERPRINTS)?;
    copier.copy(REVOKED)?;
    copier.copy(LAST_USED)?;
    copier.copy(EVENTS)?;
    copier.copy(AUDIT_HEADS)?;
    copier.copy(IP_POLICIES)?;
    copier.copy(ACCOUNT_IP_POLICIES)?;
    copier.copy(IP_RULES)?;
    copier.copy(ACCOUNT_IP_RULES)?;
    copier.copy(IP_RESTRICTIONS)?;
    copier.copy(ACCOUNT_IP_RESTRICTIONS)?;
    copier.copy(TENANTS)?;
    copier.copy(ACCOUNT_TENANTS)?;
    copier.copy(ROLES)?;
    copier.copy(ACCOUNT_ROLES)?;
    copier.copy(ROLE_ASSIGNMENTS)?;
    copier.copy(ACCOUNT_ROLE_ASSIGNMENTS)?;
    copier.copy(PERMISSIONS)?;
    copier.copy(ACCOUNT_PERMISSIONS)?;
    copier.copy(PASSWORDS)?;
    copier.copy(SESSIONS)?;
    copier.copy(USER_SESSIONS)?;
    copier.copy(TOTP)?;
    copier.copy(PASSWORD_RESETS)?;
    copier.copy(INVITATIONS)?;
    copier.copy(ACCOUNT_INVITATIONS)?;
    copier.copy(EMAIL_PROOFS)?;
    copier.copy(EVENT_IDS)?;
    copier.copy(EVENTS_BY_PRINCIPAL)?;
    copier.copy(EVENTS_BY_ACTION)?;
    copier.copy(EVENTS_BY_OBJECT)?;
    copier.copy(EVENTS_BY_TIME)?;
    copier.copy(ACCOUNT_CREDENTIALS)?;
    copier.copy(PRINCIPAL_ROLE_ASSIGNMENTS)?;
    copier.copy(RECENT_ATTEMPTS)?;
    copier.copy(AUDIT_CHECKPOINTS)?;
    copier.copy(DESTINATIONS)?;
    copier.copy(ACCOUNT_DESTINATIONS)?;
    copier.copy(DESTINATION_SECRETS)?;
    copier.copy(DELIVERY_STATUS)?;
    copier.copy(PASSKEYS)?;
    copier.copy(USER_PASSKEYS)?;
    copier.copy(PASSKEY_CREDENTIALS)?;
    copier.copy(IDENTITY_PROVIDERS)?;
    copier.copy(ACCOUNT_IDENTITY_PROVIDERS)?;
    copier.copy(IDENTITY_PROVIDER_SECRETS)?;
    copier.copy(EXTERNAL_IDENTITIES)?;
    copier.copy(EXTERNAL_SUBJECTS)?;
    copier.copy(USER_EXTERNAL_IDENTITIES)?;
    copier.copy(SAML_ASSERTIONS)?;
    copier.copy(SCIM_TOKENS)?;
    copier.copy(ACCOUNT_SCIM_TOKENS)?;
    copier.copy(SCIM_PROFILES)?;
    copier.copy(SCIM_USER_NAMES)?;
    copier.copy(SCIM_GROUPS)?;
    copier.copy(ACCOUNT_SCIM_GROUPS)?;
    copier.copy(USER_SCIM_GROUPS)?;
    copier.copy(SCIM_GROUP_MAPPINGS)?;
    copier.copy(ACCOUNT_SCIM_GROUP_MAPPINGS)?;
    copier.copy(SCIM_GROUP_MAPPED)?;
    copier.copy(MEMBER_GRANTS)?;
    copier.copy(ASSIGNMENT_SOURCES)?;
    let missed: Vec<String> = from
        .list_tables()?
        .map(|table| table.name().to_owned())
        .chain(from.list_multimap_tables()?.map(|t| t.name().to_owned()))
        .filter(|name| !copier.names.contains(name))
        .collect();
    if !missed.is_empty() {
        return Err(StoreError::Storage(format!(
            "the backup does not know the tables {missed:?}"
        )));
    }
    Ok(copier.rows)
}

struct Copier<'a> {
    from: &'a redb::ReadTransaction,
    to: &'a redb::WriteTransaction,
    rows: u64,
    names: Vec<String>,
}

impl Copier<'_> {
    fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<(), StoreError> {
        let source = self.from.open_table(def)?;
        let mut target = self.to.open_table(def)?;
        for row in source.iter()? {
            let (key, value) = row?;
            target.insert(key.value(), value.value())?;
            self.rows += 1;
        }
        self.names.push(def.name().to_owned());
        Ok(())
    }
}
