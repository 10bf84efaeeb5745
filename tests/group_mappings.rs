//! SCIM group mappings through the real server: a group mapped to "Technician in tenant
//! Contoso" grants exactly that assignment while a member is in the group, decided by the
//! tenant-roles policy through `/authorize`; account roles are the union of every source
//! and `GET /users` shows each; the last-administrator rule holds whatever the source;
//! only administrators map groups, and only their own account's. Each refusal is checked
//! to change nothing.

use serde_json::{Value, json};

use crate::api::{Reply, Server, assert_error, start_server};
use crate::scim::{assert_scim_error, provisioned, scim};
use crate::tenancy::builtin;

fn id(reply: &Reply) -> String {
    assert!(
        reply.status == 200 || reply.status == 201,
        "{:?}",
        reply.body
    );
    reply.body["id"].as_str().unwrap().to_owned()
}

fn scim_user(server: &Server, token: &str, email: &str) -> String {
    id(&scim(
        server,
        token,
        "POST",
        "/Users",
        Some(json!({"userName": email, "emails": [{"value": email, "primary": true}]})),
    ))
}

fn scim_group(server: &Server, token: &str, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    id(&scim(
        server,
        token,
        "POST",
        "/Groups",
        Some(json!({"displayName": name, "members": members})),
    ))
}

/// A SCIM PATCH of a group's members: `op` is `add` or `remove`.
fn change_members(server: &Server, token: &str, group: &str, op: &str, user: &str) -> Reply {
    scim(
        server,
        token,
        "PATCH",
        &format!("/Groups/{group}"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": op, "path": "members", "value": [{"value": user}]}]}),
        ),
    )
}

/// The tenant-roles policy's decision, through `/authorize`, on running maintenance on a
/// computer of `tenant`.
fn may_maintain(server: &Server, user: &str, tenant: &str) -> bool {
    let answer = server.post(
        &server.admin_key,
        "/authorize",
        json!({"principal": {"id": user}, "action": "computers.run_maintenance",
               "resource": {"type": "computer", "id": "c-1", "tenant_id": tenant}}),
    );
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["decision"] == "allow"
}

/// `user`'s role assignments as `(role_id, tenant_id, sources)`.
fn assignments_of(server: &Server, user: &str) -> Vec<(String, Value, Value)> {
    let listed = server.get(
        &server.admin_key,
        &format!("/role_assignments?principal_id={user}"),
    );
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    listed.body["role_assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["role_id"].as_str().unwrap().to_owned(),
                a["tenant_id"].clone(),
                a["sources"].clone(),
            )
        })
        .collect()
}

fn user(server: &Server, key: &str, id: &str) -> Value {
    let found = server.get(key, &format!("/users/{id}"));
    assert_eq!(found.status, 200, "{:?}", found.body);
    found.body
}

fn events(server: &Server) -> Value {
    server.get(&server.admin_key, "/events?limit=100").body["events"].clone()
}

#[test]
fn a_group_mapped_to_technician_in_a_tenant_grants_exactly_that_while_members_are_in_it() {
    let server = start_server();
    let token = provisioned(&server);
    let admin = server.admin_key.clone();
    let contoso = id(&server.post(&admin, "/tenants", json!({"name": "Contoso"})));
    let fabrikam = id(&server.post(&admin, "/tenants", json!({"name": "Fabrikam"})));
    let technician = builtin(&server, "Technician");
    let ann = scim_user(&server, &token, "ann@example.com");
    let bob = scim_user(&server, &token, "bob@example.com");
    let group = scim_group(&server, &token, "Contoso technicians", &[&ann]);
    assert!(!may_maintain(&server, &ann, &contoso));

    // Refusals first; each changes nothing.
    let mapping_of = |group: &str, role: &str, tenant: &str| {
        json!({"scim_group_id": group,
               "role_assignments": [{"role_id": role, "tenant_id": tenant}]})
    };
    // Ids of a group and a tenant that were, and are no more.
    let no_group = scim_group(&server, &token, "Gone", &[]);
    let gone = scim(
        &server,
        &token,
        "DELETE",
        &format!("/Groups/{no_group}"),
        None,
    );
    assert_eq!(gone.status, 204);
    let no_tenant = id(&server.post(&admin, "/tenants", json!({"name": "Gone"})));
    assert_eq!(
        server
            .delete(&admin, &format!("/tenants/{no_tenant}"))
            .status,
        204
    );
    let trail = events(&server);
    assert_error(
        &server.post(
            &admin,
            "/scim_group_mappings",
            mapping_of(&no_group, &technician, &contoso),
        ),
        404,
        102,
    );
    assert_error(
        &server.post(
            &admin,
            "/scim_group_mappings",
            mapping_of(&group, &technician, &no_tenant),
        ),
        404,
        102,
    );
    let twice = json!({"scim_group_id": group, "role_assignments": [
        {"role_id": technician, "tenant_id": contoso},
        {"role_id": technician, "tenant_id": contoso}]});
    assert_error(
        &server.post(&admin, "/scim_group_mappings", twice),
        400,
        105,
    );
    // A Global Administrator holds in all tenants only.
    let global = builtin(&server, "Global Administrator");
    assert_error(
        &server.post(
            &admin,
            "/scim_group_mappings",
            mapping_of(&group, &global, &contoso),
        ),
        400,
        105,
    );
    assert_error(
        &server.post(
            &admin,
            "/scim_group_mappings",
            json!({"scim_group_id": group, "roles": {"owner": true}}),
        ),
        400,
        106,
    );
    assert_eq!(events(&server), trail);

    let made = server.post(
        &admin,
        "/scim_group_mappings",
        mapping_of(&group, &technician, &contoso),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let mapping = made.body["id"].as_str().unwrap().to_owned();
    assert!(mapping.starts_with("sgm_"));
    assert_eq!(made.body["scim_group"]["id"], group.as_str());
    assert_eq!(
        made.body["scim_group"]["display_name"],
        "Contoso technicians"
    );
    assert!(made.body["roles"].is_null());
    // One mapping per group.
    assert_error(
        &server.post(
            &admin,
            "/scim_group_mappings",
            mapping_of(&group, &technician, &fabrikam),
        ),
        409,
        103,
    );
    let listed = server.get(&admin, "/scim_groups").body;
    assert_eq!(listed["scim_groups"][0]["mapping"]["id"], mapping.as_str());
    assert_eq!(listed["scim_groups"][0]["members_count"], 1);
    let one = server.get(&admin, &format!("/scim_groups/{group}")).body;
    assert_eq!(one["members"][0]["id"], ann.as_str());

    // Ann, in the group, is a Technician in Contoso and nowhere else; Bob is not.
    assert!(may_maintain(&server, &ann, &contoso));
    assert!(!may_maintain(&server, &ann, &fabrikam));
    assert!(!may_maintain(&server, &bob, &contoso));
    let scim_source = json!([{"type": "scim_group", "id": group}]);
    assert_eq!(
        assignments_of(&server, &ann),
        [(technician.clone(), json!(contoso), scim_source.clone())]
    );

    // Bob joins, Ann leaves: exactly their assignments follow, by the SCIM token.
    assert_eq!(
        change_members(&server, &token, &group, "add", &bob).status,
        200
    );
    assert!(may_maintain(&server, &bob, &contoso));
    assert_eq!(
        change_members(&server, &token, &group, "remove", &ann).status,
        200
    );
    assert!(!may_maintain(&server, &ann, &contoso));
    assert!(assignments_of(&server, &ann).is_empty());
    let removed = server
        .get(&admin, "/events?action=iam.role_assignments.delete")
        .body;
    assert_eq!(removed["events"][0]["principal_kind"], "scim_token");
    assert_eq!(removed["events"][0]["before"]["principal_id"], ann.as_str());

    // What was assigned directly stays when the group stops granting it.
    let direct = server.post(
        &admin,
        "/role_assignments",
        json!({"principal_id": ann, "role_id": technician, "tenant_id": contoso}),
    );
    assert_eq!(direct.status, 201, "{:?}", direct.body);
    assert_eq!(
        change_members(&server, &token, &group, "add", &ann).status,
        200
    );
    let both = json!([{"type": "direct"}, {"type": "scim_group", "id": group}]);
    assert_eq!(
        assignments_of(&server, &ann),
        [(technician.clone(), json!(contoso), both.clone())],
        "one assignment, two sources"
    );
    assert_eq!(
        change_members(&server, &token, &group, "remove", &ann).status,
        200
    );
    assert!(may_maintain(&server, &ann, &contoso));
    assert_eq!(
        assignments_of(&server, &ann),
        [(
            technician.clone(),
            json!(contoso),
            json!([{"type": "direct"}])
        )]
    );

    // A group-made assignment is not deleted around the group: refused, unchanged.
    let (bobs, _, _) = assignments_of(&server, &bob).remove(0);
    assert_eq!(bobs, technician);
    let listed = server.get(&admin, &format!("/role_assignments?principal_id={bob}"));
    let bobs = listed.body["role_assignments"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let trail = events(&server);
    let refused = server.delete(&admin, &format!("/role_assignments/{bobs}"));
    assert_error(&refused, 409, 103);
    assert!(
        refused.body["msg"]
            .as_str()
            .unwrap()
            .contains(&format!("SCIM group {group}")),
        "{:?}",
        refused.body
    );
    assert_eq!(events(&server), trail);
    assert!(may_maintain(&server, &bob, &contoso));

    // Account roles: the union of what was set directly and what the group grants, each
    // shown with its source; never admin unless the mapping says so.
    let before = user(&server, &admin, &bob);
    assert_eq!(before["roles"]["team"], "invite", "SCIM's default");
    let updated = server.patch(
        &admin,
        &format!("/scim_group_mappings/{mapping}"),
        json!({"roles": {"team": "manager", "billing": "access"}}),
    );
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(
        updated.body["roles"],
        json!({"developer": "read_only", "team": "manager", "billing": "access", "admin": false})
    );
    let after = user(&server, &admin, &bob);
    assert_eq!(
        after["roles"],
        json!({"developer": "read_write", "team": "manager", "billing": "access", "admin": false})
    );
    assert_eq!(
        after["role_grants"],
        json!([
            {"source": {"type": "direct"}, "roles": before["roles"]},
            {"source": {"type": "scim_group", "id": group},
             "roles": {"developer": "read_only", "team": "manager", "billing": "access", "admin": false}},
        ])
    );
    let roles_event = server
        .get(&admin, "/events?action=iam.users.update_roles")
        .body;
    assert_eq!(roles_event["events"][0]["object_id"], bob.as_str());
    // A direct change is to the direct roles; the group's grant still holds.
    let patched = server.patch(
        &admin,
        &format!("/users/{bob}"),
        json!({"roles": {"team": "read_only"}}),
    );
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["roles"]["team"], "manager");
    assert_eq!(patched.body["role_grants"][0]["roles"]["team"], "read_only");

    // The group goes: its mapping with it, and what it granted; Bob keeps his own.
    assert_eq!(
        scim(&server, &token, "DELETE", &format!("/Groups/{group}"), None).status,
        204
    );
    assert!(!may_maintain(&server, &bob, &contoso));
    let gone = user(&server, &admin, &bob);
    assert_eq!(gone["roles"]["team"], "read_only");
    assert_eq!(gone["role_grants"].as_array().unwrap().len(), 1);
    assert_error(
        &server.get(&admin, &format!("/scim_group_mappings/{mapping}")),
        404,
        102,
    );
    let deleted = server
        .get(&admin, "/events?action=iam.scim_group_mappings.delete")
        .body;
    assert_eq!(deleted["events"][0]["object_id"], mapping.as_str());
    assert_eq!(deleted["events"][0]["principal_kind"], "scim_token");
    assert!(may_maintain(&server, &ann, &contoso), "Ann's own stays");
    checked(server);
}

/// Stop the server and check its data directory: every record, index and grant agrees.
fn checked(server: Server) {
    let dir = std::sync::Arc::clone(&server.dir);
    server.stop();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["check", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_last_administrator_rule_holds_whatever_grants_the_role() {
    let server = start_server();
    let token = provisioned(&server);
    let admin = server.admin_key.clone();
    let carl = scim_user(&server, &token, "carl@example.com");
    let group = scim_group(&server, &token, "Admins", &[&carl]);
    let made = server.post(
        &admin,
        "/scim_group_mappings",
        json!({"scim_group_id": group, "roles": {"admin": true}}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let mapping = made.body["id"].as_str().unwrap().to_owned();
    assert_eq!(user(&server, &admin, &carl)["roles"]["admin"], true);
    let made_key = server.post(&admin, "/api_keys", json!({"owner_id": carl}));
    let carls_key = made_key.body["token"].as_str().unwrap().to_owned();
    // The bootstrap administrator steps down: Carl, through the group, is the last one.
    let stepped = server.patch(
        &admin,
        &format!("/users/{}", server.admin_id),
        json!({"roles": {"admin": false}}),
    );
    assert_eq!(stepped.status, 200, "{:?}", stepped.body);

    let trail = server.get(&carls_key, "/events?limit=100").body;
    let removed = change_members(&server, &token, &group, "remove", &carl);
    assert_scim_error(&removed, 409, Some("mutability"));
    let deleted = scim(&server, &token, "DELETE", &format!("/Groups/{group}"), None);
    assert_scim_error(&deleted, 409, Some("mutability"));
    let path = format!("/scim_group_mappings/{mapping}");
    assert_error(&server.delete(&carls_key, &path), 409, 104);
    assert_error(
        &server.patch(&carls_key, &path, json!({"roles": null})),
        409,
        104,
    );
    assert_error(
        &server.patch(&carls_key, &path, json!({"roles": {"team": "manager"}})),
        409,
        104,
    );
    // A direct demotion is of Carl's own roles: the group still makes him administrator.
    let own = server.patch(
        &carls_key,
        &format!("/users/{carl}"),
        json!({"roles": {"admin": false}}),
    );
    assert_eq!(own.status, 200, "{:?}", own.body);
    assert_eq!(own.body["roles"]["admin"], true);
    let after = server.get(&carls_key, "/events?limit=100").body;
    assert_eq!(
        after["events"].as_array().unwrap().len(),
        trail["events"].as_array().unwrap().len(),
        "no refusal and no no-op changed the trail"
    );
    let group_now = server
        .get(&carls_key, &format!("/scim_groups/{group}"))
        .body;
    assert_eq!(group_now["members"][0]["id"], carl.as_str());
    assert_eq!(user(&server, &carls_key, &carl)["roles"]["admin"], true);
    checked(server);
}

#[test]
fn only_administrators_map_groups_and_only_their_own_accounts() {
    let server = start_server();
    let token = provisioned(&server);
    let admin = server.admin_key.clone();
    let ann = scim_user(&server, &token, "ann@example.com");
    let group = scim_group(&server, &token, "Everyone", &[&ann]);
    let (_, manager) = server.member_with_key(
        "m@example.com",
        json!({"developer": "read_write", "team": "manager"}),
    );
    let scoped = server.post(&admin, "/api_keys", json!({"scopes": ["iam.users.*"]}));
    let scoped = scoped.body["token"].as_str().unwrap().to_owned();
    let trail = events(&server);
    let ask_admin = json!({"scim_group_id": group, "roles": {"admin": true}});
    for key in [&manager, &scoped] {
        assert_error(&server.get(key, "/scim_groups"), 403, 101);
        assert_error(&server.get(key, &format!("/scim_groups/{group}")), 403, 101);
        assert_error(&server.get(key, "/scim_group_mappings"), 403, 101);
        assert_error(
            &server.post(key, "/scim_group_mappings", ask_admin.clone()),
            403,
            101,
        );
    }
    // A SCIM token is no API key, and a key with one character changed is none either.
    assert_error(&server.get(&token, "/scim_group_mappings"), 401, 100);
    let mut forged = admin.clone().into_bytes();
    forged[40] = if forged[40] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    assert_error(
        &server.post(&forged, "/scim_group_mappings", ask_admin.clone()),
        401,
        100,
    );
    assert_eq!(events(&server), trail);
    // Hostile input: more than 100 assignments, or a body that is no object.
    let technician = builtin(&server, "Technician");
    let tenants: Vec<String> = (0..101)
        .map(|n| id(&server.post(&admin, "/tenants", json!({"name": format!("T{n}")}))))
        .collect();
    let trail = events(&server);
    let many: Vec<Value> = tenants
        .iter()
        .map(|t| json!({"role_id": technician, "tenant_id": t}))
        .collect();
    assert_error(
        &server.post(
            &admin,
            "/scim_group_mappings",
            json!({"scim_group_id": group, "role_assignments": many}),
        ),
        400,
        105,
    );
    assert_error(
        &server.post(
            &admin,
            "/scim_group_mappings",
            json!(["not", "an", "object"]),
        ),
        400,
        106,
    );
    assert_eq!(events(&server), trail);
    assert_eq!(user(&server, &admin, &ann)["roles"]["admin"], false);

    let made = server.post(
        &admin,
        "/scim_group_mappings",
        json!({"scim_group_id": group, "roles": {"developer": "read_write"}}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let mapping = made.body["id"].as_str().unwrap().to_owned();
    let path = format!("/scim_group_mappings/{mapping}");
    for key in [&manager, &scoped] {
        assert_error(&server.get(key, &path), 403, 101);
        assert_error(
            &server.patch(key, &path, json!({"roles": {"admin": true}})),
            403,
            101,
        );
        assert_error(&server.delete(key, &path), 403, 101);
    }
    assert_eq!(user(&server, &admin, &ann)["roles"]["admin"], false);
}

#[test]
fn another_accounts_groups_and_mappings_are_not_found() {
    let two = crate::isolation::two_accounts();
    let s = &two.server;
    // Account A provisions a group over SCIM.
    let token = provisioned(s);
    let ann = scim_user(s, &token, "ann@example.com");
    let group = scim_group(s, &token, "Staff", &[&ann]);
    let made = s.post(
        &s.admin_key,
        "/scim_group_mappings",
        json!({"scim_group_id": group, "roles": {"developer": "read_write"}}),
    );
    let mapping = id(&made);
    let b = &two.b_key;
    let b_trail = s.get(b, "/events?limit=100").body;
    // B's administrator can neither see A's group or mapping nor map A's group.
    assert_error(&s.get(b, &format!("/scim_groups/{group}")), 404, 102);
    assert_error(
        &s.get(b, &format!("/scim_group_mappings/{mapping}")),
        404,
        102,
    );
    assert_error(
        &s.post(
            b,
            "/scim_group_mappings",
            json!({"scim_group_id": group, "roles": {"admin": true}}),
        ),
        404,
        102,
    );
    let path = format!("/scim_group_mappings/{mapping}");
    assert_error(
        &s.patch(b, &path, json!({"roles": {"admin": true}})),
        404,
        102,
    );
    assert_error(&s.delete(b, &path), 404, 102);
    assert!(
        s.get(b, "/scim_groups").body["scim_groups"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // A's mapping cannot name B's tenant or role.
    let b_tenant = id(&s.post(b, "/tenants", json!({"name": "Globex"})));
    assert_error(
        &s.patch(
            &s.admin_key,
            &path,
            json!({"role_assignments": [{"role_id": builtin(s, "Technician"), "tenant_id": b_tenant}]}),
        ),
        404,
        102,
    );
    let b_role = id(&s.post(
        b,
        "/roles",
        json!({"name": "Globex ops", "permissions": ["computers.view"]}),
    ));
    assert_error(
        &s.patch(
            &s.admin_key,
            &path,
            json!({"role_assignments": [{"role_id": b_role}]}),
        ),
        404,
        102,
    );
    let after = s.get(b, "/events?limit=100").body["events"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        after,
        b_trail["events"].as_array().unwrap().len() + 2,
        "B's trail holds its own tenant and role only"
    );
    let a_view = s.get(&s.admin_key, &path).body;
    assert_eq!(a_view["role_assignments"], json!([]));
    assert_eq!(a_view["roles"]["developer"], "read_write");
}

#[test]
fn the_settings_page_maps_groups_for_administrators_only() {
    use crate::web::{Browser, PASSWORD, member_with_roles_and_password};
    let server = start_server();
    let token = provisioned(&server);
    let admin_key = server.admin_key.clone();
    let contoso = id(&server.post(&admin_key, "/tenants", json!({"name": "Contoso"})));
    let technician = builtin(&server, "Technician");
    let ann = scim_user(&server, &token, "ann@example.com");
    let group = scim_group(&server, &token, "Contoso technicians", &[&ann]);
    crate::login::admin_password(&server);
    let email = crate::login::admin_email(&server);
    let mut admin = Browser::new(&server).signed_in(&email, crate::login::PASSWORD);
    let page = admin.get("/ui/settings");
    assert!(page.html.contains("Contoso technicians"), "{}", page.html);
    assert!(
        page.html
            .contains("Map \u{201c}Contoso technicians\u{201d}")
    );
    let csrf = admin.csrf();
    let path = format!("/ui/settings/scim-groups/{group}/mapping");

    // A team manager sees no groups and maps none.
    member_with_roles_and_password(
        &server,
        "manager@example.com",
        json!({"developer": "read_write", "team": "manager"}),
    );
    let mut manager = Browser::new(&server).signed_in("manager@example.com", PASSWORD);
    assert!(
        !manager
            .get("/ui/settings")
            .html
            .contains("Contoso technicians")
    );
    let t = manager.csrf();
    let trail = events(&server);
    let refused = manager.post(
        &path,
        &[
            ("csrf", t.as_str()),
            ("grant_roles", "on"),
            ("admin", "on"),
            ("team", "manager"),
        ],
    );
    assert_eq!(refused.status, 403, "{}", refused.html);
    // The administrator's own session, posted from another site (its cookies and its
    // CSRF token sent along): refused.
    let mapping_of_technicians = [
        ("csrf", csrf.as_str()),
        ("role_id", technician.as_str()),
        ("tenant_id", contoso.as_str()),
    ];
    let cross = admin.post_from(Some("https://evil.example"), &path, &mapping_of_technicians);
    assert_eq!(cross.status, 403, "{}", cross.html);
    let no_origin = admin.post_from(None, &path, &mapping_of_technicians);
    assert_eq!(no_origin.status, 403, "{}", no_origin.html);
    // Granting Administrator through a group asks for the password, as on the team page.
    let unconfirmed = admin.post(
        &path,
        &[
            ("csrf", csrf.as_str()),
            ("grant_roles", "on"),
            ("admin", "on"),
        ],
    );
    assert_eq!(unconfirmed.status, 400, "{}", unconfirmed.html);
    assert!(
        unconfirmed.html.contains("password"),
        "{}",
        unconfirmed.html
    );
    assert_eq!(events(&server), trail);
    assert!(!may_maintain(&server, &ann, &contoso));

    // The administrator maps the group to Technician in Contoso.
    let saved = admin.post(&path, &mapping_of_technicians);
    assert_eq!(
        saved.location, "/ui/settings?done=mapping-saved",
        "{}",
        saved.html
    );
    assert!(may_maintain(&server, &ann, &contoso));
    let shown = admin.get("/ui/settings");
    assert!(
        shown.html.contains("Technician in Contoso"),
        "{}",
        shown.html
    );
    // Account roles too: the member page shows the group's grant apart, and its role
    // editor holds the roles set directly (saving it never copies the group's in).
    let kept = format!("{technician}:{contoso}");
    let with_roles = admin.post(
        &path,
        &[
            ("csrf", csrf.as_str()),
            ("keep", kept.as_str()),
            ("grant_roles", "on"),
            ("developer", "read_only"),
            ("team", "manager"),
        ],
    );
    assert_eq!(with_roles.location, "/ui/settings?done=mapping-saved");
    assert!(may_maintain(&server, &ann, &contoso));
    let detail = admin.get(&format!("/ui/members/{ann}"));
    assert!(
        detail
            .html
            .contains(&format!("Granted by SCIM group {group}")),
        "{}",
        detail.html
    );
    assert!(
        detail.html.contains(r#"<option value="invite" selected>"#),
        "{}",
        detail.html
    );
    assert_eq!(user(&server, &admin_key, &ann)["roles"]["team"], "manager");
    // Unchecking the kept assignment stops it; the group then grants nothing.
    let stopped = admin.post(&path, &[("csrf", csrf.as_str())]);
    assert_eq!(stopped.location, "/ui/settings?done=mapping-saved");
    assert!(!may_maintain(&server, &ann, &contoso));
    let unmapped = admin.post(
        &format!("/ui/settings/scim-groups/{group}/unmap"),
        &[("csrf", csrf.as_str())],
    );
    assert_eq!(unmapped.location, "/ui/settings?done=mapping-removed");
    assert!(
        server.get(&admin_key, "/scim_group_mappings").body["scim_group_mappings"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_mapping_outlives_a_tenant_it_names_and_grants_nothing_there() {
    let server = start_server();
    let token = provisioned(&server);
    let admin = server.admin_key.clone();
    let contoso = id(&server.post(&admin, "/tenants", json!({"name": "Contoso"})));
    let technician = builtin(&server, "Technician");
    let ann = scim_user(&server, &token, "ann@example.com");
    let bob = scim_user(&server, &token, "bob@example.com");
    let group = scim_group(&server, &token, "Contoso technicians", &[&ann]);
    let mapping = id(&server.post(
        &admin,
        "/scim_group_mappings",
        json!({"scim_group_id": group,
               "role_assignments": [{"role_id": technician, "tenant_id": contoso}]}),
    ));
    assert_eq!(assignments_of(&server, &ann).len(), 1);
    // The tenant goes, and with it every assignment in it.
    assert_eq!(
        server.delete(&admin, &format!("/tenants/{contoso}")).status,
        204
    );
    assert!(assignments_of(&server, &ann).is_empty());
    // The mapping still changes (what it named stays acceptable), and a new member gets
    // nothing in a tenant that is gone.
    let path = format!("/scim_group_mappings/{mapping}");
    let changed = server.patch(&admin, &path, json!({"roles": {"team": "manager"}}));
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(
        change_members(&server, &token, &group, "add", &bob).status,
        200
    );
    assert!(assignments_of(&server, &bob).is_empty());
    assert_eq!(user(&server, &admin, &bob)["roles"]["team"], "manager");
    // Naming it anew is refused.
    let other = id(&server.post(&admin, "/tenants", json!({"name": "Fabrikam"})));
    assert_error(
        &server.patch(
            &admin,
            &path,
            json!({"role_assignments": [{"role_id": technician, "tenant_id": contoso},
                                        {"role_id": technician, "tenant_id": other},
                                        {"role_id": builtin(&server, "Global Administrator"), "tenant_id": other}]}),
        ),
        400,
        105,
    );
    // The host operator's recovery makes Bob an administrator in his own right: the
    // group's grant stays apart, and the store agrees with itself.
    let dir = std::sync::Arc::clone(&server.dir);
    server.stop();
    let data = dir.path().join("data");
    let recovered = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["recover", "--data-dir"])
        .arg(&data)
        .args([
            "--account",
            "default",
            "--email",
            "bob@example.com",
            "--policies",
        ])
        .arg(crate::support::policies_dir())
        .output()
        .unwrap();
    assert!(recovered.status.success(), "{recovered:?}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["check", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}
