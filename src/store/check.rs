//! `latchkey check`: the whole file of a stopped server, judged. redb's own integrity
//! check, every record of every table (its checksum and its decoding), the secondary
//! indexes against the records they point at, and every account's audit chain. It
//! reports what is damaged and writes nothing (but what redb's own check repairs).

use std::path::Path;

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};

use super::codec::{self, Record};
use super::tables::*;
use super::{AuditReport, StoreError, audit};
use crate::domain::account::Account;
use crate::domain::bot::BotUser;
use crate::domain::credential::{Credential, RevokedCredential};
use crate::domain::destination::{DeliveryStatus, EventDestination};
use crate::domain::federation::{ExternalIdentity, IdentityProvider};
use crate::domain::grant::{AssignmentSources, GrantSource, MemberGrants};
use crate::domain::invitation::Invitation;
use crate::domain::ip::{IpPolicy, IpPolicyRule, IpRestriction};
use crate::domain::scim::{ScimGroup, ScimGroupMapping, ScimProfile, ScimToken};
use crate::domain::session::{
    EmailProof, PasskeyRecord, RecentAttempts, Session, TotpRecord, UserLink,
};
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
    every::<EventDestination>(&txn, DESTINATIONS, &mut report)?;
    every::<DeliveryStatus>(&txn, DELIVERY_STATUS, &mut report)?;
    every::<PasskeyRecord>(&txn, PASSKEYS, &mut report)?;
    every::<IdentityProvider>(&txn, IDENTITY_PROVIDERS, &mut report)?;
    every::<ExternalIdentity>(&txn, EXTERNAL_IDENTITIES, &mut report)?;
    every::<ScimToken>(&txn, SCIM_TOKENS, &mut report)?;
    every::<ScimGroup>(&txn, SCIM_GROUPS, &mut report)?;
    every::<ScimGroupMapping>(&txn, SCIM_GROUP_MAPPINGS, &mut report)?;
    every::<AssignmentSources>(&txn, ASSIGNMENT_SOURCES, &mut report)?;
    every::<audit::AuditHead>(&txn, AUDIT_HEADS, &mut report)?;
    every::<audit::AuditCheckpoint>(&txn, AUDIT_CHECKPOINTS, &mut report)?;
    for row in txn.open_table(SESSIONS)?.iter()? {
        let (_, value) = row?;
        report.records += 1;
        if let Err(err) = codec::decode::<Session>(value.value()) {
            report.problems.push(format!("sessions: {err}"));
        }
    }
    for row in txn.open_table(RECENT_ATTEMPTS)?.iter()? {
        let (key, value) = row?;
        report.records += 1;
        if let Err(err) = codec::decode::<RecentAttempts>(value.value()) {
            report
                .problems
                .push(format!("recent_attempts: {err} (key {:?})", key.value()));
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
    drop((users, accounts, user_accounts, members));
    list_indexes(&txn, &mut report)?;
    account_index::<BotUser>(&txn, ACCOUNT_BOTS, BOTS, &mut report)?;
    account_index::<IpPolicy>(&txn, ACCOUNT_IP_POLICIES, IP_POLICIES, &mut report)?;
    account_index::<IpPolicyRule>(&txn, ACCOUNT_IP_RULES, IP_RULES, &mut report)?;
    account_index::<IpRestriction>(&txn, ACCOUNT_IP_RESTRICTIONS, IP_RESTRICTIONS, &mut report)?;
    account_index::<Tenant>(&txn, ACCOUNT_TENANTS, TENANTS, &mut report)?;
    account_index::<CustomRole>(&txn, ACCOUNT_ROLES, ROLES, &mut report)?;
    account_index::<RoleAssignment>(
        &txn,
        ACCOUNT_ROLE_ASSIGNMENTS,
        ROLE_ASSIGNMENTS,
        &mut report,
    )?;
    account_index::<AddedPermission>(&txn, ACCOUNT_PERMISSIONS, PERMISSIONS, &mut report)?;
    account_index::<Invitation>(&txn, ACCOUNT_INVITATIONS, INVITATIONS, &mut report)?;
    account_index::<EventDestination>(&txn, ACCOUNT_DESTINATIONS, DESTINATIONS, &mut report)?;
    destination_parts(&txn, &mut report)?;
    passkey_indexes(&txn, &mut report)?;
    account_index::<IdentityProvider>(
        &txn,
        ACCOUNT_IDENTITY_PROVIDERS,
        IDENTITY_PROVIDERS,
        &mut report,
    )?;
    federation_parts(&txn, &mut report)?;
    account_index::<ScimToken>(&txn, ACCOUNT_SCIM_TOKENS, SCIM_TOKENS, &mut report)?;
    scim_profiles(&txn, &mut report)?;
    account_index::<ScimGroup>(&txn, ACCOUNT_SCIM_GROUPS, SCIM_GROUPS, &mut report)?;
    scim_groups(&txn, &mut report)?;
    account_index::<ScimGroupMapping>(
        &txn,
        ACCOUNT_SCIM_GROUP_MAPPINGS,
        SCIM_GROUP_MAPPINGS,
        &mut report,
    )?;
    group_mappings(&txn, &mut report)?;
    grants(&txn, &mut report)?;
    drop(txn);
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

/// The indexes that lists read: every event and every credential has its entries, and
/// no index has more entries than there are records (none points at nothing).
fn list_indexes(txn: &redb::ReadTransaction, report: &mut CheckReport) -> Result<(), StoreError> {
    use super::tx::{kind_key, principal_key};
    use crate::domain::event::Event;
    let ids = txn.open_table(EVENT_IDS)?;
    let principals = txn.open_table(EVENTS_BY_PRINCIPAL)?;
    let actions = txn.open_table(EVENTS_BY_ACTION)?;
    let objects = txn.open_table(EVENTS_BY_OBJECT)?;
    let times = txn.open_table(EVENTS_BY_TIME)?;
    let mut events = 0u64;
    for row in txn.open_table(EVENTS)?.iter()? {
        let (key, value) = row?;
        events += 1;
        // An event that does not decode is reported by the chain check.
        let Ok(event) = codec::decode::<Event>(value.value()) else {
            continue;
        };
        let (a, seq) = key.value();
        let indexed = ids.get(event.id.0)?.is_some_and(|v| v.value() == (a, seq))
            && principals
                .get((a, principal_key(event.actor.principal), seq))?
                .is_some()
            && actions.get((a, event.action.name(), seq))?.is_some()
            && objects.get((a, event.target.as_str(), seq))?.is_some()
            && times.get((a, event.at.as_millis(), seq))?.is_some();
        if !indexed {
            report.problems.push(format!(
                "event indexes: {} (#{seq} of {a:#034x}) is missing from one of them",
                event.id
            ));
        }
    }
    for (name, entries) in [
        ("event_ids", ids.len()?),
        ("events_by_principal", principals.len()?),
        ("events_by_action", actions.len()?),
        ("events_by_object", objects.len()?),
        ("events_by_time", times.len()?),
    ] {
        if entries != events {
            report.problems.push(format!(
                "{name}: {entries} entries for {events} events (an entry points at no event)"
            ));
        }
    }
    let by_account = txn.open_table(ACCOUNT_CREDENTIALS)?;
    let mut credentials = 0u64;
    for row in txn.open_table(CREDENTIALS)?.iter()? {
        let (_, value) = row?;
        credentials += 1;
        let Ok(credential) = codec::decode::<Credential>(value.value()) else {
            continue;
        };
        let key = (
            credential.account.0,
            kind_key(credential.id.kind),
            credential.id.raw,
        );
        if by_account.get(key)?.is_none() {
            report.problems.push(format!(
                "account_credentials: {} is not indexed",
                credential.id
            ));
        }
    }
    let by_principal = txn.open_table(PRINCIPAL_ROLE_ASSIGNMENTS)?;
    let mut assignments = 0u64;
    for row in txn.open_table(ROLE_ASSIGNMENTS)?.iter()? {
        let (_, value) = row?;
        assignments += 1;
        let Ok(assignment) = codec::decode::<RoleAssignment>(value.value()) else {
            continue;
        };
        let key = (
            assignment.account.0,
            assignment.principal.raw(),
            assignment.id.0,
        );
        if by_principal.get(key)?.is_none() {
            report.problems.push(format!(
                "principal_role_assignments: {} is not indexed",
                assignment.id
            ));
        }
    }
    if by_principal.len()? != assignments {
        report.problems.push(format!(
            "principal_role_assignments: {} entries for {assignments} role assignments",
            by_principal.len()?
        ));
    }
    if by_account.len()? != credentials {
        report.problems.push(format!(
            "account_credentials: {} entries for {credentials} credentials",
            by_account.len()?
        ));
    }
    Ok(())
}

/// A record listed per account through an `(account, id)` index.
trait InAccount {
    fn account(&self) -> u128;
}

macro_rules! in_account {
    ($($ty:ty),*) => {$(
        impl InAccount for $ty {
            fn account(&self) -> u128 {
                self.account.0
            }
        }
    )*};
}
in_account!(
    BotUser,
    IpPolicy,
    IpPolicyRule,
    IpRestriction,
    Tenant,
    CustomRole,
    RoleAssignment,
    AddedPermission,
    Invitation,
    EventDestination,
    IdentityProvider,
    ScimToken,
    ScimGroup,
    ScimGroupMapping
);

/// An `(account, id)` index against its records, both ways: every entry names a record
/// of that account, and every record that decodes has its entry.
fn account_index<R: Record + InAccount>(
    txn: &redb::ReadTransaction,
    index: TableDefinition<(u128, u128), ()>,
    data: TableDefinition<u128, &[u8]>,
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    let name = index.name().to_owned();
    let index = txn.open_table(index)?;
    let data = txn.open_table(data)?;
    for row in index.iter()? {
        let (key, _) = row?;
        let (account, id) = key.value();
        let owner = data
            .get(id)?
            .map(|v| codec::decode::<R>(v.value()).map(|r| r.account()));
        match owner {
            Some(Ok(found)) if found == account => {}
            // A record that does not decode is reported with its table.
            Some(Err(_)) => {}
            _ => report.problems.push(format!(
                "{name}: ({account:#034x}, {id:#034x}) names no record of that account"
            )),
        }
    }
    for row in data.iter()? {
        let (key, value) = row?;
        let Ok(record) = codec::decode::<R>(value.value()) else {
            continue;
        };
        if index.get((record.account(), key.value()))?.is_none() {
            report.problems.push(format!(
                "{name}: the {} {:#034x} is not indexed",
                R::NAME,
                key.value()
            ));
        }
    }
    Ok(())
}

/// Every event destination has its signing secret, and no secret or cursor outlives its
/// destination.
fn destination_parts(
    txn: &redb::ReadTransaction,
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    let destinations = txn.open_table(DESTINATIONS)?;
    let secrets = txn.open_table(DESTINATION_SECRETS)?;
    for row in destinations.iter()? {
        let id = row?.0.value();
        if secrets.get(id)?.is_none() {
            report.problems.push(format!(
                "event_destination_secrets: the event destination {id:#034x} has no secret"
            ));
        }
    }
    for table in [DESTINATION_SECRETS, DELIVERY_STATUS] {
        for row in txn.open_table(table)?.iter()? {
            let id = row?.0.value();
            if destinations.get(id)?.is_none() {
                report.problems.push(format!(
                    "{}: {id:#034x} names no event destination",
                    table.name()
                ));
            }
        }
    }
    Ok(())
}

/// Every passkey is indexed under its user and its credential id, and every index
/// entry names a passkey that agrees with it.
fn passkey_indexes(
    txn: &redb::ReadTransaction,
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    let passkeys = txn.open_table(PASSKEYS)?;
    let by_user = txn.open_table(USER_PASSKEYS)?;
    let by_credential = txn.open_table(PASSKEY_CREDENTIALS)?;
    let users = txn.open_table(USERS)?;
    let mut indexed: u64 = 0;
    for row in passkeys.iter()? {
        let (id, value) = row?;
        let id = id.value();
        // A record that does not decode is reported by `every` already.
        let Ok(passkey) = codec::decode::<PasskeyRecord>(value.value()) else {
            continue;
        };
        let key = super::tx::passkey_credential_key(&passkey.credential_id);
        if by_user.get((passkey.user.0, id))?.is_none()
            || by_credential.get(&key)?.map(|v| v.value()) != Some(id)
        {
            report
                .problems
                .push(format!("passkeys: {id:#034x} is not indexed"));
        }
        if users.get(passkey.user.0)?.is_none() {
            report
                .problems
                .push(format!("passkeys: {id:#034x} names a missing user"));
        }
        indexed += 1;
    }
    if by_user.len()? != indexed || by_credential.len()? != indexed {
        report.problems.push(format!(
            "passkey indexes: {} user and {} credential entries for {indexed} passkeys",
            by_user.len()?,
            by_credential.len()?
        ));
    }
    Ok(())
}

/// Every SCIM profile decodes, belongs to a membership under its key, and is indexed by
/// its `userName`; every `userName` entry names the profile that holds it.
fn scim_profiles(txn: &redb::ReadTransaction, report: &mut CheckReport) -> Result<(), StoreError> {
    let members = txn.open_table(MEMBERS)?;
    let names = txn.open_table(SCIM_USER_NAMES)?;
    let profiles = txn.open_table(SCIM_PROFILES)?;
    for row in profiles.iter()? {
        let (key, value) = row?;
        let (account, user) = key.value();
        report.records += 1;
        let profile = match codec::decode::<ScimProfile>(value.value()) {
            Ok(profile) => profile,
            Err(err) => {
                report.problems.push(format!(
                    "scim_profiles: ({account:#034x}, {user:#034x}): {err}"
                ));
                continue;
            }
        };
        if (profile.account.0, profile.user.0) != (account, user) {
            report.problems.push(format!(
                "scim_profiles: ({account:#034x}, {user:#034x}) holds another member's profile"
            ));
        }
        if members.get((account, user))?.is_none() {
            report.problems.push(format!(
                "scim_profiles: ({account:#034x}, {user:#034x}) names no membership"
            ));
        }
        let name = crate::domain::scim::user_name_key(&profile.user_name);
        if names.get((account, name.as_str()))?.map(|v| v.value()) != Some(user) {
            report.problems.push(format!(
                "scim_user_names: the userName of ({account:#034x}, {user:#034x}) is not indexed"
            ));
        }
    }
    for row in names.iter()? {
        let (key, value) = row?;
        let (account, name) = key.value();
        let user = value.value();
        let agrees = profiles
            .get((account, user))?
            .and_then(|v| codec::decode::<ScimProfile>(v.value()).ok())
            .is_some_and(|p| crate::domain::scim::user_name_key(&p.user_name) == name);
        if !agrees {
            report.problems.push(format!(
                "scim_user_names: ({account:#034x}, {name:?}) names no profile with that userName"
            ));
        }
    }
    Ok(())
}

/// Every member of a SCIM group is a member of its account and indexed as in it; every
/// index entry names a group that holds the member.
fn scim_groups(txn: &redb::ReadTransaction, report: &mut CheckReport) -> Result<(), StoreError> {
    let members = txn.open_table(MEMBERS)?;
    let index = txn.open_table(USER_SCIM_GROUPS)?;
    let groups = txn.open_table(SCIM_GROUPS)?;
    for row in groups.iter()? {
        let (id, value) = row?;
        let Ok(group) = codec::decode::<ScimGroup>(value.value()) else {
            continue;
        };
        let (account, id) = (group.account.0, id.value());
        for user in &group.members {
            if members.get((account, user.0))?.is_none() {
                report.problems.push(format!(
                    "scim_groups: {id:#034x} holds {:#034x}, no member of its account",
                    user.0
                ));
            }
            if index.get((account, user.0, id))?.is_none() {
                report.problems.push(format!(
                    "user_scim_groups: {:#034x} in {id:#034x} is not indexed",
                    user.0
                ));
            }
        }
    }
    for row in index.iter()? {
        let (key, _) = row?;
        let (account, user, id) = key.value();
        let holds = groups
            .get(id)?
            .and_then(|v| codec::decode::<ScimGroup>(v.value()).ok())
            .is_some_and(|g| g.account.0 == account && g.members.iter().any(|m| m.0 == user));
        if !holds {
            report.problems.push(format!(
                "user_scim_groups: ({account:#034x}, {user:#034x}, {id:#034x}) names no group holding the member"
            ));
        }
    }
    Ok(())
}

/// Every mapping names a group of its account and is that group's mapping; every entry of
/// the group index names a mapping of that group.
fn group_mappings(txn: &redb::ReadTransaction, report: &mut CheckReport) -> Result<(), StoreError> {
    let groups = txn.open_table(SCIM_GROUPS)?;
    let mapped = txn.open_table(SCIM_GROUP_MAPPED)?;
    let mappings = txn.open_table(SCIM_GROUP_MAPPINGS)?;
    for row in mappings.iter()? {
        let (id, value) = row?;
        let Ok(mapping) = codec::decode::<ScimGroupMapping>(value.value()) else {
            continue;
        };
        let id = id.value();
        let in_account = groups
            .get(mapping.group.0)?
            .and_then(|v| codec::decode::<ScimGroup>(v.value()).ok())
            .is_some_and(|g| g.account == mapping.account);
        if !in_account {
            report.problems.push(format!(
                "scim_group_mappings: {id:#034x} maps no group of its account"
            ));
        }
        if mapped.get(mapping.group.0)?.map(|v| v.value()) != Some(id) {
            report.problems.push(format!(
                "scim_group_mapped: the group of {id:#034x} is not indexed to it"
            ));
        }
    }
    for row in mapped.iter()? {
        let (group, id) = row?;
        let (group, id) = (group.value(), id.value());
        let agrees = mappings
            .get(id)?
            .and_then(|v| codec::decode::<ScimGroupMapping>(v.value()).ok())
            .is_some_and(|m| m.group.0 == group);
        if !agrees {
            report.problems.push(format!(
                "scim_group_mapped: {group:#034x} names no mapping of that group"
            ));
        }
    }
    Ok(())
}

/// Every member's roles by source belong to a membership whose roles are their union, and
/// name no direct source among the grants; every assignment's sources belong to a live
/// assignment.
fn grants(txn: &redb::ReadTransaction, report: &mut CheckReport) -> Result<(), StoreError> {
    let members = txn.open_table(MEMBERS)?;
    for row in txn.open_table(MEMBER_GRANTS)?.iter()? {
        let (key, value) = row?;
        let (account, user) = key.value();
        report.records += 1;
        let grants = match codec::decode::<MemberGrants>(value.value()) {
            Ok(grants) => grants,
            Err(err) => {
                report.problems.push(format!(
                    "member_grants: ({account:#034x}, {user:#034x}): {err}"
                ));
                continue;
            }
        };
        let membership = members
            .get((account, user))?
            .and_then(|v| codec::decode::<Membership>(v.value()).ok());
        let agrees = membership.is_some_and(|m| {
            (grants.account.0, grants.user.0) == (account, user) && m.roles == grants.effective()
        });
        if !agrees
            || grants
                .grants
                .iter()
                .any(|g| g.source == GrantSource::Direct)
        {
            report.problems.push(format!(
                "member_grants: ({account:#034x}, {user:#034x}) disagrees with the membership's roles"
            ));
        }
    }
    let assignments = txn.open_table(ROLE_ASSIGNMENTS)?;
    for row in txn.open_table(ASSIGNMENT_SOURCES)?.iter()? {
        let (id, _) = row?;
        let id = id.value();
        if assignments.get(id)?.is_none() {
            report.problems.push(format!(
                "assignment_sources: {id:#034x} names no role assignment"
            ));
        }
    }
    Ok(())
}

/// No identity provider secret outlives its provider; every external identity names a
/// live provider and user and is indexed by subject and by user, and every index entry
/// names an identity that agrees with it.
fn federation_parts(
    txn: &redb::ReadTransaction,
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    let providers = txn.open_table(IDENTITY_PROVIDERS)?;
    for row in txn.open_table(IDENTITY_PROVIDER_SECRETS)?.iter()? {
        let id = row?.0.value();
        if providers.get(id)?.is_none() {
            report.problems.push(format!(
                "identity_provider_secrets: {id:#034x} names no identity provider"
            ));
        }
    }
    let identities = txn.open_table(EXTERNAL_IDENTITIES)?;
    let by_subject = txn.open_table(EXTERNAL_SUBJECTS)?;
    let by_user = txn.open_table(USER_EXTERNAL_IDENTITIES)?;
    let users = txn.open_table(USERS)?;
    let mut indexed: u64 = 0;
    for row in identities.iter()? {
        let (id, value) = row?;
        let id = id.value();
        // A record that does not decode is reported by `every` already.
        let Ok(identity) = codec::decode::<ExternalIdentity>(value.value()) else {
            continue;
        };
        indexed += 1;
        let subject = (identity.provider.0, identity.subject.as_str());
        if by_subject.get(subject)?.map(|v| v.value()) != Some(id)
            || by_user.get((identity.user.0, id))?.is_none()
        {
            report
                .problems
                .push(format!("external_identities: {id:#034x} is not indexed"));
        }
        if providers.get(identity.provider.0)?.is_none() || users.get(identity.user.0)?.is_none() {
            report.problems.push(format!(
                "external_identities: {id:#034x} names a missing provider or user"
            ));
        }
    }
    if by_subject.len()? != indexed || by_user.len()? != indexed {
        report.problems.push(format!(
            "external identity indexes: {} subject and {} user entries for {indexed} identities",
            by_subject.len()?,
            by_user.len()?
        ));
    }
    Ok(())
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
