//! Bot users: one account, no seat, inactive keeps credentials unusable, delete revokes.

use latchkey::domain::DomainError;
use latchkey::domain::bot::BotPatch;
use latchkey::domain::credential::{CredentialSpec, Owner, Rejection};
use latchkey::domain::event::Actor;
use latchkey::domain::token::TokenKind;

use crate::support::{Fixture, is_valid, refusal, rejection};

#[test]
fn an_inactive_bot_keeps_its_credentials_but_none_verify() {
    let fx = Fixture::new();
    let bot = fx
        .lk
        .create_bot(fx.admin_actor(), fx.account(), "ci")
        .unwrap();
    assert!(bot.active);
    let (_, key) = fx.api_key(Owner::Bot(bot.id));
    let verified = fx.lk.verify(key.expose()).unwrap();
    assert_eq!(
        (verified.owner, verified.account),
        (Owner::Bot(bot.id), fx.account())
    );

    let inactive = BotPatch {
        active: Some(false),
        ..Default::default()
    };
    fx.lk
        .update_bot(fx.admin_actor(), fx.account(), bot.id, &inactive)
        .unwrap();
    assert_eq!(rejection(&fx.lk, &key), Rejection::BotInactive);
    assert_eq!(fx.lk.live_credentials(), 3, "kept");

    let active = BotPatch {
        active: Some(true),
        ..Default::default()
    };
    fx.lk
        .update_bot(fx.admin_actor(), fx.account(), bot.id, &active)
        .unwrap();
    assert!(is_valid(&fx.lk, &key));
}

#[test]
fn deleting_a_bot_revokes_and_deletes_every_credential_it_owns_at_once() {
    let fx = Fixture::new();
    let bot = fx
        .lk
        .create_bot(fx.admin_actor(), fx.account(), "deploy")
        .unwrap();
    let (key_id, key) = fx.api_key(Owner::Bot(bot.id));
    let (_, token) = fx
        .lk
        .create_token_credential(
            fx.admin_actor(),
            fx.account(),
            TokenKind::Authtoken,
            Owner::Bot(bot.id),
            CredentialSpec::default(),
        )
        .unwrap();
    let live = fx.lk.live_credentials();

    fx.lk
        .delete_bot(fx.admin_actor(), fx.account(), bot.id)
        .unwrap();
    assert_eq!(rejection(&fx.lk, &key), Rejection::Revoked);
    assert_eq!(rejection(&fx.lk, &token), Rejection::Revoked);
    assert_eq!(fx.lk.live_credentials(), live - 2);
    assert!(matches!(
        refusal(fx.lk.credential(Actor::SYSTEM, fx.account(), key_id)),
        DomainError::NotFound(_)
    ));
    assert!(fx.lk.read().is_ok());
    assert!(
        is_valid(&fx.lk, &fx.init.api_key),
        "nobody else's credentials are touched"
    );
}

#[test]
fn a_bot_belongs_to_exactly_one_account() {
    let fx = Fixture::new();
    let other = fx.lk.init("globex", "g@example.com").unwrap();
    let bot = fx
        .lk
        .create_bot(fx.admin_actor(), fx.account(), "ci")
        .unwrap();
    let before = fx.state();
    // From the other account the bot does not exist: no update, no delete, no credential.
    let patch = BotPatch {
        name: Some("mine".into()),
        ..Default::default()
    };
    assert!(matches!(
        refusal(
            fx.lk
                .update_bot(fx.actor(&other.api_key), other.account.id, bot.id, &patch)
        ),
        DomainError::NotFound(_)
    ));
    assert!(matches!(
        refusal(
            fx.lk
                .delete_bot(fx.actor(&other.api_key), other.account.id, bot.id)
        ),
        DomainError::NotFound(_)
    ));
    let foreign = fx.lk.create_token_credential(
        fx.actor(&other.api_key),
        other.account.id,
        TokenKind::ApiKey,
        Owner::Bot(bot.id),
        CredentialSpec::default(),
    );
    assert!(matches!(refusal(foreign), DomainError::NotFound(_)));
    assert_eq!(fx.state(), before);
}

#[test]
fn bad_bot_names_are_refused_and_change_nothing() {
    let fx = Fixture::new();
    let before = fx.state();
    assert!(matches!(
        refusal(fx.lk.create_bot(fx.admin_actor(), fx.account(), "")),
        DomainError::Invalid { field: "name", .. }
    ));
    let bot = fx
        .lk
        .create_bot(fx.admin_actor(), fx.account(), "ci")
        .unwrap();
    let after_create = fx.state();
    assert_ne!(after_create, before);
    let patch = BotPatch {
        name: Some("x".repeat(300)),
        ..Default::default()
    };
    assert!(
        refusal(
            fx.lk
                .update_bot(fx.admin_actor(), fx.account(), bot.id, &patch)
        )
        .to_string()
        .contains("name")
    );
    assert_eq!(fx.state(), after_create);
}
