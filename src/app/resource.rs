//! One home for the shape every account-owned object's change takes: find it in the
//! account → authorize → validate → write → record. The first and the last two steps are
//! the same for every kind and live here ([`Resource::find`], [`created`], [`updated`],
//! [`deleted`]); the middle two are each kind's own rules and stay with its operations.
//! A new kind is a declaration (`impl Resource`) plus its rules.

use super::{AppError, in_account, record};
use crate::domain::event::{Action, Actor, Change, IpObject, Snapshot, TenancyObject};
use crate::domain::id::{
    AccountId, AnyId, IpPolicyId, IpRestrictionId, IpRuleId, RoleId, TenantId,
};
use crate::domain::ip::{IpPolicy, IpPolicyRule, IpRestriction};
use crate::domain::tenancy::{CustomRole, RoleAssignment, Tenant};
use crate::domain::time::Timestamp;
use crate::store::{Reads, StoreError, WriteTx};

/// An object an account owns: where it is stored and how the trail shows it.
pub(super) trait Resource: Clone + PartialEq + Sized {
    /// Its id.
    type Id: Copy + std::fmt::Display + Into<AnyId>;

    /// The trail action of `change` to an object of this kind.
    fn action(change: Change) -> Action;

    fn id(&self) -> Self::Id;

    /// The object as the trail keeps it.
    fn snapshot(&self) -> Snapshot;

    /// The stored object `id`, whatever its account.
    fn stored(tx: &impl Reads, id: Self::Id) -> Result<Option<Self>, StoreError>;

    fn account(&self) -> AccountId;

    /// Write the object (and its indexes).
    fn put(&self, tx: &mut WriteTx) -> Result<(), StoreError>;

    /// Remove the object (and its indexes).
    fn remove(&self, tx: &mut WriteTx) -> Result<(), StoreError>;

    /// The object `id` of `account`: another account's is not found, as a missing one.
    fn find(tx: &impl Reads, account: AccountId, id: Self::Id) -> Result<Self, AppError> {
        in_account(Self::stored(tx, id)?, Self::account, account, id)
    }
}

/// Store a new object and record its creation, in `tx`.
pub(super) fn created<R: Resource>(
    tx: &mut WriteTx,
    actor: Actor,
    now: Timestamp,
    object: R,
) -> Result<R, AppError> {
    object.put(tx)?;
    let target = object.id().to_string();
    let after = object.snapshot();
    record(
        tx,
        &object.account(),
        now,
        actor,
        R::action(Change::Created),
        target,
        None,
        Some(after),
    )?;
    Ok(object)
}

/// Store `after` and record the change from `before`, when there is one (a change that
/// changes nothing writes nothing and leaves no event).
pub(super) fn updated<R: Resource>(
    tx: &mut WriteTx,
    actor: Actor,
    now: Timestamp,
    before: &R,
    after: R,
) -> Result<R, AppError> {
    if after != *before {
        after.put(tx)?;
        record(
            tx,
            &after.account(),
            now,
            actor,
            R::action(Change::Updated),
            after.id().to_string(),
            Some(before.snapshot()),
            Some(after.snapshot()),
        )?;
    }
    Ok(after)
}

/// Remove an object and record its deletion, in `tx`.
pub(super) fn deleted<R: Resource>(
    tx: &mut WriteTx,
    actor: Actor,
    now: Timestamp,
    object: &R,
) -> Result<(), AppError> {
    object.remove(tx)?;
    record(
        tx,
        &object.account(),
        now,
        actor,
        R::action(Change::Deleted),
        object.id().to_string(),
        Some(object.snapshot()),
        None,
    )
}

impl Resource for IpPolicy {
    type Id = IpPolicyId;

    fn action(change: Change) -> Action {
        Action::Ip(IpObject::Policy, change)
    }
    fn id(&self) -> IpPolicyId {
        self.id
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot::IpPolicy(self.clone())
    }
    fn stored(tx: &impl Reads, id: IpPolicyId) -> Result<Option<Self>, StoreError> {
        tx.ip_policy(id)
    }
    fn account(&self) -> AccountId {
        self.account
    }
    fn put(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.put_ip_policy(self)
    }
    fn remove(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.remove_ip_policy(self)
    }
}

impl Resource for IpPolicyRule {
    type Id = IpRuleId;

    fn action(change: Change) -> Action {
        Action::Ip(IpObject::Rule, change)
    }
    fn id(&self) -> IpRuleId {
        self.id
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot::IpRule(self.clone())
    }
    fn stored(tx: &impl Reads, id: IpRuleId) -> Result<Option<Self>, StoreError> {
        tx.ip_rule(id)
    }
    fn account(&self) -> AccountId {
        self.account
    }
    fn put(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.put_ip_rule(self)
    }
    fn remove(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.remove_ip_rule(self)
    }
}

impl Resource for IpRestriction {
    type Id = IpRestrictionId;

    fn action(change: Change) -> Action {
        Action::Ip(IpObject::Restriction, change)
    }
    fn id(&self) -> IpRestrictionId {
        self.id
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot::IpRestriction(self.clone())
    }
    fn stored(tx: &impl Reads, id: IpRestrictionId) -> Result<Option<Self>, StoreError> {
        tx.ip_restriction(id)
    }
    fn account(&self) -> AccountId {
        self.account
    }
    fn put(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.put_ip_restriction(self)
    }
    fn remove(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.remove_ip_restriction(self)
    }
}

impl Resource for Tenant {
    type Id = TenantId;

    fn action(change: Change) -> Action {
        Action::Tenancy(TenancyObject::Tenant, change)
    }
    fn id(&self) -> TenantId {
        self.id
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot::Tenant(self.clone())
    }
    fn stored(tx: &impl Reads, id: TenantId) -> Result<Option<Self>, StoreError> {
        tx.tenant(id)
    }
    fn account(&self) -> AccountId {
        self.account
    }
    fn put(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.put_tenant(self)
    }
    fn remove(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.remove_tenant(self)
    }
}

impl Resource for RoleAssignment {
    type Id = crate::domain::id::RoleAssignmentId;

    fn action(change: Change) -> Action {
        Action::Tenancy(TenancyObject::RoleAssignment, change)
    }
    fn id(&self) -> Self::Id {
        self.id
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot::RoleAssignment(self.clone())
    }
    fn stored(tx: &impl Reads, id: Self::Id) -> Result<Option<Self>, StoreError> {
        tx.role_assignment(id)
    }
    fn account(&self) -> AccountId {
        self.account
    }
    fn put(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.put_role_assignment(self)
    }
    fn remove(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.remove_role_assignment(self)
    }
}

impl Resource for CustomRole {
    type Id = RoleId;

    fn action(change: Change) -> Action {
        Action::Tenancy(TenancyObject::Role, change)
    }
    fn id(&self) -> RoleId {
        self.id
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot::Role(self.clone())
    }
    fn stored(tx: &impl Reads, id: RoleId) -> Result<Option<Self>, StoreError> {
        tx.custom_role(id)
    }
    fn account(&self) -> AccountId {
        self.account
    }
    fn put(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.put_custom_role(self)
    }
    fn remove(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.remove_custom_role(self)
    }
}
