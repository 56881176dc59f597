//! Keys resolved per request: the cache (hits, expiry, negative entries,
//! single flight, failures) and per-tenant secrets on one route.
#![cfg(feature = "test-util")]

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use support::problem_kind;
use tower::ServiceExt;
use tower_webhooks::idempotency::MemoryStore;
use tower_webhooks::keys::{CachedKeys, FollowUp, KeyError, KeySource, KeyedVerifier, Tenants};
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::providers::Stripe;
use tower_webhooks::testing::{Signer, StripeSigner, unix_now};
use tower_webhooks::{VerifiedWebhook, WebhookLayer};

/// Tenants' Stripe secrets, changeable while the server runs, with a switch
/// that makes every fetch fail and a delay per fetch.
#[derive(Debug, Default)]
struct Secrets {
    secrets: Mutex<HashMap<String, String>>,
    down: AtomicBool,
    delay_ms: AtomicU32,
    fetches: AtomicU32,
}

impl Secrets {
    fn with(tenants: &[(&str, &str)]) -> Arc<Self> {
        let secrets = Self::default();
        for (tenant, secret) in tenants {
            secrets.set(tenant, secret);
        }
        Arc::new(secrets)
    }

    fn set(&self, tenant: &str, secret: &str) {
        self.secrets
            .lock()
            .unwrap()
            .insert(tenant.to_owned(), secret.to_owned());
    }
}

/// The key source over [`Secrets`].
#[derive(Debug, Clone)]
struct Source(Arc<Secrets>);

#[async_trait]
impl KeySource<String, Stripe> for Source {
    async fn fetch(&self, tenant: &String) -> Result<Option<Stripe>, KeyError> {
        let this = &self.0;
        this.fetch(tenant).await
    }
}

impl Secrets {
    async fn fetch(&self, tenant: &String) -> Result<Option<Stripe>, KeyError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(KeyError::new("the secrets service is down"));
        }
        let secret = self.secrets.lock().unwrap().get(tenant).cloned();
        secret
            .map(|secret| Stripe::new(secret).map_err(KeyError::new))
            .transpose()
    }
}

fn tenant_of(parts: &http::request::Parts) -> Option<String> {
    parts.uri.path().strip_prefix("/hook/").map(str::to_owned)
}

/// A route `/hook/{tenant}` verifying with each tenant's secret, behind
/// idempotency, counting handler runs.
fn app(keys: CachedKeys<String, Stripe>, runs: Arc<AtomicU32>) -> Router {
    let layer = WebhookLayer::with_keys(Tenants::<Stripe, _>::new("stripe", tenant_of), keys)
        .with_idempotency(IdempotencyLayer::new(MemoryStore::new()));
    let handler = move |axum::Extension(webhook): axum::Extension<VerifiedWebhook>| {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            format!(
                "{} {}",
                webhook.tenant().unwrap_or("-"),
                webhook.namespace()
            )
        }
    };
    Router::new().route("/hook/{tenant}", post(handler).route_layer(layer))
}

fn event(tenant: &str, secret: &str, id: &str) -> Request<Bytes> {
    let body = format!(r#"{{"id":"{id}","type":"invoice.paid"}}"#);
    StripeSigner::new(secret).request(&format!("/hook/{tenant}"), id, unix_now(), body.as_bytes())
}

async fn send(app: &Router, request: Request<Bytes>) -> (StatusCode, String, Option<String>) {
    let response = app
        .clone()
        .oneshot(request.map(axum::body::Body::from))
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = if status.is_success() {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        problem_kind(&body)
    };
    (status, text, retry_after)
}

#[tokio::test]
async fn each_tenant_is_verified_with_its_own_secret_only() {
    let secrets = Secrets::with(&[("acme", "whsec_acme"), ("globex", "whsec_globex")]);
    let runs = Arc::new(AtomicU32::new(0));
    let app = app(CachedKeys::new(Source(secrets.clone())), runs.clone());

    let (status, body, _) = send(&app, event("acme", "whsec_acme", "evt_1")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "acme stripe.acme")
    );
    // Acme's secret cannot sign for Globex, and an unknown tenant has no key.
    let (status, kind, _) = send(&app, event("globex", "whsec_acme", "evt_2")).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::UNAUTHORIZED, "signature-mismatch")
    );
    let (status, kind, _) = send(&app, event("initech", "whsec_acme", "evt_3")).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    // A tenant id that cannot be a namespace part is refused before any fetch.
    let fetches = secrets.fetches.load(Ordering::SeqCst);
    let (status, _, _) = send(&app, event("a%20b", "whsec_acme", "evt_4")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(secrets.fetches.load(Ordering::SeqCst), fetches);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn tenants_keep_their_event_ids_apart() {
    let secrets = Secrets::with(&[("acme", "whsec_acme"), ("globex", "whsec_globex")]);
    let runs = Arc::new(AtomicU32::new(0));
    let app = app(CachedKeys::new(Source(secrets)), runs.clone());
    // Globex signs an event under an id Acme will use: it does not make
    // Acme's event a duplicate.
    let (status, body, _) = send(&app, event("globex", "whsec_globex", "evt_shared")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "globex stripe.globex")
    );
    let (status, body, _) = send(&app, event("acme", "whsec_acme", "evt_shared")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "acme stripe.acme")
    );
    let (status, body, _) = send(&app, event("acme", "whsec_acme", "evt_shared")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("duplicate"), "{body}");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn keys_are_cached_until_their_ttl_and_a_rotation_takes_effect_after_it() {
    let secrets = Secrets::with(&[("acme", "whsec_old")]);
    let keys = CachedKeys::new(Source(secrets.clone())).ttl(Duration::from_millis(300));
    let app = app(keys.clone(), Arc::new(AtomicU32::new(0)));

    assert_eq!(
        send(&app, event("acme", "whsec_old", "evt_1")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, event("acme", "whsec_old", "evt_2")).await.0,
        StatusCode::OK
    );
    assert_eq!(keys.fetch_count(), 1, "the second request is a cache hit");

    // Rotated while the server runs: the cached key holds until its TTL…
    secrets.set("acme", "whsec_new");
    assert_eq!(
        send(&app, event("acme", "whsec_old", "evt_3")).await.0,
        StatusCode::OK
    );
    // …after which the new secret verifies and the old one no longer does.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        send(&app, event("acme", "whsec_new", "evt_4")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, event("acme", "whsec_old", "evt_5")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(keys.fetch_count(), 2);
}

#[tokio::test]
async fn a_missing_key_is_cached_as_missing() {
    let secrets = Secrets::with(&[]);
    let keys = CachedKeys::new(Source(secrets.clone())).negative_ttl(Duration::from_millis(300));
    let app = app(keys.clone(), Arc::new(AtomicU32::new(0)));
    for id in ["evt_1", "evt_2", "evt_3"] {
        let (status, _, _) = send(&app, event("acme", "whsec_acme", id)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(keys.fetch_count(), 1);
    // The tenant is created; once the negative entry expires it is found.
    secrets.set("acme", "whsec_acme");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        send(&app, event("acme", "whsec_acme", "evt_4")).await.0,
        StatusCode::OK
    );
    assert_eq!(keys.fetch_count(), 2);
}

#[tokio::test]
async fn a_burst_for_one_key_makes_one_fetch() {
    let secrets = Secrets::with(&[("acme", "whsec_acme")]);
    secrets.delay_ms.store(200, Ordering::SeqCst);
    let keys = CachedKeys::new(Source(secrets.clone()));
    let runs = Arc::new(AtomicU32::new(0));
    let app = app(keys.clone(), runs.clone());
    let requests: Vec<_> = (0..100)
        .map(|index| {
            let app = app.clone();
            tokio::spawn(async move {
                send(&app, event("acme", "whsec_acme", &format!("evt_{index}"))).await
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().0, StatusCode::OK);
    }
    assert_eq!(keys.fetch_count(), 1);
    assert_eq!(secrets.fetches.load(Ordering::SeqCst), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 100);
}

#[tokio::test]
async fn a_key_that_cannot_be_fetched_is_a_503_not_a_401_and_is_not_cached() {
    let secrets = Secrets::with(&[("acme", "whsec_acme")]);
    secrets.down.store(true, Ordering::SeqCst);
    let keys = CachedKeys::new(Source(secrets.clone()))
        .fetch_timeout(Duration::from_millis(200))
        .unavailable_retry_after(Duration::from_secs(7));
    let runs = Arc::new(AtomicU32::new(0));
    let app = app(keys.clone(), runs.clone());

    let (status, kind, retry_after) = send(&app, event("acme", "whsec_acme", "evt_1")).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "key-unavailable")
    );
    assert_eq!(retry_after.as_deref(), Some("7"));

    // A source slower than the timeout: 503 too.
    secrets.down.store(false, Ordering::SeqCst);
    secrets.delay_ms.store(1_000, Ordering::SeqCst);
    let (status, kind, _) = send(&app, event("acme", "whsec_acme", "evt_1")).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "key-unavailable")
    );

    // Failures were not cached: the source is back, the retry succeeds.
    secrets.delay_ms.store(0, Ordering::SeqCst);
    assert_eq!(
        send(&app, event("acme", "whsec_acme", "evt_1")).await.0,
        StatusCode::OK
    );
    assert_eq!(keys.fetch_count(), 3);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// What [`Witnessed`]'s follow-up does.
#[derive(Clone, Copy, Debug)]
enum FollowUpMode {
    Succeed,
    Fail,
    Hang,
}

/// Per-tenant Stripe secrets with a follow-up that records each run.
#[derive(Debug)]
struct Witnessed {
    tenants: Tenants<Stripe, fn(&http::request::Parts) -> Option<String>>,
    runs: Arc<Mutex<Vec<String>>>,
    mode: FollowUpMode,
}

impl Witnessed {
    fn new(mode: FollowUpMode) -> Self {
        Self {
            tenants: Tenants::new("stripe", tenant_of),
            runs: Arc::default(),
            mode,
        }
    }
}

impl KeyedVerifier for Witnessed {
    type Locator = String;
    type Key = Stripe;

    fn provider(&self) -> &'static str {
        "stripe"
    }

    fn locate(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<String, tower_webhooks::VerifyError> {
        self.tenants.locate(parts, body)
    }

    fn verify(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        tenant: &String,
        key: &Stripe,
    ) -> Result<VerifiedWebhook, tower_webhooks::VerifyError> {
        self.tenants.verify(parts, body, tenant, key)
    }

    fn follow_up(
        &self,
        parts: &http::request::Parts,
        _body: &[u8],
    ) -> Result<Option<FollowUp>, tower_webhooks::VerifyError> {
        if parts.headers.contains_key("x-refuse") {
            return Err(tower_webhooks::VerifyError::BadRequest(
                "refused by the follow-up".into(),
            ));
        }
        let runs = self.runs.clone();
        let tenant = parts.uri.path().to_owned();
        let mode = self.mode;
        Ok(Some(Box::pin(async move {
            runs.lock().unwrap().push(tenant);
            match mode {
                FollowUpMode::Succeed => Ok(()),
                FollowUpMode::Fail => Err(KeyError::new("the follow-up failed")),
                FollowUpMode::Hang => std::future::pending().await,
            }
        })))
    }
}

fn witnessed_app(
    verifier: Witnessed,
    keys: CachedKeys<String, Stripe>,
    handled: Arc<AtomicU32>,
) -> Router {
    let layer = WebhookLayer::with_keys(verifier, keys);
    let handler = move || {
        handled.fetch_add(1, Ordering::SeqCst);
        async { "handled" }
    };
    Router::new().route("/hook/{tenant}", post(handler).route_layer(layer))
}

#[tokio::test]
async fn a_follow_up_runs_only_after_the_request_verified() {
    let secrets = Secrets::with(&[("acme", "whsec_acme")]);
    let verifier = Witnessed::new(FollowUpMode::Succeed);
    let runs = verifier.runs.clone();
    let handled = Arc::new(AtomicU32::new(0));
    let app = witnessed_app(
        verifier,
        CachedKeys::new(Source(secrets.clone())),
        handled.clone(),
    );

    assert_eq!(
        send(&app, event("acme", "whsec_acme", "evt_1")).await.0,
        StatusCode::OK
    );
    assert_eq!(*runs.lock().unwrap(), ["/hook/acme"]);
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    // A forged request, and one for a tenant without a key: no follow-up.
    assert_eq!(
        send(&app, event("acme", "whsec_guess", "evt_2")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, event("nobody", "whsec_acme", "evt_3")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(runs.lock().unwrap().len(), 1);
    // Refused by `follow_up` itself: before any key is fetched.
    let fetches = secrets.fetches.load(Ordering::SeqCst);
    let mut refused = event("acme", "whsec_acme", "evt_4");
    refused
        .headers_mut()
        .insert("x-refuse", "1".parse().unwrap());
    let (status, kind, _) = send(&app, refused).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::BAD_REQUEST, "bad-request")
    );
    assert_eq!(secrets.fetches.load(Ordering::SeqCst), fetches);
    assert_eq!(runs.lock().unwrap().len(), 1);
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_follow_up_that_fails_or_hangs_is_503_and_not_handled() {
    for mode in [FollowUpMode::Fail, FollowUpMode::Hang] {
        let secrets = Secrets::with(&[("acme", "whsec_acme")]);
        let verifier = Witnessed::new(mode);
        let runs = verifier.runs.clone();
        let handled = Arc::new(AtomicU32::new(0));
        let keys = CachedKeys::new(Source(secrets))
            .fetch_timeout(Duration::from_millis(100))
            .unavailable_retry_after(Duration::from_secs(7));
        let app = witnessed_app(verifier, keys, handled.clone());
        let (status, kind, retry_after) = send(&app, event("acme", "whsec_acme", "evt_1")).await;
        assert_eq!(
            (status, kind.as_str(), retry_after.as_deref()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "key-unavailable",
                Some("7")
            ),
            "{mode:?}"
        );
        assert_eq!(runs.lock().unwrap().len(), 1, "{mode:?}");
        assert_eq!(handled.load(Ordering::SeqCst), 0, "{mode:?}");
    }
}

#[tokio::test]
async fn missing_keys_hold_back_uncached_fetches_for_the_interval() {
    let secrets = Secrets::with(&[("acme", "whsec_acme"), ("globex", "whsec_globex")]);
    let runs = Arc::new(AtomicU32::new(0));
    let keys = CachedKeys::new(Source(secrets.clone()))
        .missing_fetch_interval(Duration::from_secs(3600))
        .ttl(Duration::from_millis(50));
    let app = app(keys, runs.clone());
    // Cached before any miss: served as usual.
    assert_eq!(
        send(&app, event("acme", "whsec_acme", "evt_1")).await.0,
        StatusCode::OK
    );
    // The first unknown tenant is fetched (401); the next ones are held
    // back without a fetch (503, the sender retries).
    assert_eq!(
        send(&app, event("nobody", "whsec_x", "evt_2")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(secrets.fetches.load(Ordering::SeqCst), 2);
    for index in 0..20 {
        let (status, kind, retry_after) =
            send(&app, event(&format!("made-up-{index}"), "whsec_x", "evt_3")).await;
        assert_eq!(
            (status, kind.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "key-unavailable")
        );
        assert!(retry_after.is_some());
    }
    assert_eq!(secrets.fetches.load(Ordering::SeqCst), 2);
    // A key first used within the interval is held back too (503, not 401).
    assert_eq!(
        send(&app, event("globex", "whsec_globex", "evt_4")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The known missing one stays 401 from its negative entry, and a
    // cached key past its TTL is refreshed (fetched), not held back.
    assert_eq!(
        send(&app, event("nobody", "whsec_x", "evt_5")).await.0,
        StatusCode::UNAUTHORIZED
    );
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        send(&app, event("acme", "whsec_acme", "evt_6")).await.0,
        StatusCode::OK
    );
    assert_eq!(secrets.fetches.load(Ordering::SeqCst), 3);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}
