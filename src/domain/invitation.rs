//! Invitations (seed 001, api.md): the default way people join an account. An invitation
//! carries the account roles and tenant role assignments to grant, and a one-time token
//! with an expiry; the person it names accepts it.

use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::id::{AccountId, InvitationId, RoleId, TenantId, UserId};
use crate::domain::time::Timestamp;
use crate::domain::user::{BillingRole, DeveloperRole, Email, Roles, TeamRole};

/// How long an invitation can be accepted: a week.
pub const INVITATION_LIFETIME_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Where an invitation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvitationState {
    /// Waiting for its person.
    Pending,
    /// Accepted by this user.
    Accepted {
        /// Who.
        user: UserId,
        /// When.
        at: Timestamp,
    },
    /// Revoked before it was accepted.
    Revoked {
        /// When.
        at: Timestamp,
    },
}

/// An invitation as stored. The token is kept twice, never in clear: its keyed hash (to
/// check a presented token) and sealed under a key derived from the server key (so an
/// administrator can read the link again from the outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// `inv_…`
    pub id: InvitationId,
    /// The account to join.
    pub account: AccountId,
    /// Who may accept it.
    pub email: Email,
    /// The account roles to grant.
    pub roles: Roles,
    /// The tenant role assignments to grant: role, and tenant (`None`: all tenants).
    pub assignments: Vec<(RoleId, Option<TenantId>)>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops being acceptable.
    pub expires_at: Timestamp,
    /// Its state.
    pub state: InvitationState,
    /// Keyed hash of the token.
    pub token_hash: [u8; 32],
    /// The token, sealed.
    pub sealed_token: Vec<u8>,
}

impl Invitation {
    /// The state's name at `now`: `pending`, `accepted`, `revoked` or `expired`.
    pub fn state_name(&self, now: Timestamp) -> &'static str {
        match self.state {
            InvitationState::Pending if now >= self.expires_at => "expired",
            InvitationState::Pending => "pending",
            InvitationState::Accepted { .. } => "accepted",
            InvitationState::Revoked { .. } => "revoked",
        }
    }
}

/// Whether `granted` gives anything above `own` (api.md: a member with the `invite`
/// team role "may grant only roles no higher than its own").
pub fn exceeds(granted: &Roles, own: &Roles) -> bool {
    let developer = |r: DeveloperRole| match r {
        DeveloperRole::ReadOnly => 0,
        DeveloperRole::ReadWrite => 1,
    };
    let team = |r: TeamRole| match r {
        TeamRole::ReadOnly => 0,
        TeamRole::Invite => 1,
        TeamRole::Manager => 2,
    };
    let billing = |r: BillingRole| match r {
        BillingRole::None => 0,
        BillingRole::Access => 1,
    };
    developer(granted.developer) > developer(own.developer)
        || team(granted.team) > team(own.team)
        || billing(granted.billing) > billing(own.billing)
        || (granted.admin && !own.admin)
}

/// At most this many tenant role assignments in one invitation.
pub const MAX_ASSIGNMENTS: usize = 100;

/// Check the assignments' count.
pub fn validate_assignments(assignments: &[(RoleId, Option<TenantId>)]) -> Result<(), DomainError> {
    if assignments.len() > MAX_ASSIGNMENTS {
        return Err(DomainError::invalid(
            "role_assignments",
            format!("at most {MAX_ASSIGNMENTS} role assignments"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inviter_may_grant_no_more_than_it_has() {
        let own = Roles {
            developer: DeveloperRole::ReadOnly,
            team: TeamRole::Invite,
            billing: BillingRole::None,
            admin: false,
        };
        assert!(!exceeds(&Roles::default(), &own));
        assert!(!exceeds(&own, &own));
        for granted in [
            Roles {
                developer: DeveloperRole::ReadWrite,
                ..own
            },
            Roles {
                team: TeamRole::Manager,
                ..own
            },
            Roles {
                billing: BillingRole::Access,
                ..own
            },
            Roles { admin: true, ..own },
        ] {
            assert!(exceeds(&granted, &own), "{granted:?}");
        }
    }
}
