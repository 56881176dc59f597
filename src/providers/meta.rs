//! Meta (WhatsApp, Instagram, Messenger and the other Graph API webhooks).
//
// Sources: Meta's developer documentation, "Webhooks: Getting started"
// (sections "Event notifications" and "Validate payloads",
// developers.facebook.com/docs/graph-api/webhooks/getting-started).

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::shared::prefixed_tag;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, VerifiedWebhook, VerifyError,
};

/// Meta's webhook signatures (WhatsApp Business, Instagram, Messenger, and
/// every Graph API object).
///
/// | | |
/// |---|---|
/// | header | `X-Hub-Signature-256: sha256=<hex>` |
/// | signed content | the body, HMAC-SHA256, hex (Meta escapes non-ASCII characters in the body it signs, as `\u00e9`: verify the raw bytes, never a re-serialization) |
/// | secret | the app secret as UTF-8 |
/// | timestamp | none: nothing bounds a replay of a captured delivery |
/// | event id | none: a notification batches `entry` items and carries no id (behind a [`WebhookLayer`](crate::WebhookLayer), one is derived from the body) |
///
/// This is the same scheme as GitHub's `X-Hub-Signature-256`: a request
/// GitHub signs with the same secret verifies here too. The legacy SHA-1
/// `X-Hub-Signature` header is ignored.
///
/// ```
/// use tower_webhooks::providers::Meta;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "meta".
/// let meta = Meta::new("meta_app_secret").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/meta")
///     .header("x-hub-signature-256",
///         "sha256=211c14827e211cb747e8036f49d01fbc85086f83fd995bb68e021b314cbc2504")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[]}]}"#;
/// assert!(meta.verify(&parts, body).is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct Meta {
    keys: HmacKeys<Hmac<Sha256>>,
}

impl Meta {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-hub-signature-256");

    /// A verifier accepting any of `app_secrets`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(app_secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: HmacKeys::new(&app_secrets.into())?,
        })
    }
}

impl SignatureVerifier for Meta {
    fn provider(&self) -> &'static str {
        "meta"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let tag: [u8; 32] = prefixed_tag(
            &parts.headers,
            &Self::SIGNATURE_HEADER,
            "sha256=",
            Encoding::Hex,
        )?;
        let index =
            self.keys
                .find(&[body], [tag.as_slice()])
                .ok_or(VerifyError::SignatureMismatch {
                    header: Self::SIGNATURE_HEADER,
                })?;
        Ok(VerifiedWebhook::new("meta")
            .with_secret_index(index)
            .with_signature(&tag))
    }
}
