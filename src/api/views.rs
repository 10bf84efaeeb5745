//! Resources as the API shows them: ngrok's shapes for its resources (with latchkey's
//! added fields only), api.md's for latchkey's own.

use std::sync::Arc;

use hyper::header::HeaderValue;
use serde_json::{Value, json};

use crate::app::Member;
use crate::domain::account::Account;
use crate::domain::bot::BotUser;
use crate::domain::credential::{Credential, CredentialKind};
use crate::domain::destination::{DeliveryStatus, EventDestination, Target};
use crate::domain::event::{Event, Principal, Snapshot};
use crate::domain::federation::{ExternalIdentity, IdentityProvider, Protocol};
use crate::domain::grant::{GrantSource, Granted, MemberGrants};
use crate::domain::ip::{IpPolicy, IpPolicyRule, IpRestriction};
use crate::domain::scim::{ScimGroup, ScimGroupMapping};
use crate::domain::tenancy::{CatalogEntry, Role, RoleAssignment, Tenant};
use crate::domain::time::Timestamp;
use crate::domain::token::Secret;

/// Absolute URLs of one request's server: the public URL, else `https://HOST`.
#[derive(Debug, Clone)]
pub enum Base {
    /// The configured public URL, without a trailing `/`.
    Public(Arc<str>),
    /// The request's authority (an absolute-form or HTTP/2 request).
    Authority(hyper::http::uri::Authority),
    /// The request's `Host` header.
    Host(HeaderValue),
}

impl Base {
    /// `base + path`. Kept as the request gave it until a `uri` is written, so the
    /// answers without one (`/verify`) pay nothing for it.
    pub fn uri(&self, path: &str) -> String {
        match self {
            Base::Public(url) => format!("{url}{path}"),
            Base::Authority(authority) => format!("https://{authority}{path}"),
            Base::Host(host) => {
                format!("https://{}{path}", host.to_str().unwrap_or("localhost"))
            }
        }
    }
}

fn time(at: Timestamp) -> String {
    at.to_rfc3339()
}

/// `/bot_users/{id}`.
pub fn bot(base: &Base, bot: &BotUser) -> Value {
    json!({
        "id": bot.id.to_string(),
        "uri": base.uri(&format!("/bot_users/{}", bot.id)),
        "name": bot.name,
        "active": bot.active,
        "created_at": time(bot.created_at),
    })
}

/// The path segment of a credential kind's collection.
pub fn collection(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::Authtoken => "credentials",
        CredentialKind::ApiKey => "api_keys",
        CredentialKind::SshKey => "ssh_credentials",
    }
}

/// An authtoken, API key or SSH credential in its ngrok shape; `token` only when just
/// made or rotated.
pub fn credential(
    base: &Base,
    credential: &Credential,
    token: Option<&Secret>,
    last_used: Option<Timestamp>,
) -> Value {
    let id = credential.id.to_string();
    let mut view = json!({
        "id": id,
        "uri": base.uri(&format!("/{}/{id}", collection(credential.id.kind))),
        "created_at": time(credential.created_at),
        "description": credential.description,
        "metadata": credential.metadata,
        "owner_id": credential.owner.id_string(),
        "expires_at": credential.expires_at.map(time),
        "last_used_at": last_used.map(time),
    });
    let Some(fields) = view.as_object_mut() else {
        return view;
    };
    match credential.id.kind {
        CredentialKind::Authtoken => {
            fields.insert("token".into(), token.map(|t| t.expose().to_owned()).into());
            fields.insert("acl".into(), credential.acl.rules().into());
            fields.insert("personal".into(), credential.personal.into());
            fields.insert("allowed_cidrs".into(), cidrs(credential));
        }
        CredentialKind::ApiKey => {
            fields.insert("token".into(), token.map(|t| t.expose().to_owned()).into());
            let scopes: Vec<String> = credential.scopes.iter().map(ToString::to_string).collect();
            fields.insert("scopes".into(), scopes.into());
            fields.insert("allowed_cidrs".into(), cidrs(credential));
        }
        CredentialKind::SshKey => {
            let key = credential.ssh_key.as_ref().map(|k| match k.comment() {
                Some(comment) => format!("{} {comment}", k.canonical()),
                None => k.canonical().to_owned(),
            });
            fields.insert("public_key".into(), key.unwrap_or_default().into());
            fields.insert("acl".into(), credential.acl.rules().into());
        }
    }
    view
}

fn cidrs(credential: &Credential) -> Value {
    let nets: Vec<String> = credential
        .allowed_cidrs
        .iter()
        .map(ToString::to_string)
        .collect();
    nets.into()
}

/// `/users/{id}` (api.md).
pub fn member(base: &Base, member: &Member) -> Value {
    let (user, membership) = (&member.user, &member.membership);
    json!({
        "id": user.id.to_string(),
        "uri": base.uri(&format!("/users/{}", user.id)),
        "created_at": time(user.created_at),
        "email": user.email.as_str(),
        "name": user.name,
        "roles": membership.roles,
        "role_grants": role_grants(&member.grants),
        "state": membership.state,
        "mfa_enrolled": member.mfa_enrolled,
        "email_verified": member.email_verified,
        "joined_at": time(membership.joined_at),
    })
}

/// A member's roles by source: what was set directly first, then each source's grant.
fn role_grants(grants: &MemberGrants) -> Value {
    let direct = json!({"source": grant_source(GrantSource::Direct), "roles": grants.direct});
    let others = grants
        .grants
        .iter()
        .map(|g| json!({"source": grant_source(g.source), "roles": g.roles}));
    Value::Array(std::iter::once(direct).chain(others).collect())
}

/// What granted a role or an assignment: `{"type": "direct"}`, or a SCIM group or an
/// identity provider by id.
pub fn grant_source(source: GrantSource) -> Value {
    match source {
        GrantSource::Direct => json!({"type": "direct"}),
        GrantSource::ScimGroup(id) => json!({"type": "scim_group", "id": id.to_string()}),
        GrantSource::IdentityProvider(id) => {
            json!({"type": "identity_provider", "id": id.to_string()})
        }
    }
}

/// `/account` (api.md).
pub fn account(base: &Base, account: &Account, seats_used: usize) -> Value {
    let settings = &account.settings;
    json!({
        "id": account.id.to_string(),
        "uri": base.uri("/account"),
        "created_at": time(account.created_at),
        "name": account.name,
        "mfa_required": settings.mfa_required,
        "provisioning": settings.provisioning,
        "sso_mode": settings.sso_mode,
        "seats_used": seats_used,
    })
}

/// `/events/{id}`: who did what to which object, with the object before and after.
pub fn event(base: &Base, event: &Event) -> Value {
    let principal = event.actor.principal;
    json!({
        "id": event.id.to_string(),
        "uri": base.uri(&format!("/events/{}", event.id)),
        "created_at": time(event.at),
        "seq": event.seq,
        "principal_id": principal.id_string(),
        "principal_kind": match principal {
            Principal::System => "system",
            Principal::User(_) => "user",
            Principal::Bot(_) => "bot",
            Principal::ScimToken(_) => "scim_token",
        },
        "credential_id": event.actor.credential.map(|c| c.to_string()),
        "action": event.action.name(),
        "object_id": event.target,
        "before": event.before.as_ref().map(|s| snapshot(base, s)),
        "after": event.after.as_ref().map(|s| snapshot(base, s)),
    })
}

fn snapshot(base: &Base, snapshot: &Snapshot) -> Value {
    match snapshot {
        Snapshot::Account(a) => {
            let mut view = account(base, a, 0);
            if let Some(fields) = view.as_object_mut() {
                fields.remove("seats_used");
            }
            view
        }
        Snapshot::User(u) => json!({
            "id": u.id.to_string(),
            "email": u.email.as_str(),
            "name": u.name,
            "created_at": time(u.created_at),
        }),
        Snapshot::Member(user, membership) => {
            let mut view = member(
                base,
                &Member {
                    user: user.clone(),
                    membership: membership.clone(),
                    mfa_enrolled: false,
                    email_verified: false,
                    grants: MemberGrants::direct_only(
                        membership.account,
                        membership.user,
                        membership.roles,
                    ),
                },
            );
            // A snapshot does not record the second factor, the email proof or the
            // roles' sources.
            if let Some(fields) = view.as_object_mut() {
                fields.remove("mfa_enrolled");
                fields.remove("email_verified");
                fields.remove("role_grants");
            }
            view
        }
        Snapshot::Bot(b) => bot(base, b),
        Snapshot::Credential(c) => credential(base, c, None, None),
        Snapshot::IpPolicy(p) => ip_policy(base, p),
        Snapshot::IpRule(r) => ip_rule(base, r),
        Snapshot::IpRestriction(r) => ip_restriction(base, r),
        Snapshot::IpWarning {
            ip,
            count,
            first,
            last,
        } => json!({"ip": ip, "count": count, "first": time(*first), "last": time(*last)}),
        Snapshot::Tenant(t) => tenant(base, t),
        Snapshot::Role(r) => role(
            base,
            &Role {
                id: r.id,
                name: r.name.clone(),
                description: r.description.clone(),
                permissions: r.permissions.clone(),
                builtin: false,
                created_at: Some(r.created_at),
            },
        ),
        Snapshot::RoleAssignment(a) => role_assignment(base, a, None),
        Snapshot::Invitation { id, email, roles } => {
            json!({"id": id, "email": email, "roles": roles})
        }
        Snapshot::Login { ip, refused } => json!({"ip": ip, "refused": refused}),
        Snapshot::SignIn {
            ip,
            method,
            provider,
            refused,
        } => json!({
            "ip": ip,
            "method": method,
            "identity_provider_id": provider.map(|p| p.to_string()),
            "refused": refused,
        }),
        Snapshot::IdentityProvider(idp) => identity_provider(base, idp),
        Snapshot::ExternalIdentity(identity) => external_identity(identity),
        Snapshot::ScimToken { id, description } => json!({
            "id": id,
            "uri": base.uri(&format!("/scim_tokens/{id}")),
            "description": description,
        }),
        Snapshot::ScimUser(profile) => json!({
            "user_id": profile.user.to_string(),
            "user_name": profile.user_name,
            "external_id": profile.external_id,
            "name": {
                "formatted": profile.name.formatted,
                "family_name": profile.name.family_name,
                "given_name": profile.name.given_name,
            },
            "display_name": profile.display_name,
            "emails": profile.emails.iter().map(|e| json!({
                "value": e.value, "type": e.kind, "primary": e.primary,
            })).collect::<Vec<_>>(),
            "created_at": time(profile.created_at),
            "updated_at": time(profile.updated_at),
        }),
        Snapshot::ScimGroup(group) => json!({
            "id": group.id.to_string(),
            "display_name": group.display_name,
            "external_id": group.external_id,
            "members": group.members.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "created_at": time(group.created_at),
            "updated_at": time(group.updated_at),
        }),
        Snapshot::ScimGroupMapping(mapping) => scim_group_mapping(base, mapping, None),
        Snapshot::EventDestination(d) => event_destination(base, d, None),
        Snapshot::PolicySet(state) => policy_set_state(state, true),
        Snapshot::Permission(p) => permission(&CatalogEntry {
            name: p.name.clone(),
            description: p.description.clone(),
            builtin: false,
        }),
    }
}

/// `/tenants/{id}`.
pub fn tenant(base: &Base, tenant: &Tenant) -> Value {
    json!({
        "id": tenant.id.to_string(),
        "uri": base.uri(&format!("/tenants/{}", tenant.id)),
        "name": tenant.name,
        "description": tenant.description,
        "created_at": time(tenant.created_at),
    })
}

/// `/roles/{id}`.
pub fn role(base: &Base, role: &Role) -> Value {
    json!({
        "id": role.id.to_string(),
        "uri": base.uri(&format!("/roles/{}", role.id)),
        "name": role.name,
        "description": role.description,
        "permissions": role.permissions,
        "builtin": role.builtin,
        "created_at": role.created_at.map(time),
    })
}

/// `/role_assignments/{id}`; `role` is the role's name where the caller knows it.
pub fn role_assignment(
    base: &Base,
    assignment: &RoleAssignment,
    named: Option<(&str, &[GrantSource])>,
) -> Value {
    let mut view = json!({
        "id": assignment.id.to_string(),
        "uri": base.uri(&format!("/role_assignments/{}", assignment.id)),
        "principal_id": assignment.principal.id_string(),
        "principal_kind": assignment.principal.kind_str(),
        "role_id": assignment.role.to_string(),
        "role": named.map(|(role, _)| role),
        "tenant_id": assignment.tenant.map(|t| t.to_string()),
        "created_at": time(assignment.created_at),
    });
    // An event's snapshot names neither the role nor the sources.
    if let (Some((_, sources)), Some(fields)) = (named, view.as_object_mut()) {
        let sources = sources.iter().map(|s| grant_source(*s)).collect();
        fields.insert("sources".into(), Value::Array(sources));
    }
    view
}

/// One entry of `/permissions`.
pub fn permission(entry: &CatalogEntry) -> Value {
    json!({
        "name": entry.name,
        "category": entry.category(),
        "description": entry.description,
        "builtin": entry.builtin,
    })
}

fn reference(base: &Base, collection: &str, id: String) -> Value {
    let uri = base.uri(&format!("/{collection}/{id}"));
    json!({"id": id, "uri": uri})
}

/// `/ip_policies/{id}`.
pub fn ip_policy(base: &Base, policy: &IpPolicy) -> Value {
    json!({
        "id": policy.id.to_string(),
        "uri": base.uri(&format!("/ip_policies/{}", policy.id)),
        "created_at": time(policy.created_at),
        "description": policy.description,
        "metadata": policy.metadata,
    })
}

/// `/event_destinations/{id}`: ngrok's shape (`id`, `uri`, `created_at`, `description`,
/// `metadata`, `format`, `target`) with latchkey's `enabled` and the delivery `status`
/// (absent from event snapshots). The signing secret is never shown here.
/// `/scim_groups/{id}`: a group as SCIM keeps it, with its mapping if it has one;
/// `members` lists the member ids (left out of list pages, which give `members_count`).
pub fn scim_group(
    base: &Base,
    group: &ScimGroup,
    mapping: Option<&ScimGroupMapping>,
    with_members: bool,
) -> Value {
    let mut view = json!({
        "id": group.id.to_string(),
        "uri": base.uri(&format!("/scim_groups/{}", group.id)),
        "display_name": group.display_name,
        "external_id": group.external_id,
        "members_count": group.members.len(),
        "created_at": time(group.created_at),
        "updated_at": time(group.updated_at),
        "mapping": mapping.map(|m| reference(base, "scim_group_mappings", m.id.to_string())),
    });
    if let (true, Some(fields)) = (with_members, view.as_object_mut()) {
        let members = group
            .members
            .iter()
            .map(|u| reference(base, "users", u.to_string()));
        fields.insert("members".into(), Value::Array(members.collect()));
    }
    view
}

/// `/scim_group_mappings/{id}`: the group (with its name, but in event snapshots) and
/// what its members hold while in it.
pub fn scim_group_mapping(
    base: &Base,
    mapping: &ScimGroupMapping,
    group: Option<&ScimGroup>,
) -> Value {
    let mut scim_group = reference(base, "scim_groups", mapping.group.to_string());
    if let (Some(group), Some(fields)) = (group, scim_group.as_object_mut()) {
        fields.insert("display_name".into(), json!(group.display_name));
    }
    json!({
        "id": mapping.id.to_string(),
        "uri": base.uri(&format!("/scim_group_mappings/{}", mapping.id)),
        "created_at": time(mapping.created_at),
        "updated_at": time(mapping.updated_at),
        "scim_group": scim_group,
        "roles": mapping.roles,
        "role_assignments": granted(&mapping.role_assignments),
    })
}

/// Tenant role assignments a mapping grants, as bodies give them.
fn granted(assignments: &[Granted]) -> Value {
    assignments
        .iter()
        .map(|(role, tenant)| {
            json!({"role_id": role.to_string(), "tenant_id": tenant.map(|t| t.to_string())})
        })
        .collect()
}

/// `/scim_tokens/{id}`: never the token, but in the answer that made it.
pub fn scim_token(
    base: &Base,
    token: &crate::domain::scim::ScimToken,
    secret: Option<&str>,
) -> Value {
    let mut view = json!({
        "id": token.id.to_string(),
        "uri": base.uri(&format!("/scim_tokens/{}", token.id)),
        "description": token.description,
        "created_at": time(token.created_at),
        "last_used_at": token.last_used_at.map(time),
    });
    if let (Some(secret), Some(fields)) = (secret, view.as_object_mut()) {
        fields.insert("token".into(), json!(secret));
    }
    view
}

/// `/identity_providers/{id}`: every setting but the client secret (only whether one is
/// set), with the URLs the provider is configured with on its side.
pub fn identity_provider(base: &Base, idp: &IdentityProvider) -> Value {
    let mapping: Vec<Value> = idp
        .role_mapping
        .iter()
        .map(|m| {
            json!({
                "claim_value": m.claim_value,
                "roles": m.roles,
                "role_assignments": granted(&m.role_assignments),
            })
        })
        .collect();
    let mut view = json!({
        "id": idp.id.to_string(),
        "uri": base.uri(&format!("/identity_providers/{}", idp.id)),
        "created_at": time(idp.created_at),
        "name": idp.name,
        "type": idp.protocol.kind(),
        "enabled": idp.enabled,
        "domains": idp.domains,
        "mfa_values": idp.mfa_values,
        "role_mapping": mapping,
        "last_login_at": idp.last_login_at.map(time),
        "login_url": base.uri(&format!("/sso/{}/login", idp.id)),
    });
    let fields = match &idp.protocol {
        Protocol::Oidc(oidc) => json!({
            "issuer": oidc.issuer,
            "client_id": oidc.client_id,
            "scopes": oidc.scopes,
            "claims": oidc.claims,
            "trusted_ca_pem": oidc.trusted_ca_pem,
            "redirect_uri": base.uri(&format!("/sso/{}/callback", idp.id)),
        }),
        Protocol::Github(github) => json!({
            "client_id": github.client_id,
            "web_url": github.web_url,
            "api_url": github.api_url,
            "trusted_ca_pem": github.trusted_ca_pem,
            "redirect_uri": base.uri(&format!("/sso/{}/callback", idp.id)),
        }),
        Protocol::Saml(saml) => json!({
            "idp_entity_id": saml.idp_entity_id,
            "sso_url": saml.sso_url,
            "certificates": saml.certificates,
            "allow_idp_initiated": saml.allow_idp_initiated,
            "want_assertions_signed": saml.want_assertions_signed,
            "attributes": saml.attributes,
            "email_verified": saml.email_verified,
            "sp": {
                "entity_id": base.uri(&format!("/sso/{}/metadata", idp.id)),
                "acs_url": base.uri(&format!("/sso/{}/acs", idp.id)),
                "metadata_url": base.uri(&format!("/sso/{}/metadata", idp.id)),
            },
        }),
    };
    if let (Some(view), Value::Object(fields)) = (view.as_object_mut(), fields) {
        view.extend(fields);
    }
    view
}

/// An external identity linked to a user.
pub fn external_identity(identity: &ExternalIdentity) -> Value {
    json!({
        "id": identity.id.to_string(),
        "identity_provider_id": identity.provider.to_string(),
        "subject": identity.subject,
        "user_id": identity.user.to_string(),
        "email": identity.email,
        "created_at": time(identity.created_at),
        "last_login_at": identity.last_login_at.map(time),
    })
}

pub fn event_destination(
    base: &Base,
    destination: &EventDestination,
    status: Option<&DeliveryStatus>,
) -> Value {
    let target = match &destination.target {
        Target::Https {
            url,
            trusted_ca_pem,
        } => json!({"https": {"url": url, "trusted_ca_pem": trusted_ca_pem}}),
        Target::Syslog {
            address,
            trusted_ca_pem,
        } => json!({"syslog": {"address": address, "trusted_ca_pem": trusted_ca_pem}}),
    };
    let mut view = json!({
        "id": destination.id.to_string(),
        "uri": base.uri(&format!("/event_destinations/{}", destination.id)),
        "created_at": time(destination.created_at),
        "description": destination.description,
        "metadata": destination.metadata,
        "format": "json",
        "enabled": destination.enabled,
        "target": target,
    });
    if let (Some(status), Some(fields)) = (status, view.as_object_mut()) {
        fields.insert(
            "status".into(),
            json!({
                "state": status.state(destination.enabled),
                "delivered": status.delivered,
                "next_seq": status.next_seq,
                "last_delivered_event_id": status.last_delivered.map(|e| e.to_string()),
                "last_attempt_at": status.last_attempt_at.map(time),
                "last_success_at": status.last_success_at.map(time),
                "last_error": status.last_error,
                "failures": status.failures,
                "retry_at": status.retry_at.map(time),
            }),
        );
    }
    view
}

/// `/ip_policy_rules/{id}`.
pub fn ip_rule(base: &Base, rule: &IpPolicyRule) -> Value {
    json!({
        "id": rule.id.to_string(),
        "uri": base.uri(&format!("/ip_policy_rules/{}", rule.id)),
        "created_at": time(rule.created_at),
        "description": rule.description,
        "metadata": rule.metadata,
        "cidr": rule.cidr.to_string(),
        "ip_policy": reference(base, "ip_policies", rule.policy.to_string()),
        "action": rule.action,
    })
}

/// `/ip_restrictions/{id}`.
pub fn ip_restriction(base: &Base, restriction: &IpRestriction) -> Value {
    let policies: Vec<Value> = restriction
        .policies
        .iter()
        .map(|id| reference(base, "ip_policies", id.to_string()))
        .collect();
    json!({
        "id": restriction.id.to_string(),
        "uri": base.uri(&format!("/ip_restrictions/{}", restriction.id)),
        "created_at": time(restriction.created_at),
        "description": restriction.description,
        "metadata": restriction.metadata,
        "enforced": restriction.enforced,
        "type": restriction.kind.as_str(),
        "ip_policies": policies,
    })
}

/// The live policy set: names, kinds, patterns, hashes and the generation for every
/// reader; for the host operator (`operator`), also how each module runs.
/// An event of the appliance trail: what happened to the live policy set, what asked for
/// it (`start`, `signal`, `operator`), and the set before and after. Over the network a
/// refused reload says only that it was refused: its reason names files of the host.
pub fn appliance_event(event: &Event, operator: bool) -> Value {
    let state = |s: &Option<Snapshot>| match s {
        Some(Snapshot::PolicySet(state)) => policy_set_state(state, operator),
        _ => Value::Null,
    };
    json!({
        "id": event.id.to_string(),
        "created_at": time(event.at),
        "seq": event.seq,
        "action": event.action.name(),
        "trigger": event.target,
        "before": state(&event.before),
        "after": state(&event.after),
    })
}

fn policy_set_state(state: &crate::domain::event::PolicySetState, operator: bool) -> Value {
    let refused = match (&state.refused, operator) {
        (Some(why), true) => Value::from(why.as_str()),
        (refused, _) => Value::from(refused.is_some()),
    };
    json!({
        "generation": state.generation,
        "policies": state.policies.iter().map(|p| json!({"name": p.name, "kind": p.kind, "sha256": p.sha256})).collect::<Vec<_>>(),
        "refused": refused,
    })
}

pub fn live_set(set: &crate::app::LiveSet, operator: bool) -> Value {
    let policies: Vec<Value> = set
        .policies
        .iter()
        .map(|p| {
            let mut view = json!({
                "name": p.name,
                "kind": p.kind,
                "actions": p.actions,
                "exclude": p.exclude,
                "sha256": p.sha256,
            });
            if operator && let Some(fields) = view.as_object_mut() {
                fields.insert("isolation".into(), p.isolation.into());
                fields.insert("reads_clock".into(), p.reads_clock.into());
                fields.insert(
                    "limits".into(),
                    json!({"fuel": p.fuel, "memory_bytes": p.memory_bytes}),
                );
                fields.insert("faults".into(), p.faults.into());
            }
            view
        })
        .collect();
    json!({"generation": set.generation, "policies": policies})
}
