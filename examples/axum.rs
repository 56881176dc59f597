//! The common case on axum: a typed handler for verified, deduplicated events.
//!
//! ```text
//! WEBHOOK_SECRET=dev_secret_change_me cargo run --example axum
//! cargo run --example send -- --url http://127.0.0.1:8003/webhooks/provider --id evt_1 --type invoice.paid
//! ```

use axum::{Router, routing::post};
use serde::Deserialize;
use tower_webhooks::extract::Webhook;
use tower_webhooks::{
    HmacVerifier, WebhookLayer, idempotency::MemoryStore, layer::IdempotencyLayer,
};

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
}

async fn handle(Webhook { webhook, event }: Webhook<Event>) -> &'static str {
    println!(
        "handled event_id={} type={}",
        webhook.event_id().unwrap_or("-"),
        event.kind
    );
    r#"{"ok":true}"#
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("WEBHOOK_SECRET").map_err(|_| "set WEBHOOK_SECRET")?;
    let layer = WebhookLayer::new(HmacVerifier::generic(secret)?)
        .with_idempotency(IdempotencyLayer::new(MemoryStore::new()));
    let app = Router::new().route("/webhooks/provider", post(handle).route_layer(layer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8003").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
