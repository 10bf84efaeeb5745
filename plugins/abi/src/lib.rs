//! ABI v1 between the latchkey host and its WASM policy modules.
//!
//! Both sides depend on this crate; it holds only data types and their encoding, so it is
//! `no_std` + `alloc` and builds for `wasm32-unknown-unknown`. A request and a decision
//! cross the module boundary as postcard bytes in the guest's exported memory. The calling
//! convention (exports, memory, limits) is described in `plugins/README.md`.
//!
//! **Frozen:** once released, nothing in v1 changes shape. A change is a new crate version
//! with a new [`ABI_VERSION`], and the host refuses a module whose version it does not
//! speak.

#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// The version a v1 module returns from `lk_abi_version`.
pub const ABI_VERSION: u32 = 1;

/// The built-in permission catalog; an entry's position is its index in permission bit
/// sets and in [`Resource::permission`]. Operators may extend the catalog: their entries
/// take the indices after these, which never move.
pub const BUILTIN_CATALOG: [&str; 28] = [
    "computers.view",
    "computers.add",
    "computers.edit",
    "computers.delete",
    "computers.run_maintenance",
    "computers.remote_control",
    "deployments.view",
    "deployments.create",
    "deployments.edit",
    "deployments.delete",
    "deployments.approve",
    "software.view",
    "software.add",
    "software.edit",
    "software.delete",
    "software.manage_versions",
    "software.request_install",
    "users.view",
    "users.add",
    "users.edit",
    "users.delete",
    "users.manage_roles",
    "system.view_settings",
    "system.edit_settings",
    "system.manage_integrations",
    "system.view_logs",
    "system.manage_licenses",
    "reports.view",
];

/// The catalog index of a built-in permission name.
pub fn builtin_permission(name: &str) -> Option<u32> {
    BUILTIN_CATALOG
        .iter()
        .position(|p| *p == name)
        .and_then(|i| u32::try_from(i).ok())
}

/// The built-in tenant roles (api.md), in the order they are listed.
pub const BUILTIN_ROLES: [&str; 5] = [
    GLOBAL_ADMINISTRATOR,
    TENANT_ADMINISTRATOR,
    TECHNICIAN,
    READ_ONLY,
    SELF_SERVICE,
];
/// Every catalog permission; all tenants only.
pub const GLOBAL_ADMINISTRATOR: &str = "Global Administrator";
/// Every catalog permission except `system.*`; one tenant.
pub const TENANT_ADMINISTRATOR: &str = "Tenant Administrator";
/// Day-to-day work on computers and deployments; one tenant or all.
pub const TECHNICIAN: &str = "Technician";
/// Every `*.view` permission, `system.view_settings`, `system.view_logs`; one tenant or all.
pub const READ_ONLY: &str = "Read-Only";
/// The self-service permissions; one tenant.
pub const SELF_SERVICE: &str = "Self-Service";

const TECHNICIAN_PERMISSIONS: [&str; 11] = [
    "computers.view",
    "computers.add",
    "computers.edit",
    "computers.run_maintenance",
    "computers.remote_control",
    "deployments.view",
    "deployments.create",
    "deployments.edit",
    "software.view",
    "reports.view",
    "system.view_logs",
];
const SELF_SERVICE_PERMISSIONS: [&str; 3] =
    ["computers.view", "software.request_install", "reports.view"];

/// Whether built-in role `role` grants a catalog permission, by api.md's table:
/// `Some(name)` for a built-in catalog entry, `None` for one an operator added. Only the
/// Global Administrator gets added entries ("every catalog permission"): the others are
/// defined by built-in names. Not a built-in role: grants nothing.
pub fn builtin_role_grants(role: &str, permission: Option<&str>) -> bool {
    match (role, permission) {
        (GLOBAL_ADMINISTRATOR, _) => true,
        (_, None) => false,
        (TENANT_ADMINISTRATOR, Some(name)) => !name.starts_with("system."),
        (TECHNICIAN, Some(name)) => TECHNICIAN_PERMISSIONS.contains(&name),
        (READ_ONLY, Some(name)) => {
            name.ends_with(".view") || matches!(name, "system.view_settings" | "system.view_logs")
        }
        (SELF_SERVICE, Some(name)) => SELF_SERVICE_PERMISSIONS.contains(&name),
        _ => false,
    }
}

/// Where a built-in role may be assigned (api.md's scope column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleScope {
    /// Only for all tenants (Global Administrator).
    AllTenants,
    /// Only in one tenant (Tenant Administrator, Self-Service).
    OneTenant,
    /// Either (Technician, Read-Only, and every custom role).
    Either,
}

/// The scope of built-in role `role`; `None` when it is not a built-in role.
pub fn builtin_role_scope(role: &str) -> Option<RoleScope> {
    match role {
        GLOBAL_ADMINISTRATOR => Some(RoleScope::AllTenants),
        TENANT_ADMINISTRATOR | SELF_SERVICE => Some(RoleScope::OneTenant),
        TECHNICIAN | READ_ONLY => Some(RoleScope::Either),
        _ => None,
    }
}

/// Names of the exports every module must provide.
pub mod exports {
    /// `() -> i32`: the ABI version the module speaks ([`super::ABI_VERSION`]).
    pub const ABI_VERSION: &str = "lk_abi_version";
    /// `(len: i32) -> i32`: reserve `len` bytes of guest memory for the host to write the
    /// encoded [`super::Request`] into; returns the offset (0 means out of memory).
    pub const ALLOC: &str = "lk_alloc";
    /// `(ptr: i32, len: i32) -> i64`: decide the request at `ptr..ptr+len`; returns
    /// `(decision_ptr << 32) | decision_len` of the encoded [`super::Decision`].
    pub const EVALUATE: &str = "lk_evaluate";
    /// `() -> ()`: forget every allocation; the host calls it before each evaluation so no
    /// decision can see what an earlier one left behind.
    pub const RESET: &str = "lk_reset";
    /// The module's linear memory.
    pub const MEMORY: &str = "memory";
}

/// Everything a policy may judge: who asks, to do what, to which object, in what context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Who is acting.
    pub principal: Principal,
    /// The action, e.g. `iam.api_keys.create`, `agent.bind` or `computers.delete`.
    pub action: String,
    /// What it is done to.
    pub resource: Resource,
    /// When, and anything else the caller adds.
    pub context: Context,
}

/// The acting principal, with everything the host resolved about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// A person, a bot user, or the appliance itself.
    pub kind: PrincipalKind,
    /// `usr_…`, `bot_…` or `system`.
    pub id: String,
    /// The account it acts in (`ac_…`).
    pub account: String,
    /// Account roles of a user's membership; `None` for bots and the system.
    pub roles: Option<AccountRoles>,
    /// Tenant role assignments, with their permissions resolved to catalog indices.
    pub assignments: Vec<Assignment>,
    /// Second-factor state of the session (always `false` for token callers).
    pub mfa: Mfa,
    /// The credential the request was made with, if any.
    pub credential: Option<CredentialInfo>,
    /// The address the request came from.
    pub source_ip: Option<IpAddress>,
}

/// Kinds of principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrincipalKind {
    /// A person who is a member of the account.
    User,
    /// A bot user (service account) of the account.
    Bot,
    /// The appliance or the operator at the host.
    System,
}

/// Account-level roles of a membership (seed: ngrok RBAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRoles {
    /// Developer role.
    pub developer: Developer,
    /// Team role.
    pub team: Team,
    /// Billing role.
    pub billing: Billing,
    /// Full account control.
    pub admin: bool,
}

/// Developer role values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Developer {
    /// Create, modify and delete developer resources.
    ReadWrite,
    /// View developer resources (and use one's own personal authtoken).
    ReadOnly,
}

/// Team role values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Team {
    /// Invite, remove and change the roles of non-administrators.
    Manager,
    /// See members and invite.
    Invite,
    /// See members.
    ReadOnly,
}

/// Billing role values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Billing {
    /// View and change billing.
    Access,
    /// No billing access.
    None,
}

/// One tenant role assignment of the principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The role's name (`Technician`, or a custom role's name).
    pub role: String,
    /// A built-in role (Global Administrator, Tenant Administrator, Technician, Read-Only,
    /// Self-Service): the policy knows its permissions by name and ignores `permissions`.
    pub builtin: bool,
    /// The tenant (`tnt_…`) it applies to; `None` for all tenants.
    pub tenant: Option<String>,
    /// A custom role's permissions as a bit set over the catalog: bit `i % 64` of word
    /// `i / 64` is catalog entry `i` (see [`BUILTIN_CATALOG`]).
    pub permissions: Vec<u64>,
}

impl Assignment {
    /// Whether the role grants catalog entry `permission`.
    pub fn grants(&self, permission: u32) -> bool {
        grants(&self.permissions, permission)
    }
}

/// Second-factor state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mfa {
    /// The user has a second factor enrolled.
    pub enrolled: bool,
    /// This session passed the second factor.
    pub verified: bool,
}

/// The credential behind a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialInfo {
    /// Which kind.
    pub kind: CredentialKind,
    /// `cr_…`, `ak_…` or `sshcr_…`.
    pub id: String,
    /// Whether it is the member's personal authtoken.
    pub personal: bool,
    /// Bind rules (authtokens and SSH keys), as stored (`bind:*.example.com`, …).
    pub acl: Vec<String>,
    /// Action patterns an API key is limited to (empty: no limit beyond its owner's).
    pub scopes: Vec<String>,
}

/// Kinds of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialKind {
    /// Agent authtoken.
    Authtoken,
    /// API key.
    ApiKey,
    /// SSH public key.
    SshKey,
    /// A dashboard session cookie.
    Session,
}

/// An IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpAddress {
    /// IPv4, network order.
    V4([u8; 4]),
    /// IPv6, network order.
    V6([u8; 16]),
}

/// The object acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Its type, e.g. `api_key`, `user`, `computer`, `host` (for `agent.bind`).
    pub kind: String,
    /// Its id (or, for `agent.bind`, the host name or label asked for).
    pub id: String,
    /// The account it belongs to.
    pub account: String,
    /// The tenant it belongs to, for application resources.
    pub tenant: Option<String>,
    /// Its owner (`usr_…` or `bot_…`), for credentials.
    pub owner: Option<String>,
    /// The catalog index of the permission the action needs, for application actions;
    /// resolved by the host from the action name.
    pub permission: Option<u32>,
    /// Anything else, as name/value pairs (e.g. `target_admin` = `true` when the target
    /// member is an administrator; `grants_admin` = `true` when a change grants it).
    pub attributes: Vec<(String, String)>,
}

impl Resource {
    /// The value of attribute `name`, if present.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// When the request is made, and caller-supplied values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Milliseconds since the Unix epoch, UTC.
    pub time_ms: i64,
    /// Caller-supplied name/value pairs.
    pub values: Vec<(String, String)>,
}

/// A module's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Allow, deny, or abstain.
    pub outcome: Outcome,
    /// Why, in a short sentence an operator can read.
    pub reason: String,
}

/// The three possible answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The module permits the request.
    Allow,
    /// The module forbids it; any deny wins.
    Deny,
    /// The request is outside what the module decides.
    NotApplicable,
}

impl Decision {
    /// An allow with its reason.
    pub fn allow(reason: impl Into<String>) -> Self {
        Decision {
            outcome: Outcome::Allow,
            reason: reason.into(),
        }
    }

    /// A deny with its reason.
    pub fn deny(reason: impl Into<String>) -> Self {
        Decision {
            outcome: Outcome::Deny,
            reason: reason.into(),
        }
    }

    /// An abstention with its reason.
    pub fn not_applicable(reason: impl Into<String>) -> Self {
        Decision {
            outcome: Outcome::NotApplicable,
            reason: reason.into(),
        }
    }
}

pub mod view;

/// Whether bit set `permissions` holds catalog entry `permission`.
fn grants(permissions: &[u64], permission: u32) -> bool {
    let (word, bit) = ((permission / 64) as usize, permission % 64);
    permissions
        .get(word)
        .is_some_and(|w| w & (1u64 << bit) != 0)
}

impl Decision {
    /// This decision's postcard bytes, written directly into a buffer of the exact size
    /// (one allocation; `encode` grows its buffer as it goes). A module returns these.
    pub fn to_bytes(&self) -> Vec<u8> {
        let reason = self.reason.as_bytes();
        let mut out = Vec::with_capacity(1 + 10 + reason.len());
        // The outcome's variant index fits one varint byte.
        out.push(match self.outcome {
            Outcome::Allow => 0,
            Outcome::Deny => 1,
            Outcome::NotApplicable => 2,
        });
        let mut len = reason.len();
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(reason);
        out
    }
}

/// Encode a value with postcard.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(value)
}

/// Decode a value with postcard.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn assignments_test_bits_of_the_catalog() {
        let a = Assignment {
            role: "r".into(),
            builtin: false,
            tenant: None,
            permissions: vec![0b101, 1],
        };
        assert!(a.grants(0) && !a.grants(1) && a.grants(2) && a.grants(64));
        assert!(!a.grants(65) && !a.grants(1000));
    }

    #[test]
    fn catalog_indices_are_positions() {
        assert_eq!(builtin_permission("computers.view"), Some(0));
        assert_eq!(builtin_permission("reports.view"), Some(27));
        assert_eq!(builtin_permission("nope"), None);
    }

    /// Every field of an owned request, read back through the borrowed view: the two
    /// types must stay field for field the same encoding.
    #[test]
    fn the_view_reads_what_the_host_encodes() {
        let request = Request {
            principal: Principal {
                kind: PrincipalKind::User,
                id: "usr_1".into(),
                account: "ac_1".into(),
                roles: Some(AccountRoles {
                    developer: Developer::ReadOnly,
                    team: Team::Manager,
                    billing: Billing::Access,
                    admin: true,
                }),
                assignments: vec![Assignment {
                    role: "Helpdesk".into(),
                    builtin: false,
                    tenant: Some("tnt_1".into()),
                    permissions: vec![5, 1 << 63],
                }],
                mfa: Mfa {
                    enrolled: true,
                    verified: false,
                },
                credential: Some(CredentialInfo {
                    kind: CredentialKind::ApiKey,
                    id: "ak_1".into(),
                    personal: true,
                    acl: vec!["bind:a.example".into()],
                    scopes: vec!["iam.*".into(), "computers.view".into()],
                }),
                source_ip: Some(IpAddress::V6([7; 16])),
            },
            action: "computers.view".into(),
            resource: Resource {
                kind: "computer".into(),
                id: "c-1".into(),
                account: "ac_1".into(),
                tenant: Some("tnt_1".into()),
                owner: Some("usr_2".into()),
                permission: Some(3),
                attributes: vec![("target_admin".into(), "true".into())],
            },
            context: Context {
                time_ms: -42,
                values: vec![("k".into(), "v".into())],
            },
        };
        let bytes = encode(&request).unwrap();
        let v = view::Request::decode(&bytes).unwrap();
        assert_eq!(
            decode::<view::Request<'_>>(&bytes).unwrap(),
            v,
            "serde reads the same"
        );
        let (p, vp) = (&request.principal, &v.principal);
        assert_eq!((vp.kind, vp.id, vp.account), (p.kind, "usr_1", "ac_1"));
        assert_eq!(
            (vp.roles, vp.mfa, vp.source_ip),
            (p.roles, p.mfa, p.source_ip)
        );
        let (a, va) = (&p.assignments[0], &v.principal.assignments[0]);
        assert_eq!(
            (va.role, va.builtin, va.tenant),
            ("Helpdesk", false, Some("tnt_1"))
        );
        assert_eq!(va.permissions, a.permissions);
        assert!(va.grants(0) && va.grants(2) && va.grants(127) && !va.grants(1));
        let c = vp.credential.as_ref().unwrap();
        assert_eq!(
            (c.kind, c.id, c.personal),
            (CredentialKind::ApiKey, "ak_1", true)
        );
        assert_eq!(
            (c.acl.as_slice(), c.scopes.as_slice()),
            (&["bind:a.example"][..], &["iam.*", "computers.view"][..])
        );
        assert_eq!(v.action, "computers.view");
        let r = &v.resource;
        assert_eq!(
            (r.kind, r.id, r.account, r.tenant, r.owner, r.permission),
            (
                "computer",
                "c-1",
                "ac_1",
                Some("tnt_1"),
                Some("usr_2"),
                Some(3)
            )
        );
        assert_eq!(r.attribute("target_admin"), Some("true"));
        assert_eq!(
            (v.context.time_ms, v.context.values.as_slice()),
            (-42, &[("k", "v")][..])
        );
        // And back: the view encodes to the very same bytes.
        assert_eq!(encode(&v).unwrap(), bytes);

        // Every strict prefix is truncated, and one byte more is trailing.
        for end in 0..bytes.len() {
            assert_eq!(
                view::Request::decode(&bytes[..end]),
                Err(view::DecodeError::Truncated),
                "prefix of {end} bytes"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            view::Request::decode(&longer),
            Err(view::DecodeError::Trailing)
        );
    }

    /// Requests of many shapes (lengths across varint boundaries, non-ASCII text, every
    /// enum value, extreme numbers): the hand-written decoder reads what postcard wrote,
    /// the same as serde does, and flipping any byte gives the same verdict from both.
    #[test]
    fn the_decoder_agrees_with_postcard() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let texts = ["", "a", "tnt_0352CHaAAk2xHzkECETRb2", "ünïcödé ✓", "x"];
        for round in 0..300u64 {
            let text = |n: u64| -> String {
                match n % 7 {
                    5 => "é".repeat((n % 300) as usize),
                    6 => "a".repeat(120 + (n % 20) as usize),
                    k => texts[(k % 5) as usize].into(),
                }
            };
            let request = Request {
                principal: Principal {
                    kind: [
                        PrincipalKind::User,
                        PrincipalKind::Bot,
                        PrincipalKind::System,
                    ][(next() % 3) as usize],
                    id: text(next()),
                    account: text(next()),
                    roles: (round % 2 == 0).then_some(AccountRoles {
                        developer: if next() % 2 == 0 {
                            Developer::ReadWrite
                        } else {
                            Developer::ReadOnly
                        },
                        team: [Team::Manager, Team::Invite, Team::ReadOnly][(next() % 3) as usize],
                        billing: if next() % 2 == 0 {
                            Billing::Access
                        } else {
                            Billing::None
                        },
                        admin: next() % 2 == 0,
                    }),
                    assignments: (0..next() % 4)
                        .map(|_| Assignment {
                            role: text(next()),
                            builtin: next() % 2 == 0,
                            tenant: (next() % 2 == 0).then(|| text(next())),
                            permissions: (0..next() % 3).map(|_| next() >> (next() % 64)).collect(),
                        })
                        .collect(),
                    mfa: Mfa {
                        enrolled: next() % 2 == 0,
                        verified: next() % 2 == 0,
                    },
                    credential: (next() % 2 == 0).then(|| CredentialInfo {
                        kind: [
                            CredentialKind::Authtoken,
                            CredentialKind::ApiKey,
                            CredentialKind::SshKey,
                            CredentialKind::Session,
                        ][(next() % 4) as usize],
                        id: text(next()),
                        personal: next() % 2 == 0,
                        acl: (0..next() % 3).map(|_| text(next())).collect(),
                        scopes: (0..next() % 3).map(|_| text(next())).collect(),
                    }),
                    source_ip: match next() % 3 {
                        0 => None,
                        1 => Some(IpAddress::V4((next() as u32).to_be_bytes())),
                        _ => Some(IpAddress::V6(
                            u128::from(next())
                                .wrapping_mul(u128::from(next()))
                                .to_be_bytes(),
                        )),
                    },
                },
                action: text(next()),
                resource: Resource {
                    kind: text(next()),
                    id: text(next()),
                    account: text(next()),
                    tenant: (next() % 2 == 0).then(|| text(next())),
                    owner: (next() % 2 == 0).then(|| text(next())),
                    permission: (next() % 2 == 0).then(|| (next() >> (next() % 64)) as u32),
                    attributes: (0..next() % 3)
                        .map(|_| (text(next()), text(next())))
                        .collect(),
                },
                context: Context {
                    time_ms: (next() as i64) >> (next() % 64),
                    values: (0..next() % 3)
                        .map(|_| (text(next()), text(next())))
                        .collect(),
                },
            };
            let bytes = encode(&request).unwrap();
            let ours = view::Request::decode(&bytes).unwrap();
            assert_eq!(encode(&ours).unwrap(), bytes, "round {round}");
            // Damage one byte: both decoders accept or refuse it, and agree on what it says.
            let mut damaged = bytes.clone();
            let at = (next() as usize) % damaged.len();
            damaged[at] ^= 1 << (next() % 8);
            let theirs = match postcard::take_from_bytes::<view::Request<'_>>(&damaged) {
                Ok((request, [])) => Some(request),
                _ => None,
            };
            assert_eq!(
                view::Request::decode(&damaged).ok(),
                theirs,
                "round {round}, byte {at}"
            );
        }
    }

    #[test]
    fn the_decoder_refuses_what_postcard_refuses() {
        use view::DecodeError::{Invalid, Truncated};
        // A principal kind past the last variant, an option tag of 2, a bool of 2, a tag
        // whose varint runs past the five bytes of a u32, invalid UTF-8; then cut short.
        for (bytes, want) in [
            (&[3u8][..], Invalid),
            (&[0, 0, 0, 2][..], Invalid),
            (&[0, 0, 0, 0, 0, 2][..], Invalid),
            (&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01][..], Invalid),
            (&[0, 1, 0xff][..], Invalid),
            (&[0, 5, b'a'][..], Truncated),
            (&[][..], Truncated),
        ] {
            assert_eq!(view::Request::decode(bytes), Err(want), "{bytes:?}");
            assert!(postcard::from_bytes::<view::Request<'_>>(bytes).is_err());
        }
    }

    #[test]
    fn decisions_round_trip() {
        let d = Decision::deny("no");
        assert_eq!(decode::<Decision>(&encode(&d).unwrap()).unwrap(), d);
        // Written by hand as postcard writes it, across the varint lengths of the reason.
        for len in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            for d in [
                Decision::allow("é".repeat(len / 2)),
                Decision::deny("x".repeat(len)),
                Decision::not_applicable("y".repeat(len)),
            ] {
                assert_eq!(d.to_bytes(), encode(&d).unwrap(), "{len}");
            }
        }
    }
}
