//! Jira.
//
// Sources: Atlassian's developer documentation, "Jira Cloud platform:
// Webhooks" (sections "Secure admin webhooks" and "Webhook delivery
// headers", developer.atlassian.com/cloud/jira/platform/webhooks).

use hmac::Hmac;
use http::HeaderName;
use http::request::Parts;
use sha2::Sha256;

use super::shared::{prefixed_tag, required_unsigned_id};
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, Encoding, HmacKeys, SignatureVerifier, VerifiedWebhook, VerifyError,
};

/// Jira Cloud's admin webhook signatures (the WebSub `method=signature`
/// format).
///
/// | | |
/// |---|---|
/// | header | `X-Hub-Signature: sha256=<hex>` |
/// | signed content | the body, HMAC-SHA256, hex |
/// | secret | the webhook's secret as UTF-8 |
/// | timestamp | none (the body's `timestamp` is signed but not checked): nothing bounds a replay |
/// | event id | `X-Atlassian-Webhook-Identifier` (required; the same on every retry; **not** covered by the signature) |
///
/// Only webhooks an administrator registers with a secret are signed; those
/// of Connect and OAuth 2.0 apps are authenticated with JWTs instead and are
/// refused here.
///
/// ```
/// use tower_webhooks::providers::Jira;
/// use tower_webhooks::SignatureVerifier;
///
/// // Derived vector: scripts/vectors/wave2.py, "jira".
/// let jira = Jira::new("jira_secret").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/jira")
///     .header("x-hub-signature",
///         "sha256=417106ecd8b317ab3710bad03db628b58ee303d463d602f7247e1b29537a964d")
///     .header("x-atlassian-webhook-identifier", "2351617")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"timestamp":1700000000000,"webhookEvent":"jira:issue_created","issue":{"key":"PRJ-1"}}"#;
/// let verified = jira.verify(&parts, body).unwrap();
/// assert_eq!(verified.event_id(), Some("2351617"));
/// ```
#[derive(Clone, Debug)]
pub struct Jira {
    keys: HmacKeys<Hmac<Sha256>>,
}

impl Jira {
    /// The header carrying the signature.
    pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-hub-signature");
    /// The header carrying the delivery's identifier, used as the event id.
    pub const IDENTIFIER_HEADER: HeaderName =
        HeaderName::from_static("x-atlassian-webhook-identifier");

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

impl SignatureVerifier for Jira {
    fn provider(&self) -> &'static str {
        "jira"
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
        let verified = VerifiedWebhook::new("jira")
            .with_secret_index(index)
            .with_signature(&tag);
        required_unsigned_id(verified, &parts.headers, &Self::IDENTIFIER_HEADER)
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "jira",
    variable: "JIRA_WEBHOOK_SECRET",
    key: "the webhook's secret",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(Jira::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::JiraSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
