//! Endpoint handshakes, through axum: answered by the layer only after the
//! sender's own checks (its signature, credential or verify token; unsigned
//! challenges are bounded), never handled, recorded or deduplicated; forged
//! ones and ones on routes that did not enable them are not answered.
#![cfg(all(feature = "test-util", feature = "ed25519"))]

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
use tower_webhooks::providers::{
    Discord, DiscordPing, Dropbox, DropboxChallenge, Meta, MetaVerifyToken, MicrosoftGraph,
    MicrosoftGraphValidation, Okta, OktaVerification, Slack, SlackUrlVerification, Twitch,
    TwitchCallbackVerification, Zoom, ZoomUrlValidation,
};
use tower_webhooks::testing::{
    DiscordSigner, DropboxSigner, MetaSigner, MicrosoftGraphSigner, Signer, SlackSigner,
    TwitchSigner, ZoomSigner, unix_now,
};
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
    inline_routed(verifier, handshake, false)
}

/// [`inline`], on a route that also accepts `GET` (`post(..).get(..)`), as
/// `GET` handshakes need. (`any(..).route_layer(..)` panics: axum's `any`
/// is a fallback, not a route a route layer applies to.)
fn inline_any(
    verifier: impl SignatureVerifier,
    handshake: Option<Box<dyn FnOnce(WebhookLayer) -> WebhookLayer>>,
) -> (Router, Arc<Counted>, Arc<AtomicUsize>) {
    inline_routed(verifier, handshake, true)
}

fn inline_routed(
    verifier: impl SignatureVerifier,
    handshake: Option<Box<dyn FnOnce(WebhookLayer) -> WebhookLayer>>,
    any_method: bool,
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
    let layer = layer.with_idempotency(IdempotencyLayer::from_shared(store.clone()));
    let route = if any_method {
        post(handler.clone()).get(handler).route_layer(layer)
    } else {
        post(handler).route_layer(layer)
    };
    let app = Router::new().route("/hook", route);
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

// ---- the presets' handshakes ------------------------------------------------

const ZOOM_SECRET: &str = "zoom_secret_token";
const ZOOM_VALIDATION: &str = r#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;

fn hmac_hex(secret: &str, message: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn get(uri: &str) -> Request<Bytes> {
    Request::get(uri).body(Bytes::new()).unwrap()
}

/// Nothing was stored, recorded or handled.
fn untouched(store: &Counted, runs: &AtomicUsize) {
    assert_eq!(store.calls.load(Ordering::SeqCst), 0);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn zoom_url_validation_is_answered_with_the_hmac_of_the_plain_token() {
    let (app, store, runs) = inline(
        Zoom::new(ZOOM_SECRET).unwrap(),
        Some(Box::new(|layer| {
            layer.handshake(ZoomUrlValidation::new(ZOOM_SECRET).unwrap())
        })),
    );
    let request =
        ZoomSigner::new(ZOOM_SECRET).request("/hook", "", unix_now(), ZOOM_VALIDATION.as_bytes());
    let (status, content_type, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(
        answer["encryptedToken"],
        hmac_hex(ZOOM_SECRET, "qgg8vlvZRS6UYooatFL8Aw")
    );
    untouched(&store, &runs);

    // Signed with another secret: refused, not answered.
    let forged = ZoomSigner::new("not_the_secret").request(
        "/hook",
        "",
        unix_now(),
        ZOOM_VALIDATION.as_bytes(),
    );
    assert_eq!(send(&app, forged).await.0, StatusCode::UNAUTHORIZED);
    // Unsigned: refused.
    let unsigned = Request::post("/hook")
        .body(Bytes::from_static(ZOOM_VALIDATION.as_bytes()))
        .unwrap();
    assert_eq!(send(&app, unsigned).await.0, StatusCode::BAD_REQUEST);
    untouched(&store, &runs);

    // An event goes through as usual.
    let event = br#"{"event":"meeting.started","event_ts":1700000000123,"payload":{}}"#;
    let request = ZoomSigner::new(ZOOM_SECRET).request("/hook", "", unix_now(), event);
    assert_eq!(send(&app, request).await.2, "handled");
}

#[tokio::test]
async fn zoom_url_validation_answers_with_the_secret_that_verified_it() {
    let (app, _, _) = inline(
        Zoom::new(["old_token", "new_token"]).unwrap(),
        Some(Box::new(|layer| {
            layer.handshake(ZoomUrlValidation::new(["old_token", "new_token"]).unwrap())
        })),
    );
    let request =
        ZoomSigner::new("new_token").request("/hook", "", unix_now(), ZOOM_VALIDATION.as_bytes());
    let answer: serde_json::Value = serde_json::from_str(&send(&app, request).await.2).unwrap();
    assert_eq!(
        answer["encryptedToken"],
        hmac_hex("new_token", "qgg8vlvZRS6UYooatFL8Aw")
    );
    assert!(ZoomUrlValidation::new(Vec::<String>::new()).is_err());
    assert!(ZoomUrlValidation::new("").is_err());
}

#[tokio::test]
async fn zoom_url_validation_on_a_route_without_the_handshake_is_handled() {
    let (app, _, runs) = inline(Zoom::new(ZOOM_SECRET).unwrap(), None);
    let request =
        ZoomSigner::new(ZOOM_SECRET).request("/hook", "", unix_now(), ZOOM_VALIDATION.as_bytes());
    assert_eq!(send(&app, request).await.2, "handled");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

const TWITCH_SECRET: &str = "twitch_secret_0123";
const TWITCH_CHALLENGE: &str = r#"{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"webhook_callback_verification_pending","type":"channel.follow","version":"1"}}"#;

fn twitch(secret: &str, id: &str, kind: &'static str, body: &str) -> Request<Bytes> {
    let mut request = TwitchSigner::new(secret).request("/hook", id, unix_now(), body.as_bytes());
    request.headers_mut().insert(
        "twitch-eventsub-message-type",
        http::HeaderValue::from_static(kind),
    );
    request
}

#[tokio::test]
async fn twitch_callback_verification_is_answered_with_the_challenge() {
    let (app, store, runs) = inline(
        Twitch::new(TWITCH_SECRET).unwrap(),
        Some(Box::new(|layer| {
            layer.handshake(TwitchCallbackVerification)
        })),
    );
    let request = twitch(
        TWITCH_SECRET,
        "m1",
        "webhook_callback_verification",
        TWITCH_CHALLENGE,
    );
    let (status, content_type, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(body, "pogchamp-kappa-360noscope-vohiyo");
    untouched(&store, &runs);

    let forged = twitch(
        "another_secret_0",
        "m2",
        "webhook_callback_verification",
        TWITCH_CHALLENGE,
    );
    assert_eq!(send(&app, forged).await.0, StatusCode::UNAUTHORIZED);
    untouched(&store, &runs);

    // A revocation is an event: the application is told.
    let revocation = r#"{"subscription":{"id":"f1c2a387","status":"authorization_revoked"}}"#;
    let request = twitch(TWITCH_SECRET, "m3", "revocation", revocation);
    assert_eq!(send(&app, request).await.2, "handled");
    // So is a notification carrying a `challenge` field.
    let request = twitch(TWITCH_SECRET, "m4", "notification", TWITCH_CHALLENGE);
    assert_eq!(send(&app, request).await.2, "handled");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn twitch_callback_verification_without_the_handshake_is_handled() {
    let (app, _, runs) = inline(Twitch::new(TWITCH_SECRET).unwrap(), None);
    let request = twitch(
        TWITCH_SECRET,
        "m1",
        "webhook_callback_verification",
        TWITCH_CHALLENGE,
    );
    assert_eq!(send(&app, request).await.2, "handled");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn dropbox_challenge_is_echoed_with_nosniff_and_bounded() {
    let (app, store, runs) = inline_any(
        Dropbox::new("dropbox_app_secret").unwrap(),
        Some(Box::new(|layer| layer.handshake(DropboxChallenge))),
    );
    let response = app
        .clone()
        .oneshot(get("/hook?challenge=aBc-12_3.x~").map(axum::body::Body::from))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"aBc-12_3.x~");

    let longest = format!("/hook?challenge={}", "a".repeat(1024));
    assert_eq!(send(&app, get(&longest)).await.0, StatusCode::OK);
    let too_long = format!("/hook?challenge={}", "a".repeat(1025));
    assert_eq!(send(&app, get(&too_long)).await.0, StatusCode::BAD_REQUEST);
    for refused in [
        "/hook?challenge=%3Cscript%3E",
        "/hook?challenge=a+b",
        "/hook?challenge=",
        "/hook?challenge=a&challenge=b",
    ] {
        assert_eq!(
            send(&app, get(refused)).await.0,
            StatusCode::BAD_REQUEST,
            "{refused}"
        );
    }
    // A GET without a challenge is verified as usual: unsigned, refused.
    assert_eq!(send(&app, get("/hook")).await.0, StatusCode::BAD_REQUEST);
    // A POST with a challenge parameter is not the handshake either.
    let post = Request::post("/hook?challenge=abc")
        .body(Bytes::new())
        .unwrap();
    assert_eq!(send(&app, post).await.0, StatusCode::BAD_REQUEST);
    untouched(&store, &runs);

    let body = br#"{"list_folder":{"accounts":["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]}}"#;
    let event = DropboxSigner::new("dropbox_app_secret").request("/hook", "", unix_now(), body);
    assert_eq!(send(&app, event).await.2, "handled");
}

#[tokio::test]
async fn get_handshakes_are_not_answered_without_the_handshake_or_on_a_post_route() {
    // GET routed, no handshake: verified, unsigned, refused.
    let (app, store, runs) = inline_any(Dropbox::new("dropbox_app_secret").unwrap(), None);
    let (status, _, body) = send(&app, get("/hook?challenge=abc123")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_ne!(body, "abc123");
    let (app_meta, _, _) = inline_any(Meta::new("meta_app_secret").unwrap(), None);
    let verification =
        "/hook?hub.mode=subscribe&hub.verify_token=meatyhamhock&hub.challenge=1158201444";
    assert_eq!(
        send(&app_meta, get(verification)).await.0,
        StatusCode::BAD_REQUEST
    );
    untouched(&store, &runs);

    // A `post(..)` route answers 405 to a GET before its layers run, even
    // with the handshake enabled: GET handshakes need `post(..).get(..)`.
    let (app, _, _) = inline(
        Dropbox::new("dropbox_app_secret").unwrap(),
        Some(Box::new(|layer| layer.handshake(DropboxChallenge))),
    );
    assert_eq!(
        send(&app, get("/hook?challenge=abc123")).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn meta_verification_needs_the_verify_token() {
    let (app, store, runs) = inline_any(
        Meta::new("meta_app_secret").unwrap(),
        Some(Box::new(|layer| {
            layer.handshake(MetaVerifyToken::new("meatyhamhock").unwrap())
        })),
    );
    // Meta's documented example request.
    let (status, content_type, body) = send(
        &app,
        get("/hook?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(body, "1158201444");

    for (uri, expected) in [
        (
            "/hook?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhoc",
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/hook?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=",
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/hook?hub.mode=subscribe&hub.challenge=1158201444",
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/hook?hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/hook?hub.mode=subscribe&hub.challenge=%3Cb%3E&hub.verify_token=meatyhamhock",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/hook?hub.mode=subscribe&hub.verify_token=meatyhamhock",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/hook?hub.mode=subscribe&hub.challenge=1&hub.verify_token=x&hub.verify_token=meatyhamhock",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, _, body) = send(&app, get(uri)).await;
        assert_eq!(status, expected, "{uri}");
        assert_ne!(body, "1158201444", "{uri}");
    }
    // A GET without `hub.` parameters is verified as usual: refused.
    assert_eq!(
        send(&app, get("/hook?x=1")).await.0,
        StatusCode::BAD_REQUEST
    );
    untouched(&store, &runs);

    // A signed notification goes through.
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[]}]}"#;
    let event = MetaSigner::new("meta_app_secret").request("/hook", "", unix_now(), body);
    assert_eq!(send(&app, event).await.2, "handled");
    assert!(MetaVerifyToken::new("").is_err());
}

fn okta_verification(authorization: Option<&str>) -> Request<Bytes> {
    let mut request = Request::get("/hook").header(
        "x-okta-verification-challenge",
        "cr3g6yH9mUvE8yUFNKyBkKn0yZ52Z5\"</x>",
    );
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.body(Bytes::new()).unwrap()
}

#[tokio::test]
async fn okta_verification_is_answered_only_with_the_hook_credential() {
    let (app, store, runs) = inline_any(
        Okta::new("okta-hook-secret").unwrap(),
        Some(Box::new(|layer| layer.handshake(OktaVerification))),
    );
    let (status, content_type, body) =
        send(&app, okta_verification(Some("okta-hook-secret"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({ "verification": "cr3g6yH9mUvE8yUFNKyBkKn0yZ52Z5\"</x>" })
    );

    assert_eq!(
        send(&app, okta_verification(Some("guess"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, okta_verification(None)).await.0,
        StatusCode::BAD_REQUEST
    );
    untouched(&store, &runs);

    // An event (a POST) carrying the header is still an event.
    let event = Request::post("/hook")
        .header("authorization", "okta-hook-secret")
        .header("x-okta-verification-challenge", "c")
        .body(Bytes::from_static(
            br#"{"eventType":"com.okta.event_hook","eventId":"e1","data":{}}"#,
        ))
        .unwrap();
    assert_eq!(send(&app, event).await.2, "handled");
}

#[tokio::test]
async fn okta_verification_without_the_handshake_reaches_the_handler() {
    let (app, _, runs) = inline_any(Okta::new("okta-hook-secret").unwrap(), None);
    let (status, _, body) = send(&app, okta_verification(Some("okta-hook-secret"))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "handled"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

const GRAPH_TOKEN: &str = "Validation: Testing client application reachability for subscription Request-Id: 50ab3be3-2ba2-4a8f-9b32-8a3a4b9e33a3";

fn graph_validation(encoded: &str) -> Request<Bytes> {
    Request::post(format!("/hook?validationToken={encoded}"))
        .header("content-type", "text/plain; charset=utf-8")
        .body(Bytes::new())
        .unwrap()
}

#[tokio::test]
async fn graph_validation_token_is_echoed_decoded_and_bounded() {
    let (app, store, runs) = inline(
        MicrosoftGraph::new("secretClientValue").unwrap(),
        Some(Box::new(|layer| layer.handshake(MicrosoftGraphValidation))),
    );
    let encoded = "Validation%3A+Testing+client+application+reachability+for+subscription+Request-Id%3A+50ab3be3-2ba2-4a8f-9b32-8a3a4b9e33a3";
    let response = app
        .clone()
        .oneshot(graph_validation(encoded).map(axum::body::Body::from))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], GRAPH_TOKEN.as_bytes());
    // %20 decodes as well as +.
    assert_eq!(send(&app, graph_validation("a%20b")).await.2, "a b");

    let too_long = "a".repeat(1025);
    for refused in [
        too_long.as_str(),
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "a%0Ab",
        "%FF",
        "",
    ] {
        assert_eq!(
            send(&app, graph_validation(refused)).await.0,
            StatusCode::BAD_REQUEST,
            "{refused}"
        );
    }
    untouched(&store, &runs);

    // A notification with the right clientState is handled; a wrong one is not.
    let ok =
        MicrosoftGraphSigner::new("secretClientValue").request("/hook", "s1", 0, br#"{"id":"1"}"#);
    assert_eq!(send(&app, ok).await.2, "handled");
    let forged = MicrosoftGraphSigner::new("guess").request("/hook", "s1", 0, br#"{"id":"2"}"#);
    assert_eq!(send(&app, forged).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn graph_validation_without_the_handshake_is_refused() {
    let (app, store, runs) = inline(MicrosoftGraph::new("secretClientValue").unwrap(), None);
    let (status, _, body) = send(&app, graph_validation("abc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_ne!(body, "abc");
    untouched(&store, &runs);
}

#[tokio::test]
async fn get_handshakes_never_reach_the_inbox() {
    let inbox = Inbox::new(MemoryInbox::new()).acknowledge_before_handling(true);
    let routes = [
        (
            "/dropbox",
            WebhookLayer::new(Dropbox::new("dropbox_app_secret").unwrap())
                .handshake(DropboxChallenge),
            "/dropbox?challenge=abc",
        ),
        (
            "/meta",
            WebhookLayer::new(Meta::new("meta_app_secret").unwrap())
                .handshake(MetaVerifyToken::new("token").unwrap()),
            "/meta?hub.mode=subscribe&hub.verify_token=token&hub.challenge=42",
        ),
    ];
    let mut app = Router::new();
    let mut uris = Vec::new();
    for (path, layer, uri) in routes {
        let endpoint = ServiceBuilder::new().layer(layer).service(inbox.accept());
        app = app.route(path, any_service(endpoint));
        uris.push(uri);
    }
    for uri in uris {
        assert_eq!(send(&app, get(uri)).await.0, StatusCode::OK, "{uri}");
    }
    let okta = ServiceBuilder::new()
        .layer(
            WebhookLayer::new(Okta::new("okta-hook-secret").unwrap()).handshake(OktaVerification),
        )
        .service(inbox.accept());
    let app = Router::new().route("/hook", any_service(okta));
    assert_eq!(
        send(&app, okta_verification(Some("okta-hook-secret")))
            .await
            .0,
        StatusCode::OK
    );
    assert!(
        inbox
            .store()
            .list(ListFilter::new(10))
            .await
            .unwrap()
            .is_empty()
    );
}

/// AWS SNS `SubscriptionConfirmation`: confirmed through the fetcher (the
/// `SubscribeURL` pinned, fetched only after the signature and topic
/// verified) and answered 200 by the layer only when the route enables it;
/// otherwise the verified confirmation reaches the handler.
#[cfg(feature = "sns")]
mod sns {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use tower_webhooks::keys::{CachedKeys, Fetcher, KeyError};
    use tower_webhooks::providers::{Sns, SnsCertificates};
    use tower_webhooks::testing::SnsSigner;

    use super::*;

    use crate::support::sns::{TEST_CERT, TEST_KEY};
    const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem";
    const SUBSCRIBE_URL: &str = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:test&Token=2336412f37fb687f5d51e6e2425f004ae";

    /// Serves fixed documents by URL and records every URL asked for.
    #[derive(Debug, Default)]
    struct Recording {
        documents: HashMap<String, Bytes>,
        asked: Mutex<Vec<String>>,
    }

    impl Recording {
        fn new(documents: &[(&str, &str)]) -> Arc<Self> {
            Arc::new(Self {
                documents: documents
                    .iter()
                    .map(|(url, body)| ((*url).to_owned(), Bytes::from(body.to_string())))
                    .collect(),
                asked: Mutex::default(),
            })
        }

        fn asked(&self) -> Vec<String> {
            self.asked.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl Fetcher for Recording {
        async fn get(&self, url: &str) -> Result<Bytes, KeyError> {
            self.asked.lock().unwrap().push(url.to_owned());
            self.documents
                .get(url)
                .cloned()
                .ok_or_else(|| KeyError::new("404"))
        }
    }

    /// An SNS route (idempotency over a counted store, a counting
    /// handler), with the subscription handshake if `handshake`.
    fn route(
        sns: Sns,
        fetcher: Arc<Recording>,
        handshake: bool,
    ) -> (Router, Arc<Counted>, Arc<AtomicUsize>) {
        let store = Arc::new(Counted::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let confirmation = sns.subscription_handshake();
        let mut layer =
            WebhookLayer::with_keys(sns, CachedKeys::new(SnsCertificates::new(fetcher)));
        if handshake {
            layer = layer.handshake(confirmation);
        }
        let counted = runs.clone();
        let handler = move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { "handled" }
        };
        let layer = layer.with_idempotency(IdempotencyLayer::from_shared(store.clone()));
        let app = Router::new().route("/hook", post(handler).route_layer(layer));
        (app, store, runs)
    }

    fn signer() -> SnsSigner {
        SnsSigner::from_pkcs8(TEST_KEY, CERT_URL).unwrap()
    }

    fn message(signer: &SnsSigner, kind: &str, id: &str, subscribe_url: &str) -> Request<Bytes> {
        let body = signer.confirmation(
            kind,
            id,
            "2336412f37fb687f5d51e6e2425f004ae",
            subscribe_url,
            unix_now(),
        );
        Request::post("/hook")
            .header("x-amz-sns-message-type", kind)
            .body(Bytes::from(body))
            .unwrap()
    }

    fn confirming() -> Sns {
        Sns::new([SnsSigner::DEFAULT_TOPIC_ARN]).unwrap()
    }

    #[tokio::test]
    async fn a_confirmation_is_fetched_after_verification_and_answered_never_handled() {
        let fetcher = Recording::new(&[
            (CERT_URL, TEST_CERT),
            (SUBSCRIBE_URL, "<ConfirmSubscriptionResponse/>"),
        ]);
        let sns = confirming().confirm_subscriptions(fetcher.clone());
        let (app, store, runs) = route(sns, fetcher.clone(), true);
        let confirmation = message(&signer(), "SubscriptionConfirmation", "c-1", SUBSCRIBE_URL);
        let (status, content_type, body) = send(&app, confirmation).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        assert_eq!(body, r#"{"ok":true,"subscription":"confirmed"}"#);
        assert_eq!(fetcher.asked(), [CERT_URL, SUBSCRIBE_URL]);
        untouched(&store, &runs);

        // SNS resending it: answered again, not fetched again.
        let again = message(&signer(), "SubscriptionConfirmation", "c-1", SUBSCRIBE_URL);
        assert_eq!(send(&app, again).await.0, StatusCode::OK);
        assert_eq!(fetcher.asked().len(), 2);
        untouched(&store, &runs);

        // Notifications and unsubscribe confirmations are events.
        let body = signer().notification("n-1", None, "hello", unix_now());
        let notification = Request::post("/hook").body(Bytes::from(body)).unwrap();
        assert_eq!(send(&app, notification).await.2, "handled");
        let unsubscribe = message(&signer(), "UnsubscribeConfirmation", "u-1", SUBSCRIBE_URL);
        assert_eq!(send(&app, unsubscribe).await.2, "handled");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(fetcher.asked().len(), 2, "nothing else was fetched");
    }

    #[tokio::test]
    async fn without_enabling_it_a_verified_confirmation_reaches_the_handler() {
        let fetcher = Recording::new(&[(CERT_URL, TEST_CERT), (SUBSCRIBE_URL, "ok")]);
        // Neither confirmation nor handshake, then the handshake alone:
        // nothing confirms, so nothing is answered for the handler.
        for handshake in [false, true] {
            let (app, store, runs) = route(confirming(), fetcher.clone(), handshake);
            let confirmation = message(&signer(), "SubscriptionConfirmation", "c-1", SUBSCRIBE_URL);
            assert_eq!(send(&app, confirmation).await.2, "handled");
            assert_eq!(runs.load(Ordering::SeqCst), 1);
            assert!(store.calls.load(Ordering::SeqCst) > 0);
        }
        // Confirmation without the handshake: confirmed, then handled.
        let sns = confirming().confirm_subscriptions(fetcher.clone());
        let (app, _, runs) = route(sns, fetcher.clone(), false);
        let confirmation = message(&signer(), "SubscriptionConfirmation", "c-2", SUBSCRIBE_URL);
        assert_eq!(send(&app, confirmation).await.2, "handled");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(
            fetcher.asked(),
            [CERT_URL, CERT_URL, CERT_URL, SUBSCRIBE_URL]
        );
    }

    #[tokio::test]
    async fn subscribe_urls_off_the_pinned_hosts_are_refused_without_a_fetch() {
        let fetcher = Recording::new(&[(CERT_URL, TEST_CERT)]);
        let sns = Sns::any_topic().confirm_subscriptions(fetcher.clone());
        let (app, store, runs) = route(sns, fetcher.clone(), true);
        for url in [
            "https://sns.evil.com/?Action=ConfirmSubscription&Token=t",
            "https://sns.us-east-1.amazonaws.com.evil.com/?Action=ConfirmSubscription&Token=t",
            "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=t",
            "https://user@sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=t",
            "https://sns.us-east-1.amazonaws.com@evil.com/?Action=ConfirmSubscription&Token=t",
            "https://sns.us-east-1.amazonaws.com:8443/?Action=ConfirmSubscription&Token=t",
            "https://evil.com#@sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
            "https://evil.com/?x=@sns.us-east-1.amazonaws.com/&Action=ConfirmSubscription",
            "https://SNS.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=t",
            "https://sns.amazonaws.com/?Action=ConfirmSubscription&Token=t",
            "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
            "https://sns.us-east-1.amazonaws.com/?Token=t",
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Action=Unsubscribe",
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription#x",
            "",
        ] {
            let confirmation = message(&signer(), "SubscriptionConfirmation", "c-1", url);
            let (status, _, body) = send(&app, confirmation).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{url}");
            assert!(body.contains("SubscribeURL"), "{url}: {body}");
        }
        assert!(
            fetcher.asked().is_empty(),
            "nothing was fetched: {:?}",
            fetcher.asked()
        );
        untouched(&store, &runs);
    }

    #[tokio::test]
    async fn unverified_confirmations_are_never_fetched() {
        let fetcher = Recording::new(&[(CERT_URL, TEST_CERT), (SUBSCRIBE_URL, "ok")]);
        let sns = confirming().confirm_subscriptions(fetcher.clone());
        let (app, store, runs) = route(sns, fetcher.clone(), true);
        // Another topic, signed by AWS all the same: refused, not confirmed.
        let stranger = signer().topic_arn("arn:aws:sns:us-east-1:999999999999:theirs");
        let confirmation = message(&stranger, "SubscriptionConfirmation", "c-1", SUBSCRIBE_URL);
        assert_eq!(send(&app, confirmation).await.0, StatusCode::UNAUTHORIZED);
        // A forged signature.
        let confirmation = message(&signer(), "SubscriptionConfirmation", "c-2", SUBSCRIBE_URL);
        let (parts, body) = confirmation.into_parts();
        let forged = String::from_utf8(body.to_vec())
            .unwrap()
            .replace("c-2", "c-3");
        let forged = Request::from_parts(parts, Bytes::from(forged));
        assert_eq!(send(&app, forged).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(fetcher.asked(), [CERT_URL], "only the certificate");
        untouched(&store, &runs);
    }

    #[tokio::test]
    async fn a_confirmation_that_cannot_be_fetched_is_503_and_not_handled() {
        let fetcher = Recording::new(&[(CERT_URL, TEST_CERT)]);
        let sns = confirming().confirm_subscriptions(fetcher.clone());
        let (app, store, runs) = route(sns, fetcher.clone(), true);
        let confirmation = message(&signer(), "SubscriptionConfirmation", "c-1", SUBSCRIBE_URL);
        let response = app
            .clone()
            .oneshot(confirmation.map(axum::body::Body::from))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(fetcher.asked(), [CERT_URL, SUBSCRIBE_URL]);
        untouched(&store, &runs);
    }
}
