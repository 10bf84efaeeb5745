//! IP policies, their rules, and IP restrictions (ngrok's shapes and semantics).
//!
//! A restriction of a type (`dashboard`, `api`, `agent`, `endpoints`) attaches IP policies;
//! a source address passes it when it matches at least one `allow` rule and no `deny`
//! rule among all of the attached policies' rules (so a restriction whose policies allow
//! nothing refuses every address). Every restriction of a type must pass. One that is not
//! `enforced` only warns: the request goes through and the miss is reported.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::id::{AccountId, IpPolicyId, IpRestrictionId, IpRuleId};
use crate::domain::time::Timestamp;

/// What a rule does with the addresses it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Let them through.
    Allow,
    /// Refuse them, whatever else allows them.
    Deny,
}

/// What traffic a restriction governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestrictionType {
    /// Dashboard sessions.
    Dashboard,
    /// API requests with a bearer key.
    Api,
    /// Agents (authtokens presented to `/verify` with a `source_ip`).
    Agent,
    /// Endpoints: recorded for ngrok compatibility; latchkey serves no endpoints.
    Endpoints,
}

impl RestrictionType {
    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RestrictionType::Dashboard => "dashboard",
            RestrictionType::Api => "api",
            RestrictionType::Agent => "agent",
            RestrictionType::Endpoints => "endpoints",
        }
    }
}

/// A named set of rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpPolicy {
    /// `ipp_…`
    pub id: IpPolicyId,
    /// Its account.
    pub account: AccountId,
    /// When it was made.
    pub created_at: Timestamp,
    /// At most 255 bytes.
    pub description: String,
    /// At most 4096 bytes.
    pub metadata: String,
}

/// One CIDR with an action, in one policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpPolicyRule {
    /// `ipr_…`
    pub id: IpRuleId,
    /// Its account.
    pub account: AccountId,
    /// The policy it belongs to, fixed at creation.
    pub policy: IpPolicyId,
    /// When it was made.
    pub created_at: Timestamp,
    /// At most 255 bytes.
    pub description: String,
    /// At most 4096 bytes.
    pub metadata: String,
    /// The network, normalised (host bits cleared).
    pub cidr: IpNet,
    /// Allow or deny.
    pub action: RuleAction,
}

/// Policies applied to one type of traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRestriction {
    /// `ipx_…`
    pub id: IpRestrictionId,
    /// Its account.
    pub account: AccountId,
    /// When it was made.
    pub created_at: Timestamp,
    /// At most 255 bytes.
    pub description: String,
    /// At most 4096 bytes.
    pub metadata: String,
    /// `false`: warn only.
    pub enforced: bool,
    /// The traffic it governs, fixed at creation.
    pub kind: RestrictionType,
    /// The attached policies (at least one).
    pub policies: Vec<IpPolicyId>,
}

/// Check free-text fields as every resource does.
pub fn validate_text(description: &str, metadata: &str) -> Result<(), DomainError> {
    if description.len() > 255 {
        return Err(DomainError::invalid(
            "description",
            "must be at most 255 bytes",
        ));
    }
    if metadata.len() > 4096 {
        return Err(DomainError::invalid(
            "metadata",
            "must be at most 4096 bytes",
        ));
    }
    Ok(())
}

/// A rule's network: CIDR notation (`10.0.0.0/8`, `2001:db8::/32`) or one address.
pub fn parse_cidr(text: &str) -> Result<IpNet, DomainError> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| {
            DomainError::invalid(
                "cidr",
                format!("{text:?} is not an IP network in CIDR notation (e.g. 10.0.0.0/8)"),
            )
        })
}

/// The attached policies of a restriction: at least one, no repeats.
pub fn validate_policies(policies: &[IpPolicyId]) -> Result<(), DomainError> {
    if policies.is_empty() {
        return Err(DomainError::invalid(
            "ip_policy_ids",
            "a restriction needs at least one IP policy",
        ));
    }
    if policies.len() > 64 {
        return Err(DomainError::invalid("ip_policy_ids", "at most 64 policies"));
    }
    let mut seen = policies.to_vec();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != policies.len() {
        return Err(DomainError::invalid(
            "ip_policy_ids",
            "a policy is listed twice",
        ));
    }
    Ok(())
}

/// One restriction, compiled for checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledRestriction {
    /// Which restriction.
    pub id: IpRestrictionId,
    /// Refuse, or only warn.
    pub enforced: bool,
    /// Every allow rule of its policies.
    pub allow: Vec<IpNet>,
    /// Every deny rule of its policies.
    pub deny: Vec<IpNet>,
}

impl CompiledRestriction {
    /// Whether `ip` passes: in some allow rule and in no deny rule.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&ip)) && !self.deny.iter().any(|n| n.contains(&ip))
    }
}

/// Every restriction of one type in one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gate {
    /// The restrictions.
    pub restrictions: Vec<CompiledRestriction>,
}

/// What a gate says about an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Passage {
    /// Every restriction admits it (or there are none).
    Allowed,
    /// Only warn-only restrictions refuse it: let it through and report these.
    Warned(Vec<IpRestrictionId>),
    /// An enforced restriction refuses it.
    Denied(IpRestrictionId),
}

impl Gate {
    /// Judge `ip`; an unknown address fails every restriction.
    pub fn check(&self, ip: Option<IpAddr>) -> Passage {
        let mut warned = Vec::new();
        for restriction in &self.restrictions {
            if ip.is_some_and(|ip| restriction.admits(ip)) {
                continue;
            }
            if restriction.enforced {
                return Passage::Denied(restriction.id);
            }
            warned.push(restriction.id);
        }
        if warned.is_empty() {
            Passage::Allowed
        } else {
            Passage::Warned(warned)
        }
    }
}

/// The gates of an account, by type; shared, rebuilt after every IP change.
pub type Gates = Arc<std::collections::HashMap<RestrictionType, Gate>>;

/// Compile the restrictions of one account from its records.
pub fn compile(
    restrictions: &[IpRestriction],
    rules: &[IpPolicyRule],
) -> std::collections::HashMap<RestrictionType, Gate> {
    let mut gates: std::collections::HashMap<RestrictionType, Gate> = Default::default();
    for restriction in restrictions {
        let of_policies = rules
            .iter()
            .filter(|rule| restriction.policies.contains(&rule.policy));
        let (mut allow, mut deny) = (Vec::new(), Vec::new());
        for rule in of_policies {
            match rule.action {
                RuleAction::Allow => allow.push(rule.cidr),
                RuleAction::Deny => deny.push(rule.cidr),
            }
        }
        gates
            .entry(restriction.kind)
            .or_default()
            .restrictions
            .push(CompiledRestriction {
                id: restriction.id,
                enforced: restriction.enforced,
                allow,
                deny,
            });
    }
    gates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        parse_cidr(text).unwrap()
    }

    fn restriction(enforced: bool, allow: &[&str], deny: &[&str]) -> CompiledRestriction {
        CompiledRestriction {
            id: IpRestrictionId(u128::from(enforced)),
            enforced,
            allow: allow.iter().map(|t| net(t)).collect(),
            deny: deny.iter().map(|t| net(t)).collect(),
        }
    }

    #[test]
    fn an_address_passes_when_some_allow_and_no_deny_matches() {
        let office = restriction(true, &["10.0.0.0/8", "2001:db8::/32"], &["10.9.0.0/16"]);
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(office.admits(ip("10.1.2.3")));
        assert!(!office.admits(ip("10.9.2.3")), "deny wins");
        assert!(!office.admits(ip("192.0.2.1")), "no allow: refused");
        assert!(office.admits(ip("2001:db8::1")));
        assert!(office.admits(ip("::ffff:10.1.2.3")), "mapped v4 is v4");
        assert!(!restriction(true, &[], &[]).admits(ip("10.1.2.3")));
    }

    #[test]
    fn enforced_restrictions_deny_and_warn_only_ones_report() {
        let ip = Some("192.0.2.1".parse().unwrap());
        let warn = restriction(false, &["10.0.0.0/8"], &[]);
        let enforce = restriction(true, &["10.0.0.0/8"], &[]);
        let gate = Gate {
            restrictions: vec![warn.clone()],
        };
        assert_eq!(gate.check(ip), Passage::Warned(vec![warn.id]));
        let gate = Gate {
            restrictions: vec![warn, enforce.clone()],
        };
        assert_eq!(gate.check(ip), Passage::Denied(enforce.id));
        assert_eq!(Gate::default().check(None), Passage::Allowed);
        assert_eq!(
            gate.check(None),
            Passage::Denied(enforce.id),
            "unknown: fail closed"
        );
    }

    #[test]
    fn cidrs_are_parsed_strictly_and_normalised() {
        assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(net("192.0.2.7").to_string(), "192.0.2.7/32");
        for bad in ["10.0.0.0/33", "10.0.0", "", "example.com", "::/129"] {
            assert!(parse_cidr(bad).is_err(), "{bad:?}");
        }
    }
}
