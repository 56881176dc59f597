use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

pub use crate::admission::SignatureRecord;
pub use crate::backend::{FenceToken, StoreError};

/// Identifies an event: the namespace (by default the provider) and the
/// sender's event id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKey {
    /// The namespace, such as `"stripe"`.
    pub namespace: String,
    /// The sender's event id.
    pub event_id: String,
}

impl EventKey {
    /// A key from its parts.
    pub fn new(namespace: impl Into<String>, event_id: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            event_id: event_id.into(),
        }
    }
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.namespace, self.event_id)
    }
}

/// Where an event is in its life.
///
/// ```text
/// pending -> processing -> succeeded
///               |  \-----> dead (permanent error, or retry budget spent) --requeue--> pending
///               \--------> pending (retryable error, panic, timeout: backoff; shutdown: attempt given back)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventStatus {
    /// Recorded, waiting to be processed (or to be retried).
    Pending,
    /// Claimed by a worker, under a lease.
    Processing,
    /// The handler succeeded.
    Succeeded,
    /// Given up on: the handler failed permanently or ran out of attempts.
    Dead,
}

impl EventStatus {
    /// The status as stored and shown: `pending`, `processing`, `succeeded`, `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s output.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "pending" => Self::Pending,
            "processing" => Self::Processing,
            "succeeded" => Self::Succeeded,
            "dead" => Self::Dead,
            _ => return None,
        })
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified event to record.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// Its key.
    pub key: EventKey,
    /// The verified body bytes.
    pub body: Bytes,
    /// The request headers kept for the handler (name, value).
    pub headers: Vec<(String, String)>,
    /// When it arrived.
    pub received_at: SystemTime,
    /// For an event whose id the signature does not cover: the signature to
    /// admit with it (see [`InboxStore::insert`]).
    pub signature: Option<SignatureRecord>,
    /// The W3C `traceparent` the request carried, kept so the worker's span
    /// can follow the request's trace.
    pub traceparent: Option<String>,
    /// The event's ordering key (see [Lanes](super#lanes)): `None` for an
    /// unordered event. The accept path computes it with
    /// [`Inbox::order_by`](super::Inbox::order_by); lanes are per namespace.
    pub lane: Option<String>,
}

/// The outcome of [`InboxStore::insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inserted {
    /// Recorded for the first time: it will be processed.
    New,
    /// Already recorded (in any status); nothing was written.
    Duplicate {
        /// Whether the recorded body is byte for byte the same.
        same_body: bool,
    },
    /// The event's signature is held by another event id of the namespace:
    /// the request is a replay. Nothing was written.
    Replayed,
}

/// How a worker claims events.
#[derive(Clone, Copy, Debug)]
pub struct ClaimOptions {
    /// Most events to claim.
    pub limit: usize,
    /// How long the claim lasts unless renewed.
    pub lease: Duration,
    /// The retry budget: an event whose lease expired after this many
    /// attempts is moved to `dead` instead of being claimed again (a poison
    /// pill that kills the process every time must not loop forever).
    pub max_attempts: u32,
}

/// An event claimed by a worker.
#[derive(Clone, Debug)]
pub struct ClaimedEvent {
    /// Its key.
    pub key: EventKey,
    /// The verified body bytes.
    pub body: Bytes,
    /// The headers kept for the handler.
    pub headers: Vec<(String, String)>,
    /// When it arrived.
    pub received_at: SystemTime,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// The fence of this claim: every exit from `processing` presents it, and
    /// a newer claim has a higher one.
    pub fence: FenceToken,
    /// The `traceparent` recorded with the event.
    pub traceparent: Option<String>,
    /// Whether an operator asked for this run of a finished event
    /// ([`InboxStore::replay`]).
    pub replay: bool,
    /// The event's lane, if it has one.
    pub lane: Option<String>,
}

/// How one attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The handler succeeded.
    Succeeded,
    /// The handler failed (an error, a panic, a timeout); the event is tried
    /// again later.
    Failed,
    /// The handler failed and the event went `dead` (a permanent error, or
    /// the retry budget spent).
    Dead,
    /// A graceful shutdown gave the event back.
    GivenBack,
    /// The lease expired before the attempt ended (the worker crashed or
    /// stalled).
    Expired,
}

impl AttemptOutcome {
    /// As stored and shown: `succeeded`, `failed`, `dead`, `given_back`,
    /// `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::GivenBack => "given_back",
            Self::Expired => "expired",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s output.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "dead" => Self::Dead,
            "given_back" => Self::GivenBack,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attempt in an event's history.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// The attempt's number within its retry budget (from 1; a requeue or a
    /// replay starts a fresh budget, so numbers repeat: `fence` orders them).
    pub number: u32,
    /// The claim's fence: unique per attempt of an event, increasing.
    pub fence: FenceToken,
    /// When a worker claimed it.
    pub started_at: SystemTime,
    /// When it ended (`None` while it runs).
    pub ended_at: Option<SystemTime>,
    /// How it ended (`None` while it runs).
    pub outcome: Option<AttemptOutcome>,
    /// The handler's error, for failed and dead attempts.
    pub error: Option<String>,
    /// Whether an operator's replay started it.
    pub replay: bool,
}

impl Attempt {
    /// An attempt that started at `started_at` and has not ended.
    pub fn new(number: u32, fence: FenceToken, started_at: SystemTime, replay: bool) -> Self {
        Self {
            number,
            fence,
            started_at,
            ended_at: None,
            outcome: None,
            error: None,
            replay,
        }
    }

    /// The attempt, ended at `ended_at` with `outcome` (and `error`).
    #[must_use]
    pub fn ended(
        mut self,
        ended_at: SystemTime,
        outcome: AttemptOutcome,
        error: Option<String>,
    ) -> Self {
        self.ended_at = Some(ended_at);
        self.outcome = Some(outcome);
        self.error = error;
        self
    }
}

/// How many attempts a store keeps per event: the most recent ones.
pub const MAX_HISTORY: usize = 20;

/// Events chosen for a bulk operation ([`InboxStore::requeue_matching`],
/// [`InboxStore::replay_matching`]): every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Selection {
    /// Only events of this namespace.
    pub namespace: Option<String>,
    /// Only events that arrived at or after this time.
    pub received_after: Option<SystemTime>,
    /// Only events that arrived before this time.
    pub received_before: Option<SystemTime>,
    /// Only events whose last error contains this text.
    pub error_contains: Option<String>,
    /// The most events one call changes (stores cap it at 10,000).
    pub limit: usize,
}

impl Selection {
    /// At most `limit` events, any namespace, any time.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Only events of `namespace`.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Only events that arrived in `[after, before)`.
    #[must_use]
    pub fn received_between(mut self, after: SystemTime, before: SystemTime) -> Self {
        self.received_after = Some(after);
        self.received_before = Some(before);
        self
    }

    /// Only events whose last error contains `text`.
    #[must_use]
    pub fn error_contains(mut self, text: impl Into<String>) -> Self {
        self.error_contains = Some(text.into());
        self
    }
}

/// The number of events in each status, and the arrival of the oldest
/// pending one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusCounts {
    /// Waiting to be processed or retried.
    pub pending: u64,
    /// Claimed by a worker.
    pub processing: u64,
    /// Done.
    pub succeeded: u64,
    /// Given up on.
    pub dead: u64,
    /// When the oldest pending event arrived.
    pub oldest_pending: Option<SystemTime>,
}

/// What the audit trail knows of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventRecord {
    /// Its key.
    pub key: EventKey,
    /// Its status.
    pub status: EventStatus,
    /// How many times a worker claimed it.
    pub attempts: u32,
    /// When it arrived.
    pub received_at: SystemTime,
    /// When its status last changed.
    pub updated_at: SystemTime,
    /// When the next attempt is due (pending events).
    pub next_attempt_at: Option<SystemTime>,
    /// The last handler error, if any.
    pub last_error: Option<String>,
    /// The body, unless its payload was purged.
    pub body: Option<Bytes>,
    /// The `traceparent` the request carried.
    pub traceparent: Option<String>,
    /// Its most recent attempts (at most [`MAX_HISTORY`]), oldest first.
    /// [`InboxStore::get`] fills it; listings leave it empty.
    pub history: Vec<Attempt>,
    /// Its lane (see [Lanes](super#lanes)), if it has one.
    pub lane: Option<String>,
    /// Where it stands in its lane (`None` without a lane).
    pub lane_state: Option<LaneState>,
}

/// Where an event with a lane stands in it (see [Lanes](super#lanes)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LaneState {
    /// The front of its lane: pending and claimable once due, or
    /// processing.
    Head,
    /// Pending behind an earlier event of its lane that is pending,
    /// processing, or dead and blocking.
    Waiting,
    /// Dead and holding its lane: the later events of the lane wait until
    /// an operator requeues it ([`InboxStore::requeue`]) or skips it
    /// ([`InboxStore::skip`]).
    Blocking,
    /// Dead, and skipped: its lane moved on without it.
    Skipped,
    /// Succeeded: out of its lane's way.
    Done,
}

impl LaneState {
    /// As shown: `head`, `waiting`, `blocking`, `skipped`, `done`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::Waiting => "waiting",
            Self::Blocking => "blocking",
            Self::Skipped => "skipped",
            Self::Done => "done",
        }
    }

    /// The state of an event with a lane, from what the stores keep: its
    /// status, whether it is its lane's claimable head (`ready`, for pending
    /// events) and whether it was skipped (for dead events).
    pub(crate) fn of(status: EventStatus, ready: bool, skipped: bool) -> Self {
        match status {
            EventStatus::Pending if ready => Self::Head,
            EventStatus::Pending => Self::Waiting,
            EventStatus::Processing => Self::Head,
            EventStatus::Dead if skipped => Self::Skipped,
            EventStatus::Dead => Self::Blocking,
            EventStatus::Succeeded => Self::Done,
        }
    }
}

impl fmt::Display for LaneState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A query over the audit trail.
///
/// Listings are ordered by arrival, most recent first (ties by namespace, then
/// event id); [`after`](Self::after) continues a listing from its last record,
/// so a caller can page through any number of events without an offset.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ListFilter {
    /// Only events with this status.
    pub status: Option<EventStatus>,
    /// Only events that arrived at or after this time.
    pub since: Option<SystemTime>,
    /// Only events of this namespace.
    pub namespace: Option<String>,
    /// Only events listed after this position (the previous page's last
    /// record).
    pub after: Option<ListCursor>,
    /// Most records to return (the store may cap it).
    pub limit: usize,
}

impl ListFilter {
    /// Up to `limit` records, any status, any time.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Only events with `status`.
    #[must_use]
    pub fn status(mut self, status: EventStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only events that arrived at or after `since`.
    #[must_use]
    pub fn since(mut self, since: SystemTime) -> Self {
        self.since = Some(since);
        self
    }

    /// Only events of `namespace`.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Only events that come after `cursor` in the listing's order: those
    /// that arrived earlier, or at the same time with a greater key.
    #[must_use]
    pub fn after(mut self, cursor: ListCursor) -> Self {
        self.after = Some(cursor);
        self
    }
}

/// A position in a listing ([`ListFilter::after`]): a record's arrival time
/// and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListCursor {
    /// The record's arrival, exactly as the store returned it.
    pub received_at: SystemTime,
    /// The record's key.
    pub key: EventKey,
}

impl ListCursor {
    /// The position of `record`, to continue a listing after it.
    pub fn of(record: &EventRecord) -> Self {
        Self {
            received_at: record.received_at,
            key: record.key.clone(),
        }
    }

    /// Whether a record that arrived at `received_at` with `key` comes after
    /// this position in the listing's order.
    pub fn precedes(&self, received_at: SystemTime, key: &EventKey) -> bool {
        received_at < self.received_at || (received_at == self.received_at && *key > self.key)
    }
}

/// How many records a purge removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Finished events (`succeeded`, `dead`) deleted entirely.
    pub events: u64,
    /// Finished events whose payload was dropped, key and status kept.
    pub payloads: u64,
}

/// One bounded step of a purge ([`InboxStore::purge_batch`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PurgeBatch {
    /// What this step removed.
    pub purged: Purged,
    /// Whether a deletion of this step reached its limit: more may be left,
    /// call again.
    pub more: bool,
}

impl PurgeBatch {
    /// A step that removed `purged`, with `more` left or not.
    pub fn new(purged: Purged, more: bool) -> Self {
        Self { purged, more }
    }
}

/// The durable record of events: the queue the workers take from and the
/// audit trail.
///
/// **Lanes.** A store that [supports lanes](Self::supports_lanes) records
/// [`NewEvent::lane`] and never lets [`claim`](Self::claim) take an event of
/// a lane while an event of the same namespace and lane recorded earlier
/// (insertion order) is pending or processing, or dead and not
/// [skipped](Self::skip); nor while another event of the lane is
/// processing. See [Lanes](super#lanes).
///
/// Every exit from `processing` ([`complete`](Self::complete),
/// [`retry`](Self::retry), [`kill`](Self::kill), [`give_back`](Self::give_back),
/// [`heartbeat`](Self::heartbeat)) is conditional on the claim's fence: once
/// a lease expires and another worker claims the event, the old worker's
/// calls change nothing and return `false`.
#[async_trait]
pub trait InboxStore: fmt::Debug + Send + Sync + 'static {
    /// Whether a recorded event survives a restart of the process. The accept
    /// path acknowledges before processing only on durable stores, unless
    /// told otherwise.
    fn is_durable(&self) -> bool;

    /// Records `event` unless its key is already recorded, in one atomic
    /// operation. When this returns, a new event is committed (durable
    /// stores: on disk).
    ///
    /// When `event.signature` is set, the same transaction first admits the
    /// signature: if another event id of the namespace holds a live record
    /// of it, nothing is written and the answer is [`Inserted::Replayed`];
    /// otherwise the signature is recorded for `event.key` (a record the same
    /// id already holds is kept), whether the event itself is new or a
    /// duplicate. A record with `keep: Some(d)` lives `d` from now (on the
    /// store's clock); one with `keep: None` lives until its event is purged.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails; nothing was recorded then.
    async fn insert(&self, event: NewEvent) -> Result<Inserted, StoreError>;

    /// Claims up to `options.limit` due events: pending ones whose next
    /// attempt is due, and processing ones whose lease expired with attempts
    /// left. Each claim adds one to the attempts and raises the fence.
    /// Processing events whose lease expired with no attempt left become
    /// `dead`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails.
    async fn claim(&self, options: ClaimOptions) -> Result<Vec<ClaimedEvent>, StoreError>;

    /// Extends a claim's lease. Returns `false` if the claim is stale.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails.
    async fn heartbeat(
        &self,
        key: &EventKey,
        fence: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// `processing` -> `succeeded`. Returns `false` if the claim is stale.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails.
    async fn complete(&self, key: &EventKey, fence: FenceToken) -> Result<bool, StoreError>;

    /// `processing` -> `pending`, due after `delay` (on the store's clock),
    /// recording `error`. Returns `false` if the claim is stale.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails.
    async fn retry(
        &self,
        key: &EventKey,
        fence: FenceToken,
        delay: Duration,
        error: &str,
    ) -> Result<bool, StoreError>;

    /// `processing` -> `dead`, recording `error`. Returns `false` if the
    /// claim is stale.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails.
    async fn kill(
        &self,
        key: &EventKey,
        fence: FenceToken,
        error: &str,
    ) -> Result<bool, StoreError>;

    /// `processing` -> `pending`, due now, with the attempt given back (a
    /// graceful shutdown interrupted it). Returns `false` if the claim is
    /// stale.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails.
    async fn give_back(&self, key: &EventKey, fence: FenceToken) -> Result<bool, StoreError>;

    /// `dead` -> `pending`, due now, with a fresh retry budget. Returns
    /// `false` if the event is not dead.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails.
    async fn requeue(&self, key: &EventKey) -> Result<bool, StoreError>;

    /// The audit record of one event.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails.
    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError>;

    /// Audit records matching `filter`, most recent arrival first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails.
    async fn list(&self, filter: ListFilter) -> Result<Vec<EventRecord>, StoreError>;

    /// The number of pending events (for backpressure).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails.
    async fn pending_count(&self) -> Result<u64, StoreError>;

    /// Deletes finished events (`succeeded`, `dead`) that arrived before
    /// `events_before`, and drops the payload of finished events that arrived
    /// before `payloads_before`. Pending and processing events are never
    /// touched.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails.
    async fn purge(
        &self,
        events_before: SystemTime,
        payloads_before: SystemTime,
    ) -> Result<Purged, StoreError>;

    /// One bounded step of [`purge`](Self::purge): each of its deletions
    /// (events, with their attempts and signature records; payloads;
    /// signature records whose window is over) removes at most `limit` rows,
    /// so a step is short and the accept path is not held up behind it.
    /// [`Inbox::spawn_purger`](super::Inbox::spawn_purger) calls it until
    /// [`PurgeBatch::more`] is `false`.
    ///
    /// The default runs the whole [`purge`](Self::purge) as one step (for
    /// stores written before this method existed).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails.
    async fn purge_batch(
        &self,
        events_before: SystemTime,
        payloads_before: SystemTime,
        limit: usize,
    ) -> Result<PurgeBatch, StoreError> {
        let _ = limit;
        let purged = self.purge(events_before, payloads_before).await?;
        Ok(PurgeBatch::new(purged, false))
    }

    /// `succeeded` or `dead` -> `pending`, due now, with a fresh retry
    /// budget; the next attempt is recorded as a replay. Returns `false` if
    /// the event is not finished or its payload was purged.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails, or if the store does not support
    /// operator replays (the default).
    async fn replay(&self, key: &EventKey) -> Result<bool, StoreError> {
        let _ = key;
        Err(unsupported("replay"))
    }

    /// [`requeue`](Self::requeue) of every `dead` event in `selection` (at
    /// most its limit) in one operation; returns how many were requeued.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails, or if the store does not support
    /// bulk operations (the default).
    async fn requeue_matching(&self, selection: &Selection) -> Result<u64, StoreError> {
        let _ = selection;
        Err(unsupported("bulk requeue"))
    }

    /// [`replay`](Self::replay) of every `succeeded` or `dead` event in
    /// `selection` (at most its limit); returns how many were replayed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails, or if the store does not support
    /// bulk operations (the default).
    async fn replay_matching(&self, selection: &Selection) -> Result<u64, StoreError> {
        let _ = selection;
        Err(unsupported("bulk replay"))
    }

    /// The number of events in each status and the arrival of the oldest
    /// pending one, cheaply enough to sample every few seconds.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails, or if the store does not support
    /// counting (the default).
    async fn counts(&self) -> Result<StatusCounts, StoreError> {
        Err(unsupported("counts"))
    }

    /// Whether the store keeps [`NewEvent::lane`] and claims in lane order.
    /// Default `false`: such a store treats every event as unordered, and an
    /// [`Inbox`](super::Inbox) with [`order_by`](super::Inbox::order_by)
    /// refuses to record events in it (500, misconfigured).
    fn supports_lanes(&self) -> bool {
        false
    }

    /// Releases the lane a `dead` event blocks: the event stays `dead`
    /// (its [`LaneState`] becomes `Skipped`) and the next event of its lane
    /// may run. Returns `false` if the event is not dead, has no lane, or
    /// was already skipped. [`requeue`](Self::requeue) is the other way to
    /// release a lane (the dead event runs first).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails, or if the store does not
    /// support lanes (the default).
    async fn skip(&self, key: &EventKey) -> Result<bool, StoreError> {
        let _ = key;
        Err(unsupported("lanes"))
    }
}

fn unsupported(what: &str) -> StoreError {
    StoreError::backend(format!("this inbox store does not support {what}"))
}
