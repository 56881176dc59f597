//! The verify layer's overhead: the same `service_fn` handler called bare,
//! behind [`WebhookLayer`] (generic scheme), and behind `WebhookLayer` + the
//! in-memory idempotency layer, each driven with `oneshot` on a 1 KiB body.
//!
//! Every request is signed in the (untimed) setup with a unique event id and
//! body, so the idempotency layer claims a fresh key each time.
//!
//! ```text
//! cargo bench --bench layer
//! ```

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tokio::runtime::Runtime;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_webhooks::idempotency::MemoryStore;
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, WebhookLayer};

const SECRET: &str = "layer_bench_secret";
const BODY_BYTES: usize = 1024;

/// The handler every variant runs: reads the body, answers 200.
async fn handler(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request.into_body().collect().await?.to_bytes();
    black_box(body.len());
    Ok(Response::new(Full::new(Bytes::from_static(
        b"{\"ok\":true}",
    ))))
}

/// A signed request with a fresh id and a body unique to it.
fn request(signer: &GenericSigner) -> Request<Full<Bytes>> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = format!("evt_{}_{n}", std::process::id());
    let mut body = format!(r#"{{"id":"{id}","type":"invoice.paid","pad":""#).into_bytes();
    body.resize(BODY_BYTES - 2, b'x');
    body.extend_from_slice(b"\"}");
    let request = signer.request("/webhooks/provider", &id, unix_now(), &body);
    request.map(Full::new)
}

fn layer(c: &mut Criterion) {
    let runtime = Runtime::new().expect("tokio runtime");
    let signer = GenericSigner::new(SECRET);
    let bare = service_fn(handler);
    let verified = ServiceBuilder::new()
        .layer(WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()))
        .service_fn(handler);
    let deduplicated = ServiceBuilder::new()
        .layer(
            WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap())
                .with_idempotency(IdempotencyLayer::new(MemoryStore::new())),
        )
        .service_fn(handler);

    let mut group = c.benchmark_group("layer/1KiB");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare", |b| {
        b.to_async(&runtime).iter_batched(
            || request(&signer),
            |request| {
                let service = bare;
                async move {
                    let response = service.oneshot(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("verify", |b| {
        b.to_async(&runtime).iter_batched(
            || request(&signer),
            |request| {
                let service = verified.clone();
                async move {
                    let response = service.oneshot(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("verify+memory_idempotency", |b| {
        b.to_async(&runtime).iter_batched(
            || request(&signer),
            |request| {
                let service = deduplicated.clone();
                async move {
                    let response = service.oneshot(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = layer
}
criterion_main!(benches);
