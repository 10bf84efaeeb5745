//! Single sign-on: an account's identity providers (administrators only, decided by
//! account-rbac as account settings, every change an event; the client secret sealed at
//! rest apart from the record), and what a verified external login does: who it signs in
//! (the linked identity, never an email's say-so), whom it makes (Just-in-Time, or an
//! invited person), and what it refuses, each outcome an event with the provider and the
//! reason. The protocols (OIDC, GitHub, SAML) are the surface's: they hand this module an
//! [`ExternalLogin`] only once its signature, audience, nonce and the rest are checked.

use std::net::IpAddr;

use zeroize::Zeroizing;

use super::login::{Factor, LoginStep, Method};
use super::mfa::Sealed;
use super::resource::{Resource, created, deleted, updated};
use super::{AppError, Latchkey, Me, Target, record, require_account};
use crate::domain::DomainError;
use crate::domain::account::{Provisioning, SsoMode};
use crate::domain::event::{Action, Actor, Change, Principal, Snapshot};
use crate::domain::federation::{self, ExternalIdentity, IdentityProvider, Protocol, RoleMapping};
use crate::domain::grant::{GrantSource, Granted};
use crate::domain::id::{AccountId, ExternalIdentityId, IdentityProviderId, UserId};
use crate::domain::invitation::InvitationState;
use crate::domain::time::Timestamp;
use crate::domain::token::Secret;
use crate::domain::user::{DeveloperRole, Email, MemberState, Roles, TeamRole};
use crate::store::{Reads, StoreError, WriteTx};

/// A new identity provider.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    /// Shown on the sign-in page.
    pub name: String,
    /// Signs people in from the start.
    pub enabled: bool,
    /// Email domains for discovery.
    pub domains: Vec<String>,
    /// The protocol and its settings.
    pub protocol: Protocol,
    /// What counts as a second factor.
    pub mfa_values: Vec<String>,
    /// Group values mapped to roles.
    pub role_mapping: Vec<RoleMapping>,
    /// The client secret (OIDC, GitHub), write-only.
    pub client_secret: Option<Secret>,
}

/// A change to an identity provider; `None` keeps the field.
#[derive(Debug, Clone, Default)]
pub struct ProviderPatch {
    /// New name.
    pub name: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New domains.
    pub domains: Option<Vec<String>>,
    /// New protocol settings (of the same type).
    pub protocol: Option<Protocol>,
    /// New MFA values.
    pub mfa_values: Option<Vec<String>>,
    /// New role mapping.
    pub role_mapping: Option<Vec<RoleMapping>>,
    /// A new client secret.
    pub client_secret: Option<Secret>,
}

/// What a provider said about a person, once the protocol checked it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ExternalLogin {
    /// Its subject: OIDC `sub`, GitHub's numeric user id, SAML `NameID`.
    pub subject: String,
    /// The email it gives, if any.
    pub email: Option<String>,
    /// The provider vouches for that email.
    pub email_verified: bool,
    /// The display name it gives.
    pub name: Option<String>,
    /// Group values (for role mapping).
    pub groups: Vec<String>,
    /// How the person authenticated there (OIDC `amr`, SAML `AuthnContextClassRef`).
    pub methods: Vec<String>,
}

/// A provider as its protocol needs it: its settings and its client secret.
#[derive(Debug)]
pub struct SsoProvider {
    /// The provider.
    pub provider: IdentityProvider,
    /// Its client secret, opened.
    pub client_secret: Option<Zeroizing<String>>,
}

/// The roles of a member made Just-in-Time (seed 001).
pub const JIT_ROLES: Roles = Roles {
    developer: DeveloperRole::ReadWrite,
    team: TeamRole::Invite,
    billing: crate::domain::user::BillingRole::None,
    admin: false,
};

impl Resource for IdentityProvider {
    type Id = IdentityProviderId;

    fn action(change: Change) -> Action {
        Action::IdentityProvider(change)
    }
    fn id(&self) -> IdentityProviderId {
        self.id
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot::IdentityProvider(self.clone())
    }
    fn stored(tx: &impl Reads, id: IdentityProviderId) -> Result<Option<Self>, StoreError> {
        tx.identity_provider(id)
    }
    fn account(&self) -> AccountId {
        self.account
    }
    fn put(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.put_identity_provider(self)
    }
    fn remove(&self, tx: &mut WriteTx) -> Result<(), StoreError> {
        tx.remove_identity_provider(self)
    }
}

fn target(verb: &str, id: String) -> Target {
    Target::new("identity_providers", verb, "identity_provider", id)
}

/// Check a protocol's settings; the private-address rule applies to the URLs latchkey
/// itself will fetch (OIDC discovery, GitHub's token and API endpoints).
fn validate_protocol(protocol: &mut Protocol, allow_private: bool) -> Result<(), AppError> {
    let fetched: (&'static str, String) = match protocol {
        Protocol::Oidc(oidc) => {
            oidc.issuer = federation::validate_url("issuer", &oidc.issuer)?;
            oidc.client_id = federation::validate_token("client_id", &oidc.client_id)?;
            oidc.scopes = federation::validate_tokens("scopes", &oidc.scopes)?;
            oidc.scopes.retain(|s| s != "openid");
            oidc.claims.email = federation::validate_token("claims.email", &oidc.claims.email)?;
            oidc.claims.name = federation::validate_token("claims.name", &oidc.claims.name)?;
            oidc.claims.groups = federation::validate_token("claims.groups", &oidc.claims.groups)?;
            super::destinations::roots_from_pem("trusted_ca_pem", oidc.trusted_ca_pem.as_deref())?;
            ("issuer", oidc.issuer.clone())
        }
        Protocol::Github(github) => {
            github.client_id = federation::validate_token("client_id", &github.client_id)?;
            github.web_url = federation::validate_url("web_url", &github.web_url)?;
            github.api_url = federation::validate_url("api_url", &github.api_url)?;
            super::destinations::roots_from_pem(
                "trusted_ca_pem",
                github.trusted_ca_pem.as_deref(),
            )?;
            if !allow_private {
                crate::domain::destination::refuse_private_url("api_url", &github.api_url)?;
            }
            ("web_url", github.web_url.clone())
        }
        Protocol::Saml(saml) => {
            // Nothing is fetched from a SAML provider: the browser carries both ways.
            saml.idp_entity_id = saml.idp_entity_id.trim().to_owned();
            if saml.idp_entity_id.is_empty() || saml.idp_entity_id.len() > 1024 {
                return Err(
                    DomainError::invalid("idp_entity_id", "must be 1 to 1024 bytes").into(),
                );
            }
            saml.sso_url = federation::validate_url("sso_url", &saml.sso_url)?;
            if saml.certificates.is_empty() || saml.certificates.len() > 10 {
                return Err(DomainError::invalid(
                    "certificates",
                    "give 1 to 10 PEM signing certificates of the provider",
                )
                .into());
            }
            for pem in &saml.certificates {
                bergshamra_keys::loader::load_x509_cert_pem(pem.as_bytes()).map_err(|e| {
                    DomainError::invalid(
                        "certificates",
                        format!("each must be one PEM certificate that loads ({e})"),
                    )
                })?;
            }
            saml.attributes.email =
                federation::validate_token("attributes.email", &saml.attributes.email)?;
            saml.attributes.name =
                federation::validate_token("attributes.name", &saml.attributes.name)?;
            saml.attributes.groups =
                federation::validate_token("attributes.groups", &saml.attributes.groups)?;
            return Ok(());
        }
    };
    if !allow_private {
        crate::domain::destination::refuse_private_url(fetched.0, &fetched.1)?;
    }
    Ok(())
}

/// Check a provider's settings; `has_secret`: a client secret is given or kept.
fn validate_spec(
    spec: &mut ProviderSpec,
    has_secret: bool,
    allow_private: bool,
) -> Result<(), AppError> {
    spec.name = federation::validate_name(&spec.name)?;
    spec.domains = federation::validate_domains(&spec.domains)?;
    spec.mfa_values = federation::validate_tokens("mfa_values", &spec.mfa_values)?;
    federation::validate_role_mapping(&spec.role_mapping)?;
    validate_protocol(&mut spec.protocol, allow_private)?;
    if matches!(spec.protocol, Protocol::Github(_)) && !has_secret {
        return Err(DomainError::invalid("client_secret", "is required for github").into());
    }
    Ok(())
}

/// The role mapping's roles and tenants must be this account's.
fn check_mapping(
    tx: &impl Reads,
    account: AccountId,
    mapping: &[RoleMapping],
) -> Result<(), AppError> {
    for entry in mapping {
        for (role, tenant) in &entry.role_assignments {
            super::tenancy::check_assignable(tx, account, *role, *tenant)?;
        }
    }
    Ok(())
}

/// The provider's role mapping for a sign-in whose groups are `login.groups`, in `tx`:
/// what the provider grants the member becomes the highest account roles and every tenant
/// role assignment of the mappings that match, in place of what it granted at the last
/// sign-in (the member's roles are the union of that with what is set directly and what
/// its SCIM groups grant). The account's last administrator is never demoted this way;
/// an assignment whose role or tenant is gone is skipped. Each change is an event of the
/// system principal.
fn apply_role_mapping(
    tx: &mut WriteTx,
    provider: &IdentityProvider,
    login: &ExternalLogin,
    user: UserId,
    now: Timestamp,
) -> Result<(), AppError> {
    let account = provider.account;
    let active = tx
        .membership(account, user)?
        .is_some_and(|m| m.state == MemberState::Active);
    if !active {
        return Ok(());
    }
    let matching: Vec<&RoleMapping> = provider
        .role_mapping
        .iter()
        .filter(|m| login.groups.contains(&m.claim_value))
        .collect();
    let source = GrantSource::IdentityProvider(provider.id);
    let roles = federation::highest(matching.iter().filter_map(|m| m.roles));
    let mut wanted: Vec<Granted> = Vec::new();
    for granted in matching.iter().flat_map(|m| m.role_assignments.iter()) {
        if !wanted.contains(granted) {
            wanted.push(*granted);
        }
    }
    match super::grants::grant_roles(tx, Actor::SYSTEM, account, user, source, roles, now) {
        // The account keeps its last administrator, whatever the groups say.
        Ok(()) | Err(AppError::Domain(DomainError::LastAdministrator)) => {}
        Err(other) => return Err(other),
    }
    super::grants::grant_assignments(tx, Actor::SYSTEM, account, user, source, &wanted, now)
}

/// Record an SSO refusal in the provider's account.
fn sso_refusal(
    provider: &IdentityProvider,
    user: Option<UserId>,
    ip: Option<IpAddr>,
    reason: &str,
) -> (AccountId, Actor, Snapshot) {
    let actor = Actor {
        principal: user.map_or(Principal::System, Principal::User),
        credential: None,
    };
    let snapshot = Snapshot::SignIn {
        ip: ip.map(|ip| ip.to_string()),
        method: Method::Sso(provider.id).name().to_owned(),
        provider: Some(provider.id),
        refused: Some(reason.to_owned()),
    };
    (provider.account, actor, snapshot)
}

impl Latchkey {
    /// Whether `actor` may add identity providers to `account`: asked before the work
    /// of making one begins (fetching a SAML provider's metadata from its URL), so a
    /// member who may not never has the server fetch anything.
    pub fn may_create_identity_provider(
        &self,
        actor: Actor,
        account: AccountId,
    ) -> Result<(), AppError> {
        let tx = self.store.read()?;
        require_account(&tx, account)?;
        self.authorize(
            &tx,
            actor,
            account,
            target("create", "new".into()),
            self.now(),
        )
    }

    /// Create an identity provider.
    pub fn create_identity_provider(
        &self,
        actor: Actor,
        account: AccountId,
        mut spec: ProviderSpec,
    ) -> Result<IdentityProvider, AppError> {
        let now = self.now();
        let has_secret = spec.client_secret.is_some();
        validate_spec(&mut spec, has_secret, self.allow_private_destinations)?;
        let sealed = spec
            .client_secret
            .as_ref()
            .map(|secret| self.seal(Sealed::ProviderSecret, secret.expose().as_bytes()))
            .transpose()?;
        self.store.write(|tx| {
            require_account(tx, account)?;
            self.authorize(tx, actor, account, target("create", "new".into()), now)?;
            check_mapping(tx, account, &spec.role_mapping)?;
            let provider = IdentityProvider {
                id: IdentityProviderId::generate(now)?,
                account,
                name: spec.name.clone(),
                enabled: spec.enabled,
                domains: spec.domains.clone(),
                protocol: spec.protocol.clone(),
                mfa_values: spec.mfa_values.clone(),
                role_mapping: spec.role_mapping.clone(),
                created_at: now,
                last_login_at: None,
            };
            if let Some(sealed) = &sealed {
                tx.put_identity_provider_secret(provider.id, sealed)?;
            }
            created(tx, actor, now, provider)
        })
    }

    /// Change an identity provider. Its type cannot change (make another). Disabling the
    /// last usable provider of an account that enforces SSO is refused.
    pub fn update_identity_provider(
        &self,
        actor: Actor,
        account: AccountId,
        id: IdentityProviderId,
        patch: ProviderPatch,
    ) -> Result<IdentityProvider, AppError> {
        let now = self.now();
        let sealed = patch
            .client_secret
            .as_ref()
            .map(|secret| self.seal(Sealed::ProviderSecret, secret.expose().as_bytes()))
            .transpose()?;
        self.store.write(|tx| {
            let before = IdentityProvider::find(tx, account, id)?;
            self.authorize(tx, actor, account, target("update", id.to_string()), now)?;
            let mut spec = ProviderSpec {
                name: patch.name.clone().unwrap_or_else(|| before.name.clone()),
                enabled: patch.enabled.unwrap_or(before.enabled),
                domains: patch
                    .domains
                    .clone()
                    .unwrap_or_else(|| before.domains.clone()),
                protocol: patch
                    .protocol
                    .clone()
                    .unwrap_or_else(|| before.protocol.clone()),
                mfa_values: patch
                    .mfa_values
                    .clone()
                    .unwrap_or_else(|| before.mfa_values.clone()),
                role_mapping: patch
                    .role_mapping
                    .clone()
                    .unwrap_or_else(|| before.role_mapping.clone()),
                client_secret: None,
            };
            if spec.protocol.kind() != before.protocol.kind() {
                return Err(DomainError::invalid(
                    "type",
                    format!(
                        "is {}: a provider's type does not change (make another provider)",
                        before.protocol.kind()
                    ),
                )
                .into());
            }
            let has_secret = sealed.is_some() || tx.identity_provider_secret(id)?.is_some();
            validate_spec(&mut spec, has_secret, self.allow_private_destinations)?;
            check_mapping(tx, account, &spec.role_mapping)?;
            let after = IdentityProvider {
                name: spec.name,
                enabled: spec.enabled,
                domains: spec.domains,
                protocol: spec.protocol,
                mfa_values: spec.mfa_values,
                role_mapping: spec.role_mapping,
                ..before.clone()
            };
            if before.enabled && !after.enabled {
                self.keep_enforceable(tx, account, Some(id))?;
            }
            if let Some(sealed) = &sealed {
                tx.put_identity_provider_secret(id, sealed)?;
            }
            let changed = after != before || sealed.is_some();
            if changed && after == before {
                // Only the secret changed: still a change of the provider, recorded.
                super::record(
                    tx,
                    &account,
                    now,
                    actor,
                    Action::IdentityProvider(Change::Updated),
                    id.to_string(),
                    Some(before.snapshot()),
                    Some(after.snapshot()),
                )?;
                return Ok(after);
            }
            updated(tx, actor, now, &before, after)
        })
    }

    /// Delete an identity provider and every identity linked through it. Deleting the last
    /// usable provider of an account that enforces SSO is refused.
    pub fn delete_identity_provider(
        &self,
        actor: Actor,
        account: AccountId,
        id: IdentityProviderId,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let gone = IdentityProvider::find(tx, account, id)?;
            self.authorize(tx, actor, account, target("delete", id.to_string()), now)?;
            self.keep_enforceable(tx, account, Some(id))?;
            deleted(tx, actor, now, &gone)
        })
    }

    /// An identity provider of the account.
    pub fn identity_provider(
        &self,
        actor: Actor,
        account: AccountId,
        id: IdentityProviderId,
    ) -> Result<IdentityProvider, AppError> {
        let read = self.store.read()?;
        let found = IdentityProvider::find(&read, account, id)?;
        self.authorize(
            &read,
            actor,
            account,
            target("get", id.to_string()),
            self.now(),
        )?;
        Ok(found)
    }

    /// Whether provider `id` has a client secret (the secret itself is never shown).
    pub fn provider_secret_set(&self, id: IdentityProviderId) -> Result<bool, AppError> {
        Ok(self.store.read()?.identity_provider_secret(id)?.is_some())
    }

    /// The account's identity providers, oldest first.
    pub fn identity_providers(
        &self,
        actor: Actor,
        account: AccountId,
    ) -> Result<Vec<IdentityProvider>, AppError> {
        let read = self.store.read()?;
        self.authorize(
            &read,
            actor,
            account,
            target("list", account.to_string()),
            self.now(),
        )?;
        Ok(read.identity_providers(account)?)
    }

    /// An account that enforces SSO keeps an enabled provider that has completed a login
    /// (besides `except`, which is being disabled or deleted).
    pub(super) fn keep_enforceable(
        &self,
        tx: &impl Reads,
        account: AccountId,
        except: Option<IdentityProviderId>,
    ) -> Result<(), AppError> {
        let found = require_account(tx, account)?;
        if found.settings.sso_mode != SsoMode::Enforced {
            return Ok(());
        }
        let usable = tx
            .identity_providers(account)?
            .iter()
            .any(|p| p.enabled && p.last_login_at.is_some() && Some(p.id) != except);
        if usable {
            Ok(())
        } else {
            Err(AppError::WouldLockOut(
                "the account enforces single sign-on and this is its last enabled identity provider that has completed a login: set sso_mode to mixed first".into(),
            ))
        }
    }

    /// The enabled providers, of any account, that `GET /sso/discover` offers for
    /// `email` (by its domain only), with their account's name.
    pub fn discover_providers(
        &self,
        email: &str,
    ) -> Result<Vec<(String, IdentityProvider)>, AppError> {
        let read = self.store.read()?;
        let mut found = Vec::new();
        for provider in read.all_identity_providers()? {
            if !provider.serves_domain(email) {
                continue;
            }
            if let Some(account) = read.account(provider.account)?
                && account.settings.sso_mode != SsoMode::Off
            {
                found.push((account.name, provider));
            }
        }
        Ok(found)
    }

    /// The enabled providers of the account named `account` whose sign-in is on, for its
    /// sign-in page.
    pub fn sign_in_providers(&self) -> Result<Vec<(String, IdentityProvider)>, AppError> {
        let read = self.store.read()?;
        let mut found = Vec::new();
        for provider in read.all_identity_providers()? {
            if !provider.enabled {
                continue;
            }
            if let Some(account) = read.account(provider.account)?
                && account.settings.sso_mode != SsoMode::Off
            {
                found.push((account.name, provider));
            }
        }
        Ok(found)
    }

    /// The providers members of `account` can sign in or connect through: its enabled
    /// ones, while its SSO is on.
    pub fn account_providers(&self, account: AccountId) -> Result<Vec<IdentityProvider>, AppError> {
        let read = self.store.read()?;
        let on = require_account(&read, account)?.settings.sso_mode != SsoMode::Off;
        let mut found = read.identity_providers(account)?;
        found.retain(|p| on && p.enabled);
        Ok(found)
    }

    /// Provider `id`, whatever its state, for its public SAML service-provider metadata
    /// (which holds only latchkey's entity id and ACS URL for it).
    pub fn provider_for_metadata(
        &self,
        id: IdentityProviderId,
    ) -> Result<IdentityProvider, AppError> {
        self.store
            .read()?
            .identity_provider(id)?
            .ok_or_else(|| DomainError::NotFound(id.into()).into())
    }

    /// Provider `id` for a sign-in through it: enabled, of an account whose SSO is on,
    /// with its client secret opened.
    pub fn sso_provider(&self, id: IdentityProviderId) -> Result<SsoProvider, AppError> {
        let read = self.store.read()?;
        let unknown = || DomainError::NotFound(id.into());
        let provider = read
            .identity_provider(id)?
            .filter(|p| p.enabled)
            .ok_or_else(unknown)?;
        let account = require_account(&read, provider.account)?;
        if account.settings.sso_mode == SsoMode::Off {
            return Err(DomainError::NotApplicable(
                "single sign-on is off for this provider's account",
            )
            .into());
        }
        let client_secret = read
            .identity_provider_secret(id)?
            .map(|sealed| {
                let opened = self.unseal(Sealed::ProviderSecret, &sealed)?;
                String::from_utf8(opened.to_vec())
                    .map(Zeroizing::new)
                    .map_err(|_| AppError::DataDir(format!("{id}'s client secret is not text")))
            })
            .transpose()?;
        Ok(SsoProvider {
            provider,
            client_secret,
        })
    }

    /// A sign-in through provider `id`, which vouched for `login`: the user its
    /// identity is linked to, or (first time) an invited person or, with Just-in-Time
    /// provisioning, a new person; never an existing user by email alone. The rest is a
    /// login's (membership, IP restriction, second factor unless the provider asserted
    /// one, session). Refusals are events in the provider's account.
    pub fn sso_sign_in(
        &self,
        id: IdentityProviderId,
        login: &ExternalLogin,
        ip: Option<IpAddr>,
    ) -> Result<LoginStep, AppError> {
        let now = self.now();
        let provider = self.sso_provider(id)?.provider;
        tracing::debug!(provider = %id, subject = %login.subject, methods = ?login.methods, "sign-in through an identity provider");
        let outcome = self
            .store
            .write(|tx| self.admit_external(tx, &provider, login, now));
        let user = match outcome {
            Ok(user) => user,
            Err(Refused {
                user,
                reason,
                error,
            }) => {
                let (account, actor, snapshot) = sso_refusal(&provider, user, ip, &reason);
                self.store.write(|tx| {
                    record(
                        tx,
                        &account,
                        now,
                        actor,
                        Action::LoginFailed,
                        provider.id.to_string(),
                        None,
                        Some(snapshot),
                    )
                })?;
                return Err(*error);
            }
        };
        let user = self
            .store
            .read()?
            .user(user)?
            .ok_or_else(|| DomainError::NotFound(user.into()))?;
        // Counted apart from the email's password failures: someone failing passwords
        // for this email must not lock its owner out of its provider (the provider
        // authenticated it); a second factor asked next counts here.
        let key = format!("sso/{id}/{}", login.subject);
        let attempt = self.logins.admit(&key, ip, now)?;
        let mfa = login
            .methods
            .iter()
            .any(|m| provider.mfa_values.contains(m));
        let factor = if mfa { Factor::Passed } else { Factor::Missing };
        self.login_with(
            &user,
            attempt,
            factor,
            Some(provider.account),
            ip,
            &key,
            Method::Sso(provider.id),
        )
    }

    /// Who a provider's login is, in `tx`: the linked user (its last login noted), or a
    /// person it makes or admits now; else a refusal to record.
    fn admit_external(
        &self,
        tx: &mut WriteTx,
        provider: &IdentityProvider,
        login: &ExternalLogin,
        now: Timestamp,
    ) -> Result<UserId, Refused> {
        let refuse = |user: Option<UserId>, reason: String| Refused {
            user,
            error: Box::new(AppError::Forbidden {
                policy: String::new(),
                reason: reason.clone(),
            }),
            reason,
        };
        let system = Actor::SYSTEM;
        if let Some(mut identity) = tx
            .external_identity(provider.id, &login.subject)
            .map_err(Refused::store)?
        {
            identity.last_login_at = Some(now);
            tx.put_external_identity(&identity)
                .map_err(Refused::store)?;
            self.note_provider_login(tx, provider, now)?;
            apply_role_mapping(tx, provider, login, identity.user, now).map_err(Refused::app)?;
            return Ok(identity.user);
        }
        let Some(email) = login.email.as_deref() else {
            return Err(refuse(
                None,
                format!("{} gave no email for this person", provider.name),
            ));
        };
        let email = Email::parse(email).map_err(|_| {
            refuse(
                None,
                format!("{} gave {email:?}, which is not an email", provider.name),
            )
        })?;
        if let Some(existing) = tx.user_by_email(&email).map_err(Refused::store)? {
            // An IdP's word about an email never takes over an existing user. The trail
            // names the user only when it is a member here (another account's user ids
            // are not this account's to learn).
            let member = tx
                .membership(provider.account, existing.id)
                .map_err(Refused::store)?
                .is_some();
            return Err(refuse(
                member.then_some(existing.id),
                format!(
                    "{} already has a latchkey user: sign in with its password or passkey first, then connect {} from your profile",
                    email.as_str(),
                    provider.name
                ),
            ));
        }
        if !login.email_verified {
            return Err(refuse(
                None,
                format!("{} did not verify {}", provider.name, email.as_str()),
            ));
        }
        let account = require_account(tx, provider.account).map_err(Refused::app)?;
        let name = login
            .name
            .clone()
            .filter(|n| crate::domain::account::validate_display_name(n).is_ok())
            .unwrap_or_else(|| {
                email
                    .as_str()
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            });
        let pending = tx
            .invitations(provider.account)
            .map_err(Refused::store)?
            .into_iter()
            .find(|i| {
                i.email.key() == email.key()
                    && matches!(i.state, InvitationState::Pending)
                    && i.expires_at > now
            });
        let user = match (pending, account.settings.provisioning) {
            (Some(invitation), _) => self
                .accept_through_provider(tx, invitation, &name, now)
                .map_err(Refused::app)?,
            (None, Provisioning::Jit) => {
                self.join(tx, system, provider.account, &email, &name, JIT_ROLES, now)
                    .map_err(Refused::app)?
                    .member
                    .user
                    .id
            }
            (None, _) => {
                return Err(refuse(
                    None,
                    format!(
                        "{} is not a member of {} and has no invitation: ask an administrator to invite it",
                        email.as_str(),
                        account.name
                    ),
                ));
            }
        };
        let made = tx
            .user(user)
            .map_err(Refused::store)?
            .ok_or_else(|| Refused::app(DomainError::NotFound(user.into()).into()))?;
        super::identity::prove(tx, &made, Some(email.as_str()), system, now)
            .map_err(Refused::app)?;
        self.link(tx, provider, login, user, email.as_str(), now)
            .map_err(Refused::app)?;
        self.note_provider_login(tx, provider, now)?;
        apply_role_mapping(tx, provider, login, user, now).map_err(Refused::app)?;
        Ok(user)
    }

    /// Link `login`'s identity to `user`, in `tx`, and record it.
    fn link(
        &self,
        tx: &mut WriteTx,
        provider: &IdentityProvider,
        login: &ExternalLogin,
        user: UserId,
        email: &str,
        now: Timestamp,
    ) -> Result<ExternalIdentity, AppError> {
        let identity = ExternalIdentity {
            id: ExternalIdentityId::generate(now)?,
            account: provider.account,
            provider: provider.id,
            subject: login.subject.clone(),
            user,
            email: email.to_owned(),
            created_at: now,
            last_login_at: Some(now),
        };
        tx.put_external_identity(&identity)?;
        record(
            tx,
            &provider.account,
            now,
            Actor {
                principal: Principal::User(user),
                credential: None,
            },
            Action::ExternalIdentity(Change::Created),
            identity.id.to_string(),
            None,
            Some(Snapshot::ExternalIdentity(identity.clone())),
        )?;
        Ok(identity)
    }

    fn note_provider_login(
        &self,
        tx: &mut WriteTx,
        provider: &IdentityProvider,
        now: Timestamp,
    ) -> Result<(), Refused> {
        if provider.last_login_at.is_none() {
            // Its first completed login makes it usable for enforcement: worth an event.
            let after = IdentityProvider {
                last_login_at: Some(now),
                ..provider.clone()
            };
            updated(tx, Actor::SYSTEM, now, provider, after).map_err(Refused::app)?;
        } else {
            let after = IdentityProvider {
                last_login_at: Some(now),
                ..provider.clone()
            };
            tx.put_identity_provider(&after).map_err(Refused::store)?;
        }
        Ok(())
    }

    /// Connect provider `id`'s identity `login` to the signed-in user `me` (who proved
    /// itself with its own credentials): the provider must be of `me`'s account, and the
    /// identity not linked to anyone yet.
    pub fn link_external_identity(
        &self,
        me: Me,
        id: IdentityProviderId,
        login: &ExternalLogin,
    ) -> Result<ExternalIdentity, AppError> {
        let now = self.now();
        let provider = self.sso_provider(id)?.provider;
        if provider.account != me.account {
            return Err(DomainError::NotFound(id.into()).into());
        }
        self.store.write(|tx| {
            if let Some(held) = tx.external_identity(id, &login.subject)? {
                return Err(if held.user == me.user {
                    DomainError::Conflict {
                        what: "a link to this identity (it is yours already)",
                    }
                    .into()
                } else {
                    DomainError::Conflict {
                        what: "a link of this identity to another user",
                    }
                    .into()
                });
            }
            let email = login.email.clone().unwrap_or_default();
            let linked = self.link(tx, &provider, login, me.user, &email, now)?;
            self.note_provider_login(tx, &provider, now)
                .map_err(|refused| *refused.error)?;
            Ok(linked)
        })
    }

    /// The identities linked to `user`.
    pub fn external_identities_of(&self, user: UserId) -> Result<Vec<ExternalIdentity>, AppError> {
        Ok(self.store.read()?.user_external_identities(user)?)
    }

    /// Unlink one of the caller's identities.
    pub fn unlink_external_identity(&self, me: Me, id: ExternalIdentityId) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let identity = tx
                .user_external_identities(me.user)?
                .into_iter()
                .find(|i| i.id == id)
                .ok_or_else(|| DomainError::NotFound(id.into()))?;
            tx.remove_external_identity(&identity)?;
            record(
                tx,
                &identity.account,
                now,
                me.actor(),
                Action::ExternalIdentity(Change::Deleted),
                id.to_string(),
                Some(Snapshot::ExternalIdentity(identity.clone())),
                None,
            )
        })
    }
}

/// A refused external login: who it was (when known), why (for the trail), and the error.
#[derive(Debug)]
struct Refused {
    user: Option<UserId>,
    reason: String,
    error: Box<AppError>,
}

impl Refused {
    fn app(error: AppError) -> Refused {
        Refused {
            user: None,
            reason: error.to_string(),
            error: Box::new(error),
        }
    }

    fn store(error: StoreError) -> Refused {
        Refused::app(error.into())
    }
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Refused {
        Refused::store(error)
    }
}

/// How long a confirmation through a provider stands in for the password: five minutes.
const RECONFIRMED_MS: i64 = 5 * 60 * 1000;

/// Sessions whose member confirmed it is them through an identity provider (members
/// without a password confirm sensitive changes so), in memory.
#[derive(Debug, Default)]
pub(super) struct Reconfirmed(std::sync::Mutex<std::collections::HashMap<u128, i64>>);

/// How long a sign-in may stay at its provider: ten minutes.
const FLOW_MS: i64 = 10 * 60 * 1000;

/// What a single sign-on flow is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FlowPurpose {
    /// Sign in.
    SignIn,
    /// Connect the provider's identity to the signed-in user (its session id).
    Link(u128),
    /// Confirm it is the signed-in user (its session id) before a sensitive change.
    Reconfirm(u128),
}

/// The refusal of a flow that is not (or no longer) one of ours.
fn flow_expired() -> AppError {
    AppError::Unauthenticated(
        "this sign-in expired or was started in another browser: start again".into(),
    )
}

/// A single sign-on flow under way, kept sealed in its own short-lived cookie: it binds
/// the provider's answer to the browser that asked (the `state`), and holds what the
/// answer is checked against (the nonce, the PKCE verifier, the request id).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SsoFlow {
    /// The provider.
    pub provider: IdentityProviderId,
    /// OAuth `state` (or SAML `RelayState`).
    pub state: String,
    /// OIDC `nonce` (SAML: the AuthnRequest's ID).
    pub nonce: String,
    /// The PKCE verifier.
    pub pkce_verifier: String,
    /// The redirect URI (or ACS URL) the request named.
    pub redirect_uri: String,
    /// Where to go after (a path of this origin).
    pub return_to: String,
    /// What for.
    pub purpose: FlowPurpose,
    /// When it stops being accepted (ms).
    pub expires_ms: i64,
}

impl SsoFlow {
    /// A new flow for `provider`, good for ten minutes from `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        provider: IdentityProviderId,
        state: String,
        nonce: String,
        pkce_verifier: String,
        redirect_uri: String,
        return_to: String,
        purpose: FlowPurpose,
        now: Timestamp,
    ) -> SsoFlow {
        SsoFlow {
            provider,
            state,
            nonce,
            pkce_verifier,
            redirect_uri,
            return_to,
            purpose,
            expires_ms: now.as_millis() + FLOW_MS,
        }
    }
}

/// How long a verified answer may take from the provider's cross-site post to the
/// browser's same-origin one: two minutes.
const FINISH_MS: i64 = 2 * 60 * 1000;

/// A SAML answer to a connect or confirm flow, verified, on its way to the session it is
/// for. The answer arrives as a cross-site post, which the session cookie (`SameSite=Strict`)
/// does not follow; so the ACS hands the browser this, sealed, in a form that a page of
/// this origin posts back, with the session cookie, to `POST /sso/{id}/finish`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FinishedFlow {
    /// The provider.
    pub provider: IdentityProviderId,
    /// What for (a connect or a confirm, naming its session).
    pub purpose: FlowPurpose,
    /// Where to go after.
    pub return_to: String,
    /// What the provider said, verified.
    pub login: ExternalLogin,
    /// When it stops being accepted (ms).
    pub expires_ms: i64,
}

impl Latchkey {
    /// `flow`, sealed for its cookie (base64url).
    pub fn seal_flow(&self, flow: &SsoFlow) -> Result<String, AppError> {
        self.seal_text(Sealed::SsoFlow, flow)
    }

    /// The flow a cookie holds, if it is one of ours, for `provider`, and not expired.
    pub fn open_flow(&self, text: &str, provider: IdentityProviderId) -> Result<SsoFlow, AppError> {
        let flow: SsoFlow = self.open_text(Sealed::SsoFlow, text)?;
        if flow.provider != provider || flow.expires_ms <= self.now().as_millis() {
            return Err(flow_expired());
        }
        Ok(flow)
    }

    /// A verified answer to `flow` (a connect or a confirm), sealed for the form that
    /// carries it to `POST /sso/{id}/finish`; good for two minutes.
    pub fn seal_finished(&self, flow: SsoFlow, login: ExternalLogin) -> Result<String, AppError> {
        let finished = FinishedFlow {
            provider: flow.provider,
            purpose: flow.purpose,
            return_to: flow.return_to,
            login,
            expires_ms: self.now().as_millis() + FINISH_MS,
        };
        self.seal_text(Sealed::FinishedFlow, &finished)
    }

    /// The verified answer a finishing form carries, if it is one of ours, for
    /// `provider`, a connect or a confirm, and not expired.
    pub fn open_finished(
        &self,
        text: &str,
        provider: IdentityProviderId,
    ) -> Result<FinishedFlow, AppError> {
        let finished: FinishedFlow = self.open_text(Sealed::FinishedFlow, text)?;
        if finished.provider != provider
            || finished.purpose == FlowPurpose::SignIn
            || finished.expires_ms <= self.now().as_millis()
        {
            return Err(flow_expired());
        }
        Ok(finished)
    }

    /// `value`, sealed for `purpose` as base64url text.
    fn seal_text<T: serde::Serialize>(
        &self,
        purpose: Sealed,
        value: &T,
    ) -> Result<String, AppError> {
        use base64ct::{Base64UrlUnpadded, Encoding};
        let bytes = Zeroizing::new(
            postcard::to_allocvec(value)
                .map_err(|e| AppError::DataDir(format!("a sign-in flow: {e}")))?,
        );
        let sealed = self.seal(purpose, &bytes)?;
        Ok(Base64UrlUnpadded::encode_string(&sealed))
    }

    /// What [`Self::seal_text`] sealed for `purpose`; anything else is an expired flow.
    fn open_text<T: serde::de::DeserializeOwned>(
        &self,
        purpose: Sealed,
        text: &str,
    ) -> Result<T, AppError> {
        use base64ct::{Base64UrlUnpadded, Encoding};
        let sealed = Base64UrlUnpadded::decode_vec(text).map_err(|_| flow_expired())?;
        self.unseal(purpose, &sealed)
            .ok()
            .and_then(|bytes| postcard::from_bytes(&bytes).ok())
            .ok_or_else(flow_expired)
    }

    /// The member of `session` confirmed it is them through provider `id`: `login` must be
    /// the identity linked to `user`. For five minutes, [`Self::reconfirmed`] is true for
    /// the session (a member without a password confirms sensitive changes so).
    pub fn reconfirm_through(
        &self,
        user: UserId,
        session: crate::domain::id::SessionId,
        id: IdentityProviderId,
        login: &ExternalLogin,
    ) -> Result<(), AppError> {
        let now = self.now().as_millis();
        match self.store.read()?.external_identity(id, &login.subject)? {
            Some(identity) if identity.user == user => {
                let mut seen = self
                    .reconfirmed
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                seen.retain(|_, at| now - *at < RECONFIRMED_MS);
                seen.insert(session.0, now);
                Ok(())
            }
            _ => Err(AppError::Unauthenticated(
                "that is not the identity connected to you: sign in there as yourself".into(),
            )),
        }
    }

    /// Whether `session`'s member confirmed it is them through a provider in the last five
    /// minutes.
    pub fn reconfirmed(&self, session: crate::domain::id::SessionId) -> bool {
        let now = self.now().as_millis();
        self.reconfirmed
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&session.0)
            .is_some_and(|at| now - *at < RECONFIRMED_MS)
    }

    /// Use SAML assertion `id` of provider `provider` once: a second use before it
    /// expires (`until`, seconds since the epoch, and at least five minutes) is a replay,
    /// refused.
    pub fn use_saml_assertion(
        &self,
        provider: IdentityProviderId,
        id: &str,
        until: i64,
    ) -> Result<(), AppError> {
        let now = self.now().as_millis();
        let expires = until
            .saturating_mul(1000)
            .max(now.saturating_add(5 * 60 * 1000));
        let fresh = self
            .store
            .write(|tx| tx.use_saml_assertion(provider, id, expires, now))?;
        if fresh {
            Ok(())
        } else {
            Err(AppError::Forbidden {
                policy: String::new(),
                reason: "this assertion was used already (a replay)".into(),
            })
        }
    }

    /// Record that a sign-in through `provider` was refused before it named anyone (the
    /// provider's answer did not verify, or it answered with an error).
    pub fn record_sso_refusal(
        &self,
        provider: IdentityProviderId,
        ip: Option<IpAddr>,
        reason: &str,
    ) -> Result<(), AppError> {
        let now = self.now();
        let Some(found) = self.store.read()?.identity_provider(provider)? else {
            return Ok(());
        };
        let (account, actor, snapshot) = sso_refusal(&found, None, ip, reason);
        self.store.write(|tx| {
            record(
                tx,
                &account,
                now,
                actor,
                Action::LoginFailed,
                provider.to_string(),
                None,
                Some(snapshot),
            )
        })
    }
}
