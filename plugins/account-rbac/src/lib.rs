//! Built-in account RBAC (seed 002, ngrok): decides `iam.<resource>.<verb>` from a member's
//! developer, team and billing roles and administrator flag (bots act as read/write
//! developers, the system principal may do everything), and `agent.bind` from the
//! credential's bind ACL. Every other action is not applicable. Each reason names the role
//! that decided.

#![no_std]

extern crate alloc;

mod acl;

use alloc::format;

use latchkey_policy_sdk::{
    AccountRoles, Billing, CredentialKind, Decision, Developer, Policy, PrincipalKind, Request,
    Team, concat, export_policy, first_uncovered, same, scope_denial,
};

/// The action whose resource is a host name, address or label an agent asks to bind.
pub const BIND: &str = "agent.bind";

/// The account RBAC policy.
#[derive(Debug)]
pub struct AccountRbac;

impl Policy for AccountRbac {
    fn decide(request: &Request) -> Decision {
        let iam = request.action.strip_prefix("iam.");
        if iam.is_none() && request.action != BIND {
            return Decision::not_applicable("account-rbac decides only iam.* and agent.bind");
        }
        if let Some(denial) = scope_denial(request) {
            return denial;
        }
        if let Some(denial) = scope_ceiling(request) {
            return denial;
        }
        let principal = &request.principal;
        // The host answers 404 for other accounts' objects; deciding so here too means a
        // host bug that mixes accounts fails closed instead of trusting foreign roles.
        if principal.kind != PrincipalKind::System
            && !same(request.resource.account, principal.account)
        {
            return Decision::deny(format!(
                "{} belongs to account {}, not to the principal's account {}",
                request.resource.id, request.resource.account, principal.account
            ));
        }
        match iam {
            None => bind(request),
            Some(rest) => decide_iam(request, rest),
        }
    }
}

export_policy!(AccountRbac);

/// A credential never grants more than the credential that made it: a credential with
/// scopes (only API keys carry them, and `scopes_allow` holds any that does) creates or
/// changes API keys only within them, whatever its owner's roles (an administrator's
/// scoped key included). The host states the resulting key's scopes in
/// the attribute `scopes` (space-separated; empty for an unrestricted key, which is the
/// scope `*`); a request that does not state them is refused.
fn scope_ceiling(request: &Request) -> Option<Decision> {
    if !matches!(
        request.action,
        "iam.api_keys.create" | "iam.api_keys.update"
    ) {
        return None;
    }
    let caller = request
        .principal
        .credential
        .as_ref()
        .filter(|c| !c.scopes.is_empty())?;
    let id = &caller.id;
    let Some(stated) = request.resource.attribute("scopes") else {
        return Some(Decision::deny(format!(
            "the scopes of the key are not stated, and credential {id} has scopes: fail closed"
        )));
    };
    // An unrestricted key may attempt every action: it is the scope `*`.
    let mut wanted: alloc::vec::Vec<&str> = stated.split_whitespace().collect();
    if wanted.is_empty() {
        wanted.push("*");
    }
    first_uncovered(&caller.scopes, &wanted).map(|outside| {
        Decision::deny(format!(
            "scope {outside} is outside the scopes of credential {id}"
        ))
    })
}

/// Groups of `iam` resources, each governed by one role (seed 002).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// Objects the developer role governs (ngrok "developer features").
    Developer,
    /// Members and invitations: the team role.
    Team,
    /// The billing role.
    Billing,
    /// Account settings: administrators only (seed: "the only role that grants access to
    /// configure Account settings").
    Account,
    /// The audit trail, and the destinations it is streamed to. The seeds are silent on
    /// the trail; least privilege: administrators only. Seed 002 counts ngrok's event
    /// destinations (traffic events) among developer features, but here they carry the
    /// audit trail: a developer would read through one what `GET /events` refuses it.
    Events,
    /// Tenants, tenant roles, role assignments, the permission catalog and the access
    /// review: administrators and team managers (api.md); bots never.
    Tenancy,
    /// The appliance's live policy set (names and hashes): administrators only; changing
    /// it is the host operator's, never an account's.
    Policies,
}

fn family(resource: &str) -> Option<Family> {
    match resource {
        "api_keys" | "credentials" | "ssh_credentials" | "bot_users" | "ip_policies"
        | "ip_policy_rules" | "ip_restrictions" => Some(Family::Developer),
        "users" | "invitations" => Some(Family::Team),
        "billing" => Some(Family::Billing),
        // Identity providers decide who signs in, SCIM tokens who is a member, SCIM group
        // mappings what members hold: account settings (api.md: administrators).
        "account"
        | "identity_providers"
        | "scim_tokens"
        | "scim_groups"
        | "scim_group_mappings" => Some(Family::Account),
        "events" | "event_destinations" => Some(Family::Events),
        "tenants" | "roles" | "role_assignments" | "permissions" | "access_review" => {
            Some(Family::Tenancy)
        }
        "policies" => Some(Family::Policies),
        _ => None,
    }
}

fn is_read(verb: &str) -> bool {
    matches!(verb, "list" | "get")
}

/// An attribute that grants an exception (`personal`): only an explicit `true` counts.
fn attribute_true(request: &Request, name: &str) -> bool {
    request.resource.attribute(name) == Some("true")
}

/// An attribute that restricts (`target_admin`, `grants_admin`, `exceeds_own_roles`,
/// `used_by_dashboard`): only an explicit `false` lifts it. A host that forgot to say is
/// read the restrictive way, so a missing attribute fails closed, never open.
fn attribute_restricts(request: &Request, name: &str) -> bool {
    request.resource.attribute(name) != Some("false")
}

fn decide_iam(request: &Request, rest: &str) -> Decision {
    let principal = &request.principal;
    let roles = match principal.kind {
        PrincipalKind::System => {
            return Decision::allow("the system principal may do every iam action");
        }
        PrincipalKind::Bot => None,
        PrincipalKind::User => match principal.roles {
            Some(roles) => Some(roles),
            None => {
                return Decision::deny(format!("user {} has no account roles", principal.id));
            }
        },
    };
    // Seed 002: administrators "may take all actions within an account".
    if roles.is_some_and(|r| r.admin) {
        return Decision::allow("administrator may do every iam action");
    }
    let parsed = rest
        .split_once('.')
        .filter(|(resource, verb)| !resource.is_empty() && !verb.is_empty() && !verb.contains('.'));
    let Some((resource, verb)) = parsed else {
        return Decision::deny(format!("{} is not an iam action", request.action));
    };
    let Some(family) = family(resource) else {
        return Decision::deny(format!("{resource} is not a resource account-rbac knows"));
    };
    match roles {
        // Seed 002: bots "function as though they have a read/write Developer role and no
        // other permissions".
        None => match family {
            Family::Developer => developer(request, Actor::Bot, resource, verb),
            _ => Decision::deny(format!(
                "bot users act as read/write developers only and may not {verb} {resource}"
            )),
        },
        Some(roles) => member(request, roles, family, resource, verb),
    }
}

fn member(
    request: &Request,
    roles: AccountRoles,
    family: Family,
    resource: &str,
    verb: &str,
) -> Decision {
    match family {
        Family::Developer => developer(request, Actor::Member(roles.developer), resource, verb),
        Family::Team => team(request, roles.team, resource, verb),
        Family::Billing => match roles.billing {
            Billing::Access => Decision::allow(concat(&["billing access may ", verb, " billing"])),
            Billing::None => Decision::deny(format!("billing none may not {verb} billing")),
        },
        Family::Account => {
            Decision::deny(format!("only administrators may {verb} account settings"))
        }
        Family::Events => Decision::deny(format!(
            "only administrators may {verb} {}",
            resource.replace('_', " ")
        )),
        Family::Policies => Decision::deny(format!(
            "only administrators may {verb} the live policy set"
        )),
        Family::Tenancy => match roles.team {
            Team::Manager => Decision::allow(concat(&["team manager may ", verb, " ", resource])),
            other => Decision::deny(format!(
                "only administrators and team managers may {verb} {resource}, not team {}",
                team_name(other)
            )),
        },
    }
}

/// Who acts on a developer resource.
#[derive(Debug, Clone, Copy)]
enum Actor {
    Bot,
    Member(Developer),
}

impl Actor {
    fn name(self) -> &'static str {
        match self {
            Actor::Bot => "bot user (a read/write developer)",
            Actor::Member(Developer::ReadWrite) => "developer read_write",
            Actor::Member(Developer::ReadOnly) => "developer read_only",
        }
    }
}

fn developer(request: &Request, actor: Actor, resource: &str, verb: &str) -> Decision {
    let who = actor.name();
    // api.md: `/verify` callers are administrators, developers (any role) and bots.
    if resource == "credentials" && verb == "verify" {
        return Decision::allow(concat(&[who, " may verify credentials"]));
    }
    if resource == "credentials" && is_personal_authtoken(request) {
        let own = matches!(actor, Actor::Member(_))
            && request
                .resource
                .owner
                .is_some_and(|owner| same(owner, request.principal.id));
        // Seed 002: a read-only developer "can still see their personal authtoken"; api.md:
        // rotating it is open to its owner whatever its developer role.
        if own && matches!(verb, "get" | "list" | "rotate") {
            return Decision::allow(
                "a member may always get, list and rotate its own personal authtoken",
            );
        }
        // api.md: rotate is open to the owner "and to administrators": rotating shows the
        // new secret, so anyone else could then act as that member.
        if verb == "rotate" {
            return Decision::deny(format!(
                "{who} may not rotate another member's personal authtoken; only its owner and administrators may"
            ));
        }
    }
    if is_read(verb) {
        return Decision::allow(concat(&[who, " may ", verb, " ", resource]));
    }
    if let Actor::Member(Developer::ReadOnly) = actor {
        return Decision::deny(format!("developer read_only may only read {resource}"));
    }
    if changes_an_administrators_credential(request, resource, verb) {
        return Decision::deny(format!(
            "only administrators and its owner may {verb} a credential an administrator owns; {who} may not"
        ));
    }
    if used_by_dashboard(request, resource) {
        return Decision::deny(format!(
            "only administrators may change {resource} that dashboard IP restrictions use; {who} may not"
        ));
    }
    if verb == "create" && names_another_user_as_owner(request, resource) {
        return Decision::deny(format!(
            "only administrators may name another user as a credential's owner; {who} may not"
        ));
    }
    Decision::allow(concat(&[who, " may ", verb, " ", resource]))
}

/// Seed 002: team managers "cannot modify or remove Administrators"; the same protection
/// covers what an administrator holds. Changing, deleting or rotating a credential owned
/// by an administrator (the host states `owner_admin`) is for its owner and
/// administrators; an unstated `owner_admin` restricts.
fn changes_an_administrators_credential(request: &Request, resource: &str, verb: &str) -> bool {
    matches!(resource, "api_keys" | "credentials" | "ssh_credentials")
        && matches!(verb, "update" | "delete" | "rotate")
        && !request
            .resource
            .owner
            .is_some_and(|owner| same(owner, request.principal.id))
        && attribute_restricts(request, "owner_admin")
}

fn is_personal_authtoken(request: &Request) -> bool {
    request.resource.kind == "credential" && attribute_true(request, "personal")
}

/// An IP restriction of type `dashboard`, or an IP policy or rule such a restriction uses:
/// changing them could lock every member out of the dashboard, so only administrators may.
fn used_by_dashboard(request: &Request, resource: &str) -> bool {
    match resource {
        // Only a type known not to be `dashboard` lifts the restriction.
        "ip_restrictions" => !matches!(
            request.resource.attribute("type"),
            Some("api" | "agent" | "endpoints")
        ),
        "ip_policies" | "ip_policy_rules" => attribute_restricts(request, "used_by_dashboard"),
        _ => false,
    }
}

/// api.md: naming a user other than yourself as a credential's owner is for
/// administrators; naming a bot user is open to read/write developers.
fn names_another_user_as_owner(request: &Request, resource: &str) -> bool {
    matches!(resource, "api_keys" | "credentials" | "ssh_credentials")
        && request
            .resource
            .owner
            .is_some_and(|owner| !same(owner, request.principal.id) && !owner.starts_with("bot_"))
}

fn team_name(team: Team) -> &'static str {
    match team {
        Team::Manager => "manager",
        Team::Invite => "invite",
        Team::ReadOnly => "read_only",
    }
}

fn team(request: &Request, role: Team, resource: &str, verb: &str) -> Decision {
    let who = team_name(role);
    let read = is_read(verb);
    if resource == "users" && read {
        // Every team role "can see other members of the account".
        return Decision::allow(concat(&["team ", who, " may ", verb, " users"]));
    }
    // api.md: "an administrator may issue" a password reset link; a manager may change
    // members' roles, not take over their logins.
    if resource == "users" && verb == "password_reset" {
        return Decision::deny("only administrators may issue password resets");
    }
    match role {
        Team::Manager => {
            if grants_roles(resource, verb) && attribute_restricts(request, "grants_admin") {
                return Decision::deny("team manager may not grant the administrator role");
            }
            // Seed 002: managers "cannot modify or remove Administrators".
            if changes_a_member(resource, verb) && attribute_restricts(request, "target_admin") {
                return Decision::deny("team manager may not change or remove an administrator");
            }
            Decision::allow(concat(&["team manager may ", verb, " ", resource]))
        }
        Team::Invite if resource == "invitations" && (read || verb == "create") => {
            if !read && attribute_restricts(request, "grants_admin") {
                return Decision::deny("team invite may not grant the administrator role");
            }
            // api.md: an inviter "may grant only roles no higher than its own".
            if !read && attribute_restricts(request, "exceeds_own_roles") {
                return Decision::deny("team invite may not grant roles above its own");
            }
            Decision::allow(concat(&["team invite may ", verb, " invitations"]))
        }
        Team::Invite => Decision::deny(format!(
            "team invite may only see members and invite, not {verb} {resource}"
        )),
        Team::ReadOnly => Decision::deny(format!(
            "team read_only may only see members, not {verb} {resource}"
        )),
    }
}

/// Verbs that hand out account roles: adding a member, changing its roles, inviting.
fn grants_roles(resource: &str, verb: &str) -> bool {
    matches!(
        (resource, verb),
        ("users", "create" | "update_roles") | ("invitations", "create")
    )
}

/// Verbs that act on an existing member, who may be an administrator.
fn changes_a_member(resource: &str, verb: &str) -> bool {
    resource == "users"
        && matches!(
            verb,
            "update" | "update_roles" | "disable" | "enable" | "delete"
        )
}

/// `agent.bind`: the credential's ACL decides, whatever the roles (seed 002: even a
/// read-only developer may "use the ngrok agent to create endpoints").
fn bind(request: &Request) -> Decision {
    let Some(credential) = &request.principal.credential else {
        return Decision::deny("agent.bind needs the credential the agent presented");
    };
    let id = &credential.id;
    if !matches!(
        credential.kind,
        CredentialKind::Authtoken | CredentialKind::SshKey
    ) {
        return Decision::deny(format!(
            "only authtokens and SSH keys start agents; {id} is neither"
        ));
    }
    let target = &request.resource.id;
    if acl::is_unrestricted(&credential.acl) {
        Decision::allow(concat(&["credential ", id, " has no bind restriction"]))
    } else if acl::allows_bind(&credential.acl, target) {
        Decision::allow(concat(&[
            "the ACL of credential ",
            id,
            " allows binding ",
            target,
        ]))
    } else {
        Decision::deny(format!(
            "the ACL of credential {id} does not allow binding {target}"
        ))
    }
}
