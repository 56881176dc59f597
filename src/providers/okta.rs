//! Okta event hooks.
//
// Sources: Okta's developer documentation, "Event hooks" (sections
// "Authentication" and "Event hook request", developer.okta.com/docs/
// concepts/event-hooks) and the Event Hooks management API
// (`channel.config.authScheme`: type `HEADER`, a header name and its value).

use http::HeaderName;
use http::header::AUTHORIZATION;
use http::request::Parts;

use super::shared::Credentials;
use crate::secret::SecretSet;
use crate::verify::{
    ConfigError, SignatureVerifier, VerifiedWebhook, VerifyError, event_id_from_json, single_header,
};

/// Okta event hooks' header authentication: a **static credential**, not a
/// signature.
///
/// | | |
/// |---|---|
/// | header | the header configured on the hook (`Authorization` by default, see [`with_header`](Self::with_header)), holding the configured secret value exactly |
/// | signed content | none: the value is compared, in constant time, with each configured secret |
/// | secret | the hook's authentication secret as UTF-8 |
/// | timestamp | none |
/// | event id | the body's `eventId` if present, read after the credential is checked (**not** covered by anything) |
///
/// **What it proves, and what it does not.** A matching value proves the
/// sender knows it. It says nothing about the body and nothing about
/// freshness: a captured request can be replayed for ever, with any body.
/// Behind a [`WebhookLayer`](crate::WebhookLayer), a replay of the same
/// bytes under another `eventId` is refused (the body's digest stands in for
/// the missing signature), but a changed body is a new event. Hooks set up
/// with OAuth 2.0 client credentials are not covered, nor is the one-time
/// `GET` verification (answering it is the handler's job in this release).
///
/// ```
/// use tower_webhooks::providers::Okta;
/// use tower_webhooks::SignatureVerifier;
///
/// let okta = Okta::new("okta-hook-secret").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/okta")
///     .header("authorization", "okta-hook-secret")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let body = br#"{"eventType":"com.okta.event_hook","eventId":"b5a188b9-5ece-4636-b041-482ffda96311","data":{}}"#;
/// let verified = okta.verify(&parts, body).unwrap();
/// assert_eq!(verified.event_id(), Some("b5a188b9-5ece-4636-b041-482ffda96311"));
/// assert!(!verified.event_id_signed());
/// ```
#[derive(Clone, Debug)]
pub struct Okta {
    secrets: Credentials,
    header: HeaderName,
}

impl Okta {
    /// The body field carrying the event id.
    pub const EVENT_ID_FIELD: &'static str = "eventId";

    /// A verifier accepting any of `secrets` in the `Authorization` header.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for no secret, [`ConfigError::InvalidSecret`]
    /// for an empty one.
    pub fn new(secrets: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Ok(Self {
            secrets: Credentials::new(&secrets.into())?,
            header: AUTHORIZATION,
        })
    }

    /// Reads the secret from `header` instead of `Authorization` (the hook's
    /// "authentication field").
    #[must_use]
    pub fn with_header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }

    /// The header the secret is read from.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }
}

impl SignatureVerifier for Okta {
    fn provider(&self) -> &'static str {
        "okta"
    }

    fn verify(&self, parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let value = single_header(&parts.headers, &self.header)?;
        let index =
            self.secrets
                .find(value.as_bytes())
                .ok_or_else(|| VerifyError::SignatureMismatch {
                    header: self.header.clone(),
                })?;
        // No signature is recorded: the value is a secret.
        let verified = VerifiedWebhook::new("okta").with_secret_index(index);
        match event_id_from_json(body, Self::EVENT_ID_FIELD) {
            Ok(id) => Ok(verified.with_unsigned_event_id(id)),
            Err(VerifyError::MissingEventId { .. }) => Ok(verified),
            Err(VerifyError::InvalidBody { .. }) if body.is_empty() => Ok(verified),
            Err(error) => Err(error),
        }
    }
}
