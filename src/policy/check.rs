//! Offline tools for policy authors: `latchkey policy check` and `latchkey policy test`.
//!
//! `latchkey policy check`: a module or its manifest, as the server would load it (the
//! cases of `policy test` are in `cases`).

use std::path::Path;

use latchkey_policy_abi::ABI_VERSION;

use super::{
    ActionPattern, Isolation, Kind, Limits, LoadedPolicy, Manifest, ManifestLimits, PolicyError,
    Sandbox, UnverifiedModule,
};

/// What `check_module` found in a valid module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleReport {
    /// The policy's name: its manifest's, or the module file's stem when checked alone.
    pub name: String,
    /// Size of the module file.
    pub bytes: usize,
    /// The ABI version it speaks (always this host's, or the check fails).
    pub abi_version: u32,
    /// Initial linear memory, in 64 KiB pages.
    pub memory_min_pages: u64,
    /// The memory's declared maximum, if any (the host's limit applies regardless).
    pub memory_max_pages: Option<u64>,
    /// The manifest checked with it, if any.
    pub manifest: Option<std::path::PathBuf>,
}

/// Check a policy as the server would at load. Given a manifest (`.toml`): the manifest
/// (its every pattern must match an action latchkey knows or a namespace it declares)
/// and the module it names, under its limits. Given a module: the module, and the
/// manifest of the same name beside it when there is one (a freshly built module alone
/// is checked as a module). A module must compile, import nothing, export ABI v1 with
/// the right types, speak this host's version and instantiate within `limits`.
pub fn check_module(path: &Path, limits: &Limits) -> Result<ModuleReport, PolicyError> {
    let is_manifest = path.extension().is_some_and(|e| e == "toml");
    let manifest = if is_manifest {
        Some(path.to_owned())
    } else {
        Some(path.with_extension("toml")).filter(|beside| beside.is_file())
    };
    let policy = match &manifest {
        Some(manifest) => {
            let unverified = UnverifiedModule::read(manifest)?;
            let named = unverified.manifest().module.as_str();
            if !is_manifest && path.file_name().is_some_and(|f| f != named) {
                return Err(PolicyError::Manifest {
                    path: manifest.clone(),
                    message: format!(
                        "is beside {} but names the module {named:?}",
                        path.display()
                    ),
                });
            }
            unverified.verify(&Sandbox::new(*limits)?)?
        }
        None => load_alone(path, limits)?,
    };
    let info = policy.info();
    Ok(ModuleReport {
        name: policy.name().to_owned(),
        bytes: info.bytes,
        abi_version: ABI_VERSION,
        memory_min_pages: info.memory_pages.0,
        memory_max_pages: info.memory_pages.1,
        manifest,
    })
}

/// Verify a module file under a stand-in manifest named after the file.
pub(super) fn load_alone(path: &Path, limits: &Limits) -> Result<LoadedPolicy, PolicyError> {
    let bytes = std::fs::read(path).map_err(|source| PolicyError::Io {
        path: path.to_owned(),
        source,
    })?;
    let name = path
        .file_stem()
        .map_or_else(|| "module".to_owned(), |s| s.to_string_lossy().into_owned());
    let manifest = Manifest {
        module: path
            .file_name()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
        name,
        kind: Kind::Custom,
        actions: vec![ActionPattern::Any],
        exclude: Vec::new(),
        namespaces: Vec::new(),
        // As on the server: a module whose lk_reset forgets something fails here too.
        isolation: Isolation::Reuse,
        reads_clock: true,
        limits: ManifestLimits::default(),
    };
    UnverifiedModule::new(manifest, bytes).verify(&Sandbox::new(*limits)?)
}
