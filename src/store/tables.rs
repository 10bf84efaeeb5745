//! Every redb table of the file, declared in one place. Keys are `u128` id values (or
//! tuples of them) so ranges follow creation order; values are versioned postcard records
//! (see `codec`) unless noted.

use redb::TableDefinition;

/// `"schema_version"` → the schema the file is at.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// account id → `Account`.
pub(crate) const ACCOUNTS: TableDefinition<u128, &[u8]> = TableDefinition::new("accounts");
/// lower-cased account name → account id (names are unique).
pub(crate) const ACCOUNT_NAMES: TableDefinition<&str, u128> = TableDefinition::new("account_names");

/// user id → `User`.
pub(crate) const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
/// lower-cased email → user id (emails are unique, case-insensitively).
pub(crate) const USER_EMAILS: TableDefinition<&str, u128> = TableDefinition::new("user_emails");

/// (account, user) → `Membership`: the account → members index is its key prefix.
pub(crate) const MEMBERS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("members");
/// (user, account) → (): the accounts a user belongs to.
pub(crate) const USER_ACCOUNTS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("user_accounts");

/// bot id → `BotUser`.
pub(crate) const BOTS: TableDefinition<u128, &[u8]> = TableDefinition::new("bots");
/// (account, bot) → (): the bots of an account.
pub(crate) const ACCOUNT_BOTS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_bots");

/// credential id → `Credential` (live credentials only).
pub(crate) const CREDENTIALS: TableDefinition<u128, &[u8]> = TableDefinition::new("credentials");
/// credential id → HMAC-SHA-256 of the token secret (authtokens and API keys).
pub(crate) const CREDENTIAL_SECRETS: TableDefinition<u128, &[u8; 32]> =
    TableDefinition::new("credential_secrets");
/// (account, owner, credential) → (): what an owner holds in an account.
pub(crate) const OWNER_CREDENTIALS: TableDefinition<(u128, u128, u128), ()> =
    TableDefinition::new("owner_credentials");
/// SHA-256 fingerprint → SSH credential id (unique across the appliance).
pub(crate) const SSH_FINGERPRINTS: TableDefinition<&[u8; 32], u128> =
    TableDefinition::new("ssh_fingerprints");
/// credential id → `RevokedCredential` tombstone, so verification can say why.
pub(crate) const REVOKED: TableDefinition<u128, &[u8]> =
    TableDefinition::new("revoked_credentials");
/// credential id → last use (ms), written in coalesced batches, never per lookup.
pub(crate) const LAST_USED: TableDefinition<u128, i64> =
    TableDefinition::new("credential_last_used");

/// (account, seq) → `Event` bytes: each account's hash chain, in order.
pub(crate) const EVENTS: TableDefinition<(u128, u64), &[u8]> = TableDefinition::new("events");
/// account id → `AuditHead`: the next sequence number and the hash of the last event.
pub(crate) const AUDIT_HEADS: TableDefinition<u128, &[u8]> = TableDefinition::new("audit_heads");

/// IP policy id → `IpPolicy`.
pub(crate) const IP_POLICIES: TableDefinition<u128, &[u8]> = TableDefinition::new("ip_policies");
/// (account, policy) → ().
pub(crate) const ACCOUNT_IP_POLICIES: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_ip_policies");
/// IP rule id → `IpPolicyRule`.
pub(crate) const IP_RULES: TableDefinition<u128, &[u8]> = TableDefinition::new("ip_rules");
/// (account, rule) → ().
pub(crate) const ACCOUNT_IP_RULES: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_ip_rules");
/// IP restriction id → `IpRestriction`.
pub(crate) const IP_RESTRICTIONS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("ip_restrictions");
/// (account, restriction) → ().
pub(crate) const ACCOUNT_IP_RESTRICTIONS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_ip_restrictions");

/// Tenant id → `Tenant`.
pub(crate) const TENANTS: TableDefinition<u128, &[u8]> = TableDefinition::new("tenants");
/// (account, tenant) → ().
pub(crate) const ACCOUNT_TENANTS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_tenants");
/// Role id → `CustomRole` (built-in roles are not stored).
pub(crate) const ROLES: TableDefinition<u128, &[u8]> = TableDefinition::new("roles");
/// (account, role) → ().
pub(crate) const ACCOUNT_ROLES: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_roles");
/// Role assignment id → `RoleAssignment`.
pub(crate) const ROLE_ASSIGNMENTS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("role_assignments");
/// (account, role assignment) → ().
pub(crate) const ACCOUNT_ROLE_ASSIGNMENTS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_role_assignments");
/// Added permission key → `AddedPermission`.
pub(crate) const PERMISSIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("permissions");
/// (account, added permission key) → ().
pub(crate) const ACCOUNT_PERMISSIONS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_permissions");

/// User id → its password's PHC string (argon2id). Kept apart from the user record, so no
/// event snapshot or user view can carry it.
pub(crate) const PASSWORDS: TableDefinition<u128, &str> = TableDefinition::new("passwords");
/// Keyed hash of a session's secret → `Session`.
pub(crate) const SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("sessions");
/// (user, session id) → the session's key in `SESSIONS`, to end a user's sessions at once.
pub(crate) const USER_SESSIONS: TableDefinition<(u128, u128), &[u8; 32]> =
    TableDefinition::new("user_sessions");
/// User id → `TotpRecord` (the seed sealed under a key derived from the server key).
pub(crate) const TOTP: TableDefinition<u128, &[u8]> = TableDefinition::new("totp");
/// Keyed hash of a one-time link's secret → `UserLink` (password resets and email proofs;
/// the table keeps the name it had when it held only resets).
pub(crate) const PASSWORD_RESETS: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("password_resets");
/// Invitation id → `Invitation`.
pub(crate) const INVITATIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("invitations");
/// (account, invitation) → ().
pub(crate) const ACCOUNT_INVITATIONS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_invitations");

/// User id → `EmailProof`: the address the user has proven it controls.
pub(crate) const EMAIL_PROOFS: TableDefinition<u128, &[u8]> = TableDefinition::new("email_proofs");

/// Event id → (account, seq): an event by its id, and where a page before it ends.
pub(crate) const EVENT_IDS: TableDefinition<u128, (u128, u64)> = TableDefinition::new("event_ids");
/// (account, principal, seq) → (): an account's events by who did them (the system
/// principal is 0).
pub(crate) const EVENTS_BY_PRINCIPAL: TableDefinition<(u128, u128, u64), ()> =
    TableDefinition::new("events_by_principal");
/// (account, action name, seq) → ().
pub(crate) const EVENTS_BY_ACTION: TableDefinition<(u128, &str, u64), ()> =
    TableDefinition::new("events_by_action");
/// (account, object id, seq) → ().
pub(crate) const EVENTS_BY_OBJECT: TableDefinition<(u128, &str, u64), ()> =
    TableDefinition::new("events_by_object");
/// (account, time in ms, seq) → (): where a time range starts and ends in the chain.
pub(crate) const EVENTS_BY_TIME: TableDefinition<(u128, i64, u64), ()> =
    TableDefinition::new("events_by_time");
/// (account, credential kind, credential) → (): an account's credentials of one kind.
pub(crate) const ACCOUNT_CREDENTIALS: TableDefinition<(u128, u8, u128), ()> =
    TableDefinition::new("account_credentials");
/// (account, principal, role assignment) → (): a principal's assignments in an account.
pub(crate) const PRINCIPAL_ROLE_ASSIGNMENTS: TableDefinition<(u128, u128, u128), ()> =
    TableDefinition::new("principal_role_assignments");
/// A rate limiter's key (`logins/key/<email>`, `logins/ip/<address>`, `links/…`) →
/// `RecentAttempts`: lockouts survive a restart. Written in coalesced batches.
pub(crate) const RECENT_ATTEMPTS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("recent_attempts");
/// account id → `AuditCheckpoint`: where the retained chain starts after a prune.
pub(crate) const AUDIT_CHECKPOINTS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("audit_checkpoints");
/// Event destination id → `EventDestination`.
pub(crate) const DESTINATIONS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("event_destinations");
/// (account, event destination) → ().
pub(crate) const ACCOUNT_DESTINATIONS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_event_destinations");
/// Event destination id → its signing secret, sealed under the server key. Kept apart
/// from the record, so no event snapshot or view can carry it.
pub(crate) const DESTINATION_SECRETS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("event_destination_secrets");
/// Event destination id → `DeliveryStatus`: the durable cursor and the last attempt.
pub(crate) const DELIVERY_STATUS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("delivery_status");
/// Passkey id → `PasskeyRecord`.
pub(crate) const PASSKEYS: TableDefinition<u128, &[u8]> = TableDefinition::new("passkeys");
/// (user, passkey) → (): a user's passkeys.
pub(crate) const USER_PASSKEYS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("user_passkeys");
/// Identity provider id → `IdentityProvider`.
pub(crate) const IDENTITY_PROVIDERS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("identity_providers");
/// (account, identity provider) → ().
pub(crate) const ACCOUNT_IDENTITY_PROVIDERS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_identity_providers");
/// Identity provider id → its client secret, sealed under the server key. Kept apart
/// from the record, so no event snapshot or view can carry it.
pub(crate) const IDENTITY_PROVIDER_SECRETS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("identity_provider_secrets");
/// External identity id → `ExternalIdentity`.
pub(crate) const EXTERNAL_IDENTITIES: TableDefinition<u128, &[u8]> =
    TableDefinition::new("external_identities");
/// (identity provider, subject) → external identity id: one user per subject.
pub(crate) const EXTERNAL_SUBJECTS: TableDefinition<(u128, &str), u128> =
    TableDefinition::new("external_subjects");
/// (user, external identity) → (): a user's linked identities.
pub(crate) const USER_EXTERNAL_IDENTITIES: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("user_external_identities");
/// (identity provider, SAML assertion ID) → when it expires (ms): a used assertion is
/// refused until then (a replay).
pub(crate) const SAML_ASSERTIONS: TableDefinition<(u128, &str), i64> =
    TableDefinition::new("saml_assertions");
/// SCIM token id → `ScimToken` (its secret's keyed hash only).
pub(crate) const SCIM_TOKENS: TableDefinition<u128, &[u8]> = TableDefinition::new("scim_tokens");
/// (account, SCIM token) → ().
pub(crate) const ACCOUNT_SCIM_TOKENS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_scim_tokens");
/// (account, user) → `ScimProfile`: what SCIM keeps about a member.
pub(crate) const SCIM_PROFILES: TableDefinition<(u128, u128), &[u8]> =
    TableDefinition::new("scim_profiles");
/// (account, `userName` without case) → user: one member per `userName`.
pub(crate) const SCIM_USER_NAMES: TableDefinition<(u128, &str), u128> =
    TableDefinition::new("scim_user_names");
/// SCIM group id → `ScimGroup` (its members inside).
pub(crate) const SCIM_GROUPS: TableDefinition<u128, &[u8]> = TableDefinition::new("scim_groups");
/// (account, SCIM group) → ().
pub(crate) const ACCOUNT_SCIM_GROUPS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_scim_groups");
/// (account, user, SCIM group) → (): a member's groups.
pub(crate) const USER_SCIM_GROUPS: TableDefinition<(u128, u128, u128), ()> =
    TableDefinition::new("user_scim_groups");
/// SCIM group mapping id → `ScimGroupMapping`.
pub(crate) const SCIM_GROUP_MAPPINGS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("scim_group_mappings");
/// (account, SCIM group mapping) → ().
pub(crate) const ACCOUNT_SCIM_GROUP_MAPPINGS: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("account_scim_group_mappings");
/// SCIM group → its mapping's id: one mapping per group.
pub(crate) const SCIM_GROUP_MAPPED: TableDefinition<u128, u128> =
    TableDefinition::new("scim_group_mapped");
/// (account, user) → `MemberGrants`: a member's roles by source, for a member holding
/// any role through a SCIM group or an identity provider (others hold theirs directly).
pub(crate) const MEMBER_GRANTS: TableDefinition<(u128, u128), &[u8]> =
    TableDefinition::new("member_grants");
/// Role assignment id → `AssignmentSources`, for an assignment a SCIM group or an
/// identity provider granted (others were made directly).
pub(crate) const ASSIGNMENT_SOURCES: TableDefinition<u128, &[u8]> =
    TableDefinition::new("assignment_sources");
/// SHA-256 of a WebAuthn credential id → passkey id (credential ids are unique).
pub(crate) const PASSKEY_CREDENTIALS: TableDefinition<&[u8; 32], u128> =
    TableDefinition::new("passkey_credentials");
