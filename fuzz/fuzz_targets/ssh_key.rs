//! The SSH public key parser (`authorized_keys` lines): a key or a refusal, never a
//! panic; a key that parses has a stable fingerprint.
#![no_main]

use latchkey::domain::ssh::SshPublicKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &str| {
    if let Ok(key) = SshPublicKey::parse(line) {
        assert_eq!(key.fingerprint(), key.fingerprint());
    }
});
