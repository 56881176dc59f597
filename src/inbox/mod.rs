//! The durable inbox: acknowledge fast, process in the background, lose
//! nothing, keep an audit trail.
//!
//! Providers time out within seconds and retry, so a slow handler inside the
//! request causes more deliveries. The inbox records each verified event
//! durably and answers 200 at once; a [`Worker`] runs the handler from the
//! record. The database is the queue: the in-memory wake-up only makes
//! workers start sooner, and nothing is acknowledged before it is committed.
//!
//! ```text
//! request --verify--> insert (namespace, event id, body) --> 200 {"ok":true,"queued":true}
//!                                                  |
//! worker: claim due events under a lease --> handler --> succeeded | pending (backoff) | dead
//! ```
//!
//! | situation | answer |
//! |---|---|
//! | new event, committed | 200 `{"ok":true,"queued":true}` |
//! | id already recorded (any status) | 200 `{"ok":true,"duplicate":true}`, nothing written |
//! | same id, different body | 200 as a duplicate, logged and counted ([`Inbox::changed_body_count`]); 422 with [`Inbox::reject_changed_body`] |
//! | more pending events than [`Inbox::max_pending`] | 503 + `Retry-After`, nothing written |
//! | store unreachable or slow | 503 + `Retry-After`, nothing acknowledged |
//!
//! On a store that does not survive restarts ([`MemoryInbox`]), the accept path
//! answers only after the handler succeeded (500 if it failed, 409 for a
//! duplicate still in progress), unless told to
//! [acknowledge first](Inbox::acknowledge_before_handling).
//!
//! ```
//! use tower::ServiceBuilder;
//! use tower_webhooks::inbox::{HandlerError, Inbox, InboxEvent, MemoryInbox};
//! use tower_webhooks::{HmacVerifier, WebhookLayer};
//!
//! async fn handle(event: InboxEvent) -> Result<(), HandlerError> {
//!     println!("processing {} (attempt {})", event.id(), event.attempt);
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let inbox = Inbox::new(MemoryInbox::new());
//! let worker = inbox.worker(handle).spawn();
//! let endpoint = ServiceBuilder::new()
//!     .layer(WebhookLayer::new(HmacVerifier::generic("dev_secret_change_me").unwrap()))
//!     .service(inbox.accept());
//! let app: axum::Router = axum::Router::new().route_service("/webhooks/provider", endpoint);
//! # let _ = app;
//! worker.shutdown().await;
//! # }
//! ```
//!
//! # Lanes
//!
//! Events that must be handled in order (a customer's `customer.updated`
//! after its `customer.deleted`, a push after its branch's creation) share a
//! *lane*: an optional ordering key per event, read from the verified
//! request by [`Inbox::order_by`] ([`OrderBy`]: a header, a JSON pointer into
//! the body such as Stripe's `/data/object/id` or GitHub's `/repository/id`,
//! or a function of yours). Lanes are per namespace.
//!
//! - *Earlier* means recorded earlier: the order in which the store recorded
//!   the events (insertion order), not the order of their timestamps.
//! - A worker never claims an event while an earlier event of its lane is
//!   `pending` or `processing`, nor while another event of its lane is
//!   `processing`: a lane runs one event at a time, in order. Retries keep
//!   the lane waiting (with backoff), and a lease that expires leaves the
//!   event at the front of its lane for the next claim.
//! - A `dead` event blocks its lane by default ([`DeadLetters::Block`]):
//!   the later events wait ([`LaneState::Waiting`]) until an operator
//!   requeues it ([`InboxStore::requeue`]: it runs first) or skips it
//!   ([`InboxStore::skip`]: the lane moves on). With
//!   [`Worker::dead_letters`]`(`[`DeadLetters::Skip`]`)` the worker skips
//!   each event it kills. Purges keep a blocking event.
//! - An event without a key (header absent, JSON `null`, a body that is not
//!   JSON) is unordered, as is every event of an inbox without `order_by`.
//!   Keys are bounded: one over [`MAX_LANE_LEN`] bytes, or not UTF-8, is
//!   replaced by its SHA-256 (see [`OrderBy`]).
//! - The audit trail shows each event's lane and [`LaneState`]
//!   ([`EventRecord::lane_state`]): the head, waiting, blocking, skipped, done.
//! - Unordered events are claimed exactly as before; the events waiting in
//!   a lane are not even looked at by a claim (each store keeps a flag on
//!   the lane's claimable head, maintained on insert and on every exit from
//!   `processing`).
//! - A requeue or a replay of an event earlier than one already running in
//!   its lane does not interrupt that one: the requeued event runs next.

mod accept;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod conformance;
mod lanes;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
pub(crate) mod purger;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod worker;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, Response};
use tokio::sync::{Notify, oneshot};

pub use self::accept::{AcceptFuture, AcceptService};
pub use self::lanes::{DeadLetters, MAX_LANE_LEN, OrderBy, OrderBySpecError};
pub use self::memory::MemoryInbox;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use self::postgres::{PostgresInbox, PostgresInboxBuilder};
pub use self::purger::{
    DEFAULT_PURGE_BATCH, DEFAULT_PURGE_INTERVAL, DEFAULT_PURGE_PAUSE, Retention, TaskHandle,
};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use self::sqlite::{SqliteInbox, SqliteInboxBuilder};
pub use self::store::{
    Attempt, AttemptOutcome, ClaimOptions, ClaimedEvent, EventKey, EventRecord, EventStatus,
    FenceToken, InboxStore, Inserted, LaneState, ListCursor, ListFilter, MAX_HISTORY, NewEvent,
    PurgeBatch, Purged, Selection, SignatureRecord, StatusCounts, StoreError,
};
pub use self::worker::{Handler, HandlerError, InboxEvent, ServiceHandler, Worker, WorkerHandle};
use crate::rejection::{Rejection, Responder};

/// How long finished events are kept by default: 30 days, longer than any
/// major provider's retry or manual-redelivery window.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// State shared by an inbox's accept path and its workers.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn InboxStore>,
    /// Wakes an idle worker when an event is recorded.
    pub(crate) wake: Notify,
    /// Accepts waiting for their event's first outcome (non-durable stores).
    waiters: Mutex<HashMap<EventKey, oneshot::Sender<bool>>>,
    pending_estimate: AtomicU64,
    refreshed: Mutex<Option<Instant>>,
    changed_bodies: AtomicU64,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<EventKey, oneshot::Sender<bool>>> {
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn watch(&self, key: &EventKey) -> oneshot::Receiver<bool> {
        let (sender, receiver) = oneshot::channel();
        self.waiters().insert(key.clone(), sender);
        receiver
    }

    fn unwatch(&self, key: &EventKey) {
        self.waiters().remove(key);
    }

    /// Tells a waiting accept how the event's attempt ended.
    pub(crate) fn finished(&self, key: &EventKey, succeeded: bool) {
        if let Some(waiter) = self.waiters().remove(key) {
            let _ = waiter.send(succeeded);
        }
    }
}

#[derive(Clone)]
pub(crate) struct Config {
    keep_headers: Vec<HeaderName>,
    max_pending: Option<u64>,
    reject_changed_body: bool,
    acknowledge_first: bool,
    store_timeout: Duration,
    in_flight_retry_after: Duration,
    unavailable_retry_after: Duration,
    handled_timeout: Duration,
    responder: Responder,
    order_by: Option<OrderBy>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("keep_headers", &self.keep_headers)
            .field("max_pending", &self.max_pending)
            .field("reject_changed_body", &self.reject_changed_body)
            .field("acknowledge_first", &self.acknowledge_first)
            .field("store_timeout", &self.store_timeout)
            .field("order_by", &self.order_by)
            .finish_non_exhaustive()
    }
}

/// An inbox: the accept path ([`accept`](Self::accept)), the workers
/// ([`worker`](Self::worker)) and the audit trail ([`store`](Self::store))
/// over one [`InboxStore`]. See the [module docs](self).
///
/// Clones share everything.
#[derive(Clone, Debug)]
pub struct Inbox {
    shared: Arc<Shared>,
    config: Arc<Config>,
}

impl Inbox {
    /// An inbox over `store`.
    pub fn new(store: impl InboxStore) -> Self {
        Self::from_shared(Arc::new(store))
    }

    /// An inbox over a shared store.
    pub fn from_shared(store: Arc<dyn InboxStore>) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                wake: Notify::new(),
                waiters: Mutex::new(HashMap::new()),
                pending_estimate: AtomicU64::new(0),
                refreshed: Mutex::new(None),
                changed_bodies: AtomicU64::new(0),
            }),
            config: Arc::new(Config {
                keep_headers: vec![http::header::CONTENT_TYPE],
                max_pending: None,
                reject_changed_body: false,
                acknowledge_first: false,
                store_timeout: crate::backend::DEFAULT_STORE_TIMEOUT,
                in_flight_retry_after: Duration::from_secs(5),
                unavailable_retry_after: Duration::from_secs(5),
                handled_timeout: Duration::from_secs(30),
                responder: Responder::default(),
                order_by: None,
            }),
        }
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Keeps this request header with the event, for the handler
    /// (`Content-Type` is kept by default). GitHub's `X-GitHub-Event`, for
    /// example, names the event type.
    #[must_use]
    pub fn keep_header(mut self, name: HeaderName) -> Self {
        self.config().keep_headers.push(name);
        self
    }

    /// Answers 503 with `Retry-After`, before writing anything, while this
    /// many events are pending. The count is refreshed from the store every
    /// 100 ms, so the cap is approximate under bursts. Default: no cap.
    #[must_use]
    pub fn max_pending(mut self, cap: u64) -> Self {
        self.config().max_pending = Some(cap);
        self
    }

    /// Answers 422 (instead of 200) when an id already recorded arrives with
    /// a different body. Default off: such deliveries are logged, counted,
    /// and acknowledged as duplicates.
    #[must_use]
    pub fn reject_changed_body(mut self, reject: bool) -> Self {
        self.config().reject_changed_body = reject;
        self
    }

    /// On a store that does not survive restarts, acknowledge as soon as the
    /// event is recorded (an event can then be lost in a crash). Durable
    /// stores always acknowledge first.
    #[must_use]
    pub fn acknowledge_before_handling(mut self, acknowledge: bool) -> Self {
        self.config().acknowledge_first = acknowledge;
        self
    }

    /// The most a store call on the accept path may take before it counts
    /// as a failure (503). Default
    /// [`backend::DEFAULT_STORE_TIMEOUT`](crate::backend::DEFAULT_STORE_TIMEOUT),
    /// 5 s, the same for every layer.
    #[must_use]
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.config().store_timeout = timeout;
        self
    }

    /// The `Retry-After` sent with 409 (the event is being recorded or
    /// processed right now). Default 5 s.
    #[must_use]
    pub fn in_flight_retry_after(mut self, after: Duration) -> Self {
        self.config().in_flight_retry_after = after;
        self
    }

    /// The `Retry-After` sent with 503 (the store is unavailable, slow or
    /// full, or too many events are pending). Default 5 s.
    #[must_use]
    pub fn unavailable_retry_after(mut self, after: Duration) -> Self {
        self.config().unavailable_retry_after = after;
        self
    }

    /// Sets both [`in_flight_retry_after`](Self::in_flight_retry_after) and
    /// [`unavailable_retry_after`](Self::unavailable_retry_after).
    #[deprecated(
        since = "0.2.0",
        note = "use `in_flight_retry_after` and `unavailable_retry_after`, the names every layer uses"
    )]
    #[must_use]
    pub fn retry_after(self, after: Duration) -> Self {
        self.in_flight_retry_after(after)
            .unavailable_retry_after(after)
    }

    /// Renders rejections with `render` (see
    /// [`WebhookLayer::on_rejection`](crate::WebhookLayer::on_rejection)).
    #[must_use]
    pub fn on_rejection<F>(mut self, render: F) -> Self
    where
        F: Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.config().responder = Responder::new(render);
        self
    }

    /// Puts each event in the lane `order` reads from the verified request:
    /// see [Lanes](self#lanes). The store must
    /// [support lanes](InboxStore::supports_lanes).
    #[must_use]
    pub fn order_by(mut self, order: OrderBy) -> Self {
        self.config().order_by = Some(order);
        self
    }

    /// The accept endpoint: put a [`WebhookLayer`](crate::WebhookLayer) in
    /// front of it.
    pub fn accept(&self) -> AcceptService {
        AcceptService {
            shared: self.shared.clone(),
            config: self.config.clone(),
        }
    }

    /// A worker running `handler` over this inbox's events (start it with
    /// [`Worker::spawn`]). Events accepted through this inbox wake it at once.
    pub fn worker(&self, handler: impl Handler) -> Worker {
        Worker::new(self.shared.clone(), Arc::new(handler))
    }

    /// The store, for the audit trail: `get`, `list`, `requeue`, `purge`.
    pub fn store(&self) -> &Arc<dyn InboxStore> {
        &self.shared.store
    }

    /// How many deliveries reused a recorded event id with a different body.
    pub fn changed_body_count(&self) -> u64 {
        self.shared.changed_bodies.load(Ordering::Relaxed)
    }
}
