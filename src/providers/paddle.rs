//! Paddle Billing.

use std::time::Duration;

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::TimestampedSignatureHeader;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, HmacKeys, SignatureVerifier, TimestampWindow, VerifiedWebhook, VerifyError,
    event_id_from_json,
};

/// Paddle Billing's webhook signatures.
///
/// | | |
/// |---|---|
/// | header | `Paddle-Signature: ts=<unix s>;h1=<hex>[;h1=<hex>…]` |
/// | signed content | `{ts}:{body}` (a colon), HMAC-SHA256, hex |
/// | secret | the whole notification-destination secret (`pdl_ntfset_…`) as UTF-8 |
/// | timestamp | `ts=`, within **±5 s** by default |
/// | event id | the body's `event_id` (`evt_…`), covered by the signature |
///
/// During a secret rotation Paddle sends several `h1=`: every one is tried
/// against every configured secret (Paddle's Node SDK checks only the last
/// one). Unknown keys such as `h2=` are ignored; more than
/// [`MAX_SIGNATURES`](super::MAX_SIGNATURES) `h1=` are refused.
///
/// The 5 s default is the SDK's `MAX_VALID_TIME_DIFFERENCE`. The SDK rejects
/// only old timestamps; this preset also rejects timestamps more than the
/// tolerance in the future. Raise the tolerance with
/// [`with_tolerance`](Self::with_tolerance) if your clock drifts.
///
/// ```
/// use tower_webhooks::clock::FixedClock;
/// use tower_webhooks::providers::Paddle;
/// use tower_webhooks::SignatureVerifier;
///
/// let paddle = Paddle::new("pdl_ntfset_01_example").unwrap().clock(FixedClock::at_unix(1_698_796_800));
/// let (parts, ()) = http::Request::post("/webhooks/paddle").body(()).unwrap().into_parts();
/// assert_eq!(paddle.verify(&parts, b"{}").unwrap_err().status(), 400); // no Paddle-Signature
/// ```
#[derive(Clone, Debug)]
pub struct Paddle {
    keys: HmacKeys<Hmac<Sha256>>,
    window: TimestampWindow,
}

impl Paddle {
    /// The header carrying the timestamp and the signatures.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("paddle-signature");

    /// How the header is read.
    const HEADER: TimestampedSignatureHeader = TimestampedSignatureHeader {
        name: Self::SIGNATURE_HEADER,
        separator: ';',
        timestamp_key: "ts",
        signature_key: "h1",
        repeated_timestamp: "more than one `ts=`",
        missing_timestamp: "no `ts=` timestamp",
    };
    /// The default tolerance: 5 s, as Paddle's SDKs.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5);

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
        tolerance = "How far `ts=` may be from now, either way.",
        clock = "The clock `ts=` is checked against."
    );
}

impl SignatureVerifier for Paddle {
    fn provider(&self) -> &'static str {
        "paddle"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let header = Self::HEADER.parse(&parts.headers, &self.window)?;
        let (index, matched) = self
            .keys
            .find_match(
                &[header.raw_timestamp.as_bytes(), b":", body],
                header.signatures.iter(),
            )
            .ok_or_else(|| VerifyError::SignatureMismatch {
                header: Self::SIGNATURE_HEADER,
            })?;
        let id = event_id_from_json(body, "event_id")?;
        Ok(VerifiedWebhook::new("paddle")
            .with_signed_event_id(id)
            .with_timestamp(header.timestamp)
            .with_secret_index(index)
            .with_signature(header.signatures.get(matched)))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "paddle",
    variable: "PADDLE_WEBHOOK_SECRET",
    key: "the notification destination's secret key",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Paddle::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::PaddleSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
