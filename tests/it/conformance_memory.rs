//! The memory store against the conformance suite, and a store that keeps
//! the trait's default `admit` (two claims, one after the other), as a
//! user's store would, against the same suite.
#![cfg(feature = "test-util")]

tower_webhooks::idempotency_store_conformance!(async {
    Some(tower_webhooks::idempotency::MemoryStore::new())
});

mod default_admit {
    use std::time::Duration;

    use async_trait::async_trait;
    use tower_webhooks::idempotency::{
        Claim, FenceToken, IdempotencyStore, MemoryStore, StoreError,
    };

    /// Forwards everything but `admit`, which keeps the trait's default.
    #[derive(Debug, Default)]
    struct DefaultAdmit(MemoryStore);

    #[async_trait]
    impl IdempotencyStore for DefaultAdmit {
        async fn claim(
            &self,
            key: &str,
            fingerprint: &[u8],
            lease: Duration,
        ) -> Result<Claim, StoreError> {
            self.0.claim(key, fingerprint, lease).await
        }

        async fn complete(
            &self,
            key: &str,
            token: FenceToken,
            retention: Duration,
        ) -> Result<bool, StoreError> {
            self.0.complete(key, token, retention).await
        }

        async fn release(&self, key: &str, token: FenceToken) -> Result<bool, StoreError> {
            self.0.release(key, token).await
        }

        async fn renew(
            &self,
            key: &str,
            token: FenceToken,
            lease: Duration,
        ) -> Result<bool, StoreError> {
            self.0.renew(key, token, lease).await
        }
    }

    tower_webhooks::idempotency_store_conformance!(async { Some(DefaultAdmit::default()) });
}
