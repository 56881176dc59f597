//! Two independent receivers (two servers on different ports, each with its
//! own connection pool) sharing one Redis, then one PostgreSQL: 10,000
//! deliveries of 7,000 distinct events, in random order with duplicates sent
//! concurrently to both, and every event is handled exactly once in total.
#![cfg(all(feature = "test-util", feature = "redis", feature = "postgres"))]

use crate::support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::post;
use axum::{Extension, Router};
use http::StatusCode;
use http_body_util::Full;
use support::{serve, try_http_send};
use tower_webhooks::idempotency::{IdempotencyStore, PostgresStore, RedisStore};
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, VerifiedWebhook, WebhookLayer};

const SECRET: &str = "multi_instance_secret";
const DISTINCT: usize = 7_000;
const DELIVERIES: usize = 10_000;

type Counts = Arc<Mutex<HashMap<String, u32>>>;

fn unique(prefix: &str) -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("{prefix}_{}_{micros}", std::process::id())
}

/// One receiver: its own server, its own store connection.
async fn instance(store: Arc<dyn IdempotencyStore>, counts: Counts) -> SocketAddr {
    let handler = move |Extension(webhook): Extension<VerifiedWebhook>| {
        let counts = counts.clone();
        async move {
            // A little work, so duplicates really overlap.
            tokio::time::sleep(Duration::from_millis(2)).await;
            *counts
                .lock()
                .unwrap()
                .entry(webhook.event_id().unwrap().to_owned())
                .or_default() += 1;
            StatusCode::OK
        }
    };
    let layer = WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()).with_idempotency(
        IdempotencyLayer::from_shared(store)
            .store_timeout(Duration::from_secs(5))
            .in_flight_retry_after(Duration::from_millis(50)),
    );
    serve(Router::new().route("/webhooks/provider", post(handler).route_layer(layer))).await
}

/// A deterministic shuffle (xorshift), so a failure can be replayed.
fn shuffled(mut items: Vec<usize>, mut seed: u64) -> Vec<usize> {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    items
}

/// Sends every delivery, 64 at a time, alternating between the instances,
/// and retries a delivery answered 409 (in flight) the way a provider would.
async fn deliver_everything(instances: [SocketAddr; 2], counts: Counts) {
    // Each event once, plus 3,000 duplicates of events spread over the set.
    let mut deliveries: Vec<usize> = (0..DISTINCT).collect();
    deliveries.extend((0..DELIVERIES - DISTINCT).map(|i| (i * 7) % DISTINCT));
    let deliveries = shuffled(deliveries, 0x9E37_79B9_7F4A_7C15);
    let signer = Arc::new(GenericSigner::new(SECRET));
    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::with_capacity(DELIVERIES);
    for (n, event) in deliveries.into_iter().enumerate() {
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        let signer = signer.clone();
        let address = instances[n % 2];
        tasks.push(tokio::spawn(async move {
            let id = format!("evt_{event}");
            let body = format!(r#"{{"id":"{id}"}}"#);
            for _ in 0..200 {
                let request = signer
                    .request("/webhooks/provider", &id, unix_now(), body.as_bytes())
                    .map(Full::new);
                match try_http_send(address, request).await {
                    Ok((StatusCode::OK, _)) => {
                        drop(permit);
                        return;
                    }
                    Ok((StatusCode::CONFLICT, _)) => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    other => panic!("delivery of {id} answered {other:?}"),
                }
            }
            panic!("delivery of {id} never settled");
        }));
    }
    for task in tasks {
        task.await.expect("a delivery failed");
    }
    let counts = counts.lock().unwrap();
    assert_eq!(counts.len(), DISTINCT, "some events were never handled");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).take(10).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tower_webhooks_redis),
    ignore = "set TOWER_WEBHOOKS_REDIS_URL to run against Redis"
)]
async fn two_instances_sharing_redis_handle_each_event_once() {
    let url = std::env::var("TOWER_WEBHOOKS_REDIS_URL").expect("TOWER_WEBHOOKS_REDIS_URL");
    let prefix = format!("{}:", unique("tw_multi"));
    let counts = Counts::default();
    let mut addresses = Vec::new();
    for _ in 0..2 {
        let store = RedisStore::builder()
            .key_prefix(prefix.clone())
            .connect(&url)
            .await
            .expect("connect to Redis");
        addresses.push(instance(Arc::new(store), counts.clone()).await);
    }
    deliver_everything([addresses[0], addresses[1]], counts).await;

    // Clean up this test's keys.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    for chunk in keys.chunks(1_000) {
        let _: () = redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn two_instances_sharing_postgres_handle_each_event_once() {
    let url = std::env::var("TOWER_WEBHOOKS_PG_URL").expect("TOWER_WEBHOOKS_PG_URL");
    let table = unique("tw_multi");
    let counts = Counts::default();
    let mut addresses = Vec::new();
    for _ in 0..2 {
        let store = PostgresStore::builder()
            .table(table.clone())
            .pool_size(8)
            .connect(&url)
            .expect("PostgreSQL URL");
        store.migrate().await.expect("migrate");
        addresses.push(instance(Arc::new(store), counts.clone()).await);
    }
    deliver_everything([addresses[0], addresses[1]], counts).await;

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS \"{table}\"; DROP SEQUENCE IF EXISTS \"{table}_fence\";"
        ))
        .await
        .unwrap();
}
