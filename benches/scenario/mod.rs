//! The tenant-role scenario the decision benchmarks share (`authorize`, `instructions`, and
//! the Cedar comparison): a member with developer read/write and team invite, Technician in
//! one tenant, Read-Only for all tenants and a custom role of 20 catalog permissions in a
//! second tenant, asking to create an API key (account-rbac) and to run maintenance on a
//! computer of the second tenant (tenant-roles).

use std::path::{Path, PathBuf};

use latchkey::policy::{Limits, PolicyEngine};
use latchkey_policy_abi::{
    AccountRoles, Assignment, Billing, Context, CredentialInfo, CredentialKind, Developer, Mfa,
    Principal, PrincipalKind, Request, Resource, Team, builtin_permission,
};

/// The tenant whose custom role grants the application action.
pub const TENANT_B: &str = "tnt_0352CHaAAk2xHzkECETRb2";

/// The built-in modules (`policies/`, or `LK_POLICIES`), loaded with default limits.
#[allow(dead_code)] // The Cedar comparison, in its own crate, names the folder itself.
pub fn engine() -> PolicyEngine {
    engine_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
}

/// The modules in `dir` (or `LK_POLICIES`), loaded with default limits.
pub fn engine_in(dir: &Path) -> PolicyEngine {
    let dir = std::env::var_os("LK_POLICIES").map_or_else(|| dir.to_path_buf(), PathBuf::from);
    PolicyEngine::load(&dir, Limits::default(), &latchkey::app::REQUIRED_POLICIES).unwrap()
}

/// The account action: create an API key (decided by account-rbac).
pub fn iam() -> Request {
    request("iam.api_keys.create", "api_key", None)
}

/// The application action: run maintenance in tenant B (decided by tenant-roles).
pub fn app() -> Request {
    request("computers.run_maintenance", "computer", Some(TENANT_B))
}

/// The member: developer read/write, team invite, and the three tenant assignments.
pub fn principal() -> Principal {
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
                tenant: Some(TENANT_B.into()),
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

/// `action` on resource `kind` `c-42` of the account, in `tenant`.
pub fn request(action: &str, kind: &str, tenant: Option<&str>) -> Request {
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
