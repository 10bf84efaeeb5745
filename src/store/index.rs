//! The in-memory credential index: every live credential (and a tombstone for every revoked
//! one), answering "who is this?" without touching redb.
//!
//! Invariant: the index changes only in `Store::write`, right after the redb commit and
//! while the writer lock is still held, from entries derived inside the committed
//! transaction. So once a revoke or disable returns, no lookup can still accept the
//! credential, and commits reach the index in commit order.
//!
//! `last_used_at` is recorded here with one relaxed atomic store per successful lookup and
//! written to redb in batches by `Store::flush_last_used`, never one write per lookup.

use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use rustc_hash::FxHashMap;

use crate::domain::acl::Acl;
use crate::domain::credential::{
    Credential, CredentialId, CredentialKind, Owner, OwnerStanding, Rejection, RevokeCause,
    Verified,
};
use crate::domain::id::{AccountId, BotId, UserId};
use crate::domain::time::Timestamp;
use crate::domain::token::{ParsedToken, SecretHash, SecretHasher};

/// What verification needs of one live credential, kept compact (112 bytes with its key)
/// because at a million credentials each lookup is bounded by cache and TLB misses.
#[derive(Debug)]
pub(crate) struct LiveEntry {
    hash: SecretHash,
    account: AccountId,
    owner: u128,
    /// Milliseconds; `i64::MAX` for never.
    expires_at: i64,
    acl: Option<Arc<Acl>>,
    /// Milliseconds of the last accepted lookup; `i64::MIN` for never.
    last_used: AtomicI64,
    kind: CredentialKind,
    owner_is_bot: bool,
    standing: OwnerStanding,
}

impl LiveEntry {
    /// The entry for `credential`, whose secret hash (token kinds) and owner standing
    /// were read in the same transaction.
    pub(crate) fn new(
        credential: &Credential,
        hash: Option<SecretHash>,
        standing: OwnerStanding,
        last_used: Option<i64>,
    ) -> LiveEntry {
        LiveEntry {
            hash: hash.unwrap_or(SecretHash([0; 32])),
            account: credential.account,
            owner: credential.owner.raw(),
            expires_at: credential.expires_at.map_or(i64::MAX, Timestamp::as_millis),
            acl: (!credential.acl.is_unrestricted()).then(|| Arc::new(credential.acl.clone())),
            last_used: AtomicI64::new(last_used.unwrap_or(i64::MIN)),
            kind: credential.id.kind,
            owner_is_bot: matches!(credential.owner, Owner::Bot(_)),
            standing,
        }
    }

    fn owner(&self) -> Owner {
        if self.owner_is_bot {
            Owner::Bot(BotId(self.owner))
        } else {
            Owner::User(UserId(self.owner))
        }
    }

    /// Judge a credential whose secret (or key) already matched.
    #[inline]
    fn admit(&self, raw: u128, now: Timestamp) -> Result<Verified, Rejection> {
        if let Some(rejection) = Rejection::of_standing(self.standing) {
            return Err(rejection);
        }
        let now = now.as_millis();
        if self.expires_at <= now {
            return Err(Rejection::Expired);
        }
        // Coalesce to whole seconds so a hot credential does not keep one cache line busy.
        if now.saturating_sub(self.last_used.load(Ordering::Relaxed)) >= 1_000 {
            self.last_used.store(now, Ordering::Relaxed);
        }
        Ok(Verified {
            credential: CredentialId {
                kind: self.kind,
                raw,
            },
            owner: self.owner(),
            account: self.account,
            acl: self.acl.clone(),
            expires_at: (self.expires_at != i64::MAX)
                .then(|| Timestamp::from_millis(self.expires_at)),
        })
    }
}

/// A change to the index, derived inside a write transaction, applied after its commit.
#[derive(Debug)]
pub(crate) enum IndexOp {
    /// The credential is live with this entry (new, or changed), and its SSH fingerprint.
    Put(u128, LiveEntry, Option<[u8; 32]>),
    /// The credential was revoked for this reason.
    Revoke(u128, RevokeCause),
}

#[derive(Debug, Default)]
struct Maps {
    live: FxHashMap<u128, LiveEntry>,
    /// SSH fingerprint → credential, and back (the way back is only for revocation, so
    /// the fingerprint stays out of the hot `LiveEntry`).
    ssh: FxHashMap<[u8; 32], u128>,
    ssh_by_credential: FxHashMap<u128, [u8; 32]>,
    revoked: FxHashMap<u128, RevokeCause>,
}

/// The index itself. One `RwLock` over all maps: lookups share it, and the only writer is
/// the store's writer after a commit.
#[derive(Debug)]
pub struct CredentialIndex {
    maps: RwLock<Maps>,
    /// Uses at or after this instant (ms) are not yet written to redb.
    unflushed_since: AtomicI64,
}

impl Default for CredentialIndex {
    fn default() -> Self {
        CredentialIndex {
            maps: RwLock::default(),
            unflushed_since: AtomicI64::new(i64::MIN),
        }
    }
}

impl CredentialIndex {
    /// Look up a token whose shape and checksum are already checked.
    #[inline]
    pub fn verify_token(
        &self,
        token: &ParsedToken<'_>,
        hasher: &SecretHasher,
        now: Timestamp,
    ) -> Result<Verified, Rejection> {
        // Hash before taking the lock (it does not depend on the entry) to keep the lock
        // short. Probing first, to overlap the probe's cache misses with the hash, was
        // measured slower at both 10k and 1M credentials.
        let presented = hasher.hash(token.secret());
        let maps = self.maps.read().unwrap_or_else(PoisonError::into_inner);
        let entry = maps.live.get(&token.id);
        let Some(entry) = entry else {
            return Err(maps
                .revoked
                .get(&token.id)
                .map_or(Rejection::Unknown, |c| Rejection::of_revocation(*c)));
        };
        if entry.kind != CredentialKind::of_token(token.kind) {
            return Err(Rejection::Unknown);
        }
        if !entry.hash.matches(&presented) {
            return Err(Rejection::WrongSecret);
        }
        entry.admit(token.id, now)
    }

    /// Look up an SSH public key by its SHA-256 fingerprint.
    pub fn verify_ssh(
        &self,
        fingerprint: &[u8; 32],
        now: Timestamp,
    ) -> Result<Verified, Rejection> {
        let maps = self.maps.read().unwrap_or_else(PoisonError::into_inner);
        let entry = maps
            .ssh
            .get(fingerprint)
            .and_then(|raw| Some((*raw, maps.live.get(raw)?)));
        match entry {
            Some((raw, entry)) => entry.admit(raw, now),
            None => Err(Rejection::Unknown),
        }
    }

    /// The last recorded use of a live credential, including uses not yet flushed.
    pub fn last_used(&self, raw: u128) -> Option<Timestamp> {
        let maps = self.maps.read().unwrap_or_else(PoisonError::into_inner);
        let at = maps.live.get(&raw)?.last_used.load(Ordering::Relaxed);
        (at != i64::MIN).then(|| Timestamp::from_millis(at))
    }

    /// Number of live credentials.
    pub fn len(&self) -> usize {
        self.maps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .len()
    }

    /// Whether no credential is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Apply the changes of one committed transaction.
    pub(crate) fn apply(&self, ops: Vec<IndexOp>) {
        if ops.is_empty() {
            return;
        }
        let mut maps = self.maps.write().unwrap_or_else(PoisonError::into_inner);
        for op in ops {
            match op {
                IndexOp::Put(raw, entry, fingerprint) => {
                    if let Some(fingerprint) = fingerprint {
                        maps.ssh.insert(fingerprint, raw);
                        maps.ssh_by_credential.insert(raw, fingerprint);
                    }
                    match maps.live.entry(raw) {
                        Entry::Occupied(mut slot) => {
                            // Keep usage not yet flushed across a change of the record.
                            let used = slot.get().last_used.load(Ordering::Relaxed);
                            entry.last_used.store(used, Ordering::Relaxed);
                            slot.insert(entry);
                        }
                        Entry::Vacant(slot) => {
                            slot.insert(entry);
                        }
                    }
                    maps.revoked.remove(&raw);
                }
                IndexOp::Revoke(raw, cause) => {
                    maps.live.remove(&raw);
                    if let Some(fingerprint) = maps.ssh_by_credential.remove(&raw) {
                        maps.ssh.remove(&fingerprint);
                    }
                    maps.revoked.insert(raw, cause);
                }
            }
        }
    }

    /// Uses recorded since the last flush, as (credential, last use in ms), and the
    /// watermark to pass to `mark_flushed` once they are written. Uses that land while
    /// this scan runs are at or after `scan_started` and so go into the next flush.
    pub(crate) fn unflushed_usage(&self, scan_started: i64) -> (Vec<(u128, i64)>, i64) {
        let since = self.unflushed_since.load(Ordering::Relaxed);
        let maps = self.maps.read().unwrap_or_else(PoisonError::into_inner);
        let used = maps
            .live
            .iter()
            .filter_map(|(raw, entry)| {
                let used = entry.last_used.load(Ordering::Relaxed);
                (used != i64::MIN && used >= since).then_some((*raw, used))
            })
            .collect();
        (used, scan_started)
    }

    /// Everything used before `watermark` is now in redb.
    pub(crate) fn mark_flushed(&self, watermark: i64) {
        self.unflushed_since.fetch_max(watermark, Ordering::Relaxed);
    }
}
