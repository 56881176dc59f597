//! Admission: the one step between verification and anything recorded or
//! run.
//!
//! Every sink (the inline [`IdempotencyLayer`](crate::layer::IdempotencyLayer),
//! the [inbox](crate::inbox), and any later one) admits an event through the
//! same rules, so the guarantees do not depend on the mode:
//!
//! - **The key** is `namespace : event id`. The [`Namespace`] is the route's
//!   (set once, on the [`WebhookLayer`](crate::WebhookLayer); by default the
//!   provider's name), validated when it is made. A store refuses a second
//!   route that presents the same namespace while the first is alive (500,
//!   logged), so two senders can never share ids by accident: give each
//!   route its own with [`WebhookLayer::namespace`](crate::WebhookLayer::namespace).
//!   (Clones of one `WebhookLayer` are one route; two layers built
//!   separately are two routes, even with the same verifier.)
//! - **The replay guard.** An event id is *signed* (the signature covers it:
//!   Stripe's body `id`, Standard Webhooks' `webhook-id`), *unsigned* (a
//!   header beside the signature: the reference scheme's `X-Event-Id`,
//!   GitHub's `X-GitHub-Delivery`, Shopify's, Twilio's and Linear's id
//!   headers, any id chosen by a [`KeyExtractor`]), or *derived* (a digest of
//!   the body, when the request carries no id). For unsigned and derived ids,
//!   the signature itself is admitted too: only if no other event id in the
//!   namespace holds it. Same signature, other id: 401 `replayed-signature`;
//!   same signature, same id: an ordinary duplicate. The signature is
//!   recorded atomically with the inline claim, or in the inbox insert's
//!   transaction, so no crash separates them. It is kept for the replay
//!   window when the scheme signs a timestamp, and as long as the event's own
//!   record when it does not (GitHub, Shopify, Twilio): such a request
//!   verifies for ever.
//!
//! ```
//! use tower_webhooks::admission::Namespace;
//!
//! assert!(Namespace::new("partner-a").is_ok());
//! assert!(Namespace::new("partner a").is_err()); // a Result, never a panic
//! const STRIPE_EU: Namespace = Namespace::from_static("stripe-eu");
//! assert_eq!(STRIPE_EU.as_str(), "stripe-eu");
//! ```

mod key;
mod namespace;
mod routes;

pub use self::key::KeyExtractor;
pub(crate) use self::key::{Ticket, TicketConfig};
pub use self::namespace::{Namespace, NamespaceError};
pub(crate) use self::routes::{RouteTag, Routes};

use std::time::Duration;

use bytes::Bytes;

/// The default replay window: how long an accepted signature is remembered
/// when the scheme signs a timestamp (10 minutes: twice the usual 300 s
/// tolerance, since a timestamp may be that far in the future too).
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(600);

/// A signature to remember for the replay guard, stored with an event whose
/// id the signature does not cover.
///
/// A store admits the event only if no *other* event id of the namespace
/// holds a live record of the same signature; otherwise it writes nothing and
/// reports a replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureRecord {
    /// The signature as the sender sent it (decoded), at most 64 bytes; or,
    /// when the verifier recorded none, the SHA-256 of the verified body.
    pub signature: Bytes,
    /// How long the record lives: `Some(window)` for schemes with a signed
    /// timestamp (a replay after the window fails verification anyway),
    /// `None` for as long as the event's own record lives.
    pub keep: Option<Duration>,
}
