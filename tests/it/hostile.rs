//! Hostile input through the full axum stack: every malformed or malicious
//! request gets its documented 4xx, nothing panics, and nothing is recorded
//! in any store.
#![cfg(all(feature = "test-util", feature = "sqlite"))]

use crate::support;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{post, post_service};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use support::{ChannelBody, problem_kind, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{ServiceBuilder, ServiceExt};
use tower_webhooks::idempotency::MemoryStore;
use tower_webhooks::inbox::{Inbox, ListFilter, SqliteInbox};
use tower_webhooks::layer::IdempotencyLayer;
use tower_webhooks::providers::{Paddle, Slack, StandardWebhooks, Stripe};
use tower_webhooks::testing::{
    GenericSigner, PaddleSigner, Signer, SlackSigner, StandardWebhooksSigner, StripeSigner,
    unix_now,
};
use tower_webhooks::{HmacVerifier, SignatureVerifier, WebhookLayer};

const SECRET: &str = "hostile_secret";
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const LIMIT: usize = 1024 * 1024;

struct Fixture {
    app: Router,
    store: Arc<MemoryStore>,
    inbox: Inbox,
    runs: Arc<AtomicUsize>,
}

async fn fixture(name: &str) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let path = std::env::temp_dir().join(format!(
        "tower-webhooks-hostile-{name}-{}.db",
        std::process::id()
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let inbox = Inbox::new(SqliteInbox::open(&path).await.unwrap());
    let guarded = |verifier: Arc<dyn SignatureVerifier>| {
        WebhookLayer::from_shared(verifier)
            .body_limit(LIMIT)
            .with_idempotency(IdempotencyLayer::from_shared(store.clone()))
    };
    let counter = runs.clone();
    let handler = move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "handled" }
    };
    let standard = ServiceBuilder::new()
        .layer(WebhookLayer::new(StandardWebhooks::new(STANDARD_SECRET).unwrap()).body_limit(LIMIT))
        .service(inbox.accept());
    let app = Router::new()
        .route(
            "/generic",
            post(handler.clone())
                .route_layer(guarded(Arc::new(HmacVerifier::generic(SECRET).unwrap()))),
        )
        .route(
            "/stripe",
            post(handler.clone()).route_layer(guarded(Arc::new(Stripe::new(SECRET).unwrap()))),
        )
        .route(
            "/slack",
            post(handler.clone()).route_layer(guarded(Arc::new(Slack::new(SECRET).unwrap()))),
        )
        .route(
            "/paddle",
            post(handler).route_layer(guarded(Arc::new(Paddle::new(SECRET).unwrap()))),
        )
        .route("/standard", post_service(standard));
    Fixture {
        app,
        store,
        inbox,
        runs,
    }
}

fn signed(path: &str, signer: &dyn Signer, id: &str, timestamp: u64, body: &[u8]) -> Request<Body> {
    signer.request(path, id, timestamp, body).map(Body::from)
}

fn generic(body: &[u8]) -> Request<Body> {
    signed(
        "/generic",
        &GenericSigner::new(SECRET),
        "evt_1",
        unix_now(),
        body,
    )
}

fn stripe(body: &[u8]) -> Request<Body> {
    signed("/stripe", &StripeSigner::new(SECRET), "-", unix_now(), body)
}

fn with_header(mut request: Request<Body>, name: &str, value: HeaderValue) -> Request<Body> {
    request
        .headers_mut()
        .insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
    request
}

fn set(request: Request<Body>, name: &str, value: &str) -> Request<Body> {
    with_header(request, name, HeaderValue::from_str(value).unwrap())
}

fn appended(mut request: Request<Body>, name: &str, value: &str) -> Request<Body> {
    request.headers_mut().append(
        HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_str(value).unwrap(),
    );
    request
}

fn deep(levels: usize) -> Vec<u8> {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels)).into_bytes()
}

type Case = (&'static str, Request<Body>, StatusCode, &'static str);

/// Every case: a name, the request, and the status and problem kind it must get.
fn cases() -> Vec<Case> {
    use StatusCode as S;
    let now = unix_now();
    let good_sig = generic(b"{}").headers()["x-webhook-signature"]
        .to_str()
        .unwrap()
        .to_owned();
    let hex64 = "ab".repeat(32);
    let many_v1 = format!("t={now}") + &format!(",v1={hex64}").repeat(500);
    let many_standard = vec![format!("v1,{}=", "A".repeat(43)); 300].join(" ");
    let mut cases: Vec<Case> = vec![
        // Headers missing, duplicated, conflicting.
        (
            "no headers at all",
            Request::post("/generic").body(Body::from("{}")).unwrap(),
            S::BAD_REQUEST,
            "missing-header",
        ),
        (
            "signature duplicated",
            appended(generic(b"{}"), "x-webhook-signature", &good_sig),
            S::BAD_REQUEST,
            "duplicate-header",
        ),
        (
            "timestamp duplicated, conflicting",
            appended(generic(b"{}"), "x-webhook-timestamp", "1"),
            S::BAD_REQUEST,
            "duplicate-header",
        ),
        (
            "event id duplicated",
            appended(generic(b"{}"), "x-event-id", "evt_2"),
            S::BAD_REQUEST,
            "duplicate-header",
        ),
        // Non-ASCII and enormous values.
        (
            "non-ASCII bytes in the signature",
            with_header(
                generic(b"{}"),
                "x-webhook-signature",
                HeaderValue::from_bytes(b"\xff\xfe\xfd").unwrap(),
            ),
            S::BAD_REQUEST,
            "malformed-header",
        ),
        (
            "non-ASCII bytes in the event id",
            with_header(
                generic(b"{}"),
                "x-event-id",
                HeaderValue::from_bytes("évt_1".as_bytes()).unwrap(),
            ),
            S::BAD_REQUEST,
            "malformed-header",
        ),
        (
            "a 64 KiB signature header",
            set(generic(b"{}"), "x-webhook-signature", &"a".repeat(65_536)),
            S::BAD_REQUEST,
            "malformed-header",
        ),
        (
            "a 16 KiB event id",
            set(generic(b"{}"), "x-event-id", &"e".repeat(16_384)),
            S::BAD_REQUEST,
            "invalid-event-id",
        ),
        (
            "an event id with a space",
            set(generic(b"{}"), "x-event-id", "evt 1"),
            S::BAD_REQUEST,
            "invalid-event-id",
        ),
        (
            "an empty event id",
            set(generic(b"{}"), "x-event-id", ""),
            S::BAD_REQUEST,
            "invalid-event-id",
        ),
        // Timestamps at integer limits, with signs, spaces, decimals, exponents.
        (
            "timestamp u64::MAX",
            set(generic(b"{}"), "x-webhook-timestamp", &u64::MAX.to_string()),
            S::BAD_REQUEST,
            "invalid-timestamp",
        ),
        (
            "timestamp i64::MAX",
            set(generic(b"{}"), "x-webhook-timestamp", &i64::MAX.to_string()),
            S::BAD_REQUEST,
            "timestamp-in-future",
        ),
        (
            "timestamp i64::MIN",
            set(generic(b"{}"), "x-webhook-timestamp", &i64::MIN.to_string()),
            S::BAD_REQUEST,
            "invalid-timestamp",
        ),
        (
            "timestamp zero",
            set(generic(b"{}"), "x-webhook-timestamp", "0"),
            S::BAD_REQUEST,
            "timestamp-too-old",
        ),
        (
            "timestamp with a plus sign",
            set(generic(b"{}"), "x-webhook-timestamp", &format!("+{now}")),
            S::BAD_REQUEST,
            "invalid-timestamp",
        ),
        (
            "timestamp -0",
            set(generic(b"{}"), "x-webhook-timestamp", "-0"),
            S::BAD_REQUEST,
            "invalid-timestamp",
        ),
        (
            "timestamp with an inner space",
            set(generic(b"{}"), "x-webhook-timestamp", &format!("17 {now}")),
            S::BAD_REQUEST,
            "invalid-timestamp",
        ),
        (
            "timestamp with decimals",
            set(generic(b"{}"), "x-webhook-timestamp", &format!("{now}.0")),
            S::BAD_REQUEST,
            "invalid-timestamp",
        ),
        (
            "timestamp with an exponent",
            set(generic(b"{}"), "x-webhook-timestamp", "1.7e9"),
            S::BAD_REQUEST,
            "invalid-timestamp",
        ),
        (
            "timestamp in hex",
            set(generic(b"{}"), "x-webhook-timestamp", "0x6553f100"),
            S::BAD_REQUEST,
            "invalid-timestamp",
        ),
        (
            "timestamp empty",
            set(generic(b"{}"), "x-webhook-timestamp", ""),
            S::BAD_REQUEST,
            "invalid-timestamp",
        ),
        // Signatures truncated, doubled, prefixed, base64 for hex, forged.
        (
            "signature truncated",
            set(generic(b"{}"), "x-webhook-signature", &good_sig[..63]),
            S::BAD_REQUEST,
            "malformed-header",
        ),
        (
            "signature doubled",
            set(generic(b"{}"), "x-webhook-signature", &good_sig.repeat(2)),
            S::BAD_REQUEST,
            "malformed-header",
        ),
        (
            "signature with a sha256= prefix",
            set(
                generic(b"{}"),
                "x-webhook-signature",
                &format!("sha256={good_sig}"),
            ),
            S::BAD_REQUEST,
            "malformed-header",
        ),
        (
            "signature in base64",
            set(
                generic(b"{}"),
                "x-webhook-signature",
                "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=",
            ),
            S::BAD_REQUEST,
            "malformed-header",
        ),
        (
            "signature empty",
            set(generic(b"{}"), "x-webhook-signature", ""),
            S::BAD_REQUEST,
            "malformed-header",
        ),
        (
            "signature all zeros",
            set(generic(b"{}"), "x-webhook-signature", &"0".repeat(64)),
            S::UNAUTHORIZED,
            "signature-mismatch",
        ),
        (
            "signature for another timestamp",
            set(
                generic(b"{}"),
                "x-webhook-timestamp",
                &(now - 1).to_string(),
            ),
            S::UNAUTHORIZED,
            "signature-mismatch",
        ),
        // Multi-signature headers: hundreds of entries, odd shapes.
        (
            "Stripe header with 500 v1 entries",
            set(stripe(b"{\"id\":\"evt_1\"}"), "stripe-signature", &many_v1),
            S::BAD_REQUEST,
            "malformed-header",
        ),
        (
            "Stripe header without t=",
            set(
                stripe(b"{\"id\":\"evt_1\"}"),
                "stripe-signature",
                &format!("v1={hex64}"),
            ),
            S::BAD_REQUEST,
            "malformed-header",
        ),
        (
            "Stripe header with two t=",
            set(
                stripe(b"{\"id\":\"evt_1\"}"),
                "stripe-signature",
                &format!("t={now},t={now},v1={hex64}"),
            ),
            S::BAD_REQUEST,
            "malformed-header",
        ),
        (
            "Stripe header with t=abc",
            set(
                stripe(b"{\"id\":\"evt_1\"}"),
                "stripe-signature",
                &format!("t=abc,v1={hex64}"),
            ),
            S::BAD_REQUEST,
            "invalid-timestamp",
        ),
        (
            "Standard Webhooks header with 300 signatures",
            set(
                signed(
                    "/standard",
                    &StandardWebhooksSigner::new(STANDARD_SECRET).unwrap(),
                    "msg_1",
                    now,
                    b"{}",
                ),
                "webhook-signature",
                &many_standard,
            ),
            S::BAD_REQUEST,
            "malformed-header",
        ),
        (
            "Paddle timestamp 60 s in the future (tolerance 5 s)",
            signed(
                "/paddle",
                &PaddleSigner::new(SECRET),
                "-",
                now + 60,
                b"{\"event_id\":\"evt_1\"}",
            ),
            S::BAD_REQUEST,
            "timestamp-in-future",
        ),
        // Signed bodies whose event id is read after verification.
        (
            "Stripe: an empty body",
            stripe(b""),
            S::BAD_REQUEST,
            "invalid-body",
        ),
        (
            "Stripe: a JSON array",
            stripe(b"[1,2,3]"),
            S::BAD_REQUEST,
            "invalid-body",
        ),
        (
            "Stripe: a JSON string",
            stripe(b"\"evt_1\""),
            S::BAD_REQUEST,
            "invalid-body",
        ),
        (
            "Stripe: not JSON, not UTF-8",
            stripe(b"\xff\xfe\x00{"),
            S::BAD_REQUEST,
            "invalid-body",
        ),
        (
            "Stripe: 100,000 levels of nesting",
            stripe(&deep(100_000)),
            S::BAD_REQUEST,
            "invalid-body",
        ),
        (
            "Stripe: the id is an object",
            stripe(b"{\"id\":{\"$ne\":null}}"),
            S::BAD_REQUEST,
            "invalid-body",
        ),
        (
            "Stripe: no id",
            stripe(b"{\"type\":\"x\"}"),
            S::BAD_REQUEST,
            "missing-event-id",
        ),
        (
            "Stripe: an id with a newline",
            stripe(b"{\"id\":\"evt\\n1\"}"),
            S::BAD_REQUEST,
            "invalid-event-id",
        ),
        (
            "Slack: event_id nested 1,000 deep",
            signed(
                "/slack",
                &SlackSigner::new(SECRET),
                "-",
                now,
                &[&b"{\"event_id\":"[..], &deep(1_000), b"}"].concat(),
            ),
            S::BAD_REQUEST,
            "invalid-body",
        ),
        // Bodies too large, or that end early.
        (
            "a body over the limit with Content-Length",
            set(
                generic(&vec![b'x'; LIMIT + 1]),
                "content-length",
                &(LIMIT + 1).to_string(),
            ),
            S::PAYLOAD_TOO_LARGE,
            "payload-too-large",
        ),
        (
            "a 50 MB Content-Length, body never sent",
            set(generic(b""), "content-length", "50000000"),
            S::PAYLOAD_TOO_LARGE,
            "payload-too-large",
        ),
        (
            "a chunked body past the limit",
            generic(b"").map(|_| {
                Body::new(ChannelBody::chunks(
                    (0..10).map(|_| Ok(Bytes::from(vec![b'x'; LIMIT / 4]))),
                ))
            }),
            S::PAYLOAD_TOO_LARGE,
            "payload-too-large",
        ),
        (
            "a body that ends early",
            generic(b"").map(|_| {
                Body::new(ChannelBody::chunks([
                    Ok(Bytes::from_static(b"{\"par")),
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "ended early")),
                ]))
            }),
            S::BAD_REQUEST,
            "body-read-failed",
        ),
    ];
    let mut hundred_ids = generic(b"{}");
    for i in 0..100 {
        hundred_ids = appended(hundred_ids, "x-event-id", &format!("evt_{i}"));
    }
    cases.push((
        "the event id repeated 100 times",
        hundred_ids,
        S::BAD_REQUEST,
        "duplicate-header",
    ));
    cases
}

#[tokio::test]
async fn every_hostile_request_gets_its_documented_4xx_and_records_nothing() {
    let fixture = fixture("cases").await;
    let cases = cases();
    assert!(
        cases.len() >= 45,
        "the suite shrank to {} cases",
        cases.len()
    );
    for (name, request, status, kind) in cases {
        let response = fixture
            .app
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        assert_eq!(
            parts.status,
            status,
            "{name}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            parts.headers["content-type"], "application/problem+json",
            "{name}"
        );
        assert_eq!(problem_kind(&body), kind, "{name}");
        assert!(
            !String::from_utf8_lossy(&body).contains(SECRET),
            "{name}: the secret leaked"
        );
    }
    assert_eq!(
        fixture.runs.load(Ordering::SeqCst),
        0,
        "a handler ran for a hostile request"
    );
    assert!(fixture.store.is_empty(), "a rejected request left a claim");
    let recorded = fixture
        .inbox
        .store()
        .list(ListFilter::new(100))
        .await
        .unwrap();
    assert!(
        recorded.is_empty(),
        "a rejected request was recorded in the inbox: {recorded:?}"
    );
}

#[tokio::test]
async fn deep_nesting_in_an_ignored_field_is_accepted_without_exhausting_the_stack() {
    let fixture = fixture("deep").await;
    let body = [&b"{\"x\":"[..], &deep(100_000), b",\"id\":\"evt_deep\"}"].concat();
    let response = fixture.app.clone().oneshot(stripe(&body)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 1);
}

/// Sends raw bytes and returns the answer's status code (0 if none).
async fn raw(address: std::net::SocketAddr, request: &[u8]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn requests_hyper_refuses_on_the_wire_are_4xx_and_the_server_keeps_serving() {
    let fixture = fixture("wire").await;
    let address = serve(fixture.app.clone()).await;
    let headers: String = generic(b"{}")
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-"))
        .map(|(name, value)| format!("{name}: {}\r\n", value.to_str().unwrap()))
        .collect();
    let head = "POST /generic HTTP/1.1\r\nhost: x\r\n";
    let cases = [
        (
            "a control byte in a header",
            format!("{head}{headers}x-extra: a\x01b\r\ncontent-length: 2\r\n\r\n{{}}"),
        ),
        (
            "conflicting Content-Length headers",
            format!("{head}{headers}content-length: 2\r\ncontent-length: 3\r\n\r\n{{}}"),
        ),
        (
            "a 1 MiB header value",
            format!(
                "{head}x-big: {}\r\ncontent-length: 2\r\n\r\n{{}}",
                "a".repeat(1 << 20)
            ),
        ),
        (
            "200 headers",
            format!(
                "{head}{}content-length: 2\r\n\r\n{{}}",
                (0..200)
                    .map(|i| format!("x-h{i}: v\r\n"))
                    .collect::<String>()
            ),
        ),
    ];
    for (name, bytes) in cases {
        let status = raw(address, bytes.as_bytes()).await;
        assert!((400..500).contains(&status), "{name}: answered {status}");
    }
    let after = generic(b"{}").map(|_| http_body_util::Full::new(Bytes::from_static(b"{}")));
    let (status, _) = support::http_send(address, after).await;
    assert_eq!(status, StatusCode::OK, "the server still serves");
    assert_eq!(fixture.runs.load(Ordering::SeqCst), 1);
}
