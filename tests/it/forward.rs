//! Forwarding against the real brokers: NATS JetStream, RabbitMQ and Redis
//! Streams. Set `TOWER_WEBHOOKS_NATS_URL` (e.g. `nats://127.0.0.1:4222`),
//! `TOWER_WEBHOOKS_AMQP_URL` (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`)
//! and `TOWER_WEBHOOKS_REDIS_URL` (e.g. `redis://127.0.0.1:6379/`) to run
//! them; a test without its servers is reported as ignored. Each test uses
//! its own stream, queue and key prefix, deleted at its end.
#![cfg(all(feature = "jetstream", feature = "rabbitmq", feature = "redis-stream"))]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_webhooks::forward::{
    Destinations, ForwardError, ForwardService, JetStreamPublisher, Message, Publisher,
    RabbitMqPublisher, RedisStreamPublisher, Relay, header,
};
use tower_webhooks::idempotency::{IdempotencyStore, MemoryStore, RedisStore};
use tower_webhooks::inbox::{Inbox, MemoryInbox};
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, WebhookLayer};

const SECRET: &str = "forward_secret";

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_default()
}

fn nats_url() -> String {
    env("TOWER_WEBHOOKS_NATS_URL")
}

fn amqp_url() -> String {
    env("TOWER_WEBHOOKS_AMQP_URL")
}

fn redis_url() -> String {
    env("TOWER_WEBHOOKS_REDIS_URL")
}

/// A name no other test (in this process or another) uses: letters, digits
/// and `-` only, so it is valid as a subject token, queue and key part.
fn unique(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!(
        "twtest-{kind}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A signed delivery of event `id` with `body`.
fn delivery(id: &str, timestamp: u64, body: &[u8]) -> Request<Full<Bytes>> {
    GenericSigner::new(SECRET)
        .request("/hook", id, timestamp, body)
        .map(Full::new)
}

fn webhook_layer() -> WebhookLayer {
    WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap())
}

/// A port on which nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Sends `request` through `service` and returns the status, the
/// `Retry-After` header and the body.
async fn send<S, B>(
    service: &S,
    request: Request<Full<Bytes>>,
) -> (StatusCode, Option<String>, Bytes)
where
    S: Service<Request<Full<Bytes>>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = service.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, retry_after, body)
}

// ---------------------------------------------------------------- JetStream

/// A JetStream stream capturing `<prefix>.>`, deleted by [`JetStream::delete`].
struct JetStream {
    context: async_nats::jetstream::Context,
    name: String,
    prefix: String,
}

impl JetStream {
    async fn new() -> Self {
        let client = async_nats::connect(nats_url())
            .await
            .expect("NATS reachable");
        let context = async_nats::jetstream::new(client);
        let prefix = unique("js");
        let name = prefix.replace('-', "_").to_uppercase();
        context
            .create_stream(async_nats::jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![format!("{prefix}.>")],
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .expect("stream created");
        Self {
            context,
            name,
            prefix,
        }
    }

    fn publisher(&self) -> JetStreamPublisher {
        JetStreamPublisher::new(nats_url()).destinations(Destinations::new(&self.prefix))
    }

    async fn count(&self) -> u64 {
        let mut stream = self.context.get_stream(&self.name).await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    async fn message(&self, sequence: u64) -> async_nats::jetstream::message::StreamMessage {
        let stream = self.context.get_stream(&self.name).await.unwrap();
        stream.get_raw_message(sequence).await.unwrap()
    }

    async fn delete(self) {
        self.context.delete_stream(&self.name).await.unwrap();
    }
}

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_nats),
    ignore = "set TOWER_WEBHOOKS_NATS_URL to run against NATS JetStream"
)]
async fn jetstream_round_trip_keeps_the_body_and_sets_the_headers() {
    let stream = JetStream::new().await;
    let publisher = stream.publisher();
    // Not UTF-8, with a NUL: the bytes must arrive as they are.
    let body = Bytes::from_static(b"\x00\xffbinary{\"a\":1}\r\n");
    let message = Message::verified("github", "delivery-1", body.clone())
        .with_content_type(Some("application/json".to_owned()))
        .with_trace_context(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
            None,
        );
    publisher.publish(&message).await.unwrap();

    assert_eq!(stream.count().await, 1);
    let stored = stream.message(1).await;
    assert_eq!(stored.payload, body);
    assert_eq!(stored.subject.as_str(), format!("{}.github", stream.prefix));
    let get = |name: &str| {
        stored
            .headers
            .get(name)
            .map(|value| value.as_str().to_owned())
    };
    assert_eq!(get("Nats-Msg-Id").as_deref(), Some("github:delivery-1"));
    assert_eq!(get(header::EVENT_ID).as_deref(), Some("delivery-1"));
    assert_eq!(get(header::PROVIDER).as_deref(), Some("github"));
    assert_eq!(get(header::NAMESPACE).as_deref(), Some("github"));
    assert_eq!(get(header::SIGNATURE_VERIFIED).as_deref(), Some("true"));
    assert_eq!(
        get(header::RECEIVED_AT),
        Some(message.received_at_millis().to_string())
    );
    assert_eq!(
        get(header::TRACEPARENT).as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(
        get(header::CONTENT_TYPE).as_deref(),
        Some("application/json")
    );
    stream.delete().await;
}

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_nats),
    ignore = "set TOWER_WEBHOOKS_NATS_URL to run against NATS JetStream"
)]
async fn jetstream_keeps_one_message_per_namespace_and_event_id() {
    let stream = JetStream::new().await;
    let publisher = stream.publisher();
    let first = Message::verified("github", "delivery-1", "{}");
    publisher.publish(&first).await.unwrap();
    publisher.publish(&first).await.unwrap();
    // A second publisher (another instance) publishing the same event.
    stream.publisher().publish(&first).await.unwrap();
    assert_eq!(
        stream.count().await,
        1,
        "duplicates within the window are dropped"
    );

    // The same id in another namespace, and another id: distinct events.
    publisher
        .publish(&Message::verified("stripe", "delivery-1", "{}"))
        .await
        .unwrap();
    publisher
        .publish(&Message::verified("github", "delivery-2", "{}"))
        .await
        .unwrap();
    assert_eq!(stream.count().await, 3);
    stream.delete().await;
}

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_nats),
    ignore = "set TOWER_WEBHOOKS_NATS_URL to run against NATS JetStream"
)]
async fn jetstream_refuses_a_subject_no_stream_captures() {
    let publisher =
        JetStreamPublisher::new(nats_url()).destinations(Destinations::new(unique("nostream")));
    let error = publisher
        .publish(&Message::verified("github", "delivery-1", "{}"))
        .await
        .unwrap_err();
    assert!(matches!(error, ForwardError::Rejected(_)), "{error}");
}

// ----------------------------------------------------------------- RabbitMQ

/// Durable queues named `<prefix>.<namespace>` (the default exchange routes
/// to them by routing key), deleted by [`Rabbit::delete`].
struct Rabbit {
    _connection: lapin::Connection,
    channel: lapin::Channel,
    prefix: String,
    queues: Vec<String>,
}

impl Rabbit {
    async fn new(namespaces: &[&str]) -> Self {
        let connection =
            lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
                .await
                .expect("RabbitMQ reachable");
        let channel = connection.create_channel().await.unwrap();
        let prefix = unique("amqp");
        let mut queues = Vec::new();
        for namespace in namespaces {
            let queue = format!("{prefix}.{namespace}");
            channel
                .queue_declare(
                    ShortString::from(queue.as_str()),
                    QueueDeclareOptions::durable(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            queues.push(queue);
        }
        Self {
            _connection: connection,
            channel,
            prefix,
            queues,
        }
    }

    fn publisher(&self) -> RabbitMqPublisher {
        RabbitMqPublisher::new(amqp_url()).destinations(Destinations::new(&self.prefix))
    }

    /// Takes every message out of the queue of `namespace`.
    async fn drain(&self, namespace: &str) -> Vec<lapin::message::BasicGetMessage> {
        let queue = format!("{}.{namespace}", self.prefix);
        let mut messages = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(
                ShortString::from(queue.as_str()),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            messages.push(message);
        }
        messages
    }

    async fn delete(self) {
        for queue in &self.queues {
            self.channel
                .queue_delete(
                    ShortString::from(queue.as_str()),
                    QueueDeleteOptions::default(),
                )
                .await
                .unwrap();
        }
    }
}

fn amqp_header(message: &lapin::message::BasicGetMessage, name: &str) -> Option<String> {
    let headers = message.properties.headers().as_ref()?;
    match headers.inner().get(&ShortString::from(name))? {
        AMQPValue::LongString(value) => {
            Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
        }
        _ => None,
    }
}

fn amqp_message_id(message: &lapin::message::BasicGetMessage) -> String {
    message
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_amqp),
    ignore = "set TOWER_WEBHOOKS_AMQP_URL to run against RabbitMQ"
)]
async fn rabbitmq_round_trip_is_persistent_and_carries_the_message_id() {
    let rabbit = Rabbit::new(&["github"]).await;
    let publisher = rabbit.publisher();
    let body = Bytes::from_static(b"\x00\xffbinary{\"a\":1}");
    let message = Message::verified("github", "delivery-1", body.clone())
        .with_content_type(Some("application/json".to_owned()))
        .with_trace_context(
            Some("00-abc-def-01".to_owned()),
            Some("vendor=1".to_owned()),
        );
    publisher.publish(&message).await.unwrap();

    let messages = rabbit.drain("github").await;
    assert_eq!(messages.len(), 1);
    let stored = &messages[0];
    assert_eq!(stored.data, body.to_vec());
    assert_eq!(amqp_message_id(stored), "github:delivery-1");
    assert_eq!(*stored.properties.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        stored
            .properties
            .content_type()
            .as_ref()
            .map(|value| value.as_str()),
        Some("application/json")
    );
    assert_eq!(
        amqp_header(stored, header::EVENT_ID).as_deref(),
        Some("delivery-1")
    );
    assert_eq!(
        amqp_header(stored, header::PROVIDER).as_deref(),
        Some("github")
    );
    assert_eq!(
        amqp_header(stored, header::NAMESPACE).as_deref(),
        Some("github")
    );
    assert_eq!(
        amqp_header(stored, header::SIGNATURE_VERIFIED).as_deref(),
        Some("true")
    );
    assert_eq!(
        amqp_header(stored, header::TRACEPARENT).as_deref(),
        Some("00-abc-def-01")
    );
    assert_eq!(
        amqp_header(stored, header::TRACESTATE).as_deref(),
        Some("vendor=1")
    );

    // No queue for this namespace: returned by the broker, not confirmed.
    let error = publisher
        .publish(&Message::verified("unrouted", "delivery-1", "{}"))
        .await
        .unwrap_err();
    assert!(matches!(error, ForwardError::Rejected(_)), "{error}");
    rabbit.delete().await;
}

// ------------------------------------------------------------ Redis Streams

/// An entry as `XRANGE` returns it: its id and its fields.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_redis),
    ignore = "set TOWER_WEBHOOKS_REDIS_URL to run against Redis"
)]
async fn redis_stream_adds_each_event_once_with_its_body_and_headers() {
    let prefix = unique("rs");
    let guard_prefix = format!("{prefix}:guard:");
    let publisher = RedisStreamPublisher::new(redis_url())
        .destinations(Destinations::new(&prefix))
        .guard_prefix(&guard_prefix)
        .dedupe_window(Duration::from_secs(60));
    let body = Bytes::from_static(b"\x00\xffbinary");
    let message = Message::verified("github", "delivery-1", body.clone());
    publisher.publish(&message).await.unwrap();
    publisher.publish(&message).await.unwrap();
    publisher
        .publish(&Message::verified("github", "delivery-2", "{}"))
        .await
        .unwrap();

    let client = redis::Client::open(redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let stream = format!("{prefix}.github");
    let entries: Vec<StreamEntry> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(entries.len(), 2, "the duplicate was not added");
    let fields: HashMap<String, Vec<u8>> = entries[0].1.iter().cloned().collect();
    assert_eq!(fields["body"], body.to_vec());
    assert_eq!(fields["message_id"], b"github:delivery-1");
    assert_eq!(fields[header::EVENT_ID], b"delivery-1");
    assert_eq!(fields[header::SIGNATURE_VERIFIED], b"true");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(publisher.guard_key(&message))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(
        ttl > 0 && ttl <= 60_000,
        "the guard lives for the window: {ttl}"
    );

    let guards: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{guard_prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .arg(guards)
        .query_async(&mut connection)
        .await
        .unwrap();
}

// ------------------------------------------------------ the direct service

/// Sends a delivery until it gets a final answer (a sender retrying 409 and
/// 503), and returns it.
async fn deliver_until_final<S, B>(
    service: &S,
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> (StatusCode, Bytes)
where
    S: Service<Request<Full<Bytes>>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    for _ in 0..500 {
        let (status, _, answer) = send(service, delivery(id, timestamp, body)).await;
        match status {
            StatusCode::CONFLICT | StatusCode::SERVICE_UNAVAILABLE => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return (status, answer),
        }
    }
    panic!("event {id} never got a final answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(tower_webhooks_amqp, tower_webhooks_redis)),
    ignore = "set TOWER_WEBHOOKS_AMQP_URL and TOWER_WEBHOOKS_REDIS_URL to run against RabbitMQ and Redis"
)]
async fn two_services_on_one_store_publish_each_event_exactly_once() {
    const EVENTS: usize = 700;
    const DELIVERIES: usize = 1_000;
    let rabbit = Rabbit::new(&["generic"]).await;
    let store_prefix = format!("{}:", unique("store"));
    // Two receivers: each its own store connection, publisher and route,
    // sharing the Redis keys and the queue.
    let mut services = Vec::new();
    for _ in 0..2 {
        let store = RedisStore::builder()
            .key_prefix(&store_prefix)
            .connect(&redis_url())
            .await
            .unwrap();
        let service = ServiceBuilder::new()
            .layer(webhook_layer())
            .service(ForwardService::new(rabbit.publisher(), store));
        services.push(service);
    }

    let timestamp = unix_now();
    // Every event once, then 300 of them again, shuffled deterministically.
    let mut plan: Vec<usize> = (0..EVENTS)
        .chain((0..DELIVERIES - EVENTS).map(|i| i * 7 % EVENTS))
        .collect();
    for i in (1..plan.len()).rev() {
        plan.swap(i, (i * 7_919 + 13) % (i + 1));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (n, event) in plan.into_iter().enumerate() {
        let service = services[n % 2].clone();
        tasks.spawn(async move {
            let body = format!("{{\"event\":{event}}}");
            deliver_until_final(
                &service,
                &format!("evt-{event}"),
                timestamp,
                body.as_bytes(),
            )
            .await
        });
    }
    let mut forwarded = 0;
    let mut duplicates = 0;
    while let Some(joined) = tasks.join_next().await {
        let (status, body) = joined.unwrap();
        assert_eq!(status, StatusCode::OK, "{body:?}");
        match &body[..] {
            br#"{"ok":true,"forwarded":true}"# => forwarded += 1,
            br#"{"ok":true,"duplicate":true}"# => duplicates += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(forwarded, EVENTS, "one delivery per event was forwarded");
    assert_eq!(duplicates, DELIVERIES - EVENTS);

    let messages = rabbit.drain("generic").await;
    let ids: HashSet<String> = messages.iter().map(amqp_message_id).collect();
    assert_eq!(messages.len(), EVENTS, "published exactly once each");
    assert_eq!(ids.len(), EVENTS);
    assert!(ids.contains("generic:evt-0") && ids.contains("generic:evt-699"));
    rabbit.delete().await;
    cleanup_redis(&store_prefix).await;
}

async fn cleanup_redis(prefix: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_nats),
    ignore = "set TOWER_WEBHOOKS_NATS_URL to run against NATS JetStream"
)]
async fn a_replay_under_a_new_id_is_refused_and_nothing_is_published() {
    let stream = JetStream::new().await;
    let service = ServiceBuilder::new()
        .layer(webhook_layer())
        .service(ForwardService::new(stream.publisher(), MemoryStore::new()));
    let timestamp = unix_now();
    let original = delivery("evt-1", timestamp, b"{\"amount\":100}");
    let (status, _, body) = send(&service, original).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], br#"{"ok":true,"forwarded":true}"#);

    // The captured request, resent under a fresh id.
    let mut replay = delivery("evt-1", timestamp, b"{\"amount\":100}");
    replay.headers_mut().insert(
        HmacVerifier::EVENT_ID_HEADER,
        http::HeaderValue::from_static("evt-2"),
    );
    let (status, _, body) = send(&service, replay).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        String::from_utf8_lossy(&body).contains("replayed-signature"),
        "{body:?}"
    );

    // A plain duplicate: answered, not published.
    let (status, _, body) = send(&service, delivery("evt-1", timestamp, b"{\"amount\":100}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], br#"{"ok":true,"duplicate":true}"#);

    assert_eq!(stream.count().await, 1);
    stream.delete().await;
}

#[tokio::test]
#[cfg_attr(
    not(all(tower_webhooks_nats, tower_webhooks_amqp, tower_webhooks_redis)),
    ignore = "set TOWER_WEBHOOKS_NATS_URL, TOWER_WEBHOOKS_AMQP_URL and TOWER_WEBHOOKS_REDIS_URL to run against the brokers"
)]
async fn an_unreachable_or_silent_broker_gets_503_and_the_claim_is_released() {
    let stream = JetStream::new().await;
    let port = closed_port();
    // Accepts connections and never answers: a broker that hangs.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let down: Vec<Arc<dyn Publisher>> = vec![
        Arc::new(JetStreamPublisher::new(format!("nats://127.0.0.1:{port}"))),
        Arc::new(RabbitMqPublisher::new(format!(
            "amqp://guest:guest@127.0.0.1:{port}/%2f"
        ))),
        Arc::new(RedisStreamPublisher::new(format!(
            "redis://127.0.0.1:{port}/"
        ))),
        Arc::new(JetStreamPublisher::new(format!(
            "nats://127.0.0.1:{silent_port}"
        ))),
        Arc::new(RabbitMqPublisher::new(format!(
            "amqp://guest:guest@127.0.0.1:{silent_port}/%2f"
        ))),
    ];
    let store: Arc<dyn IdempotencyStore> = Arc::new(MemoryStore::new());
    // One route (clones of one layer) in front of every service.
    let layer = webhook_layer();
    let working = ServiceBuilder::new()
        .layer(layer.clone())
        .service(ForwardService::from_shared(
            Arc::new(stream.publisher()),
            store.clone(),
        ));
    let timestamp = unix_now();
    for (n, publisher) in down.into_iter().enumerate() {
        let failing = ServiceBuilder::new().layer(layer.clone()).service(
            ForwardService::from_shared(publisher, store.clone())
                .publish_timeout(Duration::from_millis(500))
                .unavailable_retry_after(Duration::from_secs(3)),
        );
        let id = format!("evt-{n}");
        let body = format!("{{\"n\":{n}}}");
        let (status, retry_after, answer) =
            send(&failing, delivery(&id, timestamp, body.as_bytes())).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "publisher {n}: {answer:?}"
        );
        assert_eq!(retry_after.as_deref(), Some("3"), "publisher {n}");
        // The claim was released: the sender's retry, reaching a working
        // broker, is forwarded (not a 409, not a duplicate).
        let (status, _, answer) = send(&working, delivery(&id, timestamp, body.as_bytes())).await;
        assert_eq!(status, StatusCode::OK, "publisher {n}");
        assert_eq!(
            &answer[..],
            br#"{"ok":true,"forwarded":true}"#,
            "publisher {n}"
        );
    }
    assert_eq!(
        stream.count().await,
        5,
        "each event published once, by the working broker"
    );
    hold.abort();
    stream.delete().await;
}

// ---------------------------------------------------------------- the relay

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tower_webhooks_amqp),
    ignore = "set TOWER_WEBHOOKS_AMQP_URL to run against RabbitMQ"
)]
async fn the_relay_publishes_every_accepted_event_once() {
    const EVENTS: usize = 200;
    let rabbit = Rabbit::new(&["generic"]).await;
    let inbox =
        Inbox::new(MemoryInbox::new()).keep_header(http::HeaderName::from_static("traceparent"));
    let worker = inbox
        .worker(Relay::new(rabbit.publisher()))
        .concurrency(16)
        .spawn();
    let service = ServiceBuilder::new()
        .layer(webhook_layer())
        .service(inbox.accept());
    let timestamp = unix_now();
    let mut tasks = tokio::task::JoinSet::new();
    // Every event twice, concurrently.
    for n in 0..EVENTS * 2 {
        let service = service.clone();
        let event = n % EVENTS;
        tasks.spawn(async move {
            let body = format!("{{\"event\":{event}}}");
            let id = format!("evt-{event}");
            for _ in 0..500 {
                let mut request = delivery(&id, timestamp, body.as_bytes());
                request.headers_mut().insert(
                    "traceparent",
                    http::HeaderValue::from_static(
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    ),
                );
                let (status, _, answer) = send(&service, request).await;
                if status != StatusCode::CONFLICT {
                    return (status, answer);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("event {id} stayed in flight");
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (status, answer) = joined.unwrap();
        assert_eq!(status, StatusCode::OK, "{answer:?}");
    }
    worker.shutdown().await;

    let messages = rabbit.drain("generic").await;
    let ids: HashSet<String> = messages.iter().map(amqp_message_id).collect();
    assert_eq!(messages.len(), EVENTS, "every accepted event arrives once");
    assert_eq!(ids.len(), EVENTS);
    let first = messages
        .iter()
        .find(|message| amqp_message_id(message) == "generic:evt-7")
        .expect("evt-7 arrived");
    assert_eq!(first.data, b"{\"event\":7}".to_vec());
    assert_eq!(
        amqp_header(first, header::TRACEPARENT).as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(
        amqp_header(first, header::NAMESPACE).as_deref(),
        Some("generic")
    );
    rabbit.delete().await;
}
