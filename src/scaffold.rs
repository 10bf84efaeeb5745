//! `latchkey policy new NAME`: writes a standalone policy crate on the SDK. The SDK and ABI
//! sources are embedded in this binary and written beside the new crate, so it builds
//! offline, anywhere, against exactly the ABI this binary speaks.

use std::fs;
use std::path::{Path, PathBuf};

/// Files of the SDK and the ABI, as this binary was built with them.
const VENDORED: &[(&str, &str)] = &[
    (
        "sdk/latchkey-policy-abi/Cargo.toml",
        include_str!("../plugins/abi/Cargo.toml"),
    ),
    (
        "sdk/latchkey-policy-abi/src/lib.rs",
        include_str!("../plugins/abi/src/lib.rs"),
    ),
    (
        "sdk/latchkey-policy-abi/src/view.rs",
        include_str!("../plugins/abi/src/view.rs"),
    ),
    (
        "sdk/latchkey-policy-sdk/src/lib.rs",
        include_str!("../plugins/sdk/src/lib.rs"),
    ),
    (
        "sdk/latchkey-policy-sdk/src/actions.rs",
        include_str!("../plugins/sdk/src/actions.rs"),
    ),
    (
        "sdk/latchkey-policy-sdk/src/cases.rs",
        include_str!("../plugins/sdk/src/cases.rs"),
    ),
    (
        "sdk/latchkey-policy-sdk/src/guest.rs",
        include_str!("../plugins/sdk/src/guest.rs"),
    ),
];
const SDK_MANIFEST: &str = include_str!("../plugins/sdk/Cargo.toml");
/// The worked example is the template: a real policy with tests, ready to edit.
const EXAMPLE_LIB: &str = include_str!("../plugins/examples/business-hours/src/lib.rs");
const EXAMPLE_CASES: &str =
    include_str!("../plugins/examples/business-hours/business-hours.cases.json");

/// Why a scaffold could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The name is not a valid crate and policy name.
    #[error(
        "{0:?} is not a valid policy name: use 1 to 63 lowercase letters, digits and '-', starting with a letter"
    )]
    BadName(String),
    /// The target directory exists.
    #[error("{0} already exists; choose another name or directory")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Write a new policy crate named `name` into `parent/name`; returns its directory.
pub fn new_policy(parent: &Path, name: &str) -> Result<PathBuf, ScaffoldError> {
    let valid = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    let root = parent.join(name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    let crate_ident = name.replace('-', "_");
    let mut files: Vec<(String, String)> = VENDORED
        .iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect();
    files.push((
        "sdk/latchkey-policy-sdk/Cargo.toml".to_owned(),
        SDK_MANIFEST.replace("path = \"../abi\"", "path = \"../latchkey-policy-abi\""),
    ));
    files.push(("Cargo.toml".to_owned(), cargo_toml(name)));
    files.push(("rust-toolchain.toml".to_owned(), TOOLCHAIN.to_owned()));
    files.push((
        "src/lib.rs".to_owned(),
        EXAMPLE_LIB.replace("BusinessHours", "MyPolicy"),
    ));
    files.push((format!("{name}.cases.json"), EXAMPLE_CASES.to_owned()));
    files.push(("tests/cases.rs".to_owned(), cases_test(name, &crate_ident)));
    files.push((format!("{name}.toml"), manifest(name)));
    files.push(("README.md".to_owned(), readme(name, &crate_ident)));
    files.push((".gitignore".to_owned(), "/target\n".to_owned()));
    for (relative, contents) in files {
        let path = root.join(relative);
        let io = |source| ScaffoldError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io)?;
        }
        fs::write(&path, contents).map_err(io)?;
    }
    Ok(root)
}

const TOOLCHAIN: &str = "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"wasm32-unknown-unknown\"]\nprofile = \"minimal\"\n";

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the .wasm module; rlib: so native tests can call the policy directly.
crate-type = ["cdylib", "rlib"]

[dependencies]
latchkey-policy-sdk = {{ path = "sdk/latchkey-policy-sdk" }}

[dev-dependencies]
latchkey-policy-sdk = {{ path = "sdk/latchkey-policy-sdk", features = ["cases"] }}

# Its own workspace: the policy builds on its own, wherever it lives.
[workspace]

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#
    )
}

fn cases_test(name: &str, ident: &str) -> String {
    format!(
        r#"//! Runs `{name}.cases.json` through the policy natively; a failure lists every mismatch.

use latchkey_policy_sdk::cases;

#[test]
fn every_case_passes() {{
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/{name}.cases.json");
    let json = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{{path}}: {{e}}"));
    match cases::run::<{ident}::MyPolicy>(&json) {{
        Ok(count) => assert!(count > 0, "{{path}} holds no cases"),
        Err(report) => panic!("{{path}}:\n{{report}}"),
    }}
}}
"#
    )
}

fn manifest(name: &str) -> String {
    format!(
        r#"# Copy this file and {name}.wasm into the server's policies folder, then reload.
name = "{name}"
module = "{name}.wasm"
# Custom modules narrow what the built-ins allow, or decide a namespace of their own.
kind = "custom"
actions = ["computers.remote_control"]
# This policy reads the clock (context.time_ms). One that never does may say
# `reads_clock = false`, which lets the server reuse its allows until something changes.
"#
    )
}

fn readme(name: &str, ident: &str) -> String {
    format!(
        r#"# {name}

A latchkey policy (ABI v1). It starts as the business-hours example: edit `src/lib.rs`,
the cases in `{name}.cases.json`, and the action patterns in `{name}.toml`.

```sh
cargo test                                                   # the policy, natively
cargo build --release --target wasm32-unknown-unknown        # the module
cp target/wasm32-unknown-unknown/release/{ident}.wasm {name}.wasm
latchkey policy check {name}.wasm                            # as the server will load it
latchkey policy test {name}.wasm {name}.cases.json           # the cases, through the sandbox
```

Then copy `{name}.wasm` and `{name}.toml` into the server's policies folder and reload.
`sdk/` holds the SDK and ABI sources this latchkey speaks; do not edit them.
"#
    )
}
