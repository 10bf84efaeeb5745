//! Users (global people), their memberships in accounts, account roles, and the rules
//! that bind them: unique email, at least one active administrator per account.

use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::account::validate_display_name;
use crate::domain::credential::CredentialId;
use crate::domain::id::{AccountId, UserId};
use crate::domain::time::Timestamp;

/// An email address as given, unique across the appliance case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    /// Validate an address: one `@`, a non-empty local part of at most 64 bytes, a domain
    /// with a dot, no spaces or control characters, at most 254 bytes in all.
    pub fn parse(text: &str) -> Result<Email, DomainError> {
        let text = text.trim();
        let bad = |why: &str| DomainError::invalid("email", format!("{text:?} {why}"));
        if text.len() > 254 {
            return Err(bad("is longer than 254 bytes"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains spaces or control characters"));
        }
        let Some((local, domain)) = text.split_once('@') else {
            return Err(bad("has no @"));
        };
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return Err(bad("is not a valid address"));
        }
        let labels_ok = domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
        if !domain.contains('.') || !labels_ok {
            return Err(bad("does not have a valid domain"));
        }
        Ok(Email(text.to_owned()))
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key under which the address is unique.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A person. Users are global: one user may be a member of several accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// `usr_…`
    pub id: UserId,
    /// Unique, case-insensitive.
    pub email: Email,
    /// Display name.
    pub name: String,
    /// When the user was made.
    pub created_at: Timestamp,
}

impl User {
    /// A new user, validated.
    pub fn new(id: UserId, email: Email, name: &str, now: Timestamp) -> Result<User, DomainError> {
        Ok(User {
            id,
            email,
            name: validate_display_name(name)?,
            created_at: now,
        })
    }
}

/// Account isolation: users are global, so an account may change what every account
/// relies on about a user (its password, name, email, second factor, sessions) only when
/// it is the user's only account. `accounts` are the user's memberships.
pub fn ensure_only_account(
    user: UserId,
    accounts: &[AccountId],
    account: AccountId,
) -> Result<(), DomainError> {
    if accounts.iter().all(|a| *a == account) {
        Ok(())
    } else {
        Err(DomainError::SharedUser(user.into()))
    }
}

/// Developer role: may a member change developer resources (credentials, bots, IP policies)?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeveloperRole {
    /// Create, modify and delete developer resources.
    ReadWrite,
    /// View only (but still see and rotate the personal authtoken).
    ReadOnly,
}

/// Team role: may a member manage other members?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamRole {
    /// Invite, remove and change the roles of non-administrators.
    Manager,
    /// See members and invite.
    Invite,
    /// See members.
    ReadOnly,
}

/// Billing role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingRole {
    /// View and change billing.
    Access,
    /// No billing access.
    None,
}

/// The account-level roles of a membership. The default is the least privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Roles {
    /// Developer role.
    pub developer: DeveloperRole,
    /// Team role.
    pub team: TeamRole,
    /// Billing role.
    pub billing: BillingRole,
    /// Full account control.
    pub admin: bool,
}

impl Roles {
    /// The roles as the policies see them (ABI v1).
    pub fn for_policies(self) -> latchkey_policy_abi::AccountRoles {
        use latchkey_policy_abi as abi;
        abi::AccountRoles {
            developer: match self.developer {
                DeveloperRole::ReadWrite => abi::Developer::ReadWrite,
                DeveloperRole::ReadOnly => abi::Developer::ReadOnly,
            },
            team: match self.team {
                TeamRole::Manager => abi::Team::Manager,
                TeamRole::Invite => abi::Team::Invite,
                TeamRole::ReadOnly => abi::Team::ReadOnly,
            },
            billing: match self.billing {
                BillingRole::Access => abi::Billing::Access,
                BillingRole::None => abi::Billing::None,
            },
            admin: self.admin,
        }
    }
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            developer: DeveloperRole::ReadOnly,
            team: TeamRole::ReadOnly,
            billing: BillingRole::None,
            admin: false,
        }
    }
}

impl Roles {
    /// Everything: what the first administrator of an account gets.
    pub fn administrator() -> Roles {
        Roles {
            developer: DeveloperRole::ReadWrite,
            team: TeamRole::Manager,
            billing: BillingRole::Access,
            admin: true,
        }
    }
}

/// A change to some of the roles; fields left `None` keep their value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesPatch {
    /// New developer role.
    pub developer: Option<DeveloperRole>,
    /// New team role.
    pub team: Option<TeamRole>,
    /// New billing role.
    pub billing: Option<BillingRole>,
    /// New administrator flag.
    pub admin: Option<bool>,
}

impl RolesPatch {
    /// The patch that makes any roles `roles`.
    pub fn to(roles: Roles) -> RolesPatch {
        RolesPatch {
            developer: Some(roles.developer),
            team: Some(roles.team),
            billing: Some(roles.billing),
            admin: Some(roles.admin),
        }
    }

    /// The roles after this patch.
    pub fn apply(&self, roles: Roles) -> Roles {
        Roles {
            developer: self.developer.unwrap_or(roles.developer),
            team: self.team.unwrap_or(roles.team),
            billing: self.billing.unwrap_or(roles.billing),
            admin: self.admin.unwrap_or(roles.admin),
        }
    }
}

/// Whether a member may act in the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Logs in, starts agents, uses the API.
    Active,
    /// Keeps its credentials, but none of them verify in this account.
    Disabled,
}

/// A user's membership in one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The account.
    pub account: AccountId,
    /// The member.
    pub user: UserId,
    /// Account-level roles.
    pub roles: Roles,
    /// Active or disabled.
    pub state: MemberState,
    /// When the user joined the account.
    pub joined_at: Timestamp,
    /// The personal authtoken made when the user joined.
    pub personal_authtoken: CredentialId,
}

impl Membership {
    /// An active administrator keeps the account governable.
    pub fn is_active_admin(&self) -> bool {
        self.roles.admin && self.state == MemberState::Active
    }
}

/// A change to one membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// Change some roles.
    Roles(RolesPatch),
    /// Disable or re-enable.
    State(MemberState),
    /// Remove the membership (and, elsewhere, revoke its credentials in the account).
    Remove,
}

/// Apply `change` to `user`'s membership among `members` (every membership of one account)
/// and return the membership after it (`None` once removed).
///
/// This is the one place that keeps the rule "an account always has at least one active
/// administrator": demoting, disabling or removing the last one is refused.
pub fn change_member(
    members: &[Membership],
    user: UserId,
    change: MemberChange,
) -> Result<Option<Membership>, DomainError> {
    let current = members
        .iter()
        .find(|m| m.user == user)
        .ok_or_else(|| DomainError::NotFound(user.into()))?;
    let after = match change {
        MemberChange::Roles(patch) => Some(Membership {
            roles: patch.apply(current.roles),
            ..current.clone()
        }),
        MemberChange::State(state) => Some(Membership {
            state,
            ..current.clone()
        }),
        MemberChange::Remove => None,
    };
    let admin_remains = members
        .iter()
        .map(|m| {
            if m.user == user {
                after.as_ref()
            } else {
                Some(m)
            }
        })
        .any(|m| m.is_some_and(Membership::is_active_admin));
    if !admin_remains {
        return Err(DomainError::LastAdministrator);
    }
    Ok(after)
}

/// Seats used by an account: every member counts; bot users never do.
pub fn seats_used(members: &[Membership]) -> usize {
    members.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user: u128, admin: bool, state: MemberState) -> Membership {
        Membership {
            account: AccountId(1),
            user: UserId(user),
            roles: Roles {
                admin,
                ..Roles::default()
            },
            state,
            joined_at: Timestamp::from_millis(0),
            personal_authtoken: CredentialId::authtoken(user),
        }
    }

    #[test]
    fn emails_are_validated_and_keyed_case_insensitively() {
        let email = Email::parse(" Dana@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "Dana@Example.COM");
        assert_eq!(email.key(), "dana@example.com");
        for bad in [
            "",
            "dana",
            "dana@",
            "@example.com",
            "da na@example.com",
            "dana@example",
            "a@b@c.d",
            "dana@-x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn roles_default_to_least_privilege_and_patch_only_what_is_sent() {
        let roles = Roles::default();
        assert_eq!(
            (roles.developer, roles.team, roles.billing, roles.admin),
            (
                DeveloperRole::ReadOnly,
                TeamRole::ReadOnly,
                BillingRole::None,
                false
            )
        );
        let patched = RolesPatch {
            team: Some(TeamRole::Manager),
            ..Default::default()
        }
        .apply(roles);
        assert_eq!(
            patched,
            Roles {
                team: TeamRole::Manager,
                ..roles
            }
        );
    }

    #[test]
    fn the_last_active_administrator_cannot_be_demoted_disabled_or_removed() {
        let members = [
            member(1, true, MemberState::Active),
            member(2, false, MemberState::Active),
        ];
        let demote = MemberChange::Roles(RolesPatch {
            admin: Some(false),
            ..Default::default()
        });
        for change in [
            demote,
            MemberChange::State(MemberState::Disabled),
            MemberChange::Remove,
        ] {
            assert_eq!(
                change_member(&members, UserId(1), change),
                Err(DomainError::LastAdministrator)
            );
        }
    }

    #[test]
    fn a_disabled_administrator_does_not_count() {
        let members = [
            member(1, true, MemberState::Active),
            member(2, true, MemberState::Disabled),
        ];
        assert_eq!(
            change_member(&members, UserId(1), MemberChange::Remove),
            Err(DomainError::LastAdministrator)
        );
        // Re-enabling the second administrator is fine, and then the first may go.
        let enabled = change_member(
            &members,
            UserId(2),
            MemberChange::State(MemberState::Active),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            change_member(
                &[members[0].clone(), enabled],
                UserId(1),
                MemberChange::Remove
            ),
            Ok(None)
        );
    }

    #[test]
    fn with_a_second_administrator_changes_are_allowed() {
        let members = [
            member(1, true, MemberState::Active),
            member(2, true, MemberState::Active),
        ];
        let after = change_member(
            &members,
            UserId(1),
            MemberChange::State(MemberState::Disabled),
        )
        .unwrap();
        assert_eq!(after.unwrap().state, MemberState::Disabled);
        assert_eq!(
            change_member(&members, UserId(2), MemberChange::Remove),
            Ok(None)
        );
    }

    #[test]
    fn changing_a_non_member_is_not_found() {
        let members = [member(1, true, MemberState::Active)];
        assert!(matches!(
            change_member(&members, UserId(9), MemberChange::Remove),
            Err(DomainError::NotFound(_))
        ));
    }

    #[test]
    fn seats_count_members() {
        let members = [
            member(1, true, MemberState::Active),
            member(2, false, MemberState::Disabled),
        ];
        assert_eq!(seats_used(&members), 2);
    }
}
