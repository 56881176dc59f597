//! RabbitMQ, with publisher confirms.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use super::{DEFAULT_CONNECT_TIMEOUT, Destinations, ForwardError, Message, Publisher, header};

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// Publishes to RabbitMQ and waits for the publisher confirm (feature
/// `rabbitmq`).
///
/// - **Routing:** to the exchange set with [`exchange`](Self::exchange)
///   (default `""`, the default exchange, which routes to the queue named
///   by the routing key), with the routing key from [`Destinations`],
///   `webhooks.<namespace>` by default. Messages are published
///   *mandatory*: one that no queue takes is returned by the broker and
///   reported as [`ForwardError::Rejected`], never confirmed as stored.
///   Declare the queues (durable, or quorum queues) and bindings yourself.
/// - **Durability:** persistent delivery mode, and `Ok` only on the broker's
///   `basic.ack` in confirm mode (a `basic.nack` is
///   [`ForwardError::Rejected`]).
/// - **Dedupe:** RabbitMQ has no broker-side dedupe. The message's
///   `message_id` is `namespace:event-id`: consumers dedupe by it (a
///   republished event, after a crash between the confirm and the inbox's
///   `succeeded` or after a publish that timed out but was stored, arrives
///   twice with the same id).
/// - **Properties:** `message_id`, `content_type` (when known), `timestamp`
///   (seconds), and the other [`Message::headers`] in the AMQP headers table.
/// - **Connection:** one connection and one confirm-mode channel, made on
///   the first publish and made again on the next publish after either
///   closed.
///
/// ```no_run
/// use tower_webhooks::forward::{Message, Publisher, RabbitMqPublisher};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_webhooks::forward::ForwardError> {
/// let publisher = RabbitMqPublisher::new("amqp://guest:guest@127.0.0.1:5672/%2f")
///     .exchange("webhooks");
/// publisher.publish(&Message::verified("github", "delivery-1", "{}")).await?;
/// # Ok(())
/// # }
/// ```
pub struct RabbitMqPublisher {
    url: String,
    exchange: String,
    connect_timeout: Duration,
    destinations: Destinations,
    connection: Mutex<Option<(Connection, Channel)>>,
}

impl fmt::Debug for RabbitMqPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is left out: it holds credentials.
        f.debug_struct("RabbitMqPublisher")
            .field("exchange", &self.exchange)
            .field("destinations", &self.destinations)
            .finish_non_exhaustive()
    }
}

impl RabbitMqPublisher {
    /// A publisher to the RabbitMQ at `url`
    /// (`amqp://user:password@host:port/vhost`, the vhost URL-encoded:
    /// `%2f` for `/`), connecting on the first publish.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            exchange: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            destinations: Destinations::default(),
            connection: Mutex::new(None),
        }
    }

    /// The exchange to publish to. Default `""` (the default exchange).
    #[must_use]
    pub fn exchange(mut self, exchange: impl Into<String>) -> Self {
        self.exchange = exchange.into();
        self
    }

    /// The routing key of each namespace's messages. Default
    /// `webhooks.<namespace>`.
    #[must_use]
    pub fn destinations(mut self, destinations: Destinations) -> Self {
        self.destinations = destinations;
        self
    }

    /// The longest connecting (and opening the channel) may take. Default
    /// 5 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The open confirm-mode channel, opened now if there is none.
    async fn channel(&self) -> Result<Channel, ForwardError> {
        let mut connection = self.connection.lock().await;
        if let Some((open, channel)) = connection.as_ref()
            && open.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *connection = None;
        let connect = async {
            let open = Connection::connect(&self.url, ConnectionProperties::default()).await?;
            let channel = open.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, lapin::Error>((open, channel))
        };
        let (open, channel) = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| ForwardError::Timeout(self.connect_timeout))?
            .map_err(ForwardError::unavailable)?;
        *connection = Some((open, channel.clone()));
        Ok(channel)
    }

    fn properties(message: &Message) -> BasicProperties {
        let mut headers = FieldTable::default();
        for (name, value) in message.headers() {
            if name != header::CONTENT_TYPE {
                headers.insert(
                    ShortString::from(name),
                    AMQPValue::LongString(LongString::from(value)),
                );
            }
        }
        let mut properties = BasicProperties::default()
            .with_message_id(ShortString::from(message.message_id()))
            .with_delivery_mode(PERSISTENT)
            .with_timestamp(message.received_at_millis() / 1_000)
            .with_headers(headers);
        if let Some(content_type) = &message.content_type {
            properties = properties.with_content_type(ShortString::from(content_type.as_str()));
        }
        properties
    }
}

#[async_trait]
impl Publisher for RabbitMqPublisher {
    async fn publish(&self, message: &Message) -> Result<(), ForwardError> {
        let channel = self.channel().await?;
        let routing_key = self.destinations.resolve(&message.namespace).into_owned();
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirmation = channel
            .basic_publish(
                ShortString::from(self.exchange.as_str()),
                ShortString::from(routing_key.as_str()),
                options,
                &message.body,
                Self::properties(message),
            )
            .await
            .map_err(ForwardError::unavailable)?
            .await
            .map_err(ForwardError::unavailable)?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(ForwardError::Rejected(format!(
                "no queue takes the routing key `{routing_key}` on exchange `{}`",
                self.exchange
            ))),
            Confirmation::Nack(_) => Err(ForwardError::Rejected(
                "the broker could not store the message (basic.nack)".to_owned(),
            )),
            Confirmation::NotRequested => Err(ForwardError::Rejected(
                "the channel is not in confirm mode".to_owned(),
            )),
        }
    }
}
