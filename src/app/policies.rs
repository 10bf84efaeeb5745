//! The live policy set. It decides for every account at once, so changing it is the host
//! operator's (the admin socket in the data directory, or SIGHUP), never an account's;
//! over the network an account's administrators may read its names, patterns and hashes.
//! Every start and every reload, refused ones included, is logged and recorded in the
//! appliance trail ([`AccountId::APPLIANCE`]) with the set before and after.

use super::{AppError, Latchkey, Target};
use crate::domain::event::{Action, Actor, Event, PolicyDigest, PolicySetState, Snapshot};
use crate::domain::id::AccountId;
use crate::policy::{Isolation, Kind, LoadedPolicy, PolicySet};
use crate::store::{EventQuery, Page, Reads};

/// One loaded module, as its operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePolicy {
    /// Its name.
    pub name: String,
    /// `builtin` or `custom`.
    pub kind: &'static str,
    /// The action patterns routed to it.
    pub actions: Vec<String>,
    /// The patterns taken out of `actions`.
    pub exclude: Vec<String>,
    /// SHA-256 of the module as loaded, in hex.
    pub sha256: String,
    /// `reuse` or `per-decision`.
    pub isolation: &'static str,
    /// Whether its decisions may depend on the time.
    pub reads_clock: bool,
    /// Fuel per decision.
    pub fuel: u64,
    /// Linear memory ceiling, in bytes.
    pub memory_bytes: usize,
    /// Decisions it failed (each a deny) since it was loaded.
    pub faults: u64,
}

/// The whole live set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSet {
    /// Moves at every reload.
    pub generation: u64,
    /// The modules, in evaluation order.
    pub policies: Vec<LivePolicy>,
}

impl LivePolicy {
    fn of(policy: &LoadedPolicy) -> LivePolicy {
        let manifest = policy.manifest();
        let patterns = |list: &[crate::domain::action::ActionPattern]| {
            list.iter().map(ToString::to_string).collect()
        };
        LivePolicy {
            name: policy.name().to_owned(),
            kind: match manifest.kind {
                Kind::Builtin => "builtin",
                Kind::Custom => "custom",
            },
            actions: patterns(&manifest.actions),
            exclude: patterns(&manifest.exclude),
            sha256: policy.sha256(),
            isolation: match manifest.isolation {
                Isolation::Reuse => "reuse",
                Isolation::PerDecision => "per-decision",
            },
            reads_clock: manifest.reads_clock,
            fuel: policy.limits().fuel,
            memory_bytes: policy.limits().memory_bytes,
            faults: policy.faults(),
        }
    }
}

impl LiveSet {
    fn of(set: &PolicySet) -> LiveSet {
        LiveSet {
            generation: set.generation(),
            policies: set.policies().iter().map(LivePolicy::of).collect(),
        }
    }
}

impl Latchkey {
    /// The live set, for the host operator.
    pub fn live_policies(&self) -> Result<LiveSet, AppError> {
        Ok(LiveSet::of(&self.engine()?.current()))
    }

    /// The live set, for `actor` of `account` (`iam.policies.list`: administrators).
    pub fn policy_set(&self, actor: Actor, account: AccountId) -> Result<LiveSet, AppError> {
        let read = self.store.read()?;
        let target = Target::new("policies", "list", "policy_set", "policies");
        self.authorize(&read, actor, account, target, self.now())?;
        self.live_policies()
    }

    /// Reload the policies folder, for the host operator (`trigger`: what asked, as the
    /// trail records it: `signal` or `operator`); on any invalid module the current set
    /// stays and the error is returned. Either way the outcome is logged and recorded in
    /// the appliance trail.
    pub fn reload_policies(&self, trigger: &str) -> Result<LiveSet, AppError> {
        let engine = self.engine()?;
        let reloaded = engine.reload_with(|current, new| {
            let (before, after) = (state_of(current, None), state_of(new, None));
            self.record_appliance(Action::PolicySetReloaded, trigger, Some(before), after)
        });
        if reloaded.is_ok() {
            let now = state_of(&engine.current(), None);
            tracing::info!(trigger, generation = now.generation, policies = %digests(&now), "policies reloaded");
        }
        if let Err(err) = &reloaded {
            let why = err.to_string();
            tracing::error!(trigger, error = %why, "policies not reloaded; the current set stays");
            let before = state_of(&engine.current(), None);
            let after = state_of(&engine.current(), Some(why));
            // The refusal is the answer; a trail that cannot take it is only logged.
            if let Err(trail) =
                self.record_appliance(Action::PolicySetRefused, trigger, Some(before), after)
            {
                tracing::error!(error = %trail, "the refused reload could not be recorded");
            }
        }
        reloaded?;
        self.live_policies()
    }

    /// Log the set `serve` starts with and record it in the appliance trail, with the set
    /// the trail last recorded as before (so a folder changed while the server was down
    /// shows as a change).
    pub fn record_policy_start(&self) -> Result<(), AppError> {
        let after = state_of(&self.engine()?.current(), None);
        tracing::info!(generation = after.generation, policies = %digests(&after), "policies loaded");
        let before = self
            .appliance_trail(1)?
            .into_iter()
            .next()
            .and_then(|last| match last.after {
                Some(Snapshot::PolicySet(state)) => Some(state),
                _ => None,
            });
        self.record_appliance(Action::PolicySetLoaded, "start", before, after)
    }

    /// The appliance trail, newest first (at most `limit` events), for the host operator.
    pub fn appliance_trail(&self, limit: usize) -> Result<Vec<Event>, AppError> {
        let query = EventQuery {
            limit,
            ..EventQuery::default()
        };
        Ok(self
            .store
            .read()?
            .events_page(AccountId::APPLIANCE, &query)?
            .items)
    }

    /// A page of the appliance trail, for `actor` of `account` (`iam.policies.list`, as
    /// the set itself: administrators). A `before` that is not an event of the appliance
    /// trail is `NotFound`.
    pub fn policy_events(
        &self,
        actor: Actor,
        account: AccountId,
        query: &EventQuery,
    ) -> Result<Page<Event>, AppError> {
        let read = self.store.read()?;
        let target = Target::new("policies", "list", "policy_set", "policies");
        self.authorize(&read, actor, account, target, self.now())?;
        Ok(read.events_page(AccountId::APPLIANCE, query)?)
    }

    fn record_appliance(
        &self,
        action: Action,
        trigger: &str,
        before: Option<PolicySetState>,
        after: PolicySetState,
    ) -> Result<(), AppError> {
        let actor = Actor::SYSTEM;
        let now = self.now();
        self.store.write(|tx| {
            tx.record(
                AccountId::APPLIANCE,
                now,
                actor,
                action,
                trigger.to_owned(),
                before.map(Snapshot::PolicySet),
                Some(Snapshot::PolicySet(after)),
            )
        })?;
        Ok(())
    }
}

/// A set as the trail records it.
fn state_of(set: &PolicySet, refused: Option<String>) -> PolicySetState {
    PolicySetState {
        generation: set.generation(),
        policies: set
            .policies()
            .iter()
            .map(|p| {
                let live = LivePolicy::of(p);
                PolicyDigest {
                    name: live.name,
                    kind: live.kind.to_owned(),
                    sha256: live.sha256,
                }
            })
            .collect(),
        refused,
    }
}

/// `name=sha256-prefix` of each module, for the log.
fn digests(state: &PolicySetState) -> String {
    state
        .policies
        .iter()
        .map(|p| format!("{}={}", p.name, p.sha256.get(..16).unwrap_or(&p.sha256)))
        .collect::<Vec<_>>()
        .join(" ")
}
