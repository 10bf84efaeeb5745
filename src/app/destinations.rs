//! Event destinations: their management (administrators only, decided by account-rbac
//! like every `iam` action, audited), and the store side of delivery: which destinations
//! have events waiting, the next batch, and the durable cursor. The network side (HTTPS
//! and syslog over TLS) is `api::delivery`.

use base64ct::{Base64UrlUnpadded, Encoding};
use zeroize::Zeroizing;

use super::mfa::Sealed;
use super::{AppError, Latchkey, Target, in_account, record, require_account};
use crate::domain::DomainError;
use crate::domain::destination::{self, DeliveryStatus, EventDestination};
use crate::domain::event::{Action, Actor, Change, Event, Snapshot};
use crate::domain::id::{AccountId, EventDestinationId};
use crate::domain::token::Secret;
use crate::store::{Page, PageRequest, Reads};

/// A new event destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationSpec {
    /// At most 255 bytes.
    pub description: String,
    /// At most 4096 bytes.
    pub metadata: String,
    /// Deliver from the start (or make it paused).
    pub enabled: bool,
    /// The receiver.
    pub target: destination::Target,
}

/// A change to an event destination; `None` keeps the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationPatch {
    /// New description.
    pub description: Option<String>,
    /// New metadata.
    pub metadata: Option<String>,
    /// Pause or resume (the cursor stays where it is).
    pub enabled: Option<bool>,
    /// A new receiver (the cursor stays: it gets what the old one had not).
    pub target: Option<destination::Target>,
}

/// The next events for one destination, with what signs them.
#[derive(Debug)]
pub struct Batch {
    /// The destination as it is now.
    pub destination: EventDestination,
    /// Its signing secret (the text shown at creation), for the HMAC of each request.
    pub secret: Zeroizing<Vec<u8>>,
    /// The events, in chain order.
    pub events: Vec<Event>,
}

/// The certificates a destination's TLS connections trust: the target's own PEM
/// certificates when it names some (each must parse as a trust anchor), else the public
/// web roots (Mozilla's, built in).
pub fn trust_roots(target: &destination::Target) -> Result<rustls::RootCertStore, DomainError> {
    roots_from_pem(destination::field_ca(target), target.trusted_ca_pem())
}

/// The trust anchors in `pem` (field `field` of a request), or the public web roots
/// without one.
pub fn roots_from_pem(
    field: &'static str,
    pem: Option<&str>,
) -> Result<rustls::RootCertStore, DomainError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let Some(pem) = pem else {
        return Ok(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let mut roots = rustls::RootCertStore::empty();
    for (n, cert) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        let cert = cert.map_err(|e| {
            DomainError::invalid(
                field,
                format!("certificate {} is not valid PEM: {e}", n + 1),
            )
        })?;
        roots.add(cert).map_err(|e| {
            DomainError::invalid(
                field,
                format!("certificate {} is not a usable CA certificate: {e}", n + 1),
            )
        })?;
    }
    if roots.is_empty() {
        return Err(DomainError::invalid(
            field,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(roots)
}

fn target(verb: &str, id: String) -> Target {
    Target::new("event_destinations", verb, "event_destination", id)
}

fn destination_in(
    tx: &impl Reads,
    account: AccountId,
    id: EventDestinationId,
) -> Result<EventDestination, AppError> {
    in_account(tx.event_destination(id)?, |d| d.account, account, id)
}

/// A new signing secret: `lkwhsec_` and 256 random bits.
fn new_secret() -> Result<Secret, AppError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut()).map_err(|_| DomainError::RandomnessUnavailable)?;
    Ok(Secret::new(format!(
        "lkwhsec_{}",
        Base64UrlUnpadded::encode_string(bytes.as_ref())
    )))
}

impl Latchkey {
    /// Create an event destination. It receives every event of the account from its own
    /// creation event on. The signing secret is returned this once.
    pub fn create_event_destination(
        &self,
        actor: Actor,
        account: AccountId,
        spec: DestinationSpec,
    ) -> Result<(EventDestination, DeliveryStatus, Secret), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            require_account(tx, account)?;
            self.authorize(tx, actor, account, target("create", "new".into()), now)?;
            destination::validate_text(&spec.description, &spec.metadata)?;
            destination::validate_target(&spec.target, self.allow_private_destinations)?;
            trust_roots(&spec.target)?;
            let created = EventDestination {
                id: EventDestinationId::generate(now)?,
                account,
                created_at: now,
                description: spec.description,
                metadata: spec.metadata,
                enabled: spec.enabled,
                target: spec.target,
            };
            let secret = new_secret()?;
            let status = DeliveryStatus {
                next_seq: tx.next_event_seq(account)?,
                ..DeliveryStatus::default()
            };
            tx.put_event_destination(&created)?;
            tx.put_destination_secret(
                created.id,
                &self.seal(Sealed::DestinationSecret, secret.expose().as_bytes())?,
            )?;
            tx.put_delivery_status(created.id, &status)?;
            record(
                tx,
                &account,
                now,
                actor,
                Action::EventDestination(Change::Created),
                created.id.to_string(),
                None,
                Some(Snapshot::EventDestination(created.clone())),
            )?;
            Ok((created, status, secret))
        })
    }

    /// Change an event destination. A new target or a resume is tried at once.
    pub fn update_event_destination(
        &self,
        actor: Actor,
        account: AccountId,
        id: EventDestinationId,
        patch: DestinationPatch,
    ) -> Result<(EventDestination, DeliveryStatus), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let before = destination_in(tx, account, id)?;
            self.authorize(tx, actor, account, target("update", id.to_string()), now)?;
            let mut after = before.clone();
            if let Some(d) = patch.description {
                after.description = d;
            }
            if let Some(m) = patch.metadata {
                after.metadata = m;
            }
            if let Some(e) = patch.enabled {
                after.enabled = e;
            }
            if let Some(t) = patch.target {
                destination::validate_target(&t, self.allow_private_destinations)?;
                trust_roots(&t)?;
                after.target = t;
            }
            destination::validate_text(&after.description, &after.metadata)?;
            let mut status = tx.delivery_status(id)?;
            if after != before {
                tx.put_event_destination(&after)?;
                if after.target != before.target || (after.enabled && !before.enabled) {
                    status.retry_at = None;
                    tx.put_delivery_status(id, &status)?;
                }
                record(
                    tx,
                    &account,
                    now,
                    actor,
                    Action::EventDestination(Change::Updated),
                    id.to_string(),
                    Some(Snapshot::EventDestination(before)),
                    Some(Snapshot::EventDestination(after.clone())),
                )?;
            }
            Ok((after, status))
        })
    }

    /// Delete an event destination, its secret and its cursor.
    pub fn delete_event_destination(
        &self,
        actor: Actor,
        account: AccountId,
        id: EventDestinationId,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let gone = destination_in(tx, account, id)?;
            self.authorize(tx, actor, account, target("delete", id.to_string()), now)?;
            tx.remove_event_destination(&gone)?;
            record(
                tx,
                &account,
                now,
                actor,
                Action::EventDestination(Change::Deleted),
                id.to_string(),
                Some(Snapshot::EventDestination(gone)),
                None,
            )
        })
    }

    /// An event destination of the account, with its delivery status.
    pub fn event_destination(
        &self,
        actor: Actor,
        account: AccountId,
        id: EventDestinationId,
    ) -> Result<(EventDestination, DeliveryStatus), AppError> {
        let read = self.store.read()?;
        let found = destination_in(&read, account, id)?;
        self.authorize(
            &read,
            actor,
            account,
            target("get", id.to_string()),
            self.now(),
        )?;
        let status = read.delivery_status(id)?;
        Ok((found, status))
    }

    /// A page of the account's event destinations, newest first, with their status.
    pub fn event_destinations(
        &self,
        actor: Actor,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<(EventDestination, DeliveryStatus)>, AppError> {
        let read = self.store.read()?;
        let list = target("list", account.to_string());
        self.authorize(&read, actor, account, list, self.now())?;
        let page = read.event_destinations_page(account, page)?;
        let mut items = Vec::with_capacity(page.items.len());
        for found in page.items {
            let status = read.delivery_status(found.id)?;
            items.push((found, status));
        }
        Ok(Page {
            items,
            more: page.more,
        })
    }

    /// The enabled destinations that have events waiting and no retry pending.
    pub fn due_destinations(&self) -> Result<Vec<EventDestinationId>, AppError> {
        let now = self.now();
        let read = self.store.read()?;
        let mut due = Vec::new();
        for found in read.all_event_destinations()? {
            if !found.enabled {
                continue;
            }
            let status = read.delivery_status(found.id)?;
            if status.retry_at.is_some_and(|at| at > now) {
                continue;
            }
            if read.next_event_seq(found.account)? > status.next_seq {
                due.push(found.id);
            }
        }
        Ok(due)
    }

    /// Up to `limit` events for destination `id` from its cursor on; `None` when it is
    /// gone, paused or has nothing waiting.
    pub fn delivery_batch(
        &self,
        id: EventDestinationId,
        limit: usize,
    ) -> Result<Option<Batch>, AppError> {
        let read = self.store.read()?;
        let Some(found) = read.event_destination(id)?.filter(|d| d.enabled) else {
            return Ok(None);
        };
        let status = read.delivery_status(id)?;
        let events = read.events_from(found.account, status.next_seq, limit)?;
        if events.is_empty() {
            return Ok(None);
        }
        let sealed = read.destination_secret(id)?.ok_or_else(|| {
            AppError::Store(crate::store::StoreError::corrupt(
                "event destination secret",
                format!("{id} has none"),
            ))
        })?;
        let secret = self.unseal(Sealed::DestinationSecret, &sealed)?;
        Ok(Some(Batch {
            destination: found,
            secret,
            events,
        }))
    }

    /// Move destination `id`'s cursor past `events` (a batch its receiver accepted).
    /// Nothing happens if it was deleted meanwhile, or if the cursor is already past them.
    pub fn delivered(&self, id: EventDestinationId, events: &[Event]) -> Result<(), AppError> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let now = self.now();
        self.store.write_signals(|tx| {
            if tx.event_destination(id)?.is_none() {
                return Ok(());
            }
            let mut status = tx.delivery_status(id)?;
            if status.next_seq > last.seq {
                return Ok(());
            }
            let count = u64::try_from(events.len()).unwrap_or(u64::MAX);
            status.delivered(last.id, last.seq, count, now);
            tx.put_delivery_status(id, &status)
        })?;
        Ok(())
    }

    /// Note a failed attempt for destination `id`: why, and when to try again.
    pub fn delivery_failed(&self, id: EventDestinationId, error: String) -> Result<(), AppError> {
        let now = self.now();
        self.store.write_signals(|tx| {
            if tx.event_destination(id)?.is_none() {
                return Ok(());
            }
            let mut status = tx.delivery_status(id)?;
            status.failed(error, now);
            tx.put_delivery_status(id, &status)
        })?;
        Ok(())
    }
}
