//! Offline tools for policy authors: `latchkey policy check` and `latchkey policy test`.
//!
//! `check` takes a module or its manifest; `test` works on a module file alone, and its
//! cases see the module's raw answer, not the combined verdict of a set.

use std::path::Path;

use latchkey_policy_abi::{ABI_VERSION, Outcome, Request};
use serde::Deserialize;

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

/// The outcome a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    /// `"allow"`.
    Allow,
    /// `"deny"`.
    Deny,
    /// `"not_applicable"`.
    NotApplicable,
}

impl Expected {
    fn outcome(self) -> Outcome {
        match self {
            Expected::Allow => Outcome::Allow,
            Expected::Deny => Outcome::Deny,
            Expected::NotApplicable => Outcome::NotApplicable,
        }
    }
}

/// One entry of a cases file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    request: Request,
    expect: Expected,
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Whether the module answered as expected.
    pub passed: bool,
    /// Why not, when it did not ("expected allow, got deny: …", or the fault).
    pub failure: Option<String>,
}

/// The results of a cases file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    /// The module's name (its file stem).
    pub module: String,
    /// One per case.
    pub results: Vec<CaseResult>,
}

impl CaseReport {
    /// How many cases passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    /// How many failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

/// Run a JSON array of `{"name", "request", "expect"}` cases against the module at `path`.
///
/// A fault fails its case even when the case expects a deny: the server would deny too,
/// but an author who expects a deny wants their rule to be the reason, not a trap.
pub fn run_cases(
    path: &Path,
    cases_json: &str,
    limits: &Limits,
) -> Result<CaseReport, PolicyError> {
    let cases: Vec<Case> = serde_json::from_str(cases_json).map_err(|e| PolicyError::Cases {
        message: e.to_string(),
    })?;
    let policy = load_alone(path, limits)?;
    let results = cases
        .into_iter()
        .map(|case| {
            let expected = case.expect.outcome();
            let failure = match policy.evaluate(&case.request) {
                Ok(d) if d.outcome == expected => None,
                Ok(d) => Some(format!(
                    "expected {}, got {}: {}",
                    outcome_name(expected),
                    outcome_name(d.outcome),
                    d.reason
                )),
                Err(e) => Some(format!("expected {}, but {e}", outcome_name(expected))),
            };
            CaseResult {
                name: case.name,
                passed: failure.is_none(),
                failure,
            }
        })
        .collect();
    Ok(CaseReport {
        module: policy.name().to_owned(),
        results,
    })
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
        Outcome::NotApplicable => "not_applicable",
    }
}

/// Verify a module file under a stand-in manifest named after the file.
fn load_alone(path: &Path, limits: &Limits) -> Result<LoadedPolicy, PolicyError> {
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
