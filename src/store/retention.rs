//! Audit retention, the host operator's: export a prefix of every account's chain (its
//! events before a date) as JSON lines that verify on their own, and prune exactly what
//! an export holds, leaving an anchored checkpoint that the rest of the chain links to
//! (`latchkey audit verify` and `check` start there).
//!
//! An export is, per account with events before the date: a `chain` line (where the
//! export starts: the sequence number and the hash the first event links to), one line
//! per event (its stored bytes in base64, which the chain hashes, and the event as JSON
//! for reading), and a `chain_end` line (the next sequence number and the hash of the
//! last exported event: the checkpoint the retained chain links to).

use std::io::{BufRead, Write};

use base64ct::{Base64, Encoding};
use redb::ReadableTable;
use serde_json::{Value, json};

use super::audit::{AuditCheckpoint, AuditHead, checkpoint, hash, hex};
use super::codec;
use super::tables::{AUDIT_CHECKPOINTS, AUDIT_HEADS, EVENTS};
use super::tx::unindex_event;
use super::{Store, StoreError};
use crate::domain::event::Event;
use crate::domain::id::AccountId;
use crate::domain::time::Timestamp;

/// One account's exported stretch of chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedChain {
    /// The account.
    pub account: AccountId,
    /// The first exported event's sequence number.
    pub from_seq: u64,
    /// The hash the first exported event links to.
    pub prev: [u8; 32],
    /// One past the last exported event.
    pub next_seq: u64,
    /// The hash of the last exported event's bytes.
    pub hash: [u8; 32],
}

impl Store {
    /// Write every account's events before `before`, in chain order, to `out` as the
    /// export's JSON lines, from one snapshot; returns what each chain's stretch is.
    pub fn export_events(
        &self,
        before: Timestamp,
        out: &mut impl Write,
    ) -> Result<Vec<ExportedChain>, StoreError> {
        let read = self.read()?;
        let txn = read.raw();
        let heads = txn.open_table(AUDIT_HEADS)?;
        let events = txn.open_table(EVENTS)?;
        let checkpoints = txn.open_table(AUDIT_CHECKPOINTS)?;
        let io = |e: std::io::Error| StoreError::Storage(format!("writing the export: {e}"));
        let mut chains = Vec::new();
        for row in heads.iter()? {
            let account = AccountId(row?.0.value());
            let start = checkpoint(&checkpoints, account.0)?;
            let mut chain = ExportedChain {
                account,
                from_seq: start.from_seq,
                prev: start.prev,
                next_seq: start.from_seq,
                hash: start.prev,
            };
            for row in events.range((account.0, start.from_seq)..=(account.0, u64::MAX))? {
                let (_, value) = row?;
                let bytes = value.value();
                let event: Event = codec::decode(bytes)?;
                if event.at >= before {
                    break;
                }
                if chain.next_seq == chain.from_seq {
                    line(out, &json!({"chain": account.to_string(), "from_seq": chain.from_seq, "prev": hex(&chain.prev)}))
                        .map_err(io)?;
                }
                line(
                    out,
                    &json!({
                        "account": account.to_string(),
                        "seq": event.seq,
                        "bytes": Base64::encode_string(bytes),
                        "event": serde_json::to_value(&event).unwrap_or(Value::Null),
                    }),
                )
                .map_err(io)?;
                chain.next_seq = event.seq + 1;
                chain.hash = hash(bytes);
            }
            if chain.next_seq > chain.from_seq {
                line(out, &json!({"chain_end": account.to_string(), "next_seq": chain.next_seq, "hash": hex(&chain.hash)}))
                    .map_err(io)?;
                chains.push(chain);
            }
        }
        out.flush().map_err(io)?;
        Ok(chains)
    }

    /// Delete exactly the events `chains` (a verified export) hold, with their index
    /// entries, and anchor each chain at its export's end, in one transaction. Refused
    /// unless each export starts where the account's chain starts now and its last
    /// event is the stored one (its hash matches): nothing is pruned that the export
    /// does not hold. Returns the events pruned.
    pub fn prune_events(&self, chains: &[ExportedChain]) -> Result<u64, StoreError> {
        self.write(|tx| {
            let txn = tx.raw();
            let mut pruned = 0u64;
            for chain in chains {
                let a = chain.account.0;
                let refuse = |why: &str| {
                    StoreError::Storage(format!(
                        "the export does not match the chain of {}: {why}; nothing was pruned",
                        chain.account
                    ))
                };
                let start = checkpoint(&txn.open_table(AUDIT_CHECKPOINTS)?, a)?;
                if (start.from_seq, start.prev) != (chain.from_seq, chain.prev) {
                    return Err(refuse("it does not start where the chain starts now"));
                }
                let head: AuditHead = match txn.open_table(AUDIT_HEADS)?.get(a)? {
                    Some(v) => codec::decode(v.value())?,
                    None => return Err(refuse("the account has no chain")),
                };
                if chain.next_seq > head.next_seq || chain.next_seq <= chain.from_seq {
                    return Err(refuse("its end is not in the chain"));
                }
                let last = txn
                    .open_table(EVENTS)?
                    .get((a, chain.next_seq - 1))?
                    .map(|v| hash(v.value()));
                if last != Some(chain.hash) {
                    return Err(refuse("its last event is not the stored one"));
                }
                for seq in chain.from_seq..chain.next_seq {
                    let event: Event = {
                        let mut events = txn.open_table(EVENTS)?;
                        let removed = events.remove((a, seq))?;
                        let Some(bytes) = removed else {
                            return Err(refuse("an event it holds is missing"));
                        };
                        codec::decode(bytes.value())?
                    };
                    unindex_event(txn, &event)?;
                    pruned += 1;
                }
                let anchor = AuditCheckpoint {
                    from_seq: chain.next_seq,
                    prev: chain.hash,
                };
                txn.open_table(AUDIT_CHECKPOINTS)?
                    .insert(a, codec::encode(&anchor)?.as_slice())?;
            }
            Ok(pruned)
        })
    }
}

fn line(out: &mut impl Write, value: &Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Check an export on its own: every event's bytes decode, each links to the one before
/// (the first to the `chain` line's hash), sequence numbers follow, and each `chain_end`
/// names the last event's hash. Returns each chain's stretch, or the first problem.
pub fn verify_export(reader: impl BufRead) -> Result<Vec<ExportedChain>, String> {
    let mut chains = Vec::new();
    let mut open: Option<ExportedChain> = None;
    for (n, text) in reader.lines().enumerate() {
        let at = n + 1;
        let text = text.map_err(|e| format!("line {at}: {e}"))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| format!("line {at}: not JSON: {e}"))?;
        let field = |name: &str| value.get(name).and_then(Value::as_str);
        let number = |name: &str| value.get(name).and_then(Value::as_u64);
        let account = |text: &str| {
            text.parse::<AccountId>()
                .map_err(|_| format!("line {at}: {text:?} is not an account id"))
        };
        let digest = |text: Option<&str>| -> Result<[u8; 32], String> {
            let text = text.ok_or_else(|| format!("line {at}: a hash is missing"))?;
            let mut out = [0u8; 32];
            if text.len() != 64 {
                return Err(format!("line {at}: a hash is not 64 hex digits"));
            }
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = text
                    .get(2 * i..2 * i + 2)
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(|| format!("line {at}: a hash is not hex"))?;
            }
            Ok(out)
        };
        if let Some(text) = field("chain") {
            if open.is_some() {
                return Err(format!(
                    "line {at}: a chain starts before the last one ended"
                ));
            }
            let from_seq = number("from_seq").ok_or_else(|| format!("line {at}: no from_seq"))?;
            let prev = digest(field("prev"))?;
            open = Some(ExportedChain {
                account: account(text)?,
                from_seq,
                prev,
                next_seq: from_seq,
                hash: prev,
            });
        } else if let Some(text) = field("chain_end") {
            let chain = open
                .take()
                .ok_or_else(|| format!("line {at}: a chain ends that did not start"))?;
            if account(text)? != chain.account
                || number("next_seq") != Some(chain.next_seq)
                || digest(field("hash"))? != chain.hash
                || chain.next_seq == chain.from_seq
            {
                return Err(format!(
                    "line {at}: the chain of {} does not end where its events do",
                    chain.account
                ));
            }
            chains.push(chain);
        } else {
            let chain = open
                .as_mut()
                .ok_or_else(|| format!("line {at}: an event outside a chain"))?;
            let bytes = field("bytes")
                .and_then(|b| Base64::decode_vec(b).ok())
                .ok_or_else(|| format!("line {at}: the event's bytes are missing or not base64"))?;
            let event: Event = codec::decode(&bytes).map_err(|e| format!("line {at}: {e}"))?;
            if event.account != chain.account || event.seq != chain.next_seq {
                return Err(format!(
                    "line {at}: expected event #{} of {}, found #{} of {}",
                    chain.next_seq, chain.account, event.seq, event.account
                ));
            }
            if event.prev != chain.hash {
                return Err(format!(
                    "line {at}: event #{} of {} does not link to the one before it",
                    event.seq, chain.account
                ));
            }
            chain.hash = hash(&bytes);
            chain.next_seq += 1;
        }
    }
    if let Some(chain) = open {
        return Err(format!("the chain of {} has no end line", chain.account));
    }
    Ok(chains)
}
