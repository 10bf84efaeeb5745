//! The policy ABI decoders: what a guest hands back (a `Decision`) and what it is given (a
//! `Request`) decode or fail, never panic; what decodes re-encodes to bytes that decode
//! to the same value. The hand-written borrowed decoder modules use
//! (`view::Request::decode`) accepts exactly what postcard accepts, reads the same value,
//! and a decision written by hand is postcard's bytes.
#![no_main]

use latchkey_policy_abi::{Decision, Request, decode, encode, view};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(decision) = decode::<Decision>(bytes) {
        let again = encode(&decision).expect("a decision encodes");
        assert_eq!(decision.to_bytes(), again);
        assert_eq!(decode::<Decision>(&again).ok(), Some(decision));
    }
    if let Ok(request) = decode::<Request>(bytes) {
        let again = encode(&request).expect("a request encodes");
        assert_eq!(decode::<Request>(&again).ok(), Some(request));
    }
    let ours = view::Request::decode(bytes).ok();
    let theirs = match postcard::take_from_bytes::<view::Request<'_>>(bytes) {
        Ok((request, [])) => Some(request),
        _ => None,
    };
    assert_eq!(ours, theirs);
    if let Some(request) = ours {
        // Not always the same bytes (postcard reads over-long varints), but the same value.
        let again = encode(&request).expect("a view encodes");
        assert_eq!(view::Request::decode(&again).ok(), Some(request));
    }
});
