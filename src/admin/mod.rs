//! The admin service: a JSON API and a dashboard over an [`Inbox`], as an
//! axum [`Router`] that an application serves on its own listener, behind an
//! authorization hook it must choose.
//!
//! JSON API (errors are `{"ok":false,"error":"..."}`):
//!
//! | route | what |
//! |---|---|
//! | `GET /events?status=&namespace=&limit=&cursor=` | `{"events":[...],"next_cursor":"..."}`, most recent first; `next_cursor` (opaque) continues the listing, `null` on the last page; `limit` default 100, at most 10,000 (larger values are capped) |
//! | `GET /events/{id}?namespace=` | one event (namespace default `generic`) with its `history` of attempts; 404 if unknown |
//! | `POST /events/{id}/requeue?namespace=` | a dead event back to pending: `{"ok":true,"requeued":true}`; 404, or 409 if it is not dead (or its payload was purged) |
//! | `POST /events/{id}/replay?namespace=` | a finished event run again: `{"ok":true,"replayed":true}`; 404 or 409 |
//! | `POST /events/requeue` | the dead events matching a JSON filter (below): `{"ok":true,"requeued":n}` |
//! | `POST /events/replay` | the finished events matching a JSON filter: `{"ok":true,"replayed":n}` |
//! | `POST /purge` | `{"older_than_secs":..,"payloads_older_than_secs":..}` (defaults: [`DEFAULT_RETENTION`](crate::inbox::DEFAULT_RETENTION), then the same): `{"ok":true,"events":n,"payloads":m}` |
//! | `GET /counts` | `{"pending":..,"processing":..,"succeeded":..,"dead":..,"oldest_pending":..}` |
//!
//! A bulk filter is a JSON object (an empty body is `{}`) with any of
//! `namespace`, `received_after`, `received_before` (RFC 3339 such as
//! `2026-01-31T12:00:00Z`, or Unix seconds), `error_contains`, `status`
//! (requeue: `dead` only) and `limit` (default 1,000, at most
//! [`Admin::max_bulk`]); events are taken oldest first, so a call that
//! reports `limit` events may have left more for the next call. Bad input is
//! a 400, a store failure a 503.
//!
//! Dashboard (server-rendered HTML, no scripts): `GET /` shows the counts by
//! status and the dead letters with their last error (`?status=` for the
//! other statuses), each event links to its page with its attempts, and
//! buttons requeue or replay one event, or requeue every dead one. Browsers
//! log in at `GET /login` when the hook supports it ([`BearerToken`] does:
//! the token typed in earns a session cookie).
//!
//! Every route but the login form asks the [`Authorize`] hook first: 401
//! when it says no (the login page for a browser). A state-changing request
//! that a browser sent from another site (its `Origin` or `Referer` names
//! another host), or that carries cookies and no sign of its origin, is
//! refused with 403, whatever the hook: cookie sessions cannot be ridden by
//! other sites. Pages forbid framing and scripts through their
//! `Content-Security-Policy`, and every value shown is HTML-escaped.
//!
//! ```
//! use tower::ServiceExt;
//! use tower_webhooks::admin::{Admin, BearerToken};
//! use tower_webhooks::inbox::{Inbox, MemoryInbox};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let inbox = Inbox::new(MemoryInbox::new());
//! let admin = Admin::new(inbox, BearerToken::new("change me").unwrap()).router();
//! // Serve `admin` on its own (private) listener with `axum::serve`.
//!
//! let request = http::Request::get("/counts").body(axum::body::Body::empty()).unwrap();
//! assert_eq!(admin.clone().oneshot(request).await.unwrap().status(), 401);
//! let request = http::Request::get("/counts")
//!     .header("authorization", "Bearer change me")
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! assert_eq!(admin.oneshot(request).await.unwrap().status(), 200);
//! # }
//! ```

mod api;
mod auth;
mod dashboard;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use self::auth::{AllowAll, Authorize, BearerToken, EmptyToken, SESSION_COOKIE};
use crate::inbox::{EventKey, Inbox, ListCursor};

/// The admin service over an inbox; see the [module docs](self).
pub struct Admin {
    shared: Shared,
    routes: Router,
}

/// What every handler reads.
pub(crate) struct Shared {
    inbox: Inbox,
    auth: Box<dyn Authorize>,
    default_namespace: String,
    base: String,
    max_bulk: usize,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("inbox", &self.shared.inbox)
            .field("default_namespace", &self.shared.default_namespace)
            .field("base", &self.shared.base)
            .field("max_bulk", &self.shared.max_bulk)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// The admin service over `inbox`, letting in the requests `auth`
    /// allows. Use [`BearerToken`], the application's own check (a closure
    /// over the request head), or [`AllowAll`] on a loopback listener.
    pub fn new(inbox: Inbox, auth: impl Authorize) -> Self {
        Self {
            shared: Shared {
                inbox,
                auth: Box::new(auth),
                default_namespace: "generic".to_owned(),
                base: String::new(),
                max_bulk: 10_000,
            },
            routes: Router::new(),
        }
    }

    /// The namespace of an event addressed without `?namespace=`. Default
    /// `generic`.
    #[must_use]
    pub fn default_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.shared.default_namespace = namespace.into();
        self
    }

    /// The path the router is nested under (`"/admin"` for
    /// `Router::nest("/admin", ..)`), for the dashboard's links, redirects and
    /// cookie. Default: the root.
    #[must_use]
    pub fn mounted_at(mut self, path: impl Into<String>) -> Self {
        self.shared.base = path.into().trim_end_matches('/').to_owned();
        self
    }

    /// The most events one bulk request may change. Default 10,000.
    #[must_use]
    pub fn max_bulk(mut self, limit: usize) -> Self {
        self.shared.max_bulk = limit;
        self
    }

    /// Serves `routes` too, behind the same authorization (a `/metrics`
    /// endpoint, a health check).
    #[must_use]
    pub fn with_routes(mut self, routes: Router) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// The router: mount it on the admin listener.
    pub fn router(self) -> Router {
        let shared = Arc::new(self.shared);
        let protected = Router::new()
            .route("/events", get(api::list_events))
            .route("/events/requeue", post(api::requeue_matching))
            .route("/events/replay", post(api::replay_matching))
            .route("/events/{id}", get(api::get_event))
            .route("/events/{id}/requeue", post(api::requeue_event))
            .route("/events/{id}/replay", post(api::replay_event))
            .route("/purge", post(api::purge))
            .route("/counts", get(api::counts))
            .route("/", get(dashboard::home))
            .route("/dashboard/event", get(dashboard::event))
            .route("/dashboard/requeue", post(dashboard::requeue))
            .route("/dashboard/replay", post(dashboard::replay))
            .route("/dashboard/requeue-all", post(dashboard::requeue_all))
            .route("/logout", post(dashboard::logout))
            .with_state(shared.clone())
            .merge(self.routes)
            .route_layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                auth::guard,
            ));
        let public = Router::new()
            .route("/login", get(dashboard::login_form).post(dashboard::login))
            .with_state(shared);
        protected.merge(public)
    }
}

impl Shared {
    fn key(&self, namespace: Option<String>, id: String) -> EventKey {
        EventKey::new(
            namespace
                .filter(|namespace| !namespace.is_empty())
                .unwrap_or_else(|| self.default_namespace.clone()),
            id,
        )
    }
}

/// An opaque listing cursor: base64url of `[nanos, namespace, id]`.
pub(crate) fn encode_cursor(cursor: &ListCursor) -> String {
    let nanos = cursor
        .received_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let json = serde_json::json!([nanos.to_string(), cursor.key.namespace, cursor.key.event_id]);
    URL_SAFE_NO_PAD.encode(json.to_string())
}

/// [`encode_cursor`]'s inverse; `None` for anything else.
pub(crate) fn decode_cursor(text: &str) -> Option<ListCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let (nanos, namespace, event_id): (String, String, String) =
        serde_json::from_slice(&bytes).ok()?;
    let nanos: u128 = nanos.parse().ok()?;
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    let received_at =
        UNIX_EPOCH.checked_add(Duration::new(secs, (nanos % 1_000_000_000) as u32))?;
    Some(ListCursor {
        received_at,
        key: EventKey::new(namespace, event_id),
    })
}

/// RFC 3339 in UTC with milliseconds, as the receiver has always shown times.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, seconds) = ((since.as_secs() / 86_400) as i64, since.as_secs() % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60,
        since.subsec_millis()
    )
}

/// Unix seconds, or UTC RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
pub(crate) fn parse_time(text: &str) -> Option<SystemTime> {
    if let Ok(seconds) = text.parse::<u64>() {
        return UNIX_EPOCH.checked_add(Duration::from_secs(seconds));
    }
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't')
        || bytes[13] != b':'
        || bytes[16] != b':'
        || !matches!(bytes[bytes.len() - 1], b'Z' | b'z')
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let nanos = match &text[19..text.len() - 1] {
        "" => 0,
        fraction => {
            let digits = fraction.strip_prefix('.')?;
            if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            format!("{digits:0<9}").parse::<u32>().ok()?
        }
    };
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    UNIX_EPOCH.checked_add(Duration::new(u64::try_from(seconds).ok()?, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for text in [
            "1970-01-01T00:00:00.000Z",
            "2026-12-03T16:38:47.123Z",
            "2000-02-29T23:59:59.999Z",
        ] {
            assert_eq!(rfc3339(parse_time(text).unwrap()), text);
        }
        assert_eq!(
            parse_time("1700000000"),
            UNIX_EPOCH.checked_add(Duration::from_secs(1_700_000_000))
        );
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), parse_time("1700000000"));
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "-1",
            "2026-01-01T00:00:00+01:00",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let cursor = ListCursor {
            received_at: UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            key: EventKey::new("ns", "id with \"quotes\" and\nnewline"),
        };
        assert_eq!(decode_cursor(&encode_cursor(&cursor)), Some(cursor));
        assert_eq!(decode_cursor("not a cursor"), None);
        assert_eq!(decode_cursor(""), None);
    }
}
