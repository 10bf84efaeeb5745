//! Time as the model sees it: a millisecond [`Timestamp`] and an injected [`Clock`], so
//! tests can move time (expiry, lockouts, TOTP windows) without sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::DomainError;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Parse an RFC 3339 date-time (any offset; stored as UTC).
    pub fn parse_rfc3339(field: &'static str, text: &str) -> Result<Self, DomainError> {
        let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
            DomainError::invalid(field, format!("{text:?} is not an RFC 3339 date-time"))
        })?;
        i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
            .map(Timestamp)
            .map_err(|_| DomainError::invalid(field, "date-time out of range"))
    }

    /// RFC 3339 in UTC with second precision, as the API shows times.
    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|at| at.replace_nanosecond(0).ok())
            .and_then(|at| at.format(&Rfc3339).ok())
            .unwrap_or_else(|| format!("@{}ms", self.0))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for RfcTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339())
    }
}

/// A timestamp that serializes as RFC 3339 text, for JSON output.
#[derive(Debug, Clone, Copy)]
pub struct RfcTime(pub Timestamp);

/// Where "now" comes from. Production uses [`SystemClock`]; tests use [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(millis)
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(at.0)))
    }

    /// Move the clock forward by `millis`.
    pub fn advance(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_at_second_precision() {
        let at = Timestamp::parse_rfc3339("t", "2026-11-22T10:00:00Z").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-11-22T10:00:00Z");
        let offset = Timestamp::parse_rfc3339("t", "2026-11-22T11:00:00+01:00").unwrap();
        assert_eq!(offset, at);
        assert!(Timestamp::parse_rfc3339("t", "yesterday").is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_millis(10));
        let shared = clock.clone();
        clock.advance(5);
        assert_eq!(shared.now(), Timestamp::from_millis(15));
    }
}
