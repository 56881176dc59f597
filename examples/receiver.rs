//! A webhook receiver on axum: the crate's reference service.
//!
//! ```text
//! cargo run --example receiver
//! cargo run --example send -- --id evt_1          # 200 {"ok":true,"queued":true}
//! cargo run --example send -- --id evt_1          # 200 {"ok":true,"duplicate":true}
//! cargo run --example send -- --id evt_2 --tamper # 401
//! curl -s 127.0.0.1:8001/events/evt_1             # {"id":"evt_1","status":"succeeded",...}
//! open http://127.0.0.1:8001/                      # the dashboard
//! ```
//!
//! Webhook listener (`BIND`):
//!
//! - `POST /webhooks/provider`: the reference scheme (`X-Webhook-Timestamp`,
//!   `X-Webhook-Signature`, `X-Event-Id`) with `WEBHOOK_SECRET`;
//! - `POST /webhooks/<name>` for each preset of the crate's registry
//!   (`providers::all()`) whose secret or public-key variable is set (table
//!   below), with the sender's handshake answered by the layer where
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
//! | `telnyx` | `TELNYX_PUBLIC_KEY` (Ed25519 public key, base64) | — |
//! | `sendgrid` | `SENDGRID_VERIFICATION_KEY` (P-256 public key, base64 DER) | — |
//! | `plaid` | `PLAID_VERIFICATION_KEY` (the JWK, with its `kid`) | — |
//!
//! The senders whose keys are fetched over HTTPS (`keys::HttpsFetcher`, the
//! certificates and key sets cached for an hour; a failed fetch is 503 with
//! `Retry-After`, so the sender retries):
//!
//! | route | variables | handshake |
//! |---|---|---|
//! | `sns` | `SNS_TOPIC_ARNS` (comma-separated; other topics are refused) | `SubscriptionConfirmation`, confirmed only with `SNS_CONFIRM_SUBSCRIPTIONS=on`; otherwise it reaches the handler |
//! | `paypal` | `PAYPAL_WEBHOOK_ID` | — |
//! | `pubsub` | `PUBSUB_AUDIENCE` and `PUBSUB_SERVICE_ACCOUNT` (the push subscription's audience and service account email) | — |
//!
//! Admin listener (`ADMIN_BIND`, inbox mode only): the admin service
//! (`tower_webhooks::admin`): the dashboard at `/` (open it in a browser),
//! the JSON API (`GET /events?status=&namespace=&limit=&cursor=`,
//! `GET /events/{id}` with `?namespace=`, default `generic`, presets record
//! under their name; `POST /events/{id}/requeue`, `POST /events/{id}/replay`,
//! bulk `POST /events/requeue` and `POST /events/replay`, `POST /purge`,
//! `GET /counts`), `GET /metrics` (Prometheus text) and `GET /health`. With
//! `ADMIN_TOKEN` set, every admin request needs `Authorization: Bearer
//! <token>` (401 otherwise), and a browser logs in on the dashboard's form
//! with the token. In inline mode there is no inbox, hence no audit trail:
//! the admin listener does not start and `ADMIN_BIND`/`ADMIN_TOKEN` are not
//! read.
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
//! | `INBOX_MAX_ATTEMPTS` | inbox mode: attempts before an event goes `dead` | `8` |
//! | `INBOX_BACKOFF_MS` | inbox mode: the first retry's delay (doubling, with jitter, up to 10 min) | `1000` |
//! | `HEADER_READ_TIMEOUT_MS` | how long a client may take to send a request's head (and a kept-alive connection may sit idle) before it is disconnected | `10000` |
//! | `RECEIVER_MODE` | `inbox` (record, answer 200, process in the background) or `inline` (handle inside the request, deduplicated) | `inbox` |
//! | `INBOX_STORE` | inbox mode: `sqlite`, `postgres` or `memory` | `sqlite` |
//! | `IDEMPOTENCY_STORE` | inline mode: `memory`, `sqlite`, `redis` or `postgres` | `memory` |
//! | `WEBHOOK_DB` | the SQLite file | `webhooks.db` |
//! | `INBOX_GROUP_COMMIT` | SQLite inbox: `off` commits (and fsyncs) every event on its own instead of grouping concurrent inserts into one transaction | `on` |
//! | `REDIS_URL` | Redis, for `IDEMPOTENCY_STORE=redis` | `redis://127.0.0.1:6379/` |
//! | `DATABASE_URL` | PostgreSQL, for `postgres` | `postgres://postgres@127.0.0.1:5432/test` |
//! | `HANDLER_DELAY_MS` | how long each handler run takes | `0` |
//! | `ORDER_BY` | inbox mode: ordered lanes. A JSON pointer into the verified body (`/data/object/id` for Stripe, `/repository/id` for GitHub) or `header:NAME`; events with the same value are handled one at a time in the order they were recorded, and a dead event holds its lane until it is requeued (see `tower_webhooks::inbox`, "Lanes"); events without the value are unordered | unset (no lanes) |
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
//! loopback address and `ADMIN_TOKEN` is unset, when `INBOX_MAX_ATTEMPTS`
//! or `INBOX_BACKOFF_MS` is not a whole number of at least 1, and when
//! `FORWARD_TO`, `FORWARD_SUBJECT`, `FORWARD_STREAM`, `FORWARD_CONCURRENCY`
//! or the broker's URL is invalid, or `FORWARD_TO` is set in inline mode. A
//! broker that is down at start is only logged: the events wait in the inbox.
//!
//! Retention runs by itself: in inbox mode a purger deletes finished events
//! (with their attempts and signature records) 30 days after they arrived,
//! and the inbox depth gauges are sampled every 15 s for `/metrics`; in
//! inline mode the idempotency store's expired keys are purged every minute.
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
use axum::routing::{get, post, post_service};
use axum::{Extension, Router};
use common::{BoxError, Route};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower::ServiceBuilder;
use tower_webhooks::VerifiedWebhook;
use tower_webhooks::admin::{Admin, AllowAll, BearerToken};
use tower_webhooks::forward::Relay;
use tower_webhooks::idempotency::{
    self, IdempotencyStore, MemoryStore, PostgresStore, RedisStore, SqliteStore,
};
use tower_webhooks::inbox::{
    HandlerError, Inbox, InboxEvent, InboxStore, MemoryInbox, OrderBy, PostgresInbox, Retention,
    SqliteInbox, TaskHandle, WorkerHandle,
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
    max_attempts: u32,
    backoff: Duration,
) -> (Inbox, WorkerHandle) {
    let Some(Relaying {
        forward,
        concurrency,
    }) = relaying
    else {
        let worker = inbox
            .worker(process)
            .lease(Duration::from_secs(10))
            .max_attempts(max_attempts)
            .backoff(backoff, backoff.max(Duration::from_secs(600)))
            .spawn();
        return (inbox, worker);
    };
    let inbox = inbox
        .keep_header(axum::http::HeaderName::from_static("traceparent"))
        .keep_header(axum::http::HeaderName::from_static("tracestate"));
    if let Err(error) = forward.prepare(false).await {
        tracing::warn!(
            broker = forward.broker.name(),
            %error,
            "could not declare the broker's destination; publishes are retried from the inbox"
        );
    }
    let namespaces: Vec<&str> = routes.iter().map(|route| route.provider.as_str()).collect();
    let relay = Relay::from_shared(forward.publisher(&namespaces)).timeout(Duration::from_secs(5));
    let worker = inbox
        .worker(relay)
        .concurrency(concurrency)
        .lease(Duration::from_secs(10))
        .max_attempts(max_attempts)
        .backoff(backoff, backoff.max(Duration::from_secs(600)))
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
    // Refused before the store is opened.
    let order_by = match std::env::var("ORDER_BY") {
        Ok(spec) => Some(OrderBy::parse(&spec).map_err(|error| {
            format!("ORDER_BY={spec}: {error} (expected a JSON pointer such as /data/object/id, or header:NAME)")
        })?),
        Err(_) => None,
    };
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
    let inbox = Inbox::from_shared(store);
    Ok(match order_by {
        Some(order_by) => inbox.order_by(order_by),
        None => inbox,
    })
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

/// The admin listener: the dashboard at `/`, the JSON API at `/events...`,
/// `/counts` and `/purge`, and `/metrics` and `/health`, all behind
/// `ADMIN_TOKEN` when it is set (open on loopback otherwise).
fn admin_app(
    inbox: Inbox,
    token: Option<String>,
    metrics: PrometheusHandle,
) -> Result<Router, BoxError> {
    let extra = Router::new()
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .route("/health", get(health));
    let admin = match token {
        Some(token) => Admin::new(inbox, BearerToken::new(token)?),
        // `run` allows no token only on a loopback `ADMIN_BIND`.
        None => Admin::new(inbox, AllowAll),
    };
    Ok(admin.with_routes(extra).router())
}

/// A positive whole number from `variable`, or `default` when it is unset.
fn number_var<T: std::str::FromStr + PartialOrd + From<u8>>(
    variable: &str,
    default: T,
) -> Result<T, BoxError> {
    match std::env::var(variable) {
        Err(_) => Ok(default),
        Ok(value) => value
            .parse::<T>()
            .ok()
            .filter(|number| *number >= T::from(1))
            .ok_or_else(|| {
                format!("{variable}={value:?}: expected a whole number of at least 1").into()
            }),
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
    // Retention runs by itself: the inbox's purger (finished events after
    // 30 days) and depth gauges, or the idempotency store's purger.
    let mut housekeeping: Vec<TaskHandle> = Vec::new();
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
            let max_attempts = number_var::<u32>("INBOX_MAX_ATTEMPTS", 8)?;
            let backoff = Duration::from_millis(number_var::<u64>("INBOX_BACKOFF_MS", 1_000)?);
            let metrics = PrometheusBuilder::new().install_recorder()?;
            let inbox = open_inbox().await?;
            let (inbox, worker) =
                start_worker(inbox, relaying, &routes, max_attempts, backoff).await;
            housekeeping.push(inbox.spawn_purger(Retention::new()));
            housekeeping.push(inbox.spawn_gauges(Duration::from_secs(15)));
            tracing::info!(address = %admin_address, token = token.is_some(), "admin listening");
            let app = inbox_app(routes, &inbox);
            let admin_router = admin_app(inbox, token, metrics)?;
            (app, Some((admin, admin_router)), Some(worker))
        }
        "inline" => {
            let store = open_idempotency_store().await?;
            housekeeping.push(idempotency::spawn_purger(
                store.clone(),
                Duration::from_secs(60),
            ));
            (inline_app(routes, store), None, None)
        }
        other => return Err(format!("RECEIVER_MODE={other}: expected inbox or inline").into()),
    };
    let mut servers = vec![(listener, app.route("/health", get(health)))];
    servers.extend(admin);
    tracing::info!(%address, mode, routes = ?paths, "listening");
    common::serve(servers, header_read_timeout).await;
    if let Some(worker) = worker {
        worker.shutdown().await;
    }
    for task in housekeeping {
        task.shutdown().await;
    }
    Ok(())
}
