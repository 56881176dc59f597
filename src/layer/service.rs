use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, header::CONTENT_LENGTH};
use http_body::Body;
use http_body_util::Full;
use tower_service::Service;

use super::body::{ReadBody, ResponseBody};
use super::future::ResponseFuture;
use super::{Config, WebhookLayer};
use crate::rejection::Rejection;

/// The service [`WebhookLayer`] produces; see the [module docs](super).
#[derive(Clone, Debug)]
pub struct WebhookService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> WebhookService<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// Wraps `inner` with the settings of `layer`.
    pub fn with_layer(inner: S, layer: &WebhookLayer) -> Self {
        Self::new(inner, layer.config.clone())
    }

    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// A mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for WebhookService<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone,
    ReqBody: Body,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        let (parts, body) = request.into_parts();
        let content_length = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if let Some(length) = content_length
            && length > config.body_limit as u64
        {
            let rejection = Rejection::PayloadTooLarge {
                limit: config.body_limit,
            };
            return ResponseFuture::rejected(self.config.clone(), rejection, None);
        }
        // The service that was polled ready is the one that gets called; see
        // https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let read = ReadBody::new(
            body,
            config.body_limit,
            // Checked against the limit above, so it fits in usize.
            content_length.map(|length| length as usize),
            config.read_timeout,
        );
        ResponseFuture::reading(self.config.clone(), read, parts, inner)
    }
}
