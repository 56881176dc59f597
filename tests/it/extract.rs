//! The axum extractors: typed events, a clear answer when the layer is
//! missing, and 400 when the verified body is not the expected JSON.
#![cfg(all(feature = "axum", feature = "test-util"))]

use crate::support;

use axum::Router;
use axum::routing::post;
use http::StatusCode;
use http_body_util::BodyExt;
use serde::Deserialize;
use support::problem_kind;
use tower::ServiceExt;
use tower_webhooks::extract::Webhook;
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, VerifiedWebhook, WebhookLayer};

const SECRET: &str = "extract_secret";

#[derive(Deserialize)]
struct Invoice {
    amount: u64,
}

async fn typed(Webhook { webhook, event }: Webhook<Invoice>) -> String {
    format!("{} {}", webhook.event_id().unwrap(), event.amount)
}

async fn plain(webhook: VerifiedWebhook) -> String {
    webhook.namespace().to_owned()
}

async fn send(app: Router, body: &[u8]) -> (StatusCode, String) {
    let request = GenericSigner::new(SECRET)
        .request("/hook", "evt_1", unix_now(), body)
        .map(axum::body::Body::from);
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = if status.is_success() {
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        problem_kind(&bytes)
    };
    (status, text)
}

fn layer() -> WebhookLayer {
    WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap())
}

#[tokio::test]
async fn a_typed_handler_gets_the_parsed_verified_body() {
    let app = Router::new()
        .route("/hook", post(typed))
        .route_layer(layer());
    assert_eq!(
        send(app, br#"{"amount":42}"#).await,
        (StatusCode::OK, "evt_1 42".to_owned())
    );
}

#[tokio::test]
async fn a_body_that_is_not_the_expected_json_is_a_400() {
    let app = Router::new()
        .route("/hook", post(typed))
        .route_layer(layer());
    assert_eq!(
        send(app.clone(), br#"{"amount":"lots"}"#).await,
        (StatusCode::BAD_REQUEST, "invalid-body".to_owned())
    );
    assert_eq!(
        send(app, b"not json").await,
        (StatusCode::BAD_REQUEST, "invalid-body".to_owned())
    );
}

#[tokio::test]
async fn the_verified_webhook_is_an_extractor() {
    let app = Router::new()
        .route("/hook", post(plain))
        .route_layer(layer());
    assert_eq!(
        send(app, b"{}").await,
        (StatusCode::OK, "generic".to_owned())
    );
}

#[tokio::test]
async fn without_the_layer_the_answer_names_it() {
    for app in [
        Router::new().route("/hook", post(typed)),
        Router::new().route("/hook", post(plain)),
    ] {
        let request = http::Request::post("/hook")
            .body(axum::body::Body::from(r#"{"amount":1}"#))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(problem_kind(&body), "misconfigured");
        assert!(String::from_utf8_lossy(&body).contains("WebhookLayer"));
    }
}
