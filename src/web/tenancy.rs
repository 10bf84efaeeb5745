//! Tenants, roles and tenant access (seed 003): the tenants of the account; the five
//! built-in roles (read-only) and custom roles made from the permission catalog shown by
//! category as checkboxes; and on a member's or bot's page, its tenant access: per
//! tenant (or all tenants) a role.

use maud::{Markup, html};

use super::console::Console;
use super::pages::{button_form, csrf_field, error_line, notice_line, when};
use super::{Answer, AppOrApi, Form, Notice, Refusal, Web, blocking, done, not_found, status_of};
use crate::app::{AssignmentFilter, NamedAssignment, TenancyPatch};
use crate::domain::credential::Owner;
use crate::domain::id::{RoleAssignmentId, RoleId, TenantId};
use crate::domain::tenancy::{CatalogEntry, Role, Tenant};
use crate::store::PageRequest;

/// Tenants listed at most on one page (and offered in a tenant choice).
const TENANTS: usize = 200;

/// What a principal's tenant access section shows and offers.
pub(super) struct Access {
    pub assignments: Vec<NamedAssignment>,
    pub roles: Vec<Role>,
    pub tenants: Vec<Tenant>,
}

impl Web {
    /// `GET /ui/tenants`.
    pub(super) async fn tenants(
        &self,
        console: &Console,
        notice: Option<Notice>,
        error: Refusal,
    ) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let tenants = blocking(move || {
            lk.tenants(
                actor,
                account,
                PageRequest {
                    before: None,
                    limit: TENANTS,
                },
            )
        })
        .await?;
        let (status, error) = status_of(error);
        Ok(console.render(
            status,
            "Tenants",
            tenants_page(console, &tenants.items, notice, error.as_deref()),
        ))
    }

    /// `GET /ui/tenants/{id}`: the tenant, and who holds which role in it.
    pub(super) async fn tenant_page(
        &self,
        console: &Console,
        id: &str,
        notice: Option<Notice>,
        error: Refusal,
    ) -> Answer {
        let Ok(id) = id.parse::<TenantId>() else {
            return Err(not_found());
        };
        let (lk, actor, account) = self.acting(console);
        let see_assignments = console.may("role_assignments.list");
        let (tenant, holders) = blocking(move || {
            let tenant = lk.tenant(actor, account, id)?;
            let holders = if see_assignments {
                let filter = AssignmentFilter {
                    tenant: Some(id),
                    ..AssignmentFilter::default()
                };
                let page = PageRequest {
                    before: None,
                    limit: TENANTS,
                };
                lk.role_assignments(actor, account, filter, page)?.items
            } else {
                Vec::new()
            };
            Ok((tenant, holders))
        })
        .await?;
        let (status, error) = status_of(error);
        Ok(console.render(
            status,
            &format!("Tenant {}", tenant.name),
            tenant_detail(console, &tenant, &holders, notice, error.as_deref()),
        ))
    }

    /// `POST /ui/tenants/new`, `/ui/tenants/{id}/update`, `/ui/tenants/{id}/delete`.
    pub(super) async fn tenant_post(
        &self,
        console: &Console,
        rest: &[&str],
        form: &Form,
    ) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let name = form.get("name").trim().to_owned();
        let description = form.get("description").trim().to_owned();
        match rest {
            ["new"] => {
                match blocking(move || lk.create_tenant(actor, account, &name, &description)).await
                {
                    Ok(tenant) => done(&format!("/ui/tenants/{}", tenant.id), Notice::TenantSaved),
                    Err(refused) => self.tenants(console, None, Some(refused.explain())).await,
                }
            }
            [id, action @ ("update" | "delete")] => {
                let Ok(tenant) = id.parse::<TenantId>() else {
                    return Err(not_found());
                };
                let result = if *action == "delete" {
                    blocking(move || lk.delete_tenant(actor, account, tenant))
                        .await
                        .map(|()| None)
                } else {
                    let patch = TenancyPatch {
                        name: Some(name),
                        description: Some(description),
                        permissions: None,
                    };
                    blocking(move || lk.update_tenant(actor, account, tenant, &patch))
                        .await
                        .map(Some)
                };
                match result {
                    Ok(None) => done("/ui/tenants", Notice::TenantDeleted),
                    Ok(Some(_)) => done(&format!("/ui/tenants/{tenant}"), Notice::TenantSaved),
                    Err(refused) => {
                        self.tenant_page(console, id, None, Some(refused.explain()))
                            .await
                    }
                }
            }
            _ => Err(not_found()),
        }
    }

    /// `GET /ui/roles`: the built-in and custom roles, and a new role from the catalog.
    pub(super) async fn roles(
        &self,
        console: &Console,
        notice: Option<Notice>,
        error: Refusal,
    ) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let may_create = console.may("roles.create");
        let (roles, catalog) = blocking(move || {
            let roles = lk.roles(actor, account)?;
            let catalog = if may_create {
                lk.permissions(actor, account)?
            } else {
                Vec::new()
            };
            Ok((roles, catalog))
        })
        .await?;
        let (status, error) = status_of(error);
        Ok(console.render(
            status,
            "Roles",
            roles_page(console, &roles, &catalog, notice, error.as_deref()),
        ))
    }

    /// `GET /ui/roles/{id}`: a role's permissions (editable for a custom role).
    pub(super) async fn role_page(
        &self,
        console: &Console,
        id: &str,
        notice: Option<Notice>,
        error: Refusal,
    ) -> Answer {
        let Ok(id) = id.parse::<RoleId>() else {
            return Err(not_found());
        };
        let (lk, actor, account) = self.acting(console);
        let (role, catalog) = blocking(move || {
            let role = lk.role(actor, account, id)?;
            let catalog = lk.permissions(actor, account).unwrap_or_default();
            Ok((role, catalog))
        })
        .await?;
        let (status, error) = status_of(error);
        Ok(console.render(
            status,
            &format!("Role {}", role.name),
            role_detail(console, &role, &catalog, notice, error.as_deref()),
        ))
    }

    /// `POST /ui/roles/new`, `/ui/roles/{id}/update`, `/ui/roles/{id}/delete`.
    pub(super) async fn role_post(&self, console: &Console, rest: &[&str], form: &Form) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let name = form.get("name").trim().to_owned();
        let description = form.get("description").trim().to_owned();
        let permissions: Vec<String> = form.all("permission").map(str::to_owned).collect();
        match rest {
            ["new"] => match blocking(move || {
                lk.create_role(actor, account, &name, &description, &permissions)
            })
            .await
            {
                Ok(role) => done(&format!("/ui/roles/{}", role.id), Notice::RoleSaved),
                Err(refused) => self.roles(console, None, Some(refused.explain())).await,
            },
            [id, action @ ("update" | "delete")] => {
                let Ok(role) = id.parse::<RoleId>() else {
                    return Err(not_found());
                };
                let result = if *action == "delete" {
                    blocking(move || lk.delete_role(actor, account, role))
                        .await
                        .map(|()| None)
                } else {
                    let patch = TenancyPatch {
                        name: Some(name),
                        description: Some(description),
                        permissions: Some(permissions),
                    };
                    blocking(move || lk.update_role(actor, account, role, &patch))
                        .await
                        .map(Some)
                };
                match result {
                    Ok(None) => done("/ui/roles", Notice::RoleDeleted),
                    Ok(Some(_)) => done(&format!("/ui/roles/{role}"), Notice::RoleSaved),
                    Err(refused) => {
                        self.role_page(console, id, None, Some(refused.explain()))
                            .await
                    }
                }
            }
            _ => Err(not_found()),
        }
    }

    /// The tenant access of `principal`, for its page (empty when the member may not
    /// list assignments).
    pub(super) async fn access_of(
        &self,
        console: &Console,
        principal: Owner,
    ) -> Result<Option<Access>, AppOrApi> {
        if !console.may("role_assignments.list") {
            return Ok(None);
        }
        let (lk, actor, account) = self.acting(console);
        let offer = console.may("role_assignments.create");
        blocking(move || {
            let filter = AssignmentFilter {
                principal: Some(principal),
                ..AssignmentFilter::default()
            };
            let all = PageRequest {
                before: None,
                limit: TENANTS,
            };
            let assignments = lk.role_assignments(actor, account, filter, all)?.items;
            let (roles, tenants) = if offer {
                (
                    lk.roles(actor, account)?,
                    lk.tenants(actor, account, all)?.items,
                )
            } else {
                (Vec::new(), Vec::new())
            };
            Ok(Some(Access {
                assignments,
                roles,
                tenants,
            }))
        })
        .await
    }

    /// `POST /ui/{members|bots}/{id}/access` (`role_id`, `tenant_id`, empty for all
    /// tenants) and `…/access-remove` (`assignment_id`, one of `principal`'s).
    pub(super) async fn access_post(
        &self,
        console: &Console,
        principal: Owner,
        remove: bool,
        form: &Form,
    ) -> Result<Notice, AppOrApi> {
        let (lk, actor, account) = self.acting(console);
        let invalid = |field: &'static str| {
            AppOrApi::App(
                crate::domain::DomainError::invalid(field, "is not one of the choices").into(),
            )
        };
        if remove {
            let id: RoleAssignmentId = form
                .get("assignment_id")
                .parse()
                .map_err(|_| invalid("assignment_id"))?;
            // Only an assignment of this principal: a page never removes another's.
            return blocking(move || {
                let found = lk.role_assignment(actor, account, id)?;
                if found.assignment.principal != principal {
                    return Err(crate::domain::DomainError::NotFound(id.into()).into());
                }
                lk.unassign_role(actor, account, id)
            })
            .await
            .map(|()| Notice::AccessRemoved);
        }
        let role: RoleId = form
            .get("role_id")
            .parse()
            .map_err(|_| invalid("role_id"))?;
        let tenant = match form.get("tenant_id") {
            "" => None,
            text => Some(text.parse::<TenantId>().map_err(|_| invalid("tenant_id"))?),
        };
        blocking(move || lk.assign_role(actor, account, principal, role, tenant))
            .await
            .map(|_| Notice::AccessAdded)
    }
}

/// The tenant access section of a member's or bot's page.
pub(super) fn access_section(console: &Console, access: &Access, base: &str) -> Markup {
    let csrf = console.csrf();
    let tenant_name = |id: Option<TenantId>| -> String {
        match id {
            None => "All tenants".to_owned(),
            Some(id) => access
                .tenants
                .iter()
                .find(|t| t.id == id)
                .map_or_else(|| id.to_string(), |t| t.name.clone()),
        }
    };
    html! {
        section aria-labelledby="access" {
            h2 #access { "Tenant access" }
            @if access.assignments.is_empty() {
                p { "No tenant roles." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "Tenant" } th { "Role" } th { "Since" } th { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for named in &access.assignments {
                            tr {
                                td { (tenant_name(named.assignment.tenant)) }
                                td { a href=(format!("/ui/roles/{}", named.assignment.role)) { (named.role) } }
                                td { (when(named.assignment.created_at)) }
                                td.actions {
                                    @if console.may("role_assignments.delete") {
                                        form.inline method="post" action=(format!("{base}/access-remove")) {
                                            (csrf_field(csrf))
                                            input type="hidden" name="assignment_id" value=(named.assignment.id.to_string());
                                            button.danger type="submit" { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
            @if console.may("role_assignments.create") && !access.roles.is_empty() {
                form method="post" action=(format!("{base}/access")) {
                    (csrf_field(csrf))
                    label for="access-tenant" { "Tenant" }
                    select #access-tenant name="tenant_id" {
                        option value="" { "All tenants" }
                        @for tenant in &access.tenants { option value=(tenant.id.to_string()) { (tenant.name) } }
                    }
                    label for="access-role" { "Role" }
                    select #access-role name="role_id" {
                        @for role in &access.roles { option value=(role.id.to_string()) { (role.name) } }
                    }
                    button type="submit" { "Give access" }
                }
            }
        }
    }
}

fn tenants_page(
    console: &Console,
    tenants: &[Tenant],
    notice: Option<Notice>,
    error: Option<&str>,
) -> Markup {
    html! {
        (notice_line(notice))
        (error_line(error))
        p { "Tenants are the customers or sites this account manages; roles are given per tenant or for all of them." }
        @if tenants.is_empty() { p { "No tenants yet." } } @else {
            div.scroll { table {
                thead { tr { th { "Name" } th { "Description" } th { "Made" } } }
                tbody {
                    @for tenant in tenants {
                        tr {
                            td { a href=(format!("/ui/tenants/{}", tenant.id)) { (tenant.name) } }
                            td { (tenant.description) }
                            td { (when(tenant.created_at)) }
                        }
                    }
                }
            } }
        }
        @if console.may("tenants.create") {
            section aria-labelledby="new-tenant" {
                h2 #new-tenant { "New tenant" }
                form method="post" action="/ui/tenants/new" {
                    (csrf_field(console.csrf()))
                    label for="tenant-name" { "Name" }
                    input #tenant-name type="text" name="name" maxlength="100" required;
                    label for="tenant-description" { "Description" }
                    input #tenant-description type="text" name="description" maxlength="255";
                    button type="submit" { "Create tenant" }
                }
            }
        }
    }
}

fn tenant_detail(
    console: &Console,
    tenant: &Tenant,
    holders: &[NamedAssignment],
    notice: Option<Notice>,
    error: Option<&str>,
) -> Markup {
    let csrf = console.csrf();
    let id = tenant.id;
    html! {
        (notice_line(notice))
        (error_line(error))
        dl {
            dt { "Id" } dd { code { (id.to_string()) } }
            dt { "Made" } dd { (when(tenant.created_at)) }
        }
        @if console.may("role_assignments.list") {
            section aria-labelledby="holders" {
                h2 #holders { "Roles in this tenant" }
                @if holders.is_empty() { p { "Nobody has a role in this tenant alone (roles for all tenants apply too)." } } @else {
                    ul {
                        @for named in holders {
                            li {
                                (principal_link(named.assignment.principal)) ": " (named.role)
                            }
                        }
                    }
                }
            }
        }
        @if console.may("tenants.update") {
            form method="post" action=(format!("/ui/tenants/{id}/update")) {
                (csrf_field(csrf))
                label for="tenant-name" { "Name" }
                input #tenant-name type="text" name="name" value=(tenant.name) maxlength="100" required;
                label for="tenant-description" { "Description" }
                input #tenant-description type="text" name="description" value=(tenant.description) maxlength="255";
                button type="submit" { "Save tenant" }
            }
        }
        @if console.may("tenants.delete") {
            section aria-labelledby="delete-tenant" {
                h2 #delete-tenant { "Delete" }
                p { "Deleting the tenant removes every role given in it." }
                (button_form(csrf, &format!("/ui/tenants/{id}/delete"), "Delete tenant", "danger"))
            }
        }
        p { a href="/ui/tenants" { "All tenants" } }
    }
}

fn principal_link(principal: Owner) -> Markup {
    let (href, text) = match principal {
        Owner::User(id) => (format!("/ui/members/{id}"), id.to_string()),
        Owner::Bot(id) => (format!("/ui/bots/{id}"), id.to_string()),
    };
    html! { a href=(href) { code { (text) } } }
}

/// The catalog as checkboxes by category (seed 003), ticked for `chosen`; read-only
/// when `locked`.
fn catalog_fields(catalog: &[CatalogEntry], chosen: &[String], locked: bool) -> Markup {
    // In catalog order: categories as they first appear.
    let mut by_category: Vec<(&str, Vec<&CatalogEntry>)> = Vec::new();
    for entry in catalog {
        match by_category.iter_mut().find(|(c, _)| *c == entry.category()) {
            Some((_, entries)) => entries.push(entry),
            None => by_category.push((entry.category(), vec![entry])),
        }
    }
    html! {
        div.catalog {
            @for (category, entries) in &by_category {
                fieldset {
                    legend { (category) }
                    @for entry in entries {
                        @let id = format!("perm-{}", entry.name.replace('.', "-"));
                        div.check {
                            input id=(id) type="checkbox" name="permission" value=(entry.name)
                                checked[chosen.contains(&entry.name)] disabled[locked];
                            label for=(id) { code { (entry.name) } " " span.muted { (entry.description) } }
                        }
                    }
                }
            }
        }
    }
}

fn roles_page(
    console: &Console,
    roles: &[Role],
    catalog: &[CatalogEntry],
    notice: Option<Notice>,
    error: Option<&str>,
) -> Markup {
    html! {
        (notice_line(notice))
        (error_line(error))
        div.scroll { table {
            thead { tr { th { "Role" } th { "Description" } th { "Permissions" } } }
            tbody {
                @for role in roles {
                    tr {
                        td { a href=(format!("/ui/roles/{}", role.id)) { (role.name) } @if role.builtin { br; small { "built-in" } } }
                        td { (role.description) }
                        td { (role.permissions.len()) }
                    }
                }
            }
        } }
        @if console.may("roles.create") {
            section aria-labelledby="new-role" {
                h2 #new-role { "Add role" }
                form method="post" action="/ui/roles/new" {
                    (csrf_field(console.csrf()))
                    label for="role-name" { "Name" }
                    input #role-name type="text" name="name" maxlength="100" required;
                    label for="role-description" { "Description" }
                    input #role-description type="text" name="description" maxlength="255";
                    (catalog_fields(catalog, &[], false))
                    button type="submit" { "Create role" }
                }
            }
        }
    }
}

fn role_detail(
    console: &Console,
    role: &Role,
    catalog: &[CatalogEntry],
    notice: Option<Notice>,
    error: Option<&str>,
) -> Markup {
    let csrf = console.csrf();
    let id = role.id;
    let editable = !role.builtin && console.may("roles.update");
    html! {
        (notice_line(notice))
        (error_line(error))
        @if role.builtin { p { "A built-in role: it cannot be changed." } }
        @if editable {
            form method="post" action=(format!("/ui/roles/{id}/update")) {
                (csrf_field(csrf))
                label for="role-name" { "Name" }
                input #role-name type="text" name="name" value=(role.name) maxlength="100" required;
                label for="role-description" { "Description" }
                input #role-description type="text" name="description" value=(role.description) maxlength="255";
                (catalog_fields(catalog, &role.permissions, false))
                button type="submit" { "Save role" }
            }
        } @else {
            p { (role.description) }
            @if catalog.is_empty() {
                ul { @for permission in &role.permissions { li { code { (permission) } } } }
            } @else {
                (catalog_fields(catalog, &role.permissions, true))
            }
        }
        @if !role.builtin && console.may("roles.delete") {
            section aria-labelledby="delete-role" {
                h2 #delete-role { "Delete" }
                p { "Deleting the role removes every assignment of it." }
                (button_form(csrf, &format!("/ui/roles/{id}/delete"), "Delete role", "danger"))
            }
        }
        p { a href="/ui/roles" { "All roles" } }
    }
}
