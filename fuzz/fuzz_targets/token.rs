//! The token parser: any text is a token or a refusal, never a panic; a token that
//! parses names exactly the id and secret its text carries. Inputs are tried as given
//! and behind each kind's prefix, so the fuzzer reaches past the prefix check.
#![no_main]

use latchkey::domain::token::parse;
use libfuzzer_sys::fuzz_target;

fn judge(text: &str) {
    if let Ok(token) = parse(text) {
        assert!(
            text.as_bytes()
                .windows(token.secret().len())
                .any(|w| w == token.secret())
        );
        assert!(text.starts_with("lk_at_") || text.starts_with("lk_ak_"));
    }
}

fuzz_target!(|input: (bool, &str)| {
    let (api_key, rest) = input;
    judge(rest);
    judge(&format!("lk_{}_{rest}", if api_key { "ak" } else { "at" }));
});
