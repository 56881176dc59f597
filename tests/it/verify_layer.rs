//! The verify layer around a plain `service_fn`: every rejection path, the
//! body limit, and what is forwarded.

use crate::support;

use std::convert::Infallible;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use support::{ChannelBody, NOW, WatchedBody, problem_kind};
use tower::{ServiceBuilder, ServiceExt};
use tower_webhooks::clock::FixedClock;
use tower_webhooks::{HmacVerifier, SecretSet, VerifiedWebhook, WebhookLayer};

const SECRET: &str = "dev_secret_change_me";

/// Known answers, each computed independently with
/// `printf '<timestamp>.<body>' | openssl dgst -sha256 -hmac <secret>`.
const PING_SIG: &str = "72d66d7544a4f0a60bcd1ca23c6217d3451fa7fe42a01e5af0ce864282feeb6f"; // body {"type":"ping"}
const EMPTY_SIG: &str = "05771f6c2b37dd3e724989224fa94fac61a0eee557b4dc1d85842734f86b5447"; // empty body
const BINARY_SIG: &str = "f2d90addda1629d1ce7c83fa5e8bf2c1c2aac74a227675e96fdd5c9a2e9a8590"; // body \xff\xfe\x00\x01
const ROTATED_SIG: &str = "df8804d1d0b2240abfe5233056170bdaf6995b2cd30fabfb91b6229138c27dff"; // secret new_secret, body {"id":"evt_rot"}
const OTHER_SECRET_SIG: &str = "3b3bcf543c436ddbfe077eb34d98030a2bb9a923adf210e47fb98154e41914e6"; // secret other_secret, body {"type":"ping"}
const PING: &[u8] = br#"{"type":"ping"}"#;

fn verifier(secrets: impl Into<SecretSet>) -> HmacVerifier {
    HmacVerifier::builder(secrets)
        .clock(FixedClock::at_unix(NOW))
        .build()
        .unwrap()
}

/// Echoes the forwarded body, and the verified event id in a header.
async fn echo(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let webhook = request
        .extensions()
        .get::<VerifiedWebhook>()
        .cloned()
        .expect("VerifiedWebhook in extensions");
    let body = request.into_body().collect().await?.to_bytes();
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        "x-verified-id",
        webhook.event_id().unwrap_or("").parse().unwrap(),
    );
    response.headers_mut().insert(
        "x-secret-index",
        webhook.secret_index().to_string().parse().unwrap(),
    );
    Ok(response)
}

fn signed<B>(body: B, timestamp: &str, signature: &str) -> Request<B> {
    Request::post("/webhooks/provider")
        .header("x-webhook-timestamp", timestamp)
        .header("x-webhook-signature", signature)
        .header("x-event-id", "evt_1")
        .body(body)
        .unwrap()
}

async fn send<B>(layer: WebhookLayer, request: Request<B>) -> (StatusCode, http::HeaderMap, Bytes)
where
    B: Body + Send + 'static,
{
    let service = ServiceBuilder::new().layer(layer).service_fn(echo);
    let response = service.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}

async fn send_full(request: Request<Full<Bytes>>) -> (StatusCode, http::HeaderMap, Bytes) {
    send(WebhookLayer::new(verifier(SECRET)), request).await
}

fn full(bytes: &'static [u8]) -> Full<Bytes> {
    Full::new(Bytes::from_static(bytes))
}

#[tokio::test]
async fn known_answer_vectors_verify_and_forward_the_exact_bytes() {
    for (body, signature) in [
        (PING, PING_SIG),
        (&b""[..], EMPTY_SIG),
        (&b"\xff\xfe\x00\x01"[..], BINARY_SIG),
    ] {
        let (status, headers, forwarded) =
            send_full(signed(full(body), "1700000000", signature)).await;
        assert_eq!(status, StatusCode::OK, "vector {signature}");
        assert_eq!(
            forwarded, body,
            "the verified bytes are the forwarded bytes"
        );
        assert_eq!(headers["x-verified-id"], "evt_1");
    }
    // Upper-case hex is the same signature.
    let (status, ..) = send_full(signed(full(PING), "1700000000", &PING_SIG.to_uppercase())).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn rotation_matches_the_second_secret() {
    let layer = WebhookLayer::new(verifier(["old_secret", "new_secret"]));
    let (status, headers, _) = send(
        layer,
        signed(full(br#"{"id":"evt_rot"}"#), "1700000000", ROTATED_SIG),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-secret-index"], "1");
}

#[tokio::test]
async fn each_missing_header_is_a_400_naming_it() {
    for missing in ["x-webhook-timestamp", "x-webhook-signature", "x-event-id"] {
        let mut request = signed(full(PING), "1700000000", PING_SIG);
        request.headers_mut().remove(missing);
        let (status, headers, body) = send_full(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "without {missing}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem_kind(&body), "missing-header");
        assert!(String::from_utf8_lossy(&body).contains(missing));
    }
}

#[tokio::test]
async fn bad_timestamps_are_400_with_distinct_kinds() {
    let cases = [
        ("abc", "invalid-timestamp"),
        ("-1700000000", "invalid-timestamp"),
        ("170000000000000000000000000000", "invalid-timestamp"), // 30 digits
        ("1699999699", "timestamp-too-old"),                     // 301 s old
        ("1700000301", "timestamp-in-future"),                   // 301 s ahead
    ];
    for (timestamp, kind) in cases {
        let (status, _, body) = send_full(signed(full(PING), timestamp, PING_SIG)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "timestamp {timestamp}");
        assert_eq!(problem_kind(&body), kind, "timestamp {timestamp}");
    }
    // The edges of the window are inside it (the signature then fails, 401, not 400).
    for timestamp in ["1699999700", "1700000300"] {
        let (status, _, body) = send_full(signed(full(PING), timestamp, PING_SIG)).await;
        assert_eq!(
            (status, problem_kind(&body).as_str()),
            (StatusCode::UNAUTHORIZED, "signature-mismatch")
        );
    }
}

#[tokio::test]
async fn bad_signatures_are_rejected() {
    let not_hex = "zz".repeat(32);
    let short = &PING_SIG[..62];
    let cases = [
        (
            PING,
            not_hex.as_str(),
            StatusCode::BAD_REQUEST,
            "malformed-header",
        ),
        (PING, short, StatusCode::BAD_REQUEST, "malformed-header"),
        (
            &br#"{"type":"pong"}"#[..],
            PING_SIG,
            StatusCode::UNAUTHORIZED,
            "signature-mismatch",
        ), // another body
        (
            PING,
            OTHER_SECRET_SIG,
            StatusCode::UNAUTHORIZED,
            "signature-mismatch",
        ), // another secret
    ];
    for (body, signature, expected, kind) in cases {
        let (status, _, problem) = send_full(signed(full(body), "1700000000", signature)).await;
        assert_eq!(status, expected, "signature {signature}");
        assert_eq!(problem_kind(&problem), kind);
        let text = String::from_utf8_lossy(&problem);
        assert!(
            !text.contains(SECRET) && !text.contains(PING_SIG),
            "a problem document leaks: {text}"
        );
    }
}

#[tokio::test]
async fn duplicated_headers_are_refused() {
    let mut request = signed(full(PING), "1700000000", PING_SIG);
    request
        .headers_mut()
        .append("x-webhook-timestamp", "1700000001".parse().unwrap());
    let (status, _, body) = send_full(request).await;
    assert_eq!(
        (status, problem_kind(&body).as_str()),
        (StatusCode::BAD_REQUEST, "duplicate-header")
    );
}

#[tokio::test]
async fn content_length_over_the_limit_is_refused_before_reading() {
    let (polled, body) = WatchedBody::new([Bytes::from(vec![b'x'; 100])]);
    let mut request = signed(body, "1700000000", PING_SIG);
    request
        .headers_mut()
        .insert("content-length", "100".parse().unwrap());
    let (status, _, problem) =
        send(WebhookLayer::new(verifier(SECRET)).body_limit(64), request).await;
    assert_eq!(
        (status, problem_kind(&problem).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large")
    );
    assert!(
        !polled.load(Ordering::SeqCst),
        "the body was read although Content-Length exceeded the limit"
    );
}

#[tokio::test]
async fn a_body_without_content_length_is_cut_off_at_the_limit() {
    // One chunk over the limit.
    let body = ChannelBody::chunks([Ok(Bytes::from(vec![b'x'; 65]))]);
    let (status, ..) = send(
        WebhookLayer::new(verifier(SECRET)).body_limit(64),
        signed(body, "1700000000", PING_SIG),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Chunks that cross the limit part-way; the sender is still sending.
    let (sender, body) = ChannelBody::new();
    for _ in 0..5 {
        sender.send(Ok(Bytes::from(vec![b'x'; 20]))).unwrap();
    }
    let (status, ..) = send(
        WebhookLayer::new(verifier(SECRET)).body_limit(64),
        signed(body, "1700000000", PING_SIG),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    drop(sender);

    // Exactly at the limit is fine (and the signature then decides).
    let body = ChannelBody::chunks([
        Ok(Bytes::from_static(&PING[..5])),
        Ok(Bytes::from_static(&PING[5..])),
    ]);
    let (status, _, forwarded) = send(
        WebhookLayer::new(verifier(SECRET)).body_limit(PING.len()),
        signed(body, "1700000000", PING_SIG),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(forwarded, PING);
}

#[tokio::test]
async fn a_body_stream_that_fails_is_a_400() {
    let body = ChannelBody::chunks([
        Ok(Bytes::from_static(b"{\"ty")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ]);
    let (status, _, problem) = send(
        WebhookLayer::new(verifier(SECRET)),
        signed(body, "1700000000", PING_SIG),
    )
    .await;
    assert_eq!(
        (status, problem_kind(&problem).as_str()),
        (StatusCode::BAD_REQUEST, "body-read-failed")
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_that_trickles_past_the_read_timeout_is_a_408() {
    let (sender, body) = ChannelBody::new();
    let trickle = tokio::spawn(async move {
        for byte in PING {
            if sender.send(Ok(Bytes::copy_from_slice(&[*byte]))).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let layer = WebhookLayer::new(verifier(SECRET)).read_timeout(Some(Duration::from_secs(5)));
    let (status, _, problem) = send(layer, signed(body, "1700000000", PING_SIG)).await;
    assert_eq!(
        (status, problem_kind(&problem).as_str()),
        (StatusCode::REQUEST_TIMEOUT, "body-timeout")
    );
    trickle.abort();
}

#[tokio::test]
async fn rejections_can_be_rendered_by_the_user() {
    let layer = WebhookLayer::new(verifier(SECRET)).on_rejection(|rejection| {
        let mut response = Response::new(Bytes::from(format!("nope: {}", rejection.kind())));
        *response.status_mut() = StatusCode::FORBIDDEN;
        response
    });
    let (status, _, body) = send(layer, signed(full(PING), "1700000000", OTHER_SECRET_SIG)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "nope: signature-mismatch");
}
