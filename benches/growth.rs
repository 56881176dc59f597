//! Claim + complete latency of each idempotency store when it holds 10
//! thousand keys, and when it holds 10 million (issue 17: "claim + complete
//! latency at 10 million keys / at 10 thousand keys", target <= 2x).
//!
//! For each store (memory; SQLite on a temporary file; Redis under a fresh
//! key prefix when `TOWER_WEBHOOKS_REDIS_URL` is set; PostgreSQL on a fresh
//! table when `TOWER_WEBHOOKS_PG_URL` is set), the bench fills the store to
//! 10,000 completed keys, measures, fills it on to `N` keys (default
//! 10,000,000; `TOWER_WEBHOOKS_BENCH_GROWTH_KEYS` for a quicker run) and
//! measures again. The fill is bulk: a recursive CTE on SQLite,
//! `generate_series` on PostgreSQL, pipelines of 10,000 `SET .. PX` on Redis
//! (the memory store has no bulk path: claim + complete in a loop). Filled
//! keys are completed with a day of retention, so nothing expires during a
//! run.
//!
//! A measurement is up to 2,000 claim + complete pairs of fresh keys, one
//! after the other, for at most 10 s; it prints the mean, p50 and p99 of a
//! pair, and the ratio of the means. Afterwards the file, the prefix's keys
//! (`SCAN` + `UNLINK`; they also carry a TTL) or the table are removed.
//!
//! ```text
//! TOWER_WEBHOOKS_PG_URL=postgres://postgres@127.0.0.1:5432/test \
//! TOWER_WEBHOOKS_REDIS_URL=redis://127.0.0.1:6379/ \
//!   cargo bench --bench growth
//! TOWER_WEBHOOKS_BENCH_GROWTH_KEYS=1000000 cargo bench --bench growth   # a quick run
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tower_webhooks::idempotency::{
    Claim, IdempotencyStore, MemoryStore, PostgresStore, RedisStore, SqliteStore,
};

const SMALL: u64 = 10_000;
const PAIRS: usize = 2_000;
const MEASURE_FOR: Duration = Duration::from_secs(10);
const LEASE: Duration = Duration::from_secs(30);
const RETENTION: Duration = Duration::from_secs(86_400);
const DAY_MS: i64 = 86_400_000;

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|value| !value.is_empty())
}

fn large() -> u64 {
    env("TOWER_WEBHOOKS_BENCH_GROWTH_KEYS")
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000_000)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Latencies of claim + complete pairs of fresh keys, sorted.
async fn measure(store: &dyn IdempotencyStore) -> Vec<Duration> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let run = std::process::id();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(PAIRS);
    while latencies.len() < PAIRS && started.elapsed() < MEASURE_FOR {
        let key = format!("bench:{run}:{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let pair = Instant::now();
        let Claim::Acquired(token) = store.claim(&key, b"fingerprint", LEASE).await.unwrap() else {
            panic!("fresh key {key} not acquired");
        };
        assert!(store.complete(&key, token, RETENTION).await.unwrap());
        latencies.push(pair.elapsed());
    }
    latencies.sort();
    latencies
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn mean(sorted: &[Duration]) -> Duration {
    sorted.iter().sum::<Duration>() / sorted.len() as u32
}

fn summary(sorted: &[Duration]) -> String {
    format!(
        "{} pairs, mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
        sorted.len(),
        mean(sorted).as_secs_f64() * 1e6,
        quantile(sorted, 0.5).as_secs_f64() * 1e6,
        quantile(sorted, 0.99).as_secs_f64() * 1e6,
    )
}

/// Fills `store` from `from` to `to` keys with `fill`, measuring at each.
async fn grow<F, Fut>(name: &str, store: &dyn IdempotencyStore, mut fill: F)
where
    F: FnMut(u64, u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let large = large();
    let started = Instant::now();
    fill(0, SMALL).await;
    println!(
        "growth/{name}: filled {SMALL} keys in {:.1?}",
        started.elapsed()
    );
    let small = measure(store).await;
    println!("growth/{name}: at {SMALL} keys: {}", summary(&small));
    let started = Instant::now();
    fill(SMALL, large).await;
    println!(
        "growth/{name}: filled to {large} keys in {:.1?}",
        started.elapsed()
    );
    let big = measure(store).await;
    println!("growth/{name}: at {large} keys: {}", summary(&big));
    println!(
        "growth/{name}: claim+complete mean at {large} / at {SMALL} keys = {:.2}x (p50 {:.2}x; target <= 2x)",
        mean(&big).as_secs_f64() / mean(&small).as_secs_f64(),
        quantile(&big, 0.5).as_secs_f64() / quantile(&small, 0.5).as_secs_f64(),
    );
}

async fn memory() {
    let store = MemoryStore::new();
    grow("memory", &store, |from, to| {
        let store = &store;
        async move {
            for i in from..to {
                let key = format!("fill:{i}");
                let Claim::Acquired(token) = store.claim(&key, b"f", LEASE).await.unwrap() else {
                    panic!("fill key {key} not acquired");
                };
                store.complete(&key, token, RETENTION).await.unwrap();
            }
        }
    })
    .await;
}

async fn sqlite() {
    let dir = std::env::temp_dir().join(format!(
        "tower-webhooks-growth-bench-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("idempotency.db");
    let store = SqliteStore::open(&path).await.expect("open SQLite");
    let table = store.table().to_owned();
    grow("sqlite", &store, |from, to| {
        let (path, table) = (path.clone(), table.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let connection = rusqlite::Connection::open(&path).unwrap();
                connection.busy_timeout(Duration::from_secs(30)).unwrap();
                connection
                    .execute(
                        &format!(
                            "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2)
                             INSERT INTO \"{table}\" (key, state, fingerprint, until_ms)
                             SELECT 'fill:' || i, 1, x'66', ?3 FROM n"
                        ),
                        rusqlite::params![from, to, now_ms() + DAY_MS],
                    )
                    .expect("fill");
            })
            .await
            .unwrap();
        }
    })
    .await;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn redis(url: &str) {
    let prefix = format!("tw-growth-bench:{}:", std::process::id());
    let store = RedisStore::builder()
        .key_prefix(&prefix)
        .connect(url)
        .await
        .expect("connect Redis");
    let client = redis::Client::open(url).expect("Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect Redis");
    // A completed claim as the store writes it: `c`, a 16-hex-digit token,
    // the fingerprint.
    let value = b"c0000000000000001f".to_vec();
    grow("redis", &store, |from, to| {
        let (mut connection, prefix, value) = (connection.clone(), prefix.clone(), value.clone());
        async move {
            let mut i = from;
            while i < to {
                let end = (i + 10_000).min(to);
                let mut pipe = redis::pipe();
                for k in i..end {
                    pipe.cmd("SET")
                        .arg(format!("{prefix}fill:{k}"))
                        .arg(&value)
                        .arg("PX")
                        .arg(RETENTION.as_millis() as u64)
                        .ignore();
                }
                pipe.query_async::<()>(&mut connection).await.expect("fill");
                i = end;
            }
        }
    })
    .await;
    // Clean up: every key under the prefix.
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut connection)
            .await
            .expect("scan");
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(keys)
                .query_async::<()>(&mut connection)
                .await
                .expect("unlink");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

async fn postgres(url: &str) {
    let table = format!("tw_growth_bench_{}", std::process::id());
    let store = PostgresStore::builder()
        .table(&table)
        .connect(url)
        .expect("PostgreSQL URL");
    store.migrate().await.expect("migrate");
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let client = &client;
    let table_ref = &table;
    grow("postgres", &store, |from, to| async move {
        client
            .execute(
                &format!(
                    "INSERT INTO \"{table_ref}\" (key, state, fence, fingerprint, until)
                     SELECT 'fill:' || i, 'completed', nextval('\"{table_ref}_fence\"'), '\\x66',
                            now() + interval '1 day'
                     FROM generate_series($1::bigint, $2::bigint - 1) AS i"
                ),
                &[&(from as i64), &(to as i64)],
            )
            .await
            .expect("fill");
        client
            .batch_execute(&format!("ANALYZE \"{table_ref}\""))
            .await
            .unwrap();
    })
    .await;
    client
        .batch_execute(&format!(
            "DROP TABLE \"{table}\"; DROP SEQUENCE IF EXISTS \"{table}_fence\""
        ))
        .await
        .expect("drop the bench table");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        memory().await;
        sqlite().await;
        match env("TOWER_WEBHOOKS_REDIS_URL") {
            Some(url) => redis(&url).await,
            None => eprintln!("growth/redis: skipped (set TOWER_WEBHOOKS_REDIS_URL to run it)"),
        }
        match env("TOWER_WEBHOOKS_PG_URL") {
            Some(url) => postgres(&url).await,
            None => eprintln!("growth/postgres: skipped (set TOWER_WEBHOOKS_PG_URL to run it)"),
        }
    });
}
