//! Calendly.
//
// Sources: Calendly's developer documentation, "Webhook signatures"
// (developer.calendly.com/api-docs/webhook-signatures): the header format,
// the signed `{t}.{body}` content and the three-minute tolerance of its
// example.

use std::time::Duration;

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::TimestampedSignatureHeader;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, HmacKeys, SignatureVerifier, TimestampWindow, VerifiedWebhook, VerifyError,
};

/// Calendly's webhook signatures.
///
/// | | |
/// |---|---|
/// | header | `Calendly-Webhook-Signature: t=<unix s>,v1=<hex>` |
/// | signed content | `{t}.{body}`, HMAC-SHA256, hex |
/// | secret | the webhook subscription's signing key as UTF-8 |
/// | timestamp | `t=`, within ±180 s by default (Calendly's example uses three minutes) |
/// | event id | none: the body carries the event's type and payload but no delivery id (behind a [`WebhookLayer`](crate::WebhookLayer), one is derived from the body, which includes `created_at`) |
///
/// Every `v1=` is tried against every configured key; at most
/// [`MAX_SIGNATURES`](super::MAX_SIGNATURES) are read.
///
/// ```
/// use tower_webhooks::clock::FixedClock;
/// use tower_webhooks::providers::Calendly;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "calendly".
/// let calendly = Calendly::new("calendly_signing_key")
///     .unwrap()
///     .clock(FixedClock::at_unix(1_700_000_100));
/// let (parts, ()) = http::Request::post("/webhooks/calendly")
///     .header("calendly-webhook-signature",
///         "t=1700000000,v1=6cebd93cc965ae09290cf3e6f177b9217c26f01fa41b761d0ae975d7f3e534b5")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"event":"invitee.created","created_at":"2023-11-14T22:13:20.000000Z","payload":{}}"#;
/// assert_eq!(calendly.verify(&parts, body).unwrap().timestamp(), Some(1_700_000_000));
/// ```
#[derive(Clone, Debug)]
pub struct Calendly {
    keys: HmacKeys<Hmac<Sha256>>,
    window: TimestampWindow,
}

impl Calendly {
    /// The header carrying the timestamp and the signatures.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("calendly-webhook-signature");
    /// The default tolerance: 180 s, as Calendly's example.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(180);

    const HEADER: TimestampedSignatureHeader = TimestampedSignatureHeader {
        name: Self::SIGNATURE_HEADER,
        separator: ',',
        timestamp_key: "t",
        signature_key: "v1",
        repeated_timestamp: "more than one `t=`",
        missing_timestamp: "no `t=` timestamp",
    };

    /// A verifier accepting any of `signing_keys`, with the default tolerance
    /// and the system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no key, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(signing_keys: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: HmacKeys::new(&signing_keys.into())?,
            window: TimestampWindow::new(Self::DEFAULT_TOLERANCE),
        })
    }

    super::window_setters!(
        tolerance = "How far `t=` may be from now, either way.",
        clock = "The clock `t=` is checked against."
    );
}

impl SignatureVerifier for Calendly {
    fn provider(&self) -> &'static str {
        "calendly"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let header = Self::HEADER.parse(&parts.headers, &self.window)?;
        let (index, matched) = self
            .keys
            .find_match(
                &[header.raw_timestamp.as_bytes(), b".", body],
                header.signatures.iter(),
            )
            .ok_or(VerifyError::SignatureMismatch {
                header: Self::SIGNATURE_HEADER,
            })?;
        Ok(VerifiedWebhook::new("calendly")
            .with_timestamp(header.timestamp)
            .with_secret_index(index)
            .with_signature(header.signatures.get(matched)))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "calendly",
    variable: "CALENDLY_WEBHOOK_SIGNING_KEY",
    key: "the webhook signing key",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Calendly::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::CalendlySigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
