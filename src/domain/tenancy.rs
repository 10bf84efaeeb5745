//! Tenancy (seed 003): tenants inside an account, the permission catalog, tenant roles
//! (five built-in, any number custom) and role assignments of a principal × role × tenant
//! (or all tenants). What a principal may do in a tenant is decided by the tenant-roles
//! policy from these assignments; this module only holds and validates them.

use latchkey_policy_abi as abi;
use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::credential::Owner;
use crate::domain::id::{AccountId, RoleAssignmentId, RoleId, TenantId};
use crate::domain::time::Timestamp;

/// A sub-organisation of an account (an MSP's customer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// `tnt_…`
    pub id: TenantId,
    /// Its account.
    pub account: AccountId,
    /// Unique in the account (case-insensitive), 1 to 100 characters.
    pub name: String,
    /// At most 255 bytes.
    pub description: String,
    /// When it was made.
    pub created_at: Timestamp,
}

/// A permission an operator added to an account's catalog for its own application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedPermission {
    /// The storage key (a time-sortable value, so the catalog keeps the order of adding).
    pub key: u128,
    /// Its account.
    pub account: AccountId,
    /// `<category>.<verb>`.
    pub name: String,
    /// At most 255 bytes.
    pub description: String,
    /// When it was added.
    pub created_at: Timestamp,
}

/// One entry of an account's permission catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// `<category>.<verb>`.
    pub name: String,
    /// What it allows.
    pub description: String,
    /// Part of the built-in catalog (cannot be removed).
    pub builtin: bool,
}

impl CatalogEntry {
    /// The part of the name before the first `.`.
    pub fn category(&self) -> &str {
        self.name.split('.').next().unwrap_or(&self.name)
    }
}

/// A role an operator made: a name and a set of catalog permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomRole {
    /// `rol_…`
    pub id: RoleId,
    /// Its account.
    pub account: AccountId,
    /// Unique in the account among all roles, built-in ones included (case-insensitive).
    pub name: String,
    /// At most 255 bytes.
    pub description: String,
    /// Catalog permission names, in catalog order, without repeats.
    pub permissions: Vec<String>,
    /// When it was made.
    pub created_at: Timestamp,
}

/// A role as the API shows it: built-in or custom, with its permissions resolved against
/// the account's catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// `rol_…` (fixed for the built-in roles).
    pub id: RoleId,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The permissions it grants, in catalog order.
    pub permissions: Vec<String>,
    /// One of the five built-in roles (not editable).
    pub builtin: bool,
    /// When a custom role was made; `None` for built-ins.
    pub created_at: Option<Timestamp>,
}

/// A principal holds a role in one tenant, or in all tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    /// `ra_…`
    pub id: RoleAssignmentId,
    /// Its account.
    pub account: AccountId,
    /// A member or a bot user of the account.
    pub principal: Owner,
    /// The role.
    pub role: RoleId,
    /// The tenant; `None` for all tenants.
    pub tenant: Option<TenantId>,
    /// When it was made.
    pub created_at: Timestamp,
}

/// The built-in roles: fixed ids (`rol_…01` to `rol_…05`, older than any generated id,
/// so they list first), names, and api.md's descriptions.
pub fn builtin_roles() -> impl Iterator<Item = (RoleId, &'static str, &'static str)> {
    const DESCRIPTIONS: [&str; 5] = [
        "every catalog permission, in all tenants",
        "every catalog permission except system.*, in its tenant",
        "day-to-day work on computers and deployments, in its tenant or all",
        "every *.view permission with system.view_settings and system.view_logs",
        "view its tenant's computers and reports and request software installs",
    ];
    abi::BUILTIN_ROLES
        .into_iter()
        .zip(DESCRIPTIONS)
        .zip(1u128..)
        .map(|((name, description), raw)| (RoleId(raw), name, description))
}

/// The built-in role with this id, if it is one.
pub fn builtin_role(id: RoleId) -> Option<(&'static str, &'static str)> {
    builtin_roles()
        .find(|(builtin, _, _)| *builtin == id)
        .map(|(_, name, description)| (name, description))
}

/// What each built-in permission allows (seed 003's categories).
pub fn builtin_description(name: &str) -> &'static str {
    match name {
        "computers.view" => "view computers",
        "computers.add" => "add computers",
        "computers.edit" => "edit computers",
        "computers.delete" => "delete computers",
        "computers.run_maintenance" => "run maintenance sessions on computers",
        "computers.remote_control" => "control computers remotely",
        "deployments.view" => "view deployments",
        "deployments.create" => "create deployments",
        "deployments.edit" => "edit deployments",
        "deployments.delete" => "delete deployments",
        "deployments.approve" => "approve deployments",
        "software.view" => "view software",
        "software.add" => "add software",
        "software.edit" => "edit software",
        "software.delete" => "delete software",
        "software.manage_versions" => "manage software versions",
        "software.request_install" => "request software installs (self-service)",
        "users.view" => "view users",
        "users.add" => "add users",
        "users.edit" => "edit users",
        "users.delete" => "delete users",
        "users.manage_roles" => "manage users' roles",
        "system.view_settings" => "view system settings",
        "system.edit_settings" => "edit system settings",
        "system.manage_integrations" => "manage integrations",
        "system.view_logs" => "view logs",
        "system.manage_licenses" => "manage licenses",
        "reports.view" => "view reports (self-service: its own tenant's)",
        _ => "",
    }
}

/// A tenant's or a role's name: trimmed, 1 to 100 characters, nothing invisible (unique
/// names compare by [`crate::domain::name::unique_key`]).
pub fn validate_name(name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(DomainError::invalid("name", "must be 1 to 100 characters"));
    }
    crate::domain::name::check_visible("name", name)?;
    Ok(name.to_owned())
}

/// A description: at most 255 bytes.
pub fn validate_description(description: &str) -> Result<(), DomainError> {
    if description.len() > 255 {
        return Err(DomainError::invalid(
            "description",
            "must be at most 255 bytes",
        ));
    }
    Ok(())
}

/// A permission name: `<category>.<verb>`, each part a lowercase letter followed by
/// lowercase letters, digits and `_`, at most 64 bytes in all.
pub fn validate_permission_name(name: &str) -> Result<(), DomainError> {
    let part_ok = |part: &str| {
        part.starts_with(|c: char| c.is_ascii_lowercase())
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    let ok = name.len() <= 64
        && name
            .split_once('.')
            .is_some_and(|(category, verb)| part_ok(category) && part_ok(verb));
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "name",
            format!(
                "{name:?} is not <category>.<verb> (lowercase letters, digits and _, at most 64)"
            ),
        ))
    }
}

/// Whether a built-in role may be assigned with this tenant (api.md's scope column).
pub fn check_scope(role: &str, tenant: Option<TenantId>) -> Result<(), DomainError> {
    match (abi::builtin_role_scope(role), tenant) {
        (Some(abi::RoleScope::AllTenants), Some(_)) => Err(DomainError::invalid(
            "tenant_id",
            format!("{role} is assigned for all tenants only: leave tenant_id out"),
        )),
        (Some(abi::RoleScope::OneTenant), None) => Err(DomainError::invalid(
            "tenant_id",
            format!("{role} is assigned in one tenant: give its tenant_id"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names_are_category_dot_verb() {
        for good in ["computers.view", "tickets.close_2", "a.b"] {
            validate_permission_name(good).unwrap();
        }
        for bad in [
            "computers",
            "Computers.view",
            "computers.view.all",
            ".view",
            "computers.",
            "2fa.reset",
            "computers.vi ew",
            &format!("a.{}", "b".repeat(63)),
        ] {
            assert!(validate_permission_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builtin_roles_have_fixed_ids_and_every_builtin_permission_a_description() {
        let ids: Vec<String> = builtin_roles().map(|(id, _, _)| id.to_string()).collect();
        assert_eq!(ids[0], "rol_0000000000000000000001");
        assert_eq!(ids.len(), 5);
        assert_eq!(builtin_role(RoleId(3)).unwrap().0, "Technician");
        assert!(builtin_role(RoleId(6)).is_none());
        for name in abi::BUILTIN_CATALOG {
            assert!(!builtin_description(name).is_empty(), "{name}");
        }
    }

    #[test]
    fn scope_column_is_checked_at_assignment() {
        let t = Some(TenantId(7));
        assert!(check_scope("Global Administrator", t).is_err());
        check_scope("Global Administrator", None).unwrap();
        assert!(check_scope("Tenant Administrator", None).is_err());
        assert!(check_scope("Self-Service", None).is_err());
        check_scope("Self-Service", t).unwrap();
        check_scope("Technician", None).unwrap();
        check_scope("Technician", t).unwrap();
        check_scope("Custom", None).unwrap();
    }
}
