//! The one error shape of the API, and its stable codes.
//!
//! `{"error_code": "ERR_LATCHKEY_<n>", "status_code": 403, "msg": "…", "details": {…}}`.
//! `details` carries `operation_id` always, `field` for invalid input, and `policy` and
//! `reason` for a 403; nothing else internal. Codes never change meaning; new ones are
//! added at the end of the table (README, "Error codes").

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use crate::app::{AppError, Limited};
use crate::domain::DomainError;

/// A stable error code: the number after `ERR_LATCHKEY_`, and its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub u16, pub StatusCode);

/// No credential, or one that does not verify.
pub const UNAUTHENTICATED: Code = Code(100, StatusCode::UNAUTHORIZED);
/// The policies refused the operation.
pub const FORBIDDEN: Code = Code(101, StatusCode::FORBIDDEN);
/// No such object in the caller's account.
pub const NOT_FOUND: Code = Code(102, StatusCode::NOT_FOUND);
/// A unique value is already taken (email, account name, SSH key, membership).
pub const CONFLICT: Code = Code(103, StatusCode::CONFLICT);
/// The change would leave the account without an active administrator.
pub const LAST_ADMINISTRATOR: Code = Code(104, StatusCode::CONFLICT);
/// A field is invalid; `details.field` names it.
pub const INVALID_FIELD: Code = Code(105, StatusCode::BAD_REQUEST);
/// The body is not JSON, or not the JSON this endpoint takes.
pub const MALFORMED_BODY: Code = Code(106, StatusCode::BAD_REQUEST);
/// The body is not `application/json`.
pub const UNSUPPORTED_MEDIA_TYPE: Code = Code(107, StatusCode::UNSUPPORTED_MEDIA_TYPE);
/// The body is larger than the limit.
pub const BODY_TOO_LARGE: Code = Code(108, StatusCode::PAYLOAD_TOO_LARGE);
/// No such path.
pub const NO_ROUTE: Code = Code(109, StatusCode::NOT_FOUND);
/// The path exists but not with this method.
pub const METHOD_NOT_ALLOWED: Code = Code(110, StatusCode::METHOD_NOT_ALLOWED);
/// `ngrok-version` names a version other than 2.
pub const BAD_API_VERSION: Code = Code(111, StatusCode::BAD_REQUEST);
/// A query parameter is invalid (`limit`, `before_id`, a filter).
pub const INVALID_QUERY: Code = Code(112, StatusCode::BAD_REQUEST);
/// The operation does not apply to this object (rotating an SSH key, deleting a
/// personal authtoken).
pub const NOT_APPLICABLE: Code = Code(113, StatusCode::BAD_REQUEST);
/// A policy reload found an invalid set; the current set stays.
pub const POLICY_SET_INVALID: Code = Code(114, StatusCode::UNPROCESSABLE_ENTITY);
/// An enforced IP restriction refuses the caller's address.
pub const IP_RESTRICTED: Code = Code(115, StatusCode::FORBIDDEN);
/// The client sent the body too slowly (the server's client timeout).
pub const REQUEST_TIMEOUT: Code = Code(116, StatusCode::REQUEST_TIMEOUT);
/// Too many failed logins; `Retry-After` says when to try again.
pub const RATE_LIMITED: Code = Code(117, StatusCode::TOO_MANY_REQUESTS);
/// The change would lock its author out of the dashboard; `confirm_lockout: true` makes it.
pub const WOULD_LOCK_OUT: Code = Code(118, StatusCode::CONFLICT);
/// Something failed inside the server; nothing about it is shown.
pub const INTERNAL: Code = Code(120, StatusCode::INTERNAL_SERVER_ERROR);
/// A user with this email exists already: it joins only by accepting an invitation.
pub const EXISTING_USER: Code = Code(121, StatusCode::CONFLICT);
/// The user belongs to other accounts too: only the user changes what they all rely on.
pub const SHARED_USER: Code = Code(122, StatusCode::FORBIDDEN);
/// The user has not proven its email, so it joins no other account yet.
pub const EMAIL_UNPROVEN: Code = Code(123, StatusCode::FORBIDDEN);
/// A state-changing request from another site was refused.
pub const CROSS_SITE: Code = Code(124, StatusCode::FORBIDDEN);
/// Too many link requests for one email or from one address.
pub const TOO_MANY_LINKS: Code = Code(125, StatusCode::TOO_MANY_REQUESTS);
/// The appliance sends no mail, so no link can be sent.
pub const NO_MAIL: Code = Code(126, StatusCode::SERVICE_UNAVAILABLE);
/// The server cannot write (or read) its storage now (a full disk); nothing changed, and
/// it recovers by itself once the cause clears. `Retry-After` says when to try again.
pub const STORAGE_UNAVAILABLE: Code = Code(127, StatusCode::SERVICE_UNAVAILABLE);
/// The member's account signs its members in through single sign-on only.
pub const SSO_REQUIRED: Code = Code(128, StatusCode::FORBIDDEN);

/// Every code, for the documentation table and its test.
pub const ALL: [(Code, &str); 28] = [
    (
        UNAUTHENTICATED,
        "no credential, or one that does not verify",
    ),
    (
        FORBIDDEN,
        "the policies refused; details.policy and details.reason say why",
    ),
    (NOT_FOUND, "no such object in the caller's account"),
    (
        CONFLICT,
        "a unique value is already taken, or the object is in use (details name the users)",
    ),
    (
        LAST_ADMINISTRATOR,
        "the account must keep an active administrator",
    ),
    (INVALID_FIELD, "a field is invalid; details.field names it"),
    (
        MALFORMED_BODY,
        "the body is not the JSON this endpoint takes",
    ),
    (UNSUPPORTED_MEDIA_TYPE, "the body is not application/json"),
    (BODY_TOO_LARGE, "the body is over 1 MiB"),
    (NO_ROUTE, "no such path"),
    (METHOD_NOT_ALLOWED, "the path does not take this method"),
    (
        BAD_API_VERSION,
        "ngrok-version names a version other than 2",
    ),
    (
        INVALID_QUERY,
        "a query parameter is invalid; details.field names it",
    ),
    (
        NOT_APPLICABLE,
        "the operation does not apply to this object",
    ),
    (
        POLICY_SET_INVALID,
        "the reloaded policy set is invalid; the current set stays",
    ),
    (
        IP_RESTRICTED,
        "an enforced IP restriction refuses the caller's address",
    ),
    (
        REQUEST_TIMEOUT,
        "the body did not arrive within the client timeout",
    ),
    (
        RATE_LIMITED,
        "too many failed logins; Retry-After says when to try again",
    ),
    (
        WOULD_LOCK_OUT,
        "the change would lock its author out of the dashboard; confirm_lockout: true makes it",
    ),
    (INTERNAL, "the server failed; the log has the operation id"),
    (
        EXISTING_USER,
        "a user with this email exists: invite it (POST /invitations); it joins when it accepts",
    ),
    (
        SHARED_USER,
        "the user is a member of other accounts too: only the user may change its password, name, email or second factor",
    ),
    (
        EMAIL_UNPROVEN,
        "the user has not proven its email yet (POST /me/email_verification), so it joins no other account",
    ),
    (
        CROSS_SITE,
        "a state-changing request from another site (Origin or Sec-Fetch-Site) was refused",
    ),
    (
        TOO_MANY_LINKS,
        "too many link requests for this email or from this address; Retry-After says when to try again",
    ),
    (
        NO_MAIL,
        "the appliance sends no mail (no --smtp-url), so no link can be sent",
    ),
    (
        STORAGE_UNAVAILABLE,
        "the server cannot use its storage now (a full disk); retry after Retry-After",
    ),
    (
        SSO_REQUIRED,
        "the account signs its members in through single sign-on only",
    ),
];

/// An API error, before the operation id is attached.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// Code and status.
    pub code: Code,
    /// One human sentence (boxed: an error travels in every handler's `Result`, so it is
    /// kept small).
    pub msg: Box<str>,
    /// Extra details (`field`, `policy`, `reason`).
    pub details: Map<String, Value>,
    /// A header the answer carries besides the body.
    pub header: Option<ErrorHeader>,
}

/// The header an error answer may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorHeader {
    /// `Retry-After` (429): seconds until trying again makes sense.
    RetryAfter(u64),
    /// `Allow` (405): the methods the path takes.
    Allow(&'static str),
}

impl ApiError {
    /// An error with no details.
    pub fn new(code: Code, msg: impl Into<String>) -> ApiError {
        ApiError {
            code,
            msg: msg.into().into_boxed_str(),
            details: Map::new(),
            header: None,
        }
    }

    /// With `details[key] = value`.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// A field of the body or query is invalid.
    pub fn field(code: Code, field: &str, msg: impl Into<String>) -> ApiError {
        ApiError::new(code, msg).with("field", field)
    }

    /// The error's JSON body, carrying `operation_id`.
    pub fn body(&self, operation_id: &str) -> Value {
        let mut details = self.details.clone();
        details.insert("operation_id".to_owned(), operation_id.into());
        json!({
            "error_code": format!("ERR_LATCHKEY_{}", self.code.0),
            "status_code": self.code.1.as_u16(),
            "msg": self.msg,
            "details": details,
        })
    }
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> ApiError {
        match err {
            AppError::Domain(err) => err.into(),
            AppError::Unauthenticated(msg) => ApiError::new(UNAUTHENTICATED, msg),
            AppError::WouldLockOut(msg) => ApiError::field(
                WOULD_LOCK_OUT,
                "confirm_lockout",
                format!("{msg}; send confirm_lockout: true to make it anyway"),
            ),
            AppError::MfaRequired => ApiError::new(
                UNAUTHENTICATED,
                "a TOTP code (totp_code) or a recovery code (recovery_code) is required",
            )
            .with("mfa_required", true),
            AppError::SsoRequired(reason) => {
                ApiError::new(SSO_REQUIRED, reason.clone()).with("sso_required", true)
            }
            AppError::IpRestricted(reason) => ApiError::new(IP_RESTRICTED, reason.clone())
                .with("policy", "ip_restrictions")
                .with("reason", reason),
            AppError::RateLimited {
                what,
                retry_after_secs,
            } => {
                let code = match what {
                    Limited::Logins => RATE_LIMITED,
                    Limited::LinkRequests => TOO_MANY_LINKS,
                };
                let mut limited = ApiError::new(code, err_text(what, retry_after_secs));
                limited.header = Some(ErrorHeader::RetryAfter(retry_after_secs));
                limited
            }
            AppError::ChooseAccount(accounts) => ApiError::field(
                INVALID_FIELD,
                "account_id",
                "the user is a member of several accounts: name one in account_id",
            )
            .with(
                "accounts",
                accounts.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ),
            AppError::Precondition(msg) => ApiError::new(CONFLICT, msg),
            AppError::InUse { what, field, by } => {
                ApiError::new(CONFLICT, format!("{what} is in use by {}", by.join(", ")))
                    .with(field, by)
            }
            AppError::Forbidden { policy, reason } => {
                let named = if policy.is_empty() {
                    "latchkey"
                } else {
                    &policy
                };
                ApiError::new(FORBIDDEN, format!("forbidden by {named}: {reason}"))
                    .with("policy", named)
                    .with("reason", reason)
            }
            AppError::Store(crate::store::StoreError::Unavailable(_)) => {
                let mut unavailable = ApiError::new(
                    STORAGE_UNAVAILABLE,
                    "the server cannot write to its storage right now; try again later",
                );
                unavailable.header = Some(ErrorHeader::RetryAfter(STORAGE_RETRY_AFTER_SECS));
                unavailable
            }
            // Store, data directory and policy-loading failures are internal: their text
            // can name files and library errors, so it goes to the log, not the client.
            other => {
                tracing::error!(error = %other, "operation failed");
                ApiError::new(INTERNAL, "the server failed to complete the operation")
            }
        }
    }
}

/// How long a client is asked to wait while the storage recovers: the store retries its
/// file at most this often.
const STORAGE_RETRY_AFTER_SECS: u64 = 2;

/// The sentence of a rate-limit answer (the same as `AppError`'s).
fn err_text(what: Limited, retry_after_secs: u64) -> String {
    AppError::RateLimited {
        what,
        retry_after_secs,
    }
    .to_string()
}

/// A 403 the host itself decides (not a policy): it still names `latchkey` as the deciding
/// policy and carries the reason, like every 403.
fn forbidden_by_latchkey(code: Code, reason: String) -> ApiError {
    ApiError::new(code, reason.clone())
        .with("policy", "latchkey")
        .with("reason", reason)
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> ApiError {
        let msg = err.to_string();
        match err {
            DomainError::Invalid { field, .. } => ApiError::field(INVALID_FIELD, field, msg),
            DomainError::NotFound(_) => ApiError::new(NOT_FOUND, msg),
            DomainError::LastAdministrator => ApiError::new(LAST_ADMINISTRATOR, msg),
            DomainError::Conflict { .. } => ApiError::new(CONFLICT, msg),
            DomainError::NotApplicable(_) => ApiError::new(NOT_APPLICABLE, msg),
            DomainError::ExistingUser => ApiError::new(EXISTING_USER, msg),
            DomainError::SharedUser(_) => forbidden_by_latchkey(SHARED_USER, msg),
            DomainError::EmailUnproven(_) => forbidden_by_latchkey(EMAIL_UNPROVEN, msg),
            _ => {
                tracing::error!(error = %msg, "operation failed");
                ApiError::new(INTERNAL, "the server failed to complete the operation")
            }
        }
    }
}
