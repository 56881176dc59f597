//! The background worker: claims recorded events and runs the handler.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Shared;
use super::lanes::DeadLetters;
use super::store::{ClaimOptions, ClaimedEvent, EventKey, StoreError};
use crate::backend::BoxError;

/// One event, as the handler receives it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct InboxEvent {
    /// The event's key (namespace and sender's id).
    pub key: EventKey,
    /// The verified body bytes.
    pub body: Bytes,
    /// The request headers the inbox was told to keep
    /// ([`Inbox::keep_header`](super::Inbox::keep_header)).
    pub headers: http::HeaderMap,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// When the event arrived.
    pub received_at: std::time::SystemTime,
    /// The W3C `traceparent` the request carried, to continue its trace.
    pub traceparent: Option<String>,
    /// Whether an operator replayed this finished event on purpose.
    pub replay: bool,
    /// The event's lane (see [Lanes](super#lanes)), if it has one.
    pub lane: Option<String>,
}

impl InboxEvent {
    /// The sender's event id.
    pub fn id(&self) -> &str {
        &self.key.event_id
    }

    /// A kept header's value as text (names compare case-insensitively);
    /// `None` when it was not kept or is not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The verified body parsed as JSON into `T`.
    ///
    /// ```
    /// # use tower_webhooks::inbox::{HandlerError, InboxEvent};
    /// #[derive(serde::Deserialize)]
    /// struct Invoice {
    ///     amount: u64,
    /// }
    ///
    /// async fn handle(event: InboxEvent) -> Result<(), HandlerError> {
    ///     // Malformed JSON will not parse on a retry either: permanent.
    ///     let invoice: Invoice = event.json().map_err(HandlerError::permanent)?;
    ///     let _ = invoice.amount;
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// The [`serde_json::Error`] if the body is not JSON of that shape.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// Try again later, with backoff, while attempts remain.
    #[error("{0}")]
    Retry(#[source] BoxError),
    /// Never try again: the event goes to `dead` (an operator can requeue it).
    #[error("permanent: {0}")]
    Permanent(#[source] BoxError),
}

impl HandlerError {
    /// A failure worth retrying.
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self::Retry(error.into())
    }

    /// A failure not worth retrying.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self::Permanent(error.into())
    }
}

/// Processes events. Async functions and closures
/// `Fn(InboxEvent) -> impl Future<Output = Result<(), HandlerError>>`
/// implement it; [`ServiceHandler`] adapts a tower service.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Processes one event.
    ///
    /// # Errors
    ///
    /// [`HandlerError::Retry`] to try again later, [`HandlerError::Permanent`]
    /// to give up. A panic or a timeout counts as `Retry`.
    async fn handle(&self, event: InboxEvent) -> Result<(), HandlerError>;
}

#[async_trait]
impl<F, Fut> Handler for F
where
    F: Fn(InboxEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    async fn handle(&self, event: InboxEvent) -> Result<(), HandlerError> {
        self(event).await
    }
}

/// Runs a tower service as a [`Handler`].
#[derive(Clone, Debug)]
pub struct ServiceHandler<S>(pub S);

#[async_trait]
impl<S> Handler for ServiceHandler<S>
where
    S: tower_service::Service<InboxEvent, Response = (), Error = HandlerError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    async fn handle(&self, event: InboxEvent) -> Result<(), HandlerError> {
        let mut service = self.0.clone();
        std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
        service.call(event).await
    }
}

/// Worker settings; see [`Worker`].
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    concurrency: usize,
    lease: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    handler_timeout: Duration,
    poll_interval: Duration,
    shutdown_grace: Duration,
    dead_letters: DeadLetters,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            concurrency: 8,
            lease: Duration::from_secs(30),
            max_attempts: 8,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(600),
            handler_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(10),
            dead_letters: DeadLetters::Block,
        }
    }
}

/// Runs a handler over an inbox's recorded events, in the background.
///
/// It claims due events in batches under a lease (renewed while the handler
/// runs), runs up to `concurrency` at once, and moves each to `succeeded`, to
/// `pending` with exponential backoff and jitter (a retryable error, a panic
/// or a timeout), or to `dead` (a permanent error, or no attempt left). Every
/// transition is fenced, so a worker whose lease expired changes nothing.
/// Any number of workers, in one process or several, can share a store.
///
/// Made with [`Inbox::worker`](super::Inbox::worker); started with
/// [`spawn`](Self::spawn).
#[must_use = "a worker does nothing until spawned"]
pub struct Worker {
    shared: Arc<Shared>,
    handler: Arc<dyn Handler>,
    settings: Settings,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("store", &self.shared.store)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub(crate) fn new(shared: Arc<Shared>, handler: Arc<dyn Handler>) -> Self {
        Self {
            shared,
            handler,
            settings: Settings::default(),
        }
    }

    /// Most handlers running at once. Default 8.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.settings.concurrency = concurrency.max(1);
        self
    }

    /// How long a claim lasts; renewed every third of it while the handler
    /// runs. Default 30 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.settings.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// Attempts before an event goes to `dead`. Default 8.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.settings.max_attempts = attempts.max(1);
        self
    }

    /// The delay before the first retry, doubled for each further one up to
    /// `max`, with jitter (a random half to all of it). Default 1 s and 10 min.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.settings.backoff_base = base;
        self.settings.backoff_max = max.max(base);
        self
    }

    /// How long one handler run may take before it counts as failed (and is
    /// retried). Default 60 s.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.settings.handler_timeout = timeout;
        self
    }

    /// How often an idle worker looks for due events (new events wake it at
    /// once when they arrive through the same [`Inbox`](super::Inbox)).
    /// Default 500 ms.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.settings.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long [`WorkerHandle::shutdown`] lets running handlers finish before
    /// interrupting them and giving their events back. Default 10 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.settings.shutdown_grace = grace;
        self
    }

    /// What an event this worker kills does to its lane (see
    /// [Lanes](super#lanes)). Default [`DeadLetters::Block`]: the lane waits
    /// for an operator. With [`DeadLetters::Skip`] the worker
    /// [skips](super::InboxStore::skip) it right after killing it (two
    /// store calls: if the second fails, the lane stays blocked, which is
    /// logged).
    pub fn dead_letters(mut self, dead_letters: DeadLetters) -> Self {
        self.settings.dead_letters = dead_letters;
        self
    }

    /// Starts the worker on the current Tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    ///
    /// Dropping the returned handle detaches the worker: it runs until the
    /// runtime shuts down. Keep the handle to stop it gracefully.
    pub fn spawn(self) -> WorkerHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.run(stopped));
        WorkerHandle { stop, task }
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let settings = &self.settings;
        let store = &self.shared.store;
        let wake = &self.shared.wake;
        let mut running: JoinSet<()> = JoinSet::new();
        let (interrupt, interrupted) = watch::channel(false);
        let mut store_errors = 0u32;
        loop {
            if *stop.borrow() {
                break;
            }
            while running.try_join_next().is_some() {}
            let free = settings.concurrency.saturating_sub(running.len());
            let mut claimed_all = false;
            if free > 0 {
                let options = ClaimOptions {
                    limit: free,
                    lease: settings.lease,
                    max_attempts: settings.max_attempts,
                };
                match store.claim(options).await {
                    Ok(events) => {
                        store_errors = 0;
                        claimed_all = events.len() == free;
                        for event in events {
                            running.spawn(process(
                                self.shared.clone(),
                                self.handler.clone(),
                                settings.clone(),
                                event,
                                interrupted.clone(),
                            ));
                        }
                    }
                    Err(error) => {
                        store_errors = store_errors.saturating_add(1);
                        tracing::error!(%error, "inbox worker could not claim events");
                    }
                }
            }
            if claimed_all && store_errors == 0 {
                // More may be due; claim again as soon as a slot frees up.
                tokio::select! {
                    _ = running.join_next() => {}
                    () = stop_requested(&mut stop) => {}
                }
                continue;
            }
            let idle = if store_errors > 0 {
                backoff(settings.poll_interval, Duration::from_secs(5), store_errors)
            } else {
                settings.poll_interval
            };
            tokio::select! {
                Some(_) = running.join_next(), if !running.is_empty() => {}
                () = wake.notified() => {}
                () = tokio::time::sleep(idle) => {}
                () = stop_requested(&mut stop) => {}
            }
        }
        // Graceful: stop claiming; let running handlers finish within the
        // grace period, then interrupt them (each gives its event back).
        let deadline = tokio::time::sleep(settings.shutdown_grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = running.join_next() => if next.is_none() { break },
                () = &mut deadline => {
                    let _ = interrupt.send(true);
                    while running.join_next().await.is_some() {}
                    break;
                }
            }
        }
    }
}

/// Resolves when a stop is requested; never, once the handle is dropped
/// (the worker is then detached).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Controls a running [`Worker`]. Dropping it detaches the worker.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// Stops claiming, lets running handlers finish within the worker's
    /// shutdown grace period, gives back (to `pending`, attempt not counted)
    /// the events of those still running after it, and waits for all that.
    /// Nothing is left in `processing`.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Whether the worker has stopped.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

enum Outcome {
    Succeeded,
    Failed { error: String, permanent: bool },
    Interrupted,
    Stale,
}

async fn process(
    shared: Arc<Shared>,
    handler: Arc<dyn Handler>,
    settings: Settings,
    claimed: ClaimedEvent,
    mut interrupt: watch::Receiver<bool>,
) {
    let store = &shared.store;
    let key = claimed.key.clone();
    let fence = claimed.fence;
    let attempt = claimed.attempt;
    let laned = claimed.lane.is_some();
    // `traceparent` carries the request's W3C trace context across the
    // acknowledgement: an OpenTelemetry layer can link this span to it.
    let span = tracing::info_span!(
        "inbox",
        namespace = %key.namespace,
        event_id = %key.event_id,
        attempt,
        replay = claimed.replay,
        traceparent = tracing::field::Empty,
        lane = tracing::field::Empty,
    );
    if let Some(lane) = &claimed.lane {
        span.record("lane", lane.as_str());
    }
    if let Some(traceparent) = &claimed.traceparent {
        span.record("traceparent", traceparent.as_str());
    }
    let event = InboxEvent {
        key: claimed.key,
        body: claimed.body,
        headers: header_map(claimed.headers),
        attempt,
        received_at: claimed.received_at,
        traceparent: claimed.traceparent.clone(),
        replay: claimed.replay,
        lane: claimed.lane,
    };
    let handler_span = span.clone();
    // Its own task, so a panic is caught (as a JoinError) and the handler
    // can be interrupted.
    let mut run = tokio::spawn(async move {
        tracing::Instrument::instrument(handler.handle(event), handler_span).await
    });
    let started = Instant::now();
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + settings.lease / 3,
        settings.lease / 3,
    );
    let timeout = tokio::time::sleep(settings.handler_timeout);
    tokio::pin!(timeout);
    let interrupted = async move {
        // The `Ref` the wait yields is not `Send`; drop it here.
        let _ = interrupt
            .wait_for(|interrupted| *interrupted)
            .await
            .map(|_| ());
    };
    tokio::pin!(interrupted);

    let outcome = loop {
        tokio::select! {
            joined = &mut run => break match joined {
                Ok(Ok(())) => Outcome::Succeeded,
                Ok(Err(HandlerError::Permanent(error))) => Outcome::Failed { error: error.to_string(), permanent: true },
                Ok(Err(error)) => Outcome::Failed { error: error.to_string(), permanent: false },
                Err(join) if join.is_panic() => Outcome::Failed { error: panic_message(join.into_panic()), permanent: false },
                Err(_) => Outcome::Interrupted,
            },
            _ = heartbeat.tick() => {
                match store.heartbeat(&key, fence, settings.lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        run.abort();
                        break Outcome::Stale;
                    }
                    Err(error) => tracing::warn!(parent: &span, %error, "lease renewal failed"),
                }
            }
            () = &mut timeout => {
                run.abort();
                break Outcome::Failed {
                    error: format!("handler timed out after {:?}", settings.handler_timeout),
                    permanent: false,
                };
            }
            () = &mut interrupted => {
                run.abort();
                break Outcome::Interrupted;
            }
        }
    };

    let elapsed = started.elapsed();
    let elapsed_ms = elapsed.as_millis() as u64;
    let label = match &outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed { permanent, .. } if *permanent || attempt >= settings.max_attempts => {
            "dead"
        }
        Outcome::Failed { .. } => "retry",
        Outcome::Interrupted => "shutdown",
        Outcome::Stale => "stale",
    };
    crate::metrics::handler(&key.namespace, label, elapsed);
    let transition = match &outcome {
        Outcome::Succeeded => {
            tracing::info!(parent: &span, elapsed_ms, "event succeeded");
            with_retries(|| store.complete(&key, fence)).await
        }
        Outcome::Failed { error, permanent } if *permanent || attempt >= settings.max_attempts => {
            let reason = if *permanent {
                error.clone()
            } else {
                format!(
                    "{error} (attempt {attempt} of {}; giving up)",
                    settings.max_attempts
                )
            };
            tracing::warn!(parent: &span, error = %reason, "event dead");
            let killed = with_retries(|| store.kill(&key, fence, &reason)).await;
            if laned && settings.dead_letters == DeadLetters::Skip && matches!(killed, Ok(true)) {
                match with_retries(|| store.skip(&key)).await {
                    Ok(_) => tracing::info!(parent: &span, "dead event skipped; its lane moves on"),
                    Err(error) => {
                        tracing::error!(parent: &span, %error, "could not skip the dead event; its lane stays blocked until an operator skips or requeues it")
                    }
                }
            }
            killed
        }
        Outcome::Failed { error, .. } => {
            let delay = backoff(settings.backoff_base, settings.backoff_max, attempt);
            tracing::warn!(parent: &span, %error, retry_in_ms = delay.as_millis() as u64, "event failed; will retry");
            with_retries(|| store.retry(&key, fence, delay, error)).await
        }
        Outcome::Interrupted => {
            tracing::info!(parent: &span, "shutting down; event given back");
            with_retries(|| store.give_back(&key, fence)).await
        }
        Outcome::Stale => {
            tracing::warn!(parent: &span, "lease lost to another worker; this attempt's result is discarded");
            Ok(false)
        }
    };
    if !matches!(outcome, Outcome::Interrupted | Outcome::Stale) {
        shared.finished(&key, matches!(outcome, Outcome::Succeeded));
    }
    match transition {
        Ok(true) => {}
        Ok(false) if matches!(outcome, Outcome::Stale) => {}
        Ok(false) => {
            tracing::warn!(parent: &span, "lease expired before the result was recorded; another worker owns the event")
        }
        Err(error) => {
            tracing::error!(parent: &span, %error, "could not record the result; the event is retried when its lease expires")
        }
    }
}

/// Tries a store call up to three times, 50 ms apart.
async fn with_retries<'a, F, Fut>(mut call: F) -> Result<bool, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, StoreError>> + 'a,
{
    let mut tries = 0;
    loop {
        match call().await {
            Err(_) if tries < 2 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            result => return result,
        }
    }
}

/// `base * 2^(attempt-1)`, capped at `max`, then a random half to all of it.
fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1 << exponent).min(max);
    let jitter = RandomState::new().hash_one(Instant::now()) % 1_000;
    full / 2 + full / 2 * jitter as u32 / 1_000
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    format!("handler panicked: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempt in 1..=10 {
            let delay = backoff(base, max, attempt);
            let full = (base * 2u32.pow(attempt - 1)).min(max);
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?}"
            );
        }
        assert!(backoff(base, max, u32::MAX) <= max);
    }
}

/// The kept headers as recorded (name, value) back into a map. They were
/// valid when the request carried them; a pair that no longer parses (a
/// store edited by hand) is dropped, never a panic.
fn header_map(pairs: Vec<(String, String)>) -> http::HeaderMap {
    let mut map = http::HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            map.append(name, value);
        }
    }
    map
}

#[cfg(test)]
mod header_map_tests {
    use super::header_map;

    #[test]
    fn recorded_pairs_become_a_map_and_unparsable_ones_are_dropped() {
        let map = header_map(vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("x-tag".to_owned(), "a".to_owned()),
            ("x-tag".to_owned(), "b".to_owned()),
            ("bad name".to_owned(), "v".to_owned()),
            ("x-bad-value".to_owned(), "line\nbreak".to_owned()),
        ]);
        assert_eq!(map.get("content-type").unwrap(), "application/json");
        assert_eq!(map.get_all("x-tag").iter().count(), 2);
        assert_eq!(map.len(), 3, "the two unparsable pairs are dropped");
    }
}
