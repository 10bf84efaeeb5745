//! `/identity_providers`: the identity providers an account trusts for single sign-on
//! (administrators only). The client secret is write-only: a view says only whether one
//! is set.

use super::handlers::{Ctx, required, same_id};
use super::request::*;
use super::*;
use crate::app::AppError;
use crate::app::{ProviderPatch, ProviderSpec};
use crate::domain::federation::{
    ClaimNames, GithubSettings, IdentityProvider, OidcSettings, Protocol, RoleMapping, SamlSettings,
};
use crate::domain::id::{IdentityProviderId, ScimTokenId};
use crate::domain::saml_metadata::{self, IdpMetadata};
use crate::domain::token::Secret;
use crate::domain::user::Roles;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderBody {
    id: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    enabled: Option<bool>,
    domains: Option<Vec<String>>,
    mfa_values: Option<Vec<String>>,
    role_mapping: Option<Vec<MappingBody>>,
    client_id: Option<String>,
    client_secret: Option<String>,
    trusted_ca_pem: Option<String>,
    // OIDC
    issuer: Option<String>,
    scopes: Option<Vec<String>>,
    claims: Option<ClaimsBody>,
    // GitHub
    web_url: Option<String>,
    api_url: Option<String>,
    // SAML
    idp_entity_id: Option<String>,
    sso_url: Option<String>,
    certificates: Option<Vec<String>>,
    allow_idp_initiated: Option<bool>,
    want_assertions_signed: Option<bool>,
    attributes: Option<ClaimsBody>,
    email_verified: Option<bool>,
    metadata_xml: Option<String>,
    metadata_url: Option<String>,
    /// latchkey's requests are unsigned: `true` is refused, never ignored.
    sign_requests: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimsBody {
    email: Option<String>,
    name: Option<String>,
    groups: Option<String>,
}

impl ClaimsBody {
    fn over(self, names: ClaimNames) -> ClaimNames {
        ClaimNames {
            email: self.email.unwrap_or(names.email),
            name: self.name.unwrap_or(names.name),
            groups: self.groups.unwrap_or(names.groups),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingBody {
    claim_value: String,
    roles: Option<super::handlers::RolesBody>,
    role_assignments: Option<Vec<AssignmentBody>>,
}

fn mapping(body: Vec<MappingBody>) -> Result<Vec<RoleMapping>, ApiError> {
    body.into_iter()
        .map(|m| {
            let assignments = assignments_of(
                &m.role_assignments.unwrap_or_default(),
                "role_mapping.role_assignments",
            )?;
            Ok(RoleMapping {
                claim_value: m.claim_value,
                roles: m.roles.map(|r| r.patch().apply(Roles::default())),
                role_assignments: assignments,
            })
        })
        .collect()
}

impl ProviderBody {
    /// The protocol settings this body gives, over `base` (a provider's current ones, or
    /// a new one's defaults).
    fn protocol(&mut self, base: Protocol) -> Result<Protocol, ApiError> {
        Ok(match base {
            Protocol::Oidc(oidc) => Protocol::Oidc(OidcSettings {
                issuer: self.issuer.take().unwrap_or(oidc.issuer),
                client_id: self.client_id.take().unwrap_or(oidc.client_id),
                scopes: self.scopes.take().unwrap_or(oidc.scopes),
                claims: match self.claims.take() {
                    Some(claims) => claims.over(oidc.claims),
                    None => oidc.claims,
                },
                trusted_ca_pem: self.trusted_ca_pem.take().or(oidc.trusted_ca_pem),
            }),
            Protocol::Github(github) => Protocol::Github(GithubSettings {
                client_id: self.client_id.take().unwrap_or(github.client_id),
                web_url: self.web_url.take().unwrap_or(github.web_url),
                api_url: self.api_url.take().unwrap_or(github.api_url),
                trusted_ca_pem: self.trusted_ca_pem.take().or(github.trusted_ca_pem),
            }),
            Protocol::Saml(saml) => Protocol::Saml(SamlSettings {
                idp_entity_id: self.idp_entity_id.take().unwrap_or(saml.idp_entity_id),
                sso_url: self.sso_url.take().unwrap_or(saml.sso_url),
                certificates: self.certificates.take().unwrap_or(saml.certificates),
                allow_idp_initiated: self
                    .allow_idp_initiated
                    .take()
                    .unwrap_or(saml.allow_idp_initiated),
                want_assertions_signed: self
                    .want_assertions_signed
                    .take()
                    .unwrap_or(saml.want_assertions_signed),
                attributes: match self.attributes.take() {
                    Some(names) => names.over(saml.attributes),
                    None => saml.attributes,
                },
                email_verified: self.email_verified.take().unwrap_or(saml.email_verified),
            }),
        })
    }

    /// Fields of another type than `kind` are refused, not ignored.
    fn only_fields_of(&self, kind: &str) -> Result<(), ApiError> {
        if self.sign_requests == Some(true) {
            return Err(ApiError::field(
                error::INVALID_FIELD,
                "sign_requests",
                "latchkey sends its AuthnRequests unsigned (HTTP-Redirect); the provider must accept them so",
            ));
        }
        let oidc = self.issuer.is_some() || self.scopes.is_some() || self.claims.is_some();
        let github = self.web_url.is_some() || self.api_url.is_some();
        let saml = self.idp_entity_id.is_some()
            || self.sso_url.is_some()
            || self.certificates.is_some()
            || self.allow_idp_initiated.is_some()
            || self.want_assertions_signed.is_some()
            || self.attributes.is_some()
            || self.email_verified.is_some();
        let metadata = self.metadata_xml.is_some() || self.metadata_url.is_some();
        let saml = saml || metadata;
        let secret = self.client_id.is_some() || self.client_secret.is_some();
        let stray = match kind {
            "oidc" if github || saml => Some("web_url, api_url and the saml fields are not oidc's"),
            "github" if oidc || saml => {
                Some("issuer, scopes, claims and the saml fields are not github's")
            }
            "saml" if oidc || github || secret => {
                Some("a saml provider takes no client id, secret, issuer or GitHub URLs")
            }
            "saml" if self.trusted_ca_pem.is_some() && self.metadata_url.is_none() => {
                Some("trusted_ca_pem is for fetching metadata_url only")
            }
            _ => None,
        };
        match stray {
            Some(why) => Err(ApiError::field(
                error::INVALID_FIELD,
                "type",
                format!("a {kind} provider: {why}"),
            )),
            None => Ok(()),
        }
    }
}

/// SAML metadata pasted (`xml`) or fetched once now from `url` (https, through the
/// outbound gate, trusting `trusted_ca_pem` or the public roots), read; `None` when
/// neither is given. (The API's and the dashboard's way to configure from metadata.)
pub(crate) async fn saml_metadata(
    lk: &crate::app::Latchkey,
    xml: Option<String>,
    url: Option<String>,
    trusted_ca_pem: Option<String>,
) -> Result<Option<IdpMetadata>, ApiError> {
    let xml = match (xml, url) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                error::INVALID_FIELD,
                "metadata_url",
                "give metadata_xml or metadata_url, not both",
            ));
        }
        (Some(xml), None) => xml,
        (None, Some(url)) => {
            let url = crate::domain::federation::validate_url("metadata_url", &url)
                .map_err(AppError::from)?;
            let allow_private = lk.allows_private_destinations();
            if !allow_private {
                crate::domain::destination::refuse_private_url("metadata_url", &url)
                    .map_err(AppError::from)?;
            }
            let roots = crate::app::roots_from_pem("trusted_ca_pem", trusted_ca_pem.as_deref())
                .map_err(AppError::from)?;
            let fetch_failed =
                |why: String| ApiError::field(error::INVALID_FIELD, "metadata_url", why);
            let request = hyper::http::Request::get(&url)
                .header("accept", "application/samlmetadata+xml, application/xml")
                .body(Vec::new())
                .map_err(|e| fetch_failed(e.to_string()))?;
            let answer = super::outbound::fetch(request, roots, allow_private)
                .await
                .map_err(fetch_failed)?;
            if !answer.status().is_success() {
                return Err(fetch_failed(format!(
                    "the metadata URL answered {}",
                    answer.status()
                )));
            }
            String::from_utf8(answer.into_body())
                .map_err(|_| fetch_failed("the metadata is not text".into()))?
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(saml_metadata::parse(&xml).map_err(AppError::from)?))
}

impl Ctx {
    /// The SAML metadata the body gives (its CA certificate is for fetching it).
    async fn saml_metadata(
        &self,
        body: &mut ProviderBody,
    ) -> Result<Option<IdpMetadata>, ApiError> {
        let ca = body
            .metadata_url
            .is_some()
            .then(|| body.trusted_ca_pem.take())
            .flatten();
        saml_metadata(
            &self.lk,
            body.metadata_xml.take(),
            body.metadata_url.take(),
            ca,
        )
        .await
    }

    fn provider_view(&self, found: &IdentityProvider, secret_set: bool) -> Value {
        let mut view = views::identity_provider(&self.base, found);
        if let Some(fields) = view.as_object_mut()
            && !matches!(found.protocol, Protocol::Saml(_))
        {
            fields.insert("client_secret_set".into(), json!(secret_set));
        }
        view
    }

    pub(super) async fn list_identity_providers(self) -> Reply {
        let (lk, actor, account) = self.caller();
        let found = blocking(move || {
            let providers = lk.identity_providers(actor, account)?;
            let mut with = Vec::with_capacity(providers.len());
            for provider in providers {
                let set = lk.provider_secret_set(provider.id)?;
                with.push((provider, set));
            }
            Ok(with)
        })
        .await?;
        // An account has a few providers: paged in memory, newest first like every list.
        let mut found = found;
        found.reverse();
        self.list(
            "/identity_providers",
            "identity_providers",
            found,
            |(p, _)| p.id,
            |(p, set)| self.provider_view(p, *set),
        )
    }

    pub(super) async fn create_identity_provider(self) -> Reply {
        let mut body: ProviderBody = parse(&self.body)?;
        if body.id.is_some() {
            return Err(ApiError::field(
                error::INVALID_FIELD,
                "id",
                "id is chosen by the server",
            ));
        }
        let kind = required(body.kind.as_deref(), "type")?.to_owned();
        if kind != "saml" {
            required(body.client_id.as_deref(), "client_id")?;
        }
        body.only_fields_of(&kind)?;
        if body.metadata_url.is_some() {
            // Nothing is fetched for a caller who may not make the provider.
            let (lk, actor, account) = self.caller();
            blocking(move || lk.may_create_identity_provider(actor, account)).await?;
        }
        let base = match kind.as_str() {
            "oidc" => Protocol::Oidc(OidcSettings {
                issuer: required(body.issuer.as_deref(), "issuer")?.to_owned(),
                client_id: required(body.client_id.as_deref(), "client_id")?.to_owned(),
                scopes: vec!["email".into(), "profile".into()],
                claims: ClaimNames::oidc(),
                trusted_ca_pem: None,
            }),
            "github" => Protocol::Github(GithubSettings {
                client_id: required(body.client_id.as_deref(), "client_id")?.to_owned(),
                web_url: "https://github.com".into(),
                api_url: "https://api.github.com".into(),
                trusted_ca_pem: None,
            }),
            "saml" => {
                if let Some(found) = self.saml_metadata(&mut body).await? {
                    body.idp_entity_id.get_or_insert(found.entity_id);
                    body.sso_url.get_or_insert(found.sso_url);
                    body.certificates.get_or_insert(found.certificates);
                }
                Protocol::Saml(SamlSettings {
                    idp_entity_id: required(body.idp_entity_id.as_deref(), "idp_entity_id")?
                        .to_owned(),
                    sso_url: required(body.sso_url.as_deref(), "sso_url")?.to_owned(),
                    certificates: body.certificates.take().unwrap_or_default(),
                    allow_idp_initiated: false,
                    want_assertions_signed: true,
                    attributes: ClaimNames::oidc(),
                    email_verified: false,
                })
            }
            other => {
                return Err(ApiError::field(
                    error::INVALID_FIELD,
                    "type",
                    format!("{other:?} is not oidc, github or saml"),
                ));
            }
        };
        let protocol = body.protocol(base)?;
        let spec = ProviderSpec {
            name: required(body.name.as_deref(), "name")?.to_owned(),
            enabled: body.enabled.unwrap_or(true),
            domains: body.domains.unwrap_or_default(),
            protocol,
            mfa_values: body.mfa_values.unwrap_or_default(),
            role_mapping: mapping(body.role_mapping.unwrap_or_default())?,
            client_secret: body.client_secret.map(Secret::new),
        };
        let set = spec.client_secret.is_some();
        let (lk, actor, account) = self.caller();
        let made = blocking(move || lk.create_identity_provider(actor, account, spec)).await?;
        self.created(&self.provider_view(&made, set))
    }

    pub(super) async fn get_identity_provider(self, id: &str) -> Reply {
        let id: IdentityProviderId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        let (found, set) = blocking(move || {
            let found = lk.identity_provider(actor, account, id)?;
            Ok((found, lk.provider_secret_set(id)?))
        })
        .await?;
        self.ok(&self.provider_view(&found, set))
    }

    pub(super) async fn update_identity_provider(self, id: &str) -> Reply {
        let id: IdentityProviderId = path_id(id)?;
        let mut body: ProviderBody = parse(&self.body)?;
        same_id(body.id.as_deref(), id)?;
        let (lk, actor, account) = self.caller();
        let current = {
            let lk = Arc::clone(&lk);
            blocking(move || lk.identity_provider(actor, account, id)).await?
        };
        let kind = current.protocol.kind();
        if let Some(given) = body.kind.as_deref()
            && given != kind
        {
            return Err(ApiError::field(
                error::INVALID_FIELD,
                "type",
                format!("is {kind}: a provider's type does not change (make another provider)"),
            ));
        }
        body.only_fields_of(kind)?;
        if let Some(found) = self.saml_metadata(&mut body).await? {
            body.idp_entity_id.get_or_insert(found.entity_id);
            body.sso_url.get_or_insert(found.sso_url);
            body.certificates.get_or_insert(found.certificates);
        }
        let touches_protocol = body.idp_entity_id.is_some()
            || body.sso_url.is_some()
            || body.certificates.is_some()
            || body.allow_idp_initiated.is_some()
            || body.want_assertions_signed.is_some()
            || body.attributes.is_some()
            || body.email_verified.is_some()
            || body.issuer.is_some()
            || body.client_id.is_some()
            || body.scopes.is_some()
            || body.claims.is_some()
            || body.trusted_ca_pem.is_some()
            || body.web_url.is_some()
            || body.api_url.is_some();
        let protocol = if touches_protocol {
            Some(body.protocol(current.protocol.clone())?)
        } else {
            None
        };
        let patch = ProviderPatch {
            name: body.name,
            enabled: body.enabled,
            domains: body.domains,
            protocol,
            mfa_values: body.mfa_values,
            role_mapping: body.role_mapping.map(mapping).transpose()?,
            client_secret: body.client_secret.map(Secret::new),
        };
        let (updated, set) = blocking(move || {
            let updated = lk.update_identity_provider(actor, account, id, patch)?;
            Ok((updated, lk.provider_secret_set(id)?))
        })
        .await?;
        self.ok(&self.provider_view(&updated, set))
    }

    pub(super) async fn delete_identity_provider(self, id: &str) -> Reply {
        let id: IdentityProviderId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        blocking(move || lk.delete_identity_provider(actor, account, id)).await?;
        Ok(no_content())
    }
}

/// `POST /scim_tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScimTokenBody {
    description: Option<String>,
}

impl Ctx {
    /// `GET /scim_tokens`: the account's SCIM tokens (never the tokens themselves).
    pub(super) async fn list_scim_tokens(self) -> Reply {
        let (lk, actor, account) = self.caller();
        let mut found = blocking(move || lk.scim_tokens(actor, account)).await?;
        found.reverse();
        self.list(
            "/scim_tokens",
            "scim_tokens",
            found,
            |t| t.id,
            |t| views::scim_token(&self.base, t, None),
        )
    }

    /// `POST /scim_tokens`: a new token, shown in this answer only.
    pub(super) async fn create_scim_token(self) -> Reply {
        let body: ScimTokenBody = parse(&self.body)?;
        let (lk, actor, account) = self.caller();
        let description = body.description.unwrap_or_default();
        let (made, secret) =
            blocking(move || lk.create_scim_token(actor, account, &description)).await?;
        self.created(&views::scim_token(&self.base, &made, Some(secret.expose())))
    }

    /// `GET /scim_tokens/{id}`.
    pub(super) async fn get_scim_token(self, id: &str) -> Reply {
        let id: ScimTokenId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        let found = blocking(move || lk.scim_token(actor, account, id)).await?;
        self.ok(&views::scim_token(&self.base, &found, None))
    }

    /// `DELETE /scim_tokens/{id}`: revoked at once.
    pub(super) async fn delete_scim_token(self, id: &str) -> Reply {
        let id: ScimTokenId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        blocking(move || lk.revoke_scim_token(actor, account, id)).await?;
        Ok(no_content())
    }
}
