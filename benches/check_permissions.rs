//! What `POST /authorize` runs, as the account grows: `Latchkey::check_permissions` for
//! one tenant decision, and the same through `Api::handle` (no network, no TLS), in an
//! account holding 3, 3,003 and 30,000 role assignments. The member asked about always
//! has the same three (Technician in tenant T1, a custom role of 20 permissions in T2,
//! Read-Only everywhere); the rest belong to bot users, 30 each across 30 tenants. A
//! decision reads only its principal (cached until a write could change it), so the
//! three sizes should cost about the same.
//!
//! Run: `cargo bench --bench check_permissions` (medians: see README). Set
//! `LATCHKEY_BENCH_SIZES=3,3003` to run some sizes only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use latchkey::api::Api;
use latchkey::app::{Latchkey, Target};
use latchkey::domain::credential::Owner;
use latchkey::domain::event::{Actor, Principal};
use latchkey::domain::id::{AccountId, RoleId, TenantId};
use latchkey::domain::tenancy::builtin_roles;
use latchkey::domain::user::Roles;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Assignments per filler bot, one per filler tenant.
const PER_BOT: usize = 30;

struct Seeded {
    _dir: tempfile::TempDir,
    lk: Arc<Latchkey>,
    api: Arc<Api>,
    key: String,
    account: AccountId,
    caller: Actor,
    member: Actor,
    t1: TenantId,
}

fn builtin(name: &str) -> RoleId {
    builtin_roles().find(|(_, n, _)| *n == name).unwrap().0
}

fn seed(total: usize) -> Seeded {
    let (dir, lk, init) = support::fresh();
    let account = init.account.id;
    let sys = Actor::SYSTEM;
    let started = Instant::now();
    let t1 = lk.create_tenant(sys, account, "T1", "").unwrap().id;
    let t2 = lk.create_tenant(sys, account, "T2", "").unwrap().id;
    let catalog = latchkey_policy_abi::BUILTIN_CATALOG;
    let twenty: Vec<String> = catalog.iter().take(20).map(|p| (*p).to_owned()).collect();
    let custom = lk
        .create_role(sys, account, "Helpdesk", "", &twenty)
        .unwrap()
        .id;
    let member = lk
        .add_member(sys, account, "m@example.com", "M", Roles::default())
        .unwrap()
        .member
        .user
        .id;
    let owner = Owner::User(member);
    let mut wanted = vec![
        (owner, builtin("Technician"), Some(t1)),
        (owner, custom, Some(t2)),
        (owner, builtin("Read-Only"), None),
    ];
    let fillers = (total - 3) / PER_BOT;
    let tenants: Vec<TenantId> = if fillers > 0 {
        (0..PER_BOT)
            .map(|i| {
                lk.create_tenant(sys, account, &format!("F{i}"), "")
                    .unwrap()
                    .id
            })
            .collect()
    } else {
        Vec::new()
    };
    let technician = builtin("Technician");
    for b in 0..fillers {
        let bot = lk.create_bot(sys, account, &format!("filler {b}")).unwrap();
        for tenant in &tenants {
            wanted.push((Owner::Bot(bot.id), technician, Some(*tenant)));
        }
    }
    lk.assign_roles_bulk(sys, account, &wanted, 5_000).unwrap();
    eprintln!(
        "seeded {} role assignments in {:.1?}",
        wanted.len(),
        started.elapsed()
    );
    let lk = Arc::new(lk);
    Seeded {
        _dir: dir,
        api: Arc::new(Api::new(Arc::clone(&lk), None)),
        lk,
        key: init.api_key.expose().to_owned(),
        account,
        caller: Actor {
            principal: Principal::User(init.user.id),
            credential: None,
        },
        member: Actor {
            principal: Principal::User(member),
            credential: None,
        },
        t1,
    }
}

fn target(tenant: TenantId) -> Target {
    let mut target = Target::action("computers.run_maintenance", "computer", "c-42");
    target.tenant = Some(tenant.to_string());
    target
}

fn sizes() -> Vec<usize> {
    std::env::var("LATCHKEY_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').map(|n| n.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| vec![3, 3_003, 30_003])
}

fn check_permissions(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("check_permissions");
    group
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    for total in sizes() {
        let seeded = seed(total);
        let decide = || {
            seeded
                .lk
                .check_permissions(
                    seeded.caller,
                    seeded.account,
                    vec![(seeded.member, target(seeded.t1))],
                    false,
                )
                .unwrap()
        };
        assert!(decide()[0].allowed, "{:?}", decide());
        group.bench_with_input(BenchmarkId::new("in_process", total), &total, |b, _| {
            b.iter(|| black_box(decide()))
        });
        let body = Bytes::from(
            serde_json::json!({
                "principal": {"id": seeded.member.principal.id_string()},
                "action": "computers.run_maintenance",
                "resource": {"type": "computer", "id": "c-42", "tenant_id": seeded.t1.to_string()},
            })
            .to_string(),
        );
        let request = || support::request("POST", "/authorize", &seeded.key, body.clone());
        let first = runtime.block_on(Arc::clone(&seeded.api).handle(request()));
        assert_eq!(first.status(), 200);
        group.bench_with_input(BenchmarkId::new("api", total), &total, |b, _| {
            b.iter(|| {
                let response =
                    runtime.block_on(Arc::clone(&seeded.api).handle(black_box(request())));
                black_box(response.status())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, check_permissions);
criterion_main!(benches);
