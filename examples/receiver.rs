//! A webhook receiver on axum: the crate's reference service.
//!
//! ```text
//! cargo run --example receiver
//! cargo run --example send -- --id evt_1          # 200, handled
//! cargo run --example send -- --id evt_1          # 200, duplicate
//! cargo run --example send -- --id evt_2 --tamper # 401
//! ```
//!
//! - listens on `BIND` (default `127.0.0.1:8000`);
//! - `POST /webhooks/provider` verifies the reference scheme
//!   (`X-Webhook-Timestamp`, `X-Webhook-Signature`, `X-Event-Id`) with
//!   `WEBHOOK_SECRET` (default `dev_secret_change_me`) and deduplicates
//!   deliveries by event id in memory;
//! - prints one `handled event_id=<id> type=<type> ...` line on stdout per
//!   handled event (logs go to stderr);
//! - stops cleanly on Ctrl-C or SIGTERM.

mod common;

use axum::body::Bytes;
use axum::routing::post;
use axum::{Extension, Router};
use tower_webhooks::idempotency::MemoryStore;
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::{HmacVerifier, VerifiedWebhook, WebhookLayer};

async fn provider_webhook(Extension(webhook): Extension<VerifiedWebhook>, body: Bytes) -> String {
    common::handle_event(&webhook, &body)
}

fn app() -> Router {
    let generic = WebhookLayer::new(HmacVerifier::generic(common::webhook_secret()))
        .with_idempotency(IdempotencyLayer::new(MemoryStore::new()));
    Router::new()
        .route(
            "/webhooks/provider",
            post(provider_webhook).route_layer(generic),
        )
        .route("/health", axum::routing::get(|| async { "ok" }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    common::init_tracing();
    let address = common::bind_address();
    let listener = tokio::net::TcpListener::bind(&address).await?;
    tracing::info!(address = %listener.local_addr()?, "listening; POST /webhooks/provider (generic scheme, memory idempotency)");
    axum::serve(listener, app())
        .with_graceful_shutdown(common::shutdown_signal())
        .await
}
