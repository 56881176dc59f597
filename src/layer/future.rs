use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_service::Service;
use tracing::Instrument;
use tracing::instrument::Instrumented;

use super::body::{ReadBody, ResponseBody};
use super::{Config, Verifier, reject};
use crate::keys::ResolveFuture;
use crate::metrics;
use crate::rejection::Rejection;
use crate::verify::{VerifiedWebhook, VerifyError};

pin_project! {
    /// The response future of [`WebhookService`](super::WebhookService).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<Full<Bytes>>>,
    {
        #[pin]
        state: State<S, B>,
        config: Arc<Config>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<Full<Bytes>>>,
    {
        Reading {
            #[pin]
            read: ReadBody<B>,
            parts: Option<Parts>,
            inner: Option<S>,
        },
        Resolving {
            future: ResolveFuture,
            parts: Option<Parts>,
            body: Bytes,
            inner: Option<S>,
        },
        Calling {
            #[pin]
            future: Instrumented<S::Future>,
        },
        Rejected {
            rejection: Option<Rejection>,
            provider: Option<&'static str>,
            event_id: Option<String>,
        },
        Answered {
            response: Option<Response<Bytes>>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<Full<Bytes>>>,
{
    pub(crate) fn reading(config: Arc<Config>, read: ReadBody<B>, parts: Parts, inner: S) -> Self {
        Self {
            state: State::Reading {
                read,
                parts: Some(parts),
                inner: Some(inner),
            },
            config,
        }
    }

    pub(crate) fn rejected(
        config: Arc<Config>,
        rejection: Rejection,
        event_id: Option<String>,
    ) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(rejection),
                provider: None,
                event_id,
            },
            config,
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
    B: Body,
    ResBody: Body<Data = Bytes>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Reading { read, parts, inner } => {
                    let result = ready!(read.poll(cx));
                    let (Some(parts), Some(inner)) = (parts.take(), inner.take()) else {
                        unreachable!("ResponseFuture polled after the body was read");
                    };
                    let handshake = result.as_ref().ok().and_then(|body| {
                        let handshake = this.config.handshake.as_ref()?;
                        handshake.before_verification(&parts, body)
                    });
                    let next = match (result, &this.config.verifier) {
                        (Err(rejection), _) => rejected(this.config, rejection),
                        _ if handshake.is_some() => match handshake {
                            Some(Ok(response)) => answered(this.config, response),
                            Some(Err(rejection)) => rejected(this.config, rejection),
                            None => unreachable!("checked above"),
                        },
                        (Ok(body), Verifier::Fixed(verifier)) => {
                            let timer = metrics::Timer::start();
                            let verified = verifier.verify(&parts, &body);
                            metrics::verified(verifier.provider(), timer);
                            proceed(this.config, verified, parts, body, inner)
                        }
                        (Ok(body), Verifier::Keyed(resolver)) => {
                            match resolver.resolve(&parts, &body) {
                                Ok(future) => State::Resolving {
                                    future,
                                    parts: Some(parts),
                                    body,
                                    inner: Some(inner),
                                },
                                Err(error) => rejected(this.config, Rejection::Verify(error)),
                            }
                        }
                    };
                    this.state.set(next);
                }
                StateProj::Resolving {
                    future,
                    parts,
                    body,
                    inner,
                } => {
                    let resolved = ready!(future.as_mut().poll(cx));
                    let (Some(parts), Some(inner)) = (parts.take(), inner.take()) else {
                        unreachable!("ResponseFuture polled after the key was resolved");
                    };
                    let body = std::mem::take(body);
                    let next = match resolved {
                        Ok(verify) => {
                            let timer = metrics::Timer::start();
                            let verified = verify(&parts, &body);
                            metrics::verified(this.config.verifier.provider(), timer);
                            proceed(this.config, verified, parts, body, inner)
                        }
                        Err(rejection) => rejected(this.config, rejection),
                    };
                    this.state.set(next);
                }
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::forwarded)));
                }
                StateProj::Answered { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Rejected {
                    rejection,
                    provider,
                    event_id,
                } => {
                    let rejection = rejection
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let provider = provider.unwrap_or_else(|| this.config.verifier.provider());
                    let _ = event_id;
                    metrics::rejected(provider, route_namespace(this.config), &rejection);
                    return Poll::Ready(Ok(reject(&this.config.responder, &rejection)));
                }
            }
        }
    }
}

fn rejected<S, B>(config: &Config, rejection: Rejection) -> State<S, B>
where
    S: Service<Request<Full<Bytes>>>,
{
    State::Rejected {
        rejection: Some(rejection),
        provider: Some(config.verifier.provider()),
        event_id: None,
    }
}

/// The route's namespace as configured, for labels before admission.
fn route_namespace(config: &Config) -> &str {
    config
        .admission
        .namespace
        .as_ref()
        .map_or(config.verifier.provider(), |namespace| namespace.as_str())
}

fn answered<S, B>(config: &Config, response: Response<Bytes>) -> State<S, B>
where
    S: Service<Request<Full<Bytes>>>,
{
    let provider = config.verifier.provider();
    tracing::info!(
        provider,
        status = response.status().as_u16(),
        "webhook handshake answered"
    );
    metrics::request(provider, route_namespace(config), "handshake");
    State::Answered {
        response: Some(response),
    }
}

/// After verification: answer a handshake, or admit (issue the ticket) and
/// call the inner service with the verified bytes.
fn proceed<S, B>(
    config: &Config,
    verified: Result<VerifiedWebhook, VerifyError>,
    mut parts: Parts,
    body: Bytes,
    mut inner: S,
) -> State<S, B>
where
    S: Service<Request<Full<Bytes>>>,
{
    if let (Ok(verified), Some(handshake)) = (&verified, &config.handshake)
        && let Some(response) = handshake.after_verification(&parts, &body, verified)
    {
        return answered(config, response);
    }
    let admitted = verified
        .map_err(Rejection::Verify)
        .and_then(|mut verified| {
            let ticket = config
                .admission
                .issue(&mut verified, &parts.headers, &body)?;
            Ok((verified, ticket))
        });
    match admitted {
        Ok((verified, ticket)) => {
            let span = tracing::info_span!(
                "webhook",
                provider = verified.provider(),
                namespace = %ticket.namespace,
                event_id = %ticket.event_id,
            );
            parts.extensions.insert(verified);
            parts.extensions.insert(ticket);
            let request = Request::from_parts(parts, Full::new(body));
            State::Calling {
                future: inner.call(request).instrument(span),
            }
        }
        Err(rejection) => rejected(config, rejection),
    }
}
