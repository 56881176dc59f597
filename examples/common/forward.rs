//! What the receiver and the consumer agree on when events go through a
//! broker: `FORWARD_TO`, the broker's URL, `FORWARD_SUBJECT`, and where
//! the messages are kept.
//!
//! | `FORWARD_TO` | URL variable (default) | the receiver publishes to | the consumer reads |
//! |---|---|---|---|
//! | `jetstream` | `NATS_URL` (`nats://127.0.0.1:4222`) | the subject `<subject>.<namespace>` | the stream `FORWARD_STREAM` (default: the subject prefix, `.` replaced by `_`), capturing `<subject>.>`, duplicate window 2 min, through the durable pull consumer `FORWARD_CONSUMER` |
//! | `rabbitmq` | `AMQP_URL` (`amqp://guest:guest@127.0.0.1:5672/%2f`) | the durable topic exchange `<subject>` with the routing key `<subject>.<namespace>` | the durable queue `<subject>`, bound to it with `<subject>.#` |
//! | `redis-stream` | `REDIS_URL` (`redis://127.0.0.1:6379/`) | the stream `<subject>` (every namespace) | that stream, through the consumer group `FORWARD_CONSUMER` |
//!
//! Both sides declare what they need (stream, exchange, queue, binding,
//! group) when they start, so either may start first.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tower_webhooks::forward::{
    Destinations, JetStreamPublisher, Publisher, RabbitMqPublisher, RedisStreamPublisher,
};

use crate::common::BoxError;

/// How long declaring the broker's objects may take at start.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(10);

/// The JetStream stream's duplicate window: a republished event (after a
/// crash between the broker's confirmation and the inbox's `succeeded`, or
/// a publish that timed out but was stored) is dropped within it.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A broker `FORWARD_TO` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broker {
    /// NATS JetStream.
    JetStream,
    /// RabbitMQ.
    RabbitMq,
    /// Redis Streams.
    RedisStream,
}

impl Broker {
    /// The `FORWARD_TO` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::JetStream => "jetstream",
            Self::RabbitMq => "rabbitmq",
            Self::RedisStream => "redis-stream",
        }
    }
}

/// The broker settings read from the environment.
#[derive(Clone)]
pub struct Forward {
    /// The broker.
    pub broker: Broker,
    /// Its URL (may hold credentials: never printed).
    url: String,
    /// `FORWARD_SUBJECT`: the subject prefix, routing key prefix and
    /// exchange and queue name, or stream name.
    pub subject: String,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("broker", &self.broker)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// `FORWARD_SUBJECT` (and `FORWARD_STREAM`, `FORWARD_CONSUMER`): tokens of
/// ASCII letters, digits, `_` and `-`, separated by single dots, at most 200
/// bytes: valid as a NATS subject prefix, an AMQP exchange, queue and
/// routing key, and a Redis key.
fn valid_name(value: &str, dots: bool) -> bool {
    value.len() <= 200
        && value.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
        })
        && (dots || !value.contains('.'))
}

impl Forward {
    /// The settings, from `FORWARD_TO` (`None` when it is unset or empty),
    /// its URL variable and `FORWARD_SUBJECT`.
    ///
    /// # Errors
    ///
    /// `FORWARD_TO` names no broker, the URL does not parse, or
    /// `FORWARD_SUBJECT` is not a valid name (the message names the
    /// variable, never the URL's credentials).
    pub fn from_env() -> Result<Option<Self>, BoxError> {
        var("FORWARD_TO")
            .map(|to| Self::from_env_with(&to))
            .transpose()
    }

    /// The settings for the broker `to` (a `FORWARD_TO` value), from its URL
    /// variable and `FORWARD_SUBJECT`.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_env_with(to: &str) -> Result<Self, BoxError> {
        let broker = match to {
            "jetstream" => Broker::JetStream,
            "rabbitmq" => Broker::RabbitMq,
            "redis-stream" => Broker::RedisStream,
            other => {
                return Err(format!(
                    "FORWARD_TO={other}: expected jetstream, rabbitmq or redis-stream"
                )
                .into());
            }
        };
        let subject = var("FORWARD_SUBJECT").unwrap_or_else(|| "webhooks".to_owned());
        if !valid_name(&subject, true) {
            return Err(format!(
                "FORWARD_SUBJECT={subject}: expected tokens of letters, digits, `_` and `-` \
                 separated by single dots (at most 200 bytes)"
            )
            .into());
        }
        let url = match broker {
            Broker::JetStream => {
                let url = var("NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
                url.parse::<async_nats::ServerAddr>()
                    .map_err(|error| format!("NATS_URL is invalid: {error}"))?;
                url
            }
            Broker::RabbitMq => {
                let url = var("AMQP_URL")
                    .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
                url.parse::<lapin::uri::AMQPUri>().map_err(
                    |_| "AMQP_URL is invalid: expected amqp://user:password@host:port/vhost",
                )?;
                url
            }
            Broker::RedisStream => {
                let url = var("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379/".to_owned());
                redis::Client::open(url.as_str()).map_err(
                    |_| "REDIS_URL is invalid: expected redis://[:password@]host:port/[db]",
                )?;
                url
            }
        };
        let forward = Self {
            broker,
            url,
            subject,
        };
        // Read now, so a bad value stops the start.
        forward.stream_name()?;
        forward.consumer_name()?;
        Ok(forward)
    }

    /// The broker's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The JetStream stream: `FORWARD_STREAM`, default the subject prefix
    /// with `.` replaced by `_`.
    ///
    /// # Errors
    ///
    /// `FORWARD_STREAM` is not a valid stream name.
    pub fn stream_name(&self) -> Result<String, BoxError> {
        match var("FORWARD_STREAM") {
            Some(name) if valid_name(&name, false) => Ok(name),
            Some(name) => Err(format!(
                "FORWARD_STREAM={name}: expected letters, digits, `_` and `-` (at most 200 bytes)"
            )
            .into()),
            None => Ok(self.subject.replace('.', "_")),
        }
    }

    /// The durable consumer (JetStream) or consumer group (Redis Streams):
    /// `FORWARD_CONSUMER`, default `consumer`.
    ///
    /// # Errors
    ///
    /// `FORWARD_CONSUMER` is not a valid name.
    pub fn consumer_name(&self) -> Result<String, BoxError> {
        match var("FORWARD_CONSUMER") {
            Some(name) if valid_name(&name, false) => Ok(name),
            Some(name) => Err(format!(
                "FORWARD_CONSUMER={name}: expected letters, digits, `_` and `-` (at most 200 \
                 bytes)"
            )
            .into()),
            None => Ok("consumer".to_owned()),
        }
    }

    /// The publisher the receiver's relay uses. `namespaces` are the
    /// receiver's routes' namespaces: Redis Streams sends them all to the
    /// one stream `<subject>`.
    pub fn publisher(&self, namespaces: &[&str]) -> Arc<dyn Publisher> {
        let destinations = Destinations::new(self.subject.as_str());
        match self.broker {
            Broker::JetStream => {
                Arc::new(JetStreamPublisher::new(self.url.as_str()).destinations(destinations))
            }
            Broker::RabbitMq => Arc::new(
                RabbitMqPublisher::new(self.url.as_str())
                    .exchange(self.subject.as_str())
                    .destinations(destinations),
            ),
            Broker::RedisStream => {
                let destinations = namespaces.iter().fold(destinations, |all, namespace| {
                    all.route(*namespace, self.subject.as_str())
                });
                Arc::new(
                    RedisStreamPublisher::new(self.url.as_str())
                        .guard_prefix(format!("{}:forwarded:", self.subject))
                        .destinations(destinations),
                )
            }
        }
    }

    /// Declares what both sides need: the JetStream stream; the RabbitMQ
    /// exchange, queue and binding; the Redis stream and consumer group
    /// (the group only when `group` is set: the consumer's side).
    ///
    /// # Errors
    ///
    /// The broker is unreachable, slow, or refused a declaration (a stream
    /// of that name capturing other subjects is kept as it is).
    pub async fn prepare(&self, group: bool) -> Result<(), BoxError> {
        let prepare = async {
            match self.broker {
                Broker::JetStream => {
                    jetstream_stream(&self.jetstream().await?, self).await?;
                }
                Broker::RabbitMq => {
                    let (_connection, channel) = self.rabbitmq().await?;
                    // The connection closes when dropped.
                    drop(channel);
                }
                Broker::RedisStream => {
                    if group {
                        let mut connection = self.redis().await?;
                        redis_group(&mut connection, &self.subject, &self.consumer_name()?).await?;
                    }
                }
            }
            Ok::<_, BoxError>(())
        };
        tokio::time::timeout(PREPARE_TIMEOUT, prepare)
            .await
            .map_err(|_| {
                format!(
                    "{} did not answer within {} s",
                    self.broker.name(),
                    PREPARE_TIMEOUT.as_secs()
                )
            })?
    }

    /// A JetStream context on a fresh connection.
    ///
    /// # Errors
    ///
    /// NATS is unreachable.
    pub async fn jetstream(&self) -> Result<async_nats::jetstream::Context, BoxError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(self.url.as_str())
            .await
            .map_err(|error| format!("NATS: {error}"))?;
        Ok(async_nats::jetstream::new(client))
    }

    /// A RabbitMQ connection and channel, with the exchange, the queue and
    /// its binding declared.
    ///
    /// # Errors
    ///
    /// RabbitMQ is unreachable or refused a declaration.
    pub async fn rabbitmq(&self) -> Result<(lapin::Connection, lapin::Channel), BoxError> {
        use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
        use lapin::types::{FieldTable, ShortString};
        let connection =
            lapin::Connection::connect(&self.url, lapin::ConnectionProperties::default())
                .await
                .map_err(|error| format!("RabbitMQ: {error}"))?;
        let channel = connection.create_channel().await?;
        let name = || ShortString::from(self.subject.as_str());
        channel
            .exchange_declare(
                name(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                name(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                name(),
                name(),
                ShortString::from(format!("{}.#", self.subject)),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((connection, channel))
    }

    /// A Redis connection.
    ///
    /// # Errors
    ///
    /// Redis is unreachable.
    pub async fn redis(&self) -> Result<redis::aio::MultiplexedConnection, BoxError> {
        let client = redis::Client::open(self.url.as_str())?;
        // Longer than the consumer's blocking reads (1 s).
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)));
        Ok(client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|error| format!("Redis: {error}"))?)
    }
}

/// Creates the stream capturing `<subject>.>` unless it exists.
///
/// # Errors
///
/// JetStream refused it (or is not enabled on the server).
pub async fn jetstream_stream(
    context: &async_nats::jetstream::Context,
    forward: &Forward,
) -> Result<async_nats::jetstream::stream::Stream, BoxError> {
    let config = async_nats::jetstream::stream::Config {
        name: forward.stream_name()?,
        subjects: vec![format!("{}.>", forward.subject)],
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    Ok(context
        .get_or_create_stream(config)
        .await
        .map_err(|error| format!("JetStream: {error}"))?)
}

/// Creates the consumer group `group` on `stream` (and the stream) unless it
/// exists, reading from the stream's start.
///
/// # Errors
///
/// Redis refused it for another reason than an existing group.
pub async fn redis_group(
    connection: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    group: &str,
) -> Result<(), BoxError> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(connection)
        .await;
    match created {
        Ok(()) => Ok(()),
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
        Err(error) => Err(format!("Redis: {error}").into()),
    }
}
