//! The SCIM 2.0 endpoint (RFC 7643/7644) at `/scim/v2`: an identity provider provisions
//! the members of the account whose SCIM token it presents. This module is the
//! protocol (routes, JSON shapes, filters, PATCH, paging, ETags, SCIM's error shape);
//! what a change does, and whether it may, is `app::scim`'s.
//!
//! Every answer is `application/scim+json`; bodies are taken as `application/scim+json`
//! or `application/json`; every error is SCIM's shape with a `scimType` where RFC 7644
//! names one. Reads work whatever the account's provisioning; writes only while it is
//! `scim` (403 otherwise).

mod filter;
mod groups;
mod patch;
mod schema;
mod users;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::api::Api;
use crate::api::error::{self, ApiError};
use crate::api::request::no_content;
use crate::app::{AppError, Latchkey, ScimCaller};
use crate::domain::id::{ScimGroupId, UserId};

/// Where the endpoint lives.
const BASE_PATH: &str = "/scim/v2";

/// A SCIM error (RFC 7644 §3.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    /// The HTTP status.
    pub status: StatusCode,
    /// `scimType`, where RFC 7644 names one.
    pub scim_type: Option<&'static str>,
    /// One human sentence.
    pub detail: String,
}

impl ScimError {
    fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    /// 400 `invalidSyntax`.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidSyntax"), detail)
    }

    /// 400 `invalidValue`.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidValue"), detail)
    }

    /// 400 `invalidFilter`.
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidFilter"), detail)
    }

    /// 400 `invalidPath`.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidPath"), detail)
    }

    /// 400 `noTarget`.
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("noTarget"), detail)
    }

    /// 400 `mutability`.
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("mutability"), detail)
    }

    fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }

    fn method(allowed: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            format!("this path takes {allowed}"),
        )
    }

    fn body(&self) -> Value {
        let mut body = json!({
            "schemas": [schema::ERROR],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let (Some(kind), Some(fields)) = (self.scim_type, body.as_object_mut()) {
            fields.insert("scimType".into(), json!(kind));
        }
        body
    }
}

impl From<AppError> for ScimError {
    fn from(err: AppError) -> Self {
        let precondition = matches!(err, AppError::Precondition(_));
        let api = ApiError::from(err);
        let status = if precondition {
            StatusCode::PRECONDITION_FAILED
        } else {
            api.code.1
        };
        let kind = match api.code {
            error::CONFLICT | error::EXISTING_USER => Some("uniqueness"),
            error::INVALID_FIELD => Some("invalidValue"),
            error::LAST_ADMINISTRATOR => Some("mutability"),
            _ => None,
        };
        ScimError::new(status, kind, api.msg.to_string())
    }
}

type Answer = Result<Response<Full<Bytes>>, ScimError>;

/// The SCIM endpoint beside `api`.
#[derive(Debug)]
pub struct Scim {
    api: Arc<Api>,
}

/// A page of a list: `startIndex` (from 1) and `count`.
#[derive(Debug, Clone, Copy)]
struct Page {
    start: usize,
    count: usize,
}

/// What a list or search asks: the filter, the page, the attributes to return.
#[derive(Debug, Default)]
struct Query {
    filter: Option<filter::Filter>,
    start: Option<usize>,
    count: Option<usize>,
    attributes: Vec<String>,
    excluded: Vec<String>,
}

impl Scim {
    /// The endpoint beside `api` (its latchkey and public URL).
    pub fn new(api: Arc<Api>) -> Scim {
        Scim { api }
    }

    /// Whether a request is the SCIM endpoint's.
    pub fn wants(path: &str) -> bool {
        path == BASE_PATH || path.starts_with("/scim/v2/")
    }

    fn lk(&self) -> Arc<Latchkey> {
        Arc::clone(self.api.latchkey())
    }

    /// Answer one request. Never fails: every error is SCIM's error shape.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = std::time::Instant::now();
        let (parts, body) = request.into_parts();
        let route = route_label(parts.uri.path());
        let base = self.base_url(&parts);
        let mut response = match self.route(&parts, body, &base).await {
            Ok(response) => response,
            Err(err) => respond(err.status, &err.body()),
        };
        let took = started.elapsed();
        let status = response.status().as_u16();
        self.api.metrics().request(route, status, took);
        // The route, never the path or headers: a path holds an id, a header the token.
        tracing::debug!(route, status, micros = took.as_micros(), "scim request");
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
        response
    }

    /// The endpoint's own URL (`…/scim/v2`): under the public URL when configured, else
    /// the request's authority.
    fn base_url(&self, parts: &hyper::http::request::Parts) -> String {
        let origin = self.api.public_url().map_or_else(
            || {
                let authority = parts
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
                    .unwrap_or_else(|| "localhost".into());
                format!("https://{authority}")
            },
            |url| url.trim_end_matches('/').to_owned(),
        );
        format!("{origin}{BASE_PATH}")
    }

    async fn route<B>(&self, parts: &hyper::http::request::Parts, body: B, base: &str) -> Answer
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let caller = self.authenticate(&parts.headers).await?;
        let rest = parts.uri.path().trim_start_matches(BASE_PATH);
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let method = &parts.method;
        // Only the resources take a body: a discovery path answers 405 to any write,
        // whatever it carries.
        let takes_body = matches!(segments.as_slice(), ["Users" | "Groups", ..] | [".search"])
            && matches!(*method, Method::POST | Method::PUT | Method::PATCH);
        let body = if takes_body {
            read_json(&parts.headers, method, body).await?
        } else {
            Value::Null
        };
        let query = parts.uri.query();
        let if_match = parts
            .headers
            .get(header::IF_MATCH)
            .and_then(|v| v.to_str().ok());
        match (segments.as_slice(), method) {
            (["ServiceProviderConfig"], &Method::GET) => Ok(respond(
                StatusCode::OK,
                &schema::service_provider_config(base),
            )),
            (["ServiceProviderConfig"], _) => Err(ScimError::method("GET")),
            (["ResourceTypes"], &Method::GET) => Ok(list_of(schema::resource_types(base))),
            (["ResourceTypes", id], &Method::GET) => {
                found_by_id(schema::resource_types(base), id, "resource type")
            }
            (["Schemas"], &Method::GET) => Ok(list_of(schema::schemas(base))),
            (["Schemas", id], &Method::GET) => found_by_id(schema::schemas(base), id, "schema"),
            (["ResourceTypes" | "Schemas", ..], _) => Err(ScimError::method("GET")),
            (["Users"], &Method::GET) => self.list_users(caller, parse_query(query)?, base).await,
            (["Users"], &Method::POST) => self.create::<Users>(caller, &body, base).await,
            (["Users"], _) => Err(ScimError::method("GET, POST")),
            (["Users", ".search"], &Method::POST) => {
                self.list_users(caller, search_query(&body)?, base).await
            }
            ([".search"], &Method::POST) => {
                self.search_all(caller, search_query(&body)?, base).await
            }
            (["Groups", ".search"], &Method::POST) => {
                self.list_groups(caller, search_query(&body)?, base).await
            }
            (["Users" | "Groups", ".search"] | [".search"], _) => Err(ScimError::method("POST")),
            (["Groups"], &Method::GET) => self.list_groups(caller, parse_query(query)?, base).await,
            (["Groups"], &Method::POST) => self.create::<Groups>(caller, &body, base).await,
            (["Groups"], _) => Err(ScimError::method("GET, POST")),
            (["Groups", id], method) => {
                let id = id
                    .parse::<ScimGroupId>()
                    .map_err(|_| ScimError::not_found(format!("no Group {id}")))?;
                let request = ById {
                    caller,
                    id,
                    method,
                    body: &body,
                    query,
                    if_match,
                    base,
                };
                by_id::<Groups>(self, request).await
            }
            (["Users", id], method) => {
                let request = ById {
                    caller,
                    id: user_id(id)?,
                    method,
                    body: &body,
                    query,
                    if_match,
                    base,
                };
                by_id::<Users>(self, request).await
            }
            _ => Err(ScimError::not_found(format!(
                "no such resource: {}",
                parts.uri.path()
            ))),
        }
    }

    async fn authenticate(&self, headers: &hyper::HeaderMap) -> Result<ScimCaller, ScimError> {
        let refused = || {
            ScimError::new(
                StatusCode::UNAUTHORIZED,
                None,
                "an Authorization: Bearer <SCIM token> header is required",
            )
        };
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_owned())
            .ok_or_else(refused)?;
        let lk = self.lk();
        blocking(move || lk.scim_caller(&token))
            .await
            .map_err(|_| refused())
    }

    async fn list_users(&self, caller: ScimCaller, query: Query, base: &str) -> Answer {
        let lk = self.lk();
        // The existence check every provider makes (`userName eq "…"`) reads one index
        // entry, not every member.
        let named = query
            .filter
            .as_ref()
            .and_then(filter::user_name_eq)
            .map(str::to_owned);
        let candidates = blocking(move || match named {
            Some(name) => Ok(lk.scim_user_named(caller, &name)?.into_iter().collect()),
            None => lk.scim_users(caller),
        })
        .await?;
        // Without a filter only the page is rendered.
        Ok(match &query.filter {
            None => {
                let page = page_of(&query);
                let shown = candidates
                    .iter()
                    .skip(page.start - 1)
                    .take(page.count)
                    .map(|u| users::to_json(u, base))
                    .collect();
                list_response(&query, page, candidates.len(), shown)
            }
            Some(_) => filtered(
                &query,
                candidates.iter().map(|u| users::to_json(u, base)).collect(),
            ),
        })
    }

    /// Every group of the account, filtered and paged.
    async fn list_groups(&self, caller: ScimCaller, query: Query, base: &str) -> Answer {
        let lk = self.lk();
        let found = blocking(move || lk.scim_groups(caller)).await?;
        let all = found.iter().map(|g| groups::to_json(g, base)).collect();
        Ok(filtered(&query, all))
    }

    /// `POST /.search`: Users and Groups together.
    async fn search_all(&self, caller: ScimCaller, query: Query, base: &str) -> Answer {
        let lk = self.lk();
        let (people, found) =
            blocking(move || Ok((lk.scim_users(caller)?, lk.scim_groups(caller)?))).await?;
        let all = people
            .iter()
            .map(|u| users::to_json(u, base))
            .chain(found.iter().map(|g| groups::to_json(g, base)))
            .collect();
        Ok(filtered(&query, all))
    }

    /// `GET …/{id}`.
    async fn get_one<K: Kind>(
        &self,
        caller: ScimCaller,
        id: K::Id,
        query: Option<&str>,
        base: &str,
    ) -> Answer {
        let query = parse_query(query)?;
        let lk = self.lk();
        let found = blocking(move || K::read(&lk, caller, id)).await?;
        let mut resource = K::to_json(&found, base);
        let version = users::version(&resource).map(str::to_owned);
        users::project(&mut resource, &query.attributes, &query.excluded);
        Ok(with_version(respond(StatusCode::OK, &resource), version))
    }

    /// `POST /Users` or `/Groups`.
    async fn create<K: Kind>(&self, caller: ScimCaller, body: &Value, base: &str) -> Answer {
        let spec = K::spec(body)?;
        let lk = self.lk();
        let made = blocking(move || K::create(&lk, caller, &spec)).await?;
        Ok(created(K::to_json(&made, base)))
    }

    /// `PUT …/{id}`: the whole resource, if it is still the version `If-Match` names.
    async fn replace<K: Kind>(
        &self,
        caller: ScimCaller,
        id: K::Id,
        body: &Value,
        if_match: Option<&str>,
        base: &str,
    ) -> Answer {
        let spec = K::spec(body)?;
        let lk = self.lk();
        let (at, if_match) = (base.to_owned(), if_match.map(str::to_owned));
        let done = blocking(move || {
            K::replace(&lk, caller, id, &spec, |current| {
                version_matches(if_match.as_deref(), &K::to_json(current, &at))
            })
        })
        .await?;
        Ok(versioned(StatusCode::OK, &K::to_json(&done, base)))
    }

    /// `PATCH …/{id}`: the operations applied to the resource as read, then written as a
    /// whole if it has not changed since (else 412: a change in between is never lost).
    async fn patch<K: Kind>(
        &self,
        caller: ScimCaller,
        id: K::Id,
        body: &Value,
        if_match: Option<&str>,
        base: &str,
    ) -> Answer {
        let lk = self.lk();
        let current = blocking(move || K::read(&lk, caller, id)).await?;
        let before = K::to_json(&current, base);
        if !version_matches(if_match, &before) {
            return Err(stale());
        }
        let mut working = before.clone();
        if let Some(fields) = working.as_object_mut() {
            fields.remove("meta");
        }
        patch::apply(&mut working, body, K::SHAPE)?;
        let spec = K::spec(&working)?;
        let expected = users::version(&before).map(str::to_owned);
        let lk = self.lk();
        let at = base.to_owned();
        let done = blocking(move || {
            K::replace(&lk, caller, id, &spec, |now| {
                users::version(&K::to_json(now, &at)).map(str::to_owned) == expected
            })
        })
        .await?;
        Ok(versioned(StatusCode::OK, &K::to_json(&done, base)))
    }

    /// `DELETE …/{id}`, if it is still the version `If-Match` names.
    async fn delete<K: Kind>(
        &self,
        caller: ScimCaller,
        id: K::Id,
        if_match: Option<&str>,
        base: &str,
    ) -> Answer {
        if if_match.is_some() {
            let lk = self.lk();
            let current = blocking(move || K::read(&lk, caller, id)).await?;
            if !version_matches(if_match, &K::to_json(&current, base)) {
                return Err(stale());
            }
        }
        let lk = self.lk();
        blocking(move || K::delete(&lk, caller, id)).await?;
        Ok(no_content())
    }
}

/// A resource type served by id (Users, Groups): how `app` reads, makes, replaces and
/// deletes one, and how it reads and shows as SCIM.
trait Kind {
    /// Its id.
    type Id: Copy + Send + 'static;
    /// What `app` answers.
    type Found: Send + 'static;
    /// What a write gives `app`.
    type Spec: Send + 'static;
    /// What PATCH may write of it.
    const SHAPE: &'static patch::Shape;
    fn read(lk: &Latchkey, caller: ScimCaller, id: Self::Id) -> Result<Self::Found, AppError>;
    fn create(
        lk: &Latchkey,
        caller: ScimCaller,
        spec: &Self::Spec,
    ) -> Result<Self::Found, AppError>;
    fn replace(
        lk: &Latchkey,
        caller: ScimCaller,
        id: Self::Id,
        spec: &Self::Spec,
        expected: impl FnOnce(&Self::Found) -> bool,
    ) -> Result<Self::Found, AppError>;
    fn delete(lk: &Latchkey, caller: ScimCaller, id: Self::Id) -> Result<(), AppError>;
    fn to_json(found: &Self::Found, base: &str) -> Value;
    fn spec(body: &Value) -> Result<Self::Spec, ScimError>;
}

/// `/Users`.
struct Users;

impl Kind for Users {
    type Id = UserId;
    type Found = crate::app::ScimUser;
    type Spec = crate::app::ScimUserSpec;
    const SHAPE: &'static patch::Shape = &patch::USER;
    fn read(lk: &Latchkey, caller: ScimCaller, id: UserId) -> Result<Self::Found, AppError> {
        lk.scim_user(caller, id)
    }
    fn create(
        lk: &Latchkey,
        caller: ScimCaller,
        spec: &Self::Spec,
    ) -> Result<Self::Found, AppError> {
        lk.scim_create_user(caller, spec)
    }
    fn replace(
        lk: &Latchkey,
        caller: ScimCaller,
        id: UserId,
        spec: &Self::Spec,
        expected: impl FnOnce(&Self::Found) -> bool,
    ) -> Result<Self::Found, AppError> {
        lk.scim_replace_user(caller, id, spec, expected)
    }
    fn delete(lk: &Latchkey, caller: ScimCaller, id: UserId) -> Result<(), AppError> {
        lk.scim_delete_user(caller, id)
    }
    fn to_json(found: &Self::Found, base: &str) -> Value {
        users::to_json(found, base)
    }
    fn spec(body: &Value) -> Result<Self::Spec, ScimError> {
        users::spec_from_json(body)
    }
}

/// `/Groups`.
struct Groups;

impl Kind for Groups {
    type Id = ScimGroupId;
    type Found = crate::domain::scim::ScimGroup;
    type Spec = crate::app::ScimGroupSpec;
    const SHAPE: &'static patch::Shape = &patch::GROUP;
    fn read(lk: &Latchkey, caller: ScimCaller, id: ScimGroupId) -> Result<Self::Found, AppError> {
        lk.scim_group(caller, id)
    }
    fn create(
        lk: &Latchkey,
        caller: ScimCaller,
        spec: &Self::Spec,
    ) -> Result<Self::Found, AppError> {
        lk.scim_create_group(caller, spec)
    }
    fn replace(
        lk: &Latchkey,
        caller: ScimCaller,
        id: ScimGroupId,
        spec: &Self::Spec,
        expected: impl FnOnce(&Self::Found) -> bool,
    ) -> Result<Self::Found, AppError> {
        lk.scim_replace_group(caller, id, spec, expected)
    }
    fn delete(lk: &Latchkey, caller: ScimCaller, id: ScimGroupId) -> Result<(), AppError> {
        lk.scim_delete_group(caller, id)
    }
    fn to_json(found: &Self::Found, base: &str) -> Value {
        groups::to_json(found, base)
    }
    fn spec(body: &Value) -> Result<Self::Spec, ScimError> {
        groups::spec_from_json(body)
    }
}

/// What a by-id path does with its method.
async fn by_id<K: Kind>(scim: &Scim, request: ById<'_, K::Id>) -> Answer {
    let ById {
        caller,
        id,
        method,
        body,
        query,
        if_match,
        base,
    } = request;
    match *method {
        Method::GET => scim.get_one::<K>(caller, id, query, base).await,
        Method::PUT => scim.replace::<K>(caller, id, body, if_match, base).await,
        Method::PATCH => scim.patch::<K>(caller, id, body, if_match, base).await,
        Method::DELETE => scim.delete::<K>(caller, id, if_match, base).await,
        _ => Err(ScimError::method("GET, PUT, PATCH, DELETE")),
    }
}

/// A request to a resource by id.
struct ById<'r, Id> {
    caller: ScimCaller,
    id: Id,
    method: &'r Method,
    body: &'r Value,
    query: Option<&'r str>,
    if_match: Option<&'r str>,
    base: &'r str,
}

/// The route a SCIM path is counted under (ids left out).
fn route_label(path: &str) -> &'static str {
    let rest = path.trim_start_matches(BASE_PATH);
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["ServiceProviderConfig"] => "/scim/v2/ServiceProviderConfig",
        ["ResourceTypes", ..] => "/scim/v2/ResourceTypes",
        ["Schemas", ..] => "/scim/v2/Schemas",
        [".search"] => "/scim/v2/.search",
        ["Users"] => "/scim/v2/Users",
        ["Users", ".search"] => "/scim/v2/Users/.search",
        ["Users", _] => "/scim/v2/Users/{id}",
        ["Groups"] => "/scim/v2/Groups",
        ["Groups", ".search"] => "/scim/v2/Groups/.search",
        ["Groups", _] => "/scim/v2/Groups/{id}",
        _ => "/scim/v2/other",
    }
}

/// The refusal of a change to a resource that changed since the version named.
fn stale() -> ScimError {
    AppError::Precondition(
        "the resource changed since that version (If-Match): read it again".into(),
    )
    .into()
}

/// 201 with the resource, its `Location` and `ETag`.
fn created(resource: Value) -> Response<Full<Bytes>> {
    let mut response = versioned(StatusCode::CREATED, &resource);
    if let Some(location) = resource
        .get("meta")
        .and_then(|m| m.get("location"))
        .and_then(Value::as_str)
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The page `query` asks for.
fn page_of(query: &Query) -> Page {
    Page {
        start: query.start.unwrap_or(1).max(1),
        count: query
            .count
            .unwrap_or(schema::MAX_PAGE)
            .min(schema::MAX_PAGE),
    }
}

/// `all` (rendered resources) filtered, paged and projected as `query` asks.
fn filtered(query: &Query, all: Vec<Value>) -> Response<Full<Bytes>> {
    let page = page_of(query);
    let matching: Vec<Value> = all
        .into_iter()
        .filter(|r| query.filter.as_ref().is_none_or(|f| filter::matches(f, r)))
        .collect();
    let total = matching.len();
    let shown = matching
        .into_iter()
        .skip(page.start - 1)
        .take(page.count)
        .collect();
    list_response(query, page, total, shown)
}

/// A list response of `shown` (one page of `total`), projected.
fn list_response(
    query: &Query,
    page: Page,
    total: usize,
    shown: Vec<Value>,
) -> Response<Full<Bytes>> {
    let resources: Vec<Value> = shown
        .into_iter()
        .map(|mut r| {
            users::project(&mut r, &query.attributes, &query.excluded);
            r
        })
        .collect();
    let mut body = json!({
        "schemas": [schema::LIST],
        "totalResults": total,
        "startIndex": page.start,
        "itemsPerPage": resources.len(),
    });
    if let Some(fields) = body.as_object_mut() {
        fields.insert("Resources".into(), Value::Array(resources));
    }
    respond(StatusCode::OK, &body)
}

/// Whether `if_match` (absent, `*`, or a list of ETags) names `resource`'s version.
fn version_matches(if_match: Option<&str>, resource: &Value) -> bool {
    let Some(if_match) = if_match else {
        return true;
    };
    let current = users::version(resource).unwrap_or_default();
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    if_match
        .split(',')
        .any(|tag| tag.trim() == "*" || bare(tag) == bare(current))
}

/// `resource` answered with `status` and its version as the `ETag`.
fn versioned(status: StatusCode, resource: &Value) -> Response<Full<Bytes>> {
    let version = users::version(resource).map(str::to_owned);
    with_version(respond(status, resource), version)
}

fn with_version(
    mut response: Response<Full<Bytes>>,
    version: Option<String>,
) -> Response<Full<Bytes>> {
    if let Some(tag) = version.and_then(|v| HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

fn user_id(text: &str) -> Result<UserId, ScimError> {
    text.parse::<UserId>()
        .map_err(|_| ScimError::not_found(format!("no User {text}")))
}

fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/scim+json"),
    );
    response
}

fn list_of(resources: Vec<Value>) -> Response<Full<Bytes>> {
    respond(
        StatusCode::OK,
        &json!({
            "schemas": [schema::LIST],
            "totalResults": resources.len(),
            "startIndex": 1,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

fn found_by_id(resources: Vec<Value>, id: &str, what: &str) -> Answer {
    resources
        .into_iter()
        .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
        .map(|r| respond(StatusCode::OK, &r))
        .ok_or_else(|| ScimError::not_found(format!("no {what} {id}")))
}

/// The query of a list or a get: `filter`, `startIndex`, `count`, `attributes`,
/// `excludedAttributes`. Sorting is not offered (`sortBy` is refused).
fn parse_query(query: Option<&str>) -> Result<Query, ScimError> {
    let mut parsed = Query::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.to_ascii_lowercase().as_str() {
            "filter" => {
                parsed.filter =
                    Some(filter::parse(&value).map_err(|e| ScimError::invalid_filter(e.0))?);
            }
            "startindex" => parsed.start = Some(number(&value, "startIndex")?),
            "count" => parsed.count = Some(number(&value, "count")?),
            "attributes" => parsed.attributes = names(&value),
            "excludedattributes" => parsed.excluded = names(&value),
            "sortby" | "sortorder" => {
                return Err(ScimError::invalid_value(
                    "sorting is not supported (sort.supported is false)",
                ));
            }
            _ => {}
        }
    }
    Ok(parsed)
}

/// A message body's `schemas`, when given, names `urn` (a body without one is taken:
/// some providers leave it out).
fn expect_schema(body: &Value, urn: &str) -> Result<(), ScimError> {
    match filter::get_ci(body, "schemas") {
        None => Ok(()),
        Some(Value::Array(names)) if names.iter().any(|n| n.as_str() == Some(urn)) => Ok(()),
        Some(_) => Err(ScimError::invalid_syntax(format!(
            "schemas must name {urn}"
        ))),
    }
}

/// A `POST …/.search` body as a query.
fn search_query(body: &Value) -> Result<Query, ScimError> {
    expect_schema(body, schema::SEARCH)?;
    let mut parsed = Query::default();
    let text = |key: &str| filter::get_ci(body, key).and_then(Value::as_str);
    if let Some(f) = text("filter") {
        parsed.filter = Some(filter::parse(f).map_err(|e| ScimError::invalid_filter(e.0))?);
    }
    let count = |key: &str| -> Result<Option<usize>, ScimError> {
        match filter::get_ci(body, key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| ScimError::invalid_value(format!("{key} is a whole number"))),
        }
    };
    parsed.start = count("startIndex")?;
    parsed.count = count("count")?;
    let list = |key: &str| -> Vec<String> {
        filter::get_ci(body, key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    parsed.attributes = list("attributes");
    parsed.excluded = list("excludedAttributes");
    if filter::get_ci(body, "sortBy").is_some() {
        return Err(ScimError::invalid_value(
            "sorting is not supported (sort.supported is false)",
        ));
    }
    Ok(parsed)
}

fn number(text: &str, field: &str) -> Result<usize, ScimError> {
    text.trim()
        .parse::<usize>()
        .map_err(|_| ScimError::invalid_value(format!("{field} is a whole number")))
}

fn names(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A JSON body: `application/scim+json` or `application/json`, at most 1 MiB.
async fn read_json<B>(
    headers: &hyper::HeaderMap,
    method: &Method,
    body: B,
) -> Result<Value, ScimError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    if !matches!(
        kind.as_deref(),
        Some("application/scim+json" | "application/json")
    ) {
        return Err(ScimError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            "the body is application/scim+json (or application/json)",
        ));
    }
    let bytes = crate::api::request::read_bounded(headers, method, body)
        .await
        .map_err(|e| ScimError::new(e.code.1, None, e.msg.to_string()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))
}

/// Run `work` on the blocking pool (it reads or writes the store).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, ScimError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done.map_err(ScimError::from),
        Err(_) => Err(ScimError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "the operation did not complete",
        )),
    }
}
