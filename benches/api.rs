//! One `POST /verify` through `Api::handle`, without the network or TLS: what latchkey
//! itself adds to every verify request (bearer lookup, IP gate, the caller's
//! authorization through the policies, the lookup of the presented token, the answer).
//!
//! Run: `cargo bench --bench api`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use latchkey::api::Api;

// The binary's allocator, so the figure is what `latchkey serve` spends.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn verify(c: &mut Criterion) {
    let (_dir, lk, init) = support::fresh();
    let key = init.api_key.expose().to_owned();
    let api = Arc::new(Api::new(Arc::new(lk), None));
    let body = Bytes::from(format!("{{\"token\":\"{key}\"}}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let request = || support::request("POST", "/verify", &key, body.clone());
    let first = runtime.block_on(Arc::clone(&api).handle(request()));
    assert_eq!(first.status(), 200);

    let mut group = c.benchmark_group("api");
    group
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("POST /verify (valid API key)", |b| {
        b.iter(|| {
            let response = runtime.block_on(Arc::clone(&api).handle(black_box(request())));
            black_box(response.status())
        })
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
