//! The SCIM part of account settings: the endpoint and its tokens (made once, revoked),
//! and the groups the identity provider pushed, each with the editor of what it maps to
//! (account roles, tenant role assignments). Administrators only, as the API.

use hyper::StatusCode;
use maud::{Markup, html};

use super::console::Console;
use super::pages::{csrf_field, when};
use super::team::{role_fields, roles_from, tenant_role};
use super::{Answer, AppOrApi, Form, Notice, Web, blocking, pages};
use crate::app::{AppError, Latchkey, MappingPatch, MappingSpec};
use crate::domain::DomainError;
use crate::domain::account::{Account, Provisioning};
use crate::domain::event::Actor;
use crate::domain::grant::Granted;
use crate::domain::id::{AccountId, AnyId, RoleId, ScimGroupId, ScimTokenId, TenantId};
use crate::domain::scim::{ScimGroup, ScimGroupMapping, ScimToken};
use crate::domain::tenancy::{Role, Tenant};
use crate::domain::user::{BillingRole, DeveloperRole, Roles, TeamRole};
use crate::store::PageRequest;

/// What the SCIM section shows, read as far as the member may read.
#[derive(Debug, Default)]
pub(super) struct ScimListing {
    tokens: Vec<ScimToken>,
    groups: Vec<(ScimGroup, Option<ScimGroupMapping>)>,
    /// The roles and tenants a mapping may name (for the editor).
    roles: Vec<Role>,
    tenants: Vec<Tenant>,
}

/// Which parts of the listing the member may read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wanted {
    tokens: bool,
    groups: bool,
    access: bool,
}

impl ScimListing {
    pub(super) fn wanted(console: &Console) -> Wanted {
        Wanted {
            tokens: console.may("scim_tokens.list"),
            groups: console.may("scim_groups.list"),
            access: console.may("roles.list") && console.may("tenants.list"),
        }
    }

    pub(super) fn read(
        lk: &Latchkey,
        actor: Actor,
        account: AccountId,
        wanted: Wanted,
    ) -> Result<ScimListing, AppError> {
        let mut listing = ScimListing::default();
        if wanted.tokens {
            listing.tokens = lk.scim_tokens(actor, account)?;
        }
        if wanted.groups {
            listing.groups = lk.mapped_scim_groups(actor, account)?;
        }
        if wanted.groups && wanted.access {
            listing.roles = lk.roles(actor, account)?;
            let all = PageRequest {
                before: None,
                limit: 200,
            };
            listing.tenants = lk.tenants(actor, account, all)?.items;
        }
        Ok(listing)
    }

    fn role_name(&self, id: RoleId) -> String {
        self.roles
            .iter()
            .find(|r| r.id == id)
            .map_or_else(|| id.to_string(), |r| r.name.clone())
    }

    fn tenant_name(&self, id: Option<TenantId>) -> String {
        id.map_or_else(
            || "all tenants".to_owned(),
            |id| {
                self.tenants
                    .iter()
                    .find(|t| t.id == id)
                    .map_or_else(|| id.to_string(), |t| t.name.clone())
            },
        )
    }
}

fn not_found(id: &str) -> AppOrApi {
    AppOrApi::App(AppError::Domain(DomainError::NotFound(AnyId(
        id.to_owned(),
    ))))
}

/// A role assignment as the editor posts it: `rol_…:tnt_…`, or `rol_…:all`.
fn granted_of(text: &str) -> Result<Granted, AppOrApi> {
    let bad =
        || AppOrApi::App(DomainError::invalid("role_assignments", "not a role and tenant").into());
    let (role, tenant) = text.split_once(':').ok_or_else(bad)?;
    let role: RoleId = role.parse().map_err(|_| bad())?;
    let tenant = match tenant {
        "all" => None,
        id => Some(id.parse::<TenantId>().map_err(|_| bad())?),
    };
    Ok((role, tenant))
}

fn granted_text((role, tenant): Granted) -> String {
    format!(
        "{role}:{}",
        tenant.map_or_else(|| "all".to_owned(), |t| t.to_string())
    )
}

impl Web {
    /// `POST /ui/settings/scim-tokens/new`: a SCIM token, shown once with the endpoint's
    /// URL to give the identity provider.
    pub(super) async fn add_scim_token(&self, console: &Console, form: &Form) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let description = form.get("description").to_owned();
        match blocking(move || lk.create_scim_token(actor, account, &description)).await {
            Ok((made, secret)) => Ok(console.render(
                StatusCode::CREATED,
                "New SCIM token",
                html! {
                    p { "Give your identity provider the SCIM endpoint " code { (console.origin) "/scim/v2" } " and this token (as a bearer token, or Okta's \u{201c}HTTP Header\u{201d})." }
                    (pages::secret_once("SCIM token", &made.id.to_string(), secret.expose(), "/ui/settings#scim"))
                },
            )),
            Err(refused) => self.settings(console, None, Some(refused.explain())).await,
        }
    }

    /// `POST /ui/settings/scim-tokens/{id}/revoke`.
    pub(super) async fn revoke_scim_token(
        &self,
        console: &Console,
        id: &str,
    ) -> Result<Notice, AppOrApi> {
        let token: ScimTokenId = id.parse().map_err(|_| not_found(id))?;
        let (lk, actor, account) = self.acting(console);
        blocking(move || lk.revoke_scim_token(actor, account, token))
            .await
            .map(|()| Notice::ScimTokenRevoked)
    }

    /// `POST /ui/settings/scim-groups/{id}/mapping`: make or change what a group maps
    /// to. The assignments kept (`keep`) and the one added (`role_id` in `tenant_id`, as
    /// the team page's forms post it);
    /// account roles when `grant_roles` is checked. Granting Administrator asks for the
    /// member's password again, as on the team page.
    pub(super) async fn save_group_mapping(
        &self,
        console: &Console,
        id: &str,
        form: &Form,
    ) -> Result<Notice, AppOrApi> {
        let group: ScimGroupId = id.parse().map_err(|_| not_found(id))?;
        let roles = form
            .checked("grant_roles")
            .then(|| roles_from(form).apply(Roles::default()));
        let mut assignments = Vec::new();
        for kept in form.all("keep") {
            assignments.push(granted_of(kept)?);
        }
        for added in tenant_role(form)? {
            if !assignments.contains(&added) {
                assignments.push(added);
            }
        }
        let (lk, actor, account) = self.acting(console);
        let existing = {
            let lk = std::sync::Arc::clone(&lk);
            blocking(move || lk.mapped_scim_group(actor, account, group))
                .await?
                .1
        };
        let held_admin = existing
            .as_ref()
            .is_some_and(|m| m.roles.is_some_and(|r| r.admin));
        let grants_admin = roles.is_some_and(|r| r.admin);
        self.confirm_if(console, grants_admin && !held_admin, form)
            .await?;
        blocking(move || match existing {
            Some(mapping) => lk
                .update_scim_group_mapping(
                    actor,
                    account,
                    mapping.id,
                    MappingPatch {
                        roles: Some(roles),
                        role_assignments: Some(assignments),
                    },
                )
                .map(drop),
            None => lk
                .create_scim_group_mapping(
                    actor,
                    account,
                    group,
                    MappingSpec {
                        roles,
                        role_assignments: assignments,
                    },
                )
                .map(drop),
        })
        .await
        .map(|()| Notice::MappingSaved)
    }

    /// `POST /ui/settings/scim-groups/{id}/unmap`: the group's members lose what it
    /// granted.
    pub(super) async fn unmap_group(
        &self,
        console: &Console,
        id: &str,
    ) -> Result<Notice, AppOrApi> {
        let group: ScimGroupId = id.parse().map_err(|_| not_found(id))?;
        let (lk, actor, account) = self.acting(console);
        blocking(move || {
            let (_, mapping) = lk.mapped_scim_group(actor, account, group)?;
            let mapping =
                mapping.ok_or_else(|| AppError::Domain(DomainError::NotFound(group.into())))?;
            lk.delete_scim_group_mapping(actor, account, mapping.id)
        })
        .await
        .map(|()| Notice::MappingRemoved)
    }
}

/// SCIM: the endpoint, the account's tokens (revoke), a form for a new one, and the
/// groups with what each maps to.
pub(super) fn scim_section(console: &Console, account: &Account, listing: &ScimListing) -> Markup {
    let csrf = console.csrf();
    html! {
        section aria-labelledby="scim" {
            h2 #scim { "SCIM provisioning" }
            p {
                "Your identity provider makes, changes, disables and removes members through SCIM at "
                code { (console.origin) "/scim/v2" }
                " with a token made here. "
                @if account.settings.provisioning == Provisioning::Scim {
                    "New members come through SCIM now."
                } @else {
                    "It writes only once \u{201c}New members\u{201d} above is SCIM (which needs single sign-on configured); until then it can only read."
                }
            }
            @if !listing.tokens.is_empty() {
                div.scroll {
                    table {
                        thead { tr { th { "Token" } th { "For" } th { "Made" } th { "Last used" } th { span.visually-hidden { "Revoke" } } } }
                        tbody {
                            @for token in &listing.tokens {
                                tr {
                                    td { code { (token.id.to_string()) } }
                                    td { (token.description) }
                                    td { (when(token.created_at)) }
                                    td { (token.last_used_at.map_or_else(|| "never".to_owned(), when)) }
                                    td {
                                        @if console.may("scim_tokens.delete") {
                                            form.inline method="post" action=(format!("/ui/settings/scim-tokens/{}/revoke", token.id)) {
                                                (csrf_field(csrf))
                                                button.danger type="submit" { "Revoke " (token.id.to_string()) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if console.may("scim_tokens.create") {
                form method="post" action="/ui/settings/scim-tokens/new" {
                    (csrf_field(csrf))
                    label for="scim-description" { "What it is for (which identity provider holds it)" }
                    input #scim-description type="text" name="description" maxlength="255";
                    button type="submit" { "Make a SCIM token" }
                }
            }
            @if console.may("scim_groups.list") {
                h3 #scim-groups { "Groups" }
                p { "Map a group your identity provider pushes to account roles and tenant roles: its members hold them while they are in it. A member's roles are what was set on it directly together with what its groups grant." }
                @if listing.groups.is_empty() {
                    p { "No group yet: assign groups to the application at your identity provider and push them." }
                } @else {
                    div.scroll {
                        table {
                            thead { tr { th { "Group" } th { "Members" } th { "Maps to" } } }
                            tbody {
                                @for (group, mapping) in &listing.groups {
                                    tr {
                                        td { (group.display_name) }
                                        td { (group.members.len()) }
                                        td { (mapping_text(listing, mapping.as_ref())) }
                                    }
                                }
                            }
                        }
                    }
                    @if console.may("scim_group_mappings.create") && console.may("scim_group_mappings.update") {
                        @for (group, mapping) in &listing.groups {
                            (mapping_editor(console, listing, group, mapping.as_ref()))
                        }
                    }
                }
            }
        }
    }
}

/// What a mapping grants, in words.
fn mapping_text(listing: &ScimListing, mapping: Option<&ScimGroupMapping>) -> String {
    let Some(mapping) = mapping else {
        return "nothing".to_owned();
    };
    let mut parts = Vec::new();
    if let Some(roles) = mapping.roles {
        parts.push(roles_text(roles));
    }
    for (role, tenant) in &mapping.role_assignments {
        parts.push(format!(
            "{} in {}",
            listing.role_name(*role),
            listing.tenant_name(*tenant)
        ));
    }
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The roles a mapping grants above the least (a read-only role grants nothing more).
fn roles_text(roles: Roles) -> String {
    let mut words = Vec::new();
    if roles.developer == DeveloperRole::ReadWrite {
        words.push("Developer read/write");
    }
    match roles.team {
        TeamRole::Manager => words.push("Team manager"),
        TeamRole::Invite => words.push("Team invite"),
        TeamRole::ReadOnly => {}
    }
    if roles.billing == BillingRole::Access {
        words.push("Billing");
    }
    if roles.admin {
        words.push("Administrator");
    }
    if words.is_empty() {
        "no account role beyond the least".to_owned()
    } else {
        words.join(", ")
    }
}

/// The editor of one group's mapping, folded away until opened.
fn mapping_editor(
    console: &Console,
    listing: &ScimListing,
    group: &ScimGroup,
    mapping: Option<&ScimGroupMapping>,
) -> Markup {
    let prefix = format!("map-{}", group.id);
    let roles = mapping.and_then(|m| m.roles);
    html! {
        details {
            summary { "Map \u{201c}" (group.display_name) "\u{201d}" }
            form method="post" action=(format!("/ui/settings/scim-groups/{}/mapping", group.id)) {
                (csrf_field(console.csrf()))
                div.check {
                    input id=(format!("{prefix}-grant")) type="checkbox" name="grant_roles" value="on" checked[roles.is_some()];
                    label for=(format!("{prefix}-grant")) { "Grant these account roles" }
                }
                (role_fields(&roles.unwrap_or_default(), &prefix))
                @if let Some(mapping) = mapping {
                    @if !mapping.role_assignments.is_empty() {
                        fieldset {
                            legend { "Tenant roles it grants (uncheck to stop)" }
                            @for (index, granted) in mapping.role_assignments.iter().enumerate() {
                                div.check {
                                    input id=(format!("{prefix}-keep-{index}")) type="checkbox" name="keep" value=(granted_text(*granted)) checked;
                                    label for=(format!("{prefix}-keep-{index}")) { (listing.role_name(granted.0)) " in " (listing.tenant_name(granted.1)) }
                                }
                            }
                        }
                    }
                }
                @if !listing.roles.is_empty() {
                    fieldset {
                        legend { "Add a tenant role" }
                        label for=(format!("{prefix}-add-role")) { "Role" }
                        select id=(format!("{prefix}-add-role")) name="role_id" {
                            option value="" { "none" }
                            @for role in &listing.roles {
                                option value=(role.id.to_string()) { (role.name) }
                            }
                        }
                        label for=(format!("{prefix}-add-tenant")) { "In" }
                        select id=(format!("{prefix}-add-tenant")) name="tenant_id" {
                            option value="" { "all tenants" }
                            @for tenant in &listing.tenants {
                                option value=(tenant.id.to_string()) { (tenant.name) }
                            }
                        }
                    }
                }
                button type="submit" { "Save the mapping of " (group.display_name) }
            }
            @if mapping.is_some() && console.may("scim_group_mappings.delete") {
                form.inline method="post" action=(format!("/ui/settings/scim-groups/{}/unmap", group.id)) {
                    (csrf_field(console.csrf()))
                    button.danger type="submit" { "Remove the mapping of " (group.display_name) }
                }
            }
        }
    }
}
