//! Receiving the request body within limits, and the response body type.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::rejection::Rejection;

pin_project! {
    /// Buffers a request body into one contiguous buffer, refusing more than
    /// `limit` bytes and giving up when the deadline passes.
    ///
    /// A body that arrives as one chunk is kept as it is (no copy). Otherwise
    /// the chunks are appended to one buffer, sized from `Content-Length` when
    /// the sender gave it (already checked against the limit), so the body is
    /// copied once, into the buffer that is verified and forwarded.
    ///
    /// The timer is armed the first time the body is not ready: a body that
    /// has already arrived (most small ones, read with the head) costs no
    /// timer at all.
    pub(crate) struct ReadBody<B> {
        #[pin]
        body: B,
        #[pin]
        deadline: Option<Sleep>,
        timeout: Option<Duration>,
        limit: usize,
        content_length: Option<usize>,
        received: Received,
    }
}

enum Received {
    Nothing,
    One(Bytes),
    Many(BytesMut),
}

impl<B> ReadBody<B> {
    pub(crate) fn new(
        body: B,
        limit: usize,
        content_length: Option<usize>,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            body,
            deadline: None,
            timeout,
            limit,
            content_length,
            received: Received::Nothing,
        }
    }
}

impl<B: Body> Future for ReadBody<B> {
    type Output = Result<Bytes, Rejection>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let frame = match this.body.as_mut().poll_frame(cx) {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    let Some(timeout) = *this.timeout else {
                        return Poll::Pending;
                    };
                    if this.deadline.is_none() {
                        this.deadline.set(Some(tokio::time::sleep(timeout)));
                    }
                    if let Some(deadline) = this.deadline.as_mut().as_pin_mut() {
                        ready!(deadline.poll(cx));
                    }
                    return Poll::Ready(Err(Rejection::BodyTimeout { after: timeout }));
                }
            };
            let mut data = match frame {
                None => break,
                Some(Err(_)) => return Poll::Ready(Err(Rejection::BodyReadFailed)),
                // Trailers are not part of the signed content.
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            };
            let len = data.remaining();
            if len == 0 {
                continue;
            }
            let limit = *this.limit;
            *this.received = match std::mem::replace(this.received, Received::Nothing) {
                Received::Nothing if len <= limit => Received::One(data.copy_to_bytes(len)),
                Received::One(first) if first.len() + len <= limit => {
                    let total = first.len() + len;
                    let capacity = this.content_length.unwrap_or(total).clamp(total, limit);
                    let mut buffer = BytesMut::with_capacity(capacity);
                    buffer.extend_from_slice(&first);
                    put(&mut buffer, data, limit);
                    Received::Many(buffer)
                }
                Received::Many(mut buffer) if buffer.len() + len <= limit => {
                    put(&mut buffer, data, limit);
                    Received::Many(buffer)
                }
                _ => return Poll::Ready(Err(Rejection::PayloadTooLarge { limit })),
            };
        }
        Poll::Ready(Ok(
            match std::mem::replace(this.received, Received::Nothing) {
                Received::Nothing => Bytes::new(),
                Received::One(bytes) => bytes,
                Received::Many(buffer) => buffer.freeze(),
            },
        ))
    }
}

/// Appends `data`, growing the buffer geometrically but never past `limit`.
fn put(buffer: &mut BytesMut, mut data: impl Buf, limit: usize) {
    let needed = buffer.len() + data.remaining();
    if needed > buffer.capacity() {
        let target = needed.max(buffer.capacity().saturating_mul(2)).min(limit);
        buffer.reserve(target - buffer.len());
    }
    while data.has_remaining() {
        let chunk = data.chunk();
        let n = chunk.len();
        buffer.extend_from_slice(chunk);
        data.advance(n);
    }
}

pin_project! {
    /// The response body of the crate's services: the inner service's body,
    /// or a rejection rendered by the middleware.
    pub struct ResponseBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<B> {
        Forwarded { #[pin] body: B },
        Rejection { body: Full<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn forwarded(body: B) -> Self {
        Self {
            inner: Inner::Forwarded { body },
        }
    }

    pub(crate) fn rejection(body: Bytes) -> Self {
        Self {
            inner: Inner::Rejection {
                body: Full::new(body),
            },
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.inner {
            Inner::Forwarded { .. } => "ResponseBody::Forwarded",
            Inner::Rejection { .. } => "ResponseBody::Rejection",
        })
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().inner.project() {
            InnerProj::Forwarded { body } => body.poll_frame(cx),
            InnerProj::Rejection { body } => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Forwarded { body } => body.is_end_stream(),
            Inner::Rejection { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Forwarded { body } => body.size_hint(),
            Inner::Rejection { body } => body.size_hint(),
        }
    }
}
