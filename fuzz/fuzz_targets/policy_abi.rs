//! The policy ABI decoder: what a guest hands back (a `Decision`) and what it is given (a
//! `Request`) decode or fail, never panic; what decodes re-encodes to bytes that decode
//! to the same value.
#![no_main]

use latchkey_policy_abi::{Decision, Request, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(decision) = decode::<Decision>(bytes) {
        let again = encode(&decision).expect("a decision encodes");
        assert_eq!(decode::<Decision>(&again).ok(), Some(decision));
    }
    if let Ok(request) = decode::<Request>(bytes) {
        let again = encode(&request).expect("a request encodes");
        assert_eq!(decode::<Request>(&again).ok(), Some(request));
    }
});
