//! The verification middleware: buffer the body within a limit, verify it,
//! forward the verified bytes.
//!
//! [`WebhookLayer`] wraps a service that takes `Request<Full<Bytes>>` (axum
//! routes and handlers, hyper services, anything `tower`). For each request it:
//!
//! 1. refuses a `Content-Length` above the limit with 413 before reading a byte;
//! 2. buffers the body, cutting off a chunked body at the limit (413), a body
//!    that fails mid-stream (400) and one that takes longer than the read
//!    timeout (408);
//! 3. verifies the signature over exactly those bytes (400 or 401 on failure);
//! 4. forwards the same bytes, with the [`VerifiedWebhook`] in the request's
//!    extensions. When the scheme gives no event id, the layer derives one
//!    from the body (`sha256:<32 hex digits>`; see
//!    [`VerifiedWebhook::event_id`](crate::VerifiedWebhook::event_id)).
//!
//! Every refusal is a response (see [`rejection`](crate::rejection)), so the
//! service's error type is the inner service's and axum takes the layer as it
//! is.
//!
//! ```
//! use axum::{Router, routing::post, Extension};
//! use tower_webhooks::{HmacVerifier, VerifiedWebhook, WebhookLayer};
//!
//! async fn handle(Extension(webhook): Extension<VerifiedWebhook>, body: axum::body::Bytes) -> &'static str {
//!     println!("event {:?}: {} bytes", webhook.event_id(), body.len());
//!     "ok"
//! }
//!
//! let app: Router = Router::new()
//!     .route("/webhooks/provider", post(handle))
//!     .route_layer(WebhookLayer::new(HmacVerifier::generic("dev_secret_change_me").unwrap()));
//! # let _ = app;
//! ```
//!
//! [`VerifiedWebhook`]: crate::VerifiedWebhook

mod body;
mod future;
mod idempotency;
mod service;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use tower_layer::{Layer, Stack};

pub use self::body::ResponseBody;
pub use self::future::ResponseFuture;
pub use self::idempotency::{IdempotencyFuture, IdempotencyLayer, IdempotencyService};
pub use self::service::WebhookService;
pub use crate::admission::KeyExtractor;
use crate::admission::{DEFAULT_REPLAY_WINDOW, Namespace, TicketConfig};
use crate::handshake::Handshake;
use crate::keys::{CachedKeys, Keyed, KeyedVerifier, Resolver};
use crate::rejection::{Rejection, Responder};
use crate::verify::SignatureVerifier;

/// A [`Layer`] that verifies webhook requests; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct WebhookLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) verifier: Verifier,
    pub(crate) body_limit: usize,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) responder: Responder,
    pub(crate) admission: TicketConfig,
    pub(crate) handshake: Option<Arc<dyn Handshake>>,
}

impl WebhookLayer {
    /// The default body limit: 1 MiB.
    pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
    /// The default time allowed for the whole body to arrive: 30 s.
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

    /// Verifies requests with `verifier`, with the default limits.
    pub fn new(verifier: impl SignatureVerifier) -> Self {
        Self::from_shared(Arc::new(verifier))
    }

    /// Verifies requests with a verifier shared with other layers.
    pub fn from_shared(verifier: Arc<dyn SignatureVerifier>) -> Self {
        Self::with_verifier(Verifier::Fixed(verifier))
    }

    /// Verifies requests with keys chosen per request: `verifier` locates
    /// each request's key, `keys` resolves it (cached), then `verifier`
    /// checks the request with it. A key that cannot be fetched is answered
    /// 503 with `Retry-After`; see [`keys`](crate::keys).
    pub fn with_keys<V: KeyedVerifier>(verifier: V, keys: CachedKeys<V::Locator, V::Key>) -> Self {
        Self::with_verifier(Verifier::Keyed(Arc::new(Keyed {
            verifier: Arc::new(verifier),
            keys,
        })))
    }

    fn with_verifier(verifier: Verifier) -> Self {
        Self {
            config: Arc::new(Config {
                verifier,
                body_limit: Self::DEFAULT_BODY_LIMIT,
                read_timeout: Some(Self::DEFAULT_READ_TIMEOUT),
                responder: Responder::default(),
                admission: TicketConfig::new(DEFAULT_REPLAY_WINDOW),
                handshake: None,
            }),
        }
    }

    /// Sets the largest body accepted, in bytes. Default 1 MiB.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.config).body_limit = bytes;
        self
    }

    /// Sets how long the whole body may take to arrive (`None`: no limit).
    /// Default 30 s. A sender that trickles its body slower is answered 408.
    ///
    /// The timer needs a Tokio runtime with the time driver enabled.
    #[must_use]
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        Arc::make_mut(&mut self.config).read_timeout = timeout;
        self
    }

    /// The namespace of this route's event ids in every store behind it.
    /// Default: the verifier's provider name.
    ///
    /// Give each route its own when two routes share a store (two partners
    /// on the reference scheme, two GitHub organisations): a store refuses a
    /// second live route on the same namespace with 500, so one sender can
    /// never pre-empt another's ids. Clones of one layer are one route.
    #[must_use]
    pub fn namespace(mut self, namespace: Namespace) -> Self {
        Arc::make_mut(&mut self.config).admission.namespace = Some(namespace);
        self
    }

    /// Chooses event ids with `extractor` instead of the verifier's. Such an
    /// id counts as unsigned: its signature is admitted with it (see
    /// [`admission`](crate::admission)).
    #[must_use]
    pub fn key_extractor(mut self, extractor: impl crate::admission::KeyExtractor) -> Self {
        Arc::make_mut(&mut self.config).admission.key = Some(Arc::new(extractor));
        self
    }

    /// How long a signature accepted with an unsigned id is remembered when
    /// the scheme signs a timestamp. Default 10 minutes; keep it at least
    /// twice the verifier's tolerance (a timestamp may be that far ahead).
    /// Schemes without a timestamp keep it as long as the event's record.
    #[must_use]
    pub fn replay_window(mut self, window: Duration) -> Self {
        Arc::make_mut(&mut self.config).admission.replay_window = window;
        self
    }

    /// Answers the sender's endpoint handshake on this route (Slack's
    /// `url_verification`, Discord's `PING`, ...): see
    /// [`Handshake`](crate::handshake::Handshake). A
    /// handshake never reaches the handler or any store. Without it, such
    /// requests are admitted as events (or refused, if they are not signed).
    #[must_use]
    pub fn handshake(mut self, handshake: impl Handshake) -> Self {
        Arc::make_mut(&mut self.config).handshake = Some(Arc::new(handshake));
        self
    }

    /// Renders rejections with `render` instead of [`problem_response`].
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::Response;
    /// use tower_webhooks::rejection::{problem_response, Rejection};
    /// use tower_webhooks::{HmacVerifier, WebhookLayer};
    ///
    /// // Answer signature failures with an empty 403, everything else as usual.
    /// let layer = WebhookLayer::new(HmacVerifier::generic("secret").unwrap()).on_rejection(|rejection: &Rejection| {
    ///     if rejection.status() == 401 {
    ///         let mut response = Response::new(Bytes::new());
    ///         *response.status_mut() = http::StatusCode::FORBIDDEN;
    ///         return response;
    ///     }
    ///     problem_response(rejection)
    /// });
    /// # let _ = layer;
    /// ```
    ///
    /// [`problem_response`]: crate::rejection::problem_response
    #[must_use]
    pub fn on_rejection<F>(mut self, render: F) -> Self
    where
        F: Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.config).responder = Responder::new(render);
        self
    }

    /// Adds deduplication behind verification: the returned layer verifies,
    /// then claims the event in `idempotency`'s store before the handler runs.
    /// `idempotency` renders rejections with this layer's renderer unless it
    /// has its own.
    pub fn with_idempotency(self, idempotency: IdempotencyLayer) -> Stack<IdempotencyLayer, Self> {
        let idempotency = idempotency.inherit_responder(&self.config.responder);
        Stack::new(idempotency, self)
    }

    /// The verifier in use, unless the layer resolves keys per request
    /// ([`with_keys`](Self::with_keys)).
    pub fn verifier(&self) -> Option<&Arc<dyn SignatureVerifier>> {
        match &self.config.verifier {
            Verifier::Fixed(verifier) => Some(verifier),
            Verifier::Keyed(_) => None,
        }
    }
}

impl<S> Layer<S> for WebhookLayer {
    type Service = WebhookService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WebhookService::new(inner, self.config.clone())
    }
}

/// How a layer verifies: with fixed keys, or with keys resolved per request.
#[derive(Clone, Debug)]
pub(crate) enum Verifier {
    Fixed(Arc<dyn SignatureVerifier>),
    Keyed(Arc<dyn Resolver>),
}

impl Verifier {
    pub(crate) fn provider(&self) -> &'static str {
        match self {
            Self::Fixed(verifier) => verifier.provider(),
            Self::Keyed(resolver) => resolver.provider(),
        }
    }
}

/// Renders `rejection` into the crate's response body type.
pub(crate) fn reject<B>(responder: &Responder, rejection: &Rejection) -> Response<ResponseBody<B>> {
    responder.respond(rejection).map(ResponseBody::rejection)
}
