//! Square.

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, VerifiedWebhook, VerifyError,
    event_id_from_json, single_header,
};

/// Square's webhook signatures.
///
/// | | |
/// |---|---|
/// | header | `x-square-hmacsha256-signature: <base64>` |
/// | signed content | the subscription's notification URL, byte for byte, immediately followed by the body; HMAC-SHA256, standard base64 |
/// | secret | the subscription's signature key **as UTF-8** (it looks like base64url but is not decoded) |
/// | timestamp | none |
/// | event id | the body's `event_id`, covered by the signature |
///
/// The URL is the one configured on the subscription, not the one the request
/// reached (which, behind a proxy, has another scheme, host or path). The
/// legacy HMAC-SHA1 `x-square-signature` header is ignored.
///
/// ```
/// use tower_webhooks::providers::Square;
/// use tower_webhooks::SignatureVerifier;
///
/// // From square/square-python-sdk tests/utilities/test_webhooks_helper.py.
/// let square = Square::new("signature-key", "https://webhook.site/webhooks").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks")
///     .header("x-square-hmacsha256-signature", "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U=")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"data":{"type":"webhooks","id":">id<"}}"#;
/// // Verified, but this test body has no `event_id`.
/// assert_eq!(square.verify(&parts, body).unwrap_err().kind(), "missing-event-id");
/// ```
#[derive(Clone, Debug)]
pub struct Square {
    keys: HmacKeys<Hmac<Sha256>>,
    notification_url: Box<str>,
}

impl Square {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName =
        HeaderName::from_static("x-square-hmacsha256-signature");

    /// A verifier accepting any of `signature_keys`, for deliveries to
    /// `notification_url` exactly as configured on the subscription.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(
        signature_keys: impl Into<SecretSet>,
        notification_url: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: HmacKeys::new(&signature_keys.into())?,
            notification_url: notification_url.into().into_boxed_str(),
        })
    }

    /// The notification URL the signature covers.
    pub fn notification_url(&self) -> &str {
        &self.notification_url
    }
}

impl SignatureVerifier for Square {
    fn provider(&self) -> &'static str {
        "square"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let header = &Self::SIGNATURE_HEADER;
        let mut tag = [0u8; 32];
        Encoding::Base64
            .decode_exact(single_header(&parts.headers, header)?.as_bytes(), &mut tag)
            .ok_or_else(|| VerifyError::malformed(header, "not a 32-byte base64 signature"))?;
        let index = self
            .keys
            .find(&[self.notification_url.as_bytes(), body], [tag.as_slice()])
            .ok_or_else(|| VerifyError::SignatureMismatch {
                header: header.clone(),
            })?;
        let id = event_id_from_json(body, "event_id")?;
        Ok(VerifiedWebhook::new("square")
            .with_signed_event_id(id)
            .with_secret_index(index)
            .with_signature(&tag))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "square",
    variable: "SQUARE_SIGNATURE_KEY",
    key: "the subscription's signature key",
    credential: super::Credential::SharedSecret,
    signs_url: true,
    handshake: None,
    build: |config| {
        Ok(super::Preset::new(Square::new(
            config.secrets(),
            config.route_url("square")?,
        )?))
    },
    #[cfg(feature = "test-util")]
    signer: |config| {
        let url = config.need_url("square")?;
        Ok(Box::new(crate::testing::SquareSigner::new(
            config.secret().clone(),
            url,
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
