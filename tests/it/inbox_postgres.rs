//! The PostgreSQL inbox against the inbox conformance suite, each test on a
//! fresh table, plus what only a shared database shows: several instances
//! racing, grouped inserts, an unreachable server. Set
//! `TOWER_WEBHOOKS_PG_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`)
//! to run it; without it every test is reported as ignored.
#![cfg(all(feature = "postgres", feature = "test-util"))]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tower_webhooks::backend::FenceToken;

use async_trait::async_trait;
use bytes::Bytes;
use tower_webhooks::inbox::{
    AttemptOutcome, ClaimOptions, ClaimedEvent, EventKey, EventRecord, EventStatus, Inbox,
    InboxEvent, InboxStore, Inserted, ListFilter, MAX_HISTORY, NewEvent, PostgresInbox, Purged,
    Selection, SignatureRecord, StatusCounts, StoreError,
};

fn url() -> Option<String> {
    std::env::var("TOWER_WEBHOOKS_PG_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// A table name no other test (in this process or another) uses.
fn unique_table() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros());
    format!(
        "tw_inbox_{}_{}_{micros}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Drops `table`, its signature records and its attempts, from a plain thread with its own runtime (`Drop` cannot
/// await, and blocking inside the test's runtime is not allowed).
fn drop_table(url: String, table: String) {
    let cleanup = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(connection);
            client
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS \"{table}\", \"{table}_signatures\", \"{table}_attempts\";
                     DROP SEQUENCE IF EXISTS \"{table}_lane_seq\""
                ))
                .await
                .map_err(std::io::Error::other)
        })
    });
    let _ = cleanup.join();
}

/// A migrated inbox on a fresh table, dropped when the inbox is.
#[derive(Debug)]
struct TestInbox {
    store: PostgresInbox,
    url: String,
}

impl TestInbox {
    async fn new() -> Option<Self> {
        Self::on(&unique_table(), true).await
    }

    async fn on(table: &str, group_commit: bool) -> Option<Self> {
        let url = url()?;
        let store = PostgresInbox::builder()
            .table(table)
            .pool_size(8)
            .group_commit(group_commit)
            // Correctness, not speed: a loaded machine must not turn a slow
            // insert into a failed property (the timeout has its own test).
            .timeout(Duration::from_secs(30))
            .connect(&url)
            .expect("invalid URL");
        store.migrate().await.expect("migrate failed");
        Some(Self { store, url })
    }
}

impl Drop for TestInbox {
    fn drop(&mut self) {
        drop_table(self.url.clone(), self.store.table().to_owned());
    }
}

#[async_trait]
impl InboxStore for TestInbox {
    fn is_durable(&self) -> bool {
        self.store.is_durable()
    }

    async fn insert(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        self.store.insert(event).await
    }

    async fn claim(&self, options: ClaimOptions) -> Result<Vec<ClaimedEvent>, StoreError> {
        self.store.claim(options).await
    }

    async fn heartbeat(
        &self,
        key: &EventKey,
        fence: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.store.heartbeat(key, fence, lease).await
    }

    async fn complete(&self, key: &EventKey, fence: FenceToken) -> Result<bool, StoreError> {
        self.store.complete(key, fence).await
    }

    async fn retry(
        &self,
        key: &EventKey,
        fence: FenceToken,
        delay: Duration,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.store.retry(key, fence, delay, error).await
    }

    async fn kill(
        &self,
        key: &EventKey,
        fence: FenceToken,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.store.kill(key, fence, error).await
    }

    async fn give_back(&self, key: &EventKey, fence: FenceToken) -> Result<bool, StoreError> {
        self.store.give_back(key, fence).await
    }

    async fn requeue(&self, key: &EventKey) -> Result<bool, StoreError> {
        self.store.requeue(key).await
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        self.store.get(key).await
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<EventRecord>, StoreError> {
        self.store.list(filter).await
    }

    async fn pending_count(&self) -> Result<u64, StoreError> {
        self.store.pending_count().await
    }

    async fn purge(
        &self,
        events_before: SystemTime,
        payloads_before: SystemTime,
    ) -> Result<Purged, StoreError> {
        self.store.purge(events_before, payloads_before).await
    }

    async fn replay(&self, key: &EventKey) -> Result<bool, StoreError> {
        self.store.replay(key).await
    }

    async fn requeue_matching(&self, selection: &Selection) -> Result<u64, StoreError> {
        self.store.requeue_matching(selection).await
    }

    async fn replay_matching(&self, selection: &Selection) -> Result<u64, StoreError> {
        self.store.replay_matching(selection).await
    }

    async fn counts(&self) -> Result<StatusCounts, StoreError> {
        self.store.counts().await
    }

    fn supports_lanes(&self) -> bool {
        self.store.supports_lanes()
    }

    async fn skip(&self, key: &EventKey) -> Result<bool, StoreError> {
        self.store.skip(key).await
    }
}

tower_webhooks::inbox_store_conformance!(
    #[cfg_attr(
        not(tower_webhooks_pg),
        ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
    )]
    store = TestInbox::new()
);

fn event(id: &str, body: &[u8]) -> NewEvent {
    NewEvent {
        key: EventKey::new("pg", id),
        body: Bytes::copy_from_slice(body),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        received_at: SystemTime::now(),
        signature: None,
        traceparent: None,
        lane: None,
    }
}

/// Inserts every event at once, each from its own task.
async fn insert_all(store: &Arc<dyn InboxStore>, events: Vec<NewEvent>) -> Vec<Inserted> {
    let tasks: Vec<_> = events
        .into_iter()
        .map(|event| {
            let store = store.clone();
            tokio::spawn(async move { store.insert(event).await })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.unwrap().expect("insert failed"));
    }
    outcomes
}

/// Two stores with their own pools (two "instances") on one table, two
/// workers each: every one of 2,000 events is handled exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn two_instances_handle_each_of_2000_events_once() {
    let table = unique_table();
    let first = TestInbox::on(&table, true).await.expect("URL unset");
    let second = TestInbox::on(&table, true).await.expect("URL unset");
    let stores: [Arc<dyn InboxStore>; 2] = [Arc::new(first), Arc::new(second)];
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let mut workers = Vec::new();
    for store in &stores {
        let inbox = Inbox::from_shared(store.clone());
        for _ in 0..2 {
            let seen = seen.clone();
            let worker = inbox
                .worker(move |event: InboxEvent| {
                    *seen
                        .lock()
                        .unwrap()
                        .entry(event.id().to_owned())
                        .or_default() += 1;
                    async { Ok(()) }
                })
                .poll_interval(Duration::from_millis(10))
                .concurrency(8)
                .spawn();
            workers.push(worker);
        }
    }
    for (half, store) in stores.iter().enumerate() {
        let events = (0..1_000)
            .map(|i| event(&format!("evt_{half}_{i}"), b"{}"))
            .collect();
        let outcomes = insert_all(store, events).await;
        assert!(outcomes.iter().all(|outcome| *outcome == Inserted::New));
    }
    let started = Instant::now();
    loop {
        let succeeded = stores[0]
            .list(ListFilter::new(10_000).status(EventStatus::Succeeded))
            .await
            .unwrap()
            .len();
        if succeeded == 2_000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {succeeded} of 2000 succeeded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for worker in workers {
        worker.shutdown().await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2_000);
    let twice: Vec<_> = seen.iter().filter(|(_, count)| **count != 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    for store in &stores {
        assert_eq!(store.pending_count().await.unwrap(), 0);
    }
    drop(stores); // both drop the (same) table; the second finds it gone.
}

/// An unreachable server is an error within the timeout, not a hang, for
/// grouped and ungrouped inserts and for the other calls.
#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn a_closed_port_errors_promptly() {
    for group_commit in [true, false] {
        let store = PostgresInbox::builder()
            .timeout(Duration::from_secs(2))
            .group_commit(group_commit)
            .connect("postgres://postgres@127.0.0.1:1/test")
            .unwrap();
        let started = Instant::now();
        let inserted = store.insert(event("evt_1", b"{}")).await;
        assert!(
            matches!(
                inserted,
                Err(StoreError::Unavailable(_) | StoreError::Timeout(_))
            ),
            "{inserted:?}"
        );
        let claimed = store
            .claim(ClaimOptions {
                limit: 10,
                lease: Duration::from_secs(10),
                max_attempts: 3,
            })
            .await;
        assert!(claimed.is_err(), "{claimed:?}");
        assert!(store.pending_count().await.is_err());
        assert!(store.migrate().await.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }
}

/// Concurrent inserts share batches and each gets its own answer: new ids
/// are `New`, repeats are duplicates with the right body comparison, also
/// when the same new id arrives twice in one batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn grouped_inserts_answer_each_caller() {
    for group_commit in [true, false] {
        let store: Arc<dyn InboxStore> = Arc::new(
            TestInbox::on(&unique_table(), group_commit)
                .await
                .expect("URL unset"),
        );
        let ids: Vec<String> = (0..500).map(|i| format!("evt_{i}")).collect();
        let body = |i: usize| format!("{{\"n\":{i}}}").into_bytes();

        let started = Instant::now();
        let fresh = insert_all(
            &store,
            ids.iter()
                .enumerate()
                .map(|(i, id)| event(id, &body(i)))
                .collect(),
        )
        .await;
        let took = started.elapsed();
        assert!(fresh.iter().all(|outcome| *outcome == Inserted::New));
        eprintln!("group_commit={group_commit}: 500 concurrent new inserts in {took:?}");

        let again = insert_all(
            &store,
            ids.iter()
                .enumerate()
                .map(|(i, id)| event(id, &body(i)))
                .collect(),
        )
        .await;
        assert!(
            again
                .iter()
                .all(|outcome| *outcome == Inserted::Duplicate { same_body: true })
        );

        // Every other one changed, mixed with new ids.
        let mixed = insert_all(
            &store,
            ids.iter()
                .enumerate()
                .map(|(i, id)| {
                    if i % 2 == 0 {
                        event(id, b"changed")
                    } else {
                        event(id, &body(i))
                    }
                })
                .chain((0..100).map(|i| event(&format!("evt_more_{i}"), b"{}")))
                .collect(),
        )
        .await;
        for (i, outcome) in mixed.iter().enumerate() {
            let expected = if i >= 500 {
                Inserted::New
            } else {
                Inserted::Duplicate {
                    same_body: i % 2 == 1,
                }
            };
            assert_eq!(*outcome, expected, "insert {i}");
        }

        // The same new id twice at once: one is recorded, the other is a
        // duplicate of it.
        let twins = insert_all(
            &store,
            (0..50)
                .flat_map(|i| {
                    let id = format!("evt_twin_{i}");
                    [event(&id, b"a"), event(&id, b"b")]
                })
                .collect(),
        )
        .await;
        for pair in twins.chunks(2) {
            let new = pair.iter().filter(|o| **o == Inserted::New).count();
            let changed = pair
                .iter()
                .filter(|o| **o == Inserted::Duplicate { same_body: false })
                .count();
            assert_eq!((new, changed), (1, 1), "{pair:?}");
        }

        assert_eq!(store.pending_count().await.unwrap(), 650);
        let record = store
            .get(&EventKey::new("pg", "evt_0"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            record.body.as_deref(),
            Some(&body(0)[..]),
            "first body kept"
        );
    }
}

/// `migrate` is idempotent and safe to run from several instances at once,
/// and a schema-qualified table works.
#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn concurrent_migrations_and_a_schema_qualified_table() {
    let url = url().expect("TOWER_WEBHOOKS_PG_URL unset");
    let name = unique_table();
    let stores: Vec<PostgresInbox> = (0..4)
        .map(|_| {
            PostgresInbox::builder()
                .table(format!("public.{name}"))
                .connect(&url)
                .unwrap()
        })
        .collect();
    let migrations: Vec<_> = stores
        .iter()
        .map(|store| {
            let store = store.clone();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for migration in migrations {
        migration.await.unwrap().expect("migrate failed");
    }
    stores[0].migrate().await.unwrap();
    assert_eq!(
        stores[1].insert(event("evt_1", b"{}")).await.unwrap(),
        Inserted::New
    );
    assert_eq!(stores[2].pending_count().await.unwrap(), 1);
    drop_table(url, name);
}

/// Leases and due times follow the database's clock: a retry's delay is
/// measured there, so an event retried with a 1 s delay is not claimable at
/// once but is a second later.
#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn a_retry_delay_is_kept_by_the_database() {
    let store = TestInbox::new().await.expect("URL unset");
    let options = ClaimOptions {
        limit: 10,
        lease: Duration::from_secs(60),
        max_attempts: 5,
    };
    assert_eq!(
        store.insert(event("evt_1", b"{}")).await.unwrap(),
        Inserted::New
    );
    let claimed = store.claim(options).await.unwrap();
    let key = EventKey::new("pg", "evt_1");
    assert!(
        store
            .retry(&key, claimed[0].fence, Duration::from_secs(1), "later")
            .await
            .unwrap()
    );
    let record = store.get(&key).await.unwrap().unwrap();
    assert_eq!(record.status, EventStatus::Pending);
    assert!(record.next_attempt_at.is_some());
    assert!(store.claim(options).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let again = store.claim(options).await.unwrap();
    assert_eq!((again.len(), again[0].attempt), (1, 2));
    assert!(again[0].fence > claimed[0].fence);
    assert_eq!(again[0].headers, event("", b"").headers);
}

/// A connection of its own, to look at (or damage) the tables directly.
async fn raw_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// The signature records of `store`'s table: (signature, event id, kept
/// until the event goes), in signature order.
async fn signature_records(store: &TestInbox) -> Vec<(Vec<u8>, String, bool)> {
    let client = raw_client(&store.url).await;
    client
        .query(
            &format!(
                "SELECT signature, event_id, expires_at IS NULL FROM \"{}_signatures\"
                 ORDER BY signature",
                store.store.table()
            ),
            &[],
        )
        .await
        .expect("read the signature records")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// An event whose id the signature does not cover: `signature` is admitted
/// with it, kept for `keep` (`None`: as long as the event).
fn signed(id: &str, signature: &[u8], keep: Option<Duration>) -> NewEvent {
    NewEvent {
        signature: Some(SignatureRecord {
            signature: Bytes::copy_from_slice(signature),
            keep,
        }),
        ..event(id, b"{\"signed\":true}")
    }
}

const WINDOW: Option<Duration> = Some(Duration::from_secs(300));

/// A signature replayed under another id is refused and writes nothing; the
/// same id again is a duplicate and keeps the record.
#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn a_signature_replayed_under_another_id_is_refused() {
    let store = TestInbox::new().await.expect("URL unset");
    assert_eq!(
        store
            .insert(signed("evt_a", b"sig-1", WINDOW))
            .await
            .unwrap(),
        Inserted::New
    );
    assert_eq!(
        store
            .insert(signed("evt_b", b"sig-1", WINDOW))
            .await
            .unwrap(),
        Inserted::Replayed
    );
    assert!(
        store
            .get(&EventKey::new("pg", "evt_b"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .insert(signed("evt_a", b"sig-1", WINDOW))
            .await
            .unwrap(),
        Inserted::Duplicate { same_body: true }
    );
    // Another namespace has its own records.
    let mut other = signed("evt_b", b"sig-1", WINDOW);
    other.key = EventKey::new("pg_other", "evt_b");
    assert_eq!(store.insert(other).await.unwrap(), Inserted::New);
    assert_eq!(store.pending_count().await.unwrap(), 2);
    let records = signature_records(&store).await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records
            .iter()
            .all(|(signature, _, forever)| signature == b"sig-1" && !forever)
    );
    assert!(records.iter().any(|(_, id, _)| id == "evt_a"));
}

/// A record whose window ended is taken over by the next id that presents
/// the signature; the old id is then the replay.
#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn an_expired_signature_record_is_taken_over() {
    let store = TestInbox::new().await.expect("URL unset");
    // A zero window ends at once (on the database's clock).
    assert_eq!(
        store
            .insert(signed("evt_a", b"sig-1", Some(Duration::ZERO)))
            .await
            .unwrap(),
        Inserted::New
    );
    assert_eq!(
        store
            .insert(signed("evt_b", b"sig-1", WINDOW))
            .await
            .unwrap(),
        Inserted::New
    );
    assert_eq!(
        store
            .insert(signed("evt_a", b"sig-1", WINDOW))
            .await
            .unwrap(),
        Inserted::Replayed
    );
    let records = signature_records(&store).await;
    assert_eq!(
        records,
        vec![(b"sig-1".to_vec(), "evt_b".to_owned(), false)]
    );
}

/// A record kept for as long as its event outlives any window and goes with
/// the event's purge; expired records go at any purge; live ones stay.
#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn a_record_kept_with_its_event_lives_until_the_purge() {
    let store = TestInbox::new().await.expect("URL unset");
    let options = ClaimOptions {
        limit: 10,
        lease: Duration::from_secs(60),
        max_attempts: 3,
    };
    for (id, signature, keep) in [
        ("evt_done", &b"sig-done"[..], None),
        ("evt_waiting", b"sig-waiting", None),
        ("evt_expired", b"sig-expired", Some(Duration::ZERO)),
        ("evt_windowed", b"sig-windowed", WINDOW),
    ] {
        assert_eq!(
            store.insert(signed(id, signature, keep)).await.unwrap(),
            Inserted::New
        );
    }
    // Finish evt_done only.
    for claimed in store.claim(options).await.unwrap() {
        if claimed.key.event_id == "evt_done" {
            assert!(store.complete(&claimed.key, claimed.fence).await.unwrap());
        } else {
            assert!(store.give_back(&claimed.key, claimed.fence).await.unwrap());
        }
    }
    assert_eq!(
        store
            .insert(signed("evt_x", b"sig-done", None))
            .await
            .unwrap(),
        Inserted::Replayed
    );
    let later = SystemTime::now() + Duration::from_secs(3_600);
    let purged = store.purge(later, later).await.unwrap();
    assert_eq!(purged.events, 1);
    let records: Vec<(Vec<u8>, String, bool)> = signature_records(&store).await;
    assert_eq!(
        records,
        vec![
            (b"sig-waiting".to_vec(), "evt_waiting".to_owned(), true),
            (b"sig-windowed".to_vec(), "evt_windowed".to_owned(), false),
        ]
    );
    // Its event gone, the signature is free again.
    assert_eq!(
        store
            .insert(signed("evt_x", b"sig-done", None))
            .await
            .unwrap(),
        Inserted::New
    );
}

/// 200 ids present one signature at once through two instances (two
/// pools, grouped commits on both): exactly one is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn one_of_200_ids_racing_for_a_signature_wins() {
    let table = unique_table();
    let first = TestInbox::on(&table, true).await.expect("URL unset");
    let second = TestInbox::on(&table, true).await.expect("URL unset");
    let stores: [Arc<dyn InboxStore>; 2] = [Arc::new(first), Arc::new(second)];
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                let id = format!("evt_{i}");
                (
                    id.clone(),
                    store.insert(signed(&id, b"sig-contested", WINDOW)).await,
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (id, outcome) = task.await.unwrap();
        match outcome.expect("insert failed") {
            Inserted::New => winners.push(id),
            Inserted::Replayed => {}
            other => panic!("{id}: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(stores[0].pending_count().await.unwrap(), 1);
    let listed = stores[1].list(ListFilter::new(1_000)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key.event_id, winners[0]);
    drop(stores); // both drop the (same) tables; the second finds them gone.
}

/// Inserts started together on a current-thread runtime reach the writer
/// before it runs, so they share one batch, in the order they started.
async fn insert_together(store: &Arc<dyn InboxStore>, events: Vec<NewEvent>) -> Vec<Inserted> {
    let tasks: Vec<_> = events
        .into_iter()
        .map(|event| {
            let store = store.clone();
            tokio::spawn(async move { store.insert(event).await })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.unwrap().expect("insert failed"));
    }
    outcomes
}

/// One batch holding several inserts of one signature: the first id claims
/// it and the other id is the replay, repeats of the first id are
/// duplicates; and when the first one's claim is refused because a recorded
/// event holds the signature, that event's own retry in the batch is still
/// a duplicate, not a replay.
#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn one_batch_with_a_signature_under_two_ids() {
    let store: Arc<dyn InboxStore> = Arc::new(TestInbox::new().await.expect("URL unset"));
    assert_eq!(
        store
            .insert(signed("evt_held", b"sig-held", None))
            .await
            .unwrap(),
        Inserted::New
    );
    let outcomes = insert_together(
        &store,
        vec![
            signed("evt_b", b"sig-1", WINDOW),
            signed("evt_a", b"sig-1", WINDOW),
            signed("evt_b", b"sig-1", WINDOW),
            event("evt_plain", b"{}"),
            signed("evt_a", b"sig-2", WINDOW),
            signed("evt_c", b"sig-held", None),
            signed("evt_held", b"sig-held", None),
            signed("evt_d", b"sig-held", None),
        ],
    )
    .await;
    assert_eq!(
        outcomes,
        vec![
            Inserted::New,
            Inserted::Replayed,
            Inserted::Duplicate { same_body: true },
            Inserted::New,
            // evt_a's other signature is its own: recorded with it.
            Inserted::New,
            Inserted::Replayed,
            Inserted::Duplicate { same_body: true },
            Inserted::Replayed,
        ]
    );
    let mut ids: Vec<String> = store
        .list(ListFilter::new(100))
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.key.event_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["evt_a", "evt_b", "evt_held", "evt_plain"]);
}

/// A row the store cannot read is an error naming the column, for `get`,
/// `list` and `claim`; never a guess, and never the payload.
#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn an_unreadable_row_is_an_error() {
    let store = TestInbox::new().await.expect("URL unset");
    let table = store.store.table().to_owned();
    let client = raw_client(&store.url).await;
    for id in ["evt_status", "evt_headers"] {
        assert_eq!(
            store.insert(event(id, b"secret payload")).await.unwrap(),
            Inserted::New
        );
    }
    client
        .batch_execute(&format!(
            "ALTER TABLE \"{table}\" DROP CONSTRAINT \"{table}_status_check\";
             UPDATE \"{table}\" SET status = 'bogus' WHERE event_id = 'evt_status';
             UPDATE \"{table}\" SET headers = '{{\"not\": \"pairs\"}}'
                 WHERE event_id = 'evt_headers';"
        ))
        .await
        .expect("damage the rows");

    let unreadable = |result: Result<_, StoreError>, column: &str| {
        let error = match result {
            Err(error @ StoreError::Backend(_)) => error.to_string(),
            other => panic!("{column}: wanted a backend error, got {other:?}"),
        };
        assert!(error.contains(&format!("`{column}`")), "{error}");
        assert!(!error.contains("secret payload"), "{error}");
        assert!(!error.contains("bogus"), "{error}");
    };
    unreadable(
        store
            .get(&EventKey::new("pg", "evt_status"))
            .await
            .map(|_| ()),
        "status",
    );
    unreadable(store.list(ListFilter::new(10)).await.map(|_| ()), "status");
    // The readable row still reads.
    let record = store
        .get(&EventKey::new("pg", "evt_headers"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, EventStatus::Pending);
    let claimed = store
        .claim(ClaimOptions {
            limit: 10,
            lease: Duration::from_secs(60),
            max_attempts: 3,
        })
        .await
        .map(|_| ());
    unreadable(claimed, "headers");
}

fn options(lease: Duration) -> ClaimOptions {
    ClaimOptions {
        limit: 100,
        lease,
        max_attempts: 5,
    }
}

/// Claims the only due event.
async fn claim_one(store: &TestInbox, lease: Duration) -> ClaimedEvent {
    let mut claimed = store.claim(options(lease)).await.expect("claim failed");
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    claimed.remove(0)
}

const LONG: Duration = Duration::from_secs(300);

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn a_traceparent_is_kept_from_insert_to_claim_and_get() {
    let Some(store) = TestInbox::new().await else {
        return;
    };
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // Both insert statements: with a signature (`admit`) and without.
    let mut traced = event("traced", b"{}");
    traced.traceparent = Some(traceparent.to_owned());
    let mut signed_traced = signed("signed", b"sig-tp", Some(Duration::from_secs(60)));
    signed_traced.traceparent = Some(format!("{traceparent}x"));
    assert_eq!(store.insert(traced).await.unwrap(), Inserted::New);
    assert_eq!(store.insert(signed_traced).await.unwrap(), Inserted::New);
    assert_eq!(
        store.insert(event("plain", b"{}")).await.unwrap(),
        Inserted::New
    );
    let claimed = store.claim(options(LONG)).await.unwrap();
    let by_id: HashMap<&str, Option<&str>> = claimed
        .iter()
        .map(|event| (event.key.event_id.as_str(), event.traceparent.as_deref()))
        .collect();
    assert_eq!(by_id.len(), 3);
    assert_eq!(by_id["traced"], Some(traceparent));
    assert_eq!(by_id["signed"], Some(format!("{traceparent}x").as_str()));
    assert_eq!(by_id["plain"], None);
    assert!(claimed.iter().all(|event| !event.replay));
    let record = store
        .get(&EventKey::new("pg", "traced"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.traceparent.as_deref(), Some(traceparent));
}

/// An attempt as (number, fence, outcome, error, replay).
type Summary<'a> = (u32, u64, Option<AttemptOutcome>, Option<&'a str>, bool);

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn history_records_fail_fail_succeed() {
    let Some(store) = TestInbox::new().await else {
        return;
    };
    let key = EventKey::new("pg", "flaky");
    store.insert(event("flaky", b"{}")).await.unwrap();
    for error in ["first failure", "second failure"] {
        let claimed = claim_one(&store, LONG).await;
        assert!(
            store
                .retry(&key, claimed.fence, Duration::ZERO, error)
                .await
                .unwrap()
        );
    }
    let claimed = claim_one(&store, LONG).await;
    assert_eq!(claimed.attempt, 3);
    let running = store.get(&key).await.unwrap().unwrap();
    assert_eq!(running.history.len(), 3);
    assert_eq!(running.history[2].outcome, None);
    assert_eq!(running.history[2].ended_at, None);
    assert!(store.complete(&key, claimed.fence).await.unwrap());
    // A stale exit changes nothing, in the history either.
    assert!(
        !store
            .kill(&key, FenceToken::new(claimed.fence.get() - 1), "zombie")
            .await
            .unwrap()
    );

    let record = store.get(&key).await.unwrap().unwrap();
    assert_eq!(record.status, EventStatus::Succeeded);
    let history: Vec<Summary<'_>> = record
        .history
        .iter()
        .map(|attempt| {
            (
                attempt.number,
                attempt.fence.get(),
                attempt.outcome,
                attempt.error.as_deref(),
                attempt.replay,
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            (
                1,
                1,
                Some(AttemptOutcome::Failed),
                Some("first failure"),
                false
            ),
            (
                2,
                2,
                Some(AttemptOutcome::Failed),
                Some("second failure"),
                false
            ),
            (3, 3, Some(AttemptOutcome::Succeeded), None, false),
        ]
    );
    for attempt in &record.history {
        let ended = attempt.ended_at.expect("an ended attempt has an end");
        assert!(ended >= attempt.started_at, "{attempt:?}");
    }
    // Listings leave the history out.
    let listed = store.list(ListFilter::new(10)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].history.is_empty());
}

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn the_history_keeps_the_most_recent_attempts_and_give_backs() {
    let Some(store) = TestInbox::new().await else {
        return;
    };
    let key = EventKey::new("pg", "long");
    store.insert(event("long", b"{}")).await.unwrap();
    let total = MAX_HISTORY + 5;
    for _ in 0..total {
        let claimed = claim_one(&store, LONG).await;
        // Given back, the attempt count does not grow: the budget is never spent.
        assert!(store.give_back(&key, claimed.fence).await.unwrap());
    }
    let record = store.get(&key).await.unwrap().unwrap();
    assert_eq!(record.history.len(), MAX_HISTORY);
    let fences: Vec<u64> = record
        .history
        .iter()
        .map(|attempt| attempt.fence.get())
        .collect();
    let expected: Vec<u64> = (total - MAX_HISTORY + 1..=total)
        .map(|f| f as u64)
        .collect();
    assert_eq!(fences, expected);
    assert!(
        record
            .history
            .iter()
            .all(|attempt| attempt.outcome == Some(AttemptOutcome::GivenBack))
    );
}

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn an_expired_lease_is_recorded_as_expired_even_when_it_kills() {
    let Some(store) = TestInbox::new().await else {
        return;
    };
    let key = EventKey::new("pg", "stalled");
    store.insert(event("stalled", b"{}")).await.unwrap();
    let first = claim_one(&store, Duration::ZERO).await;
    // The lease ran out at once: the next claim takes over.
    let second = claim_one(&store, LONG).await;
    assert_eq!(second.fence.get(), first.fence.get() + 1);
    assert_eq!(second.attempt, 2);
    assert!(!store.complete(&key, first.fence).await.unwrap());
    let record = store.get(&key).await.unwrap().unwrap();
    let outcomes: Vec<Option<AttemptOutcome>> = record
        .history
        .iter()
        .map(|attempt| attempt.outcome)
        .collect();
    assert_eq!(outcomes, [Some(AttemptOutcome::Expired), None]);
    assert!(record.history[0].ended_at.is_some());

    // With the budget spent, an expired lease kills the event and ends the
    // attempt `Expired` too.
    store.insert(event("poison", b"{}")).await.unwrap();
    let poison = EventKey::new("pg", "poison");
    let claimed = store
        .claim(ClaimOptions {
            limit: 1,
            lease: Duration::ZERO,
            max_attempts: 1,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].key, poison);
    let again = store
        .claim(ClaimOptions {
            limit: 10,
            lease: LONG,
            max_attempts: 1,
        })
        .await
        .unwrap();
    assert!(again.iter().all(|event| event.key != poison), "{again:?}");
    let record = store.get(&poison).await.unwrap().unwrap();
    assert_eq!(record.status, EventStatus::Dead);
    let outcomes: Vec<Option<AttemptOutcome>> = record
        .history
        .iter()
        .map(|attempt| attempt.outcome)
        .collect();
    assert_eq!(outcomes, [Some(AttemptOutcome::Expired)]);
}

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn a_succeeded_event_is_replayed_once_as_a_replay() {
    let Some(store) = TestInbox::new().await else {
        return;
    };
    let key = EventKey::new("pg", "done");
    store.insert(event("done", b"{\"a\":1}")).await.unwrap();
    // Not finished yet: nothing to replay.
    assert!(!store.replay(&key).await.unwrap());
    let claimed = claim_one(&store, LONG).await;
    assert!(!store.replay(&key).await.unwrap());
    assert!(store.complete(&key, claimed.fence).await.unwrap());
    assert!(!store.replay(&EventKey::new("pg", "unknown")).await.unwrap());

    assert!(store.replay(&key).await.unwrap());
    let record = store.get(&key).await.unwrap().unwrap();
    assert_eq!(record.status, EventStatus::Pending);
    assert_eq!(record.attempts, 0);
    let replayed = claim_one(&store, LONG).await;
    assert!(replayed.replay);
    assert_eq!(replayed.attempt, 1);
    assert_eq!(replayed.fence.get(), claimed.fence.get() + 1);
    assert_eq!(&replayed.body[..], b"{\"a\":1}");
    // The flag is consumed by that claim.
    assert!(store.give_back(&key, replayed.fence).await.unwrap());
    let after = claim_one(&store, LONG).await;
    assert!(!after.replay);
    assert!(store.complete(&key, after.fence).await.unwrap());
    let record = store.get(&key).await.unwrap().unwrap();
    let replays: Vec<(Option<AttemptOutcome>, bool)> = record
        .history
        .iter()
        .map(|attempt| (attempt.outcome, attempt.replay))
        .collect();
    assert_eq!(
        replays,
        [
            (Some(AttemptOutcome::Succeeded), false),
            (Some(AttemptOutcome::GivenBack), true),
            (Some(AttemptOutcome::Succeeded), false),
        ]
    );

    // Once its payload is purged, it cannot be replayed.
    let purged = store
        .purge(SystemTime::UNIX_EPOCH, SystemTime::now() + LONG)
        .await
        .unwrap();
    assert_eq!(purged.payloads, 1);
    assert!(!store.replay(&key).await.unwrap());
}

/// Inserts `count` events of `namespace` (ids `<prefix>-<n>`, arriving one
/// millisecond apart from `start`) and kills each with `error`.
async fn dead_events(
    store: &TestInbox,
    namespace: &str,
    prefix: &str,
    count: usize,
    start: SystemTime,
    error: &str,
) {
    let events: Vec<NewEvent> = (0..count)
        .map(|n| {
            let mut event = event(&format!("{prefix}-{n:05}"), b"{}");
            event.key.namespace = namespace.to_owned();
            event.received_at = start + Duration::from_millis(n as u64);
            event
        })
        .collect();
    let store_dyn: Arc<dyn InboxStore> = Arc::new(store.store.clone());
    for chunk in events.chunks(500) {
        let outcomes = insert_all(&store_dyn, chunk.to_vec()).await;
        assert!(outcomes.iter().all(|outcome| *outcome == Inserted::New));
    }
    let mut killed = 0;
    loop {
        let claimed = store
            .claim(ClaimOptions {
                limit: 500,
                lease: LONG,
                max_attempts: 5,
            })
            .await
            .unwrap();
        if claimed.is_empty() {
            break;
        }
        for event in claimed {
            assert!(store.kill(&event.key, event.fence, error).await.unwrap());
            killed += 1;
        }
    }
    assert_eq!(killed, count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn requeue_matching_1000_dead_events_by_namespace_and_error() {
    let Some(store) = TestInbox::new().await else {
        return;
    };
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    dead_events(
        &store,
        "stripe",
        "hit",
        1000,
        start,
        "upstream 503: try later",
    )
    .await;
    // Same namespace, another error; same error, another namespace.
    dead_events(&store, "stripe", "other", 20, start, "bad payload").await;
    dead_events(
        &store,
        "github",
        "hit",
        20,
        start,
        "upstream 503: try later",
    )
    .await;
    let selection = Selection::new(600)
        .namespace("stripe")
        .error_contains("503: try");
    // Oldest arrival first, at most the limit.
    assert_eq!(store.requeue_matching(&selection).await.unwrap(), 600);
    let pending = store
        .list(ListFilter::new(10_000).status(EventStatus::Pending))
        .await
        .unwrap();
    assert_eq!(pending.len(), 600);
    assert!(pending.iter().all(|record| record.key.namespace == "stripe"
        && record.key.event_id.starts_with("hit-")
        && record.key.event_id.as_str() < "hit-00600"
        && record.attempts == 0));
    let limit = Selection::new(10_000)
        .namespace("stripe")
        .error_contains("503: try");
    assert_eq!(store.requeue_matching(&limit).await.unwrap(), 400);
    assert_eq!(store.requeue_matching(&limit).await.unwrap(), 0);
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (1000, 40));
    assert_eq!(counts.oldest_pending, Some(start));

    // A time window: [start + 10 ms, start + 15 ms) of github's.
    let window = Selection::new(100).namespace("github").received_between(
        start + Duration::from_millis(10),
        start + Duration::from_millis(15),
    );
    assert_eq!(store.requeue_matching(&window).await.unwrap(), 5);
    // Nothing matches an error no event has; a zero limit changes nothing.
    assert_eq!(
        store
            .requeue_matching(&Selection::new(100).error_contains("no such error"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.requeue_matching(&Selection::new(0)).await.unwrap(), 0);
    // Replay: the 35 dead left are finished; pending ones are not.
    assert_eq!(
        store
            .replay_matching(&Selection::new(10_000))
            .await
            .unwrap(),
        35
    );
    let claimed = store
        .claim(ClaimOptions {
            limit: 2000,
            lease: LONG,
            max_attempts: 5,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1040);
    assert_eq!(claimed.iter().filter(|event| event.replay).count(), 35);
}

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn counts_follow_every_status() {
    let Some(store) = TestInbox::new().await else {
        return;
    };
    assert_eq!(store.counts().await.unwrap(), StatusCounts::default());
    let start = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    for n in 0..6u64 {
        let mut event = event(&format!("e{n}"), b"{}");
        event.received_at = start + Duration::from_secs(n);
        store.insert(event).await.unwrap();
    }
    // Claimed in due order: each was due when it was inserted.
    let claimed = store
        .claim(ClaimOptions {
            limit: 3,
            lease: LONG,
            max_attempts: 5,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(
        store
            .complete(&claimed[0].key, claimed[0].fence)
            .await
            .unwrap()
    );
    assert!(
        store
            .kill(&claimed[1].key, claimed[1].fence, "no")
            .await
            .unwrap()
    );
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (
            counts.pending,
            counts.processing,
            counts.succeeded,
            counts.dead
        ),
        (3, 1, 1, 1)
    );
    let oldest_pending = store
        .list(ListFilter::new(10).status(EventStatus::Pending))
        .await
        .unwrap()
        .iter()
        .map(|record| record.received_at)
        .min();
    assert_eq!(counts.oldest_pending, oldest_pending);
    assert_eq!(store.pending_count().await.unwrap(), counts.pending);
}

/// A table made by the previous version (no traceparent, no replay flag, no
/// attempts table) is brought up to date by `migrate`, its events kept.
#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn migrate_upgrades_a_table_of_the_previous_version() {
    let Some(url) = url() else {
        return;
    };
    let table = unique_table();
    let client = raw_client(&url).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE \"{table}\" (
                 namespace text NOT NULL, event_id text NOT NULL,
                 status text NOT NULL
                     CHECK (status IN ('pending', 'processing', 'succeeded', 'dead')),
                 body bytea, body_hash bytea NOT NULL, headers jsonb NOT NULL,
                 received_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
                 due_at timestamptz NOT NULL, attempts integer NOT NULL DEFAULT 0,
                 fence bigint NOT NULL DEFAULT 0, last_error text,
                 PRIMARY KEY (namespace, event_id));
             INSERT INTO \"{table}\" (namespace, event_id, status, body, body_hash, headers,
                                     received_at, updated_at, due_at, attempts, fence)
             VALUES ('pg', 'old', 'processing', '\\x7b7d', '\\x00', '[]', now(), now(),
                     now() - interval '1 minute', 1, 7)"
        ))
        .await
        .unwrap();
    let Some(store) = TestInbox::on(&table, true).await else {
        return;
    };
    // Twice: the second finds everything in place.
    store.store.migrate().await.unwrap();
    let key = EventKey::new("pg", "old");
    // The expired lease is taken over; the old attempt had no history row.
    let claimed = claim_one(&store, LONG).await;
    assert_eq!((claimed.attempt, claimed.fence.get()), (2, 8));
    assert_eq!(claimed.traceparent, None);
    assert!(!claimed.replay);
    assert!(store.complete(&key, claimed.fence).await.unwrap());
    let record = store.get(&key).await.unwrap().unwrap();
    let history: Vec<(u64, Option<AttemptOutcome>)> = record
        .history
        .iter()
        .map(|attempt| (attempt.fence.get(), attempt.outcome))
        .collect();
    assert_eq!(history, [(8, Some(AttemptOutcome::Succeeded))]);
}

/// Purging an event deletes its attempts.
#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn a_purged_event_takes_its_attempts_along() {
    let Some(store) = TestInbox::new().await else {
        return;
    };
    let mut old = event("old", b"{}");
    old.received_at = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    store.insert(old).await.unwrap();
    store.insert(event("kept", b"{}")).await.unwrap();
    for claimed in store.claim(options(LONG)).await.unwrap() {
        assert!(store.complete(&claimed.key, claimed.fence).await.unwrap());
    }
    let purged = store
        .purge(UNIX_EPOCH + Duration::from_secs(1_500_000_000), UNIX_EPOCH)
        .await
        .unwrap();
    assert_eq!(purged.events, 1);
    let client = raw_client(&store.url).await;
    let rows = client
        .query(
            &format!(
                "SELECT event_id FROM \"{}_attempts\" ORDER BY event_id",
                store.store.table()
            ),
            &[],
        )
        .await
        .unwrap();
    let ids: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(ids, ["kept"]);
}
