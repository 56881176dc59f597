//! Signature verification: the [`SignatureVerifier`] trait and the pieces every
//! scheme is built from.
//!
//! A verifier looks at the request head and the complete body bytes, exactly as
//! they arrived, and either vouches for the request with a [`VerifiedWebhook`]
//! or refuses it with a [`VerifyError`]. Verification is plain CPU work, so the
//! trait is synchronous; the [layer](crate::layer) does the buffering.
//!
//! [`HmacVerifier`] implements the crate's reference scheme and, through its
//! builder, most HMAC-SHA256 schemes in use (Slack's and GitHub's among them).
//! The [providers](crate::providers) module has presets for schemes that need
//! more than configuration.
//!
//! # Implementing a verifier
//!
//! A scheme that fits no preset is a few lines on top of the trait. The
//! helpers in this module ([`single_header`], [`TimestampWindow`],
//! [`HmacKeys`], [`event_id_from_json`], [`check_event_id`]) do the parts that are easy
//! to get wrong.
//!
//! ```
//! use http::request::Parts;
//! use http::HeaderName;
//! use tower_webhooks::verify::{
//!     single_header, HmacKeys, SignatureVerifier, VerifiedWebhook, VerifyError,
//! };
//!
//! /// "Acme" signs the body alone and sends `X-Acme-Signature: <hex>`.
//! #[derive(Debug)]
//! struct Acme {
//!     keys: HmacKeys<hmac::Hmac<sha2::Sha256>>,
//! }
//!
//! const SIGNATURE: HeaderName = HeaderName::from_static("x-acme-signature");
//!
//! impl SignatureVerifier for Acme {
//!     fn provider(&self) -> &'static str {
//!         "acme"
//!     }
//!
//!     fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
//!         let value = single_header(&parts.headers, &SIGNATURE)?;
//!         let mut tag = [0u8; 32];
//!         hex::decode_to_slice(value, &mut tag)
//!             .map_err(|_| VerifyError::malformed(&SIGNATURE, "not a 64-digit hex string"))?;
//!         let index = self
//!             .keys
//!             .find(&[body], [tag.as_slice()])
//!             .ok_or(VerifyError::SignatureMismatch { header: SIGNATURE })?;
//!         Ok(VerifiedWebhook::new("acme").with_secret_index(index).with_signature(&tag))
//!     }
//! }
//!
//! let acme = Acme { keys: HmacKeys::new(&"secret".into()).unwrap() };
//! let (parts, ()) = http::Request::post("/").body(()).unwrap().into_parts();
//! assert!(matches!(acme.verify(&parts, b"{}"), Err(VerifyError::MissingHeader { .. })));
//! ```

mod config;
mod error;
mod helpers;
mod hmac;
mod json;

use std::fmt;

use http::request::Parts;

use crate::admission::Namespace;

pub use self::config::ConfigError;
pub(crate) use self::config::check_secrets;
pub use self::error::VerifyError;
pub use self::helpers::{
    HmacKeys, TimestampWindow, check_event_id, event_id_from_json, parse_unix_timestamp,
    single_header,
};
pub(crate) use self::helpers::{
    Tags, event_id_in_json, event_id_value, find_headers, is_valid_event_id, malformed_value,
    timestamp_value,
};
pub(crate) use self::hmac::header_location;
pub use self::hmac::{
    Encoding, EventIdSource, HmacVerifier, HmacVerifierBuilder, SignedContent, TemplateError,
};

/// Checks that a request was signed by the sender it claims to come from.
///
/// Implementations must compare signatures in constant time, try every
/// signature the request carries against every configured key, and never put a
/// secret, a computed signature or the body into a [`VerifyError`].
///
/// The layer calls [`verify`](SignatureVerifier::verify) with the request head
/// and the body exactly as received (never required to be UTF-8). It runs on
/// the async runtime's thread, so it must not block on I/O.
pub trait SignatureVerifier: fmt::Debug + Send + Sync + 'static {
    /// A short, stable name of the scheme or sender, such as `"stripe"`.
    ///
    /// It names the provider in logs and is the default idempotency namespace,
    /// so two providers' event ids never collide.
    fn provider(&self) -> &'static str;

    /// Verifies one request.
    ///
    /// # Errors
    ///
    /// Returns a [`VerifyError`] describing the first problem found: a missing
    /// or malformed header, a timestamp outside the window, or no matching
    /// signature.
    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError>;
}

impl<V: SignatureVerifier + ?Sized> SignatureVerifier for Box<V> {
    fn provider(&self) -> &'static str {
        (**self).provider()
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        (**self).verify(parts, body)
    }
}

impl<V: SignatureVerifier + ?Sized> SignatureVerifier for std::sync::Arc<V> {
    fn provider(&self) -> &'static str {
        (**self).provider()
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        (**self).verify(parts, body)
    }
}

/// What a verifier vouches for. The layer inserts it into the request's
/// extensions, so handlers can extract it (with axum:
/// `Extension<VerifiedWebhook>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedWebhook {
    provider: &'static str,
    namespace: Option<Namespace>,
    tenant: Option<Box<str>>,
    event_id: Option<EventId>,
    id_kind: IdKind,
    timestamp: Option<u64>,
    secret_index: usize,
    signature: SignatureTag,
}

/// Whether the signature covers the event id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdKind {
    Signed,
    Unsigned,
    Derived,
}

impl VerifiedWebhook {
    /// Starts the record of a verified request from `provider`.
    pub fn new(provider: &'static str) -> Self {
        Self {
            provider,
            namespace: None,
            tenant: None,
            event_id: None,
            id_kind: IdKind::Unsigned,
            timestamp: None,
            secret_index: 0,
            signature: SignatureTag::default(),
        }
    }

    /// Records an event id that the signature covers (a signed header, or a
    /// field of the verified body).
    #[must_use]
    pub fn with_signed_event_id(mut self, id: impl Into<String>) -> Self {
        self.set_event_id(EventId::from(id.into()), true);
        self
    }

    /// Records an event id that the signature does not cover, such as the
    /// reference scheme's `X-Event-Id`. Admission then records the signature
    /// (see [`with_signature`](Self::with_signature)) with the event, so the
    /// same request cannot be replayed under another id; see
    /// [`admission`](crate::admission).
    #[must_use]
    pub fn with_unsigned_event_id(mut self, id: impl Into<String>) -> Self {
        self.set_event_id(EventId::from(id.into()), false);
        self
    }

    pub(crate) fn set_event_id(&mut self, id: EventId, signed: bool) {
        self.event_id = Some(id);
        self.id_kind = if signed {
            IdKind::Signed
        } else {
            IdKind::Unsigned
        };
    }

    pub(crate) fn set_derived_event_id(&mut self, id: EventId) {
        self.event_id = Some(id);
        self.id_kind = IdKind::Derived;
    }

    pub(crate) fn set_namespace(&mut self, namespace: Namespace) {
        self.namespace = Some(namespace);
    }

    pub(crate) fn set_tenant(&mut self, tenant: String) {
        self.tenant = Some(tenant.into_boxed_str());
    }

    /// Records the signed timestamp (Unix seconds).
    #[must_use]
    pub fn with_timestamp(mut self, unix_seconds: u64) -> Self {
        self.timestamp = Some(unix_seconds);
        self
    }

    /// Records which secret (or public key) of the configured set matched.
    #[must_use]
    pub fn with_secret_index(mut self, index: usize) -> Self {
        self.secret_index = index;
        self
    }

    /// Records the signature that matched, for replay detection. Only the
    /// first 64 bytes are kept.
    #[must_use]
    pub fn with_signature(mut self, tag: &[u8]) -> Self {
        self.signature = SignatureTag::new(tag);
        self
    }

    /// The provider or scheme that verified the request.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The event id, if the scheme carries one.
    ///
    /// Behind a [`WebhookLayer`](crate::WebhookLayer) there is always one: for
    /// a scheme or request that carries none (a Slack slash command, say),
    /// the layer derives `sha256:<32 hex digits>` from the verified body, so
    /// idempotency and the inbox still have a key, and a retry of the same
    /// bytes gets the same id.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    /// Whether the signature covers the event id. A derived id (a digest of
    /// the body) does not count as signed: reordering a form body, say, keeps
    /// some schemes' signatures valid and changes the digest.
    pub fn event_id_signed(&self) -> bool {
        self.event_id.is_some() && self.id_kind == IdKind::Signed
    }

    /// Whether the layer derived the event id from the body, the request
    /// carrying none.
    pub fn event_id_derived(&self) -> bool {
        self.event_id.is_some() && self.id_kind == IdKind::Derived
    }

    /// The tenant whose key verified the request, behind a
    /// [`Tenants`](crate::keys::Tenants) key source.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The namespace the event was admitted under (behind a
    /// [`WebhookLayer`](crate::WebhookLayer): the route's), else the
    /// provider's name.
    pub fn namespace(&self) -> &str {
        self.namespace
            .as_ref()
            .map_or(self.provider, Namespace::as_str)
    }

    /// The signed timestamp (Unix seconds), if the scheme has one.
    pub fn timestamp(&self) -> Option<u64> {
        self.timestamp
    }

    /// The index of the secret or key that matched, in the configured order.
    pub fn secret_index(&self) -> usize {
        self.secret_index
    }

    /// The signature that matched (empty if the verifier did not record it).
    ///
    /// This is the value the sender put on the wire, not a secret.
    pub fn signature(&self) -> &[u8] {
        self.signature.as_bytes()
    }
}

/// An event id, kept inline (no allocation) when it is at most
/// [`INLINE`](Self::INLINE) bytes long, as the ids of every preset are.
#[derive(Clone)]
pub(crate) struct EventId(IdRepr);

#[derive(Clone)]
enum IdRepr {
    Inline {
        len: u8,
        bytes: [u8; EventId::INLINE],
    },
    Heap(Box<str>),
}

impl EventId {
    /// The longest id kept inline: Stripe's `evt_…` (28 bytes), Standard
    /// Webhooks' `msg_…` (31), UUIDs (36) and derived `sha256:…` ids (39) fit.
    pub(crate) const INLINE: usize = 62;

    /// Copies an id already checked by `is_valid_event_id_bytes` (printable
    /// ASCII, so valid UTF-8, with no need to check it again): inline when it
    /// fits, else on the heap.
    pub(crate) fn from_checked(id: &[u8]) -> Self {
        debug_assert!(id.is_ascii());
        Self::from_bytes(id)
            .unwrap_or_else(|| Self(IdRepr::Heap(String::from_utf8_lossy(id).into())))
    }

    /// Copies `id`: inline when it fits, else on the heap.
    pub(crate) fn new(id: &str) -> Self {
        Self::from_bytes(id.as_bytes()).unwrap_or_else(|| Self(IdRepr::Heap(id.into())))
    }

    /// The inline id, if `id` fits.
    fn from_bytes(id: &[u8]) -> Option<Self> {
        let len = u8::try_from(id.len())
            .ok()
            .filter(|_| id.len() <= Self::INLINE)?;
        let mut bytes = [0; Self::INLINE];
        bytes[..id.len()].copy_from_slice(id);
        Some(Self(IdRepr::Inline { len, bytes }))
    }

    /// The id as a string.
    pub(crate) fn as_str(&self) -> &str {
        match &self.0 {
            // Copied from a `str` whole, so always valid UTF-8.
            IdRepr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            IdRepr::Heap(id) => id,
        }
    }
}

impl From<String> for EventId {
    fn from(id: String) -> Self {
        if id.len() <= Self::INLINE {
            Self::new(&id)
        } else {
            Self(IdRepr::Heap(id.into_boxed_str()))
        }
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> Self {
        match id.0 {
            IdRepr::Heap(id) => id.into_string(),
            IdRepr::Inline { .. } => id.as_str().to_owned(),
        }
    }
}

impl std::ops::Deref for EventId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for EventId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for EventId {}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A received signature, kept inline (no allocation) for replay detection.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SignatureTag {
    bytes: [u8; 64],
    len: u8,
}

impl SignatureTag {
    fn new(tag: &[u8]) -> Self {
        let mut bytes = [0; 64];
        let len = tag.len().min(64);
        bytes[..len].copy_from_slice(&tag[..len]);
        Self {
            bytes,
            // len <= 64 always fits.
            len: len as u8,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Default for SignatureTag {
    fn default() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl fmt::Debug for SignatureTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.len)
    }
}
