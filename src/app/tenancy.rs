//! Tenants, the permission catalog, tenant roles and role assignments (seed 003): their
//! management, authorized by the account RBAC policy and audited like every operation,
//! and what the tenant-roles policy is told about a principal's assignments.

use latchkey_policy_abi as abi;

use super::grants;
use super::resource::{self, Resource};
use super::{AppError, Latchkey, Target, in_account, record, require_account};
use crate::domain::DomainError;
use crate::domain::credential::Owner;
use crate::domain::event::{Action, Actor, Change, Snapshot, TenancyObject};
use crate::domain::grant::{AssignmentSources, GrantSource};
use crate::domain::id::{self, AccountId, RoleAssignmentId, RoleId, TenantId};
use crate::domain::name::unique_key;
use crate::domain::tenancy::{
    self, AddedPermission, CatalogEntry, CustomRole, Role, RoleAssignment, Tenant,
};
use crate::domain::time::Timestamp;
use crate::store::{Page, PageRequest, Reads, WriteTx};

/// A change to a tenant or a role; `None` keeps the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenancyPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New permissions (roles only).
    pub permissions: Option<Vec<String>>,
}

/// Which assignments to list; `None` matches any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssignmentFilter {
    /// Only this principal's.
    pub principal: Option<Owner>,
    /// Only of this role.
    pub role: Option<RoleId>,
    /// Only in this tenant (all-tenant assignments are not "in" a tenant).
    pub tenant: Option<TenantId>,
}

/// A role assignment with its role's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedAssignment {
    /// The assignment.
    pub assignment: RoleAssignment,
    /// Its role's name.
    pub role: String,
    /// What holds it: made directly, granted by SCIM groups or identity providers.
    pub sources: Vec<GrantSource>,
}

/// One principal in an access review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewedPrincipal {
    /// A member or a bot user.
    pub principal: Owner,
    /// Its name.
    pub name: String,
    /// A member's email.
    pub email: Option<String>,
    /// Its assignments, each with the permissions its role grants today.
    pub assignments: Vec<(NamedAssignment, Vec<String>)>,
}

/// The account's catalog: the built-in entries in catalog order, then the added ones in
/// the order they were added. An entry's position is its index in permission bit sets.
fn catalog(tx: &impl Reads, account: AccountId) -> Result<Vec<CatalogEntry>, AppError> {
    let builtin = abi::BUILTIN_CATALOG.iter().map(|name| CatalogEntry {
        name: (*name).to_owned(),
        description: tenancy::builtin_description(name).to_owned(),
        builtin: true,
    });
    let added = tx
        .added_permissions(account)?
        .into_iter()
        .map(|p| CatalogEntry {
            name: p.name,
            description: p.description,
            builtin: false,
        });
    Ok(builtin.chain(added).collect())
}

/// The catalog index of permission `name` in `account`, if it is in the catalog.
pub(super) fn catalog_index(
    tx: &impl Reads,
    account: AccountId,
    name: &str,
) -> Result<Option<u32>, AppError> {
    if let Some(index) = abi::builtin_permission(name) {
        return Ok(Some(index));
    }
    // Application actions that are not built-in permissions are rare next to built-in
    // ones; only they read the added entries.
    let added = tx.added_permissions(account)?;
    Ok(added
        .iter()
        .position(|p| p.name == name)
        .and_then(|i| u32::try_from(abi::BUILTIN_CATALOG.len() + i).ok()))
}

/// The permissions a role grants, in catalog order.
fn role_permissions(
    name: &str,
    custom: Option<&CustomRole>,
    catalog: &[CatalogEntry],
) -> Vec<String> {
    match custom {
        Some(role) => role.permissions.clone(),
        None => catalog
            .iter()
            .filter(|e| abi::builtin_role_grants(name, e.builtin.then_some(e.name.as_str())))
            .map(|e| e.name.clone())
            .collect(),
    }
}

fn builtin_view(id: RoleId, catalog: &[CatalogEntry]) -> Option<Role> {
    tenancy::builtin_role(id).map(|(name, description)| Role {
        id,
        name: name.to_owned(),
        description: description.to_owned(),
        permissions: role_permissions(name, None, catalog),
        builtin: true,
        created_at: None,
    })
}

fn custom_view(role: &CustomRole) -> Role {
    Role {
        id: role.id,
        name: role.name.clone(),
        description: role.description.clone(),
        permissions: role.permissions.clone(),
        builtin: false,
        created_at: Some(role.created_at),
    }
}

/// A role of the account (built-in, or custom of this account), or 404.
fn role_in(tx: &impl Reads, account: AccountId, id: RoleId) -> Result<Role, AppError> {
    if tenancy::builtin_role(id).is_some() {
        let catalog = catalog(tx, account)?;
        return builtin_view(id, &catalog).ok_or_else(|| DomainError::NotFound(id.into()).into());
    }
    let role = in_account(tx.custom_role(id)?, |r| r.account, account, id)?;
    Ok(custom_view(&role))
}

/// The name of role `id` of the account (404 if it is none of its roles).
pub(super) fn role_name(
    tx: &impl Reads,
    account: AccountId,
    id: RoleId,
) -> Result<String, AppError> {
    Ok(role_in(tx, account, id)?.name)
}

fn custom_role_in(tx: &impl Reads, account: AccountId, id: RoleId) -> Result<CustomRole, AppError> {
    if tenancy::builtin_role(id).is_some() {
        return Err(
            DomainError::NotApplicable("built-in roles cannot be changed or deleted").into(),
        );
    }
    CustomRole::find(tx, account, id)
}

/// Role names are unique in the account, built-in names included, compared by
/// [`unique_key`] (so look-alikes collide).
fn role_name_free(
    tx: &impl Reads,
    account: AccountId,
    name: &str,
    except: Option<RoleId>,
) -> Result<(), AppError> {
    let key = unique_key(name);
    let taken = abi::BUILTIN_ROLES.iter().any(|b| unique_key(b) == key)
        || tx
            .custom_roles(account)?
            .iter()
            .any(|r| Some(r.id) != except && unique_key(&r.name) == key);
    if taken {
        return Err(DomainError::Conflict { what: "role name" }.into());
    }
    Ok(())
}

fn tenant_name_free(
    tx: &impl Reads,
    account: AccountId,
    name: &str,
    except: Option<TenantId>,
) -> Result<(), AppError> {
    let key = unique_key(name);
    let taken = tx
        .tenants(account)?
        .iter()
        .any(|t| Some(t.id) != except && unique_key(&t.name) == key);
    if taken {
        return Err(DomainError::Conflict {
            what: "tenant name",
        }
        .into());
    }
    Ok(())
}

/// Permission names from a request, checked against the catalog and put in catalog
/// order without repeats.
fn known_permissions(catalog: &[CatalogEntry], names: &[String]) -> Result<Vec<String>, AppError> {
    if let Some(unknown) = names
        .iter()
        .find(|n| !catalog.iter().any(|e| &e.name == *n))
    {
        return Err(DomainError::invalid(
            "permissions",
            format!("{unknown:?} is not in the permission catalog"),
        )
        .into());
    }
    Ok(catalog
        .iter()
        .filter(|e| names.contains(&e.name))
        .map(|e| e.name.clone())
        .collect())
}

fn target(resource: &str, verb: &str, kind: &str, id: impl Into<String>) -> Target {
    Target::new(resource, verb, kind, id)
}

fn event(object: TenancyObject, change: Change) -> Action {
    Action::Tenancy(object, change)
}

/// Remove every role assignment of `principal` (a member being removed, a bot being
/// deleted), each with its event, in the caller's transaction.
pub(super) fn remove_assignments_of(
    tx: &mut WriteTx,
    actor: Actor,
    account: AccountId,
    principal: Owner,
    now: Timestamp,
) -> Result<(), AppError> {
    // Through the by-principal index: the principal's own assignments, whatever the
    // account's size.
    let theirs = tx.principal_assignments(account, principal)?;
    remove_assignments(tx, actor, &theirs, now)
}

/// Whether `role` in `tenant` (or all tenants) can be assigned in `account`: the role
/// and the tenant are the account's, and a built-in role's scope allows it.
pub(super) fn check_assignable(
    tx: &impl Reads,
    account: AccountId,
    role: RoleId,
    tenant: Option<TenantId>,
) -> Result<(), AppError> {
    let found = role_name(tx, account, role)?;
    if let Some(tenant) = tenant {
        in_account(tx.tenant(tenant)?, |t| t.account, account, tenant)?;
    }
    if tenancy::builtin_role(role).is_some() {
        tenancy::check_scope(&found, tenant)?;
    }
    Ok(())
}

/// Store a new assignment with its event, in the caller's transaction (validated by the
/// caller).
pub(super) fn put_assignment(
    tx: &mut WriteTx,
    actor: Actor,
    account: AccountId,
    principal: Owner,
    role: RoleId,
    tenant: Option<TenantId>,
    now: Timestamp,
) -> Result<RoleAssignment, AppError> {
    let assignment = RoleAssignment {
        id: RoleAssignmentId::generate(now)?,
        account,
        principal,
        role,
        tenant,
        created_at: now,
    };
    resource::created(tx, actor, now, assignment)
}

fn remove_assignments(
    tx: &mut WriteTx,
    actor: Actor,
    assignments: &[RoleAssignment],
    now: Timestamp,
) -> Result<(), AppError> {
    for assignment in assignments {
        resource::deleted(tx, actor, now, assignment)?;
    }
    Ok(())
}

/// The tenant-roles policy's view of `principal`'s assignments in `account`: each role by
/// name, built-in or with its permissions as a bit set over the account's catalog.
pub(super) fn policy_assignments(
    tx: &impl Reads,
    account: AccountId,
    principal: Owner,
) -> Result<Vec<abi::Assignment>, AppError> {
    // Through the by-principal index: the principal's own assignments, whatever the
    // account's size.
    let theirs = tx.principal_assignments(account, principal)?;
    if theirs.is_empty() {
        return Ok(Vec::new());
    }
    let catalog = catalog(tx, account)?;
    let mut assignments = Vec::with_capacity(theirs.len());
    for assignment in theirs {
        let tenant = assignment.tenant.map(|t| t.to_string());
        if let Some((name, _)) = tenancy::builtin_role(assignment.role) {
            assignments.push(abi::Assignment {
                role: name.to_owned(),
                builtin: true,
                tenant,
                permissions: Vec::new(),
            });
            continue;
        }
        // A role deleted under an assignment cannot happen (deletion is refused while it
        // is assigned); if it did, the assignment grants nothing.
        let Some(role) = tx.custom_role(assignment.role)? else {
            continue;
        };
        let mut bits = vec![0u64; catalog.len().div_ceil(64)];
        for (index, entry) in catalog.iter().enumerate() {
            if role.permissions.contains(&entry.name)
                && let Some(word) = bits.get_mut(index / 64)
            {
                *word |= 1 << (index % 64);
            }
        }
        assignments.push(abi::Assignment {
            role: role.name,
            builtin: false,
            tenant,
            permissions: bits,
        });
    }
    Ok(assignments)
}

impl Latchkey {
    /// Create a tenant.
    pub fn create_tenant(
        &self,
        actor: Actor,
        account: AccountId,
        name: &str,
        description: &str,
    ) -> Result<Tenant, AppError> {
        let now = self.now();
        self.store
            .write(|tx| self.create_tenant_in(tx, actor, account, name, description, now))
    }

    /// [`Self::create_tenant`] inside a write transaction (for imports).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create_tenant_in(
        &self,
        tx: &mut WriteTx,
        actor: Actor,
        account: AccountId,
        name: &str,
        description: &str,
        now: Timestamp,
    ) -> Result<Tenant, AppError> {
        let create = target("tenants", "create", "tenant", "new");
        let name = self.start_create(tx, actor, account, create, name, description, now)?;
        tenant_name_free(tx, account, &name, None)?;
        let tenant = Tenant {
            id: TenantId::generate(now)?,
            account,
            name,
            description: description.to_owned(),
            created_at: now,
        };
        resource::created(tx, actor, now, tenant)
    }

    /// What creating a tenant or a custom role starts with: the account exists, the
    /// policies allow `create`, and the name and description are valid. The name to store.
    #[allow(clippy::too_many_arguments)]
    fn start_create(
        &self,
        tx: &mut WriteTx,
        actor: Actor,
        account: AccountId,
        create: Target,
        name: &str,
        description: &str,
        now: Timestamp,
    ) -> Result<String, AppError> {
        require_account(tx, account)?;
        self.authorize(tx, actor, account, create, now)?;
        let name = tenancy::validate_name(name)?;
        tenancy::validate_description(description)?;
        Ok(name)
    }

    /// A tenant of the account.
    pub fn tenant(
        &self,
        actor: Actor,
        account: AccountId,
        id: TenantId,
    ) -> Result<Tenant, AppError> {
        let read = self.store.read()?;
        let tenant = Tenant::find(&read, account, id)?;
        self.authorize(
            &read,
            actor,
            account,
            target("tenants", "get", "tenant", id.to_string()),
            self.now(),
        )?;
        Ok(tenant)
    }

    /// A page of the account's tenants, newest first.
    pub fn tenants(
        &self,
        actor: Actor,
        account: AccountId,
        page: PageRequest,
    ) -> Result<Page<Tenant>, AppError> {
        let read = self.store.read()?;
        let list = target("tenants", "list", "tenant", account.to_string());
        self.authorize(&read, actor, account, list, self.now())?;
        Ok(read.tenants_page(account, page)?)
    }

    /// Rename a tenant or change its description.
    pub fn update_tenant(
        &self,
        actor: Actor,
        account: AccountId,
        id: TenantId,
        patch: &TenancyPatch,
    ) -> Result<Tenant, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let before = Tenant::find(tx, account, id)?;
            self.authorize(
                tx,
                actor,
                account,
                target("tenants", "update", "tenant", id.to_string()),
                now,
            )?;
            if patch.permissions.is_some() {
                return Err(
                    DomainError::invalid("permissions", "tenants have no permissions").into(),
                );
            }
            let mut after = before.clone();
            if let Some(name) = &patch.name {
                after.name = tenancy::validate_name(name)?;
                tenant_name_free(tx, account, &after.name, Some(id))?;
            }
            if let Some(description) = &patch.description {
                tenancy::validate_description(description)?;
                after.description.clone_from(description);
            }
            resource::updated(tx, actor, now, &before, after)
        })
    }

    /// Delete a tenant and, in the same transaction, every role assignment in it.
    pub fn delete_tenant(
        &self,
        actor: Actor,
        account: AccountId,
        id: TenantId,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let tenant = Tenant::find(tx, account, id)?;
            self.authorize(
                tx,
                actor,
                account,
                target("tenants", "delete", "tenant", id.to_string()),
                now,
            )?;
            let inside: Vec<RoleAssignment> = tx
                .role_assignments(account)?
                .into_iter()
                .filter(|a| a.tenant == Some(id))
                .collect();
            remove_assignments(tx, actor, &inside, now)?;
            resource::deleted(tx, actor, now, &tenant)
        })
    }

    /// The account's permission catalog: built-in entries first, then added ones.
    pub fn permissions(
        &self,
        actor: Actor,
        account: AccountId,
    ) -> Result<Vec<CatalogEntry>, AppError> {
        let read = self.store.read()?;
        let list = target("permissions", "list", "permission", account.to_string());
        self.authorize(&read, actor, account, list, self.now())?;
        catalog(&read, account)
    }

    /// One catalog entry by name.
    pub fn permission(
        &self,
        actor: Actor,
        account: AccountId,
        name: &str,
    ) -> Result<CatalogEntry, AppError> {
        let read = self.store.read()?;
        self.authorize(
            &read,
            actor,
            account,
            target("permissions", "get", "permission", name),
            self.now(),
        )?;
        catalog(&read, account)?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| DomainError::NotFound(id::AnyId(name.to_owned())).into())
    }

    /// Add a permission to the account's catalog, for the operator's own application.
    pub fn add_permission(
        &self,
        actor: Actor,
        account: AccountId,
        name: &str,
        description: &str,
    ) -> Result<CatalogEntry, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            require_account(tx, account)?;
            self.authorize(
                tx,
                actor,
                account,
                target("permissions", "create", "permission", name),
                now,
            )?;
            tenancy::validate_permission_name(name)?;
            tenancy::validate_description(description)?;
            if catalog(tx, account)?.iter().any(|e| e.name == name) {
                return Err(DomainError::Conflict {
                    what: "permission name",
                }
                .into());
            }
            let added = AddedPermission {
                key: id::new_raw(now)?,
                account,
                name: name.to_owned(),
                description: description.to_owned(),
                created_at: now,
            };
            tx.put_added_permission(&added)?;
            record(
                tx,
                &account,
                now,
                actor,
                event(TenancyObject::Permission, Change::Created),
                name.to_owned(),
                None,
                Some(Snapshot::Permission(added)),
            )?;
            Ok(CatalogEntry {
                name: name.to_owned(),
                description: description.to_owned(),
                builtin: false,
            })
        })
    }

    /// Remove an added permission; refused for built-in ones and for one a role uses.
    pub fn remove_permission(
        &self,
        actor: Actor,
        account: AccountId,
        name: &str,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            require_account(tx, account)?;
            self.authorize(
                tx,
                actor,
                account,
                target("permissions", "delete", "permission", name),
                now,
            )?;
            if abi::builtin_permission(name).is_some() {
                return Err(
                    DomainError::NotApplicable("built-in permissions cannot be removed").into(),
                );
            }
            let added = tx
                .added_permissions(account)?
                .into_iter()
                .find(|p| p.name == name)
                .ok_or_else(|| DomainError::NotFound(id::AnyId(name.to_owned())))?;
            let users: Vec<String> = tx
                .custom_roles(account)?
                .into_iter()
                .filter(|r| r.permissions.iter().any(|p| p == name))
                .map(|r| r.id.to_string())
                .collect();
            if !users.is_empty() {
                return Err(AppError::InUse {
                    what: format!("permission {name}"),
                    field: "roles",
                    by: users,
                });
            }
            tx.remove_added_permission(&added)?;
            record(
                tx,
                &account,
                now,
                actor,
                event(TenancyObject::Permission, Change::Deleted),
                name.to_owned(),
                Some(Snapshot::Permission(added)),
                None,
            )
        })
    }

    /// Every role of the account: the built-in ones, then custom ones, oldest first.
    pub fn roles(&self, actor: Actor, account: AccountId) -> Result<Vec<Role>, AppError> {
        let read = self.store.read()?;
        self.authorize(
            &read,
            actor,
            account,
            target("roles", "list", "role", account.to_string()),
            self.now(),
        )?;
        let catalog = catalog(&read, account)?;
        let builtin = tenancy::builtin_roles().filter_map(|(id, _, _)| builtin_view(id, &catalog));
        let custom = read.custom_roles(account)?;
        Ok(builtin.chain(custom.iter().map(custom_view)).collect())
    }

    /// One role of the account.
    pub fn role(&self, actor: Actor, account: AccountId, id: RoleId) -> Result<Role, AppError> {
        let read = self.store.read()?;
        let role = role_in(&read, account, id)?;
        self.authorize(
            &read,
            actor,
            account,
            target("roles", "get", "role", id.to_string()),
            self.now(),
        )?;
        Ok(role)
    }

    /// Create a custom role from catalog permissions.
    pub fn create_role(
        &self,
        actor: Actor,
        account: AccountId,
        name: &str,
        description: &str,
        permissions: &[String],
    ) -> Result<Role, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            self.create_role_in(tx, actor, account, name, description, permissions, now)
        })
    }

    /// [`Self::create_role`] inside a write transaction (for imports).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create_role_in(
        &self,
        tx: &mut WriteTx,
        actor: Actor,
        account: AccountId,
        name: &str,
        description: &str,
        permissions: &[String],
        now: Timestamp,
    ) -> Result<Role, AppError> {
        let create = target("roles", "create", "role", "new");
        let name = self.start_create(tx, actor, account, create, name, description, now)?;
        role_name_free(tx, account, &name, None)?;
        let permissions = known_permissions(&catalog(tx, account)?, permissions)?;
        let role = CustomRole {
            id: RoleId::generate(now)?,
            account,
            name,
            description: description.to_owned(),
            permissions,
            created_at: now,
        };
        let role = resource::created(tx, actor, now, role)?;
        Ok(custom_view(&role))
    }

    /// Change a custom role's name, description or permissions; the next decision sees it.
    pub fn update_role(
        &self,
        actor: Actor,
        account: AccountId,
        id: RoleId,
        patch: &TenancyPatch,
    ) -> Result<Role, AppError> {
        let now = self.now();
        self.store.write(|tx| {
            role_in(tx, account, id)?;
            self.authorize(
                tx,
                actor,
                account,
                target("roles", "update", "role", id.to_string()),
                now,
            )?;
            let before = custom_role_in(tx, account, id)?;
            let mut after = before.clone();
            if let Some(name) = &patch.name {
                after.name = tenancy::validate_name(name)?;
                role_name_free(tx, account, &after.name, Some(id))?;
            }
            if let Some(description) = &patch.description {
                tenancy::validate_description(description)?;
                after.description.clone_from(description);
            }
            if let Some(permissions) = &patch.permissions {
                after.permissions = known_permissions(&catalog(tx, account)?, permissions)?;
            }
            let after = resource::updated(tx, actor, now, &before, after)?;
            Ok(custom_view(&after))
        })
    }

    /// Delete a custom role; refused (naming the assignments) while it is assigned.
    pub fn delete_role(
        &self,
        actor: Actor,
        account: AccountId,
        id: RoleId,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            role_in(tx, account, id)?;
            self.authorize(
                tx,
                actor,
                account,
                target("roles", "delete", "role", id.to_string()),
                now,
            )?;
            let role = custom_role_in(tx, account, id)?;
            let assigned: Vec<String> = tx
                .role_assignments(account)?
                .iter()
                .filter(|a| a.role == id)
                .map(|a| a.id.to_string())
                .collect();
            if !assigned.is_empty() {
                return Err(AppError::InUse {
                    what: format!("role {}", role.name),
                    field: "assignments",
                    by: assigned,
                });
            }
            resource::deleted(tx, actor, now, &role)
        })
    }

    /// Assign a role to a member or bot user, in one tenant or (`None`) all.
    pub fn assign_role(
        &self,
        actor: Actor,
        account: AccountId,
        principal: Owner,
        role: RoleId,
        tenant: Option<TenantId>,
    ) -> Result<NamedAssignment, AppError> {
        let now = self.now();
        self.store
            .write(|tx| self.insert_assignment(tx, actor, account, (principal, role, tenant), now))
    }

    /// Make many role assignments in batched transactions (each still checked, authorized
    /// and recorded as an event); for imports and seeding.
    pub fn assign_roles_bulk(
        &self,
        actor: Actor,
        account: AccountId,
        assignments: &[(Owner, RoleId, Option<TenantId>)],
        batch: usize,
    ) -> Result<usize, AppError> {
        for chunk in assignments.chunks(batch.max(1)) {
            let now = self.now();
            self.store.write(|tx| {
                for wanted in chunk {
                    self.insert_assignment(tx, actor, account, *wanted, now)?;
                }
                Ok::<_, AppError>(())
            })?;
        }
        Ok(assignments.len())
    }

    pub(crate) fn insert_assignment(
        &self,
        tx: &mut WriteTx,
        actor: Actor,
        account: AccountId,
        (principal, role, tenant): (Owner, RoleId, Option<TenantId>),
        now: Timestamp,
    ) -> Result<NamedAssignment, AppError> {
        require_account(tx, account)?;
        let create = target("role_assignments", "create", "role_assignment", "new");
        self.authorize(tx, actor, account, create, now)?;
        if tx.standing(account, principal)?.is_none() {
            return Err(DomainError::NotFound(id::AnyId(principal.id_string())).into());
        }
        let found = role_in(tx, account, role)?;
        if let Some(tenant) = tenant {
            Tenant::find(tx, account, tenant)?;
        }
        if found.builtin {
            tenancy::check_scope(&found.name, tenant)?;
        }
        // The principal's own assignments, through its index: at any account size.
        let held = tx
            .principal_assignments(account, principal)?
            .into_iter()
            .find(|a| a.role == role && a.tenant == tenant);
        if let Some(assignment) = held {
            // Granted by a SCIM group or an identity provider: it is now also held
            // directly, and stays when they stop granting it.
            let mut sources = grants::of_assignment(tx, assignment.id)?;
            if sources.contains(&GrantSource::Direct) {
                return Err(DomainError::Conflict {
                    what: "this role assignment",
                }
                .into());
            }
            sources.insert(0, GrantSource::Direct);
            tx.put_assignment_sources(
                assignment.id,
                &AssignmentSources {
                    sources: sources.clone(),
                },
            )?;
            let snapshot = Snapshot::RoleAssignment(assignment.clone());
            record(
                tx,
                &account,
                now,
                actor,
                event(TenancyObject::RoleAssignment, Change::Updated),
                assignment.id.to_string(),
                Some(snapshot.clone()),
                Some(snapshot),
            )?;
            return Ok(NamedAssignment {
                assignment,
                role: found.name,
                sources,
            });
        }
        let assignment = put_assignment(tx, actor, account, principal, role, tenant, now)?;
        Ok(NamedAssignment {
            assignment,
            role: found.name,
            sources: vec![GrantSource::Direct],
        })
    }

    /// One role assignment of the account.
    pub fn role_assignment(
        &self,
        actor: Actor,
        account: AccountId,
        id: RoleAssignmentId,
    ) -> Result<NamedAssignment, AppError> {
        let read = self.store.read()?;
        let assignment = RoleAssignment::find(&read, account, id)?;
        let get = target("role_assignments", "get", "role_assignment", id.to_string());
        self.authorize(&read, actor, account, get, self.now())?;
        let role = role_in(&read, account, assignment.role)?.name;
        let sources = grants::of_assignment(&read, assignment.id)?;
        Ok(NamedAssignment {
            assignment,
            role,
            sources,
        })
    }

    /// The account's role assignments matching `filter`, newest first.
    pub fn role_assignments(
        &self,
        actor: Actor,
        account: AccountId,
        filter: AssignmentFilter,
        page: PageRequest,
    ) -> Result<Page<NamedAssignment>, AppError> {
        let read = self.store.read()?;
        let list = target(
            "role_assignments",
            "list",
            "role_assignment",
            account.to_string(),
        );
        self.authorize(&read, actor, account, list, self.now())?;
        let names = role_names(&read, account)?;
        let found = read.role_assignments_page(account, filter.principal, page, |a| {
            filter.role.is_none_or(|r| a.role == r)
                && filter.tenant.is_none_or(|t| a.tenant == Some(t))
        })?;
        let mut page = found.map(|assignment| NamedAssignment {
            role: names(assignment.role),
            assignment,
            sources: Vec::new(),
        });
        for named in &mut page.items {
            named.sources = grants::of_assignment(&read, named.assignment.id)?;
        }
        Ok(page)
    }

    /// Remove a role assignment.
    pub fn unassign_role(
        &self,
        actor: Actor,
        account: AccountId,
        id: RoleAssignmentId,
    ) -> Result<(), AppError> {
        let now = self.now();
        self.store.write(|tx| {
            let assignment = RoleAssignment::find(tx, account, id)?;
            let delete = target(
                "role_assignments",
                "delete",
                "role_assignment",
                id.to_string(),
            );
            self.authorize(tx, actor, account, delete, now)?;
            let granted: Vec<String> = grants::of_assignment(tx, id)?
                .into_iter()
                .filter(|source| *source != GrantSource::Direct)
                .map(|source| source.to_string())
                .collect();
            if !granted.is_empty() {
                return Err(AppError::Precondition(format!(
                    "this role assignment is granted by {}; it ends when they stop granting it (the member leaves the group, or the mapping changes)",
                    granted.join(" and ")
                )));
            }
            resource::deleted(tx, actor, now, &assignment)
        })
    }

    /// Every member and bot user of the account with its role assignments and the
    /// permissions each grants, from one snapshot: the access review of seed 003.
    pub fn access_review(
        &self,
        actor: Actor,
        account: AccountId,
    ) -> Result<Vec<ReviewedPrincipal>, AppError> {
        let read = self.store.read()?;
        require_account(&read, account)?;
        let get = target("access_review", "get", "access_review", account.to_string());
        self.authorize(&read, actor, account, get, self.now())?;
        let catalog = catalog(&read, account)?;
        let customs = read.custom_roles(account)?;
        let assignments = read.role_assignments(account)?;
        let granted = |role: RoleId| -> (String, Vec<String>) {
            if let Some((name, _)) = tenancy::builtin_role(role) {
                return (name.to_owned(), role_permissions(name, None, &catalog));
            }
            customs.iter().find(|r| r.id == role).map_or_else(
                || (role.to_string(), Vec::new()),
                |r| (r.name.clone(), role_permissions(&r.name, Some(r), &catalog)),
            )
        };
        let mut principals = Vec::new();
        for membership in read.members(account)? {
            if let Some(user) = read.user(membership.user)? {
                principals.push((
                    Owner::User(user.id),
                    user.name.clone(),
                    Some(user.email.as_str().to_owned()),
                ));
            }
        }
        for bot in read.bots(account)? {
            principals.push((Owner::Bot(bot.id), bot.name.clone(), None));
        }
        principals
            .into_iter()
            .map(|(principal, name, email)| {
                Ok(ReviewedPrincipal {
                    assignments: assignments
                        .iter()
                        .filter(|a| a.principal == principal)
                        .map(|a| {
                            let (role, permissions) = granted(a.role);
                            let sources = grants::of_assignment(&read, a.id)?;
                            Ok((
                                NamedAssignment {
                                    assignment: a.clone(),
                                    role,
                                    sources,
                                },
                                permissions,
                            ))
                        })
                        .collect::<Result<_, AppError>>()?,
                    principal,
                    name,
                    email,
                })
            })
            .collect()
    }
}

/// A lookup of role names by id, for listing many assignments from one snapshot.
fn role_names(tx: &impl Reads, account: AccountId) -> Result<impl Fn(RoleId) -> String, AppError> {
    let customs: Vec<(RoleId, String)> = tx
        .custom_roles(account)?
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect();
    Ok(move |id: RoleId| {
        tenancy::builtin_role(id).map_or_else(
            || {
                customs
                    .iter()
                    .find(|(custom, _)| *custom == id)
                    .map_or_else(|| id.to_string(), |(_, name)| name.clone())
            },
            |(name, _)| name.to_owned(),
        )
    })
}
