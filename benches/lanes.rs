//! Claim latency with ordered lanes against unordered events: 100,000
//! pending events in 10,000 lanes (10 each, recorded interleaved) against
//! 100,000 pending unordered events, on each inbox backend.
//!
//! Each iteration claims up to 8 events (a worker's default concurrency) and
//! only the claim is timed; the events are then given back (untimed), so the
//! store stays at 100,000 pending events. Backends:
//!
//! - `memory`: [`MemoryInbox`];
//! - `sqlite`: [`SqliteInbox`] on a temporary file;
//! - `postgres`: [`PostgresInbox`] on fresh tables (dropped afterwards), only
//!   when `TOWER_WEBHOOKS_PG_URL` is set (skipped with a notice otherwise).
//!
//! ```text
//! TOWER_WEBHOOKS_PG_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench lanes
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower_webhooks::inbox::{
    ClaimOptions, EventKey, InboxStore, Inserted, MemoryInbox, NewEvent, PostgresInbox,
    SqliteInbox, StoreError,
};

const PENDING: usize = 100_000;
const LANES: usize = 10_000;

fn event(i: usize, lanes: bool) -> NewEvent {
    NewEvent {
        key: EventKey::new("bench", format!("evt_{i}")),
        body: Bytes::from_static(br#"{"type":"invoice.paid"}"#),
        headers: Vec::new(),
        received_at: SystemTime::now(),
        signature: None,
        traceparent: None,
        lane: lanes.then(|| format!("lane-{}", i % LANES)),
    }
}

/// Records the 100,000 events, 250 inserts in flight at a time.
async fn fill(store: &Arc<dyn InboxStore>, lanes: bool) {
    for chunk in (0..PENDING).collect::<Vec<_>>().chunks(250) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let store = store.clone();
                tokio::spawn(async move {
                    loop {
                        match store.insert(event(i, lanes)).await {
                            Err(StoreError::Overloaded) => {
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                            outcome => break outcome,
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().expect("insert"), Inserted::New);
        }
    }
}

fn claim(c: &mut Criterion, runtime: &Runtime, name: &str, store: Arc<dyn InboxStore>) {
    let options = ClaimOptions {
        limit: 8,
        lease: Duration::from_secs(300),
        max_attempts: 1_000_000,
    };
    let mut group = c.benchmark_group("inbox_claim/100k_pending");
    group.bench_function(name, |b| {
        b.to_async(runtime).iter_custom(|iterations| {
            let store = store.clone();
            async move {
                let mut timed = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    let claimed = store.claim(options).await.expect("claim");
                    timed += started.elapsed();
                    assert_eq!(claimed.len(), 8);
                    for event in claimed {
                        assert!(
                            store
                                .give_back(&event.key, event.fence)
                                .await
                                .expect("give back")
                        );
                    }
                }
                timed
            }
        });
    });
    group.finish();
}

fn both(
    c: &mut Criterion,
    runtime: &Runtime,
    backend: &str,
    make: &dyn Fn(&str) -> Arc<dyn InboxStore>,
) {
    for (mode, lanes) in [("unordered", false), ("10k_lanes", true)] {
        let store = make(mode);
        runtime.block_on(fill(&store, lanes));
        claim(c, runtime, &format!("{backend}/{mode}"), store);
    }
}

fn lanes(c: &mut Criterion) {
    let runtime = Runtime::new().expect("tokio runtime");

    both(c, &runtime, "memory", &|_| Arc::new(MemoryInbox::new()));

    let dir =
        std::env::temp_dir().join(format!("tower-webhooks-lanes-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    both(c, &runtime, "sqlite", &|mode| {
        let path = dir.join(format!("{mode}.db"));
        Arc::new(
            runtime
                .block_on(SqliteInbox::open(path))
                .expect("open SQLite"),
        )
    });
    let _ = std::fs::remove_dir_all(&dir);

    match std::env::var("TOWER_WEBHOOKS_PG_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        Some(url) => {
            for (mode, lanes) in [("unordered", false), ("10k_lanes", true)] {
                let table = format!("tw_lanes_bench_{mode}_{}", std::process::id());
                let store = PostgresInbox::builder()
                    .table(&table)
                    // The fill sends 250 inserts at a time; a batch of laned
                    // inserts may take longer than the default 2 s.
                    .timeout(Duration::from_secs(20))
                    .connect(&url)
                    .expect("PostgreSQL URL");
                let shared: Arc<dyn InboxStore> = Arc::new(store.clone());
                runtime.block_on(async {
                    store.migrate().await.expect("migrate");
                    fill(&shared, lanes).await;
                    // What autovacuum would do after such a fill, done now.
                    let client = store.pool().get().await.expect("connection");
                    client
                        .batch_execute(&format!("ANALYZE \"{table}\""))
                        .await
                        .expect("analyze");
                });
                claim(c, &runtime, &format!("postgres/{mode}"), shared);
                runtime.block_on(async {
                    let client = store.pool().get().await.expect("connection");
                    let _ = client
                        .batch_execute(&format!(
                            "DROP TABLE IF EXISTS \"{table}\", \"{table}_signatures\", \"{table}_attempts\";
                             DROP SEQUENCE IF EXISTS \"{table}_lane_seq\""
                        ))
                        .await;
                });
            }
        }
        None => eprintln!("inbox_claim/postgres: skipped (set TOWER_WEBHOOKS_PG_URL to run it)"),
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = lanes
}
criterion_main!(benches);
