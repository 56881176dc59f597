//! Per-tenant secrets on one route: a SaaS receiving each customer's Stripe
//! events at `/webhooks/stripe/{tenant}`, each verified with that customer's
//! own signing secret.
//!
//! ```text
//! TENANT_SECRETS=acme=whsec_acme,globex=whsec_globex cargo run --example multi_tenant
//! cargo run --example send -- --provider stripe --secret whsec_acme \
//!     --url http://127.0.0.1:8002/webhooks/stripe/acme --id evt_1      # 200
//! cargo run --example send -- --provider stripe --secret whsec_acme \
//!     --url http://127.0.0.1:8002/webhooks/stripe/globex --id evt_2    # 401
//! ```
//!
//! The secrets live in a map here; a real service looks them up in its own
//! database from [`KeySource::fetch`]. Keys are cached for a minute, so a
//! secret rotated in the database takes effect within that time. `BIND`
//! (default `127.0.0.1:8002`) sets the address.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router, routing::post};
use tower_webhooks::idempotency::MemoryStore;
use tower_webhooks::keys::{CachedKeys, KeyError, KeySource, Tenants};
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::providers::Stripe;
use tower_webhooks::{VerifiedWebhook, WebhookLayer};

/// Each tenant's signing secret (in a real service: a table).
#[derive(Debug)]
struct TenantSecrets(Arc<HashMap<String, String>>);

#[async_trait::async_trait]
impl KeySource<String, Stripe> for TenantSecrets {
    async fn fetch(&self, tenant: &String) -> Result<Option<Stripe>, KeyError> {
        let Some(secret) = self.0.get(tenant) else {
            return Ok(None); // unknown tenant: 401, remembered for 30 s
        };
        Stripe::new(secret.as_str())
            .map(Some)
            .map_err(KeyError::new)
    }
}

/// `TENANT_SECRETS=tenant=secret,...`
fn tenant_secrets() -> Result<HashMap<String, String>, String> {
    let spec = std::env::var("TENANT_SECRETS").unwrap_or_default();
    spec.split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((tenant, secret)) if !tenant.is_empty() && !secret.is_empty() => {
                Ok((tenant.to_owned(), secret.to_owned()))
            }
            _ => Err("TENANT_SECRETS is a list of tenant=secret pairs, comma-separated".into()),
        })
        .collect()
}

async fn handle(Extension(webhook): Extension<VerifiedWebhook>) -> &'static str {
    println!(
        "handled event_id={} tenant={} provider={}",
        webhook.event_id().unwrap_or("-"),
        webhook.tenant().unwrap_or("-"),
        webhook.provider()
    );
    r#"{"ok":true}"#
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secrets = tenant_secrets()?;
    if secrets.is_empty() {
        return Err("set TENANT_SECRETS, e.g. acme=whsec_acme,globex=whsec_globex".into());
    }
    // The tenant is the path segment after /webhooks/stripe/.
    let tenants = Tenants::<Stripe, _>::new("stripe", |parts: &http::request::Parts| {
        let tenant = parts.uri.path().strip_prefix("/webhooks/stripe/")?;
        Some(tenant.to_owned())
    });
    let keys = CachedKeys::new(TenantSecrets(Arc::new(secrets))).ttl(Duration::from_secs(60));
    let layer = WebhookLayer::with_keys(tenants, keys)
        .with_idempotency(IdempotencyLayer::new(MemoryStore::new()));
    let app = Router::new().route("/webhooks/stripe/{tenant}", post(handle).route_layer(layer));

    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8002".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
