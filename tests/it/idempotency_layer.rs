//! The idempotency layer through the full axum stack over real connections:
//! each event handled once, and every way a claim is given back.
#![cfg(feature = "test-util")]

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::{http_send, problem_kind, serve, try_http_send};
use tokio::sync::Notify;
use tower_webhooks::admission::Namespace;
use tower_webhooks::clock::FixedClock;
use tower_webhooks::idempotency::{Claim, FenceToken, IdempotencyStore, MemoryStore, StoreError};
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, WebhookLayer};

const SECRET: &str = "idempotency_secret";

fn delivery(id: &str, timestamp: u64, body: &[u8]) -> Request<Full<Bytes>> {
    GenericSigner::new(SECRET)
        .request("/hook", id, timestamp, body)
        .map(Full::new)
}

/// A router whose `/hook` runs `handler` behind verify + idempotency.
fn app<H, T>(
    store: Arc<dyn IdempotencyStore>,
    configure: impl FnOnce(IdempotencyLayer) -> IdempotencyLayer,
    handler: H,
) -> Router
where
    H: axum::handler::Handler<T, ()>,
    T: 'static,
{
    let layer = WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap())
        .with_idempotency(configure(IdempotencyLayer::from_shared(store)));
    Router::new().route("/hook", post(handler).route_layer(layer))
}

fn counting(
    runs: &Arc<AtomicUsize>,
) -> impl Fn() -> std::future::Ready<StatusCode> + Clone + Send + Sync + 'static {
    let runs = runs.clone();
    move || {
        runs.fetch_add(1, Ordering::SeqCst);
        std::future::ready(StatusCode::OK)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_deliveries_run_the_handler_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let handler_runs = runs.clone();
    let handler = move || {
        let runs = handler_runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            StatusCode::OK
        }
    };
    let address = serve(app(Arc::new(MemoryStore::new()), |layer| layer, handler)).await;
    let timestamp = unix_now();
    let deliveries: Vec<_> = (0..1_000)
        .map(|_| {
            tokio::spawn(http_send(
                address,
                delivery("evt_race", timestamp, b"{\"type\":\"race\"}"),
            ))
        })
        .collect();
    let (mut ok, mut duplicate, mut in_flight) = (0, 0, 0);
    for delivery in deliveries {
        let (status, body) = delivery.await.unwrap();
        match status {
            StatusCode::OK if body.as_ref() == br#"{"ok":true,"duplicate":true}"# => duplicate += 1,
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => in_flight += 1,
            other => panic!("unexpected status {other}: {body:?}"),
        }
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the handler ran more than once"
    );
    assert_eq!(ok, 1, "one delivery was handled");
    assert_eq!(ok + duplicate + in_flight, 1_000);
}

#[tokio::test]
async fn a_failed_handler_releases_the_key_so_the_retry_runs() {
    let runs = Arc::new(AtomicUsize::new(0));
    let handler_runs = runs.clone();
    let handler = move || {
        let attempt = handler_runs.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if attempt == 0 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        })
    };
    let address = serve(app(Arc::new(MemoryStore::new()), |layer| layer, handler)).await;
    let now = unix_now();
    assert_eq!(
        http_send(address, delivery("evt_500", now, b"{}")).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        http_send(address, delivery("evt_500", now + 1, b"{}"))
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = http_send(address, delivery("evt_500", now + 2, b"{}")).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &br#"{"ok":true,"duplicate":true}"#[..])
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// Sends until the answer is not 409 (a background release may be pending).
async fn send_until_settled(address: std::net::SocketAddr, id: &str, body: &[u8]) -> StatusCode {
    for _ in 0..100 {
        match try_http_send(address, delivery(id, unix_now(), body)).await {
            Ok((StatusCode::CONFLICT, _)) | Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Ok((status, _)) => return status,
        }
    }
    panic!("the key for {id} was never released");
}

#[tokio::test]
async fn a_panicking_handler_releases_the_key_and_the_server_keeps_serving() {
    let runs = Arc::new(AtomicUsize::new(0));
    let handler_runs = runs.clone();
    let handler = move || {
        let attempt = handler_runs.fetch_add(1, Ordering::SeqCst);
        async move {
            assert!(
                attempt > 0,
                "handler panics on its first run (this panic is expected)"
            );
            StatusCode::OK
        }
    };
    let address = serve(app(Arc::new(MemoryStore::new()), |layer| layer, handler)).await;
    assert!(
        try_http_send(address, delivery("evt_panic", unix_now(), b"{}"))
            .await
            .is_err(),
        "the panic closes the connection"
    );
    assert_eq!(
        send_until_settled(address, "evt_panic", b"{}").await,
        StatusCode::OK
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // Other events are still served. (Its body differs: under the reference
    // scheme the id is unsigned, so the same body in the same second would be
    // the same signature, which the replay guard refuses under a new id.)
    let other = delivery("evt_other", unix_now(), br#"{"id":"evt_other"}"#);
    assert_eq!(http_send(address, other).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_handler_releases_the_key() {
    let entered = Arc::new(Notify::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let (handler_entered, handler_runs) = (entered.clone(), runs.clone());
    let handler = move || {
        let attempt = handler_runs.fetch_add(1, Ordering::SeqCst);
        let entered = handler_entered.clone();
        async move {
            if attempt == 0 {
                entered.notify_one();
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            StatusCode::OK
        }
    };
    let address = serve(app(Arc::new(MemoryStore::new()), |layer| layer, handler)).await;
    let first = tokio::spawn(http_send(address, delivery("evt_gone", unix_now(), b"{}")));
    entered.notified().await;
    first.abort(); // the client goes away; hyper drops the request future
    let _ = first.await;
    assert_eq!(
        send_until_settled(address, "evt_gone", b"{}").await,
        StatusCode::OK
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn after_the_lease_expires_a_new_claim_wins_and_the_old_completion_is_ignored() {
    let clock = FixedClock::new(std::time::SystemTime::now());
    let store = Arc::new(MemoryStore::with_clock(clock.clone()));
    let release_first = Arc::new(Notify::new());
    let entered = Arc::new(Notify::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let (handler_release, handler_entered, handler_runs) =
        (release_first.clone(), entered.clone(), runs.clone());
    let handler = move || {
        let attempt = handler_runs.fetch_add(1, Ordering::SeqCst);
        let (release, entered) = (handler_release.clone(), handler_entered.clone());
        async move {
            match attempt {
                0 => {
                    entered.notify_one();
                    release.notified().await; // the slow first attempt, outliving its lease
                    StatusCode::OK
                }
                1 => StatusCode::INTERNAL_SERVER_ERROR, // the second attempt fails and releases
                _ => StatusCode::OK,
            }
        }
    };
    let address = serve(app(
        store,
        |layer| layer.lease(Duration::from_secs(30)),
        handler,
    ))
    .await;
    let first = tokio::spawn(http_send(address, delivery("evt_lease", unix_now(), b"{}")));
    entered.notified().await;
    clock.advance(Duration::from_secs(31));

    let (status, _) = http_send(address, delivery("evt_lease", unix_now() + 1, b"{}")).await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the second attempt took the expired lease"
    );
    release_first.notify_one();
    assert_eq!(first.await.unwrap().0, StatusCode::OK);

    // Had the zombie's completion counted, this would be a duplicate.
    let (status, body) = http_send(address, delivery("evt_lease", unix_now() + 2, b"{}")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b""[..]));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn namespaces_keep_the_same_id_apart() {
    let store: Arc<dyn IdempotencyStore> = Arc::new(MemoryStore::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let layer = |namespace: &'static str| {
        WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap())
            .namespace(Namespace::new(namespace).unwrap())
            .with_idempotency(IdempotencyLayer::from_shared(store.clone()))
    };
    let app = Router::new()
        .route("/a", post(counting(&runs)).route_layer(layer("partner-a")))
        .route("/b", post(counting(&runs)).route_layer(layer("partner-b")));
    let address = serve(app).await;
    let signer = GenericSigner::new(SECRET);
    for path in ["/a", "/b"] {
        let request = signer
            .request(path, "evt_same", unix_now(), b"{}")
            .map(Full::new);
        let (status, body) = http_send(address, request).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b""[..]), "{path}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_signature_replayed_under_a_new_event_id_is_refused() {
    let runs = Arc::new(AtomicUsize::new(0));
    let address = serve(app(
        Arc::new(MemoryStore::new()),
        |layer| layer,
        counting(&runs),
    ))
    .await;
    let original = delivery("evt_real", unix_now(), b"{\"amount\":100}");
    let mut replay = original.clone();
    replay
        .headers_mut()
        .insert("x-event-id", "evt_forged".parse().unwrap());
    let resend = original.clone();

    assert_eq!(http_send(address, original).await.0, StatusCode::OK);
    let (status, body) = http_send(address, replay).await;
    assert_eq!(
        (status, problem_kind(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "replayed-signature")
    );
    // The identical request again is an ordinary duplicate.
    let (status, body) = http_send(address, resend).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &br#"{"ok":true,"duplicate":true}"#[..])
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A store that fails or hangs on every call.
#[derive(Debug)]
struct BrokenStore {
    hang: bool,
}

#[async_trait]
impl IdempotencyStore for BrokenStore {
    async fn claim(&self, _: &str, _: &[u8], _: Duration) -> Result<Claim, StoreError> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        Err(StoreError::unavailable("connection refused"))
    }
    async fn complete(&self, _: &str, _: FenceToken, _: Duration) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
    async fn release(&self, _: &str, _: FenceToken) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
    async fn renew(&self, _: &str, _: FenceToken, _: Duration) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
}

#[tokio::test]
async fn a_failing_or_hung_store_is_a_503_and_fail_open_is_explicit() {
    for hang in [false, true] {
        let runs = Arc::new(AtomicUsize::new(0));
        let store = Arc::new(BrokenStore { hang });
        let address = serve(app(
            store.clone(),
            |layer| layer.store_timeout(Duration::from_millis(200)),
            counting(&runs),
        ))
        .await;
        let started = std::time::Instant::now();
        let request = delivery("evt_down", unix_now(), b"{}");
        let (status, body) = http_send(address, request).await;
        assert_eq!(
            (status, problem_kind(&body).as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "store-unavailable")
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a hung store held the request for {:?}",
            started.elapsed()
        );
        assert_eq!(
            runs.load(Ordering::SeqCst),
            0,
            "nothing runs when the store is down"
        );

        // Another route on the same store needs its own store handle (or
        // namespace): a second route on one namespace is refused.
        let open = serve(app(
            Arc::new(store),
            |layer| {
                layer
                    .store_timeout(Duration::from_millis(200))
                    .fail_open(true)
            },
            counting(&runs),
        ))
        .await;
        assert_eq!(
            http_send(open, delivery("evt_down", unix_now(), b"{}"))
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1, "fail-open runs the handler");
    }
}

#[tokio::test]
async fn the_503_carries_retry_after() {
    let app = app(
        Arc::new(BrokenStore { hang: false }),
        |layer| layer.unavailable_retry_after(Duration::from_secs(7)),
        || async { "x" },
    );
    let response = tower::ServiceExt::oneshot(
        app,
        delivery("evt_ra", unix_now(), b"{}").map(axum::body::Body::new),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "7");
}

/// A store that can be taken down and brought back.
#[derive(Debug, Default)]
struct Flaky {
    down: std::sync::atomic::AtomicBool,
    inner: MemoryStore,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("connection refused"));
        }
        Ok(())
    }
}

#[async_trait]
impl IdempotencyStore for Flaky {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &[u8],
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        self.check()?;
        self.inner.claim(key, fingerprint, lease).await
    }
    async fn complete(
        &self,
        key: &str,
        token: FenceToken,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.complete(key, token, retention).await
    }
    async fn release(&self, key: &str, token: FenceToken) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.release(key, token).await
    }
    async fn renew(
        &self,
        key: &str,
        token: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.renew(key, token, lease).await
    }
}

#[tokio::test]
async fn after_an_outage_the_next_delivery_is_handled() {
    let runs = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(Flaky::default());
    let address = serve(app(store.clone(), |layer| layer, counting(&runs))).await;
    store.down.store(true, Ordering::SeqCst);
    let (status, _) = http_send(address, delivery("evt_outage", unix_now(), b"{}")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    store.down.store(false, Ordering::SeqCst);
    // The sender's retry, after the store is back.
    let (status, body) = http_send(address, delivery("evt_outage", unix_now() + 1, b"{}")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b""[..]));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_request_without_an_event_id_is_keyed_by_its_body() {
    use tower_webhooks::providers::Slack;
    use tower_webhooks::testing::SlackSigner;
    let runs = Arc::new(AtomicUsize::new(0));
    let layer = WebhookLayer::new(Slack::new(SECRET).unwrap())
        .with_idempotency(IdempotencyLayer::new(MemoryStore::new()));
    let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (seen, counter) = (ids.clone(), runs.clone());
    let handler =
        move |axum::Extension(webhook): axum::Extension<tower_webhooks::VerifiedWebhook>| {
            counter.fetch_add(1, Ordering::SeqCst);
            seen.lock()
                .unwrap()
                .push(webhook.event_id().unwrap().to_owned());
            std::future::ready(StatusCode::OK)
        };
    let address = serve(Router::new().route("/slack", post(handler).route_layer(layer))).await;
    // A slash command: form-encoded, no event id anywhere.
    let command =
        b"command=%2Fdeploy&text=prod&trigger_id=13345224609.738474920.8088930838d88f008e0";
    let signer = SlackSigner::new(SECRET);
    for _ in 0..2 {
        let request = signer
            .request("/slack", "-", unix_now(), command)
            .map(Full::new);
        assert_eq!(http_send(address, request).await.0, StatusCode::OK);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the retry of the same command is a duplicate"
    );
    let ids = ids.lock().unwrap();
    assert!(
        ids[0].starts_with("sha256:") && ids[0].len() == 7 + 32,
        "derived id: {}",
        ids[0]
    );
}
