//! Microsoft Graph change notifications.
//
// Sources: Microsoft Graph documentation, "Receive change notifications
// through webhooks" (sections "Processing the change notification" and
// "Notification endpoint validation", learn.microsoft.com/graph/
// change-notifications-delivery-webhooks): `clientState` on every
// notification of the `value` array; microsoftgraph/msgraph-sdk-dotnet-core
// `src/Microsoft.Graph.Core/Extensions/ITokenValidableExtension.cs` (the
// `validationTokens` of rich notifications, not checked here).
//
// The endpoint validation (`MicrosoftGraphValidation`): the same page,
// section "Notification endpoint validation": a `POST` to the notification
// URL with a `validationToken` query parameter (no `clientState`, no
// notifications), answered within 10 seconds with 200, `text/plain` and the
// URL-decoded token as the body; the docs also warn to escape the token, as
// it is reflected (here: refused outside printable ASCII or with `<`/`>`,
// answered with `X-Content-Type-Options: nosniff`).

use std::borrow::Cow;

use http::request::Parts;

use super::shared::Credentials;
use crate::secret::SecretSet;
use crate::verify::{ConfigError, SignatureVerifier, VerifiedWebhook, VerifyError};

/// Microsoft Graph's `clientState`: a **static credential carried in the
/// body**, not a signature.
///
/// | | |
/// |---|---|
/// | where | every notification of the body's `value` array carries `clientState` |
/// | signed content | none: each `clientState` is compared, in constant time, with each configured secret; **every** notification must match |
/// | secret | the `clientState` given when the subscription was created, as UTF-8 |
/// | timestamp | none |
/// | event id | none: a request batches notifications (behind a [`WebhookLayer`](crate::WebhookLayer), an id is derived from the body) |
///
/// **What it proves, and what it does not.** A matching `clientState`
/// proves the sender knows it. It says nothing about the rest of the body and
/// nothing about freshness: a captured request can be replayed for ever, and
/// edited. Behind a [`WebhookLayer`](crate::WebhookLayer) a replay of the
/// same bytes is a duplicate; a changed body is a new event. Rich
/// notifications also carry `validationTokens` (JWTs signed by Microsoft):
/// they are not checked here. The endpoint validation request
/// (`?validationToken=`) has no notifications and is refused here; enable
/// [`MicrosoftGraphValidation`] on the route to have the layer answer it.
///
/// The body is parsed before the check (the credential is in it); a body
/// that is not a notification collection is 400, a `clientState` that does
/// not match (or is missing) is 401.
///
/// ```
/// use tower_webhooks::providers::MicrosoftGraph;
/// use tower_webhooks::SignatureVerifier;
///
/// let graph = MicrosoftGraph::new("secretClientValue").unwrap();
/// let (parts, ()) = http::Request::post("/webhooks/msgraph").body(()).unwrap().into_parts();
/// let body = br#"{"value":[{"subscriptionId":"7f105c7d","clientState":"secretClientValue",
///     "changeType":"created","resource":"Users/ab/Messages/cd","tenantId":"84bd8158"}]}"#;
/// assert!(graph.verify(&parts, body).is_ok());
/// let forged = br#"{"value":[{"subscriptionId":"7f105c7d","clientState":"guess"}]}"#;
/// assert_eq!(graph.verify(&parts, forged).unwrap_err().status(), 401);
/// ```
#[derive(Clone, Debug)]
pub struct MicrosoftGraph {
    client_states: Credentials,
}

#[derive(serde::Deserialize)]
struct Collection<'a> {
    #[serde(borrow)]
    value: Vec<Notification<'a>>,
}

#[derive(serde::Deserialize)]
struct Notification<'a> {
    #[serde(rename = "clientState", borrow)]
    client_state: Option<Cow<'a, str>>,
}

impl MicrosoftGraph {
    /// The most notifications read from one request (Graph batches fewer).
    pub const MAX_NOTIFICATIONS: usize = 1000;

    /// A verifier accepting any of `client_states`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoSecret`] for none, [`ConfigError::InvalidSecret`] for
    /// an empty one.
    pub fn new(client_states: impl Into<SecretSet>) -> Result<Self, ConfigError> {
        Ok(Self {
            client_states: Credentials::new(&client_states.into())?,
        })
    }
}

impl SignatureVerifier for MicrosoftGraph {
    fn provider(&self) -> &'static str {
        "msgraph"
    }

    fn verify(&self, _parts: &Parts, body: &[u8]) -> Result<VerifiedWebhook, VerifyError> {
        let collection: Collection<'_> =
            serde_json::from_slice(body).map_err(|_| VerifyError::InvalidBody {
                reason: "not a change notification collection (`{\"value\": [..]}`)",
            })?;
        if collection.value.is_empty() || collection.value.len() > Self::MAX_NOTIFICATIONS {
            return Err(VerifyError::InvalidBody {
                reason: "no notification, or too many, in `value`",
            });
        }
        let mut first = None;
        let mut all_match = true;
        // Every notification is checked, whatever failed before.
        for notification in &collection.value {
            let matched = notification
                .client_state
                .as_deref()
                .and_then(|state| self.client_states.find(state.as_bytes()));
            all_match &= matched.is_some();
            first = first.or(matched);
        }
        match first.filter(|_| all_match) {
            // No signature is recorded: the client state is a secret.
            Some(index) => Ok(VerifiedWebhook::new("msgraph").with_secret_index(index)),
            None => Err(VerifyError::Unauthorized(Cow::Borrowed(
                "a notification's `clientState` is missing or does not match",
            ))),
        }
    }
}

/// Microsoft Graph's endpoint validation, answered by the layer: `POST
/// ?validationToken=<t>` is answered 200 with the URL-decoded `t` as
/// `text/plain`, as Microsoft Graph's "Receive change notifications through
/// webhooks" documentation asks (for the notification URL and the lifecycle
/// notification URL alike).
///
/// Graph sends no `clientState` with it, so it is answered **before
/// verification**, and proves nothing either way: it only echoes. To bound
/// what can be echoed, the decoded token must be 1 to 1,024 printable ASCII
/// characters without `<` or `>` and appear once (Graph's is a short
/// sentence with a request id); anything else is refused (400), and the
/// answer carries `X-Content-Type-Options: nosniff`. Only a `POST` with a
/// `validationToken` parameter is answered; every other request is verified
/// as usual.
///
/// ```
/// use tower_webhooks::WebhookLayer;
/// use tower_webhooks::providers::{MicrosoftGraph, MicrosoftGraphValidation};
///
/// let layer = WebhookLayer::new(MicrosoftGraph::new("secretClientValue").unwrap())
///     .handshake(MicrosoftGraphValidation);
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct MicrosoftGraphValidation;

impl crate::handshake::Handshake for MicrosoftGraphValidation {
    fn before_verification(
        &self,
        parts: &Parts,
        _: &[u8],
    ) -> Option<Result<http::Response<bytes::Bytes>, crate::Rejection>> {
        if parts.method != http::Method::POST {
            return None;
        }
        let answer = super::query_param(parts, "validationToken")
            .transpose()?
            .and_then(|token| super::challenge(&token, "`validationToken`", printable))
            .map(super::plain_nosniff)
            .map_err(crate::Rejection::Verify);
        Some(answer)
    }
}

/// Printable ASCII, without the angle brackets of markup.
fn printable(byte: u8) -> bool {
    (0x20..=0x7e).contains(&byte) && !matches!(byte, b'<' | b'>')
}

/// The registry entry (see [`Provider`](super::Provider)).
pub(super) const PROVIDER: super::Provider = super::Provider {
    name: "msgraph",
    variable: "MSGRAPH_CLIENT_STATE",
    key: "the subscription's `clientState`",
    credential: super::Credential::SharedSecret,
    signs_url: false,
    handshake: Some(super::HandshakeSpec {
        name: "`POST ?validationToken=`",
        get: false,
        variable: None,
    }),
    build: |config| {
        Ok(super::Preset::new(MicrosoftGraph::new(config.secrets())?)
            .with_handshake(MicrosoftGraphValidation, false))
    },
    #[cfg(feature = "test-util")]
    signer: |config| {
        Ok(Box::new(crate::testing::MicrosoftGraphSigner::new(
            config.secret().clone(),
        )))
    },
    #[cfg(feature = "test-util")]
    test_keys: crate::testing::TestKeys::shared_default,
};
