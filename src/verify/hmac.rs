//! The configurable HMAC-SHA256 scheme.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::{
    ConfigError, EventId, HmacKeys, SignatureVerifier, TimestampWindow, VerifiedWebhook,
    VerifyError, event_id_in_json, event_id_value, find_headers, malformed_value, timestamp_value,
};
use crate::clock::Clock;
use crate::secret::SecretSet;

/// How a signature is written in its header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoding {
    /// Hexadecimal; upper and lower case are both accepted.
    #[default]
    Hex,
    /// Standard base64 with padding (RFC 4648 §4).
    Base64,
}

impl Encoding {
    /// Decodes `value` into `out` and returns the number of bytes written, or
    /// `None` if `value` is not a well-formed encoding of exactly `out.len()`
    /// bytes.
    pub fn decode_exact(self, value: &[u8], out: &mut [u8]) -> Option<usize> {
        match self {
            Self::Hex => {
                if value.len() != out.len() * 2 {
                    return None;
                }
                decode_hex(value, out).then_some(out.len())
            }
            Self::Base64 => {
                // Base64 of n bytes is 4 * ceil(n / 3) characters with padding.
                if value.len() != out.len().div_ceil(3) * 4 {
                    return None;
                }
                let mut buffer = [0u8; 96];
                let written = BASE64
                    .decode_slice(value, buffer.get_mut(..out.len() + 3)?)
                    .ok()?;
                if written != out.len() {
                    return None;
                }
                out.copy_from_slice(&buffer[..written]);
                Some(written)
            }
        }
    }
}

/// Each byte's value as a hex digit, or `INVALID` for anything else.
const HEX_DIGITS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};
const INVALID: u8 = 0xF0;

/// Decodes `2 * out.len()` hex digits (either case) into `out`; `false` if
/// any is not a hex digit. One table lookup per digit and no branch per
/// byte: an invalid digit sets a high bit that is checked once at the end.
fn decode_hex(value: &[u8], out: &mut [u8]) -> bool {
    debug_assert_eq!(value.len(), out.len() * 2);
    let mut invalid = 0u8;
    for (pair, byte) in value.chunks_exact(2).zip(out.iter_mut()) {
        let high = HEX_DIGITS[usize::from(pair[0])];
        let low = HEX_DIGITS[usize::from(pair[1])];
        invalid |= high | low;
        *byte = (high << 4) | (low & 0x0F);
    }
    invalid & INVALID == 0
}

/// The bytes a sender signs, as a sequence of literal text and placeholders:
/// `{timestamp}` (the timestamp header's value as received), `{id}` (the event
/// id header's value as received) and `{body}` (the raw body).
///
/// ```
/// use tower_webhooks::verify::SignedContent;
///
/// assert!(SignedContent::parse("v0:{timestamp}:{body}").is_ok()); // Slack
/// assert!(SignedContent::parse("{id}.{timestamp}.{body}").is_ok()); // Standard Webhooks
/// assert!(SignedContent::parse("{timestamp}.{payload}").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SignedContent {
    parts: Vec<Part>,
    source: Cow<'static, str>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(Box<[u8]>),
    Timestamp,
    EventId,
    Body,
}

/// Most parts a template may have; the message is assembled on the stack.
const MAX_PARTS: usize = 16;

impl SignedContent {
    /// `{timestamp}.{body}`: the reference scheme's content.
    pub fn timestamp_dot_body() -> Self {
        Self {
            parts: vec![Part::Timestamp, Part::Literal(Box::new(*b".")), Part::Body],
            source: Cow::Borrowed("{timestamp}.{body}"),
        }
    }

    /// `{body}`: the body alone (GitHub, Shopify).
    pub fn body() -> Self {
        Self {
            parts: vec![Part::Body],
            source: Cow::Borrowed("{body}"),
        }
    }

    /// Parses a template.
    ///
    /// # Errors
    ///
    /// [`TemplateError`] if a placeholder is unknown or unclosed, if `{body}`
    /// does not appear exactly once, or if the template has more than 16 parts.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = template;
        let mut bodies = 0;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest.find('}').ok_or(TemplateError::Unclosed)?;
                    parts.push(match &rest[..=end] {
                        "{timestamp}" => Part::Timestamp,
                        "{id}" => Part::EventId,
                        "{body}" => {
                            bodies += 1;
                            Part::Body
                        }
                        other => return Err(TemplateError::UnknownPlaceholder(other.to_owned())),
                    });
                    rest = &rest[end + 1..];
                }
                Some(start) => {
                    parts.push(Part::Literal(rest.as_bytes()[..start].into()));
                    rest = &rest[start..];
                }
                None => {
                    parts.push(Part::Literal(rest.as_bytes().into()));
                    rest = "";
                }
            }
        }
        if bodies != 1 {
            return Err(TemplateError::BodyCount);
        }
        if parts.len() > MAX_PARTS {
            return Err(TemplateError::TooManyParts);
        }
        Ok(Self {
            parts,
            source: Cow::Owned(template.to_owned()),
        })
    }

    fn uses(&self, part: &Part) -> bool {
        self.parts.contains(part)
    }
}

impl fmt::Debug for SignedContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SignedContent").field(&self.source).finish()
    }
}

/// A signed-content template or verifier configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// A `{` without a matching `}`.
    #[error("unclosed placeholder in signed-content template")]
    Unclosed,
    /// A placeholder other than `{timestamp}`, `{id}` and `{body}`.
    #[error("unknown placeholder `{0}` in signed-content template")]
    UnknownPlaceholder(String),
    /// `{body}` is missing or repeated.
    #[error("signed-content template must contain `{{body}}` exactly once")]
    BodyCount,
    /// More than 16 parts.
    #[error("signed-content template has more than 16 parts")]
    TooManyParts,
    /// The template uses `{timestamp}` but no timestamp header is configured.
    #[error("signed-content template uses {{timestamp}} but the verifier has no timestamp header")]
    NoTimestampHeader,
    /// The template uses `{id}` but no event id header is configured.
    #[error("signed-content template uses {{id}} but the verifier has no event id header")]
    NoEventIdHeader,
}

/// Where a verifier finds the event id.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventIdSource {
    /// The scheme has no event id.
    None,
    /// A request header.
    Header(HeaderName),
    /// A top-level field of the verified JSON body.
    BodyField(Cow<'static, str>),
}

/// An HMAC-SHA256 verifier, configurable enough to express most schemes in
/// use.
///
/// [`HmacVerifier::generic`] is the crate's reference contract:
///
/// | header | value |
/// |---|---|
/// | `X-Webhook-Timestamp` | Unix seconds, within ±300 s of now |
/// | `X-Webhook-Signature` | hex HMAC-SHA256 of `{timestamp}.{raw body}` |
/// | `X-Event-Id` | the event id (not signed; see the idempotency layer's replay guard) |
///
/// ```
/// use tower_webhooks::verify::{HmacVerifier, SignatureVerifier};
/// use tower_webhooks::clock::FixedClock;
///
/// let verifier = HmacVerifier::builder("dev_secret_change_me")
///     .clock(FixedClock::at_unix(1_700_000_000))
///     .build()
///     .unwrap();
/// // Signature from: printf '1700000000.{"type":"ping"}' |
/// //   openssl dgst -sha256 -hmac dev_secret_change_me
/// let request = http::Request::post("/webhooks/provider")
///     .header("x-webhook-timestamp", "1700000000")
///     .header("x-webhook-signature", "72d66d7544a4f0a60bcd1ca23c6217d3451fa7fe42a01e5af0ce864282feeb6f")
///     .header("x-event-id", "evt_1")
///     .body(())
///     .unwrap();
/// let (parts, ()) = request.into_parts();
/// let verified = verifier.verify(&parts, br#"{"type":"ping"}"#).unwrap();
/// assert_eq!(verified.event_id(), Some("evt_1"));
/// assert!(!verified.event_id_signed());
///
/// // One byte changed: 401.
/// let error = verifier.verify(&parts, br#"{"type":"pong"}"#).unwrap_err();
/// assert_eq!(error.status(), 401);
/// ```
#[derive(Clone, Debug)]
pub struct HmacVerifier {
    provider: &'static str,
    keys: HmacKeys<Hmac<Sha256>>,
    signature_header: HeaderName,
    prefix: Option<Box<str>>,
    encoding: Encoding,
    timestamp: Option<(HeaderName, TimestampWindow)>,
    event_id: EventIdSource,
    content: SignedContent,
    /// Whether `content` has `{id}`, worked out once.
    signs_event_id: bool,
}

impl HmacVerifier {
    /// The reference header carrying the Unix timestamp.
    pub const TIMESTAMP_HEADER: HeaderName = HeaderName::from_static("x-webhook-timestamp");
    /// The reference header carrying the hex signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-webhook-signature");
    /// The reference header carrying the event id.
    pub const EVENT_ID_HEADER: HeaderName = HeaderName::from_static("x-event-id");

    /// The crate's reference scheme (see the type's docs) with the given
    /// secret or secrets, and the system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn generic(secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Self::builder(secrets).build()
    }

    /// Starts from the reference scheme; every setting can be changed.
    pub fn builder(secrets: impl Into<SecretSet>) -> HmacVerifierBuilder {
        HmacVerifierBuilder {
            provider: "generic",
            secrets: secrets.into(),
            signature_header: Self::SIGNATURE_HEADER,
            prefix: None,
            encoding: Encoding::Hex,
            timestamp_header: Some(Self::TIMESTAMP_HEADER),
            window: TimestampWindow::default(),
            event_id: EventIdSource::Header(Self::EVENT_ID_HEADER),
            content: Ok(SignedContent::timestamp_dot_body()),
        }
    }

    /// The header carrying the signature.
    pub fn signature_header(&self) -> &HeaderName {
        &self.signature_header
    }
}

impl SignatureVerifier for HmacVerifier {
    fn provider(&self) -> &'static str {
        self.provider
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let timestamp_header = self.timestamp.as_ref().map(|(header, _)| header);
        let id_header = match &self.event_id {
            EventIdSource::Header(header) => Some(header),
            _ => None,
        };
        // One pass over the head for all three headers; each is then checked
        // in the order (and with the errors) of one `single_header` each.
        let [signature, timestamp_value_found, id_found] = find_headers(
            &parts.headers,
            [Some(&self.signature_header), timestamp_header, id_header],
        );
        let value = signature.value(&self.signature_header)?;
        let malformed = |reason| malformed_value(&self.signature_header, value, reason);
        let signature = match &self.prefix {
            Some(prefix) => value
                .as_bytes()
                .strip_prefix(prefix.as_bytes())
                .ok_or_else(|| malformed("missing the scheme prefix"))?,
            None => value.as_bytes(),
        };
        let mut tag = [0u8; 32];
        self.encoding
            .decode_exact(signature, &mut tag)
            .ok_or_else(|| {
                malformed(match self.encoding {
                    Encoding::Hex => "not a 32-byte hex signature",
                    Encoding::Base64 => "not a 32-byte base64 signature",
                })
            })?;

        let mut timestamp = None;
        if let Some((header, window)) = &self.timestamp {
            let raw = timestamp_value_found.value(header)?;
            let value = timestamp_value(header, raw)?;
            window.check(header, value)?;
            timestamp = Some((raw.as_bytes(), value));
        }

        let mut header_id = None;
        if let Some(header) = id_header {
            header_id = Some(event_id_value(header, id_found.value(header)?)?);
        }

        let mut message: [&[u8]; MAX_PARTS] = [&[]; MAX_PARTS];
        for (slot, part) in message.iter_mut().zip(&self.content.parts) {
            *slot = match part {
                Part::Literal(bytes) => bytes,
                // The builder guarantees the header is configured.
                Part::Timestamp => timestamp.map_or(&[][..], |(raw, _)| raw),
                Part::EventId => header_id.unwrap_or_default(),
                Part::Body => body,
            };
        }
        let index = self
            .keys
            .find(&message[..self.content.parts.len()], [tag.as_slice()])
            .ok_or_else(|| VerifyError::SignatureMismatch {
                header: self.signature_header.clone(),
            })?;

        let mut verified = VerifiedWebhook::new(self.provider)
            .with_secret_index(index)
            .with_signature(&tag);
        if let Some((_, value)) = timestamp {
            verified = verified.with_timestamp(value);
        }
        match &self.event_id {
            EventIdSource::Header(_) => {
                let id = EventId::from_checked(header_id.unwrap_or_default());
                verified.set_event_id(id, self.signs_event_id);
            }
            EventIdSource::BodyField(field) => {
                verified.set_event_id(event_id_in_json(body, field)?, true);
            }
            EventIdSource::None => {}
        }
        Ok(verified)
    }
}

pub(crate) fn header_location(header: &HeaderName) -> Cow<'static, str> {
    Cow::Owned(format!("header `{header}`"))
}

/// Configures an [`HmacVerifier`]; starts from the reference scheme.
///
/// Slack's scheme, for example, is a configuration:
///
/// ```
/// use http::HeaderName;
/// use tower_webhooks::verify::HmacVerifier;
///
/// let slack = HmacVerifier::builder("8f742231b10e8888abcd99yyyzzz85a5")
///     .provider("slack")
///     .signature_header(HeaderName::from_static("x-slack-signature"))
///     .signature_prefix("v0=")
///     .timestamp_header(HeaderName::from_static("x-slack-request-timestamp"))
///     .event_id_from_body("event_id")
///     .signed_content("v0:{timestamp}:{body}")
///     .build()
///     .unwrap();
/// # let _ = slack;
/// ```
#[derive(Debug)]
#[must_use]
pub struct HmacVerifierBuilder {
    provider: &'static str,
    secrets: SecretSet,
    signature_header: HeaderName,
    prefix: Option<Box<str>>,
    encoding: Encoding,
    timestamp_header: Option<HeaderName>,
    window: TimestampWindow,
    event_id: EventIdSource,
    content: Result<SignedContent, TemplateError>,
}

impl HmacVerifierBuilder {
    /// Names the provider (logs, default idempotency namespace). Default `"generic"`.
    pub fn provider(mut self, name: &'static str) -> Self {
        self.provider = name;
        self
    }

    /// The header carrying the signature. Default `X-Webhook-Signature`.
    pub fn signature_header(mut self, header: HeaderName) -> Self {
        self.signature_header = header;
        self
    }

    /// A prefix the signature value starts with, such as `sha256=` or `v0=`.
    pub fn signature_prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// How the signature is encoded. Default [`Encoding::Hex`].
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The header carrying the Unix timestamp. Default `X-Webhook-Timestamp`.
    pub fn timestamp_header(mut self, header: HeaderName) -> Self {
        self.timestamp_header = Some(header);
        self
    }

    /// The scheme has no timestamp: no replay window is checked.
    pub fn without_timestamp(mut self) -> Self {
        self.timestamp_header = None;
        self
    }

    /// How far the timestamp may be from now, either way. Default 300 s.
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.window = self.window.with_tolerance(tolerance);
        self
    }

    /// The clock the timestamp is checked against. Default the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.window = self.window.with_clock(clock);
        self
    }

    /// A clock shared with other parts of the application.
    pub fn shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.window = self.window.with_shared_clock(clock);
        self
    }

    /// The header carrying the event id. Default `X-Event-Id`.
    pub fn event_id_header(mut self, header: HeaderName) -> Self {
        self.event_id = EventIdSource::Header(header);
        self
    }

    /// Reads the event id from a top-level field of the JSON body, after
    /// verification.
    pub fn event_id_from_body(mut self, field: impl Into<Cow<'static, str>>) -> Self {
        self.event_id = EventIdSource::BodyField(field.into());
        self
    }

    /// The scheme has no event id.
    pub fn without_event_id(mut self) -> Self {
        self.event_id = EventIdSource::None;
        self
    }

    /// The signed content, as a template (see [`SignedContent`]). Default
    /// `{timestamp}.{body}`. An invalid template makes [`build`](Self::build) fail.
    pub fn signed_content(mut self, template: &str) -> Self {
        self.content = SignedContent::parse(template);
        self
    }

    /// Builds the verifier.
    ///
    /// # Errors
    ///
    /// - [`ConfigError::NoSecret`] or [`ConfigError::InvalidSecret`] for no
    ///   secret or an empty one;
    /// - [`ConfigError::Template`] if the signed-content template is invalid
    ///   or uses a placeholder whose header is not configured;
    /// - [`ConfigError::UnsignedTimestamp`] if a timestamp header is
    ///   configured but the template does not sign `{timestamp}`.
    pub fn build(self) -> Result<HmacVerifier, ConfigError> {
        let keys = HmacKeys::new(&self.secrets)?;
        let content = self.content?;
        if content.uses(&Part::Timestamp) && self.timestamp_header.is_none() {
            return Err(TemplateError::NoTimestampHeader.into());
        }
        if self.timestamp_header.is_some() && !content.uses(&Part::Timestamp) {
            return Err(ConfigError::UnsignedTimestamp);
        }
        if content.uses(&Part::EventId) && !matches!(self.event_id, EventIdSource::Header(_)) {
            return Err(TemplateError::NoEventIdHeader.into());
        }
        Ok(HmacVerifier {
            provider: self.provider,
            signs_event_id: content.uses(&Part::EventId),
            keys,
            signature_header: self.signature_header,
            prefix: self.prefix,
            encoding: self.encoding,
            timestamp: self.timestamp_header.map(|header| (header, self.window)),
            event_id: self.event_id,
            content,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decoding_matches_the_hex_crate_for_every_byte_pair() {
        // Every pair of bytes, at the start, in the middle and at the end.
        for (len, position) in [(64, 0), (64, 6), (64, 62), (10, 8)] {
            for high in 0..=255u8 {
                for low in 0..=255u8 {
                    let mut input = b"0f".repeat(len / 2);
                    input[position] = high;
                    input[position + 1] = low;
                    let mut ours = vec![0u8; len / 2];
                    let mut theirs = vec![0u8; len / 2];
                    let ok = Encoding::Hex.decode_exact(&input, &mut ours).is_some();
                    assert_eq!(
                        ok,
                        hex::decode_to_slice(&input, &mut theirs).is_ok(),
                        "{input:?}"
                    );
                    if ok {
                        assert_eq!(ours, theirs);
                    }
                }
            }
        }
        let mut out = [0u8; 32];
        assert!(Encoding::Hex.decode_exact(&[b'a'; 63], &mut out).is_none());
        assert!(Encoding::Hex.decode_exact(&[b'a'; 66], &mut out).is_none());
        assert_eq!(Encoding::Hex.decode_exact(&[b'A'; 64], &mut out), Some(32));
        assert_eq!(out, [0xAA; 32]);
    }
}
