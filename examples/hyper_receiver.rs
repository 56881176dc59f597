//! The reference receiver on plain hyper 1 (no axum): `POST /webhooks/provider`
//! with the same contract as `examples/receiver.rs`.
//!
//! ```text
//! cargo run --example hyper_receiver
//! cargo run --example send
//! ```

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::{ServiceBuilder, ServiceExt};
use tower_webhooks::idempotency::MemoryStore;
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::{HmacVerifier, VerifiedWebhook, WebhookLayer};

/// The handler: receives the verified bytes as `Full<Bytes>`.
async fn handle(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let webhook = request.extensions().get::<VerifiedWebhook>().cloned();
    let body = request.into_body().collect().await?.to_bytes();
    let Some(webhook) = webhook else {
        return Ok(status(StatusCode::INTERNAL_SERVER_ERROR));
    };
    let answer =
        common::handle_event(webhook.provider(), webhook.event_id().unwrap_or("-"), &body).await;
    Ok(Response::new(Full::new(Bytes::from(answer))))
}

fn status(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    common::init_tracing();
    let webhooks = ServiceBuilder::new()
        .layer(
            WebhookLayer::new(
                HmacVerifier::generic(common::webhook_secret()).map_err(std::io::Error::other)?,
            )
            .with_idempotency(IdempotencyLayer::new(MemoryStore::new())),
        )
        .service_fn(handle);

    let address = common::bind_address();
    let listener = tokio::net::TcpListener::bind(&address).await?;
    tracing::info!(address = %listener.local_addr()?, "listening (hyper); POST /webhooks/provider");
    let shutdown = common::shutdown_signal();
    tokio::pin!(shutdown);
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => break,
        };
        let webhooks = webhooks.clone();
        let service = tower::service_fn(move |request: Request<hyper::body::Incoming>| {
            let webhooks = webhooks.clone();
            async move {
                if request.uri().path() != "/webhooks/provider" {
                    return Ok(status(StatusCode::NOT_FOUND).map(|body| body.boxed()));
                }
                if request.method() != http::Method::POST {
                    return Ok(status(StatusCode::METHOD_NOT_ALLOWED).map(|body| body.boxed()));
                }
                webhooks
                    .oneshot(request)
                    .await
                    .map(|response| response.map(|body| body.boxed()))
            }
        });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    // Let requests in progress finish, for at most 10 seconds.
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s; exiting anyway");
    }
    Ok(())
}
