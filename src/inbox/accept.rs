//! The accept path: record the verified event, then answer.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tokio::sync::oneshot;
use tower_service::Service;

use super::store::{EventKey, EventStatus, Inserted, NewEvent};
use super::{Config, Shared};
use crate::admission::{Routes, Ticket};
use crate::backend::timed;
use crate::metrics;
use crate::rejection::Rejection;
use crate::verify::VerifiedWebhook;

/// The endpoint service of an [`Inbox`](super::Inbox): records each verified
/// event durably and answers 200 at once; a [`Worker`](super::Worker) runs
/// the handler later. Put a [`WebhookLayer`](crate::WebhookLayer) in front of
/// it.
#[derive(Clone, Debug)]
pub struct AcceptService {
    pub(super) shared: Arc<Shared>,
    pub(super) config: Arc<Config>,
}

/// The response future of [`AcceptService`].
pub type AcceptFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static>>;

impl<B> Service<Request<B>> for AcceptService
where
    B: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = AcceptFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = self.shared.clone();
        let config = self.config.clone();
        let timer = metrics::Timer::start();
        let provider = request
            .extensions()
            .get::<VerifiedWebhook>()
            .map_or("unknown", VerifiedWebhook::provider);
        let namespace = request.extensions().get::<Ticket>().map_or_else(
            || "unknown".to_owned(),
            |ticket| ticket.namespace.to_string(),
        );
        Box::pin(async move {
            let response = match accept(&shared, &config, request).await {
                Ok(body) => {
                    let outcome = if body == QUEUED { "queued" } else { "handled" };
                    metrics::request(provider, &namespace, outcome);
                    let mut response = Response::new(Full::new(Bytes::from_static(body)));
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    response
                }
                Err(rejection) => {
                    metrics::rejected(provider, &namespace, &rejection);
                    config.responder.respond(&rejection).map(Full::new)
                }
            };
            metrics::accepted(&namespace, timer);
            Ok(response)
        })
    }
}

/// The answer to a new event on a durable store.
const QUEUED: &[u8] = br#"{"ok":true,"queued":true}"#;

async fn accept<B>(
    shared: &Shared,
    config: &Config,
    request: Request<B>,
) -> Result<&'static [u8], Rejection>
where
    B: Body<Data = Bytes>,
{
    let received_at = SystemTime::now();
    let (mut parts, body) = request.into_parts();
    let ticket = parts
        .extensions
        .remove::<Ticket>()
        .ok_or(Rejection::Misconfigured {
            reason: "the inbox needs a WebhookLayer in front of it",
        })?;
    Routes::check(&shared.store, &ticket.namespace, &ticket.route)?;
    let key = EventKey::new(ticket.namespace.as_str(), ticket.event_id);
    let unavailable = Rejection::StoreUnavailable {
        retry_after: config.unavailable_retry_after,
    };

    // Backpressure is shed before anything is written.
    if let Some(cap) = config.max_pending
        && pending_estimate(shared, config).await >= cap
    {
        return Err(Rejection::Overloaded {
            retry_after: config.unavailable_retry_after,
        });
    }

    let headers = config
        .keep_headers
        .iter()
        .filter_map(|name| {
            let value = parts.headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect();
    // Behind the WebhookLayer the body is already buffered (Full), so this
    // does not wait.
    let body = body
        .collect()
        .await
        .map_err(|_| Rejection::BodyReadFailed)?
        .to_bytes();
    // The ordering key, from the verified head and bytes.
    let lane = match &config.order_by {
        Some(order) if !shared.store.supports_lanes() => {
            tracing::error!(store = ?shared.store, ?order, "the inbox orders events but its store does not support lanes");
            return Err(Rejection::Misconfigured {
                reason: "the inbox orders events (order_by) but its store does not support lanes",
            });
        }
        Some(order) => order.lane(&parts, &body),
        None => None,
    };
    let event = NewEvent {
        key: key.clone(),
        body,
        headers,
        received_at,
        signature: ticket.signature,
        traceparent: traceparent(&parts.headers),
        lane,
    };

    let acknowledge_first = shared.store.is_durable() || config.acknowledge_first;
    let inserted = timed(config.store_timeout, shared.store.insert(event)).await;
    match inserted {
        Ok(Inserted::New) => {
            shared.pending_estimate.fetch_add(1, Ordering::Relaxed);
            // Watched only once this accept's insert decided the event is
            // new: a concurrent duplicate never touches the waiter.
            let outcome = (!acknowledge_first).then(|| shared.watch(&key));
            shared.wake.notify_one();
            match outcome {
                None => Ok(QUEUED),
                Some(outcome) => handled(shared, config, &key, outcome).await,
            }
        }
        Ok(Inserted::Duplicate { same_body }) => {
            if !same_body {
                shared.changed_bodies.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%key, "event id already recorded with a different body");
                if config.reject_changed_body {
                    return Err(Rejection::ChangedBody);
                }
            }
            if acknowledge_first {
                return Err(Rejection::Duplicate);
            }
            // Not durable: only a finished event is safe to acknowledge.
            match timed(config.store_timeout, shared.store.get(&key)).await {
                Ok(Some(record))
                    if matches!(record.status, EventStatus::Succeeded | EventStatus::Dead) =>
                {
                    Err(Rejection::Duplicate)
                }
                Ok(_) => Err(Rejection::InFlight {
                    retry_after: config.in_flight_retry_after,
                }),
                Err(_) => Err(unavailable),
            }
        }
        Ok(Inserted::Replayed) => Err(Rejection::ReplayedSignature),
        Err(error) => {
            tracing::error!(%key, %error, "could not record the event; answering 503");
            Err(unavailable)
        }
    }
}

/// Waits for the first attempt of a new event on a store that does not
/// survive restarts. The waiter was registered after the insert; a worker
/// that finished before that is seen in the record.
async fn handled(
    shared: &Shared,
    config: &Config,
    key: &EventKey,
    outcome: oneshot::Receiver<bool>,
) -> Result<&'static [u8], Rejection> {
    let answer = |succeeded| {
        if succeeded {
            Ok(&br#"{"ok":true}"#[..])
        } else {
            Err(Rejection::HandlerFailed)
        }
    };
    if let Ok(Some(record)) = timed(config.store_timeout, shared.store.get(key)).await {
        match record.status {
            EventStatus::Succeeded => {
                shared.unwatch(key);
                return answer(true);
            }
            EventStatus::Dead => {
                shared.unwatch(key);
                return answer(false);
            }
            _ => {}
        }
    }
    match tokio::time::timeout(config.handled_timeout, outcome).await {
        Ok(Ok(succeeded)) => answer(succeeded),
        _ => {
            shared.unwatch(key);
            Err(Rejection::HandlerFailed)
        }
    }
}

/// The number of pending events, refreshed from the store at most every
/// 100 ms and counted up locally in between.
async fn pending_estimate(shared: &Shared, config: &Config) -> u64 {
    let due = {
        let mut refreshed = shared
            .refreshed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = refreshed.is_none_or(|at| at.elapsed() >= Duration::from_millis(100));
        if due {
            *refreshed = Some(Instant::now());
        }
        due
    };
    if due {
        match timed(config.store_timeout, shared.store.pending_count()).await {
            Ok(count) => shared.pending_estimate.store(count, Ordering::Relaxed),
            Err(error) => tracing::warn!(%error, "could not count pending events"),
        }
    }
    shared.pending_estimate.load(Ordering::Relaxed)
}

/// The request's W3C `traceparent`, if it carries a well-formed one
/// (`<2 hex>-<32 hex>-<16 hex>-<2 hex>`, not the invalid all-zero ids).
pub(crate) fn traceparent(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let zero = |part: &str| part.bytes().all(|b| b == b'0');
    let valid = parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && !zero(parts[1])
        && hex(parts[2], 16)
        && !zero(parts[2])
        && hex(parts[3], 2);
    valid.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::traceparent;

    #[test]
    fn only_well_formed_traceparents_are_kept() {
        let with = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("traceparent", value.parse().unwrap());
            traceparent(&headers)
        };
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(with(good).as_deref(), Some(good));
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(with(bad), None, "{bad}");
        }
        assert_eq!(traceparent(&http::HeaderMap::new()), None);
    }
}
