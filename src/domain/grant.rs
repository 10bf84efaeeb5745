//! Where a member's roles come from. A member's account roles are the union of what was
//! set on it directly (the API, the dashboard, an invitation, SCIM's defaults), what each
//! of its SCIM groups' mappings grants and what its identity provider's role mapping
//! granted at its last sign-in; a tenant role assignment lasts while any of its sources
//! holds it. The membership keeps the union (what policies see); this module keeps the
//! parts, so removing one source takes away exactly what it gave.

use serde::{Deserialize, Serialize};

use crate::domain::id::{AccountId, IdentityProviderId, RoleId, ScimGroupId, TenantId, UserId};
use crate::domain::user::{BillingRole, DeveloperRole, Roles, TeamRole};

/// What granted a role or a role assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GrantSource {
    /// Set on the member directly.
    Direct,
    /// The mapping of a SCIM group the member belongs to.
    ScimGroup(ScimGroupId),
    /// An identity provider's role mapping, at the member's last sign-in through it.
    IdentityProvider(IdentityProviderId),
}

impl std::fmt::Display for GrantSource {
    /// How refusals and pages name it: `direct`, `SCIM group grp_…`,
    /// `identity provider idp_…`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrantSource::Direct => f.write_str("direct"),
            GrantSource::ScimGroup(group) => write!(f, "SCIM group {group}"),
            GrantSource::IdentityProvider(idp) => write!(f, "identity provider {idp}"),
        }
    }
}

/// What one source grants a member at account level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrant {
    /// Never [`GrantSource::Direct`] (those roles are [`MemberGrants::direct`]).
    pub source: GrantSource,
    /// The roles it grants.
    pub roles: Roles,
}

/// A member's account roles by source. A member without a stored record holds its roles
/// directly ([`MemberGrants::direct_only`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberGrants {
    /// The account.
    pub account: AccountId,
    /// The member.
    pub user: UserId,
    /// Set on the member directly.
    pub direct: Roles,
    /// Granted by other sources, one entry per source, in the order they were granted.
    pub grants: Vec<RoleGrant>,
}

impl MemberGrants {
    /// Every role held directly, nothing granted.
    pub fn direct_only(account: AccountId, user: UserId, roles: Roles) -> MemberGrants {
        MemberGrants {
            account,
            user,
            direct: roles,
            grants: Vec::new(),
        }
    }

    /// The member's roles: the highest of each role among every source.
    pub fn effective(&self) -> Roles {
        self.grants
            .iter()
            .fold(self.direct, |held, grant| held.union(grant.roles))
    }

    /// Make `source`'s grant `roles` (`None`: it grants nothing any more).
    pub fn set(&mut self, source: GrantSource, roles: Option<Roles>) {
        match (self.grants.iter_mut().find(|g| g.source == source), roles) {
            (Some(grant), Some(roles)) => grant.roles = roles,
            (None, Some(roles)) => self.grants.push(RoleGrant { source, roles }),
            (_, None) => self.grants.retain(|g| g.source != source),
        }
    }
}

/// The sources of one tenant role assignment; it exists while this is not empty. An
/// assignment without a stored record was made directly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentSources {
    /// In the order they were added.
    pub sources: Vec<GrantSource>,
}

/// A tenant role assignment a source grants: the role, in one tenant or (`None`) all.
pub type Granted = (RoleId, Option<TenantId>);

impl Roles {
    /// The higher of each role of `self` and `other`.
    pub fn union(self, other: Roles) -> Roles {
        Roles {
            developer: if self.developer == DeveloperRole::ReadWrite
                || other.developer == DeveloperRole::ReadWrite
            {
                DeveloperRole::ReadWrite
            } else {
                DeveloperRole::ReadOnly
            },
            team: match (self.team, other.team) {
                (TeamRole::Manager, _) | (_, TeamRole::Manager) => TeamRole::Manager,
                (TeamRole::Invite, _) | (_, TeamRole::Invite) => TeamRole::Invite,
                _ => TeamRole::ReadOnly,
            },
            billing: if self.billing == BillingRole::Access || other.billing == BillingRole::Access
            {
                BillingRole::Access
            } else {
                BillingRole::None
            },
            admin: self.admin || other.admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_roles_are_the_union_and_a_removed_source_takes_only_its_own() {
        let direct = Roles {
            developer: DeveloperRole::ReadWrite,
            ..Roles::default()
        };
        let mut grants = MemberGrants::direct_only(AccountId(1), UserId(2), direct);
        assert_eq!(grants.effective(), direct);
        let group = GrantSource::ScimGroup(ScimGroupId(3));
        let manager = Roles {
            team: TeamRole::Manager,
            ..Roles::default()
        };
        grants.set(group, Some(manager));
        let sso = GrantSource::IdentityProvider(IdentityProviderId(4));
        grants.set(
            sso,
            Some(Roles {
                team: TeamRole::Invite,
                billing: BillingRole::Access,
                ..Roles::default()
            }),
        );
        assert_eq!(
            grants.effective(),
            Roles {
                developer: DeveloperRole::ReadWrite,
                team: TeamRole::Manager,
                billing: BillingRole::Access,
                admin: false,
            }
        );
        grants.set(group, None);
        assert_eq!(grants.effective().team, TeamRole::Invite);
        grants.set(sso, None);
        assert_eq!(grants.effective(), direct);
        assert!(grants.grants.is_empty());
    }

    #[test]
    fn union_is_commutative_and_keeps_administrators() {
        let admin = Roles::administrator();
        let least = Roles::default();
        assert_eq!(admin.union(least), admin);
        assert_eq!(least.union(admin), admin);
        assert_eq!(least.union(least), least);
    }
}
