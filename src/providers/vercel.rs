//! Vercel.
//
// Sources: Vercel's documentation, "Webhooks" (section "Securing webhooks",
// vercel.com/docs/webhooks/webhooks-api) and the webhook payload's
// top-level `id`.

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha1::Sha1;

use super::shared::prefixed_tag;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, VerifiedWebhook, VerifyError,
    event_id_from_json,
};

/// Vercel's webhook signatures.
///
/// | | |
/// |---|---|
/// | header | `x-vercel-signature: <hex>` (no prefix) |
/// | signed content | the body, HMAC-**SHA1**, hex |
/// | secret | the webhook's secret (account webhooks) or the integration's client secret, as UTF-8 |
/// | timestamp | none: nothing bounds a replay of a captured delivery |
/// | event id | the body's `id`, covered by the signature |
///
/// ```
/// use tower_webhooks::providers::Vercel;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "vercel".
/// let vercel = Vercel::new("vercel_secret").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/vercel")
///     .header("x-vercel-signature", "ee17ed04fdfe7d1105deb0f1a2fdff1b2e952802")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"id":"uevt_9VnLx1","type":"deployment.created","createdAt":1700000000000,"payload":{}}"#;
/// assert_eq!(vercel.verify(&parts, body).unwrap().event_id(), Some("uevt_9VnLx1"));
/// ```
#[derive(Clone, Debug)]
pub struct Vercel {
    keys: HmacKeys<Hmac<Sha1>>,
}

impl Vercel {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-vercel-signature");

    /// A verifier accepting any of `secrets`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: HmacKeys::new(&secrets.into())?,
        })
    }
}

impl SignatureVerifier for Vercel {
    fn provider(&self) -> &'static str {
        "vercel"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let tag: [u8; 20] =
            prefixed_tag(&parts.headers, &Self::SIGNATURE_HEADER, "", Encoding::Hex)?;
        let index =
            self.keys
                .find(&[body], [tag.as_slice()])
                .ok_or(VerifyError::SignatureMismatch {
                    header: Self::SIGNATURE_HEADER,
                })?;
        let id = event_id_from_json(body, "id")?;
        Ok(VerifiedWebhook::new("vercel")
            .with_signed_event_id(id)
            .with_secret_index(index)
            .with_signature(&tag))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "vercel",
    variable: "VERCEL_WEBHOOK_SECRET",
    key: "the webhook's secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Vercel::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::VercelSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
