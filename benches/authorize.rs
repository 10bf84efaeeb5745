//! One authorization decision through the real built-in modules (`policies/`), sandboxed:
//! an account action routed to account-rbac, and an application action routed to
//! tenant-roles for a member with three tenant assignments, one of them a custom role of
//! 20 permissions (`benches/scenario`). Each iteration encodes the request, runs the module
//! on a warm instance (fuel set, allocator reset) and combines the verdict
//! (`decide_afresh`); `remembered` is the same request asked again of `decide`, answered
//! from the set's memory of verdicts (both modules declare `reads_clock = false`).
//!
//! Run: `cargo bench --bench authorize`. Instructions per decision, which repeat exactly
//! whatever else the host is doing: `scripts/count-instructions`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

mod scenario;

fn authorize(c: &mut Criterion) {
    let engine = scenario::engine();
    let (iam, app) = (scenario::iam(), scenario::app());
    assert!(engine.decide(&iam).allowed);
    assert!(engine.decide(&app).allowed, "{:?}", engine.decide(&app));

    let mut group = c.benchmark_group("authorize");
    group
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    let set = engine.current();
    group.bench_function("account_rbac/iam.api_keys.create", |b| {
        b.iter(|| black_box(set.decide_afresh(black_box(&iam))).allowed)
    });
    group.bench_function("tenant_roles/computers.run_maintenance", |b| {
        b.iter(|| black_box(set.decide_afresh(black_box(&app))).allowed)
    });
    group.bench_function("remembered/computers.run_maintenance", |b| {
        b.iter(|| black_box(engine.decide(black_box(&app))).allowed)
    });
    group.finish();
}

criterion_group!(benches, authorize);
criterion_main!(benches);
