//! The token parser: any text is a token or a refusal, never a panic; a token that
//! parses names exactly the id and secret its text carries.
#![no_main]

use latchkey::domain::token::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(token) = parse(text) {
        assert!(text.as_bytes().windows(token.secret().len()).any(|w| w == token.secret()));
        assert!(text.starts_with("lk_at_") || text.starts_with("lk_ak_"));
    }
});
