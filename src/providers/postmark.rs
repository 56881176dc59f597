//! Postmark.
//
// Sources: Postmark's developer documentation, "Webhooks overview"
// (section "Protecting your webhook", postmarkapp.com/developer/webhooks/
// webhooks-overview): basic HTTP authentication credentials in the webhook
// URL, sent as an `Authorization: Basic` header; no signature.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderName;
use http::header::AUTHORIZATION;
use http::request::Parts;

use super::shared::Credentials;
use crate::secret::SecretSet;
use crate::verify::{ConfigError, SignatureVerifier, VerifiedWebhook, VerifyError, single_header};

/// Postmark's webhook authentication: HTTP **basic auth**, a static
/// credential, not a signature.
///
/// | | |
/// |---|---|
/// | header | `Authorization: Basic <base64 of username:password>` (from `https://username:password@host/...` in the webhook URL) |
/// | signed content | none: the decoded `username:password` is compared, in constant time, with each configured pair |
/// | secret | `username:password` as UTF-8 |
/// | timestamp | none |
/// | event id | none (behind a [`WebhookLayer`](crate::WebhookLayer), one is derived from the body) |
///
/// **What it proves, and what it does not.** Matching credentials prove the
/// sender knows them. They say nothing about the body and nothing about
/// freshness: a captured request can be replayed for ever, with any body.
/// Behind a [`WebhookLayer`](crate::WebhookLayer), a replay of the same bytes
/// is a duplicate, but a changed body is a new event. Restrict the route to
/// Postmark's published webhook IP ranges as well.
///
/// ```
/// use tower_webhooks::providers::Postmark;
/// use tower_webhooks::SignatureVerifier;
///
/// let postmark = Postmark::new("hooks:s3cr3t-pass").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/postmark")
///     // base64("hooks:s3cr3t-pass")
///     .header("authorization", "Basic aG9va3M6czNjcjN0LXBhc3M=")
///     .body(())
///     .unwrap()
///     .into_parts();
/// assert!(postmark.verify(&parts, br#"{"RecordType":"Delivery"}"#).is_ok());
///
/// assert!(Postmark::new("no-colon").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Postmark {
    credentials: Credentials,
}

impl Postmark {
    /// The header carrying the credentials.
    pub const AUTHORIZATION_HEADER: HeaderName = AUTHORIZATION;

    /// A verifier accepting any of `credentials`, each `username:password`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for none, [`ConfigError::InvalidSecret`] for
    /// an empty one or one without a `:`.
    pub fn new(credentials: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        let credentials = credentials.into();
        let checked = Credentials::new(&credentials)?;
        if let Some(index) = credentials
            .iter()
            .position(|secret| !secret.expose().contains(&b':'))
        {
            return Err(ConfigError::InvalidSecret {
                index,
                reason: "basic auth credentials are `username:password`",
            });
        }
        Ok(Self {
            credentials: checked,
        })
    }
}

impl SignatureVerifier for Postmark {
    fn provider(&self) -> &'static str {
        "postmark"
    }

    fn verify(&self, parts: &Parts, _body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let header = &Self::AUTHORIZATION_HEADER;
        let value = single_header(&parts.headers, header)?;
        let (_, encoded) = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .ok_or_else(|| VerifyError::malformed(header, "not `Basic` credentials"))?;
        let decoded = BASE64
            .decode(encoded.trim())
            .map_err(|_| VerifyError::malformed(header, "the credentials are not base64"))?;
        let index = self
            .credentials
            .find(&decoded)
            .ok_or(VerifyError::SignatureMismatch {
                header: header.clone(),
            })?;
        // No signature is recorded: the credentials are secret.
        Ok(VerifiedWebhook::new("postmark").with_secret_index(index))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "postmark",
    variable: "POSTMARK_WEBHOOK_CREDENTIALS",
    key: "the basic auth credentials, `username:password`",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Postmark::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::PostmarkSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: || {
        crate::testing::TestKeys::shared("postmark:whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    },
};
