//! The answers the middleware gives instead of calling the handler, and how
//! they are rendered.
//!
//! Every rejection is an HTTP response, never an error, so the layers stay
//! infallible (axum's `Router::layer` and `route_layer` take them as they
//! are). By default a rejection is rendered as an RFC 9457 problem document
//! (`application/problem+json`) by [`problem_response`]:
//!
//! ```json
//! {"type":"urn:tower-webhooks:problem:signature-mismatch","title":"Unauthorized",
//!  "status":401,"detail":"no signature in `x-webhook-signature` matches"}
//! ```
//!
//! | situation | status | `type` suffix |
//! |---|---|---|
//! | body over the limit | 413 | `payload-too-large` |
//! | body could not be read (client error mid-stream) | 400 | `body-read-failed` |
//! | body not received within the read timeout | 408 | `body-timeout` |
//! | header missing, repeated or malformed | 400 | `missing-header`, `duplicate-header`, `malformed-header` |
//! | timestamp not a number | 400 | `invalid-timestamp` |
//! | timestamp outside the window | 400 | `timestamp-too-old`, `timestamp-in-future` |
//! | event id missing or invalid | 400 | `missing-event-id`, `invalid-event-id` |
//! | event id field unreadable in the verified body | 400 | `invalid-body` |
//! | no signature matches | 401 | `signature-mismatch` |
//! | a signature reused under another event id | 401 | `replayed-signature` |
//! | duplicate of a completed event | 200 | (`{"ok":true,"duplicate":true}`, `Idempotent-Replayed: true`) |
//! | duplicate while the first delivery is being handled | 409 + `Retry-After` | `in-flight` |
//! | idempotency or inbox store unreachable | 503 + `Retry-After` | `store-unavailable` |
//! | the request's key could not be fetched (key source down or slow) | 503 + `Retry-After` | `key-unavailable` |
//! | inbox full | 503 + `Retry-After` | `overloaded` |
//! | inbox: same id, different body (when told to refuse it) | 422 | `changed-body` |
//! | inbox on a non-durable store: the handler failed | 500 | `handler-failed` |
//! | layers composed wrongly | 500 | `misconfigured` |
//!
//! Any of them can be rendered differently with a function of your own, given
//! to the layer's `on_rejection`; [`problem_response`] stays available to
//! render the rest.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::verify::VerifyError;

/// The header set on a duplicate's answer (as Stripe's API does).
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Why the middleware answered a request itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The body is larger than the limit (413).
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body failed to arrive: the client or the connection failed
    /// mid-stream (400).
    BodyReadFailed,
    /// The body did not arrive within the read timeout (408).
    BodyTimeout {
        /// The timeout.
        after: Duration,
    },
    /// The request is not authentic or not well-formed (400 or 401; see
    /// [`VerifyError::status`]).
    Verify(VerifyError),
    /// A signature that was already accepted for another event id (401). The
    /// reference scheme does not sign the event id, so this is how a captured
    /// request resent under a fresh id is caught.
    ReplayedSignature,
    /// The event was already handled (200): the sender can stop retrying.
    Duplicate,
    /// The event is being handled by an earlier delivery right now (409).
    InFlight {
        /// When to try again.
        retry_after: Duration,
    },
    /// The store that makes handling safe could not be reached (503). Nothing
    /// was recorded as done, so the sender's retry is safe.
    StoreUnavailable {
        /// When to try again.
        retry_after: Duration,
    },
    /// The key the request needs could not be fetched (its source is down or
    /// slow) (503). The sender retries; nothing was recorded.
    KeyUnavailable {
        /// When to try again.
        retry_after: Duration,
    },
    /// The inbox is full (503). Nothing was recorded.
    Overloaded {
        /// When to try again.
        retry_after: Duration,
    },
    /// An event id already recorded arrived with a different body (422), when
    /// the inbox is told to refuse that.
    ChangedBody,
    /// The handler failed (500). Only inboxes that acknowledge after handling
    /// (non-durable ones) answer this; the sender's retry is then safe.
    HandlerFailed,
    /// The layers are composed wrongly, for instance idempotency without
    /// verification in front of it (500).
    Misconfigured {
        /// What is wrong.
        reason: &'static str,
    },
}

impl Rejection {
    /// The status of the default answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyReadFailed => StatusCode::BAD_REQUEST,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Verify(error) => error.status(),
            Self::ReplayedSignature => StatusCode::UNAUTHORIZED,
            Self::Duplicate => StatusCode::OK,
            Self::InFlight { .. } => StatusCode::CONFLICT,
            Self::StoreUnavailable { .. }
            | Self::KeyUnavailable { .. }
            | Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::ChangedBody => StatusCode::UNPROCESSABLE_ENTITY,
            Self::HandlerFailed | Self::Misconfigured { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, machine-readable name (the last part of the problem `type`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PayloadTooLarge { .. } => "payload-too-large",
            Self::BodyReadFailed => "body-read-failed",
            Self::BodyTimeout { .. } => "body-timeout",
            Self::Verify(error) => error.kind(),
            Self::ReplayedSignature => "replayed-signature",
            Self::Duplicate => "duplicate",
            Self::InFlight { .. } => "in-flight",
            Self::StoreUnavailable { .. } => "store-unavailable",
            Self::KeyUnavailable { .. } => "key-unavailable",
            Self::Overloaded { .. } => "overloaded",
            Self::ChangedBody => "changed-body",
            Self::HandlerFailed => "handler-failed",
            Self::Misconfigured { .. } => "misconfigured",
        }
    }

    /// The problem document's `type`: `urn:tower-webhooks:problem:` and the
    /// [`kind`](Self::kind).
    pub fn problem_type(&self) -> String {
        format!("urn:tower-webhooks:problem:{}", self.kind())
    }

    /// When the sender should try again, for the answers that say so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::InFlight { retry_after }
            | Self::StoreUnavailable { retry_after }
            | Self::KeyUnavailable { retry_after }
            | Self::Overloaded { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLarge { limit } => write!(f, "the body is larger than {limit} bytes"),
            Self::BodyReadFailed => f.write_str("the body could not be read"),
            Self::BodyTimeout { after } => {
                write!(f, "the body did not arrive within {} ms", after.as_millis())
            }
            Self::Verify(error) => error.fmt(f),
            Self::ReplayedSignature => {
                f.write_str("this signature was already used for another event id")
            }
            Self::Duplicate => f.write_str("the event was already handled"),
            Self::InFlight { .. } => {
                f.write_str("the event is being handled by an earlier delivery")
            }
            Self::StoreUnavailable { .. } => f.write_str("the event store is unavailable"),
            Self::KeyUnavailable { .. } => {
                f.write_str("the key to verify this request could not be fetched")
            }
            Self::Overloaded { .. } => f.write_str("too many events are waiting to be processed"),
            Self::ChangedBody => {
                f.write_str("this event id was already recorded with a different body")
            }
            Self::HandlerFailed => f.write_str("the handler failed; retry later"),
            Self::Misconfigured { reason } => {
                write!(f, "webhook middleware misconfigured: {reason}")
            }
        }
    }
}

impl From<VerifyError> for Rejection {
    fn from(error: VerifyError) -> Self {
        Self::Verify(error)
    }
}

/// Renders a rejection the default way: an RFC 9457 problem document, or for
/// [`Rejection::Duplicate`] a 200 with `{"ok":true,"duplicate":true}` and
/// `Idempotent-Replayed: true`. Sets `Retry-After` (whole seconds, rounded
/// up) where the rejection has one.
pub fn problem_response(rejection: &Rejection) -> Response<Bytes> {
    let status = rejection.status();
    if let Rejection::Duplicate = rejection {
        return json_response(
            status,
            Bytes::from_static(br#"{"ok":true,"duplicate":true}"#),
        )
        .with_header(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    let body = serde_json::json!({
        "type": rejection.problem_type(),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": rejection.to_string(),
    });
    let mut response = json_response(status, Bytes::from(body.to_string()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    match rejection.retry_after() {
        Some(after) => {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response.with_header(RETRY_AFTER, HeaderValue::from(seconds.max(1)))
        }
        None => response,
    }
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

trait WithHeader {
    fn with_header(self, name: HeaderName, value: HeaderValue) -> Self;
}

impl WithHeader for Response<Bytes> {
    fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers_mut().insert(name, value);
        self
    }
}

/// Turns a [`Rejection`] into the response sent; the default is
/// [`problem_response`].
#[derive(Clone)]
pub struct Responder(Arc<RenderFn>);

/// A function that renders a rejection.
type RenderFn = dyn Fn(&Rejection) -> Response<Bytes> + Send + Sync;

impl Responder {
    /// Wraps a rendering function.
    pub fn new<F>(render: F) -> Self
    where
        F: Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
    {
        Self(Arc::new(render))
    }

    /// Renders one rejection.
    pub fn respond(&self, rejection: &Rejection) -> Response<Bytes> {
        (self.0)(rejection)
    }
}

impl Default for Responder {
    fn default() -> Self {
        Self::new(problem_response)
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Responder(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_documents_are_well_formed() {
        let response = problem_response(&Rejection::InFlight {
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(response.status(), 409);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["type"], "urn:tower-webhooks:problem:in-flight");
        assert_eq!(body["status"], 409);

        let duplicate = problem_response(&Rejection::Duplicate);
        assert_eq!(duplicate.status(), 200);
        assert_eq!(duplicate.headers()[IDEMPOTENT_REPLAYED], "true");
        assert_eq!(&duplicate.body()[..], br#"{"ok":true,"duplicate":true}"#);
    }
}
