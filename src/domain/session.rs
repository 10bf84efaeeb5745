//! Dashboard sessions and the password rules (seed 001): what a session is, how long it
//! lives, and which passwords are accepted.

use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::id::{AccountId, PasskeyId, SessionId, UserId};
use crate::domain::time::Timestamp;

/// How long a session lives from login: a working day.
pub const SESSION_LIFETIME_MS: i64 = 12 * 60 * 60 * 1000;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (bounds the work of hashing and of the strength estimate).
pub const MAX_PASSWORD_BYTES: usize = 128;

/// A logged-in user in one account. The cookie carries a random secret; the store keeps
/// only its keyed hash, so a copy of the database cannot be replayed as a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// `ses_…`
    pub id: SessionId,
    /// Who.
    pub user: UserId,
    /// The account the session acts in (a user of several accounts picks one).
    pub account: AccountId,
    /// When it began.
    pub created_at: Timestamp,
    /// When it ends, whatever happens.
    pub expires_at: Timestamp,
    /// The address it logged in from.
    pub source_ip: Option<String>,
    /// The user passed a second factor in this session.
    pub mfa_verified: bool,
    /// The account requires MFA and the user has none yet: the session reaches only
    /// `/me`, TOTP enrollment and `/logout` until it enrolls.
    pub enrollment_only: bool,
}

impl Session {
    /// Whether it is still usable at `now`.
    pub fn live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }
}

/// A user's TOTP enrollment as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpRecord {
    /// Nonce, then the sealed 20-byte seed and its tag.
    pub sealed_seed: Vec<u8>,
    /// Confirmed with a first code (until then it does not guard logins).
    pub confirmed: bool,
    /// The last step a code was accepted for.
    pub last_step: u64,
    /// Keyed hashes of the unused recovery codes.
    pub recovery: Vec<[u8; 32]>,
    /// When enrollment began.
    pub created_at: Timestamp,
}

/// A user's passkey as stored: a WebAuthn credential bound to one relying party (the
/// host name the dashboard was opened by). It holds only public material: the
/// authenticator keeps the private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyRecord {
    /// `pk_…`
    pub id: PasskeyId,
    /// Whose.
    pub user: UserId,
    /// The user's name for it ("work laptop").
    pub name: String,
    /// The relying party id it was made for (a host name).
    pub rp_id: String,
    /// The WebAuthn credential id (unique across the appliance).
    pub credential_id: Vec<u8>,
    /// The credential as the WebAuthn library keeps it (public key, counter), JSON.
    pub credential: String,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last signed a user in.
    pub last_used_at: Option<Timestamp>,
}

/// The most passkeys one user may hold.
pub const MAX_PASSKEYS: usize = 20;

/// How long a password reset link works: one hour.
pub const RESET_LIFETIME_MS: i64 = 60 * 60 * 1000;
/// How long the first administrator's setup link lives: a day.
pub const SETUP_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

/// A one-time link for one user: a password reset an administrator issued, or a link
/// mailed to the user's own address (a reset it asked for, or a proof of its email). The
/// link carries a random secret; the store keeps its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLink {
    /// Whose.
    pub user: UserId,
    /// What it does, and whether using it proves the email.
    pub purpose: LinkPurpose,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// What a [`UserLink`] is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkPurpose {
    /// A password reset an administrator of `account` issued and was shown: whoever uses
    /// it proves nothing about the email, so using it unbinds the user from its email.
    AdminReset {
        /// The administrator's account.
        account: AccountId,
    },
    /// A password reset the user asked for, mailed to `email` only: using it proves the
    /// user controls that address.
    MailedReset {
        /// The address it went to.
        email: String,
    },
    /// A proof of the address `email`, mailed to it only.
    EmailProof {
        /// The address it went to.
        email: String,
    },
    /// The first administrator's setup link, printed to the host operator when a data
    /// directory is made: it sets the first password and leaves the email as the
    /// operator vouched for it.
    Setup,
}

impl LinkPurpose {
    /// Whether the link sets a password.
    pub fn resets_password(&self) -> bool {
        !matches!(self, LinkPurpose::EmailProof { .. })
    }

    /// The address using this link proves the user controls, if any.
    pub fn proves(&self) -> Option<&str> {
        match self {
            LinkPurpose::AdminReset { .. } | LinkPurpose::Setup => None,
            LinkPurpose::MailedReset { email } | LinkPurpose::EmailProof { email } => Some(email),
        }
    }
}

/// A user's proof that it controls its email: a link mailed only to that address was used
/// (or the host operator vouched, making the account's first administrator). Until it has
/// one, a user made by an administrator, Just-in-Time or SCIM joins no other account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailProof {
    /// The address proven, as its unique key (lower case): a proof of another address
    /// proves nothing about the current one.
    pub email: String,
    /// When.
    pub at: Timestamp,
}

/// The recent attempts a rate limiter counts against one key (an email or an address),
/// kept across restarts so a restart does not reset a lockout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentAttempts {
    /// When each counted attempt was made (ms), oldest first.
    pub at: Vec<i64>,
}

/// Check a new password: long enough, not too long, and strong by the zxcvbn estimator
/// (score 3 or more of 4), judged also against the user's own email and name.
pub fn check_password(password: &str, user_inputs: &[&str]) -> Result<(), DomainError> {
    let field = "new_password";
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    let estimate = zxcvbn::zxcvbn(password, user_inputs);
    if (estimate.score() as u8) < 3 {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| format!(": {w}")))
            .unwrap_or_default();
        return Err(DomainError::invalid(
            field,
            format!("is too easy to guess{hint}; use a longer passphrase of unrelated words"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_short_and_personal_passwords_are_refused() {
        for weak in ["short", "password1234", "aaaaaaaaaaaaaaaa", "qwertyuiop123"] {
            assert!(check_password(weak, &[]).is_err(), "{weak}");
        }
        assert!(check_password("ada.lovelace@example.com", &["ada.lovelace@example.com"]).is_err());
        assert!(check_password(&"x".repeat(129), &[]).is_err());
        let words = ["admin@latchkey.localhost", "admin", "latchkey", "localhost"];
        assert!(check_password("latchkeyadmin", &words).is_err());
        check_password("copper kettle orbit 42 lantern", &[]).unwrap();
    }
}
