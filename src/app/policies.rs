//! The live policy set. It decides for every account at once, so changing it is the host
//! operator's (the admin socket in the data directory, or SIGHUP), never an account's;
//! over the network an account's administrators may read its names, patterns and hashes.

use super::{AppError, Latchkey, Target};
use crate::domain::event::Actor;
use crate::domain::id::AccountId;
use crate::policy::{Isolation, Kind, LoadedPolicy, PolicySet};

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

    /// Reload the policies folder, for the host operator; on any invalid module the
    /// current set stays and the error is returned.
    pub fn reload_policies(&self) -> Result<LiveSet, AppError> {
        self.engine()?.reload()?;
        self.live_policies()
    }
}
