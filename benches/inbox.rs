//! Accept latency of each inbox backend: one signed 1 KiB request through
//! `WebhookLayer` + the inbox's accept service (`oneshot`), one after the
//! other, until the event is recorded and 200 is answered.
//!
//! - `memory`: [`MemoryInbox`] with `acknowledge_before_handling(true)` (no
//!   worker runs here, so the default, answering after the handler, would
//!   wait forever);
//! - `sqlite`: [`SqliteInbox`] on a temporary file, WAL, `synchronous=FULL`:
//!   one fsync per accepted event when requests come one at a time (grouped
//!   commits only help concurrent requests; see BENCHMARKS.md for those);
//! - `postgres`: [`PostgresInbox`], only when `TOWER_WEBHOOKS_PG_URL` is set
//!   (skipped with a notice otherwise).
//!
//! ```text
//! TOWER_WEBHOOKS_PG_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench inbox
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::Request;
use http_body_util::Full;
use tokio::runtime::Runtime;
use tower::{ServiceBuilder, ServiceExt};
use tower_webhooks::inbox::{Inbox, MemoryInbox, PostgresInbox, SqliteInbox};
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, WebhookLayer};

const SECRET: &str = "inbox_bench_secret";
const BODY_BYTES: usize = 1024;

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

fn accept(c: &mut Criterion, runtime: &Runtime, name: &str, inbox: &Inbox) {
    let signer = GenericSigner::new(SECRET);
    let service = ServiceBuilder::new()
        .layer(WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()))
        .service(inbox.accept());
    let mut group = c.benchmark_group("inbox_accept/1KiB");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.to_async(runtime).iter_batched(
            || request(&signer),
            |request| {
                let service = service.clone();
                async move {
                    let response = service.oneshot(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn inboxes(c: &mut Criterion) {
    let runtime = Runtime::new().expect("tokio runtime");

    let memory = Inbox::new(MemoryInbox::new()).acknowledge_before_handling(true);
    accept(c, &runtime, "memory", &memory);

    let dir =
        std::env::temp_dir().join(format!("tower-webhooks-inbox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sqlite = runtime
        .block_on(SqliteInbox::open(dir.join("inbox.db")))
        .expect("open SQLite");
    accept(c, &runtime, "sqlite", &Inbox::new(sqlite));
    let _ = std::fs::remove_dir_all(&dir);

    match std::env::var("TOWER_WEBHOOKS_PG_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        Some(url) => {
            // Ids carry the process id, so runs never collide in this table.
            let store = PostgresInbox::builder()
                .table("tower_webhooks_inbox_bench")
                .connect(&url)
                .expect("PostgreSQL URL");
            runtime.block_on(store.migrate()).expect("migrate");
            accept(c, &runtime, "postgres", &Inbox::new(store));
        }
        None => eprintln!("inbox_accept/postgres: skipped (set TOWER_WEBHOOKS_PG_URL to run it)"),
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
    targets = inboxes
}
criterion_main!(benches);
