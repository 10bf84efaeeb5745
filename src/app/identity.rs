//! What every account relies on about a user. Users are global (seed 001), so a user's
//! name, password, email, second factor and sessions are shared by all of its accounts:
//! an account changes them only when it is the user's only account, the user changes
//! them for itself, and each change is recorded in the trail of every account the user
//! belongs to.
//!
//! Here too: the user's proof that it controls its email (a link mailed only to that
//! address), without which a user made by an administrator joins no other account, and
//! the one-time links mailed to the user (a reset it asked for, a proof of its address).

use std::net::IpAddr;

use super::login::random_secret;
use super::{AppError, Latchkey};
use crate::domain::DomainError;
use crate::domain::event::{Action, Actor, Principal, Snapshot};
use crate::domain::id::{AccountId, SessionId, UserId};
use crate::domain::session::{self, EmailProof, LinkPurpose, UserLink};
use crate::domain::time::Timestamp;
use crate::domain::token::Secret;
use crate::domain::user::{self, Email, User};
use crate::store::{Reads, WriteTx};

/// Mailed links asked for per email within the login window (15 minutes).
pub const MAX_LINKS_PER_EMAIL: usize = 3;
/// Mailed links asked for per source address within the same window (any emails).
pub const MAX_LINKS_PER_ADDRESS: usize = 20;

/// A user acting on itself (`/me`): in `account`, with a session or with an API key.
#[derive(Debug, Clone, Copy)]
pub struct Me {
    /// The user.
    pub user: UserId,
    /// The account its session or key acts in.
    pub account: AccountId,
    /// Its session, when it came with one.
    pub session: Option<SessionId>,
}

impl Me {
    /// The user as the actor of its own changes.
    pub fn actor(self) -> Actor {
        Actor {
            principal: Principal::User(self.user),
            credential: None,
        }
    }

    /// May this caller change what every account relies on about the user? With a
    /// session, yes: it proved the password. With an API key, only while the key's
    /// account is the user's only account, since an administrator of that account may
    /// have made the key (administrators may name another member as a key's owner).
    pub(super) fn ensure_may_change_self(self, tx: &impl Reads) -> Result<(), AppError> {
        if self.session.is_none() {
            user::ensure_only_account(self.user, &tx.user_accounts(self.user)?, self.account)?;
        }
        Ok(())
    }
}

/// A one-time link to mail to a user's address on file, and only there.
#[derive(Debug)]
pub struct MailedLink {
    /// The link's secret, shown to nobody but the mailbox.
    pub secret: Secret,
    /// The address on file.
    pub to: String,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// Record a change to global user `user` in the trail of every account it belongs to.
pub(super) fn record_user_change(
    tx: &mut WriteTx,
    user: UserId,
    now: Timestamp,
    actor: Actor,
    action: Action,
) -> Result<(), AppError> {
    record_user_change_with(tx, user, now, actor, action, None, None)
}

/// [`record_user_change`] with snapshots of the user before and after.
pub(super) fn record_user_change_with(
    tx: &mut WriteTx,
    user: UserId,
    now: Timestamp,
    actor: Actor,
    action: Action,
    before: Option<Snapshot>,
    after: Option<Snapshot>,
) -> Result<(), AppError> {
    for account in tx.user_accounts(user)? {
        super::record(
            tx,
            &account,
            now,
            actor,
            action,
            user.to_string(),
            before.clone(),
            after.clone(),
        )?;
    }
    Ok(())
}

/// Whether `user` has proven its current email.
pub(super) fn email_proven(tx: &impl Reads, user: &User) -> Result<bool, AppError> {
    Ok(tx
        .email_proof(user.id)?
        .is_some_and(|proof| proof.email == user.email.key()))
}

/// Record that `user` proved `email` (when it is still its address), once.
pub(super) fn prove(
    tx: &mut WriteTx,
    user: &User,
    email: Option<&str>,
    actor: Actor,
    now: Timestamp,
) -> Result<(), AppError> {
    let current = email.is_some_and(|e| e.eq_ignore_ascii_case(user.email.as_str()));
    if !current || email_proven(tx, user)? {
        return Ok(());
    }
    let proof = EmailProof {
        email: user.email.key(),
        at: now,
    };
    tx.put_email_proof(user.id, &proof)?;
    record_user_change(tx, user.id, now, actor, Action::EmailProven)
}

/// Drop `user`'s email proof, if it has one.
pub(super) fn unprove(
    tx: &mut WriteTx,
    user: &User,
    actor: Actor,
    now: Timestamp,
) -> Result<(), AppError> {
    if tx.email_proof(user.id)?.is_none() {
        return Ok(());
    }
    tx.remove_email_proof(user.id)?;
    record_user_change(tx, user.id, now, actor, Action::EmailProofRemoved)
}

impl Latchkey {
    /// Count a request for a mailed link to `email` from `ip`, or refuse it (rate
    /// limited) when either is over its limit. Counted alike for known and unknown
    /// addresses, before anything is looked up.
    pub fn admit_link_request(&self, email: &str, ip: Option<IpAddr>) -> Result<(), AppError> {
        let key = email.trim().to_lowercase();
        // Counted for good: a request is never "forgiven", whatever becomes of it.
        let _counted = self.links.admit(&key, ip, self.now())?;
        Ok(())
    }

    /// A forgotten password: when `email` names a user, a one-time reset link for it, to
    /// be mailed to the address on file and nowhere else; `None` for an unknown email.
    /// The caller answers alike either way (and before this runs), so nothing tells the
    /// two apart. Using the link proves the user controls the address.
    pub fn request_password_reset(&self, email: &str) -> Result<Option<MailedLink>, AppError> {
        let Ok(email) = Email::parse(email) else {
            return Ok(None);
        };
        let Some(found) = self.store.read()?.user_by_email(&email)? else {
            return Ok(None);
        };
        let purpose = LinkPurpose::MailedReset {
            email: found.email.as_str().to_owned(),
        };
        self.mailed_link(&found, purpose).map(Some)
    }

    /// A one-time link proving the caller's own email, to be mailed to it.
    pub fn request_email_proof(&self, me: Me) -> Result<MailedLink, AppError> {
        let found = self
            .store
            .read()?
            .user(me.user)?
            .ok_or_else(|| DomainError::NotFound(me.user.into()))?;
        let purpose = LinkPurpose::EmailProof {
            email: found.email.as_str().to_owned(),
        };
        self.mailed_link(&found, purpose)
    }

    fn mailed_link(&self, found: &User, purpose: LinkPurpose) -> Result<MailedLink, AppError> {
        let now = self.now();
        let secret = random_secret()?;
        let key = self
            .keys
            .load()
            .current()
            .hash(secret.expose().as_bytes())
            .0;
        let expires_at = Timestamp::from_millis(now.as_millis() + session::RESET_LIFETIME_MS);
        let link = UserLink {
            user: found.id,
            purpose,
            created_at: now,
            expires_at,
        };
        self.store.write(|tx| tx.put_user_link(&key, &link))?;
        Ok(MailedLink {
            secret,
            to: found.email.as_str().to_owned(),
            expires_at,
        })
    }

    /// Use an email proof link: once, before it expires, and only while the address it
    /// went to is still the user's.
    pub fn prove_email(&self, secret: &str) -> Result<(), AppError> {
        let now = self.now();
        let invalid = || DomainError::invalid("token", "is not valid: used, expired or unknown");
        self.store.write(|tx| {
            let key = self.stored_link_key(tx, secret)?.ok_or_else(invalid)?;
            let link = tx
                .user_link(&key)?
                .filter(|l| now < l.expires_at && !l.purpose.resets_password())
                .ok_or_else(invalid)?;
            tx.remove_user_link(&key)?;
            let found = tx
                .user(link.user)?
                .ok_or_else(|| DomainError::NotFound(link.user.into()))?;
            let actor = Actor {
                principal: Principal::User(found.id),
                credential: None,
            };
            prove(tx, &found, link.purpose.proves(), actor, now)
        })
    }

    /// The caller renames itself; every account it belongs to sees (and records) it.
    pub fn rename_self(&self, me: Me, name: &str) -> Result<User, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            me.ensure_may_change_self(tx)?;
            super::scim::ensure_not_managed(tx, me.user)?;
            let before = tx
                .user(me.user)?
                .ok_or_else(|| DomainError::NotFound(me.user.into()))?;
            let mut after = before.clone();
            after.name = crate::domain::account::validate_display_name(name)?;
            if after != before {
                tx.update_user(&after)?;
                record_user_change_with(
                    tx,
                    me.user,
                    now,
                    me.actor(),
                    Action::UserRenamed,
                    Some(Snapshot::User(before)),
                    Some(Snapshot::User(after.clone())),
                )?;
            }
            Ok(after)
        })
    }
}
