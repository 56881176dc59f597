//! Admission: the same replay guarantees in every mode and on every backend.
//!
//! For each scheme whose event id the signature does not cover (the
//! reference scheme, GitHub, Shopify, Twilio, Linear), in inline mode and in
//! inbox mode: a captured request replayed under a new id is refused (401
//! `replayed-signature`) and its handler runs once, and a replay under a
//! genuine event's future id cannot pre-empt that event.
#![cfg(all(feature = "test-util", feature = "sqlite"))]

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{post, post_service};
use bytes::Bytes;
use http::{HeaderName, Request, StatusCode};
use http_body_util::BodyExt;
use support::problem_kind;
use tower::{ServiceBuilder, ServiceExt};
use tower_webhooks::idempotency::{IdempotencyStore, MemoryStore, SqliteStore};
use tower_webhooks::inbox::{
    EventStatus, HandlerError, Inbox, InboxEvent, InboxStore, ListFilter, MemoryInbox, SqliteInbox,
};
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::providers::{GitHub, Linear, Shopify, Twilio};
use tower_webhooks::testing::{
    GenericSigner, GitHubSigner, LinearSigner, ShopifySigner, Signer, TwilioSigner, unix_now,
};
use tower_webhooks::{HmacVerifier, SignatureVerifier, VerifiedWebhook, WebhookLayer};

const SECRET: &str = "admission_secret";
const TWILIO_BASE: &str = "https://example.com";

/// One scheme whose event id is not signed.
struct Scheme {
    name: &'static str,
    verifier: fn() -> Arc<dyn SignatureVerifier>,
    signer: fn() -> Box<dyn Signer>,
    /// The header carrying the (unsigned) event id.
    id_header: &'static str,
    /// Content type the sender uses.
    content_type: &'static str,
}

fn schemes() -> Vec<Scheme> {
    vec![
        Scheme {
            name: "generic",
            verifier: || Arc::new(HmacVerifier::generic(SECRET).unwrap()),
            signer: || Box::new(GenericSigner::new(SECRET)),
            id_header: "x-event-id",
            content_type: "application/json",
        },
        Scheme {
            name: "github",
            verifier: || Arc::new(GitHub::new(SECRET).unwrap()),
            signer: || Box::new(GitHubSigner::new(SECRET)),
            id_header: "x-github-delivery",
            content_type: "application/json",
        },
        Scheme {
            name: "shopify",
            verifier: || Arc::new(Shopify::new(SECRET).unwrap()),
            signer: || Box::new(ShopifySigner::new(SECRET)),
            id_header: "x-shopify-event-id",
            content_type: "application/json",
        },
        Scheme {
            name: "twilio",
            verifier: || Arc::new(Twilio::new(SECRET, TWILIO_BASE).unwrap()),
            signer: || Box::new(TwilioSigner::new(SECRET, format!("{TWILIO_BASE}/hook"))),
            id_header: "i-twilio-idempotency-token",
            content_type: "application/x-www-form-urlencoded",
        },
        Scheme {
            name: "linear",
            verifier: || Arc::new(Linear::new(SECRET).unwrap()),
            signer: || Box::new(LinearSigner::new(SECRET)),
            id_header: "linear-delivery",
            content_type: "application/json",
        },
    ]
}

impl Scheme {
    /// A body the scheme accepts now, distinct per `seed`.
    fn body(&self, seed: &str) -> Vec<u8> {
        match self.name {
            "twilio" => format!("CallSid={seed}&From=%2B14155550100").into_bytes(),
            "linear" => format!(
                r#"{{"action":"create","seed":"{seed}","webhookTimestamp":{}}}"#,
                unix_millis()
            )
            .into_bytes(),
            _ => format!(r#"{{"type":"test","seed":"{seed}"}}"#).into_bytes(),
        }
    }

    /// A genuine delivery of event `id`, as the sender makes it.
    fn delivery(&self, id: &str, seed: &str) -> Request<Bytes> {
        let mut request = (self.signer)().request("/hook", id, unix_now(), &self.body(seed));
        request.headers_mut().insert(
            http::header::CONTENT_TYPE,
            self.content_type.parse().unwrap(),
        );
        // Shopify sends two id headers; the event id wins.
        request.headers_mut().remove("x-shopify-webhook-id");
        request
    }

    /// `request` with its unsigned event id changed to `id`.
    fn under_id(&self, request: &Request<Bytes>, id: &str) -> Request<Bytes> {
        let mut replay = request.clone();
        replay
            .headers_mut()
            .insert(HeaderName::from_static(self.id_header), id.parse().unwrap());
        replay
    }
}

fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// How often the handler ran, per event id.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<HashMap<String, usize>>>);

impl Runs {
    fn record(&self, id: &str) {
        *self.0.lock().unwrap().entry(id.to_owned()).or_default() += 1;
    }

    fn of(&self, id: &str) -> usize {
        self.0.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }
}

/// Where admitted events go.
enum Sink {
    Inline(Arc<dyn IdempotencyStore>),
    Inbox(Arc<dyn InboxStore>),
}

/// A running route over one scheme and one sink.
struct Route {
    app: Router,
    runs: Runs,
    inbox: Option<(Inbox, tower_webhooks::inbox::WorkerHandle)>,
}

impl Route {
    fn new(scheme: &Scheme, sink: Sink) -> Self {
        let runs = Runs::default();
        let layer = WebhookLayer::from_shared((scheme.verifier)());
        match sink {
            Sink::Inline(store) => {
                let counted = runs.clone();
                let handler = move |axum::Extension(webhook): axum::Extension<VerifiedWebhook>| {
                    let counted = counted.clone();
                    async move {
                        counted.record(webhook.event_id().unwrap());
                        "ok"
                    }
                };
                let app = Router::new().route(
                    "/hook",
                    post(handler)
                        .route_layer(layer.with_idempotency(IdempotencyLayer::from_shared(store))),
                );
                Self {
                    app,
                    runs,
                    inbox: None,
                }
            }
            Sink::Inbox(store) => {
                let inbox = Inbox::from_shared(store);
                let counted = runs.clone();
                let worker = inbox
                    .worker(move |event: InboxEvent| {
                        let counted = counted.clone();
                        async move {
                            counted.record(event.id());
                            Ok::<(), HandlerError>(())
                        }
                    })
                    .poll_interval(Duration::from_millis(20))
                    .spawn();
                let endpoint = ServiceBuilder::new().layer(layer).service(inbox.accept());
                let app = Router::new().route("/hook", post_service(endpoint));
                Self {
                    app,
                    runs,
                    inbox: Some((inbox, worker)),
                }
            }
        }
    }

    async fn send(&self, request: Request<Bytes>) -> (StatusCode, String) {
        let response = self
            .app
            .clone()
            .oneshot(request.map(axum::body::Body::from))
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let kind = if status.is_success() {
            String::from_utf8_lossy(&body).into_owned()
        } else {
            problem_kind(&body)
        };
        (status, kind)
    }

    /// Waits until the inbox has nothing pending or processing.
    async fn settle(&self) {
        let Some((inbox, _)) = &self.inbox else {
            return;
        };
        for _ in 0..500 {
            let records = inbox.store().list(ListFilter::new(1_000)).await.unwrap();
            if records
                .iter()
                .all(|record| matches!(record.status, EventStatus::Succeeded | EventStatus::Dead))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the inbox did not settle");
    }

    async fn stop(self) {
        if let Some((_, worker)) = self.inbox {
            worker.shutdown().await;
        }
    }
}

fn temp_path(name: &str) -> std::path::PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("tower-webhooks-admission-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.db", NEXT.fetch_add(1, Ordering::SeqCst)));
    let _ = std::fs::remove_file(&path);
    path
}

/// Every sink the tests run on: inline over memory and SQLite stores, the
/// inbox over memory and SQLite, and PostgreSQL for both when configured.
async fn sinks() -> Vec<(&'static str, Sink)> {
    let mut sinks: Vec<(&'static str, Sink)> = vec![
        ("inline/memory", Sink::Inline(Arc::new(MemoryStore::new()))),
        (
            "inline/sqlite",
            Sink::Inline(Arc::new(
                SqliteStore::open(temp_path("store")).await.unwrap(),
            )),
        ),
        ("inbox/memory", Sink::Inbox(Arc::new(MemoryInbox::new()))),
        (
            "inbox/sqlite",
            Sink::Inbox(Arc::new(
                SqliteInbox::open(temp_path("inbox")).await.unwrap(),
            )),
        ),
    ];
    sinks.extend(postgres_sinks().await);
    sinks
}

#[cfg(tower_webhooks_pg)]
async fn postgres_sinks() -> Vec<(&'static str, Sink)> {
    vec![
        ("inline/postgres", Sink::Inline(postgres::store().await)),
        ("inbox/postgres", Sink::Inbox(postgres::inbox().await)),
    ]
}

#[cfg(not(tower_webhooks_pg))]
async fn postgres_sinks() -> Vec<(&'static str, Sink)> {
    eprintln!(
        "admission: PostgreSQL sinks skipped; set TOWER_WEBHOOKS_PG_URL to run them \
         (e.g. postgres://postgres@127.0.0.1:5432/test)"
    );
    Vec::new()
}

#[cfg(tower_webhooks_pg)]
mod postgres {
    use super::*;
    use tower_webhooks::idempotency::PostgresStore;
    use tower_webhooks::inbox::PostgresInbox;

    fn url() -> String {
        std::env::var("TOWER_WEBHOOKS_PG_URL").unwrap()
    }

    fn table(kind: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        format!(
            "adm_{kind}_{}_{}_{}",
            std::process::id(),
            unix_millis() % 1_000_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        )
    }

    pub(super) async fn store() -> Arc<dyn IdempotencyStore> {
        let store = PostgresStore::builder()
            .table(table("store"))
            .connect(&url())
            .unwrap();
        store.migrate().await.unwrap();
        Arc::new(store)
    }

    pub(super) async fn inbox() -> Arc<dyn InboxStore> {
        let inbox = PostgresInbox::builder()
            .table(table("inbox"))
            .connect(&url())
            .unwrap();
        inbox.migrate().await.unwrap();
        Arc::new(inbox)
    }
}

fn accepted(answer: &(StatusCode, String)) -> bool {
    answer.0 == StatusCode::OK && !answer.1.contains("duplicate")
}

#[tokio::test]
async fn a_request_replayed_under_a_new_id_is_refused_in_every_mode() {
    for scheme in schemes() {
        for (sink_name, sink) in sinks().await {
            let route = Route::new(&scheme, sink);
            let case = format!("{} {sink_name}", scheme.name);
            let original = scheme.delivery("evt_original", "a");

            let first = route.send(original.clone()).await;
            assert!(accepted(&first), "{case}: {first:?}");
            let replay = route.send(scheme.under_id(&original, "evt_forged")).await;
            assert_eq!(
                replay,
                (StatusCode::UNAUTHORIZED, "replayed-signature".to_owned()),
                "{case}"
            );
            // The identical request again is an ordinary duplicate.
            let again = route.send(original.clone()).await;
            assert_eq!(again.0, StatusCode::OK, "{case}: {again:?}");
            assert!(again.1.contains("duplicate"), "{case}: {again:?}");

            route.settle().await;
            assert_eq!(route.runs.of("evt_original"), 1, "{case}");
            assert_eq!(route.runs.of("evt_forged"), 0, "{case}");
            assert_eq!(route.runs.total(), 1, "{case}");
            route.stop().await;
        }
    }
}

#[tokio::test]
async fn a_replay_under_a_future_id_does_not_pre_empt_the_genuine_event() {
    for scheme in schemes() {
        for (sink_name, sink) in sinks().await {
            let route = Route::new(&scheme, sink);
            let case = format!("{} {sink_name}", scheme.name);
            let captured = scheme.delivery("evt_1", "first");
            assert!(accepted(&route.send(captured.clone()).await), "{case}");

            // The attacker guesses the next id and replays the captured
            // request under it, before the genuine event arrives.
            let forged = route.send(scheme.under_id(&captured, "evt_2")).await;
            assert_eq!(forged.0, StatusCode::UNAUTHORIZED, "{case}: {forged:?}");

            let genuine = route.send(scheme.delivery("evt_2", "second")).await;
            assert!(accepted(&genuine), "{case}: {genuine:?}");

            route.settle().await;
            assert_eq!(route.runs.of("evt_1"), 1, "{case}");
            assert_eq!(route.runs.of("evt_2"), 1, "{case}");
            route.stop().await;
        }
    }
}

/// Twilio without its idempotency token: the id is derived from the body, so
/// a re-encoded or reordered body (same signature) would get another id.
#[tokio::test]
async fn twilio_without_a_token_is_handled_once_however_the_form_is_encoded() {
    let scheme = schemes().into_iter().find(|s| s.name == "twilio").unwrap();
    for (sink_name, sink) in sinks().await {
        let route = Route::new(&scheme, sink);
        let signer = TwilioSigner::new(SECRET, format!("{TWILIO_BASE}/hook"));
        let body = b"A=1&B=2&From=%2B14155550100".as_slice();
        let mut original = signer.request("/hook", "", unix_now(), body);
        original.headers_mut().remove("i-twilio-idempotency-token");
        let variant = |bytes: &'static [u8]| {
            let mut request = original.clone();
            *request.body_mut() = Bytes::from_static(bytes);
            request
        };

        let first = route.send(original.clone()).await;
        assert!(accepted(&first), "{sink_name}: {first:?}");
        for (what, request) in [
            ("reordered", variant(b"B=2&From=%2B14155550100&A=1")),
            ("%41 for A", variant(b"%41=1&B=2&From=%2B14155550100")),
            ("+ as %2B", variant(b"A=1&B=2&From=%2b14155550100")),
        ] {
            let answer = route.send(request).await;
            assert_eq!(
                answer,
                (StatusCode::UNAUTHORIZED, "replayed-signature".to_owned()),
                "{sink_name}: {what}"
            );
        }
        let again = route.send(original).await;
        assert!(again.1.contains("duplicate"), "{sink_name}: {again:?}");

        route.settle().await;
        assert_eq!(route.runs.total(), 1, "{sink_name}");
        route.stop().await;
    }
}

#[tokio::test]
async fn twilio_refuses_a_form_body_sent_as_something_else_and_too_many_parameters() {
    let twilio = Twilio::new(SECRET, TWILIO_BASE).unwrap();
    let signer = TwilioSigner::new(SECRET, format!("{TWILIO_BASE}/hook"));
    let request = signer.request("/hook", "tok_1", unix_now(), b"A=1");
    let (mut parts, body) = request.into_parts();
    assert!(twilio.verify(&parts, &body).is_ok());

    parts
        .headers
        .insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
    let error = twilio.verify(&parts, &body).unwrap_err();
    assert_eq!(error.status(), 400, "{error}");

    parts.headers.insert(
        http::header::CONTENT_TYPE,
        "application/x-www-form-urlencoded; charset=utf-8"
            .parse()
            .unwrap(),
    );
    let many = "a=1&".repeat(Twilio::MAX_PARAMETERS + 1);
    let error = twilio.verify(&parts, many.as_bytes()).unwrap_err();
    assert_eq!(error.status(), 400, "{error}");
}

#[tokio::test]
async fn two_routes_on_one_store_never_share_a_namespace_by_accident() {
    let store: Arc<dyn IdempotencyStore> = Arc::new(MemoryStore::new());
    let route = |layer: WebhookLayer| {
        post(|| async { "ok" })
            .route_layer(layer.with_idempotency(IdempotencyLayer::from_shared(store.clone())))
    };
    let verifier = || HmacVerifier::generic(SECRET).unwrap();
    let app = Router::new()
        .route("/a", route(WebhookLayer::new(verifier())))
        .route("/b", route(WebhookLayer::new(verifier())));
    let send = |path: &'static str, id: &'static str| {
        let app = app.clone();
        async move {
            let body = format!(r#"{{"id":"{id}"}}"#);
            let request = GenericSigner::new(SECRET)
                .request(path, id, unix_now(), body.as_bytes())
                .map(axum::body::Body::from);
            app.oneshot(request).await.unwrap().status()
        }
    };
    assert_eq!(send("/a", "evt_1").await, StatusCode::OK);
    // Same default namespace ("generic"), another route: refused, never
    // deduplicated against the first route's ids.
    assert_eq!(send("/b", "evt_2").await, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(send("/a", "evt_3").await, StatusCode::OK);

    // With a namespace each, both routes work and keep their ids apart.
    use tower_webhooks::admission::Namespace;
    let app = Router::new()
        .route(
            "/a",
            route(WebhookLayer::new(verifier()).namespace(Namespace::from_static("partner-a"))),
        )
        .route(
            "/b",
            route(WebhookLayer::new(verifier()).namespace(Namespace::from_static("partner-b"))),
        );
    for path in ["/a", "/b"] {
        let request = GenericSigner::new(SECRET)
            .request(path, "evt_same", unix_now(), b"{}")
            .map(axum::body::Body::from);
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

#[test]
fn every_verifier_refuses_an_empty_secret_or_key_set_when_built() {
    use tower_webhooks::SecretSet;
    use tower_webhooks::providers::{
        ConfigError, Discord, Paddle, Slack, Square, StandardWebhooks, Stripe,
    };
    let none = || SecretSet::new(Vec::<&str>::new());
    let empty = SecretSet::from(["good_secret", ""]);
    let refused = |what: &str, result: Result<(), ConfigError>| {
        let error = result.expect_err(what);
        assert!(
            matches!(
                error,
                ConfigError::NoSecret | ConfigError::InvalidSecret { .. }
            ),
            "{what}: {error:?}"
        );
        assert!(
            !error.to_string().contains("good_secret"),
            "{what}: {error}"
        );
    };
    for set in [none(), empty] {
        refused("generic", HmacVerifier::generic(set.clone()).map(drop));
        refused(
            "builder",
            HmacVerifier::builder(set.clone()).build().map(drop),
        );
        refused("stripe", Stripe::new(set.clone()).map(drop));
        refused("github", GitHub::new(set.clone()).map(drop));
        refused("shopify", Shopify::new(set.clone()).map(drop));
        refused("slack", Slack::new(set.clone()).map(drop));
        refused("standard", StandardWebhooks::new(set.clone()).map(drop));
        refused("svix", StandardWebhooks::svix(set.clone()).map(drop));
        refused("paddle", Paddle::new(set.clone()).map(drop));
        refused("discord", Discord::new(set.clone()).map(drop));
        refused("twilio", Twilio::new(set.clone(), TWILIO_BASE).map(drop));
        refused(
            "square",
            Square::new(set.clone(), "https://example.com/hook").map(drop),
        );
        refused("linear", Linear::new(set.clone()).map(drop));
    }
}

#[test]
fn a_timestamp_header_whose_value_is_not_signed_is_refused_when_built() {
    use tower_webhooks::verify::ConfigError;
    let error = HmacVerifier::builder(SECRET)
        .signed_content("{body}")
        .build()
        .unwrap_err();
    assert_eq!(error, ConfigError::UnsignedTimestamp);
    assert!(error.to_string().contains("{timestamp}"), "{error}");
    // Without a timestamp header the same template is fine (GitHub-like).
    assert!(
        HmacVerifier::builder(SECRET)
            .without_timestamp()
            .signed_content("{body}")
            .build()
            .is_ok()
    );
}

/// Many bogus `v1a` entries over a 1 MiB body: a header holds at most eight
/// asymmetric signatures (more is refused before any check), so a request
/// costs at most eight Ed25519 checks per configured key.
#[test]
fn standard_webhooks_v1a_costs_a_bounded_number_of_checks() {
    use base64::Engine as _;
    use tower_webhooks::providers::StandardWebhooks;
    use tower_webhooks::testing::ed25519_checks;

    let seed = [7u8; 32];
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    let key = format!(
        "whpk_{}",
        base64::engine::general_purpose::STANDARD.encode(public.as_bytes())
    );
    let verifier = StandardWebhooks::new(key).unwrap();
    let body = vec![b'x'; 1024 * 1024];
    let bogus = base64::engine::general_purpose::STANDARD.encode([1u8; 64]);
    let request = |entries: usize| {
        let signature = vec![format!("v1a,{bogus}"); entries].join(" ");
        let (parts, ()) = Request::post("/hook")
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", unix_now().to_string())
            .header("webhook-signature", signature)
            .body(())
            .unwrap()
            .into_parts();
        parts
    };

    let before = ed25519_checks();
    let error = verifier.verify(&request(8), &body).unwrap_err();
    assert_eq!(error.status(), 401);
    assert_eq!(ed25519_checks() - before, 8, "one check per entry, one key");

    let before = ed25519_checks();
    let error = verifier.verify(&request(500), &body).unwrap_err();
    assert_eq!(error.status(), 400, "{error}");
    assert_eq!(ed25519_checks() - before, 0, "refused before any check");
}

/// A store that takes its time to complete, so a client can disconnect
/// while the completion is under way.
#[derive(Debug)]
struct SlowComplete {
    inner: MemoryStore,
    completed: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl IdempotencyStore for SlowComplete {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &[u8],
        lease: Duration,
    ) -> Result<tower_webhooks::idempotency::Claim, tower_webhooks::idempotency::StoreError> {
        self.inner.claim(key, fingerprint, lease).await
    }

    async fn complete(
        &self,
        key: &str,
        token: tower_webhooks::idempotency::FenceToken,
        retention: Duration,
    ) -> Result<bool, tower_webhooks::idempotency::StoreError> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let done = self.inner.complete(key, token, retention).await;
        self.completed.notify_one();
        done
    }

    async fn release(
        &self,
        key: &str,
        token: tower_webhooks::idempotency::FenceToken,
    ) -> Result<bool, tower_webhooks::idempotency::StoreError> {
        self.inner.release(key, token).await
    }

    async fn renew(
        &self,
        key: &str,
        token: tower_webhooks::idempotency::FenceToken,
        lease: Duration,
    ) -> Result<bool, tower_webhooks::idempotency::StoreError> {
        self.inner.renew(key, token, lease).await
    }
}

#[tokio::test]
async fn a_client_disconnect_right_after_the_handler_succeeded_still_completes_the_claim() {
    let store = Arc::new(SlowComplete {
        inner: MemoryStore::new(),
        completed: tokio::sync::Notify::new(),
    });
    let (handled_tx, handled_rx) = tokio::sync::oneshot::channel::<()>();
    let handled_tx = Arc::new(Mutex::new(Some(handled_tx)));
    let runs = Runs::default();
    let counted = runs.clone();
    let handler = move |axum::Extension(webhook): axum::Extension<VerifiedWebhook>| {
        let (counted, handled_tx) = (counted.clone(), handled_tx.clone());
        async move {
            counted.record(webhook.event_id().unwrap());
            if let Some(tx) = handled_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            "ok"
        }
    };
    let app = Router::new().route(
        "/hook",
        post(handler).route_layer(
            WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap())
                .with_idempotency(IdempotencyLayer::from_shared(store.clone())),
        ),
    );
    let request = |id: &str| {
        GenericSigner::new(SECRET)
            .request("/hook", id, unix_now(), b"{}")
            .map(axum::body::Body::from)
    };
    let in_flight = tokio::spawn(app.clone().oneshot(request("evt_gone")));
    handled_rx.await.unwrap();
    // The handler succeeded; the client goes away while the completion runs.
    in_flight.abort();
    let _ = in_flight.await;
    tokio::time::timeout(Duration::from_secs(5), store.completed.notified())
        .await
        .expect("the completion ran to the end without the request");

    let response = app.oneshot(request("evt_gone")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["idempotent-replayed"], "true");
    assert_eq!(runs.of("evt_gone"), 1);
}

#[tokio::test]
async fn a_slow_handler_keeps_its_claim_past_the_lease() {
    let store = Arc::new(MemoryStore::new());
    let runs = Runs::default();
    let counted = runs.clone();
    let handler = move |axum::Extension(webhook): axum::Extension<VerifiedWebhook>| {
        let counted = counted.clone();
        async move {
            counted.record(webhook.event_id().unwrap());
            tokio::time::sleep(Duration::from_millis(900)).await;
            "ok"
        }
    };
    let app = Router::new().route(
        "/hook",
        post(handler).route_layer(
            WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()).with_idempotency(
                IdempotencyLayer::from_shared(store).lease(Duration::from_millis(300)),
            ),
        ),
    );
    let delivery = GenericSigner::new(SECRET).request("/hook", "evt_slow", unix_now(), b"{}");
    let send = |request: Request<Bytes>| app.clone().oneshot(request.map(axum::body::Body::from));
    let first = tokio::spawn(send(delivery.clone()));
    // Well past the 300 ms lease, the first delivery is still running: its
    // renewed claim holds, and the retry is told to come back later.
    tokio::time::sleep(Duration::from_millis(650)).await;
    let retry = send(delivery.clone()).await.unwrap();
    assert_eq!(retry.status(), StatusCode::CONFLICT);
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    let after = send(delivery).await.unwrap();
    assert_eq!(after.headers()["idempotent-replayed"], "true");
    assert_eq!(runs.of("evt_slow"), 1);
}

/// On the memory inbox (which answers only after the handler ran),
/// concurrent duplicates of one id never get a 500, and the handler runs
/// once.
#[tokio::test]
async fn concurrent_duplicates_on_the_memory_inbox_are_never_a_500() {
    let scheme = schemes().into_iter().next().unwrap();
    let route = Route::new(&scheme, Sink::Inbox(Arc::new(MemoryInbox::new())));
    let delivery = scheme.delivery("evt_many", "x");
    let answers = futures_join_all(
        (0..50)
            .map(|_| route.send(delivery.clone()))
            .collect::<Vec<_>>(),
    )
    .await;
    let oks = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    for (status, kind) in &answers {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::CONFLICT,
            "{status} {kind}"
        );
    }
    assert!(oks >= 1, "{answers:?}");
    route.settle().await;
    assert_eq!(route.runs.of("evt_many"), 1);
    // Once handled, every retry is a 200 duplicate.
    let (status, kind) = route.send(delivery).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.contains("duplicate"), "{kind}");
    route.stop().await;
}

/// Runs the futures concurrently on this task and collects their outputs.
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (index, future) in set.iter_mut().enumerate() {
            if outputs[index].is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(output) => outputs[index] = Some(output),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
