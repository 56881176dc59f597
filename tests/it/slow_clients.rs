//! Slow clients: a body sent a byte at a time is cut off with 408 after the
//! read timeout, and many such clients do not starve other requests.
#![cfg(feature = "test-util")]

use crate::support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use http::StatusCode;
use http_body_util::Full;
use support::{http_send, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_webhooks::testing::{GenericSigner, Signer, unix_now};
use tower_webhooks::{HmacVerifier, WebhookLayer};

const SECRET: &str = "slow_secret";
const READ_TIMEOUT: Duration = Duration::from_millis(1_000);

/// Sends the head of a signed request, then its body one byte every 100 ms,
/// and returns the status the server answered with and when.
async fn trickle(address: SocketAddr) -> (u16, Duration) {
    let body = br#"{"type":"slow","padding":"................................................"}"#;
    let request = GenericSigner::new(SECRET).request("/hook", "evt_slow", unix_now(), body);
    let mut head = format!(
        "POST /hook HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in request.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        for byte in body {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut answer = vec![0u8; 512];
    let read = reader.read(&mut answer).await.unwrap_or(0);
    let elapsed = started.elapsed();
    sender.abort();
    let text = String::from_utf8_lossy(&answer[..read]);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_get_408_and_do_not_starve_other_requests() {
    let layer =
        WebhookLayer::new(HmacVerifier::generic(SECRET).unwrap()).read_timeout(Some(READ_TIMEOUT));
    let address =
        serve(Router::new().route("/hook", post(|| async { "ok" }).route_layer(layer))).await;

    let slow: Vec<_> = (0..200).map(|_| tokio::spawn(trickle(address))).collect();
    // While 200 slow clients hold connections, ordinary deliveries are served promptly.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signer = GenericSigner::new(SECRET);
    for i in 0..20 {
        let started = Instant::now();
        let body = format!(r#"{{"n":{i}}}"#);
        let request = signer
            .request(
                "/hook",
                &format!("evt_fast_{i}"),
                unix_now(),
                body.as_bytes(),
            )
            .map(Full::new);
        let (status, _) = http_send(address, request).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "a normal request waited {:?}",
            started.elapsed()
        );
    }
    for client in slow {
        let (status, elapsed) = client.await.unwrap();
        assert_eq!(status, 408, "a slow client was not cut off");
        assert!(
            elapsed >= READ_TIMEOUT && elapsed < READ_TIMEOUT + Duration::from_secs(2),
            "cut off after {elapsed:?}, the timeout is {READ_TIMEOUT:?}"
        );
    }
    // And the server still serves.
    let request = signer
        .request("/hook", "evt_after", unix_now(), b"{}")
        .map(Full::new);
    assert_eq!(http_send(address, request).await.0, StatusCode::OK);
}
