//! GitHub.

use http::HeaderName;
use http::request::Parts;

use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacVerifier, SignatureVerifier, VerifiedWebhook, VerifyError,
};

/// GitHub's webhook signatures: a configuration of [`HmacVerifier`].
///
/// | | |
/// |---|---|
/// | header | `X-Hub-Signature-256: sha256=<hex>` |
/// | signed content | the body, HMAC-SHA256, hex |
/// | secret | the webhook secret as UTF-8 |
/// | timestamp | none: GitHub's scheme has no replay window |
/// | event id | `X-GitHub-Delivery` (required; **not** covered by the signature) |
///
/// Without a timestamp nothing bounds a replay: a captured delivery verifies
/// again later, under any `X-GitHub-Delivery` (deduplication cannot catch
/// that; restricting the route to GitHub's published hook IP ranges can).
///
/// GitHub sends one signature per request; to rotate, configure the new and
/// the old secret together. The legacy SHA-1 `X-Hub-Signature` header is
/// ignored.
///
/// ```
/// use tower_webhooks::providers::GitHub;
/// use tower_webhooks::SignatureVerifier;
///
/// // From GitHub's docs, "Validating webhook deliveries".
/// let github = GitHub::new("It's a Secret to Everybody").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/github")
///     .header("x-hub-signature-256",
///         "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
///     .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let verified = github.verify(&parts, b"Hello, World!").unwrap();
/// assert_eq!(verified.event_id(), Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"));
/// assert!(!verified.event_id_signed());
/// ```
#[derive(Clone, Debug)]
pub struct GitHub {
    inner: HmacVerifier,
}

impl GitHub {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-hub-signature-256");
    /// The header carrying the delivery id, used as the event id.
    pub const DELIVERY_HEADER: HeaderName = HeaderName::from_static("x-github-delivery");

    /// A verifier accepting any of `secrets`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        let inner = HmacVerifier::builder(secrets)
            .provider("github")
            .signature_header(Self::SIGNATURE_HEADER)
            .signature_prefix("sha256=")
            .encoding(Encoding::Hex)
            .without_timestamp()
            .event_id_header(Self::DELIVERY_HEADER)
            .signed_content("{body}")
            .build()?;
        Ok(Self { inner })
    }
}

impl SignatureVerifier for GitHub {
    fn provider(&self) -> &'static str {
        "github"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        self.inner.verify(parts, body)
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "github",
    variable: "GITHUB_WEBHOOK_SECRET",
    key: "the webhook's secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(GitHub::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::GitHubSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
