//! Intercom.
//
// Sources: Intercom's developer documentation, "Webhooks" (sections
// "Signed notifications" and "Notification object", developers.intercom.com/
// docs/references/webhooks/webhook-models).

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

/// Intercom's webhook signatures.
///
/// | | |
/// |---|---|
/// | header | `X-Hub-Signature: sha1=<hex>` |
/// | signed content | the body, HMAC-**SHA1**, hex |
/// | secret | the app's `client_secret` as UTF-8 |
/// | timestamp | none (the body's `created_at` is signed but not checked): nothing bounds a replay |
/// | event id | the body's `id` (`notif_…`), covered by the signature |
///
/// This is the same scheme as GitHub's legacy `X-Hub-Signature`: a request
/// GitHub signs with the same secret verifies here too. Secrets are per app,
/// so in practice they differ; give each route its own.
///
/// ```
/// use tower_webhooks::providers::Intercom;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "intercom".
/// let intercom = Intercom::new("intercom_client_secret").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/intercom")
///     .header("x-hub-signature", "sha1=3f5feba23a1a227c3fa5833d5566e63091d215e3")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"type":"notification_event","id":"notif_ccd8a4d0-f965-11e3-a367-c779cae3e1b3","topic":"ping"}"#;
/// let verified = intercom.verify(&parts, body).unwrap();
/// assert_eq!(verified.event_id(), Some("notif_ccd8a4d0-f965-11e3-a367-c779cae3e1b3"));
/// ```
#[derive(Clone, Debug)]
pub struct Intercom {
    keys: HmacKeys<Hmac<Sha1>>,
}

impl Intercom {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-hub-signature");

    /// A verifier accepting any of `client_secrets`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(client_secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: HmacKeys::new(&client_secrets.into())?,
        })
    }
}

impl SignatureVerifier for Intercom {
    fn provider(&self) -> &'static str {
        "intercom"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let tag: [u8; 20] = prefixed_tag(
            &parts.headers,
            &Self::SIGNATURE_HEADER,
            "sha1=",
            Encoding::Hex,
        )?;
        let index =
            self.keys
                .find(&[body], [tag.as_slice()])
                .ok_or(VerifyError::SignatureMismatch {
                    header: Self::SIGNATURE_HEADER,
                })?;
        let id = event_id_from_json(body, "id")?;
        Ok(VerifiedWebhook::new("intercom")
            .with_signed_event_id(id)
            .with_secret_index(index)
            .with_signature(&tag))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "intercom",
    variable: "INTERCOM_CLIENT_SECRET",
    key: "the app's client secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Intercom::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::IntercomSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
