//! The inbox's accept path through axum: what is answered, and what is
//! (not) recorded, in every situation.
#![cfg(all(feature = "test-util", feature = "sqlite"))]

use crate::support;
use tower_webhooks::backend::FenceToken;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use axum::Router;
use axum::routing::post_service;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::{http_send, problem_kind, serve};
use tower::ServiceBuilder;
use tower_webhooks::inbox::{
    ClaimOptions, ClaimedEvent, EventKey, EventRecord, EventStatus, HandlerError, Inbox,
    InboxEvent, InboxStore, Inserted, ListFilter, MemoryInbox, NewEvent, Purged, SqliteInbox,
    StoreError,
};
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, WebhookLayer};

const SECRET: &str = "inbox_accept_secret";
const QUEUED: &[u8] = br#"{"ok":true,"queued":true}"#;
const DUPLICATE: &[u8] = br#"{"ok":true,"duplicate":true}"#;

async fn sqlite() -> SqliteInbox {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("tower-webhooks-accept-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("accept-{}.db", NEXT.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_file(&path);
    SqliteInbox::open(&path).await.unwrap()
}

/// The route's layer, built once: every app in a test is the same route, so
/// clones of one layer (a second, separately built layer on the same inbox
/// would be another route sharing the namespace, and refused).
fn layer() -> WebhookLayer {
    static LAYER: std::sync::OnceLock<WebhookLayer> = std::sync::OnceLock::new();
    LAYER
        .get_or_init(|| WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()))
        .clone()
}

async fn app(inbox: &Inbox) -> std::net::SocketAddr {
    let endpoint = ServiceBuilder::new().layer(layer()).service(inbox.accept());
    serve(Router::new().route("/hook", post_service(endpoint))).await
}

fn delivery(id: &str, body: &str) -> Request<Full<Bytes>> {
    GenericSigner::new(SECRET)
        .request("/hook", id, unix_now(), body.as_bytes())
        .map(Full::new)
}

fn key(id: &str) -> EventKey {
    EventKey::new("generic", id)
}

async fn count(inbox: &Inbox) -> usize {
    inbox
        .store()
        .list(ListFilter::new(1_000))
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_new_event_is_recorded_before_the_200_and_processed_after_it() {
    let inbox = Inbox::new(sqlite().await);
    let address = app(&inbox).await;
    let (status, body) = http_send(address, delivery("evt_new", r#"{"n":1}"#)).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, QUEUED));
    // No worker yet: the answer did not wait for processing, and the event is on record.
    let record = inbox
        .store()
        .get(&key("evt_new"))
        .await
        .unwrap()
        .expect("recorded before the 200");
    assert_eq!(record.status, EventStatus::Pending);
    assert_eq!(record.body.as_deref(), Some(&br#"{"n":1}"#[..]));

    let handled = Arc::new(AtomicU32::new(0));
    let counter = handled.clone();
    let worker = inbox
        .worker(move |event: InboxEvent| {
            counter.fetch_add(1, Ordering::SeqCst);
            assert_eq!(event.header("content-type"), Some("application/json"));
            async { Ok(()) }
        })
        .poll_interval(Duration::from_millis(10))
        .spawn();
    for _ in 0..500 {
        if inbox
            .store()
            .get(&key("evt_new"))
            .await
            .unwrap()
            .unwrap()
            .status
            == EventStatus::Succeeded
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown().await;
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_duplicate_in_every_status_is_200_and_records_nothing() {
    let inbox = Inbox::new(sqlite().await);
    let store = inbox.store().clone();
    let address = app(&inbox).await;
    let options = ClaimOptions {
        limit: 1,
        lease: Duration::from_secs(60),
        max_attempts: 3,
    };
    let resend = |status: &'static str| async move {
        let (code, body) = http_send(address, delivery("evt_dup", r#"{"n":1}"#)).await;
        assert_eq!(
            (code, &body[..]),
            (StatusCode::OK, DUPLICATE),
            "a duplicate while {status}"
        );
    };

    assert_eq!(
        http_send(address, delivery("evt_dup", r#"{"n":1}"#))
            .await
            .1,
        QUEUED
    );
    resend("pending").await;
    let claimed = store.claim(options).await.unwrap();
    resend("processing").await;
    assert!(
        store
            .complete(&key("evt_dup"), claimed[0].fence)
            .await
            .unwrap()
    );
    resend("succeeded").await;

    assert_eq!(
        http_send(address, delivery("evt_dead", "{}")).await.1,
        QUEUED
    );
    let claimed = store.claim(options).await.unwrap();
    assert!(
        store
            .kill(&key("evt_dead"), claimed[0].fence, "gave up")
            .await
            .unwrap()
    );
    let (code, body) = http_send(address, delivery("evt_dead", "{}")).await;
    assert_eq!(
        (code, &body[..]),
        (StatusCode::OK, DUPLICATE),
        "a duplicate while dead"
    );
    assert_eq!(count(&inbox).await, 2, "no second record");
}

#[tokio::test]
async fn the_same_id_with_another_body_is_counted_or_refused() {
    let inbox = Inbox::new(sqlite().await);
    let address = app(&inbox).await;
    assert_eq!(
        http_send(address, delivery("evt_b", r#"{"v":1}"#)).await.1,
        QUEUED
    );
    let (status, body) = http_send(address, delivery("evt_b", r#"{"v":2}"#)).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, DUPLICATE));
    assert_eq!(inbox.changed_body_count(), 1);

    let strict = inbox.clone().reject_changed_body(true);
    let address = app(&strict).await;
    let (status, body) = http_send(address, delivery("evt_b", r#"{"v":3}"#)).await;
    assert_eq!(
        (status, problem_kind(&body).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "changed-body")
    );
    let record = inbox.store().get(&key("evt_b")).await.unwrap().unwrap();
    assert_eq!(
        record.body.as_deref(),
        Some(&br#"{"v":1}"#[..]),
        "the first body is kept"
    );
}

#[tokio::test]
async fn a_full_inbox_sheds_load_before_writing() {
    let inbox = Inbox::new(sqlite().await)
        .max_pending(2)
        .unavailable_retry_after(Duration::from_secs(3));
    let address = app(&inbox).await;
    for id in ["evt_1", "evt_2"] {
        let body = format!(r#"{{"id":"{id}"}}"#);
        assert_eq!(http_send(address, delivery(id, &body)).await.1, QUEUED);
    }
    // The estimate refreshes at most every 100 ms; after that it is exact.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let response = tower::ServiceExt::oneshot(
        ServiceBuilder::new().layer(layer()).service(inbox.accept()),
        delivery("evt_3", "{}"),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "3");
    assert!(
        inbox.store().get(&key("evt_3")).await.unwrap().is_none(),
        "nothing written when shedding"
    );
}

/// An inbox store that is down.
#[derive(Debug)]
struct DownStore;

#[async_trait]
impl InboxStore for DownStore {
    fn is_durable(&self) -> bool {
        true
    }
    async fn insert(&self, _: NewEvent) -> Result<Inserted, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
    async fn claim(&self, _: ClaimOptions) -> Result<Vec<ClaimedEvent>, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
    async fn heartbeat(
        &self,
        _: &EventKey,
        _: FenceToken,
        _: Duration,
    ) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
    async fn complete(&self, _: &EventKey, _: FenceToken) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
    async fn retry(
        &self,
        _: &EventKey,
        _: FenceToken,
        _: Duration,
        _: &str,
    ) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
    async fn kill(&self, _: &EventKey, _: FenceToken, _: &str) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
    async fn give_back(&self, _: &EventKey, _: FenceToken) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
    async fn requeue(&self, _: &EventKey) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
    async fn get(&self, _: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
    async fn list(&self, _: ListFilter) -> Result<Vec<EventRecord>, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
    async fn pending_count(&self) -> Result<u64, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
    async fn purge(&self, _: SystemTime, _: SystemTime) -> Result<Purged, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
}

#[tokio::test]
async fn a_store_failure_is_a_503_and_nothing_is_acknowledged() {
    let inbox = Inbox::new(DownStore);
    let address = app(&inbox).await;
    let (status, body) = http_send(address, delivery("evt_x", "{}")).await;
    assert_eq!(
        (status, problem_kind(&body).as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "store-unavailable")
    );
}

#[tokio::test]
async fn a_memory_inbox_answers_only_after_the_handler_succeeded() {
    let inbox = Inbox::new(MemoryInbox::new());
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = attempts.clone();
    let worker = inbox
        .worker(move |_: InboxEvent| {
            let attempt = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt == 0 {
                    Err(HandlerError::retry("first try fails"))
                } else {
                    Ok(())
                }
            }
        })
        .backoff(Duration::from_millis(300), Duration::from_millis(300))
        .poll_interval(Duration::from_millis(10))
        .spawn();
    let address = app(&inbox).await;

    // The first attempt fails: not acknowledged, so the sender retries.
    let (status, body) = http_send(address, delivery("evt_mem", "{}")).await;
    assert_eq!(
        (status, problem_kind(&body).as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "handler-failed")
    );
    // Retried while the worker's own retry is pending: in flight.
    let (status, _) = http_send(address, delivery("evt_mem", "{}")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Once the worker succeeded, the sender's retry is a duplicate.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, body) = http_send(address, delivery("evt_mem", "{}")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, DUPLICATE));
    // A fresh event whose handler succeeds is answered 200 after it ran.
    // (Another body: the same body signed in the same second carries the same
    // signature, which the replay guard refuses under another id.)
    let (status, body) = http_send(address, delivery("evt_mem2", "{\"n\":2}")).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &br#"{"ok":true}"#[..])
    );
    worker.shutdown().await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

#[cfg(target_os = "linux")]
/// The CPU time (user + system) of the calling thread, from
/// `/proc/thread-self/stat`. The test runs on a current-thread
/// runtime, so the worker's tasks run on this thread too; the other tests of
/// the binary, on other threads, do not count.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command name (which ends with ')'): utime is the 12th, stime the 13th.
    let fields: Vec<u64> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let ticks = fields[11] + fields[12];
    Duration::from_millis(ticks * 1000 / 100) // USER_HZ is 100 on Linux
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "current_thread")]
async fn a_worker_whose_handle_is_dropped_keeps_working_without_spinning() {
    let inbox = Inbox::new(MemoryInbox::new()).acknowledge_before_handling(true);
    drop(
        inbox
            .worker(|_: InboxEvent| async { Ok(()) })
            .poll_interval(Duration::from_millis(200))
            .spawn(),
    );
    // Idle with no handle: the worker must sleep, not spin.
    let before = cpu_time();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let burnt = cpu_time() - before;
    assert!(
        burnt < Duration::from_millis(300),
        "an idle detached worker burnt {burnt:?} of CPU in 1 s"
    );

    let address = app(&inbox).await;
    assert_eq!(
        http_send(address, delivery("evt_detached", "{}")).await.1,
        QUEUED
    );
    let done = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let record = inbox
                .store()
                .get(&key("evt_detached"))
                .await
                .unwrap()
                .unwrap();
            if record.status == EventStatus::Succeeded {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(done.is_ok(), "the detached worker stopped working");
}
