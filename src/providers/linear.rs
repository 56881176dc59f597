//! Linear.

use std::time::Duration;

use http::HeaderName;
use http::request::Parts;

use super::header_location;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacVerifier, SignatureVerifier, TimestampWindow, VerifiedWebhook,
    VerifyError, check_event_id, event_id_from_json, parse_unix_timestamp, single_header,
};

/// Linear's webhook signatures: a configuration of [`HmacVerifier`], plus
/// Linear's timestamp, which lives in the signed body.
///
/// | | |
/// |---|---|
/// | header | `Linear-Signature: <hex>` (no prefix) |
/// | signed content | the body, HMAC-SHA256, hex |
/// | secret | the webhook signing secret as UTF-8 |
/// | timestamp | the body's `webhookTimestamp`, in **milliseconds**, within ±60 s by default (as Linear's SDK), read after the signature is verified |
/// | event id | `Linear-Delivery` if present (a UUID per delivery; **not** covered by the signature) |
///
/// `webhookTimestamp` is required. Errors about it name the
/// `linear-signature` header, whose signature covers it. The body's
/// `webhookId` identifies the webhook subscription, not the event, so it is
/// not used.
///
/// ```
/// use tower_webhooks::clock::FixedClock;
/// use tower_webhooks::providers::Linear;
///
/// let linear = Linear::new("SECRET").unwrap().clock(FixedClock::at_unix(1_677_611_643));
/// # let _ = linear;
/// ```
#[derive(Clone, Debug)]
pub struct Linear {
    inner: HmacVerifier,
    window: TimestampWindow,
}

impl Linear {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("linear-signature");
    /// The header carrying the delivery id, used as the event id.
    pub const DELIVERY_HEADER: HeaderName = HeaderName::from_static("linear-delivery");
    /// The body field carrying the timestamp, in milliseconds.
    pub const TIMESTAMP_FIELD: &'static str = "webhookTimestamp";
    /// The default tolerance: 60 s, as Linear's SDK.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(60);

    /// A verifier accepting any of `secrets`, with the default tolerance and
    /// the system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        let inner = HmacVerifier::builder(secrets)
            .provider("linear")
            .signature_header(Self::SIGNATURE_HEADER)
            .encoding(Encoding::Hex)
            .without_timestamp()
            .without_event_id()
            .signed_content("{body}")
            .build()?;
        Ok(Self {
            inner,
            window: TimestampWindow::new(Self::DEFAULT_TOLERANCE),
        })
    }

    super::window_setters!(
        tolerance = "How far `webhookTimestamp` may be from now, either way.",
        clock = "The clock `webhookTimestamp` is checked against."
    );
}

impl SignatureVerifier for Linear {
    fn provider(&self) -> &'static str {
        "linear"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let mut verified = self.inner.verify(parts, body)?;
        // Only now is the body trusted enough to be parsed.
        let header = &Self::SIGNATURE_HEADER;
        let millis = event_id_from_json(body, Self::TIMESTAMP_FIELD).map_err(|_| {
            VerifyError::InvalidBody {
                reason: "`webhookTimestamp` is missing or not an integer",
            }
        })?;
        let timestamp = parse_unix_timestamp(header, &millis)? / 1000;
        self.window.check(header, timestamp)?;
        verified = verified.with_timestamp(timestamp);
        if parts.headers.contains_key(Self::DELIVERY_HEADER) {
            let id = single_header(&parts.headers, &Self::DELIVERY_HEADER)?;
            check_event_id(id, header_location(&Self::DELIVERY_HEADER))?;
            verified = verified.with_unsigned_event_id(id);
        }
        Ok(verified)
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "linear",
    variable: "LINEAR_WEBHOOK_SECRET",
    key: "the webhook's signing secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Linear::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::LinearSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
