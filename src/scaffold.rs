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
/// The lock of a scaffolded crate named `policy-crate`: the versions this latchkey builds
/// and tests the SDK with (a test holds them to the repository's `Cargo.lock`).
const LOCK_TEMPLATE: &str = include_str!("../plugins/sdk/policy-crate.Cargo.lock");
/// Where the crate's dependencies are vendored, and the cargo configuration that builds
/// from there and never from the registry.
const VENDOR_CONFIG: &str = "# Written by `latchkey policy new`: build from ../vendor, never from a registry.\n[source.crates-io]\nreplace-with = \"vendored-sources\"\n\n[source.vendored-sources]\ndirectory = \"vendor\"\n";
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
    /// The crate is written but its dependencies could not be vendored.
    #[error(
        "{0} is written, but its dependencies could not be vendored ({1}): run `cargo vendor --locked vendor` there once with registry access, and it builds offline from then on"
    )]
    Vendor(PathBuf, String),
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
    files.push(("Cargo.lock".to_owned(), lock_file(name)));
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
    vendor(&root)?;
    Ok(root)
}

/// The crate's `Cargo.lock`: the template's, for a crate called `name` (packages stay in
/// cargo's order, by name then version, so `--locked` finds nothing to change).
fn lock_file(name: &str) -> String {
    let mut sections: Vec<&str> = LOCK_TEMPLATE.split("\n[[package]]\n").collect();
    let head = if sections.is_empty() {
        ""
    } else {
        sections.remove(0)
    };
    let mut packages: Vec<String> = sections
        .into_iter()
        .map(|p| p.replacen("name = \"policy-crate\"", &format!("name = \"{name}\""), 1))
        .collect();
    // Cargo's order: by name, then version (numerically, part by part).
    let key = |p: &String| -> (String, Vec<u64>) {
        let version = lock_field(p, "version")
            .split(['.', '-', '+'])
            .map(|part| part.parse().unwrap_or(0))
            .collect();
        (lock_field(p, "name"), version)
    };
    packages.sort_by_key(key);
    let mut out = head.to_owned();
    for package in packages {
        out.push_str("\n[[package]]\n");
        out.push_str(package.trim_end_matches('\n'));
        out.push('\n');
    }
    out
}

/// The value of `field` in one `[[package]]` section of a `Cargo.lock`.
fn lock_field(package: &str, field: &str) -> String {
    let prefix = format!("{field} = ");
    package
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or("")
        .trim_matches('"')
        .to_owned()
}

/// Copy the locked dependencies into `root/vendor` with `cargo vendor`: from cargo's
/// cache when it has them, else from the registry, once. Afterwards the crate builds with
/// no registry access (`.cargo/config.toml` points cargo there).
fn vendor(root: &Path) -> Result<(), ScaffoldError> {
    let run = |offline: bool| {
        let mut command = std::process::Command::new("cargo");
        command
            .args(["vendor", "--locked", "--quiet"])
            .args(offline.then_some("--offline"))
            .arg("vendor")
            .current_dir(root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        command.output()
    };
    let failed = |why: String| ScaffoldError::Vendor(root.to_owned(), why);
    let outcome = match run(true) {
        Ok(out) if out.status.success() => Ok(()),
        _ => match run(false) {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(failed(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            )),
            Err(err) => Err(failed(format!("cargo could not run: {err}"))),
        },
    };
    outcome?;
    // Written once the sources are there: before, it would point cargo at nothing.
    let config = root.join(".cargo/config.toml");
    let io = |source| ScaffoldError::Io {
        path: config.clone(),
        source,
    };
    fs::create_dir_all(root.join(".cargo")).map_err(io)?;
    fs::write(&config, VENDOR_CONFIG).map_err(io)
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

It builds with no registry access: `Cargo.lock` pins every dependency to the versions
this latchkey was built and tested with, `vendor/` holds their sources, and
`.cargo/config.toml` makes cargo use them. `sdk/` holds the SDK and ABI sources this
latchkey speaks; do not edit them.

1. **Test** the policy natively, its unit tests and its decision cases:

   ```sh
   cargo test --offline
   ```

2. **Build** the module:

   ```sh
   cargo build --offline --release --target wasm32-unknown-unknown
   cp target/wasm32-unknown-unknown/release/{ident}.wasm {name}.wasm
   ```

3. **Check** it as the server will load it (the manifest beside it is checked too: every
   action pattern must match an action latchkey knows, or a namespace the manifest
   declares under `namespaces`):

   ```sh
   latchkey policy check {name}.toml
   ```

4. **Test** the cases through the sandbox, alone and with the server's whole set:

   ```sh
   latchkey policy test {name}.wasm {name}.cases.json
   cp -r /var/lib/latchkey/policies trial && cp {name}.wasm {name}.toml trial/
   latchkey policy test trial {name}.cases.json
   ```

   The second runs the cases against the whole set, combined exactly as the server will
   combine it, and reports what each module decided (expect `allow` or `deny` there:
   a set never abstains).

5. **Install** into the folder the server loads (`DATA_DIR/policies` unless `serve` was
   given `--policies`):

   ```sh
   cp {name}.wasm {name}.toml /var/lib/latchkey/policies/
   ```

6. **Reload**, as the host's operator, through the running server's admin socket, or
   with a signal:

   ```sh
   latchkey policy reload --data-dir /var/lib/latchkey   # prints the new set, or why not
   systemctl reload latchkey                              # or: kill -HUP <pid>
   ```

   A refused set leaves the current one in force. `latchkey policy history` shows every
   reload, refused ones with their reason; `POST /authorize` with `"explain": true` shows
   which modules decided a question, and the request they saw.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Name and version of every registry package of a `Cargo.lock`.
    fn registry_packages(lock: &str) -> Vec<(String, String)> {
        lock.split("\n[[package]]\n")
            .skip(1)
            .filter(|p| p.contains("source = \"registry+"))
            .map(|p| (lock_field(p, "name"), lock_field(p, "version")))
            .collect()
    }

    #[test]
    fn the_scaffold_pins_the_versions_latchkey_builds_the_sdk_with() {
        let ours = registry_packages(include_str!("../Cargo.lock"));
        let pinned = registry_packages(LOCK_TEMPLATE);
        assert!(pinned.iter().any(|(n, _)| n == "serde"));
        for package in &pinned {
            assert!(
                ours.contains(package),
                "{package:?} is pinned for policy crates but not in Cargo.lock: scaffold a crate \
                 named policy-crate, run `cargo generate-lockfile --offline` in it and copy its \
                 Cargo.lock to plugins/sdk/policy-crate.Cargo.lock"
            );
        }
    }

    #[test]
    fn the_lock_names_the_crate_and_keeps_cargos_order() {
        let lock = lock_file("alpha-watch");
        let names: Vec<&str> = lock
            .lines()
            .filter_map(|l| l.strip_prefix("name = "))
            .collect();
        assert!(names.contains(&"\"alpha-watch\""), "{lock}");
        assert!(!lock.contains("policy-crate"));
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(lock_file("policy-crate"), LOCK_TEMPLATE);
    }
}
