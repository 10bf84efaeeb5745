//! SCIM provisioning as the application does it: the account's SCIM tokens
//! (administrators only, decided by account-rbac as account settings), the caller a
//! presented token names, and the members SCIM makes, changes and removes. SCIM's own
//! gate replaces the member policies here: a token of the account, while its
//! `provisioning` is `scim`, acting as the token (every change is an event with the token
//! as principal). What it may change is bounded by the consent rules: a user who is also
//! a member elsewhere keeps its email and name, an email of another account's user is
//! never taken (that person is invited instead), and the last-administrator rule holds.
//! The protocol (filters, PATCH, JSON) is the `scim` surface's.

use subtle::ConstantTimeEq;

use super::federation::JIT_ROLES;
use super::group_mappings::{self, group_in};
use super::identity::record_user_change_with;
use super::{AppError, Latchkey, record, require_account};
use crate::domain::DomainError;
use crate::domain::account::Provisioning;
use crate::domain::event::{Action, Actor, Change, Principal, Snapshot};
use crate::domain::id::{AccountId, ScimGroupId, ScimTokenId, UserId};
use crate::domain::scim::{
    ScimEmail, ScimGroup, ScimName, ScimProfile, ScimToken, validate_description,
};
use crate::domain::time::Timestamp;
use crate::domain::token::{self, Secret, TokenKind};
use crate::domain::user::{
    Email, MemberChange, MemberState, Membership, User, ensure_only_account,
};
use crate::store::Reads;

/// How often a token's last use is written at most: once a minute.
const LAST_USE_EVERY_MS: i64 = 60_000;

/// An identity provider at the SCIM endpoint: the account its token provisions, and the
/// token (the principal of everything it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScimCaller {
    /// The token presented.
    pub token: ScimTokenId,
    /// Its account.
    pub account: AccountId,
}

impl ScimCaller {
    fn actor(self) -> Actor {
        Actor {
            principal: Principal::ScimToken(self.token),
            credential: None,
        }
    }
}

/// A member as SCIM sees it: the user, its membership, and what SCIM keeps about it
/// (`None` for a member SCIM has not written: its `userName` is its email).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimUser {
    /// The person.
    pub user: User,
    /// Its membership of the account.
    pub membership: Membership,
    /// What SCIM keeps, if it wrote it.
    pub profile: Option<ScimProfile>,
}

/// A member as a SCIM write gives it (a create, or a whole replacement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimUserSpec {
    /// `userName`.
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `name`.
    pub name: ScimName,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `emails`: the primary (or first) is the user's email.
    pub emails: Vec<ScimEmail>,
    /// `active`: false disables the membership.
    pub active: bool,
}

impl ScimUserSpec {
    fn profile(
        &self,
        account: AccountId,
        user: UserId,
        created: Timestamp,
        now: Timestamp,
    ) -> ScimProfile {
        ScimProfile {
            account,
            user,
            user_name: self.user_name.clone(),
            external_id: self.external_id.clone(),
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            emails: self.emails.clone(),
            created_at: created,
            updated_at: now,
        }
    }

    /// The user's email this spec gives.
    fn email(&self, profile: &ScimProfile) -> Result<Email, AppError> {
        let address = profile.primary_email().ok_or_else(|| {
            DomainError::invalid(
                "emails",
                "a member needs an email: give emails with a value",
            )
        })?;
        Ok(Email::parse(address)?)
    }

    /// The user's display name this spec gives: `displayName`, else `name`, else `None`
    /// (keep the name, or use the email's local part for a new user).
    fn display(&self) -> Option<String> {
        self.display_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| self.name.display())
    }
}

/// A group as a SCIM write gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroupSpec {
    /// `displayName`.
    pub display_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// Its members (user ids of members of the account).
    pub members: Vec<UserId>,
}

/// The refusal of a SCIM write while the account is not provisioned by SCIM.
fn not_scim() -> AppError {
    AppError::Forbidden {
        policy: String::new(),
        reason: "this account's provisioning is not scim: an administrator sets provisioning to scim to let its identity provider provision members".into(),
    }
}

fn target(verb: &str, id: String) -> super::Target {
    super::Target::new("scim_tokens", verb, "scim_token", id)
}

impl Latchkey {
    /// Make a SCIM token for `account`: the token is in the answer only.
    pub fn create_scim_token(
        &self,
        actor: Actor,
        account: AccountId,
        description: &str,
    ) -> Result<(ScimToken, Secret), AppError> {
        let now = self.now();
        let description = validate_description(description)?;
        self.store.write(|tx| {
            require_account(tx, account)?;
            self.authorize(tx, actor, account, target("create", "new".into()), now)?;
            let id = ScimTokenId::generate(now)?;
            let (secret, hash) = self.keys.load().current().mint(TokenKind::Scim, id.0)?;
            let made = ScimToken {
                id,
                account,
                description: description.clone(),
                hash: hash.0,
                created_at: now,
                last_used_at: None,
            };
            tx.put_scim_token(&made)?;
            record(
                tx,
                &account,
                now,
                actor,
                Action::ScimToken(Change::Created),
                id.to_string(),
                None,
                Some(snapshot(&made)),
            )?;
            Ok((made, secret))
        })
    }

    /// An account's SCIM tokens, oldest first.
    pub fn scim_tokens(
        &self,
        actor: Actor,
        account: AccountId,
    ) -> Result<Vec<ScimToken>, AppError> {
        let read = self.store.read()?;
        require_account(&read, account)?;
        self.authorize(
            &read,
            actor,
            account,
            target("list", String::new()),
            self.now(),
        )?;
        Ok(read.scim_tokens(account)?)
    }

    /// One SCIM token of `account`.
    pub fn scim_token(
        &self,
        actor: Actor,
        account: AccountId,
        id: ScimTokenId,
    ) -> Result<ScimToken, AppError> {
        let read = self.store.read()?;
        let found = token_in(&read, account, id)?;
        self.authorize(
            &read,
            actor,
            account,
            target("get", id.to_string()),
            self.now(),
        )?;
        Ok(found)
    }

    /// Revoke a SCIM token: it stops working at once.
    pub fn revoke_scim_token(
        &self,
        actor: Actor,
        account: AccountId,
        id: ScimTokenId,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let found = token_in(tx, account, id)?;
            self.authorize(tx, actor, account, target("delete", id.to_string()), now)?;
            tx.remove_scim_token(&found)?;
            record(
                tx,
                &account,
                now,
                actor,
                Action::ScimToken(Change::Deleted),
                id.to_string(),
                Some(snapshot(&found)),
                None,
            )
        })
    }

    /// Who presents `presented` at the SCIM endpoint: a live SCIM token's account.
    /// Anything else is one refusal that says nothing about why.
    pub fn scim_caller(&self, presented: &str) -> Result<ScimCaller, AppError> {
        let refused = || AppError::Unauthenticated("a SCIM token is required".into());
        let parsed = token::parse(presented).map_err(|_| refused())?;
        if parsed.kind != TokenKind::Scim {
            return Err(refused());
        }
        let found = self
            .store
            .read()?
            .scim_token(ScimTokenId(parsed.id))?
            .ok_or_else(refused)?;
        // A token made before a key rotation matches under the key it was made with.
        let keys = self.keys.load();
        let matches = keys
            .newest_first()
            .any(|(_, key)| bool::from(key.hash(parsed.secret()).0.ct_eq(&found.hash)));
        if !matches {
            return Err(refused());
        }
        let now = self.now();
        if found
            .last_used_at
            .is_none_or(|at| now.as_millis() - at.as_millis() >= LAST_USE_EVERY_MS)
        {
            // Noted at most once a minute; a failure to note it refuses nothing.
            let _ = self.store.write(|tx| {
                if let Some(mut current) = tx.scim_token(found.id)? {
                    current.last_used_at = Some(now);
                    tx.put_scim_token(&current)?;
                }
                Ok::<_, AppError>(())
            });
        }
        Ok(ScimCaller {
            token: found.id,
            account: found.account,
        })
    }

    /// Every member of the caller's account as SCIM sees it, oldest first.
    pub fn scim_users(&self, caller: ScimCaller) -> Result<Vec<ScimUser>, AppError> {
        let read = self.store.read()?;
        require_account(&read, caller.account)?;
        read.members(caller.account)?
            .into_iter()
            .map(|membership| scim_user(&read, membership))
            .collect()
    }

    /// The member whose `userName` is `user_name` (without case): SCIM's, else the email
    /// of a member SCIM has not written.
    pub fn scim_user_named(
        &self,
        caller: ScimCaller,
        user_name: &str,
    ) -> Result<Option<ScimUser>, AppError> {
        let read = self.store.read()?;
        let Some(user) = named(&read, caller.account, user_name)? else {
            return Ok(None);
        };
        read.membership(caller.account, user)?
            .map(|membership| scim_user(&read, membership))
            .transpose()
    }

    /// One member of the caller's account.
    pub fn scim_user(&self, caller: ScimCaller, user: UserId) -> Result<ScimUser, AppError> {
        let read = self.store.read()?;
        let membership = read
            .membership(caller.account, user)?
            .ok_or_else(|| DomainError::NotFound(user.into()))?;
        scim_user(&read, membership)
    }

    /// Make a member from a SCIM create: a new user (its email unproven until the person
    /// proves it) with developer read/write and team invite, or a refusal: a `userName`
    /// or email of a member already (409), an email of a user outside the account (409:
    /// invite that person).
    pub fn scim_create_user(
        &self,
        caller: ScimCaller,
        spec: &ScimUserSpec,
    ) -> Result<ScimUser, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            ensure_scim(tx, caller.account)?;
            let placeholder = spec.profile(caller.account, UserId(0), now, now);
            placeholder.validate()?;
            let email = spec.email(&placeholder)?;
            if named(tx, caller.account, &spec.user_name)?.is_some() {
                return Err(DomainError::Conflict {
                    what: "this userName",
                }
                .into());
            }
            if let Some(existing) = tx.user_by_email(&email)? {
                return Err(if tx.membership(caller.account, existing.id)?.is_some() {
                    DomainError::Conflict {
                        what: "the email of a member (find it by userName or emails)",
                    }
                    .into()
                } else {
                    // That person joins only by accepting an invitation (its consent).
                    DomainError::ExistingUser.into()
                });
            }
            let name = spec.display().unwrap_or_else(|| {
                email
                    .as_str()
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            });
            let joined = self.join(
                tx,
                caller.actor(),
                caller.account,
                &email,
                &name,
                JIT_ROLES,
                now,
            )?;
            let user = joined.member.user.id;
            let profile = spec.profile(caller.account, user, now, now);
            tx.put_scim_profile(&profile)?;
            record(
                tx,
                &caller.account,
                now,
                caller.actor(),
                Action::ScimUser(Change::Created),
                user.to_string(),
                None,
                Some(Snapshot::ScimUser(profile)),
            )?;
            if !spec.active {
                self.change_member_in(
                    tx,
                    caller.actor(),
                    caller.account,
                    user,
                    MemberChange::State(MemberState::Disabled),
                    now,
                )?;
            }
            let membership = tx
                .membership(caller.account, user)?
                .ok_or_else(|| DomainError::NotFound(user.into()))?;
            scim_user(tx, membership)
        })
    }

    /// Replace what SCIM says about a member (PUT, and PATCH once the surface applied it):
    /// its SCIM attributes, its email and name (only for a user of this account alone),
    /// and whether it is active (the last-administrator rule holds). `expected` sees the
    /// member as it is in this transaction (an `If-Match` check): false refuses with
    /// [`AppError::Precondition`] and changes nothing.
    pub fn scim_replace_user(
        &self,
        caller: ScimCaller,
        user: UserId,
        spec: &ScimUserSpec,
        expected: impl FnOnce(&ScimUser) -> bool,
    ) -> Result<ScimUser, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            ensure_scim(tx, caller.account)?;
            let membership = tx
                .membership(caller.account, user)?
                .ok_or_else(|| DomainError::NotFound(user.into()))?;
            let current = scim_user(tx, membership)?;
            if !expected(&current) {
                return Err(AppError::Precondition(
                    "the member changed since that version (If-Match): read it again".into(),
                ));
            }
            let created = current.profile.as_ref().map_or(now, |p| p.created_at);
            let profile = spec.profile(caller.account, user, created, now);
            profile.validate()?;
            let email = spec.email(&profile)?;
            if named(tx, caller.account, &spec.user_name)?.is_some_and(|held| held != user) {
                return Err(DomainError::Conflict {
                    what: "this userName",
                }
                .into());
            }
            // The user is global: SCIM changes its email or name only when every one of
            // its memberships is in this account.
            let before = current.user.clone();
            let mut after = before.clone();
            if email.key() != before.email.key() || email.as_str() != before.email.as_str() {
                after.email = email.clone();
            }
            if let Some(name) = spec.display() {
                after.name = crate::domain::account::validate_display_name(&name)?;
            }
            if after != before {
                ensure_only_account(user, &tx.user_accounts(user)?, caller.account).map_err(
                    |_| AppError::Forbidden {
                        policy: String::new(),
                        reason: "this user is also a member of another account: SCIM changes its email or name only when every membership is in this account".into(),
                    },
                )?;
                if after.email.key() != before.email.key() {
                    if tx.user_by_email(&after.email)?.is_some() {
                        return Err(DomainError::Conflict {
                            what: "this email",
                        }
                        .into());
                    }
                    tx.change_user_email(&before, &after)?;
                    super::identity::unprove(tx, &before, caller.actor(), now)?;
                } else {
                    tx.update_user(&after)?;
                }
                record_user_change_with(
                    tx,
                    user,
                    now,
                    caller.actor(),
                    if after.email != before.email {
                        Action::UserEmailChanged
                    } else {
                        Action::UserRenamed
                    },
                    Some(Snapshot::User(before)),
                    Some(Snapshot::User(after)),
                )?;
            }
            let state = if spec.active {
                MemberState::Active
            } else {
                MemberState::Disabled
            };
            let state_changes = current.membership.state != state;
            let attributes_change = current
                .profile
                .as_ref()
                .is_none_or(|p| !same_but_time(p, &profile));
            if attributes_change {
                tx.put_scim_profile(&profile)?;
                record(
                    tx,
                    &caller.account,
                    now,
                    caller.actor(),
                    Action::ScimUser(if current.profile.is_some() {
                        Change::Updated
                    } else {
                        Change::Created
                    }),
                    user.to_string(),
                    current.profile.clone().map(Snapshot::ScimUser),
                    Some(Snapshot::ScimUser(profile)),
                )?;
            } else if state_changes {
                // Only `active` changed: its own event follows; the member's
                // `lastModified` moves with it.
                tx.put_scim_profile(&profile)?;
            }
            if state_changes {
                self.change_member_in(
                    tx,
                    caller.actor(),
                    caller.account,
                    user,
                    MemberChange::State(state),
                    now,
                )?;
            }
            let membership = tx
                .membership(caller.account, user)?
                .ok_or_else(|| DomainError::NotFound(user.into()))?;
            scim_user(tx, membership)
        })
    }

    /// Remove a member (SCIM DELETE): its credentials in this account are revoked, its
    /// user and other memberships untouched; the last administrator stays.
    pub fn scim_delete_user(&self, caller: ScimCaller, user: UserId) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            ensure_scim(tx, caller.account)?;
            if tx.membership(caller.account, user)?.is_none() {
                return Err(DomainError::NotFound(user.into()).into());
            }
            if let Some(profile) = tx.scim_profile(caller.account, user)? {
                record(
                    tx,
                    &caller.account,
                    now,
                    caller.actor(),
                    Action::ScimUser(Change::Deleted),
                    user.to_string(),
                    Some(Snapshot::ScimUser(profile)),
                    None,
                )?;
            }
            self.change_member_in(
                tx,
                caller.actor(),
                caller.account,
                user,
                MemberChange::Remove,
                now,
            )
            .map(|_| ())
        })
    }

    /// Every SCIM group of the caller's account, oldest first.
    pub fn scim_groups(&self, caller: ScimCaller) -> Result<Vec<ScimGroup>, AppError> {
        let read = self.store.read()?;
        require_account(&read, caller.account)?;
        Ok(read.scim_groups(caller.account)?)
    }

    /// One SCIM group of the caller's account.
    pub fn scim_group(&self, caller: ScimCaller, id: ScimGroupId) -> Result<ScimGroup, AppError> {
        group_in(&self.store.read()?, caller.account, id)
    }

    /// Make a SCIM group of members of the account.
    pub fn scim_create_group(
        &self,
        caller: ScimCaller,
        spec: &ScimGroupSpec,
    ) -> Result<ScimGroup, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            ensure_scim(tx, caller.account)?;
            let group = ScimGroup {
                id: ScimGroupId::generate(now)?,
                account: caller.account,
                display_name: spec.display_name.clone(),
                external_id: spec.external_id.clone(),
                members: members_of(tx, caller.account, &spec.members)?,
                created_at: now,
                updated_at: now,
            };
            group.validate()?;
            tx.put_scim_group(&group)?;
            record(
                tx,
                &caller.account,
                now,
                caller.actor(),
                Action::ScimGroup(Change::Created),
                group.id.to_string(),
                None,
                Some(Snapshot::ScimGroup(group.clone())),
            )?;
            Ok(group)
        })
    }

    /// Replace a SCIM group's name and members (PUT, and PATCH once the surface applied
    /// it); `expected` sees the group as it is in this transaction (`If-Match`).
    pub fn scim_replace_group(
        &self,
        caller: ScimCaller,
        id: ScimGroupId,
        spec: &ScimGroupSpec,
        expected: impl FnOnce(&ScimGroup) -> bool,
    ) -> Result<ScimGroup, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            ensure_scim(tx, caller.account)?;
            let before = group_in(tx, caller.account, id)?;
            if !expected(&before) {
                return Err(AppError::Precondition(
                    "the group changed since that version (If-Match): read it again".into(),
                ));
            }
            let after = ScimGroup {
                display_name: spec.display_name.clone(),
                external_id: spec.external_id.clone(),
                members: members_of(tx, caller.account, &spec.members)?,
                updated_at: now,
                ..before.clone()
            };
            after.validate()?;
            let unchanged = ScimGroup {
                updated_at: before.updated_at,
                ..after.clone()
            } == before;
            if unchanged {
                return Ok(before);
            }
            tx.put_scim_group(&after)?;
            // What the group's mapping grants follows its members, in this transaction.
            if let Some(mapping) = tx.group_mapping(id)? {
                let left = not_in(&before.members, &after.members);
                group_mappings::withdraw(tx, caller.actor(), caller.account, id, &left, now)?;
                let joined = not_in(&after.members, &before.members);
                group_mappings::apply(tx, caller.actor(), &mapping, &joined, now)?;
            }
            record(
                tx,
                &caller.account,
                now,
                caller.actor(),
                Action::ScimGroup(Change::Updated),
                id.to_string(),
                Some(Snapshot::ScimGroup(before)),
                Some(Snapshot::ScimGroup(after.clone())),
            )?;
            Ok(after)
        })
    }

    /// Delete a SCIM group (its members stay members).
    pub fn scim_delete_group(&self, caller: ScimCaller, id: ScimGroupId) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            ensure_scim(tx, caller.account)?;
            let group = group_in(tx, caller.account, id)?;
            // Its mapping goes with it, and so does what it granted.
            if let Some(mapping) = tx.group_mapping(id)? {
                group_mappings::unmap(tx, caller.actor(), &mapping, &group.members, now)?;
            }
            tx.remove_scim_group(&group)?;
            record(
                tx,
                &caller.account,
                now,
                caller.actor(),
                Action::ScimGroup(Change::Deleted),
                id.to_string(),
                Some(Snapshot::ScimGroup(group)),
                None,
            )
        })
    }
}

/// A user SCIM manages (in any of its accounts) keeps the name and email its identity
/// provider gives: changing them through latchkey is refused (seed 001).
pub(super) fn ensure_not_managed(tx: &impl Reads, user: UserId) -> Result<(), AppError> {
    for account in tx.user_accounts(user)? {
        if tx.scim_profile(account, user)?.is_some() {
            return Err(AppError::Forbidden {
                policy: String::new(),
                reason: format!(
                    "{user} is managed by SCIM in {account}: its name and email change at its identity provider"
                ),
            });
        }
    }
    Ok(())
}

/// A SCIM token as events record it (never its hash).
fn snapshot(token: &ScimToken) -> Snapshot {
    Snapshot::ScimToken {
        id: token.id.to_string(),
        description: token.description.clone(),
    }
}

/// SCIM writes are taken only while the account's provisioning is `scim`.
fn ensure_scim(tx: &impl Reads, account: AccountId) -> Result<(), AppError> {
    if require_account(tx, account)?.settings.provisioning == Provisioning::Scim {
        Ok(())
    } else {
        Err(not_scim())
    }
}

/// The member of `account` whose `userName` is `user_name` (without case): SCIM's
/// through its index, else the email of a member SCIM has not written.
fn named(tx: &impl Reads, account: AccountId, user_name: &str) -> Result<Option<UserId>, AppError> {
    if let Some(user) = tx.scim_user_named(account, user_name)? {
        return Ok(Some(user));
    }
    let Ok(email) = Email::parse(user_name) else {
        return Ok(None);
    };
    let Some(user) = tx.user_by_email(&email)? else {
        return Ok(None);
    };
    let unwritten_member =
        tx.membership(account, user.id)?.is_some() && tx.scim_profile(account, user.id)?.is_none();
    Ok(unwritten_member.then_some(user.id))
}

/// A SCIM token of `account` (another account's is not found).
fn token_in(tx: &impl Reads, account: AccountId, id: ScimTokenId) -> Result<ScimToken, AppError> {
    super::in_account(tx.scim_token(id)?, |t| t.account, account, id)
}

/// `given` without repeats, each a member of `account` (else refused, naming it).
fn members_of(
    tx: &impl Reads,
    account: AccountId,
    given: &[UserId],
) -> Result<Vec<UserId>, AppError> {
    let mut members: Vec<UserId> = Vec::with_capacity(given.len());
    let mut seen = std::collections::HashSet::with_capacity(given.len());
    for user in given {
        if !seen.insert(*user) {
            continue;
        }
        if tx.membership(account, *user)?.is_none() {
            return Err(DomainError::invalid(
                "members",
                format!("{user} is no member of this account (a group holds members only)"),
            )
            .into());
        }
        members.push(*user);
    }
    Ok(members)
}

/// The users of `these` not among `those` (groups run to 10,000 members: a set, not a
/// scan per member).
fn not_in(these: &[UserId], those: &[UserId]) -> Vec<UserId> {
    let those: std::collections::HashSet<UserId> = those.iter().copied().collect();
    these
        .iter()
        .filter(|u| !those.contains(u))
        .copied()
        .collect()
}

/// Two profiles equal but for when they were written.
fn same_but_time(a: &ScimProfile, b: &ScimProfile) -> bool {
    ScimProfile {
        updated_at: b.updated_at,
        ..a.clone()
    } == *b
}

/// A member as SCIM sees it: its user and what SCIM keeps (two reads, nothing else).
fn scim_user(tx: &impl Reads, membership: Membership) -> Result<ScimUser, AppError> {
    let user: User = tx
        .user(membership.user)?
        .ok_or_else(|| DomainError::NotFound(membership.user.into()))?;
    let profile = tx.scim_profile(membership.account, membership.user)?;
    Ok(ScimUser {
        user,
        membership,
        profile,
    })
}
