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
        password_threads: 0,
        create: true,
        allow_private_destinations: false,
        db_cache_bytes: latchkey::store::DEFAULT_CACHE_BYTES,
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

/// A minimal SMTP server on loopback (RFC 5321's commands, no extensions) that accepts
/// every message sent to it, on any number of connections, for as long as the test runs,
/// and hands each message's text over, headers included.
pub fn smtp_inbox() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let sender = sender.clone();
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(std::time::Duration::from_secs(20)))
                    .unwrap();
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                writer.write_all(b"220 test ESMTP\r\n").unwrap();
                let (mut message, mut in_data) = (String::new(), false);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            writer.write_all(b"250 OK queued\r\n").unwrap();
                            sender.send(std::mem::take(&mut message)).ok();
                        } else {
                            message.push_str(&line);
                        }
                    } else {
                        let command = line.to_ascii_uppercase();
                        let answer: &[u8] =
                            if command.starts_with("EHLO") || command.starts_with("HELO") {
                                b"250 test\r\n"
                            } else if command.starts_with("DATA") {
                                in_data = true;
                                b"354 go ahead\r\n"
                            } else if command.starts_with("QUIT") {
                                writer.write_all(b"221 bye\r\n").ok();
                                break;
                            } else {
                                b"250 OK\r\n"
                            };
                        writer.write_all(answer).unwrap();
                    }
                    line.clear();
                }
            });
        }
    });
    (port, receiver)
}

/// The one-time link for `path` (`/password_reset`, `/email_verification`) in a mail,
/// unfolded from its transfer encoding: the whole URL, up to the end of its token.
pub fn link_in(message: &str, path: &str) -> String {
    let unfolded = message.replace("=\r\n", "").replace("=3D", "=");
    let marker = format!("{path}?token=");
    let at = unfolded
        .find(&marker)
        .unwrap_or_else(|| panic!("no {path} link in {message}"));
    let start = unfolded[..at].rfind("https://").unwrap();
    let end = at
        + marker.len()
        + unfolded[at + marker.len()..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap();
    unfolded[start..end].to_owned()
}
