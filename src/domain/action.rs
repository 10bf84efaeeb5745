//! Action patterns: what a policy manifest routes and what an API key's scopes allow.
//! One grammar for both, three forms, nothing else:
//! `*` (every action), `namespace.*` (every action below `namespace.`) and an exact action.

use std::fmt;

use latchkey_policy_abi as abi;

use serde::{Deserialize, Serialize};

/// One action pattern: `*`, `namespace.*` or an exact action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ActionPattern {
    /// `*`: every action.
    Any,
    /// `iam.*`: every action below `iam.` (held with its trailing dot); not `iam` itself.
    Namespace(String),
    /// `agent.bind`: that action only.
    Exact(String),
}

impl ActionPattern {
    /// Whether `action` matches.
    pub fn matches(&self, action: &str) -> bool {
        match self {
            ActionPattern::Any => true,
            ActionPattern::Namespace(prefix) => {
                action.len() > prefix.len() && action.starts_with(prefix.as_str())
            }
            ActionPattern::Exact(exact) => action == exact,
        }
    }
}

impl TryFrom<String> for ActionPattern {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text == "*" {
            return Ok(ActionPattern::Any);
        }
        let (body, namespace) = match text.strip_suffix(".*") {
            Some(body) => (body, true),
            None => (text.as_str(), false),
        };
        // Rejecting `a*`, `*.b` or `a..b` outright is simpler to explain than giving them
        // a meaning; a glob language can come later without breaking these.
        let valid_segment = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !body.split('.').all(valid_segment) {
            return Err(format!(
                "invalid action pattern {text:?}: use \"*\", \"namespace.*\" or an exact \
                 action (segments of letters, digits, _ and -, separated by dots)"
            ));
        }
        Ok(if namespace {
            ActionPattern::Namespace(format!("{body}."))
        } else {
            ActionPattern::Exact(body.to_owned())
        })
    }
}

impl fmt::Display for ActionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionPattern::Any => f.write_str("*"),
            ActionPattern::Namespace(prefix) => write!(f, "{prefix}*"),
            ActionPattern::Exact(exact) => f.write_str(exact),
        }
    }
}

impl From<ActionPattern> for String {
    fn from(pattern: ActionPattern) -> String {
        pattern.to_string()
    }
}

/// Every `iam` resource the appliance serves, its object kind, and its verbs.
pub const IAM_ACTIONS: [(&str, &str, &[&str]); 22] = [
    ("account", "account", &["get", "update"]),
    (
        "users",
        "user",
        &[
            "list",
            "get",
            "create",
            "update",
            "update_roles",
            "disable",
            "enable",
            "delete",
            "password_reset",
        ],
    ),
    (
        "invitations",
        "invitation",
        &["list", "get", "create", "delete"],
    ),
    ("bot_users", "bot_user", CRUD),
    ("api_keys", "api_key", CRUD),
    (
        "credentials",
        "credential",
        &[
            "list", "get", "create", "update", "delete", "rotate", "verify",
        ],
    ),
    ("ssh_credentials", "ssh_credential", CRUD),
    ("ip_policies", "ip_policy", CRUD),
    ("ip_policy_rules", "ip_policy_rule", CRUD),
    ("ip_restrictions", "ip_restriction", CRUD),
    ("events", "event", &["list"]),
    ("event_destinations", "event_destination", CRUD),
    ("identity_providers", "identity_provider", CRUD),
    (
        "scim_tokens",
        "scim_token",
        &["list", "get", "create", "delete"],
    ),
    ("scim_groups", "scim_group", &["list", "get"]),
    ("scim_group_mappings", "scim_group_mapping", CRUD),
    ("policies", "policy_set", &["list"]),
    ("tenants", "tenant", CRUD),
    ("roles", "role", CRUD),
    (
        "role_assignments",
        "role_assignment",
        &["list", "get", "create", "delete"],
    ),
    (
        "permissions",
        "permission",
        &["list", "get", "create", "delete"],
    ),
    ("access_review", "access_review", &["get"]),
];

const CRUD: &[&str] = &["list", "get", "create", "update", "delete"];

/// The actions latchkey asks policies about outside [`IAM_ACTIONS`]: making an account
/// (bootstrap and import), the host operator's recovery of a member, and an agent's bind
/// (decided from the credential's ACL).
const OTHER_ACTIONS: [&str; 3] = ["iam.account.create", "iam.users.recover", "agent.bind"];

/// Every action latchkey itself asks policies about: the API's `iam` actions, the others
/// above and the built-in catalog's permissions. A manifest's patterns must match one of
/// these or lie in a namespace the manifest declares (see [`Vocabulary`]).
pub fn known_actions() -> impl Iterator<Item = String> {
    IAM_ACTIONS
        .into_iter()
        .flat_map(|(resource, _, verbs)| {
            verbs
                .iter()
                .map(move |verb| format!("iam.{resource}.{verb}"))
        })
        .chain(OTHER_ACTIONS.map(str::to_owned))
        .chain(abi::BUILTIN_CATALOG.map(str::to_owned))
}

/// The actions a policy may be routed: latchkey's own ([`known_actions`]) and the
/// namespaces an author declares for actions of their own (application actions,
/// permissions an operator adds to an account's catalog).
#[derive(Debug, Clone)]
pub struct Vocabulary {
    known: Vec<String>,
}

impl Default for Vocabulary {
    fn default() -> Self {
        Vocabulary {
            known: known_actions().collect(),
        }
    }
}

impl Vocabulary {
    /// Check a namespace an author declares: action segments, covering none of
    /// latchkey's own actions (`iam`, or `computers` of the catalog, would let a
    /// misspelling of one of them through), and not a near miss of one.
    pub fn check_namespace(&self, namespace: &str) -> Result<(), String> {
        let valid = ActionPattern::try_from(namespace.to_owned())
            .is_ok_and(|p| matches!(p, ActionPattern::Exact(_)));
        if !valid {
            return Err(format!(
                "namespace {namespace:?}: use segments of letters, digits, _ and -, \
                     separated by dots (as in \"acme\" or \"tickets.escalate\")"
            ));
        }
        let below = format!("{namespace}.");
        if let Some(known) = self
            .known
            .iter()
            .find(|a| *a == namespace || a.starts_with(&below))
        {
            return Err(format!(
                "namespace {namespace:?} covers latchkey's own action {known}: \
                 declare only namespaces of actions of your own"
            ));
        }
        // Stricter than a hint: one or two edits from latchkey's own is a misspelling.
        if let Some(near) = nearest(namespace, self.known.iter().map(String::as_str), 2) {
            return Err(format!(
                "namespace {namespace:?} is a near miss of latchkey's action {near}: \
                 route {near} in actions instead"
            ));
        }
        Ok(())
    }

    /// Check a routed (or excluded) pattern: it must match one of latchkey's actions or
    /// lie in one of `namespaces`; otherwise the error says which known action or
    /// namespace comes nearest.
    pub fn check_pattern(
        &self,
        pattern: &ActionPattern,
        namespaces: &[String],
    ) -> Result<(), String> {
        let declared = |text: &str| {
            namespaces
                .iter()
                .any(|ns| text == ns || text.starts_with(&format!("{ns}.")))
        };
        let ok = match pattern {
            ActionPattern::Any => true,
            ActionPattern::Namespace(prefix) => {
                declared(prefix.trim_end_matches('.'))
                    || self.known.iter().any(|a| pattern.matches(a))
            }
            ActionPattern::Exact(action) => declared(action) || self.known.contains(action),
        };
        if ok {
            return Ok(());
        }
        let text = pattern.to_string();
        let suggestion = match pattern {
            ActionPattern::Namespace(_) => {
                let prefixes = self.known.iter().flat_map(|a| {
                    a.match_indices('.')
                        .map(move |(at, _)| a.get(..at).unwrap_or(a))
                });
                let declared = namespaces.iter().map(String::as_str);
                nearest(text.trim_end_matches(".*"), prefixes.chain(declared), 3)
                    .map(|near| format!("{near}.*"))
            }
            _ => nearest(&text, self.known.iter().map(String::as_str), 3).map(str::to_owned),
        };
        let hint = match suggestion {
            Some(near) => format!("did you mean {near}?"),
            None => "latchkey decides iam.* (the API), agent.bind and the catalog's \
                     permissions; declare actions of your own under `namespaces`"
                .to_owned(),
        };
        Err(format!("{text} matches no action latchkey knows: {hint}"))
    }
}

/// The candidate nearest `text` by edit distance, when it is near enough to be what was
/// meant: at most a third of the text's length, and at most `most` edits.
fn nearest<'a>(
    text: &str,
    candidates: impl Iterator<Item = &'a str>,
    most: usize,
) -> Option<&'a str> {
    let limit = (text.chars().count() / 3).clamp(1, most);
    candidates
        .filter(|c| *c != text)
        .map(|c| (strsim::levenshtein(text, c), c))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_parse_and_match_and_nothing_else_parses() {
        let parse = |t: &str| ActionPattern::try_from(t.to_owned());
        assert!(parse("*").unwrap().matches("iam.users.get"));
        let iam = parse("iam.*").unwrap();
        assert!(iam.matches("iam.users.get") && !iam.matches("iam") && !iam.matches("iamx.y"));
        assert!(parse("agent.bind").unwrap().matches("agent.bind"));
        for bad in ["", "iam*", "*.get", "iam..x", "iam.*.get", "iam. x"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse("iam.bot_users.*").unwrap().to_string(),
            "iam.bot_users.*"
        );
    }

    #[test]
    fn a_pattern_must_match_a_known_action_or_a_declared_namespace() {
        let vocabulary = Vocabulary::default();
        let check = |pattern: &str, namespaces: &[&str]| {
            let namespaces: Vec<String> = namespaces.iter().map(|n| (*n).to_owned()).collect();
            vocabulary.check_pattern(
                &ActionPattern::try_from(pattern.to_owned()).unwrap(),
                &namespaces,
            )
        };
        for known in [
            "*",
            "iam.*",
            "iam.users.*",
            "iam.api_keys.create",
            "iam.users.password_reset",
            "agent.bind",
            "computers.remote_control",
            "computers.*",
        ] {
            assert_eq!(check(known, &[]), Ok(()), "{known}");
        }
        for (typo, hint) in [
            (
                "computers.remote_controll",
                "did you mean computers.remote_control?",
            ),
            ("iam.api_key.create", "did you mean iam.api_keys.create?"),
            ("iam.user.*", "did you mean iam.users.*?"),
            (
                "tickets.close",
                "declare actions of your own under `namespaces`",
            ),
        ] {
            let error = check(typo, &[]).unwrap_err();
            assert!(error.ends_with(hint), "{typo}: {error}");
        }
        assert_eq!(check("tickets.close", &["tickets"]), Ok(()));
        assert_eq!(check("tickets.*", &["tickets"]), Ok(()));
        assert_eq!(check("acme.billing.export", &["acme.billing"]), Ok(()));
        assert!(check("acme.other", &["acme.billing"]).is_err());
    }

    #[test]
    fn a_namespace_of_ones_own_may_not_cover_or_shadow_latchkeys_actions() {
        let vocabulary = Vocabulary::default();
        assert_eq!(vocabulary.check_namespace("tickets"), Ok(()));
        assert_eq!(vocabulary.check_namespace("computers.wipe"), Ok(()));
        for (namespace, says) in [
            ("iam", "covers latchkey's own action"),
            ("computers", "covers latchkey's own action"),
            ("agent.bind", "covers latchkey's own action"),
            (
                "computers.remote_controll",
                "near miss of latchkey's action computers.remote_control",
            ),
            ("acme.*", "use segments"),
            ("", "use segments"),
        ] {
            let error = vocabulary.check_namespace(namespace).unwrap_err();
            assert!(error.contains(says), "{namespace}: {error}");
        }
    }
}
