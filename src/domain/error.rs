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
    /// A user with this email exists already: it joins an account only by accepting an
    /// invitation (seed 001), never by being added.
    #[error(
        "a user with this email exists already: invite it (POST /invitations); it joins when it accepts"
    )]
    ExistingUser,
    /// The user belongs to other accounts too, so what every account relies on about it
    /// (password, name, email, second factor, sessions) is the user's own to change.
    #[error(
        "{0} is also a member of another account: only the user may change its password, name, email or second factor (it resets a forgotten password with POST /password_reset/request)"
    )]
    SharedUser(AnyId),
    /// The user has not proven it controls its email, so it joins no other account.
    #[error(
        "the email of {0} is not proven: ask for a link with POST /me/email_verification, open it, then accept again"
    )]
    EmailUnproven(AnyId),
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
