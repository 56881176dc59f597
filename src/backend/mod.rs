//! What every store shares, idempotency stores and inbox stores alike: the
//! error type ([`StoreError`]), calls bounded by a timeout, the SQL plumbing
//! (identifier rules, SQLite durability settings, the PostgreSQL pool),
//! PostgreSQL over TLS (`PgTls`, feature `postgres-tls`), and the client
//! crates whose types appear in constructors (`deadpool_postgres`,
//! `tokio_postgres`, `redis`), re-exported so their versions match.

use std::fmt;
use std::time::Duration;

#[cfg(feature = "postgres")]
pub(crate) mod pg;
#[cfg(feature = "postgres-tls")]
mod pg_tls;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod sql;

#[cfg(feature = "postgres-tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres-tls")))]
pub use self::pg_tls::PgTls;

/// The PostgreSQL pool crate, re-exported so that a pool given to
/// `with_pool` is built with the same version the crate uses.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use deadpool_postgres;
/// The Redis client crate, re-exported so that a `ConnectionManager` given to
/// `with_manager` comes from the version the crate uses.
#[cfg(any(feature = "redis", feature = "redis-stream"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "redis", feature = "redis-stream"))))]
pub use redis;
/// rustls, re-exported for [`PgTls::from_rustls`].
#[cfg(feature = "postgres-tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres-tls")))]
pub use rustls;
/// The PostgreSQL client crate, re-exported for the same reason.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use tokio_postgres;

/// The default of every `store_timeout` (the idempotency layer, the inbox's
/// accept path, the forward service): how long the caller waits for one
/// store call before answering 503. Longer than the stores' own per-call
/// bound, [`DEFAULT_TIMEOUT`], so that a built-in store reports its own
/// timeout first.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// The default of every store builder's `timeout` (SQLite, Redis,
/// PostgreSQL): the store's own bound on each call, waiting for a connection
/// included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Proof of a claim, the same in both state machines: an idempotency
/// store's `complete` and `release`, and every exit from `processing` in an
/// inbox store (`heartbeat`, `complete`, `retry`, `kill`, `give_back`), must
/// present it, and do nothing when a newer claim has taken the key or event
/// since (the lease expired).
///
/// Tokens are opaque to callers: stores make them unique per claim, from a
/// counter that never goes back (the inboxes: each claim of an event raises
/// its fence, so tokens of one event order its attempts) or at random.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FenceToken(u64);

impl FenceToken {
    /// Wraps a store's token value.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The store's token value.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FenceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A boxed error from a store's backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store call failed. The layer answers 503 (or proceeds, if configured
/// to fail open) and records nothing as done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The call did not finish within its timeout.
    #[error("store call timed out after {0:?}")]
    Timeout(Duration),
    /// The backend could not be reached.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The backend answered with an error.
    #[error("store error: {0}")]
    Backend(#[source] BoxError),
    /// The store is taking no more work for now (its queue is full); the
    /// caller answers 503 and the sender retries.
    #[error("store overloaded: its queue is full")]
    Overloaded,
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(error: impl Into<BoxError>) -> Self {
        Self::Backend(error.into())
    }

    /// Wraps a connection error.
    pub fn unavailable(error: impl Into<BoxError>) -> Self {
        Self::Unavailable(error.into())
    }
}

/// Runs a store call with a timeout. A call that finishes on its first poll
/// (an in-process store, always) never arms a timer; only one that has to
/// wait does.
pub(crate) async fn timed<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let mut call = std::pin::pin!(call);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(call.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => tokio::time::timeout(timeout, call)
            .await
            .unwrap_or(Err(StoreError::Timeout(timeout))),
    }
}
