//! The other end of the receiver's relay: consumes the events the receiver
//! (`FORWARD_TO=...`) published to a broker and prints, for each message,
//! the same `handled event_id=<id> type=<type> provider=<name> ...` line
//! the receiver prints when it handles events itself, so scripts count
//! end to end the same way.
//!
//! ```text
//! FORWARD_TO=jetstream cargo run --example receiver   # one terminal
//! FORWARD_TO=jetstream cargo run --example consumer   # another
//! cargo run --example send -- --id evt_1              # the consumer prints it
//! ```
//!
//! It takes the receiver's variables (`FORWARD_TO`, `NATS_URL`, `AMQP_URL`,
//! `REDIS_URL`, `FORWARD_SUBJECT`, `FORWARD_STREAM`; see the receiver's
//! docs), declares what it reads from if absent (so it may start first),
//! and acknowledges each message only after its line is printed: a consumer
//! killed in between gets the message again (at-least-once).
//!
//! | `FORWARD_TO` (default `jetstream`) | reads from |
//! |---|---|
//! | `jetstream` | the stream `FORWARD_STREAM` through the durable pull consumer `FORWARD_CONSUMER`: a restarted consumer resumes where it stopped; two consumers of one name share the messages |
//! | `rabbitmq` | the durable queue `<FORWARD_SUBJECT>` (prefetch 256) |
//! | `redis-stream` | the stream `<FORWARD_SUBJECT>` through the consumer group `FORWARD_CONSUMER` (created at the stream's start), entries acknowledged with `XACK`; pending entries of this consumer (`CONSUMER_ID`, default `consumer-1`) are read again first after a restart |
//!
//! Other variables: `FORWARD_CONSUMER` (default `consumer`), `HANDLER_DELAY_MS`
//! (how long each message's handling takes, default `0`).
//!
//! `--cleanup` deletes what the pair declared (the JetStream stream, the
//! RabbitMQ queue and exchange, the Redis stream and its guard keys) and
//! exits: scripts end with it.
//!
//! Refuses to start (exit status 1, one line on stderr) when a variable is
//! invalid or the broker is unreachable. Stops on Ctrl-C or SIGTERM after
//! the message in hand is printed and acknowledged.

mod common;
#[path = "common/forward.rs"]
mod forward;

use std::process::ExitCode;
use std::time::Duration;

use common::BoxError;
use forward::{Broker, Forward};
use futures_util::StreamExt;
use tower_webhooks::forward::header;

#[tokio::main]
async fn main() -> ExitCode {
    common::init_tracing();
    common::exit(run().await)
}

async fn run() -> Result<(), BoxError> {
    let cleanup = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--cleanup") => true,
        Some(other) => {
            return Err(
                format!("unexpected argument {other:?}; usage: consumer [--cleanup]").into(),
            );
        }
    };
    // FORWARD_TO defaults to jetstream here (unset, the receiver handles
    // events itself).
    let forward = match Forward::from_env()? {
        Some(forward) => forward,
        None => Forward::from_env_with("jetstream")?,
    };
    run_with(forward, cleanup).await
}

async fn run_with(forward: Forward, cleanup: bool) -> Result<(), BoxError> {
    if cleanup {
        return delete(&forward).await;
    }
    forward.prepare(true).await?;
    tracing::info!(
        broker = forward.broker.name(),
        subject = %forward.subject,
        "consuming"
    );
    match forward.broker {
        Broker::JetStream => consume_jetstream(&forward).await,
        Broker::RabbitMq => consume_rabbitmq(&forward).await,
        Broker::RedisStream => consume_redis(&forward).await,
    }
}

/// Prints the `handled` line of one message.
async fn handle(event_id: Option<&str>, provider: Option<&str>, body: &[u8]) {
    common::handle_event(provider.unwrap_or("-"), event_id.unwrap_or("-"), body).await;
}

// ---- JetStream ----------------------------------------------------------------

async fn consume_jetstream(forward: &Forward) -> Result<(), BoxError> {
    use async_nats::jetstream::consumer::{AckPolicy, pull};
    let context = forward.jetstream().await?;
    let stream = forward::jetstream_stream(&context, forward).await?;
    let name = forward.consumer_name()?;
    let consumer = stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .map_err(|error| format!("JetStream consumer {name}: {error}"))?;
    let mut messages = consumer.messages().await?;
    let shutdown = common::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            () = &mut shutdown => return Ok(()),
        };
        let Some(message) = message else {
            return Err("the JetStream consumer ended".into());
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                // Missed heartbeats while the server is away, say: the
                // stream goes on once it is back.
                tracing::warn!(%error, "JetStream");
                continue;
            }
        };
        let headers = message.headers.as_ref();
        let text = |name: &str| {
            headers
                .and_then(|headers| headers.get(name))
                .map(|value| value.as_str().to_owned())
        };
        handle(
            text(header::EVENT_ID).as_deref(),
            text(header::PROVIDER).as_deref(),
            &message.payload,
        )
        .await;
        if let Err(error) = message.ack().await {
            tracing::warn!(%error, "could not acknowledge; the message comes again");
        }
    }
}

// ---- RabbitMQ -----------------------------------------------------------------

async fn consume_rabbitmq(forward: &Forward) -> Result<(), BoxError> {
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
    use lapin::types::{AMQPValue, FieldTable, ShortString};
    let (connection, channel) = forward.rabbitmq().await?;
    channel.basic_qos(256, BasicQosOptions::default()).await?;
    let mut deliveries = channel
        .basic_consume(
            ShortString::from(forward.subject.as_str()),
            ShortString::from(format!("consumer-{}", std::process::id())),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let shutdown = common::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let delivery = tokio::select! {
            delivery = deliveries.next() => delivery,
            () = &mut shutdown => break,
        };
        let delivery = match delivery {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => return Err(format!("RabbitMQ: {error}").into()),
            None => return Err("RabbitMQ closed the consumer".into()),
        };
        let headers = delivery.properties.headers().as_ref();
        let text = |name: &str| match headers?.inner().get(&ShortString::from(name))? {
            AMQPValue::LongString(value) => {
                Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
            }
            _ => None,
        };
        handle(
            text(header::EVENT_ID).as_deref(),
            text(header::PROVIDER).as_deref(),
            &delivery.data,
        )
        .await;
        delivery.ack(BasicAckOptions::default()).await?;
    }
    // Unacknowledged prefetched messages go back to the queue.
    let _ = channel.close(200, ShortString::from("bye")).await;
    let _ = connection.close(200, ShortString::from("bye")).await;
    Ok(())
}

// ---- Redis Streams ------------------------------------------------------------

/// One stream entry: its id and fields.
type Entry = (String, Vec<(String, Vec<u8>)>);

async fn consume_redis(forward: &Forward) -> Result<(), BoxError> {
    let mut connection = forward.redis().await?;
    let group = forward.consumer_name()?;
    let me = std::env::var("CONSUMER_ID")
        .ok()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| "consumer-1".to_owned());
    // First this consumer's pending entries (delivered before a crash, not
    // acknowledged), then new ones.
    let mut from = "0".to_owned();
    let shutdown = common::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(&group)
            .arg(&me)
            .arg("COUNT")
            .arg(256)
            .arg("BLOCK")
            .arg(1_000)
            .arg("STREAMS")
            .arg(&forward.subject)
            .arg(&from);
        let read = command.query_async::<redis::Value>(&mut connection);
        let reply = tokio::select! {
            reply = read => reply,
            () = &mut shutdown => return Ok(()),
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                tracing::warn!(%error, "Redis; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let entries = entries(reply);
        if entries.is_empty() && from != ">" {
            from = ">".to_owned();
            continue;
        }
        for (id, fields) in entries {
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(field, _)| field == name)
                    .map(|(_, value)| value.as_slice())
            };
            let text =
                |name: &str| field(name).map(|value| String::from_utf8_lossy(value).into_owned());
            handle(
                text(header::EVENT_ID).as_deref(),
                text(header::PROVIDER).as_deref(),
                field("body").unwrap_or_default(),
            )
            .await;
            let acked: redis::RedisResult<i64> = redis::cmd("XACK")
                .arg(&forward.subject)
                .arg(&group)
                .arg(&id)
                .query_async(&mut connection)
                .await;
            if let Err(error) = acked {
                tracing::warn!(%error, "could not acknowledge; the entry comes again after a restart");
            }
        }
    }
}

/// The entries of an `XREADGROUP` reply (one stream): RESP2 arrays or a
/// RESP3 map.
fn entries(reply: redis::Value) -> Vec<Entry> {
    use redis::Value;
    let streams = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .collect::<Vec<_>>(),
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        _ => Vec::new(),
    };
    let bytes = |value: Value| match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        _ => None,
    };
    let mut out = Vec::new();
    for stream in streams {
        let Value::Array(items) = stream else {
            continue;
        };
        for item in items {
            let Value::Array(mut pair) = item else {
                continue;
            };
            if pair.len() != 2 {
                continue;
            }
            let fields = pair.pop();
            let Some(id) = pair.pop().and_then(bytes) else {
                continue;
            };
            let mut parsed = Vec::new();
            if let Some(Value::Array(flat)) = fields {
                let mut flat = flat.into_iter();
                while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
                    if let (Some(name), Some(value)) = (bytes(name), bytes(value)) {
                        parsed.push((String::from_utf8_lossy(&name).into_owned(), value));
                    }
                }
            }
            out.push((String::from_utf8_lossy(&id).into_owned(), parsed));
        }
    }
    out
}

// ---- --cleanup -----------------------------------------------------------------

async fn delete(forward: &Forward) -> Result<(), BoxError> {
    match forward.broker {
        Broker::JetStream => {
            let context = forward.jetstream().await?;
            let name = forward.stream_name()?;
            match context.delete_stream(&name).await {
                Ok(_) => eprintln!("deleted the stream {name}"),
                Err(error) => eprintln!("stream {name}: {error}"),
            }
        }
        Broker::RabbitMq => {
            use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
            use lapin::types::ShortString;
            let (_connection, channel) = forward.rabbitmq().await?;
            let name = || ShortString::from(forward.subject.as_str());
            let messages = channel
                .queue_delete(name(), QueueDeleteOptions::default())
                .await?;
            channel
                .exchange_delete(name(), ExchangeDeleteOptions::default())
                .await?;
            eprintln!(
                "deleted the queue and exchange {} ({messages} messages left in it)",
                forward.subject
            );
        }
        Broker::RedisStream => {
            let mut connection = forward.redis().await?;
            let mut deleted: u64 = redis::cmd("DEL")
                .arg(&forward.subject)
                .query_async(&mut connection)
                .await?;
            let pattern = format!("{}:forwarded:*", forward.subject);
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1_000)
                    .query_async(&mut connection)
                    .await?;
                if !keys.is_empty() {
                    deleted += redis::cmd("DEL")
                        .arg(&keys)
                        .query_async::<u64>(&mut connection)
                        .await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            eprintln!("deleted {deleted} keys (the stream and its guard keys)");
        }
    }
    Ok(())
}
