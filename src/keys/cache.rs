//! The key cache: time to live, negative entries, single flight, timeouts.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::request::Parts;
use tokio::sync::OnceCell;

use super::{KeyError, KeySource, KeyedVerifier};
use crate::metrics;
use crate::rejection::Rejection;
use crate::verify::{VerifiedWebhook, VerifyError};

/// A cache in front of a [`KeySource`]; see the [module docs](super).
///
/// - A key is kept for [`ttl`](Self::ttl) (default 5 minutes), so a
///   rotated secret or key takes effect within that time.
/// - A key that does not exist is remembered for
///   [`negative_ttl`](Self::negative_ttl) (default 30 s), so a flood of
///   requests naming unknown keys costs one fetch per key and period.
/// - Concurrent requests for a key being fetched wait for that one fetch
///   (single flight).
/// - Each fetch is bounded by [`fetch_timeout`](Self::fetch_timeout)
///   (default 5 s). A failed or timed-out fetch is not cached: the request
///   is answered 503, and the next one tries again.
/// - At most [`max_entries`](Self::max_entries) keys are cached (default
///   10,000); past that, expired entries are dropped, and if none is, the
///   new key is used without being cached.
/// - Optionally, [`missing_fetch_interval`](Self::missing_fetch_interval)
///   bounds how often keys that turn out not to exist are fetched, for
///   sources that fetch one key per call from the sender (Plaid's
///   `/webhook_verification_key/get`): requests naming made-up `kid`s then
///   cost the sender one call per interval, not one per `kid`.
///
/// Clones share the cache.
pub struct CachedKeys<L, K> {
    inner: Arc<Inner<L, K>>,
}

struct Inner<L, K> {
    source: Box<dyn KeySource<L, K>>,
    ttl: Duration,
    negative_ttl: Duration,
    fetch_timeout: Duration,
    retry_after: Duration,
    max_entries: usize,
    missing_interval: Option<Duration>,
    last_missing: Mutex<Option<Instant>>,
    entries: Mutex<HashMap<L, Entry<K>>>,
    fetches: AtomicU64,
}

/// The outcome of one fetch, shared by everyone who waited for it.
type Fetched<K> = Result<Option<Arc<K>>, Arc<str>>;

enum Entry<K> {
    Ready { key: Option<Arc<K>>, until: Instant },
    Loading(Arc<OnceCell<Fetched<K>>>),
}

impl<L, K> Clone for CachedKeys<L, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<L, K> fmt::Debug for CachedKeys<L, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedKeys")
            .field("source", &self.inner.source)
            .field("ttl", &self.inner.ttl)
            .field("negative_ttl", &self.inner.negative_ttl)
            .field("fetch_timeout", &self.inner.fetch_timeout)
            .field("max_entries", &self.inner.max_entries)
            .field("missing_interval", &self.inner.missing_interval)
            .finish_non_exhaustive()
    }
}

impl<L, K> CachedKeys<L, K>
where
    L: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static,
    K: Send + Sync + 'static,
{
    /// The default time a key is kept: 5 minutes.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
    /// The default time a missing key is remembered: 30 s.
    pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);
    /// The default bound on each fetch: 5 s.
    pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

    /// A cache over `source`, with the defaults.
    pub fn new(source: impl KeySource<L, K>) -> Self {
        Self {
            inner: Arc::new(Inner {
                source: Box::new(source),
                ttl: Self::DEFAULT_TTL,
                negative_ttl: Self::DEFAULT_NEGATIVE_TTL,
                fetch_timeout: Self::DEFAULT_FETCH_TIMEOUT,
                retry_after: Duration::from_secs(5),
                max_entries: 10_000,
                missing_interval: None,
                last_missing: Mutex::new(None),
                entries: Mutex::new(HashMap::new()),
                fetches: AtomicU64::new(0),
            }),
        }
    }

    fn settings(&mut self) -> &mut Inner<L, K> {
        Arc::get_mut(&mut self.inner).expect("configure a CachedKeys before cloning it")
    }

    /// How long a fetched key is kept. Default 5 minutes.
    ///
    /// # Panics
    ///
    /// If called on a clone (configure the cache before sharing it).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.settings().ttl = ttl;
        self
    }

    /// How long a key that does not exist is remembered. Default 30 s.
    ///
    /// # Panics
    ///
    /// If called on a clone.
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.settings().negative_ttl = ttl;
        self
    }

    /// The most a fetch may take before the request is answered 503.
    /// Default 5 s.
    ///
    /// # Panics
    ///
    /// If called on a clone.
    #[must_use]
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.settings().fetch_timeout = timeout;
        self
    }

    /// The `Retry-After` of the 503 answered when a fetch fails. Default 5 s.
    ///
    /// # Panics
    ///
    /// If called on a clone.
    #[must_use]
    pub fn unavailable_retry_after(mut self, after: Duration) -> Self {
        self.settings().retry_after = after;
        self
    }

    /// Renamed [`unavailable_retry_after`](Self::unavailable_retry_after),
    /// the name every layer uses for the `Retry-After` of a 503.
    ///
    /// # Panics
    ///
    /// If called on a clone.
    #[deprecated(since = "0.2.0", note = "renamed `unavailable_retry_after`")]
    #[must_use]
    pub fn retry_after(self, after: Duration) -> Self {
        self.unavailable_retry_after(after)
    }

    /// The most keys (and missing keys) cached at once. Default 10,000.
    ///
    /// # Panics
    ///
    /// If called on a clone.
    #[must_use]
    pub fn max_entries(mut self, max: usize) -> Self {
        self.settings().max_entries = max;
        self
    }

    /// After a fetch found that a key does not exist, fetches no key that
    /// is not cached for `interval`: such requests are answered 503 with
    /// `Retry-After` (the sender retries) instead of reaching the source.
    /// Keys already cached, and cached keys being refreshed, are not held
    /// back. Default: off.
    ///
    /// For sources that ask the sender for one key per call (Plaid): a
    /// flood of tokens naming made-up `kid`s costs one call per interval.
    /// A new key first used within the interval is answered 503 once and
    /// found when the sender retries. Leave it off for per-tenant secrets,
    /// where an unknown tenant would hold back every uncached one.
    ///
    /// # Panics
    ///
    /// If called on a clone.
    #[must_use]
    pub fn missing_fetch_interval(mut self, interval: Duration) -> Self {
        self.settings().missing_interval = Some(interval);
        self
    }

    /// Whether a fetch of a key that is not cached is held back now.
    fn held_back(&self) -> bool {
        let Some(interval) = self.inner.missing_interval else {
            return false;
        };
        self.inner
            .last_missing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some_and(|at| at.elapsed() < interval)
    }

    /// How many fetches the source has been asked for so far.
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Forgets the key named by `locator`, so the next request fetches it
    /// again (after a rotation you know of, say).
    pub fn invalidate(&self, locator: &L) {
        self.lock().remove(locator);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<L, Entry<K>>> {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The key named by `locator`: from the cache, or fetched once for
    /// everyone asking meanwhile.
    ///
    /// # Errors
    ///
    /// [`KeyError`] if the fetch failed or timed out.
    pub async fn get(&self, locator: &L) -> Result<Option<Arc<K>>, KeyError> {
        self.lookup(locator, "none").await
    }

    /// [`get`](Self::get), counted in the metrics under `provider`.
    pub(crate) async fn lookup(
        &self,
        locator: &L,
        provider: &'static str,
    ) -> Result<Option<Arc<K>>, KeyError> {
        let cell = {
            let mut entries = self.lock();
            match entries.get(locator) {
                Some(Entry::Ready { key, until }) if *until > Instant::now() => {
                    let result = if key.is_some() { "hit" } else { "negative" };
                    metrics::key_lookup(provider, result);
                    return Ok(key.clone());
                }
                Some(Entry::Loading(cell)) => cell.clone(),
                entry => {
                    let refresh = matches!(entry, Some(Entry::Ready { key: Some(_), .. }));
                    if !refresh && self.held_back() {
                        metrics::key_lookup(provider, "held_back");
                        return Err(KeyError::new(
                            "a key that does not exist was fetched less than the missing-fetch \
                             interval ago",
                        ));
                    }
                    let cell = Arc::new(OnceCell::new());
                    entries.insert(locator.clone(), Entry::Loading(cell.clone()));
                    cell
                }
            }
        };
        metrics::key_lookup(provider, "miss");
        let fetched = cell
            .get_or_init(|| async {
                self.inner.fetches.fetch_add(1, Ordering::Relaxed);
                let fetched = tokio::time::timeout(
                    self.inner.fetch_timeout,
                    self.inner.source.fetch(locator),
                )
                .await;
                let fetched: Fetched<K> = match fetched {
                    Ok(Ok(key)) => Ok(key.map(Arc::new)),
                    Ok(Err(error)) => Err(error.to_string().into()),
                    Err(_) => Err(format!(
                        "the fetch took longer than {} ms",
                        self.inner.fetch_timeout.as_millis()
                    )
                    .into()),
                };
                let outcome = match &fetched {
                    Ok(Some(_)) => "ok",
                    Ok(None) => "missing",
                    Err(_) => "error",
                };
                metrics::key_fetch(provider, outcome);
                self.settle(locator, &fetched);
                fetched
            })
            .await
            .clone();
        fetched.map_err(|message| KeyError::new(message.to_string()))
    }

    /// Replaces the loading entry with the outcome: kept for its time to
    /// live, or removed (errors are not cached).
    fn settle(&self, locator: &L, fetched: &Fetched<K>) {
        if matches!(fetched, Ok(None)) && self.inner.missing_interval.is_some() {
            *self
                .inner
                .last_missing
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
        }
        let mut entries = self.lock();
        match fetched {
            Ok(key) => {
                let ttl = if key.is_some() {
                    self.inner.ttl
                } else {
                    self.inner.negative_ttl
                };
                if entries.len() >= self.inner.max_entries {
                    let now = Instant::now();
                    entries.retain(|_, entry| match entry {
                        Entry::Ready { until, .. } => *until > now,
                        Entry::Loading(_) => true,
                    });
                }
                if entries.len() < self.inner.max_entries || entries.contains_key(locator) {
                    entries.insert(
                        locator.clone(),
                        Entry::Ready {
                            key: key.clone(),
                            until: Instant::now() + ttl,
                        },
                    );
                } else {
                    entries.remove(locator);
                }
            }
            Err(_) => {
                entries.remove(locator);
            }
        }
    }
}

/// A verification whose key is resolved: run it on the request.
pub(crate) type Resolved =
    Box<dyn FnOnce(&Parts, &[u8]) -> Result<VerifiedWebhook, VerifyError> + Send>;

/// Resolving a request's key, as the layer awaits it.
pub(crate) type ResolveFuture =
    Pin<Box<dyn Future<Output = Result<Resolved, Rejection>> + Send + 'static>>;

/// A keyed verifier with its cache, behind one object-safe interface for the
/// layer.
pub(crate) trait Resolver: fmt::Debug + Send + Sync + 'static {
    fn provider(&self) -> &'static str;

    /// Locates the request's key and starts resolving it.
    fn resolve(&self, parts: &Parts, body: &[u8]) -> Result<ResolveFuture, VerifyError>;
}

/// A [`KeyedVerifier`] and its [`CachedKeys`].
pub(crate) struct Keyed<V: KeyedVerifier> {
    pub(crate) verifier: Arc<V>,
    pub(crate) keys: CachedKeys<V::Locator, V::Key>,
}

impl<V: KeyedVerifier> fmt::Debug for Keyed<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyed")
            .field("verifier", &self.verifier)
            .field("keys", &self.keys)
            .finish()
    }
}

impl<V: KeyedVerifier> Resolver for Keyed<V> {
    fn provider(&self) -> &'static str {
        self.verifier.provider()
    }

    fn resolve(&self, parts: &Parts, body: &[u8]) -> Result<ResolveFuture, VerifyError> {
        let locator = self.verifier.locate(parts, body)?;
        let follow_up = self.verifier.follow_up(parts, body)?;
        let verifier = self.verifier.clone();
        let keys = self.keys.clone();
        let Some(follow_up) = follow_up else {
            return Ok(Box::pin(async move {
                match keys.lookup(&locator, verifier.provider()).await {
                    Ok(Some(key)) => Ok(Box::new(move |parts: &Parts, body: &[u8]| {
                        verifier.verify(parts, body, &locator, &key)
                    }) as Resolved),
                    Ok(None) => Ok(unknown_key()),
                    Err(error) => Err(unavailable(verifier.provider(), &keys, &error)),
                }
            }));
        };
        // The follow-up runs only after the request verified, inside this
        // future: it needs its own copy of the request (rare: SNS's
        // subscription confirmations).
        let parts = parts.clone();
        let body = bytes::Bytes::copy_from_slice(body);
        Ok(Box::pin(async move {
            let provider = verifier.provider();
            let key = match keys.lookup(&locator, provider).await {
                Ok(Some(key)) => key,
                Ok(None) => return Ok(unknown_key()),
                Err(error) => return Err(unavailable(provider, &keys, &error)),
            };
            let verified = verifier.verify(&parts, &body, &locator, &key);
            if verified.is_ok() {
                let timeout = keys.inner.fetch_timeout;
                let error = match tokio::time::timeout(timeout, follow_up).await {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error),
                    Err(_) => Some(KeyError::new(format!(
                        "the follow-up took longer than {} ms",
                        timeout.as_millis()
                    ))),
                };
                if let Some(error) = error {
                    return Err(unavailable(provider, &keys, &error));
                }
            }
            Ok(Box::new(move |_: &Parts, _: &[u8]| verified) as Resolved)
        }))
    }
}

/// The verification of a request whose key does not exist.
fn unknown_key() -> Resolved {
    Box::new(|_: &Parts, _: &[u8]| {
        Err(VerifyError::Unauthorized(
            "no key is known for this request".into(),
        ))
    })
}

/// Logs `error` and answers 503 with the cache's `Retry-After`.
fn unavailable<L, K>(
    provider: &'static str,
    keys: &CachedKeys<L, K>,
    error: &KeyError,
) -> Rejection {
    tracing::warn!(provider, %error, "answering 503");
    Rejection::KeyUnavailable {
        retry_after: keys.inner.retry_after,
    }
}
