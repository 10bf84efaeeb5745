//! Account settings (MFA required; single sign-on: its mode, provisioning and the
//! identity providers) and the forgotten-password page of the way in.

use hyper::StatusCode;
use maud::{Markup, html};

use super::console::Console;
use super::pages::{csrf_field, error_line, notice_line, when};
use super::scim::{ScimListing, scim_section};
use super::{
    Answer, AppOrApi, Form, Notice, Refusal, Web, blocking, done, form_page, not_found, pages,
    status_of,
};
use crate::app::{AppError, ProviderPatch, ProviderSpec};
use crate::domain::account::{Account, Provisioning, SsoMode};
use crate::domain::federation::{
    ClaimNames, GithubSettings, IdentityProvider, OidcSettings, Protocol, SamlSettings,
};
use crate::domain::id::IdentityProviderId;
use crate::domain::token::Secret;

impl Web {
    /// `GET /ui/settings`.
    pub(super) async fn settings(
        &self,
        console: &Console,
        notice: Option<Notice>,
        error: Refusal,
    ) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let may_list = console.may("identity_providers.list");
        let scim_parts = ScimListing::wanted(console);
        let (found, seats, providers, scim) = blocking(move || {
            let found = lk.account(actor, account)?;
            let seats = lk.seats_used(actor, account)?;
            let providers = if may_list {
                lk.identity_providers(actor, account)?
            } else {
                Vec::new()
            };
            let scim = ScimListing::read(&lk, actor, account, scim_parts)?;
            Ok((found, seats, providers, scim))
        })
        .await?;
        let (status, error) = status_of(error);
        let listed = Listed {
            providers: &providers,
            scim: &scim,
        };
        Ok(console.render(
            status,
            "Account settings",
            settings_page(console, &found, seats, &listed, notice, error.as_deref()),
        ))
    }

    /// `POST /ui/settings/mfa`.
    pub(super) async fn settings_post(
        &self,
        console: &Console,
        rest: &[&str],
        form: &Form,
    ) -> Answer {
        let outcome = match rest {
            ["mfa"] => {
                let (lk, actor, account) = self.acting(console);
                let required = form.checked("mfa_required");
                blocking(move || {
                    lk.update_account_settings(
                        actor,
                        account,
                        crate::app::SettingsPatch {
                            mfa_required: Some(required),
                            ..Default::default()
                        },
                    )
                })
                .await
                .map(|_| Notice::SettingsSaved)
            }
            ["sso"] => self.save_sso(console, form).await,
            ["providers", "new"] => self.add_provider(console, form).await,
            ["providers", id, action] => self.provider_action(console, id, action).await,
            ["scim-tokens", "new"] => return self.add_scim_token(console, form).await,
            ["scim-tokens", id, "revoke"] => self.revoke_scim_token(console, id).await,
            ["scim-groups", id, "mapping"] => self.save_group_mapping(console, id, form).await,
            ["scim-groups", id, "unmap"] => self.unmap_group(console, id).await,
            _ => return Err(not_found()),
        };
        match outcome {
            Ok(notice) => done("/ui/settings", notice),
            Err(refused) => self.settings(console, None, Some(refused.explain())).await,
        }
    }

    /// `POST /ui/settings/sso`: the mode and provisioning. Changing the mode asks for
    /// the member's password (or a current code) again.
    async fn save_sso(&self, console: &Console, form: &Form) -> Result<Notice, AppOrApi> {
        let mode = SsoMode::parse(form.get("sso_mode")).map_err(|e| AppOrApi::App(e.into()))?;
        let provisioning =
            Provisioning::parse(form.get("provisioning")).map_err(|e| AppOrApi::App(e.into()))?;
        let (lk, actor, account) = self.acting(console);
        let current = {
            let lk = std::sync::Arc::clone(&lk);
            blocking(move || lk.account(actor, account)).await?
        };
        self.confirm_if(console, current.settings.sso_mode != mode, form)
            .await?;
        blocking(move || {
            lk.update_account_settings(
                actor,
                account,
                crate::app::SettingsPatch {
                    sso_mode: Some(mode),
                    provisioning: Some(provisioning),
                    ..Default::default()
                },
            )
        })
        .await
        .map(|_| Notice::SettingsSaved)
    }

    /// `POST /ui/settings/providers/new`: an OpenID Connect, GitHub or SAML provider
    /// (`type`), as `POST /identity_providers` makes it.
    async fn add_provider(&self, console: &Console, form: &Form) -> Result<Notice, AppOrApi> {
        let list = |name: &str| -> Vec<String> {
            form.get(name)
                .split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let optional = |name: &str| {
            let value = form.get(name).trim();
            (!value.is_empty()).then(|| value.to_owned())
        };
        let ca = optional("trusted_ca_pem");
        let protocol = match form.get("type") {
            "oidc" => Protocol::Oidc(OidcSettings {
                issuer: form.get("issuer").to_owned(),
                client_id: form.get("client_id").to_owned(),
                scopes: vec!["email".into(), "profile".into()],
                claims: ClaimNames::oidc(),
                trusted_ca_pem: ca,
            }),
            "github" => Protocol::Github(GithubSettings {
                client_id: form.get("client_id").to_owned(),
                web_url: optional("web_url").unwrap_or_else(|| "https://github.com".into()),
                api_url: optional("api_url").unwrap_or_else(|| "https://api.github.com".into()),
                trusted_ca_pem: ca,
            }),
            "saml" => {
                if !form.get("metadata_url").trim().is_empty() {
                    // Nothing is fetched for a member who may not make the provider.
                    let (lk, actor, account) = self.acting(console);
                    blocking(move || lk.may_create_identity_provider(actor, account)).await?;
                }
                let metadata = crate::api::saml_metadata(
                    &self.lk(),
                    optional("metadata_xml"),
                    optional("metadata_url"),
                    ca,
                )
                .await
                .map_err(AppOrApi::Api)?;
                let (entity, sso_url, certificates) = match metadata {
                    Some(found) => (found.entity_id, found.sso_url, found.certificates),
                    None => (
                        form.get("idp_entity_id").trim().to_owned(),
                        form.get("sso_url").trim().to_owned(),
                        optional("certificate").into_iter().collect(),
                    ),
                };
                Protocol::Saml(SamlSettings {
                    idp_entity_id: entity,
                    sso_url,
                    certificates,
                    allow_idp_initiated: form.checked("allow_idp_initiated"),
                    want_assertions_signed: true,
                    attributes: ClaimNames::oidc(),
                    email_verified: form.checked("email_verified"),
                })
            }
            _ => {
                return Err(AppOrApi::Api(crate::api::error::ApiError::field(
                    crate::api::error::INVALID_FIELD,
                    "type",
                    "type must be oidc, github or saml",
                )));
            }
        };
        let secret = form.get("client_secret");
        let spec = ProviderSpec {
            name: form.get("name").to_owned(),
            enabled: true,
            domains: list("domains"),
            protocol,
            mfa_values: list("mfa_values"),
            role_mapping: Vec::new(),
            client_secret: (!secret.is_empty()).then(|| Secret::new(secret.to_owned())),
        };
        let (lk, actor, account) = self.acting(console);
        blocking(move || lk.create_identity_provider(actor, account, spec))
            .await
            .map(|_| Notice::ProviderSaved)
    }

    /// `POST /ui/settings/providers/{id}/enable|disable|delete`.
    async fn provider_action(
        &self,
        console: &Console,
        id: &str,
        action: &str,
    ) -> Result<Notice, AppOrApi> {
        let id: IdentityProviderId = id.parse().map_err(|e| AppOrApi::App(AppError::from(e)))?;
        let (lk, actor, account) = self.acting(console);
        match action {
            "enable" | "disable" => {
                let patch = ProviderPatch {
                    enabled: Some(action == "enable"),
                    ..Default::default()
                };
                blocking(move || lk.update_identity_provider(actor, account, id, patch))
                    .await
                    .map(|_| Notice::ProviderSaved)
            }
            "delete" => blocking(move || lk.delete_identity_provider(actor, account, id))
                .await
                .map(|()| Notice::ProviderDeleted),
            _ => Err(AppOrApi::App(
                crate::domain::DomainError::NotApplicable("no such action").into(),
            )),
        }
    }

    /// `GET /ui/forgot-password`.
    pub(super) fn forgot_page(&self, headers: &hyper::HeaderMap) -> Answer {
        Ok(form_page(headers, StatusCode::OK, |csrf| {
            pages::forgot_password(csrf, None)
        }))
    }

    /// `POST /ui/forgot-password`: a reset link mailed to the address when someone has
    /// it; the page says the same either way.
    pub(super) fn forgot(
        &self,
        headers: &hyper::HeaderMap,
        form: &Form,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let email = form.get("email").trim().to_owned();
        match self.api.mail_password_reset(email, peer) {
            Ok(()) => Ok(super::page(
                StatusCode::ACCEPTED,
                pages::message_ok(
                    "Check your mail",
                    "If that address belongs to someone here, a link to set a new password is on its way. It works once, for an hour.",
                ),
            )),
            Err(refused) => {
                let why = refused.msg.to_string();
                let mut page = form_page(headers, refused.code.1, |csrf| {
                    pages::forgot_password(csrf, Some(&why))
                });
                *page.status_mut() = refused.code.1;
                Err(Box::new(page))
            }
        }
    }
}

/// What the settings page lists besides the account.
struct Listed<'a> {
    providers: &'a [IdentityProvider],
    scim: &'a ScimListing,
}

fn settings_page(
    console: &Console,
    account: &Account,
    seats: usize,
    listed: &Listed<'_>,
    notice: Option<Notice>,
    error: Option<&str>,
) -> Markup {
    let settings = &account.settings;
    html! {
        (notice_line(notice))
        (error_line(error))
        dl {
            dt { "Name" } dd { (account.name) }
            dt { "Id" } dd { code { (account.id.to_string()) } }
            dt { "Made" } dd { (when(account.created_at)) }
            dt { "Seats used" } dd { (seats) }
        }
        section aria-labelledby="security" {
            h2 #security { "Sign-in security" }
            @if console.may("account.update") {
                form method="post" action="/ui/settings/mfa" {
                    (csrf_field(console.csrf()))
                    div.check {
                        input #mfa_required type="checkbox" name="mfa_required" value="on" checked[settings.mfa_required];
                        label for="mfa_required" { "Require two-factor authentication: members without it can only set it up until they do" }
                    }
                    button type="submit" { "Save" }
                }
            } @else {
                p { "Two-factor authentication is " @if settings.mfa_required { "required" } @else { "not required" } " for members." }
            }
        }
        section aria-labelledby="sso" {
            h2 #sso { "Single sign-on and provisioning" }
            @if console.may("account.update") {
                form method="post" action="/ui/settings/sso" {
                    (csrf_field(console.csrf()))
                    label for="sso_mode" { "Single sign-on" }
                    select #sso_mode name="sso_mode" {
                        @for (mode, text) in SSO_MODES {
                            option value=(mode.as_str()) selected[settings.sso_mode == mode] { (text) }
                        }
                    }
                    label for="provisioning" { "New members" }
                    select #provisioning name="provisioning" {
                        @for (mode, text) in PROVISIONING {
                            option value=(mode.as_str()) selected[settings.provisioning == mode] { (text) }
                        }
                    }
                    label for="sso-confirm" { "Your password (or a current code), to change the single sign-on mode" }
                    input #sso-confirm type="password" name="confirm" autocomplete="current-password";
                    button type="submit" { "Save sign-in settings" }
                }
            } @else {
                dl {
                    dt { "Single sign-on" } dd { (text_of(&SSO_MODES, settings.sso_mode)) }
                    dt { "New members" } dd { (text_of(&PROVISIONING, settings.provisioning)) }
                }
            }
        }
        @if console.may("identity_providers.list") {
            (providers_section(console, listed.providers))
        }
        @if console.may("scim_tokens.list") {
            (scim_section(console, account, listed.scim))
        }
    }
}

const SSO_MODES: [(SsoMode, &str); 3] = [
    (
        SsoMode::Off,
        "off: members sign in with their own credentials",
    ),
    (
        SsoMode::Mixed,
        "mixed: their own credentials or an identity provider (while testing)",
    ),
    (
        SsoMode::Enforced,
        "enforced: through an identity provider only (API keys still work)",
    ),
];

const PROVISIONING: [(Provisioning, &str); 3] = [
    (
        Provisioning::Invitations,
        "by invitation only (also accepted through a provider)",
    ),
    (
        Provisioning::Jit,
        "Just-in-Time: a first sign-in through a provider makes the member",
    ),
    (
        Provisioning::Scim,
        "SCIM: the identity provider provisions members",
    ),
];

fn text_of<T: PartialEq + Copy>(table: &[(T, &'static str)], value: T) -> &'static str {
    table
        .iter()
        .find(|(v, _)| *v == value)
        .map_or("", |(_, t)| t)
}

/// The identity providers: each with what to register at it, enable / disable, delete;
/// and a form for a new one of each kind.
fn providers_section(console: &Console, providers: &[IdentityProvider]) -> Markup {
    let csrf = console.csrf();
    let base = &console.origin;
    html! {
        section aria-labelledby="providers" {
            h2 #providers { "Identity providers" }
            @if providers.is_empty() {
                p { "None yet. Add an OpenID Connect (Okta, Entra ID, Google, Keycloak, …), GitHub or SAML 2.0 provider below, sign in through it in mixed mode, then enforce single sign-on if you wish." }
            }
            @for provider in providers {
                article.provider {
                    h3 { (provider.name) }
                    dl {
                        dt { "Type" } dd { (provider.protocol.kind()) }
                        dt { "State" } dd { @if provider.enabled { "enabled" } @else { "disabled" } }
                        @match &provider.protocol {
                            Protocol::Oidc(oidc) => {
                                dt { "Issuer" } dd { code { (oidc.issuer) } }
                                dt { "Client id" } dd { code { (oidc.client_id) } }
                                dt { "Redirect URI to register" } dd { code { (format!("{base}/sso/{}/callback", provider.id)) } }
                            }
                            Protocol::Github(github) => {
                                dt { "GitHub" } dd { code { (github.web_url) } }
                                dt { "Client id" } dd { code { (github.client_id) } }
                                dt { "Callback URL to register" } dd { code { (format!("{base}/sso/{}/callback", provider.id)) } }
                            }
                            Protocol::Saml(saml) => {
                                dt { "Provider entity id" } dd { code { (saml.idp_entity_id) } }
                                dt { "Signing certificates" } dd { (saml.certificates.len()) }
                                dt { "Email vouched for" } dd { (if saml.email_verified { "yes" } else { "no (nobody is made Just-in-Time)" }) }
                                dt { "IdP-initiated sign-in" } dd { (if saml.allow_idp_initiated { "allowed" } else { "off" }) }
                                dt { "Entity id to register" } dd { code { (format!("{base}/sso/{}/metadata", provider.id)) } }
                                dt { "ACS URL to register" } dd { code { (format!("{base}/sso/{}/acs", provider.id)) } }
                                dt { "Metadata URL" } dd { code { (format!("{base}/sso/{}/metadata", provider.id)) } }
                            }
                        }
                        dt { "Email domains" } dd { (if provider.domains.is_empty() { "none".to_owned() } else { provider.domains.join(", ") }) }
                        dt { "Counts as a second factor" } dd { (if provider.mfa_values.is_empty() { "never (members' own second factor is asked)".to_owned() } else { format!("amr {}", provider.mfa_values.join(", ")) }) }
                        dt { "Last sign-in" } dd { (provider.last_login_at.map_or_else(|| "never".to_owned(), when)) }
                    }
                    @if console.may("identity_providers.update") {
                        @let action = if provider.enabled { "disable" } else { "enable" };
                        form.inline method="post" action=(format!("/ui/settings/providers/{}/{action}", provider.id)) {
                            (csrf_field(csrf))
                            button type="submit" { @if provider.enabled { "Disable " } @else { "Enable " } (provider.name) }
                        }
                    }
                    @if console.may("identity_providers.delete") {
                        form.inline method="post" action=(format!("/ui/settings/providers/{}/delete", provider.id)) {
                            (csrf_field(csrf))
                            button.danger type="submit" { "Delete " (provider.name) " (and unlink its identities)" }
                        }
                    }
                }
            }
            @if console.may("identity_providers.create") {
                details.add {
                    summary { "Add an OpenID Connect provider" }
                    form method="post" action="/ui/settings/providers/new" {
                        (csrf_field(csrf))
                        input type="hidden" name="type" value="oidc";
                        label for="idp-name" { "Name on the sign-in page" }
                        input #idp-name type="text" name="name" maxlength="64" required;
                        label for="idp-issuer" { "Issuer (https://…)" }
                        input #idp-issuer type="url" name="issuer" required;
                        label for="idp-client" { "Client id" }
                        input #idp-client type="text" name="client_id" required;
                        label for="idp-secret" { "Client secret (stored sealed, never shown again)" }
                        input #idp-secret type="password" name="client_secret" autocomplete="off";
                        label for="idp-domains" { "Email domains (comma-separated, for discovery)" }
                        input #idp-domains type="text" name="domains";
                        label for="idp-mfa" { "amr values that count as a second factor (optional)" }
                        input #idp-mfa type="text" name="mfa_values";
                        label for="idp-ca" { "CA certificate of its TLS, PEM (optional: else the public roots)" }
                        textarea #idp-ca name="trusted_ca_pem" rows="4" {}
                        button type="submit" { "Add provider" }
                    }
                }
                details.add {
                    summary { "Add GitHub" }
                    form method="post" action="/ui/settings/providers/new" {
                        (csrf_field(csrf))
                        input type="hidden" name="type" value="github";
                        p { "Register an OAuth app at GitHub with the callback URL this page then shows; only a verified primary email is taken." }
                        label for="gh-name" { "Name on the sign-in page" }
                        input #gh-name type="text" name="name" maxlength="64" required value="GitHub";
                        label for="gh-client" { "Client id" }
                        input #gh-client type="text" name="client_id" required;
                        label for="gh-secret" { "Client secret (stored sealed, never shown again)" }
                        input #gh-secret type="password" name="client_secret" autocomplete="off" required;
                        label for="gh-domains" { "Email domains (comma-separated, for discovery)" }
                        input #gh-domains type="text" name="domains";
                        label for="gh-web" { "GitHub Enterprise Server: its URL (optional: else github.com)" }
                        input #gh-web type="url" name="web_url";
                        label for="gh-api" { "…and its API URL (optional: else api.github.com)" }
                        input #gh-api type="url" name="api_url";
                        label for="gh-ca" { "CA certificate of its TLS, PEM (optional: else the public roots)" }
                        textarea #gh-ca name="trusted_ca_pem" rows="4" {}
                        button type="submit" { "Add GitHub" }
                    }
                }
                details.add {
                    summary { "Add a SAML 2.0 provider" }
                    form method="post" action="/ui/settings/providers/new" {
                        (csrf_field(csrf))
                        input type="hidden" name="type" value="saml";
                        p { "Give the provider's metadata (its URL, fetched once now, or the XML), or its entity id, single sign-on URL and signing certificate. Then register at the provider what this page shows for it (entity id and ACS URL, or the metadata URL)." }
                        label for="saml-name" { "Name on the sign-in page" }
                        input #saml-name type="text" name="name" maxlength="64" required;
                        label for="saml-metadata-url" { "Metadata URL (https://…)" }
                        input #saml-metadata-url type="url" name="metadata_url";
                        label for="saml-metadata" { "…or the metadata XML" }
                        textarea #saml-metadata name="metadata_xml" rows="4" {}
                        label for="saml-entity" { "…or its entity id" }
                        input #saml-entity type="text" name="idp_entity_id";
                        label for="saml-sso" { "…its single sign-on URL (HTTP-Redirect)" }
                        input #saml-sso type="url" name="sso_url";
                        label for="saml-cert" { "…and its signing certificate, PEM" }
                        textarea #saml-cert name="certificate" rows="4" {}
                        label for="saml-domains" { "Email domains (comma-separated, for discovery)" }
                        input #saml-domains type="text" name="domains";
                        label for="saml-mfa" { "AuthnContextClassRef values that count as a second factor (optional)" }
                        input #saml-mfa type="text" name="mfa_values";
                        label for="saml-ca" { "CA certificate of the metadata URL's TLS, PEM (optional: else the public roots)" }
                        textarea #saml-ca name="trusted_ca_pem" rows="4" {}
                        div.check {
                            input #saml-email-verified type="checkbox" name="email_verified" value="on";
                            label for="saml-email-verified" { "The provider vouches for the email it sends (needed to make members Just-in-Time)" }
                        }
                        div.check {
                            input #saml-idp-initiated type="checkbox" name="allow_idp_initiated" value="on";
                            label for="saml-idp-initiated" { "Allow signing in from the provider's own portal (IdP-initiated)" }
                        }
                        button type="submit" { "Add SAML provider" }
                    }
                }
            }
        }
    }
}
