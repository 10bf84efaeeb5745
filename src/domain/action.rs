//! Action patterns: what a policy manifest routes and what an API key's scopes allow.
//! One grammar for both, three forms, nothing else:
//! `*` (every action), `namespace.*` (every action below `namespace.`) and an exact action.

use std::fmt;

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
}
