//! Zoom.
//
// Sources: Zoom's developer documentation, "Using webhooks" (sections
// "Verify webhook events" and "Validate your webhook endpoint",
// developers.zoom.us/docs/api/webhooks); zoom/webhook-sample `index.js`
// (which re-serializes the parsed JSON before signing it: this preset signs
// the raw bytes, as Zoom does).

use std::time::Duration;

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::shared::{prefixed_tag, timestamp_header};
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, TimestampWindow, VerifiedWebhook,
    VerifyError,
};

/// Zoom's webhook signatures.
///
/// | | |
/// |---|---|
/// | header | `x-zm-signature: v0=<hex>` |
/// | signed content | `v0:{x-zm-request-timestamp}:{body}`, HMAC-SHA256, hex |
/// | secret | the app's "Secret Token" as UTF-8 |
/// | timestamp | `x-zm-request-timestamp` (Unix seconds), within ±300 s by default (Zoom's sample checks no window; this preset bounds replays both ways) |
/// | event id | none: Zoom's events carry no id (behind a [`WebhookLayer`](crate::WebhookLayer), one is derived from the body, which includes `event_ts`) |
///
/// Zoom's `endpoint.url_validation` request is signed the same way and
/// verifies here; answering it (`{plainToken, encryptedToken}`) is the
/// handler's job in this release.
///
/// ```
/// use tower_webhooks::clock::FixedClock;
/// use tower_webhooks::providers::Zoom;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "zoom".
/// let zoom = Zoom::new("zoom_secret_token").unwrap().with_clock(FixedClock::at_unix(1_700_000_000));
/// let (parts, ()) = http::Request::post("/webhooks/zoom")
///     .header("x-zm-request-timestamp", "1700000000")
///     .header("x-zm-signature",
///         "v0=e0c728cd51ed7f7740d27afa691ce8819bb8f17903ea6b432dfd414efb7dfbf6")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"event":"meeting.started","event_ts":1700000000123,"payload":{"account_id":"AAAAAA"}}"#;
/// let verified = zoom.verify(&parts, body).unwrap();
/// assert_eq!(verified.timestamp(), Some(1_700_000_000));
/// assert_eq!(verified.event_id(), None);
/// ```
#[derive(Clone, Debug)]
pub struct Zoom {
    keys: HmacKeys<Hmac<Sha256>>,
    window: TimestampWindow,
}

impl Zoom {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-zm-signature");
    /// The header carrying the Unix timestamp.
    pub const TIMESTAMP_HEADER: HeaderName = HeaderName::from_static("x-zm-request-timestamp");
    /// The default tolerance: 300 s (Zoom documents none).
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier accepting any of `secrets`, with the default tolerance and
    /// the system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: HmacKeys::new(&secrets.into())?,
            window: TimestampWindow::new(Self::DEFAULT_TOLERANCE),
        })
    }

    super::window_setters!(
        tolerance = "How far `x-zm-request-timestamp` may be from now, either way.",
        clock = "The clock `x-zm-request-timestamp` is checked against."
    );
}

impl SignatureVerifier for Zoom {
    fn provider(&self) -> &'static str {
        "zoom"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let headers = &parts.headers;
        let tag: [u8; 32] = prefixed_tag(headers, &Self::SIGNATURE_HEADER, "v0=", Encoding::Hex)?;
        let (raw, timestamp) = timestamp_header(headers, &Self::TIMESTAMP_HEADER, &self.window)?;
        let index = self
            .keys
            .find(&[b"v0:", raw.as_bytes(), b":", body], [tag.as_slice()])
            .ok_or(VerifyError::SignatureMismatch {
                header: Self::SIGNATURE_HEADER,
            })?;
        Ok(VerifiedWebhook::new("zoom")
            .with_timestamp(timestamp)
            .with_secret_index(index)
            .with_signature(&tag))
    }
}
