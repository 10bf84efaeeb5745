//! Bot users: service accounts of exactly one account. They never log in, take no seat,
//! carry no roles (they act as read/write developers), and can be made inactive.

use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::account::validate_display_name;
use crate::domain::id::{AccountId, BotId};
use crate::domain::time::Timestamp;

/// A bot user. It has no roles field on purpose: RBAC cannot be applied to a bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotUser {
    /// `bot_…`
    pub id: BotId,
    /// The one account it belongs to, fixed at creation.
    pub account: AccountId,
    /// Human-readable name.
    pub name: String,
    /// Inactive bots keep their credentials, but none of them verify.
    pub active: bool,
    /// When the bot was made.
    pub created_at: Timestamp,
}

/// A change to a bot user; `None` keeps the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BotPatch {
    /// New name.
    pub name: Option<String>,
    /// New active flag.
    pub active: Option<bool>,
}

impl BotUser {
    /// A new active bot user, validated.
    pub fn new(
        id: BotId,
        account: AccountId,
        name: &str,
        now: Timestamp,
    ) -> Result<BotUser, DomainError> {
        Ok(BotUser {
            id,
            account,
            name: validate_display_name(name)?,
            active: true,
            created_at: now,
        })
    }

    /// This bot after `patch`, validated.
    pub fn patched(&self, patch: &BotPatch) -> Result<BotUser, DomainError> {
        let name = match &patch.name {
            Some(name) => validate_display_name(name)?,
            None => self.name.clone(),
        };
        Ok(BotUser {
            name,
            active: patch.active.unwrap_or(self.active),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_bots_are_active_and_patches_validate() {
        let bot = BotUser::new(BotId(1), AccountId(2), "ci", Timestamp::from_millis(0)).unwrap();
        assert!(bot.active);
        let inactive = bot
            .patched(&BotPatch {
                active: Some(false),
                ..Default::default()
            })
            .unwrap();
        assert!(!inactive.active);
        assert_eq!(inactive.name, "ci");
        assert!(
            bot.patched(&BotPatch {
                name: Some(String::new()),
                ..Default::default()
            })
            .is_err()
        );
    }
}
