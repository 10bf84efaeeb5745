//! The audit hash chain: appending is `WriteTx::record`; this file holds the head record
//! and the offline check behind `latchkey audit verify`.
//!
//! Each account's events form a chain keyed by (account, seq). An event's body carries
//! the SHA-256 of the previous event's stored bytes; the account's head records the next
//! sequence number and the hash of the last event. The check recomputes every hash from
//! the stored bytes, so any edit, deletion, insertion or reordering shows up as the first
//! event whose link does not hold.

use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::event::Event;
use crate::domain::id::{AccountId, EventId};
use crate::store::StoreError;
use crate::store::codec;
use crate::store::tables::{AUDIT_CHECKPOINTS, AUDIT_HEADS, EVENTS};

/// The end of one account's chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AuditHead {
    pub(crate) next_seq: u64,
    pub(crate) hash: [u8; 32],
    pub(crate) last_event: Option<EventId>,
}

/// Where an account's retained chain starts once older events were exported and pruned:
/// the first retained sequence number and the hash of the last pruned event's bytes,
/// which the first retained event links to (the anchored checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AuditCheckpoint {
    pub(crate) from_seq: u64,
    pub(crate) prev: [u8; 32],
}

/// The checkpoint of `account`'s chain (the genesis when nothing was pruned).
pub(crate) fn checkpoint(
    table: &impl ReadableTable<u128, &'static [u8]>,
    account: u128,
) -> Result<AuditCheckpoint, StoreError> {
    table
        .get(account)?
        .map(|v| codec::decode(v.value()))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// SHA-256 of an event's stored bytes.
pub(crate) fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Where a chain stops holding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The account whose chain is broken.
    pub account: AccountId,
    /// The first event whose link fails (or the head's last event, if the tail is missing).
    pub event: String,
    /// What failed, in a sentence.
    pub detail: String,
}

/// The outcome of checking every chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Events checked.
    pub events: u64,
    /// SHA-256 over every account's (id, head hash) in account order, hex: one value an
    /// operator can record outside the host and compare later.
    pub head: String,
    /// The first break found, if any.
    pub broken: Option<ChainBreak>,
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn verify(db: &Database) -> Result<AuditReport, StoreError> {
    let txn = db.begin_read()?;
    let heads = txn.open_table(AUDIT_HEADS)?;
    let events = txn.open_table(EVENTS)?;
    let checkpoints = txn.open_table(AUDIT_CHECKPOINTS)?;
    let mut combined = Sha256::new();
    let mut count = 0u64;
    let mut broken = None;
    for row in heads.iter()? {
        let (key, value) = row?;
        let account = AccountId(key.value());
        let head: AuditHead = codec::decode(value.value())?;
        combined.update(account.0.to_be_bytes());
        combined.update(head.hash);
        if broken.is_some() {
            continue;
        }
        // From the anchored checkpoint: the genesis, or where a prune left the chain.
        let start = checkpoint(&checkpoints, account.0)?;
        let mut prev = start.prev;
        let mut prev_id: Option<EventId> = None;
        let mut expected_seq = start.from_seq;
        for row in events.range((account.0, 0)..=(account.0, u64::MAX))? {
            let (key, value) = row?;
            let bytes = value.value();
            let (_, seq) = key.value();
            let fail = |event: String, detail: String| {
                Some(ChainBreak {
                    account,
                    event,
                    detail,
                })
            };
            let event: Event = match codec::decode(bytes) {
                Ok(event) => event,
                Err(err) => {
                    broken = fail(
                        format!("{account}#{seq}"),
                        format!("event #{seq} does not decode: {err}"),
                    );
                    break;
                }
            };
            if seq != expected_seq || event.seq != seq || event.account != account {
                broken = fail(
                    event.id.to_string(),
                    format!("expected event #{expected_seq} here, found #{seq}"),
                );
                break;
            }
            if event.prev != prev {
                // The link fails between the previous event and this one; the previous
                // event's bytes no longer hash to what this one committed to (or, for
                // the first event, this one claims a predecessor that never existed).
                let (culprit, detail) = match prev_id {
                    Some(id) => (
                        id.to_string(),
                        format!(
                            "its stored bytes no longer match what {} committed to",
                            event.id
                        ),
                    ),
                    None => (
                        event.id.to_string(),
                        "the first event links to a predecessor".to_owned(),
                    ),
                };
                broken = fail(culprit, detail);
                break;
            }
            prev = hash(bytes);
            prev_id = Some(event.id);
            expected_seq += 1;
            count += 1;
        }
        if broken.is_none() && (expected_seq != head.next_seq || prev != head.hash) {
            let event = head
                .last_event
                .map_or_else(|| format!("{account}#end"), |id| id.to_string());
            broken = Some(ChainBreak {
                account,
                event,
                detail: format!(
                    "the chain ends at #{expected_seq} but its head expects #{}",
                    head.next_seq
                ),
            });
        }
    }
    // Events of an account with no head at all were written around the chain.
    if broken.is_none() {
        let accounts_with_events = {
            let mut seen = std::collections::BTreeSet::new();
            for row in events.iter()? {
                seen.insert(row?.0.value().0);
            }
            seen
        };
        if let Some(orphan) = accounts_with_events
            .iter()
            .find(|a| heads.get(**a).ok().flatten().is_none())
        {
            broken = Some(ChainBreak {
                account: AccountId(*orphan),
                event: format!("{}#0", AccountId(*orphan)),
                detail: "events exist for an account with no chain head".to_owned(),
            });
        }
    }
    Ok(AuditReport {
        events: count,
        head: hex(&combined.finalize()),
        broken,
    })
}
