//! Credentials: authtokens, API keys and SSH public keys; their owners, ACLs and
//! expiry, and the answer to "who is this?" ([`Verified`] or a [`Rejection`]).
//!
//! A credential's owner and account are fixed at creation: [`CredentialPatch`] has no
//! field for either, so no code path can move a credential.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::acl::Acl;
use crate::domain::action::ActionPattern;
use crate::domain::id::{AccountId, AnyId, BotId, IdText, UserId, decode_base62};
use crate::domain::ssh::SshPublicKey;
use crate::domain::time::Timestamp;
use crate::domain::token::TokenKind;
use ipnet::IpNet;

/// The three kinds of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// Agent authtoken (`cr_…`), presented as an `lk_at_` token.
    Authtoken,
    /// API key (`ak_…`), presented as an `lk_ak_` token.
    ApiKey,
    /// SSH public key (`sshcr_…`), presented as the key itself.
    SshKey,
}

impl CredentialKind {
    /// The id prefix, as ngrok names these resources.
    pub fn id_prefix(self) -> &'static str {
        match self {
            CredentialKind::Authtoken => "cr",
            CredentialKind::ApiKey => "ak",
            CredentialKind::SshKey => "sshcr",
        }
    }

    /// The kind as the API and CLI name it.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Authtoken => "authtoken",
            CredentialKind::ApiKey => "api_key",
            CredentialKind::SshKey => "ssh_key",
        }
    }

    /// The token kind for bearer credentials; `None` for SSH keys.
    pub fn token_kind(self) -> Option<TokenKind> {
        match self {
            CredentialKind::Authtoken => Some(TokenKind::Authtoken),
            CredentialKind::ApiKey => Some(TokenKind::ApiKey),
            CredentialKind::SshKey => None,
        }
    }

    /// The credential kind a token kind stands for.
    pub fn of_token(kind: TokenKind) -> Option<CredentialKind> {
        match kind {
            TokenKind::Authtoken => Some(CredentialKind::Authtoken),
            TokenKind::ApiKey => Some(CredentialKind::ApiKey),
            TokenKind::Scim => None,
        }
    }
}

/// A credential id: its kind gives the prefix; the 128-bit value is unique across kinds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CredentialId {
    /// Which kind of credential.
    pub kind: CredentialKind,
    /// The time-sortable value; the storage key.
    pub raw: u128,
}

impl crate::domain::id::RawId for CredentialId {
    fn raw_id(self) -> u128 {
        self.raw
    }
}

impl CredentialId {
    /// The id's text, without allocating.
    pub fn text(self) -> IdText {
        IdText::new(self.kind.id_prefix(), self.raw)
    }

    /// An authtoken id with value `raw`.
    pub fn authtoken(raw: u128) -> Self {
        CredentialId {
            kind: CredentialKind::Authtoken,
            raw,
        }
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for CredentialId {
    type Err = DomainError;
    fn from_str(text: &str) -> Result<Self, DomainError> {
        let bad = || DomainError::invalid("id", format!("{text:?} is not a valid credential id"));
        let (prefix, body) = text.split_once('_').ok_or_else(bad)?;
        let kind = [
            CredentialKind::Authtoken,
            CredentialKind::ApiKey,
            CredentialKind::SshKey,
        ]
        .into_iter()
        .find(|k| k.id_prefix() == prefix)
        .ok_or_else(bad)?;
        let raw = decode_base62(body.as_bytes()).ok_or_else(bad)?;
        Ok(CredentialId { kind, raw })
    }
}

impl From<CredentialId> for AnyId {
    fn from(id: CredentialId) -> AnyId {
        AnyId(id.to_string())
    }
}

/// Who owns a credential: a user or a bot user. Fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Owner {
    /// A person (member of the credential's account).
    User(UserId),
    /// A bot user of the credential's account.
    Bot(BotId),
}

impl Owner {
    /// The owner's id value (unique across users and bots).
    pub fn raw(self) -> u128 {
        match self {
            Owner::User(UserId(raw)) | Owner::Bot(BotId(raw)) => raw,
        }
    }

    /// `"user"` or `"bot"`.
    pub fn kind_str(self) -> &'static str {
        match self {
            Owner::User(_) => "user",
            Owner::Bot(_) => "bot",
        }
    }

    /// The owner's id in text form.
    pub fn id_string(self) -> String {
        match self {
            Owner::User(id) => id.to_string(),
            Owner::Bot(id) => id.to_string(),
        }
    }

    /// Parse `usr_…` or `bot_…`.
    pub fn parse(text: &str) -> Result<Owner, DomainError> {
        if text.starts_with("bot_") {
            text.parse().map(Owner::Bot)
        } else {
            text.parse().map(Owner::User)
        }
    }
}

/// A credential as stored. The secret's keyed hash is kept apart from this record, so a
/// credential can be shown, logged or put in an audit event without it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// `cr_…`, `ak_…` or `sshcr_…`.
    pub id: CredentialId,
    /// The one account it belongs to.
    pub account: AccountId,
    /// Its owner, fixed at creation.
    pub owner: Owner,
    /// When it was made.
    pub created_at: Timestamp,
    /// Free text, at most 255 bytes.
    pub description: String,
    /// Free text, at most 4096 bytes.
    pub metadata: String,
    /// After this instant it no longer verifies.
    pub expires_at: Option<Timestamp>,
    /// Bind rules (authtokens and SSH keys; always empty for API keys).
    pub acl: Acl,
    /// The member's personal authtoken, made when it joined.
    pub personal: bool,
    /// The public key of an SSH credential.
    pub ssh_key: Option<SshPublicKey>,
    /// API keys only: the action patterns it may attempt; empty means its owner's rights
    /// unnarrowed. The key's rights are the owner's intersected with these.
    pub scopes: Vec<ActionPattern>,
    /// API keys and authtokens: the networks it works from; empty means anywhere.
    pub allowed_cidrs: Vec<IpNet>,
}

/// What a caller supplies to create a credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialSpec {
    /// Free text, at most 255 bytes.
    pub description: String,
    /// Free text, at most 4096 bytes.
    pub metadata: String,
    /// Optional expiry, which must lie in the future.
    pub expires_at: Option<Timestamp>,
    /// Bind rules; only authtokens and SSH keys take them.
    pub acl: Vec<String>,
    /// Action patterns; only API keys take them.
    pub scopes: Vec<String>,
    /// Networks (`10.0.0.0/8`, `2001:db8::/32`, or single addresses); only API keys and
    /// authtokens take them.
    pub allowed_cidrs: Vec<String>,
}

/// A change to a credential; `None` keeps the field. There is deliberately no owner,
/// account or kind here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialPatch {
    /// New description.
    pub description: Option<String>,
    /// New metadata.
    pub metadata: Option<String>,
    /// New bind rules.
    pub acl: Option<Vec<String>>,
    /// New scopes (API keys).
    pub scopes: Option<Vec<String>>,
    /// New allowed networks (API keys and authtokens).
    pub allowed_cidrs: Option<Vec<String>>,
}

/// What a credential made or changed by an API key may not exceed: that key's own bounds
/// (issue 11: a credential never grants more than the credential that made it). The scope
/// ceiling itself is the policies' to decide (they see both scope lists); networks and
/// expiry are checked here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceiling {
    /// The calling key.
    pub key: CredentialId,
    /// Its scopes (empty: unrestricted).
    pub scopes: Vec<ActionPattern>,
    /// Its networks (empty: anywhere).
    pub networks: Vec<IpNet>,
    /// Its expiry.
    pub expires_at: Option<Timestamp>,
}

/// How a credential reaches past a [`Ceiling`]: the field, and a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beyond {
    /// `allowed_cidrs` or `expires_at`.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

impl Ceiling {
    /// The ceiling of `key` (an API key).
    pub fn of(key: &Credential) -> Ceiling {
        Ceiling {
            key: key.id,
            scopes: key.scopes.clone(),
            networks: key.allowed_cidrs.clone(),
            expires_at: key.expires_at,
        }
    }

    /// Fill what `spec` leaves open from the calling key: no scopes means the caller's
    /// scopes (never "everything"), no networks the caller's networks, no expiry the
    /// caller's expiry. What `spec` states is kept, to be judged.
    pub fn fill(&self, kind: CredentialKind, spec: &mut CredentialSpec) {
        if kind == CredentialKind::ApiKey && spec.scopes.is_empty() {
            spec.scopes = self.scopes.iter().map(ToString::to_string).collect();
        }
        if kind != CredentialKind::SshKey && spec.allowed_cidrs.is_empty() {
            spec.allowed_cidrs = self.networks.iter().map(ToString::to_string).collect();
        }
        if spec.expires_at.is_none() {
            spec.expires_at = self.expires_at;
        }
    }

    /// The same for a change: an empty `scopes` or `allowed_cidrs` means the caller's.
    pub fn fill_patch(&self, patch: &mut CredentialPatch) {
        if patch.scopes.as_ref().is_some_and(Vec::is_empty) {
            patch.scopes = Some(self.scopes.iter().map(ToString::to_string).collect());
        }
        if patch.allowed_cidrs.as_ref().is_some_and(Vec::is_empty) {
            patch.allowed_cidrs = Some(self.networks.iter().map(ToString::to_string).collect());
        }
    }

    /// Where `credential` reaches past this ceiling in networks or expiry, if it does.
    pub fn exceeded_by(&self, credential: &Credential) -> Option<Beyond> {
        let key = self.key;
        if !self.networks.is_empty() {
            if credential.id.kind == CredentialKind::SshKey {
                return Some(Beyond {
                    field: "allowed_cidrs",
                    reason: format!(
                        "an SSH key cannot be limited to networks, so {key}, which is, may not make or change one"
                    ),
                });
            }
            let outside = if credential.allowed_cidrs.is_empty() {
                Some("anywhere".to_owned())
            } else {
                credential
                    .allowed_cidrs
                    .iter()
                    .find(|net| !self.networks.iter().any(|have| have.contains(*net)))
                    .map(ToString::to_string)
            };
            if let Some(outside) = outside {
                return Some(Beyond {
                    field: "allowed_cidrs",
                    reason: format!(
                        "{} would work from {outside}, outside the networks of {key}",
                        credential.id
                    ),
                });
            }
        }
        if let Some(limit) = self.expires_at
            && credential.expires_at.is_none_or(|at| at > limit)
        {
            return Some(Beyond {
                field: "expires_at",
                reason: format!(
                    "{} would outlive {key}, which expires at {}",
                    credential.id,
                    limit.to_rfc3339()
                ),
            });
        }
        None
    }
}

/// At most this many scopes or networks on one credential.
const MAX_LIST: usize = 64;

fn validate_scopes(
    kind: CredentialKind,
    scopes: &[String],
) -> Result<Vec<ActionPattern>, DomainError> {
    if kind != CredentialKind::ApiKey && !scopes.is_empty() {
        return Err(DomainError::invalid("scopes", "only API keys take scopes"));
    }
    if scopes.len() > MAX_LIST {
        return Err(DomainError::invalid(
            "scopes",
            format!("at most {MAX_LIST} scopes"),
        ));
    }
    let mut parsed: Vec<ActionPattern> = Vec::with_capacity(scopes.len());
    for scope in scopes {
        let pattern = ActionPattern::try_from(scope.trim().to_owned())
            .map_err(|e| DomainError::invalid("scopes", e))?;
        if !parsed.contains(&pattern) {
            parsed.push(pattern);
        }
    }
    Ok(parsed)
}

fn validate_cidrs(kind: CredentialKind, cidrs: &[String]) -> Result<Vec<IpNet>, DomainError> {
    if kind == CredentialKind::SshKey && !cidrs.is_empty() {
        return Err(DomainError::invalid(
            "allowed_cidrs",
            "only API keys and authtokens take allowed_cidrs",
        ));
    }
    if cidrs.len() > MAX_LIST {
        return Err(DomainError::invalid(
            "allowed_cidrs",
            format!("at most {MAX_LIST} networks"),
        ));
    }
    let mut parsed: Vec<IpNet> = Vec::with_capacity(cidrs.len());
    for text in cidrs {
        let text = text.trim();
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                DomainError::invalid(
                    "allowed_cidrs",
                    format!("{text:?} is not a network (10.0.0.0/8) or an address"),
                )
            })?
            .trunc();
        if !parsed.contains(&net) {
            parsed.push(net);
        }
    }
    Ok(parsed)
}

fn validate_description(text: &str) -> Result<(), DomainError> {
    if text.len() > 255 {
        return Err(DomainError::invalid(
            "description",
            "must be at most 255 bytes",
        ));
    }
    Ok(())
}

fn validate_metadata(text: &str) -> Result<(), DomainError> {
    if text.len() > 4096 {
        return Err(DomainError::invalid(
            "metadata",
            "must be at most 4096 bytes",
        ));
    }
    Ok(())
}

fn validate_acl(kind: CredentialKind, rules: &[String]) -> Result<Acl, DomainError> {
    if kind == CredentialKind::ApiKey && !rules.is_empty() {
        return Err(DomainError::invalid(
            "acl",
            "API keys do not take bind rules",
        ));
    }
    Acl::parse(rules).map_err(|e| DomainError::invalid("acl", e.to_string()))
}

impl Credential {
    /// A new credential of `id.kind`, validated. `ssh_key` is required for (and only for)
    /// SSH credentials.
    pub fn new(
        id: CredentialId,
        account: AccountId,
        owner: Owner,
        spec: CredentialSpec,
        ssh_key: Option<SshPublicKey>,
        now: Timestamp,
    ) -> Result<Credential, DomainError> {
        validate_description(&spec.description)?;
        validate_metadata(&spec.metadata)?;
        if spec.expires_at.is_some_and(|at| at <= now) {
            return Err(DomainError::invalid("expires_at", "must be in the future"));
        }
        if (id.kind == CredentialKind::SshKey) != ssh_key.is_some() {
            return Err(DomainError::invalid(
                "public_key",
                "only SSH credentials carry a public key",
            ));
        }
        Ok(Credential {
            id,
            account,
            owner,
            created_at: now,
            description: spec.description,
            metadata: spec.metadata,
            expires_at: spec.expires_at,
            acl: validate_acl(id.kind, &spec.acl)?,
            personal: false,
            ssh_key,
            scopes: validate_scopes(id.kind, &spec.scopes)?,
            allowed_cidrs: validate_cidrs(id.kind, &spec.allowed_cidrs)?,
        })
    }

    /// This credential after `patch`, validated. Owner, account and kind cannot change.
    pub fn patched(&self, patch: &CredentialPatch) -> Result<Credential, DomainError> {
        let mut next = self.clone();
        if let Some(description) = &patch.description {
            validate_description(description)?;
            next.description = description.clone();
        }
        if let Some(metadata) = &patch.metadata {
            validate_metadata(metadata)?;
            next.metadata = metadata.clone();
        }
        if let Some(rules) = &patch.acl {
            next.acl = validate_acl(self.id.kind, rules)?;
        }
        if let Some(scopes) = &patch.scopes {
            next.scopes = validate_scopes(self.id.kind, scopes)?;
        }
        if let Some(cidrs) = &patch.allowed_cidrs {
            next.allowed_cidrs = validate_cidrs(self.id.kind, cidrs)?;
        }
        Ok(next)
    }

    /// A personal authtoken lives as long as its membership: it can be rotated, never
    /// deleted on its own.
    pub fn ensure_deletable(&self) -> Result<(), DomainError> {
        if self.personal {
            return Err(DomainError::NotApplicable(
                "a personal authtoken cannot be deleted while its member belongs to the account; rotate it instead",
            ));
        }
        Ok(())
    }

    /// Only token credentials have a secret to rotate.
    pub fn ensure_rotatable(&self) -> Result<(), DomainError> {
        if self.id.kind.token_kind().is_none() {
            return Err(DomainError::NotApplicable(
                "an SSH public key has no secret to rotate",
            ));
        }
        Ok(())
    }

    /// Whether a request from `ip` may use it (no `allowed_cidrs` means from anywhere).
    pub fn allows_source(&self, ip: std::net::IpAddr) -> bool {
        allows_source(&self.allowed_cidrs, ip)
    }

    /// Has it expired at `now`?
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Why a credential stopped existing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevokeCause {
    /// Deleted on purpose.
    Deleted,
    /// Its owner's membership in the account was removed.
    MembershipRemoved,
    /// Its owner (a bot user) was deleted.
    OwnerDeleted,
}

/// What remains of a revoked credential, so verification can say why it fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedCredential {
    /// The credential's id.
    pub id: CredentialId,
    /// Its account.
    pub account: AccountId,
    /// Its owner.
    pub owner: Owner,
    /// When it was revoked.
    pub revoked_at: Timestamp,
    /// Why.
    pub cause: RevokeCause,
}

/// The standing of a credential's owner in the credential's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerStanding {
    /// The owner may act.
    Active,
    /// The user's membership is disabled.
    Disabled,
    /// The bot user is inactive.
    Inactive,
}

/// A credential that verified: who is presenting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The credential.
    pub credential: CredentialId,
    /// Its owner.
    pub owner: Owner,
    /// The account it acts in.
    pub account: AccountId,
    /// Its bind rules (`None`: unrestricted).
    pub acl: Option<Arc<Acl>>,
    /// The networks it works from (`None`: anywhere).
    pub allowed_cidrs: Option<Arc<[IpNet]>>,
    /// When it expires.
    pub expires_at: Option<Timestamp>,
}

/// Why a presented credential did not verify. The operator may see this; an untrusted
/// caller only ever learns "invalid credential".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Not shaped like any credential.
    #[error("malformed")]
    Malformed,
    /// Shaped like a token, but its checksum is wrong (typo or truncation).
    #[error("bad_checksum")]
    BadChecksum,
    /// No such credential.
    #[error("unknown")]
    Unknown,
    /// The credential exists but the secret is not its secret.
    #[error("wrong_secret")]
    WrongSecret,
    /// Revoked or deleted.
    #[error("revoked")]
    Revoked,
    /// Past its `expires_at`.
    #[error("expired")]
    Expired,
    /// The owning user is disabled in this account.
    #[error("owner_disabled")]
    OwnerDisabled,
    /// The owning bot user is inactive.
    #[error("bot_inactive")]
    BotInactive,
    /// The owning user was removed from the account.
    #[error("membership_removed")]
    MembershipRemoved,
}

impl Rejection {
    /// The reason as a stable snake_case word.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::BadChecksum => "bad_checksum",
            Rejection::Unknown => "unknown",
            Rejection::WrongSecret => "wrong_secret",
            Rejection::Revoked => "revoked",
            Rejection::Expired => "expired",
            Rejection::OwnerDisabled => "owner_disabled",
            Rejection::BotInactive => "bot_inactive",
            Rejection::MembershipRemoved => "membership_removed",
        }
    }

    /// The rejection for a revoked credential.
    pub fn of_revocation(cause: RevokeCause) -> Rejection {
        match cause {
            RevokeCause::MembershipRemoved => Rejection::MembershipRemoved,
            RevokeCause::Deleted | RevokeCause::OwnerDeleted => Rejection::Revoked,
        }
    }

    /// The rejection for an owner that may not act, if any.
    pub fn of_standing(standing: OwnerStanding) -> Option<Rejection> {
        match standing {
            OwnerStanding::Active => None,
            OwnerStanding::Disabled => Some(Rejection::OwnerDisabled),
            OwnerStanding::Inactive => Some(Rejection::BotInactive),
        }
    }
}

/// Whether `ip` lies in one of `networks`; an empty list allows every address. An
/// IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
pub fn allows_source(networks: &[IpNet], ip: std::net::IpAddr) -> bool {
    let ip = match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    };
    networks.is_empty() || networks.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CredentialSpec {
        CredentialSpec {
            description: "ci".into(),
            ..Default::default()
        }
    }

    fn new(kind: CredentialKind, spec: CredentialSpec) -> Result<Credential, DomainError> {
        Credential::new(
            CredentialId { kind, raw: 7 },
            AccountId(1),
            Owner::Bot(BotId(2)),
            spec,
            None,
            Timestamp::from_millis(1_000),
        )
    }

    #[test]
    fn credential_ids_carry_their_kind_prefix_and_parse_back() {
        for kind in [
            CredentialKind::Authtoken,
            CredentialKind::ApiKey,
            CredentialKind::SshKey,
        ] {
            let id = CredentialId { kind, raw: 99 };
            let text = id.to_string();
            assert!(text.starts_with(&format!("{}_", kind.id_prefix())));
            assert_eq!(text.parse::<CredentialId>().unwrap(), id);
        }
        assert!("xx_0000000000000000000001".parse::<CredentialId>().is_err());
        assert!("ak_short".parse::<CredentialId>().is_err());
    }

    #[test]
    fn text_fields_and_expiry_are_validated() {
        assert!(new(CredentialKind::ApiKey, spec()).is_ok());
        let long = CredentialSpec {
            description: "x".repeat(256),
            ..spec()
        };
        assert!(matches!(
            new(CredentialKind::ApiKey, long),
            Err(DomainError::Invalid {
                field: "description",
                ..
            })
        ));
        let meta = CredentialSpec {
            metadata: "x".repeat(4097),
            ..spec()
        };
        assert!(matches!(
            new(CredentialKind::ApiKey, meta),
            Err(DomainError::Invalid {
                field: "metadata",
                ..
            })
        ));
        let past = CredentialSpec {
            expires_at: Some(Timestamp::from_millis(1_000)),
            ..spec()
        };
        assert!(matches!(
            new(CredentialKind::ApiKey, past),
            Err(DomainError::Invalid {
                field: "expires_at",
                ..
            })
        ));
    }

    #[test]
    fn api_keys_take_no_bind_rules_and_bad_rules_are_refused() {
        let acl = CredentialSpec {
            acl: vec!["bind:*.example.com".into()],
            ..spec()
        };
        assert!(matches!(
            new(CredentialKind::ApiKey, acl.clone()),
            Err(DomainError::Invalid { field: "acl", .. })
        ));
        assert!(new(CredentialKind::Authtoken, acl).is_ok());
        let bad = CredentialSpec {
            acl: vec!["listen:x".into()],
            ..spec()
        };
        assert!(matches!(
            new(CredentialKind::Authtoken, bad),
            Err(DomainError::Invalid { field: "acl", .. })
        ));
    }

    #[test]
    fn ssh_credentials_and_only_they_carry_a_key() {
        assert!(matches!(
            new(CredentialKind::SshKey, spec()),
            Err(DomainError::Invalid {
                field: "public_key",
                ..
            })
        ));
    }

    #[test]
    fn patches_change_text_and_rules_but_never_owner_or_account() {
        let cred = new(CredentialKind::Authtoken, spec()).unwrap();
        let patch = CredentialPatch {
            description: Some("renamed".into()),
            acl: Some(vec!["bind:a.example.com".into()]),
            ..Default::default()
        };
        let next = cred.patched(&patch).unwrap();
        assert_eq!(next.description, "renamed");
        assert_eq!(
            (next.owner, next.account, next.id),
            (cred.owner, cred.account, cred.id)
        );
        let bad = CredentialPatch {
            metadata: Some("x".repeat(5000)),
            ..Default::default()
        };
        assert!(cred.patched(&bad).is_err());
    }
}
