//! The appliance authorizes its own operations with the built-in WASM policies: each
//! refusal names the deciding policy and its reason, and changes nothing.

use latchkey::app::{AppError, Config, Latchkey};
use latchkey::domain::DomainError;
use latchkey::domain::bot::BotPatch;
use latchkey::domain::credential::{CredentialSpec, Owner};
use latchkey::domain::event::{Actor, Principal};
use latchkey::domain::token::TokenKind;
use latchkey::domain::user::{
    BillingRole, DeveloperRole, MemberState, Roles, RolesPatch, TeamRole,
};
use latchkey::policy::Outcome;

use crate::support::{Fixture, copy_builtins, drop_in, is_valid, refusal};

fn roles(developer: DeveloperRole, team: TeamRole) -> Roles {
    Roles {
        developer,
        team,
        billing: BillingRole::None,
        admin: false,
    }
}

/// Unwrap a policy refusal: (deciding policy, reason).
fn forbidden<T: std::fmt::Debug>(result: Result<T, AppError>) -> (String, String) {
    match result {
        Err(AppError::Forbidden { policy, reason }) => (policy, reason),
        other => panic!("expected a policy refusal, got {other:?}"),
    }
}

/// The member's personal authtoken is its actor, as a session or token would be.
fn member(fx: &Fixture, email: &str, roles: Roles) -> (Actor, latchkey::domain::id::UserId) {
    let (user, personal) = fx.member(email, roles);
    (fx.actor(&personal), user.id)
}

#[test]
fn a_read_only_developer_cannot_create_an_api_key_and_nothing_changes() {
    let fx = Fixture::new();
    let (dana, dana_id) = member(&fx, "dana@example.com", Roles::default());
    let before = fx.state();
    let (policy, reason) = forbidden(fx.lk.create_token_credential(
        dana,
        fx.account(),
        TokenKind::ApiKey,
        Owner::User(dana_id),
        CredentialSpec::default(),
    ));
    assert_eq!(policy, "account-rbac");
    assert_eq!(reason, "developer read_only may only read api_keys");
    let bot = forbidden(fx.lk.create_bot(dana, fx.account(), "ci"));
    assert_eq!(bot.0, "account-rbac");
    assert_eq!(fx.state(), before);
}

#[test]
fn a_read_only_developer_sees_and_rotates_its_personal_authtoken_only() {
    let fx = Fixture::new();
    let (dana, dana_id) = member(&fx, "dana@example.com", Roles::default());
    let (erin, _) = member(&fx, "erin@example.com", Roles::default());
    let personal = fx.lk.member(dana, fx.account(), dana_id).unwrap();
    let id = personal.membership.personal_authtoken;
    assert!(fx.lk.credential(dana, fx.account(), id).unwrap().personal);
    let (_, secret) = fx.lk.rotate_credential(dana, fx.account(), id).unwrap();
    assert!(is_valid(&fx.lk, &secret));

    // Another read-only member may see it but not rotate it (that would hand over Dana).
    let dana_now = fx.actor(&secret);
    let before = fx.state();
    let (policy, reason) = forbidden(fx.lk.rotate_credential(erin, fx.account(), id));
    assert_eq!(policy, "account-rbac");
    assert!(reason.contains("may not rotate another member's personal authtoken"));
    // Nobody deletes a personal authtoken: the policy refuses first for a read-only member.
    forbidden(fx.lk.delete_credential(dana_now, fx.account(), id));
    assert_eq!(fx.state(), before);
    assert!(is_valid(&fx.lk, &secret));
}

#[test]
fn a_read_write_developer_names_itself_or_a_bot_as_owner_but_no_other_user() {
    let fx = Fixture::new();
    let rw = roles(DeveloperRole::ReadWrite, TeamRole::ReadOnly);
    let (dev, dev_id) = member(&fx, "dev@example.com", rw);
    let bot = fx.lk.create_bot(dev, fx.account(), "ci").unwrap();
    for owner in [Owner::User(dev_id), Owner::Bot(bot.id)] {
        fx.lk
            .create_token_credential(
                dev,
                fx.account(),
                TokenKind::ApiKey,
                owner,
                CredentialSpec::default(),
            )
            .unwrap();
    }
    let before = fx.state();
    let (policy, reason) = forbidden(fx.lk.create_token_credential(
        dev,
        fx.account(),
        TokenKind::Authtoken,
        Owner::User(fx.admin().id),
        CredentialSpec::default(),
    ));
    assert_eq!(policy, "account-rbac");
    assert!(reason.starts_with("only administrators may name another user"));
    assert_eq!(fx.state(), before);
    // An administrator may.
    fx.lk
        .create_token_credential(
            fx.admin_actor(),
            fx.account(),
            TokenKind::Authtoken,
            Owner::User(dev_id),
            CredentialSpec::default(),
        )
        .unwrap();
}

#[test]
fn a_team_manager_manages_members_but_not_administrators() {
    let fx = Fixture::new();
    let (manager, _) = member(
        &fx,
        "mgr@example.com",
        roles(DeveloperRole::ReadOnly, TeamRole::Manager),
    );
    let (_, dev_id) = member(&fx, "dev@example.com", Roles::default());
    let (_, admin2) = member(&fx, "admin2@example.com", Roles::administrator());

    fx.lk
        .set_member_state(manager, fx.account(), dev_id, MemberState::Disabled)
        .unwrap();
    let before = fx.state();
    let (policy, reason) =
        forbidden(
            fx.lk
                .set_member_state(manager, fx.account(), admin2, MemberState::Disabled),
        );
    assert_eq!(
        (policy.as_str(), reason.as_str()),
        (
            "account-rbac",
            "team manager may not change or remove an administrator"
        )
    );
    forbidden(fx.lk.remove_member(manager, fx.account(), admin2));
    let grant = RolesPatch {
        admin: Some(true),
        ..Default::default()
    };
    let (_, reason) = forbidden(
        fx.lk
            .update_member_roles(manager, fx.account(), dev_id, grant),
    );
    assert_eq!(reason, "team manager may not grant the administrator role");
    let (_, reason) = forbidden(fx.lk.add_member(
        manager,
        fx.account(),
        "boss@example.com",
        "Boss",
        Roles::administrator(),
    ));
    assert_eq!(reason, "team manager may not grant the administrator role");
    assert_eq!(fx.state(), before);

    // Administrators may remove other administrators.
    fx.lk
        .remove_member(fx.admin_actor(), fx.account(), admin2)
        .unwrap();
}

#[test]
fn the_last_administrator_rule_applies_after_the_policy_allows() {
    let fx = Fixture::new();
    let before = fx.state();
    let err = refusal(
        fx.lk
            .remove_member(fx.admin_actor(), fx.account(), fx.admin().id),
    );
    assert_eq!(err, DomainError::LastAdministrator);
    assert_eq!(fx.state(), before);
}

#[test]
fn a_bot_acts_as_a_read_write_developer_and_nothing_more() {
    let fx = Fixture::new();
    let bot = fx
        .lk
        .create_bot(fx.admin_actor(), fx.account(), "ci")
        .unwrap();
    let (_, key) = fx.api_key(Owner::Bot(bot.id));
    let ci = fx.actor(&key);
    assert_eq!(ci.principal, Principal::Bot(bot.id));
    fx.lk
        .create_token_credential(
            ci,
            fx.account(),
            TokenKind::Authtoken,
            Owner::Bot(bot.id),
            CredentialSpec::default(),
        )
        .unwrap();
    let before = fx.state();
    let (policy, reason) = forbidden(fx.lk.member(ci, fx.account(), fx.admin().id));
    assert_eq!(policy, "account-rbac");
    assert!(reason.starts_with("bot users act as read/write developers only"));
    forbidden(fx.lk.events(ci, fx.account()));
    forbidden(
        fx.lk
            .add_member(ci, fx.account(), "x@example.com", "X", Roles::default()),
    );
    assert_eq!(fx.state(), before);
}

#[test]
fn only_administrators_read_the_audit_trail_and_account_settings() {
    let fx = Fixture::new();
    let (manager, _) = member(
        &fx,
        "mgr@example.com",
        roles(DeveloperRole::ReadWrite, TeamRole::Manager),
    );
    assert!(
        !fx.lk
            .events(fx.admin_actor(), fx.account())
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        forbidden(fx.lk.events(manager, fx.account())).0,
        "account-rbac"
    );
    assert_eq!(fx.lk.seats_used(fx.admin_actor(), fx.account()).unwrap(), 2);
    forbidden(fx.lk.account(manager, fx.account()));
}

#[test]
fn an_actor_out_of_good_standing_is_refused_before_any_policy() {
    let fx = Fixture::new();
    let rw = roles(DeveloperRole::ReadWrite, TeamRole::ReadOnly);
    let (user, personal) = fx.member("dev@example.com", rw);
    let dev = fx.actor(&personal);
    fx.set_state(&user, MemberState::Disabled);
    let (policy, reason) = forbidden(fx.lk.create_bot(dev, fx.account(), "ci"));
    assert_eq!(policy, "");
    assert!(reason.contains("is disabled in"), "{reason}");

    let bot = fx
        .lk
        .create_bot(fx.admin_actor(), fx.account(), "ci")
        .unwrap();
    let (key_id, key) = fx.api_key(Owner::Bot(bot.id));
    let ci = fx.actor(&key);
    let inactive = BotPatch {
        active: Some(false),
        ..Default::default()
    };
    fx.lk
        .update_bot(fx.admin_actor(), fx.account(), bot.id, &inactive)
        .unwrap();
    let (_, reason) = forbidden(fx.lk.create_bot(ci, fx.account(), "ci2"));
    assert!(reason.contains("is inactive"), "{reason}");

    // A credential that is not the actor's own (or no longer exists) is refused too.
    let borrowed = Actor {
        principal: Principal::User(fx.admin().id),
        credential: Some(key_id),
    };
    let (_, reason) = forbidden(fx.lk.create_bot(borrowed, fx.account(), "ci3"));
    assert!(
        reason.contains("is not a live credential of the actor"),
        "{reason}"
    );
}

#[test]
fn without_policies_nothing_is_allowed() {
    let fx = Fixture::new();
    let data = fx.dir.path().join("data");
    let admin = fx.admin_actor();
    let account = fx.account();
    drop(fx.lk);
    let lk = Latchkey::open(Config::new(&data)).unwrap();
    let (policy, reason) = forbidden(lk.create_bot(admin, account, "ci"));
    assert_eq!(policy, "");
    assert_eq!(reason, "no policy set is loaded, so nothing is allowed");
    assert!(matches!(
        Latchkey::open(Config::new(&data).with_policies(data.join("nowhere"))),
        Err(AppError::Policy(_))
    ));
}

#[test]
fn a_custom_policy_dropped_in_narrows_the_appliance_itself_after_a_reload() {
    let policies = copy_builtins();
    let fx = Fixture::with_policies(policies.path().to_owned());
    let bot = fx
        .lk
        .create_bot(fx.admin_actor(), fx.account(), "ci")
        .unwrap();
    drop_in(
        policies.path(),
        "no-bot-deletes",
        Outcome::Deny,
        "bots are retired, not deleted, during the audit",
        "\"iam.bot_users.delete\"",
    );
    let engine = fx.lk.policies().unwrap();
    assert_eq!(engine.reload().unwrap(), 3);
    let before = fx.state();
    let (policy, reason) = forbidden(fx.lk.delete_bot(fx.admin_actor(), fx.account(), bot.id));
    assert_eq!(
        (policy.as_str(), reason.as_str()),
        (
            "no-bot-deletes",
            "bots are retired, not deleted, during the audit"
        )
    );
    assert_eq!(fx.state(), before);
    // Everything else is as before.
    fx.lk
        .update_bot(
            fx.admin_actor(),
            fx.account(),
            bot.id,
            &BotPatch {
                name: Some("retired".into()),
                ..Default::default()
            },
        )
        .unwrap();
}

/// A custom module routed to `iam.credentials.verify` that counts its calls and answers
/// allow with the count as its reason; `reads_clock` goes in its manifest.
fn drop_in_counter(dir: &std::path::Path, reads_clock: bool) {
    let wasm = wat::parse_str(include_str!("../src/policy/fixtures/counter.wat")).unwrap();
    std::fs::write(dir.join("counter.wasm"), wasm).unwrap();
    let manifest = format!(
        "name = \"counter\"\nmodule = \"counter.wasm\"\nkind = \"custom\"\n\
         actions = [\"iam.credentials.verify\"]\nreads_clock = {reads_clock}\n"
    );
    std::fs::write(dir.join("counter.toml"), manifest).unwrap();
}

#[test]
fn the_verify_caller_check_is_remembered_only_for_clock_free_policies_and_until_a_reload() {
    // Three caller checks, then one more inside an explained check whose own decision
    // calls the counter too: its reason is how many times it was called in all.
    for (reads_clock, calls) in [(true, "5"), (false, "2")] {
        let policies = copy_builtins();
        drop_in_counter(policies.path(), reads_clock);
        let fx = Fixture::with_policies(policies.path().to_owned());
        let admin = fx.admin_actor();
        let set = fx.lk.policies().unwrap().current();
        assert_eq!(
            set.decides_timelessly("iam.credentials.verify"),
            !reads_clock
        );
        for _ in 0..3 {
            fx.lk.authorize_verify(admin, fx.account()).unwrap();
        }
        let target = latchkey::app::Target::new(
            "credentials",
            "verify",
            "credential",
            fx.account().to_string(),
        );
        let verdicts = fx
            .lk
            .check_permissions(admin, fx.account(), vec![(admin, target)], true)
            .unwrap();
        let counter = verdicts[0]
            .evaluated
            .iter()
            .find(|e| e.policy == "counter")
            .unwrap();
        assert_eq!(counter.reason, calls, "reads_clock = {reads_clock}");

        // A reload asks again: a policy that now refuses is heard at once.
        drop_in(
            policies.path(),
            "verify-freeze",
            Outcome::Deny,
            "verification is frozen",
            "\"iam.credentials.verify\"",
        );
        fx.lk.policies().unwrap().reload().unwrap();
        let (policy, _) = forbidden(fx.lk.authorize_verify(admin, fx.account()));
        assert_eq!(policy, "verify-freeze");
    }
}

#[test]
fn a_remembered_verify_caller_check_is_asked_again_after_a_store_write() {
    let fx = Fixture::new();
    let (user, personal) = fx.member(
        "dev@example.com",
        roles(DeveloperRole::ReadOnly, TeamRole::ReadOnly),
    );
    let developer = fx.actor(&personal);
    fx.lk.authorize_verify(developer, fx.account()).unwrap();
    fx.lk.authorize_verify(developer, fx.account()).unwrap();
    fx.set_state(&user, MemberState::Disabled);
    let (_, reason) = forbidden(fx.lk.authorize_verify(developer, fx.account()));
    assert!(reason.contains("disabled"), "{reason}");
}
