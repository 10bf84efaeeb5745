//! Record encoding: one version byte, then postcard. A record type names its current
//! version; decoding an older version goes through that type's `upgrade`, so files
//! written by earlier builds stay readable without rewriting them.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::account::Account;
use crate::domain::bot::BotUser;
use crate::domain::credential::{Credential, RevokedCredential};
use crate::domain::event::Event;
use crate::domain::user::{Membership, User};
use crate::store::StoreError;
use crate::store::audit::AuditHead;

/// A type stored as a versioned record.
pub(crate) trait Record: Serialize + DeserializeOwned {
    /// The version written today.
    const VERSION: u8;
    /// The name used in error messages.
    const NAME: &'static str;

    /// Decode a record written at an older `version`. No record has an older version yet;
    /// when one changes shape, its old struct and conversion go here.
    fn upgrade(version: u8, _body: &[u8]) -> Result<Self, StoreError> {
        Err(StoreError::corrupt(
            Self::NAME,
            format!("unknown record version {version}"),
        ))
    }
}

macro_rules! record {
    ($($ty:ty => $version:literal, $name:literal;)*) => {$(
        impl Record for $ty {
            const VERSION: u8 = $version;
            const NAME: &'static str = $name;
        }
    )*};
}

record! {
    Account => 1, "account";
    User => 1, "user";
    Membership => 1, "membership";
    BotUser => 1, "bot user";
    Credential => 1, "credential";
    RevokedCredential => 1, "revoked credential";
    Event => 1, "event";
    AuditHead => 1, "audit head";
}

/// Encode `record` at its current version.
pub(crate) fn encode<R: Record>(record: &R) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![R::VERSION];
    postcard::to_io(record, &mut out).map_err(|e| StoreError::corrupt(R::NAME, e.to_string()))?;
    Ok(out)
}

/// Decode a record of any version this build knows.
pub(crate) fn decode<R: Record>(bytes: &[u8]) -> Result<R, StoreError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(StoreError::corrupt(R::NAME, "empty record"));
    };
    if version == R::VERSION {
        postcard::from_bytes(body).map_err(|e| StoreError::corrupt(R::NAME, e.to_string()))
    } else {
        R::upgrade(version, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::id::AccountId;
    use crate::domain::time::Timestamp;

    #[test]
    fn records_round_trip_and_unknown_versions_are_refused() {
        let account = Account::new(AccountId(5), "acme", Timestamp::from_millis(9)).unwrap();
        let bytes = encode(&account).unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(decode::<Account>(&bytes).unwrap(), account);
        let mut future = bytes.clone();
        future[0] = 9;
        assert!(matches!(
            decode::<Account>(&future),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(decode::<Account>(&[]).is_err());
        assert!(decode::<Account>(&bytes[..bytes.len() - 1]).is_err());
    }
}
