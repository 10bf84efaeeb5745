//! Runs one kind of decision a given number of times, for counting instructions under
//! callgrind (`scripts/count-instructions` runs it twice and divides the difference, so
//! loading and compiling the modules cancel out). Not a timing benchmark: it prints
//! nothing but what it decided.
//!
//! `iam` and `app` decide a whole `Request` (encoded each time, as `benches/authorize.rs`
//! does); `iam-cached` and `app-cached` decide it the way the server does, with the
//! principal encoded once when it is resolved and cached (`PolicyEngine::decide_parts`).
//! All four ask the modules every time (`PolicySet::decide_afresh`, `decide_parts_afresh`), never a
//! remembered verdict. `api-verify` and `api-authorize` answer a whole `POST /verify` and
//! `POST /authorize` (a Technician of tenant T1 running maintenance on a computer of T1)
//! through `Api::handle`, without the network or TLS: everything latchkey adds to a
//! request, as the server does it (so the repeated check is answered from the memory of
//! verdicts).
//!
//! Run: `cargo bench --bench instructions -- {iam|app}[-cached] N` or `-- api-{verify|authorize} N`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

mod scenario;
mod support;

// The binary's allocator, so a request costs here what it costs in `latchkey serve`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // cargo bench passes `--bench` to harness-less targets; skip flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (which, n) = match args.as_slice() {
        [which, n] => (which.as_str(), n.parse::<u64>().unwrap()),
        _ => panic!("usage: instructions {{iam|app}}[-cached] N | api-{{verify|authorize}} N"),
    };
    if let Some(route) = which.strip_prefix("api-") {
        return through_api(route, n);
    }
    let (scenario, cached) = match which.strip_suffix("-cached") {
        Some(scenario) => (scenario, true),
        None => (which, false),
    };
    let request = match scenario {
        "iam" => scenario::iam(),
        "app" => scenario::app(),
        other => panic!("unknown scenario {other}"),
    };
    let engine = scenario::engine();
    let set = engine.current();
    let principal = latchkey::policy::encode_principal(&request.principal).unwrap();
    let mut allowed = 0u64;
    for _ in 0..n {
        let verdict = if cached {
            set.decide_parts_afresh(
                black_box(&principal),
                &request.action,
                &request.resource,
                &request.context,
            )
        } else {
            set.decide_afresh(black_box(&request))
        };
        allowed += u64::from(black_box(verdict).allowed);
    }
    assert_eq!(allowed, n, "every decision allows");
    println!("{which}: {n} decisions allowed");
}

/// `n` requests to `route` (`verify` or `authorize`) through `Api::handle`, each answered
/// 200 with `allowed: true` where it decides.
fn through_api(route: &str, n: u64) {
    use latchkey::domain::credential::Owner;
    use latchkey::domain::event::Actor;
    use latchkey::domain::tenancy::builtin_roles;
    use latchkey::domain::user::Roles;

    let (_dir, lk, init) = support::fresh();
    let key = init.api_key.expose().to_owned();
    let account = init.account.id;
    let body = match route {
        "verify" => format!("{{\"token\":\"{key}\"}}"),
        "authorize" => {
            let t1 = lk
                .create_tenant(Actor::SYSTEM, account, "T1", "")
                .unwrap()
                .id;
            let member = lk
                .add_member(
                    Actor::SYSTEM,
                    account,
                    "m@example.com",
                    "M",
                    Roles::default(),
                )
                .unwrap()
                .member
                .user
                .id;
            let technician = builtin_roles()
                .find(|(_, name, _)| *name == "Technician")
                .unwrap()
                .0;
            lk.assign_roles_bulk(
                Actor::SYSTEM,
                account,
                &[(Owner::User(member), technician, Some(t1))],
                10,
            )
            .unwrap();
            serde_json::json!({
                "principal": {"id": member.to_string()},
                "action": "computers.run_maintenance",
                "resource": {"type": "computer", "id": "c-42", "tenant_id": t1.to_string()},
            })
            .to_string()
        }
        other => panic!("unknown route {other}"),
    };
    let api = std::sync::Arc::new(latchkey::api::Api::new(std::sync::Arc::new(lk), None));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = format!("/{route}");
    let body = bytes::Bytes::from(body);
    for _ in 0..n {
        let request = support::request("POST", &path, &key, body.clone());
        let response = runtime.block_on(std::sync::Arc::clone(&api).handle(black_box(request)));
        assert_eq!(response.status(), 200);
    }
    println!("api-{route}: {n} requests answered");
}
