//! Event destinations: where an account's audit trail is streamed (an HTTPS endpoint, or
//! a syslog server over TLS), and how far each has got.
//!
//! A destination receives every event of its account from the one that created it on,
//! in chain order, at least once: the cursor (`DeliveryStatus::next_seq`) moves only
//! after the receiver accepted a batch, and it is stored, so a restart resumes where the
//! last acknowledged batch ended.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::id::{AccountId, EventDestinationId, EventId};
use crate::domain::time::Timestamp;

/// Where an account's events go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDestination {
    /// `ed_…`
    pub id: EventDestinationId,
    /// The account whose events it receives.
    pub account: AccountId,
    /// When it was made.
    pub created_at: Timestamp,
    /// At most 255 bytes.
    pub description: String,
    /// At most 4096 bytes.
    pub metadata: String,
    /// A paused destination keeps its cursor; it resumes from there.
    pub enabled: bool,
    /// The receiver.
    pub target: Target,
}

/// A receiver of events. Both speak TLS only: an audit trail never crosses a network in
/// clear text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// `POST` of JSON batches to an `https://` URL, signed with the destination's secret.
    Https {
        /// `https://host[:port]/path[?query]`.
        url: String,
        /// PEM certificates to trust instead of the public roots (a private CA).
        trusted_ca_pem: Option<String>,
    },
    /// RFC 5424 messages, framed by octet counting (RFC 5425), over TLS.
    Syslog {
        /// `host:port` (`[v6]:port` for an IPv6 literal).
        address: String,
        /// PEM certificates to trust instead of the public roots.
        trusted_ca_pem: Option<String>,
    },
}

impl Target {
    /// `https` or `syslog`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Https { .. } => "https",
            Target::Syslog { .. } => "syslog",
        }
    }

    /// The host and port it connects to (checked when it was made).
    pub fn endpoint(&self) -> Result<Endpoint, DomainError> {
        match self {
            Target::Https { url, .. } => parse_https_url(url).map(|(endpoint, _)| endpoint),
            Target::Syslog { address, .. } => parse_syslog_address(address),
        }
    }

    /// The trusted CA certificates, when the target names its own.
    pub fn trusted_ca_pem(&self) -> Option<&str> {
        match self {
            Target::Https { trusted_ca_pem, .. } | Target::Syslog { trusted_ca_pem, .. } => {
                trusted_ca_pem.as_deref()
            }
        }
    }
}

/// A host (DNS name or IP literal, without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The name, or an address in its text form.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl Endpoint {
    /// The address, when the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// How far a destination has got, and how its last attempt went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStatus {
    /// The chain position of the next event to deliver.
    pub next_seq: u64,
    /// Events delivered since the destination was made.
    pub delivered: u64,
    /// The last event delivered.
    pub last_delivered: Option<EventId>,
    /// When a delivery was last tried.
    pub last_attempt_at: Option<Timestamp>,
    /// When a delivery last succeeded.
    pub last_success_at: Option<Timestamp>,
    /// Why the last attempt failed (`None` once one succeeds).
    pub last_error: Option<String>,
    /// Attempts that failed in a row.
    pub failures: u32,
    /// No attempt before this, after a failure.
    pub retry_at: Option<Timestamp>,
}

/// The longest wait between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

impl DeliveryStatus {
    /// The wait after `failures` failed attempts in a row: 1 s, doubling, at most 5 min.
    pub fn retry_delay(failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(16);
        Duration::from_secs(1u64 << exponent).min(MAX_RETRY_DELAY)
    }

    /// After a batch through `last` (at chain position `seq`, `count` events) was accepted.
    pub fn delivered(&mut self, last: EventId, seq: u64, count: u64, now: Timestamp) {
        self.next_seq = seq.saturating_add(1);
        self.delivered = self.delivered.saturating_add(count);
        self.last_delivered = Some(last);
        self.last_attempt_at = Some(now);
        self.last_success_at = Some(now);
        self.last_error = None;
        self.failures = 0;
        self.retry_at = None;
    }

    /// After an attempt failed: wait longer before the next.
    pub fn failed(&mut self, error: String, now: Timestamp) {
        self.failures = self.failures.saturating_add(1);
        self.last_attempt_at = Some(now);
        self.last_error = Some(error);
        let delay = i64::try_from(Self::retry_delay(self.failures).as_millis()).unwrap_or(0);
        self.retry_at = Some(Timestamp::from_millis(
            now.as_millis().saturating_add(delay),
        ));
    }

    /// `ok`, `retrying` (the last attempt failed) or `paused`.
    pub fn state(&self, enabled: bool) -> &'static str {
        match (enabled, self.failures) {
            (false, _) => "paused",
            (true, 0) => "ok",
            (true, _) => "retrying",
        }
    }
}

/// Check a new or changed destination's text.
pub fn validate_text(description: &str, metadata: &str) -> Result<(), DomainError> {
    crate::domain::ip::validate_text(description, metadata)
}

/// Check a target: the URL or address parses, and an IP literal is public unless the
/// operator allows private addresses. (Names are checked when they resolve, at delivery.)
pub fn validate_target(target: &Target, allow_private: bool) -> Result<(), DomainError> {
    let (field, endpoint) = match target {
        Target::Https { url, .. } => ("target.https.url", parse_https_url(url)?.0),
        Target::Syslog { address, .. } => ("target.syslog.address", parse_syslog_address(address)?),
    };
    if let Some(ip) = endpoint.ip().filter(|ip| !allow_private && !is_public(*ip)) {
        return Err(DomainError::invalid(
            field,
            format!(
                "{ip} is not a public address; the operator can allow private receivers with --allow-private-destinations"
            ),
        ));
    }
    if target
        .trusted_ca_pem()
        .is_some_and(|pem| pem.len() > 65_536)
    {
        return Err(DomainError::invalid(
            field_ca(target),
            "must be at most 65536 bytes",
        ));
    }
    Ok(())
}

/// The name the API gives a target's `trusted_ca_pem`.
pub fn field_ca(target: &Target) -> &'static str {
    match target {
        Target::Https { .. } => "target.https.trusted_ca_pem",
        Target::Syslog { .. } => "target.syslog.trusted_ca_pem",
    }
}

/// Whether `ip` is a globally routable unicast address: not loopback, private, link-local,
/// shared (CGNAT), unique-local, documentation, multicast or unspecified. A receiver
/// outside this set could reach services the appliance can reach and its users cannot.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets().get(2) == Some(&0))
                || (a == 198 && (b == 18 || b == 19)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments().first().copied().unwrap_or(0);
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments().get(1) == Some(&0x0db8)
                || first == 0x0064)
        }
    }
}

/// `https://host[:port]/path[?query]` → the endpoint and the request target (`/path?query`).
/// No user information (it would be logged and shown), no fragment, printable ASCII only.
pub fn parse_https_url(url: &str) -> Result<(Endpoint, String), DomainError> {
    const FIELD: &str = "target.https.url";
    if url.len() > 2048 {
        return Err(DomainError::invalid(FIELD, "must be at most 2048 bytes"));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DomainError::invalid(
            FIELD,
            "must be printable ASCII without spaces (percent-encode the rest)",
        ));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| {
            url.get(..8)
                .filter(|s| s.eq_ignore_ascii_case("https://"))
                .and_then(|_| url.get(8..))
        })
        .ok_or_else(|| {
            DomainError::invalid(
                FIELD,
                format!("{url:?} is not an https:// URL (plain http is refused)"),
            )
        })?;
    if rest.contains('#') {
        return Err(DomainError::invalid(FIELD, "must not have a fragment"));
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(split);
    if authority.contains('@') {
        return Err(DomainError::invalid(
            FIELD,
            "must not carry user information; the destination signs each request instead",
        ));
    }
    let endpoint =
        parse_host_port(authority, Some(443)).map_err(|m| DomainError::invalid(FIELD, m))?;
    let target = match target {
        "" => "/".to_owned(),
        t if t.starts_with('?') => format!("/{t}"),
        t => t.to_owned(),
    };
    Ok((endpoint, target))
}

/// Refuse a URL latchkey would fetch whose host is an IP literal that is not public
/// (names are checked when they resolve, at each connection).
pub fn refuse_private_url(field: &'static str, url: &str) -> Result<(), DomainError> {
    let (endpoint, _) =
        parse_https_url(url).map_err(|e| DomainError::invalid(field, e.to_string()))?;
    match endpoint.ip() {
        Some(ip) if !is_public(ip) => Err(DomainError::invalid(
            field,
            format!(
                "{ip} is not a public address; the operator can allow private ones with --allow-private-destinations"
            ),
        )),
        _ => Ok(()),
    }
}

/// `host:port` of a syslog server.
pub fn parse_syslog_address(address: &str) -> Result<Endpoint, DomainError> {
    parse_host_port(address, None).map_err(|m| DomainError::invalid("target.syslog.address", m))
}

fn parse_host_port(text: &str, default_port: Option<u16>) -> Result<Endpoint, String> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: an IPv6 address needs its closing ]"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            after => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("{text:?}: expected :port after ]"))?,
            ),
        };
        (host, port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match (port, default_port) {
        (Some(port), _) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{port:?} is not a port (1 to 65535)"))?,
        (None, Some(default)) => default,
        (None, None) => return Err(format!("{text:?} has no port: give host:port")),
    };
    let valid_name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid_name && host.parse::<IpAddr>().is_err() {
        return Err(format!("{host:?} is not a host name or an IP address"));
    }
    Ok(Endpoint {
        host: host.to_ascii_lowercase(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_urls_parse_into_endpoint_and_request_target() {
        let (e, t) = parse_https_url("https://Logs.Example.com/in?x=1").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, t.as_str()),
            ("logs.example.com", 443, "/in?x=1")
        );
        let (e, t) = parse_https_url("https://[2001:db8::1]:8443").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, t.as_str()),
            ("2001:db8::1", 8443, "/")
        );
        let (e, _) = parse_https_url("https://127.0.0.1:9000/x").unwrap();
        assert_eq!(e.ip(), Some("127.0.0.1".parse().unwrap()));
        for bad in [
            "http://example.com/",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "https://exa mple.com/",
            "https://example.com:0/",
            "https://example.com:99999/",
            "https://-bad-.com/",
            "https:///path",
            "ftp://example.com",
            "https://[::1/",
        ] {
            assert!(parse_https_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn syslog_addresses_need_a_port() {
        assert_eq!(
            parse_syslog_address("siem.example.com:6514").unwrap().port,
            6514
        );
        assert_eq!(parse_syslog_address("[::1]:6514").unwrap().host, "::1");
        assert!(parse_syslog_address("siem.example.com").is_err());
        assert!(parse_syslog_address("[::1]").is_err());
    }

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::",
            "192.0.0.8",
            "198.18.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        let private = Target::Https {
            url: "https://10.0.0.1/".into(),
            trusted_ca_pem: None,
        };
        assert!(validate_target(&private, false).is_err());
        assert!(validate_target(&private, true).is_ok());
    }

    #[test]
    fn retries_back_off_to_five_minutes() {
        let delays: Vec<u64> = (1..=12)
            .map(|f| DeliveryStatus::retry_delay(f).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        let mut status = DeliveryStatus::default();
        status.failed("HTTP 503".into(), Timestamp::from_millis(1_000));
        assert_eq!(status.state(true), "retrying");
        assert_eq!(status.retry_at, Some(Timestamp::from_millis(2_000)));
        status.delivered(EventId(7), 41, 3, Timestamp::from_millis(5_000));
        assert_eq!(
            (status.next_seq, status.delivered, status.failures),
            (42, 3, 0)
        );
        assert_eq!(status.state(true), "ok");
        assert_eq!(status.state(false), "paused");
    }
}
