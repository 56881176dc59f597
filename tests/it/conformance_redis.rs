//! The Redis store against the conformance suite, each test under a fresh key
//! prefix. Set `TOWER_WEBHOOKS_REDIS_URL` (e.g. `redis://127.0.0.1:6379/`) to
//! run it; without it every test is reported as ignored.
#![cfg(all(feature = "redis", feature = "test-util"))]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tower_webhooks::idempotency::{
    Claim, FenceToken, IdempotencyStore, RedisStore, SignatureClaim, StoreError,
};

fn url() -> Option<String> {
    std::env::var("TOWER_WEBHOOKS_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// A prefix no other test (in this process or another) uses.
fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!(
        "tower-webhooks-test:{}-{}-{nanos}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store under a fresh prefix whose keys are deleted when it is dropped
/// (they would expire on their own within the suite's longest TTL anyway).
#[derive(Debug)]
struct TestStore {
    store: RedisStore,
    url: String,
}

impl TestStore {
    async fn new() -> Option<Self> {
        let url = url()?;
        let store = RedisStore::builder()
            .key_prefix(unique_prefix())
            .connect(&url)
            .await
            .expect("connect failed");
        Some(Self { store, url })
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.store.key_prefix());
        let url = self.url.clone();
        // Drop cannot await, and blocking inside the test's runtime is not
        // allowed: clean up from a plain thread with a blocking connection.
        let cleanup = std::thread::spawn(move || -> redis::RedisResult<()> {
            let mut conn = redis::Client::open(url)?.get_connection()?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(keys).exec(&mut conn)?;
            }
            Ok(())
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
        not(tower_webhooks_redis),
        ignore = "set TOWER_WEBHOOKS_REDIS_URL to run against Redis"
    )]
    store = TestStore::new()
);

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_redis),
    ignore = "set TOWER_WEBHOOKS_REDIS_URL to run against Redis"
)]
async fn a_foreign_value_under_the_prefix_is_an_error_not_a_claim() {
    let store = TestStore::new()
        .await
        .expect("TOWER_WEBHOOKS_REDIS_URL unset");
    let mut conn = redis::Client::open(store.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{}ns:foreign", store.store.key_prefix());
    redis::cmd("SET")
        .arg(&key)
        .arg("x")
        .exec_async(&mut conn)
        .await
        .unwrap();
    let error = store
        .claim("ns:foreign", b"fp", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error}");
}

#[tokio::test]
#[cfg_attr(
    not(tower_webhooks_redis),
    ignore = "set TOWER_WEBHOOKS_REDIS_URL to run against Redis"
)]
async fn a_foreign_value_at_the_signature_is_an_error_and_claims_nothing() {
    let store = TestStore::new()
        .await
        .expect("TOWER_WEBHOOKS_REDIS_URL unset");
    let mut conn = redis::Client::open(store.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let signature_key = format!("{}ns#sig:ab", store.store.key_prefix());
    redis::cmd("SET")
        .arg(&signature_key)
        .arg("x")
        .exec_async(&mut conn)
        .await
        .unwrap();
    let signature = SignatureClaim {
        key: "ns#sig:ab",
        event_id: "evt_1",
        keep: Duration::from_secs(5),
    };
    let error = store
        .admit("ns:evt_1", Duration::from_secs(5), Some(signature))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error}");
    let Claim::Acquired(_) = store
        .claim("ns:evt_1", b"", Duration::from_secs(5))
        .await
        .unwrap()
    else {
        panic!("a failed admit claimed the key");
    };
}
