use crate::domain::id::AnyId;

/// Why the domain refused a request. Every variant is a refusal the caller can act on;
/// none of them names a library type, so the edge can map each to one stable error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// A field failed validation; `field` is the name the API uses for it.
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The object does not exist (or is not visible from this account).
    #[error("{0} not found")]
    NotFound(AnyId),
    /// The change would leave the account without an active administrator.
    #[error("the account must keep at least one active administrator")]
    LastAdministrator,
    /// Another object already holds this unique value (email, account name, SSH key).
    #[error("{what} is already in use")]
    Conflict { what: &'static str },
    /// The operation does not apply to this object (e.g. rotating an SSH key).
    #[error("{0}")]
    NotApplicable(&'static str),
    /// The operating system's CSPRNG failed; no identifier or secret can be made safely.
    #[error("the operating system's random number generator is unavailable")]
    RandomnessUnavailable,
}

impl DomainError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field,
            message: message.into(),
        }
    }
}
