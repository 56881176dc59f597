//! Forwarded events per second through the direct form: 64 signed 1 KiB
//! deliveries at once (c=64), each through `WebhookLayer` +
//! [`ForwardService`] (claim in a `MemoryStore`, publish, wait for the
//! broker's confirmation, complete), per broker. Each broker runs only when
//! its variable is set (skipped with a notice otherwise):
//!
//! ```text
//! TOWER_WEBHOOKS_NATS_URL=nats://127.0.0.1:4222 \
//! TOWER_WEBHOOKS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f \
//! TOWER_WEBHOOKS_REDIS_URL=redis://127.0.0.1:6379/ \
//!   cargo bench --bench forward --features jetstream,rabbitmq,redis-stream
//! ```
//!
//! The throughput criterion reports (elements/s) is forwarded events/s.
//! The stream, queue and keys it makes are deleted at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::Request;
use http_body_util::Full;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions};
use lapin::types::{FieldTable, ShortString};
use tokio::runtime::Runtime;
use tower::{ServiceBuilder, ServiceExt};
use tower_webhooks::forward::{
    Destinations, ForwardService, JetStreamPublisher, Publisher, RabbitMqPublisher,
    RedisStreamPublisher,
};
use tower_webhooks::idempotency::MemoryStore;
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, WebhookLayer};

const SECRET: &str = "forward_bench_secret";
const BODY_BYTES: usize = 1024;
const CONCURRENCY: usize = 64;

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|value| !value.is_empty())
}

fn prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!("twbench-{}-{nanos}", std::process::id())
}

fn request(signer: &GenericSigner) -> Request<Full<Bytes>> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = format!("evt_{}_{n}", std::process::id());
    let mut body = format!(r#"{{"id":"{id}","type":"invoice.paid","pad":""#).into_bytes();
    body.resize(BODY_BYTES - 2, b'x');
    body.extend_from_slice(b"\"}");
    signer
        .request("/webhooks/provider", &id, unix_now(), &body)
        .map(Full::new)
}

fn forward(c: &mut Criterion, runtime: &Runtime, name: &str, publisher: Arc<dyn Publisher>) {
    let signer = GenericSigner::new(SECRET);
    let service = ServiceBuilder::new()
        .layer(WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()))
        .service(ForwardService::from_shared(
            publisher,
            Arc::new(MemoryStore::new()),
        ));
    let mut group = c.benchmark_group("forward/c64/1KiB");
    group.throughput(Throughput::Elements(CONCURRENCY as u64));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(name, |b| {
        b.to_async(runtime).iter(|| {
            let requests: Vec<_> = (0..CONCURRENCY).map(|_| request(&signer)).collect();
            let service = service.clone();
            async move {
                let mut tasks = tokio::task::JoinSet::new();
                for request in requests {
                    let service = service.clone();
                    tasks.spawn(async move { service.oneshot(request).await.unwrap().status() });
                }
                while let Some(status) = tasks.join_next().await {
                    assert_eq!(status.unwrap(), 200);
                }
            }
        });
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let prefix = prefix();

    match env("TOWER_WEBHOOKS_NATS_URL") {
        Some(url) => {
            let context = runtime.block_on(async {
                let context = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
                context
                    .create_stream(async_nats::jetstream::stream::Config {
                        name: prefix.replace('-', "_").to_uppercase(),
                        subjects: vec![format!("{prefix}.>")],
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                context
            });
            let publisher =
                JetStreamPublisher::new(url).destinations(Destinations::new(prefix.as_str()));
            forward(c, &runtime, "jetstream", Arc::new(publisher));
            runtime
                .block_on(context.delete_stream(prefix.replace('-', "_").to_uppercase()))
                .unwrap();
        }
        None => eprintln!("forward/jetstream skipped: set TOWER_WEBHOOKS_NATS_URL"),
    }

    match env("TOWER_WEBHOOKS_AMQP_URL") {
        Some(url) => {
            let queue = format!("{prefix}.generic");
            let (connection, channel) = runtime.block_on(async {
                let connection =
                    lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
                        .await
                        .unwrap();
                let channel = connection.create_channel().await.unwrap();
                channel
                    .queue_declare(
                        ShortString::from(queue.as_str()),
                        QueueDeclareOptions::durable(),
                        FieldTable::default(),
                    )
                    .await
                    .unwrap();
                (connection, channel)
            });
            let publisher =
                RabbitMqPublisher::new(url).destinations(Destinations::new(prefix.as_str()));
            forward(c, &runtime, "rabbitmq", Arc::new(publisher));
            runtime.block_on(async {
                channel
                    .queue_purge(
                        ShortString::from(queue.as_str()),
                        QueuePurgeOptions::default(),
                    )
                    .await
                    .unwrap();
                channel
                    .queue_delete(
                        ShortString::from(queue.as_str()),
                        QueueDeleteOptions::default(),
                    )
                    .await
                    .unwrap();
                drop(connection);
            });
        }
        None => eprintln!("forward/rabbitmq skipped: set TOWER_WEBHOOKS_AMQP_URL"),
    }

    match env("TOWER_WEBHOOKS_REDIS_URL") {
        Some(url) => {
            let guard_prefix = format!("{prefix}:guard:");
            let publisher = RedisStreamPublisher::new(url.as_str())
                .destinations(Destinations::new(prefix.as_str()))
                .guard_prefix(guard_prefix.as_str())
                .dedupe_window(Duration::from_secs(600));
            forward(c, &runtime, "redis-stream", Arc::new(publisher));
            runtime.block_on(async {
                let client = redis::Client::open(url).unwrap();
                let mut connection = client.get_multiplexed_async_connection().await.unwrap();
                let mut keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{guard_prefix}*"))
                    .query_async(&mut connection)
                    .await
                    .unwrap();
                keys.push(format!("{prefix}.generic"));
                for chunk in keys.chunks(10_000) {
                    let _: () = redis::cmd("DEL")
                        .arg(chunk)
                        .query_async(&mut connection)
                        .await
                        .unwrap();
                }
            });
        }
        None => eprintln!("forward/redis-stream skipped: set TOWER_WEBHOOKS_REDIS_URL"),
    }
}

criterion_group! {
    name = forward_benches;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(forward_benches);
