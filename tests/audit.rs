//! The audit trail: one event per change, in the change's transaction, hash-chained.

use latchkey::domain::bot::BotPatch;
use latchkey::domain::credential::{CredentialKind, Owner};
use latchkey::domain::event::{Action, Actor, Principal, Snapshot};
use latchkey::domain::user::{MemberState, Roles, RolesPatch};

use crate::support::{Fixture, refusal};

#[test]
fn init_records_who_made_what() {
    let fx = Fixture::new();
    let events = fx.lk.events(Actor::SYSTEM, fx.account()).unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.name()).collect();
    assert_eq!(
        actions,
        [
            "iam.account.create",
            "iam.users.create",
            "iam.credentials.create",
            // The host operator named the first administrator: its email counts as proven.
            "iam.users.prove_email",
            "iam.api_keys.create"
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.actor.principal == Principal::System && e.account == fx.account())
    );
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
}

#[test]
fn every_change_writes_one_event_with_actor_target_before_and_after() {
    let fx = Fixture::new();
    let actor = fx.admin_actor();
    let (dana, _) = fx.member("dana@example.com", Roles::default());
    let patch = RolesPatch {
        admin: Some(true),
        ..Default::default()
    };
    fx.lk
        .update_member_roles(actor, fx.account(), dana.id, patch)
        .unwrap();
    fx.lk
        .set_member_state(actor, fx.account(), dana.id, MemberState::Disabled)
        .unwrap();
    let bot = fx.lk.create_bot(actor, fx.account(), "ci").unwrap();
    fx.lk
        .update_bot(
            actor,
            fx.account(),
            bot.id,
            &BotPatch {
                active: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    let (key, _) = fx.api_key(Owner::Bot(bot.id));
    fx.lk.delete_bot(actor, fx.account(), bot.id).unwrap();
    fx.lk.remove_member(actor, fx.account(), dana.id).unwrap();

    let events = fx.lk.events(Actor::SYSTEM, fx.account()).unwrap();
    let tail: Vec<&str> = events[5..].iter().map(|e| e.action.name()).collect();
    assert_eq!(
        tail,
        [
            "iam.users.create",
            "iam.credentials.create",
            "iam.users.update_roles",
            "iam.users.disable",
            "iam.bot_users.create",
            "iam.bot_users.update",
            "iam.api_keys.create",
            "iam.api_keys.delete",
            "iam.bot_users.delete",
            "iam.credentials.delete",
            "iam.users.delete",
        ]
    );
    assert!(
        events[5..].iter().all(|e| e.actor == actor),
        "the principal and the credential it used"
    );

    let roles = events
        .iter()
        .find(|e| e.action == Action::MemberRolesUpdated)
        .unwrap();
    assert_eq!(roles.target, dana.id.to_string());
    match (&roles.before, &roles.after) {
        (Some(Snapshot::Member(_, before)), Some(Snapshot::Member(_, after))) => {
            assert!(!before.roles.admin && after.roles.admin);
        }
        other => panic!("unexpected snapshots {other:?}"),
    }
    let revoked = events
        .iter()
        .find(|e| e.action == Action::CredentialRevoked(CredentialKind::ApiKey))
        .unwrap();
    assert_eq!(revoked.target, key.to_string());
    assert!(matches!(&revoked.before, Some(Snapshot::Credential(c)) if c.id == key));
    assert!(revoked.after.is_none());
    let report = fx.lk.verify_audit_chain().unwrap();
    assert!(report.broken.is_none());
}

#[test]
fn a_refused_change_writes_no_event() {
    let fx = Fixture::new();
    let count = fx.lk.events(Actor::SYSTEM, fx.account()).unwrap().len();
    refusal(
        fx.lk
            .remove_member(fx.admin_actor(), fx.account(), fx.admin().id),
    );
    refusal(fx.lk.create_bot(fx.admin_actor(), fx.account(), "\u{0}"));
    assert_eq!(
        fx.lk.events(Actor::SYSTEM, fx.account()).unwrap().len(),
        count
    );
}

#[test]
fn events_never_contain_a_secret() {
    let fx = Fixture::new();
    let (_, key) = fx.api_key(Owner::User(fx.admin().id));
    let events = format!("{:?}", fx.lk.events(Actor::SYSTEM, fx.account()).unwrap());
    for secret in [
        key.expose(),
        fx.init.api_key.expose(),
        fx.init.personal_authtoken.expose(),
    ] {
        let secret_part = &secret[secret.len() - 49..secret.len() - 6];
        assert!(!events.contains(secret_part));
    }
}

#[test]
fn the_head_moves_with_every_change_and_chains_are_per_account() {
    let fx = Fixture::new();
    let first = fx.lk.verify_audit_chain().unwrap();
    assert_eq!(first.events, 5);
    fx.lk
        .create_bot(fx.admin_actor(), fx.account(), "ci")
        .unwrap();
    let second = fx.lk.verify_audit_chain().unwrap();
    assert_eq!(second.events, 6);
    assert_ne!(first.head, second.head);
    let other = fx.lk.init("globex", "g@example.com").unwrap();
    assert_eq!(
        fx.lk.events(Actor::SYSTEM, other.account.id).unwrap()[0].seq,
        0,
        "each account has its own chain"
    );
    assert_eq!(fx.lk.verify_audit_chain().unwrap().events, 11);
}
