//! The periodic clean-up of an idempotency store.

use std::sync::Arc;
use std::time::Duration;

use super::IdempotencyStore;
use crate::inbox::TaskHandle;
use crate::inbox::purger::{ErrorLog, guarded, jittered};

/// Starts a task on the current Tokio runtime that calls
/// [`IdempotencyStore::purge_expired`] every `every` (each wait jittered by
/// up to ±10%, the first within a tenth of it), so expired claims go away
/// without a cron job. A failure is logged (at most once a minute) and
/// tried again at the next tick; the task never panics.
///
/// | store | what a run does |
/// |---|---|
/// | `SqliteStore`, `PostgresStore` | deletes expired rows in steps of 1,000 (claims also sweep a few as they go) |
/// | [`MemoryStore`](super::MemoryStore) | sweeps every shard (writes already sweep, amortised: not needed) |
/// | `RedisStore` | nothing: keys expire by their TTL (not needed) |
///
/// Hourly is plenty: expired rows never answer a claim, they only take
/// space. Pass an `Arc` of the store the layer uses (`Arc<S>` is a store).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower_webhooks::idempotency::{MemoryStore, spawn_purger};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = Arc::new(MemoryStore::new());
/// let purger = spawn_purger(store.clone(), Duration::from_secs(3600));
/// // ... serve with `IdempotencyLayer::new(store)` ...
/// purger.shutdown().await;
/// # }
/// ```
///
/// # Panics
///
/// Outside a Tokio runtime.
pub fn spawn_purger(store: impl IdempotencyStore, every: Duration) -> TaskHandle {
    let store = Arc::new(store);
    TaskHandle::spawn(move |mut stop| async move {
        let mut errors = ErrorLog::new("the idempotency purge");
        let mut wait = jittered(every / 10);
        while stop.sleep(wait).await {
            let store = store.clone();
            match guarded(async move { store.purge_expired().await }).await {
                Ok(Ok(purged)) if purged > 0 => {
                    tracing::debug!(purged, "idempotency purge");
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => errors.failed(&error),
                Err(error) => errors.failed(&error),
            }
            wait = jittered(every);
        }
    })
}
