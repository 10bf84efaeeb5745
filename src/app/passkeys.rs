//! Passkeys: WebAuthn credentials (through `webauthn-rs`, RustCrypto inside) that a user
//! adds from its profile. A passkey signs its user in on its own (the browser offers the
//! user's passkeys for this host; no email or password is typed) or stands as the second
//! factor after a password. Every passkey requires user verification (a PIN or a
//! biometric on the authenticator), so it is multi-factor by itself.
//!
//! A ceremony (the challenge the browser signs) lives in memory for five minutes and is
//! used once: its state never leaves the server. A passkey is bound to the relying party
//! it was made for, the host name the dashboard was opened by (WebAuthn refuses an IP
//! address), and only that host's passkeys are offered or accepted there.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder,
};

use super::login::{Factor, LoginStep, Method};
use super::{AppError, Latchkey, Me, record};
use crate::domain::DomainError;
use crate::domain::event::{Action, Actor, Principal};
use crate::domain::id::{PasskeyId, UserId};
use crate::domain::name::check_visible;
use crate::domain::session::{MAX_PASSKEYS, PasskeyRecord};
use crate::domain::time::Timestamp;
use crate::store::{Reads, WriteTx};

/// How long a ceremony waits for the browser: five minutes.
const CEREMONY_MS: i64 = 5 * 60 * 1000;
/// Ceremonies kept at most; past it the expired go, then the one expiring soonest.
const MAX_CEREMONIES: usize = 10_000;
/// The longest passkey name.
const MAX_NAME_CHARS: usize = 64;

/// The relying party a passkey is made for and used with: the dashboard's origin
/// (`https://host[:port]`) and its host name as the RP id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    id: String,
    origin: Url,
}

impl RelyingParty {
    /// The relying party of the dashboard at `origin` (`https://host[:port]`), or `None`
    /// where WebAuthn cannot work: an IP address, or not `https`.
    pub fn for_origin(origin: &str) -> Option<RelyingParty> {
        let origin = Url::parse(origin).ok()?;
        if origin.scheme() != "https" {
            return None;
        }
        let id = origin.host_str()?.to_owned();
        if id.starts_with('[') || id.parse::<IpAddr>().is_ok() {
            return None;
        }
        Some(RelyingParty { id, origin })
    }

    /// The host name passkeys are bound to.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn webauthn(&self) -> Result<Webauthn, AppError> {
        WebauthnBuilder::new(&self.id, &self.origin)
            .and_then(|builder| builder.rp_name("latchkey").build())
            .map_err(|e| AppError::DataDir(format!("WebAuthn for {}: {e}", self.origin)))
    }
}

/// A ceremony for the browser: its id (for the answer) and the options
/// `navigator.credentials` takes, as JSON (with base64url binary fields).
#[derive(Debug)]
pub struct PasskeyChallenge {
    /// Names the ceremony when the browser answers.
    pub ceremony: String,
    /// `{"publicKey": …}`.
    pub options: String,
}

/// What a ceremony waits for.
enum Pending {
    Register {
        user: UserId,
        state: Box<PasskeyRegistration>,
    },
    SecondFactor {
        user: UserId,
        state: Box<PasskeyAuthentication>,
    },
    SignIn {
        state: Box<DiscoverableAuthentication>,
    },
}

struct Ceremony {
    rp: RelyingParty,
    pending: Pending,
    expires_ms: i64,
}

/// The ceremonies under way, in memory.
#[derive(Default)]
pub(super) struct Ceremonies(Mutex<HashMap<u128, Ceremony>>);

impl std::fmt::Debug for Ceremonies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ceremonies")
    }
}

impl Ceremonies {
    fn begin(
        &self,
        rp: &RelyingParty,
        pending: Pending,
        now: Timestamp,
    ) -> Result<String, AppError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|_| DomainError::RandomnessUnavailable)?;
        let id = u128::from_le_bytes(bytes);
        let now = now.as_millis();
        let mut pending_now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if pending_now.len() >= MAX_CEREMONIES {
            pending_now.retain(|_, c| c.expires_ms > now);
        }
        if pending_now.len() >= MAX_CEREMONIES
            && let Some(soonest) = pending_now
                .iter()
                .min_by_key(|(_, c)| c.expires_ms)
                .map(|(id, _)| *id)
        {
            pending_now.remove(&soonest);
        }
        pending_now.insert(
            id,
            Ceremony {
                rp: rp.clone(),
                pending,
                expires_ms: now + CEREMONY_MS,
            },
        );
        Ok(format!("{id:032x}"))
    }

    /// Take ceremony `id` (it is used once, whatever comes of it), if live.
    fn take(&self, id: &str, now: Timestamp) -> Result<Ceremony, AppError> {
        let expired = || AppError::Unauthenticated("the passkey request expired; try again".into());
        let id = u128::from_str_radix(id.trim(), 16).map_err(|_| expired())?;
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
            .filter(|c| c.expires_ms > now.as_millis())
            .ok_or_else(expired)
    }
}

fn to_json<T: serde::Serialize>(options: &T) -> Result<String, AppError> {
    serde_json::to_string(options)
        .map_err(|e| AppError::DataDir(format!("WebAuthn options as JSON: {e}")))
}

fn refused() -> AppError {
    AppError::Unauthenticated("the passkey was not accepted".into())
}

/// The library's credential kept in `record`; a record that does not read fails closed.
fn stored(record: &PasskeyRecord) -> Result<Passkey, AppError> {
    serde_json::from_str(&record.credential).map_err(|e| {
        AppError::DataDir(format!(
            "passkey {} does not read ({e}); remove it and add it again",
            record.id
        ))
    })
}

/// Record a passkey change in the trail of every account of its user.
fn record_passkey(
    tx: &mut WriteTx,
    passkey: &PasskeyRecord,
    now: Timestamp,
    action: Action,
) -> Result<(), AppError> {
    let actor = Actor {
        principal: Principal::User(passkey.user),
        credential: None,
    };
    for account in tx.user_accounts(passkey.user)? {
        record(
            tx,
            &account,
            now,
            actor,
            action,
            passkey.id.to_string(),
            None,
            None,
        )?;
    }
    Ok(())
}

impl Latchkey {
    /// `user`'s passkeys, oldest first.
    pub fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>, AppError> {
        Ok(self.store.read()?.passkeys(user)?)
    }

    /// Begin adding a passkey for the caller at `rp`: the options for
    /// `navigator.credentials.create`. The caller's passkeys are excluded (an
    /// authenticator holds one per user), and a discoverable credential is asked for, so
    /// the passkey can later sign in without an email.
    pub fn start_passkey_registration(
        &self,
        me: Me,
        rp: &RelyingParty,
    ) -> Result<PasskeyChallenge, AppError> {
        let read = self.store.read()?;
        let user = read
            .user(me.user)?
            .ok_or_else(|| DomainError::NotFound(me.user.into()))?;
        let held = read.passkeys(me.user)?;
        drop(read);
        if held.len() >= MAX_PASSKEYS {
            return Err(DomainError::invalid(
                "passkeys",
                format!("a user holds at most {MAX_PASSKEYS} passkeys; remove one first"),
            )
            .into());
        }
        let exclude = held
            .iter()
            .filter(|p| p.rp_id == rp.id)
            .map(|p| stored(p).map(|key| key.cred_id().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (mut options, state) = rp
            .webauthn()?
            .start_passkey_registration(
                Uuid::from_u128(me.user.0),
                user.email.as_str(),
                &user.name,
                Some(exclude),
            )
            .map_err(|e| AppError::DataDir(format!("starting a passkey registration: {e}")))?;
        prefer_discoverable(&mut options);
        let ceremony = self.ceremonies.begin(
            rp,
            Pending::Register {
                user: me.user,
                state: Box::new(state),
            },
            self.now(),
        )?;
        Ok(PasskeyChallenge {
            ceremony,
            options: to_json(&options)?,
        })
    }

    /// Finish adding a passkey: the browser's answer (`PublicKeyCredential` as JSON) to
    /// ceremony `ceremony`, and the name the user gives it. A session that was limited to
    /// enrolling a second factor is limited no longer.
    pub fn finish_passkey_registration(
        &self,
        me: Me,
        ceremony: &str,
        response: &str,
        name: &str,
    ) -> Result<PasskeyRecord, AppError> {
        let now = self.now();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(DomainError::invalid(
                "name",
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            )
            .into());
        }
        check_visible("name", name)?;
        let Ceremony { rp, pending, .. } = self.ceremonies.take(ceremony, now)?;
        let Pending::Register { user, state } = pending else {
            return Err(refused());
        };
        if user != me.user {
            return Err(refused());
        }
        let answer: RegisterPublicKeyCredential =
            serde_json::from_str(response).map_err(|_| refused())?;
        let passkey = rp
            .webauthn()?
            .finish_passkey_registration(&answer, &state)
            .map_err(|e| {
                tracing::info!(user = %me.user, error = %e, "passkey registration refused");
                refused()
            })?;
        let record = PasskeyRecord {
            id: PasskeyId::generate(now)?,
            user: me.user,
            name: name.to_owned(),
            rp_id: rp.id.clone(),
            credential_id: passkey.cred_id().to_vec(),
            credential: to_json(&passkey)?,
            created_at: now,
            last_used_at: None,
        };
        self.store.write(|tx| {
            me.ensure_may_change_self(tx)?;
            if tx.passkeys(me.user)?.len() >= MAX_PASSKEYS {
                return Err(DomainError::invalid(
                    "passkeys",
                    format!("a user holds at most {MAX_PASSKEYS} passkeys; remove one first"),
                )
                .into());
            }
            tx.put_passkey(&record)?;
            if let Some(session) = me.session {
                super::login::mark_mfa_verified(tx, me.user, session)?;
            }
            record_passkey(tx, &record, now, Action::PasskeyAdded)
        })?;
        Ok(record)
    }

    /// Remove one of the caller's passkeys.
    pub fn remove_passkey(&self, me: Me, id: PasskeyId) -> Result<PasskeyRecord, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            me.ensure_may_change_self(tx)?;
            let passkey = tx
                .passkeys(me.user)?
                .into_iter()
                .find(|p| p.id == id)
                .ok_or_else(|| DomainError::NotFound(id.into()))?;
            tx.remove_passkey(&passkey)?;
            record_passkey(tx, &passkey, now, Action::PasskeyRemoved)?;
            Ok(passkey)
        })
    }

    /// Begin a passwordless sign-in at `rp`: the options for `navigator.credentials.get`
    /// with no credentials named, so the browser offers the passkeys it holds for this
    /// host (nothing here says whether any user has one).
    pub fn start_passkey_sign_in(&self, rp: &RelyingParty) -> Result<PasskeyChallenge, AppError> {
        let (mut options, state) = rp
            .webauthn()?
            .start_discoverable_authentication()
            .map_err(|e| AppError::DataDir(format!("starting a passkey sign-in: {e}")))?;
        // Asked for by a button, not offered in the email field's autofill.
        options.mediation = None;
        let ceremony = self.ceremonies.begin(
            rp,
            Pending::SignIn {
                state: Box::new(state),
            },
            self.now(),
        )?;
        Ok(PasskeyChallenge {
            ceremony,
            options: to_json(&options)?,
        })
    }

    /// The second factors the user of login ticket `ticket` has: (a confirmed TOTP, a
    /// passkey), so its second step offers only what it can use.
    pub fn ticket_factors(&self, ticket: &str) -> Result<(bool, bool), AppError> {
        let user = UserId(self.open_ticket(ticket)?.user);
        let read = self.store.read()?;
        Ok((
            read.totp(user)?.is_some_and(|r| r.confirmed),
            read.has_passkey(user)?,
        ))
    }

    /// Begin the passkey second factor of the login whose ticket is `ticket` (its
    /// password was right): the options naming the user's passkeys for `rp`.
    pub fn start_passkey_second_factor(
        &self,
        ticket: &str,
        rp: &RelyingParty,
    ) -> Result<PasskeyChallenge, AppError> {
        let user = UserId(self.open_ticket(ticket)?.user);
        let keys = self
            .passkeys(user)?
            .iter()
            .filter(|p| p.rp_id == rp.id)
            .map(stored)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(DomainError::NotApplicable(
                "you have no passkey for this address; use a code",
            )
            .into());
        }
        let (options, state) = rp
            .webauthn()?
            .start_passkey_authentication(&keys)
            .map_err(|e| AppError::DataDir(format!("starting a passkey check: {e}")))?;
        let ceremony = self.ceremonies.begin(
            rp,
            Pending::SecondFactor {
                user,
                state: Box::new(state),
            },
            self.now(),
        )?;
        Ok(PasskeyChallenge {
            ceremony,
            options: to_json(&options)?,
        })
    }

    /// Finish a passwordless sign-in: the browser's answer to ceremony `ceremony`. The
    /// passkey names its user; the rest is a login's (the account, its IP restriction,
    /// the session), with the second factor passed. A refused passkey counts as a failed
    /// login of its user.
    pub fn finish_passkey_sign_in(
        &self,
        ceremony: &str,
        response: &str,
        ip: Option<IpAddr>,
    ) -> Result<LoginStep, AppError> {
        let now = self.now();
        let Ceremony { rp, pending, .. } = self.ceremonies.take(ceremony, now)?;
        let Pending::SignIn { state } = pending else {
            return Err(refused());
        };
        let answer: PublicKeyCredential = serde_json::from_str(response).map_err(|_| refused())?;
        let read = self.store.read()?;
        let found = read.passkey_by_credential(answer.get_credential_id())?;
        let claimed = answer
            .get_user_unique_id()
            .and_then(|bytes| Uuid::from_slice(bytes).ok())
            .map(|uuid| UserId(uuid.as_u128()));
        let (passkey, user) = match found {
            Some(passkey) if claimed == Some(passkey.user) && passkey.rp_id == rp.id => {
                let user = read.user(passkey.user)?;
                (passkey, user)
            }
            _ => {
                // No user to count against: the address's limit still applies.
                let attempt = self.logins.admit("passkey:unknown", ip, now)?;
                drop(attempt);
                tracing::info!(ip = ?ip, "passkey sign-in refused: no passkey has that credential");
                return Err(refused());
            }
        };
        drop(read);
        let Some(user) = user else {
            return Err(refused());
        };
        let key = user.email.as_str().to_lowercase();
        let attempt = self.logins.admit(&key, ip, now)?;
        let result = stored(&passkey).and_then(|key| {
            rp.webauthn()?
                .finish_discoverable_authentication_v2(&answer, *state, &key)
                .map_err(|e| {
                    tracing::info!(user = %user.id, error = %e, "passkey sign-in refused");
                    refused()
                })
                .map(|result| (key, result))
        });
        let (mut key_now, result) = match result {
            Ok(done) => done,
            Err(err) => {
                let memberships = self.store.read()?.user_accounts(user.id)?;
                self.record_attempt(
                    &user,
                    &memberships,
                    ip,
                    Some("passkey not accepted"),
                    Method::Passkey,
                )?;
                return Err(err);
            }
        };
        key_now.update_credential(&result);
        let used = PasskeyRecord {
            credential: to_json(&key_now)?,
            last_used_at: Some(now),
            ..passkey
        };
        self.store
            .write(|tx| tx.put_passkey(&used).map_err(AppError::from))?;
        self.login_with(
            &user,
            attempt,
            Factor::Passed,
            None,
            ip,
            &key,
            Method::Passkey,
        )
    }

    /// Check a passkey given as the second factor of `user`'s login, in `tx`: the answer
    /// to a second-factor ceremony begun for this user. `Ok(false)` when it is not
    /// accepted.
    pub(super) fn use_passkey(
        &self,
        tx: &mut WriteTx,
        user: UserId,
        ceremony: &str,
        response: &str,
        now: Timestamp,
    ) -> Result<bool, AppError> {
        let Ok(Ceremony { rp, pending, .. }) = self.ceremonies.take(ceremony, now) else {
            return Ok(false);
        };
        let Pending::SecondFactor {
            user: expected,
            state,
        } = pending
        else {
            return Ok(false);
        };
        let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(response) else {
            return Ok(false);
        };
        let Some(passkey) = tx
            .passkey_by_credential(answer.get_credential_id())?
            .filter(|p| p.user == user && expected == user && p.rp_id == rp.id)
        else {
            return Ok(false);
        };
        let mut key = stored(&passkey)?;
        let Ok(result) = rp
            .webauthn()?
            .finish_passkey_authentication(&answer, &state)
        else {
            return Ok(false);
        };
        key.update_credential(&result);
        tx.put_passkey(&PasskeyRecord {
            credential: to_json(&key)?,
            last_used_at: Some(now),
            ..passkey
        })?;
        Ok(true)
    }
}

/// Ask the authenticator for a discoverable credential where it can make one (a
/// security key short of room may still make a non-discoverable one, which works as a
/// second factor). The library asks for `discouraged`; the option is the browser's
/// hint, and nothing the server checks depends on it.
fn prefer_discoverable(options: &mut CreationChallengeResponse) {
    use webauthn_rs_proto::ResidentKeyRequirement;
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(ResidentKeyRequirement::Preferred);
    }
}
