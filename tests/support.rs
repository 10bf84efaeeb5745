//! Shared set-up: a fresh data directory with one initialised account.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use latchkey::app::{Acceptor, AppError, Config, Initialized, Latchkey, Me};
use latchkey::domain::DomainError;
use latchkey::domain::credential::{CredentialId, CredentialSpec, Owner, Rejection};
use latchkey::domain::event::{Actor, Principal};
use latchkey::domain::id::AccountId;
use latchkey::domain::time::{ManualClock, Timestamp};
use latchkey::domain::token::{Secret, TokenKind};
use latchkey::domain::user::Email;
use latchkey::domain::user::{Roles, User};
use latchkey::policy::Outcome;
use latchkey::store::Reads;
use tempfile::TempDir;

/// 2026-11-22T10:00:00Z
pub const START: i64 = 1_795_341_600_000;

pub struct Fixture {
    pub dir: TempDir,
    pub policies: PathBuf,
    pub clock: ManualClock,
    pub lk: Latchkey,
    pub init: Initialized,
}

impl Fixture {
    /// A new data directory with account "acme" and its administrator, authorized by the
    /// built-in policies committed under `policies/`.
    pub fn new() -> Fixture {
        Fixture::with_policies(policies_dir())
    }

    /// The same, authorized by the policies of `policies`.
    pub fn with_policies(policies: PathBuf) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(Timestamp::from_millis(START));
        let lk = open(&dir, &policies, &clock);
        let init = lk.init("acme", "admin@example.com").unwrap();
        Fixture {
            dir,
            policies,
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
        self.actor(&self.init.api_key)
    }

    /// Whoever owns `secret`, acting with it.
    pub fn actor(&self, secret: &Secret) -> Actor {
        let verified = self.lk.verify_token(secret.expose()).unwrap();
        Actor {
            principal: match verified.owner {
                Owner::User(user) => Principal::User(user),
                Owner::Bot(bot) => Principal::Bot(bot),
            },
            credential: Some(verified.credential),
        }
    }

    /// `user` acting on itself in the fixture's account, with an API key (no session).
    pub fn me(&self, user: latchkey::domain::id::UserId) -> Me {
        Me {
            user,
            account: self.account(),
            session: None,
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

    /// Make `email` a member of a second account, "globex"; returns its personal
    /// authtoken there. A user that exists already joins the only way it can: it proves
    /// its email with a mailed link, is invited, and accepts.
    pub fn also_member_elsewhere(&self, email: &str) -> (AccountId, Secret) {
        let other = self.lk.init("globex", "other-admin@example.com").unwrap();
        let existing =
            Reads::user_by_email(&self.lk.read().unwrap(), &Email::parse(email).unwrap()).unwrap();
        let joined = match existing {
            None => self
                .lk
                .add_member(
                    Actor::SYSTEM,
                    other.account.id,
                    email,
                    "Elsewhere",
                    Roles::default(),
                )
                .unwrap(),
            Some(user) => {
                self.prove_email(user.id);
                let invited = self
                    .lk
                    .invite(
                        Actor::SYSTEM,
                        other.account.id,
                        email,
                        Roles::default(),
                        vec![],
                    )
                    .unwrap();
                self.lk
                    .accept_invitation(
                        invited.invitation.id,
                        invited.token.unwrap().expose(),
                        Acceptor::User(user.id),
                    )
                    .unwrap()
            }
        };
        (other.account.id, joined.personal_authtoken)
    }

    /// `user` proves its email, as if it opened the link mailed to it.
    pub fn prove_email(&self, user: latchkey::domain::id::UserId) {
        let account = Reads::user_accounts(&self.lk.read().unwrap(), user).unwrap()[0];
        let link = self
            .lk
            .request_email_proof(Me {
                user,
                account,
                session: None,
            })
            .unwrap();
        self.lk.prove_email(link.secret.expose()).unwrap();
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
            policies,
            clock,
            lk,
            init,
        } = self;
        drop(lk);
        let lk = open(&dir, &policies, &clock);
        Fixture {
            dir,
            policies,
            clock,
            lk,
            init,
        }
    }
}

pub fn open(dir: &TempDir, policies: &Path, clock: &ManualClock) -> Latchkey {
    Latchkey::open(Config {
        data_dir: dir.path().join("data"),
        policies: Some(policies.to_owned()),
        clock: Arc::new(clock.clone()),
        password_cost: Default::default(),
    })
    .unwrap()
}

/// The built-in policies committed under `policies/`.
pub fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// A policies folder holding a copy of the built-in modules and manifests.
pub fn copy_builtins() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["account-rbac", "tenant-roles"] {
        for ext in ["wasm", "toml"] {
            let file = format!("{name}.{ext}");
            std::fs::copy(policies_dir().join(&file), dir.path().join(&file)).unwrap();
        }
    }
    dir
}

include!("../src/policy/fixtures/fixed.rs");

/// Drop a custom module that always answers `outcome` with `reason`, routed to `actions`
/// (a TOML list body), into the policies folder `dir`.
pub fn drop_in(dir: &Path, name: &str, outcome: Outcome, reason: &str, actions: &str) {
    let wasm = wat::parse_str(fixed(outcome, reason)).unwrap();
    std::fs::write(dir.join(format!("{name}.wasm")), wasm).unwrap();
    let manifest = format!(
        "name = \"{name}\"\nmodule = \"{name}.wasm\"\nkind = \"custom\"\nactions = [{actions}]\n"
    );
    std::fs::write(dir.join(format!("{name}.toml")), manifest).unwrap();
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
