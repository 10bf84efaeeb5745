//! Built-in tenant roles (seed 003, ImmyBot): decides application actions (everything but
//! `iam.*` and `agent.bind`) from the principal's tenant role assignments. The permission
//! an action needs arrives resolved as a catalog index; built-in roles are known by name
//! (api.md's table), custom roles bring their permission bit set.

#![no_std]

extern crate alloc;

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use latchkey_policy_sdk::{
    Assignment, BUILTIN_CATALOG, Decision, Policy, Request, RoleScope, action_matches,
    builtin_role_grants, builtin_role_scope, concat, export_policy, same, scope_denial,
};

/// The tenant-roles policy.
#[derive(Debug)]
pub struct TenantRoles;

impl Policy for TenantRoles {
    fn decide(request: &Request) -> Decision {
        if action_matches("iam.*", request.action) || request.action == "agent.bind" {
            return Decision::not_applicable(
                "tenant-roles does not decide iam.* or agent.bind (account-rbac does)",
            );
        }
        if let Some(denial) = scope_denial(request) {
            return denial;
        }
        let principal = &request.principal;
        let resource = &request.resource;
        // As in account-rbac: the host never mixes accounts, so if it did, fail closed.
        // This holds for the system principal too: it has no tenant roles, so it is judged
        // like everyone else (it decides nothing here by being the system).
        if !same(resource.account, principal.account) {
            return Decision::deny(format!(
                "{} belongs to account {}, not to the principal's account {}",
                resource.id, resource.account, principal.account
            ));
        }
        let Some(permission) = resource.permission else {
            return Decision::deny("action is not in the permission catalog");
        };
        let tenant = resource.tenant;
        // A tenant's resource is judged by that tenant's assignments and the all-tenant
        // ones; a resource outside any tenant only by the all-tenant ones.
        let applies = |a: &&Assignment| match (a.tenant, tenant) {
            (None, _) => true,
            (Some(a), Some(t)) => same(a, t),
            (Some(_), None) => false,
        };
        let mut applicable = principal.assignments.iter().filter(applies);
        if let Some(granting) = applicable.find(|a| grants(a, permission)) {
            // The path every allowed request takes: no `core::fmt`, no list, one
            // allocation.
            let (scope, tenant) = scope_parts(granting.tenant);
            let permission = permission_name(permission);
            return Decision::allow(concat(&[
                "role ",
                granting.role,
                " ",
                scope,
                tenant,
                " grants ",
                &permission,
            ]));
        }
        let applicable: Vec<&Assignment> = principal.assignments.iter().filter(applies).collect();
        match (applicable.as_slice(), tenant) {
            ([], Some(tenant)) => Decision::deny(format!("no role assignment for tenant {tenant}")),
            ([], None) => Decision::deny(format!(
                "{} belongs to no tenant and the principal has no all-tenant role assignment",
                resource.id
            )),
            ([only], _) if !in_scope(only) => Decision::deny(format!(
                "built-in role {} cannot be assigned {}, so it grants nothing",
                only.role,
                scope_phrase(only.tenant)
            )),
            ([only], _) => Decision::deny(format!(
                "role {} {} does not grant {}",
                only.role,
                scope_phrase(only.tenant),
                permission_name(permission)
            )),
            (several, _) => {
                let roles: Vec<String> = several
                    .iter()
                    .map(|a| format!("{} {}", a.role, scope_phrase(a.tenant)))
                    .collect();
                Decision::deny(format!(
                    "no role grants {}: roles {}",
                    permission_name(permission),
                    roles.join(", ")
                ))
            }
        }
    }
}

export_policy!(TenantRoles);

/// Whether assignment `a` grants catalog entry `permission`.
fn grants(a: &Assignment, permission: u32) -> bool {
    if !a.builtin {
        return a.grants(permission);
    }
    in_scope(a) && builtin_grants(a.role, permission)
}

/// api.md's scope column: a built-in assignment outside its scope cannot be created (400);
/// if one arrives anyway it grants nothing rather than more than intended.
fn in_scope(a: &Assignment) -> bool {
    match builtin_role_scope(a.role) {
        _ if !a.builtin => true,
        Some(RoleScope::AllTenants) => a.tenant.is_none(),
        Some(RoleScope::OneTenant) => a.tenant.is_some(),
        Some(RoleScope::Either) => true,
        None => false,
    }
}

/// The permission sets of api.md's built-in role table (the ABI crate holds it, so the
/// host lists exactly what this policy decides). The request carries only an index; an
/// index past the built-in catalog is an operator-added entry.
pub fn builtin_grants(role: &str, permission: u32) -> bool {
    let name = usize::try_from(permission)
        .ok()
        .and_then(|i| BUILTIN_CATALOG.get(i).copied());
    builtin_role_grants(role, name)
}

fn scope_phrase(tenant: Option<&str>) -> String {
    let (scope, tenant) = scope_parts(tenant);
    concat(&[scope, tenant])
}

/// "in tenant " + the tenant, or "for all tenants" + nothing.
fn scope_parts(tenant: Option<&str>) -> (&'static str, &str) {
    match tenant {
        Some(tenant) => ("in tenant ", tenant),
        None => ("for all tenants", ""),
    }
}

fn permission_name(permission: u32) -> Cow<'static, str> {
    usize::try_from(permission)
        .ok()
        .and_then(|i| BUILTIN_CATALOG.get(i))
        .map_or_else(
            || Cow::Owned(format!("catalog permission #{permission}")),
            |n| Cow::Borrowed(*n),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_policy_sdk::{
        BUILTIN_ROLES, GLOBAL_ADMINISTRATOR, READ_ONLY, SELF_SERVICE, TECHNICIAN,
        TENANT_ADMINISTRATOR, builtin_permission,
    };

    fn granted(role: &str) -> Vec<&'static str> {
        BUILTIN_CATALOG
            .iter()
            .enumerate()
            .filter(|(i, _)| builtin_grants(role, *i as u32))
            .map(|(_, n)| *n)
            .collect()
    }

    /// api.md's built-in role table, transcribed name by name.
    #[test]
    fn builtin_table_matches_api_md() {
        let every: Vec<&str> = BUILTIN_CATALOG.to_vec();
        assert_eq!(granted(GLOBAL_ADMINISTRATOR), every);
        let tenant_admin: Vec<&str> = [
            "computers.view",
            "computers.add",
            "computers.edit",
            "computers.delete",
            "computers.run_maintenance",
            "computers.remote_control",
            "deployments.view",
            "deployments.create",
            "deployments.edit",
            "deployments.delete",
            "deployments.approve",
            "software.view",
            "software.add",
            "software.edit",
            "software.delete",
            "software.manage_versions",
            "software.request_install",
            "users.view",
            "users.add",
            "users.edit",
            "users.delete",
            "users.manage_roles",
            "reports.view",
        ]
        .to_vec();
        assert_eq!(granted(TENANT_ADMINISTRATOR), tenant_admin);
        assert_eq!(
            granted(TECHNICIAN),
            [
                "computers.view",
                "computers.add",
                "computers.edit",
                "computers.run_maintenance",
                "computers.remote_control",
                "deployments.view",
                "deployments.create",
                "deployments.edit",
                "software.view",
                "system.view_logs",
                "reports.view",
            ]
        );
        assert_eq!(
            granted(READ_ONLY),
            [
                "computers.view",
                "deployments.view",
                "software.view",
                "users.view",
                "system.view_settings",
                "system.view_logs",
                "reports.view",
            ]
        );
        assert_eq!(
            granted(SELF_SERVICE),
            ["computers.view", "software.request_install", "reports.view"]
        );
        assert!(granted("Custom").is_empty());
        assert!(granted("global administrator").is_empty());
    }

    #[test]
    fn only_global_administrator_gets_added_catalog_entries() {
        let added = BUILTIN_CATALOG.len() as u32;
        assert!(builtin_grants(GLOBAL_ADMINISTRATOR, added));
        for role in &BUILTIN_ROLES[1..] {
            assert!(!builtin_grants(role, added), "{role}");
        }
    }

    #[test]
    fn scope_column_is_enforced() {
        let view = builtin_permission("computers.view").unwrap();
        let a = |role: &'static str, tenant: Option<&'static str>| Assignment {
            role,
            builtin: true,
            tenant,
            permissions: Vec::new(),
        };
        assert!(grants(&a(GLOBAL_ADMINISTRATOR, None), view));
        assert!(!grants(&a(GLOBAL_ADMINISTRATOR, Some("tnt_a")), view));
        assert!(grants(&a(TENANT_ADMINISTRATOR, Some("tnt_a")), view));
        assert!(!grants(&a(TENANT_ADMINISTRATOR, None), view));
        assert!(!grants(&a(SELF_SERVICE, None), view));
        assert!(grants(&a(TECHNICIAN, None), view) && grants(&a(READ_ONLY, None), view));
        // A built-in role ignores any bits it carries; a custom role uses only its bits.
        let mut custom = a("Custom", None);
        custom.builtin = false;
        assert!(!grants(&custom, view));
        custom.permissions = alloc::vec![1 << view];
        assert!(grants(&custom, view));
        let mut fake = a("Custom", None);
        fake.permissions = alloc::vec![u64::MAX];
        assert!(!grants(&fake, view));
    }
}
