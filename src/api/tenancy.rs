//! `/tenants`, `/permissions`, `/roles`, `/role_assignments` and `/access_review`.

use super::handlers::{Ctx, required};
use super::request::*;
use super::*;
use crate::app::{AssignmentFilter, NamedAssignment, ReviewedPrincipal, TenancyPatch};
use crate::domain::id::{RoleAssignmentId, RoleId, TenantId};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantBody {
    name: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionCreate {
    name: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    name: Option<String>,
    description: Option<String>,
    permissions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentCreate {
    principal_id: Option<String>,
    role_id: Option<String>,
    tenant_id: Option<String>,
}

fn principal_field(text: &str, field: &str) -> Result<Owner, ApiError> {
    Owner::parse(text.trim()).map_err(|_| {
        ApiError::field(
            error::INVALID_FIELD,
            field,
            format!("{field} {text:?} is neither a usr_ nor a bot_ id"),
        )
    })
}

impl Ctx {
    pub(super) fn caller(&self) -> (Arc<Latchkey>, Actor, AccountId) {
        (Arc::clone(&self.lk), self.caller.actor, self.caller.account)
    }

    pub(super) async fn list_tenants(self) -> Reply {
        let page = self.page_request::<TenantId>("/tenants")?;
        let (lk, actor, account) = self.caller();
        let tenants = blocking(move || lk.tenants(actor, account, page)).await?;
        self.page_reply(
            "/tenants",
            "tenants",
            &tenants,
            |t| t.id,
            |t| views::tenant(&self.base, t),
        )
    }

    pub(super) async fn create_tenant(self) -> Reply {
        let body: TenantBody = parse(&self.body)?;
        let name = required(body.name.as_deref(), "name")?.to_owned();
        let description = body.description.unwrap_or_default();
        let (lk, actor, account) = self.caller();
        let tenant =
            blocking(move || lk.create_tenant(actor, account, &name, &description)).await?;
        self.created(&views::tenant(&self.base, &tenant))
    }

    pub(super) async fn get_tenant(self, id: &str) -> Reply {
        let id: TenantId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        let tenant = blocking(move || lk.tenant(actor, account, id)).await?;
        self.ok(&views::tenant(&self.base, &tenant))
    }

    pub(super) async fn update_tenant(self, id: &str) -> Reply {
        let id: TenantId = path_id(id)?;
        let body: TenantBody = parse(&self.body)?;
        let patch = TenancyPatch {
            name: body.name,
            description: body.description,
            permissions: None,
        };
        let (lk, actor, account) = self.caller();
        let tenant = blocking(move || lk.update_tenant(actor, account, id, &patch)).await?;
        self.ok(&views::tenant(&self.base, &tenant))
    }

    pub(super) async fn delete_tenant(self, id: &str) -> Reply {
        let id: TenantId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        blocking(move || lk.delete_tenant(actor, account, id)).await?;
        Ok(no_content())
    }

    pub(super) async fn list_permissions(self) -> Reply {
        let (lk, actor, account) = self.caller();
        let catalog = blocking(move || lk.permissions(actor, account)).await?;
        let permissions: Vec<Value> = catalog.iter().map(views::permission).collect();
        self.ok(&json!({
            "permissions": permissions,
            "uri": self.base.uri("/permissions"),
            "next_page_uri": null,
        }))
    }

    pub(super) async fn add_permission(self) -> Reply {
        let body: PermissionCreate = parse(&self.body)?;
        let name = required(body.name.as_deref(), "name")?.to_owned();
        let description = body.description.unwrap_or_default();
        let (lk, actor, account) = self.caller();
        let entry =
            blocking(move || lk.add_permission(actor, account, &name, &description)).await?;
        self.created(&views::permission(&entry))
    }

    pub(super) async fn get_permission(self, name: &str) -> Reply {
        let name = name.to_owned();
        let (lk, actor, account) = self.caller();
        let entry = blocking(move || lk.permission(actor, account, &name)).await?;
        self.ok(&views::permission(&entry))
    }

    pub(super) async fn remove_permission(self, name: &str) -> Reply {
        let name = name.to_owned();
        let (lk, actor, account) = self.caller();
        blocking(move || lk.remove_permission(actor, account, &name)).await?;
        Ok(no_content())
    }

    pub(super) async fn list_roles(self) -> Reply {
        let (lk, actor, account) = self.caller();
        let roles = blocking(move || lk.roles(actor, account)).await?;
        self.list(
            "/roles",
            "roles",
            roles,
            |r| r.id,
            |r| views::role(&self.base, r),
        )
    }

    pub(super) async fn create_role(self) -> Reply {
        let body: RoleBody = parse(&self.body)?;
        let name = required(body.name.as_deref(), "name")?.to_owned();
        let permissions = body.permissions.ok_or_else(|| {
            ApiError::field(
                error::INVALID_FIELD,
                "permissions",
                "permissions is required",
            )
        })?;
        let description = body.description.unwrap_or_default();
        let (lk, actor, account) = self.caller();
        let role =
            blocking(move || lk.create_role(actor, account, &name, &description, &permissions))
                .await?;
        self.created(&views::role(&self.base, &role))
    }

    pub(super) async fn get_role(self, id: &str) -> Reply {
        let id: RoleId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        let role = blocking(move || lk.role(actor, account, id)).await?;
        self.ok(&views::role(&self.base, &role))
    }

    pub(super) async fn update_role(self, id: &str) -> Reply {
        let id: RoleId = path_id(id)?;
        let body: RoleBody = parse(&self.body)?;
        let patch = TenancyPatch {
            name: body.name,
            description: body.description,
            permissions: body.permissions,
        };
        let (lk, actor, account) = self.caller();
        let role = blocking(move || lk.update_role(actor, account, id, &patch)).await?;
        self.ok(&views::role(&self.base, &role))
    }

    pub(super) async fn delete_role(self, id: &str) -> Reply {
        let id: RoleId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        blocking(move || lk.delete_role(actor, account, id)).await?;
        Ok(no_content())
    }

    pub(super) async fn list_role_assignments(self) -> Reply {
        let query_id = |field: &str| -> Result<Option<String>, ApiError> {
            Ok(self.query.filter(field).map(str::to_owned))
        };
        let invalid = |field: &str, text: &str| {
            ApiError::field(
                error::INVALID_QUERY,
                field,
                format!("{field} {text:?} is not a valid id"),
            )
        };
        let filter = AssignmentFilter {
            principal: query_id("principal_id")?
                .map(|t| Owner::parse(&t).map_err(|_| invalid("principal_id", &t)))
                .transpose()?,
            role: query_id("role_id")?
                .map(|t| t.parse().map_err(|_| invalid("role_id", &t)))
                .transpose()?,
            tenant: query_id("tenant_id")?
                .map(|t| t.parse().map_err(|_| invalid("tenant_id", &t)))
                .transpose()?,
        };
        let page = self.page_request::<RoleAssignmentId>("/role_assignments")?;
        let (lk, actor, account) = self.caller();
        let found = blocking(move || lk.role_assignments(actor, account, filter, page)).await?;
        self.page_reply(
            "/role_assignments",
            "role_assignments",
            &found,
            |a| a.assignment.id,
            |a| views::role_assignment(&self.base, &a.assignment, Some((&a.role, &a.sources))),
        )
    }

    pub(super) async fn create_role_assignment(self) -> Reply {
        let body: AssignmentCreate = parse(&self.body)?;
        let principal = principal_field(
            required(body.principal_id.as_deref(), "principal_id")?,
            "principal_id",
        )?;
        let role: RoleId = field_id(required(body.role_id.as_deref(), "role_id")?, "role_id")?;
        let tenant: Option<TenantId> = body
            .tenant_id
            .as_deref()
            .map(|t| field_id(t, "tenant_id"))
            .transpose()?;
        let (lk, actor, account) = self.caller();
        let NamedAssignment {
            assignment,
            role,
            sources,
        } = blocking(move || lk.assign_role(actor, account, principal, role, tenant)).await?;
        self.created(&views::role_assignment(
            &self.base,
            &assignment,
            Some((&role, &sources)),
        ))
    }

    pub(super) async fn get_role_assignment(self, id: &str) -> Reply {
        let id: RoleAssignmentId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        let NamedAssignment {
            assignment,
            role,
            sources,
        } = blocking(move || lk.role_assignment(actor, account, id)).await?;
        self.ok(&views::role_assignment(
            &self.base,
            &assignment,
            Some((&role, &sources)),
        ))
    }

    pub(super) async fn delete_role_assignment(self, id: &str) -> Reply {
        let id: RoleAssignmentId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        blocking(move || lk.unassign_role(actor, account, id)).await?;
        Ok(no_content())
    }

    pub(super) async fn access_review(self) -> Reply {
        let csv = match self.query.filter("format") {
            None | Some("json") => false,
            Some("csv") => true,
            Some(other) => {
                return Err(ApiError::field(
                    error::INVALID_QUERY,
                    "format",
                    format!("format must be json or csv, not {other:?}"),
                ));
            }
        };
        let (lk, actor, account) = self.caller();
        let generated_at = lk.now();
        let review = blocking(move || lk.access_review(actor, account)).await?;
        if csv {
            let mut response = Response::new(Full::new(Bytes::from(access_review_csv(&review))));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            return Ok(response);
        }
        let principals: Vec<Value> = review.iter().map(review_json).collect();
        self.ok(&json!({
            "account_id": account.to_string(),
            "generated_at": generated_at.to_rfc3339(),
            "principals": principals,
        }))
    }
}

fn review_json(reviewed: &ReviewedPrincipal) -> Value {
    let scope = |a: &NamedAssignment| {
        a.assignment
            .tenant
            .map_or("*".to_owned(), |t| t.to_string())
    };
    let mut tenants: Vec<String> = reviewed.assignments.iter().map(|(a, _)| scope(a)).collect();
    tenants.sort();
    tenants.dedup();
    // What the principal may do in each scope: in a tenant, its assignments there and
    // its all-tenant ones; under `*`, its all-tenant ones alone.
    let mut effective = serde_json::Map::new();
    for tenant in &tenants {
        let mut granted: Vec<&str> = reviewed
            .assignments
            .iter()
            .filter(|(a, _)| {
                let scoped = scope(a);
                scoped == "*" || scoped == *tenant
            })
            .flat_map(|(_, permissions)| permissions.iter().map(String::as_str))
            .collect();
        granted.sort_unstable();
        granted.dedup();
        effective.insert(tenant.clone(), json!(granted));
    }
    let assignments: Vec<Value> = reviewed
        .assignments
        .iter()
        .map(|(a, permissions)| {
            json!({
                "id": a.assignment.id.to_string(),
                "role_id": a.assignment.role.to_string(),
                "role": a.role,
                "tenant_id": a.assignment.tenant.map(|t| t.to_string()),
                "permissions": permissions,
            })
        })
        .collect();
    json!({
        "id": reviewed.principal.id_string(),
        "kind": reviewed.principal.kind_str(),
        "name": reviewed.name,
        "email": reviewed.email,
        "tenants": tenants,
        "assignments": assignments,
        "effective_permissions": effective,
    })
}

/// api.md's CSV: one row per assignment (a principal with none has no row).
pub(crate) fn access_review_csv(review: &[ReviewedPrincipal]) -> String {
    let mut out = String::from("principal_id,principal_kind,name,tenant_id,role,permissions\r\n");
    for reviewed in review {
        for (a, permissions) in &reviewed.assignments {
            let tenant = a
                .assignment
                .tenant
                .map_or("*".to_owned(), |t| t.to_string());
            let row = [
                reviewed.principal.id_string(),
                reviewed.principal.kind_str().to_owned(),
                reviewed.name.clone(),
                tenant,
                a.role.clone(),
                permissions.join(" "),
            ];
            let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
            out.push_str(&fields.join(","));
            out.push_str("\r\n");
        }
    }
    out
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break. A field
/// a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) is prefixed
/// with `'`, as OWASP advises for exports: names are chosen by users.
fn csv_field(text: &str) -> String {
    let neutral = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if neutral.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("Ada"), "Ada");
        assert_eq!(csv_field("Lovelace, Ada"), "\"Lovelace, Ada\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-1,2"), "\"'-1,2\"");
    }
}
