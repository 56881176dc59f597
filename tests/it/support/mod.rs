//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod processes;
pub mod sns;

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// The instant every fixed-clock test runs at.
pub const NOW: u64 = 1_700_000_000;

/// A request body fed from a channel: chunks arrive when the test sends them,
/// and an `Err` makes the stream fail mid-way.
pub struct ChannelBody {
    receiver: mpsc::UnboundedReceiver<Result<Bytes, io::Error>>,
}

impl ChannelBody {
    pub fn new() -> (mpsc::UnboundedSender<Result<Bytes, io::Error>>, Self) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (sender, Self { receiver })
    }

    /// A body that yields `chunks` and ends.
    pub fn chunks(chunks: impl IntoIterator<Item = Result<Bytes, io::Error>>) -> Self {
        let (sender, body) = Self::new();
        for chunk in chunks {
            sender.send(chunk).unwrap();
        }
        body
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.receiver
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }
}

/// A body that records whether anyone read it.
pub struct WatchedBody {
    pub polled: Arc<AtomicBool>,
    chunks: VecDeque<Bytes>,
}

impl WatchedBody {
    pub fn new(chunks: impl IntoIterator<Item = Bytes>) -> (Arc<AtomicBool>, Self) {
        let polled = Arc::new(AtomicBool::new(false));
        (
            polled.clone(),
            Self {
                polled,
                chunks: chunks.into_iter().collect(),
            },
        )
    }
}

impl Body for WatchedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.polled.store(true, Ordering::SeqCst);
        Poll::Ready(self.chunks.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Parses a problem document and returns its `type` without the URN prefix.
pub fn problem_kind(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).expect("problem document is JSON");
    value["type"]
        .as_str()
        .expect("problem document has a type")
        .trim_start_matches("urn:tower-webhooks:problem:")
        .to_owned()
}

/// Sends `request` over a fresh HTTP/1 connection to `address` and returns
/// the status and body.
pub async fn http_send(
    address: std::net::SocketAddr,
    request: http::Request<http_body_util::Full<Bytes>>,
) -> (http::StatusCode, Bytes) {
    try_http_send(address, request)
        .await
        .expect("request failed")
}

/// Like [`http_send`], but a failed exchange (the server closed the
/// connection, say) is an error instead of a panic.
pub async fn try_http_send(
    address: std::net::SocketAddr,
    request: http::Request<http_body_util::Full<Bytes>>,
) -> Result<(http::StatusCode, Bytes), Box<dyn std::error::Error + Send + Sync>> {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Serves an axum router on an ephemeral loopback port.
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}
