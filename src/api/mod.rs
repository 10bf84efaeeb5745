//! The HTTP API over [`Latchkey`]: routing, authentication, bodies, pagination and the
//! error shape of `../shared/api.md`. Transport-agnostic: it takes an `http::Request` and
//! returns an `http::Response`; [`crate::server`] puts it on TLS.
//!
//! Every request but `/healthz` carries a bearer API key. The key's owner, acting in the
//! key's account, is the actor every operation is authorized for (by the policies, inside
//! the operation's own transaction). Store work runs on the blocking pool, never on the
//! async workers, and nothing holds a lock across an `.await`.

pub mod error;
pub mod metrics;
mod views;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::app::{AppError, Latchkey};
use crate::app::{IpPatch, IpText};
use crate::domain::bot::BotPatch;
use crate::domain::credential::{
    CredentialId, CredentialKind, CredentialPatch, CredentialSpec, Owner, Verified, allows_source,
};
use crate::domain::event::{Actor, Principal};
use crate::domain::id::{AccountId, BotId, IpPolicyId, IpRestrictionId, IpRuleId, UserId};
use crate::domain::ip::{Passage, RestrictionType, RuleAction};
use crate::domain::time::Timestamp;
use crate::domain::token::TokenKind;
use crate::domain::user::{BillingRole, DeveloperRole, MemberState, Roles, RolesPatch, TeamRole};
use error::ApiError;
use views::Base;

/// The OpenAPI document of this API (`openapi.json` at the repository root), served at
/// `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// How much of an oversized body is read (and dropped) before answering 413.
const DRAIN_LIMIT: usize = 4 * MAX_BODY;

/// The API over one open latchkey.
#[derive(Debug)]
pub struct Api {
    lk: Arc<Latchkey>,
    public_url: Option<String>,
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
}

/// Who is calling: the key's owner, in the key's account.
#[derive(Debug, Clone, Copy)]
struct Caller {
    actor: Actor,
    account: AccountId,
}

type Reply = Result<Response<Full<Bytes>>, ApiError>;

impl Api {
    /// An API over `lk`. `public_url` (`https://host:port`) makes every `uri`; without it,
    /// each request's own `Host` does.
    pub fn new(lk: Arc<Latchkey>, public_url: Option<String>) -> Api {
        Api {
            lk,
            public_url,
            warnings: Arc::default(),
            metrics: Arc::default(),
        }
    }

    /// The latchkey behind the API.
    pub fn latchkey(&self) -> &Arc<Latchkey> {
        &self.lk
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
            Err(err) => {
                // Named only when something went wrong: an id costs a CSPRNG read.
                let operation = operation_id();
                if err.code.1.is_server_error() {
                    tracing::error!(operation_id = %operation, msg = %err.msg, "request failed");
                }
                let status = err.code.1;
                let mut response = json_response(status, &err.body(&operation));
                if status == StatusCode::UNAUTHORIZED {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                response
            }
        };
        if let Some(warning) = warning {
            response.headers_mut().insert(IP_WARNING_HEADER, warning);
        }
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

        if segments == ["metrics"] {
            return match method {
                Method::GET => {
                    let text = self.metrics.render(self.lk.policies());
                    let mut response = Response::new(Full::new(Bytes::from(text)));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    Ok(response)
                }
                _ => Err(method_not_allowed()),
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
                _ => Err(method_not_allowed()),
            };
        }
        if segments == ["healthz"] {
            return match method {
                Method::GET | Method::HEAD => {
                    Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
                }
                _ => Err(method_not_allowed()),
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
        let caller = self.authenticate(&parts.headers, peer)?;
        *warning = self.gate(caller.account, peer)?;
        let base = self.base(&parts);
        let body = read_body(&parts.headers, &method, body).await?;
        let query = Query::parse(parts.uri.query())?;
        let ctx = Ctx {
            lk: Arc::clone(&self.lk),
            warnings: Arc::clone(&self.warnings),
            metrics: Arc::clone(&self.metrics),
            caller,
            base,
            query,
            body,
        };

        use Method as M;
        match (&method, segments.as_slice()) {
            (&M::GET, ["account"]) => ctx.get_account().await,
            (&M::PATCH, ["account"]) => ctx.update_account().await,

            (&M::GET, ["users"]) => ctx.list_users().await,
            (&M::POST, ["users"]) => ctx.create_user().await,
            (&M::GET, ["users", id]) => ctx.get_user(id).await,
            (&M::PATCH, ["users", id]) => ctx.update_user(id).await,
            (&M::DELETE, ["users", id]) => ctx.remove_user(id).await,

            (&M::GET, ["bot_users"]) => ctx.list_bots().await,
            (&M::POST, ["bot_users"]) => ctx.create_bot().await,
            (&M::GET, ["bot_users", id]) => ctx.get_bot(id).await,
            (&M::PATCH, ["bot_users", id]) => ctx.update_bot(id).await,
            (&M::DELETE, ["bot_users", id]) => ctx.delete_bot(id).await,

            (&M::GET, [kind]) if credential_kind(kind).is_some() => {
                ctx.list_credentials(credential_kind(kind)).await
            }
            (&M::POST, ["api_keys"]) => ctx.create_token(TokenKind::ApiKey).await,
            (&M::POST, ["credentials"]) => ctx.create_token(TokenKind::Authtoken).await,
            (&M::POST, ["ssh_credentials"]) => ctx.create_ssh().await,
            (&M::GET, [kind, id]) if credential_kind(kind).is_some() => {
                ctx.get_credential(credential_kind(kind), id).await
            }
            (&M::PATCH, [kind, id]) if credential_kind(kind).is_some() => {
                ctx.update_credential(credential_kind(kind), id).await
            }
            (&M::DELETE, [kind, id]) if credential_kind(kind).is_some() => {
                ctx.delete_credential(credential_kind(kind), id).await
            }
            (&M::POST, ["credentials", id, "rotate"]) => ctx.rotate(id).await,

            (&M::GET, ["ip_policies"]) => ctx.list_ip_policies().await,
            (&M::POST, ["ip_policies"]) => ctx.create_ip_policy().await,
            (&M::GET, ["ip_policies", id]) => ctx.get_ip_policy(id).await,
            (&M::PATCH, ["ip_policies", id]) => ctx.update_ip_policy(id).await,
            (&M::DELETE, ["ip_policies", id]) => ctx.delete_ip_policy(id).await,
            (&M::GET, ["ip_policy_rules"]) => ctx.list_ip_rules().await,
            (&M::POST, ["ip_policy_rules"]) => ctx.create_ip_rule().await,
            (&M::GET, ["ip_policy_rules", id]) => ctx.get_ip_rule(id).await,
            (&M::PATCH, ["ip_policy_rules", id]) => ctx.update_ip_rule(id).await,
            (&M::DELETE, ["ip_policy_rules", id]) => ctx.delete_ip_rule(id).await,
            (&M::GET, ["ip_restrictions"]) => ctx.list_ip_restrictions().await,
            (&M::POST, ["ip_restrictions"]) => ctx.create_ip_restriction().await,
            (&M::GET, ["ip_restrictions", id]) => ctx.get_ip_restriction(id).await,
            (&M::PATCH, ["ip_restrictions", id]) => ctx.update_ip_restriction(id).await,
            (&M::DELETE, ["ip_restrictions", id]) => ctx.delete_ip_restriction(id).await,

            (&M::GET, ["events"]) => ctx.list_events().await,
            (&M::GET, ["events", id]) => ctx.get_event(id).await,
            (&M::POST, ["verify"]) => ctx.verify().await,
            (&M::POST, ["authorize"]) => ctx.authorize(false).await,
            (&M::POST, ["authorize", "batch"]) => ctx.authorize(true).await,
            (&M::GET, ["users", id, "effective_permissions"]) => {
                ctx.effective_permissions(id).await
            }
            (&M::POST, ["policies", "reload"]) => ctx.reload_policies().await,

            (_, segments) if known_path(segments) => Err(method_not_allowed()),
            _ => Err(ApiError::new(
                error::NO_ROUTE,
                format!("no such path: {path}"),
            )),
        }
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
        })
    }

    /// Check the caller's address against the account's `api` IP restrictions: an
    /// enforced one that refuses it is a 403; warn-only ones let it through, flag the
    /// response and count the miss (recorded in batches, see [`Api::flush_warnings`]).
    fn gate(
        &self,
        account: AccountId,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Option<HeaderValue>, ApiError> {
        let passage = self.lk.check_ip(account, RestrictionType::Api, peer)?;
        if passage == Passage::Allowed {
            return Ok(None);
        }
        let shown = peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
        match passage {
            Passage::Allowed => Ok(None),
            Passage::Denied(restriction) => {
                let reason = format!(
                    "IP restriction {restriction} does not allow API requests from {shown}"
                );
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
                    "{} (warn-only) would refuse API requests from {shown}",
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
        self.lk.record_ip_warnings(&batch)?;
        Ok(count)
    }

    fn base(&self, parts: &hyper::http::request::Parts) -> Base {
        if let Some(url) = &self.public_url {
            return Base(url.trim_end_matches('/').to_owned());
        }
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "localhost".to_owned());
        Base(format!("https://{host}"))
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

/// The route a path matches, as a metrics label (ids replaced by `{id}`).
fn route_label(path: &str) -> &'static str {
    const ROUTES: [(&str, &str, &str); 11] = [
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
        ("events", "/events", "/events/{id}"),
        ("authorize", "/authorize", "/authorize/batch"),
        ("policies", "/policies", "/policies/reload"),
    ];
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let collection = |name: &str| ROUTES.iter().find(|(n, _, _)| *n == name);
    match segments.as_slice() {
        [] => "/",
        ["account"] => "/account",
        ["verify"] => "/verify",
        ["healthz"] => "/healthz",
        ["metrics"] => "/metrics",
        ["openapi.json"] => "/openapi.json",
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

fn known_path(segments: &[&str]) -> bool {
    const COLLECTIONS: [&str; 10] = [
        "users",
        "bot_users",
        "credentials",
        "api_keys",
        "ssh_credentials",
        "account",
        "events",
        "ip_policies",
        "ip_policy_rules",
        "ip_restrictions",
    ];
    match segments {
        [one] => {
            COLLECTIONS.contains(one)
                || matches!(
                    *one,
                    "verify" | "healthz" | "authorize" | "metrics" | "openapi.json"
                )
        }
        [one, _] => {
            COLLECTIONS.contains(one)
                || segments == ["policies", "reload"]
                || segments == ["authorize", "batch"]
        }
        ["credentials", _, "rotate"] | ["users", _, "effective_permissions"] => true,
        _ => false,
    }
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        error::METHOD_NOT_ALLOWED,
        "this path does not take that method",
    )
}

/// `op_` and a fresh time-sortable id, naming one request in errors and logs.
fn operation_id() -> String {
    let now = Timestamp::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    );
    match crate::domain::id::new_raw(now) {
        Ok(raw) => {
            let mut body = [0u8; 22];
            crate::domain::id::encode_base62(raw, &mut body);
            format!("op_{}", String::from_utf8_lossy(&body))
        }
        Err(_) => "op_unknown".to_owned(),
    }
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn no_content() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// The body of a POST or PATCH: at most [`MAX_BODY`] bytes of `application/json` (an
/// empty body is allowed and reads as `{}`); other methods' bodies are not read.
async fn read_body<B>(
    headers: &hyper::HeaderMap,
    method: &Method,
    body: B,
) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !matches!(*method, Method::POST | Method::PATCH) {
        return Ok(Bytes::new());
    }
    let too_large = || {
        ApiError::new(
            error::BODY_TOO_LARGE,
            format!("the body is larger than {MAX_BODY} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > DRAIN_LIMIT as u64) {
        return Err(too_large());
    }
    // Read frame by frame. Past the limit the rest is read and dropped (up to
    // DRAIN_LIMIT) so that a client which writes its whole body before reading still
    // gets the 413 instead of a broken pipe.
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    let (mut total, mut over) = (0usize, false);
    while let Some(frame) = body.as_mut().frame().await {
        let frame = frame
            .map_err(|_| ApiError::new(error::MALFORMED_BODY, "the body could not be read"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        over |= total > MAX_BODY;
        if total > DRAIN_LIMIT {
            break;
        }
        if !over {
            bytes.extend_from_slice(&data);
        }
    }
    if over {
        return Err(too_large());
    }
    let bytes = Bytes::from(bytes);
    if !bytes.is_empty() {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::new(
                error::UNSUPPORTED_MEDIA_TYPE,
                "the body must be application/json",
            ));
        }
    }
    Ok(bytes)
}

/// The query string: `before_id` and `limit` of a list, and any filters.
#[derive(Debug, Default)]
struct Query {
    before_id: Option<String>,
    limit: usize,
    /// Every other parameter, percent-decoded.
    filters: Vec<(String, String)>,
}

impl Query {
    fn parse(query: Option<&str>) -> Result<Query, ApiError> {
        let mut parsed = Query {
            before_id: None,
            limit: 100,
            filters: Vec::new(),
        };
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "before_id" if !value.is_empty() => parsed.before_id = Some(value.into_owned()),
                "before_id" => {}
                "limit" => {
                    parsed.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| {
                            ApiError::field(
                                error::INVALID_QUERY,
                                "limit",
                                format!("limit must be a number from 1 to 100, not {value:?}"),
                            )
                        })?;
                }
                // Filters of particular lists; the others ignore them.
                _ => parsed.filters.push((key.into_owned(), value.into_owned())),
            }
        }
        Ok(parsed)
    }

    /// The filter `key`, if given (and not empty).
    fn filter(&self, key: &str) -> Option<&str> {
        self.filters
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The filter `key` as an RFC 3339 time.
    fn time(&self, key: &'static str) -> Result<Option<Timestamp>, ApiError> {
        self.filter(key)
            .map(|text| {
                Timestamp::parse_rfc3339(key, text).map_err(|_| {
                    ApiError::field(
                        error::INVALID_QUERY,
                        key,
                        format!("{key} must be an RFC 3339 time, not {text:?}"),
                    )
                })
            })
            .transpose()
    }
}

/// A JSON body as `T`; an empty body reads as `{}`.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let bytes: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(bytes).map_err(|e| {
        let msg = format!("the body is not valid for this endpoint: {e}");
        match unknown_field(&e.to_string()) {
            Some(field) => ApiError::field(error::MALFORMED_BODY, &field, msg),
            None => ApiError::new(error::MALFORMED_BODY, msg),
        }
    })
}

/// serde's "unknown field `x`" or "invalid type ... for `x`" names the field.
fn unknown_field(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message.get(start..)?.find('`')?;
    message.get(start..end).map(str::to_owned)
}

/// A path id of the given type, or 404: an id that cannot exist is simply not found.
fn path_id<T: std::str::FromStr>(text: &str) -> Result<T, ApiError> {
    text.parse()
        .map_err(|_| ApiError::new(error::NOT_FOUND, format!("{text} not found")))
}

/// One page of a newest-first list, and the `before_id` of the next page if any. The page
/// starts right after the item `before_id` names; if that item is gone (deleted since),
/// after the first item whose id sorts below it.
fn page<T>(items: Vec<T>, id: impl Fn(&T) -> String, query: &Query) -> (Vec<T>, Option<String>) {
    let start = match &query.before_id {
        None => 0,
        Some(before) => items
            .iter()
            .position(|item| id(item) == *before)
            .map(|at| at + 1)
            .or_else(|| items.iter().position(|item| id(item) < *before))
            .unwrap_or(items.len()),
    };
    let mut items: Vec<T> = items.into_iter().skip(start).collect();
    let more = items.len() > query.limit;
    items.truncate(query.limit);
    let next = if more { items.last().map(&id) } else { None };
    (items, next)
}

/// Run store work on the blocking pool.
async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::new(error::INTERNAL, "the operation did not complete"))?
        .map_err(ApiError::from)
}

/// One request's context.
struct Ctx {
    lk: Arc<Latchkey>,
    warnings: Arc<Warnings>,
    metrics: Arc<metrics::Metrics>,
    caller: Caller,
    base: Base,
    query: Query,
    body: Bytes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesBody {
    developer: Option<DeveloperRole>,
    team: Option<TeamRole>,
    billing: Option<BillingRole>,
    admin: Option<bool>,
}

impl RolesBody {
    fn patch(&self) -> RolesPatch {
        RolesPatch {
            developer: self.developer,
            team: self.team,
            billing: self.billing,
            admin: self.admin,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountUpdate {
    mfa_required: Option<bool>,
    sso_mode: Option<String>,
    provisioning: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserCreate {
    email: String,
    name: Option<String>,
    roles: Option<RolesBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserUpdate {
    name: Option<String>,
    roles: Option<RolesBody>,
    state: Option<MemberState>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BotCreate {
    name: Option<String>,
    active: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BotUpdate {
    #[allow(dead_code)]
    id: Option<String>,
    name: Option<String>,
    active: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenCreate {
    description: Option<String>,
    metadata: Option<String>,
    acl: Option<Vec<String>>,
    owner_id: Option<String>,
    expires_at: Option<String>,
    scopes: Option<Vec<String>>,
    allowed_cidrs: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SshCreate {
    description: Option<String>,
    metadata: Option<String>,
    acl: Option<Vec<String>>,
    owner_id: Option<String>,
    public_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialUpdate {
    #[allow(dead_code)]
    id: Option<String>,
    description: Option<String>,
    metadata: Option<String>,
    acl: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    allowed_cidrs: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IpBody {
    #[allow(dead_code)]
    id: Option<String>,
    description: Option<String>,
    metadata: Option<String>,
    cidr: Option<String>,
    ip_policy_id: Option<String>,
    action: Option<String>,
    enforced: Option<bool>,
    #[serde(rename = "type")]
    kind: Option<String>,
    ip_policy_ids: Option<Vec<String>>,
}

impl IpBody {
    fn text(&self) -> IpText {
        IpText {
            description: self.description.clone().unwrap_or_default(),
            metadata: self.metadata.clone().unwrap_or_default(),
        }
    }

    fn patch(&self) -> Result<IpPatch, ApiError> {
        Ok(IpPatch {
            description: self.description.clone(),
            metadata: self.metadata.clone(),
            cidr: self.cidr.clone(),
            enforced: self.enforced,
            policies: self.policy_ids()?,
        })
    }

    fn policy_ids(&self) -> Result<Option<Vec<IpPolicyId>>, ApiError> {
        self.ip_policy_ids
            .as_ref()
            .map(|ids| {
                ids.iter()
                    .map(|id| {
                        id.parse::<IpPolicyId>().map_err(|_| {
                            ApiError::field(
                                error::INVALID_FIELD,
                                "ip_policy_ids",
                                format!("{id:?} is not an IP policy id"),
                            )
                        })
                    })
                    .collect()
            })
            .transpose()
    }

    /// Reject fields that do not belong to this resource or operation.
    fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        let given = [
            ("cidr", self.cidr.is_some()),
            ("ip_policy_id", self.ip_policy_id.is_some()),
            ("action", self.action.is_some()),
            ("enforced", self.enforced.is_some()),
            ("type", self.kind.is_some()),
            ("ip_policy_ids", self.ip_policy_ids.is_some()),
        ];
        match given
            .iter()
            .find(|(name, set)| *set && !allowed.contains(name))
        {
            Some((name, _)) => Err(ApiError::field(
                error::MALFORMED_BODY,
                name,
                format!("{name} is not a field of this request"),
            )),
            None => Ok(()),
        }
    }
}

fn required<'a>(value: Option<&'a str>, field: &str) -> Result<&'a str, ApiError> {
    value
        .ok_or_else(|| ApiError::field(error::INVALID_FIELD, field, format!("{field} is required")))
}

/// One `/authorize` question.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    principal: CheckPrincipal,
    action: String,
    resource: CheckResource,
    #[serde(default)]
    context: serde_json::Map<String, Value>,
    #[serde(default)]
    explain: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckPrincipal {
    id: Option<String>,
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckResource {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: String,
    tenant_id: Option<String>,
    owner_id: Option<String>,
    #[serde(default)]
    attributes: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    checks: Vec<Check>,
}

/// At most this many checks in one `/authorize/batch`.
const MAX_BATCH: usize = 100;

/// A JSON value as the text a policy sees: strings as they are, anything else as JSON.
fn as_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    token: Option<String>,
    ssh_public_key: Option<String>,
    source_ip: Option<String>,
}

impl Ctx {
    fn ok(&self, value: &Value) -> Reply {
        Ok(json_response(StatusCode::OK, value))
    }

    fn created(&self, value: &Value) -> Reply {
        Ok(json_response(StatusCode::CREATED, value))
    }

    /// A list page in the contract's shape, under the resource's list field.
    fn list<T>(
        &self,
        path: &str,
        field: &str,
        items: Vec<T>,
        id: impl Fn(&T) -> String,
        view: impl Fn(&T) -> Value,
    ) -> Reply {
        let (items, next) = page(items, id, &self.query);
        let next_page_uri = next.map(|before| {
            self.base.uri(&format!(
                "{path}?before_id={before}&limit={}",
                self.query.limit
            ))
        });
        let views: Vec<Value> = items.iter().map(view).collect();
        self.ok(&json!({
            field: views,
            "uri": self.base.uri(path),
            "next_page_uri": next_page_uri,
        }))
    }

    fn owner(&self, owner_id: Option<&str>) -> Result<Owner, ApiError> {
        match owner_id {
            Some(text) => Owner::parse(text).map_err(|_| {
                ApiError::field(
                    error::INVALID_FIELD,
                    "owner_id",
                    format!("{text:?} is not a user or bot user id"),
                )
            }),
            None => match self.caller.actor.principal {
                Principal::User(user) => Ok(Owner::User(user)),
                Principal::Bot(bot) => Ok(Owner::Bot(bot)),
                Principal::System => Err(ApiError::field(
                    error::INVALID_FIELD,
                    "owner_id",
                    "owner_id is required",
                )),
            },
        }
    }

    async fn get_account(self) -> Reply {
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let (found, seats) = blocking(move || {
            let found = lk.account(actor, account)?;
            let seats = lk.seats_used(actor, account)?;
            Ok((found, seats))
        })
        .await?;
        self.ok(&views::account(&self.base, &found, seats))
    }

    /// `PATCH /account`. `sso_mode` and `provisioning` accept only their defaults until
    /// SSO and SCIM exist: anything else is refused, never silently stored.
    async fn update_account(self) -> Reply {
        let body: AccountUpdate = parse(&self.body)?;
        for (field, given, only) in [
            ("sso_mode", &body.sso_mode, "off"),
            ("provisioning", &body.provisioning, "invitations"),
        ] {
            if let Some(value) = given
                && value != only
            {
                return Err(ApiError::field(
                    error::INVALID_FIELD,
                    field,
                    format!("{field} can only be {only:?} until SSO and SCIM exist, not {value:?}"),
                ));
            }
        }
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let (updated, seats) = blocking(move || {
            let updated = lk.update_account_settings(actor, account, body.mfa_required)?;
            Ok((updated, lk.seats_used(actor, account)?))
        })
        .await?;
        self.ok(&views::account(&self.base, &updated, seats))
    }

    async fn list_users(self) -> Reply {
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let members = blocking(move || lk.members(actor, account)).await?;
        self.list(
            "/users",
            "users",
            members,
            |m| m.user.id.to_string(),
            |m| views::member(&self.base, m),
        )
    }

    async fn create_user(self) -> Reply {
        let body: UserCreate = parse(&self.body)?;
        let roles = body
            .roles
            .as_ref()
            .map_or_else(Roles::default, |r| r.patch().apply(Roles::default()));
        let name = body.name.unwrap_or_default();
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let joined =
            blocking(move || lk.add_member(actor, account, &body.email, &name, roles)).await?;
        // The personal authtoken is the member's own secret: it is not shown to whoever
        // added the member; the member rotates it to get one.
        self.created(&views::member(&self.base, &joined.member))
    }

    async fn get_user(self, id: &str) -> Reply {
        let user: UserId = path_id(id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let member = blocking(move || lk.member(actor, account, user)).await?;
        self.ok(&views::member(&self.base, &member))
    }

    async fn update_user(self, id: &str) -> Reply {
        let user: UserId = path_id(id)?;
        let body: UserUpdate = parse(&self.body)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let member = blocking(move || {
            if let Some(name) = &body.name {
                lk.rename_member(actor, account, user, name)?;
            }
            if let Some(roles) = &body.roles {
                lk.update_member_roles(actor, account, user, roles.patch())?;
            }
            if let Some(state) = body.state {
                lk.set_member_state(actor, account, user, state)?;
            }
            lk.member(actor, account, user)
        })
        .await?;
        self.ok(&views::member(&self.base, &member))
    }

    async fn remove_user(self, id: &str) -> Reply {
        let user: UserId = path_id(id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        blocking(move || lk.remove_member(actor, account, user)).await?;
        Ok(no_content())
    }

    async fn list_bots(self) -> Reply {
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let bots = blocking(move || lk.bots(actor, account)).await?;
        self.list(
            "/bot_users",
            "bot_users",
            bots,
            |b| b.id.to_string(),
            |b| views::bot(&self.base, b),
        )
    }

    async fn create_bot(self) -> Reply {
        let body: BotCreate = parse(&self.body)?;
        let name = body.name.unwrap_or_default();
        let active = body.active.unwrap_or(true);
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let bot = blocking(move || lk.create_bot_as(actor, account, &name, active)).await?;
        self.created(&views::bot(&self.base, &bot))
    }

    async fn get_bot(self, id: &str) -> Reply {
        let bot: BotId = path_id(id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let bot = blocking(move || lk.bot(actor, account, bot)).await?;
        self.ok(&views::bot(&self.base, &bot))
    }

    async fn update_bot(self, id: &str) -> Reply {
        let bot: BotId = path_id(id)?;
        let body: BotUpdate = parse(&self.body)?;
        let patch = BotPatch {
            name: body.name,
            active: body.active,
        };
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let bot = blocking(move || lk.update_bot(actor, account, bot, &patch)).await?;
        self.ok(&views::bot(&self.base, &bot))
    }

    async fn delete_bot(self, id: &str) -> Reply {
        let bot: BotId = path_id(id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        blocking(move || lk.delete_bot(actor, account, bot)).await?;
        Ok(no_content())
    }

    async fn list_credentials(self, kind: Option<CredentialKind>) -> Reply {
        let kind = kind.ok_or_else(|| ApiError::new(error::NO_ROUTE, "no such path"))?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let listed = blocking(move || {
            let credentials = lk.credentials(actor, account, kind)?;
            credentials
                .into_iter()
                .map(|c| {
                    let used = lk.last_used(c.id)?;
                    Ok((c, used))
                })
                .collect::<Result<Vec<_>, AppError>>()
        })
        .await?;
        let collection = views::collection(kind);
        let field = match kind {
            CredentialKind::ApiKey => "keys",
            CredentialKind::Authtoken => "credentials",
            CredentialKind::SshKey => "ssh_credentials",
        };
        self.list(
            &format!("/{collection}"),
            field,
            listed,
            |(c, _)| c.id.to_string(),
            |(c, used)| views::credential(&self.base, c, None, *used),
        )
    }

    fn credential_id(kind: Option<CredentialKind>, id: &str) -> Result<CredentialId, ApiError> {
        let id: CredentialId = path_id(id)?;
        if Some(id.kind) != kind {
            return Err(ApiError::new(error::NOT_FOUND, format!("{id} not found")));
        }
        Ok(id)
    }

    async fn get_credential(self, kind: Option<CredentialKind>, id: &str) -> Reply {
        let id = Ctx::credential_id(kind, id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let (credential, used) = blocking(move || {
            let credential = lk.credential(actor, account, id)?;
            Ok((credential, lk.last_used(id)?))
        })
        .await?;
        self.ok(&views::credential(&self.base, &credential, None, used))
    }

    async fn create_token(self, kind: TokenKind) -> Reply {
        let body: TokenCreate = parse(&self.body)?;
        let owner = self.owner(body.owner_id.as_deref())?;
        let mut spec = spec(body.description, body.metadata, body.acl, body.expires_at)?;
        spec.scopes = body.scopes.unwrap_or_default();
        spec.allowed_cidrs = body.allowed_cidrs.unwrap_or_default();
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let (credential, secret) =
            blocking(move || lk.create_token_credential(actor, account, kind, owner, spec)).await?;
        self.created(&views::credential(
            &self.base,
            &credential,
            Some(&secret),
            None,
        ))
    }

    async fn create_ssh(self) -> Reply {
        let body: SshCreate = parse(&self.body)?;
        let public_key = body.public_key.ok_or_else(|| {
            ApiError::field(error::INVALID_FIELD, "public_key", "public_key is required")
        })?;
        let owner = self.owner(body.owner_id.as_deref())?;
        let spec = spec(body.description, body.metadata, body.acl, None)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let credential =
            blocking(move || lk.create_ssh_credential(actor, account, owner, &public_key, spec))
                .await?;
        self.created(&views::credential(&self.base, &credential, None, None))
    }

    async fn update_credential(self, kind: Option<CredentialKind>, id: &str) -> Reply {
        let id = Ctx::credential_id(kind, id)?;
        let body: CredentialUpdate = parse(&self.body)?;
        let patch = CredentialPatch {
            description: body.description,
            metadata: body.metadata,
            acl: body.acl,
            scopes: body.scopes,
            allowed_cidrs: body.allowed_cidrs,
        };
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let (credential, used) = blocking(move || {
            let credential = lk.update_credential(actor, account, id, &patch)?;
            Ok((credential, lk.last_used(id)?))
        })
        .await?;
        self.ok(&views::credential(&self.base, &credential, None, used))
    }

    async fn delete_credential(self, kind: Option<CredentialKind>, id: &str) -> Reply {
        let id = Ctx::credential_id(kind, id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        blocking(move || lk.delete_credential(actor, account, id)).await?;
        Ok(no_content())
    }

    async fn rotate(self, id: &str) -> Reply {
        let id = Ctx::credential_id(Some(CredentialKind::Authtoken), id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let (credential, secret, used) = blocking(move || {
            let (credential, secret) = lk.rotate_credential(actor, account, id)?;
            Ok((credential, secret, lk.last_used(id)?))
        })
        .await?;
        self.ok(&views::credential(
            &self.base,
            &credential,
            Some(&secret),
            used,
        ))
    }

    /// `POST /verify`: who is this? One answer for every invalid reason (RFC 7662 style);
    /// the reason goes to the log.
    async fn verify(self) -> Reply {
        let body: VerifyBody = parse(&self.body)?;
        let source_ip = body
            .source_ip
            .as_deref()
            .map(|text| {
                text.trim().parse::<std::net::IpAddr>().map_err(|_| {
                    ApiError::field(
                        error::INVALID_FIELD,
                        "source_ip",
                        format!("{text:?} is not an IP address"),
                    )
                })
            })
            .transpose()?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let presented = match (body.token, body.ssh_public_key) {
            (Some(token), None) => token,
            (None, Some(key)) => key,
            _ => {
                return Err(ApiError::field(
                    error::INVALID_FIELD,
                    "token",
                    "give exactly one of token and ssh_public_key",
                ));
            }
        };
        // In memory on a hot path (no store read unless something was written since the
        // caller was last resolved), so it runs here rather than on the blocking pool.
        lk.authorize_verify(actor, account)?;
        let answer = lk.verify(&presented);
        let verdict = match answer {
            Ok(verified) if verified.account != account => Err("other_account"),
            Ok(verified) => self
                .judge_source(&verified, source_ip)
                .map(|warned| (verified, warned)),
            Err(rejection) => Err(rejection.as_str()),
        };
        self.metrics.verified(verdict.is_ok());
        match verdict {
            Ok((verified, warned)) => {
                let mut response = json_response(StatusCode::OK, &verified_view(&verified));
                if let Some(warning) = warned {
                    response.headers_mut().insert(IP_WARNING_HEADER, warning);
                }
                Ok(response)
            }
            Err(reason) => {
                tracing::info!(reason, "verify: invalid");
                let mut response =
                    Response::new(Full::new(Bytes::from_static(b"{\"valid\":false}")));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(response)
            }
        }
    }

    /// Where the presented credential may be used from: its own `allowed_cidrs`, and for
    /// agents (authtokens and SSH keys) the account's `agent` IP restrictions. Without a
    /// `source_ip` neither can be shown to hold, so a credential or account that has them
    /// fails closed. A warn-only miss passes, flagged.
    fn judge_source(
        &self,
        verified: &Verified,
        source_ip: Option<std::net::IpAddr>,
    ) -> Result<Option<HeaderValue>, &'static str> {
        if let Some(networks) = &verified.allowed_cidrs
            && !source_ip.is_some_and(|ip| allows_source(networks, ip))
        {
            return Err("source_ip_not_allowed");
        }
        if verified.credential.kind == CredentialKind::ApiKey {
            return Ok(None);
        }
        let passage = self
            .lk
            .check_ip(verified.account, RestrictionType::Agent, source_ip)
            .map_err(|_| "ip_restrictions_unavailable")?;
        match passage {
            Passage::Allowed => Ok(None),
            Passage::Denied(_) => Err("agent_ip_restricted"),
            Passage::Warned(restrictions) => {
                let shown =
                    source_ip.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
                if let Some(ip) = source_ip {
                    self.warnings
                        .note(verified.account, &restrictions, ip, self.lk.now());
                }
                let ids: Vec<String> = restrictions.iter().map(ToString::to_string).collect();
                let text = format!(
                    "{} (warn-only) would refuse agents from {shown}",
                    ids.join(", ")
                );
                Ok(HeaderValue::from_str(&text).ok())
            }
        }
    }

    /// `POST /authorize` (one check) and `/authorize/batch` (`{"checks": [...]}`).
    async fn authorize(self, batch: bool) -> Reply {
        let checks = if batch {
            let body: Batch = parse(&self.body)?;
            if body.checks.is_empty() || body.checks.len() > MAX_BATCH {
                return Err(ApiError::field(
                    error::INVALID_FIELD,
                    "checks",
                    format!("give 1 to {MAX_BATCH} checks"),
                ));
            }
            body.checks
        } else {
            vec![parse::<Check>(&self.body)?]
        };
        let explains: Vec<bool> = checks.iter().map(|c| c.explain).collect();
        let mut questions = Vec::with_capacity(checks.len());
        // A principal given by a token that does not verify (or belongs elsewhere) gets an
        // answer too: deny, naming latchkey.
        let mut invalid = Vec::with_capacity(checks.len());
        for check in checks {
            let (principal, valid) = self.principal(&check.principal)?;
            invalid.push(!valid);
            let mut target =
                crate::app::Target::action(check.action, &check.resource.kind, check.resource.id);
            target.tenant = check.resource.tenant_id;
            target.owner = check.resource.owner_id;
            target.attributes = check
                .resource
                .attributes
                .into_iter()
                .map(|(k, v)| (k, as_text(v)))
                .collect();
            target.context = check
                .context
                .into_iter()
                .map(|(k, v)| (k, as_text(v)))
                .collect();
            questions.push((principal, target));
        }
        let explain_any = explains.iter().any(|e| *e);
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let verdicts =
            blocking(move || lk.check_permissions(actor, account, questions, explain_any)).await?;
        let answers: Vec<Value> = verdicts
            .into_iter()
            .zip(explains)
            .zip(invalid)
            .map(|((verdict, explain), invalid)| {
                self.metrics.decided(verdict.allowed && !invalid);
                let mut answer = if invalid {
                    json!({"decision": "deny", "policy": "latchkey", "reason": "the principal's token is not valid"})
                } else {
                    json!({
                        "decision": if verdict.allowed { "allow" } else { "deny" },
                        "policy": verdict.policy,
                        "reason": verdict.reason,
                    })
                };
                if explain && let Some(fields) = answer.as_object_mut() {
                    let evaluated: Vec<Value> = verdict
                        .evaluated
                        .iter()
                        .map(|e| {
                            json!({
                                "policy": e.policy,
                                "decision": match e.outcome {
                                    crate::policy::Outcome::Allow => "allow",
                                    crate::policy::Outcome::Deny => "deny",
                                    crate::policy::Outcome::NotApplicable => "not_applicable",
                                },
                                "reason": e.reason,
                            })
                        })
                        .collect();
                    fields.insert("evaluated".into(), evaluated.into());
                }
                answer
            })
            .collect();
        if batch {
            self.ok(&json!({"decisions": answers}))
        } else {
            self.ok(answers.first().unwrap_or(&Value::Null))
        }
    }

    /// The actor a check is about: a user or bot of the caller's account by id, or the
    /// owner of a token (with the token as its credential). `false` when the token does
    /// not verify in this account.
    fn principal(&self, given: &CheckPrincipal) -> Result<(Actor, bool), ApiError> {
        let bad = |msg: &str| ApiError::field(error::INVALID_FIELD, "principal", msg);
        match (&given.id, &given.token) {
            (Some(id), None) => {
                let owner =
                    Owner::parse(id).map_err(|_| bad("principal.id must be a usr_ or bot_ id"))?;
                Ok((
                    Actor {
                        principal: match owner {
                            Owner::User(user) => Principal::User(user),
                            Owner::Bot(bot) => Principal::Bot(bot),
                        },
                        credential: None,
                    },
                    true,
                ))
            }
            (None, Some(token)) => match self.lk.verify(token) {
                Ok(verified) if verified.account == self.caller.account => {
                    Ok((actor_of(&verified), true))
                }
                _ => Ok((self.caller.actor, false)),
            },
            _ => Err(bad("give the principal as {\"id\"} or {\"token\"}")),
        }
    }

    async fn effective_permissions(self, id: &str) -> Reply {
        let user: UserId = path_id(id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let allowed = blocking(move || lk.effective_permissions(actor, account, user)).await?;
        let (iam, catalog): (Vec<String>, Vec<String>) =
            allowed.into_iter().partition(|a| a.starts_with("iam."));
        self.ok(&json!({
            "user_id": user.to_string(),
            "uri": self.base.uri(&format!("/users/{user}/effective_permissions")),
            "actions": iam,
            "permissions": catalog,
        }))
    }

    async fn list_ip_policies(self) -> Reply {
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let policies = blocking(move || lk.ip_policies(actor, account)).await?;
        self.list(
            "/ip_policies",
            "ip_policies",
            policies,
            |p| p.id.to_string(),
            |p| views::ip_policy(&self.base, p),
        )
    }

    async fn create_ip_policy(self) -> Reply {
        let body: IpBody = parse(&self.body)?;
        body.only(&[])?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let policy = blocking(move || lk.create_ip_policy(actor, account, body.text())).await?;
        self.created(&views::ip_policy(&self.base, &policy))
    }

    async fn get_ip_policy(self, id: &str) -> Reply {
        let id: IpPolicyId = path_id(id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let policy = blocking(move || lk.ip_policy(actor, account, id)).await?;
        self.ok(&views::ip_policy(&self.base, &policy))
    }

    async fn update_ip_policy(self, id: &str) -> Reply {
        let id: IpPolicyId = path_id(id)?;
        let body: IpBody = parse(&self.body)?;
        body.only(&[])?;
        let patch = body.patch()?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let policy = blocking(move || lk.update_ip_policy(actor, account, id, &patch)).await?;
        self.ok(&views::ip_policy(&self.base, &policy))
    }

    async fn delete_ip_policy(self, id: &str) -> Reply {
        let id: IpPolicyId = path_id(id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        blocking(move || lk.delete_ip_policy(actor, account, id)).await?;
        Ok(no_content())
    }

    async fn list_ip_rules(self) -> Reply {
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let rules = blocking(move || lk.ip_rules(actor, account)).await?;
        self.list(
            "/ip_policy_rules",
            "ip_policy_rules",
            rules,
            |r| r.id.to_string(),
            |r| views::ip_rule(&self.base, r),
        )
    }

    async fn create_ip_rule(self) -> Reply {
        let body: IpBody = parse(&self.body)?;
        body.only(&["cidr", "ip_policy_id", "action"])?;
        let cidr = required(body.cidr.as_deref(), "cidr")?.to_owned();
        let policy_text = required(body.ip_policy_id.as_deref(), "ip_policy_id")?;
        let policy: IpPolicyId = policy_text.parse().map_err(|_| {
            ApiError::field(
                error::INVALID_FIELD,
                "ip_policy_id",
                format!("{policy_text:?} is not an IP policy id"),
            )
        })?;
        let action = match required(body.action.as_deref(), "action")? {
            "allow" => RuleAction::Allow,
            "deny" => RuleAction::Deny,
            other => {
                return Err(ApiError::field(
                    error::INVALID_FIELD,
                    "action",
                    format!("action must be allow or deny, not {other:?}"),
                ));
            }
        };
        let text = body.text();
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let rule = blocking(move || lk.create_ip_rule(actor, account, policy, &cidr, action, text))
            .await?;
        self.created(&views::ip_rule(&self.base, &rule))
    }

    async fn get_ip_rule(self, id: &str) -> Reply {
        let id: IpRuleId = path_id(id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let rule = blocking(move || lk.ip_rule(actor, account, id)).await?;
        self.ok(&views::ip_rule(&self.base, &rule))
    }

    async fn update_ip_rule(self, id: &str) -> Reply {
        let id: IpRuleId = path_id(id)?;
        let body: IpBody = parse(&self.body)?;
        body.only(&["cidr"])?;
        let patch = body.patch()?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let rule = blocking(move || lk.update_ip_rule(actor, account, id, &patch)).await?;
        self.ok(&views::ip_rule(&self.base, &rule))
    }

    async fn delete_ip_rule(self, id: &str) -> Reply {
        let id: IpRuleId = path_id(id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        blocking(move || lk.delete_ip_rule(actor, account, id)).await?;
        Ok(no_content())
    }

    async fn list_ip_restrictions(self) -> Reply {
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let restrictions = blocking(move || lk.ip_restrictions(actor, account)).await?;
        self.list(
            "/ip_restrictions",
            "ip_restrictions",
            restrictions,
            |r| r.id.to_string(),
            |r| views::ip_restriction(&self.base, r),
        )
    }

    async fn create_ip_restriction(self) -> Reply {
        let body: IpBody = parse(&self.body)?;
        body.only(&["enforced", "type", "ip_policy_ids"])?;
        let kind = match required(body.kind.as_deref(), "type")? {
            "dashboard" => RestrictionType::Dashboard,
            "api" => RestrictionType::Api,
            "agent" => RestrictionType::Agent,
            "endpoints" => RestrictionType::Endpoints,
            other => {
                return Err(ApiError::field(
                    error::INVALID_FIELD,
                    "type",
                    format!("type must be dashboard, api, agent or endpoints, not {other:?}"),
                ));
            }
        };
        let policies = body.policy_ids()?.ok_or_else(|| {
            ApiError::field(
                error::INVALID_FIELD,
                "ip_policy_ids",
                "ip_policy_ids is required",
            )
        })?;
        let enforced = body.enforced.unwrap_or(false);
        let text = body.text();
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let restriction = blocking(move || {
            lk.create_ip_restriction(actor, account, kind, enforced, policies, text)
        })
        .await?;
        self.created(&views::ip_restriction(&self.base, &restriction))
    }

    async fn get_ip_restriction(self, id: &str) -> Reply {
        let id: IpRestrictionId = path_id(id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let restriction = blocking(move || lk.ip_restriction(actor, account, id)).await?;
        self.ok(&views::ip_restriction(&self.base, &restriction))
    }

    async fn update_ip_restriction(self, id: &str) -> Reply {
        let id: IpRestrictionId = path_id(id)?;
        let body: IpBody = parse(&self.body)?;
        body.only(&["enforced", "ip_policy_ids"])?;
        let mut patch = body.patch()?;
        // ngrok's clients send `ip_policy_ids: []` for "not given" (Go's omitempty, the
        // Python client's default); a restriction always has a policy, so an empty list
        // can only mean that.
        if patch.policies.as_ref().is_some_and(Vec::is_empty) {
            patch.policies = None;
        }
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let restriction =
            blocking(move || lk.update_ip_restriction(actor, account, id, &patch)).await?;
        self.ok(&views::ip_restriction(&self.base, &restriction))
    }

    async fn delete_ip_restriction(self, id: &str) -> Reply {
        let id: IpRestrictionId = path_id(id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        blocking(move || lk.delete_ip_restriction(actor, account, id)).await?;
        Ok(no_content())
    }

    /// `GET /events`: newest first, filtered by `principal_id`, `action`, `object_id`,
    /// `since` and `until` (RFC 3339, inclusive).
    async fn list_events(self) -> Reply {
        let since = self.query.time("since")?;
        let until = self.query.time("until")?;
        let principal = self.query.filter("principal_id").map(str::to_owned);
        let action = self.query.filter("action").map(str::to_owned);
        let object = self.query.filter("object_id").map(str::to_owned);
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let mut events = blocking(move || lk.events(actor, account)).await?;
        events.retain(|e| {
            principal
                .as_deref()
                .is_none_or(|p| e.actor.principal.id_string() == p)
                && action.as_deref().is_none_or(|a| e.action.name() == a)
                && object.as_deref().is_none_or(|o| e.target == o)
                && since.is_none_or(|t| e.at >= t)
                && until.is_none_or(|t| e.at <= t)
        });
        events.reverse();
        self.list(
            "/events",
            "events",
            events,
            |e| e.id.to_string(),
            |e| views::event(&self.base, e),
        )
    }

    async fn get_event(self, id: &str) -> Reply {
        let id: crate::domain::id::EventId = path_id(id)?;
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let events = blocking(move || lk.events(actor, account)).await?;
        let event = events
            .iter()
            .find(|e| e.id == id)
            .ok_or_else(|| ApiError::new(error::NOT_FOUND, format!("{id} not found")))?;
        self.ok(&views::event(&self.base, event))
    }

    async fn reload_policies(self) -> Reply {
        let (lk, Caller { actor, account }) = (Arc::clone(&self.lk), self.caller);
        let loaded = tokio::task::spawn_blocking(move || lk.reload_policies(actor, account))
            .await
            .map_err(|_| ApiError::new(error::INTERNAL, "the reload did not complete"))?
            .map_err(|err| match err {
                AppError::Policy(err) => ApiError::new(
                    error::POLICY_SET_INVALID,
                    format!("the policy set was not reloaded, the current one stays: {err}"),
                ),
                other => other.into(),
            })?;
        self.ok(&json!({"reloaded": true, "policies": loaded}))
    }
}

/// A credential spec from the create body's fields.
fn spec(
    description: Option<String>,
    metadata: Option<String>,
    acl: Option<Vec<String>>,
    expires_at: Option<String>,
) -> Result<CredentialSpec, ApiError> {
    let expires_at = expires_at
        .map(|text| Timestamp::parse_rfc3339("expires_at", &text))
        .transpose()
        .map_err(ApiError::from)?;
    Ok(CredentialSpec {
        description: description.unwrap_or_default(),
        metadata: metadata.unwrap_or_default(),
        expires_at,
        acl: acl.unwrap_or_default(),
        ..CredentialSpec::default()
    })
}

/// The answer to `/verify` (and `latchkey verify`) for a valid credential, in the
/// contract's field order. A struct rather than `json!`: it is written on every `/verify`.
#[derive(Debug, serde::Serialize)]
pub struct VerifiedView {
    valid: bool,
    credential_id: String,
    kind: &'static str,
    owner_id: String,
    owner_kind: &'static str,
    account_id: String,
    acl: Vec<String>,
    expires_at: Option<String>,
}

/// See [`VerifiedView`].
pub fn verified_view(verified: &Verified) -> VerifiedView {
    VerifiedView {
        valid: true,
        credential_id: verified.credential.to_string(),
        kind: verified.credential.kind.as_str(),
        owner_id: verified.owner.id_string(),
        owner_kind: verified.owner.kind_str(),
        account_id: verified.account.to_string(),
        acl: verified
            .acl
            .as_ref()
            .map_or_else(Vec::new, |acl| acl.rules().to_vec()),
        expires_at: verified.expires_at.map(Timestamp::to_rfc3339),
    }
}

/// [`VerifiedView`] as a JSON value.
pub fn verified_json(verified: &Verified) -> Value {
    serde_json::to_value(verified_view(verified)).unwrap_or(Value::Null)
}
