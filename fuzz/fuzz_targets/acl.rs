//! Bind-rule ACLs: rules (one per line) parse or are refused naming a rule, never a
//! panic; parsed rules parse again to the same ACL.
#![no_main]

use latchkey::domain::acl::Acl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let rules: Vec<&str> = text.split('\n').collect();
    if let Ok(acl) = Acl::parse(&rules) {
        let again = Acl::parse(acl.rules()).expect("a parsed ACL parses again");
        assert_eq!(again.rules(), acl.rules());
    }
});
