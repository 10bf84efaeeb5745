//! Identifiers: `<prefix>_<22 base62 characters>` around a 128-bit value whose top 48 bits
//! are the creation time in milliseconds and whose low 80 bits come from the OS CSPRNG.
//!
//! The base62 alphabet is in ASCII order and the width is fixed, so the text form sorts
//! exactly like the number: ids are time-sortable as strings and as redb `u128` keys.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::time::Timestamp;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters in the body of every id: 62^22 > 2^128.
pub const BODY_LEN: usize = 22;

/// Fill `buf` from the operating system's CSPRNG.
pub(crate) fn os_random(buf: &mut [u8]) -> Result<(), DomainError> {
    getrandom::fill(buf).map_err(|_| DomainError::RandomnessUnavailable)
}

/// The base62 character for a digit below 62.
#[inline]
pub fn base62_char(digit: u8) -> u8 {
    ALPHABET.get(usize::from(digit)).copied().unwrap_or(b'0')
}

/// Encode `value` as base62 filling all of `out`, most significant digit first
/// (fixed width, so text order follows numeric order).
pub fn encode_base62(mut value: u128, out: &mut [u8]) {
    // Ten digits at a time: 62^10 fits a u64, so only one u128 division per ten digits
    // and the rest in u64 (a u128 division is a library call, ~20x slower; ids are
    // printed on every API answer).
    const CHUNK: u128 = 62u128.pow(10);
    for chunk in out.rchunks_mut(10) {
        // The remainder is below 62^10 < 2^64, so the cast cannot truncate.
        let mut part = (value % CHUNK) as u64;
        value /= CHUNK;
        for slot in chunk.iter_mut().rev() {
            // Below 62, so the cast cannot truncate.
            *slot = base62_char((part % 62) as u8);
            part /= 62;
        }
    }
}

/// Digit value of every byte, `INVALID` outside the alphabet. A table rather than a
/// `match`: token bytes are random, so per-character range branches mispredict (measured
/// ≈ 250 ns per lookup when verifying varied tokens).
// Evaluated at compile time: an out-of-range index fails the build, never a run.
#[allow(clippy::indexing_slicing)]
const DIGITS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};
const INVALID: u8 = 0xFF;

/// The value of one base62 character, or `None` outside the alphabet.
#[inline]
pub fn base62_digit(c: u8) -> Option<u8> {
    match DIGITS.get(usize::from(c)).copied() {
        Some(INVALID) | None => None,
        digit => digit,
    }
}

/// Whether every byte of `text` is a base62 character, without a branch per byte.
#[inline]
pub fn all_base62(text: &[u8]) -> bool {
    text.iter().fold(0u8, |bad, &c| {
        bad | (DIGITS.get(usize::from(c)).copied().unwrap_or(INVALID) >> 7)
    }) == 0
}

/// Decode exactly [`BODY_LEN`] base62 characters; `None` for a wrong length, a character
/// outside the alphabet, or a value above `u128::MAX`.
#[inline]
pub fn decode_base62(text: &[u8]) -> Option<u128> {
    if text.len() != BODY_LEN {
        return None;
    }
    // As in `encode_base62`: 2 + 10 + 10 digits, each group summed in u64, so only the
    // two joins are u128 arithmetic (checked: 62^22 > 2^128).
    let group = |digits: &[u8]| {
        digits
            .iter()
            .try_fold(0u64, |acc, &c| Some(acc * 62 + u64::from(base62_digit(c)?)))
    };
    const CHUNK: u128 = 62u128.pow(10);
    let (top, rest) = text.split_at_checked(2)?;
    let (middle, low) = rest.split_at_checked(10)?;
    u128::from(group(top)?)
        .checked_mul(CHUNK)?
        .checked_add(u128::from(group(middle)?))?
        .checked_mul(CHUNK)?
        .checked_add(u128::from(group(low)?))
}

/// A new time-sortable 128-bit id value made at `now`.
pub fn new_raw(now: Timestamp) -> Result<u128, DomainError> {
    let mut random = [0u8; 10];
    os_random(&mut random)?;
    let millis = u128::from(now.as_millis().max(0).unsigned_abs()) & ((1 << 48) - 1);
    let low = random
        .iter()
        .fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
    Ok((millis << 80) | low)
}

/// An id's text, `<prefix>_<body>`, on the stack: for writers that want a `&str` without
/// allocating (ids are written into every API answer).
#[derive(Debug, Clone, Copy)]
pub struct IdText {
    buf: [u8; IdText::CAPACITY],
    len: usize,
}

impl IdText {
    /// Room for the longest prefix (`sshcr`) with space to spare, `_` and the body.
    const CAPACITY: usize = 10 + 1 + BODY_LEN;

    /// The text of the id `prefix`/`raw`. Prefixes are short ASCII constants; a longer
    /// one would be cut to fit, never overflow.
    pub fn new(prefix: &str, raw: u128) -> IdText {
        let mut buf = [0u8; IdText::CAPACITY];
        let prefix = prefix.as_bytes();
        let at = prefix.len().min(IdText::CAPACITY - 1 - BODY_LEN);
        let (head, tail) = buf.split_at_mut(at);
        head.copy_from_slice(prefix.get(..at).unwrap_or_default());
        if let Some((underscore, rest)) = tail.split_first_mut()
            && let Some(body) = rest.get_mut(..BODY_LEN)
        {
            *underscore = b'_';
            encode_base62(raw, body);
        }
        IdText {
            buf,
            len: at + 1 + BODY_LEN,
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Prefixes, `_` and the base62 alphabet are ASCII: always valid UTF-8.
        std::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

fn parse_id(prefix: &str, text: &str) -> Option<u128> {
    let body = text.strip_prefix(prefix)?.strip_prefix('_')?;
    decode_base62(body.as_bytes())
}

/// The number behind a typed id, which orders ids by creation (lists page by it).
pub trait RawId: Copy {
    /// The id's value.
    fn raw_id(self) -> u128;
}

/// Declares a typed id with its prefix; the types cannot be mixed up at compile time.
macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub u128);

        impl $name {
            /// The text prefix of this kind of id.
            pub const PREFIX: &'static str = $prefix;

            /// A new id created at `now`.
            pub fn generate(now: Timestamp) -> Result<Self, DomainError> {
                new_raw(now).map(Self)
            }

            /// The id's text, without allocating.
            pub fn text(self) -> IdText {
                IdText::new($prefix, self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.text().as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(text: &str) -> Result<Self, DomainError> {
                parse_id($prefix, text).map(Self).ok_or_else(|| {
                    DomainError::invalid("id", format!("{text:?} is not a valid {} id", $prefix))
                })
            }
        }

        impl RawId for $name {
            fn raw_id(self) -> u128 {
                self.0
            }
        }

        impl From<$name> for AnyId {
            fn from(id: $name) -> AnyId {
                AnyId(id.to_string())
            }
        }
    };
}

typed_id!(/// An account (the tenant of record).
    AccountId, "ac");
typed_id!(/// A person, global to the appliance.
    UserId, "usr");

impl AccountId {
    /// The appliance's own trail (the live policy set's loads and reloads), kept and
    /// checked like an account's; no account has this id (a generated id carries its
    /// creation time in its high bits).
    pub const APPLIANCE: AccountId = AccountId(0);
}
typed_id!(/// A bot user (service account) of one account.
    BotId, "bot");
typed_id!(/// An audit event.
    EventId, "ev");
typed_id!(/// An IP policy.
    IpPolicyId, "ipp");
typed_id!(/// A rule of an IP policy.
    IpRuleId, "ipr");
typed_id!(/// An IP restriction.
    IpRestrictionId, "ipx");
typed_id!(/// A tenant of an account.
    TenantId, "tnt");
typed_id!(/// A tenant role (built-in or custom).
    RoleId, "rol");
typed_id!(/// A role assignment.
    RoleAssignmentId, "ra");
typed_id!(/// A dashboard session.
    SessionId, "ses");
typed_id!(/// An invitation to join an account.
    InvitationId, "inv");
typed_id!(/// Where an account's events are streamed.
    EventDestinationId, "ed");
typed_id!(/// A user's passkey (a WebAuthn credential).
    PasskeyId, "pk");
typed_id!(/// An identity provider an account trusts for single sign-on.
    IdentityProviderId, "idp");
typed_id!(/// An external identity (a provider's subject) linked to a user.
    ExternalIdentityId, "ext");
typed_id!(/// A SCIM token of an account.
    ScimTokenId, "scimtok");
typed_id!(/// A SCIM group of an account.
    ScimGroupId, "grp");
typed_id!(/// An administrator's mapping of a SCIM group to roles and tenant role assignments.
    ScimGroupMappingId, "sgm");

/// Any id in its text form, for messages that name an object of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnyId(pub String);

impl fmt::Display for AnyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_round_trips_and_keeps_order() {
        for value in [0, 1, 61, 62, u128::from(u64::MAX), u128::MAX - 1, u128::MAX] {
            let mut body = [0u8; BODY_LEN];
            encode_base62(value, &mut body);
            assert_eq!(decode_base62(&body), Some(value));
        }
        let (mut a, mut b) = ([0u8; BODY_LEN], [0u8; BODY_LEN]);
        encode_base62(1 << 100, &mut a);
        encode_base62((1 << 100) + 1, &mut b);
        assert!(a < b, "text order must follow numeric order");
    }

    #[test]
    fn chunked_encoding_equals_digit_by_digit() {
        let naive = |mut value: u128, out: &mut [u8]| {
            for slot in out.iter_mut().rev() {
                *slot = base62_char((value % 62) as u8);
                value /= 62;
            }
        };
        let mut x: u128 = 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834;
        for _ in 0..1000 {
            x = x
                .wrapping_mul(0x2545_F491_4F6C_DD1D)
                .wrapping_add(1_442_695_040_888_963_407);
            for len in [BODY_LEN, 7, 10, 11] {
                let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
                encode_base62(x, &mut a);
                naive(x, &mut b);
                assert_eq!(a, b, "{x} in {len} digits");
            }
        }
    }

    #[test]
    fn base62_rejects_bad_input() {
        assert_eq!(decode_base62(b"short"), None);
        assert_eq!(decode_base62(b"000000000000000000000-"), None);
        // 22 'z' is above u128::MAX.
        assert_eq!(decode_base62(b"zzzzzzzzzzzzzzzzzzzzzz"), None);
        // One above u128::MAX, whichever group carries the excess.
        let mut max = [0u8; BODY_LEN];
        encode_base62(u128::MAX, &mut max);
        assert_eq!(&max, b"7n42DGM5Tflk9n8mt7Fhc7");
        assert_eq!(decode_base62(b"7n42DGM5Tflk9n8mt7Fhc8"), None);
        assert_eq!(decode_base62(b"7n42DGM5Tflk9n8mt7Fhd0"), None);
        assert_eq!(decode_base62(b"7o00000000000000000000"), None);
    }

    #[test]
    fn ids_are_time_sortable_and_parse_back() {
        let early = UserId::generate(Timestamp::from_millis(1_000)).unwrap();
        let late = UserId::generate(Timestamp::from_millis(2_000)).unwrap();
        assert!(early < late);
        assert!(early.to_string() < late.to_string());
        let text = early.to_string();
        assert!(text.starts_with("usr_") && text.len() == 4 + BODY_LEN);
        assert_eq!(text.parse::<UserId>().unwrap(), early);
    }

    #[test]
    fn an_id_of_another_kind_does_not_parse() {
        let bot = BotId::generate(Timestamp::from_millis(5)).unwrap();
        let err = bot.to_string().parse::<UserId>().unwrap_err();
        assert!(matches!(err, DomainError::Invalid { field: "id", .. }));
    }
}
