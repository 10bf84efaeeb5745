//! Store tests that need the file itself: tampering with the audit chain behind the
//! store's back, and schema versions written by other builds.

use redb::TableDefinition;

use super::*;
use crate::domain::account::Account;
use crate::domain::event::{Action, Actor, Event};
use crate::domain::id::AccountId;
use crate::domain::time::Timestamp;

fn store_with_events(n: usize) -> (tempfile::TempDir, Store, AccountId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.redb")).unwrap();
    let now = Timestamp::from_millis(1_000);
    let account = Account::new(AccountId::generate(now).unwrap(), "acme", now).unwrap();
    store
        .write(|tx| {
            tx.insert_account(&account)?;
            for i in 0..n {
                tx.record(
                    account.id,
                    now,
                    Actor::SYSTEM,
                    Action::AccountCreated,
                    format!("t{i}"),
                    None,
                    None,
                )?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    (dir, store, account.id)
}

/// A raw redb write transaction on the store's file, bypassing every rule of the store.
fn behind_its_back(store: &Store) -> redb::WriteTransaction {
    store
        .db
        .read()
        .unwrap()
        .as_ref()
        .unwrap()
        .begin_write()
        .unwrap()
}

fn events(store: &Store, account: AccountId) -> Vec<Event> {
    store.read().unwrap().events(account).unwrap()
}

/// Rewrite the stored bytes of event `seq` behind the store's back.
fn tamper(store: &Store, account: AccountId, seq: u64, edit: impl FnOnce(&mut Event)) {
    let mut event = events(store, account).remove(seq as usize);
    edit(&mut event);
    let txn = behind_its_back(store);
    txn.open_table(EVENTS)
        .unwrap()
        .insert((account.0, seq), codec::encode(&event).unwrap().as_slice())
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn an_intact_chain_verifies_and_reports_its_head() {
    let (_dir, store, account) = store_with_events(5);
    let report = store.verify_audit_chain().unwrap();
    assert_eq!((report.events, report.broken), (5, None));
    let evs = events(&store, account);
    for pair in evs.windows(2) {
        assert_eq!(pair[1].prev, audit::hash(&codec::encode(&pair[0]).unwrap()));
    }
}

#[test]
fn an_edited_event_is_named_as_the_first_broken_link() {
    let (_dir, store, account) = store_with_events(5);
    let victim = events(&store, account)[2].id;
    tamper(&store, account, 2, |e| e.target = "something else".into());
    let broken = store.verify_audit_chain().unwrap().broken.unwrap();
    assert_eq!(broken.event, victim.to_string());
    assert_eq!(broken.account, account);
}

#[test]
fn an_edited_last_event_is_caught_by_the_head() {
    let (_dir, store, account) = store_with_events(3);
    let victim = events(&store, account)[2].id;
    tamper(&store, account, 2, |e| e.at = Timestamp::from_millis(0));
    assert_eq!(
        store.verify_audit_chain().unwrap().broken.unwrap().event,
        victim.to_string()
    );
}

#[test]
fn a_removed_event_breaks_the_chain() {
    let (_dir, store, account) = store_with_events(4);
    let after_gap = events(&store, account)[2].id;
    let txn = behind_its_back(&store);
    txn.open_table(EVENTS)
        .unwrap()
        .remove((account.0, 1))
        .unwrap();
    txn.commit().unwrap();
    let broken = store.verify_audit_chain().unwrap().broken.unwrap();
    assert_eq!(broken.event, after_gap.to_string());
    assert!(
        broken.detail.contains("expected event #1"),
        "{}",
        broken.detail
    );
}

#[test]
fn a_truncated_tail_is_caught_by_the_head() {
    let (_dir, store, account) = store_with_events(4);
    let last = events(&store, account)[3].id;
    let txn = behind_its_back(&store);
    txn.open_table(EVENTS)
        .unwrap()
        .remove((account.0, 3))
        .unwrap();
    txn.commit().unwrap();
    assert_eq!(
        store.verify_audit_chain().unwrap().broken.unwrap().event,
        last.to_string()
    );
}

#[test]
fn a_refused_transaction_leaves_nothing_behind() {
    let (_dir, store, account) = store_with_events(1);
    let result = store.write(|tx| {
        tx.record(
            account,
            Timestamp::from_millis(5),
            Actor::SYSTEM,
            Action::BotCreated,
            "x".into(),
            None,
            None,
        )?;
        Err::<(), _>(StoreError::Domain(
            crate::domain::DomainError::LastAdministrator,
        ))
    });
    assert!(result.is_err());
    assert_eq!(
        events(&store, account).len(),
        1,
        "the event rolled back with the change"
    );
    assert!(store.verify_audit_chain().unwrap().broken.is_none());
}

const META_DEF: TableDefinition<&str, u64> = TableDefinition::new("meta");

fn set_schema(path: &std::path::Path, version: u64) {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(META_DEF)
        .unwrap()
        .insert("schema_version", version)
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn a_file_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    set_schema(&path, SCHEMA_VERSION + 98);
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found, .. } if found == SCHEMA_VERSION + 98),
        "{err}"
    );
    assert!(
        Store::migrate(&path).is_err(),
        "no migration goes backwards"
    );
}

#[test]
fn an_older_file_needs_the_explicit_migration_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    set_schema(&path, 0);
    let err = Store::open(&path).unwrap_err();
    assert!(err.to_string().contains("latchkey migrate"), "{err}");
    assert_eq!(
        Store::migrate(&path).unwrap(),
        [
            "create the tables of schema 1",
            "create the IP policy, rule and restriction tables",
            "create the tenant, role, role assignment and permission tables",
            "create the password, session, TOTP, password reset and invitation tables",
            "create the email proof table (one-time links name their purpose from now on); key account names by NFKC and case folding",
            "index events by id, principal, action, object and time, credentials by account and kind, and role assignments by principal, so every list page reads only itself; keep rate-limiter counts across restarts; anchor pruned audit chains",
            "create the event destination tables (destinations, their sealed signing secrets and delivery cursors)",
            "create the passkey tables (passkeys, each user's, and the credential id index)",
            "create the single sign-on tables (identity providers, their sealed client secrets, external identities, used SAML assertions)",
            "create the SCIM tables (tokens, what SCIM keeps per member, userNames, groups and each member's groups)",
            "create the tables of SCIM group mappings and of roles and role assignments by source",
        ]
    );
    let store = Store::open(&path).unwrap();
    assert!(
        store
            .read()
            .unwrap()
            .account(AccountId(1))
            .unwrap()
            .is_none()
    );
    drop(store);
    assert!(
        Store::migrate(&path).unwrap().is_empty(),
        "a current file has nothing to do"
    );
    let db = Database::open(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    assert_eq!(
        txn.open_table(META_DEF)
            .unwrap()
            .get("schema_version")
            .unwrap()
            .unwrap()
            .value(),
        SCHEMA_VERSION
    );
}

/// A file written at schema 1 (before IP policies and tenancy) is refused until migrated;
/// the steps it needs create the IP and then the tenancy tables.
#[test]
fn a_schema_1_file_gains_the_ip_and_tenancy_tables_by_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    drop(Store::open(&path).unwrap());
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        for name in [
            "ip_policies",
            "account_ip_policies",
            "ip_rules",
            "account_ip_rules",
            "ip_restrictions",
            "account_ip_restrictions",
            "tenants",
            "account_tenants",
            "roles",
            "account_roles",
            "role_assignments",
            "account_role_assignments",
            "permissions",
            "account_permissions",
            "passwords",
            "sessions",
            "user_sessions",
            "totp",
            "password_resets",
            "invitations",
            "account_invitations",
            "email_proofs",
        ] {
            let def: TableDefinition<u128, u64> = TableDefinition::new(name);
            txn.delete_table(def).unwrap();
        }
        txn.commit().unwrap();
    }
    set_schema(&path, 1);
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::NeedsMigration { found: 1, .. }),
        "{err}"
    );
    assert_eq!(
        Store::migrate(&path).unwrap(),
        [
            "create the IP policy, rule and restriction tables",
            "create the tenant, role, role assignment and permission tables",
            "create the password, session, TOTP, password reset and invitation tables",
            "create the email proof table (one-time links name their purpose from now on); key account names by NFKC and case folding",
            "index events by id, principal, action, object and time, credentials by account and kind, and role assignments by principal, so every list page reads only itself; keep rate-limiter counts across restarts; anchor pruned audit chains",
            "create the event destination tables (destinations, their sealed signing secrets and delivery cursors)",
            "create the passkey tables (passkeys, each user's, and the credential id index)",
            "create the single sign-on tables (identity providers, their sealed client secrets, external identities, used SAML assertions)",
            "create the SCIM tables (tokens, what SCIM keeps per member, userNames, groups and each member's groups)",
            "create the tables of SCIM group mappings and of roles and role assignments by source",
        ]
    );
    let store = Store::open(&path).unwrap();
    assert!(
        store
            .read()
            .unwrap()
            .ip_policies(AccountId(1))
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .read()
            .unwrap()
            .tenants(AccountId(1))
            .unwrap()
            .is_empty()
    );
}

/// Write `names` as accounts the way schema 4 keyed them (`to_lowercase`), and mark the
/// file schema 4.
fn schema_4_accounts(path: &std::path::Path, names: &[&str]) {
    let store = Store::open(path).unwrap();
    drop(store);
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut accounts = txn.open_table(ACCOUNTS).unwrap();
        let mut keys = txn.open_table(ACCOUNT_NAMES).unwrap();
        for (i, name) in names.iter().enumerate() {
            let now = Timestamp::from_millis(1_000 + i as i64);
            let account = Account::new(AccountId::generate(now).unwrap(), name, now).unwrap();
            accounts
                .insert(account.id.0, codec::encode(&account).unwrap().as_slice())
                .unwrap();
            keys.insert(name.to_lowercase().as_str(), account.id.0)
                .unwrap();
        }
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", 4)
            .unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn schema_5_keys_account_names_so_look_alikes_collide() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    schema_4_accounts(&path, &["Straße", "acme"]);
    Store::migrate(&path).unwrap();
    let store = Store::open(&path).unwrap();
    let read = store.read().unwrap();
    let found = read.account_by_name("STRASSE").unwrap().unwrap();
    assert_eq!(found.name, "Straße");
    assert!(read.account_by_name("ＡＣＭＥ").unwrap().is_some());
    // A new account whose name only looks different is refused.
    drop(read);
    let now = Timestamp::from_millis(9_000);
    let twin = Account::new(AccountId::generate(now).unwrap(), "strasse", now).unwrap();
    let err = store.write(|tx| tx.insert_account(&twin)).unwrap_err();
    assert!(
        matches!(err, StoreError::Domain(DomainError::Conflict { .. })),
        "{err}"
    );
}

#[test]
fn a_migration_that_would_merge_two_account_names_stops_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    schema_4_accounts(&path, &["Straße", "strasse"]);
    let err = Store::migrate(&path).unwrap_err();
    assert!(err.to_string().contains("Straße"), "{err}");
    // Nothing was half-done: the file is still schema 4.
    assert!(matches!(
        Store::open(&path).unwrap_err(),
        StoreError::NeedsMigration { found: 4, .. }
    ));
}

#[test]
fn the_key_fingerprint_is_learned_once_and_then_held_to() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.redb")).unwrap();
    store.check_key_fingerprints(&[(1, 41)]).unwrap();
    store.check_key_fingerprints(&[(1, 41)]).unwrap();
    assert!(matches!(
        store.check_key_fingerprints(&[(1, 42)]),
        Err(StoreError::WrongKey)
    ));
    // A rotated keyring: the new version is learned, and from then on needed.
    store.check_key_fingerprints(&[(2, 77), (1, 41)]).unwrap();
    assert!(matches!(
        store.check_key_fingerprints(&[(1, 41)]),
        Err(StoreError::WrongKey)
    ));
    assert!(matches!(
        store.check_key_fingerprints(&[(2, 78), (1, 41)]),
        Err(StoreError::WrongKey)
    ));
    store
        .check_key_fingerprints(&[(1, 41), (2, 77), (3, 5)])
        .unwrap();
}

/// The audit's finding: a flipped byte inside a stored bot was served as another name.
#[test]
fn a_damaged_record_is_read_as_an_error_naming_it_never_as_a_value() {
    use crate::domain::bot::BotUser;
    use crate::domain::id::BotId;
    let (_dir, store, account) = store_with_events(0);
    let now = Timestamp::from_millis(2_000);
    let bot = BotUser::new(BotId::generate(now).unwrap(), account, "deploy", now).unwrap();
    store.write(|tx| tx.put_bot(&bot)).unwrap();
    // One bit of the name's first letter, flipped behind the store's back.
    let txn = behind_its_back(&store);
    {
        let mut bots = txn.open_table(BOTS).unwrap();
        let mut bytes = bots.get(bot.id.0).unwrap().unwrap().value().to_vec();
        let at = bytes.windows(6).position(|w| w == b"deploy").unwrap();
        bytes[at] ^= 0x01;
        bots.insert(bot.id.0, bytes.as_slice()).unwrap();
    }
    txn.commit().unwrap();
    let read = store.read().unwrap().bot(bot.id);
    assert!(
        matches!(&read, Err(StoreError::Corrupt { table: "bot user", detail })
            if detail.contains("checksum") && detail.contains(&format!("{:#034x}", bot.id.0))),
        "{read:?}"
    );
}

/// Every page of every filter combination, walked through `before`, is exactly the
/// brute-force answer over all events, newest first.
#[test]
fn event_pages_from_the_indexes_are_the_filtered_trail_newest_first() {
    use crate::domain::event::Principal;
    use crate::domain::id::{BotId, UserId};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.redb")).unwrap();
    let t0 = Timestamp::from_millis(1_000_000);
    let account = Account::new(AccountId::generate(t0).unwrap(), "acme", t0).unwrap();
    let other = Account::new(AccountId::generate(t0).unwrap(), "other", t0).unwrap();
    let user = Principal::User(UserId::generate(t0).unwrap());
    let bot = Principal::Bot(BotId::generate(t0).unwrap());
    let principals = [Principal::System, user, bot];
    let actions = [
        Action::AccountCreated,
        Action::BotCreated,
        Action::MemberDisabled,
    ];
    store
        .write(|tx| {
            tx.insert_account(&account)?;
            tx.insert_account(&other)?;
            for i in 0..120u64 {
                for acc in [account.id, other.id] {
                    tx.record(
                        acc,
                        Timestamp::from_millis(1_000_000 + (i as i64 / 3) * 1_000),
                        Actor {
                            principal: principals[(i % 3) as usize],
                            credential: None,
                        },
                        actions[(i / 2 % 3) as usize],
                        format!("obj{}", i % 5),
                        None,
                        None,
                    )?;
                }
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let all: Vec<Event> = events(&store, account.id).into_iter().rev().collect();
    let read = store.read().unwrap();
    let times = [None, Some(Timestamp::from_millis(1_010_000))];
    let untils = [None, Some(Timestamp::from_millis(1_030_000))];
    for principal in [None, Some(tx::principal_key(user)), Some(0)] {
        for action in [None, Some("iam.bot_users.create".to_owned())] {
            for object in [None, Some("obj2".to_owned())] {
                for since in times {
                    for until in untils {
                        let query = EventQuery {
                            principal,
                            action: action.clone(),
                            object: object.clone(),
                            since,
                            until,
                            before: None,
                            limit: 7,
                        };
                        let expected: Vec<_> = all
                            .iter()
                            .filter(|e| {
                                principal.is_none_or(|p| {
                                    let raw = match e.actor.principal {
                                        Principal::System => 0,
                                        Principal::User(u) => u.0,
                                        Principal::Bot(b) => b.0,
                                        Principal::ScimToken(t) => t.0,
                                    };
                                    raw == p
                                }) && action.as_deref().is_none_or(|a| e.action.name() == a)
                                    && object.as_deref().is_none_or(|o| e.target == o)
                                    && since.is_none_or(|t| e.at >= t)
                                    && until.is_none_or(|t| e.at <= t)
                            })
                            .map(|e| e.id)
                            .collect();
                        let mut got = Vec::new();
                        let mut before = None;
                        loop {
                            let page = read
                                .events_page(
                                    account.id,
                                    &EventQuery {
                                        before,
                                        ..query.clone()
                                    },
                                )
                                .unwrap();
                            assert!(page.items.len() <= 7);
                            got.extend(page.items.iter().map(|e| e.id));
                            match page.items.last().filter(|_| page.more) {
                                Some(last) => before = Some(last.id),
                                None => break,
                            }
                        }
                        assert_eq!(got, expected, "{query:?}");
                    }
                }
            }
        }
    }
    // One event by id, only in its own account; a `before` of another account is refused.
    let some = &all[3];
    assert_eq!(
        read.event(account.id, some.id).unwrap().unwrap().id,
        some.id
    );
    assert!(read.event(other.id, some.id).unwrap().is_none());
    let query = EventQuery {
        before: Some(some.id),
        limit: 5,
        ..EventQuery::default()
    };
    assert!(matches!(
        read.events_page(other.id, &query),
        Err(StoreError::Domain(crate::domain::DomainError::NotFound(_)))
    ));
}

/// A schema-5 file has events and credentials but none of the list indexes: the
/// migration builds them, and the check agrees.
#[test]
fn the_schema_6_migration_indexes_what_is_already_there() {
    let (dir, store, account) = store_with_events(30);
    let path = dir.path().join("db.redb");
    drop(store);
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        for name in [
            "event_ids",
            "events_by_principal",
            "events_by_action",
            "events_by_object",
            "events_by_time",
            "account_credentials",
            "principal_role_assignments",
            "recent_attempts",
            "audit_checkpoints",
        ] {
            let _ = txn.delete_table(redb::TableDefinition::<u128, ()>::new(name));
        }
        txn.commit().unwrap();
    }
    set_schema(&path, 5);
    Store::migrate(&path).unwrap();
    assert_eq!(check(&path).unwrap().problems, Vec::<String>::new());
    let store = Store::open(&path).unwrap();
    let page = store
        .read()
        .unwrap()
        .events_page(
            account,
            &EventQuery {
                limit: 10,
                ..EventQuery::default()
            },
        )
        .unwrap();
    assert_eq!(page.items.len(), 10);
    assert_eq!(page.items[0].seq, 29);
    assert!(page.more);
}

/// `check` holds every `(account, id)` index to its records both ways: a record whose
/// entry is gone, and an entry that names nothing, are each named.
#[test]
fn check_finds_an_account_index_out_of_step_with_its_records() {
    use crate::domain::bot::BotUser;
    use crate::domain::id::BotId;
    let (dir, store, account) = store_with_events(0);
    let now = Timestamp::from_millis(2_000);
    let bot = BotUser::new(BotId::generate(now).unwrap(), account, "deploy", now).unwrap();
    store.write(|tx| tx.put_bot(&bot)).unwrap();
    let txn = behind_its_back(&store);
    {
        let mut index = txn.open_table(ACCOUNT_BOTS).unwrap();
        index.remove((account.0, bot.id.0)).unwrap();
        index.insert((account.0, 42), ()).unwrap();
    }
    txn.commit().unwrap();
    let path = dir.path().join("db.redb");
    drop(store);
    let problems = check(&path).unwrap().problems;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("account_bots: the bot user") && p.ends_with("is not indexed")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("names no record of that account")),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
}

/// A user, Pia, made at `now`.
fn pia(now: Timestamp) -> crate::domain::user::User {
    use crate::domain::id::UserId;
    use crate::domain::user::{Email, User};
    User::new(
        UserId::generate(now).unwrap(),
        Email::parse("pia@example.com").unwrap(),
        "Pia",
        now,
    )
    .unwrap()
}

#[test]
fn a_passkey_credential_is_held_once_and_check_finds_its_indexes_out_of_step() {
    use crate::domain::id::PasskeyId;
    use crate::domain::session::PasskeyRecord;
    let (dir, store, _) = store_with_events(0);
    let now = Timestamp::from_millis(2_000);
    let user = pia(now);
    let passkey = PasskeyRecord {
        id: PasskeyId::generate(now).unwrap(),
        user: user.id,
        name: "laptop".into(),
        rp_id: "localhost".into(),
        credential_id: vec![7; 32],
        credential: "{}".into(),
        created_at: now,
        last_used_at: None,
    };
    store
        .write(|tx| {
            tx.insert_user(&user)?;
            tx.put_passkey(&passkey)
        })
        .unwrap();
    // Another passkey with the same credential id is refused, and nothing changes.
    let copy = PasskeyRecord {
        id: PasskeyId::generate(now).unwrap(),
        ..passkey.clone()
    };
    assert!(matches!(
        store.write(|tx| tx.put_passkey(&copy)),
        Err(StoreError::Domain(DomainError::Conflict { .. }))
    ));
    let read = store.read().unwrap();
    assert_eq!(
        read.passkeys(user.id).unwrap(),
        std::slice::from_ref(&passkey)
    );
    assert_eq!(
        read.passkey_by_credential(&[7; 32]).unwrap().map(|p| p.id),
        Some(passkey.id)
    );
    assert!(read.has_passkey(user.id).unwrap());
    drop(read);
    // Updating the same passkey (its counter after a sign-in) is not a conflict.
    store
        .write(|tx| {
            tx.put_passkey(&PasskeyRecord {
                last_used_at: Some(now),
                ..passkey.clone()
            })
        })
        .unwrap();
    let path = dir.path().join("db.redb");
    let txn = behind_its_back(&store);
    txn.open_table(USER_PASSKEYS)
        .unwrap()
        .remove((user.id.0, passkey.id.0))
        .unwrap();
    txn.commit().unwrap();
    drop(store);
    let problems = check(&path).unwrap().problems;
    assert_eq!(
        problems,
        [
            format!("passkeys: {:#034x} is not indexed", passkey.id.0),
            "passkey indexes: 0 user and 1 credential entries for 1 passkeys".to_owned()
        ],
    );
}

#[test]
fn check_finds_an_external_identity_out_of_step_with_its_indexes() {
    use crate::domain::federation::{
        ClaimNames, ExternalIdentity, IdentityProvider, OidcSettings, Protocol,
    };
    use crate::domain::id::{ExternalIdentityId, IdentityProviderId};
    let (dir, store, account) = store_with_events(0);
    let now = Timestamp::from_millis(2_000);
    let user = pia(now);
    let provider = IdentityProvider {
        id: IdentityProviderId::generate(now).unwrap(),
        account,
        name: "Corp".into(),
        enabled: true,
        domains: Vec::new(),
        protocol: Protocol::Oidc(OidcSettings {
            issuer: "https://idp.example".into(),
            client_id: "c".into(),
            scopes: Vec::new(),
            claims: ClaimNames::oidc(),
            trusted_ca_pem: None,
        }),
        mfa_values: Vec::new(),
        role_mapping: Vec::new(),
        created_at: now,
        last_login_at: None,
    };
    let identity = ExternalIdentity {
        id: ExternalIdentityId::generate(now).unwrap(),
        account,
        provider: provider.id,
        subject: "sub-1".into(),
        user: user.id,
        email: "pia@example.com".into(),
        created_at: now,
        last_login_at: None,
    };
    store
        .write(|tx| {
            tx.insert_user(&user)?;
            tx.put_identity_provider(&provider)?;
            tx.put_external_identity(&identity)
        })
        .unwrap();
    // The same subject of the same provider links one user only.
    let other = ExternalIdentity {
        id: ExternalIdentityId::generate(now).unwrap(),
        ..identity.clone()
    };
    assert!(matches!(
        store.write(|tx| tx.put_external_identity(&other)),
        Err(StoreError::Domain(DomainError::Conflict { .. }))
    ));
    let path = dir.path().join("db.redb");
    let txn = behind_its_back(&store);
    txn.open_table(USER_EXTERNAL_IDENTITIES)
        .unwrap()
        .remove((user.id.0, identity.id.0))
        .unwrap();
    txn.commit().unwrap();
    drop(store);
    let problems = check(&path).unwrap().problems;
    assert_eq!(
        problems,
        [
            format!(
                "external_identities: {:#034x} is not indexed",
                identity.id.0
            ),
            "external identity indexes: 1 subject and 0 user entries for 1 identities".to_owned()
        ],
    );
}

#[test]
fn a_scim_user_name_names_one_member_goes_with_its_membership_and_check_finds_it_out_of_step() {
    use crate::domain::id::UserId;
    use crate::domain::scim::{ScimName, ScimProfile};
    use crate::domain::user::{Email, Roles, User};
    let (dir, store, account) = store_with_events(0);
    let now = Timestamp::from_millis(2_000);
    let pia = pia(now);
    let quinn = User::new(
        UserId::generate(now).unwrap(),
        Email::parse("quinn@example.com").unwrap(),
        "Quinn",
        now,
    )
    .unwrap();
    let member = |user: &User| active_member(account, user.id, Roles::default(), now);
    let profile = |user: &User, name: &str| ScimProfile {
        account,
        user: user.id,
        user_name: name.into(),
        external_id: None,
        name: ScimName::default(),
        display_name: None,
        emails: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    store
        .write(|tx| {
            for user in [&pia, &quinn] {
                tx.insert_user(user)?;
                tx.put_membership(&member(user))?;
            }
            tx.put_scim_profile(&profile(&pia, "Pia.Lee"))
        })
        .unwrap();
    // Another member may not take the userName, in any case; its owner may rename it,
    // and the old name is free again.
    assert!(matches!(
        store.write(|tx| tx.put_scim_profile(&profile(&quinn, "PIA.LEE"))),
        Err(StoreError::Domain(DomainError::Conflict { .. }))
    ));
    store
        .write(|tx| tx.put_scim_profile(&profile(&pia, "pia")))
        .unwrap();
    store
        .write(|tx| tx.put_scim_profile(&profile(&quinn, "pia.lee")))
        .unwrap();
    let read = store.read().unwrap();
    assert_eq!(read.scim_user_named(account, "PIA").unwrap(), Some(pia.id));
    assert_eq!(
        read.scim_user_named(account, "Pia.Lee").unwrap(),
        Some(quinn.id)
    );
    drop(read);
    // Removing the membership drops what SCIM kept, and its userName.
    store
        .write(|tx| tx.remove_membership(account, pia.id))
        .unwrap();
    let read = store.read().unwrap();
    assert_eq!(read.scim_profile(account, pia.id).unwrap(), None);
    assert_eq!(read.scim_user_named(account, "pia").unwrap(), None);
    drop(read);
    let path = dir.path().join("db.redb");
    let txn = behind_its_back(&store);
    txn.open_table(SCIM_USER_NAMES)
        .unwrap()
        .remove((account.0, "pia.lee"))
        .unwrap();
    txn.open_table(SCIM_USER_NAMES)
        .unwrap()
        .insert((account.0, "ghost"), quinn.id.0)
        .unwrap();
    txn.commit().unwrap();
    drop(store);
    let problems = check(&path).unwrap().problems;
    assert_eq!(
        problems,
        [
            format!(
                "scim_user_names: the userName of ({:#034x}, {:#034x}) is not indexed",
                account.0, quinn.id.0
            ),
            format!(
                "scim_user_names: ({:#034x}, \"ghost\") names no profile with that userName",
                account.0
            ),
        ]
    );
}

#[test]
fn member_grants_go_with_their_membership_and_check_finds_them_out_of_step() {
    use crate::domain::grant::{AssignmentSources, GrantSource, MemberGrants};
    use crate::domain::id::{RoleAssignmentId, ScimGroupId};
    use crate::domain::user::{Roles, TeamRole};
    let (dir, store, account) = store_with_events(0);
    let now = Timestamp::from_millis(2_000);
    let pia = pia(now);
    let manager = Roles {
        team: TeamRole::Manager,
        ..Roles::default()
    };
    let group = GrantSource::ScimGroup(ScimGroupId(7));
    let mut grants = MemberGrants::direct_only(account, pia.id, Roles::default());
    grants.set(group, Some(manager));
    let membership = active_member(account, pia.id, grants.effective(), now);
    store
        .write(|tx| {
            tx.insert_user(&pia)?;
            tx.put_membership(&membership)?;
            tx.put_member_grants(&grants)
        })
        .unwrap();
    assert_eq!(
        store
            .read()
            .unwrap()
            .member_grants(account, pia.id)
            .unwrap(),
        Some(grants.clone())
    );
    // The record goes with the membership; with no grant left it is not kept at all.
    store
        .write(|tx| tx.remove_membership(account, pia.id))
        .unwrap();
    assert_eq!(
        store
            .read()
            .unwrap()
            .member_grants(account, pia.id)
            .unwrap(),
        None
    );
    store
        .write(|tx| {
            tx.put_membership(&membership)?;
            tx.put_member_grants(&MemberGrants::direct_only(account, pia.id, manager))
        })
        .unwrap();
    assert_eq!(
        store
            .read()
            .unwrap()
            .member_grants(account, pia.id)
            .unwrap(),
        None
    );
    // Out of step: grants whose union is not the membership's roles, and sources of an
    // assignment that does not exist.
    let path = dir.path().join("db.redb");
    let txn = behind_its_back(&store);
    let mut lower = grants.clone();
    lower.set(group, None);
    lower.set(
        GrantSource::IdentityProvider(crate::domain::id::IdentityProviderId(8)),
        Some(Roles::default()),
    );
    txn.open_table(MEMBER_GRANTS)
        .unwrap()
        .insert(
            (account.0, pia.id.0),
            codec::encode(&lower).unwrap().as_slice(),
        )
        .unwrap();
    let sources = AssignmentSources {
        sources: vec![group],
    };
    txn.open_table(ASSIGNMENT_SOURCES)
        .unwrap()
        .insert(
            RoleAssignmentId(9).0,
            codec::encode(&sources).unwrap().as_slice(),
        )
        .unwrap();
    txn.commit().unwrap();
    drop(store);
    let problems = check(&path).unwrap().problems;
    assert_eq!(
        problems,
        [
            format!(
                "member_grants: ({:#034x}, {:#034x}) disagrees with the membership's roles",
                account.0, pia.id.0
            ),
            format!("assignment_sources: {:#034x} names no role assignment", 9),
        ]
    );
}

/// An active membership of `user` in `account` with `roles`, joined `now`.
fn active_member(
    account: AccountId,
    user: crate::domain::id::UserId,
    roles: crate::domain::user::Roles,
    now: Timestamp,
) -> crate::domain::user::Membership {
    use crate::domain::credential::{CredentialId, CredentialKind};
    crate::domain::user::Membership {
        account,
        user,
        roles,
        state: crate::domain::user::MemberState::Active,
        joined_at: now,
        personal_authtoken: CredentialId {
            kind: CredentialKind::Authtoken,
            raw: crate::domain::id::new_raw(now).unwrap(),
        },
    }
}
