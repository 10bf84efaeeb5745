//! The appliance authorizes its own operations with the policy engine: each operation
//! names its action and target, and the request the policies see is built here from the
//! actor's membership and credential, read in the same transaction as the change.

use latchkey_policy_abi as abi;

use super::AppError;
pub use crate::domain::action::IAM_ACTIONS;
use crate::domain::credential::{Credential, CredentialKind, Owner, OwnerStanding};
use crate::domain::event::{Actor, Principal};
use crate::domain::id::AccountId;
use crate::domain::time::Timestamp;
use crate::domain::user::{MemberState, Membership, Roles};
use crate::policy::{PolicyEngine, Verdict};
use crate::store::Reads;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// What an operation is about to do, as the policies see it: `action` on one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `iam.<resource>.<verb>`, `agent.bind`, or an application action.
    pub action: String,
    /// The kind of object (`user`, `credential`, `api_key`, `computer`, …).
    pub kind: String,
    /// Its id (for a create, the id it will have or `new`).
    pub id: String,
    /// Its owner, for credentials.
    pub owner: Option<String>,
    /// The tenant it belongs to, for application objects.
    pub tenant: Option<String>,
    /// Facts the policies need about it (`target_admin`, `grants_admin`, `personal`,
    /// `used_by_dashboard`, `type`, or a caller's own).
    pub attributes: Vec<(String, String)>,
    /// Caller-supplied context values.
    pub context: Vec<(String, String)>,
    /// The time the question is about (a what-if of `POST /authorize`); now when `None`.
    pub at: Option<Timestamp>,
}

impl Target {
    /// `iam.<resource>.<verb>` on the object `kind`/`id`.
    pub fn new(resource: &str, verb: &str, kind: &str, id: impl Into<String>) -> Target {
        Target::action(format!("iam.{resource}.{verb}"), kind, id)
    }

    /// Any action on the object `kind`/`id`.
    pub fn action(action: impl Into<String>, kind: &str, id: impl Into<String>) -> Target {
        Target {
            action: action.into(),
            kind: kind.to_owned(),
            id: id.into(),
            owner: None,
            tenant: None,
            attributes: Vec::new(),
            context: Vec::new(),
            at: None,
        }
    }

    /// With an owner.
    pub fn owned_by(mut self, owner: Owner) -> Target {
        self.owner = Some(owner.id_string());
        self
    }

    /// With a yes/no fact the policies decide on.
    pub fn with(mut self, name: &'static str, value: bool) -> Target {
        self.attributes.push((name.to_owned(), value.to_string()));
        self
    }

    /// With a fact that is a word (an IP restriction's `type`, an API key's `scopes`).
    pub fn with_value(mut self, name: &'static str, value: &str) -> Target {
        self.attributes.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `verb` on an existing credential: its path's resource, owner and personal flag.
    pub fn credential(verb: &str, credential: &Credential) -> Target {
        let (resource, kind) = credential_resource(credential.id.kind);
        Target::new(resource, verb, kind, credential.id.to_string())
            .owned_by(credential.owner)
            .with("personal", credential.personal)
    }

    /// `verb` on a member whose current roles are `roles`.
    pub fn member(verb: &str, user: impl Into<String>, roles: &Roles) -> Target {
        Target::new("users", verb, "user", user).with("target_admin", roles.admin)
    }
}

/// One target per `iam` action and per catalog permission, on an ordinary object: not an
/// administrator, granting nothing above, owned by `owner`, not used by a dashboard
/// restriction, an `api` restriction; catalog objects belong to no tenant.
pub(super) fn ordinary_targets(owner: Owner) -> Vec<Target> {
    let mut targets = Vec::new();
    for (resource, kind, verbs) in IAM_ACTIONS {
        for verb in verbs {
            targets.push(
                Target::new(resource, verb, kind, "*")
                    .owned_by(owner)
                    .with("target_admin", false)
                    .with("grants_admin", false)
                    .with("exceeds_own_roles", false)
                    .with("personal", false)
                    .with("owner_admin", false)
                    .with_value("scopes", "")
                    .with("used_by_dashboard", false)
                    .with_value("type", "api"),
            );
        }
    }
    for permission in abi::BUILTIN_CATALOG {
        let kind = permission.split('.').next().unwrap_or(permission);
        targets.push(Target::action(permission, kind, "*"));
    }
    targets
}

/// The API path segment and object kind of a credential kind.
pub fn credential_resource(kind: CredentialKind) -> (&'static str, &'static str) {
    match kind {
        CredentialKind::Authtoken => ("credentials", "credential"),
        CredentialKind::ApiKey => ("api_keys", "api_key"),
        CredentialKind::SshKey => ("ssh_credentials", "ssh_credential"),
    }
}

/// Ok when the policies allow `request`, else the refusal naming the deciding policy.
pub(super) fn judge(policies: &PolicyEngine, request: &abi::Request) -> Result<(), AppError> {
    allowed(policies.decide(request))
}

/// Ok for an allowing verdict, else the refusal naming the deciding policy.
fn allowed(verdict: Verdict) -> Result<(), AppError> {
    if verdict.allowed {
        Ok(())
    } else {
        Err(AppError::Forbidden {
            policy: verdict.policy,
            reason: verdict.reason,
        })
    }
}

/// The verdict for `target` as `principal` in `account`, listing every module's answer
/// when `explain`. A principal out of good standing is a deny naming `latchkey`, not an
/// error: the question was answered.
pub(super) fn decide(
    policies: &PolicyEngine,
    tx: &impl Reads,
    principal: Actor,
    account: AccountId,
    target: Target,
    now: Timestamp,
    explain: bool,
) -> Result<Verdict, AppError> {
    let permission = permission_index(tx, account, &target.action)?;
    match resolve(tx, principal, account) {
        Ok(resolved) => decide_resolved(policies, Ok(&resolved), target, permission, now, explain),
        Err(err) => decide_resolved(policies, Err(err), target, permission, now, explain),
    }
}

/// The verdict for `target` by a principal as resolving it went (a refusal to resolve is
/// a deny naming `latchkey`). The principal's encoding is made once per resolved
/// principal; each decision encodes only its action, resource and context after it.
pub(super) fn decide_resolved(
    policies: &PolicyEngine,
    resolved: Result<&Resolved, AppError>,
    target: Target,
    permission: Option<u32>,
    now: Timestamp,
    explain: bool,
) -> Result<Verdict, AppError> {
    let now = target.at.unwrap_or(now);
    let resolved = match resolved.and_then(|r| r.live(now).map(|()| r)) {
        Ok(resolved) => resolved,
        Err(AppError::Forbidden { reason, .. }) => {
            return Ok(Verdict {
                allowed: false,
                policy: "latchkey".to_owned(),
                reason,
                evaluated: Vec::new(),
                request: None,
            });
        }
        Err(other) => return Err(other),
    };
    let principal = resolved.encoded.get_or_init(|| {
        // Encoding owned strings into a Vec cannot fail; an empty encoding would make the
        // request undecodable, which every policy refuses.
        crate::policy::encode_principal(&resolved.principal).unwrap_or_default()
    });
    let (action, resource, context) = request_parts(resolved, target, permission, now);
    let mut verdict = policies.decide_parts(principal, &action, &resource, &context, explain);
    if explain {
        verdict.request = Some(Box::new(abi::Request {
            principal: resolved.principal.clone(),
            action,
            resource,
            context,
        }));
    }
    Ok(verdict)
}

/// Whether deciding `action` needs the account's catalog from the store: only an
/// application action that is not a built-in permission does.
pub(super) fn needs_catalog(action: &str) -> bool {
    !(action.starts_with("iam.")
        || action == "agent.bind"
        || abi::builtin_permission(action).is_some())
}

/// The catalog index the tenant-roles policy judges for `action` (none for `iam.*`).
pub(super) fn permission_index(
    tx: &impl Reads,
    account: AccountId,
    action: &str,
) -> Result<Option<u32>, AppError> {
    if action.starts_with("iam.") || action == "agent.bind" {
        return Ok(None);
    }
    super::tenancy::catalog_index(tx, account, action)
}

fn refused(reason: String) -> AppError {
    AppError::Forbidden {
        policy: String::new(),
        reason,
    }
}

/// A principal as the policies see it, resolved from the store, with the expiry of the
/// credential it acts with (checked at every use, so a cached one still expires).
#[derive(Debug)]
pub(super) struct Resolved {
    principal: abi::Principal,
    expires_at: Option<Timestamp>,
    /// The encoded head of this principal's `iam.credentials.verify` request, made on
    /// first use: `/verify` asks it on every call.
    verify_head: OnceLock<Vec<u8>>,
    /// The principal encoded as the head of any request, made on first use.
    encoded: OnceLock<Vec<u8>>,
    /// The generation of the policy set that allowed that request, when every module
    /// deciding it declares it does not read the clock (0: none). A store write drops
    /// the whole `Resolved`, a reload changes the generation: either asks again.
    verify_allowed_in: AtomicU64,
}

/// The action `/verify` and `/authorize` callers need.
const VERIFY: &str = "iam.credentials.verify";

impl Resolved {
    fn live(&self, now: Timestamp) -> Result<(), AppError> {
        if self.expires_at.is_some_and(|at| at <= now) {
            let id = self
                .principal
                .credential
                .as_ref()
                .map_or("", |c| c.id.as_str());
            return Err(refused(format!(
                "{id} is not a live credential of the actor"
            )));
        }
        Ok(())
    }
}

/// May this resolved principal ask who a credential is (or what a principal may do)?
/// Decided by the policies from a request head encoded once; an allow is remembered
/// only while the store and the policy set stay as they were, and only when the
/// deciding modules declare they do not read the clock (so the same question would get
/// the same answer).
pub(super) fn may_verify(
    policies: &PolicyEngine,
    resolved: &Resolved,
    now: Timestamp,
) -> Result<(), AppError> {
    resolved.live(now)?;
    let head = resolved.verify_head.get_or_init(|| {
        let account = resolved.principal.account.clone();
        let resource = abi::Resource {
            kind: "credential".to_owned(),
            id: account.clone(),
            account,
            tenant: None,
            owner: None,
            permission: None,
            attributes: Vec::new(),
        };
        // Encoding owned strings into a Vec cannot fail; an empty head would make the
        // request undecodable, which every policy refuses.
        crate::policy::encode_head(&resolved.principal, VERIFY, &resource).unwrap_or_default()
    });
    let set = policies.current_guard();
    if resolved.verify_allowed_in.load(Ordering::Acquire) == set.generation() {
        return Ok(());
    }
    let context = abi::Context {
        time_ms: now.as_millis(),
        values: Vec::new(),
    };
    let verdict = set.decide_head(VERIFY, head, &context);
    if verdict.allowed && set.decides_timelessly(VERIFY) {
        resolved
            .verify_allowed_in
            .store(set.generation(), Ordering::Release);
    }
    allowed(verdict)
}

/// Resolve `actor` in `account`: its roles and its credential. Refused (before any policy
/// runs) when the actor is not in good standing.
pub(super) fn resolve(
    tx: &impl Reads,
    actor: Actor,
    account: AccountId,
) -> Result<Resolved, AppError> {
    let (kind, roles) = match actor.principal {
        Principal::System => (abi::PrincipalKind::System, None),
        Principal::User(user) => {
            let membership = tx.membership(account, user)?;
            match membership {
                Some(Membership {
                    state: MemberState::Active,
                    roles,
                    ..
                }) => (abi::PrincipalKind::User, Some(roles.for_policies())),
                Some(_) => return Err(refused(format!("{user} is disabled in {account}"))),
                None => return Err(refused(format!("{user} is not a member of {account}"))),
            }
        }
        Principal::Bot(bot) => match tx.standing(account, Owner::Bot(bot))? {
            Some(OwnerStanding::Active) => (abi::PrincipalKind::Bot, None),
            Some(_) => return Err(refused(format!("{bot} is inactive"))),
            None => return Err(refused(format!("{bot} is not a bot user of {account}"))),
        },
        // A SCIM token acts at the SCIM endpoint only, under its own gate: no policy
        // decision is ever asked for it (fail closed).
        Principal::ScimToken(token) => {
            return Err(refused(format!("{token} acts only at the SCIM endpoint")));
        }
    };
    let (credential, expires_at) = match actor.credential {
        None => (None, None),
        Some(id) => {
            let credential = tx
                .credential(id.raw)?
                .filter(|c| c.id == id && c.account == account)
                .filter(|c| Some(c.owner) == principal_owner(actor.principal))
                .ok_or_else(|| refused(format!("{id} is not a live credential of the actor")))?;
            (Some(credential_info(&credential)), credential.expires_at)
        }
    };
    Ok(Resolved {
        principal: abi::Principal {
            kind,
            id: actor.principal.id_string(),
            account: account.to_string(),
            roles,
            assignments: match principal_owner(actor.principal) {
                Some(owner) => super::tenancy::policy_assignments(tx, account, owner)?,
                None => Vec::new(),
            },
            // MFA arrives with login.
            mfa: abi::Mfa::default(),
            credential,
            source_ip: None,
        },
        expires_at,
        verify_head: OnceLock::new(),
        encoded: OnceLock::new(),
        verify_allowed_in: AtomicU64::new(0),
    })
}

/// The request for `target` by a resolved principal, at `now`; `permission` is the
/// catalog index of the target's action, for application actions.
fn request_for(
    resolved: &Resolved,
    target: Target,
    permission: Option<u32>,
    now: Timestamp,
) -> Result<abi::Request, AppError> {
    resolved.live(now)?;
    let (action, resource, context) = request_parts(resolved, target, permission, now);
    Ok(abi::Request {
        principal: resolved.principal.clone(),
        action,
        resource,
        context,
    })
}

/// A request's action, resource and context for `target` by a resolved principal: all
/// of it but the principal.
fn request_parts(
    resolved: &Resolved,
    target: Target,
    permission: Option<u32>,
    now: Timestamp,
) -> (String, abi::Resource, abi::Context) {
    let resource = abi::Resource {
        kind: target.kind,
        id: target.id,
        account: resolved.principal.account.clone(),
        tenant: target.tenant,
        owner: target.owner,
        // The catalog index the tenant-roles policy judges (none for `iam.*`).
        permission,
        attributes: target.attributes,
    };
    let context = abi::Context {
        time_ms: now.as_millis(),
        values: target.context,
    };
    (target.action, resource, context)
}

/// The request for `target` by `actor`, resolved in `tx`'s snapshot.
pub(super) fn request(
    tx: &impl Reads,
    actor: Actor,
    account: AccountId,
    target: Target,
    now: Timestamp,
) -> Result<abi::Request, AppError> {
    let permission = permission_index(tx, account, &target.action)?;
    request_for(&resolve(tx, actor, account)?, target, permission, now)
}

/// Resolved principals, kept until the next write that could change the model (the
/// store's generation moves; signals such as uses do not move it), so a hot caller's
/// roles, assignments and credential are not read again for every request. Bounded: it
/// is emptied when it grows past `MAX_CACHED`.
#[derive(Debug, Default)]
pub(super) struct PrincipalCache {
    entries: RwLock<FxHashMap<(AccountId, Actor), Cached>>,
}

/// A resolved principal and the store generation it was read at.
type Cached = (u64, Arc<Resolved>);

const MAX_CACHED: usize = 10_000;

impl PrincipalCache {
    /// The resolved principal for `actor`, if one of `generation` is cached.
    pub(super) fn get(
        &self,
        actor: Actor,
        account: AccountId,
        generation: u64,
    ) -> Option<Arc<Resolved>> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(account, actor))
            .filter(|(at, _)| *at == generation)
            .map(|(_, resolved)| Arc::clone(resolved))
    }

    /// Keep `resolved`, read from a snapshot begun after `generation` was read.
    pub(super) fn put(
        &self,
        actor: Actor,
        account: AccountId,
        generation: u64,
        resolved: &Arc<Resolved>,
    ) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_CACHED {
            entries.clear();
        }
        entries.insert((account, actor), (generation, Arc::clone(resolved)));
    }

    /// The resolved principal for `actor`, from the cache if it is of `generation`, else
    /// from `tx` (a snapshot begun after `generation` was read), then cached.
    pub(super) fn get_or_resolve(
        &self,
        actor: Actor,
        account: AccountId,
        generation: u64,
        tx: impl FnOnce() -> Result<crate::store::ReadTx, AppError>,
    ) -> Result<Arc<Resolved>, AppError> {
        if let Some(resolved) = self.get(actor, account, generation) {
            return Ok(resolved);
        }
        let resolved = Arc::new(resolve(&tx()?, actor, account)?);
        self.put(actor, account, generation, &resolved);
        Ok(resolved)
    }
}

fn principal_owner(principal: Principal) -> Option<Owner> {
    match principal {
        Principal::System => None,
        Principal::User(user) => Some(Owner::User(user)),
        Principal::Bot(bot) => Some(Owner::Bot(bot)),
        Principal::ScimToken(_) => None,
    }
}

fn credential_info(credential: &Credential) -> abi::CredentialInfo {
    abi::CredentialInfo {
        kind: match credential.id.kind {
            CredentialKind::Authtoken => abi::CredentialKind::Authtoken,
            CredentialKind::ApiKey => abi::CredentialKind::ApiKey,
            CredentialKind::SshKey => abi::CredentialKind::SshKey,
        },
        id: credential.id.to_string(),
        personal: credential.personal,
        acl: credential.acl.rules().to_vec(),
        scopes: credential.scopes.iter().map(ToString::to_string).collect(),
    }
}
