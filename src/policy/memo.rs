//! Verdicts remembered by request, for one policy set.
//!
//! A module imports nothing and keeps no state from one decision to the next (the ABI's
//! contract, see `plugins/README.md`), so under one set the same request bytes always
//! decide the same, except through `context.time_ms`. So a verdict is remembered only
//! for an action whose every routed module declares `reads_clock = false`, keyed by the
//! request without its time: the principal as resolved (roles, assignments, credential,
//! scopes, address), the action, the resource and the context's values. A change to any
//! of them is another key; a reload is another set, with an empty memo. Faults are never
//! remembered, and neither are explained decisions (their answer lists every module).

use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};

use rustc_hash::{FxBuildHasher, FxHashMap};

use super::engine::Verdict;

/// Shards, so that threads deciding at once rarely wait for one another.
const SHARDS: usize = 8;
/// Verdicts kept per shard; a full shard is emptied (4,096 in all, at most about
/// 10 MiB with the longest keys).
const PER_SHARD: usize = 512;
/// Longer requests (large attribute maps) are decided every time.
pub(super) const MAX_KEY: usize = 2048;

/// The remembered verdicts of one policy set.
pub(super) struct Memo {
    shards: Vec<Shard>,
}

/// Verdicts by request bytes.
type Shard = Mutex<FxHashMap<Box<[u8]>, Remembered>>;

/// A verdict as remembered: what a non-explained decision answers.
struct Remembered {
    allowed: bool,
    policy: Box<str>,
    reason: Box<str>,
}

impl Memo {
    pub(super) fn new() -> Memo {
        Memo {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The verdict remembered for `key`, if any.
    pub(super) fn get(&self, key: &[u8]) -> Option<Verdict> {
        let shard = self.shard(key)?;
        let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        shard.get(key).map(|r| Verdict {
            allowed: r.allowed,
            policy: r.policy.as_ref().to_owned(),
            reason: r.reason.as_ref().to_owned(),
            evaluated: Vec::new(),
            request: None,
        })
    }

    /// Remember `verdict` for `key`.
    pub(super) fn put(&self, key: Vec<u8>, verdict: &Verdict) {
        let Some(shard) = self.shard(&key) else {
            return;
        };
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= PER_SHARD {
            shard.clear();
        }
        shard.insert(
            key.into_boxed_slice(),
            Remembered {
                allowed: verdict.allowed,
                policy: verdict.policy.as_str().into(),
                reason: verdict.reason.as_str().into(),
            },
        );
    }

    /// How many verdicts are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    fn shard(&self, key: &[u8]) -> Option<&Shard> {
        // The high bits: FxHash mixes them best.
        let hash = FxBuildHasher.hash_one(key);
        self.shards.get((hash >> 61) as usize % SHARDS)
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo").finish_non_exhaustive()
    }
}
