//! The idempotency middleware: each event handled effectively once.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::{ResponseBody, reject};
use crate::admission::{Namespace, RouteTag, Routes, Ticket};
use crate::backend::timed;
use crate::idempotency::{Claim, FenceToken, IdempotencyStore};
use crate::metrics;
use crate::rejection::{Rejection, Responder};
use crate::verify::VerifiedWebhook;

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
/// The key is the route's namespace and event id, and the replay guard
/// (a signature reused under another event id: 401 `replayed-signature`) is
/// admitted in the same store call as the claim; see
/// [`admission`](crate::admission). A slow handler's claim is renewed every
/// half lease, and once the handler succeeded its completion is recorded
/// even if the client disconnects.
///
/// ```
/// use tower_webhooks::idempotency::MemoryStore;
/// use tower_webhooks::layer::IdempotencyLayer;
/// use tower_webhooks::{HmacVerifier, WebhookLayer};
///
/// let layer = WebhookLayer::new(HmacVerifier::generic("dev_secret_change_me").unwrap())
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
    lease: Duration,
    retention: Duration,
    in_flight_retry_after: Duration,
    unavailable_retry_after: Duration,
    store_timeout: Duration,
    fail_open: bool,
    responder: Option<Responder>,
    /// The route and namespace that last passed [`Routes::check`] on this
    /// store. Once a live route owns a namespace it keeps it, so its later
    /// requests skip the process-wide lock. The `Weak` keeps the tag's
    /// address from being reused by another route.
    checked: OnceLock<(Weak<RouteTag>, Namespace)>,
}

impl Config {
    /// [`Routes::check`], skipped for the route and namespace that already
    /// passed it.
    fn check_route(&self, ticket: &Ticket) -> Result<(), Rejection> {
        if let Some((route, namespace)) = self.checked.get()
            && Weak::as_ptr(route) == Arc::as_ptr(&ticket.route)
            && *namespace == ticket.namespace
        {
            return Ok(());
        }
        Routes::check(&self.store, &ticket.namespace, &ticket.route)?;
        let _ = self
            .checked
            .set((Arc::downgrade(&ticket.route), ticket.namespace.clone()));
        Ok(())
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("store", &self.store)
            .field("lease", &self.lease)
            .field("retention", &self.retention)
            .field("store_timeout", &self.store_timeout)
            .field("fail_open", &self.fail_open)
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
    /// The default timeout of each store call:
    /// [`backend::DEFAULT_STORE_TIMEOUT`](crate::backend::DEFAULT_STORE_TIMEOUT), 5 s.
    pub const DEFAULT_STORE_TIMEOUT: Duration = crate::backend::DEFAULT_STORE_TIMEOUT;

    /// Deduplicates through `store`, with the defaults.
    pub fn new(store: impl IdempotencyStore) -> Self {
        Self::from_shared(Arc::new(store))
    }

    /// Deduplicates through a store shared with other layers.
    pub fn from_shared(store: Arc<dyn IdempotencyStore>) -> Self {
        Self {
            config: Arc::new(Config {
                store,
                lease: Self::DEFAULT_LEASE,
                retention: Self::DEFAULT_RETENTION,
                in_flight_retry_after: Duration::from_secs(5),
                unavailable_retry_after: Duration::from_secs(5),
                store_timeout: Self::DEFAULT_STORE_TIMEOUT,
                fail_open: false,
                responder: None,
                checked: OnceLock::new(),
            }),
        }
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// How long a claim holds its key while the handler runs, renewed every
    /// half lease while the handler is still running. Default 60 s.
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

    /// The most each store call may take before it counts as a failure
    /// (503). Default [`DEFAULT_STORE_TIMEOUT`](Self::DEFAULT_STORE_TIMEOUT),
    /// 5 s, the same for every layer.
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
    let provider = request
        .extensions()
        .get::<VerifiedWebhook>()
        .map_or("unknown", VerifiedWebhook::provider);
    let Some(ticket) = request.extensions().get::<Ticket>() else {
        let rejection = Rejection::Misconfigured {
            reason: "IdempotencyLayer needs a WebhookLayer in front of it",
        };
        metrics::rejected(provider, "unknown", &rejection);
        let responder = config.responder.clone().unwrap_or_default();
        return Ok(reject(&responder, &rejection));
    };
    let namespace = ticket.namespace.clone();
    let rejected = |rejection: Rejection| {
        metrics::rejected(provider, namespace.as_str(), &rejection);
        let responder = config.responder.clone().unwrap_or_default();
        Ok(reject(&responder, &rejection))
    };
    if let Err(rejection) = config.check_route(ticket) {
        return rejected(rejection);
    }
    let key = ticket.key();
    let signature_key = ticket.signature_key();
    // Without a signed timestamp the request verifies for ever: the record
    // lives as long as the event's own key.
    let signature = ticket.signature_claim(
        signature_key.as_deref(),
        config.retention.saturating_add(config.lease),
    );

    let store = &config.store;
    let admitted = timed(
        config.store_timeout,
        store.admit(&key, config.lease, signature),
    )
    .await;
    let guard = match admitted {
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
        Ok(Claim::Replayed) => return rejected(Rejection::ReplayedSignature),
        Err(error) if config.fail_open => {
            tracing::warn!(%error, "idempotency store failed; handling without protection (fail-open)");
            None
        }
        Err(error) => {
            tracing::error!(%error, "idempotency store failed; answering 503");
            return rejected(Rejection::StoreUnavailable {
                retry_after: config.unavailable_retry_after,
            });
        }
    };

    // A panic or a dropped future from here on drops the guard, which
    // releases the claim in the background.
    let call = inner.call(request);
    let result = match &guard {
        Some(guard) => renewing(call, guard, config.lease).await,
        None => call.await,
    };
    let succeeded = matches!(&result, Ok(response) if response.status().is_success());
    let outcome = if succeeded {
        "handled"
    } else {
        "handler_error"
    };
    metrics::request(provider, namespace.as_str(), outcome);
    if let Some(guard) = guard {
        // Disarmed now: from here on the outcome is recorded even if this
        // future is dropped (the client disconnected), in a task of its own
        // unless the store answers at once.
        let settle = guard.settle(succeeded.then_some(config.retention));
        let mut settle = Box::pin(settle);
        if poll_once(settle.as_mut()).await.is_pending() {
            let _ = tokio::spawn(settle).await;
        }
    }
    result.map(|response| response.map(ResponseBody::forwarded))
}

/// Polls `future` once.
async fn poll_once<F: Future + Unpin>(mut future: F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx))).await
}

/// Runs the handler, renewing the claim every half lease while it runs. A
/// handler that finishes on its first poll never arms a timer.
async fn renewing<F: Future>(future: F, guard: &ClaimGuard, lease: Duration) -> F::Output {
    let mut future = std::pin::pin!(future);
    if let Poll::Ready(output) = poll_once(future.as_mut()).await {
        return output;
    }
    let every = (lease / 2).max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut renewing = true;
    loop {
        tokio::select! {
            output = future.as_mut() => return output,
            _ = ticker.tick(), if renewing => {
                match timed(guard.timeout, guard.store.renew(&guard.key, guard.token, lease)).await {
                    Ok(true) => {}
                    Ok(false) => {
                        renewing = false;
                        tracing::warn!(key = %guard.key, "lost the claim while the handler runs; another delivery may run it too");
                    }
                    Err(error) => tracing::warn!(key = %guard.key, %error, "could not renew the claim"),
                }
            }
        }
    }
}

/// Holds a claim while the handler runs. Settling disarms it; dropped armed
/// (panic, cancelled request), it releases in the background.
struct ClaimGuard {
    store: Arc<dyn IdempotencyStore>,
    key: String,
    token: FenceToken,
    timeout: Duration,
    armed: bool,
}

impl ClaimGuard {
    /// Completes the claim (to be kept for `retention`) or, with `None`,
    /// releases it. The returned future owns everything it needs.
    fn settle(mut self, retention: Option<Duration>) -> impl Future<Output = ()> + Send + 'static {
        self.armed = false;
        let store = self.store.clone();
        let key = std::mem::take(&mut self.key);
        let (token, timeout) = (self.token, self.timeout);
        async move {
            match retention {
                Some(retention) => {
                    match timed(timeout, store.complete(&key, token, retention)).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(
                            %key,
                            "lease expired before the handler finished; another delivery may have run it too"
                        ),
                        Err(error) => tracing::error!(
                            %key,
                            %error,
                            "could not mark the event completed; a redelivery after the lease may run it again"
                        ),
                    }
                }
                None => {
                    if let Err(error) = timed(timeout, store.release(&key, token)).await {
                        tracing::warn!(%key, %error, "could not release the claim; it frees when the lease expires");
                    }
                }
            }
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
