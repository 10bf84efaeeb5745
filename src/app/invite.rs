//! Invitations: made by members who may invite (no more than their own roles, by the
//! account RBAC policy), kept in an outbox an administrator can read, accepted once by
//! the person they name.

use subtle::ConstantTimeEq;

use super::mfa::Sealed;
use super::{AppError, Joined, Latchkey, Target, in_account, record, require_account};
use crate::domain::DomainError;
use crate::domain::credential::Owner;
use crate::domain::event::{Action, Actor, Change, Principal, Snapshot};
use crate::domain::id::{AccountId, InvitationId, RoleId, TenantId, UserId};
use crate::domain::invitation::{self, Invitation, InvitationState};
use crate::domain::time::Timestamp;
use crate::domain::token::Secret;
use crate::domain::user::{Email, Roles, User};
use crate::store::{Page, PageRequest, Reads, WriteTx};

/// An invitation with its token in clear, for those who may see it.
#[derive(Debug)]
pub struct Invited {
    /// The invitation.
    pub invitation: Invitation,
    /// Its token (for the accept link); `None` when the viewer may not see it.
    pub token: Option<Secret>,
}

/// Who accepts an invitation.
#[derive(Debug, Clone, Copy)]
pub enum Acceptor<'a> {
    /// A logged-in user (its session's user).
    User(UserId),
    /// A new person: the user is created with this name and password.
    NewPerson {
        /// Its name.
        name: &'a str,
        /// Its password.
        password: &'a str,
    },
}

fn snapshot(invitation: &Invitation) -> Snapshot {
    Snapshot::Invitation {
        id: invitation.id.to_string(),
        email: invitation.email.as_str().to_owned(),
        roles: invitation.roles,
    }
}

fn invitation_in(
    tx: &impl Reads,
    account: AccountId,
    id: InvitationId,
) -> Result<Invitation, AppError> {
    in_account(tx.invitation(id)?, |i| i.account, account, id)
}

/// The inviter's own account roles (a user's membership; bots and the system have none
/// to compare, and the policy decides them by kind).
fn own_roles(tx: &impl Reads, account: AccountId, actor: Actor) -> Result<Option<Roles>, AppError> {
    match actor.principal {
        Principal::User(user) => Ok(tx.membership(account, user)?.map(|m| m.roles)),
        _ => Ok(None),
    }
}

impl Latchkey {
    fn token_hash(&self, token: &str) -> [u8; 32] {
        self.keys.load().current().hash(token.as_bytes()).0
    }

    /// Invite `email` to `account` with `roles` and tenant role `assignments`.
    pub fn invite(
        &self,
        actor: Actor,
        account: AccountId,
        email: &str,
        roles: Roles,
        assignments: Vec<(RoleId, Option<TenantId>)>,
    ) -> Result<Invited, AppError> {
        let now = self.now();
        let email = Email::parse(email)?;
        invitation::validate_assignments(&assignments)?;
        let token = super::login::random_secret()?;
        let sealed = self.seal(Sealed::InvitationToken, token.expose().as_bytes())?;
        let token_hash = self.token_hash(token.expose());
        let made = self.store.write(|tx| {
            require_account(tx, account)?;
            let exceeds =
                own_roles(tx, account, actor)?.is_none_or(|own| invitation::exceeds(&roles, &own));
            let target = Target::new("invitations", "create", "invitation", "new")
                .with("grants_admin", roles.admin)
                .with("exceeds_own_roles", exceeds);
            self.authorize(tx, actor, account, target, now)?;
            if !assignments.is_empty() {
                let grant = Target::new("role_assignments", "create", "role_assignment", "new");
                self.authorize(tx, actor, account, grant, now)?;
            }
            for (role, tenant) in &assignments {
                super::tenancy::check_assignable(tx, account, *role, *tenant)?;
            }
            if let Some(user) = tx.user_by_email(&email)?
                && tx.membership(account, user.id)?.is_some()
            {
                return Err(DomainError::Conflict {
                    what: "membership of this email",
                }
                .into());
            }
            let invitation = Invitation {
                id: InvitationId::generate(now)?,
                account,
                email: email.clone(),
                roles,
                assignments: assignments.clone(),
                created_at: now,
                expires_at: Timestamp::from_millis(
                    now.as_millis() + invitation::INVITATION_LIFETIME_MS,
                ),
                state: InvitationState::Pending,
                token_hash,
                sealed_token: sealed.clone(),
            };
            tx.put_invitation(&invitation)?;
            record(
                tx,
                &account,
                now,
                actor,
                Action::Invitation(Change::Created),
                invitation.id.to_string(),
                None,
                Some(snapshot(&invitation)),
            )?;
            Ok::<Invitation, AppError>(invitation)
        })?;
        Ok(Invited {
            invitation: made,
            token: Some(token),
        })
    }

    /// One invitation; its token (the accept link) only for callers who may create
    /// invitations (administrators and team members who may invite).
    pub fn invitation(
        &self,
        actor: Actor,
        account: AccountId,
        id: InvitationId,
    ) -> Result<Invited, AppError> {
        let read = self.store.read()?;
        let invitation = invitation_in(&read, account, id)?;
        let now = self.now();
        let target = Target::new("invitations", "get", "invitation", id.to_string());
        self.authorize(&read, actor, account, target, now)?;
        let may_invite = Target::new("invitations", "create", "invitation", "new")
            .with("grants_admin", false)
            .with("exceeds_own_roles", false);
        let token = match self.authorize(&read, actor, account, may_invite, now) {
            Ok(()) if invitation.state == InvitationState::Pending => {
                let clear = self.unseal(Sealed::InvitationToken, &invitation.sealed_token)?;
                Some(Secret::new(String::from_utf8_lossy(&clear).into_owned()))
            }
            _ => None,
        };
        Ok(Invited { invitation, token })
    }

    /// A page of the account's invitations, newest first; with `state`, only those in
    /// it now (`pending`, `accepted`, `revoked`, `expired`).
    pub fn invitations(
        &self,
        actor: Actor,
        account: AccountId,
        state: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Invitation>, AppError> {
        let read = self.store.read()?;
        let now = self.now();
        let target = Target::new("invitations", "list", "invitation", account.to_string());
        self.authorize(&read, actor, account, target, now)?;
        Ok(read.invitations_page(account, page, |i| {
            state.is_none_or(|s| i.state_name(now) == s)
        })?)
    }

    /// Revoke a pending invitation.
    pub fn revoke_invitation(
        &self,
        actor: Actor,
        account: AccountId,
        id: InvitationId,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let mut invitation = invitation_in(tx, account, id)?;
            let target = Target::new("invitations", "delete", "invitation", id.to_string());
            self.authorize(tx, actor, account, target, now)?;
            if invitation.state_name(now) != "pending" {
                return Err(
                    DomainError::NotApplicable("only a pending invitation can be revoked").into(),
                );
            }
            invitation.state = InvitationState::Revoked { at: now };
            tx.put_invitation(&invitation)?;
            record(
                tx,
                &account,
                now,
                actor,
                Action::Invitation(Change::Deleted),
                id.to_string(),
                Some(snapshot(&invitation)),
                None,
            )
        })
    }

    /// The pending invitation `id` as its token's holder sees it before accepting: the
    /// invitation, its account's name, and whether a user with its email exists already
    /// (then that user signs in to accept; else the person picks a name and password).
    /// A wrong token, or an invitation no longer pending, is refused as acceptance is.
    pub fn invitation_for(
        &self,
        id: InvitationId,
        token: &str,
    ) -> Result<(Invitation, String, bool), AppError> {
        let read = self.store.read()?;
        let invitation = read.invitation(id)?;
        let invitation = self.holding(invitation, token)?;
        let account = require_account(&read, invitation.account)?;
        let exists = read.user_by_email(&invitation.email)?.is_some();
        Ok((invitation, account.name, exists))
    }

    /// `found` when `token` is its token and it is pending, else the refusal.
    fn holding(&self, found: Option<Invitation>, token: &str) -> Result<Invitation, AppError> {
        let invalid = || DomainError::invalid("token", "is not valid for this invitation");
        let invitation = found.ok_or_else(invalid)?;
        // Under each key: an invitation made before a key rotation keeps its hash.
        let keys = self.keys.load();
        if !keys
            .hashes(token.as_bytes())
            .any(|hash| bool::from(invitation.token_hash.ct_eq(&hash.0)))
        {
            return Err(invalid().into());
        }
        match invitation.state_name(self.now()) {
            "pending" => Ok(invitation),
            other => {
                Err(DomainError::invalid("token", format!("the invitation is {other}")).into())
            }
        }
    }

    /// Accept invitation `id` with its `token`: once, before it expires, and only by its
    /// person — a logged-in user whose email it names and who has proven that email, or a
    /// new person (no user has the email yet) who gives a name and password (and is not
    /// bound to the email until it proves it). The membership, its roles and the tenant
    /// role assignments are made in one transaction.
    pub fn accept_invitation(
        &self,
        id: InvitationId,
        token: &str,
        acceptor: Acceptor<'_>,
    ) -> Result<Joined, AppError> {
        let now = self.now();
        let invalid = || DomainError::invalid("token", "is not valid for this invitation");
        // A new person's password is checked and hashed before the write (argon2 is slow).
        let new_password = match acceptor {
            Acceptor::NewPerson { name, password } => {
                let email = {
                    let read = self.store.read()?;
                    read.invitation(id)?.ok_or_else(invalid)?.email
                };
                let person = User::new(UserId(0), email, name, now)?;
                // The field is `password` in an acceptance, `new_password` elsewhere.
                let hash = self
                    .new_password_hash(&person, password)
                    .map_err(|err| match err {
                        AppError::Domain(DomainError::Invalid { message, .. }) => {
                            AppError::Domain(DomainError::invalid("password", message))
                        }
                        other => other,
                    })?;
                Some(hash)
            }
            Acceptor::User(_) => None,
        };
        self.store.write(|tx| {
            let mut invitation = self.holding(tx.invitation(id)?, token)?;
            let existing = tx.user_by_email(&invitation.email)?;
            let (actor, name) = match (acceptor, &existing) {
                // An existing user joins another account only once it has proven its
                // email: else an account could make a user for someone else's address,
                // set its password, and accept that person's later invitations.
                (Acceptor::User(user), Some(found)) if found.id == user => {
                    if !super::identity::email_proven(tx, found)? {
                        return Err(DomainError::EmailUnproven(user.into()).into());
                    }
                    (
                        Actor {
                            principal: Principal::User(user),
                            credential: None,
                        },
                        found.name.clone(),
                    )
                }
                (Acceptor::User(_), _) => {
                    return Err(AppError::Forbidden {
                        policy: String::new(),
                        reason: format!(
                            "the invitation is for {}: log in as that user to accept it",
                            invitation.email.as_str()
                        ),
                    });
                }
                (Acceptor::NewPerson { .. }, Some(_)) => {
                    return Err(AppError::Unauthenticated(format!(
                        "{} already has a user: log in as it to accept",
                        invitation.email.as_str()
                    )));
                }
                (Acceptor::NewPerson { name, .. }, None) => (Actor::SYSTEM, name.to_owned()),
            };
            let joined = self.admit_invited(tx, &mut invitation, actor, &name, now)?;
            if let Some(phc) = &new_password {
                tx.set_password(joined.member.user.id, phc)?;
            }
            Ok(joined)
        })
    }

    /// The person of a pending `invitation` joins, in `tx`: the membership with its
    /// roles, the tenant role assignments, the invitation accepted, each an event.
    fn admit_invited(
        &self,
        tx: &mut WriteTx,
        invitation: &mut Invitation,
        actor: Actor,
        name: &str,
        now: Timestamp,
    ) -> Result<Joined, AppError> {
        let account = invitation.account;
        let joined = self.join(
            tx,
            actor,
            account,
            &invitation.email,
            name,
            invitation.roles,
            now,
        )?;
        let user = joined.member.user.id;
        for (role, tenant) in &invitation.assignments {
            super::tenancy::put_assignment(
                tx,
                actor,
                account,
                Owner::User(user),
                *role,
                *tenant,
                now,
            )?;
        }
        invitation.state = InvitationState::Accepted { user, at: now };
        tx.put_invitation(invitation)?;
        record(
            tx,
            &account,
            now,
            Actor {
                principal: Principal::User(user),
                credential: None,
            },
            Action::InvitationAccepted,
            invitation.id.to_string(),
            None,
            Some(snapshot(invitation)),
        )?;
        Ok(joined)
    }

    /// A new person accepts `invitation` through an identity provider that vouched for
    /// its email (its first sign-in there), in `tx`: the user it makes.
    pub(super) fn accept_through_provider(
        &self,
        tx: &mut WriteTx,
        mut invitation: Invitation,
        name: &str,
        now: Timestamp,
    ) -> Result<UserId, AppError> {
        let joined = self.admit_invited(tx, &mut invitation, Actor::SYSTEM, name, now)?;
        Ok(joined.member.user.id)
    }
}
