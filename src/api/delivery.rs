//! Event delivery: each account's audit trail, streamed to its event destinations.
//!
//! Every quarter second a round asks the store which enabled destinations have events
//! past their cursor and no retry pending, and starts one task per such destination (never
//! two for the same one). A task sends batches of up to 100 events, in chain order, each
//! event exactly as `GET /events/{id}` shows it, and moves the durable cursor only after
//! the receiver accepted the batch; a failure is recorded (`status.last_error`) and
//! retried after 1 s, doubling up to 5 min. So every event arrives at least once and in
//! order; a batch is sent again only if the server stopped between the receiver's answer
//! and the cursor's commit. On shutdown the loop stops starting batches and waits (up to
//! 10 s) for those under way.
//!
//! - HTTPS: `POST` of `{"destination_id", "events": [...]}` as `application/json`, with
//!   `Latchkey-Signature: t=<unix seconds>,v1=<hex HMAC-SHA-256 of "<t>.<body>" keyed
//!   by the signing secret>`; any 2xx accepts the batch (redirects are not followed).
//! - Syslog: RFC 5424 messages (facility `log audit`, severity `informational`, MSGID
//!   the action, the event as JSON in MSG), octet-counted (RFC 5425) over TLS; a batch
//!   counts as accepted once written, flushed and closed with `close_notify`.
//!
//! Connections go only to public addresses unless the operator allows private ones
//! (`--allow-private-destinations`): the check applies to the addresses a name resolves
//! to at each attempt, and the connection is made to the address checked.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::client::TlsStream;

use super::views::{self, Base};
use crate::app::{Batch, Latchkey, trust_roots};
use crate::domain::destination::{self, Endpoint, Target};
use crate::domain::event::Event;
use crate::domain::id::EventDestinationId;

/// How often the store is asked for destinations with events waiting.
const ROUND: Duration = Duration::from_millis(250);
/// Events per request (HTTPS) or connection (syslog).
const BATCH: usize = 100;
/// Time for a whole attempt: connect, TLS, send, answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for batches under way.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the delivery loop needs.
#[derive(Debug, Clone)]
pub struct Deliverer {
    lk: Arc<Latchkey>,
    /// The base of the events' `uri`: the appliance's own address, as in its links.
    base: Base,
    allow_private: bool,
    /// RFC 5424 HOSTNAME.
    hostname: String,
}

impl Deliverer {
    /// A deliverer for `lk`, with event `uri`s under `base_url`.
    pub fn new(lk: Arc<Latchkey>, base_url: &str, allow_private: bool) -> Deliverer {
        let hostname = hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .map(|h| {
                h.chars()
                    .filter(char::is_ascii_graphic)
                    .take(255)
                    .collect::<String>()
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "-".to_owned());
        Deliverer {
            lk,
            base: Base::Public(Arc::from(base_url.trim_end_matches('/'))),
            allow_private,
            hostname,
        }
    }

    /// Deliver until `stop` turns true, then wait (bounded) for the batches under way.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut tasks: JoinSet<EventDestinationId> = JoinSet::new();
        let mut busy: HashSet<EventDestinationId> = HashSet::new();
        loop {
            tokio::select! {
                () = tokio::time::sleep(ROUND) => {}
                _ = stop.changed() => break,
            }
            while let Some(done) = tasks.try_join_next() {
                match done {
                    Ok(id) => {
                        busy.remove(&id);
                    }
                    // A task that panicked or was cancelled: forget every busy mark, the
                    // next round finds what is still due.
                    Err(err) => {
                        tracing::error!(error = %err, "an event delivery task failed");
                        busy.retain(|_| false);
                    }
                }
            }
            let lk = Arc::clone(&this.lk);
            let due = match tokio::task::spawn_blocking(move || lk.due_destinations()).await {
                Ok(Ok(due)) => due,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "event delivery: cannot read the destinations");
                    continue;
                }
                Err(err) => {
                    tracing::error!(error = %err, "event delivery: the round did not run");
                    continue;
                }
            };
            for id in due {
                if busy.insert(id) {
                    let this = Arc::clone(&this);
                    tasks.spawn(async move {
                        this.drain(id).await;
                        id
                    });
                }
            }
        }
        if tokio::time::timeout(DRAIN_TIMEOUT, async {
            while tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!("event deliveries under way did not finish before shutdown");
        }
    }

    /// Send destination `id` its waiting events, batch after batch, until none are left
    /// or an attempt fails.
    async fn drain(&self, id: EventDestinationId) {
        loop {
            let lk = Arc::clone(&self.lk);
            let batch = match tokio::task::spawn_blocking(move || lk.delivery_batch(id, BATCH))
                .await
            {
                Ok(Ok(Some(batch))) => batch,
                Ok(Ok(None)) => return,
                Ok(Err(err)) => {
                    tracing::warn!(destination = %id, error = %err, "event delivery: cannot read the batch");
                    return;
                }
                Err(err) => {
                    tracing::error!(destination = %id, error = %err, "event delivery: the batch was not read");
                    return;
                }
            };
            let full = batch.events.len() == BATCH;
            let sent = match tokio::time::timeout(ATTEMPT_TIMEOUT, self.send(&batch)).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())),
            };
            let lk = Arc::clone(&self.lk);
            let ok = sent.is_ok();
            let recorded = tokio::task::spawn_blocking(move || match sent {
                Ok(()) => lk.delivered(id, &batch.events),
                Err(why) => {
                    tracing::warn!(destination = %id, error = %why, "event delivery failed; it will be retried");
                    lk.delivery_failed(id, why)
                }
            })
            .await;
            match recorded {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::warn!(destination = %id, error = %err, "event delivery: the cursor was not written");
                    return;
                }
                Err(err) => {
                    tracing::error!(destination = %id, error = %err, "event delivery: the cursor was not written");
                    return;
                }
            }
            if !ok || !full {
                return;
            }
        }
    }

    async fn send(&self, batch: &Batch) -> Result<(), String> {
        let events: Vec<Value> = batch
            .events
            .iter()
            .map(|e| views::event(&self.base, e))
            .collect();
        match &batch.destination.target {
            Target::Https { url, .. } => self.send_https(batch, url, events).await,
            Target::Syslog { .. } => self.send_syslog(batch, &events).await,
        }
    }

    async fn send_https(&self, batch: &Batch, url: &str, events: Vec<Value>) -> Result<(), String> {
        let (endpoint, path) = destination::parse_https_url(url).map_err(|e| e.to_string())?;
        let id = batch.destination.id.to_string();
        let body = serde_json::to_vec(&json!({"destination_id": id, "events": events}))
            .map_err(|e| format!("the batch could not be encoded: {e}"))?;
        let tls = self
            .connect(&batch.destination.target, &endpoint, b"http/1.1")
            .await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        let connection = tokio::spawn(connection);
        let at = self.lk.now().as_millis() / 1000;
        let signature = sign(&batch.secret, at, &body);
        let host = super::outbound::host_header(&endpoint);
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("latchkey/", env!("CARGO_PKG_VERSION")),
            )
            .header("latchkey-destination-id", id)
            .header("latchkey-signature", format!("t={at},v1={signature}"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("the request could not be made: {e}"))?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| format!("the request failed: {e}"));
        connection.abort();
        let status = answer?.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered HTTP {status}"))
        }
    }

    async fn send_syslog(&self, batch: &Batch, events: &[Value]) -> Result<(), String> {
        let endpoint = batch
            .destination
            .target
            .endpoint()
            .map_err(|e| e.to_string())?;
        let mut frames = Vec::new();
        for (event, view) in batch.events.iter().zip(events) {
            frames.extend_from_slice(syslog_frame(&self.hostname, event, view).as_bytes());
        }
        let mut tls = self
            .connect(&batch.destination.target, &endpoint, b"")
            .await?;
        let write = async {
            tls.write_all(&frames).await?;
            tls.flush().await?;
            tls.shutdown().await
        };
        write
            .await
            .map_err(|e| format!("writing to the syslog server failed: {e}"))
    }

    /// A TLS connection to `endpoint` (only to public addresses unless allowed), trusting
    /// the target's own CA certificates or else the public roots.
    async fn connect(
        &self,
        target: &Target,
        endpoint: &Endpoint,
        alpn: &[u8],
    ) -> Result<TlsStream<TcpStream>, String> {
        let roots = trust_roots(target).map_err(|e| e.to_string())?;
        super::outbound::connect(endpoint, roots, alpn, self.allow_private).await
    }
}

/// `hex(HMAC-SHA-256(secret, "<at>.<body>"))`.
fn sign(secret: &[u8], at: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(at.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    context
        .sign()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One RFC 5424 message, octet-counted (RFC 5425): `<110>1 TIMESTAMP HOSTNAME latchkey -
/// MSGID - BOM JSON`. PRI 110 is facility 13 (log audit), severity 6 (informational).
fn syslog_frame(hostname: &str, event: &Event, view: &Value) -> String {
    let msgid: String = event.action.name().chars().take(32).collect();
    let mut timestamp = event.at.to_rfc3339();
    if timestamp.starts_with('@') {
        // Outside what RFC 3339 can write: the NILVALUE.
        timestamp = "-".to_owned();
    }
    let message = format!("<110>1 {timestamp} {hostname} latchkey - {msgid} - \u{feff}{view}");
    format!("{} {message}", message.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_time_dot_body() {
        // Computed independently: Python's hmac.new(b"Jefe", b'1764648000.{"events":[]}',
        // hashlib.sha256).hexdigest().
        assert_eq!(
            sign(b"Jefe", 1_764_648_000, br#"{"events":[]}"#),
            "c860c080293a9b8b70eafe3791ed8a1626bf4a401f2b43f6a5b6f86373ba85e2"
        );
    }

    #[test]
    fn syslog_frames_count_octets_and_follow_rfc5424() {
        let event = Event {
            id: crate::domain::id::EventId(1),
            account: crate::domain::id::AccountId(2),
            seq: 0,
            at: crate::domain::time::Timestamp::from_millis(0),
            actor: crate::domain::event::Actor::SYSTEM,
            action: crate::domain::event::Action::AccountCreated,
            target: "ac_x".into(),
            before: None,
            after: None,
            prev: [0; 32],
        };
        let frame = syslog_frame("host", &event, &json!({"é": 1}));
        let (len, message) = frame.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), message.len());
        assert_eq!(
            message,
            "<110>1 1970-01-01T00:00:00Z host latchkey - iam.account.create - \u{feff}{\"é\":1}"
        );
    }
}
