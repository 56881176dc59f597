//! The SQLite store against the conformance suite, each test on a fresh
//! temporary file, plus durability across a reopen.
#![cfg(all(feature = "sqlite", feature = "test-util"))]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tower_webhooks::idempotency::{
    Claim, FenceToken, IdempotencyStore, SignatureClaim, SqliteStore, StoreError,
};

/// A path no other test (in this process or another) uses.
fn temp_path() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    std::env::temp_dir().join(format!(
        "tower-webhooks-{}-{}-{nanos}.db",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

fn remove_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// A store on a fresh temporary file, deleted when the store is dropped.
#[derive(Debug)]
struct TempStore {
    store: Option<SqliteStore>,
    path: PathBuf,
}

impl TempStore {
    async fn new() -> Self {
        let path = temp_path();
        let store = SqliteStore::open(&path).await.expect("open failed");
        Self {
            store: Some(store),
            path,
        }
    }

    fn store(&self) -> &SqliteStore {
        self.store.as_ref().expect("present until dropped")
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        // Closing the store ends its thread, which closes the connection.
        drop(self.store.take());
        remove_files(&self.path);
    }
}

#[async_trait]
impl IdempotencyStore for TempStore {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &[u8],
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        self.store().claim(key, fingerprint, lease).await
    }

    async fn complete(
        &self,
        key: &str,
        token: FenceToken,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        self.store().complete(key, token, retention).await
    }

    async fn release(&self, key: &str, token: FenceToken) -> Result<bool, StoreError> {
        self.store().release(key, token).await
    }

    async fn renew(
        &self,
        key: &str,
        token: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.store().renew(key, token, lease).await
    }

    // Forwarded, so the suite checks the store's own one-round-trip admit,
    // not the trait's default.
    async fn admit(
        &self,
        key: &str,
        lease: Duration,
        signature: Option<SignatureClaim<'_>>,
    ) -> Result<Claim, StoreError> {
        self.store().admit(key, lease, signature).await
    }
}

tower_webhooks::idempotency_store_conformance!(async { Some(TempStore::new().await) });

#[tokio::test]
async fn a_completed_key_survives_closing_and_reopening_the_file() {
    let path = temp_path();
    let lease = Duration::from_secs(60);
    {
        let store = SqliteStore::builder(&path)
            .table("claims")
            .open()
            .await
            .unwrap();
        let Claim::Acquired(token) = store.claim("ns:evt_1", b"fp", lease).await.unwrap() else {
            panic!("free key not acquired");
        };
        assert!(
            store
                .complete("ns:evt_1", token, Duration::from_secs(600))
                .await
                .unwrap()
        );
        let Claim::Acquired(_) = store.claim("ns:evt_2", b"fp", lease).await.unwrap() else {
            panic!("free key not acquired");
        };
    }
    // Give the closed store's thread a moment to close its connection.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let store = SqliteStore::builder(&path)
        .table("claims")
        .open()
        .await
        .unwrap();
    assert_eq!(
        store.claim("ns:evt_1", b"fp", lease).await.unwrap(),
        Claim::Completed {
            same_fingerprint: true
        }
    );
    assert_eq!(
        store.claim("ns:evt_2", b"other", lease).await.unwrap(),
        Claim::InFlight {
            same_fingerprint: false
        }
    );
    drop(store);
    remove_files(&path);
}

#[tokio::test]
async fn two_stores_on_one_file_share_claims() {
    // As two processes on one machine would: two connections, one file.
    let path = temp_path();
    let first = SqliteStore::open(&path).await.unwrap();
    let second = SqliteStore::open(&path).await.unwrap();
    let lease = Duration::from_secs(60);
    let (a, b) = tokio::join!(
        first.claim("ns:shared", b"fp", lease),
        second.claim("ns:shared", b"fp", lease)
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let winners = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Claim::Acquired(_)))
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
    drop((first, second));
    remove_files(&path);
}

#[tokio::test]
async fn an_unopenable_file_is_an_error() {
    let error = SqliteStore::open("/nonexistent-dir/tower-webhooks/x.db")
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
}
