//! Stripe.

use std::time::Duration;

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::TimestampedSignatureHeader;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, HmacKeys, SignatureVerifier, TimestampWindow, VerifiedWebhook, VerifyError,
    event_id_in_json,
};

/// Stripe's webhook signatures.
///
/// | | |
/// |---|---|
/// | header | `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>…]` |
/// | signed content | `{t}.{body}`, HMAC-SHA256, hex |
/// | secret | the whole endpoint secret, `whsec_` included, as UTF-8 |
/// | timestamp | `t=`, within ±300 s by default |
/// | event id | the body's `id` (`evt_…`), covered by the signature |
///
/// While a secret is being rolled, Stripe sends one `v1=` per active secret:
/// every `v1=` is tried against every configured secret. `v0=` and unknown
/// schemes are ignored (a header with only `v0=` does not verify), and a
/// `v1=` that is not 64 hex digits never matches. More than
/// [`MAX_SIGNATURES`](super::MAX_SIGNATURES) `v1=` entries are refused.
///
/// Stripe's SDKs reject only timestamps that are too old; this preset also
/// rejects timestamps more than the tolerance in the future.
///
/// ```
/// use tower_webhooks::clock::FixedClock;
/// use tower_webhooks::providers::Stripe;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector (inputs from stripe-node test/Webhook.spec.ts).
/// let stripe = Stripe::new("whsec_test_secret").unwrap().clock(FixedClock::at_unix(12_345));
/// let (parts, ()) = http::Request::post("/webhooks/stripe")
///     .header("stripe-signature",
///         "t=12345,v1=2672d138c9a412830f3bfe2ecc5bfb3277cf6f5b49d0119d77dd6cb64da1257e")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = b"{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\"\n}";
/// let verified = stripe.verify(&parts, body).unwrap();
/// assert_eq!(verified.event_id(), Some("evt_test_webhook"));
/// ```
#[derive(Clone, Debug)]
pub struct Stripe {
    keys: HmacKeys<Hmac<Sha256>>,
    window: TimestampWindow,
}

impl Stripe {
    /// The header carrying the timestamp and the signatures.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("stripe-signature");

    /// How the header is read.
    const HEADER: TimestampedSignatureHeader = TimestampedSignatureHeader {
        name: Self::SIGNATURE_HEADER,
        separator: ',',
        timestamp_key: "t",
        signature_key: "v1",
        repeated_timestamp: "more than one `t=`",
        missing_timestamp: "no `t=` timestamp",
    };
    /// The default tolerance: 300 s, as Stripe's SDKs.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    /// A verifier accepting any of `secrets` (each a whole `whsec_…` string),
    /// with the default tolerance and the system clock.
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
        tolerance = "How far `t=` may be from now, either way.",
        clock = "The clock `t=` is checked against."
    );
}

impl SignatureVerifier for Stripe {
    fn provider(&self) -> &'static str {
        "stripe"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let header = Self::HEADER.parse(&parts.headers, &self.window)?;
        let (index, matched) = self
            .keys
            .find_match(
                &[header.raw_timestamp.as_bytes(), b".", body],
                header.signatures.iter(),
            )
            .ok_or_else(|| VerifyError::SignatureMismatch {
                header: Self::SIGNATURE_HEADER,
            })?;
        let id = event_id_in_json(body, "id")?;
        let mut verified = VerifiedWebhook::new("stripe")
            .with_timestamp(header.timestamp)
            .with_secret_index(index)
            .with_signature(header.signatures.get(matched));
        verified.set_event_id(id, true);
        Ok(verified)
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "stripe",
    variable: "STRIPE_WEBHOOK_SECRET",
    key: "the whole `whsec_…` endpoint secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Stripe::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::StripeSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
