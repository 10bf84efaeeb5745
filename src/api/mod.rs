//! The HTTP API over [`Latchkey`]: routing, authentication, bodies, pagination and the
//! error shape of `../shared/api.md`. Transport-agnostic: it takes an `http::Request` and
//! returns an `http::Response`; [`crate::server`] puts it on TLS.
//!
//! Every request but `/healthz` carries a bearer API key. The key's owner, acting in the
//! key's account, is the actor every operation is authorized for (by the policies, inside
//! the operation's own transaction). Store work runs on the blocking pool, never on the
//! async workers, and nothing holds a lock across an `.await`.

pub mod delivery;
mod destinations;
pub mod error;
mod federation;
mod group_mappings;
pub(crate) use federation::saml_metadata;
mod handlers;
mod invitations;
pub mod mail;
pub mod metrics;
pub(crate) mod outbound;
pub(crate) mod request;
pub(crate) mod session;
mod tenancy;
pub(crate) mod views;

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::app::{AppError, Latchkey};
use crate::app::{IpPatch, IpText, Lockout, RestrictionSpec};
use crate::domain::bot::BotPatch;
use crate::domain::credential::{
    CredentialId, CredentialKind, CredentialPatch, CredentialSpec, Owner, Verified, allows_source,
};
use crate::domain::event::{Actor, Principal};
use crate::domain::id::{
    AccountId, BotId, IpPolicyId, IpRestrictionId, IpRuleId, SessionId, UserId,
};
use crate::domain::ip::{Passage, RestrictionType, RuleAction};
use crate::domain::time::Timestamp;
use crate::domain::token::TokenKind;
use crate::domain::user::{BillingRole, DeveloperRole, MemberState, Roles, RolesPatch, TeamRole};
use error::ApiError;
use handlers::Ctx;
use request::*;
pub(crate) use tenancy::access_review_csv;
use views::Base;
pub use views::{appliance_event, live_set};

/// The OpenAPI document of this API (`openapi.json` at the repository root), served at
/// `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// How much of an oversized body is read (and dropped) before answering 413.
const DRAIN_LIMIT: usize = 4 * MAX_BODY;
/// How long a client has to send a request's body, unless the server says otherwise.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The API over one open latchkey.
#[derive(Debug)]
pub struct Api {
    lk: Arc<Latchkey>,
    public_url: Option<Arc<str>>,
    client_timeout: Duration,
    passwords: Arc<session::PasswordGate>,
    mailer: Option<Arc<mail::Mailer>>,
    /// `https://host:port` of the appliance itself, for links that go out by mail: never
    /// a request's `Host`, which a client chooses (a reset link pointing elsewhere would
    /// hand its token to whoever runs that host).
    link_base: Arc<str>,
    warnings: Arc<Warnings>,
    metrics: Arc<metrics::Metrics>,
}

/// The response header that flags a request let through by a warn-only IP restriction.
pub const IP_WARNING_HEADER: &str = "latchkey-ip-restriction-warning";

/// Warn-only misses counted in memory: (account, restriction, address) → (count, first,
/// last). A short std mutex, never held across an `.await`.
#[derive(Debug, Default)]
struct Warnings(std::sync::Mutex<WarningMap>);

type WarningMap = std::collections::HashMap<
    (AccountId, IpRestrictionId, std::net::IpAddr),
    (u64, Timestamp, Timestamp),
>;

/// One batch of counted misses, as `Latchkey::record_ip_warnings` takes it.
type WarningBatch = Vec<(
    AccountId,
    IpRestrictionId,
    std::net::IpAddr,
    u64,
    Timestamp,
    Timestamp,
)>;

impl Warnings {
    fn note(
        &self,
        account: AccountId,
        restrictions: &[IpRestrictionId],
        ip: std::net::IpAddr,
        now: Timestamp,
    ) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for &restriction in restrictions {
            let entry = map
                .entry((account, restriction, ip))
                .or_insert((0, now, now));
            entry.0 += 1;
            entry.2 = now;
        }
    }

    fn take(&self) -> WarningBatch {
        let map = std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        map.into_iter()
            .map(|((account, restriction, ip), (count, first, last))| {
                (account, restriction, ip, count, first, last)
            })
            .collect()
    }

    /// Put back a batch that could not be written, merged with what came since.
    fn restore(&self, batch: WarningBatch) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (account, restriction, ip, count, first, last) in batch {
            let entry = map
                .entry((account, restriction, ip))
                .or_insert((0, first, last));
            entry.0 += count;
            entry.1 = entry.1.min(first);
            entry.2 = entry.2.max(last);
        }
    }
}

/// Who is calling: the key's owner in the key's account, or a session's user in the
/// session's account.
#[derive(Debug, Clone, Copy)]
struct Caller {
    actor: Actor,
    account: AccountId,
    /// The session, when the caller came with a session cookie.
    session: Option<SessionId>,
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "latchkey_session";

type Reply = Result<Response<Full<Bytes>>, ApiError>;

/// An error's answer in the one error shape, named by a fresh operation id.
pub(crate) fn error_response(err: &ApiError) -> Response<Full<Bytes>> {
    // Named only when something went wrong: an id costs a CSPRNG read.
    let operation = operation_id();
    if err.code.1.is_server_error() {
        tracing::error!(operation_id = %operation, msg = %err.msg, "request failed");
    }
    let status = err.code.1;
    let mut response = json_response(status, &err.body(&operation));
    let headers = response.headers_mut();
    match err.header {
        Some(error::ErrorHeader::RetryAfter(seconds)) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        Some(error::ErrorHeader::Allow(allow)) => {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        None => {}
    }
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

impl Api {
    /// An API over `lk`. `public_url` (`https://host:port`) makes every `uri`; without it,
    /// each request's own `Host` does.
    pub fn new(lk: Arc<Latchkey>, public_url: Option<String>) -> Api {
        let public_url: Option<Arc<str>> =
            public_url.map(|url| Arc::from(url.trim_end_matches('/')));
        Api {
            lk,
            link_base: public_url
                .clone()
                .unwrap_or_else(|| Arc::from("https://localhost")),
            public_url,
            client_timeout: DEFAULT_CLIENT_TIMEOUT,
            passwords: Arc::default(),
            mailer: None,
            warnings: Arc::default(),
            metrics: Arc::default(),
        }
    }

    /// The public URL (`https://host:port`) the operator configured, if any.
    pub(crate) fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// The bound on password work, shared with the dashboard.
    pub(crate) fn password_gate(&self) -> Arc<session::PasswordGate> {
        Arc::clone(&self.passwords)
    }

    /// How long a client may take to send a request's body (the server gives it the
    /// same time for the TLS handshake and for a request's head).
    #[must_use]
    pub fn with_client_timeout(mut self, timeout: Duration) -> Api {
        self.client_timeout = timeout;
        self
    }

    /// Links sent by mail start with `base` (`https://host:port`) unless a public URL was
    /// given, which wins.
    #[must_use]
    pub fn with_link_base(mut self, base: &str) -> Api {
        if self.public_url.is_none() {
            self.link_base = Arc::from(base.trim_end_matches('/'));
        }
        self
    }

    /// Send invitations and one-time links by mail through `mailer`.
    #[must_use]
    pub fn with_mailer(mut self, mailer: mail::Mailer) -> Api {
        self.mailer = Some(Arc::new(mailer));
        self
    }

    /// The latchkey behind the API.
    pub fn latchkey(&self) -> &Arc<Latchkey> {
        &self.lk
    }

    /// The request metrics `/metrics` serves (the SCIM endpoint counts its requests here
    /// too).
    pub(crate) fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// Answer one request. Never fails: every error becomes the contract's error shape.
    pub async fn handle<B>(self: Arc<Self>, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = std::time::Instant::now();
        let route = route_label(request.uri().path());
        let mut warning = None;
        let mut response = match self.route(request, &mut warning).await {
            Ok(response) => response,
            Err(err) => error_response(&err),
        };
        if let Some(warning) = warning {
            response.headers_mut().insert(IP_WARNING_HEADER, warning);
        }
        harden(response.headers_mut(), route);
        let took = started.elapsed();
        let status = response.status().as_u16();
        self.metrics.request(route, status, took);
        // The route, never the path or headers: a path can hold an id, a header a secret.
        tracing::debug!(route, status, micros = took.as_micros(), "request");
        response
    }

    async fn route<B>(&self, request: Request<B>, warning: &mut Option<HeaderValue>) -> Reply
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let method = parts.method.clone();
        self.refuse_cross_site(&parts)?;

        if segments == ["metrics"] {
            return match method {
                Method::GET => {
                    let text = self
                        .metrics
                        .render(self.lk.policies(), self.lk.storage_errors());
                    let mut response = Response::new(Full::new(Bytes::from(text)));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    Ok(response)
                }
                _ => Err(method_not_allowed("GET")),
            };
        }
        if segments == ["openapi.json"] {
            return match method {
                Method::GET => {
                    let mut response =
                        Response::new(Full::new(Bytes::from_static(OPENAPI.as_bytes())));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    Ok(response)
                }
                _ => Err(method_not_allowed("GET")),
            };
        }
        if segments == ["healthz"] {
            return match method {
                Method::GET | Method::HEAD => {
                    Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
                }
                _ => Err(method_not_allowed("GET, HEAD")),
            };
        }
        if segments == ["readyz"] {
            return match method {
                Method::GET | Method::HEAD => Ok(self.readiness()),
                _ => Err(method_not_allowed("GET, HEAD")),
            };
        }
        if let Some(version) = parts.headers.get("ngrok-version")
            && version.as_bytes() != b"2"
        {
            return Err(ApiError::new(
                error::BAD_API_VERSION,
                "ngrok-version must be 2, the only API version served",
            ));
        }
        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
        // The routes a caller reaches without an API key or a session: each takes a
        // body and authenticates by what it carries (a password, a link's token).
        let public = matches!(
            segments.as_slice(),
            ["login"]
                | ["password_reset"]
                | ["password_reset", "request"]
                | ["email_verification"]
                | ["invitations", _, "accept"]
        );
        if public {
            if method != Method::POST {
                return Err(method_not_allowed("POST"));
            }
            let base = self.base(&parts);
            // Boxed: these futures are large, and the decision routes should not carry
            // their size.
            return Box::pin(async move {
                let body = read_body(&parts.headers, &method, body).await?;
                match segments.as_slice() {
                    ["login"] => self.login(body, peer, warning).await,
                    ["password_reset"] => self.reset_password(body).await,
                    ["password_reset", "request"] => self.request_password_reset(body, peer).await,
                    ["email_verification"] => self.prove_email(body).await,
                    [_, id, _] => {
                        self.accept_invitation(id, &parts.headers, body, &base)
                            .await
                    }
                    _ => Err(method_not_allowed("POST")),
                }
            })
            .await;
        }
        let caller = match session::session_cookie(&parts.headers) {
            Some(secret) if !parts.headers.contains_key(header::AUTHORIZATION) => {
                let lk = Arc::clone(&self.lk);
                let secret = secret.to_owned();
                let session = blocking(move || lk.session(&secret)).await?;
                *warning = self.gate(session.account, RestrictionType::Dashboard, peer)?;
                let enrolling = matches!(
                    (&method, segments.as_slice()),
                    (&Method::GET, ["me"])
                        | (&Method::POST, ["logout"])
                        | (&Method::POST, ["me", "mfa", "totp"])
                        | (&Method::POST, ["me", "mfa", "totp", "confirm"])
                );
                if session.enrollment_only && !enrolling {
                    return Err(ApiError::new(
                        error::FORBIDDEN,
                        "the account requires MFA: enroll TOTP first (POST /me/mfa/totp)",
                    )
                    .with("policy", "latchkey")
                    .with(
                        "reason",
                        "this session reaches only TOTP enrollment until the user enrolls",
                    ));
                }
                Caller {
                    actor: Actor {
                        principal: Principal::User(session.user),
                        credential: None,
                    },
                    account: session.account,
                    session: Some(session.id),
                }
            }
            _ => {
                let caller = self.authenticate(&parts.headers, peer)?;
                *warning = self.gate(caller.account, RestrictionType::Api, peer)?;
                caller
            }
        };
        let base = self.base(&parts);
        // A small body usually came with the head: read it without arming a timer.
        let mut read = std::pin::pin!(read_body(&parts.headers, &method, body));
        let body = match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
            Poll::Ready(body) => body?,
            Poll::Pending => tokio::time::timeout(self.client_timeout, read)
                .await
                .map_err(|_| {
                    ApiError::new(
                        error::REQUEST_TIMEOUT,
                        format!(
                            "the body did not arrive within {} ms",
                            self.client_timeout.as_millis()
                        ),
                    )
                })??,
        };
        let query = Query::parse(parts.uri.query())?;
        let ctx = Ctx {
            lk: Arc::clone(&self.lk),
            warnings: Arc::clone(&self.warnings),
            metrics: Arc::clone(&self.metrics),
            passwords: Arc::clone(&self.passwords),
            mailer: self.mailer.clone(),
            link_base: Arc::clone(&self.link_base),
            peer,
            caller,
            base,
            query,
            body,
        };

        ctx.dispatch(&method, &segments, &path).await
    }

    /// The bearer API key's owner. Only API keys authenticate API requests: an authtoken
    /// is for agents and an SSH key for SSH.
    fn authenticate(
        &self,
        headers: &hyper::HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Caller, ApiError> {
        let unauthenticated = |msg: &str| ApiError::new(error::UNAUTHENTICATED, msg);
        let header = headers.get(header::AUTHORIZATION).ok_or_else(|| {
            unauthenticated("an Authorization: Bearer <API key> header is required")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| unauthenticated("the Authorization header must be Bearer <API key>"))?;
        let verified = self
            .lk
            .verify_token(token)
            .map_err(|_| unauthenticated("the API key is not valid"))?;
        if verified.credential.kind != CredentialKind::ApiKey {
            return Err(unauthenticated(
                "only API keys authenticate API requests, not authtokens",
            ));
        }
        // A key limited to some networks is refused from anywhere else, and from an
        // unknown address (fail closed).
        if let Some(networks) = &verified.allowed_cidrs {
            let inside = peer.is_some_and(|ip| allows_source(networks, ip));
            if !inside {
                return Err(unauthenticated(
                    "the API key is not valid from this address",
                ));
            }
        }
        Ok(Caller {
            actor: actor_of(&verified),
            account: verified.account,
            session: None,
        })
    }

    /// Check the caller's address against the account's `api` IP restrictions: an
    /// enforced one that refuses it is a 403; warn-only ones let it through, flag the
    /// response and count the miss (recorded in batches, see [`Api::flush_warnings`]).
    pub(crate) fn gate(
        &self,
        account: AccountId,
        kind: RestrictionType,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Option<HeaderValue>, ApiError> {
        let passage = self.lk.check_ip(account, kind, peer)?;
        let what = match kind {
            RestrictionType::Dashboard => "dashboard sessions",
            _ => "API requests",
        };
        if passage == Passage::Allowed {
            return Ok(None);
        }
        let shown = peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
        match passage {
            Passage::Allowed => Ok(None),
            Passage::Denied(restriction) => {
                let reason =
                    format!("IP restriction {restriction} does not allow {what} from {shown}");
                Err(ApiError::new(error::IP_RESTRICTED, reason.clone())
                    .with("policy", "ip_restrictions")
                    .with("reason", reason))
            }
            Passage::Warned(restrictions) => {
                if let Some(ip) = peer {
                    self.warnings
                        .note(account, &restrictions, ip, self.lk.now());
                }
                let ids: Vec<String> = restrictions.iter().map(ToString::to_string).collect();
                let text = format!(
                    "{} (warn-only) would refuse {what} from {shown}",
                    ids.join(", ")
                );
                Ok(HeaderValue::from_str(&text).ok())
            }
        }
    }

    /// Record the warn-only IP restriction misses counted since the last call, in one
    /// transaction; the server calls this every second and at shutdown.
    pub fn flush_warnings(&self) -> Result<usize, AppError> {
        let batch = self.warnings.take();
        let count = batch.len();
        if let Err(err) = self.lk.record_ip_warnings(&batch) {
            self.warnings.restore(batch);
            return Err(err);
        }
        Ok(count)
    }

    /// `/readyz`: 200 `ok` while the storage takes writes; 503 `degraded` with the reasons
    /// while it does not (a full disk), with no secret and no file name in them.
    fn readiness(&self) -> Response<Full<Bytes>> {
        match self.lk.readiness() {
            crate::store::Readiness::Ready => {
                json_response(StatusCode::OK, &json!({"status": "ok", "reasons": []}))
            }
            crate::store::Readiness::Degraded { reason, since } => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({
                    "status": "degraded",
                    "reasons": [format!("storage writes are failing since {}: {reason}", since.to_rfc3339())],
                }),
            ),
        }
    }

    /// A browser's state-changing request sent by another site, riding on the session
    /// cookie (or forging a login, a reset, an acceptance): refused, before anything is
    /// read or done. A request with an `Authorization` header carries its credential
    /// itself, not a browser's ambient one; safe methods change nothing. Without `Origin`
    /// or `Sec-Fetch-Site` (curl, other programs) nothing can be judged and nothing is
    /// refused: browsers send them on every such request.
    fn refuse_cross_site(&self, parts: &hyper::http::request::Parts) -> Result<(), ApiError> {
        if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
            || parts.headers.contains_key(header::AUTHORIZATION)
        {
            return Ok(());
        }
        let text = |name| {
            parts
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        };
        let foreign = |why: String| {
            ApiError::new(
                error::CROSS_SITE,
                format!(
                    "refused: {why}; a page of another site may not act with this browser's session"
                ),
            )
            .with("policy", "latchkey")
            .with("reason", why)
        };
        if let Some(site) = text("sec-fetch-site")
            && !matches!(site.as_str(), "same-origin" | "none")
        {
            return Err(foreign(format!("the request came from a {site} page")));
        }
        if let Some(origin) = text(header::ORIGIN.as_str()) {
            let own_host = match (parts.uri.authority(), parts.headers.get(header::HOST)) {
                (Some(authority), _) => Some(authority.as_str().to_ascii_lowercase()),
                (None, Some(host)) => host.to_str().ok().map(str::to_ascii_lowercase),
                (None, None) => None,
            };
            let same = own_host.is_some_and(|host| origin == format!("https://{host}"))
                || self
                    .public_url
                    .as_deref()
                    .is_some_and(|url| origin == url.to_ascii_lowercase());
            if !same {
                return Err(foreign(format!(
                    "the request came from the origin {origin}"
                )));
            }
        }
        Ok(())
    }

    fn base(&self, parts: &hyper::http::request::Parts) -> Base {
        if let Some(url) = &self.public_url {
            return Base::Public(Arc::clone(url));
        }
        match (parts.uri.authority(), parts.headers.get(header::HOST)) {
            (Some(authority), _) => Base::Authority(authority.clone()),
            (None, Some(host)) => Base::Host(host.clone()),
            (None, None) => Base::Host(HeaderValue::from_static("localhost")),
        }
    }
}

/// The peer address of the connection a request came on (set by the server).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// The principal a verified credential acts as.
pub fn actor_of(verified: &Verified) -> Actor {
    Actor {
        principal: match verified.owner {
            Owner::User(user) => Principal::User(user),
            Owner::Bot(bot) => Principal::Bot(bot),
        },
        credential: Some(verified.credential),
    }
}

/// The route a path matches, as a metrics label (ids replaced by `{id}`); a path no route
/// serves is `other`, never the label of a route that exists.
fn route_label(path: &str) -> &'static str {
    const ROUTES: [(&str, &str, &str); 19] = [
        ("tenants", "/tenants", "/tenants/{id}"),
        ("permissions", "/permissions", "/permissions/{name}"),
        ("roles", "/roles", "/roles/{id}"),
        (
            "role_assignments",
            "/role_assignments",
            "/role_assignments/{id}",
        ),
        ("api_keys", "/api_keys", "/api_keys/{id}"),
        ("bot_users", "/bot_users", "/bot_users/{id}"),
        ("credentials", "/credentials", "/credentials/{id}"),
        (
            "ssh_credentials",
            "/ssh_credentials",
            "/ssh_credentials/{id}",
        ),
        ("ip_policies", "/ip_policies", "/ip_policies/{id}"),
        (
            "ip_policy_rules",
            "/ip_policy_rules",
            "/ip_policy_rules/{id}",
        ),
        (
            "ip_restrictions",
            "/ip_restrictions",
            "/ip_restrictions/{id}",
        ),
        ("users", "/users", "/users/{id}"),
        ("invitations", "/invitations", "/invitations/{id}"),
        ("events", "/events", "/events/{id}"),
        (
            "event_destinations",
            "/event_destinations",
            "/event_destinations/{id}",
        ),
        (
            "identity_providers",
            "/identity_providers",
            "/identity_providers/{id}",
        ),
        ("scim_tokens", "/scim_tokens", "/scim_tokens/{id}"),
        ("scim_groups", "/scim_groups", "/scim_groups/{id}"),
        (
            "scim_group_mappings",
            "/scim_group_mappings",
            "/scim_group_mappings/{id}",
        ),
    ];
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let collection = |name: &str| ROUTES.iter().find(|(n, _, _)| *n == name);
    match segments.as_slice() {
        [] => "/",
        ["account"] => "/account",
        ["verify"] => "/verify",
        ["healthz"] => "/healthz",
        ["readyz"] => "/readyz",
        ["metrics"] => "/metrics",
        ["openapi.json"] => "/openapi.json",
        ["access_review"] => "/access_review",
        ["login"] => "/login",
        ["password_reset"] => "/password_reset",
        ["password_reset", "request"] => "/password_reset/request",
        ["email_verification"] => "/email_verification",
        ["me", "email_verification"] => "/me/email_verification",
        ["users", _, "password_reset"] => "/users/{id}/password_reset",
        ["invitations", _, "accept"] => "/invitations/{id}/accept",
        ["logout"] => "/logout",
        ["me"] => "/me",
        ["me", "password"] => "/me/password",
        ["me", "mfa", "totp"] => "/me/mfa/totp",
        ["me", "mfa", "totp", "confirm"] => "/me/mfa/totp/confirm",
        ["authorize"] => "/authorize",
        ["authorize", "batch"] => "/authorize/batch",
        ["policies"] => "/policies",
        ["policies", "events"] => "/policies/events",
        [one] => collection(one).map_or("other", |(_, list, _)| list),
        [one, _] => collection(one).map_or("other", |(_, _, item)| item),
        ["credentials", _, "rotate"] => "/credentials/{id}/rotate",
        ["users", _, "effective_permissions"] => "/users/{id}/effective_permissions",
        _ => "other",
    }
}

fn credential_kind(segment: &str) -> Option<CredentialKind> {
    match segment {
        "credentials" => Some(CredentialKind::Authtoken),
        "api_keys" => Some(CredentialKind::ApiKey),
        "ssh_credentials" => Some(CredentialKind::SshKey),
        _ => None,
    }
}

/// The headers of every answer. Browsers: only over HTTPS from now on, no guessing of
/// content types, no referrer, no framing, no active content; nothing cached but the
/// public OpenAPI document, since answers carry tokens, keys, links, TOTP seeds and
/// recovery codes.
fn harden(headers: &mut hyper::HeaderMap, route: &str) {
    let fixed = [
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    if route != "/openapi.json" {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// The query parameters an operation takes: whether it is a paged list (`before_id`,
/// `limit`), and its filters. Anything else is a 400.
fn query_parameters(method: &Method, segments: &[&str]) -> (bool, &'static [&'static str]) {
    if method != Method::GET {
        return (false, &[]);
    }
    match segments {
        ["events"] => (
            true,
            &["principal_id", "action", "object_id", "since", "until"],
        ),
        ["invitations"] => (true, &["state"]),
        ["policies", "events"] => (true, &[]),
        ["role_assignments"] => (true, &["principal_id", "role_id", "tenant_id"]),
        ["access_review"] => (false, &["format"]),
        ["permissions" | "account" | "me" | "policies" | "metrics" | "healthz" | "readyz"] => {
            (false, &[])
        }
        [_] => (true, &[]),
        _ => (false, &[]),
    }
}

/// The methods a path takes (the `Allow` of a 405), or `None` for no such path.
fn allowed_methods(segments: &[&str]) -> Option<&'static str> {
    const COLLECTIONS: [&str; 17] = [
        "users",
        "invitations",
        "tenants",
        "roles",
        "role_assignments",
        "bot_users",
        "credentials",
        "api_keys",
        "ssh_credentials",
        "ip_policies",
        "ip_policy_rules",
        "ip_restrictions",
        "permissions",
        "event_destinations",
        "identity_providers",
        "scim_tokens",
        "scim_group_mappings",
    ];
    Some(match segments {
        ["healthz" | "readyz"] => "GET, HEAD",
        ["metrics" | "openapi.json" | "access_review" | "policies" | "events"] => "GET",
        ["account"] => "GET, PATCH",
        ["me"] => "GET, PATCH",
        ["verify" | "authorize" | "login" | "logout" | "password_reset" | "email_verification"] => {
            "POST"
        }
        ["authorize", "batch"]
        | ["password_reset", "request"]
        | ["me", "password" | "email_verification"]
        | ["me", "mfa", "totp", "confirm"]
        | ["credentials", _, "rotate"]
        | ["users", _, "password_reset"]
        | ["invitations", _, "accept"] => "POST",
        ["me", "mfa", "totp"] => "POST, DELETE",
        ["events", _]
        | ["users", _, "effective_permissions"]
        | ["policies", "events"]
        | ["scim_groups"]
        | ["scim_groups", _] => "GET",
        [one] if COLLECTIONS.contains(one) => "GET, POST",
        [
            "invitations" | "permissions" | "role_assignments" | "scim_tokens",
            _,
        ] => "GET, DELETE",
        [one, _] if COLLECTIONS.contains(one) => "GET, PATCH, DELETE",
        _ => return None,
    })
}

/// The answer to `/verify` (and `latchkey verify`) for a valid credential, in the
/// contract's field order. Written on every `/verify`, so it borrows the credential and
/// writes ids straight into the output rather than through `json!` or owned strings.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedView<'a>(&'a Verified);

impl serde::Serialize for VerifiedView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let verified = self.0;
        let mut out = serializer.serialize_struct("Verified", 8)?;
        out.serialize_field("valid", &true)?;
        out.serialize_field("credential_id", verified.credential.text().as_str())?;
        out.serialize_field("kind", verified.credential.kind.as_str())?;
        match verified.owner {
            Owner::User(id) => out.serialize_field("owner_id", id.text().as_str())?,
            Owner::Bot(id) => out.serialize_field("owner_id", id.text().as_str())?,
        }
        out.serialize_field("owner_kind", verified.owner.kind_str())?;
        out.serialize_field("account_id", verified.account.text().as_str())?;
        let acl: &[String] = verified.acl.as_deref().map_or(&[], |acl| acl.rules());
        out.serialize_field("acl", acl)?;
        out.serialize_field(
            "expires_at",
            &verified.expires_at.map(Timestamp::to_rfc3339),
        )?;
        out.end()
    }
}

/// See [`VerifiedView`].
pub fn verified_view(verified: &Verified) -> VerifiedView<'_> {
    VerifiedView(verified)
}

/// [`VerifiedView`] as a JSON value.
pub fn verified_json(verified: &Verified) -> Value {
    serde_json::to_value(verified_view(verified)).unwrap_or(Value::Null)
}
