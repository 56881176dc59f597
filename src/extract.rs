//! axum extractors (feature `axum`): what a handler behind a
//! [`WebhookLayer`](crate::WebhookLayer) names to get the verified event.
//!
//! - [`VerifiedWebhook`] itself: the provider, event id, namespace, timestamp
//!   and matched secret.
//! - [`Webhook<T>`]: the same, plus the verified body parsed as JSON into
//!   `T` (400 `invalid-body` if it does not parse).
//!
//! A handler on a route without the layer gets a 500 problem document that
//! names the missing layer, never a bare 500, and never an unverified body.
//! [`Rejection`] implements `IntoResponse` (rendered by
//! [`problem_response`]).
//!
//! ```
//! use axum::{Router, routing::post};
//! use serde::Deserialize;
//! use tower::ServiceExt;
//! use tower_webhooks::extract::Webhook;
//! use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
//! use tower_webhooks::{HmacVerifier, WebhookLayer};
//!
//! #[derive(Deserialize)]
//! struct Invoice {
//!     amount: u64,
//! }
//!
//! async fn paid(Webhook { webhook, event }: Webhook<Invoice>) -> String {
//!     format!("{} paid {}", webhook.event_id().unwrap_or("-"), event.amount)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/hook", post(paid))
//!     .route_layer(WebhookLayer::new(HmacVerifier::generic("secret").unwrap()));
//! let request = GenericSigner::new("secret").request("/hook", "evt_1", unix_now(), br#"{"amount":42}"#);
//! let response = app.oneshot(request.map(axum::body::Body::from)).await.unwrap();
//! assert_eq!(response.status(), 200);
//! # }
//! ```

use axum_core::body::Body;
use axum_core::extract::{FromRequest, FromRequestParts, Request};
use axum_core::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::rejection::{Rejection, problem_response};
use crate::verify::{VerifiedWebhook, VerifyError};

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        problem_response(&self).map(Body::from)
    }
}

fn missing_layer() -> Rejection {
    Rejection::Misconfigured {
        reason: "the handler extracts a verified webhook but the route has no WebhookLayer",
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedWebhook {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Rejection> {
        parts
            .extensions
            .get::<VerifiedWebhook>()
            .cloned()
            .ok_or_else(missing_layer)
    }
}

/// A verified webhook and its body parsed as JSON into `T`; see the
/// [module docs](self).
///
/// The body parsed is exactly the one that was verified.
#[derive(Clone, Debug)]
pub struct Webhook<T> {
    /// What the verifier vouched for.
    pub webhook: VerifiedWebhook,
    /// The verified body, parsed.
    pub event: T,
}

impl<S, T> FromRequest<S> for Webhook<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Rejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Rejection> {
        let (mut parts, body) = request.into_parts();
        let webhook = VerifiedWebhook::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        // Behind the layer the body is already buffered: this does not wait.
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|_| Rejection::BodyReadFailed)?;
        let event = serde_json::from_slice(&body).map_err(|_| {
            Rejection::Verify(VerifyError::InvalidBody {
                reason: "the verified body is not the JSON this handler expects",
            })
        })?;
        Ok(Self { webhook, event })
    }
}
