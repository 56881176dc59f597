//! The behaviour every [`InboxStore`] must show, through the real worker
//! (feature `test-util`).
//!
//! Each function checks one property and panics with a description when the
//! store breaks it. [`inbox_store_conformance!`](crate::inbox_store_conformance)
//! generates one `#[tokio::test]` per property from an expression that
//! evaluates to a future of `Option<store>` (fresh for every test; `None`
//! skips), exactly like the idempotency suite.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::{
    ClaimOptions, EventKey, EventRecord, EventStatus, HandlerError, Inbox, InboxEvent, InboxStore,
    Inserted, ListFilter, NewEvent, SignatureRecord, StoreError, Worker,
};

fn event(id: &str, body: &'static [u8]) -> NewEvent {
    NewEvent {
        key: EventKey::new("conf", id),
        body: Bytes::from_static(body),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        received_at: SystemTime::now(),
        signature: None,
    }
}

fn key(id: &str) -> EventKey {
    EventKey::new("conf", id)
}

/// A worker tuned for tests: short backoff and polling.
fn fast(worker: Worker) -> Worker {
    worker
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
        .poll_interval(Duration::from_millis(10))
        .max_attempts(3)
}

async fn record(store: &Arc<dyn InboxStore>, id: &str) -> EventRecord {
    store
        .get(&key(id))
        .await
        .expect("get failed")
        .unwrap_or_else(|| panic!("event {id} not recorded"))
}

/// Polls until `id` has `status`, for at most 20 s.
async fn wait_for(store: &Arc<dyn InboxStore>, id: &str, status: EventStatus) -> EventRecord {
    let started = Instant::now();
    loop {
        let record = record(store, id).await;
        if record.status == status {
            return record;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "event {id} stuck in {:?}, wanted {status:?}",
            record.status
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn insert_new(store: &Arc<dyn InboxStore>, new: NewEvent) {
    assert_eq!(
        store.insert(new).await.expect("insert failed"),
        Inserted::New
    );
}

/// A handler that fails twice and then succeeds: `succeeded` after 3 attempts,
/// with the last error recorded along the way.
pub async fn fails_twice_then_succeeds(store: Arc<dyn InboxStore>) {
    let calls = Arc::new(AtomicU32::new(0));
    let handler_calls = calls.clone();
    let worker = fast(
        Inbox::from_shared(store.clone()).worker(move |event: InboxEvent| {
            let calls = handler_calls.clone();
            async move {
                assert_eq!(event.body, Bytes::from_static(b"{\"n\":1}"));
                let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
                assert_eq!(event.attempt, call, "attempt numbers count from 1");
                if call < 3 {
                    Err(HandlerError::retry(format!("failure {call}")))
                } else {
                    Ok(())
                }
            }
        }),
    )
    .spawn();
    insert_new(&store, event("evt_flaky", b"{\"n\":1}")).await;
    let done = wait_for(&store, "evt_flaky", EventStatus::Succeeded).await;
    worker.shutdown().await;
    assert_eq!(done.attempts, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(done.last_error.as_deref(), Some("failure 2"));
}

/// A handler that always fails: `dead` after `max_attempts`; `requeue` runs
/// it again.
pub async fn dead_after_max_attempts_then_requeue(store: Arc<dyn InboxStore>) {
    let calls = Arc::new(AtomicU32::new(0));
    let handler_calls = calls.clone();
    let worker = fast(
        Inbox::from_shared(store.clone()).worker(move |_: InboxEvent| {
            let call = handler_calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if call <= 3 {
                    Err(HandlerError::retry("still broken"))
                } else {
                    Ok(())
                }
            }
        }),
    )
    .spawn();
    insert_new(&store, event("evt_dead", b"{}")).await;
    let dead = wait_for(&store, "evt_dead", EventStatus::Dead).await;
    assert_eq!(dead.attempts, 3);
    assert!(
        dead.last_error
            .as_deref()
            .unwrap_or("")
            .contains("still broken")
    );
    assert!(
        store
            .requeue(&key("evt_dead"))
            .await
            .expect("requeue failed")
    );
    assert!(
        !store
            .requeue(&key("evt_dead"))
            .await
            .expect("requeue failed")
            || {
                // A worker may already have claimed and finished it: either way a
                // second requeue of a non-dead event is refused or it is dead again.
                record(&store, "evt_dead").await.status == EventStatus::Dead
            }
    );
    let revived = wait_for(&store, "evt_dead", EventStatus::Succeeded).await;
    worker.shutdown().await;
    assert_eq!(revived.attempts, 1, "requeue gives a fresh budget");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

/// A permanent error goes straight to `dead`.
pub async fn permanent_error_is_dead_at_once(store: Arc<dyn InboxStore>) {
    let worker = fast(
        Inbox::from_shared(store.clone())
            .worker(|_: InboxEvent| async { Err(HandlerError::permanent("malformed payload")) }),
    )
    .spawn();
    insert_new(&store, event("evt_perm", b"{}")).await;
    let dead = wait_for(&store, "evt_perm", EventStatus::Dead).await;
    worker.shutdown().await;
    assert_eq!(dead.attempts, 1);
}

/// A panicking handler is retried, and the worker keeps working.
pub async fn panic_is_retried_and_the_worker_survives(store: Arc<dyn InboxStore>) {
    let calls = Arc::new(AtomicU32::new(0));
    let handler_calls = calls.clone();
    let worker = fast(
        Inbox::from_shared(store.clone()).worker(move |event: InboxEvent| {
            let call = handler_calls.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(
                    !(event.id() == "evt_panic" && call == 0),
                    "handler panic (expected by the test)"
                );
                Ok(())
            }
        }),
    )
    .spawn();
    insert_new(&store, event("evt_panic", b"{}")).await;
    let done = wait_for(&store, "evt_panic", EventStatus::Succeeded).await;
    assert_eq!(done.attempts, 2);
    insert_new(&store, event("evt_after", b"{}")).await;
    wait_for(&store, "evt_after", EventStatus::Succeeded).await;
    worker.shutdown().await;
}

/// Once a lease expires, another claim takes the event with a higher fence,
/// and every call of the old claim (heartbeat, complete, retry, kill, give
/// back) changes nothing.
pub async fn an_expired_lease_is_reclaimed_and_the_zombie_is_fenced(store: Arc<dyn InboxStore>) {
    insert_new(&store, event("evt_zombie", b"{}")).await;
    let options = ClaimOptions {
        limit: 10,
        lease: Duration::from_millis(300),
        max_attempts: 5,
    };
    let first = store.claim(options).await.expect("claim failed");
    assert_eq!(first.len(), 1);
    assert!(
        store.claim(options).await.expect("claim failed").is_empty(),
        "a live lease must not be claimed"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let second = store.claim(options).await.expect("claim failed");
    assert_eq!(second.len(), 1, "an expired lease must be claimable");
    let (zombie, live) = (first[0].fence, second[0].fence);
    assert!(live > zombie, "fences must rise: {zombie} then {live}");
    assert_eq!(second[0].attempt, 2);
    let k = key("evt_zombie");
    assert!(
        !store
            .heartbeat(&k, zombie, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(!store.complete(&k, zombie).await.unwrap());
    assert!(
        !store
            .retry(&k, zombie, Duration::ZERO, "zombie")
            .await
            .unwrap()
    );
    assert!(!store.kill(&k, zombie, "zombie").await.unwrap());
    assert!(!store.give_back(&k, zombie).await.unwrap());
    assert_eq!(
        record(&store, "evt_zombie").await.status,
        EventStatus::Processing
    );
    assert!(
        store
            .heartbeat(&k, live, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(store.complete(&k, live).await.unwrap());
    assert_eq!(
        record(&store, "evt_zombie").await.status,
        EventStatus::Succeeded
    );
}

/// An event whose every attempt dies with the process (its lease expires
/// without any result) ends `dead` once the budget is spent, not in a loop.
pub async fn a_poison_pill_ends_dead(store: Arc<dyn InboxStore>) {
    insert_new(&store, event("evt_poison", b"{}")).await;
    let options = ClaimOptions {
        limit: 10,
        lease: Duration::from_millis(200),
        max_attempts: 2,
    };
    for attempt in 1..=2 {
        let claimed = store.claim(options).await.expect("claim failed");
        assert_eq!(claimed.len(), 1, "attempt {attempt} should be claimed");
        tokio::time::sleep(Duration::from_millis(800)).await; // "the process died"
    }
    assert!(store.claim(options).await.expect("claim failed").is_empty());
    let dead = record(&store, "evt_poison").await;
    assert_eq!((dead.status, dead.attempts), (EventStatus::Dead, 2));
    assert!(dead.last_error.is_some());
}

/// Four workers racing over 5,000 events: each handled exactly once. The
/// inserts come in one burst; one the store sheds with
/// [`StoreError::Overloaded`] is retried.
pub async fn four_workers_handle_each_of_5000_events_once(store: Arc<dyn InboxStore>) {
    let inbox = Inbox::from_shared(store.clone());
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let seen = seen.clone();
        workers.push(
            fast(inbox.worker(move |event: InboxEvent| {
                *seen
                    .lock()
                    .unwrap()
                    .entry(event.id().to_owned())
                    .or_default() += 1;
                async { Ok(()) }
            }))
            .concurrency(16)
            .spawn(),
        );
    }
    let inserts: Vec<_> = (0..5_000)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let new = NewEvent {
                    key: key(&format!("evt_{i}")),
                    ..event("", b"{}")
                };
                // A store with a bounded queue may shed part of such a
                // burst with `Overloaded`; the sender retries, as here.
                loop {
                    match store.insert(new.clone()).await {
                        Err(StoreError::Overloaded) => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        outcome => break outcome,
                    }
                }
            })
        })
        .collect();
    for insert in inserts {
        assert_eq!(insert.await.unwrap().expect("insert failed"), Inserted::New);
    }
    let started = Instant::now();
    loop {
        let done = seen.lock().unwrap().len();
        let pending = store.pending_count().await.unwrap();
        let processing = store
            .list(ListFilter::new(1).status(EventStatus::Processing))
            .await
            .unwrap()
            .len();
        if done == 5_000 && pending == 0 && processing == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {done} of 5000 handled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for worker in workers {
        worker.shutdown().await;
    }
    let seen = seen.lock().unwrap().clone();
    let twice: Vec<_> = seen.iter().filter(|(_, count)| **count != 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    let succeeded = store
        .list(ListFilter::new(10_000).status(EventStatus::Succeeded))
        .await
        .unwrap();
    assert_eq!(succeeded.len(), 5_000);
}

/// Graceful shutdown: handlers that finish within the grace period complete;
/// the rest are interrupted and their events given back to `pending` with
/// the attempt not counted. Nothing is left `processing`.
pub async fn graceful_shutdown_leaves_nothing_processing(store: Arc<dyn InboxStore>) {
    let worker = fast(
        Inbox::from_shared(store.clone()).worker(|event: InboxEvent| async move {
            let pause = if event.id().starts_with("evt_quick") {
                100
            } else {
                60_000
            };
            tokio::time::sleep(Duration::from_millis(pause)).await;
            Ok(())
        }),
    )
    .shutdown_grace(Duration::from_millis(600))
    .spawn();
    for id in ["evt_quick", "evt_slow_1", "evt_slow_2"] {
        insert_new(&store, event(id, b"{}")).await;
    }
    for id in ["evt_slow_1", "evt_slow_2"] {
        wait_for(&store, id, EventStatus::Processing).await;
    }
    worker.shutdown().await;
    assert_eq!(
        record(&store, "evt_quick").await.status,
        EventStatus::Succeeded
    );
    for id in ["evt_slow_1", "evt_slow_2"] {
        let given_back = record(&store, id).await;
        assert_eq!(
            (given_back.status, given_back.attempts),
            (EventStatus::Pending, 0),
            "{id}"
        );
    }
    let processing = store
        .list(ListFilter::new(10).status(EventStatus::Processing))
        .await
        .unwrap();
    assert!(processing.is_empty());
}

/// A duplicate in every status is reported as such (with body equality) and
/// never recorded twice.
pub async fn duplicates_in_every_status_write_nothing(store: Arc<dyn InboxStore>) {
    let options = ClaimOptions {
        limit: 10,
        lease: Duration::from_secs(60),
        max_attempts: 5,
    };
    // pending
    insert_new(&store, event("evt_dup", b"{\"v\":1}")).await;
    let check = |status: EventStatus| {
        let store = store.clone();
        async move {
            assert_eq!(record(&store, "evt_dup").await.status, status);
            let same = store
                .insert(event("evt_dup", b"{\"v\":1}"))
                .await
                .expect("insert failed");
            assert_eq!(
                same,
                Inserted::Duplicate { same_body: true },
                "in {status:?}"
            );
            let changed = store
                .insert(event("evt_dup", b"{\"v\":2}"))
                .await
                .expect("insert failed");
            assert_eq!(
                changed,
                Inserted::Duplicate { same_body: false },
                "in {status:?}"
            );
            let all = store.list(ListFilter::new(100)).await.expect("list failed");
            assert_eq!(all.len(), 1, "a duplicate was recorded in {status:?}");
            // `get`, not `list`: a store may leave bodies out of listings.
            assert_eq!(
                record(&store, "evt_dup").await.body.as_deref(),
                Some(&b"{\"v\":1}"[..]),
                "the first body is kept"
            );
        }
    };
    check(EventStatus::Pending).await;
    let claimed = store.claim(options).await.unwrap();
    check(EventStatus::Processing).await;
    assert!(
        store
            .complete(&key("evt_dup"), claimed[0].fence)
            .await
            .unwrap()
    );
    check(EventStatus::Succeeded).await;

    insert_new(&store, event("evt_dup2", b"{}")).await;
    let claimed = store.claim(options).await.unwrap();
    assert!(
        store
            .kill(&key("evt_dup2"), claimed[0].fence, "gave up")
            .await
            .unwrap()
    );
    assert_eq!(
        store.insert(event("evt_dup2", b"{}")).await.unwrap(),
        Inserted::Duplicate { same_body: true },
        "in Dead"
    );
}

/// The audit trail: `get`, `list` by status and time, and `purge` of
/// finished events and of payloads, never of unfinished ones.
pub async fn the_audit_trail_lists_and_purges(store: Arc<dyn InboxStore>) {
    let options = ClaimOptions {
        limit: 1,
        lease: Duration::from_secs(60),
        max_attempts: 5,
    };
    let old = SystemTime::now() - Duration::from_secs(3_600);
    let mut aged = event("evt_old", b"{}");
    aged.received_at = old;
    insert_new(&store, aged).await;
    let claimed = store.claim(options).await.unwrap();
    assert!(
        store
            .complete(&key("evt_old"), claimed[0].fence)
            .await
            .unwrap()
    );
    insert_new(&store, event("evt_new", b"{\"fresh\":true}")).await;

    assert!(store.get(&key("evt_missing")).await.unwrap().is_none());
    let all = store.list(ListFilter::new(10)).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|r| r.key.event_id.as_str())
            .collect::<Vec<_>>(),
        ["evt_new", "evt_old"]
    );
    let pending = store
        .list(ListFilter::new(10).status(EventStatus::Pending))
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].next_attempt_at.is_some());
    let recent = store
        .list(ListFilter::new(10).since(old + Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(store.pending_count().await.unwrap(), 1);

    // Payloads of finished events older than 30 minutes, nothing deleted.
    let purged = store
        .purge(
            old - Duration::from_secs(1),
            SystemTime::now() - Duration::from_secs(1_800),
        )
        .await
        .unwrap();
    assert_eq!((purged.events, purged.payloads), (0, 1));
    let kept = record(&store, "evt_old").await;
    assert_eq!((kept.status, kept.body), (EventStatus::Succeeded, None));
    // A duplicate of a purged payload is still a duplicate.
    assert!(matches!(
        store.insert(event("evt_old", b"{}")).await.unwrap(),
        Inserted::Duplicate { .. }
    ));
    // Finished events older than 30 minutes deleted; the pending one is kept
    // however old the cut-off says it is.
    let everything = SystemTime::now() + Duration::from_secs(3_600);
    let purged = store
        .purge(SystemTime::now() - Duration::from_secs(1_800), everything)
        .await
        .unwrap();
    assert_eq!(purged.events, 1);
    assert!(store.get(&key("evt_old")).await.unwrap().is_none());
    assert_eq!(record(&store, "evt_new").await.status, EventStatus::Pending);
    assert!(store.purge(everything, everything).await.unwrap().events == 0);
}

fn signed(namespace: &str, id: &str, signature: &'static [u8], keep: Option<Duration>) -> NewEvent {
    NewEvent {
        key: EventKey::new(namespace, id),
        signature: Some(SignatureRecord {
            signature: Bytes::from_static(signature),
            keep,
        }),
        ..event(id, b"{}")
    }
}

async fn insert(store: &Arc<dyn InboxStore>, new: NewEvent) -> Inserted {
    store.insert(new).await.expect("insert failed")
}

async fn recorded(store: &Arc<dyn InboxStore>, namespace: &str, id: &str) -> bool {
    store
        .get(&EventKey::new(namespace, id))
        .await
        .expect("get failed")
        .is_some()
}

/// A signature recorded with one event id and presented with another is a
/// replay: nothing is written. Presented again with its own id, it is a
/// duplicate.
pub async fn a_signature_held_by_another_id_is_a_replay(store: Arc<dyn InboxStore>) {
    assert_eq!(
        insert(&store, signed("conf", "evt_a", b"sig-held", None)).await,
        Inserted::New
    );
    assert_eq!(
        insert(&store, signed("conf", "evt_b", b"sig-held", None)).await,
        Inserted::Replayed,
        "another id presenting a held signature"
    );
    assert!(
        !recorded(&store, "conf", "evt_b").await,
        "a replay must write nothing"
    );
    assert_eq!(
        insert(&store, signed("conf", "evt_a", b"sig-held", None)).await,
        Inserted::Duplicate { same_body: true },
        "the holder presenting its own signature again"
    );
    assert_eq!(
        insert(
            &store,
            signed("conf", "evt_a", b"sig-held", Some(Duration::from_secs(60)))
        )
        .await,
        Inserted::Duplicate { same_body: true },
        "whatever the keep presented with it"
    );
    let all = store.list(ListFilter::new(100)).await.expect("list failed");
    assert_eq!(all.len(), 1, "only the holder is recorded: {all:?}");
    assert_eq!(all[0].key, EventKey::new("conf", "evt_a"));
    // A replay is refused in every status of the holder, not only pending.
    let options = ClaimOptions {
        limit: 10,
        lease: Duration::from_secs(60),
        max_attempts: 5,
    };
    let claimed = store.claim(options).await.expect("claim failed");
    assert_eq!(claimed.len(), 1);
    assert!(
        store
            .complete(&key("evt_a"), claimed[0].fence)
            .await
            .expect("complete failed")
    );
    assert_eq!(
        insert(&store, signed("conf", "evt_c", b"sig-held", None)).await,
        Inserted::Replayed,
        "the holder succeeded but is still recorded"
    );
    assert!(!recorded(&store, "conf", "evt_c").await);
}

/// A duplicate presented with a signature records the signature for its id,
/// just as a new event does.
pub async fn a_duplicate_records_its_signature(store: Arc<dyn InboxStore>) {
    insert_new(&store, event("evt_plain", b"{}")).await;
    assert_eq!(
        insert(&store, signed("conf", "evt_plain", b"sig-late", None)).await,
        Inserted::Duplicate { same_body: true }
    );
    assert_eq!(
        insert(&store, signed("conf", "evt_other", b"sig-late", None)).await,
        Inserted::Replayed,
        "the duplicate's signature must have been recorded"
    );
    assert!(!recorded(&store, "conf", "evt_other").await);
}

/// Signature records are per namespace: the same signature in another
/// namespace is no replay.
pub async fn signature_records_are_per_namespace(store: Arc<dyn InboxStore>) {
    assert_eq!(
        insert(&store, signed("conf", "evt_ns", b"sig-ns", None)).await,
        Inserted::New
    );
    assert_eq!(
        insert(&store, signed("conf_other", "evt_ns_2", b"sig-ns", None)).await,
        Inserted::New,
        "another namespace"
    );
    assert!(recorded(&store, "conf_other", "evt_ns_2").await);
    assert_eq!(
        insert(&store, signed("conf_other", "evt_ns_3", b"sig-ns", None)).await,
        Inserted::Replayed,
        "but within it the record holds"
    );
}

/// Without a signature, nothing is checked or recorded: inserts behave as
/// they always did, even beside events that hold signatures.
pub async fn events_without_a_signature_are_not_checked(store: Arc<dyn InboxStore>) {
    assert_eq!(
        insert(&store, signed("conf", "evt_sig", b"sig-none", None)).await,
        Inserted::New
    );
    insert_new(&store, event("evt_unsigned_1", b"{}")).await;
    insert_new(&store, event("evt_unsigned_2", b"{}")).await;
    assert_eq!(
        insert(&store, event("evt_unsigned_1", b"{}")).await,
        Inserted::Duplicate { same_body: true }
    );
}

/// A record with `keep: Some(d)` expires after `d`; then another id may take
/// the signature. A record the holder already has is kept as it is when the
/// holder presents the signature again (its expiry is not replaced).
pub async fn a_windowed_signature_expires(store: Arc<dyn InboxStore>) {
    let keep = Some(Duration::from_secs(2));
    assert_eq!(
        insert(&store, signed("conf", "evt_w1", b"sig-window", keep)).await,
        Inserted::New
    );
    assert_eq!(
        insert(&store, signed("conf", "evt_w1", b"sig-window", None)).await,
        Inserted::Duplicate { same_body: true }
    );
    assert_eq!(
        insert(&store, signed("conf", "evt_w2", b"sig-window", keep)).await,
        Inserted::Replayed,
        "within the window"
    );
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    assert_eq!(
        insert(&store, signed("conf", "evt_w2", b"sig-window", None)).await,
        Inserted::New,
        "after the window another id may take the signature"
    );
    assert_eq!(
        insert(&store, signed("conf", "evt_w3", b"sig-window", None)).await,
        Inserted::Replayed,
        "and then it holds it"
    );
    assert!(recorded(&store, "conf", "evt_w1").await);
    assert!(recorded(&store, "conf", "evt_w2").await);
    assert!(!recorded(&store, "conf", "evt_w3").await);
}

/// A record with `keep: None` lives as long as its event: a purge that keeps
/// the event keeps the record; once the event is purged, another id may take
/// the signature.
pub async fn an_unwindowed_signature_lives_until_its_event_is_purged(store: Arc<dyn InboxStore>) {
    assert_eq!(
        insert(&store, signed("conf", "evt_p1", b"sig-purge", None)).await,
        Inserted::New
    );
    let options = ClaimOptions {
        limit: 10,
        lease: Duration::from_secs(60),
        max_attempts: 5,
    };
    let claimed = store.claim(options).await.expect("claim failed");
    assert_eq!(claimed.len(), 1);
    assert!(
        store
            .kill(&key("evt_p1"), claimed[0].fence, "gave up")
            .await
            .expect("kill failed")
    );
    let past = SystemTime::now() - Duration::from_secs(3_600);
    let purged = store.purge(past, past).await.expect("purge failed");
    assert_eq!(purged.events, 0);
    assert_eq!(
        insert(&store, signed("conf", "evt_p2", b"sig-purge", None)).await,
        Inserted::Replayed,
        "the holder is dead but still recorded"
    );
    let future = SystemTime::now() + Duration::from_secs(3_600);
    let purged = store.purge(future, future).await.expect("purge failed");
    assert_eq!(purged.events, 1);
    assert!(!recorded(&store, "conf", "evt_p1").await);
    assert_eq!(
        insert(&store, signed("conf", "evt_p2", b"sig-purge", None)).await,
        Inserted::New,
        "the holder was purged"
    );
}

/// Twenty concurrent inserts of one signature under twenty ids: exactly one
/// is admitted, and only it is recorded.
pub async fn one_signature_under_20_ids_admits_one(store: Arc<dyn InboxStore>) {
    let inserts: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("evt_race_{i}");
                let outcome = store
                    .insert(signed("conf", &id, b"sig-race", None))
                    .await
                    .expect("insert failed");
                (id, outcome)
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for insert in inserts {
        let (id, outcome) = insert.await.expect("insert task panicked");
        match outcome {
            Inserted::Replayed => {}
            other => admitted.push((id, other)),
        }
    }
    assert_eq!(admitted.len(), 1, "admitted: {admitted:?}");
    assert_eq!(admitted[0].1, Inserted::New);
    let all = store.list(ListFilter::new(100)).await.expect("list failed");
    assert_eq!(all.len(), 1, "recorded: {all:?}");
    assert_eq!(all[0].key.event_id, admitted[0].0);
}

/// Generates one `#[tokio::test]` per inbox property; see the
/// [`conformance`](crate::inbox::conformance) module.
#[macro_export]
macro_rules! inbox_store_conformance {
    (@all $attrs:tt $make:tt) => {
        $crate::inbox_store_conformance!(@each $attrs $make
            fails_twice_then_succeeds
            dead_after_max_attempts_then_requeue
            permanent_error_is_dead_at_once
            panic_is_retried_and_the_worker_survives
            an_expired_lease_is_reclaimed_and_the_zombie_is_fenced
            a_poison_pill_ends_dead
            four_workers_handle_each_of_5000_events_once
            graceful_shutdown_leaves_nothing_processing
            duplicates_in_every_status_write_nothing
            the_audit_trail_lists_and_purges
            a_signature_held_by_another_id_is_a_replay
            a_duplicate_records_its_signature
            signature_records_are_per_namespace
            events_without_a_signature_are_not_checked
            a_windowed_signature_expires
            an_unwindowed_signature_lives_until_its_event_is_purged
            one_signature_under_20_ids_admits_one
        );
    };
    (@each $attrs:tt $make:tt $($name:ident)*) => {$(
        $crate::inbox_store_conformance!(@one $attrs $make $name);
    )*};
    (@one [$($attrs:tt)*] [$make:expr] $name:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $($attrs)*
        async fn $name() {
            let Some(store) = $make.await else {
                eprintln!("skipped: {} (store not configured)", stringify!($name));
                return;
            };
            $crate::inbox::conformance::$name(::std::sync::Arc::new(store)).await;
        }
    };
    ($(#[$attr:meta])+ store = $make:expr) => {
        $crate::inbox_store_conformance!(@all [$(#[$attr])+] [$make]);
    };
    (store = $make:expr) => {
        $crate::inbox_store_conformance!(@all [] [$make]);
    };
    ($make:expr) => {
        $crate::inbox_store_conformance!(@all [] [$make]);
    };
}
