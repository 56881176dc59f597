use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

pub use crate::backend::{BoxError, FenceToken, StoreError};

/// The outcome of [`IdempotencyStore::claim`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// The key was free (absent, released, its lease expired, or its retention
    /// ran out) and now belongs to the caller until the lease ends.
    Acquired(FenceToken),
    /// Another claim holds the key and its lease has not expired.
    InFlight {
        /// Whether that claim was made with the same fingerprint.
        same_fingerprint: bool,
    },
    /// The key was completed and its retention has not run out.
    Completed {
        /// Whether the completed claim was made with the same fingerprint.
        same_fingerprint: bool,
    },
    /// From [`IdempotencyStore::admit`] only: the signature is held by
    /// another event id. Nothing was written.
    Replayed,
}

/// The replay guard's half of [`IdempotencyStore::admit`]: the signature of
/// an event whose id the signature does not cover, to be held by that id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureClaim<'a> {
    /// The record's key: `namespace#sig:<hex of the signature>`.
    pub key: &'a str,
    /// The event id that holds the signature (the fingerprint of the record).
    pub event_id: &'a str,
    /// How long the record lives.
    pub keep: Duration,
}

/// Where claims live: the shared memory of every instance that may receive the
/// same event.
///
/// Per key, a store keeps this state machine:
///
/// ```text
/// absent --claim--> in_flight(token, lease_until)
/// in_flight --renew(token)--> in_flight(token, lease_until = now + lease)
/// in_flight --complete(token)--> completed(until = now + retention)
/// in_flight --release(token)--> absent
/// in_flight --lease expires--> absent (the next claim takes it; the old token is stale)
/// completed --retention expires--> absent
/// ```
///
/// Implementations must make [`claim`](Self::claim) one atomic operation (two
/// concurrent callers never both acquire), and make
/// [`complete`](Self::complete), [`release`](Self::release) and
/// [`renew`](Self::renew) change nothing unless the key is still in flight
/// under the given token. [`admit`](Self::admit) has a correct default made
/// of two claims; a store that can should override it to record the
/// signature and claim the key in one atomic operation. The
/// [conformance suite](crate::idempotency::conformance) checks all of this
/// against a real instance of the store.
///
/// Keys are `namespace:event-id`: 1 to about 300 bytes of printable ASCII.
/// Fingerprints are at most 255 bytes.
///
/// # Implementing a store
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::time::{Duration, Instant};
/// use async_trait::async_trait;
/// use tower_webhooks::idempotency::{Claim, FenceToken, IdempotencyStore, StoreError};
///
/// /// A single-process store; see `MemoryStore` for one with expiry sweeping.
/// #[derive(Debug, Default)]
/// struct MyStore {
///     entries: Mutex<HashMap<String, (Option<u64>, Vec<u8>, Instant)>>, // (token if in flight, fingerprint, until)
///     next_token: Mutex<u64>,
/// }
///
/// #[async_trait]
/// impl IdempotencyStore for MyStore {
///     async fn claim(&self, key: &str, fingerprint: &[u8], lease: Duration) -> Result<Claim, StoreError> {
///         let mut entries = self.entries.lock().unwrap();
///         let now = Instant::now();
///         if let Some((token, stored, until)) = entries.get(key) {
///             if *until > now {
///                 let same_fingerprint = stored == fingerprint;
///                 return Ok(match token {
///                     Some(_) => Claim::InFlight { same_fingerprint },
///                     None => Claim::Completed { same_fingerprint },
///                 });
///             }
///         }
///         let mut next = self.next_token.lock().unwrap();
///         *next += 1;
///         entries.insert(key.to_owned(), (Some(*next), fingerprint.to_vec(), now + lease));
///         Ok(Claim::Acquired(FenceToken::new(*next)))
///     }
///
///     async fn complete(&self, key: &str, token: FenceToken, retention: Duration) -> Result<bool, StoreError> {
///         let mut entries = self.entries.lock().unwrap();
///         match entries.get_mut(key) {
///             Some(entry) if entry.0 == Some(token.get()) && entry.2 > Instant::now() => {
///                 *entry = (None, std::mem::take(&mut entry.1), Instant::now() + retention);
///                 Ok(true)
///             }
///             _ => Ok(false),
///         }
///     }
///
///     async fn release(&self, key: &str, token: FenceToken) -> Result<bool, StoreError> {
///         let mut entries = self.entries.lock().unwrap();
///         match entries.get(key) {
///             Some(entry) if entry.0 == Some(token.get()) => {
///                 entries.remove(key);
///                 Ok(true)
///             }
///             _ => Ok(false),
///         }
///     }
///
///     async fn renew(&self, key: &str, token: FenceToken, lease: Duration) -> Result<bool, StoreError> {
///         let mut entries = self.entries.lock().unwrap();
///         match entries.get_mut(key) {
///             Some(entry) if entry.0 == Some(token.get()) && entry.2 > Instant::now() => {
///                 entry.2 = Instant::now() + lease;
///                 Ok(true)
///             }
///             _ => Ok(false),
///         }
///     }
///
///     // `admit` keeps its default: a signature claim, then the key's claim.
/// }
/// ```
///
/// With the `test-util` feature, run the conformance suite on it:
/// `tower_webhooks::idempotency_store_conformance!(MyStore::default());`
#[async_trait]
pub trait IdempotencyStore: fmt::Debug + Send + Sync + 'static {
    /// Claims `key` for `lease`, recording `fingerprint` with it, in one
    /// atomic operation.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails or times out.
    async fn claim(
        &self,
        key: &str,
        fingerprint: &[u8],
        lease: Duration,
    ) -> Result<Claim, StoreError>;

    /// Marks the claim done, to be remembered for `retention`. Returns
    /// `false` (and changes nothing) if `token` no longer holds the key.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails or times out.
    async fn complete(
        &self,
        key: &str,
        token: FenceToken,
        retention: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives the key up so the next claim acquires it. Returns `false` (and
    /// changes nothing) if `token` no longer holds the key.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails or times out.
    async fn release(&self, key: &str, token: FenceToken) -> Result<bool, StoreError>;

    /// Extends an in-flight claim's lease to `lease` from now, so a slow
    /// handler keeps its key. Returns `false` (and changes nothing) if
    /// `token` no longer holds the key or its lease already expired.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails or times out.
    async fn renew(
        &self,
        key: &str,
        token: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Admits an event: records `signature` (when the event id is not
    /// signed) for `signature.event_id`, then claims `key` for `lease`.
    ///
    /// If another event id holds a live record of the signature, returns
    /// [`Claim::Replayed`] and writes nothing. Otherwise the record is made
    /// (or kept, when the same id already holds it) and the outcome is that
    /// of [`claim`](Self::claim) with an empty fingerprint.
    ///
    /// The default makes the two steps one after the other, the signature
    /// first, so a crash between them leaves at most a record the same
    /// delivery passes again. Stores override it to make both in one round
    /// trip.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails or times out.
    async fn admit(
        &self,
        key: &str,
        lease: Duration,
        signature: Option<SignatureClaim<'_>>,
    ) -> Result<Claim, StoreError> {
        if let Some(signature) = signature {
            match self
                .claim(signature.key, signature.event_id.as_bytes(), signature.keep)
                .await?
            {
                Claim::Acquired(_)
                | Claim::InFlight {
                    same_fingerprint: true,
                }
                | Claim::Completed {
                    same_fingerprint: true,
                } => {}
                _ => return Ok(Claim::Replayed),
            }
        }
        self.claim(key, b"", lease).await
    }

    /// Deletes the claims whose lease or retention has run out, and returns
    /// how many. [`spawn_purger`](super::spawn_purger) calls it
    /// periodically.
    ///
    /// - SQLite and PostgreSQL keep expired rows until a key is claimed
    ///   again: this deletes them, in bounded steps of 1,000 rows.
    /// - [`MemoryStore`](super::MemoryStore) sweeps expired entries as it
    ///   writes; this sweeps them all at once.
    /// - Redis expires keys by their TTL: nothing to do, `Ok(0)`.
    ///
    /// The default (for stores that expire on their own) does nothing and
    /// returns `Ok(0)`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails or times out.
    async fn purge_expired(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
}

#[async_trait]
impl<T: IdempotencyStore + ?Sized> IdempotencyStore for std::sync::Arc<T> {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &[u8],
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        (**self).claim(key, fingerprint, lease).await
    }

    async fn complete(
        &self,
        key: &str,
        token: FenceToken,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        (**self).complete(key, token, retention).await
    }

    async fn release(&self, key: &str, token: FenceToken) -> Result<bool, StoreError> {
        (**self).release(key, token).await
    }

    async fn renew(
        &self,
        key: &str,
        token: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        (**self).renew(key, token, lease).await
    }

    async fn admit(
        &self,
        key: &str,
        lease: Duration,
        signature: Option<SignatureClaim<'_>>,
    ) -> Result<Claim, StoreError> {
        (**self).admit(key, lease, signature).await
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        (**self).purge_expired().await
    }
}
