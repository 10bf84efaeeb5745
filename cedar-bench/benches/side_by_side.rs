//! latchkey's policy engine and Cedar deciding the same two requests in one process: the
//! tenant-role scenario of `benches/scenario` (a member with developer read/write,
//! Technician in tenant A, Read-Only for all tenants, and a custom role of 20 permissions
//! in tenant B), asking to create an API key and to run maintenance on a computer of
//! tenant B. Both must allow both.
//!
//! Cedar gets the scenario the way a Cedar user would write it: the member is an entity
//! whose parents are its role assignments, each assignment is one `permit` naming the
//! actions its role grants (from the same built-in role table and custom bit set
//! tenant-roles reads) and, for a tenant assignment, the tenant; the API key is one
//! `permit` on the developer role. Entities and policies are parsed once; each iteration
//! builds the request and asks the authorizer, as latchkey builds and encodes its request
//! and asks its modules. Cedar's set holds only the policies this scenario needs, which
//! favours it: it evaluates every policy in the set, and account-rbac decides all of the
//! account's actions.
//!
//! Run: `cargo bench -p latchkey-cedar-bench`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request as CedarRequest,
};
use criterion::{Criterion, criterion_group, criterion_main};
use latchkey_policy_abi::{BUILTIN_CATALOG, Developer, builtin_role_grants};

#[path = "../../benches/scenario/mod.rs"]
mod scenario;

/// The Cedar side: policies, entities, and the two requests' parts.
struct Cedar {
    policies: PolicySet,
    entities: Entities,
    principal: EntityUid,
    iam: (EntityUid, EntityUid),
    app: (EntityUid, EntityUid),
}

fn uid(kind: &str, id: &str) -> EntityUid {
    EntityUid::from_str(&format!("Latchkey::{kind}::{}", quoted(id))).unwrap()
}

/// A JSON string literal, which is also a Cedar string literal for these ASCII values.
fn quoted(s: &str) -> String {
    assert!(s.bytes().all(|b| b.is_ascii_graphic() || b == b' ') && !s.contains(['"', '\\']));
    format!("\"{s}\"")
}

fn cedar() -> Cedar {
    let member = scenario::principal();
    let account = &member.account;
    let mut policies = String::new();
    let mut parents = Vec::new();
    for a in &member.assignments {
        let scope = a.tenant.as_deref().unwrap_or("*");
        let group = format!("{}@{scope}", a.role);
        parents.push(format!(
            r#"{{"type": "Latchkey::Assignment", "id": {}}}"#,
            quoted(&group)
        ));
        let actions: Vec<String> = BUILTIN_CATALOG
            .iter()
            .enumerate()
            .filter(|(i, name)| {
                if a.builtin {
                    builtin_role_grants(&a.role, Some(name))
                } else {
                    a.grants(*i as u32)
                }
            })
            .map(|(_, name)| format!("Latchkey::Action::{}", quoted(name)))
            .collect();
        let tenant = a
            .tenant
            .as_deref()
            .map(|t| format!(" && resource.tenant == {}", quoted(t)))
            .unwrap_or_default();
        policies.push_str(&format!(
            "permit(principal in Latchkey::Assignment::{}, action in [{}], resource is Latchkey::Computer)\n\
             when {{ resource.account == principal.account{tenant} }};\n",
            quoted(&group),
            actions.join(", "),
        ));
    }
    policies.push_str(
        "permit(principal is Latchkey::User, action == Latchkey::Action::\"iam.api_keys.create\", resource is Latchkey::ApiKey)\n\
         when { principal.developer == \"read_write\" && resource.account == principal.account };\n",
    );
    let developer = match member.roles.unwrap().developer {
        Developer::ReadWrite => "read_write",
        Developer::ReadOnly => "read_only",
    };
    let entities = format!(
        r#"[
  {{"uid": {{"type": "Latchkey::User", "id": {id}}},
    "attrs": {{"account": {account}, "developer": "{developer}"}},
    "parents": [{parents}]}},
  {{"uid": {{"type": "Latchkey::Computer", "id": "c-42"}},
    "attrs": {{"account": {account}, "tenant": {tenant}}}, "parents": []}},
  {{"uid": {{"type": "Latchkey::ApiKey", "id": "c-42"}},
    "attrs": {{"account": {account}}}, "parents": []}}
]"#,
        id = quoted(&member.id),
        account = quoted(account),
        parents = parents.join(", "),
        tenant = quoted(scenario::TENANT_B),
    );
    let assignment_groups = member.assignments.iter().map(|a| {
        let group = format!("{}@{}", a.role, a.tenant.as_deref().unwrap_or("*"));
        format!(r#"{{"uid": {{"type": "Latchkey::Assignment", "id": {}}}, "attrs": {{}}, "parents": []}}"#, quoted(&group))
    });
    let entities = format!(
        "[{}, {}]",
        entities
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']'),
        assignment_groups.collect::<Vec<_>>().join(", ")
    );
    Cedar {
        policies: PolicySet::from_str(&policies).unwrap(),
        entities: Entities::from_json_str(&entities, None).unwrap(),
        principal: uid("User", &member.id),
        iam: (uid("Action", "iam.api_keys.create"), uid("ApiKey", "c-42")),
        app: (
            uid("Action", "computers.run_maintenance"),
            uid("Computer", "c-42"),
        ),
    }
}

impl Cedar {
    fn allows(&self, authorizer: &Authorizer, (action, resource): &(EntityUid, EntityUid)) -> bool {
        let request = CedarRequest::new(
            self.principal.clone(),
            action.clone(),
            resource.clone(),
            Context::empty(),
            None,
        )
        .unwrap();
        authorizer
            .is_authorized(&request, &self.policies, &self.entities)
            .decision()
            == Decision::Allow
    }
}

fn side_by_side(c: &mut Criterion) {
    let engine = scenario::engine_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"));
    let cedar = cedar();
    let authorizer = Authorizer::new();
    let (iam, app) = (scenario::iam(), scenario::app());
    let principal = latchkey::policy::encode_principal(&iam.principal).unwrap();
    for (name, request, parts) in [("iam", &iam, &cedar.iam), ("app", &app, &cedar.app)] {
        assert!(engine.decide(request).allowed, "latchkey allows {name}");
        assert!(cedar.allows(&authorizer, parts), "cedar allows {name}");
    }
    // Both refuse what no role of the member grants.
    let outside = scenario::request(
        "system.manage_licenses",
        "computer",
        Some(scenario::TENANT_B),
    );
    assert!(!engine.decide(&outside).allowed);
    assert!(!cedar.allows(
        &authorizer,
        &(
            uid("Action", "system.manage_licenses"),
            uid("Computer", "c-42")
        )
    ));

    let mut group = c.benchmark_group("side_by_side");
    group
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    for (name, request, parts) in [("iam", &iam, &cedar.iam), ("app", &app, &cedar.app)] {
        group.bench_function(format!("{name}/latchkey"), |b| {
            b.iter(|| black_box(engine.decide(black_box(request))).allowed)
        });
        group.bench_function(format!("{name}/latchkey_cached_principal"), |b| {
            b.iter(|| {
                let verdict = engine.decide_parts(
                    black_box(&principal),
                    &request.action,
                    &request.resource,
                    &request.context,
                    false,
                );
                black_box(verdict).allowed
            })
        });
        group.bench_function(format!("{name}/cedar"), |b| {
            b.iter(|| black_box(cedar.allows(&authorizer, black_box(parts))))
        });
    }
    group.finish();
}

criterion_group!(benches, side_by_side);
criterion_main!(benches);
