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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{
    Attempt, AttemptOutcome, ClaimOptions, ClaimedEvent, DeadLetters, EventKey, EventRecord,
    EventStatus, HandlerError, Inbox, InboxEvent, InboxStore, Inserted, LaneState, ListFilter,
    MAX_HISTORY, NewEvent, Selection, SignatureRecord, StoreError, Worker,
};

fn event(id: &str, body: &'static [u8]) -> NewEvent {
    NewEvent {
        key: EventKey::new("conf", id),
        body: Bytes::from_static(body),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        received_at: SystemTime::now(),
        signature: None,
        traceparent: None,
        lane: None,
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

/// Claim options with a long lease and a large budget, for the properties
/// that drive a store by hand.
fn by_hand(limit: usize) -> ClaimOptions {
    ClaimOptions {
        limit,
        lease: Duration::from_secs(60),
        max_attempts: 100,
    }
}

/// A whole number of seconds after the epoch: every store keeps it exactly.
fn at_second(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Claims exactly one event and returns it.
async fn claim_one(store: &Arc<dyn InboxStore>) -> ClaimedEvent {
    let mut claimed = store.claim(by_hand(1)).await.expect("claim failed");
    assert_eq!(claimed.len(), 1, "expected one due event");
    claimed.remove(0)
}

/// Inserts `new`, retrying while the store sheds load.
async fn insert_retrying(store: &Arc<dyn InboxStore>, new: NewEvent) -> Inserted {
    loop {
        match store.insert(new.clone()).await {
            Err(StoreError::Overloaded) => tokio::time::sleep(Duration::from_millis(5)).await,
            outcome => return outcome.expect("insert failed"),
        }
    }
}

fn outcomes(history: &[Attempt]) -> Vec<Option<AttemptOutcome>> {
    history.iter().map(|attempt| attempt.outcome).collect()
}

fn assert_fences_rise(history: &[Attempt]) {
    for pair in history.windows(2) {
        assert!(
            pair[0].fence < pair[1].fence,
            "fences must rise through the history: {history:?}"
        );
    }
}

/// The `traceparent` recorded with an event comes back with its claim and
/// its audit record; an event without one has none.
pub async fn the_traceparent_round_trips(store: Arc<dyn InboxStore>) {
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut traced = event("evt_traced", b"{}");
    traced.traceparent = Some(traceparent.to_owned());
    insert_new(&store, traced).await;
    insert_new(&store, event("evt_untraced", b"{}")).await;
    let claimed = store.claim(by_hand(10)).await.expect("claim failed");
    assert_eq!(claimed.len(), 2);
    for event in &claimed {
        let expected = (event.key.event_id == "evt_traced").then_some(traceparent);
        assert_eq!(event.traceparent.as_deref(), expected, "{}", event.key);
        assert!(!event.replay, "a first run is no replay");
    }
    assert_eq!(
        record(&store, "evt_traced").await.traceparent.as_deref(),
        Some(traceparent)
    );
    assert_eq!(record(&store, "evt_untraced").await.traceparent, None);
}

/// Fail, fail, succeed: three attempts in order, numbered 1 to 3, with the
/// errors kept and the fences of the claims; listings carry no history.
pub async fn the_history_records_fail_fail_succeed(store: Arc<dyn InboxStore>) {
    insert_new(&store, event("evt_hist", b"{}")).await;
    assert!(record(&store, "evt_hist").await.history.is_empty());
    let k = key("evt_hist");
    let mut fences = Vec::new();
    for error in ["boom 1", "boom 2"] {
        let claimed = claim_one(&store).await;
        fences.push(claimed.fence);
        let running = record(&store, "evt_hist").await;
        let last = running.history.last().expect("a claim starts an attempt");
        assert_eq!(
            (last.fence, last.outcome, last.ended_at),
            (claimed.fence, None, None)
        );
        assert!(
            store
                .retry(&k, claimed.fence, Duration::ZERO, error)
                .await
                .expect("retry failed")
        );
    }
    let claimed = claim_one(&store).await;
    fences.push(claimed.fence);
    assert!(
        store
            .complete(&k, claimed.fence)
            .await
            .expect("complete failed")
    );
    let done = record(&store, "evt_hist").await;
    let history = &done.history;
    assert_eq!(history.len(), 3, "{history:?}");
    assert_eq!(
        outcomes(history),
        [
            Some(AttemptOutcome::Failed),
            Some(AttemptOutcome::Failed),
            Some(AttemptOutcome::Succeeded)
        ]
    );
    assert_eq!(
        history
            .iter()
            .map(|a| a.error.as_deref())
            .collect::<Vec<_>>(),
        [Some("boom 1"), Some("boom 2"), None]
    );
    assert_eq!(
        history.iter().map(|a| a.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(history.iter().map(|a| a.fence).collect::<Vec<_>>(), fences);
    assert_fences_rise(history);
    for attempt in history {
        let ended = attempt.ended_at.expect("every attempt ended");
        assert!(ended >= attempt.started_at, "{attempt:?}");
        assert!(!attempt.replay);
    }
    let listed = store.list(ListFilter::new(10)).await.expect("list failed");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].history.is_empty(), "listings leave history out");
}

/// Dead, requeued, then succeeded: the history continues across the
/// requeue, the new budget numbering from 1 again.
pub async fn the_history_continues_after_a_requeue(store: Arc<dyn InboxStore>) {
    insert_new(&store, event("evt_requeued", b"{}")).await;
    let k = key("evt_requeued");
    let first = claim_one(&store).await;
    assert!(
        store
            .kill(&k, first.fence, "fatal")
            .await
            .expect("kill failed")
    );
    assert!(store.requeue(&k).await.expect("requeue failed"));
    let second = claim_one(&store).await;
    assert_eq!(second.attempt, 1, "a requeue gives a fresh budget");
    assert!(!second.replay, "a requeue is no replay");
    assert!(
        store
            .complete(&k, second.fence)
            .await
            .expect("complete failed")
    );
    let history = record(&store, "evt_requeued").await.history;
    assert_eq!(
        outcomes(&history),
        [Some(AttemptOutcome::Dead), Some(AttemptOutcome::Succeeded)]
    );
    assert_eq!(history[0].error.as_deref(), Some("fatal"));
    assert_eq!(history[1].error, None);
    assert_eq!((history[0].number, history[1].number), (1, 1));
    assert_eq!(
        (history[0].fence, history[1].fence),
        (first.fence, second.fence)
    );
    assert_fences_rise(&history);
}

/// An attempt whose lease expired is ended `Expired` by the claim that
/// takes the event over, and by the claim that kills it when the budget is
/// spent.
pub async fn an_expired_lease_is_recorded_as_expired(store: Arc<dyn InboxStore>) {
    let options = ClaimOptions {
        limit: 10,
        lease: Duration::from_millis(300),
        max_attempts: 2,
    };
    insert_new(&store, event("evt_expiring", b"{}")).await;
    let first = store.claim(options).await.expect("claim failed");
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let second = store.claim(options).await.expect("claim failed");
    assert_eq!(second.len(), 1, "an expired lease must be claimable");
    let history = record(&store, "evt_expiring").await.history;
    assert_eq!(outcomes(&history), [Some(AttemptOutcome::Expired), None]);
    assert!(history[0].ended_at.is_some());
    assert_eq!(
        (history[0].fence, history[1].fence),
        (first[0].fence, second[0].fence)
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(store.claim(options).await.expect("claim failed").is_empty());
    let dead = record(&store, "evt_expiring").await;
    assert_eq!(dead.status, EventStatus::Dead);
    assert_eq!(
        outcomes(&dead.history),
        [Some(AttemptOutcome::Expired), Some(AttemptOutcome::Expired)]
    );
}

/// Only the most recent [`MAX_HISTORY`] attempts are kept, oldest first.
pub async fn the_history_keeps_the_last_max_history_attempts(store: Arc<dyn InboxStore>) {
    insert_new(&store, event("evt_long", b"{}")).await;
    let k = key("evt_long");
    let total = MAX_HISTORY + 5;
    let mut fences = Vec::new();
    for n in 1..=total {
        let claimed = claim_one(&store).await;
        assert_eq!(claimed.attempt as usize, n);
        fences.push(claimed.fence);
        assert!(
            store
                .retry(&k, claimed.fence, Duration::ZERO, &format!("failure {n}"))
                .await
                .expect("retry failed")
        );
    }
    let history = record(&store, "evt_long").await.history;
    assert_eq!(history.len(), MAX_HISTORY);
    assert_eq!(
        history.iter().map(|a| a.fence).collect::<Vec<_>>(),
        fences[total - MAX_HISTORY..]
    );
    assert_eq!(history[0].number as usize, total - MAX_HISTORY + 1);
    assert_eq!(history[MAX_HISTORY - 1].number as usize, total);
    assert_eq!(
        history[MAX_HISTORY - 1].error.as_deref(),
        Some(format!("failure {total}").as_str())
    );
}

/// `replay` puts a finished event back with a fresh budget, and its next
/// claim (only that one) is a replay; unfinished, unknown or purged events
/// are refused.
pub async fn a_finished_event_is_replayed(store: Arc<dyn InboxStore>) {
    insert_new(&store, event("evt_replay", b"{\"r\":1}")).await;
    let k = key("evt_replay");
    assert!(!store.replay(&k).await.expect("replay failed"), "pending");
    assert!(
        !store
            .replay(&key("evt_unknown"))
            .await
            .expect("replay failed")
    );
    let first = claim_one(&store).await;
    assert!(!first.replay);
    assert!(
        !store.replay(&k).await.expect("replay failed"),
        "processing"
    );
    assert!(
        store
            .complete(&k, first.fence)
            .await
            .expect("complete failed")
    );
    assert!(store.replay(&k).await.expect("replay failed"), "succeeded");
    let replayed = record(&store, "evt_replay").await;
    assert_eq!(
        (replayed.status, replayed.attempts),
        (EventStatus::Pending, 0)
    );
    assert!(
        !store.replay(&k).await.expect("replay failed"),
        "a replayed event is pending again"
    );
    let second = claim_one(&store).await;
    assert!(second.replay, "the claim after a replay says so");
    assert_eq!(second.attempt, 1);
    assert_eq!(second.body, Bytes::from_static(b"{\"r\":1}"));
    assert!(
        store
            .retry(&k, second.fence, Duration::ZERO, "again")
            .await
            .expect("retry failed")
    );
    let third = claim_one(&store).await;
    assert!(!third.replay, "the replay flag is consumed by one claim");
    assert!(
        store
            .kill(&k, third.fence, "gave up")
            .await
            .expect("kill failed")
    );
    let history = record(&store, "evt_replay").await.history;
    assert_eq!(
        history.iter().map(|a| a.replay).collect::<Vec<_>>(),
        [false, true, false]
    );
    assert_fences_rise(&history);
    // Dead events are replayed too, unless their payload was purged.
    let future = SystemTime::now() + Duration::from_secs(3_600);
    let past = SystemTime::now() - Duration::from_secs(3_600);
    assert_eq!(
        store
            .purge(past, future)
            .await
            .expect("purge failed")
            .payloads,
        1
    );
    assert!(
        !store.replay(&k).await.expect("replay failed"),
        "no payload to replay"
    );
    insert_new(&store, event("evt_replay_dead", b"{}")).await;
    let claimed = claim_one(&store).await;
    let dead = key("evt_replay_dead");
    assert!(
        store
            .kill(&dead, claimed.fence, "gave up")
            .await
            .expect("kill failed")
    );
    assert!(store.replay(&dead).await.expect("replay failed"), "dead");
    assert!(claim_one(&store).await.replay);
}

/// `requeue_matching` requeues the dead events a selection matches (1,000
/// of them here), oldest arrival first, up to its limit, and nothing else.
pub async fn requeue_matching_requeues_only_the_selection(store: Arc<dyn InboxStore>) {
    let base = 1_700_000_000;
    let mut news = Vec::new();
    for i in 0..1_000_u64 {
        news.push(NewEvent {
            key: key(&format!("evt_bulk_{i:04}")),
            received_at: at_second(base + i),
            ..event("", b"{}")
        });
    }
    // The same error in another namespace, another error in this one, and a
    // pending event: none of them selected.
    for (namespace, id) in [("conf_other", "evt_other"), ("conf", "evt_fatal")] {
        news.push(NewEvent {
            key: EventKey::new(namespace, id),
            received_at: at_second(base - 10),
            ..event("", b"{}")
        });
    }
    let inserts: Vec<_> = news
        .into_iter()
        .map(|new| {
            let store = store.clone();
            tokio::spawn(async move { insert_retrying(&store, new).await })
        })
        .collect();
    for insert in inserts {
        assert_eq!(insert.await.expect("insert task panicked"), Inserted::New);
    }
    let claimed = store.claim(by_hand(2_000)).await.expect("claim failed");
    assert_eq!(claimed.len(), 1_002);
    let kills: Vec<_> = claimed
        .into_iter()
        .map(|claimed| {
            let store = store.clone();
            tokio::spawn(async move {
                let error = if claimed.key.event_id == "evt_fatal" {
                    "malformed payload"
                } else {
                    "upstream answered 503 Service Unavailable"
                };
                store.kill(&claimed.key, claimed.fence, error).await
            })
        })
        .collect();
    for kill in kills {
        assert!(
            kill.await
                .expect("kill task panicked")
                .expect("kill failed")
        );
    }
    insert_new(&store, event("evt_waiting", b"{}")).await;

    let selection = Selection::new(400).namespace("conf").error_contains("503");
    assert_eq!(
        store
            .requeue_matching(&selection)
            .await
            .expect("requeue_matching failed"),
        400,
        "the limit is honoured"
    );
    assert_eq!(
        record(&store, "evt_bulk_0000").await.status,
        EventStatus::Pending
    );
    assert_eq!(
        record(&store, "evt_bulk_0399").await.status,
        EventStatus::Pending
    );
    assert_eq!(
        record(&store, "evt_bulk_0400").await.status,
        EventStatus::Dead,
        "oldest arrival first"
    );
    let selection = Selection {
        limit: 10_000,
        ..selection
    };
    assert_eq!(
        store
            .requeue_matching(&selection)
            .await
            .expect("requeue_matching failed"),
        600
    );
    assert_eq!(
        store
            .requeue_matching(&selection)
            .await
            .expect("requeue_matching failed"),
        0,
        "nothing dead is left in the selection"
    );
    let requeued = record(&store, "evt_bulk_0999").await;
    assert_eq!(
        (requeued.status, requeued.attempts),
        (EventStatus::Pending, 0)
    );
    assert!(requeued.next_attempt_at.is_some());
    let other = store
        .get(&EventKey::new("conf_other", "evt_other"))
        .await
        .expect("get failed")
        .expect("recorded");
    assert_eq!(other.status, EventStatus::Dead, "another namespace");
    assert_eq!(record(&store, "evt_fatal").await.status, EventStatus::Dead);
    assert_eq!(
        store.pending_count().await.expect("pending_count failed"),
        1_001
    );
    // A time range selects too: [after, before).
    let selection = Selection::new(100)
        .received_between(at_second(base - 10), at_second(base - 9))
        .error_contains("malformed");
    assert_eq!(
        store
            .requeue_matching(&selection)
            .await
            .expect("requeue_matching failed"),
        1
    );
    assert_eq!(
        record(&store, "evt_fatal").await.status,
        EventStatus::Pending
    );
}

/// `replay_matching` replays the finished events a selection matches,
/// oldest first, up to its limit; each next claim is a replay.
pub async fn replay_matching_replays_only_the_selection(store: Arc<dyn InboxStore>) {
    let base = 1_700_000_000;
    let ids = ["evt_rm_ok", "evt_rm_dead", "evt_rm_late", "evt_rm_open"];
    for (i, id) in ids.iter().enumerate() {
        insert_new(
            &store,
            NewEvent {
                received_at: at_second(base + 10 * i as u64),
                ..event(id, b"{}")
            },
        )
        .await;
    }
    insert_new(
        &store,
        NewEvent {
            key: EventKey::new("conf_other", "evt_rm_other"),
            received_at: at_second(base),
            ..event("", b"{}")
        },
    )
    .await;
    let claimed = store.claim(by_hand(10)).await.expect("claim failed");
    assert_eq!(claimed.len(), 5);
    for claimed in &claimed {
        let ok = match claimed.key.event_id.as_str() {
            "evt_rm_open" => continue,
            "evt_rm_dead" => store.kill(&claimed.key, claimed.fence, "gave up").await,
            _ => store.complete(&claimed.key, claimed.fence).await,
        };
        assert!(ok.expect("exit failed"));
    }
    // evt_rm_open stays processing: not finished, never replayed.
    let window = Selection::new(100)
        .namespace("conf")
        .received_between(at_second(base), at_second(base + 20));
    assert_eq!(
        store
            .replay_matching(&Selection {
                limit: 1,
                ..window.clone()
            })
            .await
            .expect("replay_matching failed"),
        1,
        "the limit is honoured"
    );
    assert_eq!(
        record(&store, "evt_rm_ok").await.status,
        EventStatus::Pending
    );
    assert_eq!(
        record(&store, "evt_rm_dead").await.status,
        EventStatus::Dead
    );
    assert_eq!(
        store
            .replay_matching(&window)
            .await
            .expect("replay_matching failed"),
        1
    );
    assert_eq!(
        record(&store, "evt_rm_late").await.status,
        EventStatus::Succeeded
    );
    assert_eq!(
        store
            .get(&EventKey::new("conf_other", "evt_rm_other"))
            .await
            .expect("get failed")
            .expect("recorded")
            .status,
        EventStatus::Succeeded
    );
    let replays = store.claim(by_hand(10)).await.expect("claim failed");
    let mut replayed: Vec<_> = replays
        .iter()
        .map(|claimed| {
            (
                claimed.key.event_id.as_str(),
                claimed.replay,
                claimed.attempt,
            )
        })
        .collect();
    replayed.sort_unstable();
    assert_eq!(replayed, [("evt_rm_dead", true, 1), ("evt_rm_ok", true, 1)]);
    // Errors select finished events too.
    for claimed in &replays {
        assert!(
            store
                .kill(&claimed.key, claimed.fence, "schema mismatch")
                .await
                .expect("kill failed")
        );
    }
    let by_error = Selection::new(100).error_contains("schema");
    assert_eq!(
        store
            .replay_matching(&by_error)
            .await
            .expect("replay_matching failed"),
        2
    );
}

/// `counts` tells the events in each status and the arrival of the oldest
/// pending one.
pub async fn counts_tell_each_status_and_the_oldest_pending(store: Arc<dyn InboxStore>) {
    let empty = store.counts().await.expect("counts failed");
    assert_eq!(
        (empty.pending, empty.processing, empty.succeeded, empty.dead),
        (0, 0, 0, 0)
    );
    assert_eq!(empty.oldest_pending, None);
    let base = 1_700_000_000;
    let finish = [("evt_c_ok", true), ("evt_c_dead", false)];
    for (id, ok) in finish {
        insert_new(&store, event(id, b"{}")).await;
        let claimed = claim_one(&store).await;
        let done = if ok {
            store.complete(&claimed.key, claimed.fence).await
        } else {
            store.kill(&claimed.key, claimed.fence, "gave up").await
        };
        assert!(done.expect("exit failed"));
    }
    insert_new(&store, event("evt_c_running", b"{}")).await;
    claim_one(&store).await;
    for (id, secs) in [
        ("evt_c_new", base + 50),
        ("evt_c_old", base),
        ("evt_c_mid", base + 5),
    ] {
        insert_new(
            &store,
            NewEvent {
                received_at: at_second(secs),
                ..event(id, b"{}")
            },
        )
        .await;
    }
    let counts = store.counts().await.expect("counts failed");
    assert_eq!(
        (
            counts.pending,
            counts.processing,
            counts.succeeded,
            counts.dead
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(counts.oldest_pending, Some(at_second(base)));
    let claimed = claim_one(&store).await;
    let counts = store.counts().await.expect("counts failed");
    assert_eq!((counts.pending, counts.processing), (2, 2));
    // Claims go by due time, not by arrival: the oldest pending arrival is
    // whichever of the three is left.
    let left: Vec<_> = [
        ("evt_c_old", base),
        ("evt_c_mid", base + 5),
        ("evt_c_new", base + 50),
    ]
    .into_iter()
    .filter(|(id, _)| *id != claimed.key.event_id)
    .collect();
    assert_eq!(counts.oldest_pending, Some(at_second(left[0].1)));
}

/// An event of `lane`.
fn laned(id: &str, lane: &str) -> NewEvent {
    NewEvent {
        lane: Some(lane.to_owned()),
        ..event(id, b"{}")
    }
}

/// The ids of `claimed`, sorted.
fn ids(claimed: &[ClaimedEvent]) -> Vec<String> {
    let mut ids: Vec<String> = claimed
        .iter()
        .map(|event| event.key.event_id.clone())
        .collect();
    ids.sort();
    ids
}

async fn lane_state(store: &Arc<dyn InboxStore>, id: &str) -> Option<LaneState> {
    record(store, id).await.lane_state
}

/// Lane -> (event numbers in the order handled, events of it running now).
type Handled = HashMap<String, (Vec<u32>, u32)>;

/// Four workers over 10 lanes of 30 events each, recorded interleaved, and
/// 30 unordered events: each lane's events run one at a time, in the order
/// they were recorded; the unordered ones all run too.
pub async fn lanes_run_in_order_under_four_workers(store: Arc<dyn InboxStore>) {
    assert!(store.supports_lanes(), "the store must support lanes");
    let inbox = Inbox::from_shared(store.clone());
    let seen: Arc<Mutex<Handled>> = Arc::default();
    let overlaps = Arc::new(AtomicU32::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (seen, overlaps) = (seen.clone(), overlaps.clone());
        workers.push(
            fast(inbox.worker(move |event: InboxEvent| {
                let (seen, overlaps) = (seen.clone(), overlaps.clone());
                async move {
                    let lane = event.lane.clone().unwrap_or_else(|| "-".to_owned());
                    let number: u32 = event.id().rsplit('_').next().unwrap().parse().unwrap();
                    {
                        let mut seen = seen.lock().unwrap();
                        let entry = seen.entry(lane.clone()).or_default();
                        if lane != "-" && entry.1 > 0 {
                            overlaps.fetch_add(1, Ordering::SeqCst);
                        }
                        entry.1 += 1;
                        entry.0.push(number);
                    }
                    tokio::time::sleep(Duration::from_millis(u64::from(number % 3))).await;
                    seen.lock().unwrap().get_mut(&lane).unwrap().1 -= 1;
                    Ok(())
                }
            }))
            .concurrency(8)
            .spawn(),
        );
    }
    for i in 0..330u32 {
        let new = if i % 11 == 10 {
            event(&format!("evt_free_{i}"), b"{}")
        } else {
            laned(&format!("evt_lane_{i}"), &format!("lane-{}", i % 11))
        };
        assert_eq!(insert_retrying(&store, new).await, Inserted::New);
    }
    let started = Instant::now();
    loop {
        let done: usize = seen
            .lock()
            .unwrap()
            .values()
            .map(|(numbers, _)| numbers.len())
            .sum();
        if done == 330 && store.pending_count().await.unwrap() == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {done} of 330 handled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for worker in workers {
        worker.shutdown().await;
    }
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "two events of one lane ran at once"
    );
    let seen = seen.lock().unwrap();
    for lane in 0..10u32 {
        let numbers = &seen[&format!("lane-{lane}")].0;
        let expected: Vec<u32> = (0..330).filter(|i| i % 11 == lane).collect();
        assert_eq!(numbers, &expected, "lane-{lane} out of order");
    }
    assert_eq!(seen["-"].0.len(), 30);
}

/// A dead event blocks its lane and only its lane (other lanes and
/// unordered events go on), shows as blocking, with the later events
/// waiting, survives a purge, and `skip` releases the lane.
pub async fn a_dead_event_blocks_only_its_lane_until_skipped(store: Arc<dyn InboxStore>) {
    insert_new(&store, laned("evt_a1", "a")).await;
    insert_new(&store, laned("evt_a2", "a")).await;
    insert_new(&store, laned("evt_b1", "b")).await;
    insert_new(&store, laned("evt_b2", "b")).await;
    insert_new(&store, event("evt_u", b"{}")).await;
    assert_eq!(lane_state(&store, "evt_a1").await, Some(LaneState::Head));
    assert_eq!(lane_state(&store, "evt_a2").await, Some(LaneState::Waiting));
    assert_eq!(lane_state(&store, "evt_u").await, None);
    assert_eq!(record(&store, "evt_a2").await.lane.as_deref(), Some("a"));
    let first = store.claim(by_hand(10)).await.expect("claim failed");
    assert_eq!(ids(&first), ["evt_a1", "evt_b1", "evt_u"]);
    assert!(
        first
            .iter()
            .all(|event| event.lane.is_some() == (event.key.event_id != "evt_u"))
    );
    assert!(
        store.claim(by_hand(10)).await.unwrap().is_empty(),
        "a lane runs one event at a time"
    );
    let fence = |id: &str| {
        first
            .iter()
            .find(|event| event.key.event_id == id)
            .unwrap()
            .fence
    };
    assert!(
        store
            .kill(&key("evt_a1"), fence("evt_a1"), "broken")
            .await
            .unwrap()
    );
    assert!(
        store
            .complete(&key("evt_b1"), fence("evt_b1"))
            .await
            .unwrap()
    );
    assert!(store.complete(&key("evt_u"), fence("evt_u")).await.unwrap());
    assert_eq!(
        ids(&store.claim(by_hand(10)).await.unwrap()),
        ["evt_b2"],
        "only lane a is blocked"
    );
    assert!(
        store.claim(by_hand(10)).await.unwrap().is_empty(),
        "evt_a2 must wait behind the dead evt_a1"
    );
    assert_eq!(
        lane_state(&store, "evt_a1").await,
        Some(LaneState::Blocking)
    );
    assert_eq!(lane_state(&store, "evt_a2").await, Some(LaneState::Waiting));
    assert_eq!(lane_state(&store, "evt_b1").await, Some(LaneState::Done));
    // A purge keeps the blocking event, payload included.
    let later = SystemTime::now() + Duration::from_secs(3_600);
    store.purge(later, later).await.expect("purge failed");
    let kept = record(&store, "evt_a1").await;
    assert_eq!(
        (kept.status, kept.body.is_some()),
        (EventStatus::Dead, true)
    );
    assert!(
        store.get(&key("evt_b1")).await.unwrap().is_none(),
        "finished events are purged"
    );
    // Skip: the lane moves on; skipping again, or a non-dead event, is false.
    assert!(store.skip(&key("evt_a1")).await.expect("skip failed"));
    assert!(!store.skip(&key("evt_a1")).await.unwrap());
    assert!(!store.skip(&key("evt_a2")).await.unwrap());
    assert_eq!(lane_state(&store, "evt_a1").await, Some(LaneState::Skipped));
    assert_eq!(record(&store, "evt_a1").await.status, EventStatus::Dead);
    assert_eq!(ids(&store.claim(by_hand(10)).await.unwrap()), ["evt_a2"]);
}

/// Requeueing the dead event that blocks its lane releases the lane, and
/// the requeued event runs before the ones that waited behind it.
pub async fn requeue_releases_a_blocked_lane_in_order(store: Arc<dyn InboxStore>) {
    insert_new(&store, laned("evt_r1", "r")).await;
    insert_new(&store, laned("evt_r2", "r")).await;
    let first = claim_one(&store).await;
    assert_eq!(first.key.event_id, "evt_r1");
    assert!(store.kill(&first.key, first.fence, "broken").await.unwrap());
    assert!(store.claim(by_hand(10)).await.unwrap().is_empty());
    assert!(store.requeue(&key("evt_r1")).await.expect("requeue failed"));
    assert_eq!(lane_state(&store, "evt_r1").await, Some(LaneState::Head));
    assert_eq!(lane_state(&store, "evt_r2").await, Some(LaneState::Waiting));
    let again = store.claim(by_hand(10)).await.unwrap();
    assert_eq!(ids(&again), ["evt_r1"], "the requeued event runs first");
    assert!(store.complete(&again[0].key, again[0].fence).await.unwrap());
    assert_eq!(ids(&store.claim(by_hand(10)).await.unwrap()), ["evt_r2"]);
}

/// A retry and an expired lease keep the event at the front of its lane:
/// the next claim takes it again (with a higher fence), never the event
/// behind it; the zombie's calls change nothing.
pub async fn retries_and_expired_leases_keep_the_lane_order(store: Arc<dyn InboxStore>) {
    insert_new(&store, laned("evt_l1", "l")).await;
    insert_new(&store, laned("evt_l2", "l")).await;
    let first = claim_one(&store).await;
    assert_eq!(first.key.event_id, "evt_l1");
    assert!(
        store
            .retry(&first.key, first.fence, Duration::ZERO, "flaky")
            .await
            .unwrap()
    );
    let short = ClaimOptions {
        limit: 10,
        lease: Duration::from_millis(300),
        max_attempts: 5,
    };
    let second = store.claim(short).await.unwrap();
    assert_eq!(
        ids(&second),
        ["evt_l1"],
        "a retried event stays first in its lane"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let third = store.claim(short).await.unwrap();
    assert_eq!(
        ids(&third),
        ["evt_l1"],
        "an expired lease is taken over, not skipped"
    );
    assert!(third[0].fence > second[0].fence);
    assert!(
        !store.complete(&first.key, second[0].fence).await.unwrap(),
        "the zombie is fenced"
    );
    assert!(store.claim(by_hand(10)).await.unwrap().is_empty());
    assert!(store.complete(&first.key, third[0].fence).await.unwrap());
    assert_eq!(ids(&store.claim(by_hand(10)).await.unwrap()), ["evt_l2"]);
}

/// Through the worker: by default a dead event blocks its lane; with
/// [`DeadLetters::Skip`] the worker skips it and the lane moves on.
pub async fn the_worker_blocks_or_skips_as_told(store: Arc<dyn InboxStore>) {
    let handler = |event: InboxEvent| async move {
        if event.id().ends_with("_1") {
            Err(HandlerError::permanent("cannot handle"))
        } else {
            Ok(())
        }
    };
    let inbox = Inbox::from_shared(store.clone());
    let blocking = fast(inbox.worker(handler)).spawn();
    insert_new(&store, laned("evt_block_1", "block")).await;
    insert_new(&store, laned("evt_block_2", "block")).await;
    wait_for(&store, "evt_block_1", EventStatus::Dead).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    blocking.shutdown().await;
    assert_eq!(
        lane_state(&store, "evt_block_1").await,
        Some(LaneState::Blocking)
    );
    assert_eq!(
        record(&store, "evt_block_2").await.status,
        EventStatus::Pending
    );
    assert_eq!(
        lane_state(&store, "evt_block_2").await,
        Some(LaneState::Waiting)
    );

    let skipping = fast(inbox.worker(handler))
        .dead_letters(DeadLetters::Skip)
        .spawn();
    insert_new(&store, laned("evt_skip_1", "skip")).await;
    insert_new(&store, laned("evt_skip_2", "skip")).await;
    wait_for(&store, "evt_skip_2", EventStatus::Succeeded).await;
    skipping.shutdown().await;
    let skipped = record(&store, "evt_skip_1").await;
    assert_eq!(
        (skipped.status, skipped.lane_state),
        (EventStatus::Dead, Some(LaneState::Skipped))
    );
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
            the_traceparent_round_trips
            the_history_records_fail_fail_succeed
            the_history_continues_after_a_requeue
            an_expired_lease_is_recorded_as_expired
            the_history_keeps_the_last_max_history_attempts
            a_finished_event_is_replayed
            requeue_matching_requeues_only_the_selection
            replay_matching_replays_only_the_selection
            counts_tell_each_status_and_the_oldest_pending
            lanes_run_in_order_under_four_workers
            a_dead_event_blocks_only_its_lane_until_skipped
            requeue_releases_a_blocked_lane_in_order
            retries_and_expired_leases_keep_the_lane_order
            the_worker_blocks_or_skips_as_told
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
