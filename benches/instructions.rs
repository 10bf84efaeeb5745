//! Runs one kind of decision a given number of times, for counting instructions under
//! callgrind (`scripts/count-instructions` runs it twice and divides the difference, so
//! loading and compiling the modules cancel out). Not a timing benchmark: it prints
//! nothing but what it decided.
//!
//! `iam` and `app` decide a whole `Request` (encoded each time, as `benches/authorize.rs`
//! does); `iam-cached` and `app-cached` decide it the way the server does, with the
//! principal encoded once when it is resolved and cached (`PolicyEngine::decide_parts`).
//!
//! Run: `cargo bench --bench instructions -- {iam|app}[-cached] N`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

mod scenario;

fn main() {
    // cargo bench passes `--bench` to harness-less targets; skip flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (which, n) = match args.as_slice() {
        [which, n] => (which.as_str(), n.parse::<u64>().unwrap()),
        _ => panic!("usage: instructions {{iam|app}}[-cached] N"),
    };
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
    let principal = latchkey::policy::encode_principal(&request.principal).unwrap();
    let mut allowed = 0u64;
    for _ in 0..n {
        let verdict = if cached {
            engine.decide_parts(
                black_box(&principal),
                &request.action,
                &request.resource,
                &request.context,
                false,
            )
        } else {
            engine.decide(black_box(&request))
        };
        allowed += u64::from(black_box(verdict).allowed);
    }
    assert_eq!(allowed, n, "every decision allows");
    println!("{which}: {n} decisions allowed");
}
