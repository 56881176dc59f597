use std::borrow::Cow;

use http::{HeaderName, StatusCode};

/// Why a request was not verified.
///
/// Every variant names what was wrong and where, and none carries a secret, a
/// computed signature or the body, so an error can be logged or returned to
/// the sender as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing required header `{header}`")]
    MissingHeader {
        /// The header.
        header: HeaderName,
    },
    /// A header that must appear once appears several times.
    #[error("header `{header}` must appear exactly once")]
    DuplicateHeader {
        /// The header.
        header: HeaderName,
    },
    /// A header is present but cannot be parsed.
    #[error("header `{header}` is malformed: {reason}")]
    MalformedHeader {
        /// The header.
        header: HeaderName,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The timestamp is not a non-negative decimal integer that fits in 64 bits.
    #[error("header `{header}` does not hold a valid Unix timestamp")]
    InvalidTimestamp {
        /// The header carrying the timestamp.
        header: HeaderName,
    },
    /// The timestamp is older than the tolerance allows.
    #[error("timestamp in `{header}` is {age_secs} s old, beyond the {tolerance_secs} s tolerance")]
    TimestampTooOld {
        /// The header carrying the timestamp.
        header: HeaderName,
        /// How old the timestamp is, in seconds.
        age_secs: u64,
        /// The configured tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// The timestamp is further in the future than the tolerance allows.
    #[error(
        "timestamp in `{header}` is {ahead_secs} s in the future, beyond the {tolerance_secs} s tolerance"
    )]
    TimestampInFuture {
        /// The header carrying the timestamp.
        header: HeaderName,
        /// How far ahead the timestamp is, in seconds.
        ahead_secs: u64,
        /// The configured tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// No signature in the header matches any configured secret.
    #[error("no signature in `{header}` matches")]
    SignatureMismatch {
        /// The header carrying the signature(s).
        header: HeaderName,
    },
    /// The scheme requires an event id and the request has none.
    #[error("the event id is missing from {location}")]
    MissingEventId {
        /// Where the id was looked for, such as "header `x-event-id`".
        location: Cow<'static, str>,
    },
    /// The event id is longer than 255 bytes or contains anything but
    /// printable, non-space ASCII.
    #[error("the event id in {location} is not 1 to 255 printable ASCII characters")]
    InvalidEventId {
        /// Where the id was found.
        location: Cow<'static, str>,
    },
    /// The verified body is not the JSON the scheme promises (needed to read
    /// the event id from it).
    #[error("the body is not a JSON object: {reason}")]
    InvalidBody {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A custom verifier refused the request as unauthenticated (401).
    #[error("{0}")]
    Unauthorized(Cow<'static, str>),
    /// A custom verifier refused the request as malformed (400).
    #[error("{0}")]
    BadRequest(Cow<'static, str>),
}

impl VerifyError {
    /// Shorthand for [`VerifyError::MalformedHeader`].
    pub fn malformed(header: &HeaderName, reason: &'static str) -> Self {
        Self::MalformedHeader {
            header: header.clone(),
            reason,
        }
    }

    /// The HTTP status the layer answers with: 401 for a signature that does
    /// not match, 400 for everything else.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::SignatureMismatch { .. } | Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A stable, machine-readable name of the problem, used in the problem
    /// document's `type` (see [`Rejection::problem_type`](crate::Rejection::problem_type)).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MissingHeader { .. } => "missing-header",
            Self::DuplicateHeader { .. } => "duplicate-header",
            Self::MalformedHeader { .. } => "malformed-header",
            Self::InvalidTimestamp { .. } => "invalid-timestamp",
            Self::TimestampTooOld { .. } => "timestamp-too-old",
            Self::TimestampInFuture { .. } => "timestamp-in-future",
            Self::SignatureMismatch { .. } => "signature-mismatch",
            Self::MissingEventId { .. } => "missing-event-id",
            Self::InvalidEventId { .. } => "invalid-event-id",
            Self::InvalidBody { .. } => "invalid-body",
            Self::Unauthorized(_) => "unauthorized",
            Self::BadRequest(_) => "bad-request",
        }
    }
}
