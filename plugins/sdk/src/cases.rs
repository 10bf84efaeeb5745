//! Decision-case files, run natively (feature `cases`) and by `latchkey policy test`
//! (which combines a whole policies folder as the server does, and reports coverage).
//!
//! A file is either a JSON array of `{"name", "request", "expect"}`, where `request` is a
//! whole [`Request`] in serde's JSON form (what `POST /authorize` with `explain: true`
//! returns), or the API-shaped format, with fixtures declared once:
//!
//! ```json
//! {
//!   "account": "ac_acme",
//!   "time": "2026-12-01T10:00:00Z",
//!   "tenants": ["contoso"],
//!   "catalog": ["tickets.close"],
//!   "roles": {"Helpdesk": ["computers.view", "tickets.close"]},
//!   "principals": {
//!     "tess": {"assignments": [{"role": "Technician", "tenant": "contoso"}]},
//!     "ci": {"kind": "bot", "credential": {"kind": "api_key", "scopes": ["iam.*"]}}
//!   },
//!   "cases": [
//!     {"name": "a technician controls its tenant's computers", "principal": "tess",
//!      "action": "computers.remote_control",
//!      "resource": {"type": "computer", "id": "c-1", "tenant_id": "contoso"},
//!      "expect": "allow", "policy": "tenant-roles", "reason": "Technician"}
//!   ]
//! }
//! ```
//!
//! A case is what `POST /authorize` takes (`principal`, `action`, `resource` with `type`,
//! `id`, `tenant_id`, `owner_id`, `attributes`, and `context`) plus `expect` (`allow`,
//! `deny`, or a module's own `not_applicable`) and optionally the deciding `policy` and a
//! substring of its `reason`. Its `principal` is a fixture's name (or `{"id": name}`, as
//! the API names principals) or a description of its own; a resource's `tenant_id` and
//! `owner_id` may name a tenant or principal fixture (their ids are `tnt_<name>`,
//! `usr_<name>`, `bot_<name>` unless given). A case may instead give a whole `request`,
//! for a request the host would never build.
//!
//! Defaults: account `ac_cases`; time 2026-01-01T12:00:00Z (a case's `context.time`
//! wins, then the file's `time`); a principal is a user with the least account roles
//! (developer and team read-only, no billing, not an administrator; `"member": false`
//! for a user with no membership), no assignments, no second factor, no credential and
//! no address; a credential's id is `<prefix>_<principal>`; a resource has id `""`, the
//! file's account, no tenant, owner or attributes. The catalog is the built-in one
//! followed by `catalog`, in order, as an account's is; a role not in `roles` is a
//! built-in role; an application action's permission index is its place in the catalog.

use std::borrow::ToOwned;
use std::collections::BTreeMap;
use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use latchkey_policy_abi::{self as abi, Outcome, Request, encode, view};
use serde::Deserialize;
use serde_json::Value;

use crate::Policy;

/// One case: a request and the answer it must get.
#[derive(Debug, Clone)]
pub struct Case {
    /// Names the case in failure reports.
    pub name: String,
    /// What is asked.
    pub request: Request,
    /// The outcome the policy must give.
    pub expect: Expect,
    /// The policy that must decide, if the case says.
    pub policy: Option<String>,
    /// A part of the reason the decision must give, if the case says.
    pub reason: Option<String>,
}

/// An expected outcome, spelled as in case files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// [`Outcome::Allow`].
    Allow,
    /// [`Outcome::Deny`].
    Deny,
    /// [`Outcome::NotApplicable`].
    NotApplicable,
}

impl Expect {
    /// The outcome this expectation names.
    pub fn outcome(self) -> Outcome {
        match self {
            Expect::Allow => Outcome::Allow,
            Expect::Deny => Outcome::Deny,
            Expect::NotApplicable => Outcome::NotApplicable,
        }
    }
}

/// Run every case through `P`; `Ok(number of cases)` when all pass, otherwise `Err` with
/// one line per mismatch (name, expected, got, reason), so a failure lists them all.
pub fn run<P: Policy>(json: &str) -> Result<usize, String> {
    let cases = parse(json).map_err(|e| format!("case file does not parse: {e}"))?;
    let mut failures = Vec::new();
    for case in &cases {
        // Through the bytes, as a module reads them: encoded as the host does, decoded
        // into the borrowed view.
        let bytes = encode(&case.request)
            .map_err(|e| format!("{}: the request does not encode: {e}", case.name))?;
        let request = view::Request::decode(&bytes)
            .map_err(|e| format!("{}: the request does not decode: {e:?}", case.name))?;
        let decision = P::decide(&request);
        if decision.outcome != case.expect.outcome() {
            failures.push(format!(
                "{}: expected {:?}, got {:?} ({})",
                case.name, case.expect, decision.outcome, decision.reason
            ));
        } else if let Some(part) = case.reason.as_deref()
            && !decision.reason.contains(part)
        {
            failures.push(format!(
                "{}: expected a reason containing {part:?}, got {:?}",
                case.name, decision.reason
            ));
        }
        if decision.reason.is_empty() {
            failures.push(format!("{}: the decision has no reason", case.name));
        }
    }
    if failures.is_empty() {
        Ok(cases.len())
    } else {
        Err(format!(
            "{} of {} cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        ))
    }
}

/// Read a case file of either format into cases with whole requests; the error names
/// where the file is wrong.
pub fn parse(json: &str) -> Result<Vec<Case>, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    match value {
        Value::Array(entries) => entries
            .iter()
            .enumerate()
            .map(|(at, entry)| whole(at, entry))
            .collect(),
        other => CaseFile::deserialize(other)
            .map_err(|e| e.to_string())?
            .cases(),
    }
}

/// Entry `at` of `cases`, a case with a whole request.
fn whole(at: usize, entry: &Value) -> Result<Case, String> {
    let case = RequestCase::deserialize(entry).map_err(|e| format!("cases[{at}]: {e}"))?;
    Ok(Case {
        name: case.name,
        request: case.request,
        expect: case.expect,
        policy: case.policy,
        reason: case.reason,
    })
}

/// A case of the original format: a whole ABI request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestCase {
    name: String,
    request: Request,
    expect: Expect,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// When a case and its file say nothing: 2026-01-01T12:00:00Z.
const DEFAULT_TIME: &str = "2026-01-01T12:00:00Z";

/// The API-shaped format (see the module).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default = "default_account")]
    account: String,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    tenants: Vec<String>,
    #[serde(default)]
    catalog: Vec<String>,
    #[serde(default)]
    roles: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    principals: BTreeMap<String, PrincipalSpec>,
    /// Each a [`CaseSpec`], or a [`RequestCase`] (one with a whole `request`).
    cases: Vec<Value>,
}

fn yes() -> bool {
    true
}

fn default_account() -> String {
    "ac_cases".to_owned()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalSpec {
    #[serde(default)]
    kind: PrincipalKindSpec,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    roles: Option<RolesSpec>,
    /// `false`: a user with no membership in the account (no account roles).
    #[serde(default = "yes")]
    member: bool,
    #[serde(default)]
    assignments: Vec<AssignmentSpec>,
    #[serde(default)]
    mfa: MfaSpec,
    #[serde(default)]
    credential: Option<CredentialSpec>,
    #[serde(default)]
    source_ip: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PrincipalKindSpec {
    #[default]
    User,
    Bot,
    System,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentSpec {
    role: String,
    /// A tenant fixture's name or a tenant id; none: every tenant.
    #[serde(default)]
    tenant: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MfaSpec {
    #[serde(default)]
    enrolled: bool,
    #[serde(default)]
    verified: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialSpec {
    kind: CredentialKindSpec,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    personal: bool,
    #[serde(default)]
    acl: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CredentialKindSpec {
    Authtoken,
    ApiKey,
    SshKey,
    Session,
}

/// A case's principal: a fixture by name, or a description of its own.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PrincipalRef {
    Name(String),
    Id(PrincipalId),
    Described(PrincipalSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalId {
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: String,
    /// Another account's object (the file's account when absent).
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    owner_id: Option<String>,
    #[serde(default)]
    attributes: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    name: String,
    principal: PrincipalRef,
    action: String,
    resource: ResourceSpec,
    #[serde(default)]
    context: serde_json::Map<String, Value>,
    expect: Expect,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// A JSON value as the text a policy sees: strings as they are, anything else as JSON
/// (as `POST /authorize` passes them).
fn as_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

impl CaseFile {
    /// Every case with its request built as the host would build it.
    fn cases(self) -> Result<Vec<Case>, String> {
        let time = |text: &str, field: &str| {
            rfc3339_millis(text).ok_or_else(|| format!("{field}: {text:?} is not an RFC 3339 time"))
        };
        let default_time = time(self.time.as_deref().unwrap_or(DEFAULT_TIME), "time")?;
        let catalog: Vec<&str> = abi::BUILTIN_CATALOG
            .iter()
            .copied()
            .chain(self.catalog.iter().map(String::as_str))
            .collect();
        for (role, permissions) in &self.roles {
            if let Some(unknown) = permissions.iter().find(|p| !catalog.contains(&p.as_str())) {
                return Err(format!(
                    "roles.{role}: {unknown} is not in the catalog (the built-in one and `catalog`)"
                ));
            }
        }
        let mut cases = Vec::with_capacity(self.cases.len());
        for (at, entry) in self.cases.iter().enumerate() {
            if entry.get("request").is_some() {
                cases.push(whole(at, entry)?);
                continue;
            }
            let case = CaseSpec::deserialize(entry).map_err(|e| format!("cases[{at}]: {e}"))?;
            let spec = match &case.principal {
                PrincipalRef::Name(name) | PrincipalRef::Id(PrincipalId { id: name }) => (
                    name.as_str(),
                    self.principals.get(name).ok_or_else(|| {
                        format!(
                            "case {:?}: no principal fixture is named {name:?}",
                            case.name
                        )
                    })?,
                ),
                PrincipalRef::Described(spec) => ("case", spec),
            };
            let principal = self.principal(spec.0, spec.1, &catalog)?;
            let mut context = case.context.clone();
            let time_ms = match context.remove("time") {
                None => default_time,
                Some(Value::String(text)) => time(&text, "context.time")?,
                Some(_) => {
                    return Err(format!(
                        "case {:?}: context.time must be an RFC 3339 time",
                        case.name
                    ));
                }
            };
            let resource = &case.resource;
            let permission = if case.action.starts_with("iam.") || case.action == "agent.bind" {
                None
            } else {
                catalog
                    .iter()
                    .position(|p| *p == case.action)
                    .and_then(|i| u32::try_from(i).ok())
            };
            let request = Request {
                principal,
                action: case.action.clone(),
                resource: abi::Resource {
                    kind: resource.kind.clone(),
                    id: resource.id.clone(),
                    account: resource
                        .account
                        .clone()
                        .unwrap_or_else(|| self.account.clone()),
                    tenant: resource.tenant_id.as_deref().map(|t| self.tenant_id(t)),
                    owner: resource.owner_id.as_deref().map(|o| self.owner_id(o)),
                    permission,
                    attributes: resource
                        .attributes
                        .clone()
                        .into_iter()
                        .map(|(k, v)| (k, as_text(v)))
                        .collect(),
                },
                context: abi::Context {
                    time_ms,
                    values: context.into_iter().map(|(k, v)| (k, as_text(v))).collect(),
                },
            };
            cases.push(Case {
                name: case.name.clone(),
                request,
                expect: case.expect,
                policy: case.policy.clone(),
                reason: case.reason.clone(),
            });
        }
        Ok(cases)
    }

    /// A tenant fixture's id (`tnt_<name>`), or the text itself when it names none.
    fn tenant_id(&self, text: &str) -> String {
        if self.tenants.iter().any(|t| t == text) {
            format!("tnt_{text}")
        } else {
            text.to_owned()
        }
    }

    /// A principal fixture's id, or the text itself when it names none.
    fn owner_id(&self, text: &str) -> String {
        self.principals
            .get(text)
            .map_or_else(|| text.to_owned(), |spec| principal_id(text, spec))
    }

    /// The principal `spec` (named `name`) as the policies see it.
    fn principal(
        &self,
        name: &str,
        spec: &PrincipalSpec,
        catalog: &[&str],
    ) -> Result<abi::Principal, String> {
        let kind = match spec.kind {
            PrincipalKindSpec::User => abi::PrincipalKind::User,
            PrincipalKindSpec::Bot => abi::PrincipalKind::Bot,
            PrincipalKindSpec::System => abi::PrincipalKind::System,
        };
        let roles = match spec.kind {
            PrincipalKindSpec::User if !spec.member => None,
            PrincipalKindSpec::User => {
                let roles = spec.roles.unwrap_or_default();
                if let Some(misfit) = roles.misfit() {
                    return Err(format!("principal {name}: {misfit}"));
                }
                Some(roles.for_policies())
            }
            _ if spec.roles.is_some() => {
                return Err(format!("principal {name}: only a user has account roles"));
            }
            _ => None,
        };
        let mut assignments = Vec::with_capacity(spec.assignments.len());
        for assignment in &spec.assignments {
            let tenant = assignment.tenant.as_deref().map(|t| self.tenant_id(t));
            let (builtin, permissions) = match self.roles.get(&assignment.role) {
                Some(granted) => {
                    let mut bits = vec![0u64; catalog.len().div_ceil(64)];
                    for (index, entry) in catalog.iter().enumerate() {
                        if granted.iter().any(|g| g == entry)
                            && let Some(word) = bits.get_mut(index / 64)
                        {
                            *word |= 1 << (index % 64);
                        }
                    }
                    (false, bits)
                }
                None if abi::BUILTIN_ROLES.contains(&assignment.role.as_str()) => {
                    (true, Vec::new())
                }
                None => {
                    return Err(format!(
                        "principal {name}: {:?} is neither a built-in role ({}) nor one of `roles`",
                        assignment.role,
                        abi::BUILTIN_ROLES.join(", ")
                    ));
                }
            };
            assignments.push(abi::Assignment {
                role: assignment.role.clone(),
                builtin,
                tenant,
                permissions,
            });
        }
        let id = principal_id(name, spec);
        let credential = spec.credential.as_ref().map(|c| {
            let (kind, prefix) = match c.kind {
                CredentialKindSpec::Authtoken => (abi::CredentialKind::Authtoken, "cr"),
                CredentialKindSpec::ApiKey => (abi::CredentialKind::ApiKey, "ak"),
                CredentialKindSpec::SshKey => (abi::CredentialKind::SshKey, "sshcr"),
                CredentialKindSpec::Session => (abi::CredentialKind::Session, "ses"),
            };
            abi::CredentialInfo {
                kind,
                id: c.id.clone().unwrap_or_else(|| format!("{prefix}_{name}")),
                personal: c.personal,
                acl: c.acl.clone(),
                scopes: c.scopes.clone(),
            }
        });
        Ok(abi::Principal {
            kind,
            id,
            account: self.account.clone(),
            roles,
            assignments,
            mfa: abi::Mfa {
                enrolled: spec.mfa.enrolled,
                verified: spec.mfa.verified,
            },
            credential,
            source_ip: spec.source_ip.map(|ip| match ip {
                std::net::IpAddr::V4(v4) => abi::IpAddress::V4(v4.octets()),
                std::net::IpAddr::V6(v6) => abi::IpAddress::V6(v6.octets()),
            }),
        })
    }
}

/// A fixture's id: its own, or `usr_<name>`, `bot_<name>`, `system`.
fn principal_id(name: &str, spec: &PrincipalSpec) -> String {
    spec.id.clone().unwrap_or_else(|| match spec.kind {
        PrincipalKindSpec::User => format!("usr_{name}"),
        PrincipalKindSpec::Bot => format!("bot_{name}"),
        PrincipalKindSpec::System => "system".to_owned(),
    })
}

/// A user's account roles in the API's spelling; an omitted one is the least.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesSpec {
    #[serde(default)]
    developer: Option<RoleValue>,
    #[serde(default)]
    team: Option<RoleValue>,
    #[serde(default)]
    billing: Option<RoleValue>,
    #[serde(default)]
    admin: bool,
}

/// Every role value of the API (`read_write`, `manager`, `access`, …), checked per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RoleValue {
    ReadWrite,
    ReadOnly,
    Manager,
    Invite,
    Access,
    None,
}

impl RolesSpec {
    fn for_policies(self) -> abi::AccountRoles {
        abi::AccountRoles {
            developer: match self.developer {
                Some(RoleValue::ReadWrite) => abi::Developer::ReadWrite,
                _ => abi::Developer::ReadOnly,
            },
            team: match self.team {
                Some(RoleValue::Manager) => abi::Team::Manager,
                Some(RoleValue::Invite) => abi::Team::Invite,
                _ => abi::Team::ReadOnly,
            },
            billing: match self.billing {
                Some(RoleValue::Access) => abi::Billing::Access,
                _ => abi::Billing::None,
            },
            admin: self.admin,
        }
    }

    /// A value that is not one of its role's (`developer: manager`).
    fn misfit(self) -> Option<String> {
        use RoleValue::{Access, Invite, Manager, None, ReadOnly, ReadWrite};
        let fits = [
            ("developer", self.developer, &[ReadWrite, ReadOnly][..]),
            ("team", self.team, &[Manager, Invite, ReadOnly][..]),
            ("billing", self.billing, &[Access, None][..]),
        ];
        fits.into_iter().find_map(|(role, value, allowed)| {
            value
                .filter(|v| !allowed.contains(v))
                .map(|v| format!("roles.{role}: {v:?} is not a {role} role"))
        })
    }
}

/// Milliseconds since the epoch of an RFC 3339 date-time (`2026-12-01T09:30:00Z`,
/// `…T09:30:00.250+01:00`); `None` for anything else.
pub fn rfc3339_millis(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let digits = |from: usize, to: usize| -> Option<i64> {
        let part = text.get(from..to)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if bytes.len() < 20
        || separators.iter().any(|(at, c)| bytes.get(*at) != Some(c))
        || !matches!(bytes.get(10), Some(b'T' | b't'))
    {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let mut rest = text.get(19..)?;
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .filter(|end| *end > 0)?;
        let first3: String = fraction.chars().take(end.min(3)).collect();
        millis = first3.parse::<i64>().ok()? * 10_i64.pow(3 - u32::try_from(first3.len()).ok()?);
        rest = fraction.get(end..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes().get(3) != Some(&b':') {
                return None;
            }
            let (h, m) = (rest.get(1..3)?, rest.get(4..6)?);
            let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 60 + m) * 60_000
        }
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let days_in_month = *month_days.get(usize::try_from(month - 1).ok()?)?;
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second.min(59) * 1000 + millis - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_read_as_latchkey_writes_them() {
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_millis("2026-11-23T12:00:00Z"),
            Some(1_795_435_200_000)
        );
        assert_eq!(
            rfc3339_millis("2026-11-23T13:00:00.25+01:00"),
            Some(1_795_435_200_250)
        );
        assert_eq!(
            rfc3339_millis("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        for bad in [
            "2026-11-23",
            "2026-11-23 12:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T12:00:00",
            "2026-11-23T12:00:00+1:00",
            "2026-11-23T12:00:00.Z",
            "tomorrow",
        ] {
            assert_eq!(rfc3339_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_fixture_file_builds_the_requests_the_host_would() {
        let cases = parse(
            r#"{
              "tenants": ["contoso"],
              "catalog": ["tickets.close"],
              "roles": {"Helpdesk": ["computers.view", "tickets.close"]},
              "principals": {
                "tess": {"roles": {"developer": "read_write"},
                         "assignments": [{"role": "Helpdesk", "tenant": "contoso"},
                                         {"role": "Read-Only"}],
                         "credential": {"kind": "api_key", "scopes": ["tickets.*"]}}
              },
              "cases": [
                {"name": "n", "principal": "tess", "action": "tickets.close",
                 "resource": {"type": "ticket", "id": "t-1", "tenant_id": "contoso",
                              "owner_id": "tess", "attributes": {"urgent": true}},
                 "context": {"time": "2026-11-23T12:00:00Z", "ticket": "T-1"},
                 "expect": "allow", "policy": "p", "reason": "r"},
                {"name": "inline", "principal": {"kind": "bot"}, "action": "iam.account.get",
                 "resource": {"type": "account"}, "expect": "deny"}
              ]
            }"#,
        )
        .unwrap();
        let Some([first, inline]) = cases.get(..2) else {
            panic!("{cases:?}");
        };
        let request = &first.request;
        assert_eq!(request.principal.id, "usr_tess");
        assert_eq!(request.principal.account, "ac_cases");
        assert_eq!(
            request.principal.roles.map(|r| r.developer),
            Some(abi::Developer::ReadWrite)
        );
        let helpdesk = &request.principal.assignments[0];
        // computers.view is catalog entry 0, tickets.close the first added (28).
        assert_eq!(helpdesk.permissions, vec![1 | 1 << 28]);
        assert_eq!(helpdesk.tenant.as_deref(), Some("tnt_contoso"));
        assert!(request.principal.assignments[1].builtin);
        assert_eq!(
            request.principal.credential.as_ref().map(|c| c.id.as_str()),
            Some("ak_tess")
        );
        assert_eq!(request.resource.permission, Some(28));
        assert_eq!(request.resource.owner.as_deref(), Some("usr_tess"));
        assert_eq!(
            request.resource.attributes,
            vec![("urgent".into(), "true".into())]
        );
        assert_eq!(request.context.time_ms, 1_795_435_200_000);
        assert_eq!(
            request.context.values,
            vec![("ticket".into(), "T-1".into())]
        );
        assert_eq!(
            (first.policy.as_deref(), first.reason.as_deref()),
            (Some("p"), Some("r"))
        );
        assert_eq!(inline.request.principal.kind, abi::PrincipalKind::Bot);
        assert_eq!(inline.request.principal.roles, None);
        assert_eq!(inline.request.resource.permission, None);
        assert_eq!(inline.request.context.time_ms, 1_767_268_800_000);
    }

    #[test]
    fn a_wrong_fixture_is_named() {
        for (file, says) in [
            (
                r#"{"cases": [{"name": "n", "principal": "ghost", "action": "a.b", "resource": {"type": "x"}, "expect": "deny"}]}"#,
                "no principal fixture is named \"ghost\"",
            ),
            (
                r#"{"principals": {"p": {"assignments": [{"role": "Wizard"}]}}, "cases": [{"name": "n", "principal": "p", "action": "a.b", "resource": {"type": "x"}, "expect": "deny"}]}"#,
                "neither a built-in role",
            ),
            (
                r#"{"roles": {"R": ["nope.nope"]}, "cases": []}"#,
                "nope.nope is not in the catalog",
            ),
            (
                r#"{"principals": {"p": {"roles": {"developer": "manager"}}}, "cases": [{"name": "n", "principal": "p", "action": "a.b", "resource": {"type": "x"}, "expect": "deny"}]}"#,
                "not a developer role",
            ),
            (
                r#"{"cases": [{"name": "n", "principal": {"kind": "bot"}, "action": "a.b", "resource": {"type": "x", "tenant": "t"}, "expect": "deny"}]}"#,
                "cases[0]",
            ),
            (
                r#"{"cases": [{"name": "n", "principal": {"kind": "bot"}, "action": "a.b", "resource": {"type": "x"}, "context": {"time": "soon"}, "expect": "deny"}]}"#,
                "not an RFC 3339 time",
            ),
            (r#"{"tenant": [], "cases": []}"#, "unknown field `tenant`"),
        ] {
            let error = parse(file).unwrap_err();
            assert!(error.contains(says), "{file}: {error}");
        }
    }
}
