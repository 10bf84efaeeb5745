//! Bearer tokens: their text format, minting, checksum and keyed hash.
//!
//! `lk_<kind>_<id body>_<secret><crc>`: a per-kind prefix that secret scanners can match
//! (`lk_at_` authtoken, `lk_ak_` API key), the credential's id body (22 base62), 43 base62
//! characters of secret from the OS CSPRNG (256 bits), and the CRC32 of everything before it
//! as 6 base62 characters. The checksum lets a mistyped or truncated token be refused before
//! any lookup (GitHub's token format does the same). The store keeps only
//! HMAC-SHA-256(server key, secret): a fast keyed hash, because the secret already has full
//! entropy and argon2 on every lookup would cost milliseconds for no gain.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::domain::DomainError;
use crate::domain::id::{self, BODY_LEN, base62_char, base62_digit, encode_base62, os_random};

/// The kinds of credential that are presented as a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TokenKind {
    /// An agent authtoken (`lk_at_`).
    Authtoken,
    /// An API key (`lk_ak_`).
    ApiKey,
    /// A SCIM token (`lk_sc_`): an identity provider's key to an account's SCIM
    /// endpoint, no credential of a user or bot.
    Scim,
}

impl TokenKind {
    fn tag(self) -> &'static [u8; 2] {
        match self {
            TokenKind::Authtoken => b"at",
            TokenKind::ApiKey => b"ak",
            TokenKind::Scim => b"sc",
        }
    }
}

const PREFIX: &[u8] = b"lk_";
const SECRET_LEN: usize = 43;
const CRC_LEN: usize = 6;
/// Offsets inside a token: `lk_` + tag(2) + `_` + body(22) + `_` + secret(43) + crc(6).
const TAG_AT: usize = 3;
const BODY_AT: usize = TAG_AT + 3;
const SECRET_AT: usize = BODY_AT + BODY_LEN + 1;
const CRC_AT: usize = SECRET_AT + SECRET_LEN;
/// The length of every token.
pub const TOKEN_LEN: usize = CRC_AT + CRC_LEN;

/// Why a token was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFormatError {
    /// Not shaped like a latchkey token at all (length, prefix, separators, alphabet).
    Malformed,
    /// Shaped right, but the checksum does not match: a typo or a truncation.
    BadChecksum,
}

/// A token whose shape and checksum are right; nothing about it has been looked up yet.
#[derive(Debug, Clone, Copy)]
pub struct ParsedToken<'a> {
    /// Which kind of credential the prefix claims.
    pub kind: TokenKind,
    /// The credential id value the token names.
    pub id: u128,
    secret: &'a [u8],
}

impl ParsedToken<'_> {
    /// The secret part, for hashing.
    pub fn secret(&self) -> &[u8] {
        self.secret
    }
}

/// Check the shape and checksum of `text` and split it; no allocation, no lookup.
pub fn parse(text: &str) -> Result<ParsedToken<'_>, TokenFormatError> {
    let bytes = text.as_bytes();
    if bytes.len() != TOKEN_LEN || !bytes.starts_with(PREFIX) {
        return Err(TokenFormatError::Malformed);
    }
    let kind = match bytes.get(TAG_AT..TAG_AT + 2) {
        Some(b"at") => TokenKind::Authtoken,
        Some(b"ak") => TokenKind::ApiKey,
        Some(b"sc") => TokenKind::Scim,
        _ => return Err(TokenFormatError::Malformed),
    };
    let (Some(b'_'), Some(b'_')) = (bytes.get(BODY_AT - 1), bytes.get(SECRET_AT - 1)) else {
        return Err(TokenFormatError::Malformed);
    };
    let (Some(head), Some(crc_text)) = (bytes.get(..CRC_AT), bytes.get(CRC_AT..)) else {
        return Err(TokenFormatError::Malformed);
    };
    let expected = decode_crc(crc_text).ok_or(TokenFormatError::Malformed)?;
    if crc32fast::hash(head) != expected {
        return Err(TokenFormatError::BadChecksum);
    }
    let secret = bytes
        .get(SECRET_AT..CRC_AT)
        .ok_or(TokenFormatError::Malformed)?;
    if !id::all_base62(secret) {
        return Err(TokenFormatError::Malformed);
    }
    let id = bytes
        .get(BODY_AT..BODY_AT + BODY_LEN)
        .and_then(id::decode_base62)
        .ok_or(TokenFormatError::Malformed)?;
    Ok(ParsedToken { kind, id, secret })
}

fn decode_crc(text: &[u8]) -> Option<u32> {
    let value = text
        .iter()
        .try_fold(0u64, |acc, &c| Some(acc * 62 + u64::from(base62_digit(c)?)))?;
    u32::try_from(value).ok()
}

/// Mint a new token for credential `id`; the plain text exists only in the returned value.
pub fn mint(kind: TokenKind, id: u128) -> Result<Secret, DomainError> {
    mint_bytes(kind, id).map(|text| Secret(ascii_string(&text)))
}

/// Every byte of a minted token is ASCII, so this conversion cannot lose anything.
fn ascii_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn mint_bytes(kind: TokenKind, id: u128) -> Result<Zeroizing<Vec<u8>>, DomainError> {
    let mut text = Zeroizing::new(vec![0u8; TOKEN_LEN]);
    let (head, crc) = text.split_at_mut(CRC_AT);
    let (prefix, secret) = head.split_at_mut(SECRET_AT);
    let (start, body) = prefix.split_at_mut(BODY_AT);
    start.copy_from_slice(b"lk_xx_");
    if let Some(tag) = start.get_mut(TAG_AT..TAG_AT + 2) {
        tag.copy_from_slice(kind.tag());
    }
    let mut id_body = [0u8; BODY_LEN];
    encode_base62(id, &mut id_body);
    if let Some((sep, body)) = body.split_last_mut() {
        body.copy_from_slice(&id_body);
        *sep = b'_';
    }
    fill_base62(secret)?;
    encode_base62(u128::from(crc32fast::hash(head)), crc);
    Ok(text)
}

/// Fill `out` with uniformly random base62 characters (rejection sampling: 248 = 4 × 62).
fn fill_base62(out: &mut [u8]) -> Result<(), DomainError> {
    let mut pool = Zeroizing::new([0u8; 64]);
    let mut used = pool.len();
    for slot in out.iter_mut() {
        loop {
            if used == pool.len() {
                os_random(pool.as_mut())?;
                used = 0;
            }
            let byte = pool.get(used).copied().unwrap_or(255);
            used += 1;
            if byte < 248 {
                *slot = base62_char(byte % 62);
                break;
            }
        }
    }
    Ok(())
}

/// A plain secret (a token or key) that is shown once: it zeroizes its memory on drop and
/// never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret that came from outside (e.g. a key file).
    pub fn new(text: String) -> Self {
        Secret(text)
    }

    /// The plain text; call only to hand it to the one party allowed to see it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// HMAC-SHA-256 of a token secret under the server key: all the store keeps.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub struct SecretHash(pub [u8; 32]);

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash([redacted])")
    }
}

/// The server's HMAC key, pre-keyed once so each hash costs two SHA-256 compressions
/// instead of four.
#[derive(Clone)]
pub struct SecretHasher {
    keyed: Hmac<Sha256>,
}

impl SecretHasher {
    /// Length of a server key in bytes.
    pub const KEY_LEN: usize = 32;

    /// A hasher for `key`.
    pub fn new(key: &[u8; Self::KEY_LEN]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail; fall back defensively anyway.
        let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        SecretHasher { keyed }
    }

    /// A fresh random server key.
    pub fn generate_key() -> Result<Zeroizing<[u8; Self::KEY_LEN]>, DomainError> {
        let mut key = Zeroizing::new([0u8; Self::KEY_LEN]);
        os_random(key.as_mut())?;
        Ok(key)
    }

    /// The keyed hash of a token's secret part.
    #[inline]
    pub fn hash(&self, secret: &[u8]) -> SecretHash {
        let mut mac = self.keyed.clone();
        mac.update(secret);
        SecretHash(mac.finalize().into_bytes().into())
    }

    /// Mint a new token for credential `id` with the keyed hash to store for it.
    pub fn mint(&self, kind: TokenKind, id: u128) -> Result<(Secret, SecretHash), DomainError> {
        let text = mint_bytes(kind, id)?;
        let hash = self.hash(text.get(SECRET_AT..CRC_AT).unwrap_or_default());
        Ok((Secret(ascii_string(&text)), hash))
    }
}

impl fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHasher([redacted])")
    }
}

/// The server's keys by version: the newest hashes and seals everything made from now
/// on; older ones (the keys before a rotation) still verify and unseal what was made
/// under them, until it is rotated, re-sealed or expires.
#[derive(Clone)]
pub struct Keyring {
    current: (u32, SecretHasher),
    /// Descending by version.
    older: Vec<(u32, SecretHasher)>,
}

impl Keyring {
    /// The keyring of `keys` (version, key), in any order; versions must be distinct and
    /// there must be at least one.
    pub fn new(mut keys: Vec<(u32, SecretHasher)>) -> Result<Keyring, DomainError> {
        keys.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
        if keys.windows(2).any(|w| matches!(w, [a, b] if a.0 == b.0)) {
            return Err(DomainError::invalid(
                "server key",
                "two keys of the keyring have the same version",
            ));
        }
        let mut keys = keys.into_iter();
        let current = keys.next().ok_or_else(|| {
            DomainError::invalid("server key", "a keyring needs at least one key")
        })?;
        Ok(Keyring {
            current,
            older: keys.collect(),
        })
    }

    /// The key everything new is hashed and sealed under.
    pub fn current(&self) -> &SecretHasher {
        &self.current.1
    }

    /// The current key's version.
    pub fn current_version(&self) -> u32 {
        self.current.0
    }

    /// Every key with its version, newest first: where lookups of older material go.
    pub fn newest_first(&self) -> impl Iterator<Item = (u32, &SecretHasher)> {
        std::iter::once((self.current.0, &self.current.1))
            .chain(self.older.iter().map(|(version, key)| (*version, key)))
    }

    /// The keyed hash of `secret` under each key, newest first: a stored hash made under
    /// any of them is one of these.
    pub fn hashes<'a>(&'a self, secret: &'a [u8]) -> impl Iterator<Item = SecretHash> + 'a {
        self.newest_first().map(move |(_, key)| key.hash(secret))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field(
                "versions",
                &self.newest_first().map(|(v, _)| v).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(kind: TokenKind) -> Secret {
        mint(kind, 0x1234_5678_9abc_def0_1122_3344_5566_7788).unwrap()
    }

    #[test]
    fn minted_tokens_parse_back_with_kind_and_id() {
        for kind in [TokenKind::Authtoken, TokenKind::ApiKey, TokenKind::Scim] {
            let t = token(kind);
            assert_eq!(t.expose().len(), TOKEN_LEN);
            let parsed = parse(t.expose()).unwrap();
            assert_eq!(parsed.kind, kind);
            assert_eq!(parsed.id, 0x1234_5678_9abc_def0_1122_3344_5566_7788);
        }
        assert!(token(TokenKind::Authtoken).expose().starts_with("lk_at_"));
        assert!(token(TokenKind::ApiKey).expose().starts_with("lk_ak_"));
        assert!(token(TokenKind::Scim).expose().starts_with("lk_sc_"));
    }

    #[test]
    fn two_tokens_for_one_id_have_different_secrets() {
        let (a, b) = (token(TokenKind::ApiKey), token(TokenKind::ApiKey));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn every_single_character_change_is_caught_before_lookup() {
        let t = token(TokenKind::ApiKey);
        let original = t.expose().as_bytes().to_vec();
        for i in 0..original.len() {
            for replacement in [b'0', b'a', b'Z', b'_', b'!'] {
                if original[i] == replacement {
                    continue;
                }
                let mut changed = original.clone();
                changed[i] = replacement;
                let text = String::from_utf8(changed).unwrap();
                assert!(
                    parse(&text).is_err(),
                    "change at {i} to {replacement} slipped through"
                );
            }
        }
    }

    #[test]
    fn flipped_secret_character_is_a_bad_checksum_and_truncation_is_malformed() {
        let t = token(TokenKind::ApiKey);
        let mut bytes = t.expose().as_bytes().to_vec();
        bytes[SECRET_AT + 3] = if bytes[SECRET_AT + 3] == b'x' {
            b'y'
        } else {
            b'x'
        };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(parse(&flipped).unwrap_err(), TokenFormatError::BadChecksum);
        assert_eq!(
            parse(&t.expose()[..TOKEN_LEN - 1]).unwrap_err(),
            TokenFormatError::Malformed
        );
        assert_eq!(parse("").unwrap_err(), TokenFormatError::Malformed);
        let other_kind = t.expose().replacen("lk_ak_", "lk_zz_", 1);
        assert_eq!(parse(&other_kind).unwrap_err(), TokenFormatError::Malformed);
    }

    #[test]
    fn hash_depends_on_key_and_secret_and_compares_exactly() {
        let key_a = SecretHasher::generate_key().unwrap();
        let key_b = SecretHasher::generate_key().unwrap();
        let (a, b) = (SecretHasher::new(&key_a), SecretHasher::new(&key_b));
        assert_eq!(a.hash(b"secret").0, a.hash(b"secret").0);
        assert_ne!(a.hash(b"secret").0, a.hash(b"secreu").0);
        assert_ne!(a.hash(b"secret").0, b.hash(b"secret").0);
        let (token, hash) = a.mint(TokenKind::ApiKey, 7).unwrap();
        assert_eq!(
            a.hash(parse(token.expose()).unwrap().secret()).0,
            hash.0,
            "the stored hash is of the secret part"
        );
    }

    #[test]
    fn secrets_never_print() {
        let t = token(TokenKind::ApiKey);
        assert_eq!(format!("{t:?} {t}"), "[redacted] [redacted]");
    }
}
