//! The composition root: a data directory opened as a [`Latchkey`], and every management
//! operation of the foundation as one store transaction that applies the domain's rules,
//! writes the change and its audit event, and commits them together.
//!
//! Every operation takes the [`Actor`] it is done for. Before it changes or shows
//! anything, the policy engine decides the operation's `iam.*` action for that actor, in
//! the same transaction as the change (see [`authz`]); its event names the actor.

mod authz;
mod data_dir;
mod destinations;
mod federation;
mod grants;
mod group_mappings;
mod identity;
mod import;
mod invite;
mod ip;
mod keys;
mod login;
mod mfa;
mod passkeys;
mod passwords;
mod policies;
mod resource;
mod scim;
mod tenancy;

use std::path::Path;
use std::sync::Arc;

use crate::domain::DomainError;
use crate::domain::account::{Account, Provisioning, SsoMode};
use crate::domain::bot::{BotPatch, BotUser};
use crate::domain::credential::{
    Ceiling, Credential, CredentialId, CredentialKind, CredentialPatch, CredentialSpec, Owner,
    Rejection, RevokeCause, Verified,
};
use crate::domain::event::{Action, Actor, Event, Snapshot};
use crate::domain::grant::MemberGrants;
use crate::domain::id::{AccountId, BotId, UserId};
use crate::domain::ssh::SshPublicKey;
use crate::domain::time::{Clock, SystemClock, Timestamp};
use crate::domain::token::{self, Keyring, Secret, SecretHasher, TokenFormatError, TokenKind};
use crate::domain::user::{
    self, Email, MemberChange, MemberState, Membership, Roles, RolesPatch, User,
};
use crate::policy::{Limits, PolicyEngine, PolicyError, Verdict};
use crate::store::{AuditReport, Page, PageRequest, ReadTx, Reads, Store, StoreError, WriteTx};
pub use authz::{IAM_ACTIONS, Target, credential_resource};
pub use data_dir::{DataDir, Restore};
pub use destinations::{Batch, DestinationPatch, DestinationSpec, roots_from_pem, trust_roots};
pub use federation::{
    ExternalLogin, FinishedFlow, FlowPurpose, JIT_ROLES, ProviderPatch, ProviderSpec, SsoFlow,
    SsoProvider,
};
pub use group_mappings::{MappedGroup, MappingPatch, MappingSpec};
use identity::record_user_change;
pub use identity::{MailedLink, Me};
pub use import::{ImportFailure, ImportReport};
pub use invite::{Acceptor, Invited};
pub use ip::{IpPatch, IpText, Lockout, RestrictionSpec};
pub use keys::KeyRotation;
pub use login::{LoggedIn, LoginStep, LoginTicket, Recovered};
pub use mfa::{Enrollment, SecondFactor};
pub use passkeys::{PasskeyChallenge, RelyingParty};
pub use passwords::PasswordCost;
pub use policies::{LivePolicy, LiveSet};
pub use scim::{ScimCaller, ScimGroupSpec, ScimUser, ScimUserSpec};
pub use tenancy::{AssignmentFilter, NamedAssignment, ReviewedPrincipal, TenancyPatch};

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The request broke a rule of the model.
    #[error(transparent)]
    Domain(DomainError),
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
    /// The data directory could not be used.
    #[error("{0}")]
    DataDir(String),
    /// The policies refused the operation (or the actor is not in good standing, in which
    /// case `policy` is empty).
    #[error("forbidden by {}: {reason}", if policy.is_empty() { "latchkey" } else { policy })]
    Forbidden {
        /// The deciding policy.
        policy: String,
        /// Its reason.
        reason: String,
    },
    /// The policy set could not be loaded.
    #[error(transparent)]
    Policy(PolicyError),
    /// No valid credential or session, or a wrong email or password.
    #[error("{0}")]
    Unauthenticated(String),
    /// The password was right; the user's second factor is needed too.
    #[error("a TOTP code or a recovery code is required")]
    MfaRequired,
    /// The change would lock its author out of the dashboard and was not confirmed.
    #[error("{0}")]
    WouldLockOut(String),
    /// An enforced IP restriction refuses the source address.
    #[error("{0}")]
    IpRestricted(String),
    /// The account signs its members in through single sign-on only.
    #[error("{0}")]
    SsoRequired(String),
    /// Too many attempts of one kind: try again after this many seconds.
    #[error("too many {}; try again in {retry_after_secs} s", what.plural())]
    RateLimited {
        /// What was limited.
        what: Limited,
        /// Seconds until the window passes.
        retry_after_secs: u64,
    },
    /// The user is an active member of several accounts and named none.
    #[error("choose one of the accounts to log in to")]
    ChooseAccount(Vec<AccountId>),
    /// The object changed since the version the caller named (`If-Match`).
    #[error("{0}")]
    Precondition(String),
    /// The object is still used by others (a role assigned, a permission in a role).
    #[error("{what} is in use by {}", by.join(", "))]
    InUse {
        /// What was to be deleted.
        what: String,
        /// The name of the list of users, in an API answer's details.
        field: &'static str,
        /// The ids of what uses it.
        by: Vec<String>,
    },
}

impl From<PolicyError> for AppError {
    fn from(err: PolicyError) -> Self {
        AppError::Policy(err)
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Domain(err) => AppError::Domain(err),
            other => AppError::Store(other),
        }
    }
}

impl From<DomainError> for AppError {
    fn from(err: DomainError) -> Self {
        AppError::Domain(err)
    }
}

/// What a [`AppError::RateLimited`] limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Failed logins (and failed current-password checks).
    Logins,
    /// Requests for a link mailed to a user.
    LinkRequests,
}

impl Limited {
    fn plural(self) -> &'static str {
        match self {
            Limited::Logins => "failed attempts",
            Limited::LinkRequests => "link requests",
        }
    }
}

/// A change to an account's settings; `None` keeps the field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettingsPatch {
    /// Every member must enrol a second factor.
    pub mfa_required: Option<bool>,
    /// Single sign-on mode.
    pub sso_mode: Option<SsoMode>,
    /// How new members join.
    pub provisioning: Option<Provisioning>,
}

/// How to open a data directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds `latchkey.redb` and `server.key`; created if missing.
    pub data_dir: std::path::PathBuf,
    /// The policies folder (manifests and modules) that authorizes every operation.
    /// Without one (as for `latchkey verify`), every operation is refused.
    pub policies: Option<std::path::PathBuf>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// The argon2id cost of new password hashes (existing ones keep theirs).
    pub password_cost: PasswordCost,
    /// Threads of their own for password work (argon2), in the idle scheduling class;
    /// with none (0, the default) it runs in the calling thread.
    pub password_threads: usize,
    /// Whether a new data directory may be made here (`init`, `serve`): only where
    /// neither `server.key` nor `latchkey.redb` exists. Otherwise a missing directory or
    /// file is refused and nothing is created.
    pub create: bool,
    /// Event destinations may be on loopback, private and link-local addresses (off by
    /// default: an account administrator could otherwise make the appliance reach
    /// services that only it can reach).
    pub allow_private_destinations: bool,
    /// redb's page cache, in bytes (see `Store::open_with_cache`).
    pub db_cache_bytes: usize,
}

impl Config {
    /// The system clock and the given data directory, with no policies.
    pub fn new(data_dir: impl Into<std::path::PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            policies: None,
            clock: Arc::new(SystemClock),
            password_cost: PasswordCost::default(),
            password_threads: 0,
            create: false,
            allow_private_destinations: false,
            db_cache_bytes: crate::store::DEFAULT_CACHE_BYTES,
        }
    }

    /// May make a new data directory (where neither file exists).
    #[must_use]
    pub fn creating(mut self) -> Self {
        self.create = true;
        self
    }

    /// Authorize with the policies of `dir`.
    #[must_use]
    pub fn with_policies(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.policies = Some(dir.into());
        self
    }
}

/// What `latchkey init` made. The API key's plain text exists only here.
#[derive(Debug)]
pub struct Initialized {
    /// The new account.
    pub account: Account,
    /// Its first administrator.
    pub user: User,
    /// The administrator's API key, shown once.
    pub api_key: Secret,
    /// The administrator's personal authtoken, shown once.
    pub personal_authtoken: Secret,
    /// The one-time secret of the administrator's setup link (a day), where it sets its
    /// password in the dashboard (`/password_reset?token=`), shown once.
    pub setup_link: Secret,
}

/// A member as the API shows it: the user and its membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The person.
    pub user: User,
    /// Its membership in the account.
    pub membership: Membership,
    /// It has a second factor: a confirmed TOTP, or a passkey.
    pub mfa_enrolled: bool,
    /// It has proven it controls its email (until then it joins no other account).
    pub email_verified: bool,
    /// Its roles by source (their union is `membership.roles`).
    pub grants: MemberGrants,
}

impl Member {
    /// A member as `tx` holds it, with its second-factor and email-proof state.
    fn read(tx: &impl Reads, user: User, membership: Membership) -> Result<Member, AppError> {
        let mfa_enrolled = mfa::has_second_factor(tx, user.id)?;
        let email_verified = identity::email_proven(tx, &user)?;
        let grants = grants::of_member(tx, &membership)?;
        Ok(Member {
            user,
            membership,
            mfa_enrolled,
            email_verified,
            grants,
        })
    }
}

/// A new member and the personal authtoken made for it (shown once).
#[derive(Debug)]
pub struct Joined {
    /// The member.
    pub member: Member,
    /// Its personal authtoken's plain text.
    pub personal_authtoken: Secret,
}

/// The built-in policies a set must hold: without them a custom module routed to `iam.*`
/// or an application action would decide alone, widening what the built-ins grant.
pub const REQUIRED_POLICIES: [&str; 2] = ["account-rbac", "tenant-roles"];

/// An open latchkey: the store, the server's keys, the policies and the clock.
#[derive(Debug)]
pub struct Latchkey {
    store: Store,
    /// The server keys; replaced whole by a rotation.
    keys: arc_swap::ArcSwap<Keyring>,
    data_dir: DataDir,
    /// One key rotation at a time.
    rotation: std::sync::Mutex<()>,
    policies: Option<PolicyEngine>,
    gates: ip::GateCache,
    principals: authz::PrincipalCache,
    logins: login::Limiter,
    links: login::Limiter,
    /// When each session was last used (for the idle timeout).
    idle: login::IdleSessions,
    /// Passkey ceremonies under way.
    ceremonies: passkeys::Ceremonies,
    /// Sessions whose member confirmed it is them through an identity provider, and when.
    reconfirmed: federation::Reconfirmed,
    password_cost: PasswordCost,
    passwords: passwords::PasswordThreads,
    allow_private_destinations: bool,
    clock: Arc<dyn Clock>,
}

impl Latchkey {
    /// Whether outbound connections (event destinations, identity providers) may reach
    /// private addresses (`--allow-private-destinations`).
    pub fn allows_private_destinations(&self) -> bool {
        self.allow_private_destinations
    }

    /// Open (creating if needed) the data directory of `config`. Holds the database's
    /// exclusive lock until dropped.
    pub fn open(config: Config) -> Result<Latchkey, AppError> {
        // Policies first: a bad folder must not leave a half-made data directory behind.
        let policies = match &config.policies {
            Some(dir) => Some(PolicyEngine::load(
                dir,
                Limits::default(),
                &REQUIRED_POLICIES,
            )?),
            None => None,
        };
        let dir = DataDir::new(&config.data_dir);
        let keyring = dir.server_keys(config.create)?.keyring()?;
        let store = Store::open_with_cache(&dir.database(), config.db_cache_bytes)?;
        dir.restrict_database()?;
        // The database remembers which keys it was made with: another 32 bytes in
        // server.key would start a server that verifies no token and says nothing.
        store.check_key_fingerprints(&fingerprints(&keyring))?;
        let lk = Latchkey {
            store,
            keys: arc_swap::ArcSwap::from_pointee(keyring),
            data_dir: dir,
            rotation: std::sync::Mutex::new(()),
            policies,
            gates: ip::GateCache::default(),
            principals: authz::PrincipalCache::default(),
            logins: login::Limiter::logins(),
            links: login::Limiter::new(
                Limited::LinkRequests,
                identity::MAX_LINKS_PER_EMAIL,
                identity::MAX_LINKS_PER_ADDRESS,
            ),
            idle: login::IdleSessions::default(),
            ceremonies: passkeys::Ceremonies::default(),
            reconfirmed: federation::Reconfirmed::default(),
            password_cost: config.password_cost,
            passwords: passwords::PasswordThreads::new(config.password_threads),
            allow_private_destinations: config.allow_private_destinations,
            clock: config.clock,
        };
        // Lockouts survive a restart: the counts written before it come back.
        let now = lk.now();
        for (row, attempts) in lk.store.read()?.recent_attempts()? {
            lk.logins.restore(&row, &attempts.at, now);
            lk.links.restore(&row, &attempts.at, now);
        }
        Ok(lk)
    }

    /// Write the rate limiters' counts changed since the last call, in one transaction
    /// (never one write per attempt); returns how many rows were written. What cannot be
    /// written is kept for the next call.
    pub fn flush_limits(&self) -> Result<usize, AppError> {
        let now = self.now();
        let mut rows = self.logins.take_dirty(now);
        rows.extend(self.links.take_dirty(now));
        if rows.is_empty() {
            return Ok(0);
        }
        if let Err(err) = self.store.write_signals(|tx| tx.put_recent_attempts(&rows)) {
            self.logins.unwritten(&rows);
            self.links.unwritten(&rows);
            return Err(err.into());
        }
        Ok(rows.len())
    }

    /// The policy engine (to decide application actions, or to reload it).
    pub fn policies(&self) -> Option<&PolicyEngine> {
        self.policies.as_ref()
    }

    /// Decide `target` for `actor` in `account`, in `tx`'s snapshot; a denial is
    /// [`AppError::Forbidden`] naming the deciding policy. The actor must be in good
    /// standing in the account: a disabled member, an inactive bot or a revoked or expired
    /// credential is refused before any policy runs.
    fn authorize(
        &self,
        tx: &impl Reads,
        actor: Actor,
        account: AccountId,
        target: Target,
        now: Timestamp,
    ) -> Result<(), AppError> {
        authz::judge(
            self.engine()?,
            &authz::request(tx, actor, account, target, now)?,
        )
    }

    /// Bring the database of `data_dir` to the current schema (a whole data directory
    /// only: nothing is created).
    pub fn migrate(data_dir: &Path) -> Result<Vec<&'static str>, AppError> {
        let dir = DataDir::new(data_dir);
        dir.server_keys(false)?;
        Ok(Store::migrate(&dir.database())?)
    }

    /// The current time of this latchkey's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Create an account and its first administrator (an existing user with that email, or
    /// a new one), with a personal authtoken and one API key. Refused if the name is taken.
    pub fn init(&self, account_name: &str, admin_email: &str) -> Result<Initialized, AppError> {
        let now = self.now();
        let email = Email::parse(admin_email)?;
        self.store.write(|tx| {
            let account = Account::new(AccountId::generate(now)?, account_name, now)?;
            let actor = Actor::SYSTEM;
            let id = account.id.to_string();
            let target = Target::new("account", "create", "account", id);
            self.authorize(tx, actor, account.id, target, now)?;
            tx.insert_account(&account)?;
            record(
                tx,
                &account.id,
                now,
                actor,
                Action::AccountCreated,
                account.id.to_string(),
                None,
                Some(Snapshot::Account(account.clone())),
            )?;
            let default_name = email
                .as_str()
                .split('@')
                .next()
                .unwrap_or_default()
                .to_owned();
            let new_user = tx.user_by_email(&email)?.is_none();
            let joined = self.join(
                tx,
                actor,
                account.id,
                &email,
                &default_name,
                Roles::administrator(),
                now,
            )?;
            // The host operator names the first administrator: its email is taken as
            // proven (an existing user keeps whatever proof it has).
            if new_user {
                let user = &joined.member.user;
                identity::prove(tx, user, Some(user.email.as_str()), actor, now)?;
            }
            let spec = CredentialSpec {
                description: "created by latchkey init".to_owned(),
                ..Default::default()
            };
            let (_, api_key) = self.insert_token_credential(
                tx,
                actor,
                account.id,
                CredentialKind::ApiKey,
                Owner::User(joined.member.user.id),
                spec,
                now,
            )?;
            let setup_link = login::random_secret()?;
            tx.put_user_link(
                &self.secret_key(setup_link.expose()),
                &crate::domain::session::UserLink {
                    user: joined.member.user.id,
                    purpose: crate::domain::session::LinkPurpose::Setup,
                    created_at: now,
                    expires_at: Timestamp::from_millis(
                        now.as_millis() + crate::domain::session::SETUP_LIFETIME_MS,
                    ),
                },
            )?;
            Ok(Initialized {
                account,
                user: joined.member.user,
                api_key,
                personal_authtoken: joined.personal_authtoken,
                setup_link,
            })
        })
    }

    /// Add a new user to `account` with `roles`, and make its personal authtoken. An
    /// email that already belongs to a user is refused: that user joins only by accepting
    /// an invitation (seed 001). The new user is not bound to its email until it proves it.
    pub fn add_member(
        &self,
        actor: Actor,
        account: AccountId,
        email: &str,
        name: &str,
        roles: Roles,
    ) -> Result<Joined, AppError> {
        let now = self.now();
        let email = Email::parse(email)?;
        self.store
            .write(|tx| self.add_member_in(tx, actor, account, &email, name, roles, now))
    }

    /// [`Self::add_member`] inside a write transaction (for imports).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_member_in(
        &self,
        tx: &mut WriteTx,
        actor: Actor,
        account: AccountId,
        email: &Email,
        name: &str,
        roles: Roles,
        now: Timestamp,
    ) -> Result<Joined, AppError> {
        require_account(tx, account)?;
        let target = Target::new("users", "create", "user", "new")
            .with("grants_admin", roles.admin)
            .with("target_admin", false);
        self.authorize(tx, actor, account, target, now)?;
        if let Some(existing) = tx.user_by_email(email)?
            && tx.membership(account, existing.id)?.is_none()
        {
            return Err(DomainError::ExistingUser.into());
        }
        self.join(tx, actor, account, email, name, roles, now)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn join(
        &self,
        tx: &mut WriteTx,
        actor: Actor,
        account: AccountId,
        email: &Email,
        name: &str,
        roles: Roles,
        now: Timestamp,
    ) -> Result<Joined, AppError> {
        let user = match tx.user_by_email(email)? {
            Some(user) => {
                if tx.membership(account, user.id)?.is_some() {
                    return Err(DomainError::Conflict {
                        what: "membership of this user",
                    }
                    .into());
                }
                user
            }
            None => {
                let user = User::new(UserId::generate(now)?, email.clone(), name, now)?;
                tx.insert_user(&user)?;
                user
            }
        };
        let personal_id = CredentialId {
            kind: CredentialKind::Authtoken,
            raw: crate::domain::id::new_raw(now)?,
        };
        let membership = Membership {
            account,
            user: user.id,
            roles,
            state: MemberState::Active,
            joined_at: now,
            personal_authtoken: personal_id,
        };
        tx.put_membership(&membership)?;
        record(
            tx,
            &account,
            now,
            actor,
            Action::MemberAdded,
            user.id.to_string(),
            None,
            Some(Snapshot::Member(user.clone(), membership.clone())),
        )?;
        let spec = CredentialSpec {
            description: "personal authtoken".to_owned(),
            ..Default::default()
        };
        let mut personal =
            Credential::new(personal_id, account, Owner::User(user.id), spec, None, now)?;
        personal.personal = true;
        let secret = self.store_token_credential(tx, actor, &personal, now)?;
        Ok(Joined {
            member: Member::read(tx, user, membership)?,
            personal_authtoken: secret,
        })
    }

    /// Change some of a member's roles. Refused if it would leave no active administrator.
    pub fn update_member_roles(
        &self,
        actor: Actor,
        account: AccountId,
        user: UserId,
        patch: RolesPatch,
    ) -> Result<Member, AppError> {
        self.change_member(actor, account, user, MemberChange::Roles(patch))
    }

    /// Rename a member. The user is global, so every account it belongs to sees the new
    /// name: only a user whose every membership is in `account` is renamed by another
    /// member (changing an administrator's is for administrators); a user renames itself
    /// with [`Latchkey::rename_self`].
    pub fn rename_member(
        &self,
        actor: Actor,
        account: AccountId,
        user: UserId,
        name: &str,
    ) -> Result<Member, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let membership = tx
                .membership(account, user)?
                .ok_or_else(|| DomainError::NotFound(user.into()))?;
            let target = Target::member("update", user.to_string(), &membership.roles);
            self.authorize(tx, actor, account, target, now)?;
            // The user itself, in a session, renames itself anywhere; anyone else (or a
            // key, which an administrator may have made) only a user of this account alone.
            let own_session = actor.principal == crate::domain::event::Principal::User(user)
                && actor.credential.is_none();
            if !own_session {
                user::ensure_only_account(user, &tx.user_accounts(user)?, account)?;
            }
            scim::ensure_not_managed(tx, user)?;
            let before = tx
                .user(user)?
                .ok_or_else(|| DomainError::NotFound(user.into()))?;
            let mut after = before.clone();
            after.name = crate::domain::account::validate_display_name(name)?;
            if after != before {
                tx.update_user(&after)?;
                identity::record_user_change_with(
                    tx,
                    user,
                    now,
                    actor,
                    Action::UserRenamed,
                    Some(Snapshot::User(before)),
                    Some(Snapshot::User(after.clone())),
                )?;
            }
            Member::read(tx, after, membership)
        })
    }

    /// Disable or re-enable a member. While disabled, none of its credentials in this
    /// account verify; re-enabling restores them.
    pub fn set_member_state(
        &self,
        actor: Actor,
        account: AccountId,
        user: UserId,
        state: MemberState,
    ) -> Result<Member, AppError> {
        self.change_member(actor, account, user, MemberChange::State(state))
    }

    /// Remove a member from an account and revoke every credential it owns there; its
    /// user, and its memberships and credentials elsewhere, are untouched.
    pub fn remove_member(
        &self,
        actor: Actor,
        account: AccountId,
        user: UserId,
    ) -> Result<(), AppError> {
        self.change_member(actor, account, user, MemberChange::Remove)
            .map(|_| ())
    }

    fn change_member(
        &self,
        actor: Actor,
        account: AccountId,
        user_id: UserId,
        change: MemberChange,
    ) -> Result<Member, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let before = tx
                .membership(account, user_id)?
                .ok_or_else(|| DomainError::NotFound(user_id.into()))?;
            let verb = match change {
                MemberChange::Roles(_) => "update_roles",
                MemberChange::State(MemberState::Disabled) => "disable",
                MemberChange::State(MemberState::Active) => "enable",
                MemberChange::Remove => "delete",
            };
            let grants_admin = matches!(change, MemberChange::Roles(p) if p.admin == Some(true));
            let target = Target::member(verb, user_id.to_string(), &before.roles)
                .with("grants_admin", grants_admin);
            self.authorize(tx, actor, account, target, now)?;
            self.change_member_in(tx, actor, account, user_id, change, now)
        })
    }

    /// [`Self::change_member`]'s work once the change is allowed (SCIM provisioning is
    /// allowed by its own gate): the last-administrator rule, sessions ended by a disable
    /// or a removal, credentials and tenant roles revoked by a removal, the event.
    pub(super) fn change_member_in(
        &self,
        tx: &mut WriteTx,
        actor: Actor,
        account: AccountId,
        user_id: UserId,
        change: MemberChange,
        now: Timestamp,
    ) -> Result<Member, AppError> {
        let members = tx.members(account)?;
        let before = members
            .iter()
            .find(|m| m.user == user_id)
            .cloned()
            .ok_or_else(|| DomainError::NotFound(user_id.into()))?;
        let user = tx
            .user(user_id)?
            .ok_or_else(|| DomainError::NotFound(user_id.into()))?;
        // A roles change is to the roles set directly; the member holds their union with
        // what its SCIM groups and identity providers grant.
        let (change, grants) = match change {
            MemberChange::Roles(patch) => {
                let mut held = grants::of_member(tx, &before)?;
                held.direct = patch.apply(held.direct);
                (
                    MemberChange::Roles(RolesPatch::to(held.effective())),
                    Some(held),
                )
            }
            other => (other, None),
        };
        let after = user::change_member(&members, user_id, change)?;
        if let Some(grants) = &grants {
            tx.put_member_grants(grants)?;
        }
        let before_snapshot = Some(Snapshot::Member(user.clone(), before.clone()));
        let target = user_id.to_string();
        match after {
            Some(after) if after == before => Member::read(tx, user, after),
            Some(after) => {
                tx.put_membership(&after)?;
                if after.state == MemberState::Disabled {
                    login::end_sessions(tx, user_id, Some(account), None)?;
                }
                let action = match change {
                    MemberChange::State(MemberState::Disabled) => Action::MemberDisabled,
                    MemberChange::State(MemberState::Active) => Action::MemberEnabled,
                    _ => Action::MemberRolesUpdated,
                };
                record(
                    tx,
                    &account,
                    now,
                    actor,
                    action,
                    target,
                    before_snapshot,
                    Some(Snapshot::Member(user.clone(), after.clone())),
                )?;
                Member::read(tx, user, after)
            }
            None => {
                for credential in tx.owner_credentials(account, Owner::User(user_id))? {
                    revoke(tx, actor, &credential, RevokeCause::MembershipRemoved, now)?;
                }
                tenancy::remove_assignments_of(tx, actor, account, Owner::User(user_id), now)?;
                login::end_sessions(tx, user_id, Some(account), None)?;
                tx.remove_membership(account, user_id)?;
                record(
                    tx,
                    &account,
                    now,
                    actor,
                    Action::MemberRemoved,
                    target,
                    before_snapshot,
                    None,
                )?;
                Member::read(tx, user, before)
            }
        }
    }

    /// Create an active bot user in `account`.
    pub fn create_bot(
        &self,
        actor: Actor,
        account: AccountId,
        name: &str,
    ) -> Result<BotUser, AppError> {
        self.create_bot_as(actor, account, name, true)
    }

    /// Create a bot user in `account`, active or not.
    pub fn create_bot_as(
        &self,
        actor: Actor,
        account: AccountId,
        name: &str,
        active: bool,
    ) -> Result<BotUser, AppError> {
        let now = self.now();
        self.store
            .write(|tx| self.create_bot_in(tx, actor, account, name, active, now))
    }

    /// [`Self::create_bot_as`] inside a write transaction (for imports).
    pub(crate) fn create_bot_in(
        &self,
        tx: &mut WriteTx,
        actor: Actor,
        account: AccountId,
        name: &str,
        active: bool,
        now: Timestamp,
    ) -> Result<BotUser, AppError> {
        require_account(tx, account)?;
        let target = Target::new("bot_users", "create", "bot_user", "new");
        self.authorize(tx, actor, account, target, now)?;
        let mut bot = BotUser::new(BotId::generate(now)?, account, name, now)?;
        bot.active = active;
        tx.put_bot(&bot)?;
        record(
            tx,
            &account,
            now,
            actor,
            Action::BotCreated,
            bot.id.to_string(),
            None,
            Some(Snapshot::Bot(bot.clone())),
        )?;
        Ok(bot)
    }

    /// Rename a bot user or change its `active` flag. An inactive bot keeps its
    /// credentials, but none of them verify.
    pub fn update_bot(
        &self,
        actor: Actor,
        account: AccountId,
        id: BotId,
        patch: &BotPatch,
    ) -> Result<BotUser, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let before = bot_in(tx, account, id)?;
            let target = Target::new("bot_users", "update", "bot_user", id.to_string());
            self.authorize(tx, actor, account, target, now)?;
            let after = before.patched(patch)?;
            if after != before {
                tx.put_bot(&after)?;
                record(
                    tx,
                    &account,
                    now,
                    actor,
                    Action::BotUpdated,
                    id.to_string(),
                    Some(Snapshot::Bot(before)),
                    Some(Snapshot::Bot(after.clone())),
                )?;
            }
            Ok(after)
        })
    }

    /// Delete a bot user and revoke and delete every credential it owns, at once.
    pub fn delete_bot(&self, actor: Actor, account: AccountId, id: BotId) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let bot = bot_in(tx, account, id)?;
            let target = Target::new("bot_users", "delete", "bot_user", id.to_string());
            self.authorize(tx, actor, account, target, now)?;
            for credential in tx.owner_credentials(account, Owner::Bot(id))? {
                revoke(tx, actor, &credential, RevokeCause::OwnerDeleted, now)?;
            }
            tenancy::remove_assignments_of(tx, actor, account, Owner::Bot(id), now)?;
            tx.remove_bot(&bot)?;
            record(
                tx,
                &account,
                now,
                actor,
                Action::BotDeleted,
                id.to_string(),
                Some(Snapshot::Bot(bot)),
                None,
            )
        })?;
        Ok(())
    }

    /// Create an authtoken or API key owned by `owner` (a member or bot of `account`).
    /// The plain token is returned this once.
    pub fn create_token_credential(
        &self,
        actor: Actor,
        account: AccountId,
        kind: TokenKind,
        owner: Owner,
        spec: CredentialSpec,
    ) -> Result<(Credential, Secret), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            self.insert_token_credential(
                tx,
                actor,
                account,
                CredentialKind::of_token(kind).ok_or(DomainError::invalid(
                    "kind",
                    "not a credential's token kind",
                ))?,
                owner,
                spec,
                now,
            )
        })
    }

    /// Create many API keys or authtokens in batched transactions (each credential still
    /// gets its audit event); for seeding and imports. Owners are used in turn.
    pub fn create_token_credentials_bulk(
        &self,
        actor: Actor,
        account: AccountId,
        kind: TokenKind,
        owners: &[Owner],
        count: usize,
        batch: usize,
    ) -> Result<Vec<(CredentialId, Secret)>, AppError> {
        let mut made = Vec::with_capacity(count);
        let mut owners_in_turn = owners.iter().copied().cycle();
        while made.len() < count {
            let now = self.now();
            let this_batch = batch.max(1).min(count - made.len());
            self.store.write(|tx| {
                for _ in 0..this_batch {
                    let owner = owners_in_turn
                        .next()
                        .ok_or(DomainError::invalid("owner_id", "no owners given"))?;
                    let (credential, secret) = self.insert_token_credential(
                        tx,
                        actor,
                        account,
                        CredentialKind::of_token(kind).ok_or(DomainError::invalid(
                            "kind",
                            "not a credential's token kind",
                        ))?,
                        owner,
                        CredentialSpec::default(),
                        now,
                    )?;
                    made.push((credential.id, secret));
                }
                Ok::<_, AppError>(())
            })?;
        }
        Ok(made)
    }

    /// The id of the account named `name` (for the operator's commands).
    pub fn account_named(&self, name: &str) -> Result<AccountId, AppError> {
        Ok(self
            .store
            .read()?
            .account_by_name(name)?
            .ok_or_else(|| {
                DomainError::invalid("account", format!("no account is named {name:?}"))
            })?
            .id)
    }

    /// The member of `account` named by `who`, a user id (`usr_…`) or an email (for the
    /// operator's commands); anyone else is not found.
    pub fn member_named(&self, account: AccountId, who: &str) -> Result<UserId, AppError> {
        let read = self.store.read()?;
        let user = match who.parse::<UserId>() {
            Ok(id) => Some(id),
            Err(_) => {
                let email = Email::parse(who)?;
                read.user_by_email(&email)?.map(|user| user.id)
            }
        };
        user.filter(|id| matches!(read.membership(account, *id), Ok(Some(_))))
            .ok_or_else(|| {
                DomainError::invalid("user", format!("{who:?} is not a member of the account"))
                    .into()
            })
    }

    /// `latchkey import --mint-api-keys`: `count` API keys in `account`, owned by its bot
    /// user `owner` (made if the account has none of that name), in batched transactions
    /// with their events, as the system principal; for benchmarks and load tests.
    /// Returns the one-time secrets.
    pub fn mint_api_keys(
        &self,
        account: AccountId,
        owner: &str,
        count: usize,
    ) -> Result<Vec<Secret>, AppError> {
        let existing = self
            .store
            .read()?
            .bots(account)?
            .into_iter()
            .find(|b| b.name == owner);
        let bot = match existing {
            Some(bot) => bot,
            None => self.create_bot(Actor::SYSTEM, account, owner)?,
        };
        let made = self.create_token_credentials_bulk(
            Actor::SYSTEM,
            account,
            TokenKind::ApiKey,
            &[Owner::Bot(bot.id)],
            count,
            20_000,
        )?;
        Ok(made.into_iter().map(|(_, secret)| secret).collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_token_credential(
        &self,
        tx: &mut WriteTx,
        actor: Actor,
        account: AccountId,
        kind: CredentialKind,
        owner: Owner,
        spec: CredentialSpec,
        now: Timestamp,
    ) -> Result<(Credential, Secret), AppError> {
        let id = CredentialId {
            kind,
            raw: crate::domain::id::new_raw(now)?,
        };
        let (ceiling, stated) = bounded(tx, actor, account, kind, spec)?;
        let credential = Credential::new(id, account, owner, stated.spec, None, now)?;
        let target = creation_target(&credential);
        self.authorize(tx, actor, account, target, now)?;
        require_owner(tx, account, owner)?;
        within(ceiling.as_ref(), &credential, &stated.fields)?;
        let secret = self.store_token_credential(tx, actor, &credential, now)?;
        Ok((credential, secret))
    }

    fn store_token_credential(
        &self,
        tx: &mut WriteTx,
        actor: Actor,
        credential: &Credential,
        now: Timestamp,
    ) -> Result<Secret, AppError> {
        let kind = credential
            .id
            .kind
            .token_kind()
            .ok_or(DomainError::NotApplicable("not a token credential"))?;
        let (secret, hash) = self.keys.load().current().mint(kind, credential.id.raw)?;
        tx.insert_credential(credential, Some(hash))?;
        let action = Action::CredentialCreated(credential.id.kind);
        record(
            tx,
            &credential.account,
            now,
            actor,
            action,
            credential.id.to_string(),
            None,
            Some(Snapshot::Credential(Box::new(credential.clone()))),
        )?;
        Ok(secret)
    }

    /// Register an SSH public key (OpenSSH `authorized_keys` form) for `owner`. A key
    /// registered anywhere in the appliance cannot be registered again.
    pub fn create_ssh_credential(
        &self,
        actor: Actor,
        account: AccountId,
        owner: Owner,
        public_key: &str,
        spec: CredentialSpec,
    ) -> Result<Credential, AppError> {
        let now = self.now();
        let key = SshPublicKey::parse(public_key)
            .map_err(|e| DomainError::invalid("public_key", e.to_string()))?;
        self.store
            .write(|tx| self.create_ssh_credential_in(tx, actor, account, owner, key, spec, now))
    }

    /// [`Self::create_ssh_credential`] inside a write transaction (for imports).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create_ssh_credential_in(
        &self,
        tx: &mut WriteTx,
        actor: Actor,
        account: AccountId,
        owner: Owner,
        key: SshPublicKey,
        spec: CredentialSpec,
        now: Timestamp,
    ) -> Result<Credential, AppError> {
        let id = CredentialId {
            kind: CredentialKind::SshKey,
            raw: crate::domain::id::new_raw(now)?,
        };
        let (ceiling, stated) = bounded(tx, actor, account, id.kind, spec)?;
        let credential = Credential::new(id, account, owner, stated.spec, Some(key), now)?;
        self.authorize(tx, actor, account, creation_target(&credential), now)?;
        require_owner(tx, account, owner)?;
        within(ceiling.as_ref(), &credential, &stated.fields)?;
        tx.insert_credential(&credential, None)?;
        record(
            tx,
            &account,
            now,
            actor,
            Action::CredentialCreated(CredentialKind::SshKey),
            id.to_string(),
            None,
            Some(Snapshot::Credential(Box::new(credential.clone()))),
        )?;
        Ok(credential)
    }

    /// Change a credential's description, metadata or bind rules.
    pub fn update_credential(
        &self,
        actor: Actor,
        account: AccountId,
        id: CredentialId,
        patch: &CredentialPatch,
    ) -> Result<Credential, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let before = credential_in(tx, account, id)?;
            let ceiling = ceiling(tx, actor, account)?;
            let mut patch = patch.clone();
            if let Some(ceiling) = &ceiling {
                ceiling.fill_patch(&mut patch);
            }
            let after = before.patched(&patch)?;
            let mut target = credential_target(tx, "update", &before)?;
            if id.kind == CredentialKind::ApiKey {
                target = target.with_value("scopes", &scopes_text(&after));
            }
            self.authorize(tx, actor, account, target, now)?;
            let sent: &[&str] = if patch.allowed_cidrs.is_some() {
                &["allowed_cidrs"]
            } else {
                &[]
            };
            within(ceiling.as_ref(), &after, sent)?;
            if after != before {
                tx.update_credential(&after)?;
                record(
                    tx,
                    &account,
                    now,
                    actor,
                    Action::CredentialUpdated(id.kind),
                    id.to_string(),
                    Some(Snapshot::Credential(Box::new(before))),
                    Some(Snapshot::Credential(Box::new(after.clone()))),
                )?;
            }
            Ok(after)
        })
    }

    /// Give a token credential a new secret; the old one stops verifying at once and the
    /// new one is returned this once.
    pub fn rotate_credential(
        &self,
        actor: Actor,
        account: AccountId,
        id: CredentialId,
    ) -> Result<(Credential, Secret), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let credential = credential_in(tx, account, id)?;
            let target = credential_target(tx, "rotate", &credential)?;
            self.authorize(tx, actor, account, target, now)?;
            credential.ensure_rotatable()?;
            let kind = id
                .kind
                .token_kind()
                .ok_or(DomainError::NotApplicable("not a token credential"))?;
            let (secret, hash) = self.keys.load().current().mint(kind, id.raw)?;
            tx.set_secret(&credential, hash)?;
            record(
                tx,
                &account,
                now,
                actor,
                Action::CredentialRotated(id.kind),
                id.to_string(),
                // The record itself is unchanged: the secret lives apart from it.
                Some(Snapshot::Credential(Box::new(credential.clone()))),
                Some(Snapshot::Credential(Box::new(credential.clone()))),
            )?;
            Ok((credential, secret))
        })
    }

    /// Revoke and delete a credential.
    pub fn delete_credential(
        &self,
        actor: Actor,
        account: AccountId,
        id: CredentialId,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let credential = credential_in(tx, account, id)?;
            let target = credential_target(tx, "delete", &credential)?;
            self.authorize(tx, actor, account, target, now)?;
            credential.ensure_deletable()?;
            revoke(tx, actor, &credential, RevokeCause::Deleted, now)
        })
    }

    /// Who is presenting this token? Checks shape and checksum first (no lookup for a
    /// typo), then the in-memory index: no database read, no argon2.
    #[inline]
    pub fn verify_token(&self, presented: &str) -> Result<Verified, Rejection> {
        let parsed = token::parse(presented).map_err(|err| match err {
            TokenFormatError::Malformed => Rejection::Malformed,
            TokenFormatError::BadChecksum => Rejection::BadChecksum,
        })?;
        self.store
            .index()
            .verify_token(&parsed, &self.keys.load(), self.now())
    }

    /// Whose SSH public key is this?
    pub fn verify_ssh(&self, public_key: &str) -> Result<Verified, Rejection> {
        let key = SshPublicKey::parse(public_key).map_err(|_| Rejection::Malformed)?;
        self.store
            .index()
            .verify_ssh(&key.fingerprint(), self.now())
    }

    /// Verify a token or, if it looks like one, an SSH public key.
    pub fn verify(&self, presented: &str) -> Result<Verified, Rejection> {
        if looks_like_ssh_key(presented) {
            self.verify_ssh(presented)
        } else {
            self.verify_token(presented)
        }
    }

    /// Write the `last_used_at` of credentials used since the last flush, in one batch.
    pub fn flush_usage(&self) -> Result<usize, AppError> {
        Ok(self.store.flush_last_used(self.now())?)
    }

    /// A consistent snapshot of every account into a new database file at `path`, for the
    /// host operator's backup; writers go on meanwhile.
    pub fn snapshot_into(&self, path: &Path) -> Result<crate::store::Snapshot, AppError> {
        Ok(self.store.snapshot_into(path)?)
    }

    /// Every account's audit events before `before`, as an export's JSON lines, for the
    /// host operator (see `store::verify_export`).
    pub fn export_events(
        &self,
        before: Timestamp,
        out: &mut impl std::io::Write,
    ) -> Result<Vec<crate::store::ExportedChain>, AppError> {
        Ok(self.store.export_events(before, out)?)
    }

    /// Prune exactly what a verified export holds, for the host operator.
    pub fn prune_events(&self, chains: &[crate::store::ExportedChain]) -> Result<u64, AppError> {
        Ok(self.store.prune_events(chains)?)
    }

    /// Whether the storage takes writes, for the readiness probe.
    pub fn readiness(&self) -> crate::store::Readiness {
        self.store.readiness()
    }

    /// Storage I/O failures seen since the server started.
    pub fn storage_errors(&self) -> u64 {
        self.store.io_errors()
    }

    /// While writes fail, try one, so readiness recovers without a client's write.
    pub fn probe_storage(&self) -> Result<(), AppError> {
        Ok(self.store.probe()?)
    }

    /// When a credential was last used (including uses not yet flushed).
    pub fn last_used(&self, id: CredentialId) -> Result<Option<Timestamp>, AppError> {
        match self.store.index().last_used(id.raw) {
            Some(at) => Ok(Some(at)),
            None => Ok(self.store.read()?.flushed_last_used(id.raw)?),
        }
    }

    /// Check every account's audit chain.
    pub fn verify_audit_chain(&self) -> Result<AuditReport, AppError> {
        Ok(self.store.verify_audit_chain()?)
    }

    /// A consistent snapshot for reads.
    pub fn read(&self) -> Result<crate::store::ReadTx, AppError> {
        Ok(self.store.read()?)
    }

    /// An account, as `actor` (a member of it) may see it.
    pub fn account(&self, actor: Actor, id: AccountId) -> Result<Account, AppError> {
        let read = self.store.read()?;
        let account = require_account(&read, id)?;
        let target = Target::new("account", "get", "account", id.to_string());
        self.authorize(&read, actor, id, target, self.now())?;
        Ok(account)
    }

    /// Change an account's settings (administrators only, by the policies). Enforcing
    /// SSO needs an enabled identity provider that has completed a login (else the
    /// members could not sign in); SCIM provisioning needs single sign-on configured.
    pub fn update_account_settings(
        &self,
        actor: Actor,
        account: AccountId,
        patch: SettingsPatch,
    ) -> Result<Account, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let before = require_account(tx, account)?;
            let target = Target::new("account", "update", "account", account.to_string());
            self.authorize(tx, actor, account, target, now)?;
            let mut after = before.clone();
            if let Some(required) = patch.mfa_required {
                after.settings.mfa_required = required;
            }
            if let Some(mode) = patch.sso_mode {
                after.settings.sso_mode = mode;
            }
            if let Some(provisioning) = patch.provisioning {
                after.settings.provisioning = provisioning;
            }
            // SCIM provisions the members of an account that signs them in through its
            // identity provider (seed 001): it needs single sign-on configured.
            if after.settings.provisioning == Provisioning::Scim
                && before.settings.provisioning != Provisioning::Scim
                && (after.settings.sso_mode == SsoMode::Off
                    || !tx.identity_providers(account)?.iter().any(|p| p.enabled))
            {
                return Err(DomainError::invalid(
                    "provisioning",
                    "scim needs single sign-on configured: an enabled identity provider and sso_mode mixed or enforced",
                )
                .into());
            }
            if after.settings.sso_mode == SsoMode::Enforced
                && before.settings.sso_mode != SsoMode::Enforced
            {
                let usable = tx
                    .identity_providers(account)?
                    .iter()
                    .any(|p| p.enabled && p.last_login_at.is_some());
                if !usable {
                    return Err(AppError::WouldLockOut(
                        "enforcing single sign-on needs an enabled identity provider that has completed a sign-in: test one in mixed mode first".into(),
                    ));
                }
            }
            if after != before {
                tx.update_account(&after)?;
                record(
                    tx,
                    &account,
                    now,
                    actor,
                    Action::AccountUpdated,
                    account.to_string(),
                    Some(Snapshot::Account(before)),
                    Some(Snapshot::Account(after.clone())),
                )?;
            }
            Ok(after)
        })
    }

    /// A member of an account.
    pub fn member(
        &self,
        actor: Actor,
        account: AccountId,
        user: UserId,
    ) -> Result<Member, AppError> {
        let read = self.store.read()?;
        let membership = read
            .membership(account, user)?
            .ok_or_else(|| DomainError::NotFound(user.into()))?;
        let target = Target::member("get", user.to_string(), &membership.roles);
        self.authorize(&read, actor, account, target, self.now())?;
        let user = read
            .user(user)?
            .ok_or_else(|| DomainError::NotFound(user.into()))?;
        Member::read(&read, user, membership)
    }

    /// Seats used: members count, bots do not. Part of the account's settings.
    pub fn seats_used(&self, actor: Actor, account: AccountId) -> Result<usize, AppError> {
        let read = self.store.read()?;
        let target = Target::new("account", "get", "account", account.to_string());
        self.authorize(&read, actor, account, target, self.now())?;
        Ok(user::seats_used(&read.members(account)?))
    }

    /// A credential of an account (other accounts' credentials are not found).
    pub fn credential(
        &self,
        actor: Actor,
        account: AccountId,
        id: CredentialId,
    ) -> Result<Credential, AppError> {
        let read = self.store.read()?;
        let credential = credential_in(&read, account, id)?;
        let target = credential_target(&read, "get", &credential)?;
        self.authorize(&read, actor, account, target, self.now())?;
        Ok(credential)
    }

    /// When each of `users` last signed in to `account` (its newest successful login
    /// in the account's trail; `None`: never, or before the trail's retention), for the
    /// members page. Each is one read of the trail's principal index, newest first.
    pub fn last_logins(
        &self,
        actor: Actor,
        account: AccountId,
        users: &[UserId],
    ) -> Result<Vec<Option<Timestamp>>, AppError> {
        let read = self.store.read()?;
        let target = Target::new("users", "list", "user", account.to_string());
        self.authorize(&read, actor, account, target, self.now())?;
        let login = Action::LoginSucceeded.name().to_owned();
        users
            .iter()
            .map(|user| {
                let query = crate::store::EventQuery {
                    principal: Some(user.0),
                    action: Some(login.clone()),
                    object: None,
                    since: None,
                    until: None,
                    before: None,
                    limit: 1,
                };
                Ok(read
                    .events_page(account, &query)?
                    .items
                    .first()
                    .map(|e| e.at))
            })
            .collect()
    }

    /// A page of an account's members, newest user first.
    pub fn members(
        &self,
        actor: Actor,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<Member>, AppError> {
        let read = self.store.read()?;
        let target = Target::new("users", "list", "user", account.to_string());
        self.authorize(&read, actor, account, target, self.now())?;
        let memberships = read.members_page(account, page)?;
        let mut members = Vec::with_capacity(memberships.items.len());
        for membership in memberships.items {
            let user = read
                .user(membership.user)?
                .ok_or_else(|| DomainError::NotFound(membership.user.into()))?;
            members.push(Member::read(&read, user, membership)?);
        }
        Ok(Page {
            items: members,
            more: memberships.more,
        })
    }

    /// A bot user of an account.
    pub fn bot(&self, actor: Actor, account: AccountId, id: BotId) -> Result<BotUser, AppError> {
        let read = self.store.read()?;
        let bot = bot_in(&read, account, id)?;
        let target = Target::new("bot_users", "get", "bot_user", id.to_string());
        self.authorize(&read, actor, account, target, self.now())?;
        Ok(bot)
    }

    /// A page of an account's bot users, newest first.
    pub fn bots(
        &self,
        actor: Actor,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<BotUser>, AppError> {
        let read = self.store.read()?;
        let target = Target::new("bot_users", "list", "bot_user", account.to_string());
        self.authorize(&read, actor, account, target, self.now())?;
        Ok(read.bots_page(account, page)?)
    }

    /// May `actor` ask who a presented credential is, or what a principal may do
    /// (`iam.credentials.verify`)? The hot path of `/verify`: the actor is resolved from
    /// the store only after a write, and the policies decide every time (in memory).
    pub fn authorize_verify(&self, actor: Actor, account: AccountId) -> Result<(), AppError> {
        let generation = self.store.generation();
        let resolved = self
            .principals
            .get_or_resolve(actor, account, generation, || Ok(self.store.read()?))?;
        authz::may_verify(self.engine()?, &resolved, self.now())
    }

    /// Answer "may each principal do this?" for a caller allowed to ask, which is the
    /// same right as asking who a credential is (`iam.credentials.verify`: administrators,
    /// developers, bots). Principals come from the cache of resolved principals (read
    /// again only after a write that could change them); the store is read only for what
    /// the cache lacks, in one snapshot.
    pub fn check_permissions(
        &self,
        caller: Actor,
        account: AccountId,
        checks: Vec<(Actor, Target)>,
        explain: bool,
    ) -> Result<Vec<Verdict>, AppError> {
        self.authorize_verify(caller, account)?;
        let generation = self.store.generation();
        let now = self.now();
        let policies = self.engine()?;
        let mut snapshot: Option<ReadTx> = None;
        let mut verdicts = Vec::with_capacity(checks.len());
        for (principal, target) in checks {
            let permission = if authz::needs_catalog(&target.action) {
                let read = open_once(&mut snapshot, &self.store)?;
                authz::permission_index(read, account, &target.action)?
            } else {
                latchkey_policy_abi::builtin_permission(&target.action)
            };
            let resolved = match self.principals.get(principal, account, generation) {
                Some(resolved) => Ok(resolved),
                None => {
                    let read = open_once(&mut snapshot, &self.store)?;
                    let resolved = authz::resolve(read, principal, account).map(Arc::new);
                    if let Ok(resolved) = &resolved {
                        self.principals
                            .put(principal, account, generation, resolved);
                    }
                    resolved
                }
            };
            let verdict = match resolved {
                Ok(resolved) => authz::decide_resolved(
                    policies,
                    Ok(&resolved),
                    target,
                    permission,
                    now,
                    explain,
                ),
                Err(err) => {
                    authz::decide_resolved(policies, Err(err), target, permission, now, explain)
                }
            };
            verdicts.push(verdict?);
        }
        Ok(verdicts)
    }

    /// [`Self::check_permissions`] when it needs nothing from the store: the caller and
    /// every principal are resolved in memory for the current generation and every action
    /// is an `iam` action or a built-in permission. Otherwise the checks come back
    /// untouched (`Err`), for [`Self::check_permissions`] on a thread that may block. The
    /// API decides on its async workers this way, as for `/verify`.
    #[allow(clippy::type_complexity)]
    pub fn check_permissions_in_memory(
        &self,
        caller: Actor,
        account: AccountId,
        checks: Vec<(Actor, Target)>,
        explain: bool,
    ) -> Result<Result<Vec<Verdict>, Vec<(Actor, Target)>>, AppError> {
        let generation = self.store.generation();
        let Some(asker) = self.principals.get(caller, account, generation) else {
            return Ok(Err(checks));
        };
        let mut resolved = Vec::with_capacity(checks.len());
        for (principal, target) in &checks {
            match self.principals.get(*principal, account, generation) {
                Some(found) if !authz::needs_catalog(&target.action) => resolved.push(found),
                _ => return Ok(Err(checks)),
            }
        }
        let now = self.now();
        let policies = self.engine()?;
        authz::may_verify(policies, &asker, now)?;
        let mut verdicts = Vec::with_capacity(checks.len());
        for ((_, target), principal) in checks.into_iter().zip(resolved) {
            let permission = latchkey_policy_abi::builtin_permission(&target.action);
            verdicts.push(authz::decide_resolved(
                policies,
                Ok(&principal),
                target,
                permission,
                now,
                explain,
            )?);
        }
        Ok(Ok(verdicts))
    }

    /// What a member may do in the account, as the policies decide it: every `iam` action
    /// (on an ordinary object: not an administrator, its own where ownership matters)
    /// and every catalog permission outside any tenant.
    pub fn effective_permissions(
        &self,
        caller: Actor,
        account: AccountId,
        user: UserId,
    ) -> Result<Vec<String>, AppError> {
        let read = self.store.read()?;
        let now = self.now();
        let membership = read
            .membership(account, user)?
            .ok_or_else(|| DomainError::NotFound(user.into()))?;
        let target = Target::member("get", user.to_string(), &membership.roles);
        self.authorize(&read, caller, account, target, now)?;
        self.permissions_in(&read, account, user, now)
    }

    /// What the user `user` may do in `account` (as [`Self::effective_permissions`]), for
    /// itself: everyone may know what they may do, so no permission is needed. The
    /// dashboard shows only the controls these allow.
    pub fn own_permissions(
        &self,
        account: AccountId,
        user: UserId,
    ) -> Result<Vec<String>, AppError> {
        let read = self.store.read()?;
        read.membership(account, user)?
            .ok_or_else(|| DomainError::NotFound(user.into()))?;
        self.permissions_in(&read, account, user, self.now())
    }

    fn permissions_in(
        &self,
        read: &crate::store::ReadTx,
        account: AccountId,
        user: UserId,
        now: Timestamp,
    ) -> Result<Vec<String>, AppError> {
        let policies = self.engine()?;
        let principal = Actor {
            principal: crate::domain::event::Principal::User(user),
            credential: None,
        };
        let mut allowed = Vec::new();
        for target in authz::ordinary_targets(Owner::User(user)) {
            let action = target.action.clone();
            if authz::decide(policies, read, principal, account, target, now, false)?.allowed {
                allowed.push(action);
            }
        }
        Ok(allowed)
    }

    fn engine(&self) -> Result<&PolicyEngine, AppError> {
        self.policies.as_ref().ok_or_else(|| AppError::Forbidden {
            policy: String::new(),
            reason: "no policy set is loaded, so nothing is allowed".to_owned(),
        })
    }

    /// Whether the appliance has no account yet (a fresh data directory).
    pub fn is_empty(&self) -> Result<bool, AppError> {
        Ok(self.store.read()?.account_count()? == 0)
    }

    /// The audit events of an account, oldest first.
    pub fn events(&self, actor: Actor, account: AccountId) -> Result<Vec<Event>, AppError> {
        let read = self.store.read()?;
        let target = Target::new("events", "list", "event", account.to_string());
        self.authorize(&read, actor, account, target, self.now())?;
        Ok(read.events(account)?)
    }

    /// A page of an account's events, newest first, with the id that starts the next
    /// page. A `before` that is not an event of the account is `NotFound`.
    pub fn events_page(
        &self,
        actor: Actor,
        account: AccountId,
        query: &crate::store::EventQuery,
    ) -> Result<Page<Event>, AppError> {
        let read = self.store.read()?;
        let target = Target::new("events", "list", "event", account.to_string());
        self.authorize(&read, actor, account, target, self.now())?;
        Ok(read.events_page(account, query)?)
    }

    /// One event of an account.
    pub fn event(
        &self,
        actor: Actor,
        account: AccountId,
        id: crate::domain::id::EventId,
    ) -> Result<Event, AppError> {
        let read = self.store.read()?;
        // Reading one event is reading the trail: the same decision as the list.
        let target = Target::new("events", "list", "event", account.to_string());
        self.authorize(&read, actor, account, target, self.now())?;
        read.event(account, id)?
            .ok_or_else(|| DomainError::NotFound(id.into()).into())
    }

    /// A page of an account's credentials of one kind, newest first, each with its last
    /// use.
    pub fn credentials(
        &self,
        actor: Actor,
        account: AccountId,
        kind: CredentialKind,
        page: PageRequest,
    ) -> Result<Page<(Credential, Option<Timestamp>)>, AppError> {
        let read = self.store.read()?;
        let (resource, object) = credential_resource(kind);
        let target = Target::new(resource, "list", object, account.to_string());
        self.authorize(&read, actor, account, target, self.now())?;
        let credentials = read.credentials_page(account, kind, page)?;
        let mut items = Vec::with_capacity(credentials.items.len());
        for credential in credentials.items {
            let used = match self.store.index().last_used(credential.id.raw) {
                Some(at) => Some(at),
                None => read.flushed_last_used(credential.id.raw)?,
            };
            items.push((credential, used));
        }
        Ok(Page {
            items,
            more: credentials.more,
        })
    }

    /// The credentials `owner` holds in `account`, of the kinds the caller may list
    /// (the dashboard names them before a removal revokes them), newest first.
    pub fn credentials_of(
        &self,
        actor: Actor,
        account: AccountId,
        owner: Owner,
    ) -> Result<Vec<Credential>, AppError> {
        let read = self.store.read()?;
        let now = self.now();
        let mut visible = Vec::new();
        for kind in [
            CredentialKind::Authtoken,
            CredentialKind::ApiKey,
            CredentialKind::SshKey,
        ] {
            let (resource, object) = credential_resource(kind);
            let target = Target::new(resource, "list", object, account.to_string());
            match self.authorize(&read, actor, account, target, now) {
                Ok(()) => visible.push(kind),
                Err(AppError::Forbidden { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        let mut owned: Vec<Credential> = read
            .owner_credentials(account, owner)?
            .into_iter()
            .filter(|c| visible.contains(&c.id.kind))
            .collect();
        owned.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        Ok(owned)
    }

    /// Number of live credentials in the lookup index.
    pub fn live_credentials(&self) -> usize {
        self.store.index().len()
    }
}

/// The snapshot in `slot`, begun now if there is none yet.
fn open_once<'a>(slot: &'a mut Option<ReadTx>, store: &Store) -> Result<&'a ReadTx, AppError> {
    if slot.is_none() {
        *slot = Some(store.read()?);
    }
    slot.as_ref()
        .ok_or_else(|| AppError::DataDir("no snapshot".into()))
}

/// What the database records of each server key: (version, fingerprint).
pub(crate) fn fingerprints(keyring: &Keyring) -> Vec<(u32, u64)> {
    keyring
        .newest_first()
        .map(|(version, key)| (version, key_fingerprint(key)))
        .collect()
}

/// What the database records of a server key: 64 bits of a keyed hash of a fixed label,
/// enough to tell another key apart and nothing about the key itself.
fn key_fingerprint(hasher: &SecretHasher) -> u64 {
    let hash = hasher.hash(b"latchkey server key fingerprint v1").0;
    let mut first = [0u8; 8];
    first.copy_from_slice(hash.get(..8).unwrap_or(&[0; 8]));
    u64::from_le_bytes(first)
}

/// OpenSSH public keys start with their algorithm name; tokens start with `lk_`.
pub fn looks_like_ssh_key(presented: &str) -> bool {
    let presented = presented.trim_start();
    ["ssh-", "ecdsa-", "sk-"]
        .iter()
        .any(|prefix| presented.starts_with(prefix))
}

#[allow(clippy::too_many_arguments)]
fn record(
    tx: &mut WriteTx,
    account: &AccountId,
    now: Timestamp,
    actor: Actor,
    action: Action,
    target: String,
    before: Option<Snapshot>,
    after: Option<Snapshot>,
) -> Result<(), AppError> {
    tx.record(*account, now, actor, action, target, before, after)?;
    Ok(())
}

fn revoke(
    tx: &mut WriteTx,
    actor: Actor,
    credential: &Credential,
    cause: RevokeCause,
    now: Timestamp,
) -> Result<(), AppError> {
    tx.revoke_credential(credential, cause, now)?;
    let action = Action::CredentialRevoked(credential.id.kind);
    record(
        tx,
        &credential.account,
        now,
        actor,
        action,
        credential.id.to_string(),
        Some(Snapshot::Credential(Box::new(credential.clone()))),
        None,
    )
}

fn require_account(tx: &impl Reads, account: AccountId) -> Result<Account, AppError> {
    Ok(tx
        .account(account)?
        .ok_or_else(|| DomainError::NotFound(account.into()))?)
}

/// The owner must be a member (or bot) of the account the credential will belong to.
fn require_owner(tx: &impl Reads, account: AccountId, owner: Owner) -> Result<(), AppError> {
    if tx.standing(account, owner)?.is_none() {
        let id = crate::domain::id::AnyId(owner.id_string());
        return Err(DomainError::NotFound(id).into());
    }
    Ok(())
}

/// `found` if it exists and belongs to `account`; otherwise `id` is not found (objects of
/// other accounts do not exist from here).
fn in_account<T>(
    found: Option<T>,
    account_of: impl FnOnce(&T) -> AccountId,
    account: AccountId,
    id: impl Into<crate::domain::id::AnyId>,
) -> Result<T, AppError> {
    Ok(found
        .filter(|object| account_of(object) == account)
        .ok_or_else(|| DomainError::NotFound(id.into()))?)
}

fn bot_in(tx: &impl Reads, account: AccountId, id: BotId) -> Result<BotUser, AppError> {
    in_account(tx.bot(id)?, |bot| bot.account, account, id)
}

/// `verb` on an existing credential, with whether an administrator owns it (the policies
/// keep administrators' credentials to their owners and other administrators).
fn credential_target(
    tx: &impl Reads,
    verb: &str,
    credential: &Credential,
) -> Result<Target, AppError> {
    let owner_admin = match credential.owner {
        Owner::User(user) => tx
            .membership(credential.account, user)?
            .is_some_and(|m| m.roles.admin),
        Owner::Bot(_) => false,
    };
    Ok(Target::credential(verb, credential).with("owner_admin", owner_admin))
}

/// A new credential as the policies judge its creation: owner, and an API key's scopes.
fn creation_target(credential: &Credential) -> Target {
    let (resource, object) = credential_resource(credential.id.kind);
    let target = Target::new(resource, "create", object, "new").owned_by(credential.owner);
    if credential.id.kind == CredentialKind::ApiKey {
        target.with_value("scopes", &scopes_text(credential))
    } else {
        target
    }
}

/// An API key's scopes as the policies read them: space-separated, empty for none.
fn scopes_text(credential: &Credential) -> String {
    let scopes: Vec<String> = credential.scopes.iter().map(ToString::to_string).collect();
    scopes.join(" ")
}

/// The bounds of the API key `actor` acts with, if it acts with one: whatever it makes or
/// changes stays within them.
fn ceiling(tx: &impl Reads, actor: Actor, account: AccountId) -> Result<Option<Ceiling>, AppError> {
    match actor.credential {
        Some(id) if id.kind == CredentialKind::ApiKey => Ok(tx
            .credential(id.raw)?
            .filter(|c| c.account == account)
            .map(|c| Ceiling::of(&c))),
        _ => Ok(None),
    }
}

/// A creation's spec with what it leaves open filled from the caller's ceiling, and the
/// bounded fields it stated itself.
struct Stated {
    spec: CredentialSpec,
    fields: Vec<&'static str>,
}

fn bounded(
    tx: &impl Reads,
    actor: Actor,
    account: AccountId,
    kind: CredentialKind,
    mut spec: CredentialSpec,
) -> Result<(Option<Ceiling>, Stated), AppError> {
    let mut fields = Vec::new();
    if !spec.allowed_cidrs.is_empty() {
        fields.push("allowed_cidrs");
    }
    if spec.expires_at.is_some() {
        fields.push("expires_at");
    }
    let ceiling = ceiling(tx, actor, account)?;
    if let Some(ceiling) = &ceiling {
        ceiling.fill(kind, &mut spec);
    }
    Ok((ceiling, Stated { spec, fields }))
}

/// Refuse a credential that reaches past the caller's ceiling: a field the request stated
/// is invalid input (400 naming it); a bound it did not state (an existing key wider than
/// the caller, an SSH key that cannot carry networks) is a refusal (403).
fn within(
    ceiling: Option<&Ceiling>,
    credential: &Credential,
    stated: &[&str],
) -> Result<(), AppError> {
    match ceiling.and_then(|c| c.exceeded_by(credential)) {
        None => Ok(()),
        Some(beyond) if stated.contains(&beyond.field) => {
            Err(DomainError::invalid(beyond.field, beyond.reason).into())
        }
        Some(beyond) => Err(AppError::Forbidden {
            policy: "latchkey".to_owned(),
            reason: beyond.reason,
        }),
    }
}

fn credential_in(
    tx: &impl Reads,
    account: AccountId,
    id: CredentialId,
) -> Result<Credential, AppError> {
    Ok(tx
        .credential(id.raw)?
        .filter(|c| c.account == account && c.id.kind == id.kind)
        .ok_or_else(|| DomainError::NotFound(id.into()))?)
}
