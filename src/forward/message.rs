//! The message a publisher sends, and where it goes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// The names of the headers every publisher sets (as AMQP headers in
/// RabbitMQ, as fields beside `body` in Redis Streams).
pub mod header {
    /// The sender's event id.
    pub const EVENT_ID: &str = "Webhook-Event-Id";
    /// The provider whose signature was verified (`stripe`, `github`, ...).
    pub const PROVIDER: &str = "Webhook-Provider";
    /// The route's namespace (the provider's name unless the route set its
    /// own).
    pub const NAMESPACE: &str = "Webhook-Namespace";
    /// When the event was received: milliseconds since the Unix epoch, in
    /// decimal.
    pub const RECEIVED_AT: &str = "Webhook-Received-At";
    /// `true` when the signature was verified (always, for messages this
    /// crate builds).
    pub const SIGNATURE_VERIFIED: &str = "Webhook-Signature-Verified";
    /// The request's content type, when it had one.
    pub const CONTENT_TYPE: &str = "Content-Type";
    /// The W3C trace context's `traceparent`, when the request had one.
    pub const TRACEPARENT: &str = "traceparent";
    /// The W3C trace context's `tracestate`, when the request had one.
    pub const TRACESTATE: &str = "tracestate";
}

/// One verified event, as published.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The route's namespace.
    pub namespace: String,
    /// The sender's event id.
    pub event_id: String,
    /// The provider whose signature was verified.
    pub provider: String,
    /// When the event was received.
    pub received_at: SystemTime,
    /// Whether the signature was verified.
    pub signature_verified: bool,
    /// The request's content type.
    pub content_type: Option<String>,
    /// The request's `traceparent`.
    pub traceparent: Option<String>,
    /// The request's `tracestate`.
    pub tracestate: Option<String>,
    /// The verified body bytes, unchanged.
    pub body: Bytes,
}

impl Message {
    /// A message for a verified event received now, its provider taken to
    /// be its namespace.
    pub fn verified(
        namespace: impl Into<String>,
        event_id: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> Self {
        let namespace = namespace.into();
        Self {
            provider: namespace.clone(),
            namespace,
            event_id: event_id.into(),
            received_at: SystemTime::now(),
            signature_verified: true,
            content_type: None,
            traceparent: None,
            tracestate: None,
            body: body.into(),
        }
    }

    /// Sets the provider.
    #[must_use]
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = provider.into();
        self
    }

    /// Sets when the event was received.
    #[must_use]
    pub fn with_received_at(mut self, received_at: SystemTime) -> Self {
        self.received_at = received_at;
        self
    }

    /// Sets the content type.
    #[must_use]
    pub fn with_content_type(mut self, content_type: Option<String>) -> Self {
        self.content_type = content_type;
        self
    }

    /// Sets the W3C trace context.
    #[must_use]
    pub fn with_trace_context(
        mut self,
        traceparent: Option<String>,
        tracestate: Option<String>,
    ) -> Self {
        self.traceparent = traceparent;
        self.tracestate = tracestate;
        self
    }

    /// `namespace:event-id`: the id brokers and consumers dedupe by
    /// (JetStream's `Nats-Msg-Id`, RabbitMQ's `message_id`).
    pub fn message_id(&self) -> String {
        format!("{}:{}", self.namespace, self.event_id)
    }

    /// [`received_at`](Self::received_at) in milliseconds since the Unix
    /// epoch (0 before it).
    pub fn received_at_millis(&self) -> u64 {
        self.received_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
            })
    }

    /// The headers to publish with the body (see [`header`]): always the
    /// event id, provider, namespace, reception time and signature marker;
    /// the content type and trace context when present.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (header::EVENT_ID, self.event_id.clone()),
            (header::PROVIDER, self.provider.clone()),
            (header::NAMESPACE, self.namespace.clone()),
            (header::RECEIVED_AT, self.received_at_millis().to_string()),
            (
                header::SIGNATURE_VERIFIED,
                self.signature_verified.to_string(),
            ),
        ];
        for (name, value) in [
            (header::CONTENT_TYPE, &self.content_type),
            (header::TRACEPARENT, &self.traceparent),
            (header::TRACESTATE, &self.tracestate),
        ] {
            if let Some(value) = value {
                headers.push((name, value.clone()));
            }
        }
        headers
    }
}

/// Where each namespace's messages go: the JetStream subject, the RabbitMQ
/// routing key or the Redis stream key.
///
/// By default `<prefix>.<namespace>`, with the prefix `webhooks`; a
/// namespace can be sent anywhere else with [`route`](Self::route).
///
/// ```
/// use tower_webhooks::forward::Destinations;
///
/// let destinations = Destinations::new("hooks").route("stripe", "payments.stripe");
/// assert_eq!(destinations.resolve("github"), "hooks.github");
/// assert_eq!(destinations.resolve("stripe"), "payments.stripe");
/// assert_eq!(Destinations::default().resolve("github"), "webhooks.github");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destinations {
    prefix: String,
    routes: HashMap<String, String>,
}

impl Default for Destinations {
    fn default() -> Self {
        Self::new(Self::DEFAULT_PREFIX)
    }
}

impl Destinations {
    /// The default prefix: `webhooks`.
    pub const DEFAULT_PREFIX: &'static str = "webhooks";

    /// `<prefix>.<namespace>` for every namespace.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            routes: HashMap::new(),
        }
    }

    /// Sends `namespace`'s messages to `destination` instead.
    #[must_use]
    pub fn route(mut self, namespace: impl Into<String>, destination: impl Into<String>) -> Self {
        self.routes.insert(namespace.into(), destination.into());
        self
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where `namespace`'s messages go.
    pub fn resolve(&self, namespace: &str) -> Cow<'_, str> {
        match self.routes.get(namespace) {
            Some(destination) => Cow::Borrowed(destination),
            None => Cow::Owned(format!("{}.{namespace}", self.prefix)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_the_event_and_only_present_options() {
        let message = Message::verified("github", "d-1", &b"{}"[..])
            .with_provider("github")
            .with_received_at(UNIX_EPOCH + std::time::Duration::from_millis(1_500))
            .with_trace_context(Some("00-abc-def-01".to_owned()), None);
        assert_eq!(message.message_id(), "github:d-1");
        let headers = message.headers();
        assert!(headers.contains(&(header::RECEIVED_AT, "1500".to_owned())));
        assert!(headers.contains(&(header::SIGNATURE_VERIFIED, "true".to_owned())));
        assert!(headers.contains(&(header::TRACEPARENT, "00-abc-def-01".to_owned())));
        assert!(!headers.iter().any(|(name, _)| *name == header::TRACESTATE));
        assert!(
            !headers
                .iter()
                .any(|(name, _)| *name == header::CONTENT_TYPE)
        );
    }
}
