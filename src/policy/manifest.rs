//! Policy manifests: the TOML file next to each module that says what it decides.
//!
//! Parsing is strict (unknown keys are errors) so a typo cannot silently widen or narrow
//! routing. Nothing here touches WASM.

use std::path::{Component, Path};

use serde::Deserialize;

use super::PolicyError;
pub use crate::domain::action::ActionPattern;
use crate::domain::action::Vocabulary;

/// A module's manifest, e.g.
///
/// ```toml
/// name = "account-rbac"
/// module = "account_rbac.wasm"
/// kind = "builtin"
/// actions = ["iam.*", "acme.*"]
/// exclude = ["iam.events.list"]
/// namespaces = ["acme"]
/// isolation = "reuse"
/// reads_clock = false
/// [limits]
/// fuel = 1_000_000
/// memory_pages = 64
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The policy's name, used in every verdict and error (`[A-Za-z0-9_-]`, at most 64).
    pub name: String,
    /// The module's file name, in the manifest's folder.
    pub module: String,
    /// Built-in or custom; decides how its allow counts (see `PolicySet::decide`).
    pub kind: Kind,
    /// The actions it decides.
    pub actions: Vec<ActionPattern>,
    /// Actions it does not decide even though `actions` matches them.
    #[serde(default)]
    pub exclude: Vec<ActionPattern>,
    /// Namespaces of actions of the author's own (an application's actions, permissions
    /// an operator adds to a catalog): `acme` admits `acme.*` patterns. Every other
    /// pattern must match an action latchkey knows, so a misspelling is an error rather
    /// than a module that never runs.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Whether instances are reused between decisions.
    #[serde(default)]
    pub isolation: Isolation,
    /// Whether its decisions may depend on the time (`context.time_ms`). `false` promises
    /// that one request decides the same at any time, so the host may reuse a decision
    /// until the store or the set changes (the caller check of `/verify`). The default is
    /// `true`: nothing is reused unless the author says so.
    #[serde(default = "reads_clock_by_default")]
    pub reads_clock: bool,
    /// Lower limits than the host's for this module.
    #[serde(default)]
    pub limits: ManifestLimits,
}

fn reads_clock_by_default() -> bool {
    true
}

/// Whether a module's allow is enough on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Built from `plugins/` and shipped with latchkey.
    Builtin,
    /// Written by an operator; it can narrow what built-ins allow, never widen it.
    Custom,
}

/// Instance reuse between decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Keep instances (and the guest's globals) between decisions; `lk_reset` runs before
    /// each. Fast: about a microsecond.
    #[default]
    Reuse,
    /// A fresh instance for every decision, for modules that cannot be trusted to reset.
    PerDecision,
}

/// Per-module limits; each can only lower the host's (see `Limits::narrowed_by`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestLimits {
    /// Fuel per decision.
    pub fuel: Option<u64>,
    /// Linear memory, in 64 KiB pages.
    pub memory_pages: Option<u32>,
}

impl Manifest {
    /// Parse and check a manifest; `path` only names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Manifest, PolicyError> {
        let invalid = |message: String| PolicyError::Manifest {
            path: path.to_owned(),
            message,
        };
        let manifest: Manifest = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let name_ok = !manifest.name.is_empty()
            && manifest.name.len() <= 64
            && manifest
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(invalid(format!(
                "invalid policy name {:?}: use 1 to 64 letters, digits, _ and -",
                manifest.name
            )));
        }
        // A bare file name keeps every module inside the policies folder.
        let mut components = Path::new(&manifest.module).components();
        let bare = matches!(
            (components.next(), components.next()),
            (Some(Component::Normal(_)), None)
        );
        if !bare {
            return Err(invalid(format!(
                "module {:?} must be a file name in the manifest's folder",
                manifest.module
            )));
        }
        if manifest.actions.is_empty() {
            return Err(invalid(
                "actions is empty: the policy would decide nothing".into(),
            ));
        }
        let vocabulary = Vocabulary::default();
        for namespace in &manifest.namespaces {
            vocabulary.check_namespace(namespace).map_err(invalid)?;
        }
        for (field, patterns) in [
            ("actions", &manifest.actions),
            ("exclude", &manifest.exclude),
        ] {
            for pattern in patterns {
                vocabulary
                    .check_pattern(pattern, &manifest.namespaces)
                    .map_err(|message| invalid(format!("{field}: {message}")))?;
            }
        }
        Ok(manifest)
    }

    /// Whether this policy decides `action`: an `actions` pattern matches and no `exclude`
    /// pattern does.
    pub fn decides(&self, action: &str) -> bool {
        self.actions.iter().any(|p| p.matches(action))
            && !self.exclude.iter().any(|p| p.matches(action))
    }
}
