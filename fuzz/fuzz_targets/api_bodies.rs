//! The API's JSON bodies, through `Api::handle` on a real store: any body on any
//! writable route is answered (2xx, or 4xx in the error shape), never a panic and never
//! a 5xx. The first byte picks the route.
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use latchkey::api::{Api, PeerAddr};
use latchkey::app::{Config, Latchkey};
use libfuzzer_sys::fuzz_target;

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/bot_users"),
    ("POST", "/api_keys"),
    ("POST", "/credentials"),
    ("POST", "/ssh_credentials"),
    ("POST", "/ip_policies"),
    ("POST", "/ip_policy_rules"),
    ("POST", "/ip_restrictions"),
    ("POST", "/users"),
    ("POST", "/tenants"),
    ("POST", "/roles"),
    ("POST", "/role_assignments"),
    ("POST", "/permissions"),
    ("POST", "/invitations"),
    ("POST", "/event_destinations"),
    ("POST", "/verify"),
    ("POST", "/authorize"),
    ("POST", "/authorize/batch"),
    ("POST", "/login"),
    ("PATCH", "/account"),
    ("PATCH", "/me"),
    ("POST", "/me/password"),
];

struct World {
    _dir: tempfile::TempDir,
    api: Arc<Api>,
    key: String,
    runtime: tokio::runtime::Runtime,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let lk = Latchkey::open(
            Config::new(dir.path().join("data"))
                .with_policies(policies)
                .creating(),
        )
        .unwrap();
        let init = lk.init("fuzz", "fuzz@example.com").unwrap();
        World {
            _dir: dir,
            api: Arc::new(Api::new(Arc::new(lk), None)),
            key: init.api_key.expose().to_owned(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&pick, body)) = input.split_first() else {
        return;
    };
    let world = world();
    let (method, path) = ROUTES[usize::from(pick) % ROUTES.len()];
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", world.key))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    request
        .extensions_mut()
        .insert(PeerAddr("127.0.0.1:40000".parse().unwrap()));
    let response = world
        .runtime
        .block_on(Arc::clone(&world.api).handle(request));
    let status = response.status();
    assert!(!status.is_server_error(), "{method} {path}: {status}");
    if !status.is_success() && status != 204 {
        let body = world
            .runtime
            .block_on(response.into_body().collect())
            .unwrap()
            .to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("ERR_LATCHKEY_"),
            "{method} {path}: {status} {text}"
        );
    }
});
