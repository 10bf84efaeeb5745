//! Runs the decision cases in `policies/account-rbac.cases.json` (generated from the seeds by
//! `plugins/cases/generate.py`) through the policy natively; a failure lists every mismatch.

use latchkey_policy_sdk::cases;

#[test]
fn every_case_passes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/account-rbac.cases.json"
    );
    let json = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    match cases::run::<account_rbac::AccountRbac>(&json) {
        Ok(count) => assert!(count > 0, "{path} holds no cases"),
        Err(report) => panic!("{path}:\n{report}"),
    }
}
