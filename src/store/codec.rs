//! Record encoding: one version byte, then postcard. A record type names its current
//! version; decoding an older version goes through that type's `upgrade`, so files
//! written by earlier builds stay readable without rewriting them.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::account::Account;
use crate::domain::bot::BotUser;
use crate::domain::credential::{Credential, RevokedCredential};
use crate::domain::destination::{DeliveryStatus, EventDestination};
use crate::domain::event::Event;
use crate::domain::federation::{ExternalIdentity, IdentityProvider};
use crate::domain::grant::{AssignmentSources, MemberGrants};
use crate::domain::invitation::Invitation;
use crate::domain::ip::{IpPolicy, IpPolicyRule, IpRestriction};
use crate::domain::scim::{ScimGroup, ScimGroupMapping, ScimProfile, ScimToken};
use crate::domain::session::{
    EmailProof, LinkPurpose, PasskeyRecord, RecentAttempts, Session, TotpRecord, UserLink,
};
use crate::domain::tenancy::{AddedPermission, CustomRole, RoleAssignment, Tenant};
use crate::domain::user::{Membership, User};
use crate::store::StoreError;
use crate::store::audit::{AuditCheckpoint, AuditHead};

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
    RevokedCredential => 1, "revoked credential";
    AuditHead => 1, "audit head";
    AuditCheckpoint => 1, "audit checkpoint";
    IpPolicy => 1, "IP policy";
    IpPolicyRule => 1, "IP policy rule";
    IpRestriction => 1, "IP restriction";
    Tenant => 1, "tenant";
    CustomRole => 1, "role";
    RoleAssignment => 1, "role assignment";
    AddedPermission => 1, "permission";
    Session => 1, "session";
    TotpRecord => 1, "TOTP enrollment";
    EmailProof => 1, "email proof";
    Invitation => 1, "invitation";
    RecentAttempts => 1, "recent attempts";
    EventDestination => 1, "event destination";
    DeliveryStatus => 1, "delivery status";
    PasskeyRecord => 1, "passkey";
    IdentityProvider => 1, "identity provider";
    ExternalIdentity => 1, "external identity";
    ScimToken => 1, "SCIM token";
    ScimProfile => 1, "SCIM profile";
    ScimGroup => 1, "SCIM group";
    ScimGroupMapping => 1, "SCIM group mapping";
    MemberGrants => 1, "member grants";
    AssignmentSources => 1, "assignment sources";
}

// Version 2 of credentials added `scopes` and `allowed_cidrs`; events embed credential
// snapshots, so they moved to version 2 with them.
impl Record for Credential {
    const VERSION: u8 = 2;
    const NAME: &'static str = "credential";

    fn upgrade(version: u8, body: &[u8]) -> Result<Self, StoreError> {
        match version {
            1 => postcard::from_bytes::<v1::Credential>(body)
                .map(Credential::from)
                .map_err(|e| StoreError::corrupt(Self::NAME, e.to_string())),
            other => Err(StoreError::corrupt(
                Self::NAME,
                format!("unknown record version {other}"),
            )),
        }
    }
}

// Version 2 of one-time links named their purpose; version 1 held only administrators'
// password resets, with the account they were issued in.
impl Record for UserLink {
    const VERSION: u8 = 2;
    const NAME: &'static str = "user link";

    fn upgrade(version: u8, body: &[u8]) -> Result<Self, StoreError> {
        match version {
            1 => postcard::from_bytes::<v1::PasswordReset>(body)
                .map(|old| UserLink {
                    user: old.user,
                    purpose: LinkPurpose::AdminReset {
                        account: old.account,
                    },
                    created_at: old.created_at,
                    expires_at: old.expires_at,
                })
                .map_err(|e| StoreError::corrupt(Self::NAME, e.to_string())),
            other => Err(StoreError::corrupt(
                Self::NAME,
                format!("unknown record version {other}"),
            )),
        }
    }
}

impl Record for Event {
    const VERSION: u8 = 2;
    const NAME: &'static str = "event";

    fn upgrade(version: u8, body: &[u8]) -> Result<Self, StoreError> {
        match version {
            1 => postcard::from_bytes::<v1::Event>(body)
                .map(Event::from)
                .map_err(|e| StoreError::corrupt(Self::NAME, e.to_string())),
            other => Err(StoreError::corrupt(
                Self::NAME,
                format!("unknown record version {other}"),
            )),
        }
    }
}

/// Shapes as version 1 wrote them, kept to read old files. Never written.
pub(crate) mod v1 {
    use serde::{Deserialize, Serialize};

    use crate::domain::account::Account;
    use crate::domain::acl::Acl;
    use crate::domain::bot::BotUser;
    use crate::domain::credential::{self, CredentialId, Owner};
    use crate::domain::event::{self, Action, Actor};
    use crate::domain::id::{AccountId, EventId};
    use crate::domain::ssh::SshPublicKey;
    use crate::domain::time::Timestamp;
    use crate::domain::user::{Membership, User};

    /// An administrator's password reset, before links named their purpose.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) struct PasswordReset {
        pub user: crate::domain::id::UserId,
        pub account: AccountId,
        pub created_at: Timestamp,
        pub expires_at: Timestamp,
    }

    /// A credential before scopes and allowed networks.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) struct Credential {
        pub id: CredentialId,
        pub account: AccountId,
        pub owner: Owner,
        pub created_at: Timestamp,
        pub description: String,
        pub metadata: String,
        pub expires_at: Option<Timestamp>,
        pub acl: Acl,
        pub personal: bool,
        pub ssh_key: Option<SshPublicKey>,
    }

    impl From<Credential> for credential::Credential {
        fn from(old: Credential) -> Self {
            credential::Credential {
                id: old.id,
                account: old.account,
                owner: old.owner,
                created_at: old.created_at,
                description: old.description,
                metadata: old.metadata,
                expires_at: old.expires_at,
                acl: old.acl,
                personal: old.personal,
                ssh_key: old.ssh_key,
                scopes: Vec::new(),
                allowed_cidrs: Vec::new(),
            }
        }
    }

    /// A snapshot embedding a version 1 credential.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) enum Snapshot {
        Account(Account),
        User(User),
        Member(User, Membership),
        Bot(BotUser),
        Credential(Credential),
    }

    impl From<Snapshot> for event::Snapshot {
        fn from(old: Snapshot) -> Self {
            match old {
                Snapshot::Account(a) => event::Snapshot::Account(a),
                Snapshot::User(u) => event::Snapshot::User(u),
                Snapshot::Member(u, m) => event::Snapshot::Member(u, m),
                Snapshot::Bot(b) => event::Snapshot::Bot(b),
                Snapshot::Credential(c) => event::Snapshot::Credential(Box::new(c.into())),
            }
        }
    }

    /// An event whose snapshots embed version 1 credentials.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) struct Event {
        pub id: EventId,
        pub account: AccountId,
        pub seq: u64,
        pub at: Timestamp,
        pub actor: Actor,
        pub action: Action,
        pub target: String,
        pub before: Option<Snapshot>,
        pub after: Option<Snapshot>,
        pub prev: [u8; 32],
    }

    impl From<Event> for event::Event {
        fn from(old: Event) -> Self {
            event::Event {
                id: old.id,
                account: old.account,
                seq: old.seq,
                at: old.at,
                actor: old.actor,
                action: old.action,
                target: old.target,
                before: old.before.map(Into::into),
                after: old.after.map(Into::into),
                prev: old.prev,
            }
        }
    }
}

/// The flag on a record's version byte that says a CRC-32 of everything before it ends
/// the record. Records written before it have none and are read as they were.
const CHECKED: u8 = 0x80;

/// Encode `record` at its current version: the version byte (flagged [`CHECKED`]),
/// postcard, and a CRC-32 (little-endian) of both, so a flipped byte anywhere is found
/// on read instead of being served as another value.
pub(crate) fn encode<R: Record>(record: &R) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![R::VERSION | CHECKED];
    postcard::to_io(record, &mut out).map_err(|e| StoreError::corrupt(R::NAME, e.to_string()))?;
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decode a record of any version this build knows. A checksum that does not match, a
/// body that does not decode, or bytes left over after it, are damage: an error naming
/// the record type, never a value.
pub(crate) fn decode<R: Record>(bytes: &[u8]) -> Result<R, StoreError> {
    let Some((&flagged, _)) = bytes.split_first() else {
        return Err(StoreError::corrupt(R::NAME, "empty record"));
    };
    let body = if flagged & CHECKED != 0 {
        let split = bytes.len().checked_sub(4).filter(|at| *at >= 1);
        let Some((checked, crc)) = split.and_then(|at| bytes.split_at_checked(at)) else {
            return Err(StoreError::corrupt(R::NAME, "truncated record"));
        };
        let stored = crc
            .try_into()
            .map(u32::from_le_bytes)
            .map_err(|_| StoreError::corrupt(R::NAME, "truncated record"))?;
        if crc32fast::hash(checked) != stored {
            return Err(StoreError::corrupt(
                R::NAME,
                "checksum mismatch: the stored bytes are damaged",
            ));
        }
        checked.get(1..).unwrap_or_default()
    } else {
        bytes.get(1..).unwrap_or_default()
    };
    let version = flagged & !CHECKED;
    if version == R::VERSION {
        let (record, rest) = postcard::take_from_bytes(body)
            .map_err(|e| StoreError::corrupt(R::NAME, e.to_string()))?;
        // Nothing is ever written after a record: bytes there are damage (a checksum
        // flag flipped off leaves the checksum behind as such bytes).
        if !rest.is_empty() {
            return Err(StoreError::corrupt(R::NAME, "bytes after the record"));
        }
        Ok(record)
    } else {
        R::upgrade(version, body)
    }
}

#[cfg(any(fuzzing, test))]
/// Decode `bytes` as every record type (the fuzz target `records`): each gives a record
/// or an error naming its type, never a panic; a record that claims a checksum it does
/// not match never decodes; a record that decodes encodes back to a record that decodes.
pub(crate) fn decode_as_every_type(bytes: &[u8]) {
    fn one<R: Record + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
        let decoded = decode::<R>(bytes);
        let claims_checksum = bytes.first().is_some_and(|b| b & CHECKED != 0);
        let matches = bytes.len() >= 5
            && bytes
                .split_at_checked(bytes.len() - 4)
                .is_some_and(|(head, crc)| {
                    crc.try_into()
                        .map(u32::from_le_bytes)
                        .is_ok_and(|stored| crc32fast::hash(head) == stored)
                });
        match decoded {
            Ok(record) => {
                assert!(
                    !claims_checksum || matches,
                    "{}: a damaged record decoded",
                    R::NAME
                );
                let again = encode(&record).map(|b| decode::<R>(&b).ok());
                assert!(
                    matches!(again, Ok(Some(ref r)) if *r == record),
                    "{}",
                    R::NAME
                );
            }
            Err(err) => assert!(err.to_string().contains(R::NAME), "{err}"),
        }
    }
    one::<Account>(bytes);
    one::<User>(bytes);
    one::<Membership>(bytes);
    one::<BotUser>(bytes);
    one::<Credential>(bytes);
    one::<RevokedCredential>(bytes);
    one::<Event>(bytes);
    one::<AuditHead>(bytes);
    one::<AuditCheckpoint>(bytes);
    one::<IpPolicy>(bytes);
    one::<IpPolicyRule>(bytes);
    one::<IpRestriction>(bytes);
    one::<Tenant>(bytes);
    one::<CustomRole>(bytes);
    one::<RoleAssignment>(bytes);
    one::<AddedPermission>(bytes);
    one::<Session>(bytes);
    one::<TotpRecord>(bytes);
    one::<EmailProof>(bytes);
    one::<Invitation>(bytes);
    one::<RecentAttempts>(bytes);
    one::<UserLink>(bytes);
    one::<EventDestination>(bytes);
    one::<DeliveryStatus>(bytes);
    one::<PasskeyRecord>(bytes);
    one::<IdentityProvider>(bytes);
    one::<ExternalIdentity>(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::id::AccountId;
    use crate::domain::time::Timestamp;

    /// The audit's finding: one flipped byte inside a record was served as another value.
    #[test]
    fn a_flipped_byte_anywhere_in_a_record_is_damage_not_a_value() {
        let account = Account::new(AccountId(5), "acme", Timestamp::from_millis(9)).unwrap();
        let bytes = encode(&account).unwrap();
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[at] ^= 1 << bit;
                let read = decode::<Account>(&damaged);
                assert!(
                    matches!(read, Err(StoreError::Corrupt { .. })),
                    "byte {at} bit {bit}: {read:?}"
                );
            }
        }
        // Unchecked records of older builds still read.
        let mut old = vec![1u8];
        old.extend(postcard::to_allocvec(&account).unwrap());
        assert_eq!(decode::<Account>(&old).unwrap(), account);
    }

    /// The fuzz target `records` over a seed corpus: every bit of a real record flipped,
    /// decoded as every type. Inputs the fuzzer finds to crash go here too.
    #[test]
    fn damaged_bytes_decode_as_no_type_and_never_panic() {
        let account = Account::new(AccountId(5), "acme", Timestamp::from_millis(9)).unwrap();
        let bytes = encode(&account).unwrap();
        decode_as_every_type(&bytes);
        decode_as_every_type(&[]);
        decode_as_every_type(&[0x80]);
        decode_as_every_type(&[0x81, 0, 0, 0, 0]);
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[at] ^= 1 << bit;
                decode_as_every_type(&damaged);
            }
        }
    }

    #[test]
    fn records_round_trip_and_unknown_versions_are_refused() {
        let account = Account::new(AccountId(5), "acme", Timestamp::from_millis(9)).unwrap();
        let bytes = encode(&account).unwrap();
        assert_eq!(bytes[0], 1 | CHECKED);
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

    /// A password reset written before links named their purpose reads as an
    /// administrator's reset in the account it was issued in (it proves no email).
    #[test]
    fn version_1_password_resets_are_administrators_links() {
        use crate::domain::id::UserId;
        let old = v1::PasswordReset {
            user: UserId(6),
            account: AccountId(5),
            created_at: Timestamp::from_millis(9),
            expires_at: Timestamp::from_millis(10),
        };
        let mut bytes = vec![1u8];
        bytes.extend(postcard::to_allocvec(&old).unwrap());
        let link = decode::<UserLink>(&bytes).unwrap();
        assert_eq!(
            link.purpose,
            LinkPurpose::AdminReset {
                account: AccountId(5)
            }
        );
        assert_eq!(
            (link.user, link.expires_at),
            (UserId(6), Timestamp::from_millis(10))
        );
        assert!(link.purpose.resets_password() && link.purpose.proves().is_none());
        assert_eq!(encode(&link).unwrap()[0], 2 | CHECKED);
    }

    /// A file written before credentials had scopes and networks still reads: the old
    /// credential and an event embedding it decode as version 2 with both empty.
    #[test]
    fn version_1_credentials_and_events_are_upgraded_on_read() {
        use crate::domain::acl::Acl;
        use crate::domain::credential::{CredentialId, CredentialKind, Owner};
        use crate::domain::event::{Action, Actor, Snapshot};
        use crate::domain::id::{EventId, UserId};

        let old = v1::Credential {
            id: CredentialId {
                kind: CredentialKind::ApiKey,
                raw: 77,
            },
            account: AccountId(5),
            owner: Owner::User(UserId(6)),
            created_at: Timestamp::from_millis(9),
            description: "ci".into(),
            metadata: String::new(),
            expires_at: None,
            acl: Acl::empty(),
            personal: false,
            ssh_key: None,
        };
        let mut bytes = vec![1u8];
        bytes.extend(postcard::to_allocvec(&old).unwrap());
        let upgraded = decode::<Credential>(&bytes).unwrap();
        assert_eq!(upgraded.description, "ci");
        assert!(upgraded.scopes.is_empty() && upgraded.allowed_cidrs.is_empty());
        // Written back, it is version 2 and round-trips.
        let again = encode(&upgraded).unwrap();
        assert_eq!(again[0], 2 | CHECKED);
        assert_eq!(decode::<Credential>(&again).unwrap(), upgraded);

        let event = v1::Event {
            id: EventId(1),
            account: AccountId(5),
            seq: 0,
            at: Timestamp::from_millis(9),
            actor: Actor::SYSTEM,
            action: Action::CredentialCreated(CredentialKind::ApiKey),
            target: "ak_x".into(),
            before: None,
            after: Some(v1::Snapshot::Credential(old)),
            prev: [0; 32],
        };
        let mut bytes = vec![1u8];
        bytes.extend(postcard::to_allocvec(&event).unwrap());
        let upgraded_event = decode::<Event>(&bytes).unwrap();
        assert_eq!(
            upgraded_event.after,
            Some(Snapshot::Credential(Box::new(upgraded)))
        );
    }
}
