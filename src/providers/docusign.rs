//! DocuSign Connect.
//
// Sources: DocuSign's developer documentation, "HMAC security" and "How to
// validate an HMAC signature" for Connect (developers.docusign.com/platform/
// webhooks/connect/hmac and .../validate), which number the headers one per
// active key.

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::MAX_SIGNATURES;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, Tags, VerifiedWebhook, VerifyError,
};

/// DocuSign Connect's HMAC signatures.
///
/// | | |
/// |---|---|
/// | headers | `X-DocuSign-Signature-1: <base64>`, `X-DocuSign-Signature-2`, …: one per HMAC key active on the Connect configuration |
/// | signed content | the body, HMAC-SHA256, standard base64 |
/// | secret | a Connect HMAC key as UTF-8 |
/// | timestamp | none (the body's `generatedDateTime` is signed but not checked): nothing bounds a replay |
/// | event id | none: Connect's JSON events carry no delivery id (behind a [`WebhookLayer`](crate::WebhookLayer), one is derived from the body) |
///
/// Every numbered header is tried against every configured key, so keys
/// rotate without a failed delivery; at most
/// [`MAX_SIGNATURES`](super::MAX_SIGNATURES) headers are read.
///
/// ```
/// use tower_webhooks::providers::DocuSign;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "docusign".
/// let docusign = DocuSign::new("docusign_key_two").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/docusign")
///     .header("x-docusign-signature-1", "inBYGChJbsOwAF0MdRFvgbc4VCkFabU/22UaOZpVP7U=")
///     .header("x-docusign-signature-2", "ajJ+Pf13u4CGozP/YZaPo/Y5ZzW/icdGdB8sCcPpUNE=")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"event":"envelope-completed","apiVersion":"v2.1","retryCount":0,"data":{"envelopeId":"93be49ab"}}"#;
/// assert!(docusign.verify(&parts, body).is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct DocuSign {
    keys: HmacKeys<Hmac<Sha256>>,
}

impl DocuSign {
    /// The first signature header (the others are numbered on).
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-docusign-signature-1");
    /// The prefix of every signature header's name.
    pub const SIGNATURE_HEADER_PREFIX: &'static str = "x-docusign-signature-";

    /// A verifier accepting any of `hmac_keys`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no key, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(hmac_keys: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: HmacKeys::new(&hmac_keys.into())?,
        })
    }

    fn is_signature_header(name: &HeaderName) -> bool {
        name.as_str()
            .strip_prefix(Self::SIGNATURE_HEADER_PREFIX)
            .is_some_and(|number| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
    }
}

impl SignatureVerifier for DocuSign {
    fn provider(&self) -> &'static str {
        "docusign"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let mut signatures = Tags::<32>::new(MAX_SIGNATURES);
        let mut seen = false;
        for (name, value) in &parts.headers {
            if !Self::is_signature_header(name) {
                continue;
            }
            seen = true;
            let value = value
                .to_str()
                .map_err(|_| VerifyError::malformed(name, "not visible ASCII"))?;
            signatures.push(name, value, Encoding::Base64)?;
        }
        if !seen {
            return Err(VerifyError::MissingHeader {
                header: Self::SIGNATURE_HEADER,
            });
        }
        let (index, matched) = self.keys.find_match(&[body], signatures.iter()).ok_or(
            VerifyError::SignatureMismatch {
                header: Self::SIGNATURE_HEADER,
            },
        )?;
        Ok(VerifiedWebhook::new("docusign")
            .with_secret_index(index)
            .with_signature(signatures.get(matched)))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "docusign",
    variable: "DOCUSIGN_CONNECT_HMAC_KEY",
    key: "the Connect HMAC key",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(DocuSign::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::DocuSignSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
