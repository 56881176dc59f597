//! Mux.
//
// Sources: Mux's documentation, "Verify webhook signatures"
// (docs.mux.com/guides/listen-for-webhooks#verify-webhook-signatures);
// muxinc/mux-node-sdk `src/resources/webhooks/webhooks.ts` (the 300 s default
// tolerance, every `v1=` tried) and its test vector in
// `tests/api-resources/webhooks.test.ts`.

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

/// Mux's webhook signatures.
///
/// | | |
/// |---|---|
/// | header | `Mux-Signature: t=<unix s>,v1=<hex>[,v1=<hex>…]` |
/// | signed content | `{t}.{body}`, HMAC-SHA256, hex |
/// | secret | the webhook's signing secret as UTF-8 |
/// | timestamp | `t=`, within ±300 s by default (Mux's SDK: 300 s, too-old only; this preset checks both directions) |
/// | event id | the body's `id`, covered by the signature |
///
/// Every `v1=` is tried against every configured secret; other versions are
/// ignored; at most [`MAX_SIGNATURES`](super::MAX_SIGNATURES) are read.
///
/// ```
/// use tower_webhooks::clock::FixedClock;
/// use tower_webhooks::providers::Mux;
/// use tower_webhooks::SignatureVerifier;
///
/// // From muxinc/mux-node-sdk tests/api-resources/webhooks.test.ts.
/// let mux = Mux::new("SuperSecret123").unwrap().clock(FixedClock::at_unix(1_565_125_718));
/// let (parts, ()) = http::Request::post("/webhooks/mux")
///     .header("mux-signature",
///         "t=1565125718,v1=854ece4c22acef7c66b57d4e504153bc512595e8e9c772ece2a68150548c19a7")
///     .body(())
///     .unwrap()
///     .into_parts();
/// // Verified, but this test body has no `id`.
/// let error = mux.verify(&parts, br#"{"test":"body"}"#).unwrap_err();
/// assert_eq!(error.kind(), "missing-event-id");
/// ```
#[derive(Clone, Debug)]
pub struct Mux {
    keys: HmacKeys<Hmac<Sha256>>,
    window: TimestampWindow,
}

impl Mux {
    /// The header carrying the timestamp and the signatures.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("mux-signature");
    /// The default tolerance: 300 s, as Mux's SDK.
    pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

    const HEADER: TimestampedSignatureHeader = TimestampedSignatureHeader {
        name: Self::SIGNATURE_HEADER,
        separator: ',',
        timestamp_key: "t",
        signature_key: "v1",
        repeated_timestamp: "more than one `t=`",
        missing_timestamp: "no `t=` timestamp",
    };

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
        tolerance = "How far `t=` may be from now, either way.",
        clock = "The clock `t=` is checked against."
    );
}

impl SignatureVerifier for Mux {
    fn provider(&self) -> &'static str {
        "mux"
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
        let id = event_id_from_json(body, "id")?;
        Ok(VerifiedWebhook::new("mux")
            .with_signed_event_id(id)
            .with_timestamp(header.timestamp)
            .with_secret_index(index)
            .with_signature(header.signatures.get(matched)))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "mux",
    variable: "MUX_WEBHOOK_SECRET",
    key: "the webhook's signing secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Mux::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::MuxSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
