//! Idempotency: each event handled effectively once, however often and
//! wherever its deliveries arrive.
//!
//! Providers retry, so one event arrives several times, sometimes at once and
//! on different instances. An [`IdempotencyStore`] keeps a claim per event
//! (`namespace:event-id`), taken in one atomic operation before the handler
//! runs; the [`IdempotencyLayer`](crate::layer::IdempotencyLayer) turns the claim's outcome into the answer.
//!
//! Stores: [`MemoryStore`] (one process), and behind features SQLite (one
//! machine, survives restarts), Redis and PostgreSQL (several instances). Your
//! own store implements the trait and runs the same
//! [conformance suite](conformance) (feature `test-util`).
//!
//! # Choosing a store
//!
//! | store | feature | claims shared by | survives a restart | clock for leases |
//! |---|---|---|---|---|
//! | [`MemoryStore`] | (always) | one process | no | the store's [`Clock`](crate::clock::Clock) |
//! | `SqliteStore` | `sqlite` | one machine: several processes may share the file | yes (WAL, `synchronous=FULL`) | the store's [`Clock`](crate::clock::Clock) |
//! | `RedisStore` | `redis` | several instances | as far as Redis persists (AOF/RDB) | Redis's |
//! | `PostgresStore` | `postgres` | several instances | yes | PostgreSQL's |
//!
//! Every store makes `claim` one atomic operation and fences `complete` and
//! `release` on the claim's token, and every server-backed store bounds each
//! call with a timeout, so a hung backend becomes a [`StoreError`], never a
//! hung request.

mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
mod postgres;
mod purger;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
mod redis;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
mod sqlite;
pub(crate) mod store;

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod conformance;

pub use self::memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use self::postgres::{DEFAULT_POSTGRES_TABLE, PostgresStore, PostgresStoreBuilder};
pub use self::purger::spawn_purger;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{DEFAULT_REDIS_PREFIX, RedisStore, RedisStoreBuilder};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use self::sqlite::{DEFAULT_SQLITE_TABLE, SqliteStore, SqliteStoreBuilder};
pub use self::store::{BoxError, Claim, FenceToken, IdempotencyStore, SignatureClaim, StoreError};
pub use crate::inbox::TaskHandle;
