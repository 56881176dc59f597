//! Typeform.
//
// Sources: Typeform's developer documentation, "Secure your webhooks"
// (typeform.com/developers/webhooks/secure-your-webhooks) and the webhook
// payload reference ("Example response", where `event_id` is the top-level
// id of each delivery).

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::shared::prefixed_tag;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, VerifiedWebhook, VerifyError,
    event_id_from_json,
};

/// Typeform's webhook signatures.
///
/// | | |
/// |---|---|
/// | header | `Typeform-Signature: sha256=<base64>` |
/// | signed content | the body, HMAC-SHA256, standard **base64** (not hex) |
/// | secret | the webhook's secret as UTF-8 |
/// | timestamp | none: nothing bounds a replay of a captured delivery |
/// | event id | the body's `event_id`, covered by the signature |
///
/// ```
/// use tower_webhooks::providers::Typeform;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "typeform".
/// let typeform = Typeform::new("typeform_secret").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/typeform")
///     .header("typeform-signature", "sha256=H8/ZBK/hiNnzX/fGrq7j0mRY0BDlQcUOO1qjqQ5DSBA=")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"event_id":"01HTF0RM5Q","event_type":"form_response","form_response":{"form_id":"lT4Z3j"}}"#;
/// let verified = typeform.verify(&parts, body).unwrap();
/// assert_eq!(verified.event_id(), Some("01HTF0RM5Q"));
/// assert!(verified.event_id_signed());
/// ```
#[derive(Clone, Debug)]
pub struct Typeform {
    keys: HmacKeys<Hmac<Sha256>>,
}

impl Typeform {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("typeform-signature");

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

impl SignatureVerifier for Typeform {
    fn provider(&self) -> &'static str {
        "typeform"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let tag: [u8; 32] = prefixed_tag(
            &parts.headers,
            &Self::SIGNATURE_HEADER,
            "sha256=",
            Encoding::Base64,
        )?;
        let index =
            self.keys
                .find(&[body], [tag.as_slice()])
                .ok_or(VerifyError::SignatureMismatch {
                    header: Self::SIGNATURE_HEADER,
                })?;
        let id = event_id_from_json(body, "event_id")?;
        Ok(VerifiedWebhook::new("typeform")
            .with_signed_event_id(id)
            .with_secret_index(index)
            .with_signature(&tag))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "typeform",
    variable: "TYPEFORM_WEBHOOK_SECRET",
    key: "the webhook's secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Typeform::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::TypeformSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
