//! Shopify.

use http::HeaderName;
use http::request::Parts;

use super::header_location;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacVerifier, SignatureVerifier, VerifiedWebhook, VerifyError,
    check_event_id, single_header,
};

/// Shopify's webhook signatures: a configuration of [`HmacVerifier`], plus
/// Shopify's event id headers.
///
/// | | |
/// |---|---|
/// | header | `X-Shopify-Hmac-Sha256: <base64>` |
/// | signed content | the body, HMAC-SHA256, standard base64 |
/// | secret | the app's client secret as UTF-8 |
/// | timestamp | none (`X-Shopify-Triggered-At` is informational and not signed) |
/// | event id | `X-Shopify-Event-Id` (what Shopify's docs say to deduplicate on), else `X-Shopify-Webhook-Id`; **not** covered by the signature |
///
/// Without a timestamp nothing bounds a replay: a captured delivery verifies
/// again later, under any id header.
///
/// One of the two id headers is required. Shopify's newer "Events" deliveries
/// send both the `shopify-*` and the `x-shopify-*` headers; this preset reads
/// the `x-shopify-*` ones.
///
/// ```
/// use tower_webhooks::providers::Shopify;
/// use tower_webhooks::SignatureVerifier;
///
/// // From Shopify/shopify-app-js lib/webhooks/__tests__/validate.test.ts.
/// let shopify = Shopify::new("test_secret_key").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/shopify")
///     .header("x-shopify-hmac-sha256", "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=")
///     .header("x-shopify-webhook-id", "123456789")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let verified = shopify.verify(&parts, br#"{"foo": "bar"}"#).unwrap();
/// assert_eq!(verified.event_id(), Some("123456789"));
/// ```
#[derive(Clone, Debug)]
pub struct Shopify {
    inner: HmacVerifier,
}

impl Shopify {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-shopify-hmac-sha256");
    /// The header carrying the event id (the same for every subscription
    /// notified of one event).
    pub const EVENT_ID_HEADER: HeaderName = HeaderName::from_static("x-shopify-event-id");
    /// The header carrying the webhook (delivery) id, used when
    /// `X-Shopify-Event-Id` is absent.
    pub const WEBHOOK_ID_HEADER: HeaderName = HeaderName::from_static("x-shopify-webhook-id");

    /// A verifier accepting any of `secrets`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        let inner = HmacVerifier::builder(secrets)
            .provider("shopify")
            .signature_header(Self::SIGNATURE_HEADER)
            .encoding(Encoding::Base64)
            .without_timestamp()
            .without_event_id()
            .signed_content("{body}")
            .build()?;
        Ok(Self { inner })
    }
}

impl SignatureVerifier for Shopify {
    fn provider(&self) -> &'static str {
        "shopify"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let verified = self.inner.verify(parts, body)?;
        let headers = &parts.headers;
        let header = if headers.contains_key(Self::EVENT_ID_HEADER) {
            Self::EVENT_ID_HEADER
        } else if headers.contains_key(Self::WEBHOOK_ID_HEADER) {
            Self::WEBHOOK_ID_HEADER
        } else {
            return Err(VerifyError::MissingEventId {
                location: "header `x-shopify-event-id` or `x-shopify-webhook-id`".into(),
            });
        };
        let id = single_header(headers, &header)?;
        check_event_id(id, header_location(&header))?;
        Ok(verified.with_unsigned_event_id(id))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "shopify",
    variable: "SHOPIFY_WEBHOOK_SECRET",
    key: "the app's client secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Shopify::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::ShopifySigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
