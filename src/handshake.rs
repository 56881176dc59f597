//! Endpoint handshakes, answered by the layer: the trait, and the answers
//! the presets' handshakes share.
//!
//! Presets implement [`Handshake`] for their sender's handshake (for example
//! [`SlackUrlVerification`](crate::providers::SlackUrlVerification)); enable one
//! per route with [`WebhookLayer::handshake`](crate::WebhookLayer::handshake).
//! The [`providers`](crate::providers) module lists them all.
//!
//! **AWS SNS's `SubscriptionConfirmation`** needs a fetch (its
//! `SubscribeURL`) after verification, which a [`Handshake`] hook cannot
//! await: the SNS verifier does the fetch as its
//! [`KeyedVerifier::follow_up`](crate::keys::KeyedVerifier::follow_up),
//! only when enabled with `Sns::confirm_subscriptions`, and the handshake
//! from `Sns::subscription_handshake` answers the confirmed message 200
//! (feature `sns`; see `providers::Sns`).
//!
//! **Routing a `GET` handshake.** Dropbox's, Meta's and Okta's handshakes
//! are `GET` requests, while events are `POST`s. An axum route built with
//! `post(..)` answers 405 to a `GET` before any route layer runs, so the
//! handshake would never be seen: route it with `post(h).get(h)` and
//! `.route_layer(layer)`, or mount the layered service with
//! `any_service(..)` (not `any(h).route_layer(..)`: axum's `any` is a
//! fallback, to which a route layer does not apply, and axum panics). A `GET`
//! that is not a handshake is then verified like any request (and, unsigned,
//! refused).

use std::fmt;

use bytes::Bytes;
use http::Response;
use http::request::Parts;

use crate::rejection::Rejection;
use crate::verify::VerifiedWebhook;

/// An endpoint handshake a sender makes before (or among) its events:
/// Slack's `url_verification`, Discord's `PING`, a `?challenge=` to echo.
///
/// Enabled per route with [`WebhookLayer::handshake`](crate::WebhookLayer::handshake).
/// The layer answers it itself: a handshake never reaches the handler, the
/// idempotency store, the inbox or a broker. Each hook runs only where its
/// sender's own checks allow:
///
/// - [`before_verification`](Self::before_verification) sees every request
///   once its body is buffered, before the signature is checked: for
///   handshakes the sender does not sign the usual way (a `GET` with a
///   challenge). Such a hook must apply whatever check the sender documents
///   (a verify token, say), and answer nothing else.
/// - [`after_verification`](Self::after_verification) sees only requests
///   whose signature verified: for handshakes the sender signs like its
///   events.
///
/// Both default to answering nothing.
///
/// ```
/// use bytes::Bytes;
/// use http::Response;
/// use http::request::Parts;
/// use tower_webhooks::handshake::Handshake;
/// use tower_webhooks::VerifiedWebhook;
///
/// /// Answers a verified `{"kind":"ping"}` with `pong`.
/// #[derive(Debug)]
/// struct Ping;
///
/// impl Handshake for Ping {
///     fn after_verification(&self, _: &Parts, body: &[u8], _: &VerifiedWebhook) -> Option<Response<Bytes>> {
///         (body == br#"{"kind":"ping"}"#).then(|| Response::new(Bytes::from_static(b"pong")))
///     }
/// }
/// ```
pub trait Handshake: fmt::Debug + Send + Sync + 'static {
    /// Answers a handshake that comes before verification, or `None` to go
    /// on verifying. `Some(Err(rejection))` refuses the request (a handshake
    /// with the wrong verify token, say).
    fn before_verification(
        &self,
        parts: &Parts,
        body: &[u8],
    ) -> Option<Result<Response<Bytes>, Rejection>> {
        let _ = (parts, body);
        None
    }

    /// Answers a verified request that is a handshake, or `None` to admit it
    /// as an event.
    fn after_verification(
        &self,
        parts: &Parts,
        body: &[u8],
        webhook: &VerifiedWebhook,
    ) -> Option<Response<Bytes>> {
        let _ = (parts, body, webhook);
        None
    }
}

/// A 200 `text/plain` answer, as most challenges expect.
pub fn plain(text: impl Into<Bytes>) -> Response<Bytes> {
    let mut response = Response::new(text.into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A 200 `application/json` answer.
pub fn json(body: impl Into<Bytes>) -> Response<Bytes> {
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
