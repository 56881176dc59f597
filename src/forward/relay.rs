//! The relay: an inbox handler that publishes each event.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{ForwardError, Message, Publisher, header};
use crate::inbox::{Handler, HandlerError, InboxEvent};

/// An inbox [`Handler`] that publishes each event through a [`Publisher`]
/// (the outbox relay).
///
/// The inbox has recorded the event before the sender was answered, and the
/// relay marks it `succeeded` only once the broker confirmed the publish. A
/// failed or unconfirmed publish is a retryable [`HandlerError`]: the
/// worker retries with backoff, and after its last attempt the event is
/// dead, to be requeued from the audit trail.
///
/// The message's provider is the event's namespace (the provider's name
/// unless the route set its own namespace), and its content type and trace
/// context are the kept headers `content-type`, `traceparent` and
/// `tracestate`: keep the last two with
/// [`Inbox::keep_header`](crate::inbox::Inbox::keep_header) to pass them on.
/// Its reception time is the inbox's.
///
/// ```no_run
/// # #[cfg(feature = "jetstream")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_webhooks::forward::{JetStreamPublisher, Relay};
/// use tower_webhooks::inbox::{Inbox, MemoryInbox};
///
/// // Keep the trace context, so the relay passes it on.
/// let inbox = Inbox::new(MemoryInbox::new())
///     .keep_header(http::HeaderName::from_static("traceparent"))
///     .keep_header(http::HeaderName::from_static("tracestate"));
/// let relay = Relay::new(JetStreamPublisher::new("nats://127.0.0.1:4222"));
/// let worker = inbox.worker(relay).spawn();
/// // ... serve `inbox.accept()` behind a WebhookLayer ...
/// worker.shutdown().await;
/// # }
/// # #[cfg(not(feature = "jetstream"))]
/// # fn main() {}
/// ```
#[derive(Clone, Debug)]
pub struct Relay {
    publisher: Arc<dyn Publisher>,
    timeout: Duration,
}

impl Relay {
    /// The default time a publish may take before it counts as failed: 10 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Publishes through `publisher`.
    pub fn new(publisher: impl Publisher) -> Self {
        Self::from_shared(Arc::new(publisher))
    }

    /// Publishes through a publisher shared with other relays or services.
    pub fn from_shared(publisher: Arc<dyn Publisher>) -> Self {
        Self {
            publisher,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// How long a publish may take, confirmation included, before it counts
    /// as failed (and is retried). Default 10 s; keep it below the worker's
    /// handler timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The message published for `event`.
    pub fn message(event: &InboxEvent) -> Message {
        let kept = |name: &str| event.header(name).map(str::to_owned);
        Message::verified(
            event.key.namespace.clone(),
            event.key.event_id.clone(),
            event.body.clone(),
        )
        .with_received_at(event.received_at)
        .with_content_type(kept(header::CONTENT_TYPE))
        .with_trace_context(kept(header::TRACEPARENT), kept(header::TRACESTATE))
    }
}

#[async_trait]
impl Handler for Relay {
    async fn handle(&self, event: InboxEvent) -> Result<(), HandlerError> {
        let message = Self::message(&event);
        match tokio::time::timeout(self.timeout, self.publisher.publish(&message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(HandlerError::retry(error)),
            Err(_) => Err(HandlerError::retry(ForwardError::Timeout(self.timeout))),
        }
    }
}
