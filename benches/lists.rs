//! List pages through `Api::handle` (no network, no TLS) as the account grows: the first
//! page of `GET /events?limit=10`, of `GET /events?object_id=…&limit=10` (a filter read
//! through its index), a page deep in the trail (`before_id` of an event in the middle),
//! and the first page of `GET /api_keys?limit=10`, against an account of 10,000 and of
//! 1,000,000 API keys (each with its creation event, seeded in batched transactions). A
//! page reads only itself, so the two sizes should cost about the same.
//!
//! Run: `cargo bench --bench lists` (medians: see README). Set
//! `LATCHKEY_BENCH_SIZES=10000` to run one size only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use latchkey::api::Api;
use latchkey::domain::credential::Owner;
use latchkey::domain::event::Actor;
use latchkey::domain::token::TokenKind;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Seeded {
    _dir: tempfile::TempDir,
    api: Arc<Api>,
    key: String,
    /// An object id with a handful of events.
    object: String,
    /// An event a third of the way into the trail.
    middle: String,
}

fn seed(count: usize) -> Seeded {
    let (dir, lk, init) = support::fresh();
    let account = init.account.id;
    let bot = lk.create_bot(Actor::SYSTEM, account, "seeded").unwrap();
    let started = Instant::now();
    let made = lk
        .create_token_credentials_bulk(
            Actor::SYSTEM,
            account,
            TokenKind::ApiKey,
            &[Owner::Bot(bot.id)],
            count,
            20_000,
        )
        .unwrap();
    eprintln!(
        "seeded {count} API keys and their events in {:.1?}",
        started.elapsed()
    );
    let object = made[made.len() / 3].0.to_string();
    drop(made);
    let api = Arc::new(Api::new(Arc::new(lk), None));
    let key = init.api_key.expose().to_owned();
    let mut seeded = Seeded {
        _dir: dir,
        api,
        key,
        object,
        middle: String::new(),
    };
    // The event a third of the way into the trail: the seeded object's creation.
    let runtime = runtime();
    let page = runtime.block_on(get(
        &seeded,
        &format!("/events?object_id={}", seeded.object),
    ));
    seeded.middle = page["events"][0]["id"].as_str().unwrap().to_owned();
    seeded
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn request(seeded: &Seeded, path: &str) -> hyper::Request<Full<Bytes>> {
    support::request("GET", path, &seeded.key, Bytes::new())
}

async fn get(seeded: &Seeded, path: &str) -> serde_json::Value {
    let response = Arc::clone(&seeded.api).handle(request(seeded, path)).await;
    assert_eq!(response.status(), 200, "{path}");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

fn lists(c: &mut Criterion) {
    let sizes =
        std::env::var("LATCHKEY_BENCH_SIZES").unwrap_or_else(|_| "10000,1000000".to_owned());
    let mut group = c.benchmark_group("lists");
    group
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    for count in sizes.split(',').map(|n| {
        n.trim()
            .parse::<usize>()
            .expect("LATCHKEY_BENCH_SIZES: numbers")
    }) {
        let seeded = seed(count);
        let runtime = runtime();
        let paths = [
            ("GET /events?limit=10", "/events?limit=10".to_owned()),
            (
                "GET /events?object_id=…&limit=10",
                format!("/events?object_id={}&limit=10", seeded.object),
            ),
            (
                "GET /events?before_id=(middle)&limit=10",
                format!("/events?before_id={}&limit=10", seeded.middle),
            ),
            ("GET /api_keys?limit=10", "/api_keys?limit=10".to_owned()),
        ];
        for (name, path) in &paths {
            let page = runtime.block_on(get(&seeded, path));
            assert!(page.is_object());
            group.bench_with_input(BenchmarkId::new(*name, count), path, |b, path| {
                b.iter(|| {
                    let response = runtime.block_on(
                        Arc::clone(&seeded.api).handle(black_box(request(&seeded, path))),
                    );
                    black_box(response.status())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, lists);
criterion_main!(benches);
