//! The admission ticket: the key, where its id came from, and the signature
//! record that guards it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::{Namespace, RouteTag, SignatureRecord};
use crate::idempotency::SignatureClaim;
use crate::rejection::Rejection;
use crate::verify::{EventId, VerifiedWebhook, VerifyError, is_valid_event_id};

/// Chooses the event id of a verified request (the part of the key after the
/// namespace) instead of the verifier's. Set it with
/// [`WebhookLayer::key_extractor`](crate::WebhookLayer::key_extractor); every
/// sink then uses it.
///
/// An id chosen this way counts as unsigned: the replay guard records the
/// signature with it. Closures `Fn(&VerifiedWebhook, &HeaderMap) ->
/// Option<String>` implement the trait. An id that is not 1 to 255 printable
/// ASCII characters is refused with 400.
pub trait KeyExtractor: Send + Sync + 'static {
    /// Returns the id, or `None` if the request has none (answered 500: a
    /// configuration error, since the verifier accepted the request).
    fn extract(&self, webhook: &VerifiedWebhook, headers: &HeaderMap) -> Option<String>;
}

impl<F> KeyExtractor for F
where
    F: Fn(&VerifiedWebhook, &HeaderMap) -> Option<String> + Send + Sync + 'static,
{
    fn extract(&self, webhook: &VerifiedWebhook, headers: &HeaderMap) -> Option<String> {
        self(webhook, headers)
    }
}

/// Where an event id came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdOrigin {
    /// Covered by the signature.
    Signed,
    /// Beside the signature: a header, or a key extractor's choice.
    Unsigned,
    /// A digest of the body: the request carried no id.
    Derived,
}

/// How a route admits its events: set on the `WebhookLayer`.
#[derive(Clone)]
pub(crate) struct TicketConfig {
    pub(crate) namespace: Option<Namespace>,
    pub(crate) key: Option<Arc<dyn KeyExtractor>>,
    pub(crate) replay_window: Duration,
    pub(crate) route: Arc<RouteTag>,
}

impl fmt::Debug for TicketConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketConfig")
            .field("namespace", &self.namespace)
            .field("custom_key", &self.key.is_some())
            .field("replay_window", &self.replay_window)
            .finish_non_exhaustive()
    }
}

/// What a sink needs to admit one verified event, made by the
/// `WebhookLayer` right after verification and put in the request's
/// extensions.
#[derive(Clone, Debug)]
pub(crate) struct Ticket {
    pub(crate) namespace: Namespace,
    /// Inline when short: a clone costs no allocation.
    pub(crate) event_id: EventId,
    /// For unsigned and derived ids: the signature to admit with the event.
    pub(crate) signature: Option<SignatureRecord>,
    pub(crate) route: Arc<RouteTag>,
}

impl TicketConfig {
    pub(crate) fn new(replay_window: Duration) -> Self {
        Self {
            namespace: None,
            key: None,
            replay_window,
            route: RouteTag::new(),
        }
    }

    /// The ticket of a verified request; `webhook` gets the id and namespace
    /// the ticket was issued under, so handlers see the same.
    pub(crate) fn issue(
        &self,
        webhook: &mut VerifiedWebhook,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Ticket, Rejection> {
        let mut namespace = match &self.namespace {
            Some(namespace) => namespace.clone(),
            None => Namespace::new(webhook.provider()).map_err(|_| Rejection::Misconfigured {
                reason: "the provider name is not a valid namespace; set WebhookLayer::namespace",
            })?,
        };
        if let Some(tenant) = webhook.tenant() {
            // Each tenant's ids apart from every other's.
            namespace = Namespace::new(format!("{namespace}.{tenant}")).map_err(|_| {
                Rejection::Verify(VerifyError::BadRequest(
                    "the route's namespace and the tenant id are longer than a namespace may be"
                        .into(),
                ))
            })?;
        }
        let (event_id, origin) = match &self.key {
            Some(extractor) => {
                let id = extractor
                    .extract(webhook, headers)
                    .ok_or(Rejection::Misconfigured {
                        reason: "the key extractor gives no event id for this request",
                    })?;
                if !is_valid_event_id(&id) {
                    return Err(Rejection::Verify(VerifyError::InvalidEventId {
                        location: "the key extractor's id".into(),
                    }));
                }
                let id = EventId::from(id);
                webhook.set_event_id(id.clone(), false);
                (id, IdOrigin::Unsigned)
            }
            None => match webhook.event_id() {
                Some(id) if webhook.event_id_signed() => (EventId::new(id), IdOrigin::Signed),
                Some(id) if webhook.event_id_derived() => (EventId::new(id), IdOrigin::Derived),
                Some(id) => (EventId::new(id), IdOrigin::Unsigned),
                None => {
                    let id = EventId::from(content_id(body));
                    webhook.set_derived_event_id(id.clone());
                    (id, IdOrigin::Derived)
                }
            },
        };
        let signature = (origin != IdOrigin::Signed).then(|| SignatureRecord {
            signature: if webhook.signature().is_empty() {
                // The verifier kept no signature: the body stands in for it.
                Bytes::copy_from_slice(&Sha256::digest(body))
            } else {
                Bytes::copy_from_slice(webhook.signature())
            },
            keep: webhook.timestamp().map(|_| self.replay_window),
        });
        webhook.set_namespace(namespace.clone());
        Ok(Ticket {
            namespace,
            event_id,
            signature,
            route: self.route.clone(),
        })
    }
}

impl Ticket {
    /// `namespace:event-id`, the key of idempotency stores (allocated at its
    /// exact size, without the formatting machinery).
    pub(crate) fn key(&self) -> String {
        let (namespace, id) = (self.namespace.as_str(), self.event_id.as_str());
        let mut key = String::with_capacity(namespace.len() + 1 + id.len());
        key.push_str(namespace);
        key.push(':');
        key.push_str(id);
        key
    }

    /// The replay guard's half of [`IdempotencyStore::admit`]: the record
    /// under `signature_key` (from [`signature_key`](Self::signature_key)),
    /// held by this event's id for the replay window, or for `event_lifetime`
    /// (the completed key's retention and lease) when the scheme signs no
    /// timestamp and the request verifies for ever.
    ///
    /// [`IdempotencyStore::admit`]: crate::idempotency::IdempotencyStore::admit
    pub(crate) fn signature_claim<'a>(
        &'a self,
        signature_key: Option<&'a str>,
        event_lifetime: Duration,
    ) -> Option<SignatureClaim<'a>> {
        let record = self.signature.as_ref()?;
        Some(SignatureClaim {
            key: signature_key?,
            event_id: self.event_id.as_str(),
            keep: record.keep.unwrap_or(event_lifetime),
        })
    }

    /// `namespace#sig:<hex>`, the key of the signature record in an
    /// idempotency store.
    pub(crate) fn signature_key(&self) -> Option<String> {
        let record = self.signature.as_ref()?;
        let namespace = self.namespace.as_str();
        // At most 64 bytes are recorded: 128 digits, written on the stack.
        let signature = &record.signature[..record.signature.len().min(64)];
        let mut digits = [0u8; 128];
        let digits = &mut digits[..2 * signature.len()];
        hex::encode_to_slice(signature, digits).ok()?;
        let mut key = String::with_capacity(namespace.len() + 5 + digits.len());
        key.push_str(namespace);
        key.push_str("#sig:");
        key.push_str(std::str::from_utf8(digits).ok()?);
        Some(key)
    }
}

/// The id of an event whose scheme (or request) carries none: the first 128
/// bits of the SHA-256 of the verified body, as `sha256:<32 hex digits>`. A
/// sender's retry resends the same bytes, so it gets the same id.
fn content_id(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("sha256:{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_written_as_before() {
        let mut ticket = Ticket {
            namespace: Namespace::from_static("generic"),
            event_id: EventId::new("evt_1"),
            signature: Some(SignatureRecord {
                signature: Bytes::from_static(&[0x00, 0x0f, 0xa5, 0xff]),
                keep: None,
            }),
            route: RouteTag::new(),
        };
        assert_eq!(ticket.key(), "generic:evt_1");
        assert_eq!(
            ticket.signature_key().as_deref(),
            Some("generic#sig:000fa5ff")
        );
        let long = "x".repeat(200);
        ticket.event_id = EventId::new(&long);
        assert_eq!(ticket.key(), format!("generic:{long}"));
        ticket.signature = None;
        assert_eq!(ticket.signature_key(), None);
    }
}
