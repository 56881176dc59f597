//! The PostgreSQL store against the conformance suite, each test on a fresh
//! table. Set `TOWER_WEBHOOKS_PG_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`) to run it; without it every
//! test is reported as ignored.
#![cfg(all(feature = "postgres", feature = "test-util"))]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tower_webhooks::idempotency::{
    Claim, FenceToken, IdempotencyStore, PostgresStore, SignatureClaim, StoreError,
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
        "tw_test_{}_{}_{micros}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A migrated store on a fresh table, dropped (with its sequence) when the
/// store is.
#[derive(Debug)]
struct TestStore {
    store: PostgresStore,
    url: String,
}

impl TestStore {
    async fn new() -> Option<Self> {
        let url = url()?;
        let store = PostgresStore::builder()
            .table(unique_table())
            .pool_size(8)
            .connect(&url)
            .expect("invalid URL");
        store.migrate().await.expect("migrate failed");
        Some(Self { store, url })
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let table = self.store.table().to_owned();
        let url = self.url.clone();
        // Drop cannot await, and blocking inside the test's runtime is not
        // allowed: clean up from a plain thread with its own runtime.
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
                        "DROP TABLE IF EXISTS \"{table}\"; DROP SEQUENCE IF EXISTS \"{table}_fence\";"
                    ))
                    .await
                    .map_err(std::io::Error::other)
            })
        });
        let _ = cleanup.join();
    }
}

#[async_trait]
impl IdempotencyStore for TestStore {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &[u8],
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        self.store.claim(key, fingerprint, lease).await
    }

    async fn complete(
        &self,
        key: &str,
        token: FenceToken,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        self.store.complete(key, token, retention).await
    }

    async fn release(&self, key: &str, token: FenceToken) -> Result<bool, StoreError> {
        self.store.release(key, token).await
    }

    async fn renew(
        &self,
        key: &str,
        token: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.store.renew(key, token, lease).await
    }

    // Forwarded, so the suite checks the store's own one-round-trip admit,
    // not the trait's default.
    async fn admit(
        &self,
        key: &str,
        lease: Duration,
        signature: Option<SignatureClaim<'_>>,
    ) -> Result<Claim, StoreError> {
        self.store.admit(key, lease, signature).await
    }
}

tower_webhooks::idempotency_store_conformance!(
    #[cfg_attr(
        not(tower_webhooks_pg),
        ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
    )]
    store = TestStore::new()
);

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn migrate_is_idempotent_and_purge_removes_expired_rows() {
    let store = TestStore::new().await.expect("TOWER_WEBHOOKS_PG_URL unset");
    store.store.migrate().await.unwrap();
    let Claim::Acquired(token) = store
        .claim("ns:a", b"fp", Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("free key not acquired");
    };
    assert!(
        store
            .complete("ns:a", token, Duration::from_millis(100))
            .await
            .unwrap()
    );
    store
        .claim("ns:b", b"fp", Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.store.purge_expired().await.unwrap(), 1);
    // Tokens keep growing after a purge: a purged key never gets an old token.
    let Claim::Acquired(again) = store
        .claim("ns:a", b"fp", Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("purged key not acquired");
    };
    assert!(again.get() > token.get());
}

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn a_schema_qualified_table_works() {
    let url = url().expect("TOWER_WEBHOOKS_PG_URL unset");
    let table = format!("public.{}", unique_table());
    let store = PostgresStore::builder()
        .table(&table)
        .connect(&url)
        .unwrap();
    store.migrate().await.unwrap();
    let outcome = store
        .claim("ns:a", b"fp", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(outcome, Claim::Acquired(_)), "{outcome:?}");
    let name = table.trim_start_matches("public.");
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "DROP TABLE \"public\".\"{name}\"; DROP SEQUENCE \"public\".\"{name}_fence\";"
        ))
        .await
        .unwrap();
}

/// The claim statement reads a refused key's state from its snapshot; when
/// the holder committed after that snapshot was taken, the follow-up read
/// must still report it correctly.
#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn a_claim_racing_the_holders_commit_sees_the_holder() {
    let store = TestStore::new().await.expect("TOWER_WEBHOOKS_PG_URL unset");
    let table = store.store.table().to_owned();
    for (key, state, expected) in [
        (
            "ns:race_in_flight",
            "in_flight",
            Claim::InFlight {
                same_fingerprint: true,
            },
        ),
        (
            "ns:race_completed",
            "completed",
            Claim::Completed {
                same_fingerprint: true,
            },
        ),
    ] {
        let (mut holder, connection) = tokio_postgres::connect(&store.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let tx = holder.transaction().await.unwrap();
        tx.execute(
            &format!(
                "INSERT INTO \"{table}\" (key, state, fence, fingerprint, until)
                 VALUES ($1, $2, nextval('\"{table}_fence\"'), $3, now() + interval '1 minute')"
            ),
            &[&key, &state, &&b"fp"[..]],
        )
        .await
        .unwrap();
        // The claim's snapshot is taken now, before the holder commits; its
        // insert then waits on the holder's uncommitted row.
        let claim = tokio::spawn({
            let store = store.store.clone();
            async move { store.claim(key, b"fp", Duration::from_secs(60)).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.commit().await.unwrap();
        assert_eq!(claim.await.unwrap().unwrap(), expected, "{state}");
    }
}

/// As above, for `admit`: its statement records the signature, then finds
/// the key held by a row committed after its snapshot; the follow-up read
/// must report the holder, and the signature stays recorded for the id.
#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_pg),
    ignore = "set TOWER_WEBHOOKS_PG_URL to run against PostgreSQL"
)]
async fn an_admit_racing_the_holders_commit_sees_the_holder() {
    let store = TestStore::new().await.expect("TOWER_WEBHOOKS_PG_URL unset");
    let table = store.store.table().to_owned();
    for (id, state, expected) in [
        (
            "race_in_flight",
            "in_flight",
            Claim::InFlight {
                same_fingerprint: true,
            },
        ),
        (
            "race_completed",
            "completed",
            Claim::Completed {
                same_fingerprint: true,
            },
        ),
    ] {
        let key = format!("ns:{id}");
        let signature_key = format!("ns#sig:{id}");
        let (mut holder, connection) = tokio_postgres::connect(&store.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let tx = holder.transaction().await.unwrap();
        tx.execute(
            &format!(
                "INSERT INTO \"{table}\" (key, state, fence, fingerprint, until)
                 VALUES ($1, $2, nextval('\"{table}_fence\"'), $3, now() + interval '1 minute')"
            ),
            &[&key, &state, &&b""[..]],
        )
        .await
        .unwrap();
        let admit = tokio::spawn({
            let store = store.store.clone();
            let (key, signature_key) = (key.clone(), signature_key.clone());
            async move {
                let signature = SignatureClaim {
                    key: &signature_key,
                    event_id: id,
                    keep: Duration::from_secs(60),
                };
                store
                    .admit(&key, Duration::from_secs(60), Some(signature))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.commit().await.unwrap();
        assert_eq!(admit.await.unwrap().unwrap(), expected, "{state}");
        assert_eq!(
            store
                .claim(&signature_key, id.as_bytes(), Duration::from_secs(60))
                .await
                .unwrap(),
            Claim::InFlight {
                same_fingerprint: true
            },
            "{state}: the signature is recorded for the id"
        );
    }
}
