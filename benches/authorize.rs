//! One authorization decision through the real built-in modules (`policies/`), sandboxed:
//! an account action routed to account-rbac, and an application action routed to
//! tenant-roles for a member with three tenant assignments, one of them a custom role of
//! 20 permissions. Each iteration encodes the request, runs the module on a warm instance
//! (fuel set, allocator reset) and combines the verdict.
//!
//! Run: `cargo bench --bench authorize`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use latchkey::policy::{Limits, PolicyEngine};
use latchkey_policy_abi::{
    AccountRoles, Assignment, Billing, Context, CredentialInfo, CredentialKind, Developer, Mfa,
    Principal, PrincipalKind, Request, Resource, Team, builtin_permission,
};

fn principal() -> Principal {
    // A custom role of 20 catalog permissions, as a bit set.
    let custom: u64 = (0..20u32).fold(0, |bits, i| bits | (1 << i));
    Principal {
        kind: PrincipalKind::User,
        id: "usr_0352CHaAE9pB0Wm2lBuVXS".into(),
        account: "ac_0352CHaAAk2xHzkECETREx".into(),
        roles: Some(AccountRoles {
            developer: Developer::ReadWrite,
            team: Team::Invite,
            billing: Billing::None,
            admin: false,
        }),
        assignments: vec![
            Assignment {
                role: "Technician".into(),
                builtin: true,
                tenant: Some("tnt_0352CHaAAk2xHzkECETRa1".into()),
                permissions: vec![],
            },
            Assignment {
                role: "Read-Only".into(),
                builtin: true,
                tenant: None,
                permissions: vec![],
            },
            Assignment {
                role: "Helpdesk".into(),
                builtin: false,
                tenant: Some("tnt_0352CHaAAk2xHzkECETRb2".into()),
                permissions: vec![custom],
            },
        ],
        mfa: Mfa::default(),
        credential: Some(CredentialInfo {
            kind: CredentialKind::ApiKey,
            id: "ak_0352CHaAD4LWlz738KZCAI".into(),
            personal: false,
            acl: vec![],
            scopes: vec![],
        }),
        source_ip: None,
    }
}

fn request(action: &str, kind: &str, tenant: Option<&str>) -> Request {
    Request {
        principal: principal(),
        action: action.into(),
        resource: Resource {
            kind: kind.into(),
            id: "c-42".into(),
            account: "ac_0352CHaAAk2xHzkECETREx".into(),
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

fn authorize(c: &mut Criterion) {
    let dir = std::env::var_os("LK_POLICIES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"));
    let engine =
        PolicyEngine::load(&dir, Limits::default(), &latchkey::app::REQUIRED_POLICIES).unwrap();
    let iam = request("iam.api_keys.create", "api_key", None);
    let app = request(
        "computers.run_maintenance",
        "computer",
        Some("tnt_0352CHaAAk2xHzkECETRb2"),
    );
    assert!(engine.decide(&iam).allowed);
    assert!(engine.decide(&app).allowed, "{:?}", engine.decide(&app));

    let mut group = c.benchmark_group("authorize");
    group
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("account_rbac/iam.api_keys.create", |b| {
        b.iter(|| black_box(engine.decide(black_box(&iam))).allowed)
    });
    group.bench_function("tenant_roles/computers.run_maintenance", |b| {
        b.iter(|| black_box(engine.decide(black_box(&app))).allowed)
    });
    group.finish();
}

criterion_group!(benches, authorize);
criterion_main!(benches);
