//! GitLab.
//
// Sources: GitLab's documentation, "Webhooks" (sections "Validate payloads
// by using a secret token" and "Delivery headers", docs.gitlab.com/user/
// project/integrations/webhooks); the signing token: gitlab-org/gitlab merge
// requests 230944 ("Add webhook HMAC signing token") and 231325 (the
// `whsec_<base64>` token format); `Idempotency-Key`: merge request 160952.

use http::HeaderName;
use http::request::Parts;

use super::shared::{Credentials, optional_unsigned_id};
use crate::secret::SecretSet;
use crate::verify::{ConfigError, SignatureVerifier, VerifiedWebhook, VerifyError, single_header};

/// GitLab's secret token: a **static credential**, not a signature.
///
/// | | |
/// |---|---|
/// | header | `X-Gitlab-Token: <the secret token, as configured>` |
/// | signed content | none: the token is compared, in constant time, with each configured token |
/// | secret | the webhook's secret token as UTF-8 |
/// | timestamp | none |
/// | event id | `Idempotency-Key` if present (GitLab 17.4 and later; the same on every retry of an event; **not** covered by anything) |
///
/// **What it proves, and what it does not.** A matching token proves the
/// sender knows the token. It says nothing about the body (anyone on the
/// path can change it) and nothing about freshness: a captured request can be
/// replayed for ever, with any body. Behind a [`WebhookLayer`], a replay of
/// the same bytes under another `Idempotency-Key` is refused (with no
/// signature, the body's digest stands in for it), but a changed body is a
/// new event.
///
/// **Prefer the signing token.** GitLab's newer signing token (a
/// `whsec_<base64>` value) signs `{webhook-id}.{webhook-timestamp}.{body}`
/// with HMAC-SHA256 and sends the Standard Webhooks headers `webhook-id`,
/// `webhook-timestamp` and `webhook-signature: v1,<base64>`: verify those
/// deliveries with
/// [`StandardWebhooks::new`](super::StandardWebhooks::new), which reads
/// exactly those headers (give the route its own
/// [namespace](crate::WebhookLayer::namespace), such as `gitlab`).
///
/// ```
/// use tower_webhooks::providers::GitLab;
/// use tower_webhooks::SignatureVerifier;
///
/// let gitlab = GitLab::new("my-secret-token").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/gitlab")
///     .header("x-gitlab-token", "my-secret-token")
///     .header("idempotency-key", "908a6d9e-45fd-46c8-97e6-c4f350f219dd")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let verified = gitlab.verify(&parts, br#"{"object_kind":"push"}"#).unwrap();
/// assert_eq!(verified.event_id(), Some("908a6d9e-45fd-46c8-97e6-c4f350f219dd"));
/// assert!(!verified.event_id_signed());
///
/// assert!(GitLab::new("").is_err());
/// ```
///
/// [`WebhookLayer`]: crate::WebhookLayer
#[derive(Clone, Debug)]
pub struct GitLab {
    tokens: Credentials,
}

impl GitLab {
    /// The header carrying the token.
    pub const TOKEN_HEADER: HeaderName = HeaderName::from_static("x-gitlab-token");
    /// The header carrying the event's idempotency key, used as the event id.
    pub const IDEMPOTENCY_HEADER: HeaderName = HeaderName::from_static("idempotency-key");

    /// A verifier accepting any of `tokens`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no token, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(tokens: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Ok(Self {
            tokens: Credentials::new(&tokens.into())?,
        })
    }
}

impl SignatureVerifier for GitLab {
    fn provider(&self) -> &'static str {
        "gitlab"
    }

    fn verify(&self, parts: &Parts, _body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let token = single_header(&parts.headers, &Self::TOKEN_HEADER)?;
        let index = self
            .tokens
            .find(token.as_bytes())
            .ok_or(VerifyError::SignatureMismatch {
                header: Self::TOKEN_HEADER,
            })?;
        // No signature is recorded: the token is a secret, and the same on
        // every request.
        let verified = VerifiedWebhook::new("gitlab").with_secret_index(index);
        optional_unsigned_id(verified, &parts.headers, &Self::IDEMPOTENCY_HEADER)
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "gitlab",
    variable: "GITLAB_WEBHOOK_TOKEN",
    key: "the webhook's secret token (sent as `X-Gitlab-Token`)",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: None,
    build: |config| Ok(super::Preset::new(GitLab::new(config.secrets())?)),
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::GitLabSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
