//! Claim + complete latency of each idempotency store, one call after the
//! other (no concurrency). Server-backed stores are skipped, with a notice,
//! unless `TOWER_WEBHOOKS_REDIS_URL` / `TOWER_WEBHOOKS_PG_URL` is set.
//!
//! ```text
//! TOWER_WEBHOOKS_PG_URL=postgres://postgres@127.0.0.1:5432/test \
//! TOWER_WEBHOOKS_REDIS_URL=redis://127.0.0.1:6379/ \
//! cargo bench --all-features --bench idempotency_stores
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower_webhooks::idempotency::{
    Claim, IdempotencyStore, MemoryStore, PostgresStore, RedisStore, SqliteStore,
};

const LEASE: Duration = Duration::from_secs(30);
/// Short, so Redis forgets the benchmark's keys soon after.
const RETENTION: Duration = Duration::from_secs(120);

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|value| !value.is_empty())
}

fn claim_and_complete<S: IdempotencyStore>(
    c: &mut Criterion,
    runtime: &Runtime,
    name: &str,
    store: &S,
) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let run = std::process::id();
    c.bench_function(&format!("claim+complete/{name}"), |b| {
        b.to_async(runtime).iter(|| async {
            let key = format!("bench:{run}:{}", NEXT.fetch_add(1, Ordering::Relaxed));
            let Claim::Acquired(token) = store.claim(&key, b"fingerprint", LEASE).await.unwrap()
            else {
                panic!("fresh key {key} not acquired");
            };
            black_box(store.complete(&key, token, RETENTION).await.unwrap());
        });
    });
}

fn stores(c: &mut Criterion) {
    let runtime = Runtime::new().expect("tokio runtime");

    claim_and_complete(c, &runtime, "memory", &MemoryStore::new());

    let path = std::env::temp_dir().join(format!("tower-webhooks-bench-{}.db", std::process::id()));
    let sqlite = runtime
        .block_on(SqliteStore::open(&path))
        .expect("open SQLite");
    claim_and_complete(c, &runtime, "sqlite", &sqlite);
    drop(sqlite);
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }

    match env("TOWER_WEBHOOKS_REDIS_URL") {
        Some(url) => {
            let redis = runtime
                .block_on(
                    RedisStore::builder()
                        .key_prefix("tower-webhooks-bench:")
                        .connect(&url),
                )
                .expect("connect to Redis");
            claim_and_complete(c, &runtime, "redis", &redis);
        }
        None => eprintln!("skipping redis: set TOWER_WEBHOOKS_REDIS_URL to bench it"),
    }

    match env("TOWER_WEBHOOKS_PG_URL") {
        Some(url) => {
            let table = format!("tw_bench_{}", std::process::id());
            let postgres = PostgresStore::builder()
                .table(&table)
                .connect(&url)
                .expect("PostgreSQL URL");
            runtime.block_on(postgres.migrate()).expect("migrate");
            claim_and_complete(c, &runtime, "postgres", &postgres);
            runtime.block_on(async {
                let client = postgres.pool().get().await.expect("connection");
                client
                    .batch_execute(&format!(
                        "DROP TABLE \"{table}\"; DROP SEQUENCE \"{table}_fence\";"
                    ))
                    .await
                    .expect("drop the bench table");
            });
        }
        None => eprintln!("skipping postgres: set TOWER_WEBHOOKS_PG_URL to bench it"),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = stores
}
criterion_main!(benches);
