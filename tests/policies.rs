//! The policy engine with the real built-in modules committed under `policies/`: their
//! decision cases, routing and combination, and a custom module dropped in at run time.

use latchkey::app::REQUIRED_POLICIES;

use crate::support::{copy_builtins, drop_in, policies_dir};
use latchkey::policy::{Limits, Outcome, PolicyEngine, check_module, run_cases};
use latchkey_policy_abi::{
    AccountRoles, Assignment, Billing, Context, Developer, Mfa, Principal, PrincipalKind, Request,
    Resource, Team, builtin_permission,
};

fn cases(name: &str) {
    let dir = policies_dir();
    let json = std::fs::read_to_string(dir.join(format!("{name}.cases.json"))).unwrap();
    let report = run_cases(&dir.join(format!("{name}.wasm")), &json, &Limits::default()).unwrap();
    let failures: Vec<String> = report
        .results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}: {}", r.name, r.failure.clone().unwrap_or_default()))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        report.results.len(),
        failures.join("\n")
    );
    assert!(
        report.results.len() > 500,
        "the matrix covers every role against every action family"
    );
}

#[test]
fn account_rbac_decision_cases_pass_through_the_compiled_module() {
    cases("account-rbac");
}

#[test]
fn tenant_roles_decision_cases_pass_through_the_compiled_module() {
    cases("tenant-roles");
}

/// The built-ins declare `reads_clock = false`, which lets the server remember their
/// allows: every decision case must decide the same at other times of day, week and year.
#[test]
fn the_builtins_decide_every_case_the_same_at_any_time_as_their_manifests_promise() {
    let dir = policies_dir();
    for name in ["account-rbac", "tenant-roles"] {
        let manifest = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
        assert!(manifest.contains("\nreads_clock = false\n"), "{name}");
        let json = std::fs::read_to_string(dir.join(format!("{name}.cases.json"))).unwrap();
        let mut cases = latchkey_policy_sdk::cases::parse(&json).unwrap();
        // The epoch, a Sunday night, a weekday 03:00 in 2100, and a day before 1970.
        for time_ms in [0_i64, 1_795_917_600_000, 4_102_455_600_000, -86_400_000] {
            // Written back as whole requests, at the shifted time.
            let shifted: Vec<serde_json::Value> = cases
                .iter_mut()
                .map(|case| {
                    case.request.context.time_ms = time_ms;
                    let expect = latchkey::policy::outcome_name(case.expect.outcome());
                    serde_json::json!({"name": case.name, "request": case.request, "expect": expect})
                })
                .collect();
            let shifted = serde_json::to_string(&shifted).unwrap();
            let report = run_cases(
                &dir.join(format!("{name}.wasm")),
                &shifted,
                &Limits::default(),
            )
            .unwrap();
            assert_eq!(
                report.failed(),
                0,
                "{name} decides differently at time_ms {time_ms}"
            );
        }
    }
}

#[test]
fn the_committed_modules_pass_the_sandbox_checks() {
    for name in ["account-rbac", "tenant-roles"] {
        let report = check_module(
            &policies_dir().join(format!("{name}.wasm")),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(report.abi_version, 1);
    }
}

fn member(roles: AccountRoles, assignments: Vec<Assignment>) -> Principal {
    Principal {
        kind: PrincipalKind::User,
        id: "usr_dana".into(),
        account: "ac_acme".into(),
        roles: Some(roles),
        assignments,
        mfa: Mfa::default(),
        credential: None,
        source_ip: None,
    }
}

fn read_only() -> AccountRoles {
    AccountRoles {
        developer: Developer::ReadOnly,
        team: Team::ReadOnly,
        billing: Billing::None,
        admin: false,
    }
}

fn request(principal: Principal, action: &str, kind: &str, tenant: Option<&str>) -> Request {
    Request {
        principal,
        action: action.into(),
        resource: Resource {
            kind: kind.into(),
            id: "x-1".into(),
            account: "ac_acme".into(),
            tenant: tenant.map(Into::into),
            owner: None,
            permission: builtin_permission(action),
            attributes: vec![],
        },
        context: Context {
            time_ms: 1_795_341_600_000,
            values: vec![],
        },
    }
}

fn technician_in(tenant: &str) -> Principal {
    let technician = Assignment {
        role: "Technician".into(),
        builtin: true,
        tenant: Some(tenant.into()),
        permissions: vec![],
    };
    member(read_only(), vec![technician])
}

#[test]
fn the_engine_routes_iam_to_rbac_and_application_actions_to_tenant_roles() {
    let engine =
        PolicyEngine::load(&policies_dir(), Limits::default(), &REQUIRED_POLICIES).unwrap();

    let denied = engine.decide(&request(
        member(read_only(), vec![]),
        "iam.api_keys.create",
        "api_key",
        None,
    ));
    assert!(!denied.allowed);
    assert_eq!(denied.policy, "account-rbac");
    let writer = AccountRoles {
        developer: Developer::ReadWrite,
        ..read_only()
    };
    assert!(
        engine
            .decide(&request(
                member(writer, vec![]),
                "iam.api_keys.create",
                "api_key",
                None
            ))
            .allowed
    );

    let tech = technician_in("tnt_a");
    let maintenance = engine.decide(&request(
        tech.clone(),
        "computers.run_maintenance",
        "computer",
        Some("tnt_a"),
    ));
    assert!(maintenance.allowed, "{maintenance:?}");
    assert_eq!(maintenance.policy, "tenant-roles");
    let other_tenant = engine.decide(&request(
        tech.clone(),
        "computers.run_maintenance",
        "computer",
        Some("tnt_b"),
    ));
    assert!(!other_tenant.allowed);
    assert_eq!(other_tenant.policy, "tenant-roles");
    assert!(
        !engine
            .decide(&request(
                tech,
                "computers.delete",
                "computer",
                Some("tnt_a")
            ))
            .allowed
    );
}

#[test]
fn a_custom_policy_dropped_in_narrows_decisions_after_a_reload() {
    let dir = copy_builtins();
    let engine = PolicyEngine::load(dir.path(), Limits::default(), &REQUIRED_POLICIES).unwrap();
    let remote = request(
        technician_in("tnt_a"),
        "computers.remote_control",
        "computer",
        Some("tnt_a"),
    );
    assert!(engine.decide(&remote).allowed);

    drop_in(
        dir.path(),
        "change-freeze",
        Outcome::Deny,
        "change freeze",
        "\"computers.remote_control\"",
    );
    assert!(
        engine.decide(&remote).allowed,
        "nothing changes until the reload"
    );
    assert_eq!(engine.reload().unwrap(), 3);
    let frozen = engine.decide(&remote);
    assert!(!frozen.allowed);
    assert_eq!(
        (frozen.policy.as_str(), frozen.reason.as_str()),
        ("change-freeze", "change freeze")
    );
}

#[test]
fn a_custom_policy_can_never_widen_what_a_builtin_denies() {
    let dir = copy_builtins();
    drop_in(
        dir.path(),
        "yes-man",
        Outcome::Allow,
        "sure",
        "\"computers.*\", \"iam.*\"",
    );
    let engine = PolicyEngine::load(dir.path(), Limits::default(), &REQUIRED_POLICIES).unwrap();
    assert!(
        !engine
            .decide(&request(
                technician_in("tnt_a"),
                "computers.delete",
                "computer",
                Some("tnt_a")
            ))
            .allowed
    );
    assert!(
        !engine
            .decide(&request(
                member(read_only(), vec![]),
                "iam.api_keys.create",
                "api_key",
                None
            ))
            .allowed
    );
}

#[test]
fn an_invalid_module_in_a_reload_keeps_the_last_good_set() {
    let dir = copy_builtins();
    let engine = PolicyEngine::load(dir.path(), Limits::default(), &REQUIRED_POLICIES).unwrap();
    std::fs::write(dir.path().join("broken.wasm"), b"\0asm\x01\0\0\0garbage").unwrap();
    std::fs::write(
        dir.path().join("broken.toml"),
        "name = \"broken\"\nmodule = \"broken.wasm\"\nkind = \"custom\"\nactions = [\"*\"]\n",
    )
    .unwrap();
    let err = engine.reload().unwrap_err();
    assert!(err.to_string().contains("broken"), "{err}");
    let tech = technician_in("tnt_a");
    assert!(
        engine
            .decide(&request(
                tech,
                "computers.run_maintenance",
                "computer",
                Some("tnt_a")
            ))
            .allowed
    );
}

#[test]
fn a_set_without_a_required_builtin_is_refused_and_a_custom_module_cannot_stand_in() {
    let dir = copy_builtins();
    let engine = PolicyEngine::load(dir.path(), Limits::default(), &REQUIRED_POLICIES).unwrap();
    let create = request(
        member(read_only(), vec![]),
        "iam.api_keys.create",
        "api_key",
        None,
    );
    assert!(!engine.decide(&create).allowed);

    // Take the account RBAC away and let a custom module claim its namespace.
    for file in ["account-rbac.toml", "account-rbac.wasm"] {
        std::fs::remove_file(dir.path().join(file)).unwrap();
    }
    drop_in(dir.path(), "yes-man", Outcome::Allow, "sure", "\"iam.*\"");
    let err = engine.reload().unwrap_err();
    assert!(err.to_string().contains("account-rbac"), "{err}");
    let still = engine.decide(&create);
    assert!(!still.allowed);
    assert_eq!(
        still.policy, "account-rbac",
        "the last good set still decides"
    );

    let err = PolicyEngine::load(dir.path(), Limits::default(), &REQUIRED_POLICIES).unwrap_err();
    assert!(
        err.to_string()
            .contains("lacks the built-in policy account-rbac"),
        "{err}"
    );
}

#[test]
fn a_request_given_as_an_encoded_head_and_a_context_is_decided_the_same() {
    let engine =
        PolicyEngine::load(&policies_dir(), Limits::default(), &REQUIRED_POLICIES).unwrap();
    for request in [
        request(
            member(read_only(), vec![]),
            "iam.credentials.verify",
            "credential",
            None,
        ),
        request(
            member(read_only(), vec![]),
            "iam.api_keys.create",
            "api_key",
            None,
        ),
        request(
            technician_in("tnt_a"),
            "computers.run_maintenance",
            "computer",
            Some("tnt_a"),
        ),
        request(
            technician_in("tnt_a"),
            "computers.delete",
            "computer",
            Some("tnt_a"),
        ),
    ] {
        let head =
            latchkey::policy::encode_head(&request.principal, &request.action, &request.resource)
                .unwrap();
        let whole = engine.decide(&request);
        let by_head = engine.decide_head(&request.action, &head, &request.context);
        assert_eq!(by_head, whole, "{}", request.action);
    }
}
