//! Receive webhooks safely with [tower](https://docs.rs/tower): verify signatures over the exact raw
//! bytes, buffer the body within a limit, and forward the verified bytes.
//!
//! # Quick start
//!
//! Wrap a webhook route with [`WebhookLayer`] and a verifier. The handler runs
//! only for requests whose signature matches, and receives exactly the bytes
//! that were verified.
//!
//! ```
//! use axum::{Extension, Router, routing::post};
//! use tower::ServiceExt;
//! use tower_webhooks::{HmacVerifier, VerifiedWebhook, WebhookLayer};
//!
//! async fn handle(Extension(webhook): Extension<VerifiedWebhook>, body: axum::body::Bytes) -> &'static str {
//!     // `body` is the verified payload; `webhook` says what was verified.
//!     let _ = (webhook.event_id(), body);
//!     "{\"ok\":true}"
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/webhooks/provider", post(handle))
//!     .route_layer(WebhookLayer::new(HmacVerifier::generic("dev_secret_change_me").unwrap()));
//!
//! // An unsigned request never reaches the handler.
//! let request = http::Request::post("/webhooks/provider").body(axum::body::Body::from("{}")).unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 400); // missing X-Webhook-Signature
//! # }
//! ```
//!
//! # What is where
//!
//! - [`verify`]: the [`SignatureVerifier`] trait, the configurable
//!   [`HmacVerifier`] (the crate's reference scheme and most HMAC schemes), and
//!   the helpers custom schemes are built from.
//! - [`providers`]: presets for thirty senders (Stripe, GitHub, Shopify,
//!   Slack, Standard Webhooks and Svix, Paddle, Discord, Twilio, Square,
//!   Linear, GitLab, Zoom, HubSpot, Twitch, Mailgun, Meta, ...).
//! - [`admission`]: the one step between verification and every sink: the
//!   namespace, the event id, and the replay guard for unsigned ids.
//! - [`keys`]: keys chosen per request (per-tenant secrets, fetched keys),
//!   cached.
//! - [`handshake`]: endpoint handshakes (Slack `url_verification`, Discord
//!   `PING`, ...) answered by the layer.
//! - [`layer`]: the tower middleware: [`WebhookLayer`] (verify) and
//!   [`IdempotencyLayer`](layer::IdempotencyLayer) (each event handled once,
//!   inside the request).
//! - [`idempotency`]: the [`IdempotencyStore`](idempotency::IdempotencyStore)
//!   trait and its stores (memory; SQLite, Redis, PostgreSQL behind features).
//! - [`inbox`]: acknowledge at once and process in the background from a
//!   durable record, with retries, dead letters and an audit trail.
//! - `forward` (features `jetstream`, `rabbitmq`, `redis-stream`): verified
//!   events to a message broker, from the inbox or directly, confirmed
//!   before they are acknowledged.
//! - [`rejection`]: every answer the middleware gives itself, and how to
//!   render it your way.
//! - [`secret`] and [`clock`]: redacted secrets with rotation, and injectable time.
//! - [`metrics`]: what is counted and timed (feature `metrics`).
//! - `admin` (feature `admin`): the admin service, a JSON API and a
//!   dashboard over an inbox, behind an authorization hook.
//! - `extract` (feature `axum`): the `Webhook<T>` and `VerifiedWebhook` extractors.
//! - `testing` (feature `test-util`): signers for every scheme, for your own tests.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `ed25519` (default) | Discord and Standard Webhooks `v1a` signatures |
//! | `axum` | the `extract` module: `Webhook<T>` and the `VerifiedWebhook` extractor |
//! | `admin` | the `admin` module: JSON API and dashboard over an inbox, as an axum `Router` |
//! | `metrics` | counters and histograms through the `metrics` facade; see [`metrics`] |
//! | `sqlite` | `SqliteStore` and `SqliteInbox`, on an SQLite file |
//! | `redis` | `RedisStore` |
//! | `postgres` | `PostgresStore` and `PostgresInbox` |
//! | `postgres-tls` | `backend::PgTls`: the PostgreSQL backends over TLS (rustls) |
//! | `bundled-sqlite` (default) | with `sqlite`, SQLite compiled in; off, the system's `libsqlite3` |
//! | `test-util` | the `testing` module and the store conformance suites |
//! | `jetstream` | `forward` with `JetStreamPublisher`: verified events to NATS JetStream |
//! | `rabbitmq` | `forward` with `RabbitMqPublisher`: verified events to RabbitMQ |
//! | `redis-stream` | `forward` with `RedisStreamPublisher`: verified events to Redis Streams |
//! | `sendgrid` | `providers::SendGrid` (ECDSA P-256) |
//! | `sns` | `providers::Sns` (AWS SNS, RSA over a fetched certificate) |
//! | `plaid` | `providers::Plaid` (ES256 JWT) |
//! | `pubsub` | `providers::PubSub` (Google Pub/Sub push, RS256 OIDC token) |
//! | `paypal` | `providers::PayPal` (RSA over a fetched certificate) |
//! | `https-fetcher` | `keys::HttpsFetcher`: a `keys::Fetcher` on hyper and rustls (https only, no redirects, bounded) |

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms,
    clippy::all
)]

#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
pub mod admission;
pub mod backend;
pub mod clock;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
#[cfg(any(feature = "jetstream", feature = "rabbitmq", feature = "redis-stream"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "jetstream", feature = "rabbitmq", feature = "redis-stream")))
)]
pub mod forward;
pub mod handshake;
pub mod idempotency;
pub mod inbox;
pub mod keys;
pub mod layer;
pub mod metrics;
pub mod providers;
pub mod rejection;
pub mod secret;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
pub mod verify;

/// The README's examples, compiled as doctests.
#[cfg(all(doctest, feature = "axum", feature = "sqlite"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use crate::layer::WebhookLayer;
pub use crate::rejection::Rejection;
pub use crate::secret::{Secret, SecretSet};
pub use crate::verify::{HmacVerifier, SignatureVerifier, VerifiedWebhook, VerifyError};
