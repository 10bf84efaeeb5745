//! Routing and combination over the loaded set, and hot reload of the set.
//!
//! Default deny; any deny wins; not-applicable abstains; built-in modules must allow what
//! they decide, so a custom module narrows but never widens. A reload swaps the whole set
//! at once or not at all.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use latchkey_policy_abi::{Context, Outcome, Principal, Request, Resource};

use super::memo::{self, Memo};
use super::{Kind, Limits, LoadedPolicy, PolicyError, Sandbox, UnverifiedModule};

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the action may proceed.
    pub allowed: bool,
    /// The deciding policy; empty when no policy decides the action.
    pub policy: String,
    /// Its reason (or why nothing allowed).
    pub reason: String,
    /// Every module called, in call order, with its own answer.
    pub evaluated: Vec<Evaluated>,
    /// The request as the modules saw it, when the host was asked to explain (the host
    /// fills it: the engine decides encoded requests).
    pub request: Option<Box<Request>>,
}

/// One module's answer within a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluated {
    /// The policy.
    pub policy: String,
    /// Its answer (a fault counts as a deny).
    pub outcome: Outcome,
    /// Its reason, or the fault.
    pub reason: String,
}

/// Every loaded policy, built-ins first, then by name; immutable once built.
#[derive(Debug)]
pub struct PolicySet {
    policies: Vec<LoadedPolicy>,
    // Which load of its engine this set is (from 1), so a decision remembered under
    // one set is never taken for another's.
    generation: u64,
    /// Verdicts of requests this set decided, for actions decided without the clock.
    pub(super) memo: Memo,
}

impl PolicySet {
    /// A set of verified policies; names must be unique.
    pub fn new(mut policies: Vec<LoadedPolicy>) -> Result<PolicySet, PolicyError> {
        // Built-ins first, so a built-in deny is the one named when several modules deny,
        // and the evaluated list reads in the order the rule is explained.
        policies.sort_by(|a, b| {
            let rank = |p: &LoadedPolicy| p.manifest().kind == Kind::Custom;
            (rank(a), a.name()).cmp(&(rank(b), b.name()))
        });
        // Built-ins and customs sort apart, so check uniqueness over the names alone.
        let mut names: Vec<&str> = policies.iter().map(LoadedPolicy::name).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w.first() == w.get(1))
            && let Some(name) = w.first()
        {
            return Err(PolicyError::DuplicateName {
                name: (*name).to_owned(),
            });
        }
        Ok(PolicySet {
            policies,
            generation: 1,
            memo: Memo::new(),
        })
    }

    /// Load every `*.toml` manifest in `dir` and verify its module; any invalid one, or a
    /// missing built-in named in `required`, fails the whole set, so a half-loaded set
    /// never decides.
    pub fn load(
        dir: &Path,
        sandbox: &Sandbox,
        required: &[String],
    ) -> Result<PolicySet, PolicyError> {
        let io = |source| PolicyError::Folder {
            path: dir.to_owned(),
            source,
        };
        let (mut manifests, mut modules) = (Vec::new(), Vec::new());
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if !path.is_file() {
                continue;
            }
            match path.extension().and_then(|e| e.to_str()) {
                Some("toml") => manifests.push(path),
                Some("wasm") => modules.push(path),
                _ => {}
            }
        }
        manifests.sort();
        let unverified = manifests
            .iter()
            .map(|path| UnverifiedModule::read(path))
            .collect::<Result<Vec<_>, _>>()?;
        // A module no manifest names would never run: an author who dropped it in
        // believes it decides, so the folder is refused until it has its manifest.
        modules.sort();
        for module in &modules {
            let named = unverified.iter().any(|u| {
                module
                    .file_name()
                    .is_some_and(|f| f == u.manifest().module.as_str())
            });
            if !named {
                return Err(PolicyError::Orphan {
                    path: module.clone(),
                });
            }
        }
        let policies = unverified
            .into_iter()
            .map(|module| module.verify(sandbox))
            .collect::<Result<Vec<_>, _>>()?;
        let set = PolicySet::new(policies)?;
        for name in required {
            let present = set
                .policies
                .iter()
                .any(|p| p.name() == name && p.manifest().kind == Kind::Builtin);
            if !present {
                return Err(PolicyError::MissingBuiltin { name: name.clone() });
            }
        }
        Ok(set)
    }

    /// The policies, in evaluation order.
    pub fn policies(&self) -> &[LoadedPolicy] {
        &self.policies
    }

    /// Which load of its engine this set is: 1 for the first, then one more per reload.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether every module routed `action` declares that it does not read the clock,
    /// so that one request about `action` decides the same at any time.
    pub fn decides_timelessly(&self, action: &str) -> bool {
        self.policies
            .iter()
            .filter(|p| p.manifest().decides(action))
            .all(|p| !p.manifest().reads_clock)
    }

    /// Decide `request` with the modules routed to its action. The verdict names the
    /// deciding module and its reason; `evaluated` is left empty (see [`Self::explain`]).
    pub fn decide(&self, request: &Request) -> Verdict {
        let key = self.memo_key(
            &request.action,
            |key| postcard::to_extend(&request.principal, key),
            &request.resource,
            &request.context,
        );
        self.remembered(key, &request.action, |buffer| {
            postcard::to_extend(request, buffer)
        })
    }

    /// As [`Self::decide`], also listing every module called and its own answer.
    pub fn explain(&self, request: &Request) -> Verdict {
        self.evaluate(request, true)
    }

    /// As [`Self::decide`], always asking the modules, never answering with a remembered
    /// verdict (nor remembering this one): what a decision costs, for benchmarks.
    pub fn decide_afresh(&self, request: &Request) -> Verdict {
        self.evaluate(request, false)
    }

    /// As [`Self::decide_parts`] without explaining, always asking the modules (see
    /// [`Self::decide_afresh`]).
    pub fn decide_parts_afresh(
        &self,
        principal: &[u8],
        action: &str,
        resource: &Resource,
        context: &Context,
    ) -> Verdict {
        self.evaluate_with(action, false, |buffer| {
            encode_after_principal(buffer, principal, action, resource, context)
        })
        .0
    }

    /// As [`Self::decide`] for a request given as its encoded head (see
    /// [`encode_head`]: principal, action and resource) and its context: a caller that
    /// asks the same question again and again encodes the head once.
    pub fn decide_head(&self, action: &str, head: &[u8], context: &Context) -> Verdict {
        self.evaluate_with(action, false, |mut buffer| {
            buffer.extend_from_slice(head);
            postcard::to_extend(context, buffer)
        })
        .0
    }

    /// As [`Self::decide`] (or [`Self::explain`]) for a request given in parts: its
    /// principal already encoded (see [`encode_principal`]), then its action, resource
    /// and context. The bytes are those of the whole request encoded at once, so a
    /// caller that decides for the same principal again and again encodes it once.
    pub fn decide_parts(
        &self,
        principal: &[u8],
        action: &str,
        resource: &Resource,
        context: &Context,
        explain: bool,
    ) -> Verdict {
        let encode = |buffer| encode_after_principal(buffer, principal, action, resource, context);
        if explain {
            return self.evaluate_with(action, true, encode).0;
        }
        let key = self.memo_key(
            action,
            |mut key| {
                key.extend_from_slice(principal);
                Ok(key)
            },
            resource,
            context,
        );
        self.remembered(key, action, encode)
    }

    /// The memo's key for a request about `action` (its principal encoded by
    /// `principal`), or none when the verdict may not be remembered: a module routed
    /// the action reads the clock, or the request is too long.
    fn memo_key(
        &self,
        action: &str,
        principal: impl FnOnce(Vec<u8>) -> Result<Vec<u8>, postcard::Error>,
        resource: &Resource,
        context: &Context,
    ) -> Option<Vec<u8>> {
        if !self.decides_timelessly(action) {
            return None;
        }
        let key = principal(Vec::with_capacity(256)).ok()?;
        let key = postcard::to_extend(&(action, resource, &context.values), key).ok()?;
        (key.len() <= memo::MAX_KEY).then_some(key)
    }

    /// The verdict remembered under `key`, else decided (and remembered unless a module
    /// faulted).
    fn remembered(
        &self,
        key: Option<Vec<u8>>,
        action: &str,
        encode: impl FnOnce(Vec<u8>) -> Result<Vec<u8>, postcard::Error>,
    ) -> Verdict {
        let Some(key) = key else {
            return self.evaluate_with(action, false, encode).0;
        };
        if let Some(verdict) = self.memo.get(&key) {
            return verdict;
        }
        let (verdict, clean) = self.evaluate_with(action, false, encode);
        if clean {
            self.memo.put(key, &verdict);
        }
        verdict
    }

    fn evaluate(&self, request: &Request, explain: bool) -> Verdict {
        self.evaluate_with(&request.action, explain, |buffer| {
            postcard::to_extend(request, buffer)
        })
        .0
    }

    /// Route by `action`, encode the request with `encode` into this thread's buffer, and
    /// combine the answers of the routed modules; with whether every module called
    /// answered (none faulted).
    fn evaluate_with(
        &self,
        action: &str,
        explain: bool,
        encode: impl FnOnce(Vec<u8>) -> Result<Vec<u8>, postcard::Error>,
    ) -> (Verdict, bool) {
        let mut routed = self
            .policies
            .iter()
            .filter(|p| p.manifest().decides(action))
            .peekable();
        if routed.peek().is_none() {
            let verdict = Verdict::denied(format!("no policy decides {action}"), Vec::new());
            return (verdict, true);
        }
        ENCODE_BUFFER.with(|cell| {
            let mut buffer = cell.take();
            buffer.clear();
            let verdict = match encode(buffer) {
                Ok(bytes) => {
                    let mut faulted = false;
                    let verdict = combine(routed, &bytes, action, explain, &mut faulted);
                    buffer = bytes;
                    (verdict, !faulted)
                }
                Err(e) => {
                    buffer = Vec::new();
                    let reason = format!("the request could not be encoded: {e}");
                    (Verdict::denied(reason, Vec::new()), false)
                }
            };
            // A rare huge request should not pin its buffer for the thread's life.
            if buffer.capacity() <= MAX_KEPT_BUFFER {
                cell.set(buffer);
            }
            verdict
        })
    }
}

/// The encoded head of a request: its principal, action and resource, in the order and
/// form the whole request encodes them (postcard writes a struct's fields one after the
/// other), so `head ++ encode(context)` is `encode(request)`.
pub fn encode_head(
    principal: &Principal,
    action: &str,
    resource: &Resource,
) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(&(principal, action, resource))
}

/// A principal encoded as the head of every request it makes (see
/// [`PolicySet::decide_parts`]).
pub fn encode_principal(principal: &Principal) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(principal)
}

/// `principal` (encoded), then `action`, `resource` and `context`: a [`Request`]'s
/// fields in order, which is how postcard encodes the whole struct.
fn encode_after_principal(
    mut buffer: Vec<u8>,
    principal: &[u8],
    action: &str,
    resource: &Resource,
    context: &Context,
) -> Result<Vec<u8>, postcard::Error> {
    buffer.extend_from_slice(principal);
    let buffer = postcard::to_extend(action, buffer)?;
    let buffer = postcard::to_extend(resource, buffer)?;
    postcard::to_extend(context, buffer)
}

/// Largest encode buffer kept for the next decision on a thread.
const MAX_KEPT_BUFFER: usize = 64 * 1024;

thread_local! {
    // One encode buffer per thread, reused: encoding a request allocates nothing.
    static ENCODE_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// One module's answer, kept while it may still be the one the verdict names.
struct Answer<'a> {
    policy: &'a LoadedPolicy,
    reason: String,
}

/// Call the `routed` modules on the encoded `request` and combine their answers.
fn combine<'a>(
    routed: impl Iterator<Item = &'a LoadedPolicy>,
    request: &[u8],
    action: &str,
    explain: bool,
    faulted: &mut bool,
) -> Verdict {
    let mut evaluated = Vec::new();
    let (mut builtin_allow, mut custom_allow, mut builtin_abstain, mut abstain) =
        (None, None, None, None);
    let mut builtin_routed = false;
    for policy in routed {
        let builtin = policy.manifest().kind == Kind::Builtin;
        builtin_routed |= builtin;
        let decision = policy.evaluate_encoded(request).unwrap_or_else(|e| {
            *faulted = true;
            latchkey_policy_abi::Decision::deny(e.to_string())
        });
        if explain {
            evaluated.push(Evaluated {
                policy: policy.name().to_owned(),
                outcome: decision.outcome,
                reason: decision.reason.clone(),
            });
        }
        let answer = Answer {
            policy,
            reason: decision.reason,
        };
        match decision.outcome {
            // Later modules cannot change a deny, so they are not called.
            Outcome::Deny => return answer.verdict(false, evaluated),
            Outcome::Allow if builtin => {
                builtin_allow.get_or_insert(answer);
            }
            Outcome::Allow => {
                custom_allow.get_or_insert(answer);
            }
            Outcome::NotApplicable if builtin => {
                builtin_abstain.get_or_insert(answer);
            }
            Outcome::NotApplicable => {
                abstain.get_or_insert(answer);
            }
        }
    }

    if builtin_routed {
        if let Some(answer) = builtin_allow {
            return answer.verdict(true, evaluated);
        }
        // Built-ins decide this action and none allowed it: a custom allow cannot stand
        // in for them, that would widen what the built-ins grant.
        let why = format!("no built-in policy allows {action}; ");
        return match builtin_abstain {
            Some(answer) => answer.abstained(&why, evaluated),
            None => Verdict::denied(why, evaluated),
        };
    }
    if let Some(answer) = custom_allow {
        return answer.verdict(true, evaluated);
    }
    let why = format!("no policy allows {action}; ");
    match abstain {
        Some(answer) => answer.abstained(&why, evaluated),
        None => Verdict::denied(why, evaluated),
    }
}

impl Answer<'_> {
    /// The verdict named after this answer.
    fn verdict(self, allowed: bool, evaluated: Vec<Evaluated>) -> Verdict {
        Verdict {
            allowed,
            policy: self.policy.name().to_owned(),
            reason: self.reason,
            evaluated,
            request: None,
        }
    }

    /// A denial because nothing allowed, naming this abstention after `why`.
    fn abstained(self, why: &str, evaluated: Vec<Evaluated>) -> Verdict {
        let name = self.policy.name();
        Verdict {
            allowed: false,
            policy: name.to_owned(),
            reason: format!("{why}{name} abstained: {}", self.reason),
            evaluated,
            request: None,
        }
    }
}

impl Verdict {
    /// A denial no policy is named for.
    fn denied(reason: String, evaluated: Vec<Evaluated>) -> Verdict {
        Verdict {
            allowed: false,
            policy: String::new(),
            reason,
            evaluated,
            request: None,
        }
    }
}

/// The current policy set of a folder, reloadable while decisions run.
#[derive(Debug)]
pub struct PolicyEngine {
    dir: PathBuf,
    required: Vec<String>,
    sandbox: Sandbox,
    // ArcSwap rather than RwLock<Arc<_>>: a decision's load is a few uncontended atomic
    // operations and never waits for a reload that is compiling modules.
    current: ArcSwap<PolicySet>,
    // The last generation given to a set.
    generations: AtomicU64,
    // Serialises reloads, so a slow reload cannot overwrite a newer one's set.
    reloading: Mutex<()>,
}

impl PolicyEngine {
    /// Load every manifest in `dir`; all must be valid, and the built-in policies named in
    /// `required` must be among them (now and at every reload).
    pub fn load(
        dir: &Path,
        limits: Limits,
        required: &[&str],
    ) -> Result<PolicyEngine, PolicyError> {
        let sandbox = Sandbox::new(limits)?;
        let required: Vec<String> = required.iter().map(|&name| name.to_owned()).collect();
        let set = PolicySet::load(dir, &sandbox, &required)?;
        Ok(PolicyEngine {
            dir: dir.to_owned(),
            required,
            sandbox,
            current: ArcSwap::from_pointee(set),
            generations: AtomicU64::new(1),
            reloading: Mutex::new(()),
        })
    }

    /// Rebuild the set from the same folder and swap it in; on any error the current set
    /// stays and the error is returned. Returns how many policies are now loaded.
    pub fn reload(&self) -> Result<usize, PolicyError> {
        self.reload_with(|_, _| Ok::<(), PolicyError>(()))
    }

    /// As [`Self::reload`], calling `approve` with the current set and the new one before
    /// the swap: an error from it keeps the current set (so a reload and its record in
    /// the trail happen together or not at all).
    pub fn reload_with<E: From<PolicyError>>(
        &self,
        approve: impl FnOnce(&PolicySet, &PolicySet) -> Result<(), E>,
    ) -> Result<usize, E> {
        let _serial = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut set = PolicySet::load(&self.dir, &self.sandbox, &self.required)?;
        set.generation = self.generations.load(Ordering::Relaxed) + 1;
        approve(&self.current.load(), &set)?;
        self.generations.store(set.generation, Ordering::Relaxed);
        let count = set.policies.len();
        self.current.store(Arc::new(set));
        Ok(count)
    }

    /// Decide `request` with the current set.
    pub fn decide(&self, request: &Request) -> Verdict {
        self.current.load().decide(request)
    }

    /// [`PolicySet::decide_head`] with the current set.
    pub fn decide_head(&self, action: &str, head: &[u8], context: &Context) -> Verdict {
        self.current.load().decide_head(action, head, context)
    }

    /// Decide `request` with the current set, listing every module's answer.
    pub fn explain(&self, request: &Request) -> Verdict {
        self.current.load().explain(request)
    }

    /// [`PolicySet::decide_parts`] with the current set.
    pub fn decide_parts(
        &self,
        principal: &[u8],
        action: &str,
        resource: &Resource,
        context: &Context,
        explain: bool,
    ) -> Verdict {
        self.current
            .load()
            .decide_parts(principal, action, resource, context, explain)
    }

    /// The current set (kept alive by the caller even if a reload replaces it).
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// The current set, for one decision: cheaper than [`Self::current`], and not to be
    /// held for long (a reload cannot free the set it replaces while a guard holds it).
    pub fn current_guard(&self) -> arc_swap::Guard<Arc<PolicySet>> {
        self.current.load()
    }

    /// The folder the set is loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use latchkey_policy_abi::{
        AccountRoles, Assignment, Billing, CredentialInfo, CredentialKind, Developer, Mfa,
        PrincipalKind, Team,
    };

    use super::*;

    #[test]
    fn a_request_encoded_in_parts_is_the_request_encoded_whole() {
        let request = Request {
            principal: Principal {
                kind: PrincipalKind::User,
                id: "usr_1".into(),
                account: "ac_1".into(),
                roles: Some(AccountRoles {
                    developer: Developer::ReadWrite,
                    team: Team::Invite,
                    billing: Billing::None,
                    admin: false,
                }),
                assignments: vec![Assignment {
                    role: "Helpdesk".into(),
                    builtin: false,
                    tenant: Some("tnt_1".into()),
                    permissions: vec![0b1011, u64::MAX],
                }],
                mfa: Mfa::default(),
                credential: Some(CredentialInfo {
                    kind: CredentialKind::ApiKey,
                    id: "ak_1".into(),
                    personal: false,
                    acl: vec!["bind:*.example.com".into()],
                    scopes: vec!["iam.*".into()],
                }),
                source_ip: Some(latchkey_policy_abi::IpAddress::V4([192, 0, 2, 1])),
            },
            action: "computers.run_maintenance".into(),
            resource: Resource {
                kind: "computer".into(),
                id: "c-42".into(),
                account: "ac_1".into(),
                tenant: Some("tnt_1".into()),
                owner: None,
                permission: Some(4),
                attributes: vec![("type".into(), "api".into())],
            },
            context: Context {
                time_ms: 1_795_341_600_000,
                values: vec![("k".into(), "v".into())],
            },
        };
        let principal = encode_principal(&request.principal).unwrap();
        let parts = encode_after_principal(
            Vec::new(),
            &principal,
            &request.action,
            &request.resource,
            &request.context,
        )
        .unwrap();
        assert_eq!(parts, postcard::to_allocvec(&request).unwrap());
    }
}
