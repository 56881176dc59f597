//! Ordering keys: which lane an event goes in (see [Lanes](super#lanes)).

use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use http::request::Parts;
use sha2::{Digest, Sha256};

/// The longest lane key kept as it is, in bytes. A longer key (and one that
/// is not UTF-8) is replaced by `sha256:` and the hex SHA-256 of its bytes,
/// so a body cannot make huge keys and equal keys still share a lane.
pub const MAX_LANE_LEN: usize = 256;

/// Computes a user's own lane key from the verified request.
type Custom = dyn Fn(&Parts, &[u8]) -> Option<String> + Send + Sync;

/// Where an event's ordering key comes from: a request header, a JSON
/// pointer into the verified body, or a function of yours. Set it with
/// [`Inbox::order_by`](super::Inbox::order_by).
///
/// The key is read after verification, from the verified bytes. What each
/// value becomes:
///
/// | value | lane |
/// |---|---|
/// | absent, JSON `null`, empty, or a body that is not JSON | none: the event is unordered |
/// | a JSON string | its text |
/// | a JSON number or boolean | its JSON text (`42`, `4.5`, `true`) |
/// | a JSON object or array | its compact JSON text, object keys sorted |
/// | a header value | its bytes as text |
/// | longer than [`MAX_LANE_LEN`] bytes, or not UTF-8 | `sha256:<64 hex digits>` of its bytes |
///
/// ```
/// use tower_webhooks::inbox::OrderBy;
///
/// // Stripe: one lane per object (customer, subscription, ..).
/// let stripe = OrderBy::json_pointer("/data/object/id");
/// // GitHub: one lane per repository.
/// let github = OrderBy::json_pointer("/repository/id");
/// // The receiver's `ORDER_BY` syntax.
/// let header = OrderBy::parse("header:X-Lane").unwrap();
/// # let _ = (stripe, github, header);
/// ```
#[derive(Clone)]
pub struct OrderBy(Source);

#[derive(Clone)]
enum Source {
    Header(HeaderName),
    Pointer(String),
    Custom(Arc<Custom>),
}

impl fmt::Debug for OrderBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Header(name) => f.debug_tuple("OrderBy::header").field(name).finish(),
            Source::Pointer(pointer) => f
                .debug_tuple("OrderBy::json_pointer")
                .field(pointer)
                .finish(),
            Source::Custom(_) => f.write_str("OrderBy::custom(..)"),
        }
    }
}

/// Why [`OrderBy::parse`] refused a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderBySpecError {
    /// Neither a JSON pointer (starting with `/`) nor `header:NAME`.
    #[error("an ordering key is a JSON pointer starting with '/' or `header:NAME`")]
    Unknown,
    /// `header:` followed by something that is not a header name.
    #[error("`header:` must be followed by a valid header name")]
    BadHeader,
}

impl OrderBy {
    /// The value of request header `name` (its first value).
    pub fn header(name: HeaderName) -> Self {
        Self(Source::Header(name))
    }

    /// The value at `pointer` (RFC 6901, such as `/data/object/id`) in the
    /// verified body parsed as JSON. A pointer that does not start with `/`
    /// never finds anything (every event is then unordered); use
    /// [`parse`](Self::parse) to refuse it instead.
    pub fn json_pointer(pointer: impl Into<String>) -> Self {
        Self(Source::Pointer(pointer.into()))
    }

    /// Your own function of the verified request head and body; `None` (or
    /// an empty string) leaves the event unordered. Its keys are bounded like
    /// the others.
    pub fn custom<F>(key: F) -> Self
    where
        F: Fn(&Parts, &[u8]) -> Option<String> + Send + Sync + 'static,
    {
        Self(Source::Custom(Arc::new(key)))
    }

    /// Parses the receiver's `ORDER_BY` syntax: a JSON pointer starting with
    /// `/` (`/data/object/id`), or `header:NAME` (`header:X-Lane`).
    ///
    /// # Errors
    ///
    /// [`OrderBySpecError`] for anything else.
    pub fn parse(spec: &str) -> Result<Self, OrderBySpecError> {
        if spec.starts_with('/') {
            return Ok(Self::json_pointer(spec));
        }
        match spec.strip_prefix("header:") {
            Some(name) => HeaderName::try_from(name.trim())
                .map(Self::header)
                .map_err(|_| OrderBySpecError::BadHeader),
            None => Err(OrderBySpecError::Unknown),
        }
    }

    /// The lane of a verified request, bounded (see the type's docs).
    pub fn lane(&self, parts: &Parts, body: &[u8]) -> Option<String> {
        match &self.0 {
            Source::Header(name) => bounded(parts.headers.get(name)?.as_bytes()),
            Source::Pointer(pointer) => {
                let value: serde_json::Value = serde_json::from_slice(body).ok()?;
                match value.pointer(pointer)? {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(text) => bounded(text.as_bytes()),
                    other => bounded(other.to_string().as_bytes()),
                }
            }
            Source::Custom(key) => bounded(key(parts, body)?.as_bytes()),
        }
    }
}

/// `bytes` as a lane key: `None` if empty, as text if UTF-8 and at most
/// [`MAX_LANE_LEN`] bytes, otherwise `sha256:<hex>`.
fn bounded(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if text.len() <= MAX_LANE_LEN => Some(text.to_owned()),
        _ => Some(format!("sha256:{}", hex::encode(Sha256::digest(bytes)))),
    }
}

/// What a `dead` event does to its lane (see [Lanes](super#lanes)); set on
/// the worker with [`Worker::dead_letters`](super::Worker::dead_letters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadLetters {
    /// The dead event holds its lane until an operator requeues or skips it
    /// (the default: nothing runs out of order).
    #[default]
    Block,
    /// The worker skips the dead event as soon as it kills it: the lane
    /// moves on. (A poison pill, killed inside a claim when its lease
    /// expires with the budget spent, still blocks until skipped.)
    Skip,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &[u8])]) -> Parts {
        let mut request = http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, http::HeaderValue::from_bytes(value).unwrap());
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn json_values_become_lanes_as_documented() {
        let order = OrderBy::json_pointer("/data/object/id");
        let lane = |body: &str| order.lane(&parts(&[]), body.as_bytes());
        assert_eq!(
            lane(r#"{"data":{"object":{"id":"cus_1"}}}"#).as_deref(),
            Some("cus_1")
        );
        assert_eq!(
            lane(r#"{"data":{"object":{"id":42}}}"#).as_deref(),
            Some("42")
        );
        assert_eq!(
            lane(r#"{"data":{"object":{"id":true}}}"#).as_deref(),
            Some("true")
        );
        assert_eq!(
            lane(r#"{"data":{"object":{"id":[1,2]}}}"#).as_deref(),
            Some("[1,2]")
        );
        assert_eq!(
            lane(r#"{"data":{"object":{"id":{"a":1}}}}"#).as_deref(),
            Some(r#"{"a":1}"#)
        );
        for none in [
            r#"{"data":{"object":{"id":null}}}"#,
            r#"{"data":{"object":{"id":""}}}"#,
            r#"{"data":{}}"#,
            "not json",
            "",
        ] {
            assert_eq!(lane(none), None, "{none}");
        }
        let huge = format!(
            r#"{{"data":{{"object":{{"id":"{}"}}}}}}"#,
            "x".repeat(10_000)
        );
        let hashed = lane(&huge).unwrap();
        assert!(
            hashed.starts_with("sha256:") && hashed.len() == 7 + 64,
            "{hashed}"
        );
        assert_eq!(lane(&huge).unwrap(), hashed, "the same key, the same lane");
        let exact = "y".repeat(MAX_LANE_LEN);
        let body = format!(r#"{{"data":{{"object":{{"id":"{exact}"}}}}}}"#);
        assert_eq!(lane(&body).as_deref(), Some(exact.as_str()));
    }

    #[test]
    fn header_values_become_lanes_as_documented() {
        let order = OrderBy::header(HeaderName::from_static("x-lane"));
        assert_eq!(
            order.lane(&parts(&[("x-lane", b"a")]), b"").as_deref(),
            Some("a")
        );
        assert_eq!(order.lane(&parts(&[]), b""), None);
        assert_eq!(order.lane(&parts(&[("x-lane", b"")]), b""), None);
        let latin1 = order.lane(&parts(&[("x-lane", b"caf\xe9")]), b"").unwrap();
        assert!(latin1.starts_with("sha256:"), "{latin1}");
    }

    #[test]
    fn parse_accepts_exactly_the_receiver_syntax() {
        assert!(
            matches!(OrderBy::parse("/repository/id"), Ok(OrderBy(Source::Pointer(p))) if p == "/repository/id")
        );
        assert!(
            matches!(OrderBy::parse("header:X-Lane"), Ok(OrderBy(Source::Header(h))) if h == "x-lane")
        );
        assert_eq!(
            OrderBy::parse("header:").unwrap_err(),
            OrderBySpecError::BadHeader
        );
        assert_eq!(
            OrderBy::parse("header:bad name").unwrap_err(),
            OrderBySpecError::BadHeader
        );
        for bad in ["", "data.object.id", "Header:X", "json:/a"] {
            assert_eq!(
                OrderBy::parse(bad).unwrap_err(),
                OrderBySpecError::Unknown,
                "{bad}"
            );
        }
        let custom = OrderBy::custom(|_, body| Some(String::from_utf8_lossy(body).into_owned()));
        assert_eq!(custom.lane(&parts(&[]), b"k").as_deref(), Some("k"));
        assert_eq!(custom.lane(&parts(&[]), b""), None);
    }
}
