//! Retention that runs itself: the purge task, the inbox depth gauges, and
//! the handle that stops them.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::store::{InboxStore, Purged};
use super::{DEFAULT_RETENTION, Inbox};

/// How often the purger runs by default: every minute (each wait jittered
/// by up to ±10%, so instances sharing a database spread out).
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// The most rows one purge step deletes by default.
pub const DEFAULT_PURGE_BATCH: usize = 1_000;

/// The pause between two purge steps by default.
pub const DEFAULT_PURGE_PAUSE: Duration = Duration::from_millis(10);

/// What [`Inbox::spawn_purger`] keeps, and how it purges.
///
/// | setting | default |
/// |---|---|
/// | finished events (`succeeded`, `dead`) kept | [`DEFAULT_RETENTION`] (30 days) after arrival |
/// | their payloads kept | as long as the events |
/// | interval between passes | [`DEFAULT_PURGE_INTERVAL`] (1 minute, ±10% jitter) |
/// | rows per step | [`DEFAULT_PURGE_BATCH`] (1,000) |
/// | pause between steps | [`DEFAULT_PURGE_PAUSE`] (10 ms) |
///
/// Pending and processing events are never purged, however old. Signature
/// records go with their events, or when their window ends.
///
/// ```
/// use std::time::Duration;
/// use tower_webhooks::inbox::Retention;
///
/// // Keys for 30 days (the default), bodies for 7.
/// let retention = Retention::new().payloads(Duration::from_secs(7 * 24 * 3600));
/// # let _ = retention;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Retention {
    events: Duration,
    payloads: Option<Duration>,
    every: Duration,
    batch: usize,
    pause: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self::new()
    }
}

impl Retention {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self {
            events: DEFAULT_RETENTION,
            payloads: None,
            every: DEFAULT_PURGE_INTERVAL,
            batch: DEFAULT_PURGE_BATCH,
            pause: DEFAULT_PURGE_PAUSE,
        }
    }

    /// Keeps finished events this long after their arrival, then deletes
    /// them (with their attempts and signature records). Keep them longer
    /// than your providers retry or let an operator redeliver, or a late
    /// delivery is processed again.
    pub fn events(mut self, keep: Duration) -> Self {
        self.events = keep;
        self
    }

    /// Drops the payload (body) of finished events this long after their
    /// arrival, keeping the key and status, so a late duplicate is still
    /// recognised. Longer than [`events`](Self::events) means as long.
    ///
    /// A payload cutoff before the events cutoff makes each pass look
    /// through the finished events in between (by the `(status,
    /// received_at)` index) for bodies left to drop.
    pub fn payloads(mut self, keep: Duration) -> Self {
        self.payloads = Some(keep);
        self
    }

    /// The time between two passes (each wait jittered by up to ±10%).
    pub fn every(mut self, interval: Duration) -> Self {
        self.every = interval;
        self
    }

    /// The most rows one step deletes (events, payloads and expired
    /// signature records each count on their own). At least 1.
    pub fn batch(mut self, rows: usize) -> Self {
        self.batch = rows.max(1);
        self
    }

    /// The pause between two steps of a pass, which lets accepts through on
    /// a busy store.
    pub fn pause(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    /// The cutoffs of a pass at `now`: (events before, payloads before).
    fn cutoffs(&self, now: SystemTime) -> (SystemTime, SystemTime) {
        let before = |keep: Duration| now.checked_sub(keep).unwrap_or(SystemTime::UNIX_EPOCH);
        let events = before(self.events);
        let payloads = self
            .payloads
            .map_or(events, |keep| before(keep).max(events));
        (events, payloads)
    }
}

/// Stops a background task of the crate: a purger or a gauge sampler.
///
/// Dropping the handle detaches the task: it runs until the runtime shuts
/// down. Keep the handle to stop it.
#[derive(Debug)]
#[must_use = "dropping the handle detaches the task; keep it to stop the task"]
pub struct TaskHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TaskHandle {
    /// Starts `run` on the current Tokio runtime.
    pub(crate) fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(Stop) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(Stop(stopped)));
        Self { stop, task }
    }

    /// Asks the task to stop and waits for it. A purge stops between two
    /// steps (a step that is running completes), so nothing is left half
    /// done.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Whether the task has stopped.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// The task's side of a [`TaskHandle`].
#[derive(Clone)]
pub(crate) struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Whether a stop was asked for.
    pub(crate) fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits for `duration`; `false` if a stop was asked for first. A
    /// dropped handle never stops the task.
    pub(crate) async fn sleep(&mut self, duration: Duration) -> bool {
        let stopped = async {
            if self.0.wait_for(|stop| *stop).await.is_err() {
                // The handle was dropped: detached, run on.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = stopped => false,
            () = tokio::time::sleep(duration) => true,
        }
    }
}

/// `interval` scaled by a random factor in [0.9, 1.1].
pub(crate) fn jittered(interval: Duration) -> Duration {
    let random = RandomState::new().hash_one(Instant::now());
    // 0..=2000 per mille of 10%.
    let spread = (random % 2_001) as f64 / 10_000.0;
    interval.mul_f64(0.9 + spread)
}

/// Logs a background task's failures at most once a minute (the first one
/// at once), with how many were not logged in between.
pub(crate) struct ErrorLog {
    what: &'static str,
    last: Option<Instant>,
    suppressed: u64,
}

/// The least time between two logged failures of one task.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(60);

impl ErrorLog {
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            what,
            last: None,
            suppressed: 0,
        }
    }

    pub(crate) fn failed(&mut self, error: &dyn std::fmt::Display) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < ERROR_LOG_INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        self.last = Some(now);
        let suppressed = std::mem::take(&mut self.suppressed);
        tracing::warn!(
            task = self.what,
            suppressed,
            "{} failed (tried again at its next run): {error}",
            self.what
        );
    }
}

/// Runs `step` as its own task so that a panic in a store is caught and
/// logged, never taking the background task down.
pub(crate) async fn guarded<T: Send + 'static>(
    step: impl Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    tokio::spawn(step)
        .await
        .map_err(|_| "it panicked".to_owned())
}

impl Inbox {
    /// Starts the purge task on the current Tokio runtime: every
    /// [`Retention::every`] it deletes the finished events (`succeeded`,
    /// `dead`) that arrived before the retention, with their attempt history
    /// and signature records, drops the payloads past their own retention,
    /// and deletes the signature records whose window has passed.
    ///
    /// A pass runs in bounded steps ([`InboxStore::purge_batch`], at most
    /// [`Retention::batch`] rows each) with a pause between them, so a purge
    /// of a million events never holds the accept path up for long. A
    /// failed step is logged (at most once a minute) and the pass is tried
    /// again at the next tick; the task never panics. Several instances may
    /// run a purger on one database.
    ///
    /// ```
    /// use tower_webhooks::inbox::{Inbox, MemoryInbox, Retention};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let inbox = Inbox::new(MemoryInbox::new());
    /// let purger = inbox.spawn_purger(Retention::new());
    /// // ... serve ...
    /// purger.shutdown().await;
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn spawn_purger(&self, retention: Retention) -> TaskHandle {
        let store = self.shared.store.clone();
        TaskHandle::spawn(move |stop| purge_task(store, retention, stop))
    }

    /// Samples the inbox's depth every `every` (jittered by up to ±10%) into
    /// the gauges `tower_webhooks_inbox_events{status}` and
    /// `tower_webhooks_inbox_oldest_pending_age_seconds` (see
    /// [`metrics`](crate::metrics)), through [`InboxStore::counts`]: a few
    /// index searches per sample on every backend of the crate. A failed
    /// sample is logged (at most once a minute) and the gauges keep their
    /// last values. Every 5 to 15 seconds suits a Prometheus scrape.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn spawn_gauges(&self, every: Duration) -> TaskHandle {
        let store = self.shared.store.clone();
        TaskHandle::spawn(move |stop| gauge_task(store, every, stop))
    }
}

async fn purge_task(store: Arc<dyn InboxStore>, retention: Retention, mut stop: Stop) {
    let mut errors = ErrorLog::new("the inbox purge");
    // The first pass soon after the start (within a tenth of the interval),
    // so a restarted process does not wait a whole interval.
    let mut wait = jittered(retention.every / 10);
    while stop.sleep(wait).await {
        let started = Instant::now();
        match purge_pass(&store, &retention, &mut stop).await {
            Ok(purged) if purged != Purged::default() => tracing::debug!(
                events = purged.events,
                payloads = purged.payloads,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "inbox purge"
            ),
            Ok(_) => {}
            Err(error) => errors.failed(&error),
        }
        wait = jittered(retention.every);
    }
}

/// One pass: steps until nothing is left or a stop is asked for.
async fn purge_pass(
    store: &Arc<dyn InboxStore>,
    retention: &Retention,
    stop: &mut Stop,
) -> Result<Purged, String> {
    let (events_before, payloads_before) = retention.cutoffs(SystemTime::now());
    let mut total = Purged::default();
    loop {
        let step = {
            let (store, batch) = (store.clone(), retention.batch);
            guarded(async move {
                store
                    .purge_batch(events_before, payloads_before, batch)
                    .await
            })
            .await?
            .map_err(|error| error.to_string())?
        };
        total.events += step.purged.events;
        total.payloads += step.purged.payloads;
        if !step.more || stop.requested() || !stop.sleep(retention.pause).await {
            return Ok(total);
        }
    }
}

#[cfg(feature = "metrics")]
async fn gauge_task(store: Arc<dyn InboxStore>, every: Duration, mut stop: Stop) {
    let mut errors = ErrorLog::new("the inbox depth sample");
    let mut wait = Duration::ZERO;
    while stop.sleep(wait).await {
        let counts = {
            let store = store.clone();
            guarded(async move { store.counts().await }).await
        };
        match counts {
            Ok(Ok(counts)) => crate::metrics::inbox_depth(&counts, SystemTime::now()),
            Ok(Err(error)) => errors.failed(&error),
            Err(error) => errors.failed(&error),
        }
        wait = jittered(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_kept_at_most_as_long_as_events() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Duration::from_secs(3600);
        let (events, payloads) = Retention::new().events(hour).cutoffs(now);
        assert_eq!(events, now - hour);
        assert_eq!(
            payloads, events,
            "payloads default to the events' retention"
        );
        let (_, payloads) = Retention::new()
            .events(hour)
            .payloads(hour / 4)
            .cutoffs(now);
        assert_eq!(payloads, now - hour / 4);
        let (events, payloads) = Retention::new()
            .events(hour)
            .payloads(hour * 4)
            .cutoffs(now);
        assert_eq!(
            payloads, events,
            "a longer payload retention is the events'"
        );
        let (events, _) = Retention::new()
            .events(Duration::from_secs(u64::MAX))
            .cutoffs(now);
        assert_eq!(events, SystemTime::UNIX_EPOCH, "no underflow");
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let interval = Duration::from_secs(60);
        for _ in 0..1_000 {
            let wait = jittered(interval);
            assert!(
                (Duration::from_secs(54)..=Duration::from_secs(66)).contains(&wait),
                "{wait:?}"
            );
        }
    }

    #[test]
    fn failures_are_logged_at_most_once_a_minute() {
        let mut log = ErrorLog::new("test");
        log.failed(&"first");
        assert!(log.last.is_some());
        for _ in 0..10 {
            log.failed(&"again");
        }
        assert_eq!(log.suppressed, 10);
        log.last = Some(Instant::now() - ERROR_LOG_INTERVAL);
        log.failed(&"a minute later");
        assert_eq!(log.suppressed, 0, "the count is reported and reset");
    }
}
