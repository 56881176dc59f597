//! Endpoint handshakes, through axum: answered by the layer after the
//! sender's own verification, never handled, recorded or deduplicated; forged
//! ones and ones on routes that did not enable them are not answered.
#![cfg(all(feature = "test-util", feature = "ed25519"))]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::{any_service, post};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::{ServiceBuilder, ServiceExt};
use tower_webhooks::handshake::Handshake;
use tower_webhooks::idempotency::{
    Claim, FenceToken, IdempotencyStore, MemoryStore, SignatureClaim, StoreError,
};
use tower_webhooks::inbox::{Inbox, ListFilter, MemoryInbox};
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::providers::{Discord, DiscordPing, Slack, SlackUrlVerification};
use tower_webhooks::testing::{DiscordSigner, Signer, SlackSigner, unix_now};
use tower_webhooks::{SignatureVerifier, WebhookLayer};

const SLACK_SECRET: &str = "slack_handshake_secret";
const CHALLENGE: &str = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;

/// A memory store that counts every call made to it.
#[derive(Debug, Default)]
struct Counted {
    inner: MemoryStore,
    calls: AtomicUsize,
}

#[async_trait]
impl IdempotencyStore for Counted {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &[u8],
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.claim(key, fingerprint, lease).await
    }

    async fn complete(
        &self,
        key: &str,
        token: FenceToken,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.complete(key, token, retention).await
    }

    async fn release(&self, key: &str, token: FenceToken) -> Result<bool, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.release(key, token).await
    }

    async fn renew(
        &self,
        key: &str,
        token: FenceToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.renew(key, token, lease).await
    }

    async fn admit(
        &self,
        key: &str,
        lease: Duration,
        signature: Option<SignatureClaim<'_>>,
    ) -> Result<Claim, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.admit(key, lease, signature).await
    }
}

/// An inline route: `verifier`, optionally a handshake, idempotency over a
/// counted store, and a handler that counts its runs.
fn inline(
    verifier: impl SignatureVerifier,
    handshake: Option<Box<dyn FnOnce(WebhookLayer) -> WebhookLayer>>,
) -> (Router, Arc<Counted>, Arc<AtomicUsize>) {
    let store = Arc::new(Counted::default());
    let runs = Arc::new(AtomicUsize::new(0));
    let mut layer = WebhookLayer::new(verifier);
    if let Some(enable) = handshake {
        layer = enable(layer);
    }
    let counted = runs.clone();
    let handler = move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { "handled" }
    };
    let app = Router::new().route(
        "/hook",
        post(handler)
            .route_layer(layer.with_idempotency(IdempotencyLayer::from_shared(store.clone()))),
    );
    (app, store, runs)
}

async fn send(app: &Router, request: Request<Bytes>) -> (StatusCode, Option<String>, String) {
    let response = app
        .clone()
        .oneshot(request.map(axum::body::Body::from))
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn slack(body: &str) -> Request<Bytes> {
    SlackSigner::new(SLACK_SECRET).request("/hook", "", unix_now(), body.as_bytes())
}

#[tokio::test]
async fn slack_url_verification_is_answered_and_never_recorded() {
    let (app, store, runs) = inline(
        Slack::new(SLACK_SECRET).unwrap(),
        Some(Box::new(|layer| layer.handshake(SlackUrlVerification))),
    );
    let (status, content_type, body) = send(&app, slack(CHALLENGE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(body, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
    // Again: still answered (not a duplicate), still never stored or handled.
    assert_eq!(send(&app, slack(CHALLENGE)).await.2, body);
    assert_eq!(store.calls.load(Ordering::SeqCst), 0);
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    // An event on the same route goes through as usual.
    let event = r#"{"type":"event_callback","event_id":"Ev1","event":{"type":"app_mention"}}"#;
    assert_eq!(send(&app, slack(event)).await.2, "handled");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_forged_slack_handshake_is_refused() {
    let (app, store, runs) = inline(
        Slack::new(SLACK_SECRET).unwrap(),
        Some(Box::new(|layer| layer.handshake(SlackUrlVerification))),
    );
    // Signed with another secret.
    let forged =
        SlackSigner::new("not_the_secret").request("/hook", "", unix_now(), CHALLENGE.as_bytes());
    assert_eq!(send(&app, forged).await.0, StatusCode::UNAUTHORIZED);
    // Not signed at all.
    let unsigned = Request::post("/hook")
        .body(Bytes::from_static(CHALLENGE.as_bytes()))
        .unwrap();
    assert_eq!(send(&app, unsigned).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(store.calls.load(Ordering::SeqCst), 0);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_handshake_on_a_route_that_did_not_enable_it_is_not_answered() {
    let (app, _, runs) = inline(Slack::new(SLACK_SECRET).unwrap(), None);
    let (status, _, body) = send(&app, slack(CHALLENGE)).await;
    // Admitted as an event (its id derived from the body) and handled.
    assert_eq!((status, body.as_str()), (StatusCode::OK, "handled"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn discord_ping_is_answered_and_other_interactions_are_handled() {
    let signer = DiscordSigner::new([9; 32]);
    let (app, store, runs) = inline(
        Discord::new(signer.public_key_hex()).unwrap(),
        Some(Box::new(|layer| layer.handshake(DiscordPing))),
    );
    let ping = signer.request("/hook", "", unix_now(), br#"{"id":"1","type":1}"#);
    let (status, content_type, body) = send(&app, ping).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(body, r#"{"type":1}"#);
    assert_eq!(store.calls.load(Ordering::SeqCst), 0);

    // A PING signed by another key: refused.
    let forged =
        DiscordSigner::new([8; 32]).request("/hook", "", unix_now(), br#"{"id":"1","type":1}"#);
    assert_eq!(send(&app, forged).await.0, StatusCode::UNAUTHORIZED);

    let command = signer.request("/hook", "", unix_now(), br#"{"id":"2","type":2}"#);
    assert_eq!(send(&app, command).await.2, "handled");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A handshake of one's own that runs before verification (a `GET` with a
/// challenge and a verify token, as Meta's): answered only with the right
/// token; with a wrong one refused; never put in the inbox.
#[derive(Debug)]
struct VerifyToken;

impl Handshake for VerifyToken {
    fn before_verification(
        &self,
        parts: &http::request::Parts,
        _: &[u8],
    ) -> Option<Result<http::Response<Bytes>, tower_webhooks::Rejection>> {
        if parts.method != http::Method::GET {
            return None;
        }
        let query = parts.uri.query().unwrap_or_default();
        let challenge = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("challenge="))?;
        if !query.split('&').any(|pair| pair == "token=right") {
            return Some(Err(tower_webhooks::Rejection::Verify(
                tower_webhooks::VerifyError::Unauthorized("wrong verify token".into()),
            )));
        }
        Some(Ok(tower_webhooks::handshake::plain(challenge.to_owned())))
    }
}

#[tokio::test]
async fn a_challenge_before_verification_never_reaches_the_inbox() {
    let inbox = Inbox::new(MemoryInbox::new()).acknowledge_before_handling(true);
    let endpoint = ServiceBuilder::new()
        .layer(WebhookLayer::new(Slack::new(SLACK_SECRET).unwrap()).handshake(VerifyToken))
        .service(inbox.accept());
    let app = Router::new().route("/hook", any_service(endpoint));
    let get = |uri: &str| Request::get(uri).body(Bytes::new()).unwrap();

    let (status, _, body) = send(&app, get("/hook?challenge=abc123&token=right")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "abc123"));
    assert_eq!(
        send(&app, get("/hook?challenge=abc123&token=wrong"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // Not a handshake: verified as usual (and unsigned, so refused).
    assert_eq!(send(&app, get("/hook")).await.0, StatusCode::BAD_REQUEST);
    assert!(
        inbox
            .store()
            .list(ListFilter::new(10))
            .await
            .unwrap()
            .is_empty()
    );
}
