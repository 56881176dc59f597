//! The reference receiver on plain hyper 1 (no axum): `POST /webhooks/provider`
//! with the same contract as `examples/receiver.rs`, deduplicated in memory
//! (the receiver's `RECEIVER_MODE=inline`).
//!
//! ```text
//! cargo run --example hyper_receiver
//! cargo run --example send
//! ```
//!
//! It reads `BIND`, `WEBHOOK_SECRET` and `HEADER_READ_TIMEOUT_MS` with the
//! receiver's rules: the development secret only on a loopback `BIND`, an
//! empty `WEBHOOK_SECRET` refused, slow request heads disconnected.

mod common;

use std::convert::Infallible;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
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
async fn main() -> ExitCode {
    common::init_tracing();
    common::exit(run().await)
}

async fn run() -> Result<(), common::BoxError> {
    let header_read_timeout = common::header_read_timeout()?;
    let listener = common::listen("BIND", "127.0.0.1:8000").await?;
    let address = listener.local_addr()?;
    let webhooks = ServiceBuilder::new()
        .layer(
            WebhookLayer::new(HmacVerifier::generic(common::webhook_secret(address)?)?)
                .with_idempotency(IdempotencyLayer::new(MemoryStore::new())),
        )
        .service_fn(handle);

    tracing::info!(%address, "listening (hyper); POST /webhooks/provider");
    let shutdown = common::shutdown_signal();
    tokio::pin!(shutdown);
    // HTTP/1.1 with a header read timeout: see `common::http_builder`.
    let builder = common::http_builder(header_read_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
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
    drop(listener); // stop accepting
    // Let requests in progress finish, for at most 10 seconds.
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s; exiting anyway");
    }
    Ok(())
}
