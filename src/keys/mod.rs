//! Keys that are not constants: per-tenant secrets and fetched public keys.
//!
//! A [`SignatureVerifier`](crate::SignatureVerifier) holds its keys from the
//! start. Some senders need a key chosen per request: a multi-tenant service
//! holds one Stripe secret per customer account, found by a path segment or a
//! header, and changing while the service runs; senders that sign with a
//! private key name the public key to use (a `kid`, a certificate URL). Both
//! go through one step between buffering and verification:
//!
//! ```text
//! buffer -> locate (pure: tenant, kid, URL) -> resolve (async: cached) -> verify (pure)
//! ```
//!
//! - [`KeyedVerifier`]: `locate` picks a [`KeyedVerifier::Locator`] from the
//!   head (and, for schemes that name their key in the body, the body), and
//!   `verify` checks the request with the resolved [`KeyedVerifier::Key`].
//! - [`KeySource`]: fetches a key by locator (your database, a key service, an
//!   HTTPS endpoint); `Ok(None)` says the key does not exist.
//! - [`CachedKeys`]: the cache in between: a time to live, negative entries
//!   for keys that do not exist, single flight (a burst of requests for one
//!   key makes one fetch), and a timeout on each fetch.
//! - [`Tenants`]: a [`KeyedVerifier`] whose keys are whole verifiers, one per
//!   tenant, for per-tenant secrets on one route; each tenant's events get
//!   their own namespace, so one tenant can never pre-empt another's ids.
//!
//! Keys from the network come through a [`Fetcher`], the application's
//! HTTP client; only URLs that passed a [`UrlPin`] are fetched.
//!
//! # The HTTPS fetcher
//!
//! With the feature `https-fetcher`, `HttpsFetcher` is a [`Fetcher`] on
//! hyper 1 and rustls (the `ring` provider, Mozilla's roots from
//! `webpki-roots`, or roots you give it): https only, no redirects, a
//! capped body (64 KiB by default) and timeouts. Presets that fetch their
//! keys take it as they take any fetcher; `Sns::confirm_subscriptions`
//! takes it for SNS's subscription handshake.
//!
//! Sources that hold a whole key set, such as `providers::GoogleKeys`
//! (feature `pubsub`), fetch it
//! again when a request names a `kid` it lacks, at most once per refresh
//! interval, so a rotated key is found by its first request and made-up
//! `kid`s cannot make the source hammer the sender.
//!
//! [`WebhookLayer::with_keys`](crate::WebhookLayer::with_keys) puts it in
//! front of a route. A key that cannot be fetched (source down or slower
//! than the timeout) is answered 503 with `Retry-After`, never 401: the
//! request may well be authentic, and the sender retries. A key that does
//! not exist is 401.
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::Duration;
//! use tower_webhooks::keys::{CachedKeys, KeyError, KeySource, Tenants};
//! use tower_webhooks::providers::Stripe;
//! use tower_webhooks::WebhookLayer;
//!
//! /// Each tenant's Stripe secret, from the application's own records.
//! #[derive(Debug)]
//! struct Secrets(HashMap<String, String>);
//!
//! #[async_trait::async_trait]
//! impl KeySource<String, Stripe> for Secrets {
//!     async fn fetch(&self, tenant: &String) -> Result<Option<Stripe>, KeyError> {
//!         match self.0.get(tenant) {
//!             Some(secret) => Ok(Some(Stripe::new(secret.as_str()).map_err(KeyError::new)?)),
//!             None => Ok(None),
//!         }
//!     }
//! }
//!
//! // `/webhooks/stripe/{tenant}`: the tenant is the last path segment.
//! let tenants = Tenants::<Stripe, _>::new("stripe", |parts: &http::request::Parts| {
//!     parts.uri.path().rsplit('/').next().map(str::to_owned)
//! });
//! let secrets = Secrets(HashMap::from([("acme".to_owned(), "whsec_acme".to_owned())]));
//! let keys = CachedKeys::new(secrets).ttl(Duration::from_secs(60));
//! let layer = WebhookLayer::with_keys(tenants, keys);
//! # let _ = layer;
//! ```

mod cache;
mod fetch;
#[cfg(feature = "https-fetcher")]
mod https;
mod tenants;

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;

use async_trait::async_trait;
use http::request::Parts;

pub use self::cache::CachedKeys;
pub(crate) use self::cache::{Keyed, ResolveFuture, Resolver};
pub use self::fetch::{Fetcher, HostPattern, HttpsUrl, MAX_URL_LEN, UrlPin, UrlRefused};
#[cfg(feature = "https-fetcher")]
#[cfg_attr(docsrs, doc(cfg(feature = "https-fetcher")))]
pub use self::https::{HttpsFetcher, HttpsFetcherBuilder};
pub use self::tenants::Tenants;
use crate::verify::{VerifiedWebhook, VerifyError};
/// The `rustls` crate [`HttpsFetcher`] is built on (feature
/// `https-fetcher`), for its [`RootCertStore`](rustls::RootCertStore).
#[cfg(feature = "https-fetcher")]
#[cfg_attr(docsrs, doc(cfg(feature = "https-fetcher")))]
pub use rustls;

/// A verifier whose key is chosen per request and resolved asynchronously;
/// see the [module docs](self).
pub trait KeyedVerifier: fmt::Debug + Send + Sync + 'static {
    /// What names a key: a tenant, a `kid`, a certificate URL.
    type Locator: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static;
    /// The resolved key: a public key, a set of secrets, a whole verifier.
    type Key: Send + Sync + 'static;

    /// A short, stable name of the scheme (see
    /// [`SignatureVerifier::provider`](crate::SignatureVerifier::provider)).
    fn provider(&self) -> &'static str;

    /// Picks the key the request needs. Pure: no I/O. A request that names
    /// no key, or one outside what the scheme allows (a certificate URL on
    /// another host, say), is refused here, before anything is fetched.
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] (400 or 401) for a request that names no usable key.
    fn locate(&self, parts: &Parts, body: &[u8]) -> Result<Self::Locator, VerifyError>;

    /// Verifies the request with the resolved key. Pure and synchronous, like
    /// [`SignatureVerifier::verify`](crate::SignatureVerifier::verify).
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] describing the first problem found.
    fn verify(
        &self,
        parts: &Parts,
        body: &[u8],
        locator: &Self::Locator,
        key: &Self::Key,
    ) -> Result<VerifiedWebhook, VerifyError>;

    /// Work that must be done once the request has verified and before
    /// the layer answers it, such as AWS SNS's subscription confirmation
    /// (a `GET` of the message's `SubscribeURL`), or `None` (the default).
    ///
    /// Called with the request before verification, and pure: it only
    /// builds the work (a future, which does nothing until polled). The
    /// layer runs the work after the request verified with its key, and
    /// never for a request that did not; it is bounded by the cache's
    /// [`fetch_timeout`](CachedKeys::fetch_timeout), and an error or a
    /// timeout is answered 503 with `Retry-After` (the sender retries).
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] refuses the request at once, before any key is
    /// fetched (a confirmation URL off the sender's hosts, say).
    fn follow_up(&self, parts: &Parts, body: &[u8]) -> Result<Option<FollowUp>, VerifyError> {
        let _ = (parts, body);
        Ok(None)
    }
}

/// The work a [`KeyedVerifier::follow_up`] asks for: run after the request
/// verified; an error is answered 503 with `Retry-After`.
pub type FollowUp = Pin<Box<dyn Future<Output = Result<(), KeyError>> + Send + 'static>>;

/// Where keys come from: your records, a key service, an HTTPS endpoint.
///
/// The crate does not choose an HTTP client for you: a source that fetches
/// over the network uses the application's, through a [`Fetcher`] (the
/// optional `HttpsFetcher`, feature `https-fetcher`, is one).
#[async_trait]
pub trait KeySource<L, K>: fmt::Debug + Send + Sync + 'static {
    /// Fetches the key named by `locator`: `Ok(None)` when it does not exist
    /// (cached as a negative entry, answered 401).
    ///
    /// # Errors
    ///
    /// [`KeyError`] when the key cannot be fetched now (answered 503; the
    /// sender retries). Errors are not cached.
    async fn fetch(&self, locator: &L) -> Result<Option<K>, KeyError>;
}

/// Why a key could not be fetched. Its message is logged; it never reaches
/// the sender, and must not hold a secret.
#[derive(Debug, thiserror::Error)]
#[error("key unavailable: {0}")]
pub struct KeyError(#[source] crate::backend::BoxError);

impl KeyError {
    /// Wraps the source's error.
    pub fn new(error: impl Into<crate::backend::BoxError>) -> Self {
        Self(error.into())
    }
}
