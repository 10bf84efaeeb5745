//! Authorization by sandboxed WASM policy modules (ABI v1 of `latchkey-policy-abi`).
//!
//! Loads every manifest in the policies folder, verifies its module, routes each request
//! to the modules whose patterns match its action and combines their answers (any deny
//! wins, a built-in must allow what built-ins decide). The only module that imports
//! wasmtime; it makes no I/O beyond reading the folder, and never fails open.

pub mod builtin;
mod cases;
mod check;
mod engine;
mod manifest;
mod memo;
mod sandbox;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

pub use cases::{
    CaseReport, CaseResult, Coverage, Expected, Subject, outcome_name, run, run_cases,
};
pub use check::{ModuleReport, check_module};
pub use engine::{Evaluated, PolicyEngine, PolicySet, Verdict, encode_head, encode_principal};
pub use latchkey_policy_abi::{Decision, Outcome, Request};
pub use manifest::{ActionPattern, Isolation, Kind, Manifest, ManifestLimits};
pub use sandbox::{LoadedPolicy, Sandbox, UnverifiedModule};

/// Resource ceilings for every module the host runs.
///
/// A manifest's `[limits]` can only lower these for its own module, never raise them: the
/// operator sets the ceiling, and a module author must not be able to grant their module
/// more time or memory by editing a text file next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (roughly, WASM instructions) for one decision, including `lk_reset` and
    /// `lk_alloc`; fuel is deterministic, unlike a wall-clock deadline, so a case that
    /// passes offline passes on the server.
    pub fuel: u64,
    /// Linear memory of one instance, in bytes.
    pub memory_bytes: usize,
    /// Decisions one instance may serve before it is dropped and a fresh one is made, so
    /// a slow leak in a guest cannot accumulate forever.
    pub max_calls_per_instance: u32,
    /// Idle instances kept per module; more are made under concurrency and then dropped.
    pub max_idle_instances: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 10_000_000,
            memory_bytes: 16 * 1024 * 1024,
            max_calls_per_instance: 10_000,
            max_idle_instances: 8,
        }
    }
}

impl Limits {
    /// These limits, lowered (never raised) by a manifest's overrides.
    pub fn narrowed_by(&self, overrides: &ManifestLimits) -> Limits {
        let memory_bytes = overrides
            .memory_pages
            .map(|pages| {
                let bytes = u64::from(pages).saturating_mul(WASM_PAGE);
                usize::try_from(bytes).unwrap_or(usize::MAX)
            })
            .map_or(self.memory_bytes, |m| m.min(self.memory_bytes));
        Limits {
            fuel: overrides.fuel.map_or(self.fuel, |f| f.min(self.fuel)),
            memory_bytes,
            ..*self
        }
    }
}

/// Size of a WASM page, the unit of `memory_pages`.
const WASM_PAGE: u64 = 64 * 1024;

/// Everything that can go wrong loading or running a policy. Every variant that concerns a
/// module starts its message with the module's name, so a fail-closed deny can use the
/// message as its reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The policies folder cannot be listed.
    #[error("the policies folder {} cannot be read: {source}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest is malformed or names something invalid.
    #[error("{}: {message}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong, with its position when the TOML parser gives one.
        message: String,
    },
    /// A module in the policies folder that no manifest names.
    #[error(
        "{}: no manifest names this module, so it would never decide: add its manifest (see `latchkey policy new`) or remove it",
        path.display()
    )]
    Orphan {
        /// The module file.
        path: PathBuf,
    },
    /// Two manifests use the same policy name.
    #[error("two manifests name the policy {name}")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A built-in policy the host requires is not in the set (or is not marked built-in).
    #[error(
        "the policy set lacks the built-in policy {name}; without it custom modules would decide alone"
    )]
    MissingBuiltin {
        /// The policy.
        name: String,
    },
    /// The WASM engine could not be configured.
    #[error("the WASM engine could not be set up: {message}")]
    Engine {
        /// Wasmtime's explanation.
        message: String,
    },
    /// The module is not valid WASM or does not compile.
    #[error("{policy}: is not a valid WASM module: {message}")]
    Compile {
        /// The policy.
        policy: String,
        /// The validator's explanation.
        message: String,
    },
    /// The module imports something; ABI v1 provides no imports at all.
    #[error("{policy}: imports {imports}, which the sandbox does not provide")]
    Imports {
        /// The policy.
        policy: String,
        /// Every import, as `module.name`, comma-separated.
        imports: String,
    },
    /// A required export is absent.
    #[error("{policy}: does not export {export}")]
    MissingExport {
        /// The policy.
        policy: String,
        /// The export's name.
        export: &'static str,
    },
    /// A required export has the wrong kind or signature.
    #[error("{policy}: exports {export} as {found}, expected {expected}")]
    ExportType {
        /// The policy.
        policy: String,
        /// The export's name.
        export: &'static str,
        /// What ABI v1 requires.
        expected: &'static str,
        /// What the module has.
        found: String,
    },
    /// The module speaks another ABI version.
    #[error("{policy}: speaks ABI v{found}, this host speaks v{host}")]
    AbiVersion {
        /// The policy.
        policy: String,
        /// What `lk_abi_version` returned.
        found: i32,
        /// What this host speaks.
        host: u32,
    },
    /// An instance could not be made for a reason other than a limit or a trap.
    #[error("{policy}: could not be instantiated: {message}")]
    Instantiate {
        /// The policy.
        policy: String,
        /// Wasmtime's explanation.
        message: String,
    },
    /// The guest used up its fuel.
    #[error("{policy}: ran out of fuel ({fuel})")]
    OutOfFuel {
        /// The policy.
        policy: String,
        /// The budget it had.
        fuel: u64,
    },
    /// The guest asked for more memory than its limit.
    #[error("{policy}: exceeded its memory limit ({})", Bytes(*limit))]
    MemoryLimit {
        /// The policy.
        policy: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The guest trapped.
    #[error("{policy}: trapped ({trap})")]
    Trap {
        /// The policy.
        policy: String,
        /// The trap, as wasmtime describes it.
        trap: String,
    },
    /// `lk_alloc` returned 0.
    #[error("{policy}: could not allocate {len} bytes for the request")]
    AllocFailed {
        /// The policy.
        policy: String,
        /// The request's size.
        len: usize,
    },
    /// The guest gave a pointer and length outside its memory.
    #[error("{policy}: gave {what} outside its memory ({ptr}+{len}, memory is {size} bytes)")]
    OutOfBounds {
        /// The policy.
        policy: String,
        /// `"a request buffer"` or `"a decision"`.
        what: &'static str,
        /// The offset.
        ptr: u64,
        /// The length.
        len: u64,
        /// The memory's size when it was checked.
        size: usize,
    },
    /// The decision is longer than any sane decision.
    #[error("{policy}: returned a decision of {len} bytes (at most {max} are read)")]
    DecisionTooLarge {
        /// The policy.
        policy: String,
        /// Its length.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// The decision bytes are not a postcard `Decision`.
    #[error("{policy}: returned a decision that does not decode ({message})")]
    Undecodable {
        /// The policy.
        policy: String,
        /// postcard's explanation.
        message: String,
    },
    /// The host could not encode the request (it is too large for a 32-bit guest).
    #[error("{policy}: the request could not be passed ({message})")]
    Request {
        /// The policy.
        policy: String,
        /// Why.
        message: String,
    },
    /// A decision-cases file is malformed.
    #[error("decision cases: {message}")]
    Cases {
        /// serde_json's explanation, with line and column.
        message: String,
    },
}

/// A byte count as an operator reads it (`16 MiB`, `640 KiB`, `100 bytes`).
struct Bytes(usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: usize = 1024;
        const MIB: usize = 1024 * 1024;
        match self.0 {
            n if n >= MIB && n % MIB == 0 => write!(f, "{} MiB", n / MIB),
            n if n >= KIB && n % KIB == 0 => write!(f, "{} KiB", n / KIB),
            n => write!(f, "{n} bytes"),
        }
    }
}
