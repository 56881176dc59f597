//! Zoom.
//
// Sources: Zoom's developer documentation, "Using webhooks" (sections
// "Verify webhook events" and "Validate your webhook endpoint",
// developers.zoom.us/docs/api/webhooks); zoom/webhook-sample `index.js`
// (which re-serializes the parsed JSON before signing it: this preset signs
// the raw bytes, as Zoom does).
//
// The endpoint validation (`ZoomUrlValidation`): the same "Using webhooks"
// page, section "Validate your webhook endpoint" (a POST signed like every
// event, `{"event":"endpoint.url_validation","payload":{"plainToken":..}}`,
// answered 200 with JSON `{"plainToken", "encryptedToken"}` where
// `encryptedToken` is the hex HMAC-SHA256 of `plainToken` keyed with the
// secret token); zoom/webhook-sample `index.js` (the same computation, then
// `res.status(200).json(..)`); Zoom's changelog "Webhook URL validation"
// (sent when the URL is set, then every 72 hours).

use std::time::Duration;

use hmac::{Hmac, Mac};
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
/// verifies here; enable [`ZoomUrlValidation`] on the route to have the
/// layer answer it (without it, the handler must).
///
/// ```
/// use tower_webhooks::clock::FixedClock;
/// use tower_webhooks::providers::Zoom;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "zoom".
/// let zoom = Zoom::new("zoom_secret_token").unwrap().clock(FixedClock::at_unix(1_700_000_000));
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

/// Zoom's endpoint validation, answered by the layer: a **signed**
/// `{"event":"endpoint.url_validation","payload":{"plainToken":"<t>"}}` is
/// answered 200 with `{"plainToken":"<t>","encryptedToken":"<hex
/// HMAC-SHA256(secret token, t)>"}`, as Zoom's "Validate your webhook
/// endpoint" documentation asks (Zoom sends it when the URL is saved, then
/// every 72 hours).
///
/// It runs after verification, so a validation request whose
/// `x-zm-signature` does not verify is refused like any event. It needs the
/// secret token itself: build it with the same secret(s) as the route's
/// [`Zoom`]. The answer is keyed with the secret whose signature verified
/// the request (the first one when only one is configured), so it stays
/// right while the token is being rotated.
///
/// ```
/// use tower_webhooks::WebhookLayer;
/// use tower_webhooks::providers::{Zoom, ZoomUrlValidation};
///
/// let secret = "zoom_secret_token";
/// let layer = WebhookLayer::new(Zoom::new(secret).unwrap())
///     .handshake(ZoomUrlValidation::new(secret).unwrap());
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct ZoomUrlValidation {
    secrets: SecretSet,
}

impl ZoomUrlValidation {
    /// The `event` of the validation request.
    pub const EVENT: &'static str = "endpoint.url_validation";

    /// The handshake, with the route's secret token(s), in the same order as
    /// the route's [`Zoom`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        let secrets = secrets.into();
        crate::verify::check_secrets(&secrets)?;
        Ok(Self { secrets })
    }

    /// The hex HMAC-SHA256 of `plain_token` keyed with secret `index` (the
    /// first secret if there is no such index).
    fn encrypt(&self, index: usize, plain_token: &str) -> Option<String> {
        let secret = self
            .secrets
            .iter()
            .nth(index)
            .or_else(|| self.secrets.iter().next())?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose()).ok()?;
        mac.update(plain_token.as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }
}

impl crate::handshake::Handshake for ZoomUrlValidation {
    fn after_verification(
        &self,
        _: &Parts,
        body: &[u8],
        webhook: &VerifiedWebhook,
    ) -> Option<http::Response<bytes::Bytes>> {
        #[derive(serde::Deserialize)]
        struct Validation {
            event: String,
            payload: Payload,
        }
        #[derive(serde::Deserialize)]
        struct Payload {
            #[serde(rename = "plainToken")]
            plain_token: String,
        }
        // Events are JSON objects too: parse only what can be the validation.
        if !body.starts_with(b"{") || !super::contains(body, Self::EVENT.as_bytes()) {
            return None;
        }
        let validation: Validation = serde_json::from_slice(body).ok()?;
        if validation.event != Self::EVENT {
            return None;
        }
        let encrypted = self.encrypt(webhook.secret_index(), &validation.payload.plain_token)?;
        let answer = serde_json::json!({
            "plainToken": validation.payload.plain_token,
            "encryptedToken": encrypted,
        });
        Some(crate::handshake::json(answer.to_string()))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "zoom",
    variable: "ZOOM_WEBHOOK_SECRET_TOKEN",
    key: "the app's secret token",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: Some(super::HandshakeSpec {
        name: "endpoint.url_validation",
        get: false,
        variable: None,
    }),
    build: |config| {
        let validation = ZoomUrlValidation::new(config.secrets())?;
        Ok(super::Preset::new(Zoom::new(config.secrets())?).with_handshake(validation, false))
    },
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::ZoomSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
