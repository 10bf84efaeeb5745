//! TOTP second factor (RFC 6238 through totp-rs) and recovery codes.
//!
//! The seed cannot be hashed (codes are computed from it), so it is sealed at rest with
//! AES-256-GCM under a key derived from the server key: a copy of the database alone
//! reveals no seed. A code is accepted once: the step it matched is remembered and no
//! step at or before it is accepted again. Recovery codes are random, shown once, and
//! stored as keyed hashes; each works once.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use subtle::ConstantTimeEq;
use totp_rs::{Builder, Totp};
use zeroize::Zeroizing;

use super::{AppError, Latchkey, Me};
use crate::domain::DomainError;
use crate::domain::event::{Action, Actor, Principal};
use crate::domain::id::UserId;
use crate::domain::session::TotpRecord;
use crate::domain::time::Timestamp;
use crate::domain::token::Secret;
use crate::domain::token::{Keyring, SecretHasher};
use crate::store::Reads;

/// Recovery codes made at enrollment.
pub const RECOVERY_CODES: usize = 10;

/// What the user scans to enroll.
#[derive(Debug)]
pub struct Enrollment {
    /// `otpauth://totp/…` (carries the seed: shown once, to its user).
    pub otpauth_uri: Secret,
    /// The same as a QR code, a PNG in base64.
    pub qr_png_base64: Secret,
}

/// Which second factor a login or a change presents.
#[derive(Debug, Clone, Copy)]
pub enum SecondFactor<'a> {
    /// A 6-digit TOTP code.
    Code(&'a str),
    /// A recovery code.
    Recovery(&'a str),
    /// A passkey: the browser's answer (JSON) to a second-factor ceremony.
    Passkey {
        /// The ceremony it answers.
        ceremony: &'a str,
        /// The `PublicKeyCredential` as JSON.
        response: &'a str,
    },
}

/// Whether `user` has a second factor: a confirmed TOTP, or a passkey.
pub(super) fn has_second_factor(tx: &impl Reads, user: UserId) -> Result<bool, AppError> {
    Ok(tx.totp(user)?.is_some_and(|r| r.confirmed) || tx.has_passkey(user)?)
}

/// What a sealed value is: each purpose has its own key.
#[derive(Debug, Clone, Copy)]
pub(super) enum Sealed {
    /// A TOTP seed.
    TotpSeed,
    /// An invitation token.
    InvitationToken,
    /// An event destination's signing secret.
    DestinationSecret,
    /// A login in steps, half done (`login::LoginTicket`).
    LoginTicket,
    /// An identity provider's client secret.
    ProviderSecret,
    /// A single sign-on flow under way (its state cookie).
    SsoFlow,
    /// A verified SAML answer on its way to its session (`federation::FinishedFlow`).
    FinishedFlow,
}

/// The AES-256-GCM key for `purpose` derived from one server key.
fn sealing_key(key: &SecretHasher, purpose: Sealed) -> Result<LessSafeKey, AppError> {
    let label: &[u8] = match purpose {
        Sealed::TotpSeed => b"latchkey totp seed sealing v1",
        Sealed::InvitationToken => b"latchkey invitation token sealing v1",
        Sealed::DestinationSecret => b"latchkey event destination secret sealing v1",
        Sealed::LoginTicket => b"latchkey login ticket sealing v1",
        Sealed::ProviderSecret => b"latchkey identity provider secret sealing v1",
        Sealed::SsoFlow => b"latchkey single sign-on flow sealing v1",
        Sealed::FinishedFlow => b"latchkey single sign-on finished flow sealing v1",
    };
    let derived = Zeroizing::new(key.hash(label).0);
    let unbound = UnboundKey::new(&AES_256_GCM, derived.as_ref())
        .map_err(|_| AppError::DataDir("the seed sealing key could not be made".into()))?;
    Ok(LessSafeKey::new(unbound))
}

fn totp(seed: &[u8], account_name: &str) -> Result<Totp, AppError> {
    Builder::new()
        .with_secret(seed.to_vec())
        .with_issuer(Some("latchkey"))
        .with_account_name(account_name)
        .build()
        .map_err(|e| AppError::DataDir(format!("TOTP setup failed: {e}")))
}

fn recovery_code() -> Result<String, AppError> {
    // 50 bits in Crockford's base32 (no i, l, o, u), as `xxxxx-xxxxx`.
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).map_err(|_| DomainError::RandomnessUnavailable)?;
    let mut code = String::with_capacity(11);
    for (i, b) in bytes.iter().enumerate() {
        if i == 5 {
            code.push('-');
        }
        let digit = ALPHABET.get(usize::from(b % 32)).copied().unwrap_or(b'0');
        code.push(char::from(digit));
    }
    Ok(code)
}

fn actor(user: UserId) -> Actor {
    Actor {
        principal: Principal::User(user),
        credential: None,
    }
}

impl Latchkey {
    /// Seal `seed` (AES-256-GCM, random nonce) under the current key for `purpose`.
    pub(super) fn seal(&self, purpose: Sealed, seed: &[u8]) -> Result<Vec<u8>, AppError> {
        seal_under(self.keys.load().current(), purpose, seed)
    }

    /// Open what [`Self::seal`] sealed for `purpose`, under whichever server key it was
    /// sealed with.
    pub(super) fn unseal(
        &self,
        purpose: Sealed,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AppError> {
        unseal_under(&self.keys.load(), purpose, sealed)
    }

    fn recovery_hash(&self, code: &str) -> [u8; 32] {
        self.keys
            .load()
            .current()
            .hash(normalized_code(code).as_bytes())
            .0
    }
}

/// Seal `seed` under `key` for `purpose`.
pub(super) fn seal_under(
    key: &SecretHasher,
    purpose: Sealed,
    seed: &[u8],
) -> Result<Vec<u8>, AppError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| DomainError::RandomnessUnavailable)?;
    let mut sealed = seed.to_vec();
    sealing_key(key, purpose)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut sealed,
        )
        .map_err(|_| AppError::DataDir("sealing the TOTP seed failed".into()))?;
    Ok(nonce.iter().copied().chain(sealed).collect())
}

/// Open what was sealed for `purpose` under any key of `keys` (newest first).
pub(super) fn unseal_under(
    keys: &Keyring,
    purpose: Sealed,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AppError> {
    let (nonce, body) = sealed
        .split_at_checked(NONCE_LEN)
        .ok_or_else(|| AppError::DataDir("a sealed TOTP seed is truncated".into()))?;
    for (_, key) in keys.newest_first() {
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| AppError::DataDir("a sealed TOTP seed is truncated".into()))?;
        let mut body = Zeroizing::new(body.to_vec());
        if let Ok(seed) = sealing_key(key, purpose)?.open_in_place(nonce, Aad::empty(), &mut body) {
            return Ok(Zeroizing::new(seed.to_vec()));
        }
    }
    Err(AppError::DataDir("a sealed TOTP seed does not open".into()))
}

/// A recovery code as it is hashed: its letters and digits, lower case.
fn normalized_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Latchkey {
    /// Whether `user` has a second factor (a confirmed TOTP, or a passkey).
    pub fn mfa_enrolled(&self, user: UserId) -> Result<bool, AppError> {
        has_second_factor(&self.store.read()?, user)
    }

    /// Whether `user` has a confirmed TOTP enrollment.
    pub fn totp_on(&self, user: UserId) -> Result<bool, AppError> {
        Ok(self.store.read()?.totp(user)?.is_some_and(|r| r.confirmed))
    }

    /// Begin TOTP enrollment (replacing an unconfirmed one): the seed as an `otpauth://`
    /// URI and a QR code. Refused while a confirmed one exists.
    pub fn enroll_totp(&self, me: Me) -> Result<Enrollment, AppError> {
        let now = self.now();
        let user = me.user;
        let found = self
            .store
            .read()?
            .user(user)?
            .ok_or_else(|| DomainError::NotFound(user.into()))?;
        let mut seed = Zeroizing::new([0u8; 20]);
        getrandom::fill(seed.as_mut()).map_err(|_| DomainError::RandomnessUnavailable)?;
        let generator = totp(seed.as_ref(), found.email.as_str())?;
        let uri = generator
            .to_url()
            .map_err(|e| AppError::DataDir(format!("TOTP URI failed: {e}")))?;
        let qr = generator
            .to_qr_base64()
            .map_err(|e| AppError::DataDir(format!("TOTP QR code failed: {e}")))?;
        let sealed = self.seal(Sealed::TotpSeed, seed.as_ref())?;
        self.store.write(|tx| {
            me.ensure_may_change_self(tx)?;
            if tx.totp(user)?.is_some_and(|r| r.confirmed) {
                return Err(DomainError::Conflict {
                    what: "a confirmed TOTP enrollment (disable it first)",
                }
                .into());
            }
            tx.put_totp(
                user,
                &TotpRecord {
                    sealed_seed: sealed,
                    confirmed: false,
                    last_step: 0,
                    recovery: Vec::new(),
                    created_at: now,
                },
            )?;
            Ok::<(), AppError>(())
        })?;
        Ok(Enrollment {
            otpauth_uri: Secret::new(uri),
            qr_png_base64: Secret::new(qr),
        })
    }

    /// Confirm enrollment with a first code: TOTP then guards every login. Returns the
    /// recovery codes, shown this once. `session`, if the caller used one, counts as
    /// having passed the second factor from now on.
    pub fn confirm_totp(&self, me: Me, code: &str) -> Result<Vec<Secret>, AppError> {
        let now = self.now();
        let (user, session) = (me.user, me.session);
        let codes: Vec<String> = (0..RECOVERY_CODES)
            .map(|_| recovery_code())
            .collect::<Result<_, _>>()?;
        let hashes: Vec<[u8; 32]> = codes.iter().map(|c| self.recovery_hash(c)).collect();
        self.store.write(|tx| {
            me.ensure_may_change_self(tx)?;
            let mut found =
                tx.totp(user)?
                    .filter(|r| !r.confirmed)
                    .ok_or(DomainError::NotApplicable(
                        "no TOTP enrollment is waiting for confirmation",
                    ))?;
            let step = self
                .totp_step(&found, user, code, now)?
                .ok_or_else(|| DomainError::invalid("code", "is not the current code"))?;
            found.confirmed = true;
            found.last_step = step;
            found.recovery = hashes;
            tx.put_totp(user, &found)?;
            if let Some(session) = session {
                super::login::mark_mfa_verified(tx, user, session)?;
            }
            super::record_user_change(tx, user, now, actor(user), Action::MfaEnrolled)
        })?;
        Ok(codes.into_iter().map(Secret::new).collect())
    }

    /// The step `code` matches for `user`'s seed at `now`, within one step of skew, if
    /// it is later than the last step accepted.
    fn totp_step(
        &self,
        found: &TotpRecord,
        user: UserId,
        code: &str,
        now: Timestamp,
    ) -> Result<Option<u64>, AppError> {
        let seed = self.unseal(Sealed::TotpSeed, &found.sealed_seed)?;
        let generator = totp(&seed, &user.to_string())?;
        let seconds = u64::try_from(now.as_millis() / 1000).unwrap_or(0);
        Ok(generator
            .check(code.trim(), seconds)
            .filter(|step| *step > found.last_step))
    }

    /// Check a second factor for `user` and use it up (the code's step, or the recovery
    /// code), in `tx`. `Ok(false)` when it is wrong or already used.
    pub(super) fn use_second_factor(
        &self,
        tx: &mut crate::store::WriteTx,
        user: UserId,
        factor: SecondFactor<'_>,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        if let SecondFactor::Passkey { ceremony, response } = factor {
            return self.use_passkey(tx, user, ceremony, response, now);
        }
        let Some(mut found) = tx.totp(user)?.filter(|r| r.confirmed) else {
            return Ok(false);
        };
        match factor {
            SecondFactor::Code(code) => match self.totp_step(&found, user, code, now)? {
                Some(step) => {
                    found.last_step = step;
                    tx.put_totp(user, &found)?;
                    Ok(true)
                }
                None => Ok(false),
            },
            SecondFactor::Recovery(code) => {
                // Under each key: codes made before a key rotation keep their hashes.
                let keys = self.keys.load();
                let normalized = normalized_code(code);
                let hashes: Vec<[u8; 32]> =
                    keys.hashes(normalized.as_bytes()).map(|h| h.0).collect();
                let position = found
                    .recovery
                    .iter()
                    .position(|stored| hashes.iter().any(|hash| bool::from(stored.ct_eq(hash))));
                match position {
                    Some(i) => {
                        found.recovery.remove(i);
                        tx.put_totp(user, &found)?;
                        Ok(true)
                    }
                    None => Ok(false),
                }
            }
            SecondFactor::Passkey { .. } => Ok(false),
        }
    }

    /// Turn TOTP off; needs a current code (or a recovery code).
    pub fn disable_totp(&self, me: Me, factor: SecondFactor<'_>) -> Result<(), AppError> {
        let now = self.now();
        let user = me.user;
        self.store.write(|tx| {
            me.ensure_may_change_self(tx)?;
            if tx.totp(user)?.is_none() {
                return Err(DomainError::NotApplicable("TOTP is not enrolled").into());
            }
            let confirmed = tx.totp(user)?.is_some_and(|r| r.confirmed);
            if confirmed && !self.use_second_factor(tx, user, factor, now)? {
                return Err(DomainError::invalid("code", "is not a current code").into());
            }
            tx.remove_totp(user)?;
            super::record_user_change(tx, user, now, actor(user), Action::MfaDisabled)
        })
    }
}
