//! Reopening returns exactly what was committed; the data directory protects itself.

use latchkey::app::{AppError, Config, Latchkey};
use latchkey::domain::bot::BotPatch;
use latchkey::domain::credential::{Owner, Rejection};
use latchkey::domain::user::{MemberState, Roles};
use latchkey::store::StoreError;

use crate::credentials::ED25519;
use crate::support::{Fixture, is_valid, rejection};

#[test]
fn reopening_returns_exactly_what_was_committed_and_the_index_is_rebuilt() {
    let fx = Fixture::new();
    let actor = fx.admin_actor();
    let (dana, dana_token) = fx.member("dana@example.com", Roles::default());
    fx.lk
        .set_member_state(actor, fx.account(), dana.id, MemberState::Disabled)
        .unwrap();
    let (erin, erin_token) = fx.member("erin@example.com", Roles::default());
    fx.lk.remove_member(actor, fx.account(), erin.id).unwrap();
    let bot = fx.lk.create_bot(actor, fx.account(), "ci").unwrap();
    let (_, bot_key) = fx.api_key(Owner::Bot(bot.id));
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
    let ssh = fx
        .lk
        .create_ssh_credential(
            actor,
            fx.account(),
            Owner::User(fx.admin().id),
            ED25519,
            Default::default(),
        )
        .unwrap();
    let (deleted, deleted_key) = fx.api_key(Owner::User(fx.admin().id));
    fx.lk
        .delete_credential(actor, fx.account(), deleted)
        .unwrap();

    let account = fx.account();
    let snapshot = move |lk: &Latchkey| {
        let read = lk.read().unwrap();
        use latchkey::domain::credential::CredentialKind;
        use latchkey::store::{PageRequest, Reads};
        (
            read.account(account).unwrap(),
            read.members(account).unwrap(),
            read.bots(account).unwrap(),
            [
                CredentialKind::Authtoken,
                CredentialKind::ApiKey,
                CredentialKind::SshKey,
            ]
            .map(|kind| {
                let all = PageRequest {
                    before: None,
                    limit: usize::MAX - 1,
                };
                read.credentials_page(account, kind, all).unwrap().items
            }),
            read.events(account).unwrap(),
            lk.verify_audit_chain().unwrap(),
            lk.live_credentials(),
        )
    };
    let before = snapshot(&fx.lk);
    let fx = fx.reopen();
    assert_eq!(snapshot(&fx.lk), before);

    assert!(is_valid(&fx.lk, &fx.init.api_key));
    assert_eq!(rejection(&fx.lk, &dana_token), Rejection::OwnerDisabled);
    assert_eq!(rejection(&fx.lk, &erin_token), Rejection::MembershipRemoved);
    assert_eq!(rejection(&fx.lk, &bot_key), Rejection::BotInactive);
    assert_eq!(rejection(&fx.lk, &deleted_key), Rejection::Revoked);
    assert_eq!(fx.lk.verify(ED25519).unwrap().credential, ssh.id);
}

#[test]
fn a_second_opener_is_told_the_database_is_in_use() {
    let fx = Fixture::new();
    let second = Latchkey::open(Config::new(fx.dir.path().join("data")));
    match second {
        Err(AppError::Store(err @ StoreError::Locked)) => {
            assert!(err.to_string().contains("in use"))
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn a_database_without_its_server_key_is_refused() {
    let fx = Fixture::new();
    let data = fx.dir.path().join("data");
    drop(fx.lk);
    std::fs::remove_file(data.join("server.key")).unwrap();
    let err = Latchkey::open(Config::new(&data)).unwrap_err();
    assert!(err.to_string().contains("server.key is missing"), "{err}");
    assert!(
        !data.join("server.key").exists(),
        "no new key is made over an existing database"
    );
}

#[test]
fn the_server_key_is_private_to_its_owner() {
    let fx = Fixture::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(fx.dir.path().join("data/server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
