//! One `POST /verify` through `Api::handle`, without the network or TLS: what latchkey
//! itself adds to every verify request (bearer lookup, IP gate, the caller's
//! authorization through the policies, the lookup of the presented token, the answer).
//!
//! Run: `cargo bench --bench api`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::Full;
use latchkey::api::{Api, PeerAddr};
use latchkey::app::{Config, Latchkey};

// The binary's allocator, so the figure is what `latchkey serve` spends.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let lk = Latchkey::open(
        Config::new(dir.path().join("data"))
            .with_policies(policies)
            .creating(),
    )
    .unwrap();
    let init = lk.init("bench", "bench@example.com").unwrap();
    let key = init.api_key.expose().to_owned();
    let api = Arc::new(Api::new(Arc::new(lk), None));
    let body = Bytes::from(format!("{{\"token\":\"{key}\"}}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let request = || {
        let mut request = hyper::Request::post("/verify")
            .header("host", "localhost")
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .unwrap();
        request
            .extensions_mut()
            .insert(PeerAddr("127.0.0.1:40000".parse().unwrap()));
        request
    };
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
