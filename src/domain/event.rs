//! Audit events: who did what to which object, when, with the object before and after.
//!
//! Events of one account form a hash chain: each event's body carries the SHA-256 of the
//! previous event's stored bytes, so editing, removing or reordering any event breaks
//! every link after it. The store appends events in the same transaction as the change.

use serde::{Deserialize, Serialize};

use crate::domain::account::Account;
use crate::domain::bot::BotUser;
use crate::domain::credential::{Credential, CredentialId, CredentialKind};
use crate::domain::destination::EventDestination;
use crate::domain::federation::{ExternalIdentity, IdentityProvider};
use crate::domain::id::{AccountId, BotId, EventId, IdentityProviderId, ScimTokenId, UserId};
use crate::domain::ip::{IpPolicy, IpPolicyRule, IpRestriction};
use crate::domain::scim::{ScimGroup, ScimGroupMapping, ScimProfile};
use crate::domain::tenancy::{AddedPermission, CustomRole, RoleAssignment, Tenant};
use crate::domain::time::Timestamp;
use crate::domain::user::{Membership, Roles, User};

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Principal {
    /// The appliance itself, or the operator at the host (`latchkey init`).
    System,
    /// A person.
    User(UserId),
    /// A bot user.
    Bot(BotId),
    /// An identity provider provisioning through the account's SCIM endpoint, by the
    /// SCIM token it presented.
    ScimToken(ScimTokenId),
}

impl Principal {
    /// The principal's id in text form (`system` for the system principal).
    pub fn id_string(self) -> String {
        match self {
            Principal::System => "system".to_owned(),
            Principal::User(id) => id.to_string(),
            Principal::Bot(id) => id.to_string(),
            Principal::ScimToken(id) => id.to_string(),
        }
    }
}

/// A principal and the credential it used, as recorded on every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// Who.
    pub principal: Principal,
    /// With which credential, when one was presented.
    pub credential: Option<CredentialId>,
}

impl Actor {
    /// The system principal, acting without a credential.
    pub const SYSTEM: Actor = Actor {
        principal: Principal::System,
        credential: None,
    };
}

/// What happened. Names follow the `iam.<resource>.<verb>` action names of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Action {
    /// An account was created.
    AccountCreated,
    /// A user joined an account (the user may have been created with it).
    MemberAdded,
    /// A member's roles changed.
    MemberRolesUpdated,
    /// A member was disabled.
    MemberDisabled,
    /// A member was re-enabled.
    MemberEnabled,
    /// A member was removed from the account.
    MemberRemoved,
    /// A bot user was created.
    BotCreated,
    /// A bot user was renamed or (de)activated.
    BotUpdated,
    /// A bot user was deleted with all its credentials.
    BotDeleted,
    /// A credential was created.
    CredentialCreated(CredentialKind),
    /// A credential's description, metadata or rules changed.
    CredentialUpdated(CredentialKind),
    /// A token credential got a new secret.
    CredentialRotated(CredentialKind),
    /// A credential was revoked (deleted, or with its owner's membership or bot).
    CredentialRevoked(CredentialKind),
    /// An IP policy, rule or restriction was created, changed or deleted.
    Ip(IpObject, Change),
    /// Requests outside a warn-only IP restriction went through (counted, then recorded
    /// in one event per restriction and address).
    IpRestrictionWarned,
    /// An account's settings changed.
    AccountUpdated,
    /// A user's name changed.
    UserRenamed,
    /// A tenant, role, role assignment or catalog permission was created, changed or
    /// deleted.
    Tenancy(TenancyObject, Change),
    /// A user logged in (a session began).
    LoginSucceeded,
    /// A login was refused (wrong password, locked out, not a member).
    LoginFailed,
    /// A session was ended by its user.
    LoggedOut,
    /// A user set or changed its password (its other sessions ended).
    PasswordChanged,
    /// A user confirmed a TOTP enrollment.
    MfaEnrolled,
    /// A user turned TOTP off.
    MfaDisabled,
    /// The operator restored a locked-out administrator on the host (`latchkey recover`).
    AdministratorRecovered,
    /// An administrator issued a password reset link for a member.
    PasswordResetIssued,
    /// An invitation was made, or revoked.
    Invitation(Change),
    /// An invitation was accepted (the membership it made is its own event).
    InvitationAccepted,
    /// A user proved it controls its email (a link mailed only to it was used).
    EmailProven,
    /// A user's email proof was dropped: an administrator's reset link, which the
    /// administrator saw, set its password.
    EmailProofRemoved,
    /// An event destination was created, changed or deleted.
    EventDestination(Change),
    /// The appliance trail: `serve` started with a policy set (before: the set the trail
    /// last recorded).
    PolicySetLoaded,
    /// The appliance trail: the policy set was reloaded (a signal or the operator).
    PolicySetReloaded,
    /// The appliance trail: a reload was refused and the set before it stays.
    PolicySetRefused,
    /// A user added a passkey.
    PasskeyAdded,
    /// A user removed a passkey (or `latchkey recover` removed them all).
    PasskeyRemoved,
    /// An identity provider was created, changed or deleted.
    IdentityProvider(Change),
    /// An external identity was linked to a user (its first SSO login, or the user
    /// connecting it), or unlinked.
    ExternalIdentity(Change),
    /// A SCIM token was made or revoked.
    ScimToken(Change),
    /// What SCIM keeps about a member (its `userName`, `externalId`, name parts and
    /// emails) was written or dropped.
    ScimUser(Change),
    /// A user's email changed (through SCIM, for a user of one account alone).
    UserEmailChanged,
    /// A SCIM group was made, changed (its name or members) or deleted.
    ScimGroup(Change),
    /// An administrator mapped a SCIM group to roles, changed or removed the mapping.
    ScimGroupMapping(Change),
}

/// The tenancy resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenancyObject {
    /// `/tenants`.
    Tenant,
    /// `/roles`.
    Role,
    /// `/role_assignments`.
    RoleAssignment,
    /// `/permissions`.
    Permission,
}

/// The three IP resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpObject {
    /// `/ip_policies`.
    Policy,
    /// `/ip_policy_rules`.
    Rule,
    /// `/ip_restrictions`.
    Restriction,
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Made.
    Created,
    /// Changed.
    Updated,
    /// Deleted.
    Deleted,
}

impl Action {
    /// The action's name, e.g. `iam.users.disable`.
    pub fn name(self) -> &'static str {
        use CredentialKind::{ApiKey, Authtoken, SshKey};
        match self {
            Action::AccountCreated => "iam.account.create",
            Action::MemberAdded => "iam.users.create",
            Action::MemberRolesUpdated => "iam.users.update_roles",
            Action::MemberDisabled => "iam.users.disable",
            Action::MemberEnabled => "iam.users.enable",
            Action::MemberRemoved => "iam.users.delete",
            Action::BotCreated => "iam.bot_users.create",
            Action::BotUpdated => "iam.bot_users.update",
            Action::BotDeleted => "iam.bot_users.delete",
            Action::CredentialCreated(Authtoken) => "iam.credentials.create",
            Action::CredentialCreated(ApiKey) => "iam.api_keys.create",
            Action::CredentialCreated(SshKey) => "iam.ssh_credentials.create",
            Action::CredentialUpdated(Authtoken) => "iam.credentials.update",
            Action::CredentialUpdated(ApiKey) => "iam.api_keys.update",
            Action::CredentialUpdated(SshKey) => "iam.ssh_credentials.update",
            Action::CredentialRotated(Authtoken) => "iam.credentials.rotate",
            Action::CredentialRotated(ApiKey) => "iam.api_keys.rotate",
            Action::CredentialRotated(SshKey) => "iam.ssh_credentials.rotate",
            Action::CredentialRevoked(Authtoken) => "iam.credentials.delete",
            Action::CredentialRevoked(ApiKey) => "iam.api_keys.delete",
            Action::CredentialRevoked(SshKey) => "iam.ssh_credentials.delete",
            Action::Ip(object, change) => match (object, change) {
                (IpObject::Policy, Change::Created) => "iam.ip_policies.create",
                (IpObject::Policy, Change::Updated) => "iam.ip_policies.update",
                (IpObject::Policy, Change::Deleted) => "iam.ip_policies.delete",
                (IpObject::Rule, Change::Created) => "iam.ip_policy_rules.create",
                (IpObject::Rule, Change::Updated) => "iam.ip_policy_rules.update",
                (IpObject::Rule, Change::Deleted) => "iam.ip_policy_rules.delete",
                (IpObject::Restriction, Change::Created) => "iam.ip_restrictions.create",
                (IpObject::Restriction, Change::Updated) => "iam.ip_restrictions.update",
                (IpObject::Restriction, Change::Deleted) => "iam.ip_restrictions.delete",
            },
            Action::IpRestrictionWarned => "iam.ip_restrictions.warn",
            Action::AccountUpdated => "iam.account.update",
            Action::UserRenamed => "iam.users.update",
            Action::LoginSucceeded => "iam.sessions.create",
            Action::LoginFailed => "iam.sessions.refuse",
            Action::LoggedOut => "iam.sessions.delete",
            Action::PasswordChanged => "iam.users.update_password",
            Action::MfaEnrolled => "iam.mfa.enroll",
            Action::MfaDisabled => "iam.mfa.disable",
            Action::AdministratorRecovered => "iam.users.recover",
            Action::PasswordResetIssued => "iam.users.password_reset",
            Action::Invitation(Change::Created) => "iam.invitations.create",
            Action::Invitation(Change::Updated) => "iam.invitations.update",
            Action::Invitation(Change::Deleted) => "iam.invitations.delete",
            Action::InvitationAccepted => "iam.invitations.accept",
            Action::EmailProven => "iam.users.prove_email",
            Action::EmailProofRemoved => "iam.users.unprove_email",
            Action::EventDestination(Change::Created) => "iam.event_destinations.create",
            Action::EventDestination(Change::Updated) => "iam.event_destinations.update",
            Action::EventDestination(Change::Deleted) => "iam.event_destinations.delete",
            Action::PolicySetLoaded => "appliance.policies.load",
            Action::PolicySetReloaded => "appliance.policies.reload",
            Action::PolicySetRefused => "appliance.policies.refuse",
            Action::PasskeyAdded => "iam.passkeys.create",
            Action::PasskeyRemoved => "iam.passkeys.delete",
            Action::IdentityProvider(Change::Created) => "iam.identity_providers.create",
            Action::IdentityProvider(Change::Updated) => "iam.identity_providers.update",
            Action::IdentityProvider(Change::Deleted) => "iam.identity_providers.delete",
            Action::ExternalIdentity(Change::Created) => "iam.external_identities.create",
            Action::ExternalIdentity(Change::Updated) => "iam.external_identities.update",
            Action::ExternalIdentity(Change::Deleted) => "iam.external_identities.delete",
            Action::ScimToken(Change::Created) => "iam.scim_tokens.create",
            Action::ScimToken(Change::Updated) => "iam.scim_tokens.update",
            Action::ScimToken(Change::Deleted) => "iam.scim_tokens.delete",
            Action::ScimUser(Change::Created) => "iam.scim_users.create",
            Action::ScimUser(Change::Updated) => "iam.scim_users.update",
            Action::ScimUser(Change::Deleted) => "iam.scim_users.delete",
            Action::UserEmailChanged => "iam.users.update_email",
            Action::ScimGroup(Change::Created) => "iam.scim_groups.create",
            Action::ScimGroup(Change::Updated) => "iam.scim_groups.update",
            Action::ScimGroup(Change::Deleted) => "iam.scim_groups.delete",
            Action::ScimGroupMapping(Change::Created) => "iam.scim_group_mappings.create",
            Action::ScimGroupMapping(Change::Updated) => "iam.scim_group_mappings.update",
            Action::ScimGroupMapping(Change::Deleted) => "iam.scim_group_mappings.delete",
            Action::Tenancy(object, change) => match (object, change) {
                (TenancyObject::Tenant, Change::Created) => "iam.tenants.create",
                (TenancyObject::Tenant, Change::Updated) => "iam.tenants.update",
                (TenancyObject::Tenant, Change::Deleted) => "iam.tenants.delete",
                (TenancyObject::Role, Change::Created) => "iam.roles.create",
                (TenancyObject::Role, Change::Updated) => "iam.roles.update",
                (TenancyObject::Role, Change::Deleted) => "iam.roles.delete",
                (TenancyObject::RoleAssignment, Change::Created) => "iam.role_assignments.create",
                (TenancyObject::RoleAssignment, Change::Updated) => "iam.role_assignments.update",
                (TenancyObject::RoleAssignment, Change::Deleted) => "iam.role_assignments.delete",
                (TenancyObject::Permission, Change::Created) => "iam.permissions.create",
                (TenancyObject::Permission, Change::Updated) => "iam.permissions.update",
                (TenancyObject::Permission, Change::Deleted) => "iam.permissions.delete",
            },
        }
    }
}

/// An object as it was before or after a change. Credentials never include a secret or
/// its hash: those live apart from the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Snapshot {
    /// An account.
    Account(Account),
    /// A user.
    User(User),
    /// A member: the user and its membership in the event's account.
    Member(User, Membership),
    /// A bot user.
    Bot(BotUser),
    /// A credential (boxed: it is by far the largest variant; serialized the same).
    Credential(Box<Credential>),
    /// An IP policy.
    IpPolicy(IpPolicy),
    /// An IP policy rule.
    IpRule(IpPolicyRule),
    /// An IP restriction.
    IpRestriction(IpRestriction),
    /// Requests a warn-only restriction would have refused: from where, how many, when.
    IpWarning {
        /// The source address.
        ip: String,
        /// How many requests since the last record.
        count: u64,
        /// The first and last of them.
        first: Timestamp,
        /// The last of them.
        last: Timestamp,
    },
    /// A tenant.
    Tenant(Tenant),
    /// A custom role.
    Role(CustomRole),
    /// A role assignment.
    RoleAssignment(RoleAssignment),
    /// A permission added to the catalog.
    Permission(AddedPermission),
    /// An invitation, without its token.
    Invitation {
        /// `inv_…`
        id: String,
        /// Who it invites.
        email: String,
        /// The account roles it grants.
        roles: Roles,
    },
    /// A login attempt: from where, and why it was refused (`None`: it succeeded).
    Login {
        /// The source address.
        ip: Option<String>,
        /// Why it was refused.
        refused: Option<String>,
    },
    /// An event destination (its signing secret is never part of it).
    EventDestination(EventDestination),
    /// The live policy set (the appliance trail).
    PolicySet(PolicySetState),
    /// A sign-in: from where, how, through which identity provider, and why it was
    /// refused (`None`: it succeeded). (`Login` is kept for the events made before.)
    SignIn {
        /// The source address.
        ip: Option<String>,
        /// `password`, `passkey` or `sso`.
        method: String,
        /// The identity provider of an SSO sign-in.
        provider: Option<IdentityProviderId>,
        /// Why it was refused.
        refused: Option<String>,
    },
    /// An identity provider (its client secret is never part of it).
    IdentityProvider(IdentityProvider),
    /// An external identity.
    ExternalIdentity(ExternalIdentity),
    /// A SCIM token, without its hash.
    ScimToken {
        /// `scimtok_…`
        id: String,
        /// What it is for.
        description: String,
    },
    /// What SCIM keeps about a member.
    ScimUser(ScimProfile),
    /// A SCIM group.
    ScimGroup(ScimGroup),
    /// What a SCIM group is mapped to.
    ScimGroupMapping(ScimGroupMapping),
}

/// The live policy set as the appliance trail records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySetState {
    /// Which load of the running server's set (from 1; 0 when a reload was refused
    /// before any set was made of the folder).
    pub generation: u64,
    /// Its modules, in evaluation order.
    pub policies: Vec<PolicyDigest>,
    /// Why the folder was refused (a refused reload's after), else `None`.
    pub refused: Option<String>,
}

/// One module of a recorded set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDigest {
    /// The policy's name.
    pub name: String,
    /// `builtin` or `custom`.
    pub kind: String,
    /// SHA-256 of the module, hex.
    pub sha256: String,
}

/// One audit event, exactly as it is hashed and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `ev_…`
    pub id: EventId,
    /// The account whose chain it belongs to.
    pub account: AccountId,
    /// Position in the account's chain, from 0.
    pub seq: u64,
    /// When it happened.
    pub at: Timestamp,
    /// Who did it, with which credential.
    pub actor: Actor,
    /// What was done.
    pub action: Action,
    /// The id of the object acted on.
    pub target: String,
    /// The object before (absent for a creation).
    pub before: Option<Snapshot>,
    /// The object after (absent for a deletion).
    pub after: Option<Snapshot>,
    /// SHA-256 of the previous event's stored bytes (zero for the first).
    pub prev: [u8; 32],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_follow_the_api() {
        assert_eq!(Action::MemberDisabled.name(), "iam.users.disable");
        assert_eq!(
            Action::CredentialCreated(CredentialKind::ApiKey).name(),
            "iam.api_keys.create"
        );
        assert_eq!(
            Action::CredentialRotated(CredentialKind::Authtoken).name(),
            "iam.credentials.rotate"
        );
    }
}
