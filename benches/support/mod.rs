//! What the in-process benchmarks share: a fresh latchkey with the built-in policies, and
//! a request as `Api::handle` receives it from the server (with the peer's address).

use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;
use latchkey::api::PeerAddr;
use latchkey::app::{Config, Initialized, Latchkey};

/// A new data directory with the built-in policies, initialised with the account `bench`.
pub fn fresh() -> (tempfile::TempDir, Latchkey, Initialized) {
    let dir = tempfile::tempdir().unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let lk = Latchkey::open(
        Config::new(dir.path().join("data"))
            .with_policies(policies)
            .creating(),
    )
    .unwrap();
    let init = lk.init("bench", "bench@example.com").unwrap();
    (dir, lk, init)
}

/// `method path` with `key` as the bearer and `body` as JSON, from 127.0.0.1.
#[allow(dead_code)] // Not every benchmark sends requests.
pub fn request(method: &str, path: &str, key: &str, body: Bytes) -> hyper::Request<Full<Bytes>> {
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    request
        .extensions_mut()
        .insert(PeerAddr("127.0.0.1:40000".parse().unwrap()));
    request
}
