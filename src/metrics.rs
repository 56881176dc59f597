//! Metrics: what the crate counts and times, through the
//! [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! Install any `metrics` recorder (the Prometheus exporter, say) and the
//! layers, the inbox and the key cache report to it. Without the feature
//! nothing is recorded and nothing costs anything. Names follow Prometheus
//! conventions and are stable: counters end in `_total`, durations are
//! histograms in seconds. Labels are bounded: the provider, the namespace
//! (the route's, or `<route>.<tenant>` behind per-tenant keys) and an
//! outcome, never an event id.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `tower_webhooks_requests_total` | counter | `provider`, `namespace`, `outcome` | every request a layer answered or passed on; `outcome` is `handled` (inline handler answered 2xx), `handler_error` (inline handler answered otherwise), `queued` (inbox recorded it), `handshake`, or the [`Rejection::kind`](crate::Rejection::kind) of the answer (`duplicate`, `in-flight`, `replayed-signature`, `store-unavailable`, `key-unavailable`, `overloaded`, `signature-mismatch`, `timestamp-too-old`, ...) |
//! | `tower_webhooks_verify_duration_seconds` | histogram | `provider` | time spent verifying a signature (key resolution excluded) |
//! | `tower_webhooks_accept_duration_seconds` | histogram | `namespace` | inbox: from the request reaching the inbox to its answer (the durable insert included) |
//! | `tower_webhooks_handler_duration_seconds` | histogram | `namespace`, `outcome` | inbox: one handler attempt; `outcome` is `succeeded`, `retry` (failed, panicked or timed out; tried again later), `dead`, `shutdown` (given back) or `stale` (the lease was lost) |
//! | `tower_webhooks_key_lookups_total` | counter | `provider`, `result` | key cache: `hit`, `miss` (a fetch was made or joined), `negative` (known missing), `held_back` (not fetched: see `CachedKeys::missing_fetch_interval`) |
//! | `tower_webhooks_key_fetches_total` | counter | `provider`, `outcome` | key fetches: `ok`, `missing`, `error` |
//! | `tower_webhooks_inbox_events` | gauge | `status` | inbox: events in each status (`pending`, `processing`, `succeeded`, `dead`), sampled by `Inbox::spawn_gauges` |
//! | `tower_webhooks_inbox_oldest_pending_age_seconds` | gauge | | inbox: how long ago the oldest pending event arrived (0 with none pending), sampled with the above |
//!
//! Rejections are also logged, at most 20 lines a second (the rest are
//! counted above and summed up in one line), so a scanner's flood cannot
//! drown the logs.

/// Requests by outcome.
pub const REQUESTS_TOTAL: &str = "tower_webhooks_requests_total";
/// Signature verification time.
pub const VERIFY_DURATION_SECONDS: &str = "tower_webhooks_verify_duration_seconds";
/// Inbox accept latency.
pub const ACCEPT_DURATION_SECONDS: &str = "tower_webhooks_accept_duration_seconds";
/// Inbox handler attempt duration.
pub const HANDLER_DURATION_SECONDS: &str = "tower_webhooks_handler_duration_seconds";
/// Key cache lookups.
pub const KEY_LOOKUPS_TOTAL: &str = "tower_webhooks_key_lookups_total";
/// Key fetches.
pub const KEY_FETCHES_TOTAL: &str = "tower_webhooks_key_fetches_total";
/// Inbox events by status (a sampled gauge).
pub const INBOX_EVENTS: &str = "tower_webhooks_inbox_events";
/// Age of the oldest pending inbox event (a sampled gauge).
pub const INBOX_OLDEST_PENDING_AGE_SECONDS: &str =
    "tower_webhooks_inbox_oldest_pending_age_seconds";

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::rejection::Rejection;

/// Counts one request's outcome.
#[inline]
pub(crate) fn request(provider: &'static str, namespace: &str, outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        REQUESTS_TOTAL,
        "provider" => provider,
        "namespace" => namespace.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (provider, namespace, outcome);
}

/// A clock started only when metrics are recorded.
#[derive(Clone, Copy)]
pub(crate) struct Timer(#[cfg(feature = "metrics")] Instant);

impl Timer {
    #[inline]
    pub(crate) fn start() -> Self {
        Self(
            #[cfg(feature = "metrics")]
            Instant::now(),
        )
    }

    #[cfg(feature = "metrics")]
    fn seconds(self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

#[inline]
pub(crate) fn verified(provider: &'static str, timer: Timer) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(VERIFY_DURATION_SECONDS, "provider" => provider).record(timer.seconds());
    #[cfg(not(feature = "metrics"))]
    let _ = (provider, timer);
}

#[inline]
pub(crate) fn accepted(namespace: &str, timer: Timer) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(ACCEPT_DURATION_SECONDS, "namespace" => namespace.to_owned())
        .record(timer.seconds());
    #[cfg(not(feature = "metrics"))]
    let _ = (namespace, timer);
}

#[inline]
pub(crate) fn handler(namespace: &str, outcome: &'static str, elapsed: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(
        HANDLER_DURATION_SECONDS,
        "namespace" => namespace.to_owned(),
        "outcome" => outcome
    )
    .record(elapsed.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (namespace, outcome, elapsed);
}

#[inline]
pub(crate) fn key_lookup(provider: &'static str, result: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(KEY_LOOKUPS_TOTAL, "provider" => provider, "result" => result).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (provider, result);
}

#[inline]
pub(crate) fn key_fetch(provider: &'static str, outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(KEY_FETCHES_TOTAL, "provider" => provider, "outcome" => outcome).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (provider, outcome);
}

/// Sets the inbox depth gauges from one sample taken at `now`.
#[cfg(feature = "metrics")]
pub(crate) fn inbox_depth(counts: &crate::inbox::StatusCounts, now: std::time::SystemTime) {
    for (status, count) in [
        ("pending", counts.pending),
        ("processing", counts.processing),
        ("succeeded", counts.succeeded),
        ("dead", counts.dead),
    ] {
        metrics::gauge!(INBOX_EVENTS, "status" => status).set(count as f64);
    }
    let age = counts.oldest_pending.map_or(0.0, |oldest| {
        now.duration_since(oldest).unwrap_or_default().as_secs_f64()
    });
    metrics::gauge!(INBOX_OLDEST_PENDING_AGE_SECONDS).set(age);
}

/// Counts a rejection and logs it, at most [`LOG_LINES_PER_SECOND`] lines a
/// second.
pub(crate) fn rejected(provider: &'static str, namespace: &str, rejection: &Rejection) {
    request(provider, namespace, rejection.kind());
    if rejection == &Rejection::Duplicate {
        // An ordinary answer to a provider's retry: counted, not logged.
        return;
    }
    if let Some(suppressed) = LOG_BUDGET.take() {
        if suppressed > 0 {
            tracing::warn!(
                suppressed,
                "webhook rejections not logged in the last second"
            );
        }
        tracing::info!(
            provider,
            namespace,
            status = rejection.status().as_u16(),
            kind = rejection.kind(),
            "webhook rejected: {rejection}"
        );
    }
}

/// Rejection lines logged per second at most.
const LOG_LINES_PER_SECOND: u32 = 20;

static LOG_BUDGET: LogBudget = LogBudget {
    state: Mutex::new(None),
};

/// A budget of log lines per second.
struct LogBudget {
    /// (start of the current second, lines logged in it, lines suppressed).
    state: Mutex<Option<(Instant, u32, u64)>>,
}

impl LogBudget {
    /// `Some(lines suppressed since the last logged one)` if a line may be
    /// logged now, `None` if this one is suppressed.
    fn take(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let (start, logged, suppressed) = state.get_or_insert((now, 0, 0));
        if now.duration_since(*start) >= Duration::from_secs(1) {
            *start = now;
            *logged = 0;
        }
        if *logged < LOG_LINES_PER_SECOND {
            *logged += 1;
            Some(std::mem::take(suppressed))
        } else {
            *suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_budget_allows_twenty_lines_a_second_and_counts_the_rest() {
        let budget = LogBudget {
            state: Mutex::new(None),
        };
        let allowed = (0..100).filter(|_| budget.take().is_some()).count();
        assert_eq!(allowed, 20);
        // The next second's first line reports the 80 suppressed.
        *budget.state.lock().unwrap() = Some((Instant::now() - Duration::from_secs(2), 20, 80));
        assert_eq!(budget.take(), Some(80));
        assert_eq!(budget.take(), Some(0));
    }
}
