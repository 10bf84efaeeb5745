//! Request plumbing shared by the handlers: bodies, query strings, pages, ids, answers.

use super::*;

/// A 405, with the methods the path takes (its `Allow` header).
pub(super) fn method_not_allowed(allow: &'static str) -> ApiError {
    let mut refused = ApiError::new(
        error::METHOD_NOT_ALLOWED,
        format!("this path does not take that method; it takes {allow}"),
    );
    refused.header = Some(error::ErrorHeader::Allow(allow));
    refused
}

/// `op_` and a fresh time-sortable id, naming one request in errors and logs.
pub(super) fn operation_id() -> String {
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

pub(super) fn json_response(
    status: StatusCode,
    value: &impl serde::Serialize,
) -> Response<Full<Bytes>> {
    // Most answers fit: one allocation rather than serde_json's growth from 128 bytes.
    let mut bytes = Vec::with_capacity(512);
    if serde_json::to_writer(&mut bytes, value).is_err() {
        bytes.clear();
    }
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 204 with no body.
pub(crate) fn no_content() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// The body of a POST or PATCH: at most [`MAX_BODY`] bytes of `application/json` (an
/// empty body is allowed and reads as `{}`); other methods' bodies are not read.
pub(crate) async fn read_body<B>(
    headers: &hyper::HeaderMap,
    method: &Method,
    body: B,
) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bytes = read_bounded(headers, method, body).await?;
    if !bytes.is_empty() && !is_content_type(headers, "application/json") {
        return Err(ApiError::new(
            error::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json",
        ));
    }
    Ok(bytes)
}

/// Whether the request's `Content-Type` is `kind` (parameters aside).
pub(crate) fn is_content_type(headers: &hyper::HeaderMap, kind: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(kind))
}

/// The body of a POST, PATCH, PUT or DELETE, of any type: at most [`MAX_BODY`] bytes (past it,
/// a 413 once up to `DRAIN_LIMIT` was read and dropped); other methods' bodies are not
/// read.
pub(crate) async fn read_bounded<B>(
    headers: &hyper::HeaderMap,
    method: &Method,
    body: B,
) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // DELETE may carry a body too (`DELETE /me/mfa/totp {"code"}`); SCIM replaces by PUT.
    if !matches!(
        *method,
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    ) {
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
    Ok(Bytes::from(bytes))
}

/// The query string: `before_id` and `limit` of a list, and any filters.
#[derive(Debug, Default)]
pub(super) struct Query {
    pub(super) before_id: Option<String>,
    pub(super) limit: usize,
    /// `limit` was given.
    pub(super) limit_given: bool,
    /// Every other parameter, percent-decoded.
    pub(super) filters: Vec<(String, String)>,
}

impl Query {
    pub(super) fn parse(query: Option<&str>) -> Result<Query, ApiError> {
        let mut parsed = Query {
            before_id: None,
            limit: 100,
            limit_given: false,
            filters: Vec::new(),
        };
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            // One value per parameter: which of two would count is not for the server to
            // guess.
            if seen.iter().any(|k| *k == key) {
                return Err(ApiError::field(
                    error::INVALID_QUERY,
                    &key,
                    format!("{key} is given more than once"),
                ));
            }
            seen.push(key.clone().into_owned());
            match key.as_ref() {
                "before_id" if !value.is_empty() => parsed.before_id = Some(value.into_owned()),
                "before_id" => {}
                "limit" => {
                    parsed.limit_given = true;
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

    /// Refuse any parameter but `before_id`, `limit` (on a list) and `accepted`, and an
    /// empty filter: an undocumented or empty value is a 400, never silently ignored.
    pub(super) fn accept(&self, list: bool, accepted: &[&str]) -> Result<(), ApiError> {
        if !list && (self.before_id.is_some() || self.limit_given) {
            let field = if self.limit_given {
                "limit"
            } else {
                "before_id"
            };
            return Err(ApiError::field(
                error::INVALID_QUERY,
                field,
                format!("{field} is a parameter of lists only"),
            ));
        }
        for (key, value) in &self.filters {
            if !accepted.contains(&key.as_str()) {
                return Err(ApiError::field(
                    error::INVALID_QUERY,
                    key,
                    format!("{key:?} is not a parameter of this operation"),
                ));
            }
            if value.is_empty() {
                return Err(ApiError::field(
                    error::INVALID_QUERY,
                    key,
                    format!("{key} is empty; leave it out instead"),
                ));
            }
        }
        Ok(())
    }

    /// The filter `key`, if given.
    pub(super) fn filter(&self, key: &str) -> Option<&str> {
        self.filters
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The filter `key` as an RFC 3339 time.
    pub(super) fn time(&self, key: &'static str) -> Result<Option<Timestamp>, ApiError> {
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

/// A JSON body as `T`; an empty body reads as `{}`. A refusal names the offending field
/// by its path (`roles.developer`, `checks[2].action`), found by where deserialization
/// stopped, never by text taken from the value.
pub(super) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let bytes: &[u8] = if body.is_empty() { b"{}" } else { body };
    // serde reads a struct from a JSON array too (its fields in order): only an object
    // is a request body here.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(
            error::MALFORMED_BODY,
            "the body must be a JSON object",
        ));
    }
    // Read plainly (a third of the work of tracking the path: this is every request's
    // cost); only a refused body is read again, tracking the path, to name the field.
    let plain = match serde_json::from_slice(bytes) {
        Ok(value) => return Ok(value),
        Err(plain) => plain,
    };
    let refused = |msg: String| format!("the body is not valid for this endpoint: {msg}");
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut reader) {
        Err(e) => {
            let msg = refused(e.inner().to_string());
            Err(match field_path(&e) {
                Some(field) => ApiError::field(error::MALFORMED_BODY, &field, msg),
                None => ApiError::new(error::MALFORMED_BODY, msg),
            })
        }
        // Only what follows the object was wrong.
        Ok(_) => Err(ApiError::new(
            error::MALFORMED_BODY,
            refused(plain.to_string()),
        )),
    }
}

/// The path of the field a body was refused at. For a missing field the path is its
/// parent's, and serde names the field itself (in backquotes).
fn field_path(e: &serde_path_to_error::Error<serde_json::Error>) -> Option<String> {
    let path = e.path().to_string();
    let parent = (path != ".").then_some(path);
    let message = e.inner().to_string();
    let named = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_owned());
    match (parent, named) {
        (Some(parent), Some(name)) => Some(format!("{parent}.{name}")),
        (None, Some(name)) => Some(name),
        (parent, None) => parent,
    }
}

/// A path id of the given type, or 404: an id that cannot exist is simply not found.
/// An id named in a body: a malformed one is a 400 naming the field.
pub(super) fn field_id<T: std::str::FromStr>(text: &str, field: &str) -> Result<T, ApiError> {
    text.trim().parse().map_err(|_| {
        ApiError::field(
            error::INVALID_FIELD,
            field,
            format!("{field} {text:?} is not a valid id"),
        )
    })
}

pub(super) fn path_id<T: std::str::FromStr>(text: &str) -> Result<T, ApiError> {
    text.parse()
        .map_err(|_| ApiError::new(error::NOT_FOUND, format!("{text} not found")))
}

/// One page of a newest-first list, and the `before_id` of the next page if any. The page
/// starts right after the item `before_id` names; if that item is gone (deleted since),
/// after the first item whose id sorts below it.
pub(super) fn page<T, I: Ord>(
    items: Vec<T>,
    id: impl Fn(&T) -> I,
    before: Option<I>,
    limit: usize,
) -> (Vec<T>, Option<I>) {
    let start = match &before {
        None => 0,
        Some(before) => items
            .iter()
            .position(|item| id(item) == *before)
            .map(|at| at + 1)
            .or_else(|| items.iter().position(|item| id(item) < *before))
            .unwrap_or(items.len()),
    };
    let mut items: Vec<T> = items.into_iter().skip(start).collect();
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(&id) } else { None };
    (items, next)
}

/// Run store work on the blocking pool.
pub(super) async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::new(error::INTERNAL, "the operation did not complete"))?
        .map_err(ApiError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        count: u8,
    }

    fn refused(body: &str) -> String {
        let err = parse::<Outer>(&Bytes::from(body.to_owned())).unwrap_err();
        assert_eq!(err.code, error::MALFORMED_BODY, "{body}");
        err.body("op_test").to_string()
    }

    #[test]
    fn bodies_parse_plainly_and_refusals_name_the_field() {
        let ok = parse::<Outer>(&Bytes::from(r#" {"name": "a", "inner": {"count": 3}} "#));
        assert_eq!(
            ok.unwrap(),
            Outer {
                name: "a".into(),
                inner: Inner { count: 3 }
            }
        );
        assert!(refused(r#"{"name": "a", "inner": {"count": 300}}"#).contains("inner.count"));
        assert!(refused(r#"{"name": "a", "inner": {}}"#).contains("inner.count"));
        assert!(refused(r#"{"name": "a", "inner": {"count": 1, "x": 2}}"#).contains("inner"));
        // Whatever follows the object is refused too, not ignored.
        assert!(refused(r#"{"name": "a", "inner": {"count": 1}} trailing"#).contains("trailing"));
        assert!(refused(r#"["a", {"count": 1}]"#).contains("JSON object"));
    }
}

/// A tenant role assignment as bodies give it: `{"role_id", "tenant_id"?}` (no tenant:
/// all tenants).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignmentBody {
    role_id: String,
    tenant_id: Option<String>,
}

/// The role assignments a body gives, each id checked (`field` names the list in an
/// error).
pub(super) fn assignments_of(
    body: &[AssignmentBody],
    field: &str,
) -> Result<Vec<crate::domain::grant::Granted>, ApiError> {
    body.iter()
        .map(|a| {
            let role: crate::domain::id::RoleId = field_id(&a.role_id, field)?;
            let tenant = a
                .tenant_id
                .as_deref()
                .map(|t| field_id(t, field))
                .transpose()?;
            Ok((role, tenant))
        })
        .collect()
}
