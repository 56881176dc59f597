//! Accept latency while the purger removes a million finished events, against
//! the same store with no purge running (issue 17: "accept p99 while a purge
//! removes 1 million finished events / without", target <= 2x).
//!
//! For each backend (SQLite on a temporary file; PostgreSQL on a fresh table
//! when `TOWER_WEBHOOKS_PG_URL` is set), the bench:
//!
//! 1. fills the inbox with `N` finished events (`succeeded`, 512-byte
//!    bodies, one attempt each) that arrived 60 days ago, with one bulk SQL
//!    statement (a recursive CTE on SQLite, `generate_series` on PostgreSQL);
//! 2. **without**: runs signed 1 KiB accepts through `WebhookLayer` + the
//!    inbox's accept service from 16 concurrent clients for 10 s and records
//!    each one's latency;
//! 3. **with**: starts [`Inbox::spawn_purger`] with the default retention
//!    (30 days: every filled event is due) and steps (1,000 rows, 10 ms
//!    pauses), passes every second, and runs the same accepts until the
//!    purge is done;
//! 4. prints p50, p99 and max of both phases, their p99 ratio, and how long
//!    the purge took; then removes the file or drops the table.
//!
//! Not a Criterion bench: the figure is a tail latency under a background
//! load, measured once per phase, side by side in one run.
//!
//! ```text
//! TOWER_WEBHOOKS_PG_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench purge
//! TOWER_WEBHOOKS_BENCH_PURGE_EVENTS=100000 cargo bench --bench purge   # a quick run
//! TOWER_WEBHOOKS_BENCH_PURGE_BACKENDS=postgres cargo bench --bench purge  # one backend
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};
use tower_webhooks::inbox::{Inbox, PostgresInbox, Retention, SqliteInbox};
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, WebhookLayer};

const SECRET: &str = "purge_bench_secret";
const BODY_BYTES: usize = 1024;
const CLIENTS: usize = 16;
const BASELINE: Duration = Duration::from_secs(10);
/// Days ago the filled events arrived: past the default 30-day retention.
const FILL_AGE_DAYS: i64 = 60;

fn events_to_fill() -> u64 {
    std::env::var("TOWER_WEBHOOKS_BENCH_PURGE_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000)
}

fn request(signer: &GenericSigner) -> Request<Full<Bytes>> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = format!("evt_{}_{n}", std::process::id());
    let mut body = format!(r#"{{"id":"{id}","type":"invoice.paid","pad":""#).into_bytes();
    body.resize(BODY_BYTES - 2, b'x');
    body.extend_from_slice(b"\"}");
    signer
        .request("/webhooks/provider", &id, unix_now(), &body)
        .map(Full::new)
}

/// Accept latencies from `CLIENTS` concurrent clients until `done` is set,
/// sorted, and how many were not answered 200 (a 503: the store did not
/// answer within the inbox's store timeout, 5 s).
async fn accepts(inbox: &Inbox, done: Arc<AtomicBool>) -> (Vec<Duration>, usize) {
    let service = ServiceBuilder::new()
        .layer(WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()))
        .service(inbox.accept());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (service, done) = (service.clone(), done.clone());
            tokio::spawn(async move {
                let signer = GenericSigner::new(SECRET);
                let (mut latencies, mut failed) = (Vec::new(), 0);
                while !done.load(Ordering::Relaxed) {
                    let request = request(&signer);
                    let started = Instant::now();
                    let response = service.clone().oneshot(request).await.unwrap();
                    latencies.push(started.elapsed());
                    if response.status() != 200 {
                        failed += 1;
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    let (mut all, mut failed) = (Vec::new(), 0);
    for client in clients {
        let (latencies, not_ok) = client.await.unwrap();
        all.extend(latencies);
        failed += not_ok;
    }
    all.sort();
    (all, failed)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn summary((latencies, failed): &(Vec<Duration>, usize)) -> String {
    format!(
        "{} accepts ({failed} not 200), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        quantile(latencies, 0.50).as_secs_f64() * 1e3,
        quantile(latencies, 0.99).as_secs_f64() * 1e3,
        quantile(latencies, 1.0).as_secs_f64() * 1e3,
    )
}

/// Measures both phases on `inbox`, whose store holds `filled` finished
/// events due for purging.
async fn measure(name: &str, inbox: Inbox, filled: u64) {
    let store = inbox.store().clone();
    let done = Arc::new(AtomicBool::new(false));
    let timer = {
        let done = done.clone();
        tokio::spawn(async move {
            tokio::time::sleep(BASELINE).await;
            done.store(true, Ordering::Relaxed);
        })
    };
    let without = accepts(&inbox, done).await;
    timer.await.unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    // The default retention and steps; passes every second, so the first
    // starts within 0.1 s.
    let purger = inbox.spawn_purger(Retention::new().every(Duration::from_secs(1)));
    let watcher = {
        let (done, store) = (done.clone(), store.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                // A sample that timed out on the busy store is taken again.
                if let Ok(counts) = store.counts().await
                    && counts.succeeded == 0
                {
                    break;
                }
            }
            done.store(true, Ordering::Relaxed);
            started.elapsed()
        })
    };
    let with = accepts(&inbox, done).await;
    let purge_took = watcher.await.unwrap();
    purger.shutdown().await;

    let ratio = quantile(&with.0, 0.99).as_secs_f64() / quantile(&without.0, 0.99).as_secs_f64();
    println!("purge/{name}: {filled} finished events purged in {purge_took:.1?}");
    println!("purge/{name}: without purge: {}", summary(&without));
    println!("purge/{name}: while purging: {}", summary(&with));
    println!("purge/{name}: accept p99 while purging / without = {ratio:.2}x (target <= 2x)");
}

/// Fills the SQLite inbox at `path` (tables already created) with `n`
/// finished events and their attempts.
fn fill_sqlite(path: &std::path::Path, n: u64) {
    let connection = rusqlite::Connection::open(path).expect("open the SQLite file");
    let old = (std::time::SystemTime::now() - Duration::from_secs(FILL_AGE_DAYS as u64 * 86_400))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    connection
        .execute_batch("PRAGMA synchronous = OFF; BEGIN")
        .unwrap();
    connection
        .execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
             INSERT INTO webhook_inbox (namespace, event_id, status, body, body_hash, headers,
                                        received_at, updated_at, due_at, attempts, fence)
             SELECT 'fill', 'evt_fill_' || i, 'succeeded', randomblob(512), randomblob(32),
                    '[[\"content-type\",\"application/json\"]]', ?2 + i % 1000, ?2, ?2, 1, 1
             FROM n",
            rusqlite::params![n, old],
        )
        .expect("fill the events");
    connection
        .execute(
            "INSERT INTO webhook_inbox_attempts (namespace, event_id, fence, number, started_at,
                                                 ended_at, outcome)
             SELECT namespace, event_id, 1, 1, received_at, received_at, 'succeeded'
             FROM webhook_inbox WHERE namespace = 'fill'",
            [],
        )
        .expect("fill the attempts");
    connection.execute_batch("COMMIT").unwrap();
    // Fold the fill into the database now, so the first accept does not
    // pay for checkpointing a gigabyte of WAL.
    connection
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
}

async fn sqlite(n: u64) {
    let dir =
        std::env::temp_dir().join(format!("tower-webhooks-purge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("inbox.db");
    let store = SqliteInbox::open(&path).await.expect("open SQLite");
    let started = Instant::now();
    let fill_path = path.clone();
    tokio::task::spawn_blocking(move || fill_sqlite(&fill_path, n))
        .await
        .unwrap();
    println!(
        "purge/sqlite: filled {n} events in {:.1?}",
        started.elapsed()
    );
    measure("sqlite", Inbox::new(store), n).await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn postgres(url: &str, n: u64) {
    let table = format!("tw_purge_bench_{}", std::process::id());
    let store = PostgresInbox::builder()
        .table(&table)
        .connect(url)
        .expect("PostgreSQL URL");
    store.migrate().await.expect("migrate");
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let started = Instant::now();
    client
        .execute(
            &format!(
                "INSERT INTO \"{table}\" (namespace, event_id, status, body, body_hash, headers,
                                          received_at, updated_at, due_at, attempts, fence)
                 SELECT 'fill', 'evt_fill_' || i, 'succeeded',
                        decode(repeat(md5(i::text), 32), 'hex'), sha256(i::text::bytea),
                        '[[\"content-type\",\"application/json\"]]',
                        now() - interval '{FILL_AGE_DAYS} days' + (i % 1000) * interval '1 ms',
                        now() - interval '{FILL_AGE_DAYS} days',
                        now() - interval '{FILL_AGE_DAYS} days', 1, 1
                 FROM generate_series(1, $1::bigint) AS i"
            ),
            &[&i64::try_from(n).unwrap()],
        )
        .await
        .expect("fill the events");
    client
        .execute(
            &format!(
                "INSERT INTO \"{table}_attempts\" (namespace, event_id, fence, number, started_at,
                                                   ended_at, outcome)
                 SELECT namespace, event_id, 1, 1, received_at, received_at, 'succeeded'
                 FROM \"{table}\" WHERE namespace = 'fill'"
            ),
            &[],
        )
        .await
        .expect("fill the attempts");
    client
        .batch_execute(&format!(
            "ANALYZE \"{table}\"; ANALYZE \"{table}_attempts\""
        ))
        .await
        .unwrap();
    println!(
        "purge/postgres: filled {n} events in {:.1?}",
        started.elapsed()
    );
    measure("postgres", Inbox::new(store), n).await;
    client
        .batch_execute(&format!(
            "DROP TABLE \"{table}\", \"{table}_signatures\", \"{table}_attempts\""
        ))
        .await
        .expect("drop the bench tables");
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let n = events_to_fill();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // `TOWER_WEBHOOKS_BENCH_PURGE_BACKENDS=postgres` runs one backend only.
    let backends = std::env::var("TOWER_WEBHOOKS_BENCH_PURGE_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".to_owned());
    let wanted = |name: &str| backends.split(',').any(|backend| backend.trim() == name);
    runtime.block_on(async {
        if wanted("sqlite") {
            sqlite(n).await;
        }
        if !wanted("postgres") {
            return;
        }
        match std::env::var("TOWER_WEBHOOKS_PG_URL")
            .ok()
            .filter(|url| !url.is_empty())
        {
            Some(url) => postgres(&url, n).await,
            None => eprintln!("purge/postgres: skipped (set TOWER_WEBHOOKS_PG_URL to run it)"),
        }
    });
}
