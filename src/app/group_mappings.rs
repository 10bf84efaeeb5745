//! SCIM group mappings: an administrator maps a group its identity provider pushes to
//! account roles and tenant role assignments, and every member of the group holds them
//! while it is in the group (through [`super::grants`], so leaving the group takes away
//! exactly what the group gave). Decided by account-rbac as account settings:
//! administrators only. The SCIM side ([`super::scim`]) applies a mapping as the group's
//! members change; this side applies it to the members a group has when the mapping is
//! made, changed or removed, each in one transaction with its events.

use super::resource::{self, Resource};
use super::{AppError, Latchkey, Target, grants, in_account, require_account, tenancy};
use crate::domain::event::{Action, Actor, Change, Snapshot};
use crate::domain::grant::{GrantSource, Granted};
use crate::domain::id::{AccountId, ScimGroupId, ScimGroupMappingId, UserId};
use crate::domain::scim::{ScimGroup, ScimGroupMapping};
use crate::domain::time::Timestamp;
use crate::domain::user::Roles;
use crate::store::{Reads, StoreError, WriteTx};

/// What a mapping grants, as an administrator gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingSpec {
    /// Account roles (`None`: none beyond the members' own).
    pub roles: Option<Roles>,
    /// Tenant role assignments.
    pub role_assignments: Vec<Granted>,
}

/// A change to a mapping; fields left `None` keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingPatch {
    /// New account roles (`Some(None)`: none).
    pub roles: Option<Option<Roles>>,
    /// New tenant role assignments (the whole list).
    pub role_assignments: Option<Vec<Granted>>,
}

/// A mapping with the group it maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedGroup {
    /// The mapping.
    pub mapping: ScimGroupMapping,
    /// Its group as it is now.
    pub group: ScimGroup,
}

fn target(verb: &str, id: String) -> Target {
    Target::new("scim_group_mappings", verb, "scim_group_mapping", id)
}

impl Latchkey {
    /// The account's SCIM groups, oldest first, each with its mapping if it has one
    /// (what an administrator picks from to map one).
    pub fn mapped_scim_groups(
        &self,
        actor: Actor,
        account: AccountId,
    ) -> Result<Vec<(ScimGroup, Option<ScimGroupMapping>)>, AppError> {
        let read = self.store.read()?;
        require_account(&read, account)?;
        let list = Target::new("scim_groups", "list", "scim_group", account.to_string());
        self.authorize(&read, actor, account, list, self.now())?;
        read.scim_groups(account)?
            .into_iter()
            .map(|group| {
                let mapping = read.group_mapping(group.id)?;
                Ok((group, mapping))
            })
            .collect()
    }

    /// One SCIM group of `account` with its mapping if it has one.
    pub fn mapped_scim_group(
        &self,
        actor: Actor,
        account: AccountId,
        id: ScimGroupId,
    ) -> Result<(ScimGroup, Option<ScimGroupMapping>), AppError> {
        let read = self.store.read()?;
        let group = group_in(&read, account, id)?;
        let get = Target::new("scim_groups", "get", "scim_group", id.to_string());
        self.authorize(&read, actor, account, get, self.now())?;
        let mapping = read.group_mapping(id)?;
        Ok((group, mapping))
    }

    /// The account's SCIM group mappings, oldest first.
    pub fn scim_group_mappings(
        &self,
        actor: Actor,
        account: AccountId,
    ) -> Result<Vec<MappedGroup>, AppError> {
        let read = self.store.read()?;
        require_account(&read, account)?;
        self.authorize(
            &read,
            actor,
            account,
            target("list", String::new()),
            self.now(),
        )?;
        read.scim_group_mappings(account)?
            .into_iter()
            .map(|mapping| mapped(&read, mapping))
            .collect()
    }

    /// One SCIM group mapping of `account`.
    pub fn scim_group_mapping(
        &self,
        actor: Actor,
        account: AccountId,
        id: ScimGroupMappingId,
    ) -> Result<MappedGroup, AppError> {
        let read = self.store.read()?;
        let found = ScimGroupMapping::find(&read, account, id)?;
        self.authorize(
            &read,
            actor,
            account,
            target("get", id.to_string()),
            self.now(),
        )?;
        mapped(&read, found)
    }

    /// Map a SCIM group of `account` (one mapping per group): its members get what it
    /// grants at once, in this transaction.
    pub fn create_scim_group_mapping(
        &self,
        actor: Actor,
        account: AccountId,
        group: ScimGroupId,
        spec: MappingSpec,
    ) -> Result<MappedGroup, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            require_account(tx, account)?;
            self.authorize(tx, actor, account, target("create", "new".into()), now)?;
            let group = group_in(tx, account, group)?;
            let mapping = ScimGroupMapping {
                id: ScimGroupMappingId::generate(now)?,
                account,
                group: group.id,
                roles: spec.roles,
                role_assignments: spec.role_assignments,
                created_at: now,
                updated_at: now,
            };
            check(tx, &mapping, &[])?;
            let mapping = resource::created(tx, actor, now, mapping)?;
            apply(tx, actor, &mapping, &group.members, now)?;
            Ok(MappedGroup { mapping, group })
        })
    }

    /// Change what a mapping grants: the group's members hold exactly the new grant
    /// afterwards (refused if it would leave the account without an active
    /// administrator).
    pub fn update_scim_group_mapping(
        &self,
        actor: Actor,
        account: AccountId,
        id: ScimGroupMappingId,
        patch: MappingPatch,
    ) -> Result<MappedGroup, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let before = ScimGroupMapping::find(tx, account, id)?;
            self.authorize(tx, actor, account, target("update", id.to_string()), now)?;
            let after = ScimGroupMapping {
                roles: patch.roles.unwrap_or(before.roles),
                role_assignments: patch
                    .role_assignments
                    .unwrap_or_else(|| before.role_assignments.clone()),
                ..before.clone()
            };
            let group = group_in(tx, account, before.group)?;
            if after == before {
                return Ok(MappedGroup {
                    mapping: before,
                    group,
                });
            }
            let after = ScimGroupMapping {
                updated_at: now,
                ..after
            };
            // What it granted before stays acceptable even if its role or tenant has gone
            // since (it grants nothing then); what it adds must be assignable now.
            check(tx, &after, &before.role_assignments)?;
            let after = resource::updated(tx, actor, now, &before, after)?;
            apply(tx, actor, &after, &group.members, now)?;
            Ok(MappedGroup {
                mapping: after,
                group,
            })
        })
    }

    /// Remove a mapping: the group's members lose what it granted (refused if that
    /// would leave the account without an active administrator).
    pub fn delete_scim_group_mapping(
        &self,
        actor: Actor,
        account: AccountId,
        id: ScimGroupMappingId,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let found = ScimGroupMapping::find(tx, account, id)?;
            self.authorize(tx, actor, account, target("delete", id.to_string()), now)?;
            let group = group_in(tx, account, found.group)?;
            unmap(tx, actor, &found, &group.members, now)
        })
    }
}

/// Make every one of `members` hold what `mapping` grants, in `tx`.
pub(super) fn apply(
    tx: &mut WriteTx,
    actor: Actor,
    mapping: &ScimGroupMapping,
    members: &[UserId],
    now: Timestamp,
) -> Result<(), AppError> {
    let source = GrantSource::ScimGroup(mapping.group);
    for user in members {
        grants::grant(
            tx,
            actor,
            mapping.account,
            *user,
            source,
            mapping.roles,
            &mapping.role_assignments,
            now,
        )?;
    }
    Ok(())
}

/// Take from `members` what their group grants (they left it, or it is unmapped), in
/// `tx`.
pub(super) fn withdraw(
    tx: &mut WriteTx,
    actor: Actor,
    account: AccountId,
    group: ScimGroupId,
    members: &[UserId],
    now: Timestamp,
) -> Result<(), AppError> {
    let source = GrantSource::ScimGroup(group);
    for user in members {
        grants::grant(tx, actor, account, *user, source, None, &[], now)?;
    }
    Ok(())
}

/// Delete `mapping` with its event, taking from `members` what it granted, in `tx`.
pub(super) fn unmap(
    tx: &mut WriteTx,
    actor: Actor,
    mapping: &ScimGroupMapping,
    members: &[UserId],
    now: Timestamp,
) -> Result<(), AppError> {
    withdraw(tx, actor, mapping.account, mapping.group, members, now)?;
    resource::deleted(tx, actor, now, mapping)
}

/// A mapping is well formed and every role and tenant it names beyond `kept` is this
/// account's and in the role's scope.
fn check(tx: &impl Reads, mapping: &ScimGroupMapping, kept: &[Granted]) -> Result<(), AppError> {
    mapping.validate()?;
    for &(role, tenant) in &mapping.role_assignments {
        if !kept.contains(&(role, tenant)) {
            tenancy::check_assignable(tx, mapping.account, role, tenant)?;
        }
    }
    Ok(())
}

fn mapped(tx: &impl Reads, mapping: ScimGroupMapping) -> Result<MappedGroup, AppError> {
    let group = group_in(tx, mapping.account, mapping.group)?;
    Ok(MappedGroup { mapping, group })
}

/// A group of `account` (another account's is not found).
pub(super) fn group_in(
    tx: &impl Reads,
    account: AccountId,
    id: ScimGroupId,
) -> Result<ScimGroup, AppError> {
    in_account(tx.scim_group(id)?, |g| g.account, account, id)
}

impl Resource for ScimGroupMapping {
    type Id = ScimGroupMappingId;

    fn action(change: Change) -> Action {
        Action::ScimGroupMapping(change)
    }
    fn id(&self) -> ScimGroupMappingId {
        self.id
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot::ScimGroupMapping(self.clone())
    }
    fn stored(tx: &impl Reads, id: ScimGroupMappingId) -> Result<Option<Self>, StoreError> {
        tx.scim_group_mapping(id)
    }
    fn account(&self) -> AccountId {
        self.account
    }
    fn put(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.put_scim_group_mapping(self)
    }
    fn remove(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.remove_scim_group_mapping(self)
    }
}
