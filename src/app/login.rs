//! Passwords, dashboard sessions and the brute-force defence (seed 001).
//!
//! Passwords are argon2id PHC strings in their own table. A session's secret lives only
//! in the user's cookie; the store keeps its keyed hash. Failed logins are counted in
//! memory per email and per source address over a sliding 15-minute window; past the
//! limit every attempt is refused with the time to wait, before any password is checked.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock, PoisonError};

use base64ct::{Base64UrlUnpadded, Encoding};
use zeroize::Zeroizing;

use super::mfa::Sealed;
use super::passwords::{hash_password, password_matches};
use super::{AppError, Latchkey, Limited, Me, Member, PasswordCost, SecondFactor, record};
use crate::domain::DomainError;
use crate::domain::account::SsoMode;
use crate::domain::event::{Action, Actor, Principal, Snapshot};
use crate::domain::id::{AccountId, SessionId, UserId};
use crate::domain::ip::{Passage, RestrictionType};
use crate::domain::session::{self, LinkPurpose, Session, UserLink};
use crate::domain::time::Timestamp;
use crate::domain::token::Secret;
use crate::domain::user::{Email, MemberState, User};
use crate::store::{Reads, StoreError, WriteTx};

/// Failed logins allowed per email within [`WINDOW_MS`].
pub const MAX_FAILURES_PER_EMAIL: usize = 5;
/// Failed logins allowed per source address within [`WINDOW_MS`] (any emails).
pub const MAX_FAILURES_PER_ADDRESS: usize = 50;
/// The window failures are counted over: 15 minutes.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Keys tracked at most per map; past it the oldest expired entries go first, then all
/// (a flood of distinct keys cannot grow memory without bound).
const MAX_TRACKED: usize = 100_000;

/// Failures in the window, per key, and the keys changed since they were last written.
#[derive(Debug, Default)]
struct Failures {
    queues: HashMap<String, VecDeque<i64>>,
    dirty: std::collections::HashSet<String>,
}

impl Failures {
    fn prune(queue: &mut VecDeque<i64>, now: i64) {
        while queue.front().is_some_and(|at| now - at >= WINDOW_MS) {
            queue.pop_front();
        }
    }

    /// When `key` may try again, if it is over `limit` now.
    fn locked_until(&mut self, key: &str, limit: usize, now: i64) -> Option<i64> {
        let queue = self.queues.get_mut(key)?;
        Self::prune(queue, now);
        if queue.len() < limit {
            return None;
        }
        // The window passes when the oldest failure that keeps it at the limit ages out.
        queue
            .get(queue.len() - limit)
            .map(|oldest| oldest + WINDOW_MS)
    }

    /// Take back the attempt counted at `at` for `key` (it turned out not to fail).
    fn forgive(&mut self, key: &str, at: i64) {
        if let Some(queue) = self.queues.get_mut(key)
            && let Some(position) = queue.iter().rposition(|t| *t == at)
        {
            queue.remove(position);
            self.dirty.insert(key.to_owned());
        }
    }

    fn fail(&mut self, key: String, now: i64) {
        if self.queues.len() >= MAX_TRACKED && !self.queues.contains_key(&key) {
            self.sweep(now);
            if self.queues.len() >= MAX_TRACKED {
                self.dirty.extend(self.queues.drain().map(|(key, _)| key));
            }
        }
        self.dirty.insert(key.clone());
        let queue = self.queues.entry(key).or_default();
        Self::prune(queue, now);
        queue.push_back(now);
    }

    fn clear(&mut self, key: &str) {
        if self.queues.remove(key).is_some() {
            self.dirty.insert(key.to_owned());
        }
    }

    /// Forget every key whose attempts have all aged out.
    fn sweep(&mut self, now: i64) {
        let dirty = &mut self.dirty;
        self.queues.retain(|key, queue| {
            let live = queue.back().is_some_and(|at| now - at < WINDOW_MS);
            if !live {
                dirty.insert(key.clone());
            }
            live
        });
    }

    /// The keys changed since the last call, each with its attempts still in the window
    /// (none: the key is to be forgotten).
    fn take_dirty(&mut self, now: i64) -> Vec<(String, Vec<i64>)> {
        self.sweep(now);
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|key| {
                let at = self.queues.get_mut(&key).map_or_else(Vec::new, |queue| {
                    Self::prune(queue, now);
                    queue.iter().copied().collect()
                });
                (key, at)
            })
            .collect()
    }
}

/// In-memory counters of attempts per key (an email) and per source address, over a
/// sliding [`WINDOW_MS`]. An attempt is counted when it is admitted, before its outcome is
/// known, and taken back if it succeeds: so any number of concurrent attempts from one
/// address gets at most the limit through.
#[derive(Debug)]
pub(super) struct Limiter {
    what: Limited,
    per_key: usize,
    per_address: usize,
    keys: Mutex<Failures>,
    addresses: Mutex<Failures>,
}

/// An attempt let through by a [`Limiter`], to forgive if it succeeds.
#[derive(Debug)]
#[must_use]
pub(super) struct Admitted {
    key: String,
    ip: Option<IpAddr>,
    at: i64,
}

impl Limiter {
    /// A limiter allowing `per_key` attempts per key and `per_address` per address.
    pub(super) fn new(what: Limited, per_key: usize, per_address: usize) -> Limiter {
        Limiter {
            what,
            per_key,
            per_address,
            keys: Mutex::default(),
            addresses: Mutex::default(),
        }
    }

    /// The limiter of password logins (and of current-password checks).
    pub(super) fn logins() -> Limiter {
        Limiter::new(
            Limited::Logins,
            MAX_FAILURES_PER_EMAIL,
            MAX_FAILURES_PER_ADDRESS,
        )
    }

    /// Count an attempt for `key` from `ip`, or refuse it with the time to wait when
    /// either is over its limit (nothing is counted then).
    pub(super) fn admit(
        &self,
        key: &str,
        ip: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<Admitted, AppError> {
        let now = now.as_millis();
        let limited = |until: i64| AppError::RateLimited {
            what: self.what,
            // Whole seconds, rounded up, and at least one.
            retry_after_secs: u64::try_from((until - now + 999) / 1000)
                .unwrap_or(1)
                .max(1),
        };
        // Both locks, always in this order, so the two counts move together.
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let by_key = keys.locked_until(key, self.per_key, now);
        let by_address =
            ip.and_then(|ip| addresses.locked_until(&ip.to_string(), self.per_address, now));
        if let Some(until) = by_key.into_iter().chain(by_address).max() {
            return Err(limited(until));
        }
        keys.fail(key.to_owned(), now);
        if let Some(ip) = ip {
            addresses.fail(ip.to_string(), now);
        }
        Ok(Admitted {
            key: key.to_owned(),
            ip,
            at: now,
        })
    }

    /// The name of this limiter's rows in the store.
    fn prefix(&self) -> &'static str {
        match self.what {
            Limited::Logins => "logins",
            Limited::LinkRequests => "links",
        }
    }

    /// What changed since the last call, as the store keeps it: (`<prefix>/key/<key>` or
    /// `<prefix>/ip/<address>`, the attempts in the window; none to forget the row).
    pub(super) fn take_dirty(&self, now: Timestamp) -> Vec<(String, Vec<i64>)> {
        let now = now.as_millis();
        let prefix = self.prefix();
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let by_key = keys
            .take_dirty(now)
            .into_iter()
            .map(|(key, at)| (format!("{prefix}/key/{key}"), at));
        let by_address = addresses
            .take_dirty(now)
            .into_iter()
            .map(|(ip, at)| (format!("{prefix}/ip/{ip}"), at));
        by_key.chain(by_address).collect()
    }

    /// Rows that could not be written: mark them changed again for the next flush.
    pub(super) fn unwritten(&self, rows: &[(String, Vec<i64>)]) {
        for (row, _) in rows {
            self.with_row(row, |failures, key| {
                failures.dirty.insert(key.to_owned());
            });
        }
    }

    /// Take back a row read from the store at start, if it is this limiter's.
    pub(super) fn restore(&self, row: &str, at: &[i64], now: Timestamp) {
        let now = now.as_millis();
        self.with_row(row, |failures, key| {
            let queue: VecDeque<i64> = at.iter().copied().filter(|t| now - t < WINDOW_MS).collect();
            if queue.is_empty() {
                // Aged out while the server was down: forget it at the next flush.
                failures.dirty.insert(key.to_owned());
            } else {
                failures.queues.insert(key.to_owned(), queue);
            }
        });
    }

    /// Run `f` on the counts a store row belongs to (keys or addresses), with the key.
    fn with_row(&self, row: &str, f: impl FnOnce(&mut Failures, &str)) {
        let Some(rest) = row
            .strip_prefix(self.prefix())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return;
        };
        if let Some(key) = rest.strip_prefix("key/") {
            f(
                &mut self.keys.lock().unwrap_or_else(PoisonError::into_inner),
                key,
            );
        } else if let Some(ip) = rest.strip_prefix("ip/") {
            f(
                &mut self
                    .addresses
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
                ip,
            );
        }
    }

    /// The admitted attempt succeeded: the key's failures are forgotten, and the
    /// attempt no longer counts against its address.
    pub(super) fn succeeded(&self, attempt: Admitted) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear(&attempt.key);
        self.forgive(attempt);
    }

    /// The admitted attempt did not fail (it stopped short of a verdict, e.g. a second
    /// factor is still to come): it no longer counts, and nothing else changes.
    pub(super) fn forgive(&self, attempt: Admitted) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .forgive(&attempt.key, attempt.at);
        if let Some(ip) = attempt.ip {
            self.addresses
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .forgive(&ip.to_string(), attempt.at);
        }
    }
}

/// A session begun by [`Latchkey::login`]: its record, and its secret for the cookie,
/// shown this once.
#[derive(Debug)]
pub struct LoggedIn {
    /// The session.
    pub session: Session,
    /// The cookie value.
    pub secret: Secret,
}

/// How long a [`LoginTicket`] is good for: five minutes.
const LOGIN_TICKET_MS: i64 = 5 * 60 * 1000;

/// Where a login in steps stands.
#[derive(Debug)]
pub enum LoginStep {
    /// Signed in.
    Done(LoggedIn),
    /// The password was right; the user's second factor is needed (a TOTP or recovery
    /// code), with this ticket.
    SecondFactor(LoginTicket),
    /// The password was right; the user is a member of these accounts and picks one, with
    /// this ticket.
    ChooseAccount(LoginTicket, Vec<AccountId>),
}

/// A login half done, sealed under the server key (AES-256-GCM): who, the email its
/// failures count against, the account chosen if any, and when it expires. It proves a
/// right password, so it is kept like a session secret (an HttpOnly cookie), never in a
/// page or a URL.
#[derive(Debug)]
pub struct LoginTicket(pub String);

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct TicketBody {
    pub(super) user: u128,
    key: String,
    account: Option<u128>,
    expires_ms: i64,
    /// The second factor was passed already (a passkey signed in; an account is next).
    verified: bool,
    /// How the login began: 0 password, 1 passkey, else the identity provider's id.
    method: u128,
}

impl TicketBody {
    fn method(&self) -> Method {
        match self.method {
            0 => Method::Password,
            1 => Method::Passkey,
            id => Method::Sso(crate::domain::id::IdentityProviderId(id)),
        }
    }
}

/// How a login began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    /// Email and password.
    Password,
    /// A passkey alone.
    Passkey,
    /// Through an identity provider.
    Sso(crate::domain::id::IdentityProviderId),
}

impl Method {
    /// As the trail names it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Passkey => "passkey",
            Method::Sso(_) => "sso",
        }
    }

    fn provider(self) -> Option<crate::domain::id::IdentityProviderId> {
        match self {
            Method::Sso(id) => Some(id),
            _ => None,
        }
    }
}

/// What a login has of the second factor.
pub(super) enum Factor<'a> {
    /// Nothing yet: asked for if the user has one.
    Missing,
    /// This, to be checked.
    Given(SecondFactor<'a>),
    /// Checked already (a passkey, which is both factors).
    Passed,
}

impl<'a> From<Option<SecondFactor<'a>>> for Factor<'a> {
    fn from(factor: Option<SecondFactor<'a>>) -> Self {
        factor.map_or(Factor::Missing, Factor::Given)
    }
}

/// The one answer for a wrong email or password, so neither is revealed.
fn wrong() -> AppError {
    AppError::Unauthenticated("the email or password is not correct".into())
}

/// A dummy hash checked when the email is unknown or has no password, so such an attempt
/// takes as long as a real one.
fn dummy_hash(cost: PasswordCost) -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(cost, "latchkey timing equaliser, never a password").unwrap_or_default()
    })
}

fn actor(user: UserId) -> Actor {
    Actor {
        principal: Principal::User(user),
        credential: None,
    }
}

/// Mark `user`'s session `id` as having passed a second factor (and so no longer
/// limited to enrollment).
pub(super) fn mark_mfa_verified(
    tx: &mut WriteTx,
    user: UserId,
    id: SessionId,
) -> Result<(), AppError> {
    if let Some((_, key)) = tx
        .user_sessions(user)?
        .into_iter()
        .find(|(s, _)| *s == id.0)
        && let Some(mut session) = tx.session(&key)?
    {
        session.mfa_verified = true;
        session.enrollment_only = false;
        tx.put_session(&key, &session)?;
    }
    Ok(())
}

/// End the sessions of `user` (in `account` only, or everywhere), except `keep`.
pub(super) fn end_sessions(
    tx: &mut WriteTx,
    user: UserId,
    account: Option<AccountId>,
    keep: Option<SessionId>,
) -> Result<usize, AppError> {
    let mut ended = 0;
    for (id, key) in tx.user_sessions(user)? {
        if keep.is_some_and(|k| k.0 == id) {
            continue;
        }
        if let Some(session) = tx.session(&key)?
            && account.is_none_or(|a| session.account == a)
        {
            tx.remove_session(&key, &session)?;
            ended += 1;
        }
    }
    Ok(ended)
}

/// A session unused this long ends (30 minutes), whatever its lifetime has left.
pub const SESSION_IDLE_MS: i64 = 30 * 60 * 1000;

/// When each session was last used, in memory: a session unused for
/// [`SESSION_IDLE_MS`] is refused and ended. After a restart the clock of every session
/// starts again from its first use (the lifetime still bounds it).
#[derive(Debug, Default)]
pub(super) struct IdleSessions(Mutex<HashMap<u128, i64>>);

impl IdleSessions {
    /// Note a use of `session` at `now`: false when it had been idle too long (and it is
    /// forgotten then).
    fn used(&self, session: SessionId, now: Timestamp) -> bool {
        let now = now.as_millis();
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= MAX_TRACKED {
            seen.retain(|_, at| now - *at < SESSION_IDLE_MS);
        }
        match seen.insert(session.0, now) {
            Some(last) if now - last >= SESSION_IDLE_MS => {
                seen.remove(&session.0);
                false
            }
            _ => true,
        }
    }

    fn forget(&self, session: SessionId) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&session.0);
    }
}

/// A random secret for a cookie or a link: 256 bits, in hex.
pub(super) fn random_secret() -> Result<Secret, AppError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut()).map_err(|_| DomainError::RandomnessUnavailable)?;
    Ok(Secret::new(
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

impl Latchkey {
    /// The keyed hash a new session or link is stored under (the current key).
    pub(super) fn secret_key(&self, secret: &str) -> [u8; 32] {
        self.keys.load().current().hash(secret.as_bytes()).0
    }

    /// The key something stored for `secret` is under, if `stored` finds it under one:
    /// its hash under each server key, newest first (what was made before a key
    /// rotation is under an older key).
    fn stored_key(
        &self,
        secret: &str,
        stored: impl Fn(&[u8; 32]) -> Result<bool, StoreError>,
    ) -> Result<Option<[u8; 32]>, AppError> {
        for hash in self.keys.load().hashes(secret.as_bytes()) {
            if stored(&hash.0)? {
                return Ok(Some(hash.0));
            }
        }
        Ok(None)
    }

    /// The key a stored session of `secret` is under.
    fn stored_session_key(
        &self,
        tx: &impl Reads,
        secret: &str,
    ) -> Result<Option<[u8; 32]>, AppError> {
        self.stored_key(secret, |key| Ok(tx.session(key)?.is_some()))
    }

    /// The key a stored one-time link (reset, email proof) of `secret` is under.
    pub(super) fn stored_link_key(
        &self,
        tx: &impl Reads,
        secret: &str,
    ) -> Result<Option<[u8; 32]>, AppError> {
        self.stored_key(secret, |key| Ok(tx.user_link(key)?.is_some()))
    }

    /// Check `new` against the rules and `user`'s own words, and hash it.
    pub(super) fn new_password_hash(&self, user: &User, new: &str) -> Result<String, AppError> {
        // The email, its parts and the name's words are what a guesser tries first.
        let email = user.email.as_str();
        let words: Vec<&str> = std::iter::once(email)
            .chain(email.split(['@', '.', '-', '_', '+']))
            .chain(user.name.split_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        session::check_password(new, &words)?;
        let (cost, new) = (self.password_cost, Zeroizing::new(new.to_owned()));
        self.passwords.run(move || hash_password(cost, &new))?
    }

    /// Whether `password` matches the stored PHC string, checked where password work runs.
    fn password_matches(&self, stored: &str, password: &str) -> Result<bool, AppError> {
        let (stored, password) = (stored.to_owned(), Zeroizing::new(password.to_owned()));
        self.passwords
            .run(move || password_matches(&stored, &password))
    }

    /// Issue a one-time password reset link secret for member `user` (administrators
    /// only, by the policies, and only for a user whose every membership is in this
    /// account: a user of several accounts resets its own password). Returns the secret,
    /// shown this once, and its expiry. Whoever uses it proves nothing about the email, so
    /// the user's email proof goes when it is used.
    pub fn issue_password_reset(
        &self,
        actor: Actor,
        account: AccountId,
        user: UserId,
    ) -> Result<(Secret, Timestamp), AppError> {
        let now = self.now();
        let secret = random_secret()?;
        let key = self.secret_key(secret.expose());
        let expires_at = Timestamp::from_millis(now.as_millis() + session::RESET_LIFETIME_MS);
        self.store.write(|tx| {
            let membership = tx
                .membership(account, user)?
                .ok_or_else(|| DomainError::NotFound(user.into()))?;
            let target =
                super::Target::member("password_reset", user.to_string(), &membership.roles);
            self.authorize(tx, actor, account, target, now)?;
            crate::domain::user::ensure_only_account(user, &tx.user_accounts(user)?, account)?;
            tx.put_user_link(
                &key,
                &UserLink {
                    user,
                    purpose: LinkPurpose::AdminReset { account },
                    created_at: now,
                    expires_at,
                },
            )?;
            record(
                tx,
                &account,
                now,
                actor,
                Action::PasswordResetIssued,
                user.to_string(),
                None,
                None,
            )
        })?;
        Ok((secret, expires_at))
    }

    /// Set a new password with a reset link's secret: once, before it expires. Every
    /// session of the user ends. A link mailed to the user's own address proves it
    /// controls the address; an administrator's link (which the administrator saw) drops
    /// any earlier proof. Recorded in every account the user belongs to.
    pub fn reset_password(&self, secret: &str, new: &str) -> Result<(), AppError> {
        let now = self.now();
        let invalid = || DomainError::invalid("token", "is not valid: used, expired or unknown");
        let (key, link, user) = {
            let read = self.store.read()?;
            let key = self.stored_link_key(&read, secret)?.ok_or_else(invalid)?;
            let link = read
                .user_link(&key)?
                .filter(|l| now < l.expires_at && l.purpose.resets_password())
                .ok_or_else(invalid)?;
            let user = read
                .user(link.user)?
                .ok_or_else(|| DomainError::NotFound(link.user.into()))?;
            (key, link, user)
        };
        let phc = self.new_password_hash(&user, new)?;
        self.store.write(|tx| {
            // Still there: a second use racing this one finds it gone.
            tx.user_link(&key)?.ok_or_else(invalid)?;
            tx.remove_user_link(&key)?;
            tx.set_password(user.id, &phc)?;
            end_sessions(tx, user.id, None, None)?;
            let by = actor(user.id);
            super::record_user_change(tx, user.id, now, by, Action::PasswordChanged)?;
            match &link.purpose {
                LinkPurpose::AdminReset { .. } => super::identity::unprove(tx, &user, by, now),
                purpose => super::identity::prove(tx, &user, purpose.proves(), by, now),
            }
        })
    }

    /// Log in with email and password to one account (`account`, or the user's only
    /// active one). Refused alike for an unknown email and a wrong password, and for
    /// anyone over the failure limit whatever the password. Every attempt by a known user
    /// is an event with its source address, in each account it is a member of.
    pub fn login(
        &self,
        email: &str,
        password: &str,
        factor: Option<SecondFactor<'_>>,
        account: Option<AccountId>,
        ip: Option<IpAddr>,
    ) -> Result<LoggedIn, AppError> {
        let (user, attempt) = self.check_password(email, password, ip)?;
        self.complete_login(&user, attempt, factor.into(), account, ip, Method::Password)
    }

    /// The first step of a login in two (the dashboard's): email and password. What it
    /// still needs (a second factor, or the account among several) comes back as a
    /// [`LoginTicket`], so the password is never asked for again nor carried in a page.
    pub fn start_login(
        &self,
        email: &str,
        password: &str,
        account: Option<AccountId>,
        ip: Option<IpAddr>,
    ) -> Result<LoginStep, AppError> {
        let (user, attempt) = self.check_password(email, password, ip)?;
        let key = email.trim().to_lowercase();
        self.login_with(
            &user,
            attempt,
            Factor::Missing,
            account,
            ip,
            &key,
            Method::Password,
        )
    }

    /// Everything after the first factor, as a step: done, or a ticket for what is
    /// still needed (whose failures count against `key`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn login_with(
        &self,
        user: &User,
        attempt: Admitted,
        factor: Factor<'_>,
        account: Option<AccountId>,
        ip: Option<IpAddr>,
        key: &str,
        method: Method,
    ) -> Result<LoginStep, AppError> {
        let verified = matches!(factor, Factor::Passed);
        let completed = self.complete_login(user, attempt, factor, account, ip, method);
        self.step(completed, user, key, account, verified, method)
    }

    /// What a [`LoginTicket`] holds, if it is one of ours and has not expired.
    pub(super) fn open_ticket(&self, ticket: &str) -> Result<TicketBody, AppError> {
        let expired = || AppError::Unauthenticated("the sign-in expired; start again".into());
        let sealed = Base64UrlUnpadded::decode_vec(ticket).map_err(|_| expired())?;
        let body: TicketBody = self
            .unseal(Sealed::LoginTicket, &sealed)
            .ok()
            .and_then(|bytes| postcard::from_bytes(&bytes).ok())
            .ok_or_else(expired)?;
        if body.expires_ms <= self.now().as_millis() {
            return Err(expired());
        }
        Ok(body)
    }

    /// The next step of a login [`Self::start_login`] began: the ticket it gave, and the
    /// second factor or the account it asked for. A ticket is good for five minutes and
    /// for its user only; a wrong code counts as a failed login, as in one step.
    pub fn resume_login(
        &self,
        ticket: &str,
        factor: Option<SecondFactor<'_>>,
        account: Option<AccountId>,
        ip: Option<IpAddr>,
    ) -> Result<LoginStep, AppError> {
        let body = self.open_ticket(ticket)?;
        let attempt = self.logins.admit(&body.key, ip, self.now())?;
        let user =
            self.store.read()?.user(UserId(body.user))?.ok_or_else(|| {
                AppError::Unauthenticated("the sign-in expired; start again".into())
            })?;
        let account = account.or(body.account.map(AccountId));
        let factor = if body.verified {
            Factor::Passed
        } else {
            factor.into()
        };
        let method = body.method();
        self.login_with(&user, attempt, factor, account, ip, &body.key, method)
    }

    /// The names of `accounts`, for the account picker of a login in steps (after a
    /// right password: [`LoginStep::ChooseAccount`] names them); one that is gone is left
    /// out.
    pub fn account_names(
        &self,
        accounts: &[AccountId],
    ) -> Result<Vec<(AccountId, String)>, AppError> {
        let read = self.store.read()?;
        let mut named = Vec::with_capacity(accounts.len());
        for id in accounts {
            if let Some(account) = read.account(*id)? {
                named.push((*id, account.name));
            }
        }
        Ok(named)
    }

    /// A login's outcome as a step: done, or a ticket for what it still needs.
    fn step(
        &self,
        completed: Result<LoggedIn, AppError>,
        user: &User,
        key: &str,
        account: Option<AccountId>,
        verified: bool,
        method: Method,
    ) -> Result<LoginStep, AppError> {
        let ticket = |account: Option<AccountId>| -> Result<LoginTicket, AppError> {
            let body = TicketBody {
                user: user.id.0,
                key: key.to_owned(),
                account: account.map(|a| a.0),
                expires_ms: self.now().as_millis() + LOGIN_TICKET_MS,
                verified,
                method: match method {
                    Method::Password => 0,
                    Method::Passkey => 1,
                    Method::Sso(id) => id.0,
                },
            };
            let bytes = Zeroizing::new(
                postcard::to_allocvec(&body)
                    .map_err(|e| AppError::DataDir(format!("a login ticket: {e}")))?,
            );
            let sealed = self.seal(Sealed::LoginTicket, &bytes)?;
            Ok(LoginTicket(Base64UrlUnpadded::encode_string(&sealed)))
        };
        match completed {
            Ok(done) => Ok(LoginStep::Done(done)),
            Err(AppError::MfaRequired) => Ok(LoginStep::SecondFactor(ticket(account)?)),
            Err(AppError::ChooseAccount(accounts)) => {
                Ok(LoginStep::ChooseAccount(ticket(None)?, accounts))
            }
            Err(other) => Err(other),
        }
    }

    /// The password step: the user, and the attempt counted against its email (taken
    /// back when the login succeeds).
    fn check_password(
        &self,
        email: &str,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<(User, Admitted), AppError> {
        let now = self.now();
        let key = email.trim().to_lowercase();
        // Counted now, before any password is checked; taken back if it succeeds.
        let attempt = self.logins.admit(&key, ip, now)?;
        let read = self.store.read()?;
        let user = Email::parse(email)
            .ok()
            .map(|email| read.user_by_email(&email))
            .transpose()?
            .flatten();
        let stored = user
            .as_ref()
            .map(|u| read.password(u.id))
            .transpose()?
            .flatten();
        let matches = self.password_matches(
            stored
                .as_deref()
                .unwrap_or_else(|| dummy_hash(self.password_cost)),
            password,
        )? && stored.is_some();
        let user = match user {
            Some(user) if matches => user,
            other => {
                match other {
                    Some(user) => {
                        let memberships = read.user_accounts(user.id)?;
                        drop(read);
                        self.record_attempt(
                            &user,
                            &memberships,
                            ip,
                            Some("wrong password"),
                            Method::Password,
                        )?;
                    }
                    // No account holds an unknown email's attempt: the log does (the
                    // address, never the email or the password).
                    None => tracing::info!(ip = ?ip, "login refused: no user has that email"),
                }
                return Err(wrong());
            }
        };
        Ok((user, attempt))
    }

    /// Everything after the password: the account, the dashboard IP restriction, the
    /// second factor, and the session.
    fn complete_login(
        &self,
        user: &User,
        attempt: Admitted,
        factor: Factor<'_>,
        account: Option<AccountId>,
        ip: Option<IpAddr>,
        method: Method,
    ) -> Result<LoggedIn, AppError> {
        let now = self.now();
        let read = self.store.read()?;
        let active: Vec<AccountId> = read
            .user_accounts(user.id)?
            .into_iter()
            .filter_map(|a| {
                read.membership(a, user.id)
                    .ok()
                    .flatten()
                    .filter(|m| m.state == MemberState::Active)
                    .map(|_| a)
            })
            .collect();
        drop(read);
        let chosen = match (account, active.as_slice()) {
            (Some(a), _) if active.contains(&a) => a,
            (Some(_), _) | (None, []) => {
                // The password was right, so this says nothing an attacker did not know.
                self.logins.forgive(attempt);
                return Err(AppError::Forbidden {
                    policy: String::new(),
                    reason: format!("{} is not an active member of that account", user.id),
                });
            }
            (None, [only]) => *only,
            (None, several) => {
                self.logins.forgive(attempt);
                return Err(AppError::ChooseAccount(several.to_vec()));
            }
        };
        // An account that enforces SSO admits its members only through its providers;
        // a provider signs people into its own account only.
        let (enforced, provider_account) = {
            let read = self.store.read()?;
            let enforced = read
                .account(chosen)?
                .is_some_and(|a| a.settings.sso_mode == SsoMode::Enforced);
            let provider_account = match method.provider() {
                Some(id) => read.identity_provider(id)?.map(|p| p.account),
                None => None,
            };
            (enforced, provider_account)
        };
        if method.provider().is_some() && provider_account != Some(chosen) {
            self.logins.forgive(attempt);
            return Err(AppError::Forbidden {
                policy: String::new(),
                reason: "an identity provider signs people in to its own account only".into(),
            });
        }
        if enforced && method.provider().is_none() {
            self.logins.forgive(attempt);
            let reason = "this account signs its members in through single sign-on only: use one of its identity providers (Sign in with …)".to_owned();
            self.record_attempt(user, &[chosen], ip, Some(&reason), method)?;
            return Err(AppError::SsoRequired(reason));
        }
        if let Passage::Denied(restriction) =
            self.check_ip(chosen, RestrictionType::Dashboard, ip)?
        {
            let shown = ip.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
            let reason = format!(
                "IP restriction {restriction} does not allow dashboard sessions from {shown}"
            );
            self.logins.forgive(attempt);
            self.record_attempt(user, &[chosen], ip, Some(&reason), method)?;
            return Err(AppError::IpRestricted(reason));
        }
        // The second factor, when the user has one: missing is asked for (nothing counts
        // against the user, the password was right); wrong counts as a failed login.
        let (enrolled, required) = {
            let read = self.store.read()?;
            let enrolled = super::mfa::has_second_factor(&read, user.id)?;
            let required = read
                .account(chosen)?
                .is_some_and(|a| a.settings.mfa_required);
            (enrolled, required)
        };
        // A passkey, or a provider that asserted a second factor.
        let asserted = matches!(factor, Factor::Passed);
        let factor = match factor {
            Factor::Given(factor) if enrolled => Some(factor),
            Factor::Missing if enrolled => {
                self.logins.forgive(attempt);
                return Err(AppError::MfaRequired);
            }
            _ => None,
        };
        if let Some(factor) = factor {
            let passed = self
                .store
                .write(|tx| self.use_second_factor(tx, user.id, factor, now))?;
            if !passed {
                self.record_attempt(user, &[chosen], ip, Some("wrong second factor"), method)?;
                return Err(AppError::Unauthenticated(
                    "the second factor is not correct (a code is accepted once)".into(),
                ));
            }
        }
        self.logins.succeeded(attempt);
        let secret = random_secret()?;
        let session = Session {
            id: SessionId::generate(now)?,
            user: user.id,
            account: chosen,
            created_at: now,
            expires_at: Timestamp::from_millis(now.as_millis() + session::SESSION_LIFETIME_MS),
            source_ip: ip.map(|ip| ip.to_string()),
            mfa_verified: enrolled || asserted,
            enrollment_only: required && !enrolled && !asserted,
        };
        let key = self.secret_key(secret.expose());
        self.store.write(|tx| {
            tx.put_session(&key, &session)?;
            record(
                tx,
                &chosen,
                now,
                actor(user.id),
                Action::LoginSucceeded,
                session.id.to_string(),
                None,
                Some(Snapshot::SignIn {
                    ip: session.source_ip.clone(),
                    method: method.name().to_owned(),
                    provider: method.provider(),
                    refused: None,
                }),
            )
        })?;
        // Its idle clock starts now: a session never used again ends in 30 minutes.
        self.idle.used(session.id, now);
        Ok(LoggedIn { session, secret })
    }

    pub(super) fn record_attempt(
        &self,
        user: &User,
        accounts: &[AccountId],
        ip: Option<IpAddr>,
        refused: Option<&str>,
        method: Method,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            for account in accounts {
                record(
                    tx,
                    account,
                    now,
                    actor(user.id),
                    Action::LoginFailed,
                    user.id.to_string(),
                    None,
                    Some(Snapshot::SignIn {
                        ip: ip.map(|ip| ip.to_string()),
                        method: method.name().to_owned(),
                        provider: method.provider(),
                        refused: refused.map(str::to_owned),
                    }),
                )?;
            }
            Ok(())
        })
    }

    /// The live session whose cookie secret is `secret`. A session unused for
    /// [`SESSION_IDLE_MS`] has ended: it is refused, and removed.
    pub fn session(&self, secret: &str) -> Result<Session, AppError> {
        let now = self.now();
        let (key, session) = {
            let read = self.store.read()?;
            let key = self.stored_session_key(&read, secret)?;
            let session = key
                .map(|key| read.session(&key))
                .transpose()?
                .flatten()
                .filter(|s| s.live(now))
                .ok_or_else(|| AppError::Unauthenticated("the session is not valid".into()))?;
            (key, session)
        };
        if !self.idle.used(session.id, now) {
            if let Some(key) = key {
                self.store.write(|tx| {
                    if let Some(stored) = tx.session(&key)? {
                        tx.remove_session(&key, &stored)?;
                    }
                    Ok::<_, AppError>(())
                })?;
            }
            return Err(AppError::Unauthenticated(
                "the session ended after 30 minutes without use: sign in again".into(),
            ));
        }
        Ok(session)
    }

    /// End `user`'s session `id`.
    pub fn logout(&self, user: UserId, id: SessionId) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let found = tx
                .user_sessions(user)?
                .into_iter()
                .find(|(session, _)| *session == id.0);
            let (key, session) = match found {
                Some((_, key)) => (key, tx.session(&key)?),
                None => ([0; 32], None),
            };
            let session = session
                .ok_or_else(|| AppError::Unauthenticated("the session is not valid".into()))?;
            tx.remove_session(&key, &session)?;
            self.idle.forget(session.id);
            record(
                tx,
                &session.account,
                now,
                actor(session.user),
                Action::LoggedOut,
                session.id.to_string(),
                None,
                None,
            )
        })
    }

    /// `user`'s live sessions, in every account, oldest first (its own list: no
    /// permission needed).
    pub fn sessions_of(&self, user: UserId) -> Result<Vec<Session>, AppError> {
        let read = self.store.read()?;
        let now = self.now();
        let mut sessions = Vec::new();
        for (_, key) in read.user_sessions(user)? {
            if let Some(session) = read.session(&key)?.filter(|s| s.live(now)) {
                sessions.push(session);
            }
        }
        sessions.sort_by_key(|s| s.created_at);
        Ok(sessions)
    }

    /// End every session of `me`'s user but its own (in every account; each ending is a
    /// `LoggedOut` event in the session's account). How many ended.
    pub fn logout_others(&self, me: Me) -> Result<usize, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let mut ended = 0;
            for (id, key) in tx.user_sessions(me.user)? {
                if me.session.is_some_and(|keep| keep.0 == id) {
                    continue;
                }
                if let Some(session) = tx.session(&key)? {
                    tx.remove_session(&key, &session)?;
                    record(
                        tx,
                        &session.account,
                        now,
                        actor(me.user),
                        Action::LoggedOut,
                        session.id.to_string(),
                        None,
                        None,
                    )?;
                    ended += 1;
                }
            }
            Ok(ended)
        })
    }

    /// Ask a signed-in user to prove it is still at the keyboard before a sensitive
    /// change: its password, or (six digits, when it has TOTP on) a current code, used
    /// up as at sign-in. Counted against the same failure limit as logins; a wrong proof
    /// is a refusal naming the field.
    pub fn reauthenticate(&self, user: UserId, proof: &str) -> Result<(), AppError> {
        let now = self.now();
        let (found, stored, totp) = {
            let read = self.store.read()?;
            let found = read
                .user(user)?
                .ok_or_else(|| DomainError::NotFound(user.into()))?;
            let totp = read.totp(user)?.is_some_and(|t| t.confirmed);
            (found, read.password(user)?, totp)
        };
        let attempt = self
            .logins
            .admit(&found.email.as_str().to_lowercase(), None, now)?;
        let code = proof.trim();
        let totp = totp && code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
        let proven = if totp {
            self.store
                .write(|tx| self.use_second_factor(tx, user, SecondFactor::Code(code), now))?
        } else {
            match &stored {
                Some(stored) => self.password_matches(stored, proof)?,
                None => false,
            }
        };
        if !proven {
            let field = if totp { "code" } else { "password" };
            return Err(DomainError::invalid(field, "is not correct: confirm it is you").into());
        }
        self.logins.succeeded(attempt);
        Ok(())
    }

    /// The calling user as it sees itself in `account`, and whether it has a password.
    /// Needs no permission: everyone may see who they are.
    pub fn whoami(&self, user: UserId, account: AccountId) -> Result<(Member, bool), AppError> {
        let read = self.store.read()?;
        let found = read
            .user(user)?
            .ok_or_else(|| DomainError::NotFound(user.into()))?;
        let membership = read
            .membership(account, user)?
            .ok_or_else(|| DomainError::NotFound(user.into()))?;
        let has_password = read.password(user)?.is_some();
        Ok((Member::read(&read, found, membership)?, has_password))
    }

    /// Set or change `user`'s password, acting in `account`. The current password is
    /// required once one is set; a first password without it only while `account` is the
    /// user's only account (as after `latchkey init`). The new one must pass the strength
    /// check. Every other session of the user ends (`keep` is the caller's own, if it
    /// uses one). Recorded in every account the user belongs to.
    pub fn change_password(
        &self,
        me: Me,
        current: Option<&str>,
        new: &str,
    ) -> Result<(), AppError> {
        let (user, account, keep) = (me.user, me.account, me.session);
        let now = self.now();
        let (found, stored) = {
            let read = self.store.read()?;
            let found = read
                .user(user)?
                .ok_or_else(|| DomainError::NotFound(user.into()))?;
            (found, read.password(user)?)
        };
        if let Some(stored) = &stored {
            let given = current.ok_or_else(|| {
                DomainError::invalid("current_password", "is required to change a password")
            })?;
            let key = found.email.as_str().to_lowercase();
            let attempt = self.logins.admit(&key, None, now)?;
            if !self.password_matches(stored, given)? {
                return Err(DomainError::invalid("current_password", "is not correct").into());
            }
            self.logins.succeeded(attempt);
        } else {
            let accounts = self.store.read()?.user_accounts(user)?;
            crate::domain::user::ensure_only_account(user, &accounts, account)?;
        }
        let phc = self.new_password_hash(&found, new)?;
        self.store.write(|tx| {
            tx.set_password(user, &phc)?;
            end_sessions(tx, user, None, keep)?;
            super::record_user_change(tx, user, now, actor(user), Action::PasswordChanged)
        })
    }
}

/// What `latchkey recover` did.
#[derive(Debug)]
pub struct Recovered {
    /// The account.
    pub account: AccountId,
    /// The administrator restored.
    pub user: UserId,
    /// A new API key for it, shown this once.
    pub api_key: Secret,
    /// It was disabled and is active again.
    pub enabled: bool,
    /// It was not an administrator and is one again.
    pub made_admin: bool,
    /// Its TOTP enrollment was removed (it enrolls again after logging in).
    pub mfa_removed: bool,
    /// Enforced `dashboard` and `api` restrictions turned warn-only.
    pub relaxed: Vec<crate::domain::id::IpRestrictionId>,
}

impl Latchkey {
    /// Break-glass, run by the operator on the host with the server stopped: make the
    /// member `email` of account `account_name` an active administrator again, remove
    /// its TOTP, turn the account's enforced `dashboard` and `api` IP restrictions
    /// warn-only, and give it a new API key. Everything is recorded as events of the
    /// system principal, in one transaction.
    pub fn recover(&self, account_name: &str, email: &str) -> Result<Recovered, AppError> {
        use crate::domain::credential::{CredentialKind, CredentialSpec, Owner};
        use crate::domain::event::{Change, IpObject};
        let now = self.now();
        let email = Email::parse(email)?;
        let system = Actor::SYSTEM;
        self.ip_write(|tx| {
            let account = tx.account_by_name(account_name)?.ok_or_else(|| {
                DomainError::invalid("account", format!("no account is named {account_name:?}"))
            })?;
            let user = tx.user_by_email(&email)?.ok_or_else(|| {
                DomainError::invalid("email", format!("no user has the email {}", email.as_str()))
            })?;
            let before = tx.membership(account.id, user.id)?.ok_or_else(|| {
                DomainError::invalid(
                    "email",
                    format!("{} is not a member of {account_name}", email.as_str()),
                )
            })?;
            let target = super::Target::new("users", "recover", "user", user.id.to_string());
            self.authorize(tx, system, account.id, target, now)?;
            // Administrator as a role of its own (not one a group or provider grants,
            // which could be taken back).
            let mut grants = super::grants::of_member(tx, &before)?;
            grants.direct.admin = true;
            let mut after = before.clone();
            after.state = MemberState::Active;
            after.roles = grants.effective();
            if after != before {
                tx.put_membership(&after)?;
            }
            tx.put_member_grants(&grants)?;
            let passkeys = tx.passkeys(user.id)?;
            let mfa_removed = tx.totp(user.id)?.is_some() || !passkeys.is_empty();
            tx.remove_totp(user.id)?;
            for passkey in &passkeys {
                tx.remove_passkey(passkey)?;
            }
            let mut relaxed = Vec::new();
            for restriction in tx.ip_restrictions(account.id)? {
                let locks_out = restriction.enforced
                    && matches!(
                        restriction.kind,
                        RestrictionType::Dashboard | RestrictionType::Api
                    );
                if locks_out {
                    let mut warn_only = restriction.clone();
                    warn_only.enforced = false;
                    tx.put_ip_restriction(&warn_only)?;
                    record(
                        tx,
                        &account.id,
                        now,
                        system,
                        Action::Ip(IpObject::Restriction, Change::Updated),
                        restriction.id.to_string(),
                        Some(Snapshot::IpRestriction(restriction.clone())),
                        Some(Snapshot::IpRestriction(warn_only)),
                    )?;
                    relaxed.push(restriction.id);
                }
            }
            let spec = CredentialSpec {
                description: "created by latchkey recover".to_owned(),
                ..Default::default()
            };
            let (_, api_key) = self.insert_token_credential(
                tx,
                system,
                account.id,
                CredentialKind::ApiKey,
                Owner::User(user.id),
                spec,
                now,
            )?;
            record(
                tx,
                &account.id,
                now,
                system,
                Action::AdministratorRecovered,
                user.id.to_string(),
                Some(Snapshot::Member(user.clone(), before.clone())),
                Some(Snapshot::Member(user.clone(), after.clone())),
            )?;
            Ok(Recovered {
                account: account.id,
                user: user.id,
                api_key,
                enabled: before.state != MemberState::Active,
                made_admin: !before.roles.admin,
                mfa_removed,
                relaxed,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_an_email_for_the_rest_of_the_window_and_then_release_it() {
        let mut failures = Failures::default();
        let start = 1_000_000;
        for i in 0..5 {
            assert_eq!(failures.locked_until("a@example.com", 5, start + i), None);
            failures.fail("a@example.com".into(), start + i);
        }
        assert_eq!(
            failures.locked_until("a@example.com", 5, start + 10),
            Some(start + WINDOW_MS)
        );
        assert_eq!(failures.locked_until("b@example.com", 5, start + 10), None);
        assert_eq!(
            failures.locked_until("a@example.com", 5, start + WINDOW_MS),
            None
        );
    }
}
