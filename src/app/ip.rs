//! IP policies, rules and restrictions: their management (authorized and audited like
//! every operation) and the compiled gates that requests are checked against.
//!
//! Gates are compiled per account on first use and cached. Every IP change bumps one
//! generation counter after its commit; a cached gate of an older generation is compiled
//! again, so a check never uses a gate older than the last committed change it could see.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::resource::{self, Resource};
use super::{AppError, Latchkey, Target, record, require_account};
use crate::domain::DomainError;
use crate::domain::event::{Action, Actor, Snapshot};
use crate::domain::id::{AccountId, IpPolicyId, IpRestrictionId, IpRuleId};
use crate::domain::ip::{
    self, Gates, IpPolicy, IpPolicyRule, IpRestriction, Passage, RestrictionType, RuleAction,
};
use crate::domain::time::Timestamp;
use crate::store::{Page, PageRequest, Reads, WriteTx};

/// The cache of compiled gates, by account.
#[derive(Debug, Default)]
pub(super) struct GateCache {
    generation: AtomicU64,
    gates: RwLock<rustc_hash::FxHashMap<AccountId, (u64, Gates)>>,
}

/// Who is changing a restriction, from where, and whether they mean it even if it locks
/// them out of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// The address the change comes from (unknown: any enforced dashboard restriction
    /// would refuse it).
    pub from: Option<IpAddr>,
    /// The author confirmed it: the change goes through even if it refuses `from`.
    pub confirmed: bool,
}

impl Lockout {
    /// A change whose author has confirmed it (the operator on the host, a test).
    pub const CONFIRMED: Lockout = Lockout {
        from: None,
        confirmed: true,
    };
}

/// Refuse, unless confirmed, a dashboard restriction that would refuse its author's
/// address once `changed` is in place among the account's restrictions.
fn check_lockout(
    tx: &impl Reads,
    account: AccountId,
    changed: &IpRestriction,
    lockout: Lockout,
) -> Result<(), AppError> {
    if lockout.confirmed || changed.kind != RestrictionType::Dashboard || !changed.enforced {
        return Ok(());
    }
    let mut restrictions = tx.ip_restrictions(account)?;
    restrictions.retain(|r| r.id != changed.id);
    restrictions.push(changed.clone());
    let gates = ip::compile(&restrictions, &tx.ip_rules(account)?);
    let passage = gates
        .get(&RestrictionType::Dashboard)
        .map_or(Passage::Allowed, |gate| gate.check(lockout.from));
    if let Passage::Denied(_) = passage {
        let shown = lockout
            .from
            .map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
        return Err(AppError::WouldLockOut(format!(
            "enforcing {} would refuse dashboard sessions from {shown}, where this change comes from",
            changed.id
        )));
    }
    Ok(())
}

/// A new IP restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictionSpec {
    /// What it guards.
    pub kind: RestrictionType,
    /// Enforced, or warn-only.
    pub enforced: bool,
    /// The policies whose rules it applies.
    pub policies: Vec<IpPolicyId>,
    /// Its text.
    pub text: IpText,
}

/// Free text of a new IP object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpText {
    /// At most 255 bytes.
    pub description: String,
    /// At most 4096 bytes.
    pub metadata: String,
}

/// A change to an IP object; `None` keeps the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpPatch {
    /// New description.
    pub description: Option<String>,
    /// New metadata.
    pub metadata: Option<String>,
    /// New network (rules only).
    pub cidr: Option<String>,
    /// New enforcement (restrictions only).
    pub enforced: Option<bool>,
    /// New attached policies (restrictions only).
    pub policies: Option<Vec<IpPolicyId>>,
}

fn patch_text(description: &mut String, metadata: &mut String, patch: &IpPatch) {
    if let Some(d) = &patch.description {
        description.clone_from(d);
    }
    if let Some(m) = &patch.metadata {
        metadata.clone_from(m);
    }
}

/// Whether a `dashboard` restriction of `account` uses `policy`: changing such a policy
/// or its rules could lock every member out, so only administrators may.
fn used_by_dashboard(
    tx: &impl Reads,
    account: AccountId,
    policy: IpPolicyId,
) -> Result<bool, AppError> {
    Ok(tx
        .ip_restrictions(account)?
        .iter()
        .any(|r| r.kind == RestrictionType::Dashboard && r.policies.contains(&policy)))
}

/// Attached policies must exist in the account (named as a field error: they come from
/// the body, not the path).
fn require_policies(
    tx: &impl Reads,
    account: AccountId,
    policies: &[IpPolicyId],
) -> Result<(), AppError> {
    ip::validate_policies(policies)?;
    for id in policies {
        if tx.ip_policy(*id)?.is_none_or(|p| p.account != account) {
            return Err(
                DomainError::invalid("ip_policy_ids", format!("{id} does not exist")).into(),
            );
        }
    }
    Ok(())
}

fn policy_target(verb: &str, id: String, dashboard: bool) -> Target {
    Target::new("ip_policies", verb, "ip_policy", id).with("used_by_dashboard", dashboard)
}

fn rule_target(verb: &str, id: String, dashboard: bool) -> Target {
    Target::new("ip_policy_rules", verb, "ip_policy_rule", id).with("used_by_dashboard", dashboard)
}

fn restriction_target(verb: &str, id: String, kind: RestrictionType) -> Target {
    Target::new("ip_restrictions", verb, "ip_restriction", id).with_value("type", kind.as_str())
}

impl Latchkey {
    pub(super) fn ip_write<T>(
        &self,
        work: impl FnOnce(&mut WriteTx) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let result = self.store.write(work);
        if result.is_ok() {
            self.gates.generation.fetch_add(1, Ordering::Release);
        }
        result
    }

    /// Create an IP policy (with no rules yet).
    pub fn create_ip_policy(
        &self,
        actor: Actor,
        account: AccountId,
        text: IpText,
    ) -> Result<IpPolicy, AppError> {
        let now = self.now();
        self.ip_write(|tx| {
            require_account(tx, account)?;
            self.authorize(
                tx,
                actor,
                account,
                policy_target("create", "new".into(), false),
                now,
            )?;
            ip::validate_text(&text.description, &text.metadata)?;
            let policy = IpPolicy {
                id: IpPolicyId::generate(now)?,
                account,
                created_at: now,
                description: text.description,
                metadata: text.metadata,
            };
            resource::created(tx, actor, now, policy)
        })
    }

    /// Change an IP policy's description or metadata.
    pub fn update_ip_policy(
        &self,
        actor: Actor,
        account: AccountId,
        id: IpPolicyId,
        patch: &IpPatch,
    ) -> Result<IpPolicy, AppError> {
        let now = self.now();
        self.ip_write(|tx| {
            let before = IpPolicy::find(tx, account, id)?;
            let dashboard = used_by_dashboard(tx, account, id)?;
            self.authorize(
                tx,
                actor,
                account,
                policy_target("update", id.to_string(), dashboard),
                now,
            )?;
            let mut after = before.clone();
            patch_text(&mut after.description, &mut after.metadata, patch);
            ip::validate_text(&after.description, &after.metadata)?;
            resource::updated(tx, actor, now, &before, after)
        })
    }

    /// Delete an IP policy and its rules. Restrictions that attach it keep the reference
    /// and treat it as a policy with no rules (as ngrok does).
    pub fn delete_ip_policy(
        &self,
        actor: Actor,
        account: AccountId,
        id: IpPolicyId,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.ip_write(|tx| {
            let policy = IpPolicy::find(tx, account, id)?;
            let dashboard = used_by_dashboard(tx, account, id)?;
            self.authorize(
                tx,
                actor,
                account,
                policy_target("delete", id.to_string(), dashboard),
                now,
            )?;
            for rule in tx.ip_rules(account)?.into_iter().filter(|r| r.policy == id) {
                resource::deleted(tx, actor, now, &rule)?;
            }
            resource::deleted(tx, actor, now, &policy)
        })
    }

    /// An IP policy of the account.
    pub fn ip_policy(
        &self,
        actor: Actor,
        account: AccountId,
        id: IpPolicyId,
    ) -> Result<IpPolicy, AppError> {
        let read = self.store.read()?;
        let policy = IpPolicy::find(&read, account, id)?;
        let target = policy_target("get", id.to_string(), false);
        self.authorize(&read, actor, account, target, self.now())?;
        Ok(policy)
    }

    /// A page of the account's IP policies, newest first.
    pub fn ip_policies(
        &self,
        actor: Actor,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<IpPolicy>, AppError> {
        let read = self.store.read()?;
        let target = policy_target("list", account.to_string(), false);
        self.authorize(&read, actor, account, target, self.now())?;
        Ok(read.ip_policies_page(account, page)?)
    }

    /// Add a rule to an IP policy of the account.
    pub fn create_ip_rule(
        &self,
        actor: Actor,
        account: AccountId,
        policy: IpPolicyId,
        cidr: &str,
        action: RuleAction,
        text: IpText,
    ) -> Result<IpPolicyRule, AppError> {
        let now = self.now();
        self.ip_write(|tx| {
            let exists = tx.ip_policy(policy)?.is_some_and(|p| p.account == account);
            let dashboard = exists && used_by_dashboard(tx, account, policy)?;
            self.authorize(
                tx,
                actor,
                account,
                rule_target("create", "new".into(), dashboard),
                now,
            )?;
            if !exists {
                return Err(DomainError::invalid(
                    "ip_policy_id",
                    format!("{policy} does not exist"),
                )
                .into());
            }
            ip::validate_text(&text.description, &text.metadata)?;
            let rule = IpPolicyRule {
                id: IpRuleId::generate(now)?,
                account,
                policy,
                created_at: now,
                description: text.description,
                metadata: text.metadata,
                cidr: ip::parse_cidr(cidr)?,
                action,
            };
            resource::created(tx, actor, now, rule)
        })
    }

    /// Change a rule's description, metadata or network.
    pub fn update_ip_rule(
        &self,
        actor: Actor,
        account: AccountId,
        id: IpRuleId,
        patch: &IpPatch,
    ) -> Result<IpPolicyRule, AppError> {
        let now = self.now();
        self.ip_write(|tx| {
            let before = IpPolicyRule::find(tx, account, id)?;
            let dashboard = used_by_dashboard(tx, account, before.policy)?;
            self.authorize(
                tx,
                actor,
                account,
                rule_target("update", id.to_string(), dashboard),
                now,
            )?;
            let mut after = before.clone();
            patch_text(&mut after.description, &mut after.metadata, patch);
            ip::validate_text(&after.description, &after.metadata)?;
            if let Some(cidr) = &patch.cidr {
                after.cidr = ip::parse_cidr(cidr)?;
            }
            resource::updated(tx, actor, now, &before, after)
        })
    }

    /// Delete a rule.
    pub fn delete_ip_rule(
        &self,
        actor: Actor,
        account: AccountId,
        id: IpRuleId,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.ip_write(|tx| {
            let rule = IpPolicyRule::find(tx, account, id)?;
            let dashboard = used_by_dashboard(tx, account, rule.policy)?;
            self.authorize(
                tx,
                actor,
                account,
                rule_target("delete", id.to_string(), dashboard),
                now,
            )?;
            resource::deleted(tx, actor, now, &rule)
        })
    }

    /// A rule of the account.
    pub fn ip_rule(
        &self,
        actor: Actor,
        account: AccountId,
        id: IpRuleId,
    ) -> Result<IpPolicyRule, AppError> {
        let read = self.store.read()?;
        let rule = IpPolicyRule::find(&read, account, id)?;
        self.authorize(
            &read,
            actor,
            account,
            rule_target("get", id.to_string(), false),
            self.now(),
        )?;
        Ok(rule)
    }

    /// A page of the account's IP policy rules, newest first.
    pub fn ip_rules(
        &self,
        actor: Actor,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<IpPolicyRule>, AppError> {
        let read = self.store.read()?;
        let target = rule_target("list", account.to_string(), false);
        self.authorize(&read, actor, account, target, self.now())?;
        Ok(read.ip_rules_page(account, page)?)
    }

    /// Create an IP restriction of `kind` over `policies`.
    pub fn create_ip_restriction(
        &self,
        actor: Actor,
        account: AccountId,
        spec: RestrictionSpec,
        lockout: Lockout,
    ) -> Result<IpRestriction, AppError> {
        let RestrictionSpec {
            kind,
            enforced,
            policies,
            text,
        } = spec;
        let now = self.now();
        self.ip_write(|tx| {
            require_account(tx, account)?;
            self.authorize(
                tx,
                actor,
                account,
                restriction_target("create", "new".into(), kind),
                now,
            )?;
            ip::validate_text(&text.description, &text.metadata)?;
            require_policies(tx, account, &policies)?;
            let restriction = IpRestriction {
                id: IpRestrictionId::generate(now)?,
                account,
                created_at: now,
                description: text.description,
                metadata: text.metadata,
                enforced,
                kind,
                policies,
            };
            check_lockout(tx, account, &restriction, lockout)?;
            resource::created(tx, actor, now, restriction)
        })
    }

    /// Change a restriction's text, enforcement or policies (its type is fixed).
    pub fn update_ip_restriction(
        &self,
        actor: Actor,
        account: AccountId,
        id: IpRestrictionId,
        patch: &IpPatch,
        lockout: Lockout,
    ) -> Result<IpRestriction, AppError> {
        let now = self.now();
        self.ip_write(|tx| {
            let before = IpRestriction::find(tx, account, id)?;
            let target = restriction_target("update", id.to_string(), before.kind);
            self.authorize(tx, actor, account, target, now)?;
            let mut after = before.clone();
            patch_text(&mut after.description, &mut after.metadata, patch);
            ip::validate_text(&after.description, &after.metadata)?;
            if let Some(enforced) = patch.enforced {
                after.enforced = enforced;
            }
            if let Some(policies) = &patch.policies {
                require_policies(tx, account, policies)?;
                after.policies.clone_from(policies);
            }
            if after != before {
                check_lockout(tx, account, &after, lockout)?;
            }
            resource::updated(tx, actor, now, &before, after)
        })
    }

    /// Delete a restriction.
    pub fn delete_ip_restriction(
        &self,
        actor: Actor,
        account: AccountId,
        id: IpRestrictionId,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.ip_write(|tx| {
            let restriction = IpRestriction::find(tx, account, id)?;
            let target = restriction_target("delete", id.to_string(), restriction.kind);
            self.authorize(tx, actor, account, target, now)?;
            resource::deleted(tx, actor, now, &restriction)
        })
    }

    /// A restriction of the account.
    pub fn ip_restriction(
        &self,
        actor: Actor,
        account: AccountId,
        id: IpRestrictionId,
    ) -> Result<IpRestriction, AppError> {
        let read = self.store.read()?;
        let restriction = IpRestriction::find(&read, account, id)?;
        let target = restriction_target("get", id.to_string(), restriction.kind);
        self.authorize(&read, actor, account, target, self.now())?;
        Ok(restriction)
    }

    /// A page of the account's IP restrictions, newest first.
    pub fn ip_restrictions(
        &self,
        actor: Actor,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<IpRestriction>, AppError> {
        let read = self.store.read()?;
        let target = Target::new(
            "ip_restrictions",
            "list",
            "ip_restriction",
            account.to_string(),
        );
        self.authorize(&read, actor, account, target, self.now())?;
        Ok(read.ip_restrictions_page(account, page)?)
    }

    /// Judge a request of `kind` from `ip` against the account's restrictions of that
    /// type. Compiled gates are cached; this reads the store only after an IP change.
    pub fn check_ip(
        &self,
        account: AccountId,
        kind: RestrictionType,
        ip: Option<IpAddr>,
    ) -> Result<Passage, AppError> {
        let gates = self.gates_of(account)?;
        Ok(gates
            .get(&kind)
            .map_or(Passage::Allowed, |gate| gate.check(ip)))
    }

    fn gates_of(&self, account: AccountId) -> Result<Gates, AppError> {
        let generation = self.gates.generation.load(Ordering::Acquire);
        {
            let cached = self
                .gates
                .gates
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((at, gates)) = cached.get(&account)
                && *at == generation
            {
                return Ok(Arc::clone(gates));
            }
        }
        let read = self.store.read()?;
        let compiled: Gates = Arc::new(ip::compile(
            &read.ip_restrictions(account)?,
            &read.ip_rules(account)?,
        ));
        self.gates
            .gates
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account, (generation, Arc::clone(&compiled)));
        Ok(compiled)
    }

    /// Record requests that warn-only restrictions let through: one event per
    /// restriction and address, with how many and when (the server batches them).
    pub fn record_ip_warnings(
        &self,
        warnings: &[(
            AccountId,
            IpRestrictionId,
            IpAddr,
            u64,
            Timestamp,
            Timestamp,
        )],
    ) -> Result<(), AppError> {
        if warnings.is_empty() {
            return Ok(());
        }
        let now = self.now();
        self.store.write(|tx| {
            for &(account, restriction, ip, count, first, last) in warnings {
                let snapshot = Snapshot::IpWarning {
                    ip: ip.to_string(),
                    count,
                    first,
                    last,
                };
                record(
                    tx,
                    &account,
                    now,
                    Actor::SYSTEM,
                    Action::IpRestrictionWarned,
                    restriction.to_string(),
                    None,
                    Some(snapshot),
                )?;
            }
            Ok(())
        })
    }
}
