//! Decision-case files, run natively (feature `cases`): a JSON array of
//! `{"name", "request", "expect": "allow" | "deny" | "not_applicable"}`, where `request` is
//! a [`Request`] in serde's JSON form. `latchkey policy test` reads the same format.

use std::format;
use std::string::String;
use std::vec::Vec;

use latchkey_policy_abi::{Outcome, Request, encode, view};
use serde::Deserialize;

use crate::Policy;

/// One case: a request and the outcome it must get.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Names the case in failure reports.
    pub name: String,
    /// What is asked.
    pub request: Request,
    /// The outcome the policy must give.
    pub expect: Expect,
}

/// An expected outcome, spelled as in case files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// [`Outcome::Allow`].
    Allow,
    /// [`Outcome::Deny`].
    Deny,
    /// [`Outcome::NotApplicable`].
    NotApplicable,
}

impl Expect {
    /// The outcome this expectation names.
    pub fn outcome(self) -> Outcome {
        match self {
            Expect::Allow => Outcome::Allow,
            Expect::Deny => Outcome::Deny,
            Expect::NotApplicable => Outcome::NotApplicable,
        }
    }
}

/// Parse a case file.
pub fn parse(json: &str) -> Result<Vec<Case>, serde_json::Error> {
    serde_json::from_str(json)
}

/// Run every case through `P`; `Ok(number of cases)` when all pass, otherwise `Err` with
/// one line per mismatch (name, expected, got, reason), so a failure lists them all.
pub fn run<P: Policy>(json: &str) -> Result<usize, String> {
    let cases = parse(json).map_err(|e| format!("case file does not parse: {e}"))?;
    let mut failures = Vec::new();
    for case in &cases {
        // Through the bytes, as a module reads them: encoded as the host does, decoded
        // into the borrowed view.
        let bytes = encode(&case.request)
            .map_err(|e| format!("{}: the request does not encode: {e}", case.name))?;
        let request = view::Request::decode(&bytes)
            .map_err(|e| format!("{}: the request does not decode: {e:?}", case.name))?;
        let decision = P::decide(&request);
        if decision.outcome != case.expect.outcome() {
            failures.push(format!(
                "{}: expected {:?}, got {:?} ({})",
                case.name, case.expect, decision.outcome, decision.reason
            ));
        }
        if decision.reason.is_empty() {
            failures.push(format!("{}: the decision has no reason", case.name));
        }
    }
    if failures.is_empty() {
        Ok(cases.len())
    } else {
        Err(format!(
            "{} of {} cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        ))
    }
}
