//! Accounts: the tenant of record, its name and its settings.

use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::id::AccountId;
use crate::domain::time::Timestamp;

/// An account (an ngrok account): members, bots and credentials all belong to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// `ac_…`
    pub id: AccountId,
    /// Unique across the appliance, compared case-insensitively.
    pub name: String,
    /// When the account was made.
    pub created_at: Timestamp,
    /// Account-wide settings, changed only by administrators.
    pub settings: AccountSettings,
}

/// Settings of an account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    /// Every member must enrol a second factor.
    pub mfa_required: bool,
    /// Single sign-on enforcement.
    pub sso_mode: SsoMode,
    /// How new members join.
    pub provisioning: Provisioning,
}

/// Single sign-on mode (seed 000: "Mixed Mode" while testing, "SSO Enforced" once it
/// works).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsoMode {
    /// Members sign in with their own credentials; the account's identity providers sign
    /// nobody in.
    #[default]
    Off,
    /// Members sign in with their own credentials or through an identity provider.
    Mixed,
    /// Members sign in only through one of the account's enabled identity providers
    /// (API keys, authtokens and SSH keys are unaffected; `latchkey recover` still works).
    Enforced,
}

impl SsoMode {
    /// `off`, `mixed` or `enforced`.
    pub fn as_str(self) -> &'static str {
        match self {
            SsoMode::Off => "off",
            SsoMode::Mixed => "mixed",
            SsoMode::Enforced => "enforced",
        }
    }

    /// The mode named `text`.
    pub fn parse(text: &str) -> Result<SsoMode, DomainError> {
        match text {
            "off" => Ok(SsoMode::Off),
            "mixed" => Ok(SsoMode::Mixed),
            "enforced" => Ok(SsoMode::Enforced),
            other => Err(DomainError::invalid(
                "sso_mode",
                format!("{other:?} is not off, mixed or enforced"),
            )),
        }
    }
}

/// How people who are not members yet join (seed 001).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provisioning {
    /// By accepting an invitation (also through an identity provider), or added by an
    /// administrator.
    #[default]
    Invitations,
    /// Just-in-Time: a first SSO sign-in of a person unknown to the appliance makes its
    /// user and membership (developer read/write, team invite).
    Jit,
    /// By SCIM from the identity provider.
    Scim,
}

impl Provisioning {
    /// `invitations`, `jit` or `scim`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provisioning::Invitations => "invitations",
            Provisioning::Jit => "jit",
            Provisioning::Scim => "scim",
        }
    }

    /// The mode named `text`.
    pub fn parse(text: &str) -> Result<Provisioning, DomainError> {
        match text {
            "invitations" => Ok(Provisioning::Invitations),
            "jit" => Ok(Provisioning::Jit),
            "scim" => Ok(Provisioning::Scim),
            other => Err(DomainError::invalid(
                "provisioning",
                format!("{other:?} is not invitations, jit or scim"),
            )),
        }
    }
}

impl Account {
    /// A new account named `name`, validated.
    pub fn new(id: AccountId, name: &str, now: Timestamp) -> Result<Account, DomainError> {
        Ok(Account {
            id,
            name: validate_name(name)?,
            created_at: now,
            settings: AccountSettings::default(),
        })
    }

    /// The key under which the name is unique: names that look alike share it.
    pub fn name_key(name: &str) -> String {
        crate::domain::name::unique_key(name)
    }
}

fn validate_name(name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(DomainError::invalid("name", "must be 1 to 255 characters"));
    }
    crate::domain::name::check_visible("name", name)?;
    Ok(name.to_owned())
}

/// Validate a display name (of a user or bot): 1 to 255 characters, no control,
/// zero-width or bidirectional characters.
pub fn validate_display_name(name: &str) -> Result<String, DomainError> {
    validate_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_validated_and_keyed_case_insensitively() {
        let id = AccountId(1);
        let account = Account::new(id, "  Acme Corp ", Timestamp::from_millis(0)).unwrap();
        assert_eq!(account.name, "Acme Corp");
        assert_eq!(
            Account::name_key("ACME corp"),
            Account::name_key(&account.name)
        );
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(256)] {
            assert!(
                Account::new(id, bad, Timestamp::from_millis(0)).is_err(),
                "{bad:?}"
            );
        }
    }
}
