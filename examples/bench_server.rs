//! The same axum handler with and without the crate's layers, in one
//! process, for side-by-side load tests (see BENCHMARKS.md):
//!
//! - `POST /bare`: the handler alone (it reads the event id from
//!   `X-Event-Id`, unverified);
//! - `POST /guarded`: the handler behind `WebhookLayer` (reference scheme,
//!   `WEBHOOK_SECRET`, with the receiver's rules: the development secret
//!   `dev_secret_change_me` only on a loopback `BIND`) and the in-memory
//!   idempotency layer, as the receiver's `RECEIVER_MODE=inline
//!   IDEMPOTENCY_STORE=memory` route.
//!
//! Both run the receiver's handler (`examples/common`), which parses the
//! JSON body and prints one `handled ...` line per event on stdout.
//!
//! ```text
//! BIND=127.0.0.1:8002 cargo run --release --example bench_server > /dev/null
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8002/bare ...
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8002/guarded ...
//! ```

mod common;

use std::process::ExitCode;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Router};
use tower_webhooks::idempotency::MemoryStore;
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::{HmacVerifier, VerifiedWebhook, WebhookLayer};

async fn bare(headers: HeaderMap, body: Bytes) -> String {
    let id = headers
        .get("x-event-id")
        .and_then(|id| id.to_str().ok())
        .unwrap_or("-");
    common::handle_event("generic", id, &body).await
}

async fn guarded(Extension(webhook): Extension<VerifiedWebhook>, body: Bytes) -> String {
    common::handle_event(webhook.provider(), webhook.event_id().unwrap_or("-"), &body).await
}

#[tokio::main]
async fn main() -> ExitCode {
    common::init_tracing();
    common::exit(run().await)
}

async fn run() -> Result<(), common::BoxError> {
    let listener = common::listen("BIND", "127.0.0.1:8000").await?;
    let address = listener.local_addr()?;
    let layer = WebhookLayer::new(HmacVerifier::generic(common::webhook_secret(address)?)?)
        .with_idempotency(IdempotencyLayer::new(MemoryStore::new()));
    let app = Router::new()
        .route("/bare", post(bare))
        .route("/guarded", post(guarded).route_layer(layer));
    tracing::info!(%address, "listening");
    common::serve(vec![(listener, app)], common::header_read_timeout()?).await;
    Ok(())
}
