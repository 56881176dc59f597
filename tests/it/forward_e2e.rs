//! End to end through the brokers, with real processes: the receiver
//! example relaying from its PostgreSQL inbox (`FORWARD_TO`), the consumer
//! example, and the direct form ([`ForwardService`]) over HTTP.
//!
//! - Two receivers on one inbox, 10,000 deliveries of 7,000 events
//!   (duplicates included, shuffled, concurrent): every event is published
//!   exactly once downstream, counted by message id (JetStream, RabbitMQ).
//! - A receiver killed with SIGKILL while relaying and started again: no
//!   acknowledged event is missing downstream; none twice in JetStream
//!   (within its duplicate window); for RabbitMQ, which has no broker-side
//!   dedupe, the duplicates are counted, printed and bounded by the
//!   publishes in flight at the kill.
//! - The broker stopped and started under load: the direct form answers
//!   503 with `Retry-After` while it is down, the relay form keeps
//!   answering 200 while the events wait in the inbox; both recover, and no
//!   acknowledged event is lost. NATS: a private `nats-server` of the test
//!   (stopped and started: the machine's shared server is used by other
//!   tests). RabbitMQ: a TCP proxy in the test that is cut and restored
//!   (see [`rabbitmq_cut_under_load`] for why not a private node).
//!
//! Needs `TOWER_WEBHOOKS_PG_URL` and `TOWER_WEBHOOKS_NATS_URL` or
//! `TOWER_WEBHOOKS_AMQP_URL`; a test without its servers is reported as
//! ignored. Each test uses its own schema, subjects, streams and queues,
//! deleted at its end.
#![cfg(all(
    unix,
    feature = "jetstream",
    feature = "rabbitmq",
    feature = "redis-stream"
))]

use crate::support;
use crate::support::processes;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post_service;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use processes::{
    NatsServer, PgSchema, Process, TcpProxy, deliver_until_final, example_binary, free_addresses,
    nats_server_binary, send_with_headers, unique, wait_for, wait_until_up,
};
use tower::ServiceBuilder;
use tower_webhooks::forward::{
    Destinations, ForwardService, JetStreamPublisher, RabbitMqPublisher,
};
use tower_webhooks::idempotency::MemoryStore;
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, WebhookLayer};

const SECRET: &str = "forward_e2e_secret";
const PATH: &str = "/webhooks/provider";

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_default()
}

/// Which broker a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Broker {
    JetStream,
    RabbitMq,
}

impl Broker {
    fn name(self) -> &'static str {
        match self {
            Self::JetStream => "jetstream",
            Self::RabbitMq => "rabbitmq",
        }
    }

    /// The receiver's `FORWARD_TO` and URL variables for `url`.
    fn receiver_env(self, url: &str) -> Vec<(&'static str, String)> {
        let variable = match self {
            Self::JetStream => "NATS_URL",
            Self::RabbitMq => "AMQP_URL",
        };
        vec![
            ("FORWARD_TO", self.name().to_owned()),
            (variable, url.to_owned()),
        ]
    }
}

// ---- the downstream side ------------------------------------------------------

/// What the receiver publishes to, created by the test before the
/// receivers start (the receivers declare the same, which is a no-op), and
/// deleted at its end.
enum Downstream {
    JetStream {
        context: async_nats::jetstream::Context,
        name: String,
    },
    RabbitMq {
        _connection: lapin::Connection,
        channel: lapin::Channel,
        name: String,
    },
}

impl Downstream {
    /// The stream capturing `<subject>.>` (named as the receiver names it),
    /// or the topic exchange `<subject>` with the queue `<subject>` bound to
    /// `<subject>.#`.
    async fn create(broker: Broker, url: &str, subject: &str) -> Self {
        match broker {
            Broker::JetStream => {
                let client = async_nats::connect(url).await.expect("NATS reachable");
                let context = async_nats::jetstream::new(client);
                context
                    .get_or_create_stream(async_nats::jetstream::stream::Config {
                        name: subject.to_owned(),
                        subjects: vec![format!("{subject}.>")],
                        duplicate_window: Duration::from_secs(120),
                        ..Default::default()
                    })
                    .await
                    .expect("stream created");
                Self::JetStream {
                    context,
                    name: subject.to_owned(),
                }
            }
            Broker::RabbitMq => {
                let connection =
                    lapin::Connection::connect(url, lapin::ConnectionProperties::default())
                        .await
                        .expect("RabbitMQ reachable");
                let channel = connection.create_channel().await.unwrap();
                let name = || ShortString::from(subject);
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
                    .await
                    .unwrap();
                channel
                    .queue_declare(
                        name(),
                        QueueDeclareOptions::durable(),
                        FieldTable::default(),
                    )
                    .await
                    .unwrap();
                channel
                    .queue_bind(
                        name(),
                        name(),
                        ShortString::from(format!("{subject}.#")),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .unwrap();
                Self::RabbitMq {
                    _connection: connection,
                    channel,
                    name: subject.to_owned(),
                }
            }
        }
    }

    /// The message id (`namespace:event-id`) of every message published, in
    /// order, duplicates included. For RabbitMQ this takes them out of the
    /// queue: call it once, after everything was published.
    async fn message_ids(&self) -> Vec<String> {
        match self {
            Self::JetStream { context, name } => {
                let mut stream = context.get_stream(name).await.unwrap();
                let state = stream.info().await.unwrap().state.clone();
                let mut ids = Vec::with_capacity(state.messages as usize);
                if state.messages == 0 {
                    return ids;
                }
                for sequence in state.first_sequence..=state.last_sequence {
                    let message = stream.get_raw_message(sequence).await.unwrap();
                    let id = message
                        .headers
                        .get("Nats-Msg-Id")
                        .map(|value| value.as_str().to_owned())
                        .unwrap_or_default();
                    ids.push(id);
                }
                ids
            }
            Self::RabbitMq { channel, name, .. } => {
                let mut ids = Vec::new();
                while let Some(message) = channel
                    .basic_get(
                        ShortString::from(name.as_str()),
                        BasicGetOptions { no_ack: true },
                    )
                    .await
                    .unwrap()
                {
                    let id = message
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|id| id.as_str().to_owned())
                        .unwrap_or_default();
                    ids.push(id);
                }
                ids
            }
        }
    }

    async fn delete(self) {
        match self {
            Self::JetStream { context, name } => {
                let _ = context.delete_stream(&name).await;
            }
            Self::RabbitMq { channel, name, .. } => {
                let _ = channel
                    .queue_delete(
                        ShortString::from(name.as_str()),
                        QueueDeleteOptions::default(),
                    )
                    .await;
                let _ = channel
                    .exchange_delete(
                        ShortString::from(name.as_str()),
                        ExchangeDeleteOptions::default(),
                    )
                    .await;
            }
        }
    }
}

/// How often each message id occurs.
fn tally(ids: &[String]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for id in ids {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    counts
}

// ---- the receiver -------------------------------------------------------------

/// The receiver example on `address` (admin on `admin`), its inbox in the
/// schema, relaying to `broker` at `url` under `subject`.
fn receiver(
    address: SocketAddr,
    admin: SocketAddr,
    schema: &PgSchema,
    broker: Broker,
    url: &str,
    subject: &str,
    concurrency: usize,
) -> Process {
    let mut envs = vec![
        ("BIND", address.to_string()),
        ("ADMIN_BIND", admin.to_string()),
        ("WEBHOOK_SECRET", SECRET.to_owned()),
        ("RECEIVER_MODE", "inbox".to_owned()),
        ("INBOX_STORE", "postgres".to_owned()),
        ("DATABASE_URL", schema.database_url()),
        ("FORWARD_SUBJECT", subject.to_owned()),
        ("FORWARD_CONCURRENCY", concurrency.to_string()),
    ];
    envs.extend(broker.receiver_env(url));
    Process::start(&example_binary("receiver"), &[], &envs)
}

/// Signed deliveries of `events` events (id `<run>-<n>`, a JSON body
/// carrying it), one request builder each.
struct Events {
    run: String,
    signed: Vec<(http::HeaderMap, Bytes)>,
}

impl Events {
    fn new(count: usize) -> Self {
        let signer = GenericSigner::new(SECRET);
        let timestamp = unix_now();
        let run = unique("evt");
        let signed = (0..count)
            .map(|n| {
                let id = format!("{run}-{n}");
                let body = Bytes::from(format!(
                    r#"{{"id":"{id}","type":"invoice.paid","data":{{"n":{n}}}}}"#
                ));
                (signer.sign(&id, timestamp, &body), body)
            })
            .collect();
        Self { run, signed }
    }

    fn id(&self, n: usize) -> String {
        format!("{}-{n}", self.run)
    }

    /// The message id downstream (the reference route's namespace is
    /// `generic`).
    fn message_id(&self, n: usize) -> String {
        format!("generic:{}", self.id(n))
    }

    /// Delivery `n`: the same headers and body every time (a provider's
    /// retry).
    fn request(&self, n: usize) -> http::Request<Full<Bytes>> {
        let (headers, body) = &self.signed[n];
        let mut request = http::Request::post(PATH)
            .body(Full::new(body.clone()))
            .unwrap();
        *request.headers_mut() = headers.clone();
        request
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

/// Runs `deliveries` (event numbers, in order) `concurrency` at a time, each
/// to `target(i)` and retried until answered (503 and refused connections
/// are retried, as a provider does); returns the final status of each.
async fn deliver_all(
    events: Arc<Events>,
    deliveries: Vec<usize>,
    concurrency: usize,
    target: impl Fn(usize) -> SocketAddr + Send + Sync + 'static,
    acked: Arc<AtomicUsize>,
) -> Vec<(usize, Option<StatusCode>)> {
    let target = Arc::new(target);
    let next = Arc::new(AtomicUsize::new(0));
    let deliveries = Arc::new(deliveries);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (events, deliveries, next, target, acked) = (
            events.clone(),
            deliveries.clone(),
            next.clone(),
            target.clone(),
            acked.clone(),
        );
        tasks.spawn(async move {
            let mut results = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&n) = deliveries.get(i) else { break };
                let delivered = deliver_until_final(
                    || target(i),
                    || events.request(n),
                    Duration::from_millis(50),
                    Duration::from_secs(120),
                )
                .await;
                if delivered.status == Some(StatusCode::OK) {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                results.push((n, delivered.status));
            }
            results
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.extend(joined.unwrap());
    }
    results
}

/// Waits until the inbox holds `events` events, all `succeeded`.
async fn wait_until_relayed(schema: &PgSchema, events: usize) {
    wait_for(
        &format!("{events} events to be relayed"),
        Duration::from_secs(180),
        || async {
            let statuses = schema.statuses().await;
            let succeeded = statuses.get("succeeded").copied().unwrap_or(0);
            (succeeded as usize == events && schema.open().await == 0).then_some(())
        },
    )
    .await;
    let dead = schema.statuses().await.get("dead").copied().unwrap_or(0);
    assert_eq!(dead, 0, "events died in the inbox");
}

// ---- 1. two receivers, every event once ------------------------------------

const EVENTS: usize = 7_000;
const DELIVERIES: usize = 10_000;

async fn two_receivers_publish_every_event_once(broker: Broker, url: &str) {
    let schema = PgSchema::create(&env("TOWER_WEBHOOKS_PG_URL")).await;
    let subject = unique(broker.name());
    let downstream = Downstream::create(broker, url, &subject).await;
    let [a, a_admin, b, b_admin] = free_addresses::<4>();
    let mut first = receiver(a, a_admin, &schema, broker, url, &subject, 64);
    wait_until_up(&mut first, a).await;
    let mut second = receiver(b, b_admin, &schema, broker, url, &subject, 64);
    wait_until_up(&mut second, b).await;
    // JetStream: the consumer example reads the stream as it fills.
    let mut consumer = (broker == Broker::JetStream).then(|| {
        Process::start(
            &example_binary("consumer"),
            &[],
            &[
                ("FORWARD_TO", broker.name().to_owned()),
                ("NATS_URL", url.to_owned()),
                ("FORWARD_SUBJECT", subject.clone()),
                ("FORWARD_CONSUMER", "e2e".to_owned()),
            ],
        )
    });

    // Every event once, 3,000 of them again, shuffled; each delivery to
    // either receiver.
    let events = Arc::new(Events::new(EVENTS));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut deliveries: Vec<usize> = (0..EVENTS).collect();
    deliveries.extend((0..DELIVERIES - EVENTS).map(|_| rng.below(EVENTS)));
    for i in (1..deliveries.len()).rev() {
        deliveries.swap(i, rng.below(i + 1));
    }
    let sides: Vec<bool> = (0..DELIVERIES).map(|_| rng.below(2) == 0).collect();
    let results = deliver_all(
        events.clone(),
        deliveries,
        32,
        move |i| if sides[i] { a } else { b },
        Arc::new(AtomicUsize::new(0)),
    )
    .await;
    assert_eq!(results.len(), DELIVERIES);
    for (n, status) in &results {
        assert_eq!(*status, Some(StatusCode::OK), "delivery of event {n}");
    }

    wait_until_relayed(&schema, EVENTS).await;
    let ids = downstream.message_ids().await;
    let counts = tally(&ids);
    eprintln!(
        "{}: {DELIVERIES} deliveries of {EVENTS} events through two receivers: {} messages, {} distinct",
        broker.name(),
        ids.len(),
        counts.len()
    );
    for n in 0..EVENTS {
        let id = events.message_id(n);
        assert_eq!(counts.get(id.as_str()), Some(&1), "{id} downstream");
    }
    assert_eq!(
        ids.len(),
        EVENTS,
        "nothing else and nothing twice downstream"
    );

    if let Some(consumer) = &mut consumer {
        let handled = wait_for("the consumer's lines", Duration::from_secs(60), || {
            let handled = consumer.handled();
            async move { (handled.len() >= EVENTS).then_some(handled) }
        })
        .await;
        let distinct: HashSet<&String> = handled.iter().collect();
        assert_eq!(distinct.len(), EVENTS, "the consumer printed every event");
        assert!((0..EVENTS).all(|n| distinct.contains(&events.id(n))));
        consumer.terminate();
        assert_eq!(
            consumer.handled_count(),
            EVENTS,
            "the consumer printed an event twice"
        );
    }
    first.terminate();
    second.terminate();
    downstream.delete().await;
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(tower_webhooks_pg, tower_webhooks_nats)),
    ignore = "set TOWER_WEBHOOKS_PG_URL and TOWER_WEBHOOKS_NATS_URL to run against PostgreSQL and NATS JetStream"
)]
async fn jetstream_two_receivers_publish_every_event_once() {
    two_receivers_publish_every_event_once(Broker::JetStream, &env("TOWER_WEBHOOKS_NATS_URL"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(tower_webhooks_pg, tower_webhooks_amqp)),
    ignore = "set TOWER_WEBHOOKS_PG_URL and TOWER_WEBHOOKS_AMQP_URL to run against PostgreSQL and RabbitMQ"
)]
async fn rabbitmq_two_receivers_publish_every_event_once() {
    two_receivers_publish_every_event_once(Broker::RabbitMq, &env("TOWER_WEBHOOKS_AMQP_URL")).await;
}

// ---- 2. SIGKILL while relaying ----------------------------------------------

/// The relay's concurrency in the kill test: low, so the relay lags behind
/// the intake and the kill lands while events wait and publishes are in
/// flight; it also bounds RabbitMQ's duplicates (see below).
const KILL_CONCURRENCY: usize = 4;
const KILL_EVENTS: usize = 3_000;
const KILLS: usize = 2;

async fn no_acknowledged_event_is_lost_when_the_relay_is_killed(broker: Broker, url: &str) {
    let schema = PgSchema::create(&env("TOWER_WEBHOOKS_PG_URL")).await;
    let subject = unique(broker.name());
    let downstream = Downstream::create(broker, url, &subject).await;
    let [address, admin] = free_addresses::<2>();
    let start = || {
        receiver(
            address,
            admin,
            &schema,
            broker,
            url,
            &subject,
            KILL_CONCURRENCY,
        )
    };
    let mut running = start();
    wait_until_up(&mut running, address).await;

    let events = Arc::new(Events::new(KILL_EVENTS));
    let acked = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn(deliver_all(
        events.clone(),
        (0..KILL_EVENTS).collect(),
        32,
        move |_| address,
        acked.clone(),
    ));
    let mut waiting_at_kills = Vec::new();
    for kill in 1..=KILLS {
        let at = KILL_EVENTS * kill / (KILLS + 1);
        wait_for("acknowledged deliveries", Duration::from_secs(120), || {
            let acked = acked.load(Ordering::Relaxed);
            async move { (acked >= at).then_some(()) }
        })
        .await;
        running.kill(); // SIGKILL
        waiting_at_kills.push(schema.open().await);
        running = start();
        wait_until_up(&mut running, address).await;
    }
    let results = load.await.unwrap();
    for (n, status) in &results {
        assert_eq!(*status, Some(StatusCode::OK), "delivery of event {n}");
    }
    assert!(
        waiting_at_kills.iter().all(|open| *open > 0),
        "an inbox was drained at a kill ({waiting_at_kills:?} open): the kill proved nothing"
    );

    // Events a killed relay held come back after the lease.
    wait_until_relayed(&schema, KILL_EVENTS).await;
    let ids = downstream.message_ids().await;
    let counts = tally(&ids);
    for n in 0..KILL_EVENTS {
        let id = events.message_id(n);
        assert!(
            counts.contains_key(id.as_str()),
            "{id} acknowledged, missing downstream"
        );
    }
    assert_eq!(
        counts.len(),
        KILL_EVENTS,
        "only the acknowledged events downstream"
    );
    let duplicates = ids.len() - counts.len();
    eprintln!(
        "{}: {KILLS} SIGKILLs while relaying ({waiting_at_kills:?} events pending or processing at \
         each), {KILL_EVENTS} acknowledged, {} messages downstream, {duplicates} duplicates",
        broker.name(),
        ids.len()
    );
    match broker {
        // The republished events come within the duplicate window (the
        // lease, 10 s, is far below 2 min): the stream drops them.
        Broker::JetStream => assert_eq!(duplicates, 0, "JetStream kept a duplicate"),
        // No dedupe on the broker: an event is published twice only when
        // the kill fell between its confirm and its `succeeded`, so at most
        // the publishes in flight: the relay's concurrency, per kill.
        Broker::RabbitMq => assert!(
            duplicates <= KILL_CONCURRENCY * KILLS,
            "{duplicates} duplicates; at most {} publishes were in flight at the kills",
            KILL_CONCURRENCY * KILLS
        ),
    }
    running.terminate();
    downstream.delete().await;
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(tower_webhooks_pg, tower_webhooks_nats)),
    ignore = "set TOWER_WEBHOOKS_PG_URL and TOWER_WEBHOOKS_NATS_URL to run against PostgreSQL and NATS JetStream"
)]
async fn jetstream_no_acknowledged_event_is_lost_when_the_relay_is_killed() {
    no_acknowledged_event_is_lost_when_the_relay_is_killed(
        Broker::JetStream,
        &env("TOWER_WEBHOOKS_NATS_URL"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(tower_webhooks_pg, tower_webhooks_amqp)),
    ignore = "set TOWER_WEBHOOKS_PG_URL and TOWER_WEBHOOKS_AMQP_URL to run against PostgreSQL and RabbitMQ"
)]
async fn rabbitmq_no_acknowledged_event_is_lost_when_the_relay_is_killed() {
    no_acknowledged_event_is_lost_when_the_relay_is_killed(
        Broker::RabbitMq,
        &env("TOWER_WEBHOOKS_AMQP_URL"),
    )
    .await;
}

// ---- 3. the broker stopped and started under load ---------------------------

/// The relay's and the direct senders' concurrency in the outage tests.
const OUTAGE_CONCURRENCY: usize = 8;

/// What the load saw of one form.
#[derive(Default)]
struct Seen {
    /// Deliveries answered 200, by event number.
    acked: std::sync::Mutex<HashSet<usize>>,
    /// Deliveries answered with anything but 200 in the end.
    failed: AtomicU32,
    /// 503 answers (the sender retried each).
    unavailable: AtomicU32,
    /// 503 answers without `Retry-After`.
    without_retry_after: AtomicU32,
}

/// Sends fresh events to `relay` and `direct` from `OUTAGE_CONCURRENCY`
/// tasks each until `stop`, every delivery retried until final.
fn outage_load(
    relay: SocketAddr,
    direct: SocketAddr,
    stop: Arc<AtomicBool>,
) -> (Arc<Events>, Arc<Seen>, Arc<Seen>, tokio::task::JoinSet<()>) {
    let events = Arc::new(Events::new(200_000));
    let (relayed, directed) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..OUTAGE_CONCURRENCY * 2 {
        let (address, seen) = if task % 2 == 0 {
            (relay, relayed.clone())
        } else {
            (direct, directed.clone())
        };
        let (events, next, stop) = (events.clone(), next.clone(), stop.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                // Until final, as a provider retries: 503 and no answer are
                // retried; every 503 is counted as it comes.
                let started = std::time::Instant::now();
                let mut status = None;
                while started.elapsed() < Duration::from_secs(60) {
                    match send_with_headers(address, events.request(n)).await {
                        Ok((StatusCode::SERVICE_UNAVAILABLE, retry_after)) => {
                            seen.unavailable.fetch_add(1, Ordering::Relaxed);
                            if retry_after.is_none() {
                                seen.without_retry_after.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok((answer, _)) => {
                            status = Some(answer);
                            break;
                        }
                        Err(_) => {}
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                if status == Some(StatusCode::OK) {
                    seen.acked.lock().unwrap().insert(n);
                } else {
                    seen.failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    (events, relayed, directed, tasks)
}

/// The direct form on a loopback port: the reference route, published
/// through `publisher`, deduplicated in memory.
async fn serve_direct(publisher: impl tower_webhooks::forward::Publisher) -> SocketAddr {
    let endpoint = ServiceBuilder::new()
        .layer(WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()))
        .service(
            ForwardService::new(publisher, MemoryStore::new())
                .publish_timeout(Duration::from_secs(2))
                .unavailable_retry_after(Duration::from_secs(1)),
        );
    support::serve(Router::new().route(PATH, post_service(endpoint))).await
}

/// Stops the broker (`stop`), keeps it down for 5 s under load, starts it
/// again (`start`), and checks both forms: see the module docs.
async fn broker_outage<Stop, Start>(
    broker: Broker,
    setup_url: &str,
    receiver_url: &str,
    direct_publisher: impl tower_webhooks::forward::Publisher,
    direct_subject: &str,
    stop_broker: Stop,
    start_broker: Start,
) where
    Stop: AsyncFnOnce(),
    Start: AsyncFnOnce(),
{
    let schema = PgSchema::create(&env("TOWER_WEBHOOKS_PG_URL")).await;
    let subject = unique(broker.name());
    let relayed_downstream = Downstream::create(broker, setup_url, &subject).await;
    let direct_downstream = Downstream::create(broker, setup_url, direct_subject).await;
    let [address, admin] = free_addresses::<2>();
    let mut relay = receiver(
        address,
        admin,
        &schema,
        broker,
        receiver_url,
        &subject,
        OUTAGE_CONCURRENCY,
    );
    wait_until_up(&mut relay, address).await;
    let direct = serve_direct(direct_publisher).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (events, relayed, directed, mut load) = outage_load(address, direct, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = (
        relayed.acked.lock().unwrap().len(),
        directed.acked.lock().unwrap().len(),
    );
    stop_broker().await;
    let down_since = (
        relayed.acked.lock().unwrap().len(),
        directed.unavailable.load(Ordering::Relaxed),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = (
        relayed.acked.lock().unwrap().len() - down_since.0,
        directed.unavailable.load(Ordering::Relaxed) - down_since.1,
    );
    let waiting = schema.open().await;
    start_broker().await;
    let direct_acked_at_restart = directed.acked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    let relayed_acked = relayed.acked.lock().unwrap().clone();
    let direct_acked = directed.acked.lock().unwrap().clone();
    eprintln!(
        "{} outage: before it {} relay / {} direct acknowledged; while down the relay form \
         acknowledged {} (with {waiting} waiting in the inbox at the restart) and the direct form \
         answered {} 503s; in all {} relay / {} direct acknowledged ({} direct after the restart)",
        broker.name(),
        before.0,
        before.1,
        during.0,
        during.1,
        relayed_acked.len(),
        direct_acked.len(),
        direct_acked.len() - direct_acked_at_restart,
    );
    assert!(before.0 > 0 && before.1 > 0, "no load before the outage");
    assert!(
        during.0 > 0,
        "the relay form stopped acknowledging while the broker was down"
    );
    assert!(
        waiting > 0,
        "no event waited in the inbox while the broker was down"
    );
    assert!(
        during.1 > 0,
        "the direct form answered no 503 while the broker was down"
    );
    assert_eq!(relayed.failed.load(Ordering::Relaxed), 0);
    assert_eq!(
        relayed.unavailable.load(Ordering::Relaxed),
        0,
        "the relay form answered 503"
    );
    assert_eq!(
        directed.failed.load(Ordering::Relaxed),
        0,
        "a direct delivery never got a 200"
    );
    assert_eq!(
        directed.without_retry_after.load(Ordering::Relaxed),
        0,
        "503 without Retry-After"
    );
    assert!(
        direct_acked.len() > direct_acked_at_restart,
        "the direct form did not recover"
    );

    wait_until_relayed(&schema, relayed_acked.len()).await;
    for (form, downstream, acked, bound) in [
        (
            "relay",
            &relayed_downstream,
            &relayed_acked,
            OUTAGE_CONCURRENCY,
        ),
        (
            "direct",
            &direct_downstream,
            &direct_acked,
            OUTAGE_CONCURRENCY,
        ),
    ] {
        let ids = downstream.message_ids().await;
        let counts = tally(&ids);
        for n in acked {
            let id = events.message_id(*n);
            assert!(
                counts.contains_key(id.as_str()),
                "{form}: {id} acknowledged, missing downstream"
            );
        }
        assert_eq!(
            counts.len(),
            acked.len(),
            "{form}: an event downstream that was not acknowledged"
        );
        let duplicates = ids.len() - counts.len();
        eprintln!(
            "{} outage, {form} form: {} messages, {duplicates} duplicates",
            broker.name(),
            ids.len()
        );
        match broker {
            Broker::JetStream => assert_eq!(duplicates, 0, "{form}: JetStream kept a duplicate"),
            // A publish whose confirm the cut lost is published again: at
            // most those in flight at the cut.
            Broker::RabbitMq => assert!(
                duplicates <= bound,
                "{form}: {duplicates} duplicates, more than the {bound} publishes in flight"
            ),
        }
    }
    relay.terminate();
    relayed_downstream.delete().await;
    direct_downstream.delete().await;
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(tower_webhooks_pg, tower_webhooks_nats)),
    ignore = "set TOWER_WEBHOOKS_PG_URL and TOWER_WEBHOOKS_NATS_URL (nats-server must be installed) to run"
)]
async fn jetstream_stopped_and_started_under_load() {
    let Some(binary) = nats_server_binary() else {
        eprintln!("skipped: no nats-server binary (set NATS_SERVER_BIN)");
        return;
    };
    // A private server: stopping the machine's would break other tests.
    let server = Arc::new(tokio::sync::Mutex::new(NatsServer::start(binary).await));
    let url = server.lock().await.url();
    let direct_subject = unique("direct");
    let publisher = JetStreamPublisher::new(url.as_str())
        .destinations(Destinations::new(direct_subject.as_str()))
        .connect_timeout(Duration::from_secs(1));
    let (stopping, starting) = (server.clone(), server.clone());
    broker_outage(
        Broker::JetStream,
        &url,
        &url,
        publisher,
        &direct_subject,
        async move || stopping.lock().await.stop(),
        async move || starting.lock().await.restart().await,
    )
    .await;
}

/// RabbitMQ through a TCP proxy that the test cuts and restores, rather than
/// a private RabbitMQ node: a node of its own needs an Erlang node name,
/// cookie and data directory, takes seconds to boot and stop, and its
/// `rabbitmq-server` scripts expect to run as the `rabbitmq` user; the cut
/// shows the clients exactly what a stopped broker shows them (open
/// connections closed, new ones refused), while the messages already
/// confirmed stay on the machine's broker, which other tests keep using.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(tower_webhooks_pg, tower_webhooks_amqp)),
    ignore = "set TOWER_WEBHOOKS_PG_URL and TOWER_WEBHOOKS_AMQP_URL to run against PostgreSQL and RabbitMQ"
)]
async fn rabbitmq_cut_under_load() {
    let url = env("TOWER_WEBHOOKS_AMQP_URL");
    let uri: lapin::uri::AMQPUri = url.parse().expect("a valid AMQP URL");
    let authority = format!("{}:{}", uri.authority.host, uri.authority.port);
    let upstream = tokio::net::lookup_host(authority.as_str())
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Arc::new(TcpProxy::start(upstream).await);
    let proxied = url.replacen(&authority, &proxy.address.to_string(), 1);
    assert_ne!(
        proxied, url,
        "TOWER_WEBHOOKS_AMQP_URL must name its host and port (amqp://user:password@host:port/vhost)"
    );
    let direct_subject = unique("direct");
    let publisher = RabbitMqPublisher::new(proxied.as_str())
        .exchange(direct_subject.as_str())
        .destinations(Destinations::new(direct_subject.as_str()))
        .connect_timeout(Duration::from_secs(1));
    let (cutting, restoring) = (proxy.clone(), proxy.clone());
    broker_outage(
        Broker::RabbitMq,
        &url,
        &proxied,
        publisher,
        &direct_subject,
        async move || cutting.cut().await,
        async move || restoring.restore().await,
    )
    .await;
}

// ---- the receiver's and the consumer's settings -----------------------------

/// Invalid forwarding settings stop the receiver and the consumer at start:
/// exit status 1, one line on stderr naming the variable, and never the
/// URL's password.
#[test]
fn invalid_forward_settings_are_refused_at_start() {
    /// An example, its variables, and what its one stderr line names.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: [Case; 7] = [
        ("receiver", &[("FORWARD_TO", "kafka")], "FORWARD_TO=kafka"),
        (
            "receiver",
            &[("FORWARD_TO", "jetstream"), ("FORWARD_SUBJECT", "a..b")],
            "FORWARD_SUBJECT=a..b",
        ),
        (
            "receiver",
            &[
                ("FORWARD_TO", "rabbitmq"),
                ("AMQP_URL", "amqps://user:hunter2@host:x/"),
            ],
            "AMQP_URL is invalid",
        ),
        (
            "receiver",
            &[("FORWARD_TO", "jetstream"), ("FORWARD_CONCURRENCY", "0")],
            "FORWARD_CONCURRENCY=0",
        ),
        (
            "receiver",
            &[("FORWARD_TO", "redis-stream"), ("RECEIVER_MODE", "inline")],
            "RECEIVER_MODE=inline",
        ),
        ("consumer", &[("FORWARD_TO", "kafka")], "FORWARD_TO=kafka"),
        (
            "consumer",
            &[("FORWARD_TO", "jetstream"), ("FORWARD_CONSUMER", "a.b")],
            "FORWARD_CONSUMER=a.b",
        ),
    ];
    let directory = std::env::temp_dir().join(unique("refused"));
    std::fs::create_dir_all(&directory).unwrap();
    for (example, vars, expected) in cases {
        let output = std::process::Command::new(example_binary(example))
            .env("BIND", "127.0.0.1:0")
            .env("ADMIN_BIND", "127.0.0.1:0")
            .env("WEBHOOK_SECRET", SECRET)
            .env("WEBHOOK_DB", directory.join("refused.db"))
            .env("RUST_LOG", "error")
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{example} {vars:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{example} {vars:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(expected),
            "{example} {vars:?}: {stderr}"
        );
        assert!(
            !stderr.contains("hunter2"),
            "{example} printed the password: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&directory);
}
