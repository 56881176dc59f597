//! The idempotency middleware: each event handled effectively once.

use std::borrow::Cow;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::{ResponseBody, reject};
use crate::idempotency::store::timed;
use crate::idempotency::{Claim, FenceToken, IdempotencyStore};
use crate::rejection::{Rejection, Responder};
use crate::verify::{VerifiedWebhook, check_event_id};

/// Chooses the idempotency key of a verified request (the part after the
/// namespace). The default is the verifier's event id.
///
/// Closures `Fn(&VerifiedWebhook, &HeaderMap) -> Option<String>` implement it.
/// A key that is not 1 to 255 printable ASCII characters is refused with 400.
pub trait KeyExtractor: Send + Sync + 'static {
    /// Returns the key, or `None` if the request has none (answered 500:
    /// a configuration error, since the verifier accepted it).
    fn extract(&self, webhook: &VerifiedWebhook, headers: &HeaderMap) -> Option<String>;
}

impl<F> KeyExtractor for F
where
    F: Fn(&VerifiedWebhook, &HeaderMap) -> Option<String> + Send + Sync + 'static,
{
    fn extract(&self, webhook: &VerifiedWebhook, headers: &HeaderMap) -> Option<String> {
        self(webhook, headers)
    }
}

/// A [`Layer`] that deduplicates verified webhook deliveries through an
/// [`IdempotencyStore`]. It goes inside a [`WebhookLayer`](super::WebhookLayer)
/// (which supplies the [`VerifiedWebhook`]); see
/// [`WebhookLayer::with_idempotency`](super::WebhookLayer::with_idempotency).
///
/// Per delivery, keyed by `namespace:event-id`:
///
/// | store says | answer |
/// |---|---|
/// | free: claimed | the handler runs; a 2xx completes the key, anything else (non-2xx, error, panic, dropped request) releases it so the sender's retry runs |
/// | completed | 200 `{"ok":true,"duplicate":true}` with `Idempotent-Replayed: true`; the handler does not run |
/// | in flight | 409 with `Retry-After`; the handler does not run |
/// | unreachable or slow | 503 with `Retry-After` (or, with [`fail_open`](Self::fail_open), the handler runs unprotected) |
///
/// **Replay guard.** When the verifier reports an event id the signature does
/// not cover (the reference scheme's `X-Event-Id`, GitHub's
/// `X-GitHub-Delivery`, Shopify's `X-Shopify-Event-Id`), the signature itself
/// is remembered (for the replay window when the scheme signs a timestamp,
/// for the retention period when it does not), keyed
/// `namespace#sig:<signature>` with the event id as fingerprint. The same
/// signature under another event id is answered 401 (`replayed-signature`):
/// the request is not what the signer sent, so it is an authentication
/// failure, not a conflict. The same signature under the same id is an
/// ordinary duplicate. (So two distinct events with byte-identical bodies,
/// signed in the same second, look like a replay: the second is refused and
/// succeeds on the sender's retry, which carries a new timestamp. Real events
/// carry their id or a creation time in the body.)
///
/// ```
/// use tower_webhooks::idempotency::MemoryStore;
/// use tower_webhooks::layer::IdempotencyLayer;
/// use tower_webhooks::{HmacVerifier, WebhookLayer};
///
/// let layer = WebhookLayer::new(HmacVerifier::generic("dev_secret_change_me"))
///     .with_idempotency(IdempotencyLayer::new(MemoryStore::new()));
/// let app: axum::Router = axum::Router::new()
///     .route("/webhooks/provider", axum::routing::post(|| async { "ok" }))
///     .route_layer(layer);
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct IdempotencyLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    store: Arc<dyn IdempotencyStore>,
    namespace: Option<Cow<'static, str>>,
    lease: Duration,
    retention: Duration,
    in_flight_retry_after: Duration,
    unavailable_retry_after: Duration,
    store_timeout: Duration,
    fail_open: bool,
    replay_window: Option<Duration>,
    key: Option<Arc<dyn KeyExtractor>>,
    responder: Option<Responder>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("store", &self.store)
            .field("namespace", &self.namespace)
            .field("lease", &self.lease)
            .field("retention", &self.retention)
            .field("store_timeout", &self.store_timeout)
            .field("fail_open", &self.fail_open)
            .field("replay_window", &self.replay_window)
            .field("custom_key", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

impl IdempotencyLayer {
    /// The default lease: how long a claim holds the key while the handler
    /// runs (60 s). Make it longer than your slowest handler.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
    /// The default retention of completed keys: 7 days, longer than the major
    /// providers' automatic retries.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
    /// The default timeout of each store call: 2 s.
    pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);
    /// The default replay window: 10 minutes, twice the default timestamp
    /// tolerance (a timestamp may be up to the tolerance in the future).
    pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(600);

    /// Deduplicates through `store`, with the defaults.
    pub fn new(store: impl IdempotencyStore) -> Self {
        Self::from_shared(Arc::new(store))
    }

    /// Deduplicates through a store shared with other layers.
    pub fn from_shared(store: Arc<dyn IdempotencyStore>) -> Self {
        Self {
            config: Arc::new(Config {
                store,
                namespace: None,
                lease: Self::DEFAULT_LEASE,
                retention: Self::DEFAULT_RETENTION,
                in_flight_retry_after: Duration::from_secs(5),
                unavailable_retry_after: Duration::from_secs(5),
                store_timeout: Self::DEFAULT_STORE_TIMEOUT,
                fail_open: false,
                replay_window: Some(Self::DEFAULT_REPLAY_WINDOW),
                key: None,
                responder: None,
            }),
        }
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Sets the namespace of the keys. The default is the verifier's
    /// provider name, so two providers' ids never collide; give each route
    /// its own namespace when two routes share a scheme (two partners on the
    /// reference scheme, say).
    ///
    /// # Panics
    ///
    /// If `namespace` is empty or contains anything but ASCII letters,
    /// digits, `-`, `_` and `.` (a `:` would make keys ambiguous).
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<Cow<'static, str>>) -> Self {
        let namespace = namespace.into();
        assert!(
            !namespace.is_empty()
                && namespace
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
            "an idempotency namespace is ASCII letters, digits, '-', '_' and '.'"
        );
        self.config().namespace = Some(namespace);
        self
    }

    /// How long a claim holds its key while the handler runs. Default 60 s.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config().lease = lease;
        self
    }

    /// How long a completed key is remembered. Default 7 days.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.config().retention = retention;
        self
    }

    /// The `Retry-After` sent with 409 (in flight). Default 5 s.
    #[must_use]
    pub fn in_flight_retry_after(mut self, after: Duration) -> Self {
        self.config().in_flight_retry_after = after;
        self
    }

    /// The `Retry-After` sent with 503 (store unavailable). Default 5 s.
    #[must_use]
    pub fn unavailable_retry_after(mut self, after: Duration) -> Self {
        self.config().unavailable_retry_after = after;
        self
    }

    /// The most each store call may take before it counts as a failure.
    /// Default 2 s.
    #[must_use]
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.config().store_timeout = timeout;
        self
    }

    /// When the store fails, run the handler anyway (unprotected: a
    /// duplicate may then run twice) instead of answering 503. Default off:
    /// the sender retries later, and nothing runs twice.
    #[must_use]
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.config().fail_open = fail_open;
        self
    }

    /// How long an accepted signature is remembered by the replay guard
    /// (`None` turns the guard off). Default 10 minutes; keep it at least
    /// twice the verifier's timestamp tolerance.
    #[must_use]
    pub fn replay_window(mut self, window: Option<Duration>) -> Self {
        self.config().replay_window = window;
        self
    }

    /// Chooses keys with `extractor` instead of the verifier's event id.
    #[must_use]
    pub fn key_extractor(mut self, extractor: impl KeyExtractor) -> Self {
        self.config().key = Some(Arc::new(extractor));
        self
    }

    /// Renders rejections with `render` (see
    /// [`WebhookLayer::on_rejection`](super::WebhookLayer::on_rejection)).
    /// Combined with [`WebhookLayer::with_idempotency`](super::WebhookLayer::with_idempotency),
    /// the verify layer's renderer is used unless this one is set.
    #[must_use]
    pub fn on_rejection<F>(mut self, render: F) -> Self
    where
        F: Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.config().responder = Some(Responder::new(render));
        self
    }

    pub(crate) fn inherit_responder(mut self, responder: &Responder) -> Self {
        if self.config.responder.is_none() {
            self.config().responder = Some(responder.clone());
        }
        self
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = IdempotencyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IdempotencyService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`IdempotencyLayer`] produces.
#[derive(Clone, Debug)]
pub struct IdempotencyService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> IdempotencyService<S> {
    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// A mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The response future of [`IdempotencyService`].
pub type IdempotencyFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for IdempotencyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = IdempotencyFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(handle(self.config.clone(), inner, request))
    }
}

async fn handle<S, ReqBody, ResBody>(
    config: Arc<Config>,
    mut inner: S,
    request: Request<ReqBody>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    let rejected = |rejection: Rejection| {
        tracing::info!(
            status = rejection.status().as_u16(),
            kind = rejection.kind(),
            "webhook answered: {rejection}"
        );
        let responder = config.responder.clone().unwrap_or_default();
        Ok(reject(&responder, &rejection))
    };
    let Some(webhook) = request.extensions().get::<VerifiedWebhook>() else {
        return rejected(Rejection::Misconfigured {
            reason: "IdempotencyLayer needs a WebhookLayer in front of it",
        });
    };
    let namespace = config.namespace.as_deref().unwrap_or(webhook.provider());
    let id = match &config.key {
        Some(extractor) => extractor.extract(webhook, request.headers()),
        None => webhook.event_id().map(str::to_owned),
    };
    let Some(id) = id else {
        return rejected(Rejection::Misconfigured {
            reason: "the verifier gives no event id to deduplicate on",
        });
    };
    if let Err(error) = check_event_id(&id, "the idempotency key") {
        return rejected(Rejection::Verify(error));
    }

    let store = &config.store;
    let unavailable = Rejection::StoreUnavailable {
        retry_after: config.unavailable_retry_after,
    };
    if let Some(window) = config.replay_window
        && !webhook.event_id_signed()
        && !webhook.signature().is_empty()
    {
        // A scheme with a timestamp bounds replays to its window; one without
        // (GitHub, Shopify) can be replayed for ever, so its signatures are
        // remembered as long as completed events are.
        let remember = if webhook.timestamp().is_some() {
            window
        } else {
            config.retention
        };
        let key = format!("{namespace}#sig:{}", hex::encode(webhook.signature()));
        {
            match timed(
                config.store_timeout,
                store.claim(&key, id.as_bytes(), remember),
            )
            .await
            {
                Ok(Claim::Acquired(_))
                | Ok(Claim::InFlight {
                    same_fingerprint: true,
                })
                | Ok(Claim::Completed {
                    same_fingerprint: true,
                }) => {}
                Ok(_) => return rejected(Rejection::ReplayedSignature),
                Err(error) if config.fail_open => {
                    tracing::warn!(%error, "idempotency store failed; replay guard skipped (fail-open)");
                }
                Err(error) => {
                    tracing::error!(%error, "idempotency store failed; answering 503");
                    return rejected(unavailable);
                }
            }
        }
    }

    let key = format!("{namespace}:{id}");
    let guard = match timed(config.store_timeout, store.claim(&key, b"", config.lease)).await {
        Ok(Claim::Acquired(token)) => Some(ClaimGuard {
            store: store.clone(),
            key,
            token,
            timeout: config.store_timeout,
            armed: true,
        }),
        Ok(Claim::Completed { .. }) => return rejected(Rejection::Duplicate),
        Ok(Claim::InFlight { .. }) => {
            return rejected(Rejection::InFlight {
                retry_after: config.in_flight_retry_after,
            });
        }
        Err(error) if config.fail_open => {
            tracing::warn!(%error, "idempotency store failed; handling without protection (fail-open)");
            None
        }
        Err(error) => {
            tracing::error!(%error, "idempotency store failed; answering 503");
            return rejected(unavailable);
        }
    };

    // A panic or a dropped future from here on drops the guard, which
    // releases the claim in the background.
    let result = inner.call(request).await;
    if let Some(guard) = guard {
        let succeeded = matches!(&result, Ok(response) if response.status().is_success());
        if succeeded {
            guard.complete(config.retention).await;
        } else {
            guard.release().await;
        }
    }
    result.map(|response| response.map(ResponseBody::forwarded))
}

/// Holds a claim while the handler runs. Completing or releasing disarms it;
/// dropped armed (panic, cancelled request), it releases in the background.
struct ClaimGuard {
    store: Arc<dyn IdempotencyStore>,
    key: String,
    token: FenceToken,
    timeout: Duration,
    armed: bool,
}

impl ClaimGuard {
    async fn complete(mut self, retention: Duration) {
        // Disarmed first: the handler succeeded, so even if this future is
        // dropped now the key must not be released (that would run it again).
        self.armed = false;
        match timed(
            self.timeout,
            self.store.complete(&self.key, self.token, retention),
        )
        .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                key = %self.key,
                "lease expired before the handler finished; another delivery may have run it too"
            ),
            Err(error) => tracing::error!(
                key = %self.key,
                %error,
                "could not mark the event completed; a redelivery after the lease may run it again"
            ),
        }
    }

    async fn release(mut self) {
        self.armed = false;
        if let Err(error) = timed(self.timeout, self.store.release(&self.key, self.token)).await {
            tracing::warn!(key = %self.key, %error, "could not release the claim; it frees when the lease expires");
        }
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.store.clone();
        let key = std::mem::take(&mut self.key);
        let token = self.token;
        let timeout = self.timeout;
        tracing::debug!(%key, "request dropped while handling; releasing the claim");
        runtime.spawn(async move {
            let _ = timed(timeout, store.release(&key, token)).await;
        });
    }
}
