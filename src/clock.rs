//! Where "now" comes from.
//!
//! Timestamp windows, leases and retention all ask a [`Clock`]. Production code
//! uses [`SystemClock`]; tests and platforms without a system time use
//! [`FixedClock`], which only moves when told to.
//!
//! ```
//! use std::time::Duration;
//! use tower_webhooks::clock::{Clock, FixedClock};
//!
//! let clock = FixedClock::at_unix(1_700_000_000);
//! clock.advance(Duration::from_secs(301));
//! assert_eq!(clock.unix_seconds(), 1_700_000_301);
//! ```

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current wall-clock time.
pub trait Clock: Debug + Send + Sync + 'static {
    /// Returns the current time.
    fn now(&self) -> SystemTime;

    /// Returns the current time as whole seconds since the Unix epoch
    /// (0 for any time before it).
    fn unix_seconds(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
    }
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until [`set`](FixedClock::set) or
/// [`advance`](FixedClock::advance) moves it.
///
/// Clones share the same time, so a test can hold one clone and hand another
/// to a verifier or a store.
#[derive(Clone, Debug, Default)]
pub struct FixedClock {
    nanos_since_epoch: Arc<AtomicU64>,
}

impl FixedClock {
    /// Creates a clock showing `time` (clamped to the Unix epoch and to year 2554).
    pub fn new(time: SystemTime) -> Self {
        let clock = Self::default();
        clock.set(time);
        clock
    }

    /// Creates a clock showing `seconds` after the Unix epoch.
    pub fn at_unix(seconds: u64) -> Self {
        Self::new(UNIX_EPOCH + Duration::from_secs(seconds))
    }

    /// Sets the time shown.
    pub fn set(&self, time: SystemTime) {
        let nanos = time.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        });
        self.nanos_since_epoch.store(nanos, Ordering::SeqCst);
    }

    /// Moves the time shown forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .nanos_since_epoch
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(by))
            });
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.nanos_since_epoch.load(Ordering::SeqCst))
    }
}
