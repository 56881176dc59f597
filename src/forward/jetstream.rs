//! NATS JetStream.

use std::fmt;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::{DEFAULT_CONNECT_TIMEOUT, Destinations, ForwardError, Message, Publisher};

/// Publishes to NATS JetStream and waits for the stream's `PubAck`
/// (feature `jetstream`).
///
/// - **Subject:** [`Destinations`], `webhooks.<namespace>` by default. A
///   stream must capture it (for instance a stream with the subjects
///   `webhooks.>`); a subject no stream captures is
///   [`ForwardError::Rejected`], never silently dropped.
/// - **Dedupe:** `Nats-Msg-Id` is `namespace:event-id`, so the stream keeps
///   one message per event within its duplicate window (the stream's
///   `duplicate_window`, 2 minutes unless the stream sets another). Make
///   that window longer than the longest time between a publish and its
///   retry (the inbox's backoff, a sender's retry after a 503) where
///   duplicates downstream matter; after it, a republished event is stored
///   again.
/// - **Headers:** those of [`Message::headers`].
/// - **Connection:** made on the first publish (and tried again on the next
///   one while it fails); once made, the client reconnects on its own.
///
/// ```no_run
/// use tower_webhooks::forward::{Destinations, JetStreamPublisher, Message, Publisher};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_webhooks::forward::ForwardError> {
/// let publisher = JetStreamPublisher::new("nats://127.0.0.1:4222")
///     .destinations(Destinations::new("webhooks").route("stripe", "payments.stripe"));
/// publisher.publish(&Message::verified("github", "delivery-1", "{}")).await?;
/// # Ok(())
/// # }
/// ```
pub struct JetStreamPublisher {
    url: String,
    connect_timeout: Duration,
    destinations: Destinations,
    context: OnceCell<async_nats::jetstream::Context>,
}

impl fmt::Debug for JetStreamPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is left out: it may hold credentials.
        f.debug_struct("JetStreamPublisher")
            .field("destinations", &self.destinations)
            .field("connected", &self.context.initialized())
            .finish_non_exhaustive()
    }
}

impl JetStreamPublisher {
    /// A publisher to the NATS server at `url` (`nats://host:port`),
    /// connecting on the first publish.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            destinations: Destinations::default(),
            context: OnceCell::new(),
        }
    }

    /// A publisher over a client you connected yourself (credentials, TLS,
    /// several servers).
    pub fn with_client(client: async_nats::Client) -> Self {
        Self {
            url: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            destinations: Destinations::default(),
            context: OnceCell::new_with(Some(async_nats::jetstream::new(client))),
        }
    }

    /// Where each namespace's messages go. Default `webhooks.<namespace>`.
    #[must_use]
    pub fn destinations(mut self, destinations: Destinations) -> Self {
        self.destinations = destinations;
        self
    }

    /// The longest a connection attempt may take. Default 5 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    async fn context(&self) -> Result<&async_nats::jetstream::Context, ForwardError> {
        self.context
            .get_or_try_init(|| async {
                let connect = async_nats::ConnectOptions::new()
                    .connection_timeout(self.connect_timeout)
                    .connect(self.url.as_str());
                let client = tokio::time::timeout(self.connect_timeout, connect)
                    .await
                    .map_err(|_| ForwardError::Timeout(self.connect_timeout))?
                    .map_err(ForwardError::unavailable)?;
                Ok(async_nats::jetstream::new(client))
            })
            .await
    }
}

#[async_trait]
impl Publisher for JetStreamPublisher {
    async fn publish(&self, message: &Message) -> Result<(), ForwardError> {
        let context = self.context().await?;
        let subject = self.destinations.resolve(&message.namespace).into_owned();
        let mut publish = PublishMessage::build()
            .payload(message.body.clone())
            .message_id(message.message_id());
        for (name, value) in message.headers() {
            publish = publish.header(name, value);
        }
        let rejected = |error: async_nats::jetstream::context::PublishError| match error.kind() {
            PublishErrorKind::StreamNotFound => ForwardError::Rejected(format!(
                "no JetStream stream captures the subject `{subject}`"
            )),
            PublishErrorKind::MaxPayloadExceeded => {
                ForwardError::Rejected("the message exceeds the server's max_payload".to_owned())
            }
            _ => ForwardError::unavailable(error),
        };
        let ack = context
            .send_publish(subject.clone(), publish)
            .await
            .map_err(rejected)?
            .await
            .map_err(rejected)?;
        if ack.duplicate {
            tracing::debug!(
                message_id = %message.message_id(),
                stream = %ack.stream,
                "JetStream kept the earlier copy of this event"
            );
        }
        Ok(())
    }
}
