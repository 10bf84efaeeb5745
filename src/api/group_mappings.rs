//! `/scim_groups` and `/scim_group_mappings`: the groups an account's identity provider
//! pushes over SCIM (read-only here; SCIM writes them), and what an administrator maps
//! each to: account roles (never `admin` unless the mapping says `"admin": true`) and
//! tenant role assignments its members hold while they are in it.

use super::handlers::{Ctx, RolesBody};
use super::request::*;
use super::*;
use crate::app::{MappingPatch, MappingSpec};
use crate::domain::id::{ScimGroupId, ScimGroupMappingId};
use crate::domain::user::Roles;

/// `POST /scim_group_mappings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingCreate {
    scim_group_id: String,
    roles: Option<RolesBody>,
    #[serde(default)]
    role_assignments: Vec<AssignmentBody>,
}

/// `PATCH /scim_group_mappings/{id}`: `roles: null` grants no account roles; a field left
/// out keeps its value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingUpdate {
    #[serde(default, deserialize_with = "given")]
    roles: Option<Option<RolesBody>>,
    role_assignments: Option<Vec<AssignmentBody>>,
}

/// A field that may be `null` (a value in itself), told apart from one left out.
fn given<'de, D, T>(field: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(field).map(Some)
}

/// Roles as a mapping grants them: what is left out is the least (so `admin` only when
/// given as `true`).
fn roles(body: Option<RolesBody>) -> Option<Roles> {
    body.map(|r| r.patch().apply(Roles::default()))
}

impl Ctx {
    /// `GET /scim_groups`: the account's SCIM groups with their mappings' ids.
    pub(super) async fn list_scim_groups(self) -> Reply {
        let (lk, actor, account) = self.caller();
        let mut found = blocking(move || lk.mapped_scim_groups(actor, account)).await?;
        found.reverse();
        self.list(
            "/scim_groups",
            "scim_groups",
            found,
            |(g, _)| g.id,
            |(g, m)| views::scim_group(&self.base, g, m.as_ref(), false),
        )
    }

    /// `GET /scim_groups/{id}`: with its members.
    pub(super) async fn get_scim_group(self, id: &str) -> Reply {
        let id: ScimGroupId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        let (group, mapping) = blocking(move || lk.mapped_scim_group(actor, account, id)).await?;
        self.ok(&views::scim_group(
            &self.base,
            &group,
            mapping.as_ref(),
            true,
        ))
    }

    /// `GET /scim_group_mappings`.
    pub(super) async fn list_scim_group_mappings(self) -> Reply {
        let (lk, actor, account) = self.caller();
        let mut found = blocking(move || lk.scim_group_mappings(actor, account)).await?;
        found.reverse();
        self.list(
            "/scim_group_mappings",
            "scim_group_mappings",
            found,
            |m| m.mapping.id,
            |m| views::scim_group_mapping(&self.base, &m.mapping, Some(&m.group)),
        )
    }

    /// `POST /scim_group_mappings`: the group's members hold what it grants at once.
    pub(super) async fn create_scim_group_mapping(self) -> Reply {
        let body: MappingCreate = parse(&self.body)?;
        let group: ScimGroupId = field_id(&body.scim_group_id, "scim_group_id")?;
        let spec = MappingSpec {
            roles: roles(body.roles),
            role_assignments: assignments_of(&body.role_assignments, "role_assignments")?,
        };
        let (lk, actor, account) = self.caller();
        let made =
            blocking(move || lk.create_scim_group_mapping(actor, account, group, spec)).await?;
        self.created(&views::scim_group_mapping(
            &self.base,
            &made.mapping,
            Some(&made.group),
        ))
    }

    /// `GET /scim_group_mappings/{id}`.
    pub(super) async fn get_scim_group_mapping(self, id: &str) -> Reply {
        let id: ScimGroupMappingId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        let found = blocking(move || lk.scim_group_mapping(actor, account, id)).await?;
        self.ok(&views::scim_group_mapping(
            &self.base,
            &found.mapping,
            Some(&found.group),
        ))
    }

    /// `PATCH /scim_group_mappings/{id}`.
    pub(super) async fn update_scim_group_mapping(self, id: &str) -> Reply {
        let id: ScimGroupMappingId = path_id(id)?;
        let body: MappingUpdate = parse(&self.body)?;
        let patch = MappingPatch {
            roles: body.roles.map(roles),
            role_assignments: body
                .role_assignments
                .map(|a| assignments_of(&a, "role_assignments"))
                .transpose()?,
        };
        let (lk, actor, account) = self.caller();
        let after =
            blocking(move || lk.update_scim_group_mapping(actor, account, id, patch)).await?;
        self.ok(&views::scim_group_mapping(
            &self.base,
            &after.mapping,
            Some(&after.group),
        ))
    }

    /// `DELETE /scim_group_mappings/{id}`: the members lose what it granted.
    pub(super) async fn delete_scim_group_mapping(self, id: &str) -> Reply {
        let id: ScimGroupMappingId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        blocking(move || lk.delete_scim_group_mapping(actor, account, id)).await?;
        Ok(no_content())
    }
}
