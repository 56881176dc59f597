//! Metrics: a test recorder sees each outcome counted once, with its labels.
#![cfg(all(feature = "metrics", feature = "test-util"))]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{post, post_service};
use bytes::Bytes;
use http::Request;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// One snapshot's entries (taking a snapshot drains the histograms).
type Entries = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;
use tower::{ServiceBuilder, ServiceExt};
use tower_webhooks::idempotency::MemoryStore;
use tower_webhooks::inbox::{HandlerError, Inbox, InboxEvent, MemoryInbox};
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::metrics::{HANDLER_DURATION_SECONDS, REQUESTS_TOTAL, VERIFY_DURATION_SECONDS};
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, WebhookLayer};

const SECRET: &str = "metrics_secret";

/// Counter values by (name, sorted labels).
fn counters(entries: &Entries) -> HashMap<(String, Vec<(String, String)>), u64> {
    entries
        .iter()
        .filter_map(|(key, _, _, value)| {
            let DebugValue::Counter(count) = value else {
                return None;
            };
            let mut labels: Vec<(String, String)> = key
                .key()
                .labels()
                .map(|label| (label.key().to_owned(), label.value().to_owned()))
                .collect();
            labels.sort();
            Some(((key.key().name().to_owned(), labels), *count))
        })
        .collect()
}

/// How many values a histogram with this name and label recorded.
fn histogram_count(entries: &Entries, name: &str, label: (&str, &str)) -> usize {
    entries
        .iter()
        .filter(|(key, _, _, _)| {
            key.key().name() == name
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == label.0 && l.value() == label.1)
        })
        .map(|(_, _, _, value)| match value {
            DebugValue::Histogram(values) => values.len(),
            _ => 0,
        })
        .sum()
}

fn requests(provider: &str, namespace: &str, outcome: &str) -> (String, Vec<(String, String)>) {
    (
        REQUESTS_TOTAL.to_owned(),
        vec![
            ("namespace".to_owned(), namespace.to_owned()),
            ("outcome".to_owned(), outcome.to_owned()),
            ("provider".to_owned(), provider.to_owned()),
        ],
    )
}

fn delivery(id: &str, body: &str) -> Request<axum::body::Body> {
    GenericSigner::new(SECRET)
        .request("/hook", id, unix_now(), body.as_bytes())
        .map(axum::body::Body::from)
}

#[test]
fn inline_outcomes_are_counted_once_with_their_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let layer = WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap())
                .with_idempotency(IdempotencyLayer::new(MemoryStore::new()));
            let app = Router::new().route("/hook", post(|| async { "ok" }).route_layer(layer));
            let send = |request| app.clone().oneshot(request);
            let original =
                GenericSigner::new(SECRET).request("/hook", "evt_1", unix_now(), b"{\"n\":1}");
            send(original.clone().map(axum::body::Body::from))
                .await
                .unwrap();
            send(original.clone().map(axum::body::Body::from))
                .await
                .unwrap(); // duplicate
            let mut replay = original.clone();
            replay
                .headers_mut()
                .insert("x-event-id", "evt_forged".parse().unwrap());
            send(replay.map(axum::body::Body::from)).await.unwrap(); // replayed
            let mut tampered = original;
            *tampered.body_mut() = Bytes::from_static(b"{\"n\":2}");
            send(tampered.map(axum::body::Body::from)).await.unwrap(); // signature mismatch
            send(
                Request::post("/hook")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap(); // missing header
        });
    });
    let entries: Entries = snapshotter.snapshot().into_vec();
    let counters = counters(&entries);
    for outcome in [
        "handled",
        "duplicate",
        "replayed-signature",
        "signature-mismatch",
        "missing-header",
    ] {
        assert_eq!(
            counters.get(&requests("generic", "generic", outcome)),
            Some(&1),
            "{outcome}: {counters:?}"
        );
    }
    let total: u64 = counters
        .iter()
        .filter(|((name, _), _)| name == REQUESTS_TOTAL)
        .map(|(_, count)| count)
        .sum();
    assert_eq!(total, 5, "one count per request: {counters:?}");
    // Every request was verified (the last one failed at its first header).
    assert_eq!(
        histogram_count(&entries, VERIFY_DURATION_SECONDS, ("provider", "generic")),
        5
    );
}

#[test]
fn inbox_outcomes_and_handler_durations_are_recorded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let inbox = Inbox::new(MemoryInbox::new()).acknowledge_before_handling(true);
            let worker = inbox
                .worker(|event: InboxEvent| async move {
                    if event.id() == "evt_bad" {
                        Err(HandlerError::permanent("no"))
                    } else {
                        Ok(())
                    }
                })
                .poll_interval(Duration::from_millis(10))
                .spawn();
            let endpoint = ServiceBuilder::new()
                .layer(WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()))
                .service(inbox.accept());
            let app = Router::new().route("/hook", post_service(endpoint));
            for (id, body) in [
                ("evt_good", "{\"n\":1}"),
                ("evt_bad", "{\"n\":2}"),
                ("evt_good", "{\"n\":1}"),
            ] {
                app.clone().oneshot(delivery(id, body)).await.unwrap();
            }
            let store = Arc::clone(inbox.store());
            for _ in 0..200 {
                let good = store
                    .get(&tower_webhooks::inbox::EventKey::new("generic", "evt_good"))
                    .await
                    .unwrap();
                let bad = store
                    .get(&tower_webhooks::inbox::EventKey::new("generic", "evt_bad"))
                    .await
                    .unwrap();
                let done = |record: Option<tower_webhooks::inbox::EventRecord>| {
                    record.is_some_and(|record| {
                        !matches!(
                            record.status,
                            tower_webhooks::inbox::EventStatus::Pending
                                | tower_webhooks::inbox::EventStatus::Processing
                        )
                    })
                };
                if done(good) && done(bad) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            worker.shutdown().await;
        });
    });
    let entries: Entries = snapshotter.snapshot().into_vec();
    let counters = counters(&entries);
    assert_eq!(
        counters.get(&requests("generic", "generic", "queued")),
        Some(&2),
        "{counters:?}"
    );
    assert_eq!(
        counters.get(&requests("generic", "generic", "duplicate")),
        Some(&1),
        "{counters:?}"
    );
    assert_eq!(
        histogram_count(&entries, HANDLER_DURATION_SECONDS, ("outcome", "succeeded")),
        1
    );
    assert_eq!(
        histogram_count(&entries, HANDLER_DURATION_SECONDS, ("outcome", "dead")),
        1
    );
}
