#![cfg(feature = "test-util")]
//! The verify layer inside axum (`route_layer`, no `HandleErrorLayer`) and
//! inside a plain hyper 1 server, over real connections.

use crate::support;

use std::convert::Infallible;

use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use support::{http_send, serve};
use tower::ServiceBuilder;
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, VerifiedWebhook, WebhookLayer};

const SECRET: &str = "framework_secret";

fn signed(path: &str, id: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
    GenericSigner::new(SECRET)
        .request(path, id, unix_now(), body)
        .map(Full::new)
}

#[tokio::test]
async fn axum_route_layer_guards_one_route_and_leaves_the_others() {
    async fn handler(Extension(webhook): Extension<VerifiedWebhook>, body: Bytes) -> String {
        format!(
            "{} {}",
            webhook.event_id().unwrap(),
            String::from_utf8_lossy(&body)
        )
    }
    let app = Router::new()
        .route("/webhooks/provider", post(handler))
        .route_layer(WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()))
        .route("/health", get(|| async { "up" }))
        .route("/echo", post(|body: Bytes| async move { body }));
    let address = serve(app).await;

    let (status, body) = http_send(
        address,
        signed("/webhooks/provider", "evt_ax", b"{\"a\":1}"),
    )
    .await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"evt_ax {\"a\":1}"[..])
    );

    let unsigned = Request::post("/webhooks/provider")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let (status, _) = http_send(address, unsigned).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Other routes are untouched: no signature needed.
    let (status, body) = http_send(
        address,
        Request::get("/health").body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"up"[..]));
    let echo = Request::post("/echo")
        .body(Full::new(Bytes::from_static(b"plain")))
        .unwrap();
    let (status, body) = http_send(address, echo).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"plain"[..]));
}

#[tokio::test]
async fn axum_router_layer_over_the_whole_router_works_too() {
    let app = Router::new()
        .route("/hook", post(|body: Bytes| async move { body }))
        .layer(WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()));
    let address = serve(app).await;
    let (status, body) = http_send(address, signed("/hook", "evt_2", b"payload")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"payload"[..]));
    let mut tampered = signed("/hook", "evt_3", b"payload");
    *tampered.body_mut() = Full::new(Bytes::from_static(b"payloaD"));
    let (status, _) = http_send(address, tampered).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn plain_hyper_server() {
    async fn handler(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
        let id = request
            .extensions()
            .get::<VerifiedWebhook>()
            .and_then(|w| w.event_id().map(str::to_owned));
        let body = request.into_body().collect().await?.to_bytes();
        Ok(Response::new(Full::new(Bytes::from(format!(
            "{} {}",
            id.unwrap_or_default(),
            body.len()
        )))))
    }
    let service = ServiceBuilder::new()
        .layer(WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()))
        .service_fn(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let (status, body) = http_send(
        address,
        signed("/webhooks/provider", "evt_hy", b"0123456789"),
    )
    .await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"evt_hy 10"[..]));
    let mut wrong = signed("/webhooks/provider", "evt_hy2", b"0123456789");
    wrong
        .headers_mut()
        .insert("x-webhook-signature", "00".repeat(32).parse().unwrap());
    let (status, body) = http_send(address, wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&body).contains("signature-mismatch"));
}
