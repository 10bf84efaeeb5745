//! `latchkey policy test`: decision cases (read by the SDK's `cases` module, one format
//! for the host and for a policy crate's own tests) run against a policies folder (the
//! modules combined exactly as the server combines them) or one module (its own answer),
//! with each module's coverage.

use std::collections::BTreeSet;
use std::path::Path;

use latchkey_policy_abi::Outcome;
pub use latchkey_policy_sdk::cases::Expect as Expected;
use latchkey_policy_sdk::cases::{Case, parse};

use super::{Limits, PolicyEngine, PolicyError};

/// What the cases run against.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A policies folder, loaded as the server loads it (these built-ins required).
    Folder(&'a Path, &'a [&'a str]),
    /// One module file, alone.
    Module(&'a Path),
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Whether the answer was the expected one.
    pub passed: bool,
    /// Why not, when it was not ("expected allow, got deny: …", or the fault).
    pub failure: Option<String>,
}

/// What one module did over the cases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// The policy.
    pub policy: String,
    /// The actions of the cases routed to it, sorted.
    pub actions: Vec<String>,
    /// How often it allowed.
    pub allow: usize,
    /// How often it denied (a fault counts as a deny).
    pub deny: usize,
    /// How often it abstained.
    pub not_applicable: usize,
}

/// The results of a cases file, in file order, and each module's coverage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    /// The module's name (its file stem), or the folder's path.
    pub module: String,
    /// One per case.
    pub results: Vec<CaseResult>,
    /// One per module, in evaluation order.
    pub coverage: Vec<Coverage>,
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

/// Run the cases of `cases_json` against `subject`.
///
/// A fault fails its case even when the case expects a deny: the server would deny too,
/// but an author who expects a deny wants their rule to be the reason, not a trap.
pub fn run(
    subject: Subject<'_>,
    cases_json: &str,
    limits: &Limits,
) -> Result<CaseReport, PolicyError> {
    let cases = parse(cases_json).map_err(|message| PolicyError::Cases { message })?;
    let mut report = CaseReport {
        module: String::new(),
        results: Vec::with_capacity(cases.len()),
        coverage: Vec::new(),
    };
    match subject {
        Subject::Module(path) => {
            let policy = super::check::load_alone(path, limits)?;
            report.module = policy.name().to_owned();
            let mut coverage = Coverage {
                policy: policy.name().to_owned(),
                ..Coverage::default()
            };
            let mut actions = BTreeSet::new();
            for case in cases {
                actions.insert(case.request.action.clone());
                let failure = match policy.evaluate(&case.request) {
                    Ok(d) => {
                        coverage.count(d.outcome);
                        judge(&case, d.outcome, policy.name(), &d.reason)
                    }
                    Err(e) => {
                        coverage.count(Outcome::Deny);
                        let expected = outcome_name(case.expect.outcome());
                        Some(format!("expected {expected}, but {e}"))
                    }
                };
                report.results.push(result(case.name, failure));
            }
            coverage.actions = actions.into_iter().collect();
            report.coverage.push(coverage);
        }
        Subject::Folder(dir, required) => {
            let engine = PolicyEngine::load(dir, *limits, required)?;
            let set = engine.current();
            report.module = dir.display().to_string();
            let mut coverage: Vec<(Coverage, BTreeSet<String>)> = set
                .policies()
                .iter()
                .map(|p| {
                    let named = Coverage {
                        policy: p.name().to_owned(),
                        ..Coverage::default()
                    };
                    (named, BTreeSet::new())
                })
                .collect();
            for case in cases {
                if case.expect == Expected::NotApplicable {
                    let why = "a policy set answers allow or deny, never not_applicable";
                    report.results.push(result(case.name, Some(why.to_owned())));
                    continue;
                }
                let verdict = set.explain(&case.request);
                for (policy, (entry, actions)) in set.policies().iter().zip(&mut coverage) {
                    if policy.manifest().decides(&case.request.action) {
                        actions.insert(case.request.action.clone());
                    }
                    if let Some(e) = verdict.evaluated.iter().find(|e| e.policy == entry.policy) {
                        entry.count(e.outcome);
                    }
                }
                let outcome = if verdict.allowed {
                    Outcome::Allow
                } else {
                    Outcome::Deny
                };
                let failure = judge(&case, outcome, &verdict.policy, &verdict.reason);
                report.results.push(result(case.name, failure));
            }
            report.coverage = coverage
                .into_iter()
                .map(|(mut entry, actions)| {
                    entry.actions = actions.into_iter().collect();
                    entry
                })
                .collect();
        }
    }
    Ok(report)
}

/// [`run`] against one module (the original `policy test`).
pub fn run_cases(
    path: &Path,
    cases_json: &str,
    limits: &Limits,
) -> Result<CaseReport, PolicyError> {
    run(Subject::Module(path), cases_json, limits)
}

impl Coverage {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Allow => self.allow += 1,
            Outcome::Deny => self.deny += 1,
            Outcome::NotApplicable => self.not_applicable += 1,
        }
    }
}

fn result(name: String, failure: Option<String>) -> CaseResult {
    CaseResult {
        name,
        passed: failure.is_none(),
        failure,
    }
}

/// Why the answer (`outcome` by `policy` for `reason`) is not what `case` expects.
fn judge(case: &Case, outcome: Outcome, policy: &str, reason: &str) -> Option<String> {
    let expected = case.expect.outcome();
    if outcome != expected {
        return Some(format!(
            "expected {}, got {} from {}: {reason}",
            outcome_name(expected),
            outcome_name(outcome),
            if policy.is_empty() {
                "no policy"
            } else {
                policy
            }
        ));
    }
    if let Some(want) = &case.policy
        && want != policy
    {
        return Some(format!(
            "expected {} by {want}, but {policy} decided: {reason}",
            outcome_name(expected)
        ));
    }
    if let Some(part) = &case.reason
        && !reason.contains(part.as_str())
    {
        return Some(format!(
            "expected a reason containing {part:?}, got {reason:?}"
        ));
    }
    None
}

/// An outcome as case files spell it.
pub fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
        Outcome::NotApplicable => "not_applicable",
    }
}
