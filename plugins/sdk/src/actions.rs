//! Action patterns (`*`, `iam.*`, `iam.bot_users.*`, exact names) and the API-key scope
//! check every built-in applies: a key's rights are its owner's rights intersected with
//! its scopes. Pure functions over the request; no policy decisions beyond that.

use alloc::format;

use latchkey_policy_abi::Decision;
use latchkey_policy_abi::view::Request;

/// Whether action `pattern` matches `action`.
///
/// Three forms: `*` matches every action; `prefix.*` matches every action that starts
/// with `prefix.` and has at least one more segment (`iam.*` matches `iam.users.get` but
/// not `iam`); anything else matches only itself. A `*` anywhere else is not a wildcard,
/// so a mistyped scope narrows (matches nothing) rather than widens. Rejected: full glob
/// syntax, because a scope is a security boundary and three forms are easy to audit.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    if pattern == "*" {
        return !action.is_empty();
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) if !prefix.is_empty() => action
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| !rest.is_empty()),
        _ => pattern == action,
    }
}

/// Whether pattern `outer` matches every action pattern `inner` matches: `*` covers
/// everything, `prefix.*` covers itself and every pattern strictly below `prefix.`, an
/// exact name covers only itself. The scope ceiling uses it: a key may hand out only
/// scopes its own scopes cover.
///
/// ```
/// use latchkey_policy_sdk::pattern_covers;
/// assert!(pattern_covers("iam.*", "iam.users.*"));
/// assert!(pattern_covers("iam.users.*", "iam.users.get"));
/// assert!(!pattern_covers("iam.users.get", "iam.users.*"));
/// assert!(!pattern_covers("iam.users.*", "*"));
/// ```
pub fn pattern_covers(outer: &str, inner: &str) -> bool {
    if outer == inner || outer == "*" {
        return true;
    }
    match outer.strip_suffix(".*") {
        Some(prefix) if !prefix.is_empty() => {
            // Compare what `inner` names without its own wildcard: `iam.users.*` lies
            // below `iam.` exactly as `iam.users.get` does.
            let body = inner.strip_suffix(".*").unwrap_or(inner);
            body.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|rest| !rest.is_empty())
        }
        _ => false,
    }
}

/// The first of `requested` that no pattern of `ceiling` covers; `None` when each is
/// covered. An empty `ceiling` means no limit, so it covers everything.
pub fn first_uncovered<'a>(ceiling: &[&str], requested: &[&'a str]) -> Option<&'a str> {
    if ceiling.is_empty() {
        return None;
    }
    requested
        .iter()
        .copied()
        .find(|wanted| !ceiling.iter().any(|have| pattern_covers(have, wanted)))
}

/// Whether the credential's scopes let it attempt `request.action`: true when it has no
/// credential, no scopes (no limit beyond its owner's rights), or a scope that matches.
pub fn scopes_allow(request: &Request<'_>) -> bool {
    match &request.principal.credential {
        None => true,
        Some(credential) => {
            credential.scopes.is_empty()
                || credential
                    .scopes
                    .iter()
                    .any(|scope| action_matches(scope, request.action))
        }
    }
}

/// The deny a policy returns when [`scopes_allow`] is false, naming the credential and
/// the action; `None` when the scopes allow the action.
pub fn scope_denial(request: &Request<'_>) -> Option<Decision> {
    if scopes_allow(request) {
        return None;
    }
    let id = request.principal.credential.as_ref().map_or("", |c| c.id);
    Some(Decision::deny(format!(
        "the scopes of credential {id} do not include {}",
        request.action
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use latchkey_policy_abi::view::{Context, CredentialInfo, Principal, Resource};
    use latchkey_policy_abi::{CredentialKind, Mfa, Outcome, PrincipalKind};

    #[test]
    fn pattern_table() {
        let cases = [
            ("*", "iam.users.get", true),
            ("*", "computers.view", true),
            ("*", "", false),
            ("iam.*", "iam.users.get", true),
            ("iam.*", "iam.x", true),
            ("iam.*", "iam", false),
            ("iam.*", "iam.", false),
            ("iam.*", "iamx.users.get", false),
            ("iam.*", "agent.bind", false),
            ("iam.bot_users.*", "iam.bot_users.create", true),
            ("iam.bot_users.*", "iam.bot_users", false),
            ("iam.bot_users.*", "iam.bot_users_x.create", false),
            ("iam.bot_users.*", "iam.api_keys.create", false),
            ("iam.users.get", "iam.users.get", true),
            ("iam.users.get", "iam.users.get.x", false),
            ("iam.users.get", "iam.users.list", false),
            // Not wildcards: a star anywhere but alone or as the last whole segment.
            ("iam.*.get", "iam.users.get", false),
            ("iam*", "iam.users.get", false),
            (".*", "x", false),
            ("", "", true),
        ];
        for (pattern, action, want) in cases {
            assert_eq!(
                action_matches(pattern, action),
                want,
                "{pattern:?} vs {action:?}"
            );
        }
    }

    fn request<'a>(action: &'a str, scopes: Option<Vec<&'a str>>) -> Request<'a> {
        Request {
            principal: Principal {
                kind: PrincipalKind::User,
                id: "usr_a",
                account: "ac_1",
                roles: None,
                assignments: vec![],
                mfa: Mfa::default(),
                credential: scopes.map(|s| CredentialInfo {
                    kind: CredentialKind::ApiKey,
                    id: "ak_1",
                    personal: false,
                    acl: vec![],
                    scopes: s,
                }),
                source_ip: None,
            },
            action,
            resource: Resource {
                kind: "user",
                id: "usr_b",
                account: "ac_1",
                tenant: None,
                owner: None,
                permission: None,
                attributes: vec![],
            },
            context: Context {
                time_ms: 0,
                values: vec![],
            },
        }
    }

    #[test]
    fn covering_table() {
        let cases = [
            ("*", "*", true),
            ("*", "iam.users.get", true),
            ("iam.*", "iam.*", true),
            ("iam.*", "iam.users.*", true),
            ("iam.*", "iam.users.get", true),
            ("iam.*", "*", false),
            ("iam.*", "iamx.users.get", false),
            ("iam.*", "agent.bind", false),
            ("iam.users.*", "iam.users.get", true),
            ("iam.users.*", "iam.*", false),
            ("iam.users.*", "iam.users_x.get", false),
            ("iam.users.*", "iam.users", false),
            ("iam.users.get", "iam.users.get", true),
            ("iam.users.get", "iam.users.*", false),
            ("iam.users.get", "iam.users.list", false),
        ];
        for (outer, inner, want) in cases {
            assert_eq!(
                pattern_covers(outer, inner),
                want,
                "{outer:?} covers {inner:?}"
            );
        }
        let ceiling = vec!["iam.bot_users.*", "iam.api_keys.get"];
        assert_eq!(first_uncovered(&ceiling, &["iam.bot_users.get"]), None);
        assert_eq!(
            first_uncovered(&ceiling, &["iam.bot_users.*", "iam.api_keys.*"]),
            Some("iam.api_keys.*")
        );
        assert_eq!(first_uncovered(&[], &["*"]), None);
    }

    #[test]
    fn scopes_intersect() {
        assert!(scopes_allow(&request("iam.users.get", None)));
        assert!(scopes_allow(&request("iam.users.get", Some(vec![]))));
        assert!(scopes_allow(&request(
            "iam.users.get",
            Some(vec!["iam.bot_users.*", "iam.users.get"])
        )));
        let narrowed = request("iam.users.delete", Some(vec!["iam.bot_users.*"]));
        assert!(!scopes_allow(&narrowed));
        let denial = scope_denial(&narrowed).unwrap();
        assert_eq!(denial.outcome, Outcome::Deny);
        assert_eq!(
            denial.reason,
            "the scopes of credential ak_1 do not include iam.users.delete"
        );
        assert_eq!(scope_denial(&request("x", None)), None);
    }
}
