//! Dropbox.
//
// Sources: Dropbox's developer documentation, "Webhooks" (sections
// "Receiving notifications" and "Verifying requests",
// dropbox.com/developers/reference/webhooks).

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::shared::prefixed_tag;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, VerifiedWebhook, VerifyError,
};

/// Dropbox's webhook signatures.
///
/// | | |
/// |---|---|
/// | header | `X-Dropbox-Signature: <hex>` (no prefix) |
/// | signed content | the body, HMAC-SHA256, hex |
/// | secret | the app secret as UTF-8 |
/// | timestamp | none: nothing bounds a replay of a captured delivery |
/// | event id | none: a notification lists the accounts that changed, with no id (behind a [`WebhookLayer`](crate::WebhookLayer), one is derived from the body) |
///
/// Dropbox's notifications only say "something changed for these accounts":
/// the handler fetches the changes itself, so a replayed notification costs
/// a fetch, not a wrong state.
///
/// ```
/// use tower_webhooks::providers::Dropbox;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "dropbox".
/// let dropbox = Dropbox::new("dropbox_app_secret").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/dropbox")
///     .header("x-dropbox-signature",
///         "5362dde5af78efed1b6cc34740ea94796374af41848d7f9e8e54624e34412611")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"list_folder":{"accounts":["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]},"delta":{"users":[12345678]}}"#;
/// assert!(dropbox.verify(&parts, body).is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct Dropbox {
    keys: HmacKeys<Hmac<Sha256>>,
}

impl Dropbox {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-dropbox-signature");

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

impl SignatureVerifier for Dropbox {
    fn provider(&self) -> &'static str {
        "dropbox"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let tag: [u8; 32] =
            prefixed_tag(&parts.headers, &Self::SIGNATURE_HEADER, "", Encoding::Hex)?;
        let index =
            self.keys
                .find(&[body], [tag.as_slice()])
                .ok_or(VerifyError::SignatureMismatch {
                    header: Self::SIGNATURE_HEADER,
                })?;
        Ok(VerifiedWebhook::new("dropbox")
            .with_secret_index(index)
            .with_signature(&tag))
    }
}
