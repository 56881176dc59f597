use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{Claim, FenceToken, IdempotencyStore, SignatureClaim, StoreError};
use crate::clock::{Clock, SystemClock};

/// An in-process store: the reference implementation, for one process and
/// for tests. Nothing survives a restart, and instances do not share it.
///
/// Keys are spread over 16 independently locked shards, so a sweep or a
/// table resize holds up only a sixteenth of the keys. Every operation
/// (`claim`, `complete`, `release`, `renew`) runs under its key's shard lock;
/// `admit` holds the locks of both the signature's and the key's shards
/// (taken in shard order, so two admits never deadlock) while it records the
/// signature and claims the key, so the two steps are one atomic operation.
/// Expired entries (leases and retention) are swept as the store is used, so
/// memory stays bounded by the events of one retention period; no
/// [`spawn_purger`](super::spawn_purger) is needed (one would sweep every
/// shard at once through [`purge_expired`](IdempotencyStore::purge_expired)).
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

    fn index(&self, key: &str) -> usize {
        self.hasher.hash_one(key) as usize % SHARDS
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.index(key)])
    }

    fn next_token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed) + 1
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
    /// The claim, on a shard already locked.
    fn claim(
        &mut self,
        key: &str,
        fingerprint: &[u8],
        until: SystemTime,
        now: SystemTime,
        token: impl FnOnce() -> u64,
    ) -> Claim {
        if let Some(entry) = self.entries.get(key)
            && entry.until > now
        {
            let same_fingerprint = *entry.fingerprint == *fingerprint;
            return match entry.token {
                Some(_) => Claim::InFlight { same_fingerprint },
                None => Claim::Completed { same_fingerprint },
            };
        }
        let token = token();
        self.entries.insert(
            key.into(),
            Entry {
                token: Some(token),
                until,
                fingerprint: fingerprint.into(),
            },
        );
        self.sweep_if_due(now);
        Claim::Acquired(FenceToken::new(token))
    }

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
        let until = deadline(now, lease);
        Ok(self
            .shard(key)
            .claim(key, fingerprint, until, now, || self.next_token()))
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

    async fn renew(
        &self,
        key: &str,
        token: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut shard = self.shard(key);
        match shard.entries.get_mut(key) {
            Some(entry) if entry.token == Some(token.get()) && entry.until > now => {
                entry.until = deadline(now, lease);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Sweeps every shard now (writes also sweep, amortised, as they go).
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut purged = 0;
        for shard in &self.shards {
            let mut shard = lock(shard);
            let before = shard.entries.len();
            shard.entries.retain(|_, entry| entry.until > now);
            purged += (before - shard.entries.len()) as u64;
            shard.writes_since_sweep = 0;
            shard.swept_to = shard.entries.len();
        }
        Ok(purged)
    }

    async fn admit(
        &self,
        key: &str,
        lease: Duration,
        signature: Option<SignatureClaim<'_>>,
    ) -> Result<Claim, StoreError> {
        let now = self.clock.now();
        let until = deadline(now, lease);
        let Some(signature) = signature else {
            return Ok(self
                .shard(key)
                .claim(key, b"", until, now, || self.next_token()));
        };
        // Both shards stay locked from the signature's check to the key's
        // claim. Locks are taken in shard order, so two admits whose keys
        // and signatures fall in the same two shards cannot deadlock.
        let (key_index, signature_index) = (self.index(key), self.index(signature.key));
        let (mut key_shard, mut signature_shard) = if key_index == signature_index {
            (lock(&self.shards[key_index]), None)
        } else if key_index < signature_index {
            let first = lock(&self.shards[key_index]);
            (first, Some(lock(&self.shards[signature_index])))
        } else {
            let first = lock(&self.shards[signature_index]);
            (lock(&self.shards[key_index]), Some(first))
        };
        let held = signature_shard
            .as_deref_mut()
            .unwrap_or(&mut *key_shard)
            .claim(
                signature.key,
                signature.event_id.as_bytes(),
                deadline(now, signature.keep),
                now,
                || self.next_token(),
            );
        match held {
            Claim::Acquired(_)
            | Claim::InFlight {
                same_fingerprint: true,
            }
            | Claim::Completed {
                same_fingerprint: true,
            } => Ok(key_shard.claim(key, b"", until, now, || self.next_token())),
            // Held by another id: the refused claim wrote nothing.
            _ => Ok(Claim::Replayed),
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
