//! Memberships: global users, roles, disable/enable, removal, the last administrator,
//! seats, and the personal authtoken.

use latchkey::app::Acceptor;
use latchkey::domain::DomainError;
use latchkey::domain::credential::{CredentialPatch, Owner, Rejection};
use latchkey::domain::event::Actor;
use latchkey::domain::user::{
    BillingRole, DeveloperRole, MemberState, Roles, RolesPatch, TeamRole,
};

use crate::support::{Fixture, is_valid, refusal, rejection};

#[test]
fn a_user_is_global_and_may_belong_to_several_accounts() {
    let fx = Fixture::new();
    let other = fx.lk.init("globex", "ADMIN@Example.com").unwrap();
    assert_eq!(
        other.user.id,
        fx.admin().id,
        "the same email, in any case, is the same user"
    );
    assert_eq!(
        fx.lk
            .member(Actor::SYSTEM, other.account.id, fx.admin().id)
            .unwrap()
            .membership
            .roles,
        Roles::administrator()
    );
}

#[test]
fn adding_an_existing_member_again_is_a_conflict_and_changes_nothing() {
    let fx = Fixture::new();
    let before = fx.state();
    let err = refusal(fx.lk.add_member(
        fx.admin_actor(),
        fx.account(),
        "Admin@EXAMPLE.com",
        "Again",
        Roles::default(),
    ));
    assert!(matches!(err, DomainError::Conflict { .. }), "{err:?}");
    assert_eq!(fx.state(), before);
}

#[test]
fn invalid_email_is_refused_and_changes_nothing() {
    let fx = Fixture::new();
    let before = fx.state();
    let err = refusal(fx.lk.add_member(
        fx.admin_actor(),
        fx.account(),
        "not-an-email",
        "X",
        Roles::default(),
    ));
    assert!(matches!(err, DomainError::Invalid { field: "email", .. }));
    assert_eq!(fx.state(), before);
}

#[test]
fn new_members_get_the_roles_given_and_patches_change_only_what_is_sent() {
    let fx = Fixture::new();
    let (dana, _) = fx.member("dana@example.com", Roles::default());
    let member = fx.lk.member(Actor::SYSTEM, fx.account(), dana.id).unwrap();
    assert_eq!(member.membership.roles, Roles::default());
    assert_eq!(member.membership.state, MemberState::Active);
    let patch = RolesPatch {
        developer: Some(DeveloperRole::ReadWrite),
        billing: Some(BillingRole::Access),
        ..Default::default()
    };
    let updated = fx
        .lk
        .update_member_roles(fx.admin_actor(), fx.account(), dana.id, patch)
        .unwrap();
    assert_eq!(
        updated.membership.roles,
        Roles {
            developer: DeveloperRole::ReadWrite,
            team: TeamRole::ReadOnly,
            billing: BillingRole::Access,
            admin: false
        }
    );
    assert_eq!(
        fx.lk
            .member(Actor::SYSTEM, fx.account(), dana.id)
            .unwrap()
            .membership
            .roles,
        updated.membership.roles
    );
}

#[test]
fn the_last_administrator_cannot_be_demoted_disabled_or_removed() {
    let fx = Fixture::new();
    let (admin, account, actor) = (fx.admin().id, fx.account(), fx.admin_actor());
    let before = fx.state();
    let demote = RolesPatch {
        admin: Some(false),
        ..Default::default()
    };
    assert_eq!(
        refusal(fx.lk.update_member_roles(actor, account, admin, demote)),
        DomainError::LastAdministrator
    );
    assert_eq!(
        refusal(
            fx.lk
                .set_member_state(actor, account, admin, MemberState::Disabled)
        ),
        DomainError::LastAdministrator
    );
    assert_eq!(
        refusal(fx.lk.remove_member(actor, account, admin)),
        DomainError::LastAdministrator
    );
    assert_eq!(fx.state(), before);
    assert!(
        fx.lk
            .member(Actor::SYSTEM, account, admin)
            .unwrap()
            .membership
            .is_active_admin()
    );
    assert!(is_valid(&fx.lk, &fx.init.api_key));
}

#[test]
fn with_a_second_active_administrator_the_first_may_leave() {
    let fx = Fixture::new();
    let (second, _) = fx.member("second@example.com", Roles::administrator());
    // A disabled second administrator does not count.
    fx.lk
        .set_member_state(
            fx.admin_actor(),
            fx.account(),
            second.id,
            MemberState::Disabled,
        )
        .unwrap();
    assert_eq!(
        refusal(
            fx.lk
                .remove_member(fx.admin_actor(), fx.account(), fx.admin().id)
        ),
        DomainError::LastAdministrator
    );
    fx.lk
        .set_member_state(
            fx.admin_actor(),
            fx.account(),
            second.id,
            MemberState::Active,
        )
        .unwrap();
    fx.lk
        .remove_member(fx.admin_actor(), fx.account(), fx.admin().id)
        .unwrap();
    assert!(
        fx.lk
            .member(Actor::SYSTEM, fx.account(), fx.admin().id)
            .is_err()
    );
}

#[test]
fn a_disabled_member_keeps_its_credentials_but_none_verify_until_re_enabled() {
    let fx = Fixture::new();
    let (dana, personal) = fx.member("dana@example.com", Roles::default());
    let (_, key) = fx.api_key(Owner::User(dana.id));
    // Dana also belongs to another account, where nothing changes.
    let (_, elsewhere) = fx.also_member_elsewhere("dana@example.com");

    fx.set_state(&dana, MemberState::Disabled);
    assert_eq!(rejection(&fx.lk, &personal), Rejection::OwnerDisabled);
    assert_eq!(rejection(&fx.lk, &key), Rejection::OwnerDisabled);
    assert!(is_valid(&fx.lk, &elsewhere), "other accounts are untouched");
    assert_eq!(
        fx.lk.live_credentials(),
        7,
        "credentials are kept while disabled"
    );

    fx.set_state(&dana, MemberState::Active);
    assert!(is_valid(&fx.lk, &personal));
    assert!(is_valid(&fx.lk, &key));
}

#[test]
fn removing_a_member_revokes_its_credentials_in_that_account_only() {
    let fx = Fixture::new();
    let (dana, personal) = fx.member("dana@example.com", Roles::default());
    let (_, key) = fx.api_key(Owner::User(dana.id));
    let (other_account, elsewhere) = fx.also_member_elsewhere("dana@example.com");
    let seats = fx.lk.seats_used(Actor::SYSTEM, fx.account()).unwrap();

    fx.lk
        .remove_member(fx.admin_actor(), fx.account(), dana.id)
        .unwrap();
    assert_eq!(rejection(&fx.lk, &personal), Rejection::MembershipRemoved);
    assert_eq!(rejection(&fx.lk, &key), Rejection::MembershipRemoved);
    assert!(fx.lk.member(Actor::SYSTEM, fx.account(), dana.id).is_err());
    assert_eq!(
        fx.lk.seats_used(Actor::SYSTEM, fx.account()).unwrap(),
        seats - 1
    );
    assert!(is_valid(&fx.lk, &elsewhere));
    assert_eq!(
        fx.lk
            .member(Actor::SYSTEM, other_account, dana.id)
            .unwrap()
            .membership
            .state,
        MemberState::Active
    );
    // The user still exists: it is not added back, it joins again by accepting an
    // invitation (the same user, with a fresh personal authtoken).
    let before = fx.state();
    let added = fx.lk.add_member(
        fx.admin_actor(),
        fx.account(),
        "dana@example.com",
        "Dana",
        Roles::default(),
    );
    assert_eq!(refusal(added), DomainError::ExistingUser);
    assert_eq!(fx.state(), before);
    let invited = fx
        .lk
        .invite(
            fx.admin_actor(),
            fx.account(),
            "dana@example.com",
            Roles::default(),
            vec![],
        )
        .unwrap();
    let back = fx
        .lk
        .accept_invitation(
            invited.invitation.id,
            invited.token.unwrap().expose(),
            Acceptor::User(dana.id),
        )
        .unwrap();
    assert_eq!(back.member.user.id, dana.id);
    assert!(is_valid(&fx.lk, &back.personal_authtoken));
    assert_eq!(rejection(&fx.lk, &personal), Rejection::MembershipRemoved);
}

#[test]
fn changing_a_non_member_is_not_found_and_changes_nothing() {
    let fx = Fixture::new();
    let other = fx.lk.init("globex", "stranger@example.com").unwrap();
    let before = fx.state();
    let err = refusal(fx.lk.set_member_state(
        fx.admin_actor(),
        fx.account(),
        other.user.id,
        MemberState::Disabled,
    ));
    assert!(matches!(err, DomainError::NotFound(_)));
    assert_eq!(fx.state(), before);
}

#[test]
fn seats_count_members_and_never_bots() {
    let fx = Fixture::new();
    assert_eq!(fx.lk.seats_used(Actor::SYSTEM, fx.account()).unwrap(), 1);
    fx.member("a@example.com", Roles::default());
    fx.member("b@example.com", Roles::default());
    fx.lk
        .create_bot(fx.admin_actor(), fx.account(), "ci")
        .unwrap();
    fx.lk
        .create_bot(fx.admin_actor(), fx.account(), "deploy")
        .unwrap();
    assert_eq!(fx.lk.seats_used(Actor::SYSTEM, fx.account()).unwrap(), 3);
}

#[test]
fn every_member_gets_a_personal_authtoken_it_can_rotate_but_not_delete() {
    let fx = Fixture::new();
    let (dana, personal) = fx.member("dana@example.com", Roles::default());
    let member = fx.lk.member(Actor::SYSTEM, fx.account(), dana.id).unwrap();
    let id = member.membership.personal_authtoken;
    let credential = fx.lk.credential(Actor::SYSTEM, fx.account(), id).unwrap();
    assert!(credential.personal);
    assert_eq!(credential.owner, Owner::User(dana.id));
    assert_eq!(fx.lk.verify(personal.expose()).unwrap().credential, id);

    let (_, rotated) = fx
        .lk
        .rotate_credential(fx.admin_actor(), fx.account(), id)
        .unwrap();
    assert_ne!(rotated.expose(), personal.expose());
    assert_eq!(
        rejection(&fx.lk, &personal),
        Rejection::WrongSecret,
        "the old secret stops at once"
    );
    assert_eq!(
        fx.lk.verify(rotated.expose()).unwrap().credential,
        id,
        "same credential, new secret"
    );

    let before = fx.state();
    let err = refusal(fx.lk.delete_credential(fx.admin_actor(), fx.account(), id));
    assert!(matches!(err, DomainError::NotApplicable(_)));
    assert_eq!(fx.state(), before);
    assert!(is_valid(&fx.lk, &rotated));
    // It can still be described.
    let patch = CredentialPatch {
        description: Some("laptop".into()),
        ..Default::default()
    };
    assert_eq!(
        fx.lk
            .update_credential(fx.admin_actor(), fx.account(), id, &patch)
            .unwrap()
            .description,
        "laptop"
    );
}
