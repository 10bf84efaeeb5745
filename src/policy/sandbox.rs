//! The wasmtime sandbox: verifies a module against ABI v1 and runs decisions in it.
//!
//! `UnverifiedModule` becomes a `LoadedPolicy` only after it compiles, imports nothing,
//! has the five exports with their exact types and speaks our ABI version. Every guest
//! fault becomes a `PolicyError`; the instance it happened in is dropped, never reused.

use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use latchkey_policy_abi::{ABI_VERSION, Decision, Request, decode, encode, exports};
use sha2::Digest;
use wasmtime::{
    Config, Engine, ExternType, FuncType, Instance, Memory, Module, ResourceLimiter, Store, Trap,
    TypedFunc, ValType,
};

use super::{Isolation, Limits, Manifest, PolicyError};

/// A decision is a short sentence; anything longer is a guest bug, and reading megabytes
/// of it on every request would be a denial of service by a policy.
const MAX_DECISION_BYTES: usize = 4096;

/// Tables a guest may have, and elements per table; Rust and C guests have one small
/// table, and the limiter's memory cap does not cover tables.
const MAX_TABLES: usize = 4;
const MAX_TABLE_ELEMENTS: usize = 10_000;

/// The wasmtime engine and the host's limits, shared by every module it loads.
#[derive(Clone)]
pub struct Sandbox {
    engine: Engine,
    limits: Limits,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// An engine that meters fuel, with these ceilings for every module.
    pub fn new(limits: Limits) -> Result<Sandbox, PolicyError> {
        let mut config = Config::new();
        // Fuel rather than epoch interruption: no timer thread, and the same module and
        // request always stop at the same point, so offline tests predict the server.
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(|e| PolicyError::Engine {
            message: e.to_string(),
        })?;
        Ok(Sandbox { engine, limits })
    }

    /// The host's ceilings.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// A module and its manifest as read from disk, not yet checked.
#[derive(Debug, Clone)]
pub struct UnverifiedModule {
    manifest: Manifest,
    bytes: Vec<u8>,
}

impl UnverifiedModule {
    /// A module from memory.
    pub fn new(manifest: Manifest, bytes: Vec<u8>) -> UnverifiedModule {
        UnverifiedModule { manifest, bytes }
    }

    /// Read a manifest and the module it names, next to it.
    pub fn read(manifest_path: &Path) -> Result<UnverifiedModule, PolicyError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| PolicyError::Io { path, source }
        };
        let text = std::fs::read_to_string(manifest_path).map_err(io(manifest_path))?;
        let manifest = Manifest::from_toml(&text, manifest_path)?;
        let module_path = manifest_path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(&manifest.module);
        let bytes = std::fs::read(&module_path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                PolicyError::Manifest {
                    path: manifest_path.to_owned(),
                    message: format!(
                        "names the module {:?}, which is not beside it (build it, or copy it in)",
                        manifest.module
                    ),
                }
            } else {
                io(&module_path)(source)
            }
        })?;
        Ok(UnverifiedModule { manifest, bytes })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Check the module against ABI v1 and make it ready to decide.
    pub fn verify(self, sandbox: &Sandbox) -> Result<LoadedPolicy, PolicyError> {
        let policy = self.manifest.name.clone();
        // Anything else (a manifest, a text file, an empty file) gets a sentence, not the
        // parser's dump of the bytes it expected.
        if !self.bytes.starts_with(b"\0asm") {
            return Err(PolicyError::Compile {
                policy,
                message: "the file is not a WebAssembly binary (it does not start with \\0asm): give the compiled .wasm".to_owned(),
            });
        }
        let module = Module::from_binary(&sandbox.engine, &self.bytes).map_err(|e| {
            PolicyError::Compile {
                policy: policy.clone(),
                message: format!("{e:#}"),
            }
        })?;

        let imports: Vec<String> = module
            .imports()
            .map(|i| format!("{}.{}", i.module(), i.name()))
            .collect();
        if !imports.is_empty() {
            return Err(PolicyError::Imports {
                policy,
                imports: imports.join(", "),
            });
        }
        check_exports(&module, &policy)?;

        let memory = match module.get_export(exports::MEMORY) {
            Some(ExternType::Memory(m)) => (m.minimum(), m.maximum()),
            _ => (0, None),
        };
        let loaded = LoadedPolicy {
            limits: sandbox.limits.narrowed_by(&self.manifest.limits),
            manifest: self.manifest,
            module,
            pool: Mutex::new(Vec::new()),
            faults: std::sync::atomic::AtomicU64::new(0),
            info: ModuleInfo {
                bytes: self.bytes.len(),
                memory_pages: memory,
                sha256: sha2::Sha256::digest(&self.bytes).into(),
            },
        };

        // The first instance proves the module instantiates within its limits (its start
        // function, data segments, initial memory) and answers the version question.
        let mut slot = loaded.instantiate()?;
        slot.store
            .set_fuel(loaded.limits.fuel)
            .map_err(|e| loaded.fault(e, &slot.store))?;
        let version = slot
            .abi_version
            .call(&mut slot.store, ())
            .map_err(|e| loaded.fault(e, &slot.store))?;
        if u32::try_from(version).ok() != Some(ABI_VERSION) {
            return Err(PolicyError::AbiVersion {
                policy: loaded.manifest.name.clone(),
                found: version,
                host: ABI_VERSION,
            });
        }
        loaded.give_back(slot);
        Ok(loaded)
    }
}

/// A value type in the ABI's signatures.
#[derive(Clone, Copy)]
enum Ty {
    I32,
    I64,
}

/// The functions ABI v1 requires: name, params, results, and how an error spells them.
const FUNCTIONS: [(&str, &[Ty], &[Ty], &str); 4] = [
    (exports::ABI_VERSION, &[], &[Ty::I32], "() -> (i32)"),
    (exports::ALLOC, &[Ty::I32], &[Ty::I32], "(i32) -> (i32)"),
    (
        exports::EVALUATE,
        &[Ty::I32, Ty::I32],
        &[Ty::I64],
        "(i32, i32) -> (i64)",
    ),
    (exports::RESET, &[], &[], "() -> ()"),
];

fn check_exports(module: &Module, policy: &str) -> Result<(), PolicyError> {
    let wrong = |export, expected, found: String| PolicyError::ExportType {
        policy: policy.to_owned(),
        export,
        expected,
        found,
    };
    let missing = |export| PolicyError::MissingExport {
        policy: policy.to_owned(),
        export,
    };
    match module.get_export(exports::MEMORY) {
        None => return Err(missing(exports::MEMORY)),
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {}
        Some(ExternType::Memory(_)) => {
            return Err(wrong(
                exports::MEMORY,
                "a 32-bit unshared memory",
                "a 64-bit or shared memory".into(),
            ));
        }
        Some(other) => return Err(wrong(exports::MEMORY, "a memory", describe(&other))),
    }
    for (name, params, results, expected) in FUNCTIONS {
        match module.get_export(name) {
            None => return Err(missing(name)),
            Some(ExternType::Func(f)) if same(&f, params, results) => {}
            Some(other) => return Err(wrong(name, expected, describe(&other))),
        }
    }
    Ok(())
}

fn same(f: &FuncType, params: &[Ty], results: &[Ty]) -> bool {
    let eq = |a: ValType, b: &Ty| match b {
        Ty::I32 => a.is_i32(),
        Ty::I64 => a.is_i64(),
    };
    f.params().len() == params.len()
        && f.results().len() == results.len()
        && f.params().zip(params).all(|(a, b)| eq(a, b))
        && f.results().zip(results).all(|(a, b)| eq(a, b))
}

fn describe(ty: &ExternType) -> String {
    let list = |types: &mut dyn Iterator<Item = ValType>| {
        types.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    match ty {
        ExternType::Func(f) => format!(
            "({}) -> ({})",
            list(&mut f.params()),
            list(&mut f.results())
        ),
        ExternType::Global(_) => "a global".into(),
        ExternType::Table(_) => "a table".into(),
        ExternType::Memory(_) => "a memory".into(),
        ExternType::Tag(_) => "a tag".into(),
    }
}

/// Facts about a verified module, for `policy check`.
#[derive(Debug, Clone, Copy)]
pub(super) struct ModuleInfo {
    pub(super) bytes: usize,
    pub(super) memory_pages: (u64, Option<u64>),
    /// SHA-256 of the module's bytes, as loaded.
    pub(super) sha256: [u8; 32],
}

/// A verified module, ready to decide; keeps a few warm instances.
pub struct LoadedPolicy {
    manifest: Manifest,
    limits: Limits,
    module: Module,
    // A plain mutex, not a lock-free queue: it is held only to pop or push one slot
    // (tens of nanoseconds), never while the guest runs.
    pool: Mutex<Vec<Slot>>,
    info: ModuleInfo,
    /// Decisions this module failed (each one a deny).
    faults: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("manifest", &self.manifest)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// One instance with its exports looked up once, so a decision does no name lookups.
struct Slot {
    store: Store<Guest>,
    memory: Memory,
    abi_version: TypedFunc<(), i32>,
    reset: TypedFunc<(), ()>,
    alloc: TypedFunc<i32, i32>,
    evaluate: TypedFunc<(i32, i32), i64>,
    calls: u32,
}

/// Per-store host state: the memory limiter and whether it refused a growth.
struct Guest {
    memory_limit: usize,
    // Remembered so a fault that follows a refused growth (a guest that aborts, loops or
    // returns 0) is reported as what it is: running out of memory.
    refused: bool,
}

impl ResourceLimiter for Guest {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Refuse rather than trap: `memory.grow` returns -1 as the spec says, and a guest
        // allocator may cope with that; if it does not, the fault is named as memory.
        let allowed = desired <= self.memory_limit;
        self.refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

impl LoadedPolicy {
    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// How many decisions this module has failed since it was loaded.
    pub fn faults(&self) -> u64 {
        self.faults.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The SHA-256 of the module as loaded, in hex: what an operator compares with the
    /// file it meant to install.
    pub fn sha256(&self) -> String {
        self.info
            .sha256
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The limits it runs under (the host's, lowered by its manifest).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(super) fn info(&self) -> ModuleInfo {
        self.info
    }

    /// The module's answer, failing closed: any fault is a deny naming the module and
    /// the fault.
    pub fn decide(&self, request: &Request) -> Decision {
        self.evaluate(request)
            .unwrap_or_else(|e| Decision::deny(e.to_string()))
    }

    /// The module's answer, or the fault that prevented one.
    pub fn evaluate(&self, request: &Request) -> Result<Decision, PolicyError> {
        let bytes = encode(request).map_err(|e| PolicyError::Request {
            policy: self.manifest.name.clone(),
            message: e.to_string(),
        })?;
        self.evaluate_encoded(&bytes)
    }

    /// As `evaluate`, for a request already encoded (the engine encodes once per request).
    /// A failure is counted in [`LoadedPolicy::faults`].
    pub(super) fn evaluate_encoded(&self, request: &[u8]) -> Result<Decision, PolicyError> {
        self.evaluate_once(request).inspect_err(|_| {
            self.faults
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
    }

    fn evaluate_once(&self, request: &[u8]) -> Result<Decision, PolicyError> {
        let pooled = match self.manifest.isolation {
            Isolation::Reuse => self.lock_pool().pop(),
            Isolation::PerDecision => None,
        };
        let mut slot = match pooled {
            Some(slot) => slot,
            None => self.instantiate()?,
        };
        // On error the slot is dropped here: a guest that faulted may have left its
        // memory or globals in any state, so it never serves another decision.
        let decision = self.run(&mut slot, request)?;
        self.give_back(slot);
        Ok(decision)
    }

    fn lock_pool(&self) -> MutexGuard<'_, Vec<Slot>> {
        // Poisoning would need a panic while pushing or popping; the Vec is still sound.
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn give_back(&self, slot: Slot) {
        let keep = self.manifest.isolation == Isolation::Reuse
            && slot.calls < self.limits.max_calls_per_instance;
        if keep {
            let mut pool = self.lock_pool();
            if pool.len() < self.limits.max_idle_instances {
                pool.push(slot);
            }
        }
    }

    fn instantiate(&self) -> Result<Slot, PolicyError> {
        let guest = Guest {
            memory_limit: self.limits.memory_bytes,
            refused: false,
        };
        let mut store = Store::new(self.module.engine(), guest);
        store.limiter(|guest: &mut Guest| -> &mut dyn ResourceLimiter { guest });
        // A start function runs inside instantiation, so it gets a budget too.
        store
            .set_fuel(self.limits.fuel)
            .map_err(|e| self.fault(e, &store))?;
        let instance = Instance::new(&mut store, &self.module, &[]).map_err(|e| {
            if e.is::<Trap>() || store.data().refused {
                self.fault(e, &store)
            } else {
                PolicyError::Instantiate {
                    policy: self.manifest.name.clone(),
                    message: format!("{e:#}"),
                }
            }
        })?;
        let missing = |export| PolicyError::MissingExport {
            policy: self.manifest.name.clone(),
            export,
        };
        let memory = instance
            .get_memory(&mut store, exports::MEMORY)
            .ok_or_else(|| missing(exports::MEMORY))?;
        // Types were checked at verification; these lookups cannot fail for a module that
        // passed it, but a mismatch is still an error, not a panic.
        let abi_version = instance
            .get_typed_func(&mut store, exports::ABI_VERSION)
            .map_err(|_| missing(exports::ABI_VERSION))?;
        let reset = instance
            .get_typed_func(&mut store, exports::RESET)
            .map_err(|_| missing(exports::RESET))?;
        let alloc = instance
            .get_typed_func(&mut store, exports::ALLOC)
            .map_err(|_| missing(exports::ALLOC))?;
        let evaluate = instance
            .get_typed_func(&mut store, exports::EVALUATE)
            .map_err(|_| missing(exports::EVALUATE))?;
        Ok(Slot {
            store,
            memory,
            abi_version,
            reset,
            alloc,
            evaluate,
            calls: 0,
        })
    }

    fn run(&self, slot: &mut Slot, request: &[u8]) -> Result<Decision, PolicyError> {
        let policy = || self.manifest.name.clone();
        slot.calls = slot.calls.saturating_add(1);
        slot.store.data_mut().refused = false;
        slot.store
            .set_fuel(self.limits.fuel)
            .map_err(|e| self.fault(e, &slot.store))?;

        let len = i32::try_from(request.len()).map_err(|_| PolicyError::Request {
            policy: policy(),
            message: format!("{} bytes do not fit a 32-bit guest", request.len()),
        })?;
        slot.reset
            .call(&mut slot.store, ())
            .map_err(|e| self.fault(e, &slot.store))?;
        let ptr = slot
            .alloc
            .call(&mut slot.store, len)
            .map_err(|e| self.fault(e, &slot.store))?;
        if ptr == 0 {
            return Err(if slot.store.data().refused {
                self.memory_fault()
            } else {
                PolicyError::AllocFailed {
                    policy: policy(),
                    len: request.len(),
                }
            });
        }
        // Guest pointers are unsigned 32-bit offsets; i32 is only how WASM spells them.
        let offset = ptr.cast_unsigned();
        slot.memory
            .write(&mut slot.store, offset as usize, request)
            .map_err(|_| PolicyError::OutOfBounds {
                policy: policy(),
                what: "a request buffer",
                ptr: u64::from(offset),
                len: request.len() as u64,
                size: slot.memory.data_size(&slot.store),
            })?;

        let packed = slot
            .evaluate
            .call(&mut slot.store, (ptr, len))
            .map_err(|e| self.fault(e, &slot.store))?
            .cast_unsigned();
        let (at, size) = (packed >> 32, packed & 0xffff_ffff);
        if size > MAX_DECISION_BYTES as u64 {
            return Err(PolicyError::DecisionTooLarge {
                policy: policy(),
                len: size,
                max: MAX_DECISION_BYTES,
            });
        }
        let memory = slot.memory.data(&slot.store);
        // Both halves are below 2^32, so the sum fits in u64 and, on 64-bit hosts, usize.
        let bytes = usize::try_from(at)
            .ok()
            .zip(usize::try_from(at + size).ok())
            .and_then(|(start, end)| memory.get(start..end))
            .ok_or(PolicyError::OutOfBounds {
                policy: policy(),
                what: "a decision",
                ptr: at,
                len: size,
                size: memory.len(),
            })?;
        decode::<Decision>(bytes).map_err(|e| PolicyError::Undecodable {
            policy: policy(),
            message: e.to_string(),
        })
    }

    fn memory_fault(&self) -> PolicyError {
        PolicyError::MemoryLimit {
            policy: self.manifest.name.clone(),
            limit: self.limits.memory_bytes,
        }
    }

    /// Name what went wrong in a call into the guest.
    fn fault(&self, error: wasmtime::Error, store: &Store<Guest>) -> PolicyError {
        if store.data().refused {
            return self.memory_fault();
        }
        let policy = self.manifest.name.clone();
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => PolicyError::OutOfFuel {
                policy,
                fuel: self.limits.fuel,
            },
            Some(trap) => {
                let text = trap.to_string();
                PolicyError::Trap {
                    policy,
                    trap: text.trim_start_matches("wasm trap: ").to_owned(),
                }
            }
            None => PolicyError::Trap {
                policy,
                trap: format!("{error:#}"),
            },
        }
    }
}
