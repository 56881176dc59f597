//! A webhook receiver on axum: the crate's reference service.
//!
//! ```text
//! cargo run --example receiver
//! cargo run --example send -- --id evt_1          # 200 {"ok":true,"queued":true}
//! cargo run --example send -- --id evt_1          # 200 {"ok":true,"duplicate":true}
//! cargo run --example send -- --id evt_2 --tamper # 401
//! curl -s 127.0.0.1:8000/events/evt_1             # {"id":"evt_1","status":"succeeded",...}
//! ```
//!
//! Routes:
//!
//! - `POST /webhooks/provider`: the reference scheme (`X-Webhook-Timestamp`,
//!   `X-Webhook-Signature`, `X-Event-Id`) with `WEBHOOK_SECRET` (default
//!   `dev_secret_change_me`);
//! - `POST /webhooks/<name>` for each preset whose secret is set: `stripe`
//!   (`STRIPE_WEBHOOK_SECRET`), `github` (`GITHUB_WEBHOOK_SECRET`), `shopify`
//!   (`SHOPIFY_WEBHOOK_SECRET`), `slack` (`SLACK_SIGNING_SECRET`), `standard`
//!   (`STANDARD_WEBHOOK_SECRET`, a `whsec_` secret), `paddle`
//!   (`PADDLE_WEBHOOK_SECRET`), `discord` (`DISCORD_PUBLIC_KEY`, hex);
//! - in inbox mode, the audit trail: `GET /events/{id}` (`?namespace=`, default
//!   `generic`; presets record under their name), `GET /events?status=&limit=`,
//!   `POST /events/{id}/requeue`;
//! - `GET /health`.
//!
//! Every handled event prints one `handled event_id=<id> type=<type>
//! provider=<name> ...` line on stdout (logs go to stderr).
//!
//! Environment:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `BIND` | listen address | `127.0.0.1:8000` |
//! | `RECEIVER_MODE` | `inbox` (record, answer 200, process in the background) or `inline` (handle inside the request, deduplicated) | `inbox` |
//! | `INBOX_STORE` | inbox mode: `sqlite`, `postgres` or `memory` | `sqlite` |
//! | `IDEMPOTENCY_STORE` | inline mode: `memory`, `sqlite`, `redis` or `postgres` | `memory` |
//! | `WEBHOOK_DB` | the SQLite file | `webhooks.db` |
//! | `INBOX_GROUP_COMMIT` | SQLite inbox: `off` commits (and fsyncs) every event on its own instead of grouping concurrent inserts into one transaction | `on` |
//! | `REDIS_URL` | Redis, for `IDEMPOTENCY_STORE=redis` | `redis://127.0.0.1:6379/` |
//! | `DATABASE_URL` | PostgreSQL, for `postgres` | `postgres://postgres@127.0.0.1:5432/test` |
//! | `HANDLER_DELAY_MS` | how long each handler run takes | `0` |
//! | `HANDLER_FAIL_PCT` | inbox mode: the percentage of handler runs that fail with a retryable error, chosen by a hash of (event id, attempt), so a failed event succeeds on a later attempt (soak tests) | `0` |
//!
//! Stops cleanly on Ctrl-C or SIGTERM: stops accepting, finishes requests in
//! progress, lets running handlers finish (10 s) and gives the rest back to
//! the inbox.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post, post_service};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::json;
use tower::ServiceBuilder;
use tower_webhooks::idempotency::{
    IdempotencyStore, MemoryStore, PostgresStore, RedisStore, SqliteStore,
};
use tower_webhooks::inbox::{
    EventKey, EventRecord, EventStatus, HandlerError, Inbox, InboxEvent, InboxStore, ListFilter,
    MemoryInbox, PostgresInbox, SqliteInbox, WorkerHandle,
};
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::{SignatureVerifier, VerifiedWebhook, WebhookLayer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

fn inbox_app(routes: Vec<(String, Arc<dyn SignatureVerifier>)>, inbox: Inbox) -> Router {
    let mut app = Router::new();
    for (path, verifier) in routes {
        let endpoint = ServiceBuilder::new()
            .layer(WebhookLayer::from_shared(verifier))
            .service(inbox.accept());
        app = app.route(&path, post_service(endpoint));
    }
    let audit = Router::new()
        .route("/events", get(list_events))
        .route("/events/{id}", get(get_event))
        .route("/events/{id}/requeue", post(requeue_event))
        .with_state(inbox);
    app.merge(audit)
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

fn inline_app(
    routes: Vec<(String, Arc<dyn SignatureVerifier>)>,
    store: Arc<dyn IdempotencyStore>,
) -> Router {
    let mut app = Router::new();
    for (path, verifier) in routes {
        let layer = WebhookLayer::from_shared(verifier)
            .with_idempotency(IdempotencyLayer::from_shared(store.clone()));
        app = app.route(&path, post(inline_handler).route_layer(layer));
    }
    app
}

// ---- main -------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    common::init_tracing();
    let routes = common::routes()?;
    let paths: Vec<String> = routes.iter().map(|(path, _)| path.clone()).collect();
    let mode = env_or("RECEIVER_MODE", "inbox");
    let (app, worker): (Router, Option<WorkerHandle>) = match mode.as_str() {
        "inbox" => {
            let inbox = open_inbox().await?;
            let worker = inbox.worker(process).lease(Duration::from_secs(10)).spawn();
            (inbox_app(routes, inbox), Some(worker))
        }
        "inline" => (inline_app(routes, open_idempotency_store().await?), None),
        other => return Err(format!("RECEIVER_MODE={other}: expected inbox or inline").into()),
    };
    let app = app.route("/health", get(|| async { "ok" }));

    let listener = tokio::net::TcpListener::bind(common::bind_address()).await?;
    tracing::info!(address = %listener.local_addr()?, mode, routes = ?paths, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(common::shutdown_signal())
        .await?;
    if let Some(worker) = worker {
        worker.shutdown().await;
    }
    Ok(())
}
