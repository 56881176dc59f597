//! Configurations that are refused when they are built.

use crate::secret::SecretSet;

use super::TemplateError;

/// A verifier configuration that cannot work, or could accept forgeries.
/// Returned when the verifier is built, never discovered on a request.
/// Never contains a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No secret or key was given: such a verifier has nothing to check a
    /// signature against.
    #[error("no secret or key configured")]
    NoSecret,
    /// A secret or key of the set cannot be used (an empty secret is refused:
    /// anyone can compute an HMAC under the empty key).
    #[error("secret #{index} of the set is invalid: {reason}")]
    InvalidSecret {
        /// The position of the secret in the set.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A configured URL cannot be used.
    #[error("invalid URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signed-content template is invalid.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A timestamp header is configured but the signed content does not
    /// include `{timestamp}`: anyone could move a captured request's
    /// timestamp into the window.
    #[error(
        "the verifier reads a timestamp header but its signed content has no {{timestamp}}: \
         the timestamp would not be authenticated"
    )]
    UnsignedTimestamp,
}

/// Refuses an empty set and any empty secret in it.
pub(crate) fn check_secrets(secrets: &SecretSet) -> Result<(), ConfigError> {
    if secrets.is_empty() {
        return Err(ConfigError::NoSecret);
    }
    match secrets.iter().position(|secret| secret.is_empty()) {
        Some(index) => Err(ConfigError::InvalidSecret {
            index,
            reason: "the secret is empty",
        }),
        None => Ok(()),
    }
}
