//! Federation: the identity providers an account trusts for single sign-on (OpenID
//! Connect, GitHub, SAML 2.0), and the external identities (an IdP's subject) linked to
//! users. An external identity is the pair (IdP, subject): later logins match on it,
//! never on an email.

use serde::{Deserialize, Serialize};

use crate::domain::DomainError;
use crate::domain::id::{
    AccountId, ExternalIdentityId, IdentityProviderId, RoleId, TenantId, UserId,
};
use crate::domain::time::Timestamp;
use crate::domain::user::Roles;

/// The longest name, client id, claim name or URL accepted.
const MAX_NAME: usize = 64;
const MAX_TEXT: usize = 255;
const MAX_URL: usize = 2048;
/// Email domains, scopes, MFA values and role mappings per provider, at most.
const MAX_LIST: usize = 50;

/// An identity provider of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProvider {
    /// `idp_…`
    pub id: IdentityProviderId,
    /// The account that trusts it (and the only one it signs anyone into).
    pub account: AccountId,
    /// Shown on the sign-in page ("Sign in with …").
    pub name: String,
    /// A disabled provider signs nobody in.
    pub enabled: bool,
    /// Email domains (lower case) `GET /sso/discover` offers it for.
    pub domains: Vec<String>,
    /// The protocol and its settings (the client secret is kept apart, sealed).
    pub protocol: Protocol,
    /// What the provider says that counts as a second factor: OIDC `amr` values or SAML
    /// `AuthnContextClassRef`s. Empty: its logins never do, and a member's own second
    /// factor is asked after it.
    pub mfa_values: Vec<String>,
    /// Group values mapped to account roles and tenant role assignments.
    pub role_mapping: Vec<RoleMapping>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last completed a login (an account may enforce SSO only once one has).
    pub last_login_at: Option<Timestamp>,
}

/// A protocol and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// OpenID Connect (authorization code with PKCE).
    Oidc(OidcSettings),
    /// GitHub's OAuth 2.0 flow and its user API.
    Github(GithubSettings),
    /// SAML 2.0 (HTTP-Redirect requests, HTTP-POST responses).
    Saml(SamlSettings),
}

impl Protocol {
    /// `oidc`, `github` or `saml`.
    pub fn kind(&self) -> &'static str {
        match self {
            Protocol::Oidc(_) => "oidc",
            Protocol::Github(_) => "github",
            Protocol::Saml(_) => "saml",
        }
    }
}

/// Claim (or attribute) names for what latchkey reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimNames {
    /// The email.
    pub email: String,
    /// The display name.
    pub name: String,
    /// The groups (for role mapping).
    pub groups: String,
}

impl ClaimNames {
    /// The standard OIDC claims.
    pub fn oidc() -> ClaimNames {
        ClaimNames {
            email: "email".into(),
            name: "name".into(),
            groups: "groups".into(),
        }
    }
}

/// An OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcSettings {
    /// `https://…`: discovery is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The client id latchkey is registered as.
    pub client_id: String,
    /// Scopes asked for besides `openid` (default `email`, `profile`).
    pub scopes: Vec<String>,
    /// Claim names.
    pub claims: ClaimNames,
    /// PEM certificates to trust for its TLS instead of the public roots.
    pub trusted_ca_pem: Option<String>,
}

/// GitHub (or GitHub Enterprise Server, or a stand-in that follows its published API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GithubSettings {
    /// The OAuth app's client id.
    pub client_id: String,
    /// Where users authorize (`https://github.com`).
    pub web_url: String,
    /// The REST API (`https://api.github.com`).
    pub api_url: String,
    /// PEM certificates to trust for its TLS instead of the public roots.
    pub trusted_ca_pem: Option<String>,
}

/// A SAML 2.0 identity provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlSettings {
    /// The IdP's entity id (the `Issuer` of its responses).
    pub idp_entity_id: String,
    /// Its single sign-on URL (HTTP-Redirect binding).
    pub sso_url: String,
    /// Its signing certificates, PEM (several during a rollover).
    pub certificates: Vec<String>,
    /// Accept responses latchkey did not ask for (IdP-initiated logins).
    pub allow_idp_initiated: bool,
    /// Require the assertion itself to be signed (else the response's signature is
    /// enough).
    pub want_assertions_signed: bool,
    /// Attribute names.
    pub attributes: ClaimNames,
    /// The IdP vouches for the email attribute (only then may a login make a new user).
    pub email_verified: bool,
}

/// Group values mapped to roles: a login whose groups hold `claim_value` gets these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleMapping {
    /// A group value (exact match).
    pub claim_value: String,
    /// Account roles to grant (each role the higher of what the member has and this).
    pub roles: Option<Roles>,
    /// Tenant roles to assign (`None` tenant: all tenants).
    pub role_assignments: Vec<(RoleId, Option<TenantId>)>,
}

/// An external identity: a provider's subject, linked to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalIdentity {
    /// `ext_…`
    pub id: ExternalIdentityId,
    /// The provider's account.
    pub account: AccountId,
    /// The provider.
    pub provider: IdentityProviderId,
    /// Its subject (OIDC `sub`, GitHub's numeric id, SAML `NameID`).
    pub subject: String,
    /// The user it signs in.
    pub user: UserId,
    /// The email the provider gave when it was linked.
    pub email: String,
    /// When it was linked.
    pub created_at: Timestamp,
    /// When it last signed in.
    pub last_login_at: Option<Timestamp>,
}

/// A name shown on the sign-in page: 1 to 64 visible characters.
pub fn validate_name(name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(DomainError::invalid(
            "name",
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    crate::domain::name::check_visible("name", name)?;
    Ok(name.to_owned())
}

/// Email domains: lower case, each a host name with a dot, no duplicates.
pub fn validate_domains(domains: &[String]) -> Result<Vec<String>, DomainError> {
    if domains.len() > MAX_LIST {
        return Err(DomainError::invalid(
            "domains",
            format!("at most {MAX_LIST} domains"),
        ));
    }
    let mut clean: Vec<String> = Vec::with_capacity(domains.len());
    for domain in domains {
        let domain = domain.trim().trim_start_matches('@').to_ascii_lowercase();
        let valid = domain.len() <= 253
            && domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !valid {
            return Err(DomainError::invalid(
                "domains",
                format!("{domain:?} is not an email domain (such as example.com)"),
            ));
        }
        if !clean.contains(&domain) {
            clean.push(domain);
        }
    }
    Ok(clean)
}

/// A URL a provider is reached at: `https://`, a host, no credentials or fragment.
pub fn validate_url(field: &'static str, url: &str) -> Result<String, DomainError> {
    let url = url.trim().trim_end_matches('/');
    let bad = |why: &str| DomainError::invalid(field, format!("{url:?} {why}"));
    if url.len() > MAX_URL {
        return Err(bad("is too long"));
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(bad("must start with https://"));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("must name a host (and no user or password)"));
    }
    if url.contains('#') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            "must not hold a fragment, spaces or control characters",
        ));
    }
    Ok(url.to_owned())
}

/// A short token (client id, claim name, scope, MFA value): 1 to 255 printable
/// characters without spaces.
pub fn validate_token(field: &'static str, text: &str) -> Result<String, DomainError> {
    let text = text.trim();
    if text.is_empty()
        || text.len() > MAX_TEXT
        || text.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(DomainError::invalid(
            field,
            "must be 1 to 255 characters without spaces",
        ));
    }
    Ok(text.to_owned())
}

/// A list of tokens (scopes, MFA values), each as [`validate_token`].
pub fn validate_tokens(field: &'static str, list: &[String]) -> Result<Vec<String>, DomainError> {
    if list.len() > MAX_LIST {
        return Err(DomainError::invalid(
            field,
            format!("at most {MAX_LIST} values"),
        ));
    }
    let mut clean: Vec<String> = Vec::with_capacity(list.len());
    for text in list {
        let text = validate_token(field, text)?;
        if !clean.contains(&text) {
            clean.push(text);
        }
    }
    Ok(clean)
}

/// Role mappings: at most 50, each a group value with something to grant.
pub fn validate_role_mapping(mapping: &[RoleMapping]) -> Result<(), DomainError> {
    if mapping.len() > MAX_LIST {
        return Err(DomainError::invalid(
            "role_mapping",
            format!("at most {MAX_LIST} mappings"),
        ));
    }
    for entry in mapping {
        validate_token("role_mapping.claim_value", &entry.claim_value)?;
        if entry.roles.is_none() && entry.role_assignments.is_empty() {
            return Err(DomainError::invalid(
                "role_mapping",
                format!(
                    "the mapping of {:?} grants nothing: give roles or role_assignments",
                    entry.claim_value
                ),
            ));
        }
    }
    Ok(())
}

/// The highest of each account role among `granted` (`None` when empty): what the role
/// mappings that match a sign-in's groups give together.
pub fn highest(granted: impl IntoIterator<Item = Roles>) -> Option<Roles> {
    granted.into_iter().reduce(Roles::union)
}

impl IdentityProvider {
    /// Whether it is offered for `email` by `GET /sso/discover`: enabled, and the
    /// address's domain is one of its domains.
    pub fn serves_domain(&self, email: &str) -> bool {
        let domain = email
            .rsplit_once('@')
            .map(|(_, d)| d.trim().to_ascii_lowercase());
        self.enabled && domain.is_some_and(|d| self.domains.contains(&d))
    }
}
