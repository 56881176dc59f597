//! Retention that runs itself: the inbox purger on memory, SQLite and
//! PostgreSQL (finished events and their signature records go, pending and
//! processing ones stay, payloads go sooner than keys), the idempotency
//! purger, and the inbox depth gauges. PostgreSQL tests need
//! `TOWER_WEBHOOKS_PG_URL`; without it they are reported as ignored.
#![cfg(all(feature = "sqlite", feature = "postgres", feature = "metrics"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tower_webhooks::backend::FenceToken;

use bytes::Bytes;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower_webhooks::idempotency::{
    Claim, IdempotencyStore, MemoryStore, PostgresStore, SqliteStore, spawn_purger,
};
use tower_webhooks::inbox::{
    ClaimOptions, ClaimedEvent, EventKey, EventRecord, Inbox, InboxStore, Inserted, ListFilter,
    MemoryInbox, NewEvent, PostgresInbox, Purged, Retention, SignatureRecord, SqliteInbox,
    StoreError,
};
use tower_webhooks::metrics::{INBOX_EVENTS, INBOX_OLDEST_PENDING_AGE_SECONDS};

const HOUR: Duration = Duration::from_secs(3600);
const NAMESPACE: &str = "ret";

fn pg_url() -> Option<String> {
    std::env::var("TOWER_WEBHOOKS_PG_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// A name no other test (in this process or another) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros());
    format!(
        "{prefix}_{}_{}_{micros}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn temp_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tower-webhooks-retention-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.db", unique(name)));
    let _ = std::fs::remove_file(&path);
    path
}

fn key(id: &str) -> EventKey {
    EventKey::new(NAMESPACE, id)
}

fn event(id: &str, age: Duration, signature: Option<(&str, Option<Duration>)>) -> NewEvent {
    NewEvent {
        key: key(id),
        body: Bytes::from(format!("{{\"id\":\"{id}\"}}")),
        headers: Vec::new(),
        received_at: SystemTime::now() - age,
        signature: signature.map(|(signature, keep)| SignatureRecord {
            signature: Bytes::copy_from_slice(signature.as_bytes()),
            keep,
        }),
        traceparent: None,
        lane: None,
    }
}

/// Fills `store` with events of every status and age, as the purger finds
/// them in production.
///
/// | id | arrived | status | signature record |
/// |---|---|---|---|
/// | `old-ok-0..5` | 2 h ago | succeeded | `sig-old-ok-i`, kept with the event |
/// | `old-dead` | 2 h ago | dead | |
/// | `old-pending` | 2 h ago | pending | `sig-old-pending`, kept with the event |
/// | `old-processing` | 2 h ago | processing | |
/// | `mid-ok` | 30 min ago | succeeded | |
/// | `new-ok` | now | succeeded | `sig-new-ok`, kept with the event |
/// | `windowed` | now | succeeded | `sig-windowed`, a 1 ms window |
/// | `long-window` | now | succeeded | `sig-long`, a 1 h window |
async fn fill(store: &dyn InboxStore) {
    let insert = |event: NewEvent| async move {
        assert_eq!(store.insert(event).await.unwrap(), Inserted::New);
    };
    for i in 0..5 {
        let signature = format!("sig-old-ok-{i}");
        insert(event(
            &format!("old-ok-{i}"),
            2 * HOUR,
            Some((&signature, None)),
        ))
        .await;
    }
    insert(event("old-dead", 2 * HOUR, None)).await;
    insert(event("mid-ok", HOUR / 2, None)).await;
    insert(event("new-ok", Duration::ZERO, Some(("sig-new-ok", None)))).await;
    insert(event(
        "windowed",
        Duration::ZERO,
        Some(("sig-windowed", Some(Duration::from_millis(1)))),
    ))
    .await;
    insert(event(
        "long-window",
        Duration::ZERO,
        Some(("sig-long", Some(HOUR))),
    ))
    .await;
    let options = ClaimOptions {
        limit: 100,
        lease: HOUR,
        max_attempts: 5,
    };
    let claimed = store.claim(options).await.unwrap();
    assert_eq!(claimed.len(), 10);
    for claimed in claimed {
        let done = if claimed.key.event_id == "old-dead" {
            store.kill(&claimed.key, claimed.fence, "permanent").await
        } else {
            store.complete(&claimed.key, claimed.fence).await
        };
        assert!(done.unwrap(), "{}", claimed.key);
    }
    insert(event("old-processing", 2 * HOUR, None)).await;
    let claimed = store.claim(options).await.unwrap();
    assert_eq!(claimed.len(), 1);
    insert(event(
        "old-pending",
        2 * HOUR,
        Some(("sig-old-pending", None)),
    ))
    .await;
}

/// Events older than 1 h go, payloads older than 10 min go; small steps so
/// a pass takes several.
fn retention() -> Retention {
    Retention::new()
        .events(HOUR)
        .payloads(HOUR / 6)
        .every(Duration::from_millis(50))
        .batch(2)
        .pause(Duration::from_millis(1))
}

/// Whether the purger has done everything it should have.
async fn purged(store: &dyn InboxStore) -> bool {
    let mid = store.get(&key("mid-ok")).await.unwrap();
    store.get(&key("old-ok-4")).await.unwrap().is_none()
        && store.get(&key("old-dead")).await.unwrap().is_none()
        && mid.is_some_and(|record| record.body.is_none())
}

/// Runs a purger over the filled `store` until it has done its work (or 30 s
/// passed), then checks what is left.
async fn purger_keeps_what_it_must(store: Arc<dyn InboxStore>) {
    fill(&*store).await;
    let inbox = Inbox::from_shared(store.clone());
    let purger = inbox.spawn_purger(retention());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !purged(&*store).await && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the windowed record's purge (same pass) complete too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    purger.shutdown().await;

    for i in 0..5 {
        assert!(
            store
                .get(&key(&format!("old-ok-{i}")))
                .await
                .unwrap()
                .is_none(),
            "old succeeded event {i} kept"
        );
    }
    assert!(
        store.get(&key("old-dead")).await.unwrap().is_none(),
        "old dead event kept"
    );
    let pending = store.get(&key("old-pending")).await.unwrap();
    assert!(
        pending.is_some_and(|record| record.body.is_some()),
        "a pending event was purged"
    );
    let processing = store.get(&key("old-processing")).await.unwrap();
    assert!(
        processing.is_some_and(|record| record.body.is_some()),
        "a processing event was purged"
    );
    let mid = store.get(&key("mid-ok")).await.unwrap().expect("key kept");
    assert_eq!(mid.body, None, "payload kept past its retention");
    let new = store.get(&key("new-ok")).await.unwrap().expect("new kept");
    assert!(new.body.is_some(), "a fresh payload was dropped");

    // The replay guard still holds for the events kept: the signature of
    // the pending event under another id is a replay.
    let replay = event("other-id", Duration::ZERO, Some(("sig-old-pending", None)));
    assert_eq!(store.insert(replay).await.unwrap(), Inserted::Replayed);
    let replay = event("other-id-2", Duration::ZERO, Some(("sig-long", None)));
    assert_eq!(store.insert(replay).await.unwrap(), Inserted::Replayed);
}

#[tokio::test]
async fn memory_purger_removes_finished_events_and_keeps_pending_ones() {
    purger_keeps_what_it_must(Arc::new(MemoryInbox::new())).await;
}

/// The signature records of the SQLite inbox at `path`, by signature.
fn sqlite_signatures(path: &std::path::Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut statement = connection
        .prepare("SELECT signature FROM webhook_inbox_signatures ORDER BY signature")
        .unwrap();
    statement
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|signature| String::from_utf8(signature.unwrap()).unwrap())
        .collect()
}

/// The signature records left: those of the events kept and the live
/// windowed one (plus `other-id`'s refused attempts, which wrote nothing).
fn expected_signatures() -> Vec<String> {
    ["sig-long", "sig-new-ok", "sig-old-pending"]
        .map(str::to_owned)
        .to_vec()
}

#[tokio::test]
async fn sqlite_purger_removes_finished_events_and_their_signature_records() {
    let path = temp_file("inbox");
    let store = SqliteInbox::open(&path).await.unwrap();
    purger_keeps_what_it_must(Arc::new(store)).await;
    assert_eq!(sqlite_signatures(&path), expected_signatures());
    let attempts: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM webhook_inbox_attempts WHERE event_id LIKE 'old-ok-%'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(attempts, 0, "the attempts of purged events were kept");
}

async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn postgres_purger_removes_finished_events_and_their_signature_records() {
    let Some(url) = pg_url() else {
        eprintln!("skipped: set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL");
        return;
    };
    let table = unique("tw_retention");
    let store = PostgresInbox::builder()
        .table(&table)
        .connect(&url)
        .unwrap();
    store.migrate().await.unwrap();
    purger_keeps_what_it_must(Arc::new(store)).await;
    let client = pg_client(&url).await;
    let signatures: Vec<String> = client
        .query(
            &format!("SELECT signature FROM \"{table}_signatures\" ORDER BY signature"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| String::from_utf8(row.get::<_, Vec<u8>>(0)).unwrap())
        .collect();
    let attempts: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM \"{table}_attempts\" WHERE event_id LIKE 'old-ok-%'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!(
            "DROP TABLE \"{table}\", \"{table}_signatures\", \"{table}_attempts\""
        ))
        .await
        .unwrap();
    assert_eq!(signatures, expected_signatures());
    assert_eq!(attempts, 0, "the attempts of purged events were kept");
}

/// A purge of more rows than one step deletes runs in several steps and
/// reports every row.
#[tokio::test]
async fn a_direct_purge_takes_as_many_steps_as_it_needs() {
    let path = temp_file("steps");
    let store = SqliteInbox::open(&path).await.unwrap();
    for i in 0..2_500 {
        store
            .insert(event(&format!("e{i}"), 2 * HOUR, None))
            .await
            .unwrap();
    }
    let options = ClaimOptions {
        limit: 10_000,
        lease: HOUR,
        max_attempts: 5,
    };
    for claimed in store.claim(options).await.unwrap() {
        store.complete(&claimed.key, claimed.fence).await.unwrap();
    }
    let cutoff = SystemTime::now() - HOUR;
    let step = store.purge_batch(cutoff, cutoff, 1_000).await.unwrap();
    assert_eq!(step.purged.events, 1_000);
    assert!(step.more);
    let rest = store.purge(cutoff, cutoff).await.unwrap();
    assert_eq!(rest.events, 1_500);
    assert_eq!(store.counts().await.unwrap().succeeded, 0);
}

/// Claims `key` and completes it with a retention of 1 ms: expired at once.
async fn expired_claim(store: &dyn IdempotencyStore, key: &str) {
    let Claim::Acquired(token) = store.claim(key, b"f", HOUR).await.unwrap() else {
        panic!("{key} not acquired");
    };
    assert!(
        store
            .complete(key, token, Duration::from_millis(1))
            .await
            .unwrap()
    );
}

/// Fills `store` with 1,500 expired claims and one live one, runs the
/// purger until `count` (the rows or entries held) reaches 1 (or 30 s
/// passed), and returns it.
async fn idempotency_purger_leaves_live_claims<S, F, Fut>(store: Arc<S>, count: F) -> u64
where
    S: IdempotencyStore,
    F: Fn() -> Fut,
    Fut: Future<Output = u64>,
{
    for i in 0..1_500 {
        expired_claim(&*store, &format!("ret:expired-{i}")).await;
    }
    assert!(matches!(
        store.claim("ret:live", b"f", HOUR).await.unwrap(),
        Claim::Acquired(_)
    ));
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Claims sweep a few expired rows as they go (SQLite, memory), never
    // all of them.
    assert!(count().await > 1, "nothing left for the purger");
    let purger = spawn_purger(store.clone(), Duration::from_millis(50));
    let deadline = Instant::now() + Duration::from_secs(30);
    while count().await > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    purger.shutdown().await;
    // The live claim is untouched: a second claim finds it in flight.
    assert!(matches!(
        store.claim("ret:live", b"f", HOUR).await.unwrap(),
        Claim::InFlight { .. }
    ));
    count().await
}

#[tokio::test]
async fn sqlite_idempotency_purger_deletes_expired_claims_only() {
    let path = temp_file("idem");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let table = store.table().to_owned();
    let count = || {
        let (path, table) = (path.clone(), table.clone());
        async move {
            let connection = rusqlite::Connection::open(&path).unwrap();
            connection
                .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |row| {
                    row.get::<_, i64>(0)
                })
                .unwrap()
                .unsigned_abs()
        }
    };
    assert_eq!(idempotency_purger_leaves_live_claims(store, count).await, 1);
}

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn postgres_idempotency_purger_deletes_expired_claims_only() {
    let Some(url) = pg_url() else {
        eprintln!("skipped: set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL");
        return;
    };
    let table = unique("tw_retention_idem");
    let store = Arc::new(
        PostgresStore::builder()
            .table(&table)
            .connect(&url)
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let client = Arc::new(pg_client(&url).await);
    let count = || {
        let (client, table) = (client.clone(), table.clone());
        async move {
            client
                .query_one(&format!("SELECT count(*) FROM \"{table}\""), &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
                .unsigned_abs()
        }
    };
    let left = idempotency_purger_leaves_live_claims(store, count).await;
    client
        .batch_execute(&format!("DROP TABLE \"{table}\" CASCADE"))
        .await
        .unwrap();
    assert_eq!(left, 1);
}

#[tokio::test]
async fn memory_idempotency_purge_sweeps_every_shard() {
    let store = Arc::new(MemoryStore::new());
    let len = || {
        let store = store.clone();
        async move { store.len() as u64 }
    };
    assert_eq!(
        idempotency_purger_leaves_live_claims(store.clone(), len).await,
        1
    );
}

/// Gauge values by (name, status label).
fn gauges(recorder: &DebuggingRecorder) -> Vec<(String, Option<String>, f64)> {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let DebugValue::Gauge(value) = value else {
                return None;
            };
            let status = key
                .key()
                .labels()
                .find(|label| label.key() == "status")
                .map(|label| label.value().to_owned());
            Some((key.key().name().to_owned(), status, value.into_inner()))
        })
        .collect()
}

#[test]
fn depth_gauges_are_sampled_from_the_store() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = Arc::new(MemoryInbox::new());
            // 2 succeeded, 1 dead, 1 processing, 3 pending (the oldest
            // arrived 100 s ago).
            for id in ["s1", "s2", "d1", "p1"] {
                store.insert(event(id, Duration::ZERO, None)).await.unwrap();
            }
            let options = ClaimOptions {
                limit: 10,
                lease: HOUR,
                max_attempts: 5,
            };
            for claimed in store.claim(options).await.unwrap() {
                match claimed.key.event_id.as_str() {
                    "d1" => assert!(store.kill(&claimed.key, claimed.fence, "x").await.unwrap()),
                    "p1" => {}
                    _ => assert!(store.complete(&claimed.key, claimed.fence).await.unwrap()),
                }
            }
            for (id, age) in [("q1", 100), ("q2", 10), ("q3", 0)] {
                let event = event(id, Duration::from_secs(age), None);
                store.insert(event).await.unwrap();
            }
            let inbox = Inbox::from_shared(store);
            let sampler = inbox.spawn_gauges(Duration::from_millis(20));
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut seen = Vec::new();
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
                seen = gauges(&recorder);
                if seen.len() == 5 {
                    break;
                }
            }
            sampler.shutdown().await;
            let value = |name: &str, status: Option<&str>| {
                seen.iter()
                    .find(|(n, s, _)| n == name && s.as_deref() == status)
                    .map(|(_, _, value)| *value)
                    .unwrap_or_else(|| panic!("{name} {status:?} not recorded: {seen:?}"))
            };
            assert_eq!(value(INBOX_EVENTS, Some("pending")), 3.0);
            assert_eq!(value(INBOX_EVENTS, Some("processing")), 1.0);
            assert_eq!(value(INBOX_EVENTS, Some("succeeded")), 2.0);
            assert_eq!(value(INBOX_EVENTS, Some("dead")), 1.0);
            let age = value(INBOX_OLDEST_PENDING_AGE_SECONDS, None);
            assert!((100.0..200.0).contains(&age), "oldest pending age {age}");
        });
    });
}

/// An inbox whose purge fails every other step and panics in between;
/// everything else is a memory inbox.
#[derive(Debug, Default)]
struct FailingPurge {
    inner: MemoryInbox,
    calls: AtomicU64,
}

#[async_trait::async_trait]
impl InboxStore for FailingPurge {
    fn is_durable(&self) -> bool {
        false
    }
    async fn insert(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        self.inner.insert(event).await
    }
    async fn claim(&self, options: ClaimOptions) -> Result<Vec<ClaimedEvent>, StoreError> {
        self.inner.claim(options).await
    }
    async fn heartbeat(
        &self,
        key: &EventKey,
        fence: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.heartbeat(key, fence, lease).await
    }
    async fn complete(&self, key: &EventKey, fence: FenceToken) -> Result<bool, StoreError> {
        self.inner.complete(key, fence).await
    }
    async fn retry(
        &self,
        key: &EventKey,
        fence: FenceToken,
        delay: Duration,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.inner.retry(key, fence, delay, error).await
    }
    async fn kill(
        &self,
        key: &EventKey,
        fence: FenceToken,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.inner.kill(key, fence, error).await
    }
    async fn give_back(&self, key: &EventKey, fence: FenceToken) -> Result<bool, StoreError> {
        self.inner.give_back(key, fence).await
    }
    async fn requeue(&self, key: &EventKey) -> Result<bool, StoreError> {
        self.inner.requeue(key).await
    }
    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(&self, filter: ListFilter) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.list(filter).await
    }
    async fn pending_count(&self) -> Result<u64, StoreError> {
        self.inner.pending_count().await
    }
    async fn purge(&self, _: SystemTime, _: SystemTime) -> Result<Purged, StoreError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        assert!(call.is_multiple_of(2), "a store that panics");
        Err(StoreError::unavailable("the database is down"))
    }
}

/// A purge that fails or panics is tried again at the next tick; the task
/// keeps running until it is stopped.
#[tokio::test]
async fn a_failing_or_panicking_purge_is_retried_at_the_next_tick() {
    let store = Arc::new(FailingPurge::default());
    let inbox = Inbox::from_shared(store.clone());
    let purger = inbox.spawn_purger(Retention::new().every(Duration::from_millis(10)));
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.calls.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(store.calls.load(Ordering::SeqCst) >= 4, "not retried");
    assert!(!purger.is_finished(), "the purger stopped on its own");
    purger.shutdown().await;
}
