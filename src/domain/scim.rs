//! SCIM 2.0 provisioning (RFC 7643/7644) as the model keeps it: the tokens an identity
//! provider presents to an account's SCIM endpoint, and what SCIM says about a member
//! beyond latchkey's own user (its `userName`, `externalId`, name parts and emails, kept
//! exactly as the provider sent them, because providers compare what they read back).
//! The protocol itself (filters, PATCH, the JSON shapes) is the `scim` surface's.

use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::grant::Granted;
use crate::domain::id::{AccountId, ScimGroupId, ScimGroupMappingId, ScimTokenId, UserId};
use crate::domain::time::Timestamp;
use crate::domain::user::Roles;

/// The longest `userName`, `externalId`, name part or email value kept.
pub const MAX_TEXT: usize = 255;
/// Emails per member, at most.
pub const MAX_EMAILS: usize = 10;
/// The longest description of a SCIM token.
const MAX_DESCRIPTION: usize = 255;

/// A SCIM token of one account: the keyed hash of its secret only (the token is shown
/// once, when made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimToken {
    /// `scimtok_…`
    pub id: ScimTokenId,
    /// The account whose members it provisions.
    pub account: AccountId,
    /// What it is for (which provider holds it).
    pub description: String,
    /// HMAC-SHA-256 of the token's secret under a server key.
    pub hash: [u8; 32],
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was last presented (noted at most once a minute).
    pub last_used_at: Option<Timestamp>,
}

/// A description as given: trimmed, at most 255 characters, no control characters.
pub fn validate_description(text: &str) -> Result<String, DomainError> {
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION || text.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "description",
            "description is at most 255 characters, without control characters",
        ));
    }
    Ok(text.to_owned())
}

/// A person's name as SCIM gives it (`name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimName {
    /// `formatted`.
    pub formatted: Option<String>,
    /// `familyName`.
    pub family_name: Option<String>,
    /// `givenName`.
    pub given_name: Option<String>,
}

impl ScimName {
    /// Whether no part is given.
    pub fn is_empty(&self) -> bool {
        self.formatted.is_none() && self.family_name.is_none() && self.given_name.is_none()
    }

    /// The name as one line: `formatted`, else the given and family names.
    pub fn display(&self) -> Option<String> {
        self.formatted.clone().or_else(|| {
            let parts: Vec<&str> = [self.given_name.as_deref(), self.family_name.as_deref()]
                .into_iter()
                .flatten()
                .filter(|p| !p.trim().is_empty())
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
    }
}

/// One of a member's emails as SCIM gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimEmail {
    /// The address.
    pub value: String,
    /// `type` (`work`, `home`, `other`).
    pub kind: Option<String>,
    /// Whether it is the primary address (the user's email); kept as given (absent,
    /// false or true), since providers compare what they read back.
    pub primary: Option<bool>,
}

/// What SCIM keeps about one membership. A member with one is managed by SCIM: its name
/// and email change only through SCIM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimProfile {
    /// The account.
    pub account: AccountId,
    /// The member.
    pub user: UserId,
    /// `userName`, as the provider sent it (unique in the account, compared without
    /// case).
    pub user_name: String,
    /// `externalId`: the provider's own id for the person.
    pub external_id: Option<String>,
    /// `name`.
    pub name: ScimName,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `emails`; the primary one (or the first) is the user's email.
    pub emails: Vec<ScimEmail>,
    /// When SCIM first wrote it.
    pub created_at: Timestamp,
    /// When SCIM last changed it.
    pub updated_at: Timestamp,
}

impl ScimProfile {
    /// The address the user's email follows: the primary one, else the first.
    pub fn primary_email(&self) -> Option<&str> {
        self.emails
            .iter()
            .find(|e| e.primary == Some(true))
            .or_else(|| self.emails.first())
            .map(|e| e.value.as_str())
    }

    /// Check every field's size: text at most 255 characters without control
    /// characters, at most ten emails, at most one primary.
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.user_name.trim().is_empty() {
            return Err(DomainError::invalid("userName", "userName is required"));
        }
        check("userName", &self.user_name)?;
        for (field, text) in [
            ("externalId", self.external_id.as_deref()),
            ("name.formatted", self.name.formatted.as_deref()),
            ("name.familyName", self.name.family_name.as_deref()),
            ("name.givenName", self.name.given_name.as_deref()),
            ("displayName", self.display_name.as_deref()),
        ] {
            if let Some(text) = text {
                check(field, text)?;
            }
        }
        if self.emails.len() > MAX_EMAILS {
            return Err(DomainError::invalid("emails", "at most 10 emails"));
        }
        if self
            .emails
            .iter()
            .filter(|e| e.primary == Some(true))
            .count()
            > 1
        {
            return Err(DomainError::invalid(
                "emails",
                "at most one email is primary",
            ));
        }
        for email in &self.emails {
            check("emails.value", &email.value)?;
            if let Some(kind) = &email.kind {
                check("emails.type", kind)?;
            }
        }
        Ok(())
    }
}

/// Members of one group, at most.
pub const MAX_GROUP_MEMBERS: usize = 10_000;

/// A SCIM group of an account: a name and members of the account (people, never other
/// groups). What it grants (roles, tenant roles) is its mapping's, which comes with
/// group mappings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimGroup {
    /// `grp_…`
    pub id: ScimGroupId,
    /// The account.
    pub account: AccountId,
    /// `displayName`, as the provider sent it.
    pub display_name: String,
    /// `externalId`: the provider's own id for the group.
    pub external_id: Option<String>,
    /// The members, in the order given.
    pub members: Vec<UserId>,
    /// When SCIM made it.
    pub created_at: Timestamp,
    /// When SCIM last changed it.
    pub updated_at: Timestamp,
}

impl ScimGroup {
    /// Check the name's and the external id's size and the members' count.
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.display_name.trim().is_empty() {
            return Err(DomainError::invalid(
                "displayName",
                "displayName is required",
            ));
        }
        check("displayName", &self.display_name)?;
        if let Some(external) = &self.external_id {
            check("externalId", external)?;
        }
        if self.members.len() > MAX_GROUP_MEMBERS {
            return Err(DomainError::invalid(
                "members",
                "a group holds at most 10,000 members",
            ));
        }
        Ok(())
    }
}

/// Tenant role assignments one mapping grants, at most.
pub const MAX_MAPPED_ASSIGNMENTS: usize = 100;

/// What an administrator maps a SCIM group to: its members hold these account roles and
/// tenant role assignments while they are in the group (one mapping per group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimGroupMapping {
    /// `sgm_…`
    pub id: ScimGroupMappingId,
    /// The account.
    pub account: AccountId,
    /// The group it maps.
    pub group: ScimGroupId,
    /// Account roles its members get (`None`: none beyond their own). `admin` only when
    /// the administrator said so.
    pub roles: Option<Roles>,
    /// Tenant role assignments its members get, without repeats.
    pub role_assignments: Vec<Granted>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl ScimGroupMapping {
    /// At most [`MAX_MAPPED_ASSIGNMENTS`] assignments, none twice.
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.role_assignments.len() > MAX_MAPPED_ASSIGNMENTS {
            return Err(DomainError::invalid(
                "role_assignments",
                "a mapping grants at most 100 role assignments",
            ));
        }
        for (index, assignment) in self.role_assignments.iter().enumerate() {
            if self
                .role_assignments
                .iter()
                .take(index)
                .any(|a| a == assignment)
            {
                return Err(DomainError::invalid(
                    "role_assignments",
                    "the same role in the same tenant is listed twice",
                ));
            }
        }
        Ok(())
    }
}

/// A text field SCIM gives: at most 255 characters, no control characters.
fn check(field: &'static str, text: &str) -> Result<(), DomainError> {
    if text.chars().count() > MAX_TEXT || text.chars().any(char::is_control) {
        Err(DomainError::invalid(
            field,
            format!("{field} is at most 255 characters, without control characters"),
        ))
    } else {
        Ok(())
    }
}

/// The key `userName` is unique by in an account: compared without case (RFC 7643
/// makes `userName` case-insensitive).
pub fn user_name_key(user_name: &str) -> String {
    user_name.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> ScimProfile {
        ScimProfile {
            account: AccountId(1),
            user: UserId(2),
            user_name: "Dana@Example.com".into(),
            external_id: None,
            name: ScimName::default(),
            display_name: None,
            emails: vec![
                ScimEmail {
                    value: "home@example.com".into(),
                    kind: Some("home".into()),
                    primary: Some(false),
                },
                ScimEmail {
                    value: "dana@example.com".into(),
                    kind: Some("work".into()),
                    primary: Some(true),
                },
            ],
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn the_primary_email_is_the_users_else_the_first() {
        let mut p = profile();
        assert_eq!(p.primary_email(), Some("dana@example.com"));
        for e in &mut p.emails {
            e.primary = None;
        }
        assert_eq!(p.primary_email(), Some("home@example.com"));
        p.emails.clear();
        assert_eq!(p.primary_email(), None);
    }

    #[test]
    fn sizes_control_characters_and_two_primaries_are_refused() {
        assert!(profile().validate().is_ok());
        let mut p = profile();
        p.user_name = "x".repeat(256);
        assert!(p.validate().is_err());
        let mut p = profile();
        p.display_name = Some("a\u{7}b".into());
        assert!(p.validate().is_err());
        let mut p = profile();
        for e in &mut p.emails {
            e.primary = Some(true);
        }
        assert!(p.validate().is_err());
        let mut p = profile();
        p.user_name = "  ".into();
        assert!(p.validate().is_err());
    }

    #[test]
    fn a_name_reads_as_formatted_else_given_and_family() {
        let mut name = ScimName {
            formatted: None,
            family_name: Some("Lee".into()),
            given_name: Some("Dana".into()),
        };
        assert_eq!(name.display().as_deref(), Some("Dana Lee"));
        name.formatted = Some("Dr. Dana Lee".into());
        assert_eq!(name.display().as_deref(), Some("Dr. Dana Lee"));
        assert_eq!(ScimName::default().display(), None);
        assert_eq!(user_name_key("Dana@Example.COM"), "dana@example.com");
    }
}
