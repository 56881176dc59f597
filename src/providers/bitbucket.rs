//! Bitbucket Cloud.
//
// Sources: Bitbucket Cloud's documentation, "Manage webhooks" (section
// "Secure webhooks") and "Event payloads" (section "HTTP headers",
// support.atlassian.com/bitbucket-cloud/docs/event-payloads); Atlassian's
// announcement "Enhanced webhook security" (bitbucket.org/blog).

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::shared::prefixed_tag;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, VerifiedWebhook, VerifyError,
};

/// Bitbucket Cloud's webhook signatures.
///
/// | | |
/// |---|---|
/// | header | `X-Hub-Signature: sha256=<hex>` |
/// | signed content | the body, HMAC-SHA256, hex |
/// | secret | the webhook's secret as UTF-8 |
/// | timestamp | none: nothing bounds a replay of a captured delivery |
/// | event id | none: derived from the body (`sha256:<hex>`) by the layer |
///
/// Bitbucket sends `X-Request-UUID`, `X-Hook-UUID` (the webhook, not the
/// event), `X-Event-Key` and `X-Attempt-Number` with every delivery. A
/// webhook without a secret sends no signature, and is refused.
///
/// Bitbucket's docs call `X-Request-UUID` "the UUID of the request" and do
/// not say whether its retries (`X-Attempt-Number` 2 and 3, after a 5xx)
/// keep it. Keyed on it, a retry with a new one would run the event twice,
/// or be refused as a replay of the first attempt's signature. So the
/// preset reports no id and the layer derives one from the body: a retry
/// resends the same bytes, so it gets the same id and is deduplicated, and
/// the header stays available to handlers.
///
/// Jira's admin webhooks sign the same way: with the same secret, a request
/// Jira signed verifies here too. Give each sender its own secret.
///
/// ```
/// use tower_webhooks::providers::Bitbucket;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "bitbucket".
/// let bitbucket = Bitbucket::new("bitbucket_secret").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/bitbucket")
///     .header("x-hub-signature",
///         "sha256=a48b6a73a9fd8705666ecafff78c33a50ec5ca25d43d79f40010d13c639fe880")
///     .header("x-request-uuid", "5a8d6e3e-4e1b-4c8e-9a53-2f2d1b0f6c11")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"push":{"changes":[]},"repository":{"full_name":"team/repo"}}"#;
/// let verified = bitbucket.verify(&parts, body).unwrap();
/// assert_eq!(verified.event_id(), None); // the layer derives one from the body
/// ```
#[derive(Clone, Debug)]
pub struct Bitbucket {
    keys: HmacKeys<Hmac<Sha256>>,
}

impl Bitbucket {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-hub-signature");
    /// The header carrying the request's UUID (not used as the event id;
    /// see the type's docs).
    pub const REQUEST_HEADER: HeaderName = HeaderName::from_static("x-request-uuid");

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

impl SignatureVerifier for Bitbucket {
    fn provider(&self) -> &'static str {
        "bitbucket"
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
        Ok(VerifiedWebhook::new("bitbucket")
            .with_secret_index(index)
            .with_signature(&tag))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "bitbucket",
    variable: "BITBUCKET_WEBHOOK_SECRET",
    key: "the webhook's secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Bitbucket::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::BitbucketSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
