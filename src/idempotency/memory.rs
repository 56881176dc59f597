use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::hash::{BuildHasher, RandomState};
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
///
/// A claim hashes its key once to pick the shard (a keyed multiply-rotate
/// hash) and once in the shard's map (SipHash), allocates only the key it
/// inserts (a fingerprint of up to 30 bytes, such as the replay guard's event
/// id, is kept inline), and takes its token from the shard's own counter, so
/// no state is shared between shards.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    /// The seed of the shard choice, random per store.
    seed: u64,
    clock: Arc<dyn Clock>,
}

const SHARDS: usize = 16;

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<Box<str>, Entry>,
    writes_since_sweep: usize,
    /// The number of entries the last sweep left.
    swept_to: usize,
    /// Tokens handed out by this shard.
    tokens: u64,
}

#[derive(Debug)]
struct Entry {
    /// `Some` while in flight, `None` once completed.
    token: Option<u64>,
    until: SystemTime,
    fingerprint: Fingerprint,
}

/// A fingerprint, inline up to 30 bytes (an event id, usually), else boxed.
#[derive(Debug)]
enum Fingerprint {
    Inline { len: u8, bytes: [u8; 30] },
    Heap(Box<[u8]>),
}

impl Fingerprint {
    fn new(fingerprint: &[u8]) -> Self {
        match u8::try_from(fingerprint.len()) {
            Ok(len) if fingerprint.len() <= 30 => {
                let mut bytes = [0; 30];
                bytes[..fingerprint.len()].copy_from_slice(fingerprint);
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(fingerprint.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(bytes) => bytes,
        }
    }
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
            seed: RandomState::new().hash_one(0x5EED_u64) | 1,
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

    /// The shard of `key`: a multiply-rotate hash of its 8-byte words,
    /// seeded per store. It only spreads the lock load (each shard's map
    /// hashes with SipHash), so it need not resist collisions.
    fn index(&self, key: &str) -> usize {
        let mut hash = self.seed ^ key.len() as u64;
        let mut words = key.as_bytes().chunks_exact(8);
        for word in &mut words {
            let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
            hash = (hash ^ word)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(29);
        }
        for &byte in words.remainder() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        // Fold the high bits down and multiply again: the top bits of the
        // product then depend on every bit; take those.
        let hash = (hash ^ (hash >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (hash >> 60) as usize % SHARDS
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        lock(&self.shards[self.index(key)])
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
    /// The claim, on the locked shard number `index`.
    ///
    /// The key is boxed before the lookup, so a fresh key (the usual case)
    /// is hashed once for both the lookup and the insert.
    fn claim(
        &mut self,
        index: usize,
        key: &str,
        fingerprint: &[u8],
        until: SystemTime,
        now: SystemTime,
    ) -> Claim {
        let vacant = match self.entries.entry(key.into()) {
            MapEntry::Occupied(entry) if entry.get().until > now => {
                let entry = entry.get();
                let same_fingerprint = entry.fingerprint.as_bytes() == fingerprint;
                return match entry.token {
                    Some(_) => Claim::InFlight { same_fingerprint },
                    None => Claim::Completed { same_fingerprint },
                };
            }
            entry => entry,
        };
        // Unique in the store: this shard's count, and the shard's number.
        self.tokens += 1;
        let token = (self.tokens << 4) | index as u64;
        let fresh = Entry {
            token: Some(token),
            until,
            fingerprint: Fingerprint::new(fingerprint),
        };
        match vacant {
            MapEntry::Occupied(mut expired) => {
                expired.insert(fresh);
            }
            MapEntry::Vacant(slot) => {
                slot.insert(fresh);
            }
        }
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
        let index = self.index(key);
        Ok(lock(&self.shards[index]).claim(index, key, fingerprint, until, now))
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
        let key_index = self.index(key);
        let Some(signature) = signature else {
            return Ok(lock(&self.shards[key_index]).claim(key_index, key, b"", until, now));
        };
        // Both shards stay locked from the signature's check to the key's
        // claim. Locks are taken in shard order, so two admits whose keys
        // and signatures fall in the same two shards cannot deadlock.
        let signature_index = self.index(signature.key);
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
                signature_index,
                signature.key,
                signature.event_id.as_bytes(),
                deadline(now, signature.keep),
                now,
            );
        match held {
            Claim::Acquired(_)
            | Claim::InFlight {
                same_fingerprint: true,
            }
            | Claim::Completed {
                same_fingerprint: true,
            } => Ok(key_shard.claim(key_index, key, b"", until, now)),
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

    #[test]
    fn keys_spread_over_every_shard() {
        let store = MemoryStore::new();
        // Keys that differ only in their last characters, at lengths that
        // end on and off a word boundary.
        for prefix in [
            "generic:evt_",
            "generic:evt_12345678_",
            "ns#sig:0123456789abcdef",
        ] {
            let mut counts = [0usize; SHARDS];
            for i in 0..16_000 {
                counts[store.index(&format!("{prefix}{i}"))] += 1;
            }
            for count in counts {
                assert!((500..1_500).contains(&count), "{prefix}: {counts:?}");
            }
        }
    }

    #[tokio::test]
    async fn tokens_are_unique_across_shards() {
        let store = MemoryStore::new();
        let mut tokens = std::collections::HashSet::new();
        for i in 0..1_000 {
            let Claim::Acquired(token) = store
                .claim(&format!("ns:{i}"), b"", Duration::from_secs(60))
                .await
                .unwrap()
            else {
                panic!("free key not acquired");
            };
            assert!(tokens.insert(token), "token {token:?} handed out twice");
        }
    }

    #[tokio::test]
    async fn fingerprints_inline_and_boxed_compare_whole() {
        let store = MemoryStore::new();
        let long = [7u8; 100];
        for (key, fingerprint) in [("ns:short", &long[..30]), ("ns:long", &long[..])] {
            store
                .claim(key, fingerprint, Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(
                store
                    .claim(key, fingerprint, Duration::from_secs(60))
                    .await
                    .unwrap(),
                Claim::InFlight {
                    same_fingerprint: true
                }
            );
            assert_eq!(
                store
                    .claim(key, &fingerprint[1..], Duration::from_secs(60))
                    .await
                    .unwrap(),
                Claim::InFlight {
                    same_fingerprint: false
                }
            );
        }
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
