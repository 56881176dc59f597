//! The direct form: publish inside the request, answer once confirmed.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower_service::Service;

use super::{ForwardError, Message, Publisher, header};
use crate::admission::{Routes, Ticket};
use crate::backend::timed;
use crate::idempotency::{Claim, FenceToken, IdempotencyStore};
use crate::rejection::{Rejection, Responder};
use crate::verify::VerifiedWebhook;

/// An endpoint that publishes each verified event to a broker and answers
/// 200 `{"ok":true,"forwarded":true}` only once the broker confirmed it.
/// Put a [`WebhookLayer`](crate::WebhookLayer) in front of it, in place of
/// [`Inbox::accept`](crate::inbox::Inbox::accept).
///
/// Per delivery, the event is admitted in an [`IdempotencyStore`] keyed by
/// `namespace:event-id`, exactly as the
/// [`IdempotencyLayer`](crate::layer::IdempotencyLayer) does (the replay
/// guard included):
///
/// | store or broker says | answer |
/// |---|---|
/// | free: claimed, then published and confirmed | 200 `{"ok":true,"forwarded":true}`; the claim is completed |
/// | claimed, but the broker is unreachable, refused it or did not confirm in time | 503 + `Retry-After` (`store-unavailable`: the broker is the store here); the claim is released, so the sender's retry publishes |
/// | completed | 200 `{"ok":true,"duplicate":true}`; nothing published |
/// | in flight | 409 + `Retry-After`; nothing published |
/// | the signature already used for another event id | 401 `replayed-signature`; nothing published |
/// | store unreachable or slow | 503 + `Retry-After`; nothing published |
///
/// Once claimed, the publish and the settling of the claim run in a task of
/// their own, so a sender that hangs up does not cut a publish in half.
///
/// A publish that times out may still be stored by the broker afterwards;
/// the retry it causes is then a duplicate downstream, absorbed where the
/// broker dedupes (JetStream's `Nats-Msg-Id` within its duplicate window,
/// the Redis Streams guard key) and left to consumers otherwise (RabbitMQ:
/// dedupe by `message_id`).
///
/// See the [module docs](super) for an example. Clones share everything.
#[derive(Clone, Debug)]
pub struct ForwardService {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    publisher: Arc<dyn Publisher>,
    store: Arc<dyn IdempotencyStore>,
    lease: Duration,
    retention: Duration,
    publish_timeout: Duration,
    store_timeout: Duration,
    in_flight_retry_after: Duration,
    unavailable_retry_after: Duration,
    responder: Responder,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("publisher", &self.publisher)
            .field("store", &self.store)
            .field("lease", &self.lease)
            .field("retention", &self.retention)
            .field("publish_timeout", &self.publish_timeout)
            .field("store_timeout", &self.store_timeout)
            .finish_non_exhaustive()
    }
}

impl ForwardService {
    /// The default lease of a claim while the event is published: 30 s.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
    /// The default retention of completed keys: 7 days.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
    /// The default time a publish may take, confirmation included: 5 s.
    pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
    /// The default timeout of each store call:
    /// [`backend::DEFAULT_STORE_TIMEOUT`](crate::backend::DEFAULT_STORE_TIMEOUT), 5 s.
    pub const DEFAULT_STORE_TIMEOUT: Duration = crate::backend::DEFAULT_STORE_TIMEOUT;

    /// Publishes through `publisher`, deduplicating through `store`.
    pub fn new(publisher: impl Publisher, store: impl IdempotencyStore) -> Self {
        Self::from_shared(Arc::new(publisher), Arc::new(store))
    }

    /// Publishes through a shared publisher, deduplicating through a shared
    /// store.
    pub fn from_shared(publisher: Arc<dyn Publisher>, store: Arc<dyn IdempotencyStore>) -> Self {
        Self {
            config: Arc::new(Config {
                publisher,
                store,
                lease: Self::DEFAULT_LEASE,
                retention: Self::DEFAULT_RETENTION,
                publish_timeout: Self::DEFAULT_PUBLISH_TIMEOUT,
                store_timeout: Self::DEFAULT_STORE_TIMEOUT,
                in_flight_retry_after: Duration::from_secs(5),
                unavailable_retry_after: Duration::from_secs(5),
                responder: Responder::default(),
            }),
        }
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// How long a claim holds its key while the event is published. Default
    /// 30 s; it is never shorter than twice the publish timeout plus the
    /// store timeout, so a claim outlives its publish.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config().lease = lease;
        self
    }

    /// How long a forwarded event's key is remembered (duplicates within it
    /// are answered 200 without publishing). Default 7 days.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.config().retention = retention;
        self
    }

    /// How long a publish may take, the broker's confirmation included,
    /// before the sender gets a 503. Default 5 s.
    #[must_use]
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.config().publish_timeout = timeout;
        self
    }

    /// The most each store call may take before it counts as a failure
    /// (503). Default [`DEFAULT_STORE_TIMEOUT`](Self::DEFAULT_STORE_TIMEOUT),
    /// 5 s, the same for every layer.
    #[must_use]
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.config().store_timeout = timeout;
        self
    }

    /// The `Retry-After` sent with 409 (in flight). Default 5 s.
    #[must_use]
    pub fn in_flight_retry_after(mut self, after: Duration) -> Self {
        self.config().in_flight_retry_after = after;
        self
    }

    /// The `Retry-After` sent with 503 (store or broker unavailable).
    /// Default 5 s.
    #[must_use]
    pub fn unavailable_retry_after(mut self, after: Duration) -> Self {
        self.config().unavailable_retry_after = after;
        self
    }

    /// Renders rejections with `render` instead of
    /// [`problem_response`](crate::rejection::problem_response).
    #[must_use]
    pub fn on_rejection<F>(mut self, render: F) -> Self
    where
        F: Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.config().responder = Responder::new(render);
        self
    }

    /// The publisher.
    pub fn publisher(&self) -> &Arc<dyn Publisher> {
        &self.config.publisher
    }

    /// The idempotency store.
    pub fn store(&self) -> &Arc<dyn IdempotencyStore> {
        &self.config.store
    }
}

/// The response future of [`ForwardService`].
pub type ForwardFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static>>;

impl<B> Service<Request<B>> for ForwardService
where
    B: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ForwardFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let config = self.config.clone();
        Box::pin(async move {
            let response = match forward(&config, request).await {
                Ok(()) => {
                    let mut response = Response::new(Full::new(Bytes::from_static(
                        br#"{"ok":true,"forwarded":true}"#,
                    )));
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    response
                }
                Err(rejection) => {
                    if rejection != Rejection::Duplicate {
                        tracing::info!(
                            status = rejection.status().as_u16(),
                            kind = rejection.kind(),
                            "webhook answered: {rejection}"
                        );
                    }
                    config.responder.respond(&rejection).map(Full::new)
                }
            };
            Ok(response)
        })
    }
}

async fn forward<B>(config: &Arc<Config>, request: Request<B>) -> Result<(), Rejection>
where
    B: Body<Data = Bytes>,
{
    let received_at = SystemTime::now();
    let (mut parts, body) = request.into_parts();
    let ticket = parts
        .extensions
        .remove::<Ticket>()
        .ok_or(Rejection::Misconfigured {
            reason: "the forward service needs a WebhookLayer in front of it",
        })?;
    Routes::check(&config.store, &ticket.namespace, &ticket.route)?;
    // Behind the WebhookLayer the body is already buffered, so this does not
    // wait; it is read before the claim, so no claim waits on a client.
    let body = body
        .collect()
        .await
        .map_err(|_| Rejection::BodyReadFailed)?
        .to_bytes();
    let provider = parts.extensions.get::<VerifiedWebhook>().map_or_else(
        || ticket.namespace.as_str().to_owned(),
        |webhook| webhook.provider().to_owned(),
    );
    let text = |headers: &HeaderMap, name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let message = Message::verified(ticket.namespace.as_str(), ticket.event_id.clone(), body)
        .with_provider(provider)
        .with_received_at(received_at)
        .with_content_type(text(&parts.headers, header::CONTENT_TYPE))
        .with_trace_context(
            text(&parts.headers, header::TRACEPARENT),
            text(&parts.headers, header::TRACESTATE),
        );

    let key = ticket.key();
    let signature_key = ticket.signature_key();
    let lease = config.lease.max(
        config
            .publish_timeout
            .saturating_mul(2)
            .saturating_add(config.store_timeout),
    );
    // Without a signed timestamp the request verifies for ever: the record
    // lives as long as the event's own key.
    let signature = ticket.signature_claim(
        signature_key.as_deref(),
        config.retention.saturating_add(lease),
    );
    let unavailable = Rejection::StoreUnavailable {
        retry_after: config.unavailable_retry_after,
    };
    let admitted = timed(
        config.store_timeout,
        config.store.admit(&key, lease, signature),
    )
    .await;
    let token = match admitted {
        Ok(Claim::Acquired(token)) => token,
        Ok(Claim::Completed { .. }) => return Err(Rejection::Duplicate),
        Ok(Claim::InFlight { .. }) => {
            return Err(Rejection::InFlight {
                retry_after: config.in_flight_retry_after,
            });
        }
        Ok(Claim::Replayed) => return Err(Rejection::ReplayedSignature),
        Err(error) => {
            tracing::error!(%key, %error, "idempotency store failed; answering 503");
            return Err(unavailable);
        }
    };

    // From here on in a task of its own: a sender that hangs up neither
    // cuts the publish in half nor leaves the claim held.
    let settled = tokio::spawn(publish_and_settle(config.clone(), key, token, message)).await;
    match settled {
        Ok(true) => Ok(()),
        Ok(false) | Err(_) => Err(unavailable),
    }
}

/// Publishes, then completes the claim (returns `true`) or, when the broker
/// did not confirm, releases it (returns `false`).
async fn publish_and_settle(
    config: Arc<Config>,
    key: String,
    token: FenceToken,
    message: Message,
) -> bool {
    let publisher = config.publisher.clone();
    let timeout = config.publish_timeout;
    // Its own task again, so a panicking publisher still releases the claim.
    let published = tokio::spawn(async move {
        tokio::time::timeout(timeout, publisher.publish(&message))
            .await
            .unwrap_or(Err(ForwardError::Timeout(timeout)))
    })
    .await;
    let error = match published {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error.to_string()),
        Err(_) => Some("the publisher panicked".to_owned()),
    };
    match error {
        None => {
            match timed(
                config.store_timeout,
                config.store.complete(&key, token, config.retention),
            )
            .await
            {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    %key,
                    "the claim's lease expired before the publish was confirmed; a redelivery may publish again"
                ),
                Err(error) => tracing::error!(
                    %key,
                    %error,
                    "published, but could not mark the event completed; a redelivery after the lease publishes again"
                ),
            }
            true
        }
        Some(error) => {
            tracing::warn!(%key, %error, "publish not confirmed; releasing the claim and answering 503");
            if let Err(error) = timed(config.store_timeout, config.store.release(&key, token)).await
            {
                tracing::warn!(%key, %error, "could not release the claim; it frees when the lease expires");
            }
            false
        }
    }
}
