//! A webhook receiver on axum: the crate's reference service.
//!
//! ```text
//! cargo run --example receiver
//! cargo run --example send -- --id evt_1          # 200 {"ok":true,"queued":true}
//! cargo run --example send -- --id evt_1          # 200 {"ok":true,"duplicate":true}
//! cargo run --example send -- --id evt_2 --tamper # 401
//! curl -s 127.0.0.1:8001/events/evt_1             # {"id":"evt_1","status":"succeeded",...}
//! ```
//!
//! Webhook listener (`BIND`):
//!
//! - `POST /webhooks/provider`: the reference scheme (`X-Webhook-Timestamp`,
//!   `X-Webhook-Signature`, `X-Event-Id`) with `WEBHOOK_SECRET`;
//! - `POST /webhooks/<name>` for each preset whose secret variable is set
//!   (table below), with the sender's handshake answered by the layer where
//!   it has one; the routes marked `GET` also accept `GET`, for a `GET`
//!   handshake;
//! - `GET /health`.
//!
//! | route | secret variable | handshake |
//! |---|---|---|
//! | `stripe` | `STRIPE_WEBHOOK_SECRET` | — |
//! | `github` | `GITHUB_WEBHOOK_SECRET` | — |
//! | `shopify` | `SHOPIFY_WEBHOOK_SECRET` | — |
//! | `slack` | `SLACK_SIGNING_SECRET` | `url_verification` |
//! | `standard` | `STANDARD_WEBHOOK_SECRET` (`whsec_…`; OpenAI, GitLab signing tokens) | — |
//! | `svix` | `SVIX_WEBHOOK_SECRET` (`whsec_…`; Clerk, Resend) | — |
//! | `paddle` | `PADDLE_WEBHOOK_SECRET` | — |
//! | `discord` | `DISCORD_PUBLIC_KEY` (hex) | `PING` |
//! | `twilio` | `TWILIO_AUTH_TOKEN` (+ `WEBHOOK_PUBLIC_URL`) | — |
//! | `square` | `SQUARE_SIGNATURE_KEY` (+ `WEBHOOK_PUBLIC_URL`) | — |
//! | `linear` | `LINEAR_WEBHOOK_SECRET` | — |
//! | `gitlab` | `GITLAB_WEBHOOK_TOKEN` | — |
//! | `zoom` | `ZOOM_WEBHOOK_SECRET_TOKEN` | `endpoint.url_validation` |
//! | `typeform` | `TYPEFORM_WEBHOOK_SECRET` | — |
//! | `bitbucket` | `BITBUCKET_WEBHOOK_SECRET` | — |
//! | `jira` | `JIRA_WEBHOOK_SECRET` | — |
//! | `vercel` | `VERCEL_WEBHOOK_SECRET` | — |
//! | `intercom` | `INTERCOM_CLIENT_SECRET` | — |
//! | `meta` | `META_APP_SECRET` | `GET ?hub.mode=subscribe`, only with `META_VERIFY_TOKEN` set |
//! | `dropbox` | `DROPBOX_APP_SECRET` | `GET ?challenge=` |
//! | `calendly` | `CALENDLY_WEBHOOK_SIGNING_KEY` | — |
//! | `mux` | `MUX_WEBHOOK_SECRET` | — |
//! | `docusign` | `DOCUSIGN_CONNECT_HMAC_KEY` | — |
//! | `hubspot` | `HUBSPOT_CLIENT_SECRET` (+ `WEBHOOK_PUBLIC_URL`) | — |
//! | `twitch` | `TWITCH_EVENTSUB_SECRET` | `webhook_callback_verification` |
//! | `mailgun` | `MAILGUN_WEBHOOK_SIGNING_KEY` | — |
//! | `postmark` | `POSTMARK_WEBHOOK_CREDENTIALS` (`user:password`) | — |
//! | `okta` | `OKTA_EVENT_HOOK_SECRET` | `GET` one-time verification |
//! | `msgraph` | `MSGRAPH_CLIENT_STATE` | `POST ?validationToken=` |
//!
//! Admin listener (`ADMIN_BIND`, inbox mode only), the audit trail:
//! `GET /events/{id}` (`?namespace=`, default `generic`; presets record under
//! their name), `GET /events?status=&limit=`, `POST /events/{id}/requeue`, and
//! `GET /health`. With `ADMIN_TOKEN` set, every admin request needs
//! `Authorization: Bearer <token>` (401 otherwise). In inline mode there is no
//! inbox, hence no audit trail: the admin listener does not start and
//! `ADMIN_BIND`/`ADMIN_TOKEN` are not read.
//!
//! Every handled event prints one `handled event_id=<id> type=<type>
//! provider=<name> ...` line on stdout (logs go to stderr).
//!
//! Relay to a broker (inbox mode): with `FORWARD_TO=jetstream`, `rabbitmq`
//! or `redis-stream`, the inbox's worker runs the crate's
//! `tower_webhooks::forward::Relay` instead of the local handler: each
//! recorded event is published (the verified body unchanged, its id,
//! provider, namespace and reception time in headers), marked `succeeded`
//! once the broker confirmed it, and retried with backoff while the broker
//! is down (the events wait in the inbox; senders are still answered 200).
//! The `handled event_id=` lines are then printed by `examples/consumer.rs`
//! (same variables), not by the receiver:
//!
//! ```text
//! FORWARD_TO=jetstream cargo run --example receiver
//! FORWARD_TO=jetstream cargo run --example consumer   # another terminal
//! cargo run --example send -- --id evt_1              # the consumer prints it
//! ```
//!
//! | `FORWARD_TO` | published to (`<subject>` is `FORWARD_SUBJECT`) | downstream duplicates |
//! |---|---|---|
//! | `jetstream` | subject `<subject>.<namespace>`, kept by the stream `FORWARD_STREAM` (created if absent, capturing `<subject>.>`) | none within the stream's duplicate window (2 min): `Nats-Msg-Id` is `namespace:event-id` |
//! | `rabbitmq` | topic exchange `<subject>`, routing key `<subject>.<namespace>`, into the queue `<subject>` (all declared durable at start), persistent, with publisher confirms | possible after a crash between the confirm and `succeeded` (at most `FORWARD_CONCURRENCY` events per crash): consumers dedupe by the AMQP `message_id`, `namespace:event-id` |
//! | `redis-stream` | the stream `<subject>` (every namespace), with an idempotent add | none within 7 days (a guard key per event, `<subject>:forwarded:<namespace>:<event-id>`) |
//!
//! Environment:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `BIND` | the webhook listener's address | `127.0.0.1:8000` |
//! | `WEBHOOK_SECRET` | the reference route's secret | `dev_secret_change_me`, on a loopback `BIND` only |
//! | `WEBHOOK_PUBLIC_URL` | the public base URL senders post to (`https://hooks.example.com`), which Twilio, Square (`<url>/webhooks/square`) and HubSpot sign; read only when one of their variables is set | `http://<BIND>`, on a loopback `BIND` only |
//! | `META_VERIFY_TOKEN` | the verify token of Meta's subscription; enables Meta's `GET` verification on `/webhooks/meta` (needs `META_APP_SECRET`) | none (not answered) |
//! | each preset's secret variable | see the table above | unset (route not mounted) |
//! | `ADMIN_BIND` | the admin listener's address (inbox mode) | `127.0.0.1:8001` |
//! | `ADMIN_TOKEN` | the bearer token admin requests need; required when `ADMIN_BIND` is not a loopback address | none |
//! | `HEADER_READ_TIMEOUT_MS` | how long a client may take to send a request's head (and a kept-alive connection may sit idle) before it is disconnected | `10000` |
//! | `RECEIVER_MODE` | `inbox` (record, answer 200, process in the background) or `inline` (handle inside the request, deduplicated) | `inbox` |
//! | `INBOX_STORE` | inbox mode: `sqlite`, `postgres` or `memory` | `sqlite` |
//! | `IDEMPOTENCY_STORE` | inline mode: `memory`, `sqlite`, `redis` or `postgres` | `memory` |
//! | `WEBHOOK_DB` | the SQLite file | `webhooks.db` |
//! | `INBOX_GROUP_COMMIT` | SQLite inbox: `off` commits (and fsyncs) every event on its own instead of grouping concurrent inserts into one transaction | `on` |
//! | `REDIS_URL` | Redis, for `IDEMPOTENCY_STORE=redis` | `redis://127.0.0.1:6379/` |
//! | `DATABASE_URL` | PostgreSQL, for `postgres` | `postgres://postgres@127.0.0.1:5432/test` |
//! | `HANDLER_DELAY_MS` | how long each handler run takes | `0` |
//! | `HANDLER_FAIL_PCT` | inbox mode: the percentage of handler runs that fail with a retryable error, chosen by a hash of (event id, attempt), so a failed event succeeds on a later attempt (soak tests) | `0` |
//! | `FORWARD_TO` | inbox mode: relay every event to `jetstream`, `rabbitmq` or `redis-stream` instead of handling it here (see above) | unset (handled here) |
//! | `NATS_URL` | NATS, for `FORWARD_TO=jetstream` | `nats://127.0.0.1:4222` |
//! | `AMQP_URL` | RabbitMQ, for `FORWARD_TO=rabbitmq` | `amqp://guest:guest@127.0.0.1:5672/%2f` |
//! | `REDIS_URL` | Redis, also for `FORWARD_TO=redis-stream` | `redis://127.0.0.1:6379/` |
//! | `FORWARD_SUBJECT` | the subject prefix (JetStream), exchange, queue and routing-key prefix (RabbitMQ) or stream (Redis): dot-separated tokens of letters, digits, `_`, `-` | `webhooks` |
//! | `FORWARD_STREAM` | the JetStream stream | `FORWARD_SUBJECT` with `.` replaced by `_` |
//! | `FORWARD_CONCURRENCY` | publishes in flight at once (the relay worker's concurrency) | `64` |
//!
//! Safe by default: the receiver refuses to start (exit status 1, one line on
//! stderr naming the variable) when a secret variable (`WEBHOOK_SECRET`, a
//! preset's, `META_VERIFY_TOKEN`, `ADMIN_TOKEN`) is set but empty or
//! invalid, when `WEBHOOK_SECRET` is unset and `BIND` is not a loopback
//! address (the development secret is public), when `META_VERIFY_TOKEN` is
//! set without `META_APP_SECRET`, when Twilio's, Square's or HubSpot's
//! variable is set and `WEBHOOK_PUBLIC_URL` is invalid, or unset with a
//! `BIND` that is not a loopback address, when `ADMIN_BIND` is not a
//! loopback address and `ADMIN_TOKEN` is unset, and when `FORWARD_TO`,
//! `FORWARD_SUBJECT`, `FORWARD_STREAM`, `FORWARD_CONCURRENCY` or the
//! broker's URL is invalid, or `FORWARD_TO` is set in inline mode. A broker
//! that is down at start is only logged: the events wait in the inbox.
//!
//! Stops cleanly on Ctrl-C or SIGTERM: stops accepting, finishes requests in
//! progress, lets running handlers finish (10 s) and gives the rest back to
//! the inbox.

mod common;
#[path = "common/forward.rs"]
mod forward;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post, post_service};
use axum::{Extension, Router};
use common::{BoxError, Route};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tower::ServiceBuilder;
use tower_webhooks::VerifiedWebhook;
use tower_webhooks::forward::Relay;
use tower_webhooks::idempotency::{
    IdempotencyStore, MemoryStore, PostgresStore, RedisStore, SqliteStore,
};
use tower_webhooks::inbox::{
    EventKey, EventRecord, EventStatus, HandlerError, Inbox, InboxEvent, InboxStore, ListFilter,
    MemoryInbox, PostgresInbox, SqliteInbox, WorkerHandle,
};
use tower_webhooks::layer::IdempotencyLayer;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

// ---- inbox mode -----------------------------------------------------------

/// The worker's handler: the same work as inline mode, from the record.
async fn process(event: InboxEvent) -> Result<(), HandlerError> {
    let fail_pct = handler_fail_pct();
    if fail_pct > 0 && injected_failure(event.id(), event.attempt) < fail_pct {
        return Err(HandlerError::retry(format!(
            "injected failure (HANDLER_FAIL_PCT={fail_pct}) on attempt {}",
            event.attempt
        )));
    }
    common::handle_event(&event.key.namespace, event.id(), &event.body).await;
    Ok(())
}

/// `HANDLER_FAIL_PCT`, read once: 0 to 100.
fn handler_fail_pct() -> u64 {
    static PCT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PCT.get_or_init(|| {
        std::env::var("HANDLER_FAIL_PCT")
            .ok()
            .and_then(|pct| pct.parse::<u64>().ok())
            .unwrap_or(0)
            .min(100)
    })
}

/// A number in 0..100 fixed by (event id, attempt): FNV-1a, so every run of
/// the receiver fails the same attempts, and a failed attempt's retry draws
/// again.
fn injected_failure(id: &str, attempt: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes().chain(attempt.to_le_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash % 100
}

/// The relay's settings: where to publish, and how many publishes at once.
struct Relaying {
    forward: forward::Forward,
    concurrency: usize,
}

/// `FORWARD_TO` and its variables; `None` when it is unset.
fn relaying() -> Result<Option<Relaying>, BoxError> {
    let Some(forward) = forward::Forward::from_env()? else {
        return Ok(None);
    };
    let concurrency = match std::env::var("FORWARD_CONCURRENCY") {
        Err(_) => 64,
        Ok(value) => match value.parse::<usize>() {
            Ok(n) if (1..=4096).contains(&n) => n,
            _ => {
                return Err(format!(
                    "FORWARD_CONCURRENCY={value}: expected a number from 1 to 4096"
                )
                .into());
            }
        },
    };
    Ok(Some(Relaying {
        forward,
        concurrency,
    }))
}

/// The inbox's worker: the local handler, or with `FORWARD_TO` the relay
/// to the broker (whose stream, or exchange and queue, are declared first).
/// Returns the inbox too: the relay keeps the trace context with each event.
async fn start_worker(
    inbox: Inbox,
    relaying: Option<Relaying>,
    routes: &[Route],
) -> (Inbox, WorkerHandle) {
    let Some(Relaying {
        forward,
        concurrency,
    }) = relaying
    else {
        let worker = inbox.worker(process).lease(Duration::from_secs(10)).spawn();
        return (inbox, worker);
    };
    let inbox = inbox
        .keep_header(header::HeaderName::from_static("traceparent"))
        .keep_header(header::HeaderName::from_static("tracestate"));
    if let Err(error) = forward.prepare(false).await {
        tracing::warn!(
            broker = forward.broker.name(),
            %error,
            "could not declare the broker's destination; publishes are retried from the inbox"
        );
    }
    let namespaces: Vec<&str> = routes
        .iter()
        .map(|route| route.verifier.provider())
        .collect();
    let relay = Relay::from_shared(forward.publisher(&namespaces)).timeout(Duration::from_secs(5));
    let worker = inbox
        .worker(relay)
        .concurrency(concurrency)
        .lease(Duration::from_secs(10))
        .spawn();
    tracing::info!(
        broker = forward.broker.name(),
        subject = %forward.subject,
        concurrency,
        "relaying events to the broker"
    );
    (inbox, worker)
}

async fn open_inbox() -> Result<Inbox, BoxError> {
    let store: Arc<dyn InboxStore> = match env_or("INBOX_STORE", "sqlite").as_str() {
        "sqlite" => Arc::new(
            SqliteInbox::builder(env_or("WEBHOOK_DB", "webhooks.db"))
                .group_commit(env_or("INBOX_GROUP_COMMIT", "on") != "off")
                .open()
                .await?,
        ),
        "postgres" => {
            let store = PostgresInbox::connect(&env_or(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/test",
            ))?;
            store.migrate().await?;
            Arc::new(store)
        }
        "memory" => Arc::new(MemoryInbox::new()),
        other => {
            return Err(format!("INBOX_STORE={other}: expected sqlite, postgres or memory").into());
        }
    };
    Ok(Inbox::from_shared(store))
}

fn inbox_app(routes: Vec<Route>, inbox: &Inbox) -> Router {
    let mut app = Router::new();
    for route in routes {
        let endpoint = ServiceBuilder::new()
            .layer(route.layer())
            .service(inbox.accept());
        let methods = if route.get {
            post_service(endpoint.clone()).get_service(endpoint)
        } else {
            post_service(endpoint)
        };
        app = app.route(&route.path, methods);
    }
    app
}

/// The audit trail, on its own listener.
fn admin_app(inbox: Inbox, token: Option<String>) -> Router {
    Router::new()
        .route("/events", get(list_events))
        .route("/events/{id}", get(get_event))
        .route("/events/{id}/requeue", post(requeue_event))
        .route("/health", get(health))
        .with_state(inbox)
        .layer(middleware::from_fn_with_state(
            token.map(Arc::<str>::from),
            require_token,
        ))
}

/// With `ADMIN_TOKEN` set, lets through only requests with
/// `Authorization: Bearer <token>`, compared in constant time.
async fn require_token(
    State(token): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> axum::response::Response {
    if let Some(token) = token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, given)| given.as_bytes());
        if !given.is_some_and(|given| bool::from(given.ct_eq(token.as_bytes()))) {
            let mut response = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            let challenge = header::HeaderValue::from_static("Bearer");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
            return response;
        }
    }
    next.run(request).await
}

#[derive(Deserialize)]
struct NamespaceQuery {
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

fn event_json(record: &EventRecord) -> serde_json::Value {
    json!({
        "id": record.key.event_id,
        "namespace": record.key.namespace,
        "status": record.status.as_str(),
        "attempts": record.attempts,
        "received_at": common::rfc3339(record.received_at),
        "updated_at": common::rfc3339(record.updated_at),
        "next_attempt_at": record.next_attempt_at.map(common::rfc3339),
        "last_error": record.last_error,
    })
}

fn error(status: StatusCode, message: &str) -> axum::response::Response {
    (status, Json(json!({ "ok": false, "error": message }))).into_response()
}

fn key(id: String, query: NamespaceQuery) -> EventKey {
    EventKey::new(query.namespace.unwrap_or_else(|| "generic".to_owned()), id)
}

async fn get_event(
    State(inbox): State<Inbox>,
    Path(id): Path<String>,
    Query(query): Query<NamespaceQuery>,
) -> axum::response::Response {
    match inbox.store().get(&key(id, query)).await {
        Ok(Some(record)) => Json(event_json(&record)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such event"),
        Err(failure) => error(StatusCode::SERVICE_UNAVAILABLE, &failure.to_string()),
    }
}

async fn list_events(
    State(inbox): State<Inbox>,
    Query(query): Query<ListQuery>,
) -> axum::response::Response {
    let mut filter = ListFilter::new(query.limit.unwrap_or(100).min(10_000));
    if let Some(status) = query.status {
        match EventStatus::parse(&status) {
            Some(status) => filter = filter.status(status),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "status is pending, processing, succeeded or dead",
                );
            }
        }
    }
    match inbox.store().list(filter).await {
        Ok(records) => {
            Json(json!({ "events": records.iter().map(event_json).collect::<Vec<_>>() }))
                .into_response()
        }
        Err(failure) => error(StatusCode::SERVICE_UNAVAILABLE, &failure.to_string()),
    }
}

async fn requeue_event(
    State(inbox): State<Inbox>,
    Path(id): Path<String>,
    Query(query): Query<NamespaceQuery>,
) -> axum::response::Response {
    let key = key(id, query);
    match inbox.store().requeue(&key).await {
        Ok(true) => Json(json!({ "ok": true, "requeued": true })).into_response(),
        Ok(false) => match inbox.store().get(&key).await {
            Ok(None) => error(StatusCode::NOT_FOUND, "no such event"),
            _ => error(
                StatusCode::CONFLICT,
                "only dead events with their payload can be requeued",
            ),
        },
        Err(failure) => error(StatusCode::SERVICE_UNAVAILABLE, &failure.to_string()),
    }
}

// ---- inline mode ------------------------------------------------------------

async fn inline_handler(Extension(webhook): Extension<VerifiedWebhook>, body: Bytes) -> String {
    common::handle_event(webhook.provider(), webhook.event_id().unwrap_or("-"), &body).await
}

async fn open_idempotency_store() -> Result<Arc<dyn IdempotencyStore>, BoxError> {
    Ok(match env_or("IDEMPOTENCY_STORE", "memory").as_str() {
        "memory" => Arc::new(MemoryStore::new()),
        "sqlite" => Arc::new(SqliteStore::open(env_or("WEBHOOK_DB", "webhooks.db")).await?),
        "redis" => {
            Arc::new(RedisStore::connect(&env_or("REDIS_URL", "redis://127.0.0.1:6379/")).await?)
        }
        "postgres" => {
            let store = PostgresStore::connect(&env_or(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/test",
            ))?;
            store.migrate().await?;
            Arc::new(store)
        }
        other => {
            return Err(format!(
                "IDEMPOTENCY_STORE={other}: expected memory, sqlite, redis or postgres"
            )
            .into());
        }
    })
}

fn inline_app(routes: Vec<Route>, store: Arc<dyn IdempotencyStore>) -> Router {
    let mut app = Router::new();
    for route in routes {
        let layer = route
            .layer()
            .with_idempotency(IdempotencyLayer::from_shared(store.clone()));
        let methods = if route.get {
            post(inline_handler).get(inline_handler)
        } else {
            post(inline_handler)
        };
        app = app.route(&route.path, methods.route_layer(layer));
    }
    app
}

async fn health() -> &'static str {
    "ok"
}

// ---- main -------------------------------------------------------------------

#[tokio::main]
async fn main() -> ExitCode {
    common::init_tracing();
    common::exit(run().await)
}

async fn run() -> Result<(), BoxError> {
    // Everything that can refuse the configuration comes before the stores.
    let header_read_timeout = common::header_read_timeout()?;
    let listener = common::listen("BIND", "127.0.0.1:8000").await?;
    let address = listener.local_addr()?;
    let routes = common::routes(address)?;
    let paths: Vec<String> = routes.iter().map(|route| route.path.clone()).collect();
    let mode = env_or("RECEIVER_MODE", "inbox");
    let relaying = relaying()?;
    if relaying.is_some() && mode != "inbox" {
        return Err(format!(
            "FORWARD_TO is set and RECEIVER_MODE={mode}: the relay needs RECEIVER_MODE=inbox"
        )
        .into());
    }
    let (app, admin, worker) = match mode.as_str() {
        "inbox" => {
            let token = common::secret_var("ADMIN_TOKEN")?;
            let admin = common::listen("ADMIN_BIND", "127.0.0.1:8001").await?;
            let admin_address = admin.local_addr()?;
            if token.is_none() && !common::is_loopback(admin_address) {
                return Err(format!(
                    "ADMIN_BIND is {admin_address}, not a loopback address, and ADMIN_TOKEN is \
                     not set; set ADMIN_TOKEN (admin requests then need a bearer token)"
                )
                .into());
            }
            let inbox = open_inbox().await?;
            let (inbox, worker) = start_worker(inbox, relaying, &routes).await;
            tracing::info!(address = %admin_address, token = token.is_some(), "admin listening");
            let app = inbox_app(routes, &inbox);
            (app, Some((admin, admin_app(inbox, token))), Some(worker))
        }
        "inline" => (
            inline_app(routes, open_idempotency_store().await?),
            None,
            None,
        ),
        other => return Err(format!("RECEIVER_MODE={other}: expected inbox or inline").into()),
    };
    let mut servers = vec![(listener, app.route("/health", get(health)))];
    servers.extend(admin);
    tracing::info!(%address, mode, routes = ?paths, "listening");
    common::serve(servers, header_read_timeout).await;
    if let Some(worker) = worker {
        worker.shutdown().await;
    }
    Ok(())
}
