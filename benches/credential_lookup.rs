//! Credential lookup: `Latchkey::verify_token` against a store of 10,000 and of 1,000,000
//! API keys (seeded through the batched bulk path: one commit per 20,000 credentials).
//!
//! Cases: a valid key, a wrong secret (right id, valid checksum), a bad checksum (one
//! character flipped), and an unknown id. Valid keys are drawn in turn from 4,096 keys
//! spread over the whole store, so at 1,000,000 lookups miss the CPU caches as they would
//! in service, instead of hitting one hot entry.
//!
//! Run: `cargo bench --bench credential_lookup` (medians: see README). Set
//! `LATCHKEY_BENCH_SIZES=10000` to run one size only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use latchkey::app::Latchkey;
use latchkey::domain::credential::Owner;
use latchkey::domain::event::Actor;
use latchkey::domain::token::{Secret, TokenKind, mint};

const SAMPLE: usize = 4096;

struct Seeded {
    _dir: tempfile::TempDir,
    lk: Latchkey,
    valid: Vec<Secret>,
    wrong_secret: Secret,
    bad_checksum: String,
    unknown: Secret,
}

fn seed(count: usize) -> Seeded {
    let (dir, lk, init) = support::fresh();
    let account = init.account.id;
    let owners: Vec<Owner> = (0..100)
        .map(|i| {
            Owner::Bot(
                lk.create_bot(Actor::SYSTEM, account, &format!("bot-{i}"))
                    .unwrap()
                    .id,
            )
        })
        .collect();
    let started = Instant::now();
    let made = lk
        .create_token_credentials_bulk(
            Actor::SYSTEM,
            account,
            TokenKind::ApiKey,
            &owners,
            count,
            20_000,
        )
        .unwrap();
    eprintln!("seeded {count} API keys in {:.1?}", started.elapsed());
    let step = (made.len() / SAMPLE).max(1);
    let valid: Vec<Secret> = made
        .iter()
        .step_by(step)
        .take(SAMPLE)
        .map(|(_, s)| s.clone())
        .collect();
    let (some_id, _) = made[made.len() / 2];
    drop(made);
    let wrong_secret = mint(TokenKind::ApiKey, some_id.raw).unwrap();
    let mut flipped = valid[0].expose().as_bytes().to_vec();
    flipped[50] = if flipped[50] == b'Q' { b'R' } else { b'Q' };
    Seeded {
        _dir: dir,
        lk,
        valid,
        wrong_secret,
        bad_checksum: String::from_utf8(flipped).unwrap(),
        unknown: mint(TokenKind::ApiKey, 0x0123_4567_89ab_cdef).unwrap(),
    }
}

fn credential_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    group
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    let sizes =
        std::env::var("LATCHKEY_BENCH_SIZES").unwrap_or_else(|_| "10000,1000000".to_owned());
    for count in sizes.split(',').map(|n| {
        n.trim()
            .parse::<usize>()
            .expect("LATCHKEY_BENCH_SIZES: numbers")
    }) {
        let seeded = seed(count);
        let lk = &seeded.lk;
        assert!(lk.verify_token(seeded.valid[0].expose()).is_ok());
        let mut next = 0usize;
        group.bench_with_input(BenchmarkId::new("valid_key", count), &count, |b, _| {
            b.iter(|| {
                next = (next + 1) % seeded.valid.len();
                black_box(lk.verify_token(black_box(seeded.valid[next].expose()))).is_ok()
            })
        });
        group.bench_with_input(BenchmarkId::new("wrong_secret", count), &count, |b, _| {
            b.iter(|| black_box(lk.verify_token(black_box(seeded.wrong_secret.expose()))).is_err())
        });
        group.bench_with_input(BenchmarkId::new("bad_checksum", count), &count, |b, _| {
            b.iter(|| black_box(lk.verify_token(black_box(&seeded.bad_checksum))).is_err())
        });
        group.bench_with_input(BenchmarkId::new("unknown_id", count), &count, |b, _| {
            b.iter(|| black_box(lk.verify_token(black_box(seeded.unknown.expose()))).is_err())
        });
    }
    group.finish();
}

criterion_group!(benches, credential_lookup);
criterion_main!(benches);
