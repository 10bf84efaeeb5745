//! Bind-rule matching for `agent.bind`: the one place latchkey matches a bind target
//! against a credential's ACL (the host's `domain::acl` only validates and normalises
//! rules). Rules arrive already validated and normalised by the host, so they are read leniently
//! (a rule this cannot read matches nothing); the bind target is validated here exactly
//! as the host does, because a malformed target must never match a restricted ACL.

use alloc::string::String;

const BIND_PREFIX: &str = "bind:";
const MAX_DOMAIN_LEN: usize = 253;
const MAX_DOMAIN_LABEL_LEN: usize = 63;
const MAX_LABEL_PART_LEN: usize = 255;

/// What an agent asks to bind, classified the way rules are.
enum Target<'a> {
    /// Lowercased host name, possibly `*.suffix` (binding a wildcard domain).
    Host(String),
    Address {
        host: String,
        port: u16,
    },
    Label {
        key: &'a str,
        value: &'a str,
    },
}

/// True when the ACL places no restriction: no rules, or `*` / `bind:*` among them.
pub fn is_unrestricted(rules: &[&str]) -> bool {
    rules.is_empty() || rules.iter().any(|r| *r == "*" || *r == "bind:*")
}

/// May a credential with `rules` bind `target` (a host name, `host:port`, or `key=value`)?
pub fn allows_bind(rules: &[&str], target: &str) -> bool {
    if is_unrestricted(rules) {
        return true;
    }
    match parse_target(target) {
        Some(t) => rules.iter().any(|rule| rule_allows(rule, &t)),
        None => false,
    }
}

fn rule_allows(rule: &str, target: &Target<'_>) -> bool {
    let Some(body) = rule.strip_prefix(BIND_PREFIX) else {
        return false;
    };
    // The same classification as the host's parser: '=' marks a label, then ':' an address.
    if let Some((key, value)) = body.split_once('=') {
        return match target {
            Target::Label { key: tk, value: tv } => {
                label_part_matches(key, tk) && label_part_matches(value, tv)
            }
            _ => false,
        };
    }
    if let Some((host, port)) = body.split_once(':') {
        return match target {
            Target::Address { host: th, port: tp } => {
                host.eq_ignore_ascii_case(th) && port.parse::<u16>().ok() == Some(*tp)
            }
            _ => false,
        };
    }
    let Target::Host(h) = target else {
        // Kinds never cross: a domain rule grants neither an address nor a label.
        return false;
    };
    let rule = body.to_ascii_lowercase();
    match rule.strip_prefix("*.") {
        Some(suffix) => h
            .strip_suffix(suffix)
            .and_then(|rest| rest.strip_suffix('.'))
            // `*.example.com` must not allow `example.com` itself: one more label is needed.
            .is_some_and(|prefix| !prefix.is_empty()),
        None => rule == *h,
    }
}

/// A label key or value pattern: `*` or a literal, compared case-sensitively.
fn label_part_matches(pattern: &str, text: &str) -> bool {
    pattern == "*" || pattern == text
}

/// Classify and validate a bind target; `None` for anything malformed.
///
/// The parts' own limits bound a valid target (at most 511 bytes, a label of two 255-byte
/// parts), and an empty one is no domain, so neither needs a check of its own.
fn parse_target(target: &str) -> Option<Target<'_>> {
    if target.contains('=') {
        let (key, value) = target.split_once('=')?;
        if value.contains('=') || !valid_label_part(key) || !valid_label_part(value) {
            return None;
        }
        return Some(Target::Label { key, value });
    }
    if target.contains(':') {
        // A second `:` is not a digit of the port, and an empty host is no domain.
        let (host, port) = target.split_once(':')?;
        let port = parse_port(port)?;
        let host = host.to_ascii_lowercase();
        return valid_domain(&host).then_some(Target::Address { host, port });
    }
    let host = target.to_ascii_lowercase();
    // A wildcard domain (`*.example.com`) is itself a bindable thing.
    let plain = host.strip_prefix("*.").unwrap_or(&host);
    valid_domain(plain).then_some(Target::Host(host))
}

/// Digits only, no leading zero, 1 to 65535: each port has exactly one spelling.
fn parse_port(port: &str) -> Option<u16> {
    if port.is_empty() || port.starts_with('0') || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok()
}

/// Label charset: ASCII letters, digits, '.', '-' and '_'.
fn valid_label_part(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_LABEL_PART_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// RFC 1123 host name, already lowercased, without a trailing dot.
fn valid_domain(domain: &str) -> bool {
    domain.len() <= MAX_DOMAIN_LEN
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_DOMAIN_LABEL_LEN
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rules: &[&str], target: &str, expected: bool) {
        assert_eq!(
            allows_bind(rules, target),
            expected,
            "rules {rules:?}, target {target:?}"
        );
    }

    /// The host's `domain::acl` matching table, verbatim: the two must agree.
    #[test]
    fn matching_table() {
        let cases: &[(&[&str], &str, bool)] = &[
            // Empty and universal ACLs allow anything, even malformed targets.
            (&[], "example.com", true),
            (&[], "1.tcp.ngrok.io:12345", true),
            (&[], "k=v", true),
            (&[], "not a target!", true),
            (&["*"], "anything.example.org", true),
            (&["*"], "x=y", true),
            (&["bind:*"], "a.b.c", true),
            (&["bind:*"], "host:22", true),
            (&["bind:*"], "k=v", true),
            (&["bind:example.com", "*"], "other.org", true),
            // Exact domains, case-insensitive on both sides.
            (&["bind:example.ngrok.io"], "example.ngrok.io", true),
            (&["bind:example.ngrok.io"], "EXAMPLE.ngrok.IO", true),
            (&["bind:Example.NGROK.io"], "example.ngrok.io", true),
            (&["bind:example.ngrok.io"], "other.ngrok.io", false),
            (&["bind:example.ngrok.io"], "x.example.ngrok.io", false),
            (&["bind:example.ngrok.io"], "ngrok.io", false),
            (&["bind:example.ngrok.io"], "example.ngrok.io.", false),
            (&["bind:example.ngrok.io"], "*.example.ngrok.io", false),
            (&["bind:example.ngrok.io"], "example.ngrok.io:443", false),
            (&["bind:example.ngrok.io"], "example.ngrok.iox", false),
            // Wildcard domains.
            (&["bind:*.example.com"], "x.example.com", true),
            (&["bind:*.example.com"], "y.example.com", true),
            (&["bind:*.example.com"], "a.b.example.com", true),
            (&["bind:*.example.com"], "X.Example.COM", true),
            (&["bind:*.example.com"], "*.example.com", true),
            (&["bind:*.example.com"], "*.sub.example.com", true),
            (&["bind:*.example.com"], "example.com", false),
            (&["bind:*.example.com"], "badexample.com", false),
            (&["bind:*.example.com"], "x.example.com.evil.org", false),
            (&["bind:*.example.com"], ".example.com", false),
            (&["bind:*.example.com"], "a..example.com", false),
            (&["bind:*.example.com"], "-a.example.com", false),
            (&["bind:*.example.com"], "x.example.com:80", false),
            (&["bind:*.example.com"], "*.com", false),
            (&["bind:*.example.com"], "x=example.com", false),
            (&["bind:*.EXAMPLE.com"], "x.example.com", true),
            // TCP addresses.
            (&["bind:1.tcp.ngrok.io:12345"], "1.tcp.ngrok.io:12345", true),
            (&["bind:1.tcp.ngrok.io:12345"], "1.TCP.ngrok.io:12345", true),
            (
                &["bind:1.tcp.ngrok.io:12345"],
                "1.tcp.ngrok.io:12346",
                false,
            ),
            (
                &["bind:1.tcp.ngrok.io:12345"],
                "2.tcp.ngrok.io:12345",
                false,
            ),
            (&["bind:1.tcp.ngrok.io:12345"], "1.tcp.ngrok.io", false),
            (
                &["bind:1.tcp.ngrok.io:12345"],
                "1.tcp.ngrok.io:012345",
                false,
            ),
            (
                &["bind:1.tcp.ngrok.io:12345"],
                "1.tcp.ngrok.io:+12345",
                false,
            ),
            (
                &["bind:1.tcp.ngrok.io:12345"],
                "1.tcp.ngrok.io:12345:1",
                false,
            ),
            (&["bind:10.0.0.1:22"], "10.0.0.1:22", true),
            (&["bind:localhost:65535"], "localhost:65535", true),
            (&["bind:localhost:1"], "localhost:1", true),
            // Labels: exact and wildcard key and/or value, case-sensitive.
            (&["bind:edge=edghts_2Ab"], "edge=edghts_2Ab", true),
            (&["bind:edge=edghts_2Ab"], "edge=edghts_2ab", false),
            (&["bind:edge=edghts_2Ab"], "Edge=edghts_2Ab", false),
            (&["bind:edge=edghts_2Ab"], "edge=other", false),
            (&["bind:*=example"], "x=example", true),
            (&["bind:*=example"], "y=example", true),
            (&["bind:*=example"], "y=example2", false),
            (&["bind:env=*"], "env=prod", true),
            (&["bind:env=*"], "env=dev", true),
            (&["bind:env=*"], "team=dev", false),
            (&["bind:*=*"], "any=thing", true),
            (&["bind:*=*"], "any.example.com", false),
            (&["bind:*=*"], "host:80", false),
            (&["bind:*=*"], "=v", false),
            (&["bind:*=*"], "k=", false),
            (&["bind:*=*"], "k=v=w", false),
            (&["bind:*=*"], "k=v w", false),
            // Several rules: any one match suffices.
            (
                &["bind:a.example.com", "bind:*.b.example.com", "bind:app=web"],
                "x.b.example.com",
                true,
            ),
            (
                &["bind:a.example.com", "bind:*.b.example.com", "bind:app=web"],
                "app=web",
                true,
            ),
            (
                &["bind:a.example.com", "bind:*.b.example.com", "bind:app=web"],
                "b.example.com",
                false,
            ),
            (
                &["bind:a.example.com", "bind:*.b.example.com", "bind:app=web"],
                "c.example.com",
                false,
            ),
            // Malformed targets never match a restricted ACL.
            (&["bind:example.com"], "", false),
            (&["bind:example.com"], "exa mple.com", false),
            (&["bind:*.example.com"], "ex_ample.example.com", false),
            (&["bind:*.example.com"], "**.example.com", false),
        ];
        for (rules, target, expected) in cases {
            check(rules, target, *expected);
        }
    }

    #[test]
    fn unreadable_rules_match_nothing() {
        check(&["listen:example.com"], "example.com", false);
        check(&["example.com"], "example.com", false);
        check(&["bind:host:http"], "host:80", false);
    }

    #[test]
    fn longest_valid_domain_matches() {
        let d = alloc::format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        let rule = alloc::format!("bind:{d}");
        check(&[rule.as_str()], &d, true);
        check(
            &["bind:*.example.com"],
            &alloc::format!("{}x.example.com", "a".repeat(300)),
            false,
        );
    }
}
