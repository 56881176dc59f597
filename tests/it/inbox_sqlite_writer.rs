//! The SQLite inbox's writer thread and read connection: what happens when
//! another process holds the lock, when a command fails inside a group, when
//! the queue is full or a caller gives up, and what reads cost the writes.
#![cfg(all(feature = "test-util", feature = "sqlite"))]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tower_webhooks::backend::FenceToken;

use axum::Router;
use axum::routing::post_service;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use rusqlite::Connection;
use tower::{ServiceBuilder, ServiceExt};
use tower_webhooks::clock::{Clock, FixedClock};
use tower_webhooks::inbox::{
    ClaimOptions, EventKey, Inbox, InboxStore, Inserted, ListFilter, NewEvent, SignatureRecord,
    SqliteInbox, StoreError,
};
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, WebhookLayer};

const TABLE: &str = "webhook_inbox";

fn fresh_path(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("tower-webhooks-writer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.db", NEXT.fetch_add(1, Ordering::SeqCst)));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

fn key(id: &str) -> EventKey {
    EventKey::new("writer", id)
}

fn event(id: &str) -> NewEvent {
    NewEvent {
        key: key(id),
        body: Bytes::from_static(b"{}"),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        received_at: SystemTime::now(),
        signature: None,
        traceparent: None,
        lane: None,
    }
}

fn signed(id: &str, signature: &'static [u8]) -> NewEvent {
    NewEvent {
        signature: Some(SignatureRecord {
            signature: Bytes::from_static(signature),
            keep: None,
        }),
        ..event(id)
    }
}

/// Another process's write transaction on the file: the inbox's writer
/// cannot begin one until it ends.
fn hold_lock(path: &Path) -> Connection {
    let connection = Connection::open(path).unwrap();
    connection.execute_batch("BEGIN IMMEDIATE").unwrap();
    connection
}

fn release(connection: Connection) {
    connection.execute_batch("COMMIT").unwrap();
}

/// The event ids in the table, read with a connection of our own.
fn stored_ids(path: &Path) -> Vec<String> {
    let connection = Connection::open(path).unwrap();
    let mut statement = connection
        .prepare(&format!("SELECT event_id FROM {TABLE} ORDER BY event_id"))
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn raw(path: &Path, sql: &str) {
    Connection::open(path).unwrap().execute_batch(sql).unwrap();
}

type Call<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A call polled once: its command is queued (or it was already answered).
enum Polled<T> {
    Waiting(Call<T>),
    Done(T),
}

impl<T> Polled<T> {
    fn waiting(self) -> Call<T> {
        match self {
            Self::Waiting(call) => call,
            Self::Done(_) => panic!("the call was answered while the writer was blocked"),
        }
    }
}

async fn poll_once<T>(call: impl Future<Output = T> + Send + 'static) -> Polled<T> {
    let mut call: Call<T> = Box::pin(call);
    let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(value) => Polled::Done(value),
        Poll::Pending => Polled::Waiting(call),
    }
}

/// Starts an insert and returns it once its command is queued.
async fn queue_insert(
    store: &Arc<SqliteInbox>,
    new: NewEvent,
) -> Polled<Result<Inserted, StoreError>> {
    let store = store.clone();
    poll_once(async move { store.insert(new).await }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_cannot_begin_runs_nothing() {
    let path = fresh_path("begin");
    let store = Arc::new(
        SqliteInbox::builder(&path)
            .busy_timeout(Duration::from_millis(200))
            .open()
            .await
            .unwrap(),
    );

    // The lock is held until every call is answered: each fails, and none
    // of them ran.
    let holder = hold_lock(&path);
    let mut calls = Vec::new();
    for i in 0..3 {
        calls.push(queue_insert(&store, event(&format!("evt_locked_{i}"))).await);
    }
    for call in calls {
        let outcome = match call {
            Polled::Waiting(call) => call.await,
            Polled::Done(outcome) => outcome,
        };
        assert!(
            outcome.is_err(),
            "a call ran under another's lock: {outcome:?}"
        );
    }
    release(holder);
    assert!(stored_ids(&path).is_empty(), "{:?}", stored_ids(&path));

    // The lock is released while the calls wait (after one busy timeout,
    // before two): whatever each was answered, the table agrees with it.
    let holder = hold_lock(&path);
    let mut calls = Vec::new();
    for i in 0..3 {
        let id = format!("evt_released_{i}");
        calls.push((id.clone(), queue_insert(&store, event(&id)).await));
    }
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        release(holder);
    });
    let mut answers = Vec::new();
    for (id, call) in calls {
        let outcome = match call {
            Polled::Waiting(call) => call.await,
            Polled::Done(outcome) => outcome,
        };
        answers.push((id, outcome));
    }
    releaser.join().unwrap();
    let stored = stored_ids(&path);
    for (id, outcome) in answers {
        match outcome {
            Ok(Inserted::New) => assert!(stored.contains(&id), "{id} answered New, not stored"),
            Err(error) => assert!(
                !stored.contains(&id),
                "{id} answered {error}, yet it was committed"
            ),
            Ok(other) => panic!("{id}: unexpected {other:?}"),
        }
    }

    // The writer keeps working.
    assert_eq!(
        store.insert(event("evt_after")).await.unwrap(),
        Inserted::New
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_that_waited_for_the_lock_extends_the_lease_from_when_it_ran() {
    let path = fresh_path("heartbeat");
    let clock = FixedClock::at_unix(1_700_000_000);
    let store = Arc::new(
        SqliteInbox::builder(&path)
            .clock(clock.clone())
            .busy_timeout(Duration::from_secs(60))
            .open()
            .await
            .unwrap(),
    );
    store.insert(event("evt_hb")).await.unwrap();
    let options = ClaimOptions {
        limit: 1,
        lease: Duration::from_secs(30),
        max_attempts: 5,
    };
    let claimed = store.claim(options).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let fence = claimed[0].fence;

    let holder = hold_lock(&path);
    let beat = {
        let store = store.clone();
        poll_once(async move {
            store
                .heartbeat(&key("evt_hb"), fence, Duration::from_secs(30))
                .await
        })
        .await
        .waiting()
    };
    // The heartbeat waits a minute behind the other process's transaction.
    clock.advance(Duration::from_secs(60));
    release(holder);
    assert!(beat.await.unwrap(), "the claim is current");

    let written_at = clock.now().duration_since(UNIX_EPOCH).unwrap();
    let due_at: i64 = Connection::open(&path)
        .unwrap()
        .query_row(
            &format!("SELECT due_at FROM {TABLE} WHERE event_id = 'evt_hb'"),
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        due_at,
        i64::try_from((written_at + Duration::from_secs(30)).as_millis()).unwrap(),
        "the lease must run from when the heartbeat was written"
    );
    assert!(
        store.claim(options).await.unwrap().is_empty(),
        "the lease just extended must not be expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_is_rolled_back_alone_and_the_group_commits() {
    let path = fresh_path("savepoint");
    let store = Arc::new(
        SqliteInbox::builder(&path)
            .busy_timeout(Duration::from_secs(60))
            .open()
            .await
            .unwrap(),
    );
    // The poisoned insert writes its signature record, then fails.
    raw(
        &path,
        &format!(
            "CREATE TRIGGER poison BEFORE INSERT ON {TABLE} WHEN NEW.event_id = 'evt_poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END;"
        ),
    );
    // Queued behind a held lock, the three run in one group.
    let holder = hold_lock(&path);
    let first = queue_insert(&store, signed("evt_ok_1", b"sig-1"))
        .await
        .waiting();
    let poisoned = queue_insert(&store, signed("evt_poison", b"sig-poison"))
        .await
        .waiting();
    let last = queue_insert(&store, signed("evt_ok_2", b"sig-2"))
        .await
        .waiting();
    release(holder);
    assert_eq!(first.await.unwrap(), Inserted::New);
    assert!(poisoned.await.is_err());
    assert_eq!(last.await.unwrap(), Inserted::New);

    assert_eq!(stored_ids(&path), ["evt_ok_1", "evt_ok_2"]);
    let poison_records: i64 = Connection::open(&path)
        .unwrap()
        .query_row(
            &format!(
                "SELECT count(*) FROM {TABLE}_signatures WHERE signature = X'{}'",
                hex(b"sig-poison")
            ),
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        poison_records, 0,
        "the failed insert's partial write committed"
    );
    assert_eq!(
        store
            .insert(signed("evt_other", b"sig-poison"))
            .await
            .unwrap(),
        Inserted::New,
        "no record of the failed insert's signature may hold it"
    );
    assert_eq!(
        store.insert(signed("evt_other_2", b"sig-1")).await.unwrap(),
        Inserted::Replayed,
        "the group's other records committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_rolled_back_by_sqlite_answers_errors_and_nothing_runs_outside_it() {
    let path = fresh_path("rollback");
    let store = Arc::new(
        SqliteInbox::builder(&path)
            .busy_timeout(Duration::from_secs(60))
            .open()
            .await
            .unwrap(),
    );
    // RAISE(ROLLBACK) ends the whole transaction, not just the statement.
    raw(
        &path,
        &format!(
            "CREATE TRIGGER wrecker BEFORE INSERT ON {TABLE} WHEN NEW.event_id = 'evt_wreck'
             BEGIN SELECT RAISE(ROLLBACK, 'wrecked'); END;"
        ),
    );
    let holder = hold_lock(&path);
    let mut calls = Vec::new();
    for id in ["evt_before", "evt_wreck", "evt_after_1", "evt_after_2"] {
        calls.push((id, queue_insert(&store, event(id)).await.waiting()));
    }
    release(holder);
    let mut answers = Vec::new();
    for (id, call) in calls {
        answers.push((id, call.await));
    }
    let stored = stored_ids(&path);
    for (id, outcome) in &answers {
        match outcome {
            Ok(Inserted::New) => assert!(
                stored.iter().any(|s| s == id),
                "{id} answered New, not stored"
            ),
            Err(error) => assert!(
                !stored.iter().any(|s| s == id),
                "{id} answered {error}, yet it was committed"
            ),
            Ok(other) => panic!("{id}: unexpected {other:?}"),
        }
    }
    assert!(answers[0].1.is_err(), "its group was rolled back");
    assert!(answers[1].1.is_err());
    assert_eq!(
        stored,
        ["evt_after_1", "evt_after_2"],
        "they run in a new transaction"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_overloaded_at_once() {
    let path = fresh_path("overloaded");
    let store = Arc::new(
        SqliteInbox::builder(&path)
            .queue_capacity(2)
            .busy_timeout(Duration::from_secs(60))
            .open()
            .await
            .unwrap(),
    );
    let holder = hold_lock(&path);
    let (mut waiting, mut shed) = (Vec::new(), Vec::new());
    for i in 0..6 {
        let id = format!("evt_q_{i}");
        match queue_insert(&store, event(&id)).await {
            Polled::Waiting(call) => waiting.push((id, call)),
            Polled::Done(outcome) => {
                assert!(
                    matches!(outcome, Err(StoreError::Overloaded)),
                    "{id}: {outcome:?}"
                );
                shed.push(id);
            }
        }
    }
    // Two in the queue, and perhaps one taken by the writer (waiting for the lock).
    assert!(
        (2..=3).contains(&waiting.len()),
        "{} waiting",
        waiting.len()
    );
    release(holder);
    for (id, call) in waiting {
        assert_eq!(call.await.unwrap(), Inserted::New, "{id}");
    }
    for id in &shed {
        assert!(
            store.get(&key(id)).await.unwrap().is_none(),
            "{id} was shed"
        );
    }
    assert_eq!(stored_ids(&path).len(), 6 - shed.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_command_is_skipped() {
    let path = fresh_path("abandoned");
    let store = Arc::new(
        SqliteInbox::builder(&path)
            .busy_timeout(Duration::from_secs(60))
            .open()
            .await
            .unwrap(),
    );
    let holder = hold_lock(&path);
    // The first one is (or will be) the writer's, waiting for the lock; the
    // abandoned one waits in the queue behind it.
    let first = queue_insert(&store, event("evt_kept_1")).await.waiting();
    let abandoned = queue_insert(&store, event("evt_abandoned")).await.waiting();
    let last = queue_insert(&store, event("evt_kept_2")).await.waiting();
    drop(abandoned); // The caller gave up (a timeout, a disconnect).
    release(holder);
    assert_eq!(first.await.unwrap(), Inserted::New);
    assert_eq!(last.await.unwrap(), Inserted::New);
    assert_eq!(stored_ids(&path), ["evt_kept_1", "evt_kept_2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_wait_for_the_writer() {
    let path = fresh_path("reads");
    let store = Arc::new(
        SqliteInbox::builder(&path)
            .queue_capacity(1)
            .busy_timeout(Duration::from_secs(60))
            .open()
            .await
            .unwrap(),
    );
    store.insert(event("evt_read")).await.unwrap();
    // The writer is stuck behind another process's lock, its queue full.
    let holder = hold_lock(&path);
    let mut waiting = Vec::new();
    loop {
        match queue_insert(&store, event(&format!("evt_w_{}", waiting.len()))).await {
            Polled::Waiting(call) => waiting.push(call),
            Polled::Done(outcome) => {
                assert!(
                    matches!(outcome, Err(StoreError::Overloaded)),
                    "{outcome:?}"
                );
                break;
            }
        }
    }
    // A deadlock guard, not a timing goal: through the writer, these would
    // wait for the lock (a minute).
    let reads = async {
        let record = store.get(&key("evt_read")).await.unwrap().unwrap();
        assert_eq!(record.body.as_deref(), Some(&b"{}"[..]), "get has the body");
        let listed = store.list(ListFilter::new(10)).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].body, None, "list leaves bodies out");
        assert_eq!(store.pending_count().await.unwrap(), 1);
    };
    tokio::time::timeout(Duration::from_secs(30), reads)
        .await
        .expect("reads waited for the writer");
    release(holder);
    for call in waiting {
        assert_eq!(call.await.unwrap(), Inserted::New);
    }
}

const SECRET: &str = "inbox_writer_secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_during_a_flood_of_accepts_sheds_none() {
    let path = fresh_path("flood");
    let store = SqliteInbox::open(&path).await.unwrap();
    // Something to list: 3,000 events already recorded.
    let prefill: Vec<_> = (0..3_000)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.insert(event(&format!("evt_old_{i}"))).await })
        })
        .collect();
    for insert in prefill {
        assert_eq!(insert.await.unwrap().unwrap(), Inserted::New);
    }
    let inbox = Inbox::new(store);
    let endpoint = ServiceBuilder::new()
        .layer(WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()))
        .service(inbox.accept());
    let app = Router::new().route("/hook", post_service(endpoint));

    let stop = Arc::new(AtomicBool::new(false));
    let lists = Arc::new(AtomicUsize::new(0));
    let lister = {
        let (store, stop, lists) = (inbox.store().clone(), stop.clone(), lists.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let listed = store.list(ListFilter::new(10_000)).await.unwrap();
                assert!(listed.len() >= 3_000);
                lists.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let deliveries: Vec<_> = (0..2_000)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let request: Request<Full<Bytes>> = GenericSigner::new(SECRET)
                    .request(
                        "/hook",
                        &format!("evt_new_{i}"),
                        unix_now(),
                        format!("{{\"n\":{i}}}").as_bytes(),
                    )
                    .map(Full::new);
                app.oneshot(request).await.unwrap().status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for delivery in deliveries {
        statuses.push(delivery.await.unwrap());
    }
    stop.store(true, Ordering::SeqCst);
    lister.await.unwrap();
    let refused = statuses.iter().filter(|s| **s != StatusCode::OK).count();
    assert_eq!(
        refused,
        0,
        "{refused} of 2000 accepts refused: {:?}",
        statuses.iter().find(|s| **s != StatusCode::OK)
    );
    assert!(lists.load(Ordering::SeqCst) >= 1);
    assert_eq!(stored_ids(&path).len(), 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_row_is_an_error_not_a_default() {
    let path = fresh_path("unreadable");
    let store = SqliteInbox::open(&path).await.unwrap();
    store.insert(event("evt_bad")).await.unwrap();

    raw(&path, &format!("UPDATE {TABLE} SET status = 'bogus'"));
    let error = store.get(&key("evt_bad")).await.unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    assert!(error.to_string().contains("`status`"), "{error}");
    let error = store.list(ListFilter::new(10)).await.unwrap_err();
    assert!(error.to_string().contains("`status`"), "{error}");

    raw(
        &path,
        &format!(
            "UPDATE {TABLE} SET status = 'pending', headers = 'not json: private-header-value'"
        ),
    );
    let options = ClaimOptions {
        limit: 10,
        lease: Duration::from_secs(30),
        max_attempts: 5,
    };
    let error = store.claim(options).await.unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("`headers`"), "{message}");
    assert!(!message.contains("private-header-value"), "{message}");
    // The failed claim changed nothing.
    let record = store.get(&key("evt_bad")).await.unwrap().unwrap();
    assert_eq!(record.attempts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_database_reads_through_the_writer() {
    let store = SqliteInbox::open(":memory:").await.unwrap();
    assert_eq!(store.insert(event("evt_mem")).await.unwrap(), Inserted::New);
    assert!(store.get(&key("evt_mem")).await.unwrap().is_some());
    assert_eq!(store.list(ListFilter::new(10)).await.unwrap().len(), 1);
    assert_eq!(store.pending_count().await.unwrap(), 1);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_the_signature_records_that_are_over() {
    let path = fresh_path("purge");
    let clock = FixedClock::at_unix(1_700_000_000);
    let store = SqliteInbox::builder(&path)
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    let with_keep = |id: &str, signature: &'static [u8], keep: Option<Duration>| NewEvent {
        signature: Some(SignatureRecord {
            signature: Bytes::from_static(signature),
            keep,
        }),
        ..event(id)
    };
    let minute = Some(Duration::from_secs(60));
    let hour = Some(Duration::from_secs(3_600));
    for new in [
        with_keep("evt_window", b"sig-window", minute),
        with_keep("evt_dead", b"sig-dead", None),
        with_keep("evt_live", b"sig-live", None),
        with_keep("evt_hour", b"sig-hour", hour),
    ] {
        assert_eq!(store.insert(new).await.unwrap(), Inserted::New);
    }
    let options = ClaimOptions {
        limit: 10,
        lease: Duration::from_secs(86_400),
        max_attempts: 5,
    };
    for claimed in store.claim(options).await.unwrap() {
        let id = claimed.key.event_id.as_str();
        match id {
            "evt_dead" => assert!(store.kill(&claimed.key, claimed.fence, "no").await.unwrap()),
            "evt_live" => {}
            _ => assert!(store.complete(&claimed.key, claimed.fence).await.unwrap()),
        }
    }
    clock.advance(Duration::from_secs(120));
    let later = SystemTime::now() + Duration::from_secs(3_600);
    let purged = store.purge(later, later).await.unwrap();
    assert_eq!(purged.events, 3, "every finished event");

    let connection = Connection::open(&path).unwrap();
    let mut statement = connection
        .prepare(&format!(
            "SELECT event_id FROM {TABLE}_signatures ORDER BY event_id"
        ))
        .unwrap();
    let left: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // Over: the expired window, the unwindowed record of a purged event.
    // Kept: the record of the event still processing, the window not over.
    assert_eq!(left, ["evt_hour", "evt_live"]);
    assert_eq!(
        store
            .insert(with_keep("evt_taker", b"sig-hour", None))
            .await
            .unwrap(),
        Inserted::Replayed,
        "a window outlives its event"
    );
}

/// A file made by an earlier version (no `traceparent`, no `replay_next`, no
/// attempts table) opens: its events are claimed, and gain a history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_an_earlier_version_is_migrated_on_open() {
    let path = fresh_path("migrate");
    raw(
        &path,
        &format!(
            "CREATE TABLE {TABLE} (
                 namespace TEXT NOT NULL, event_id TEXT NOT NULL, status TEXT NOT NULL,
                 body BLOB, body_hash BLOB NOT NULL, headers TEXT NOT NULL,
                 received_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, due_at INTEGER NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0, fence INTEGER NOT NULL DEFAULT 0,
                 last_error TEXT, PRIMARY KEY (namespace, event_id));
             INSERT INTO {TABLE} (namespace, event_id, status, body, body_hash, headers,
                                  received_at, updated_at, due_at, fence)
             VALUES ('writer', 'evt_old', 'pending', x'7b7d', x'00', '[]', 1000, 1000, 1000, 4);"
        ),
    );
    let inbox = SqliteInbox::open(&path)
        .await
        .expect("open an earlier file");
    let counts = inbox.counts().await.unwrap();
    assert_eq!(counts.pending, 1);
    assert_eq!(
        counts.oldest_pending,
        Some(UNIX_EPOCH + Duration::from_secs(1))
    );
    let options = ClaimOptions {
        limit: 10,
        lease: Duration::from_secs(60),
        max_attempts: 5,
    };
    let claimed = inbox.claim(options).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].fence.get(), claimed[0].traceparent.as_deref()),
        (5, None)
    );
    assert!(!claimed[0].replay);
    assert!(
        inbox
            .complete(&key("evt_old"), FenceToken::new(5))
            .await
            .unwrap()
    );
    let record = inbox.get(&key("evt_old")).await.unwrap().unwrap();
    assert_eq!(record.history.len(), 1);
    assert_eq!(record.history[0].fence.get(), 5);
    drop(inbox);
    // Opening it again changes nothing.
    let inbox = SqliteInbox::open(&path).await.expect("open again");
    let record = inbox.get(&key("evt_old")).await.unwrap().unwrap();
    assert_eq!(record.history.len(), 1);
}

/// Purging an event deletes its attempts with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_an_event_deletes_its_attempts() {
    let path = fresh_path("purge-attempts");
    let inbox = SqliteInbox::open(&path).await.unwrap();
    let options = ClaimOptions {
        limit: 10,
        lease: Duration::from_secs(60),
        max_attempts: 5,
    };
    for id in ["evt_gone", "evt_kept"] {
        assert_eq!(inbox.insert(event(id)).await.unwrap(), Inserted::New);
    }
    for claimed in inbox.claim(options).await.unwrap() {
        if claimed.key.event_id == "evt_gone" {
            assert!(inbox.complete(&claimed.key, claimed.fence).await.unwrap());
        }
    }
    let future = SystemTime::now() + Duration::from_secs(3_600);
    assert_eq!(inbox.purge(future, future).await.unwrap().events, 1);
    let connection = Connection::open(&path).unwrap();
    let left: Vec<String> = connection
        .prepare(&format!("SELECT event_id FROM {TABLE}_attempts"))
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(left, ["evt_kept"]);
}

/// The searches `counts` makes read a range of an index, not the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_read_an_index() {
    let path = fresh_path("counts-plan");
    let inbox = SqliteInbox::open(&path).await.unwrap();
    assert_eq!(inbox.counts().await.unwrap().pending, 0);
    let connection = Connection::open(&path).unwrap();
    let plan: Vec<String> = connection
        .prepare(&format!(
            "EXPLAIN QUERY PLAN SELECT (SELECT count(*) FROM {TABLE} WHERE status = 'dead'),
                 (SELECT min(received_at) FROM {TABLE} WHERE status = 'pending')"
        ))
        .unwrap()
        .query_map([], |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let searches = plan
        .iter()
        .filter(|step| {
            step.starts_with("SEARCH")
                && step.contains(&format!("COVERING INDEX {TABLE}_status_received"))
        })
        .count();
    assert_eq!(searches, 2, "{plan:?}");
    assert!(
        !plan
            .iter()
            .any(|step| step.starts_with(&format!("SCAN {TABLE}"))),
        "{plan:?}"
    );
}
