//! ngrok-style credential ACLs: the `acl` list on authtokens and SSH credentials.
//!
//! The only rule kind is `bind`, restricting which domains, TCP addresses and
//! labels a credential may bind; `*` (or an empty list) means "no restriction".
//! Rules are validated strictly on input and echoed back in normalised form. Matching a
//! bind target against them is the account-RBAC policy's job (`agent.bind`), not the host's.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Most rules one ACL may hold; a credential needing more is better served by wildcards.
pub const MAX_RULES: usize = 100;
/// Longest rule accepted, in bytes, checked before any other parsing.
pub const MAX_RULE_LEN: usize = 512;
/// Longest host name (RFC 1123 / RFC 1035 presentation form without the trailing dot).
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest single DNS label.
pub const MAX_DOMAIN_LABEL_LEN: usize = 63;
/// Longest label key or value in a `bind:key=value` rule.
pub const MAX_LABEL_PART_LEN: usize = 255;

const BIND_PREFIX: &str = "bind:";

/// Why an ACL could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AclError {
    /// More than [`MAX_RULES`] rules were given.
    #[error("an ACL may hold at most {max} rules, but {count} were given")]
    TooManyRules {
        /// Number of rules submitted.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// One rule is malformed.
    #[error("ACL rule at index {index} ({rule:?}) is invalid: {reason}")]
    InvalidRule {
        /// Zero-based position of the rule in the submitted list.
        index: usize,
        /// The rule as submitted, truncated to [`MAX_RULE_LEN`] bytes.
        rule: String,
        /// What is wrong with it.
        reason: RuleError,
    },
    /// Two rules normalise to the same text.
    #[error(
        "ACL rule at index {index} ({rule:?}) duplicates the rule at index {first_index}; list each rule once"
    )]
    DuplicateRule {
        /// Zero-based position of the repeated rule.
        index: usize,
        /// Zero-based position of its first occurrence.
        first_index: usize,
        /// The normalised text both rules share.
        rule: String,
    },
}

/// What is wrong with a single rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The rule is the empty string.
    #[error("the rule is empty")]
    Empty,
    /// The rule exceeds [`MAX_RULE_LEN`].
    #[error("the rule is {len} bytes long; at most {max} bytes are allowed")]
    TooLong {
        /// Length of the rule in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The rule contains a space, tab, newline or other whitespace.
    #[error("the rule contains whitespace, which is never allowed")]
    Whitespace,
    /// The part before the first `:` is not `bind`.
    #[error(
        "unknown rule kind {kind:?}; the only rule kind is \"bind\" (as in \"bind:example.com\"), or \"*\" alone"
    )]
    UnknownKind {
        /// The rule kind as written.
        kind: String,
    },
    /// There is nothing after `bind:`.
    #[error(
        "\"bind:\" must be followed by a domain, an address host:port, a label key=value, or \"*\""
    )]
    EmptyTarget,
    /// A `*` appears somewhere other than the permitted positions.
    #[error(
        "a wildcard \"*\" may only be the whole target, a leading \"*.\" on a domain, or a whole label key or value"
    )]
    MisplacedWildcard,
    /// The domain (or address host) is longer than [`MAX_DOMAIN_LEN`].
    #[error("the domain is {len} characters long; at most {max} are allowed")]
    DomainTooLong {
        /// Length of the domain.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The domain has an empty label (`a..b`, a leading or a trailing dot).
    #[error("the domain has an empty label (a leading, trailing or doubled dot)")]
    EmptyDomainLabel,
    /// One DNS label is longer than [`MAX_DOMAIN_LABEL_LEN`].
    #[error("the domain label {label:?} is {len} characters long; at most {max} are allowed")]
    DomainLabelTooLong {
        /// The offending label.
        label: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A DNS label contains something other than letters, digits and hyphens.
    #[error(
        "the domain label {label:?} may contain only letters, digits and hyphens (use the xn-- form for international names)"
    )]
    DomainLabelCharset {
        /// The offending label.
        label: String,
    },
    /// A DNS label starts or ends with a hyphen.
    #[error("the domain label {label:?} must not start or end with a hyphen")]
    DomainLabelHyphen {
        /// The offending label.
        label: String,
    },
    /// An address rule has more than one `:`; IPv6 literals are not supported.
    #[error(
        "an address must be written host:port with exactly one colon (IPv6 literals are not supported)"
    )]
    AddressColons,
    /// An address rule has an empty host part.
    #[error("the address has no host before the colon")]
    EmptyAddressHost,
    /// The port is not a decimal number in 1–65535 without leading zeros.
    #[error("the port {port:?} must be a whole number from 1 to 65535 without leading zeros")]
    InvalidPort {
        /// The port as written.
        port: String,
    },
    /// A label rule has more than one `=`.
    #[error("a label must be written key=value with exactly one \"=\"")]
    LabelEquals,
    /// The key or value of a label rule is empty.
    #[error("the label {part} is empty")]
    EmptyLabelPart {
        /// "key" or "value".
        part: &'static str,
    },
    /// The key or value of a label rule is longer than [`MAX_LABEL_PART_LEN`].
    #[error("the label {part} is {len} characters long; at most {max} are allowed")]
    LabelPartTooLong {
        /// "key" or "value".
        part: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The key or value of a label rule has a character outside `[A-Za-z0-9._-]`.
    #[error(
        "the label {part} {text:?} may contain only letters, digits, '.', '_' and '-', or be exactly \"*\""
    )]
    LabelPartCharset {
        /// "key" or "value".
        part: &'static str,
        /// The offending text.
        text: String,
    },
}

/// Part of a label rule: a literal or the `*` wildcard.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelPattern {
    Any,
    Exact(String),
}

impl fmt::Display for LabelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelPattern::Any => f.write_str("*"),
            LabelPattern::Exact(s) => f.write_str(s),
        }
    }
}

/// One parsed rule. Host names are stored lowercased so matching is a plain comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    /// `*`: permits everything.
    All,
    /// `bind:*`: permits every bind.
    BindAll,
    /// `bind:example.com`.
    Domain(String),
    /// `bind:*.example.com`, holding the suffix `example.com`.
    WildcardDomain(String),
    /// `bind:host:port`.
    Address { host: String, port: u16 },
    /// `bind:key=value`.
    Label {
        key: LabelPattern,
        value: LabelPattern,
    },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::All => f.write_str("*"),
            Rule::BindAll => write!(f, "{BIND_PREFIX}*"),
            Rule::Domain(d) => write!(f, "{BIND_PREFIX}{d}"),
            Rule::WildcardDomain(s) => write!(f, "{BIND_PREFIX}*.{s}"),
            Rule::Address { host, port } => write!(f, "{BIND_PREFIX}{host}:{port}"),
            Rule::Label { key, value } => write!(f, "{BIND_PREFIX}{key}={value}"),
        }
    }
}

/// A validated credential ACL.
///
/// Stored (via serde) as the list of normalised rule strings, and re-validated
/// when loaded, so a stored ACL can never hold a rule `parse` would refuse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Acl {
    /// Normalised text of each rule, in submission order: what the API echoes back.
    text: Vec<String>,
    /// Parsed form of each rule, index-aligned with `text`.
    parsed: Vec<Rule>,
}

impl Default for Acl {
    fn default() -> Self {
        Self::empty()
    }
}

impl Acl {
    /// Parse and validate every rule; the first bad one is reported with its index.
    ///
    /// Rules are kept in the order given. Domain names are lowercased; label keys
    /// and values are case-sensitive and kept as written. Two rules that
    /// normalise to the same text are refused rather than silently merged, so
    /// what the API echoes back is always exactly what the caller sent (modulo
    /// case).
    pub fn parse<S: AsRef<str>>(rules: &[S]) -> Result<Acl, AclError> {
        if rules.len() > MAX_RULES {
            return Err(AclError::TooManyRules {
                count: rules.len(),
                max: MAX_RULES,
            });
        }
        let mut text: Vec<String> = Vec::with_capacity(rules.len());
        let mut parsed = Vec::with_capacity(rules.len());
        for (index, raw) in rules.iter().enumerate() {
            let raw = raw.as_ref();
            let rule = parse_rule(raw).map_err(|reason| AclError::InvalidRule {
                index,
                rule: truncate(raw, MAX_RULE_LEN).to_owned(),
                reason,
            })?;
            let normalised = rule.to_string();
            // Quadratic, but bounded by MAX_RULES = 100, so at most ~5k string compares.
            if let Some(first_index) = text.iter().position(|t| *t == normalised) {
                return Err(AclError::DuplicateRule {
                    index,
                    first_index,
                    rule: normalised,
                });
            }
            text.push(normalised);
            parsed.push(rule);
        }
        Ok(Acl { text, parsed })
    }

    /// An ACL with no rules, which places no restriction on the credential.
    pub fn empty() -> Acl {
        Acl {
            text: Vec::new(),
            parsed: Vec::new(),
        }
    }

    /// True when the ACL permits every bind: it is empty, or holds `*` or `bind:*`.
    ///
    /// `bind:*` counts too because `bind` is the only action an ACL governs, so
    /// it is behaviourally identical to `*`.
    pub fn is_unrestricted(&self) -> bool {
        self.parsed.is_empty()
            || self
                .parsed
                .iter()
                .any(|r| matches!(r, Rule::All | Rule::BindAll))
    }

    /// The normalised text of each rule, in the order given: what the API echoes back.
    pub fn rules(&self) -> &[String] {
        &self.text
    }
}

impl TryFrom<Vec<String>> for Acl {
    type Error = AclError;

    fn try_from(rules: Vec<String>) -> Result<Self, Self::Error> {
        Acl::parse(&rules)
    }
}

impl From<Acl> for Vec<String> {
    fn from(acl: Acl) -> Self {
        acl.text
    }
}

/// Cut `s` to at most `max` bytes on a char boundary, so error messages stay bounded.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    s.get(..end).unwrap_or_default()
}

fn parse_rule(raw: &str) -> Result<Rule, RuleError> {
    // Length first, so nothing below ever walks an oversized string twice.
    if raw.len() > MAX_RULE_LEN {
        return Err(RuleError::TooLong {
            len: raw.len(),
            max: MAX_RULE_LEN,
        });
    }
    if raw.is_empty() {
        return Err(RuleError::Empty);
    }
    // No trimming: a rule with stray whitespace is almost certainly a paste
    // error, and silently fixing it would echo back something never sent.
    if raw.chars().any(char::is_whitespace) {
        return Err(RuleError::Whitespace);
    }
    if raw == "*" {
        return Ok(Rule::All);
    }
    let Some(body) = raw.strip_prefix(BIND_PREFIX) else {
        // Name the kind the caller wrote so "listen:x" reads as a kind problem,
        // and a bare "example.com" as a missing "bind:".
        let kind = raw.split_once(':').map_or(raw, |(k, _)| k);
        return Err(RuleError::UnknownKind {
            kind: kind.to_owned(),
        });
    };
    parse_bind_target(body)
}

fn parse_bind_target(body: &str) -> Result<Rule, RuleError> {
    if body.is_empty() {
        return Err(RuleError::EmptyTarget);
    }
    if body == "*" {
        return Ok(Rule::BindAll);
    }
    // '=' marks a label, since neither domains nor ports can contain it; then
    // ':' marks an address, since domains cannot contain it either.
    if body.contains('=') {
        let (key, value) = split_label(body)?;
        return Ok(Rule::Label {
            key: label_pattern(key, "key")?,
            value: label_pattern(value, "value")?,
        });
    }
    if body.contains(':') {
        let (host, port) = split_address(body)?;
        if host.contains('*') {
            return Err(RuleError::MisplacedWildcard);
        }
        let host = host.to_ascii_lowercase();
        validate_domain(&host)?;
        return Ok(Rule::Address { host, port });
    }
    let lower = body.to_ascii_lowercase();
    match lower.strip_prefix("*.") {
        Some(suffix) => {
            if suffix.contains('*') {
                return Err(RuleError::MisplacedWildcard);
            }
            validate_domain(suffix)?;
            Ok(Rule::WildcardDomain(suffix.to_owned()))
        }
        None => {
            if lower.contains('*') {
                return Err(RuleError::MisplacedWildcard);
            }
            validate_domain(&lower)?;
            Ok(Rule::Domain(lower))
        }
    }
}

fn split_label(body: &str) -> Result<(&str, &str), RuleError> {
    match body.split_once('=') {
        Some((_, value)) if value.contains('=') => Err(RuleError::LabelEquals),
        Some(pair) => Ok(pair),
        None => Err(RuleError::LabelEquals),
    }
}

fn split_address(body: &str) -> Result<(&str, u16), RuleError> {
    let Some((host, port)) = body.split_once(':') else {
        return Err(RuleError::AddressColons);
    };
    if port.contains(':') {
        return Err(RuleError::AddressColons);
    }
    if host.is_empty() {
        return Err(RuleError::EmptyAddressHost);
    }
    Ok((host, parse_port(port)?))
}

fn parse_port(port: &str) -> Result<u16, RuleError> {
    let bad = || RuleError::InvalidPort {
        port: port.to_owned(),
    };
    // Digits only (u16::from_str would accept a leading '+') and no leading
    // zero, so each port has exactly one spelling and duplicates are detectable.
    if port.is_empty() || port.starts_with('0') || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    port.parse::<u16>().map_err(|_| bad())
}

fn label_pattern(text: &str, part: &'static str) -> Result<LabelPattern, RuleError> {
    if text == "*" {
        return Ok(LabelPattern::Any);
    }
    if text.contains('*') {
        return Err(RuleError::MisplacedWildcard);
    }
    validate_label_part(text, part)?;
    Ok(LabelPattern::Exact(text.to_owned()))
}

fn validate_label_part(text: &str, part: &'static str) -> Result<(), RuleError> {
    if text.is_empty() {
        return Err(RuleError::EmptyLabelPart { part });
    }
    if text.len() > MAX_LABEL_PART_LEN {
        return Err(RuleError::LabelPartTooLong {
            part,
            len: text.len(),
            max: MAX_LABEL_PART_LEN,
        });
    }
    if !text.bytes().all(is_label_byte) {
        return Err(RuleError::LabelPartCharset {
            part,
            text: text.to_owned(),
        });
    }
    Ok(())
}

/// Label charset: ASCII letters, digits, '.', '-' and '_'. Underscore is
/// included because ngrok's own label values (e.g. `edge=edghts_2Ab...`) use it.
fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// RFC 1123 host name check on an already-lowercased name without a trailing dot.
fn validate_domain(domain: &str) -> Result<(), RuleError> {
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(RuleError::DomainTooLong {
            len: domain.len(),
            max: MAX_DOMAIN_LEN,
        });
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(RuleError::EmptyDomainLabel);
        }
        if label.len() > MAX_DOMAIN_LABEL_LEN {
            return Err(RuleError::DomainLabelTooLong {
                label: label.to_owned(),
                len: label.len(),
                max: MAX_DOMAIN_LABEL_LEN,
            });
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(RuleError::DomainLabelCharset {
                label: label.to_owned(),
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(RuleError::DomainLabelHyphen {
                label: label.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(rules: &[&str]) -> AclError {
        match Acl::parse(rules) {
            Ok(acl) => panic!("rules {rules:?} unexpectedly parsed as {:?}", acl.rules()),
            Err(e) => e,
        }
    }

    fn rule_err(rule: &str) -> RuleError {
        match parse_err(&[rule]) {
            AclError::InvalidRule {
                index: 0, reason, ..
            } => reason,
            other => panic!("rule {rule:?}: unexpected error {other:?}"),
        }
    }

    #[test]
    fn parse_error_table() {
        let long_label = "a".repeat(64);
        let long_domain = format!("{}.com", ["a".repeat(63).as_str(); 4].join("."));
        let long_key = format!("bind:{}=v", "k".repeat(256));
        let long_value = format!("bind:k={}", "v".repeat(256));
        let ok_key = format!("bind:{}=v", "k".repeat(255));
        let cases: Vec<(String, RuleError)> = vec![
            ("".into(), RuleError::Empty),
            (
                "listen:x".into(),
                RuleError::UnknownKind {
                    kind: "listen".into(),
                },
            ),
            (
                "BIND:example.com".into(),
                RuleError::UnknownKind {
                    kind: "BIND".into(),
                },
            ),
            (
                "example.com".into(),
                RuleError::UnknownKind {
                    kind: "example.com".into(),
                },
            ),
            (
                "bind".into(),
                RuleError::UnknownKind {
                    kind: "bind".into(),
                },
            ),
            ("**".into(), RuleError::UnknownKind { kind: "**".into() }),
            (" bind:example.com".into(), RuleError::Whitespace),
            ("bind:example.com ".into(), RuleError::Whitespace),
            ("bind:exa mple.com".into(), RuleError::Whitespace),
            ("bind:example.com\n".into(), RuleError::Whitespace),
            ("bind:\texample.com".into(), RuleError::Whitespace),
            ("bind:".into(), RuleError::EmptyTarget),
            ("bind:a.*.com".into(), RuleError::MisplacedWildcard),
            ("bind:*foo.com".into(), RuleError::MisplacedWildcard),
            ("bind:foo.*".into(), RuleError::MisplacedWildcard),
            ("bind:*.*.example.com".into(), RuleError::MisplacedWildcard),
            ("bind:**".into(), RuleError::MisplacedWildcard),
            ("bind:*.".into(), RuleError::EmptyDomainLabel),
            ("bind:*:80".into(), RuleError::MisplacedWildcard),
            (
                "bind:*.tcp.ngrok.io:80".into(),
                RuleError::MisplacedWildcard,
            ),
            ("bind:k*=v".into(), RuleError::MisplacedWildcard),
            ("bind:k=v*".into(), RuleError::MisplacedWildcard),
            ("bind:a..com".into(), RuleError::EmptyDomainLabel),
            ("bind:.example.com".into(), RuleError::EmptyDomainLabel),
            ("bind:example.com.".into(), RuleError::EmptyDomainLabel),
            (
                format!("bind:{long_label}.com"),
                RuleError::DomainLabelTooLong {
                    label: long_label.clone(),
                    len: 64,
                    max: 63,
                },
            ),
            (
                format!("bind:{long_domain}"),
                RuleError::DomainTooLong {
                    len: long_domain.len(),
                    max: 253,
                },
            ),
            (
                "bind:ex_ample.com".into(),
                RuleError::DomainLabelCharset {
                    label: "ex_ample".into(),
                },
            ),
            (
                "bind:exämple.com".into(),
                RuleError::DomainLabelCharset {
                    label: "exämple".into(),
                },
            ),
            (
                "bind:-example.com".into(),
                RuleError::DomainLabelHyphen {
                    label: "-example".into(),
                },
            ),
            (
                "bind:example-.com".into(),
                RuleError::DomainLabelHyphen {
                    label: "example-".into(),
                },
            ),
            ("bind:host:1:2".into(), RuleError::AddressColons),
            ("bind:::1".into(), RuleError::AddressColons),
            ("bind:[::1]:22".into(), RuleError::AddressColons),
            (":80".into(), RuleError::UnknownKind { kind: "".into() }),
            ("bind::80".into(), RuleError::EmptyAddressHost),
            (
                "bind:host:".into(),
                RuleError::InvalidPort { port: "".into() },
            ),
            (
                "bind:host:0".into(),
                RuleError::InvalidPort { port: "0".into() },
            ),
            (
                "bind:host:080".into(),
                RuleError::InvalidPort { port: "080".into() },
            ),
            (
                "bind:host:65536".into(),
                RuleError::InvalidPort {
                    port: "65536".into(),
                },
            ),
            (
                "bind:host:+80".into(),
                RuleError::InvalidPort { port: "+80".into() },
            ),
            (
                "bind:host:http".into(),
                RuleError::InvalidPort {
                    port: "http".into(),
                },
            ),
            (
                "bind:bad_host:80".into(),
                RuleError::DomainLabelCharset {
                    label: "bad_host".into(),
                },
            ),
            ("bind:a=b=c".into(), RuleError::LabelEquals),
            ("bind:=v".into(), RuleError::EmptyLabelPart { part: "key" }),
            (
                "bind:k=".into(),
                RuleError::EmptyLabelPart { part: "value" },
            ),
            ("bind:=".into(), RuleError::EmptyLabelPart { part: "key" }),
            (
                "bind:k/x=v".into(),
                RuleError::LabelPartCharset {
                    part: "key",
                    text: "k/x".into(),
                },
            ),
            (
                "bind:k=v:1".into(),
                RuleError::LabelPartCharset {
                    part: "value",
                    text: "v:1".into(),
                },
            ),
            (
                long_key,
                RuleError::LabelPartTooLong {
                    part: "key",
                    len: 256,
                    max: 255,
                },
            ),
            (
                long_value,
                RuleError::LabelPartTooLong {
                    part: "value",
                    len: 256,
                    max: 255,
                },
            ),
        ];
        for (rule, want) in &cases {
            assert_eq!(&rule_err(rule), want, "rule {rule:?}");
        }
        // Limits that are inclusive must still parse.
        assert!(Acl::parse(&[ok_key]).is_ok());
    }

    #[test]
    fn rule_length_limit_is_checked_first() {
        let at_limit = format!("bind:{}=v", "k".repeat(MAX_RULE_LEN - "bind:=v".len()));
        assert_eq!(at_limit.len(), MAX_RULE_LEN);
        // Passes the length check; fails later on the 255-byte key limit instead.
        assert!(matches!(
            rule_err(&at_limit),
            RuleError::LabelPartTooLong { .. }
        ));
        let over = format!("{at_limit}x");
        assert_eq!(rule_err(&over), RuleError::TooLong { len: 513, max: 512 });
        // Even whitespace-laden junk reports length, and the echoed rule is bounded.
        let junk = " ".repeat(5000);
        match parse_err(&[junk.as_str()]) {
            AclError::InvalidRule { rule, reason, .. } => {
                assert_eq!(rule.len(), MAX_RULE_LEN);
                assert_eq!(
                    reason,
                    RuleError::TooLong {
                        len: 5000,
                        max: 512
                    }
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        // Truncation never splits a multi-byte character.
        let wide = "é".repeat(300);
        match parse_err(&[wide.as_str()]) {
            AclError::InvalidRule { rule, .. } => assert_eq!(rule.len(), 512),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn longest_valid_domain_is_accepted() {
        // 63+1+63+1+63+1+61 = 253 characters.
        let d = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(d.len(), 253);
        let acl = Acl::parse(&[format!("bind:{d}")]).unwrap();
        assert_eq!(acl.rules(), [format!("bind:{d}")]);
        assert!(Acl::parse(&[format!("bind:{d}x")]).is_err());
    }

    #[test]
    fn error_index_points_at_first_bad_rule() {
        let err = parse_err(&["bind:ok.com", "bind:fine.org", "listen:x", "bind:a..b"]);
        assert_eq!(
            err,
            AclError::InvalidRule {
                index: 2,
                rule: "listen:x".into(),
                reason: RuleError::UnknownKind {
                    kind: "listen".into()
                },
            }
        );
        assert_eq!(
            err.to_string(),
            "ACL rule at index 2 (\"listen:x\") is invalid: unknown rule kind \"listen\"; \
             the only rule kind is \"bind\" (as in \"bind:example.com\"), or \"*\" alone"
        );
    }

    #[test]
    fn too_many_rules() {
        let rules: Vec<String> = (0..=MAX_RULES)
            .map(|i| format!("bind:h{i}.example.com"))
            .collect();
        assert_eq!(
            Acl::parse(&rules),
            Err(AclError::TooManyRules {
                count: 101,
                max: 100
            })
        );
        let acl = Acl::parse(&rules[..MAX_RULES]).unwrap();
        assert_eq!(acl.rules().len(), MAX_RULES);
    }

    #[test]
    fn duplicates_are_refused_after_normalisation() {
        assert_eq!(
            parse_err(&["bind:a.com", "bind:b.com", "bind:A.COM"]),
            AclError::DuplicateRule {
                index: 2,
                first_index: 0,
                rule: "bind:a.com".into(),
            }
        );
        assert!(matches!(
            parse_err(&["*", "*"]),
            AclError::DuplicateRule {
                index: 1,
                first_index: 0,
                ..
            }
        ));
        assert!(matches!(
            parse_err(&["bind:*.X.com", "bind:*.x.com"]),
            AclError::DuplicateRule { index: 1, .. }
        ));
        // Labels are case-sensitive, so these differ and both stay.
        let acl = Acl::parse(&["bind:k=V", "bind:k=v"]).unwrap();
        assert_eq!(acl.rules(), ["bind:k=V", "bind:k=v"]);
        // `*` and `bind:*` are distinct rules even though both permit everything.
        assert!(Acl::parse(&["*", "bind:*"]).is_ok());
        let err = parse_err(&["bind:a.com", "bind:A.com"]);
        assert_eq!(
            err.to_string(),
            "ACL rule at index 1 (\"bind:a.com\") duplicates the rule at index 0; list each rule once"
        );
    }

    #[test]
    fn rules_are_normalised_and_ordered() {
        let acl = Acl::parse(&[
            "bind:Example.NGROK.io",
            "bind:*.Example.COM",
            "bind:1.TCP.ngrok.io:12345",
            "bind:*=Example",
            "bind:Env=*",
            "bind:*",
            "*",
        ])
        .unwrap();
        assert_eq!(
            acl.rules(),
            [
                "bind:example.ngrok.io",
                "bind:*.example.com",
                "bind:1.tcp.ngrok.io:12345",
                "bind:*=Example",
                "bind:Env=*",
                "bind:*",
                "*",
            ]
        );
    }

    #[test]
    fn unrestricted() {
        assert!(Acl::empty().is_unrestricted());
        assert!(Acl::default().is_unrestricted());
        assert!(Acl::parse::<&str>(&[]).unwrap().is_unrestricted());
        assert!(Acl::parse(&["*"]).unwrap().is_unrestricted());
        assert!(Acl::parse(&["bind:*"]).unwrap().is_unrestricted());
        assert!(Acl::parse(&["bind:a.com", "*"]).unwrap().is_unrestricted());
        assert!(!Acl::parse(&["bind:a.com"]).unwrap().is_unrestricted());
        assert!(!Acl::parse(&["bind:*=*"]).unwrap().is_unrestricted());
        assert!(!Acl::parse(&["bind:*.com"]).unwrap().is_unrestricted());
        assert!(Acl::empty().rules().is_empty());
    }

    #[test]
    fn serde_round_trip_is_the_rule_list() {
        let acl = Acl::parse(&["bind:A.example.com", "bind:k=v"]).unwrap();
        let json = serde_json::to_string(&acl).unwrap();
        assert_eq!(json, r#"["bind:a.example.com","bind:k=v"]"#);
        let back: Acl = serde_json::from_str(&json).unwrap();
        assert_eq!(back, acl);
        let bytes = postcard::to_allocvec(&acl).unwrap();
        let back: Acl = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, acl);
        // Loading re-validates, so a tampered store cannot smuggle in a bad rule.
        let err = serde_json::from_str::<Acl>(r#"["bind:a..b"]"#).unwrap_err();
        assert!(err.to_string().contains("index 0"), "{err}");
        assert_eq!(serde_json::to_string(&Acl::empty()).unwrap(), "[]");
    }

    #[test]
    fn error_messages_are_sentences() {
        let msgs = [
            rule_err("bind:host:0").to_string(),
            rule_err("bind:a.*.com").to_string(),
            rule_err("").to_string(),
            parse_err(&["bind:exa mple.com"]).to_string(),
        ];
        assert_eq!(
            msgs[0],
            "the port \"0\" must be a whole number from 1 to 65535 without leading zeros"
        );
        assert!(msgs[1].contains("wildcard"));
        assert_eq!(msgs[2], "the rule is empty");
        assert_eq!(
            msgs[3],
            "ACL rule at index 0 (\"bind:exa mple.com\") is invalid: the rule contains whitespace, which is never allowed"
        );
    }
}
