//! Tenants, the permission catalog, custom roles and role assignments through the real
//! binary over TLS, and the tenant-roles decisions they lead to (seed 003).

use serde_json::{Value, json};

use crate::api::{Reply, Server, assert_error, start_server};

const CATALOG: [&str; 28] = [
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
    "system.view_settings",
    "system.edit_settings",
    "system.manage_integrations",
    "system.view_logs",
    "system.manage_licenses",
    "reports.view",
];

fn id(reply: &Reply) -> String {
    assert!(
        reply.status == 200 || reply.status == 201,
        "{:?}",
        reply.body
    );
    reply.body["id"].as_str().unwrap().to_owned()
}

fn tenant(server: &Server, name: &str) -> String {
    id(&server.post(&server.admin_key, "/tenants", json!({"name": name})))
}

/// The id of the built-in role named `name`.
pub(crate) fn builtin(server: &Server, name: &str) -> String {
    let roles = server.get(&server.admin_key, "/roles");
    roles.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name && r["builtin"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn assign(server: &Server, principal: &str, role: &str, tenant: Option<&str>) -> String {
    id(&server.post(
        &server.admin_key,
        "/role_assignments",
        json!({"principal_id": principal, "role_id": role, "tenant_id": tenant}),
    ))
}

fn member(server: &Server, email: &str) -> String {
    id(&server.post(
        &server.admin_key,
        "/users",
        json!({"email": email, "name": email.split('@').next().unwrap()}),
    ))
}

/// The decision on `action` for a computer of `tenant`: (decision, reason).
fn decide(server: &Server, principal: &str, action: &str, tenant: &str) -> (String, String) {
    let answer = server.post(
        &server.admin_key,
        "/authorize",
        json!({"principal": {"id": principal}, "action": action,
               "resource": {"type": "computer", "id": "c-42", "tenant_id": tenant}}),
    );
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    (
        answer.body["decision"].as_str().unwrap().to_owned(),
        answer.body["reason"].as_str().unwrap_or("").to_owned(),
    )
}

fn allowed(server: &Server, principal: &str, action: &str, tenant: &str) -> bool {
    decide(server, principal, action, tenant).0 == "allow"
}

/// Every catalog permission `principal` is allowed in `tenant`, in one batch.
fn allowed_set(server: &Server, principal: &str, tenant: &str, catalog: &[&str]) -> Vec<String> {
    let checks: Vec<Value> = catalog
        .iter()
        .map(|action| {
            json!({"principal": {"id": principal}, "action": action,
                   "resource": {"type": "object", "id": "o-1", "tenant_id": tenant}})
        })
        .collect();
    let batch = server.post(
        &server.admin_key,
        "/authorize/batch",
        json!({"checks": checks}),
    );
    assert_eq!(batch.status, 200, "{:?}", batch.body);
    catalog
        .iter()
        .zip(batch.body["decisions"].as_array().unwrap())
        .filter(|(_, d)| d["decision"] == "allow")
        .map(|(a, _)| (*a).to_owned())
        .collect()
}

fn event_actions(server: &Server) -> Vec<String> {
    let events = server.get(&server.admin_key, "/events?limit=100");
    events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn tenant_roles_decide_per_tenant_as_seed_003_describes() {
    let server = start_server();
    let (a, b) = (tenant(&server, "Contoso"), tenant(&server, "Fabrikam"));
    let tech = member(&server, "tech@example.com");
    assign(&server, &tech, &builtin(&server, "Technician"), Some(&a));
    assert!(allowed(&server, &tech, "computers.run_maintenance", &a));
    let (decision, reason) = decide(&server, &tech, "computers.run_maintenance", &b);
    assert_eq!(decision, "deny");
    assert_eq!(reason, format!("no role assignment for tenant {b}"));
    // A technician may not delete computers even in its own tenant.
    assert!(!allowed(&server, &tech, "computers.delete", &a));

    let tenant_admin = member(&server, "ta@example.com");
    assign(
        &server,
        &tenant_admin,
        &builtin(&server, "Tenant Administrator"),
        Some(&a),
    );
    assert!(allowed(&server, &tenant_admin, "users.manage_roles", &a));
    assert!(!allowed(&server, &tenant_admin, "system.edit_settings", &a));
    assert!(allowed_set(&server, &tenant_admin, &b, &CATALOG).is_empty());

    let global = member(&server, "global@example.com");
    assign(
        &server,
        &global,
        &builtin(&server, "Global Administrator"),
        None,
    );
    for t in [&a, &b] {
        assert_eq!(allowed_set(&server, &global, t, &CATALOG), CATALOG);
    }

    let customer = member(&server, "customer@example.com");
    assign(
        &server,
        &customer,
        &builtin(&server, "Self-Service"),
        Some(&b),
    );
    assert!(allowed(&server, &customer, "software.request_install", &b));
    assert!(!allowed(&server, &customer, "software.request_install", &a));
    assert_eq!(
        allowed_set(&server, &customer, &b, &CATALOG),
        ["computers.view", "software.request_install", "reports.view"]
    );

    // An integration user: a bot with a role acts in the tenant through the API only.
    let bot = id(&server.post(&server.admin_key, "/bot_users", json!({"name": "psa"})));
    assign(&server, &bot, &builtin(&server, "Read-Only"), Some(&a));
    assert!(allowed(&server, &bot, "computers.view", &a));
    assert!(!allowed(&server, &bot, "computers.edit", &a));
}

#[test]
fn a_custom_role_allows_exactly_its_permissions_and_changes_take_effect_at_once() {
    let server = start_server();
    let key = &server.admin_key;
    let a = tenant(&server, "Contoso");
    let three = ["computers.view", "deployments.approve", "reports.view"];
    let made = server.post(
        key,
        "/roles",
        json!({"name": "Approver", "description": "approves deployments",
               "permissions": ["reports.view", "computers.view", "deployments.approve", "computers.view"]}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    // Kept in catalog order, without the repeat.
    assert_eq!(made.body["permissions"], json!(three));
    assert_eq!(made.body["builtin"], false);
    let role = id(&made);
    let user = member(&server, "approver@example.com");
    assign(&server, &user, &role, Some(&a));
    assert_eq!(allowed_set(&server, &user, &a, &CATALOG), three);

    let changed = server.patch(
        key,
        &format!("/roles/{role}"),
        json!({"permissions": ["computers.view"]}),
    );
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(
        allowed_set(&server, &user, &a, &CATALOG),
        ["computers.view"]
    );

    // An unknown permission is refused and changes nothing.
    let bad = server.patch(
        key,
        &format!("/roles/{role}"),
        json!({"permissions": ["computers.view", "computers.teleport"]}),
    );
    assert_error(&bad, 400, 105);
    assert_eq!(bad.body["details"]["field"], "permissions");
    assert_eq!(
        allowed_set(&server, &user, &a, &CATALOG),
        ["computers.view"]
    );

    // Names are unique, built-in names included.
    for name in ["approver", "Technician"] {
        let taken = server.post(key, "/roles", json!({"name": name, "permissions": []}));
        assert_error(&taken, 409, 103);
    }
    // Built-in roles are listed with api.md's sets and cannot be changed or deleted.
    let technician = builtin(&server, "Technician");
    let shown = server.get(key, &format!("/roles/{technician}"));
    assert_eq!(shown.body["permissions"].as_array().unwrap().len(), 11);
    assert_error(
        &server.patch(
            key,
            &format!("/roles/{technician}"),
            json!({"name": "Tech"}),
        ),
        400,
        113,
    );
    assert_error(
        &server.delete(key, &format!("/roles/{technician}")),
        400,
        113,
    );

    // An assigned role cannot be deleted; the refusal names the assignments.
    let assignments = server.get(key, &format!("/role_assignments?role_id={role}"));
    let assignment = assignments.body["role_assignments"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = server.delete(key, &format!("/roles/{role}"));
    assert_error(&refused, 409, 103);
    assert_eq!(refused.body["details"]["assignments"], json!([assignment]));
    assert_eq!(server.get(key, &format!("/roles/{role}")).status, 200);
    assert_eq!(
        server
            .delete(key, &format!("/role_assignments/{assignment}"))
            .status,
        204
    );
    assert_eq!(server.delete(key, &format!("/roles/{role}")).status, 204);
    assert_error(&server.get(key, &format!("/roles/{role}")), 404, 102);

    let actions = event_actions(&server);
    for action in [
        "iam.tenants.create",
        "iam.roles.create",
        "iam.roles.update",
        "iam.roles.delete",
        "iam.role_assignments.create",
        "iam.role_assignments.delete",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
}

#[test]
fn deleting_a_tenant_removes_its_assignments_and_only_those() {
    let server = start_server();
    let key = &server.admin_key;
    let (a, b) = (tenant(&server, "Contoso"), tenant(&server, "Fabrikam"));
    let tech = member(&server, "tech@example.com");
    let technician = builtin(&server, "Technician");
    let in_a = assign(&server, &tech, &technician, Some(&a));
    let in_b = assign(&server, &tech, &technician, Some(&b));
    assert_eq!(server.delete(key, &format!("/tenants/{a}")).status, 204);
    assert_error(
        &server.get(key, &format!("/role_assignments/{in_a}")),
        404,
        102,
    );
    assert_eq!(
        server.get(key, &format!("/role_assignments/{in_b}")).status,
        200
    );
    let left = server.get(key, &format!("/role_assignments?principal_id={tech}"));
    assert_eq!(left.body["role_assignments"].as_array().unwrap().len(), 1);
    assert!(allowed(&server, &tech, "computers.view", &b));
    // The deletion and the assignment it took with it are both in the trail.
    let events = server.get(key, &format!("/events?object_id={in_a}"));
    assert_eq!(
        events.body["events"][0]["action"],
        "iam.role_assignments.delete"
    );
    let events = server.get(key, &format!("/events?object_id={a}"));
    assert_eq!(events.body["events"][0]["action"], "iam.tenants.delete");

    // A removed member's assignments go with its membership.
    assert_eq!(server.delete(key, &format!("/users/{tech}")).status, 204);
    assert_error(
        &server.get(key, &format!("/role_assignments/{in_b}")),
        404,
        102,
    );
}

#[test]
fn assignments_are_validated_and_refusals_change_nothing() {
    let server = start_server();
    let key = &server.admin_key;
    let a = tenant(&server, "Contoso");
    let user = member(&server, "u@example.com");
    let global = builtin(&server, "Global Administrator");
    let self_service = builtin(&server, "Self-Service");
    let refusals = [
        (
            json!({"principal_id": user, "role_id": global, "tenant_id": a}),
            400,
            105,
        ),
        (
            json!({"principal_id": user, "role_id": self_service}),
            400,
            105,
        ),
        (
            json!({"principal_id": "usr_0352FHSFuCpzwuA2PPTNK4", "role_id": global}),
            404,
            102,
        ),
        (
            json!({"principal_id": user, "role_id": "rol_0352FHSFuCpzwuA2PPTNK4"}),
            404,
            102,
        ),
        (
            json!({"principal_id": user, "role_id": self_service, "tenant_id": "tnt_0352FHSFuCpzwuA2PPTNK4"}),
            404,
            102,
        ),
        (
            json!({"principal_id": "someone", "role_id": global}),
            400,
            105,
        ),
        (
            json!({"principal_id": user, "role_id": "Technician"}),
            400,
            105,
        ),
        (json!({"principal_id": user}), 400, 105),
        (
            json!({"principal_id": user, "role_id": global, "extra": 1}),
            400,
            106,
        ),
    ];
    let before = server.get(key, "/events?limit=1").body["events"][0]["id"].clone();
    for (body, status, code) in refusals {
        assert_error(
            &server.post(key, "/role_assignments", body.clone()),
            status,
            code,
        );
    }
    assert_eq!(
        server.get(key, "/events?limit=1").body["events"][0]["id"],
        before
    );
    assign(&server, &user, &global, None);
    assert_error(
        &server.post(
            key,
            "/role_assignments",
            json!({"principal_id": user, "role_id": global}),
        ),
        409,
        103,
    );
    assert_error(
        &server.post(key, "/tenants", json!({"name": "contoso"})),
        409,
        103,
    );
    assert_error(
        &server.post(key, "/tenants", json!({"name": "  "})),
        400,
        105,
    );
    assert_error(
        &server.get(key, "/role_assignments?tenant_id=nope"),
        400,
        112,
    );
}

#[test]
fn operators_extend_the_catalog_for_their_own_applications() {
    let server = start_server();
    let key = &server.admin_key;
    let a = tenant(&server, "Contoso");
    let added = server.post(
        key,
        "/permissions",
        json!({"name": "tickets.close", "description": "close helpdesk tickets"}),
    );
    assert_eq!(added.status, 201, "{:?}", added.body);
    assert_eq!(
        added.body,
        json!({"name": "tickets.close", "category": "tickets",
        "description": "close helpdesk tickets", "builtin": false})
    );
    let catalog = server.get(key, "/permissions");
    let names: Vec<&str> = catalog.body["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[..28], CATALOG);
    assert_eq!(names[28..], ["tickets.close"]);

    let role = id(&server.post(
        key,
        "/roles",
        json!({"name": "Helpdesk", "permissions": ["tickets.close"]}),
    ));
    let agent = member(&server, "helpdesk@example.com");
    assign(&server, &agent, &role, Some(&a));
    assert!(allowed(&server, &agent, "tickets.close", &a));
    // The Global Administrator has every catalog permission, added ones too.
    let global = member(&server, "global@example.com");
    assign(
        &server,
        &global,
        &builtin(&server, "Global Administrator"),
        None,
    );
    assert!(allowed(&server, &global, "tickets.close", &a));
    let listed = server.get(
        key,
        &format!("/roles/{}", builtin(&server, "Global Administrator")),
    );
    assert_eq!(listed.body["permissions"].as_array().unwrap().len(), 29);
    // An action outside the catalog is denied for everyone.
    assert_eq!(
        decide(&server, &global, "tickets.reopen", &a).1,
        "action is not in the permission catalog"
    );

    let used = server.delete(key, "/permissions/tickets.close");
    assert_error(&used, 409, 103);
    assert_eq!(used.body["details"]["roles"], json!([role]));
    assert_error(&server.delete(key, "/permissions/computers.view"), 400, 113);
    assert_error(
        &server.post(key, "/permissions", json!({"name": "Tickets.Close"})),
        400,
        105,
    );
    assert_error(
        &server.post(key, "/permissions", json!({"name": "computers.view"})),
        409,
        103,
    );
    server.patch(key, &format!("/roles/{role}"), json!({"permissions": []}));
    assert_eq!(server.delete(key, "/permissions/tickets.close").status, 204);
    assert_error(&server.get(key, "/permissions/tickets.close"), 404, 102);
}

#[test]
fn tenancy_is_managed_by_administrators_and_team_managers_never_by_bots() {
    let server = start_server();
    let (_, manager) = server.member_with_key("m@example.com", json!({"team": "manager"}));
    let (_, developer) =
        server.member_with_key("d@example.com", json!({"developer": "read_write"}));
    let bot = id(&server.post(&server.admin_key, "/bot_users", json!({"name": "ci"})));
    let bot_key = server.post(&server.admin_key, "/api_keys", json!({"owner_id": bot}));
    let bot_key = bot_key.body["token"].as_str().unwrap();
    // The bot holds a Global Administrator assignment: it still manages nothing.
    let global = builtin(&server, "Global Administrator");
    assign(&server, &bot, &global, None);

    let made = server.post(&manager, "/tenants", json!({"name": "Contoso"}));
    assert_eq!(made.status, 201, "{:?}", made.body);
    for (key, who) in [(developer.as_str(), "developer"), (bot_key, "bot")] {
        for (method, path) in [
            ("POST", "/tenants"),
            ("GET", "/tenants"),
            ("GET", "/roles"),
            ("POST", "/role_assignments"),
            ("GET", "/permissions"),
            ("GET", "/access_review"),
        ] {
            let answer = if path == "/role_assignments" {
                let body = json!({"principal_id": bot, "role_id": global});
                server.post(key, path, body)
            } else if method == "POST" {
                server.post(key, path, json!({"name": "X"}))
            } else {
                server.get(key, path)
            };
            assert_error(&answer, 403, 101);
            assert_eq!(
                answer.body["details"]["policy"], "account-rbac",
                "{who} {path}"
            );
        }
    }
    assert_eq!(server.get(&manager, "/access_review").status, 200);
}

#[test]
fn the_access_review_matches_the_assignments_exactly() {
    let server = start_server();
    let key = &server.admin_key;
    let tenants: Vec<String> = ["Contoso", "Fabrikam", "Northwind"]
        .iter()
        .map(|n| tenant(&server, n))
        .collect();
    let approver = id(&server.post(
        key,
        "/roles",
        json!({"name": "Approver", "permissions": ["deployments.view", "deployments.approve"]}),
    ));
    let roles = [
        builtin(&server, "Global Administrator"),
        builtin(&server, "Tenant Administrator"),
        builtin(&server, "Technician"),
        builtin(&server, "Read-Only"),
        builtin(&server, "Self-Service"),
        approver.clone(),
    ];
    // Ten principals besides the administrator: seven members, three bots.
    let mut principals: Vec<String> = (0..7)
        .map(|i| member(&server, &format!("p{i}@example.com")))
        .collect();
    principals.extend(
        (0..3).map(|i| id(&server.post(key, "/bot_users", json!({"name": format!("bot {i}")})))),
    );
    // (principal, role, tenant): a seeded account's mix of user types.
    let plan: Vec<(usize, usize, Option<usize>)> = vec![
        (0, 0, None),
        (1, 1, Some(0)),
        (1, 1, Some(1)),
        (2, 2, Some(0)),
        (2, 3, None),
        (3, 4, Some(2)),
        (4, 5, Some(1)),
        (5, 2, None),
        (7, 3, Some(0)),
        (8, 5, Some(2)),
        (8, 2, Some(2)),
    ];
    let mut expected_rows = Vec::new();
    for (p, r, t) in &plan {
        let tenant = t.map(|t| tenants[t].clone());
        assign(&server, &principals[*p], &roles[*r], tenant.as_deref());
        let role = server.get(key, &format!("/roles/{}", roles[*r]));
        let permissions: Vec<&str> = role.body["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        expected_rows.push((
            principals[*p].clone(),
            tenant.unwrap_or_else(|| "*".to_owned()),
            role.body["name"].as_str().unwrap().to_owned(),
            permissions.join(" "),
        ));
    }

    let review = server.get(key, "/access_review");
    assert_eq!(review.status, 200, "{:?}", review.body);
    let listed = review.body["principals"].as_array().unwrap();
    // Every member (the administrator too) and every bot, assigned or not.
    assert_eq!(listed.len(), 11);
    let mut seen = Vec::new();
    for principal in listed {
        for a in principal["assignments"].as_array().unwrap() {
            seen.push((
                principal["id"].as_str().unwrap().to_owned(),
                a["tenant_id"].as_str().unwrap_or("*").to_owned(),
                a["role"].as_str().unwrap().to_owned(),
                a["permissions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(" "),
            ));
        }
    }
    let (mut seen_sorted, mut expected_sorted) = (seen.clone(), expected_rows.clone());
    seen_sorted.sort();
    expected_sorted.sort();
    assert_eq!(seen_sorted, expected_sorted);
    // Principal 2 is a Technician in Contoso and Read-Only everywhere: in Contoso it has
    // both sets.
    let two = listed.iter().find(|p| p["id"] == principals[2]).unwrap();
    assert_eq!(two["tenants"], json!(["*", tenants[0]]));
    let in_contoso = two["effective_permissions"][&tenants[0]]
        .as_array()
        .unwrap();
    assert!(in_contoso.contains(&json!("computers.run_maintenance")));
    assert!(in_contoso.contains(&json!("system.view_settings")));

    let csv = server.get(key, "/access_review?format=csv");
    assert_eq!(csv.status, 200);
    let text = csv.body.as_str().unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "principal_id,principal_kind,name,tenant_id,role,permissions"
    );
    let mut rows: Vec<(String, String, String, String)> = lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 6, "{line}");
            (
                fields[0].to_owned(),
                fields[3].to_owned(),
                fields[4].to_owned(),
                fields[5].to_owned(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(rows, expected_sorted);
    assert_error(&server.get(key, "/access_review?format=xml"), 400, 112);
}

/// `/authorize` decides from principals cached in memory, but never from a stale one:
/// each change that could alter a decision (account roles, a custom role's permissions, an
/// assignment removed, a member disabled, a key revoked) changes the very next decision,
/// after the same question was asked (and so cached) before it.
#[test]
fn a_cached_principal_is_never_stale() {
    let server = start_server();
    let key = server.admin_key.clone();
    let (a, b) = (tenant(&server, "Contoso"), tenant(&server, "Fabrikam"));
    let (tech, tech_key) = server.member_with_key("tech@example.com", json!({}));
    let technician = assign(&server, &tech, &builtin(&server, "Technician"), Some(&a));
    let custom = id(&server.post(
        &key,
        "/roles",
        json!({"name": "Licenses", "permissions": ["system.manage_licenses"]}),
    ));
    assign(&server, &tech, &custom, Some(&b));
    let iam = |principal: Value| {
        let answer = server.post(
            &key,
            "/authorize",
            json!({"principal": principal, "action": "iam.bot_users.create", "resource": {"type": "bot_user"}}),
        );
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.body["decision"].as_str().unwrap().to_owned()
    };
    let twice = |f: &dyn Fn() -> bool| {
        let first = f();
        assert_eq!(
            f(),
            first,
            "the same question, asked again, got another answer"
        );
        first
    };

    // Account roles: read-only, then read/write.
    assert!(!twice(&|| iam(json!({"id": tech})) == "allow"));
    let changed = server.patch(
        &key,
        &format!("/users/{tech}"),
        json!({"roles": {"developer": "read_write"}}),
    );
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(iam(json!({"id": tech})), "allow");

    // A custom role loses a permission.
    assert!(twice(&|| allowed(
        &server,
        &tech,
        "system.manage_licenses",
        &b
    )));
    let narrowed = server.patch(
        &key,
        &format!("/roles/{custom}"),
        json!({"permissions": ["reports.view"]}),
    );
    assert_eq!(narrowed.status, 200, "{:?}", narrowed.body);
    assert!(!allowed(&server, &tech, "system.manage_licenses", &b));
    assert!(allowed(&server, &tech, "reports.view", &b));

    // An assignment is removed.
    assert!(twice(&|| allowed(
        &server,
        &tech,
        "computers.run_maintenance",
        &a
    )));
    assert_eq!(
        server
            .delete(&key, &format!("/role_assignments/{technician}"))
            .status,
        204
    );
    assert!(!allowed(&server, &tech, "computers.run_maintenance", &a));

    // The member is disabled: every decision about it is a deny naming latchkey.
    assert!(twice(&|| iam(json!({"token": tech_key})) == "allow"));
    let disabled = server.patch(
        &key,
        &format!("/users/{tech}"),
        json!({"state": "disabled"}),
    );
    assert_eq!(disabled.status, 200, "{:?}", disabled.body);
    let (decision, reason) = decide(&server, &tech, "reports.view", &b);
    assert_eq!(decision, "deny");
    assert!(reason.contains("disabled"), "{reason}");
    assert_eq!(iam(json!({"id": tech})), "deny");
    let enabled = server.patch(&key, &format!("/users/{tech}"), json!({"state": "active"}));
    assert_eq!(enabled.status, 200, "{:?}", enabled.body);

    // Its key is revoked: the key as a principal is refused at once.
    assert!(twice(&|| iam(json!({"token": tech_key})) == "allow"));
    let keys = server.get(&key, "/api_keys");
    let tech_key_id = keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["owner_id"] == tech.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        server
            .delete(&key, &format!("/api_keys/{tech_key_id}"))
            .status,
        204
    );
    assert_eq!(iam(json!({"token": tech_key})), "deny");
}
