//! Okta event hooks.
//
// Sources: Okta's developer documentation, "Event hooks" (sections
// "Authentication" and "Event hook request", developer.okta.com/docs/
// concepts/event-hooks) and the Event Hooks management API
// (`channel.config.authScheme`: type `HEADER`, a header name and its value).
//
// The one-time verification (`OktaVerification`): the same "Event hooks"
// page, section "One-time verification request": a `GET` carrying the
// hook's authentication header and `X-Okta-Verification-Challenge`,
// answered with the JSON `{"verification": "<the header's value>"}`.

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
/// with OAuth 2.0 client credentials are not covered. The one-time `GET`
/// verification carries the same header and verifies here; enable
/// [`OktaVerification`] on the route to have the layer answer it.
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

/// Okta's one-time verification, answered by the layer: a `GET` with
/// `X-Okta-Verification-Challenge: <c>` is answered 200 with
/// `{"verification":"<c>"}` (`application/json`), as Okta's event hooks
/// documentation asks.
///
/// It runs **after verification**: [`Okta`] checks the hook's
/// authentication header on every method, so a verification request without
/// the right credential is refused (401) like any event. Only a `GET` with
/// the header once is answered; a `POST` carrying it is an event.
///
/// **Routing**: the route must accept `GET`. An axum `post(..)` route
/// answers 405 to a `GET` before any route layer runs: route it with
/// `post(..).get(..)` (as below), or mount the layered service with
/// `any_service(..)`.
///
/// ```
/// use axum::{Router, routing::post};
/// use tower_webhooks::WebhookLayer;
/// use tower_webhooks::providers::{Okta, OktaVerification};
///
/// let app: Router = Router::new().route(
///     "/webhooks/okta",
///     post(|| async { "ok" }).get(|| async { "ok" }).route_layer(
///         WebhookLayer::new(Okta::new("okta-hook-secret").unwrap()).handshake(OktaVerification),
///     ),
/// );
/// # let _ = app;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct OktaVerification;

impl OktaVerification {
    /// The header carrying the challenge.
    pub const CHALLENGE_HEADER: HeaderName =
        HeaderName::from_static("x-okta-verification-challenge");
}

impl crate::handshake::Handshake for OktaVerification {
    fn after_verification(
        &self,
        parts: &Parts,
        _: &[u8],
        _: &VerifiedWebhook,
    ) -> Option<http::Response<bytes::Bytes>> {
        if parts.method != http::Method::GET {
            return None;
        }
        let challenge = super::one_header(&parts.headers, Self::CHALLENGE_HEADER.as_str())?;
        let answer = serde_json::json!({ "verification": challenge });
        Some(crate::handshake::json(answer.to_string()))
    }
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "okta",
    variable: "OKTA_EVENT_HOOK_SECRET",
    key: "the event hook's authentication secret (the `Authorization` header's value)",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: Some(super::HandshakeSpec {
        name: "`GET` one-time verification",
        get: true,
        variable: None,
    }),
    build: |config| {
        Ok(super::Preset::new(Okta::new(config.secrets())?).with_handshake(OktaVerification, true))
    },
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::OktaSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
