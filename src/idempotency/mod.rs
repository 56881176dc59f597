//! Idempotency: each event handled effectively once, however often and
//! wherever its deliveries arrive.
//!
//! Providers retry, so one event arrives several times, sometimes at once and
//! on different instances. An [`IdempotencyStore`] keeps a claim per event
//! (`namespace:event-id`), taken in one atomic operation before the handler
//! runs; the [`IdempotencyLayer`] turns the claim's outcome into the answer.
//!
//! Stores: [`MemoryStore`] (one process), and behind features SQLite (one
//! machine, survives restarts), Redis and PostgreSQL (several instances). Your
//! own store implements the trait and runs the same
//! [conformance suite](conformance) (feature `test-util`).

mod memory;
mod store;

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod conformance;

pub use self::memory::MemoryStore;
pub use self::store::{BoxError, Claim, FenceToken, IdempotencyStore, StoreError};
