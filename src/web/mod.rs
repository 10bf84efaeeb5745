//! The dashboard: server-rendered pages under `/ui/`, on the API's TLS listener, for the
//! people an account holds (issue 16). Each page turns a form into calls of `app`, so the
//! policies decide for it exactly as for the API; nothing here reads the store.
//!
//! - `door`: the way in: sign-in in steps (email and password, then the second factor or
//!   the account, carried by a sealed login ticket, never by the password again),
//!   sign-out, one-time links (password reset, first administrator's setup), invitation
//!   acceptance;
//! - `console`: a signed-in member's frame: its session, who it is, and what the
//!   policies let it do (the controls it may not use are not shown; the server refuses
//!   them anyway);
//! - `profile`, `team`: the pages.
//!
//! Rules every page follows:
//! - every state change is a `POST` carrying the double-submit token (a random cookie,
//!   `SameSite=Strict`, and the same value in the form, compared in constant time) from
//!   a page of this origin (`Origin` must be this server's); anything else is refused
//!   and changes nothing;
//! - every page is sent with a strict Content-Security-Policy (scripts only from this
//!   origin's one embedded file, no inline anything, no framing), `no-store`, `nosniff`
//!   and no referrer;
//! - secrets travel in `HttpOnly` cookies only, never in a URL; a secret made for the
//!   person (a new key, recovery codes) is in the answer to the post that made it, once;
//! - a change that succeeds redirects (303) to its page with a fixed notice key, so a
//!   reload never repeats it.
//!
//! The single sign-on posts under `/sso/{id}/` are the exceptions, each authenticated
//! otherwise: the SAML ACS is cross-site by nature (the response's signature and the
//! flow cookie), and `finish` is posted from this origin with a sealed answer that names
//! its session in place of the double-submit token (see `sso`).

mod console;
mod credentials;
mod door;
mod events;
mod github;
mod ip;
mod oidc;
mod pages;
mod passkeys;
mod profile;
mod saml;
mod scim;
mod settings;
mod sso;
mod team;
mod tenancy;

use std::sync::Arc;

use base64ct::Encoding as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use subtle::ConstantTimeEq;

use crate::api::Api;
use crate::api::error::ApiError;
use crate::api::request::{is_content_type, read_bounded};
use crate::app::{AppError, Latchkey, RelyingParty};
use crate::domain::event::Actor;
use crate::domain::id::AccountId;

/// The double-submit token's cookie.
const CSRF_COOKIE: &str = "latchkey_csrf";
/// The stylesheet, embedded.
const APP_CSS: &str = include_str!("app.css");
/// The one script: progressive enhancement only (copy buttons); every page works
/// without it.
const APP_JS: &str = include_str!("app.js");

/// The dashboard of one server.
#[derive(Debug)]
pub struct Web {
    api: Arc<Api>,
    /// The OpenID Connect relying party's discovery cache.
    oidc: oidc::Oidc,
}

/// What a handler answers: a page or a redirect, or a refusal page.
type Answer = Result<Response<Full<Bytes>>, Box<Response<Full<Bytes>>>>;

/// A refused change, shown on its page again: the refusal's status and sentence.
type Refusal = Option<(StatusCode, String)>;

/// The status of a page shown after `error` (200 without one), and its error line.
fn status_of(error: Refusal) -> (StatusCode, Option<String>) {
    match error {
        Some((status, why)) => (status, Some(why)),
        None => (StatusCode::OK, None),
    }
}

impl Web {
    /// The dashboard beside `api`: its latchkey, its password gate (one bound on argon2
    /// work for both), its IP-restriction gate (warn-only misses counted together) and
    /// its mailer.
    pub(crate) fn new(api: Arc<Api>) -> Web {
        Web {
            api,
            oidc: oidc::Oidc::default(),
        }
    }

    fn lk(&self) -> Arc<Latchkey> {
        Arc::clone(self.api.latchkey())
    }

    /// The latchkey, and the signed-in member as the actor in its account.
    fn acting(&self, console: &console::Console) -> (Arc<Latchkey>, Actor, AccountId) {
        (self.lk(), console.actor(), console.session.account)
    }

    /// Whether a request is the dashboard's: anything under `/ui`, and from a browser (it
    /// asks for HTML) `GET /` (sent there) and the one-time links the appliance hands out
    /// (`/password_reset?token=`, `/invitations/{id}/accept?token=`).
    pub fn wants(method: &Method, path: &str, headers: &hyper::HeaderMap) -> bool {
        path == "/ui"
            || path.starts_with("/ui/")
            || path.starts_with("/sso/")
            || (method == Method::GET
                && (path == "/"
                    || path == "/password_reset"
                    || door::invitation_link(path).is_some())
                && headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|accept| accept.contains("text/html")))
    }

    /// Answer a dashboard request from `peer`.
    pub async fn handle<B>(
        &self,
        request: Request<B>,
        peer: Option<std::net::IpAddr>,
    ) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (mut parts, body) = request.into_parts();
        // HTTP/2 names the authority in the URI, HTTP/1.1 in `Host`: one place to read it.
        if !parts.headers.contains_key(header::HOST)
            && let Some(value) = parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(header::HOST, value);
        }
        let path = parts.uri.path().to_owned();
        let segments: Vec<&str> = match path.strip_prefix("/ui/") {
            Some(rest) => rest.split('/').collect(),
            None => Vec::new(),
        };
        let query = parts.uri.query();
        let answer = match (&parts.method, path.as_str()) {
            (&Method::GET, "/" | "/ui") => Ok(redirect("/ui/")),
            (&Method::GET, "/password_reset") => Ok(door::take_link(query)),
            (&Method::GET, _) if sso::post_path(&path).is_some() => Err(not_allowed("POST")),
            (&Method::GET, _) if path.starts_with("/sso/") => {
                let segments: Vec<&str> = path.trim_start_matches("/sso/").split('/').collect();
                self.sso(&segments, &parts.headers, query, authority(&parts), peer)
                    .await
            }
            (&Method::GET, _) if !path.starts_with("/ui/") => {
                Ok(door::take_invitation(&path, query))
            }
            (&Method::GET, _) => self.get(&parts.headers, &segments, query, peer).await,
            (&Method::POST, _) if sso::post_path(&path).is_some() => {
                let origin_ok = same_origin(&parts);
                match (
                    sso::post_path(&path),
                    read_bounded(&parts.headers, &parts.method, body).await,
                ) {
                    (Some((id, sso::SsoPost::Acs)), Ok(bytes)) => {
                        self.acs(id, &parts.headers, &bytes, authority(&parts), peer)
                            .await
                    }
                    // The finishing form is posted by a page of this origin, never another.
                    (Some((id, sso::SsoPost::Finish)), Ok(bytes)) if origin_ok => {
                        self.finish(id, &parts.headers, &bytes, peer).await
                    }
                    (Some((_, sso::SsoPost::Finish)), Ok(_)) => Err(Box::new(page(
                        StatusCode::FORBIDDEN,
                        pages::message(
                            "Refused",
                            "This form did not come from a page of this dashboard.",
                        ),
                    ))),
                    _ => Err(Box::new(page(
                        StatusCode::BAD_REQUEST,
                        pages::message("Bad request", "The response could not be read."),
                    ))),
                }
            }
            (&Method::POST, _) if path.starts_with("/sso/") => Err(not_allowed("GET")),
            (&Method::POST, _) => match self.form(&parts, body).await {
                Ok(form) => {
                    self.post(&parts.headers, &segments, &form, peer, authority(&parts))
                        .await
                }
                Err(refused) => Err(refused),
            },
            _ if sso::post_path(&path).is_some() => Err(not_allowed("POST")),
            _ if path.starts_with("/sso/") => Err(not_allowed("GET")),
            _ => Err(not_allowed("GET, POST")),
        };
        let mut response = answer.unwrap_or_else(|refused| *refused);
        harden(response.headers_mut());
        response
    }

    /// A page.
    async fn get(
        &self,
        headers: &hyper::HeaderMap,
        segments: &[&str],
        query: Option<&str>,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        match segments {
            ["static", "app.css"] => Ok(asset(APP_CSS, "text/css; charset=utf-8")),
            ["static", "app.js"] => Ok(asset(APP_JS, "text/javascript; charset=utf-8")),
            ["sign-in"] => Ok(self.sign_in_page(headers, None, "")),
            ["sign-in", "code"] => Ok(self.code_page(headers, None)),
            ["sign-in", "account"] => self.account_page(headers, peer).await,
            ["reset-password"] => Ok(self.reset_page(headers, None)),
            ["forgot-password"] => self.forgot_page(headers),
            ["invitation"] => self.invitation_page(headers, None).await,
            _ => {
                let console = self.console(headers, peer).await?;
                // Until it enrolls, a session the account's MFA rule limits sees only its
                // profile, where two-factor set-up is.
                if console.session.enrollment_only && segments != ["profile"] {
                    return Ok(redirect("/ui/profile"));
                }
                let notice = Notice::from_query(query);
                match segments {
                    [""] => self.home(&console, notice).await,
                    ["profile"] => self.profile(&console, notice, None).await,
                    ["members"] => self.members(&console, query, notice, None).await,
                    ["members", id] => self.member_page(&console, id, notice, None).await,
                    ["bots"] => self.bots(&console, query, notice, None).await,
                    ["bots", id] => self.bot_page(&console, id, notice, None).await,
                    ["events"] => self.events(&console, query).await,
                    ["ip"] => self.ip(&console, notice, None).await,
                    ["settings"] => self.settings(&console, notice, None).await,
                    ["access-review"] => self.access_review(&console).await,
                    ["access-review.csv"] => self.access_review_csv(&console).await,
                    ["tenants"] => self.tenants(&console, notice, None).await,
                    ["tenants", id] => self.tenant_page(&console, id, notice, None).await,
                    ["roles"] => self.roles(&console, notice, None).await,
                    ["roles", id] => self.role_page(&console, id, notice, None).await,
                    ["credentials", kind] => match credentials::Kind::from_slug(kind) {
                        Some(kind) => self.credentials(&console, kind, query, notice, None).await,
                        None => Err(not_found()),
                    },
                    _ => Err(not_found()),
                }
            }
        }
    }

    /// A form's post (already checked: this origin, the double-submit token).
    async fn post(
        &self,
        headers: &hyper::HeaderMap,
        segments: &[&str],
        form: &Form,
        peer: Option<std::net::IpAddr>,
        authority: Option<&str>,
    ) -> Answer {
        // Passkeys are bound to the host name the dashboard was opened by.
        let rp = authority.and_then(|a| RelyingParty::for_origin(&format!("https://{a}")));
        let rp = rp.as_ref();
        match segments {
            ["sign-in"] => self.sign_in(headers, form, peer).await,
            ["sign-in", "passkey"] => self.passkey_sign_in(headers, form, peer).await,
            ["sign-in", "passkey", "options"] => self.passkey_sign_in_options(rp).await,
            ["sign-in", "code", "options"] => self.passkey_factor_options(headers, rp).await,
            ["sign-in", "code"] => self.code(headers, form, peer).await,
            ["sign-in", "account"] => self.choose(headers, form, peer).await,
            ["sign-out"] => self.sign_out(headers).await,
            ["reset-password"] => self.reset(headers, form).await,
            ["forgot-password"] => self.forgot(headers, form, peer),
            ["invitation"] => self.accept(headers, form).await,
            _ => {
                let console = self.console(headers, peer).await?;
                // Until it enrolls, a session the account's MFA rule limits reaches only
                // two-factor setup (as the API's `/me/mfa/totp`).
                if console.session.enrollment_only
                    && !matches!(
                        segments,
                        [
                            "profile",
                            "totp" | "totp-confirm" | "passkey-options" | "passkey-add"
                        ]
                    )
                {
                    return Ok(redirect("/ui/profile"));
                }
                match segments {
                    ["profile", "passkey-options"] => self.passkey_add_options(&console, rp).await,
                    ["profile", "connect"] => {
                        self.profile_flow(&console, form, authority, true).await
                    }
                    ["profile", "reconfirm"] => {
                        self.profile_flow(&console, form, authority, false).await
                    }
                    ["profile", action] => self.profile_post(&console, action, form).await,
                    ["members", "invite"] => self.invite(&console, form).await,
                    ["members", id, action] => self.member_post(&console, id, action, form).await,
                    ["bots", "new"] => self.create_bot(&console, form).await,
                    ["bots", id, action] => self.bot_post(&console, id, action, form).await,
                    ["tenants", rest @ ..] => self.tenant_post(&console, rest, form).await,
                    ["ip", rest @ ..] => self.ip_post(&console, rest, form, peer).await,
                    ["settings", rest @ ..] => self.settings_post(&console, rest, form).await,
                    ["roles", rest @ ..] => self.role_post(&console, rest, form).await,
                    ["credentials", kind, rest @ ..] => match credentials::Kind::from_slug(kind) {
                        Some(kind) => self.credential_post(&console, kind, rest, form).await,
                        None => Err(not_found()),
                    },
                    _ => Err(not_found()),
                }
            }
        }
    }

    /// A form posted from a page of this origin with the double-submit token; anything
    /// else is refused before it is read further.
    async fn form<B>(
        &self,
        parts: &hyper::http::request::Parts,
        body: B,
    ) -> Result<Form, Box<Response<Full<Bytes>>>>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let forbidden = || {
            page(
                StatusCode::FORBIDDEN,
                pages::message(
                    "Refused",
                    "This form did not come from a page of this dashboard (or the page is too old): reload it and try again.",
                ),
            )
        };
        if !same_origin(parts) {
            return Err(Box::new(forbidden()));
        }
        if !is_content_type(&parts.headers, "application/x-www-form-urlencoded") {
            return Err(Box::new(page(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                pages::message(
                    "Bad request",
                    "A form is sent as application/x-www-form-urlencoded.",
                ),
            )));
        }
        let bytes = read_bounded(&parts.headers, &parts.method, body)
            .await
            .map_err(|_| {
                Box::new(page(
                    StatusCode::BAD_REQUEST,
                    pages::message("Bad request", "The form could not be read."),
                ))
            })?;
        let form = Form::parse(&bytes);
        let expected = cookie(&parts.headers, CSRF_COOKIE).unwrap_or("");
        let given = form.get("csrf");
        if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Err(Box::new(forbidden()));
        }
        Ok(form)
    }
}

/// A fixed message shown once after a change redirected to its page (`?done=<key>`):
/// only these texts, never one taken from the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    Renamed,
    PasswordChanged,
    TotpDisabled,
    SessionsEnded,
    Invited,
    RolesChanged,
    Disabled,
    Enabled,
    Removed,
    BotCreated,
    BotChanged,
    BotDeleted,
    InvitationRevoked,
    SshKeyAdded,
    CredentialDeleted,
    TenantSaved,
    TenantDeleted,
    RoleSaved,
    RoleDeleted,
    AccessAdded,
    AccessRemoved,
    IpSaved,
    IpDeleted,
    SettingsSaved,
    PasskeyAdded,
    PasskeyRemoved,
    Connected,
    Disconnected,
    ProviderSaved,
    ProviderDeleted,
    Reconfirmed,
    ScimTokenRevoked,
    MappingSaved,
    MappingRemoved,
}

impl Notice {
    const ALL: [(Notice, &'static str, &'static str); 34] = [
        (Notice::Renamed, "renamed", "Your name is changed."),
        (
            Notice::PasswordChanged,
            "password",
            "Your password is changed; your other sessions are signed out.",
        ),
        (
            Notice::TotpDisabled,
            "totp-off",
            "Two-factor authentication is off.",
        ),
        (
            Notice::SessionsEnded,
            "signed-out",
            "Your other sessions are signed out.",
        ),
        (Notice::Invited, "invited", "The invitation is made."),
        (Notice::RolesChanged, "roles", "The roles are changed."),
        (Notice::Disabled, "disabled", "The member is disabled."),
        (Notice::Enabled, "enabled", "The member is enabled."),
        (
            Notice::Removed,
            "removed",
            "The member is removed; its credentials in this account are revoked.",
        ),
        (
            Notice::BotCreated,
            "bot-created",
            "The bot user is created.",
        ),
        (
            Notice::BotChanged,
            "bot-changed",
            "The bot user is changed.",
        ),
        (
            Notice::BotDeleted,
            "bot-deleted",
            "The bot user is deleted; its credentials are revoked.",
        ),
        (
            Notice::InvitationRevoked,
            "invitation-revoked",
            "The invitation is revoked.",
        ),
        (
            Notice::SshKeyAdded,
            "ssh-key-added",
            "The SSH key is added.",
        ),
        (
            Notice::CredentialDeleted,
            "credential-deleted",
            "The credential is deleted: it stops working at once.",
        ),
        (Notice::TenantSaved, "tenant-saved", "The tenant is saved."),
        (
            Notice::TenantDeleted,
            "tenant-deleted",
            "The tenant is deleted, with every role given in it.",
        ),
        (Notice::RoleSaved, "role-saved", "The role is saved."),
        (
            Notice::RoleDeleted,
            "role-deleted",
            "The role is deleted, with every assignment of it.",
        ),
        (
            Notice::AccessAdded,
            "access-added",
            "The tenant access is given.",
        ),
        (
            Notice::AccessRemoved,
            "access-removed",
            "The tenant access is removed.",
        ),
        (Notice::IpSaved, "ip-saved", "The change is saved."),
        (Notice::IpDeleted, "ip-deleted", "It is deleted."),
        (Notice::SettingsSaved, "settings", "The settings are saved."),
        (
            Notice::PasskeyAdded,
            "passkey-added",
            "The passkey is added.",
        ),
        (
            Notice::PasskeyRemoved,
            "passkey-removed",
            "The passkey is removed.",
        ),
        (
            Notice::Connected,
            "connected",
            "The identity provider is connected: you can sign in through it.",
        ),
        (
            Notice::Disconnected,
            "disconnected",
            "The identity provider is disconnected.",
        ),
        (
            Notice::ProviderSaved,
            "provider-saved",
            "The identity provider is saved.",
        ),
        (
            Notice::ProviderDeleted,
            "provider-deleted",
            "The identity provider is deleted, and its identities unlinked.",
        ),
        (
            Notice::Reconfirmed,
            "reconfirmed",
            "Confirmed: for five minutes, changes that ask for your password go through without it.",
        ),
        (
            Notice::ScimTokenRevoked,
            "scim-token-revoked",
            "The SCIM token is revoked: it stops working at once.",
        ),
        (
            Notice::MappingSaved,
            "mapping-saved",
            "The group's mapping is saved: its members hold what it grants.",
        ),
        (
            Notice::MappingRemoved,
            "mapping-removed",
            "The group's mapping is removed: its members no longer hold what it granted.",
        ),
    ];

    fn key(self) -> &'static str {
        Notice::ALL
            .iter()
            .find(|(n, _, _)| *n == self)
            .map_or("", |(_, key, _)| key)
    }

    fn text(self) -> &'static str {
        Notice::ALL
            .iter()
            .find(|(n, _, _)| *n == self)
            .map_or("", |(_, _, text)| text)
    }

    fn from_query(query: Option<&str>) -> Option<Notice> {
        let done = query_value(query, "done")?;
        Notice::ALL
            .iter()
            .find(|(_, key, _)| *key == done)
            .map(|(n, _, _)| *n)
    }
}

/// The first value of `name` in a query string.
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A refusal from `app` or from the API's shared parts.
#[derive(Debug)]
enum AppOrApi {
    App(AppError),
    Api(ApiError),
}

impl From<AppError> for AppOrApi {
    fn from(err: AppError) -> Self {
        AppOrApi::App(err)
    }
}

impl From<ApiError> for AppOrApi {
    fn from(err: ApiError) -> Self {
        AppOrApi::Api(err)
    }
}

impl AppOrApi {
    /// The status and the sentence a person reads.
    fn explain(self) -> (StatusCode, String) {
        if let AppOrApi::App(AppError::WouldLockOut(why)) = &self {
            let text =
                format!("{why}: tick \u{201c}I may lock myself out\u{201d} to make it anyway");
            return (StatusCode::CONFLICT, text);
        }
        let api = match self {
            AppOrApi::App(err) => ApiError::from(err),
            AppOrApi::Api(err) => err,
        };
        (api.code.1, api.msg.into())
    }
}

impl From<AppOrApi> for Box<Response<Full<Bytes>>> {
    fn from(err: AppOrApi) -> Self {
        let (status, why) = err.explain();
        Box::new(page(status, pages::message("Something went wrong", &why)))
    }
}

/// Run `work` on the blocking pool (it reads or writes the store).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppOrApi> {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done.map_err(AppOrApi::App),
        Err(_) => Err(AppOrApi::App(AppError::DataDir(
            "the operation did not complete".into(),
        ))),
    }
}

/// A posted form's fields.
#[derive(Debug, Default)]
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name` (empty when there is none).
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `name` (checkboxes of one name), in order.
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a checkbox named `name` was ticked.
    fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// The double-submit token of a page: the browser's, or a new one to set.
struct Csrf {
    value: String,
    new: bool,
}

impl Csrf {
    fn of(headers: &hyper::HeaderMap) -> Csrf {
        match cookie(headers, CSRF_COOKIE) {
            Some(value) => Csrf {
                value: value.to_owned(),
                new: false,
            },
            None => {
                let mut bytes = [0u8; 24];
                // Without randomness no form can be trusted: an empty token never matches.
                let value = match getrandom::fill(&mut bytes) {
                    Ok(()) => base64ct::Base64UrlUnpadded::encode_string(&bytes),
                    Err(_) => String::new(),
                };
                Csrf { value, new: true }
            }
        }
    }

    /// Set the cookie on `response` when the token is new.
    fn keep(&self, response: &mut Response<Full<Bytes>>) {
        if self.new
            && let Ok(value) = HeaderValue::from_str(&format!(
                "{CSRF_COOKIE}={}; Path=/ui; Secure; HttpOnly; SameSite=Strict",
                self.value
            ))
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}

/// A page with a form: rendered with the browser's double-submit token (or a new one,
/// which the answer then sets).
fn form_page(
    headers: &hyper::HeaderMap,
    status: StatusCode,
    render: impl FnOnce(&str) -> maud::Markup,
) -> Response<Full<Bytes>> {
    let csrf = Csrf::of(headers);
    let mut response = page(status, render(&csrf.value));
    csrf.keep(&mut response);
    response
}

/// The value of cookie `name` in the request.
fn cookie<'h>(headers: &'h hyper::HeaderMap, name: &str) -> Option<&'h str> {
    crate::api::session::cookie(headers, name)
}

/// Whether the request's `Origin` is this server: `https://` and the authority the
/// request was sent to (HTTP/2's `:authority`, which hyper puts in the URI, or
/// HTTP/1.1's `Host`).
fn same_origin(parts: &hyper::http::request::Parts) -> bool {
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    match (origin, authority(parts)) {
        (Some(origin), Some(authority)) => origin == format!("https://{authority}"),
        _ => false,
    }
}

/// The authority the request was sent to: HTTP/2's `:authority` (which hyper puts in
/// the URI), or HTTP/1.1's `Host`.
fn authority(parts: &hyper::http::request::Parts) -> Option<&str> {
    parts
        .uri
        .authority()
        .map(hyper::http::uri::Authority::as_str)
        .or_else(|| parts.headers.get(header::HOST)?.to_str().ok())
}

/// A `Set-Cookie` that removes cookie `name` (set with `path`).
fn expire(name: &str, path: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}=; Path={path}; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn page(status: StatusCode, markup: maud::Markup) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(markup.into_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn not_found() -> Box<Response<Full<Bytes>>> {
    Box::new(page(
        StatusCode::NOT_FOUND,
        pages::message("Not found", "There is no such page."),
    ))
}

/// A 405 naming the methods the path takes.
fn not_allowed(allow: &'static str) -> Box<Response<Full<Bytes>>> {
    let mut refused = page(
        StatusCode::METHOD_NOT_ALLOWED,
        pages::message("Not allowed", "That page does not take this request."),
    );
    refused
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    Box::new(refused)
}

/// A 303 to `to` (a path of this dashboard, never one a request chose).
fn redirect(to: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A 303 to `to` saying `notice` there.
fn done(to: &str, notice: Notice) -> Answer {
    Ok(redirect(&format!("{to}?done={}", notice.key())))
}

/// An asset embedded in the binary.
fn asset(text: &'static str, kind: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// The headers every dashboard answer carries.
fn harden(headers: &mut hyper::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
}
