//! Roles and tenant role assignments by source ([`crate::domain::grant`]): what a SCIM
//! group's mapping and an identity provider's role mapping grant a member, kept apart
//! from what was set on it directly, so a source that stops granting takes away exactly
//! what it gave. Every change here runs in the caller's transaction, with its events
//! (the member's roles, each assignment made or removed) by the caller's actor.

use super::{AppError, record, resource, tenancy};
use crate::domain::DomainError;
use crate::domain::credential::Owner;
use crate::domain::event::{Action, Actor, Snapshot};
use crate::domain::grant::{AssignmentSources, GrantSource, Granted, MemberGrants};
use crate::domain::id::{AccountId, RoleAssignmentId, UserId};
use crate::domain::time::Timestamp;
use crate::domain::user::{self, MemberChange, Membership, Roles, RolesPatch};
use crate::store::{Reads, WriteTx};

/// A member's roles by source as `tx` holds them.
pub(super) fn of_member(
    tx: &impl Reads,
    membership: &Membership,
) -> Result<MemberGrants, AppError> {
    Ok(tx
        .member_grants(membership.account, membership.user)?
        .unwrap_or_else(|| {
            MemberGrants::direct_only(membership.account, membership.user, membership.roles)
        }))
}

/// The sources of a role assignment.
pub(super) fn of_assignment(
    tx: &impl Reads,
    id: RoleAssignmentId,
) -> Result<Vec<GrantSource>, AppError> {
    Ok(tx
        .assignment_sources(id)?
        .map_or_else(|| vec![GrantSource::Direct], |s| s.sources))
}

/// Store `grants` and make the membership's roles their union, with a roles event when
/// they change. Losing the account's last active administrator this way is refused
/// ([`DomainError::LastAdministrator`]) and nothing is written.
fn settle(
    tx: &mut WriteTx,
    actor: Actor,
    before: &Membership,
    grants: &MemberGrants,
    now: Timestamp,
) -> Result<(), AppError> {
    let roles = grants.effective();
    if roles != before.roles {
        let after = Membership {
            roles,
            ..before.clone()
        };
        if before.is_active_admin() && !after.is_active_admin() {
            // The one rule of the model: asked only when an administrator is lost, so a
            // mapping applied to a large group reads the account's members rarely.
            let members = tx.members(before.account)?;
            user::change_member(
                &members,
                before.user,
                MemberChange::Roles(RolesPatch::to(roles)),
            )?;
        }
        let found = tx
            .user(before.user)?
            .ok_or_else(|| DomainError::NotFound(before.user.into()))?;
        tx.put_membership(&after)?;
        record(
            tx,
            &before.account,
            now,
            actor,
            Action::MemberRolesUpdated,
            before.user.to_string(),
            Some(Snapshot::Member(found.clone(), before.clone())),
            Some(Snapshot::Member(found, after)),
        )?;
    }
    Ok(tx.put_member_grants(grants)?)
}

/// Make `source` grant `user` exactly `roles` (`None`: nothing) and exactly the tenant
/// role assignments `wanted` in `account`. A user who is not a member is left alone; an
/// assignment whose role or tenant is gone (or out of the role's scope) is skipped.
#[allow(clippy::too_many_arguments)]
pub(super) fn grant(
    tx: &mut WriteTx,
    actor: Actor,
    account: AccountId,
    user: UserId,
    source: GrantSource,
    roles: Option<Roles>,
    wanted: &[Granted],
    now: Timestamp,
) -> Result<(), AppError> {
    grant_roles(tx, actor, account, user, source, roles, now)?;
    grant_assignments(tx, actor, account, user, source, wanted, now)
}

/// Make `source` grant `user` exactly `roles` (`None`: nothing) in `account`; a user who
/// is not a member is left alone.
pub(super) fn grant_roles(
    tx: &mut WriteTx,
    actor: Actor,
    account: AccountId,
    user: UserId,
    source: GrantSource,
    roles: Option<Roles>,
    now: Timestamp,
) -> Result<(), AppError> {
    let Some(before) = tx.membership(account, user)? else {
        return Ok(());
    };
    let held = of_member(tx, &before)?;
    let mut grants = held.clone();
    grants.set(source, roles);
    if grants == held {
        return Ok(());
    }
    settle(tx, actor, &before, &grants, now)
}

/// Make `source` hold exactly the assignments `wanted` of `user`: it joins the sources of
/// those already held, leaves the others (an assignment left without a source is
/// removed), and makes the missing ones.
pub(super) fn grant_assignments(
    tx: &mut WriteTx,
    actor: Actor,
    account: AccountId,
    user: UserId,
    source: GrantSource,
    wanted: &[Granted],
    now: Timestamp,
) -> Result<(), AppError> {
    let owner = Owner::User(user);
    let held = tx.principal_assignments(account, owner)?;
    for assignment in &held {
        let mut sources = of_assignment(tx, assignment.id)?;
        let wants = wanted.contains(&(assignment.role, assignment.tenant));
        if sources.contains(&source) == wants {
            continue;
        }
        if wants {
            sources.push(source);
        } else {
            sources.retain(|s| *s != source);
        }
        if sources.is_empty() {
            resource::deleted(tx, actor, now, assignment)?;
        } else {
            tx.put_assignment_sources(assignment.id, &AssignmentSources { sources })?;
        }
    }
    for &(role, tenant) in wanted {
        if held.iter().any(|a| a.role == role && a.tenant == tenant) {
            continue;
        }
        match tenancy::check_assignable(tx, account, role, tenant) {
            Ok(()) => {}
            // Deleted (or narrowed) since the mapping named it: it grants nothing.
            Err(AppError::Domain(_)) => continue,
            Err(other) => return Err(other),
        }
        let made = tenancy::put_assignment(tx, actor, account, owner, role, tenant, now)?;
        tx.put_assignment_sources(
            made.id,
            &AssignmentSources {
                sources: vec![source],
            },
        )?;
    }
    Ok(())
}
