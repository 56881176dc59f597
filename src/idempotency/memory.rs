use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{Claim, FenceToken, IdempotencyStore, StoreError};
use crate::clock::{Clock, SystemClock};

/// An in-process store: the reference implementation, for one process and
/// for tests. Nothing survives a restart, and instances do not share it.
///
/// Keys are spread over 16 independently locked shards, so a sweep or a
/// table resize holds up only a sixteenth of the keys. Expired entries
/// (leases and retention) are swept as the store is used, so memory stays
/// bounded by the events of one retention period.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    next_token: AtomicU64,
    clock: Arc<dyn Clock>,
}

const SHARDS: usize = 16;

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<Box<str>, Entry>,
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
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            next_token: AtomicU64::new(0),
            clock: Arc::new(clock),
        }
    }

    /// The number of entries held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        (0..SHARDS)
            .map(|index| lock(&self.shards[index]).entries.len())
            .sum()
    }

    /// Returns `true` if the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.hasher.hash_one(key) as usize % SHARDS])
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding the lock cannot leave an entry half-written
    // (every update is a single assignment), so a poisoned lock is safe to
    // keep using.
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

impl Shard {
    /// Drops expired entries once there have been as many writes since the
    /// last sweep as that sweep left entries (at least 64): each sweep
    /// costs at most twice the writes that led to it, so amortised O(1) per
    /// write, and memory stays within twice the live entries.
    fn sweep_if_due(&mut self, now: SystemTime) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= self.swept_to.max(64) {
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
        let mut shard = self.shard(key);
        if let Some(entry) = shard.entries.get(key)
            && entry.until > now
        {
            let same_fingerprint = *entry.fingerprint == *fingerprint;
            return Ok(match entry.token {
                Some(_) => Claim::InFlight { same_fingerprint },
                None => Claim::Completed { same_fingerprint },
            });
        }
        let token = self.next_token.fetch_add(1, Ordering::Relaxed) + 1;
        shard.entries.insert(
            key.into(),
            Entry {
                token: Some(token),
                until: deadline(now, lease),
                fingerprint: fingerprint.into(),
            },
        );
        shard.sweep_if_due(now);
        Ok(Claim::Acquired(FenceToken::new(token)))
    }

    async fn complete(
        &self,
        key: &str,
        token: FenceToken,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut shard = self.shard(key);
        match shard.entries.get_mut(key) {
            Some(entry) if entry.token == Some(token.get()) && entry.until > now => {
                entry.token = None;
                entry.until = deadline(now, retention);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, key: &str, token: FenceToken) -> Result<bool, StoreError> {
        let mut shard = self.shard(key);
        match shard.entries.get(key) {
            Some(entry) if entry.token == Some(token.get()) => {
                shard.entries.remove(key);
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
        for i in 0..20_000 {
            let key = format!("ns:{i}");
            store
                .claim(&key, b"", Duration::from_secs(1))
                .await
                .unwrap();
        }
        clock.advance(Duration::from_secs(2));
        for i in 0..21_000 {
            let key = format!("other:{i}");
            store
                .claim(&key, b"", Duration::from_secs(60))
                .await
                .unwrap();
        }
        // Over 90% of the 20,000 expired entries are gone.
        assert!(
            store.len() < 21_000 + 2_000,
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
