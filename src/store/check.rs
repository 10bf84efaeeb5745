//! `latchkey check`: the whole file of a stopped server, judged. redb's own integrity
//! check, every record of every table (its checksum and its decoding), the secondary
//! indexes against the records they point at, and every account's audit chain. It
//! reports what is damaged and writes nothing (but what redb's own check repairs).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use super::codec::{self, Record};
use super::tables::*;
use super::{AuditReport, StoreError, audit};
use crate::domain::account::Account;
use crate::domain::bot::BotUser;
use crate::domain::credential::{Credential, RevokedCredential};
use crate::domain::invitation::Invitation;
use crate::domain::ip::{IpPolicy, IpPolicyRule, IpRestriction};
use crate::domain::session::{EmailProof, Session, TotpRecord, UserLink};
use crate::domain::tenancy::{AddedPermission, CustomRole, RoleAssignment, Tenant};
use crate::domain::user::{Membership, User};

/// What `check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Records read.
    pub records: u64,
    /// Each problem, in a sentence naming the table and key; empty when all is well.
    pub problems: Vec<String>,
    /// The audit chains, when the events could be read.
    pub audit: Option<AuditReport>,
}

/// Check the database file at `path`.
pub fn check(path: &Path) -> Result<CheckReport, StoreError> {
    let mut db = Database::open(path)?;
    let mut report = CheckReport {
        records: 0,
        problems: Vec::new(),
        audit: None,
    };
    match db.check_integrity() {
        Ok(true) => {}
        Ok(false) => report.problems.push(
            "redb's integrity check found damage in the file (and repaired what it could)".into(),
        ),
        Err(err) => report
            .problems
            .push(format!("redb's integrity check failed: {err}")),
    }
    let txn = db.begin_read()?;
    every::<Account>(&txn, ACCOUNTS, &mut report)?;
    every::<User>(&txn, USERS, &mut report)?;
    every::<BotUser>(&txn, BOTS, &mut report)?;
    every::<Credential>(&txn, CREDENTIALS, &mut report)?;
    every::<RevokedCredential>(&txn, REVOKED, &mut report)?;
    every::<IpPolicy>(&txn, IP_POLICIES, &mut report)?;
    every::<IpPolicyRule>(&txn, IP_RULES, &mut report)?;
    every::<IpRestriction>(&txn, IP_RESTRICTIONS, &mut report)?;
    every::<Tenant>(&txn, TENANTS, &mut report)?;
    every::<CustomRole>(&txn, ROLES, &mut report)?;
    every::<RoleAssignment>(&txn, ROLE_ASSIGNMENTS, &mut report)?;
    every::<AddedPermission>(&txn, PERMISSIONS, &mut report)?;
    every::<TotpRecord>(&txn, TOTP, &mut report)?;
    every::<Invitation>(&txn, INVITATIONS, &mut report)?;
    every::<EmailProof>(&txn, EMAIL_PROOFS, &mut report)?;
    every::<audit::AuditHead>(&txn, AUDIT_HEADS, &mut report)?;
    for row in txn.open_table(SESSIONS)?.iter()? {
        let (_, value) = row?;
        report.records += 1;
        if let Err(err) = codec::decode::<Session>(value.value()) {
            report.problems.push(format!("sessions: {err}"));
        }
    }
    for row in txn.open_table(PASSWORD_RESETS)?.iter()? {
        let (_, value) = row?;
        report.records += 1;
        if let Err(err) = codec::decode::<UserLink>(value.value()) {
            report.problems.push(format!("password_resets: {err}"));
        }
    }
    // Members, and the index of a user's accounts that must mirror them.
    let users = txn.open_table(USERS)?;
    let accounts = txn.open_table(ACCOUNTS)?;
    let user_accounts = txn.open_table(USER_ACCOUNTS)?;
    for row in txn.open_table(MEMBERS)?.iter()? {
        let (key, value) = row?;
        let (account, user) = key.value();
        report.records += 1;
        if let Err(err) = codec::decode::<Membership>(value.value()) {
            report.problems.push(format!(
                "members: {err} (key {account:#034x}, {user:#034x})"
            ));
        }
        if users.get(user)?.is_none() || accounts.get(account)?.is_none() {
            report.problems.push(format!(
                "members: ({account:#034x}, {user:#034x}) names a missing user or account"
            ));
        }
        if user_accounts.get((user, account))?.is_none() {
            report.problems.push(format!(
                "user_accounts: the membership ({account:#034x}, {user:#034x}) is not indexed"
            ));
        }
    }
    let members = txn.open_table(MEMBERS)?;
    for row in user_accounts.iter()? {
        let (key, _) = row?;
        let (user, account) = key.value();
        if members.get((account, user))?.is_none() {
            report.problems.push(format!(
                "user_accounts: ({user:#034x}, {account:#034x}) points at no membership"
            ));
        }
    }
    // Unique-value indexes: each entry points at a record that has that value.
    for row in txn.open_table(USER_EMAILS)?.iter()? {
        let (key, id) = row?;
        let found = users
            .get(id.value())?
            .map(|v| codec::decode::<User>(v.value()).map(|u| u.email.key()));
        if !matches!(found, Some(Ok(email)) if email == key.value()) {
            report.problems.push(format!(
                "user_emails: {:?} does not point at the user with that email",
                key.value()
            ));
        }
    }
    for row in txn.open_table(ACCOUNT_NAMES)?.iter()? {
        let (key, id) = row?;
        let found = accounts
            .get(id.value())?
            .map(|v| codec::decode::<Account>(v.value()).map(|a| Account::name_key(&a.name)));
        if !matches!(found, Some(Ok(name)) if name == key.value()) {
            report.problems.push(format!(
                "account_names: {:?} does not point at the account with that name",
                key.value()
            ));
        }
    }
    drop((users, accounts, user_accounts, members, txn));
    match audit::verify(&db) {
        Ok(chain) => {
            if let Some(broken) = &chain.broken {
                report.problems.push(format!(
                    "events: the chain of {} breaks at {}: {}",
                    broken.account, broken.event, broken.detail
                ));
            }
            report.records += chain.events;
            report.audit = Some(chain);
        }
        Err(err) => report.problems.push(format!("events: {err}")),
    }
    Ok(report)
}

/// Decode every record of a table keyed by id, noting each that does not decode.
fn every<R: Record>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<u128, &[u8]>,
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    let name = table.name().to_owned();
    for row in txn.open_table(table)?.iter()? {
        let (key, value) = row?;
        report.records += 1;
        if let Err(err) = codec::decode::<R>(value.value()) {
            report
                .problems
                .push(format!("{name}: {}", err.at_key(key.value())));
        }
    }
    Ok(())
}
