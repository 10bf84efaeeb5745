//! Shared set-up: a fresh data directory with one initialised account.

use std::sync::Arc;

use latchkey::app::{AppError, Config, Initialized, Latchkey};
use latchkey::domain::DomainError;
use latchkey::domain::credential::{CredentialId, CredentialSpec, Owner, Rejection};
use latchkey::domain::event::{Actor, Principal};
use latchkey::domain::id::AccountId;
use latchkey::domain::time::{ManualClock, Timestamp};
use latchkey::domain::token::{Secret, TokenKind};
use latchkey::domain::user::{Roles, User};
use tempfile::TempDir;

/// 2026-11-22T10:00:00Z
pub const START: i64 = 1_795_341_600_000;

pub struct Fixture {
    pub dir: TempDir,
    pub clock: ManualClock,
    pub lk: Latchkey,
    pub init: Initialized,
}

impl Fixture {
    /// A new data directory with account "acme" and its administrator.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(Timestamp::from_millis(START));
        let lk = open(&dir, &clock);
        let init = lk.init("acme", "admin@example.com").unwrap();
        Fixture {
            dir,
            clock,
            lk,
            init,
        }
    }

    pub fn account(&self) -> AccountId {
        self.init.account.id
    }

    pub fn admin(&self) -> &User {
        &self.init.user
    }

    /// The administrator acting with its API key.
    pub fn admin_actor(&self) -> Actor {
        let key = self.lk.verify_token(self.init.api_key.expose()).unwrap();
        Actor {
            principal: Principal::User(self.admin().id),
            credential: Some(key.credential),
        }
    }

    /// Add a member with `roles`; returns the user and its personal authtoken.
    pub fn member(&self, email: &str, roles: Roles) -> (User, Secret) {
        let joined = self
            .lk
            .add_member(self.admin_actor(), self.account(), email, "Member", roles)
            .unwrap();
        (joined.member.user, joined.personal_authtoken)
    }

    /// Make `user` (a member here) also a member of a second account, "globex"; returns
    /// its personal authtoken there.
    pub fn also_member_elsewhere(&self, email: &str) -> (AccountId, Secret) {
        let other = self.lk.init("globex", "other-admin@example.com").unwrap();
        let joined = self
            .lk
            .add_member(
                Actor::SYSTEM,
                other.account.id,
                email,
                "Elsewhere",
                Roles::default(),
            )
            .unwrap();
        (other.account.id, joined.personal_authtoken)
    }

    /// Disable or re-enable a member of the fixture's account, as its administrator.
    pub fn set_state(&self, user: &User, state: latchkey::domain::user::MemberState) {
        self.lk
            .set_member_state(self.admin_actor(), self.account(), user.id, state)
            .unwrap();
    }

    /// An API key for `owner` in the fixture's account.
    pub fn api_key(&self, owner: Owner) -> (CredentialId, Secret) {
        let (credential, secret) = self
            .lk
            .create_token_credential(
                self.admin_actor(),
                self.account(),
                TokenKind::ApiKey,
                owner,
                CredentialSpec::default(),
            )
            .unwrap();
        (credential.id, secret)
    }

    /// What a refused call must leave as it was: the audit head (every change writes an
    /// event) and the number of live credentials.
    pub fn state(&self) -> (String, usize) {
        (
            self.lk.verify_audit_chain().unwrap().head,
            self.lk.live_credentials(),
        )
    }

    /// Close and reopen the data directory.
    pub fn reopen(self) -> Fixture {
        let Fixture {
            dir,
            clock,
            lk,
            init,
        } = self;
        drop(lk);
        let lk = open(&dir, &clock);
        Fixture {
            dir,
            clock,
            lk,
            init,
        }
    }
}

pub fn open(dir: &TempDir, clock: &ManualClock) -> Latchkey {
    Latchkey::open(Config {
        data_dir: dir.path().join("data"),
        clock: Arc::new(clock.clone()),
    })
    .unwrap()
}

/// The reason a presented secret is refused.
pub fn rejection(lk: &Latchkey, secret: &Secret) -> Rejection {
    lk.verify(secret.expose()).unwrap_err()
}

pub fn is_valid(lk: &Latchkey, secret: &Secret) -> bool {
    lk.verify(secret.expose()).is_ok()
}

/// Unwrap the domain refusal of an operation.
pub fn refusal<T: std::fmt::Debug>(result: Result<T, AppError>) -> DomainError {
    match result {
        Err(AppError::Domain(err)) => err,
        other => panic!("expected a domain refusal, got {other:?}"),
    }
}
