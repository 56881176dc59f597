//! Forwarding verified events to a message broker: NATS JetStream,
//! RabbitMQ or Redis Streams.
//!
//! When consumers should scale on their own, a verified event belongs on the
//! broker a team already runs. Every broker sits behind the same
//! [`Publisher`] trait, whose [`publish`](Publisher::publish) returns only
//! once the broker confirmed that it stored the message:
//!
//! | broker (feature) | publisher | confirmation | downstream dedupe |
//! |---|---|---|---|
//! | NATS JetStream (`jetstream`) | [`JetStreamPublisher`] | the stream's `PubAck` | `Nats-Msg-Id` = `namespace:event-id`, within the stream's duplicate window (`duplicate_window`, 2 min by default) |
//! | RabbitMQ (`rabbitmq`) | [`RabbitMqPublisher`] | a publisher confirm (persistent delivery, mandatory routing) | none on the broker: the AMQP `message_id` is `namespace:event-id`, and consumers dedupe by it |
//! | Redis Streams (`redis-stream`) | [`RedisStreamPublisher`] | the reply to a script that runs `XADD` | a guard key per event, set in the same script call: an event already added within the window is not added again |
//!
//! # The message
//!
//! A [`Message`] carries the verified body bytes unchanged, and as headers
//! (see [`header`]) the event id, the provider, the namespace, when the
//! event was received, a signature-verified marker, and the W3C trace
//! context (`traceparent`, `tracestate`) when the request had one. Where it
//! goes (the JetStream subject, the RabbitMQ routing key, the Redis stream)
//! is chosen per namespace by [`Destinations`]: `webhooks.<namespace>` by
//! default.
//!
//! # Two forms
//!
//! - **The relay** ([`Relay`]): an inbox [`Handler`](crate::inbox::Handler)
//!   that publishes each recorded event. The inbox acknowledges the sender
//!   once the event is recorded, and its durability, retries and dead
//!   letters carry over to the publish: a publish that fails is retried
//!   with backoff. A crash between the broker's confirmation and the
//!   inbox's `succeeded` publishes the event again, which the downstream
//!   dedupe above absorbs (JetStream and Redis Streams within their window;
//!   RabbitMQ consumers by message id).
//! - **Direct** ([`ForwardService`]): a service in place of
//!   [`Inbox::accept`](crate::inbox::Inbox::accept) behind a
//!   [`WebhookLayer`](crate::WebhookLayer). It claims the event in an
//!   [`IdempotencyStore`](crate::idempotency::IdempotencyStore), publishes,
//!   and answers 200 only once the broker confirmed; a broker that is down
//!   or slow gets the sender a 503 with `Retry-After` and the claim is given
//!   back. Nothing is acknowledged that the broker did not confirm.
//!
//! # Example
//!
//! The direct form, here with a publisher that only records what it is
//! given (put [`JetStreamPublisher`], [`RabbitMqPublisher`] or
//! [`RedisStreamPublisher`] there, and a store every instance shares, such
//! as `RedisStore` or `PostgresStore`):
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use async_trait::async_trait;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_webhooks::forward::{ForwardError, ForwardService, Message, Publisher};
//! use tower_webhooks::idempotency::MemoryStore;
//! use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
//! use tower_webhooks::{HmacVerifier, WebhookLayer};
//!
//! #[derive(Debug, Default)]
//! struct Recorder(Mutex<Vec<Message>>);
//!
//! #[async_trait]
//! impl Publisher for Recorder {
//!     async fn publish(&self, message: &Message) -> Result<(), ForwardError> {
//!         self.0.lock().unwrap().push(message.clone());
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let recorder = Arc::new(Recorder::default());
//! let endpoint = ServiceBuilder::new()
//!     .layer(WebhookLayer::new(HmacVerifier::generic("dev_secret_change_me").unwrap()))
//!     .service(ForwardService::new(recorder.clone(), MemoryStore::new()));
//!
//! let signer = GenericSigner::new("dev_secret_change_me");
//! let request = || signer.request("/hook", "evt-1", unix_now(), b"{}").map(http_body_util::Full::new);
//! let response = endpoint.clone().oneshot(request()).await.unwrap();
//! assert_eq!(response.status(), 200); // {"ok":true,"forwarded":true}
//! let again = endpoint.oneshot(request()).await.unwrap();
//! assert_eq!(again.status(), 200); // {"ok":true,"duplicate":true}: not published again
//!
//! let published = recorder.0.lock().unwrap();
//! assert_eq!(published.len(), 1);
//! assert_eq!(published[0].message_id(), "generic:evt-1");
//! # }
//! ```
//!
//! The relay form: `inbox.worker(Relay::new(publisher))` (see [`Relay`]).

#[cfg(feature = "jetstream")]
mod jetstream;
mod message;
#[cfg(feature = "rabbitmq")]
mod rabbitmq;
#[cfg(feature = "redis-stream")]
mod redis_stream;
mod relay;
mod service;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

#[cfg(feature = "jetstream")]
#[cfg_attr(docsrs, doc(cfg(feature = "jetstream")))]
pub use self::jetstream::JetStreamPublisher;
pub use self::message::{Destinations, Message, header};
#[cfg(feature = "rabbitmq")]
#[cfg_attr(docsrs, doc(cfg(feature = "rabbitmq")))]
pub use self::rabbitmq::RabbitMqPublisher;
#[cfg(feature = "redis-stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis-stream")))]
pub use self::redis_stream::RedisStreamPublisher;
pub use self::relay::Relay;
pub use self::service::{ForwardFuture, ForwardService};
use crate::backend::BoxError;

/// Why a publish was not confirmed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The broker could not be reached, or the connection failed before it
    /// confirmed. The message may or may not have been stored; publishing
    /// again is safe where the broker dedupes (see the [module docs](self)).
    #[error("the broker is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The broker answered but did not store the message: no JetStream
    /// stream captures the subject, RabbitMQ refused it (a nack) or could
    /// route it to no queue, Redis refused the command.
    #[error("the broker refused the message: {0}")]
    Rejected(String),
    /// The broker did not confirm within the timeout.
    #[error("the broker did not confirm within {} ms", .0.as_millis())]
    Timeout(Duration),
}

impl ForwardError {
    /// An [`Unavailable`](Self::Unavailable) error.
    pub fn unavailable(error: impl Into<BoxError>) -> Self {
        Self::Unavailable(error.into())
    }
}

/// Publishes messages to a broker and waits for its confirmation.
///
/// Implement it for another broker with the same promise: `Ok` only once
/// the broker stored the message.
///
/// ```
/// use async_trait::async_trait;
/// use tower_webhooks::forward::{ForwardError, Message, Publisher};
///
/// /// Prints instead of publishing (for development).
/// #[derive(Debug)]
/// struct Print;
///
/// #[async_trait]
/// impl Publisher for Print {
///     async fn publish(&self, message: &Message) -> Result<(), ForwardError> {
///         println!("{} ({} bytes)", message.message_id(), message.body.len());
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Publisher: fmt::Debug + Send + Sync + 'static {
    /// Publishes `message` and returns once the broker confirmed it stored
    /// it.
    ///
    /// # Errors
    ///
    /// [`ForwardError`] if the broker is unreachable, refused the message or
    /// did not confirm.
    async fn publish(&self, message: &Message) -> Result<(), ForwardError>;
}

#[async_trait]
impl<T: Publisher + ?Sized> Publisher for std::sync::Arc<T> {
    async fn publish(&self, message: &Message) -> Result<(), ForwardError> {
        (**self).publish(message).await
    }
}

/// The connection timeout every publisher uses unless told otherwise: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
