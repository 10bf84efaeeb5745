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

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use hashbrown::HashTable;
use rustc_hash::FxHashMap;
use subtle::ConstantTimeEq;

use crate::domain::acl::Acl;
use crate::domain::credential::{
    Credential, CredentialId, CredentialKind, Owner, OwnerStanding, Rejection, RevokeCause,
    Verified,
};
use crate::domain::id::{AccountId, BotId, UserId};
use crate::domain::time::Timestamp;
use crate::domain::token::{Keyring, ParsedToken, SecretHash};
use ipnet::IpNet;

/// A live credential as a transaction derives it; `CredentialIndex::apply` packs it
/// into a [`Slot`].
#[derive(Debug)]
pub(crate) struct LiveEntry {
    hash: SecretHash,
    account: AccountId,
    owner: Owner,
    expires_at: Option<Timestamp>,
    acl: Option<Arc<Acl>>,
    cidrs: Option<Arc<[IpNet]>>,
    last_used: Option<i64>,
    kind: CredentialKind,
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
            owner: credential.owner,
            expires_at: credential.expires_at,
            acl: (!credential.acl.is_unrestricted()).then(|| Arc::new(credential.acl.clone())),
            cidrs: (!credential.allowed_cidrs.is_empty())
                .then(|| Arc::from(credential.allowed_cidrs.as_slice())),
            last_used,
            kind: credential.id.kind,
            standing,
        }
    }
}

/// Bytes of the secret's keyed hash kept in memory: the first 128 bits of HMAC-SHA-256,
/// as RFC 2104 (section 5) allows; the full 256 bits stay in redb. Forging a match still
/// takes 2^128 online guesses, and it lets a slot fit one cache line.
const TAG_LEN: usize = 16;

/// One live credential, exactly one 64-byte cache line: at a million credentials a
/// lookup costs what its cache and TLB misses cost, so everything a lookup reads is here
/// except the ids behind `account` and `owner` (interned, few and hot), the ACL and the
/// allowed networks (side maps, read only when `has_acl` / `has_cidrs`).
#[derive(Debug)]
#[repr(C, align(64))]
struct Slot {
    id: u128,
    tag: [u8; TAG_LEN],
    /// Milliseconds; `i64::MAX` for never.
    expires_at: i64,
    /// Milliseconds of the last accepted lookup; `i64::MIN` for never.
    last_used: AtomicI64,
    account: u32,
    owner: u32,
    kind: CredentialKind,
    standing: OwnerStanding,
    owner_is_bot: bool,
    has_acl: bool,
    has_cidrs: bool,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 64);

/// The probe hash of an id: its low 64 bits, which are random (see `domain::id`). Ids
/// are minted here, never chosen by a caller, so there is nothing to flood.
#[inline]
fn slot_hash(id: u128) -> u64 {
    id as u64
}

fn tag_of(hash: &SecretHash) -> [u8; TAG_LEN] {
    let mut tag = [0u8; TAG_LEN];
    if let Some(head) = hash.0.get(..TAG_LEN) {
        tag.copy_from_slice(head);
    }
    tag
}

/// 128-bit ids stored once and named by a `u32` in every slot.
#[derive(Debug, Default)]
struct Interned {
    ids: Vec<u128>,
    by_id: FxHashMap<u128, u32>,
}

impl Interned {
    fn intern(&mut self, id: u128) -> u32 {
        if let Some(&at) = self.by_id.get(&id) {
            return at;
        }
        let at = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.ids.push(id);
        self.by_id.insert(id, at);
        at
    }

    fn get(&self, at: u32) -> u128 {
        self.ids.get(at as usize).copied().unwrap_or_default()
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
    live: HashTable<Slot>,
    accounts: Interned,
    owners: Interned,
    acls: FxHashMap<u128, Arc<Acl>>,
    cidrs: FxHashMap<u128, Arc<[IpNet]>>,
    /// SSH fingerprint → credential, and back (the way back is only for revocation).
    ssh: FxHashMap<[u8; 32], u128>,
    ssh_by_credential: FxHashMap<u128, [u8; 32]>,
    revoked: FxHashMap<u128, RevokeCause>,
}

impl Maps {
    fn slot(&self, id: u128) -> Option<&Slot> {
        self.live.find(slot_hash(id), |slot| slot.id == id)
    }

    /// Judge a credential whose secret (or key) already matched.
    #[inline]
    fn admit(&self, slot: &Slot, now: Timestamp) -> Result<Verified, Rejection> {
        if let Some(rejection) = Rejection::of_standing(slot.standing) {
            return Err(rejection);
        }
        let now = now.as_millis();
        if slot.expires_at <= now {
            return Err(Rejection::Expired);
        }
        // Coalesce to whole seconds so a hot credential does not keep its line busy.
        if now.saturating_sub(slot.last_used.load(Ordering::Relaxed)) >= 1_000 {
            slot.last_used.store(now, Ordering::Relaxed);
        }
        let owner = self.owners.get(slot.owner);
        Ok(Verified {
            credential: CredentialId {
                kind: slot.kind,
                raw: slot.id,
            },
            owner: if slot.owner_is_bot {
                Owner::Bot(BotId(owner))
            } else {
                Owner::User(UserId(owner))
            },
            account: AccountId(self.accounts.get(slot.account)),
            acl: if slot.has_acl {
                self.acls.get(&slot.id).cloned()
            } else {
                None
            },
            allowed_cidrs: if slot.has_cidrs {
                self.cidrs.get(&slot.id).cloned()
            } else {
                None
            },
            expires_at: (slot.expires_at != i64::MAX)
                .then(|| Timestamp::from_millis(slot.expires_at)),
        })
    }

    fn put(&mut self, id: u128, entry: LiveEntry) {
        let previous_use = self
            .slot(id)
            .map(|slot| slot.last_used.load(Ordering::Relaxed));
        let slot = Slot {
            id,
            tag: tag_of(&entry.hash),
            expires_at: entry.expires_at.map_or(i64::MAX, Timestamp::as_millis),
            // Keep usage not yet flushed across a change of the record.
            last_used: AtomicI64::new(previous_use.or(entry.last_used).unwrap_or(i64::MIN)),
            account: self.accounts.intern(entry.account.0),
            owner: self.owners.intern(entry.owner.raw()),
            kind: entry.kind,
            standing: entry.standing,
            owner_is_bot: matches!(entry.owner, Owner::Bot(_)),
            has_acl: entry.acl.is_some(),
            has_cidrs: entry.cidrs.is_some(),
        };
        match entry.acl {
            Some(acl) => self.acls.insert(id, acl),
            None => self.acls.remove(&id),
        };
        match entry.cidrs {
            Some(cidrs) => self.cidrs.insert(id, cidrs),
            None => self.cidrs.remove(&id),
        };
        match self
            .live
            .entry(slot_hash(id), |s| s.id == id, |s| slot_hash(s.id))
        {
            hashbrown::hash_table::Entry::Occupied(mut occupied) => *occupied.get_mut() = slot,
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(slot);
            }
        }
        self.revoked.remove(&id);
    }

    fn revoke(&mut self, id: u128, cause: RevokeCause) {
        if let Ok(occupied) = self.live.find_entry(slot_hash(id), |s| s.id == id) {
            occupied.remove();
        }
        self.acls.remove(&id);
        self.cidrs.remove(&id);
        if let Some(fingerprint) = self.ssh_by_credential.remove(&id) {
            self.ssh.remove(&fingerprint);
        }
        self.revoked.insert(id, cause);
    }
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
        keys: &Keyring,
        now: Timestamp,
    ) -> Result<Verified, Rejection> {
        // Hash before taking the lock (it does not depend on the slot) to keep the lock
        // short. Probing first, to overlap the probe's cache misses with the hash, was
        // measured slower at both 10k and 1M credentials.
        let presented = tag_of(&keys.current().hash(token.secret()));
        let maps = self.maps.read().unwrap_or_else(PoisonError::into_inner);
        let Some(slot) = maps.slot(token.id) else {
            return Err(maps
                .revoked
                .get(&token.id)
                .map_or(Rejection::Unknown, |c| Rejection::of_revocation(*c)));
        };
        if Some(slot.kind) != CredentialKind::of_token(token.kind) {
            return Err(Rejection::Unknown);
        }
        // A secret made before a key rotation matches under the key it was made with.
        let matches = |tag: [u8; TAG_LEN]| bool::from(slot.tag.ct_eq(&tag));
        if !matches(presented)
            && !keys
                .newest_first()
                .skip(1)
                .any(|(_, key)| matches(tag_of(&key.hash(token.secret()))))
        {
            return Err(Rejection::WrongSecret);
        }
        maps.admit(slot, now)
    }

    /// Look up an SSH public key by its SHA-256 fingerprint.
    pub fn verify_ssh(
        &self,
        fingerprint: &[u8; 32],
        now: Timestamp,
    ) -> Result<Verified, Rejection> {
        let maps = self.maps.read().unwrap_or_else(PoisonError::into_inner);
        match maps.ssh.get(fingerprint).and_then(|id| maps.slot(*id)) {
            Some(slot) => maps.admit(slot, now),
            None => Err(Rejection::Unknown),
        }
    }

    /// The last recorded use of a live credential, including uses not yet flushed.
    pub fn last_used(&self, raw: u128) -> Option<Timestamp> {
        let maps = self.maps.read().unwrap_or_else(PoisonError::into_inner);
        let at = maps.slot(raw)?.last_used.load(Ordering::Relaxed);
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
        maps.live.reserve(ops.len(), |s| slot_hash(s.id));
        for op in ops {
            match op {
                IndexOp::Put(id, entry, fingerprint) => {
                    if let Some(fingerprint) = fingerprint {
                        maps.ssh.insert(fingerprint, id);
                        maps.ssh_by_credential.insert(id, fingerprint);
                    }
                    maps.put(id, entry);
                }
                IndexOp::Revoke(id, cause) => maps.revoke(id, cause),
            }
        }
    }

    /// Take the maps of `rebuilt` (an index loaded from the file again), keeping every
    /// use recorded here that is newer than the file's, so uses not yet flushed survive.
    pub(crate) fn replace(&self, rebuilt: CredentialIndex) {
        let mut fresh = rebuilt
            .maps
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let mut maps = self.maps.write().unwrap_or_else(PoisonError::into_inner);
        for slot in fresh.live.iter_mut() {
            if let Some(old) = maps.slot(slot.id) {
                let seen = old.last_used.load(Ordering::Relaxed);
                slot.last_used.fetch_max(seen, Ordering::Relaxed);
            }
        }
        *maps = fresh;
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
            .filter_map(|slot| {
                let used = slot.last_used.load(Ordering::Relaxed);
                (used != i64::MIN && used >= since).then_some((slot.id, used))
            })
            .collect();
        (used, scan_started)
    }

    /// Everything used before `watermark` is now in redb.
    pub(crate) fn mark_flushed(&self, watermark: i64) {
        self.unflushed_since.fetch_max(watermark, Ordering::Relaxed);
    }
}
