//! Transactions as the rest of the crate sees them: typed reads shared by [`ReadTx`] and
//! [`WriteTx`] (the [`Reads`] trait), and the writes that keep every secondary index,
//! the audit chain and the credential index consistent.

use std::collections::BTreeSet;

use redb::{Key, ReadableTable, ReadableTableMetadata, TableDefinition, Value};

use crate::domain::DomainError;
use crate::domain::account::Account;
use crate::domain::bot::BotUser;
use crate::domain::credential::{
    Credential, CredentialKind, Owner, OwnerStanding, RevokeCause, RevokedCredential,
};
use crate::domain::destination::{DeliveryStatus, EventDestination};
use crate::domain::event::{Action, Actor, Event, Principal, Snapshot};
use crate::domain::federation::{ExternalIdentity, IdentityProvider};
use crate::domain::grant::{AssignmentSources, MemberGrants};
use crate::domain::id::{
    AccountId, BotId, EventDestinationId, EventId, IdentityProviderId, InvitationId, IpPolicyId,
    IpRestrictionId, IpRuleId, RoleAssignmentId, RoleId, ScimGroupId, ScimGroupMappingId,
    ScimTokenId, TenantId, UserId,
};
use crate::domain::invitation::Invitation;
use crate::domain::ip::{IpPolicy, IpPolicyRule, IpRestriction};
use crate::domain::scim::{ScimGroup, ScimGroupMapping, ScimProfile, ScimToken};
use crate::domain::session::{
    EmailProof, PasskeyRecord, RecentAttempts, Session, TotpRecord, UserLink,
};
use crate::domain::tenancy::{AddedPermission, CustomRole, RoleAssignment, Tenant};
use crate::domain::time::Timestamp;
use crate::domain::token::SecretHash;
use crate::domain::user::{Email, MemberState, Membership, User};
use crate::store::codec::{self, Record};
use crate::store::index::{IndexOp, LiveEntry};
use crate::store::tables::*;
use crate::store::{StoreError, audit};

mod sealed {
    use super::*;

    /// Opens a table for reading; implemented by both transaction kinds.
    pub trait Tables {
        fn table<K: Key + 'static, V: Value + 'static>(
            &self,
            def: TableDefinition<'static, K, V>,
        ) -> Result<impl ReadableTable<K, V> + '_, StoreError>;
    }
}
use sealed::Tables;

fn get_record<R: Record>(
    table: &impl ReadableTable<u128, &'static [u8]>,
    key: u128,
) -> Result<Option<R>, StoreError> {
    table
        .get(key)?
        .map(|v| codec::decode(v.value()).map_err(|e| e.at_key(key)))
        .transpose()
}

/// A WebAuthn credential id's key in `PASSKEY_CREDENTIALS`: its SHA-256 (ids run to
/// 1023 bytes).
pub(crate) fn passkey_credential_key(credential_id: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(credential_id).into()
}

/// The records of one account through its `(account, id)` index, oldest first.
fn account_records<R: Record, T: Tables + ?Sized>(
    tx: &T,
    index: TableDefinition<'static, (u128, u128), ()>,
    data: TableDefinition<'static, u128, &'static [u8]>,
    account: AccountId,
) -> Result<Vec<R>, StoreError> {
    let ids: Vec<u128> = {
        let table = tx.table(index)?;
        let rows = table.range((account.0, 0)..=(account.0, u128::MAX))?;
        rows.map(|row| Ok(row?.0.value().1))
            .collect::<Result<_, StoreError>>()?
    };
    let data = tx.table(data)?;
    ids.into_iter()
        .filter_map(|id| get_record(&data, id).transpose())
        .collect()
}

/// The byte that orders an account's credentials by kind in `ACCOUNT_CREDENTIALS`.
pub(crate) fn kind_key(kind: CredentialKind) -> u8 {
    match kind {
        CredentialKind::Authtoken => 0,
        CredentialKind::ApiKey => 1,
        CredentialKind::SshKey => 2,
    }
}

/// The key of an event's principal in `EVENTS_BY_PRINCIPAL` (0 for the system).
pub(crate) fn principal_key(principal: Principal) -> u128 {
    match principal {
        Principal::System => 0,
        Principal::User(user) => user.0,
        Principal::Bot(bot) => bot.0,
        Principal::ScimToken(token) => token.0,
    }
}

/// Write the secondary index entries of an event (at append, and when a migration
/// builds them).
pub(crate) fn index_event(txn: &redb::WriteTransaction, event: &Event) -> Result<(), StoreError> {
    let (account, seq) = (event.account.0, event.seq);
    txn.open_table(EVENT_IDS)?
        .insert(event.id.0, (account, seq))?;
    txn.open_table(EVENTS_BY_PRINCIPAL)?
        .insert((account, principal_key(event.actor.principal), seq), ())?;
    txn.open_table(EVENTS_BY_ACTION)?
        .insert((account, event.action.name(), seq), ())?;
    txn.open_table(EVENTS_BY_OBJECT)?
        .insert((account, event.target.as_str(), seq), ())?;
    txn.open_table(EVENTS_BY_TIME)?
        .insert((account, event.at.as_millis(), seq), ())?;
    Ok(())
}

/// Remove an event's secondary index entries (when it is pruned).
pub(crate) fn unindex_event(txn: &redb::WriteTransaction, event: &Event) -> Result<(), StoreError> {
    let (account, seq) = (event.account.0, event.seq);
    txn.open_table(EVENT_IDS)?.remove(event.id.0)?;
    txn.open_table(EVENTS_BY_PRINCIPAL)?.remove((
        account,
        principal_key(event.actor.principal),
        seq,
    ))?;
    txn.open_table(EVENTS_BY_ACTION)?
        .remove((account, event.action.name(), seq))?;
    txn.open_table(EVENTS_BY_OBJECT)?
        .remove((account, event.target.as_str(), seq))?;
    txn.open_table(EVENTS_BY_TIME)?
        .remove((account, event.at.as_millis(), seq))?;
    Ok(())
}

/// A page of an account's events, newest first: the filters, and where the page ends.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only events by this principal (`principal_key`).
    pub principal: Option<u128>,
    /// Only events of this action.
    pub action: Option<String>,
    /// Only events on this object id.
    pub object: Option<String>,
    /// Only events at or after this instant.
    pub since: Option<Timestamp>,
    /// Only events at or before this instant.
    pub until: Option<Timestamp>,
    /// Only events older than this one (the previous page's last).
    pub before: Option<EventId>,
    /// At most this many events.
    pub limit: usize,
}

impl EventQuery {
    fn admits(&self, event: &Event) -> bool {
        self.principal
            .is_none_or(|p| principal_key(event.actor.principal) == p)
            && self
                .action
                .as_deref()
                .is_none_or(|a| event.action.name() == a)
            && self.object.as_deref().is_none_or(|o| event.target == o)
            && self.since.is_none_or(|t| event.at >= t)
            && self.until.is_none_or(|t| event.at <= t)
    }
}

/// How many index keys are counted, per filter, to pick the narrowest index.
const NARROWEST_PROBE: usize = 64;

/// A filter of an event page that has an index.
#[derive(Debug, Clone, Copy)]
enum Filter<'q> {
    Principal(u128),
    Action(&'q str),
    Object(&'q str),
}

/// The event indexes a page may read, open in one transaction.
struct EventIndexes<P, A, O> {
    principal: P,
    action: A,
    object: O,
}

type SeqRange<'t> = Box<dyn DoubleEndedIterator<Item = Result<u64, StoreError>> + 't>;

impl<P, A, O> EventIndexes<P, A, O>
where
    P: ReadableTable<(u128, u128, u64), ()>,
    A: ReadableTable<(u128, &'static str, u64), ()>,
    O: ReadableTable<(u128, &'static str, u64), ()>,
{
    /// The sequence numbers in `seqs` of an account's events that match `filter`, oldest
    /// first (reversible).
    fn seqs<'t>(
        &'t self,
        filter: Filter<'_>,
        account: u128,
        seqs: std::ops::Range<u64>,
    ) -> Result<SeqRange<'t>, StoreError> {
        let (lo, hi) = (seqs.start, seqs.end);
        Ok(match filter {
            Filter::Principal(p) => Box::new(
                self.principal
                    .range((account, p, lo)..(account, p, hi))?
                    .map(|row| Ok(row?.0.value().2)),
            ),
            Filter::Action(name) => Box::new(
                self.action
                    .range((account, name, lo)..(account, name, hi))?
                    .map(|row| Ok(row?.0.value().2)),
            ),
            Filter::Object(id) => Box::new(
                self.object
                    .range((account, id, lo)..(account, id, hi))?
                    .map(|row| Ok(row?.0.value().2)),
            ),
        })
    }
}

/// Where a page of a list ends: only objects created before `before` (an id value),
/// newest first, at most `limit` of them.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    /// The id value the page starts before; `None` for the newest.
    pub before: Option<u128>,
    /// The most objects in the page.
    pub limit: usize,
}

/// One page of a list, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The objects.
    pub items: Vec<T>,
    /// Whether more objects come after the last one (whose id starts the next page).
    pub more: bool,
}

impl<T> Page<T> {
    /// Cut `items` (the page's candidates, newest first, up to one more than the page)
    /// at `limit`.
    fn cut(mut items: Vec<T>, limit: usize) -> Page<T> {
        let more = items.len() > limit;
        items.truncate(limit);
        Page { items, more }
    }

    /// The same page with each item changed.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            more: self.more,
        }
    }
}

/// A page of one account's records through its `(account, id)` index, newest first,
/// keeping only those `keep` admits: reads the index backwards from `before` and stops
/// once the page is full, so without a filter it reads exactly the page.
fn account_page<R: Record, T: Tables + ?Sized>(
    tx: &T,
    index: TableDefinition<'static, (u128, u128), ()>,
    data: TableDefinition<'static, u128, &'static [u8]>,
    account: AccountId,
    page: PageRequest,
    keep: impl Fn(&R) -> bool,
) -> Result<Page<R>, StoreError> {
    let index = tx.table(index)?;
    let data = tx.table(data)?;
    let end = page.before.unwrap_or(u128::MAX);
    let mut items = Vec::new();
    for row in index.range((account.0, 0)..(account.0, end))?.rev() {
        let id = row?.0.value().1;
        let record: R = get_record(&data, id)?.ok_or_else(|| {
            StoreError::corrupt(
                R::NAME,
                format!("an account index names the missing {id:#034x}"),
            )
        })?;
        if keep(&record) {
            items.push(record);
            if items.len() > page.limit {
                break;
            }
        }
    }
    Ok(Page::cut(items, page.limit))
}

/// Typed reads, the same inside a read or a write transaction.
pub trait Reads: Tables {
    /// An account by id.
    fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        get_record(&self.table(ACCOUNTS)?, id.0)
    }

    /// How many accounts exist.
    fn account_count(&self) -> Result<u64, StoreError> {
        Ok(self.table(ACCOUNTS)?.len()?)
    }

    /// An account by name (case-insensitive).
    fn account_by_name(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let key = Account::name_key(name);
        let id = self
            .table(ACCOUNT_NAMES)?
            .get(key.as_str())?
            .map(|v| v.value());
        id.map_or(Ok(None), |id| self.account(AccountId(id)))
    }

    /// A user by id.
    fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        get_record(&self.table(USERS)?, id.0)
    }

    /// A user by email (case-insensitive).
    fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let key = email.key();
        let id = self
            .table(USER_EMAILS)?
            .get(key.as_str())?
            .map(|v| v.value());
        id.map_or(Ok(None), |id| self.user(UserId(id)))
    }

    /// A user's membership in an account.
    fn membership(
        &self,
        account: AccountId,
        user: UserId,
    ) -> Result<Option<Membership>, StoreError> {
        self.table(MEMBERS)?
            .get((account.0, user.0))?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    /// Every membership of an account, oldest user first.
    fn members(&self, account: AccountId) -> Result<Vec<Membership>, StoreError> {
        let table = self.table(MEMBERS)?;
        let rows = table.range((account.0, 0)..=(account.0, u128::MAX))?;
        rows.map(|row| codec::decode(row?.1.value())).collect()
    }

    /// The accounts a user is a member of.
    fn user_accounts(&self, user: UserId) -> Result<Vec<AccountId>, StoreError> {
        let table = self.table(USER_ACCOUNTS)?;
        let rows = table.range((user.0, 0)..=(user.0, u128::MAX))?;
        rows.map(|row| Ok(AccountId(row?.0.value().1))).collect()
    }

    /// A bot user by id.
    fn bot(&self, id: BotId) -> Result<Option<BotUser>, StoreError> {
        get_record(&self.table(BOTS)?, id.0)
    }

    /// Every bot user of an account, oldest first.
    fn bots(&self, account: AccountId) -> Result<Vec<BotUser>, StoreError> {
        let ids: Vec<u128> = {
            let table = self.table(ACCOUNT_BOTS)?;
            let rows = table.range((account.0, 0)..=(account.0, u128::MAX))?;
            rows.map(|row| Ok(row?.0.value().1))
                .collect::<Result<_, StoreError>>()?
        };
        let bots = self.table(BOTS)?;
        ids.into_iter()
            .filter_map(|id| get_record(&bots, id).transpose())
            .collect()
    }

    /// An IP policy by id.
    fn ip_policy(&self, id: IpPolicyId) -> Result<Option<IpPolicy>, StoreError> {
        get_record(&self.table(IP_POLICIES)?, id.0)
    }

    /// Every IP policy of an account, oldest first.
    fn ip_policies(&self, account: AccountId) -> Result<Vec<IpPolicy>, StoreError> {
        account_records(self, ACCOUNT_IP_POLICIES, IP_POLICIES, account)
    }

    /// An IP policy rule by id.
    fn ip_rule(&self, id: IpRuleId) -> Result<Option<IpPolicyRule>, StoreError> {
        get_record(&self.table(IP_RULES)?, id.0)
    }

    /// Every IP policy rule of an account, oldest first.
    fn ip_rules(&self, account: AccountId) -> Result<Vec<IpPolicyRule>, StoreError> {
        account_records(self, ACCOUNT_IP_RULES, IP_RULES, account)
    }

    /// An IP restriction by id.
    fn ip_restriction(&self, id: IpRestrictionId) -> Result<Option<IpRestriction>, StoreError> {
        get_record(&self.table(IP_RESTRICTIONS)?, id.0)
    }

    /// A user's password (its PHC string), if it has set one.
    fn password(&self, user: UserId) -> Result<Option<String>, StoreError> {
        Ok(self
            .table(PASSWORDS)?
            .get(user.0)?
            .map(|v| v.value().to_owned()))
    }

    /// The session whose secret has this keyed hash.
    fn session(&self, key: &[u8; 32]) -> Result<Option<Session>, StoreError> {
        self.table(SESSIONS)?
            .get(key)?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    /// Every session of a user: (session id, key).
    fn user_sessions(&self, user: UserId) -> Result<Vec<(u128, [u8; 32])>, StoreError> {
        let table = self.table(USER_SESSIONS)?;
        let rows = table.range((user.0, 0)..=(user.0, u128::MAX))?;
        rows.map(|row| {
            let (k, v) = row?;
            Ok((k.value().1, *v.value()))
        })
        .collect()
    }

    /// The one-time link whose secret has this keyed hash.
    fn user_link(&self, key: &[u8; 32]) -> Result<Option<UserLink>, StoreError> {
        self.table(PASSWORD_RESETS)?
            .get(key)?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    /// The address a user has proven it controls, if any.
    fn email_proof(&self, user: UserId) -> Result<Option<EmailProof>, StoreError> {
        get_record(&self.table(EMAIL_PROOFS)?, user.0)
    }

    /// An invitation by id.
    fn invitation(&self, id: InvitationId) -> Result<Option<Invitation>, StoreError> {
        get_record(&self.table(INVITATIONS)?, id.0)
    }

    /// A user's TOTP enrollment.
    fn totp(&self, user: UserId) -> Result<Option<TotpRecord>, StoreError> {
        get_record(&self.table(TOTP)?, user.0)
    }

    /// A user's passkeys, oldest first.
    fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyRecord>, StoreError> {
        let ids: Vec<u128> = {
            let table = self.table(USER_PASSKEYS)?;
            let rows = table.range((user.0, 0)..=(user.0, u128::MAX))?;
            rows.map(|row| Ok(row?.0.value().1))
                .collect::<Result<_, StoreError>>()?
        };
        let passkeys = self.table(PASSKEYS)?;
        ids.into_iter()
            .filter_map(|id| get_record(&passkeys, id).transpose())
            .collect()
    }

    /// Whether a user holds any passkey.
    fn has_passkey(&self, user: UserId) -> Result<bool, StoreError> {
        let table = self.table(USER_PASSKEYS)?;
        let mut rows = table.range((user.0, 0)..=(user.0, u128::MAX))?;
        Ok(rows.next().transpose()?.is_some())
    }

    /// The passkey with this WebAuthn credential id, whoever holds it.
    fn passkey_by_credential(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<PasskeyRecord>, StoreError> {
        let id = self
            .table(PASSKEY_CREDENTIALS)?
            .get(&passkey_credential_key(credential_id))?
            .map(|v| v.value());
        id.map_or(Ok(None), |id| get_record(&self.table(PASSKEYS)?, id))
    }

    /// A tenant by id.
    fn tenant(&self, id: TenantId) -> Result<Option<Tenant>, StoreError> {
        get_record(&self.table(TENANTS)?, id.0)
    }

    /// Every tenant of an account, oldest first.
    fn tenants(&self, account: AccountId) -> Result<Vec<Tenant>, StoreError> {
        account_records(self, ACCOUNT_TENANTS, TENANTS, account)
    }

    /// A custom role by id.
    fn custom_role(&self, id: RoleId) -> Result<Option<CustomRole>, StoreError> {
        get_record(&self.table(ROLES)?, id.0)
    }

    /// Every custom role of an account, oldest first.
    fn custom_roles(&self, account: AccountId) -> Result<Vec<CustomRole>, StoreError> {
        account_records(self, ACCOUNT_ROLES, ROLES, account)
    }

    /// A role assignment by id.
    fn role_assignment(&self, id: RoleAssignmentId) -> Result<Option<RoleAssignment>, StoreError> {
        get_record(&self.table(ROLE_ASSIGNMENTS)?, id.0)
    }

    /// Every role assignment of an account, oldest first.
    fn role_assignments(&self, account: AccountId) -> Result<Vec<RoleAssignment>, StoreError> {
        account_records(self, ACCOUNT_ROLE_ASSIGNMENTS, ROLE_ASSIGNMENTS, account)
    }

    /// The permissions added to an account's catalog, in the order they were added.
    fn added_permissions(&self, account: AccountId) -> Result<Vec<AddedPermission>, StoreError> {
        account_records(self, ACCOUNT_PERMISSIONS, PERMISSIONS, account)
    }

    /// Every IP restriction of an account, oldest first.
    fn ip_restrictions(&self, account: AccountId) -> Result<Vec<IpRestriction>, StoreError> {
        account_records(self, ACCOUNT_IP_RESTRICTIONS, IP_RESTRICTIONS, account)
    }

    /// A live credential by id value.
    fn credential(&self, raw: u128) -> Result<Option<Credential>, StoreError> {
        get_record(&self.table(CREDENTIALS)?, raw)
    }

    /// The live credentials of `owner` in `account`, oldest first.
    fn owner_credentials(
        &self,
        account: AccountId,
        owner: Owner,
    ) -> Result<Vec<Credential>, StoreError> {
        let (a, o) = (account.0, owner.raw());
        let ids: Vec<u128> = {
            let table = self.table(OWNER_CREDENTIALS)?;
            let rows = table.range((a, o, 0)..=(a, o, u128::MAX))?;
            rows.map(|row| Ok(row?.0.value().2))
                .collect::<Result<_, StoreError>>()?
        };
        let credentials = self.table(CREDENTIALS)?;
        ids.into_iter()
            .map(|raw| {
                get_record(&credentials, raw)?.ok_or_else(|| {
                    StoreError::corrupt("credential", "owner index names a missing credential")
                })
            })
            .collect()
    }

    /// A page of an account's live credentials of one kind, newest first, from the
    /// `(account, kind, credential)` index: only the page's records are read, at any size.
    fn credentials_page(
        &self,
        account: AccountId,
        kind: CredentialKind,
        page: PageRequest,
    ) -> Result<Page<Credential>, StoreError> {
        let k = kind_key(kind);
        let end = page.before.unwrap_or(u128::MAX);
        let ids: Vec<u128> = {
            let index = self.table(ACCOUNT_CREDENTIALS)?;
            let rows = index.range((account.0, k, 0)..(account.0, k, end))?.rev();
            rows.take(page.limit.saturating_add(1))
                .map(|row| Ok(row?.0.value().2))
                .collect::<Result<_, StoreError>>()?
        };
        let credentials = self.table(CREDENTIALS)?;
        let items = ids
            .into_iter()
            .map(|raw| {
                get_record(&credentials, raw)?.ok_or_else(|| {
                    StoreError::corrupt(
                        "credential",
                        "the account index names a missing credential",
                    )
                })
            })
            .collect::<Result<Vec<Credential>, StoreError>>()?;
        Ok(Page::cut(items, page.limit))
    }

    /// A page of an account's bot users, newest first.
    fn bots_page(
        &self,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<BotUser>, StoreError> {
        account_page(self, ACCOUNT_BOTS, BOTS, account, page, |_| true)
    }

    /// A page of an account's IP policies, newest first.
    fn ip_policies_page(
        &self,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<IpPolicy>, StoreError> {
        account_page(
            self,
            ACCOUNT_IP_POLICIES,
            IP_POLICIES,
            account,
            page,
            |_| true,
        )
    }

    /// A page of an account's IP policy rules, newest first.
    fn ip_rules_page(
        &self,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<IpPolicyRule>, StoreError> {
        account_page(self, ACCOUNT_IP_RULES, IP_RULES, account, page, |_| true)
    }

    /// A page of an account's IP restrictions, newest first.
    fn ip_restrictions_page(
        &self,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<IpRestriction>, StoreError> {
        account_page(
            self,
            ACCOUNT_IP_RESTRICTIONS,
            IP_RESTRICTIONS,
            account,
            page,
            |_| true,
        )
    }

    /// A page of an account's tenants, newest first.
    fn tenants_page(
        &self,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<Tenant>, StoreError> {
        account_page(self, ACCOUNT_TENANTS, TENANTS, account, page, |_| true)
    }

    /// Every invitation of an account, oldest first (pending, accepted and the rest).
    fn invitations(&self, account: AccountId) -> Result<Vec<Invitation>, StoreError> {
        account_records(self, ACCOUNT_INVITATIONS, INVITATIONS, account)
    }

    /// A page of an account's invitations that `keep` admits, newest first.
    fn invitations_page(
        &self,
        account: AccountId,
        page: PageRequest,
        keep: impl Fn(&Invitation) -> bool,
    ) -> Result<Page<Invitation>, StoreError> {
        account_page(self, ACCOUNT_INVITATIONS, INVITATIONS, account, page, keep)
    }

    /// A page of an account's role assignments that `keep` admits, newest first; with
    /// a principal, only that principal's, read through the by-principal index.
    fn role_assignments_page(
        &self,
        account: AccountId,
        principal: Option<Owner>,
        page: PageRequest,
        keep: impl Fn(&RoleAssignment) -> bool,
    ) -> Result<Page<RoleAssignment>, StoreError> {
        let Some(principal) = principal else {
            return account_page(
                self,
                ACCOUNT_ROLE_ASSIGNMENTS,
                ROLE_ASSIGNMENTS,
                account,
                page,
                keep,
            );
        };
        let (a, p) = (account.0, principal.raw());
        let index = self.table(PRINCIPAL_ROLE_ASSIGNMENTS)?;
        let data = self.table(ROLE_ASSIGNMENTS)?;
        let end = page.before.unwrap_or(u128::MAX);
        let mut items = Vec::new();
        for row in index.range((a, p, 0)..(a, p, end))?.rev() {
            let id = row?.0.value().2;
            let assignment: RoleAssignment = get_record(&data, id)?.ok_or_else(|| {
                StoreError::corrupt("role assignment", "the principal index names a missing one")
            })?;
            if keep(&assignment) {
                items.push(assignment);
                if items.len() > page.limit {
                    break;
                }
            }
        }
        Ok(Page::cut(items, page.limit))
    }

    /// Every role assignment of one principal in an account, oldest first, through the
    /// by-principal index: what deciding for that principal needs, at any account size.
    fn principal_assignments(
        &self,
        account: AccountId,
        principal: Owner,
    ) -> Result<Vec<RoleAssignment>, StoreError> {
        let (a, p) = (account.0, principal.raw());
        let index = self.table(PRINCIPAL_ROLE_ASSIGNMENTS)?;
        let data = self.table(ROLE_ASSIGNMENTS)?;
        index
            .range((a, p, 0)..=(a, p, u128::MAX))?
            .map(|row| {
                let id = row?.0.value().2;
                get_record(&data, id)?.ok_or_else(|| {
                    StoreError::corrupt(
                        "role assignment",
                        "the principal index names a missing one",
                    )
                })
            })
            .collect()
    }

    /// A page of an account's memberships, newest user first.
    fn members_page(
        &self,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<Membership>, StoreError> {
        let table = self.table(MEMBERS)?;
        let end = page.before.unwrap_or(u128::MAX);
        let items = table
            .range((account.0, 0)..(account.0, end))?
            .rev()
            .take(page.limit.saturating_add(1))
            .map(|row| {
                let (key, value) = row?;
                codec::decode(value.value()).map_err(|e| e.at_key(key.value().1))
            })
            .collect::<Result<Vec<Membership>, StoreError>>()?;
        Ok(Page::cut(items, page.limit))
    }

    /// The tombstone of a revoked credential.
    fn revoked(&self, raw: u128) -> Result<Option<RevokedCredential>, StoreError> {
        get_record(&self.table(REVOKED)?, raw)
    }

    /// The last flushed use of a credential.
    fn flushed_last_used(&self, raw: u128) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .table(LAST_USED)?
            .get(raw)?
            .map(|v| Timestamp::from_millis(v.value())))
    }

    /// Whether an SSH key with this fingerprint is registered anywhere.
    fn ssh_fingerprint_taken(&self, fingerprint: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.table(SSH_FINGERPRINTS)?.get(fingerprint)?.is_some())
    }

    /// May `owner` act in `account`? `None` when it is not a member or bot there.
    fn standing(
        &self,
        account: AccountId,
        owner: Owner,
    ) -> Result<Option<OwnerStanding>, StoreError> {
        Ok(match owner {
            Owner::User(user) => self.membership(account, user)?.map(|m| match m.state {
                MemberState::Active => OwnerStanding::Active,
                MemberState::Disabled => OwnerStanding::Disabled,
            }),
            Owner::Bot(bot) => self.bot(bot)?.filter(|b| b.account == account).map(|b| {
                if b.active {
                    OwnerStanding::Active
                } else {
                    OwnerStanding::Inactive
                }
            }),
        })
    }

    /// Every rate limiter's recent attempts, by key.
    fn recent_attempts(&self) -> Result<Vec<(String, RecentAttempts)>, StoreError> {
        let table = self.table(RECENT_ATTEMPTS)?;
        let rows = table.iter()?;
        rows.map(|row| {
            let (key, value) = row?;
            Ok((key.value().to_owned(), codec::decode(value.value())?))
        })
        .collect()
    }

    /// One event of an account, by id (through `EVENT_IDS`).
    fn event(&self, account: AccountId, id: EventId) -> Result<Option<Event>, StoreError> {
        let Some(at) = self.table(EVENT_IDS)?.get(id.0)?.map(|v| v.value()) else {
            return Ok(None);
        };
        if at.0 != account.0 {
            return Ok(None);
        }
        self.table(EVENTS)?
            .get(at)?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    /// A page of an account's events, newest first, and the id to pass as `before` for
    /// the next page. It reads the narrowest index the filters allow (the one with the
    /// fewest entries in the range, counted up to a small bound) and only as many
    /// events as the page needs, so a page costs the same at a thousand events and at a
    /// million. A `before` that is not an event of the account is a `NotFound`. Time
    /// ranges are located through the time index and assume a clock that does not step
    /// backwards.
    fn events_page(
        &self,
        account: AccountId,
        query: &EventQuery,
    ) -> Result<Page<Event>, StoreError> {
        let a = account.0;
        let mut hi = u64::MAX;
        if let Some(before) = query.before {
            match self.table(EVENT_IDS)?.get(before.0)?.map(|v| v.value()) {
                Some((owner, seq)) if owner == a => hi = seq,
                _ => return Err(DomainError::NotFound(before.into()).into()),
            }
        }
        let mut lo = 0;
        {
            let time = self.table(EVENTS_BY_TIME)?;
            if let Some(until) = query.until {
                let last = time
                    .range((a, i64::MIN, 0)..=(a, until.as_millis(), u64::MAX))?
                    .next_back()
                    .transpose()?;
                match last {
                    Some((key, _)) => hi = hi.min(key.value().2.saturating_add(1)),
                    None => return Ok(Page::cut(Vec::new(), 0)),
                }
            }
            if let Some(since) = query.since {
                let first = time
                    .range((a, since.as_millis(), 0)..=(a, i64::MAX, u64::MAX))?
                    .next()
                    .transpose()?;
                match first {
                    Some((key, _)) => lo = key.value().2,
                    None => return Ok(Page::cut(Vec::new(), 0)),
                }
            }
        }
        if lo >= hi {
            return Ok(Page::cut(Vec::new(), 0));
        }
        // The candidate sequence numbers, newest first, from the narrowest index: each
        // filter's index is counted up to a bound, and the fewest entries win.
        let indexes = EventIndexes {
            principal: self.table(EVENTS_BY_PRINCIPAL)?,
            action: self.table(EVENTS_BY_ACTION)?,
            object: self.table(EVENTS_BY_OBJECT)?,
        };
        let events = self.table(EVENTS)?;
        let filters: Vec<Filter<'_>> = [
            query.principal.map(Filter::Principal),
            query.action.as_deref().map(Filter::Action),
            query.object.as_deref().map(Filter::Object),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut narrowest = None;
        for filter in filters {
            let count = indexes
                .seqs(filter, a, lo..hi)?
                .take(NARROWEST_PROBE)
                .count();
            if narrowest.is_none_or(|(_, fewest)| count < fewest) {
                narrowest = Some((filter, count));
            }
        }
        let seqs: Box<dyn Iterator<Item = Result<u64, StoreError>> + '_> = match narrowest {
            Some((filter, _)) => Box::new(indexes.seqs(filter, a, lo..hi)?.rev()),
            None => Box::new(
                events
                    .range((a, lo)..(a, hi))?
                    .rev()
                    .map(|row| Ok(row?.0.value().1)),
            ),
        };
        let mut page = Vec::new();
        for seq in seqs {
            let seq = seq?;
            let Some(bytes) = events.get((a, seq))? else {
                return Err(StoreError::corrupt(
                    "event",
                    format!("an event index names the missing event #{seq}"),
                ));
            };
            let event: Event = codec::decode(bytes.value())?;
            if query.admits(&event) {
                page.push(event);
                if page.len() > query.limit {
                    break;
                }
            }
        }
        Ok(Page::cut(page, query.limit))
    }

    /// The audit events of an account, oldest first.
    fn events(&self, account: AccountId) -> Result<Vec<Event>, StoreError> {
        let table = self.table(EVENTS)?;
        let rows = table.range((account.0, 0)..=(account.0, u64::MAX))?;
        rows.map(|row| codec::decode(row?.1.value())).collect()
    }

    /// Up to `limit` events of an account from chain position `from` on, in order (the
    /// first may come later than `from` when older events were pruned).
    fn events_from(
        &self,
        account: AccountId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let table = self.table(EVENTS)?;
        let rows = table.range((account.0, from)..=(account.0, u64::MAX))?;
        rows.take(limit)
            .map(|row| {
                let (key, value) = row?;
                codec::decode(value.value()).map_err(|e| e.at_key(u128::from(key.value().1)))
            })
            .collect()
    }

    /// The chain position the account's next event will take.
    fn next_event_seq(&self, account: AccountId) -> Result<u64, StoreError> {
        let head: Option<audit::AuditHead> = get_record(&self.table(AUDIT_HEADS)?, account.0)?;
        Ok(head.map_or(0, |h| h.next_seq))
    }

    /// An event destination by id.
    fn event_destination(
        &self,
        id: EventDestinationId,
    ) -> Result<Option<EventDestination>, StoreError> {
        get_record(&self.table(DESTINATIONS)?, id.0)
    }

    /// A page of an account's event destinations, newest first.
    fn event_destinations_page(
        &self,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<EventDestination>, StoreError> {
        account_page(
            self,
            ACCOUNT_DESTINATIONS,
            DESTINATIONS,
            account,
            page,
            |_| true,
        )
    }

    /// Every event destination of every account (the delivery loop's round).
    fn all_event_destinations(&self) -> Result<Vec<EventDestination>, StoreError> {
        let table = self.table(DESTINATIONS)?;
        let rows = table.iter()?;
        rows.map(|row| {
            let (key, value) = row?;
            codec::decode(value.value()).map_err(|e| e.at_key(key.value()))
        })
        .collect()
    }

    /// A destination's cursor and last attempt.
    fn delivery_status(&self, id: EventDestinationId) -> Result<DeliveryStatus, StoreError> {
        Ok(get_record(&self.table(DELIVERY_STATUS)?, id.0)?.unwrap_or_default())
    }

    /// A destination's sealed signing secret.
    fn destination_secret(&self, id: EventDestinationId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .table(DESTINATION_SECRETS)?
            .get(id.0)?
            .map(|v| v.value().to_vec()))
    }

    /// An identity provider by id.
    fn identity_provider(
        &self,
        id: IdentityProviderId,
    ) -> Result<Option<IdentityProvider>, StoreError> {
        get_record(&self.table(IDENTITY_PROVIDERS)?, id.0)
    }

    /// Every identity provider of an account, oldest first (an account has a few).
    fn identity_providers(&self, account: AccountId) -> Result<Vec<IdentityProvider>, StoreError> {
        account_records(
            self,
            ACCOUNT_IDENTITY_PROVIDERS,
            IDENTITY_PROVIDERS,
            account,
        )
    }

    /// Every identity provider of every account (for discovery by email domain).
    fn all_identity_providers(&self) -> Result<Vec<IdentityProvider>, StoreError> {
        let table = self.table(IDENTITY_PROVIDERS)?;
        let rows = table.iter()?;
        rows.map(|row| {
            let (key, value) = row?;
            codec::decode(value.value()).map_err(|e| e.at_key(key.value()))
        })
        .collect()
    }

    /// An identity provider's sealed client secret.
    fn identity_provider_secret(
        &self,
        id: IdentityProviderId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .table(IDENTITY_PROVIDER_SECRETS)?
            .get(id.0)?
            .map(|v| v.value().to_vec()))
    }

    /// A SCIM token by id.
    fn scim_token(&self, id: ScimTokenId) -> Result<Option<ScimToken>, StoreError> {
        get_record(&self.table(SCIM_TOKENS)?, id.0)
    }

    /// Every SCIM token of an account, oldest first (an account has a few).
    fn scim_tokens(&self, account: AccountId) -> Result<Vec<ScimToken>, StoreError> {
        account_records(self, ACCOUNT_SCIM_TOKENS, SCIM_TOKENS, account)
    }

    /// What SCIM keeps about a member, if anything.
    fn scim_profile(
        &self,
        account: AccountId,
        user: UserId,
    ) -> Result<Option<ScimProfile>, StoreError> {
        self.table(SCIM_PROFILES)?
            .get((account.0, user.0))?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    /// A SCIM group by id.
    fn scim_group(&self, id: ScimGroupId) -> Result<Option<ScimGroup>, StoreError> {
        get_record(&self.table(SCIM_GROUPS)?, id.0)
    }

    /// Every SCIM group of an account, oldest first.
    fn scim_groups(&self, account: AccountId) -> Result<Vec<ScimGroup>, StoreError> {
        account_records(self, ACCOUNT_SCIM_GROUPS, SCIM_GROUPS, account)
    }

    /// The SCIM groups a member of `account` is in.
    fn user_scim_groups(
        &self,
        account: AccountId,
        user: UserId,
    ) -> Result<Vec<ScimGroupId>, StoreError> {
        let table = self.table(USER_SCIM_GROUPS)?;
        let rows = table.range((account.0, user.0, 0)..=(account.0, user.0, u128::MAX))?;
        rows.map(|row| Ok(ScimGroupId(row?.0.value().2))).collect()
    }

    /// A SCIM group mapping by id.
    fn scim_group_mapping(
        &self,
        id: ScimGroupMappingId,
    ) -> Result<Option<ScimGroupMapping>, StoreError> {
        get_record(&self.table(SCIM_GROUP_MAPPINGS)?, id.0)
    }

    /// Every SCIM group mapping of an account, oldest first.
    fn scim_group_mappings(&self, account: AccountId) -> Result<Vec<ScimGroupMapping>, StoreError> {
        account_records(
            self,
            ACCOUNT_SCIM_GROUP_MAPPINGS,
            SCIM_GROUP_MAPPINGS,
            account,
        )
    }

    /// The mapping of a SCIM group, if it has one.
    fn group_mapping(&self, group: ScimGroupId) -> Result<Option<ScimGroupMapping>, StoreError> {
        let Some(id) = self
            .table(SCIM_GROUP_MAPPED)?
            .get(group.0)?
            .map(|v| v.value())
        else {
            return Ok(None);
        };
        let found = self.scim_group_mapping(ScimGroupMappingId(id))?;
        found.map(Some).ok_or_else(|| {
            StoreError::corrupt("SCIM group mapping", "the group index names a missing one")
        })
    }

    /// A member's roles by source, when any role is granted by a source other than the
    /// member itself.
    fn member_grants(
        &self,
        account: AccountId,
        user: UserId,
    ) -> Result<Option<MemberGrants>, StoreError> {
        self.table(MEMBER_GRANTS)?
            .get((account.0, user.0))?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    /// The sources of a role assignment a SCIM group or an identity provider granted.
    fn assignment_sources(
        &self,
        id: RoleAssignmentId,
    ) -> Result<Option<AssignmentSources>, StoreError> {
        get_record(&self.table(ASSIGNMENT_SOURCES)?, id.0)
    }

    /// The member whose SCIM `userName` is `user_name` (without case), if any.
    fn scim_user_named(
        &self,
        account: AccountId,
        user_name: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let key = crate::domain::scim::user_name_key(user_name);
        Ok(self
            .table(SCIM_USER_NAMES)?
            .get((account.0, key.as_str()))?
            .map(|v| UserId(v.value())))
    }

    /// The external identity of `provider`'s `subject`, if linked.
    fn external_identity(
        &self,
        provider: IdentityProviderId,
        subject: &str,
    ) -> Result<Option<ExternalIdentity>, StoreError> {
        let id = self
            .table(EXTERNAL_SUBJECTS)?
            .get((provider.0, subject))?
            .map(|v| v.value());
        id.map_or(Ok(None), |id| {
            get_record(&self.table(EXTERNAL_IDENTITIES)?, id)
        })
    }

    /// A user's external identities, oldest first.
    fn user_external_identities(&self, user: UserId) -> Result<Vec<ExternalIdentity>, StoreError> {
        let ids: Vec<u128> = {
            let table = self.table(USER_EXTERNAL_IDENTITIES)?;
            let rows = table.range((user.0, 0)..=(user.0, u128::MAX))?;
            rows.map(|row| Ok(row?.0.value().1))
                .collect::<Result<_, StoreError>>()?
        };
        let identities = self.table(EXTERNAL_IDENTITIES)?;
        ids.into_iter()
            .filter_map(|id| get_record(&identities, id).transpose())
            .collect()
    }
}

/// A read-only snapshot of the database.
pub struct ReadTx {
    txn: redb::ReadTransaction,
}

impl std::fmt::Debug for ReadTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadTx")
    }
}

impl ReadTx {
    pub(crate) fn begin(db: &redb::Database) -> Result<ReadTx, StoreError> {
        use redb::ReadableDatabase;
        Ok(ReadTx {
            txn: db.begin_read()?,
        })
    }
}

impl Tables for ReadTx {
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, StoreError> {
        Ok(self.txn.open_table(def)?)
    }
}

impl Reads for ReadTx {}

/// Keys of the metadata table.
pub(crate) mod meta {
    /// The schema the file is at.
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// A fingerprint of the server key the file was made with (version 1); a later
    /// version `n` is recorded under this name with `_v<n>` after it.
    pub const KEY_FINGERPRINT: &str = "server_key_fingerprint";

    /// The name a key version's fingerprint is recorded under.
    pub fn key_fingerprint(version: u32) -> String {
        if version == 1 {
            KEY_FINGERPRINT.to_owned()
        } else {
            format!("{KEY_FINGERPRINT}_v{version}")
        }
    }
    /// Write transactions committed to the file, ever: after a failed commit, whether it
    /// reached the file anyway.
    pub const COMMITS: &str = "commits";
    /// When the store last proved it can write while recovering (ms).
    pub const HEARTBEAT: &str = "heartbeat";
}

impl ReadTx {
    pub(crate) fn from_txn(txn: redb::ReadTransaction) -> ReadTx {
        ReadTx { txn }
    }

    /// The redb transaction, for the store's own modules.
    pub(crate) fn raw(&self) -> &redb::ReadTransaction {
        &self.txn
    }

    /// A value of the metadata table.
    pub(crate) fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.txn.open_table(META)?.get(key)?.map(|v| v.value()))
    }

    /// The server key fingerprints the file records, by key version.
    pub(crate) fn key_fingerprints(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        let table = self.txn.open_table(META)?;
        let mut found = Vec::new();
        for row in table.range(meta::KEY_FINGERPRINT..)? {
            let (key, value) = row?;
            let Some(rest) = key.value().strip_prefix(meta::KEY_FINGERPRINT) else {
                break;
            };
            let version = match rest.strip_prefix("_v") {
                None if rest.is_empty() => Some(1),
                Some(n) => n.parse().ok(),
                None => None,
            };
            if let Some(version) = version {
                found.push((version, value.value()));
            }
        }
        Ok(found)
    }
}

/// One write transaction. Every method keeps the secondary indexes of what it writes;
/// credentials and owners it touches are re-derived into the credential index at the end.
pub struct WriteTx {
    txn: redb::WriteTransaction,
    touched_credentials: BTreeSet<u128>,
    touched_owners: BTreeSet<(u128, Owner)>,
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteTx")
    }
}

impl Tables for WriteTx {
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, StoreError> {
        Ok(self.txn.open_table(def)?)
    }
}

impl Reads for WriteTx {}

/// A write transaction that records only signals (uses, limiter counts, delivery cursors,
/// the heartbeat): nothing a decision or a cached principal reads. See
/// `Store::write_signals`.
#[derive(Debug)]
pub struct SignalTx<'a>(&'a mut WriteTx);

impl<'a> SignalTx<'a> {
    pub(crate) fn new(tx: &'a mut WriteTx) -> Self {
        SignalTx(tx)
    }

    /// Record when each of these credentials was last used (ms).
    pub(crate) fn put_last_used(&mut self, usage: &[(u128, i64)]) -> Result<(), StoreError> {
        self.0.put_last_used(usage)
    }

    /// Write a rate limiter's recent attempts per key; an empty list removes the key.
    pub fn put_recent_attempts(
        &mut self,
        entries: &[(String, Vec<i64>)],
    ) -> Result<(), StoreError> {
        self.0.put_recent_attempts(entries)
    }

    /// Store a destination's cursor and last attempt.
    pub fn put_delivery_status(
        &mut self,
        id: EventDestinationId,
        status: &DeliveryStatus,
    ) -> Result<(), StoreError> {
        self.0.put_delivery_status(id, status)
    }

    /// Prove the file takes writes (ms since the epoch).
    pub(crate) fn heartbeat(&mut self, now: u64) -> Result<(), StoreError> {
        self.0.set_meta(meta::HEARTBEAT, now)
    }
}

impl Tables for SignalTx<'_> {
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, StoreError> {
        self.0.table(def)
    }
}

impl Reads for SignalTx<'_> {}

impl WriteTx {
    pub(crate) fn begin(db: &redb::Database) -> Result<WriteTx, StoreError> {
        Ok(WriteTx {
            txn: db.begin_write()?,
            touched_credentials: BTreeSet::new(),
            touched_owners: BTreeSet::new(),
        })
    }

    /// Store a new account; its name must be free.
    /// Store a changed account whose name is unchanged (its settings).
    pub fn update_account(&mut self, account: &Account) -> Result<(), StoreError> {
        self.txn
            .open_table(ACCOUNTS)?
            .insert(account.id.0, codec::encode(account)?.as_slice())?;
        Ok(())
    }

    pub fn insert_account(&mut self, account: &Account) -> Result<(), StoreError> {
        let mut names = self.txn.open_table(ACCOUNT_NAMES)?;
        let key = Account::name_key(&account.name);
        if names.get(key.as_str())?.is_some() {
            return Err(DomainError::Conflict {
                what: "account name",
            }
            .into());
        }
        names.insert(key.as_str(), account.id.0)?;
        self.txn
            .open_table(ACCOUNTS)?
            .insert(account.id.0, codec::encode(account)?.as_slice())?;
        Ok(())
    }

    /// Store a new user; its email must be free.
    /// Store a changed user whose email is unchanged (its name).
    pub fn update_user(&mut self, user: &User) -> Result<(), StoreError> {
        self.txn
            .open_table(USERS)?
            .insert(user.id.0, codec::encode(user)?.as_slice())?;
        Ok(())
    }

    /// Change a user's email (`before` is the user as stored): the new address must be
    /// no other user's.
    pub fn change_user_email(&mut self, before: &User, after: &User) -> Result<(), StoreError> {
        let mut emails = self.txn.open_table(USER_EMAILS)?;
        let (old, new) = (before.email.key(), after.email.key());
        if old != new {
            if emails.get(new.as_str())?.is_some() {
                return Err(DomainError::Conflict { what: "email" }.into());
            }
            emails.remove(old.as_str())?;
            emails.insert(new.as_str(), after.id.0)?;
        }
        drop(emails);
        self.update_user(after)
    }

    pub fn insert_user(&mut self, user: &User) -> Result<(), StoreError> {
        let mut emails = self.txn.open_table(USER_EMAILS)?;
        let key = user.email.key();
        if emails.get(key.as_str())?.is_some() {
            return Err(DomainError::Conflict { what: "email" }.into());
        }
        emails.insert(key.as_str(), user.id.0)?;
        self.txn
            .open_table(USERS)?
            .insert(user.id.0, codec::encode(user)?.as_slice())?;
        Ok(())
    }

    /// Store a membership (new or changed).
    pub fn put_membership(&mut self, member: &Membership) -> Result<(), StoreError> {
        let key = (member.account.0, member.user.0);
        self.txn
            .open_table(MEMBERS)?
            .insert(key, codec::encode(member)?.as_slice())?;
        self.txn
            .open_table(USER_ACCOUNTS)?
            .insert((member.user.0, member.account.0), ())?;
        self.touched_owners
            .insert((member.account.0, Owner::User(member.user)));
        Ok(())
    }

    /// Delete a membership (its credentials must be revoked separately, in this transaction).
    pub fn remove_membership(
        &mut self,
        account: AccountId,
        user: UserId,
    ) -> Result<(), StoreError> {
        self.txn.open_table(MEMBERS)?.remove((account.0, user.0))?;
        self.txn
            .open_table(USER_ACCOUNTS)?
            .remove((user.0, account.0))?;
        // What SCIM kept about the member goes with the membership, and so does its
        // place in the account's groups.
        self.remove_scim_profile(account, user)?;
        self.txn
            .open_table(MEMBER_GRANTS)?
            .remove((account.0, user.0))?;
        for id in self.user_scim_groups(account, user)? {
            if let Some(mut group) = self.scim_group(id)? {
                group.members.retain(|m| *m != user);
                self.put_scim_group(&group)?;
            }
        }
        self.touched_owners.insert((account.0, Owner::User(user)));
        Ok(())
    }

    /// Store a bot user (new or changed).
    pub fn put_bot(&mut self, bot: &BotUser) -> Result<(), StoreError> {
        self.txn
            .open_table(BOTS)?
            .insert(bot.id.0, codec::encode(bot)?.as_slice())?;
        self.txn
            .open_table(ACCOUNT_BOTS)?
            .insert((bot.account.0, bot.id.0), ())?;
        self.touched_owners
            .insert((bot.account.0, Owner::Bot(bot.id)));
        Ok(())
    }

    /// Store an IP policy (new or changed).
    pub fn put_ip_policy(&mut self, policy: &IpPolicy) -> Result<(), StoreError> {
        self.put_account_record(
            IP_POLICIES,
            ACCOUNT_IP_POLICIES,
            policy.account,
            policy.id.0,
            policy,
        )
    }

    /// Delete an IP policy (its rules are deleted separately, in this transaction).
    pub fn remove_ip_policy(&mut self, policy: &IpPolicy) -> Result<(), StoreError> {
        self.remove_account_record(
            IP_POLICIES,
            ACCOUNT_IP_POLICIES,
            policy.account,
            policy.id.0,
        )
    }

    /// Store an IP policy rule (new or changed).
    pub fn put_ip_rule(&mut self, rule: &IpPolicyRule) -> Result<(), StoreError> {
        self.put_account_record(IP_RULES, ACCOUNT_IP_RULES, rule.account, rule.id.0, rule)
    }

    /// Delete an IP policy rule.
    pub fn remove_ip_rule(&mut self, rule: &IpPolicyRule) -> Result<(), StoreError> {
        self.remove_account_record(IP_RULES, ACCOUNT_IP_RULES, rule.account, rule.id.0)
    }

    /// Store an IP restriction (new or changed).
    pub fn put_ip_restriction(&mut self, restriction: &IpRestriction) -> Result<(), StoreError> {
        self.put_account_record(
            IP_RESTRICTIONS,
            ACCOUNT_IP_RESTRICTIONS,
            restriction.account,
            restriction.id.0,
            restriction,
        )
    }

    /// Delete an IP restriction.
    pub fn remove_ip_restriction(&mut self, restriction: &IpRestriction) -> Result<(), StoreError> {
        self.remove_account_record(
            IP_RESTRICTIONS,
            ACCOUNT_IP_RESTRICTIONS,
            restriction.account,
            restriction.id.0,
        )
    }

    fn put_account_record<R: Record>(
        &mut self,
        data: TableDefinition<'static, u128, &'static [u8]>,
        index: TableDefinition<'static, (u128, u128), ()>,
        account: AccountId,
        id: u128,
        record: &R,
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(data)?
            .insert(id, codec::encode(record)?.as_slice())?;
        self.txn.open_table(index)?.insert((account.0, id), ())?;
        Ok(())
    }

    fn remove_account_record(
        &mut self,
        data: TableDefinition<'static, u128, &'static [u8]>,
        index: TableDefinition<'static, (u128, u128), ()>,
        account: AccountId,
        id: u128,
    ) -> Result<(), StoreError> {
        self.txn.open_table(data)?.remove(id)?;
        self.txn.open_table(index)?.remove((account.0, id))?;
        Ok(())
    }

    /// Set a user's password (its PHC string).
    pub fn set_password(&mut self, user: UserId, phc: &str) -> Result<(), StoreError> {
        self.txn.open_table(PASSWORDS)?.insert(user.0, phc)?;
        Ok(())
    }

    /// Store a new session under the keyed hash of its secret.
    pub fn put_session(&mut self, key: &[u8; 32], session: &Session) -> Result<(), StoreError> {
        self.txn
            .open_table(SESSIONS)?
            .insert(key, codec::encode(session)?.as_slice())?;
        self.txn
            .open_table(USER_SESSIONS)?
            .insert((session.user.0, session.id.0), key)?;
        Ok(())
    }

    /// End one session.
    pub fn remove_session(&mut self, key: &[u8; 32], session: &Session) -> Result<(), StoreError> {
        self.txn.open_table(SESSIONS)?.remove(key)?;
        self.txn
            .open_table(USER_SESSIONS)?
            .remove((session.user.0, session.id.0))?;
        Ok(())
    }

    /// Store a one-time link under the keyed hash of its secret.
    pub fn put_user_link(&mut self, key: &[u8; 32], link: &UserLink) -> Result<(), StoreError> {
        self.txn
            .open_table(PASSWORD_RESETS)?
            .insert(key, codec::encode(link)?.as_slice())?;
        Ok(())
    }

    /// Use up a one-time link.
    pub fn remove_user_link(&mut self, key: &[u8; 32]) -> Result<(), StoreError> {
        self.txn.open_table(PASSWORD_RESETS)?.remove(key)?;
        Ok(())
    }

    /// Record that `user` proved its email (replacing an earlier proof).
    pub fn put_email_proof(&mut self, user: UserId, proof: &EmailProof) -> Result<(), StoreError> {
        self.txn
            .open_table(EMAIL_PROOFS)?
            .insert(user.0, codec::encode(proof)?.as_slice())?;
        Ok(())
    }

    /// Forget `user`'s email proof.
    pub fn remove_email_proof(&mut self, user: UserId) -> Result<(), StoreError> {
        self.txn.open_table(EMAIL_PROOFS)?.remove(user.0)?;
        Ok(())
    }

    /// Store an invitation (new or changed).
    pub fn put_invitation(&mut self, invitation: &Invitation) -> Result<(), StoreError> {
        self.put_account_record(
            INVITATIONS,
            ACCOUNT_INVITATIONS,
            invitation.account,
            invitation.id.0,
            invitation,
        )
    }

    /// Store a user's TOTP enrollment.
    pub fn put_totp(&mut self, user: UserId, record: &TotpRecord) -> Result<(), StoreError> {
        self.txn
            .open_table(TOTP)?
            .insert(user.0, codec::encode(record)?.as_slice())?;
        Ok(())
    }

    /// Remove a user's TOTP enrollment.
    pub fn remove_totp(&mut self, user: UserId) -> Result<(), StoreError> {
        self.txn.open_table(TOTP)?.remove(user.0)?;
        Ok(())
    }

    /// Store a passkey (new, or its counter and last use after a sign-in). Its
    /// credential id must not be another passkey's.
    pub fn put_passkey(&mut self, passkey: &PasskeyRecord) -> Result<(), StoreError> {
        let key = passkey_credential_key(&passkey.credential_id);
        let mut credentials = self.txn.open_table(PASSKEY_CREDENTIALS)?;
        if credentials
            .get(&key)?
            .is_some_and(|held| held.value() != passkey.id.0)
        {
            return Err(DomainError::Conflict {
                what: "a passkey with this credential (it is registered already)",
            }
            .into());
        }
        credentials.insert(&key, passkey.id.0)?;
        self.txn
            .open_table(PASSKEYS)?
            .insert(passkey.id.0, codec::encode(passkey)?.as_slice())?;
        self.txn
            .open_table(USER_PASSKEYS)?
            .insert((passkey.user.0, passkey.id.0), ())?;
        Ok(())
    }

    /// Remove a passkey.
    pub fn remove_passkey(&mut self, passkey: &PasskeyRecord) -> Result<(), StoreError> {
        self.txn
            .open_table(PASSKEY_CREDENTIALS)?
            .remove(&passkey_credential_key(&passkey.credential_id))?;
        self.txn.open_table(PASSKEYS)?.remove(passkey.id.0)?;
        self.txn
            .open_table(USER_PASSKEYS)?
            .remove((passkey.user.0, passkey.id.0))?;
        Ok(())
    }

    /// Store a tenant (new or changed).
    pub fn put_tenant(&mut self, tenant: &Tenant) -> Result<(), StoreError> {
        self.put_account_record(
            TENANTS,
            ACCOUNT_TENANTS,
            tenant.account,
            tenant.id.0,
            tenant,
        )
    }

    /// Delete a tenant (its role assignments are deleted separately, in this transaction).
    pub fn remove_tenant(&mut self, tenant: &Tenant) -> Result<(), StoreError> {
        self.remove_account_record(TENANTS, ACCOUNT_TENANTS, tenant.account, tenant.id.0)
    }

    /// Store a custom role (new or changed).
    pub fn put_custom_role(&mut self, role: &CustomRole) -> Result<(), StoreError> {
        self.put_account_record(ROLES, ACCOUNT_ROLES, role.account, role.id.0, role)
    }

    /// Delete a custom role.
    pub fn remove_custom_role(&mut self, role: &CustomRole) -> Result<(), StoreError> {
        self.remove_account_record(ROLES, ACCOUNT_ROLES, role.account, role.id.0)
    }

    /// Store a role assignment.
    pub fn put_role_assignment(&mut self, assignment: &RoleAssignment) -> Result<(), StoreError> {
        self.txn.open_table(PRINCIPAL_ROLE_ASSIGNMENTS)?.insert(
            (
                assignment.account.0,
                assignment.principal.raw(),
                assignment.id.0,
            ),
            (),
        )?;
        self.put_account_record(
            ROLE_ASSIGNMENTS,
            ACCOUNT_ROLE_ASSIGNMENTS,
            assignment.account,
            assignment.id.0,
            assignment,
        )
    }

    /// Delete a role assignment.
    pub fn remove_role_assignment(
        &mut self,
        assignment: &RoleAssignment,
    ) -> Result<(), StoreError> {
        self.txn.open_table(PRINCIPAL_ROLE_ASSIGNMENTS)?.remove((
            assignment.account.0,
            assignment.principal.raw(),
            assignment.id.0,
        ))?;
        self.txn
            .open_table(ASSIGNMENT_SOURCES)?
            .remove(assignment.id.0)?;
        self.remove_account_record(
            ROLE_ASSIGNMENTS,
            ACCOUNT_ROLE_ASSIGNMENTS,
            assignment.account,
            assignment.id.0,
        )
    }

    /// Store a permission added to an account's catalog.
    pub fn put_added_permission(&mut self, permission: &AddedPermission) -> Result<(), StoreError> {
        self.put_account_record(
            PERMISSIONS,
            ACCOUNT_PERMISSIONS,
            permission.account,
            permission.key,
            permission,
        )
    }

    /// Remove a permission from an account's catalog.
    pub fn remove_added_permission(
        &mut self,
        permission: &AddedPermission,
    ) -> Result<(), StoreError> {
        self.remove_account_record(
            PERMISSIONS,
            ACCOUNT_PERMISSIONS,
            permission.account,
            permission.key,
        )
    }

    /// Delete a bot user (its credentials must be revoked separately, in this transaction).
    pub fn remove_bot(&mut self, bot: &BotUser) -> Result<(), StoreError> {
        self.txn.open_table(BOTS)?.remove(bot.id.0)?;
        self.txn
            .open_table(ACCOUNT_BOTS)?
            .remove((bot.account.0, bot.id.0))?;
        self.touched_owners
            .insert((bot.account.0, Owner::Bot(bot.id)));
        Ok(())
    }

    /// Store a new credential with the hash of its secret (token kinds). An SSH key must
    /// not be registered anywhere else in the appliance.
    pub fn insert_credential(
        &mut self,
        credential: &Credential,
        secret: Option<SecretHash>,
    ) -> Result<(), StoreError> {
        let raw = credential.id.raw;
        if let Some(key) = &credential.ssh_key {
            let mut fingerprints = self.txn.open_table(SSH_FINGERPRINTS)?;
            if fingerprints.get(&key.fingerprint())?.is_some() {
                return Err(DomainError::Conflict {
                    what: "SSH public key",
                }
                .into());
            }
            fingerprints.insert(&key.fingerprint(), raw)?;
        }
        if let Some(secret) = secret {
            self.txn
                .open_table(CREDENTIAL_SECRETS)?
                .insert(raw, &secret.0)?;
        }
        self.txn
            .open_table(OWNER_CREDENTIALS)?
            .insert((credential.account.0, credential.owner.raw(), raw), ())?;
        self.txn.open_table(ACCOUNT_CREDENTIALS)?.insert(
            (credential.account.0, kind_key(credential.id.kind), raw),
            (),
        )?;
        self.txn
            .open_table(CREDENTIALS)?
            .insert(raw, codec::encode(credential)?.as_slice())?;
        self.touched_credentials.insert(raw);
        Ok(())
    }

    /// Rewrite a live credential's record (description, metadata, rules).
    pub fn update_credential(&mut self, credential: &Credential) -> Result<(), StoreError> {
        let raw = credential.id.raw;
        let mut table = self.txn.open_table(CREDENTIALS)?;
        if table.get(raw)?.is_none() {
            return Err(DomainError::NotFound(credential.id.into()).into());
        }
        table.insert(raw, codec::encode(credential)?.as_slice())?;
        self.touched_credentials.insert(raw);
        Ok(())
    }

    /// Replace the secret hash of a live token credential.
    pub fn set_secret(
        &mut self,
        credential: &Credential,
        secret: SecretHash,
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(CREDENTIAL_SECRETS)?
            .insert(credential.id.raw, &secret.0)?;
        self.touched_credentials.insert(credential.id.raw);
        Ok(())
    }

    /// Revoke a live credential: remove it and its index entries, keep a tombstone.
    pub fn revoke_credential(
        &mut self,
        credential: &Credential,
        cause: RevokeCause,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let raw = credential.id.raw;
        if let Some(key) = &credential.ssh_key {
            self.txn
                .open_table(SSH_FINGERPRINTS)?
                .remove(&key.fingerprint())?;
        }
        self.txn.open_table(CREDENTIAL_SECRETS)?.remove(raw)?;
        self.txn.open_table(LAST_USED)?.remove(raw)?;
        self.txn.open_table(OWNER_CREDENTIALS)?.remove((
            credential.account.0,
            credential.owner.raw(),
            raw,
        ))?;
        self.txn.open_table(ACCOUNT_CREDENTIALS)?.remove((
            credential.account.0,
            kind_key(credential.id.kind),
            raw,
        ))?;
        self.txn.open_table(CREDENTIALS)?.remove(raw)?;
        let tombstone = RevokedCredential {
            id: credential.id,
            account: credential.account,
            owner: credential.owner,
            revoked_at: at,
            cause,
        };
        self.txn
            .open_table(REVOKED)?
            .insert(raw, codec::encode(&tombstone)?.as_slice())?;
        self.touched_credentials.insert(raw);
        Ok(())
    }

    /// Append an audit event to `account`'s chain, in this transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        account: AccountId,
        at: Timestamp,
        actor: Actor,
        action: Action,
        target: String,
        before: Option<Snapshot>,
        after: Option<Snapshot>,
    ) -> Result<EventId, StoreError> {
        let id = EventId::generate(at)?;
        let mut heads = self.txn.open_table(AUDIT_HEADS)?;
        let head: audit::AuditHead = get_record(&heads, account.0)?.unwrap_or_default();
        let event = Event {
            id,
            account,
            seq: head.next_seq,
            at,
            actor,
            action,
            target,
            before,
            after,
            prev: head.hash,
        };
        let bytes = codec::encode(&event)?;
        index_event(&self.txn, &event)?;
        let next = audit::AuditHead {
            next_seq: head.next_seq + 1,
            hash: audit::hash(&bytes),
            last_event: Some(id),
        };
        self.txn
            .open_table(EVENTS)?
            .insert((account.0, event.seq), bytes.as_slice())?;
        heads.insert(account.0, codec::encode(&next)?.as_slice())?;
        Ok(id)
    }

    /// The redb transaction, for the store's own modules.
    pub(crate) fn raw(&self) -> &redb::WriteTransaction {
        &self.txn
    }

    /// Set a value of the metadata table.
    pub(crate) fn set_meta(&mut self, key: &str, value: u64) -> Result<(), StoreError> {
        self.txn.open_table(META)?.insert(key, value)?;
        Ok(())
    }

    /// Record the fingerprint of server key `version`.
    pub fn set_key_fingerprint(
        &mut self,
        version: u32,
        fingerprint: u64,
    ) -> Result<(), StoreError> {
        self.set_meta(&meta::key_fingerprint(version), fingerprint)
    }

    /// Store an event destination (new or changed).
    pub fn put_event_destination(
        &mut self,
        destination: &EventDestination,
    ) -> Result<(), StoreError> {
        self.put_account_record(
            DESTINATIONS,
            ACCOUNT_DESTINATIONS,
            destination.account,
            destination.id.0,
            destination,
        )
    }

    /// Delete an event destination with its secret and cursor.
    pub fn remove_event_destination(
        &mut self,
        destination: &EventDestination,
    ) -> Result<(), StoreError> {
        let id = destination.id.0;
        self.remove_account_record(DESTINATIONS, ACCOUNT_DESTINATIONS, destination.account, id)?;
        self.txn.open_table(DESTINATION_SECRETS)?.remove(id)?;
        self.txn.open_table(DELIVERY_STATUS)?.remove(id)?;
        Ok(())
    }

    /// Store an identity provider (new or changed).
    pub fn put_identity_provider(&mut self, idp: &IdentityProvider) -> Result<(), StoreError> {
        self.put_account_record(
            IDENTITY_PROVIDERS,
            ACCOUNT_IDENTITY_PROVIDERS,
            idp.account,
            idp.id.0,
            idp,
        )
    }

    /// Store an identity provider's sealed client secret.
    pub fn put_identity_provider_secret(
        &mut self,
        id: IdentityProviderId,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(IDENTITY_PROVIDER_SECRETS)?
            .insert(id.0, sealed)?;
        Ok(())
    }

    /// Delete an identity provider with its secret and every identity linked through it.
    pub fn remove_identity_provider(&mut self, idp: &IdentityProvider) -> Result<(), StoreError> {
        let id = idp.id.0;
        self.remove_account_record(
            IDENTITY_PROVIDERS,
            ACCOUNT_IDENTITY_PROVIDERS,
            idp.account,
            id,
        )?;
        self.txn.open_table(IDENTITY_PROVIDER_SECRETS)?.remove(id)?;
        let linked: Vec<(String, u128)> = {
            let table = self.txn.open_table(EXTERNAL_SUBJECTS)?;
            let rows = table.range((id, "")..)?;
            let mut linked = Vec::new();
            for row in rows {
                let (key, value) = row?;
                let (provider, subject) = key.value();
                if provider != id {
                    break;
                }
                linked.push((subject.to_owned(), value.value()));
            }
            linked
        };
        for (subject, ext) in linked {
            if let Some(identity) =
                get_record::<ExternalIdentity>(&self.txn.open_table(EXTERNAL_IDENTITIES)?, ext)?
            {
                self.txn
                    .open_table(USER_EXTERNAL_IDENTITIES)?
                    .remove((identity.user.0, ext))?;
            }
            self.txn.open_table(EXTERNAL_IDENTITIES)?.remove(ext)?;
            self.txn
                .open_table(EXTERNAL_SUBJECTS)?
                .remove((id, subject.as_str()))?;
        }
        Ok(())
    }

    /// Store a SCIM token (new, or its last use).
    pub fn put_scim_token(&mut self, token: &ScimToken) -> Result<(), StoreError> {
        self.put_account_record(
            SCIM_TOKENS,
            ACCOUNT_SCIM_TOKENS,
            token.account,
            token.id.0,
            token,
        )
    }

    /// Delete a SCIM token.
    pub fn remove_scim_token(&mut self, token: &ScimToken) -> Result<(), StoreError> {
        self.remove_account_record(SCIM_TOKENS, ACCOUNT_SCIM_TOKENS, token.account, token.id.0)
    }

    /// Store what SCIM keeps about a member. Its `userName` names one member of the
    /// account only (compared without case).
    pub fn put_scim_profile(&mut self, profile: &ScimProfile) -> Result<(), StoreError> {
        let (account, user) = (profile.account.0, profile.user.0);
        let key = crate::domain::scim::user_name_key(&profile.user_name);
        let mut names = self.txn.open_table(SCIM_USER_NAMES)?;
        if names
            .get((account, key.as_str()))?
            .is_some_and(|held| held.value() != user)
        {
            return Err(DomainError::Conflict {
                what: "this userName",
            }
            .into());
        }
        let before: Option<ScimProfile> = self
            .txn
            .open_table(SCIM_PROFILES)?
            .get((account, user))?
            .map(|v| codec::decode(v.value()))
            .transpose()?;
        if let Some(before) = before {
            let old = crate::domain::scim::user_name_key(&before.user_name);
            if old != key {
                names.remove((account, old.as_str()))?;
            }
        }
        names.insert((account, key.as_str()), user)?;
        self.txn
            .open_table(SCIM_PROFILES)?
            .insert((account, user), codec::encode(profile)?.as_slice())?;
        Ok(())
    }

    /// Store a SCIM group (new or changed), keeping each member's index of its groups.
    pub fn put_scim_group(&mut self, group: &ScimGroup) -> Result<(), StoreError> {
        let before: Option<ScimGroup> = get_record(&self.txn.open_table(SCIM_GROUPS)?, group.id.0)?;
        let account = group.account.0;
        let mut index = self.txn.open_table(USER_SCIM_GROUPS)?;
        if let Some(before) = before {
            for user in before.members.iter().filter(|u| !group.members.contains(u)) {
                index.remove((account, user.0, group.id.0))?;
            }
        }
        for user in &group.members {
            index.insert((account, user.0, group.id.0), ())?;
        }
        drop(index);
        self.put_account_record(
            SCIM_GROUPS,
            ACCOUNT_SCIM_GROUPS,
            group.account,
            group.id.0,
            group,
        )
    }

    /// Delete a SCIM group (and its members' index entries).
    pub fn remove_scim_group(&mut self, group: &ScimGroup) -> Result<(), StoreError> {
        let mut index = self.txn.open_table(USER_SCIM_GROUPS)?;
        for user in &group.members {
            index.remove((group.account.0, user.0, group.id.0))?;
        }
        drop(index);
        self.remove_account_record(SCIM_GROUPS, ACCOUNT_SCIM_GROUPS, group.account, group.id.0)
    }

    /// Store a SCIM group mapping (new or changed): one per group.
    pub fn put_scim_group_mapping(&mut self, mapping: &ScimGroupMapping) -> Result<(), StoreError> {
        let mut mapped = self.txn.open_table(SCIM_GROUP_MAPPED)?;
        if mapped
            .get(mapping.group.0)?
            .is_some_and(|held| held.value() != mapping.id.0)
        {
            return Err(DomainError::Conflict {
                what: "a mapping of this group",
            }
            .into());
        }
        mapped.insert(mapping.group.0, mapping.id.0)?;
        drop(mapped);
        self.put_account_record(
            SCIM_GROUP_MAPPINGS,
            ACCOUNT_SCIM_GROUP_MAPPINGS,
            mapping.account,
            mapping.id.0,
            mapping,
        )
    }

    /// Delete a SCIM group mapping.
    pub fn remove_scim_group_mapping(
        &mut self,
        mapping: &ScimGroupMapping,
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(SCIM_GROUP_MAPPED)?
            .remove(mapping.group.0)?;
        self.remove_account_record(
            SCIM_GROUP_MAPPINGS,
            ACCOUNT_SCIM_GROUP_MAPPINGS,
            mapping.account,
            mapping.id.0,
        )
    }

    /// Store a member's roles by source; with no grant left the record goes (the member
    /// then holds its roles directly).
    pub fn put_member_grants(&mut self, grants: &MemberGrants) -> Result<(), StoreError> {
        let key = (grants.account.0, grants.user.0);
        let mut table = self.txn.open_table(MEMBER_GRANTS)?;
        if grants.grants.is_empty() {
            table.remove(key)?;
        } else {
            table.insert(key, codec::encode(grants)?.as_slice())?;
        }
        Ok(())
    }

    /// Store a role assignment's sources; an assignment held directly alone needs no
    /// record.
    pub fn put_assignment_sources(
        &mut self,
        id: RoleAssignmentId,
        sources: &AssignmentSources,
    ) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(ASSIGNMENT_SOURCES)?;
        if sources.sources == [crate::domain::grant::GrantSource::Direct] {
            table.remove(id.0)?;
        } else {
            table.insert(id.0, codec::encode(sources)?.as_slice())?;
        }
        Ok(())
    }

    /// Drop what SCIM keeps about a member (with its `userName`).
    pub fn remove_scim_profile(
        &mut self,
        account: AccountId,
        user: UserId,
    ) -> Result<(), StoreError> {
        let removed = self
            .txn
            .open_table(SCIM_PROFILES)?
            .remove((account.0, user.0))?
            .map(|v| codec::decode::<ScimProfile>(v.value()))
            .transpose()?;
        if let Some(profile) = removed {
            let key = crate::domain::scim::user_name_key(&profile.user_name);
            self.txn
                .open_table(SCIM_USER_NAMES)?
                .remove((account.0, key.as_str()))?;
        }
        Ok(())
    }

    /// Store an external identity (new, or its last login). A subject of a provider
    /// links one user only.
    pub fn put_external_identity(&mut self, identity: &ExternalIdentity) -> Result<(), StoreError> {
        let key = (identity.provider.0, identity.subject.as_str());
        let mut subjects = self.txn.open_table(EXTERNAL_SUBJECTS)?;
        if subjects
            .get(key)?
            .is_some_and(|held| held.value() != identity.id.0)
        {
            return Err(DomainError::Conflict {
                what: "an identity of this provider linked already",
            }
            .into());
        }
        subjects.insert(key, identity.id.0)?;
        self.txn
            .open_table(EXTERNAL_IDENTITIES)?
            .insert(identity.id.0, codec::encode(identity)?.as_slice())?;
        self.txn
            .open_table(USER_EXTERNAL_IDENTITIES)?
            .insert((identity.user.0, identity.id.0), ())?;
        Ok(())
    }

    /// Unlink an external identity.
    pub fn remove_external_identity(
        &mut self,
        identity: &ExternalIdentity,
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(EXTERNAL_SUBJECTS)?
            .remove((identity.provider.0, identity.subject.as_str()))?;
        self.txn
            .open_table(EXTERNAL_IDENTITIES)?
            .remove(identity.id.0)?;
        self.txn
            .open_table(USER_EXTERNAL_IDENTITIES)?
            .remove((identity.user.0, identity.id.0))?;
        Ok(())
    }

    /// Note SAML assertion `id` of `provider` as used until `expires_ms`; `false` when it
    /// was used already and has not expired (a replay). Expired notes of the provider go.
    pub fn use_saml_assertion(
        &mut self,
        provider: IdentityProviderId,
        id: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut table = self.txn.open_table(SAML_ASSERTIONS)?;
        if table
            .get((provider.0, id))?
            .is_some_and(|until| until.value() > now_ms)
        {
            return Ok(false);
        }
        let expired: Vec<String> = table
            .range((provider.0, "")..)?
            .map_while(|row| row.ok())
            .take_while(|(key, _)| key.value().0 == provider.0)
            .filter(|(_, until)| until.value() <= now_ms)
            .map(|(key, _)| key.value().1.to_owned())
            .collect();
        for gone in &expired {
            table.remove((provider.0, gone.as_str()))?;
        }
        table.insert((provider.0, id), expires_ms)?;
        Ok(true)
    }

    /// Every identity provider's sealed secret (to re-seal them under a new key).
    pub fn all_identity_provider_secrets(
        &self,
    ) -> Result<Vec<(IdentityProviderId, Vec<u8>)>, StoreError> {
        let table = self.txn.open_table(IDENTITY_PROVIDER_SECRETS)?;
        let rows = table.iter()?;
        rows.map(|row| {
            let (k, v) = row?;
            Ok((IdentityProviderId(k.value()), v.value().to_vec()))
        })
        .collect()
    }

    /// Store a destination's sealed signing secret.
    pub fn put_destination_secret(
        &mut self,
        id: EventDestinationId,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(DESTINATION_SECRETS)?
            .insert(id.0, sealed)?;
        Ok(())
    }

    /// Every destination's sealed secret (to re-seal them under a new key).
    pub fn all_destination_secrets(
        &self,
    ) -> Result<Vec<(EventDestinationId, Vec<u8>)>, StoreError> {
        let table = self.txn.open_table(DESTINATION_SECRETS)?;
        let rows = table.iter()?;
        rows.map(|row| {
            let (key, value) = row?;
            Ok((EventDestinationId(key.value()), value.value().to_vec()))
        })
        .collect()
    }

    /// Store a destination's cursor and last attempt. Delivery progress is a signal, not
    /// a change: no audit event.
    pub fn put_delivery_status(
        &mut self,
        id: EventDestinationId,
        status: &DeliveryStatus,
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(DELIVERY_STATUS)?
            .insert(id.0, codec::encode(status)?.as_slice())?;
        Ok(())
    }

    /// Every user's TOTP enrollment (to re-seal the seeds under a new key).
    pub fn all_totp(&self) -> Result<Vec<(UserId, TotpRecord)>, StoreError> {
        let table = self.txn.open_table(TOTP)?;
        let rows = table.iter()?;
        rows.map(|row| {
            let (key, value) = row?;
            Ok((UserId(key.value()), codec::decode(value.value())?))
        })
        .collect()
    }

    /// Every invitation of every account (to re-seal their tokens under a new key).
    pub fn all_invitations(&self) -> Result<Vec<Invitation>, StoreError> {
        let table = self.txn.open_table(INVITATIONS)?;
        let rows = table.iter()?;
        rows.map(|row| codec::decode(row?.1.value())).collect()
    }

    /// Write a rate limiter's recent attempts per key; an empty list removes the key.
    pub fn put_recent_attempts(
        &mut self,
        entries: &[(String, Vec<i64>)],
    ) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(RECENT_ATTEMPTS)?;
        for (key, at) in entries {
            if at.is_empty() {
                table.remove(key.as_str())?;
            } else {
                let record = RecentAttempts { at: at.clone() };
                table.insert(key.as_str(), codec::encode(&record)?.as_slice())?;
            }
        }
        Ok(())
    }

    /// Record when each of these credentials was last used (ms).
    pub(crate) fn put_last_used(&mut self, usage: &[(u128, i64)]) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(LAST_USED)?;
        for (raw, at) in usage {
            table.insert(*raw, *at)?;
        }
        Ok(())
    }

    /// Derive the credential index changes of everything touched, record that the file
    /// has seen `commits` commits once this one lands, and hand back the transaction.
    pub(crate) fn finish(
        mut self,
        commits: u64,
    ) -> Result<(redb::WriteTransaction, Vec<IndexOp>), StoreError> {
        self.set_meta(meta::COMMITS, commits)?;
        let mut raws = self.touched_credentials.clone();
        for (account, owner) in &self.touched_owners {
            for credential in self.owner_credentials(AccountId(*account), *owner)? {
                raws.insert(credential.id.raw);
            }
        }
        let secrets = self.txn.open_table(CREDENTIAL_SECRETS)?;
        let mut ops = Vec::with_capacity(raws.len());
        for raw in raws {
            if let Some(credential) = self.credential(raw)? {
                let standing = self
                    .standing(credential.account, credential.owner)?
                    .ok_or_else(|| {
                        StoreError::corrupt(
                            "credential",
                            format!("{} has no owner in its account", credential.id),
                        )
                    })?;
                let secret = secrets.get(raw)?.map(|v| SecretHash(*v.value()));
                let fingerprint = credential.ssh_key.as_ref().map(|key| key.fingerprint());
                let entry = LiveEntry::new(&credential, secret, standing, None);
                ops.push(IndexOp::Put(raw, entry, fingerprint));
            } else if let Some(tombstone) = self.revoked(raw)? {
                ops.push(IndexOp::Revoke(raw, tombstone.cause));
            }
        }
        drop(secrets);
        Ok((self.txn, ops))
    }
}
