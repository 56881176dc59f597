use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{Claim, FenceToken, IdempotencyStore, StoreError};
use crate::clock::{Clock, SystemClock};

/// An in-process store: the reference implementation, for one process and
/// for tests. Nothing survives a restart, and instances do not share it.
///
/// Expired entries (leases and retention) are swept as the store is used, so
/// memory stays bounded by the events of one retention period.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Box<str>, Entry>,
    next_token: u64,
    writes_since_sweep: usize,
    /// The number of entries the last sweep left.
    swept_to: usize,
}

#[derive(Debug)]
struct Entry {
    /// `Some` while in flight, `None` once completed.
    token: Option<u64>,
    until: SystemTime,
    fingerprint: Box<[u8]>,
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// An empty store on `clock` (tests move a [`FixedClock`](crate::clock::FixedClock)
    /// to expire leases without sleeping).
    pub fn with_clock(clock: impl Clock) -> Self {
        Self {
            state: Mutex::new(State::default()),
            clock: Arc::new(clock),
        }
    }

    /// The number of entries held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Returns `true` if the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave an entry half-written
        // (every update is a single assignment), so a poisoned lock is safe
        // to keep using.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

fn deadline(now: SystemTime, after: Duration) -> SystemTime {
    now.checked_add(after)
        .unwrap_or(now + Duration::from_secs(u32::MAX.into()))
}

impl State {
    /// Drops expired entries once there have been as many writes since the
    /// last sweep as that sweep left entries (at least 1,024): each sweep
    /// costs at most twice the writes that led to it, so amortised O(1) per
    /// write, and memory stays within twice the live entries.
    fn sweep_if_due(&mut self, now: SystemTime) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= self.swept_to.max(1024) {
            self.entries.retain(|_, entry| entry.until > now);
            self.writes_since_sweep = 0;
            self.swept_to = self.entries.len();
        }
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &[u8],
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock();
        if let Some(entry) = state.entries.get(key)
            && entry.until > now
        {
            let same_fingerprint = *entry.fingerprint == *fingerprint;
            return Ok(match entry.token {
                Some(_) => Claim::InFlight { same_fingerprint },
                None => Claim::Completed { same_fingerprint },
            });
        }
        state.next_token += 1;
        let token = state.next_token;
        state.entries.insert(
            key.into(),
            Entry {
                token: Some(token),
                until: deadline(now, lease),
                fingerprint: fingerprint.into(),
            },
        );
        state.sweep_if_due(now);
        Ok(Claim::Acquired(FenceToken::new(token)))
    }

    async fn complete(
        &self,
        key: &str,
        token: FenceToken,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock();
        match state.entries.get_mut(key) {
            Some(entry) if entry.token == Some(token.get()) && entry.until > now => {
                entry.token = None;
                entry.until = deadline(now, retention);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, key: &str, token: FenceToken) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.entries.get(key) {
            Some(entry) if entry.token == Some(token.get()) => {
                state.entries.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    #[tokio::test]
    async fn expired_entries_are_swept() {
        let clock = FixedClock::at_unix(1_000);
        let store = MemoryStore::with_clock(clock.clone());
        for i in 0..2_000 {
            let key = format!("ns:{i}");
            store
                .claim(&key, b"", Duration::from_secs(1))
                .await
                .unwrap();
        }
        clock.advance(Duration::from_secs(2));
        for i in 0..2_100 {
            let key = format!("other:{i}");
            store
                .claim(&key, b"", Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert!(
            store.len() <= 2_100 + 1_024,
            "store kept {} entries",
            store.len()
        );
    }

    #[tokio::test]
    async fn a_fixed_clock_expires_leases_without_sleeping() {
        let clock = FixedClock::at_unix(1_000);
        let store = MemoryStore::with_clock(clock.clone());
        let Claim::Acquired(first) = store
            .claim("ns:a", b"", Duration::from_secs(30))
            .await
            .unwrap()
        else {
            panic!("free key not acquired");
        };
        clock.advance(Duration::from_secs(31));
        let Claim::Acquired(second) = store
            .claim("ns:a", b"", Duration::from_secs(30))
            .await
            .unwrap()
        else {
            panic!("expired lease not reclaimed");
        };
        assert_ne!(first, second);
        assert!(
            !store
                .complete("ns:a", first, Duration::from_secs(60))
                .await
                .unwrap()
        );
    }
}
