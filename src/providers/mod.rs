//! Verifiers for the providers people receive webhooks from, each exactly as
//! the provider signs.
//!
//! Every preset implements [`SignatureVerifier`], compares in constant time,
//! tries every signature a request carries against every configured secret
//! (pass several secrets while rotating), reads bodies as bytes (never required
//! to be UTF-8) and reads an event id from the body only after the body has
//! been verified.
//!
//! | preset | `provider()` | setup | timestamp window (default) | event id |
//! |---|---|---|---|---|
//! | [`Stripe`] | `"stripe"` | `Stripe::new(env("STRIPE_WEBHOOK_SECRET")).unwrap()` | `t=` in `Stripe-Signature`, ±300 s | body `id` (signed) |
//! | [`GitHub`] | `"github"` | `GitHub::new(env("GITHUB_WEBHOOK_SECRET")).unwrap()` | none | `X-GitHub-Delivery` (unsigned) |
//! | [`Shopify`] | `"shopify"` | `Shopify::new(env("SHOPIFY_WEBHOOK_SECRET")).unwrap()` | none | `X-Shopify-Event-Id`, else `X-Shopify-Webhook-Id` (unsigned) |
//! | [`Slack`] | `"slack"` | `Slack::new(env("SLACK_SIGNING_SECRET")).unwrap()` | `X-Slack-Request-Timestamp`, ±300 s | body `event_id` if present (signed) |
//! | [`StandardWebhooks`] | `"standard"` | `StandardWebhooks::new(env("STANDARD_WEBHOOK_SECRET"))?` | `webhook-timestamp`, ±300 s | `webhook-id` (signed) |
//! | [`StandardWebhooks::svix`] | `"svix"` | `StandardWebhooks::svix(env("SVIX_WEBHOOK_SECRET"))?` | `svix-timestamp`, ±300 s | `svix-id` (signed) |
//! | [`Paddle`] | `"paddle"` | `Paddle::new(env("PADDLE_WEBHOOK_SECRET")).unwrap()` | `ts=` in `Paddle-Signature`, ±5 s | body `event_id` (signed) |
//! | `Discord` | `"discord"` | `Discord::new(env("DISCORD_PUBLIC_KEY"))?` | `X-Signature-Timestamp`, ±300 s | body `id` (signed) |
//! | [`Twilio`] | `"twilio"` | `Twilio::new(env("TWILIO_AUTH_TOKEN"), "https://example.com")?` | none | `I-Twilio-Idempotency-Token` if present (unsigned) |
//! | [`Square`] | `"square"` | `Square::new(env("SQUARE_SIGNATURE_KEY"), "https://example.com/webhooks/square").unwrap()` | none | body `event_id` (signed) |
//! | [`Linear`] | `"linear"` | `Linear::new(env("LINEAR_WEBHOOK_SECRET")).unwrap()` | body `webhookTimestamp` (ms), ±60 s | `Linear-Delivery` if present (unsigned) |
//! | [`GitLab`] | `"gitlab"` | `GitLab::new(env("GITLAB_WEBHOOK_TOKEN")).unwrap()` | none (a static token, not a signature) | `Idempotency-Key` if present (unsigned) |
//! | [`Zoom`] | `"zoom"` | `Zoom::new(env("ZOOM_WEBHOOK_SECRET_TOKEN")).unwrap()` | `x-zm-request-timestamp`, ±300 s | none (derived from the body) |
//! | [`Typeform`] | `"typeform"` | `Typeform::new(env("TYPEFORM_WEBHOOK_SECRET")).unwrap()` | none | body `event_id` (signed) |
//! | [`Bitbucket`] | `"bitbucket"` | `Bitbucket::new(env("BITBUCKET_WEBHOOK_SECRET")).unwrap()` | none | none (derived from the body; `X-Request-UUID` is not used) |
//! | [`Jira`] | `"jira"` | `Jira::new(env("JIRA_WEBHOOK_SECRET")).unwrap()` | none | `X-Atlassian-Webhook-Identifier` (unsigned) |
//! | [`Vercel`] | `"vercel"` | `Vercel::new(env("VERCEL_WEBHOOK_SECRET")).unwrap()` | none | body `id` (signed) |
//! | [`Intercom`] | `"intercom"` | `Intercom::new(env("INTERCOM_CLIENT_SECRET")).unwrap()` | none | body `id` (signed) |
//! | [`Meta`] | `"meta"` | `Meta::new(env("META_APP_SECRET")).unwrap()` | none | none (derived from the body) |
//! | [`Dropbox`] | `"dropbox"` | `Dropbox::new(env("DROPBOX_APP_SECRET")).unwrap()` | none | none (derived from the body) |
//! | [`Calendly`] | `"calendly"` | `Calendly::new(env("CALENDLY_WEBHOOK_SIGNING_KEY")).unwrap()` | `t=` in `Calendly-Webhook-Signature`, ±180 s | none (derived from the body) |
//! | [`Mux`] | `"mux"` | `Mux::new(env("MUX_WEBHOOK_SECRET")).unwrap()` | `t=` in `Mux-Signature`, ±300 s | body `id` (signed) |
//! | [`DocuSign`] | `"docusign"` | `DocuSign::new(env("DOCUSIGN_CONNECT_HMAC_KEY")).unwrap()` | none | none (derived from the body) |
//! | [`HubSpot`] | `"hubspot"` | `HubSpot::new(env("HUBSPOT_CLIENT_SECRET"), "https://example.com").unwrap()` | `X-HubSpot-Request-Timestamp` (ms), ±300 s | none (derived from the body) |
//! | [`Twitch`] | `"twitch"` | `Twitch::new(env("TWITCH_EVENTSUB_SECRET")).unwrap()` | `Twitch-Eventsub-Message-Timestamp` (RFC 3339), ±600 s | `Twitch-Eventsub-Message-Id` (signed) |
//! | [`Mailgun`] | `"mailgun"` | `Mailgun::new(env("MAILGUN_WEBHOOK_SIGNING_KEY")).unwrap()` | body `signature.timestamp`, ±300 s | body `event-data.id` if present (unsigned; the body is not signed) |
//! | [`Postmark`] | `"postmark"` | `Postmark::new(env("POSTMARK_WEBHOOK_CREDENTIALS")).unwrap()` (`user:password`) | none (basic auth, not a signature) | none (derived from the body) |
//! | [`Okta`] | `"okta"` | `Okta::new(env("OKTA_EVENT_HOOK_SECRET")).unwrap()` | none (a static header, not a signature) | body `eventId` if present (unsigned) |
//! | [`MicrosoftGraph`] | `"msgraph"` | `MicrosoftGraph::new(env("MSGRAPH_CLIENT_STATE")).unwrap()` | none (`clientState` in the body, not a signature) | none (derived from the body) |
//! | `Telnyx` | `"telnyx"` | `Telnyx::new(env("TELNYX_PUBLIC_KEY"))?` | `telnyx-timestamp`, ±300 s | body `data.id` if present (signed) |
//! | `Sns` | `"sns"` | `WebhookLayer::with_keys(Sns::new([topic_arn])?, CachedKeys::new(SnsCertificates::new(fetcher)))` (feature `sns`; a [`KeyedVerifier`](crate::keys::KeyedVerifier)) | none (SNS retries with the original signature) | body `MessageId` (signed) |
//! | `PayPal` | `"paypal"` | `WebhookLayer::with_keys(PayPal::new(env("PAYPAL_WEBHOOK_ID"))?, CachedKeys::new(PayPalCertificates::new(fetcher)))` (feature `paypal`; a [`KeyedVerifier`](crate::keys::KeyedVerifier)) | none | body `id` (unsigned: only a CRC32 binds the body) |
//! | `Plaid` | `"plaid"` | `WebhookLayer::with_keys(Plaid::new(), CachedKeys::new(your_plaid_key_source))` (feature `plaid`; a [`KeyedVerifier`](crate::keys::KeyedVerifier)) | JWT `iat`, ±300 s | none (derived from the body) |
//! | `PubSub` | `"pubsub"` | `WebhookLayer::with_keys(PubSub::new(audience, service_account)?, CachedKeys::new(GoogleKeys::new(fetcher)))` (feature `pubsub`; a [`KeyedVerifier`](crate::keys::KeyedVerifier)) | token `exp`/`iat`, ±60 s leeway | body `message.messageId` (unsigned: the token does not cover the body) |
//! | `SendGrid` | `"sendgrid"` | `SendGrid::new(env("SENDGRID_VERIFICATION_KEY"))?` (feature `sendgrid`) | `X-Twilio-Email-Event-Webhook-Timestamp`, ±300 s | none for a batch (derived from the body); a JSON object's `sg_event_id` (signed) |
//!
//! Senders on [Standard Webhooks](StandardWebhooks) need no preset of their
//! own, only the constructor for their header names (give each route its own
//! [namespace](crate::WebhookLayer::namespace)):
//!
//! | sender | constructor | headers |
//! |---|---|---|
//! | Clerk | [`StandardWebhooks::svix`] (`whsec_…` signing secret) | `svix-id`, `svix-timestamp`, `svix-signature` |
//! | Resend | [`StandardWebhooks::svix`] (`whsec_…` signing secret; resend-node `src/webhooks/webhooks.ts` maps these headers) | `svix-id`, `svix-timestamp`, `svix-signature` |
//! | OpenAI | [`StandardWebhooks::new`] (`whsec_…` webhook secret) | `webhook-id`, `webhook-timestamp`, `webhook-signature` |
//! | GitLab signing token | [`StandardWebhooks::new`] (`whsec_…` signing token; [`GitLab`] covers the older `X-Gitlab-Token`) | `webhook-id`, `webhook-timestamp`, `webhook-signature` |
//!
//! Handshakes (see [`handshake`](crate::handshake)), each enabled per route
//! with [`WebhookLayer::handshake`](crate::WebhookLayer::handshake):
//!
//! | sender | handshake | when it runs | what it checks |
//! |---|---|---|---|
//! | Slack | [`SlackUrlVerification`] | after verification | the request's signature |
//! | Discord | `DiscordPing` | after verification | the request's signature |
//! | Zoom | [`ZoomUrlValidation`] (built with the secret token) | after verification | the request's signature |
//! | Twitch | [`TwitchCallbackVerification`] | after verification | the request's signature |
//! | Okta | [`OktaVerification`] (`GET`) | after verification | the hook's authentication header |
//! | Dropbox | [`DropboxChallenge`] (`GET`) | before verification | nothing: Dropbox does not sign it (the challenge is bounded) |
//! | Meta | [`MetaVerifyToken`] (`GET`, built with the verify token) | before verification | the verify token, in constant time |
//! | Microsoft Graph | [`MicrosoftGraphValidation`] | before verification | nothing: Graph sends no `clientState` with it (the token is bounded) |
//!
//! A route answering a `GET` handshake must accept `GET`: an axum `post(..)`
//! route answers 405 before its layers run (route it with
//! `post(..).get(..)`, or mount the layered service with `any_service(..)`).
//!
//! [`GitLab`], [`Postmark`], [`Okta`] and [`MicrosoftGraph`] check a static
//! credential, not a signature: each one's docs say what that does not
//! prove. [`Mailgun`] and [`MicrosoftGraph`] carry their signature or
//! credential in the body, so they parse it before verifying it.
//!
//! (`Discord`, `Telnyx` and the `v1a` signatures of [`StandardWebhooks`] need the
//! `ed25519` feature, on by default.)
//!
//! Every window checks both directions (too old, and too far in the future)
//! and takes an injectable [`Clock`](crate::clock::Clock) through
//! `with_clock`. A scheme whose event id is not covered by the signature
//! marks it unsigned on [`VerifiedWebhook`](crate::VerifiedWebhook), so the
//! idempotency layer can guard against replays under a new id.
//!
//! ```
//! use axum::{Router, routing::post};
//! use tower::ServiceExt;
//! use tower_webhooks::WebhookLayer;
//! use tower_webhooks::providers::{GitHub, Stripe};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = Router::new()
//!     .route("/webhooks/stripe", post(|| async { "ok" }))
//!     .route_layer(WebhookLayer::new(Stripe::new("whsec_test_secret").unwrap()))
//!     .merge(
//!         Router::new()
//!             .route("/webhooks/github", post(|| async { "ok" }))
//!             .route_layer(WebhookLayer::new(GitHub::new("It's a Secret to Everybody").unwrap())),
//!     );
//!
//! // GitHub's documented test vector.
//! let request = http::Request::post("/webhooks/github")
//!     .header("x-hub-signature-256",
//!         "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
//!     .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
//!     .body(axum::body::Body::from("Hello, World!"))
//!     .unwrap();
//! assert_eq!(app.clone().oneshot(request).await.unwrap().status(), 200);
//!
//! // A Stripe request without its signature never reaches the handler.
//! let request = http::Request::post("/webhooks/stripe")
//!     .body(axum::body::Body::from("{}"))
//!     .unwrap();
//! assert_eq!(app.oneshot(request).await.unwrap().status(), 400);
//! # }
//! ```
//!
//! A provider that is not here is a few dozen lines on the
//! [`SignatureVerifier`] trait (see [`verify`](crate::verify) and
//! `examples/custom_provider.rs`).
//!
//! # The registry
//!
//! Each preset is defined once, next to its verifier, as a [`Provider`]
//! entry: its name (= [`provider()`](crate::SignatureVerifier::provider)), the
//! variable that holds its secret or public key, what that variable holds,
//! its handshake, how to [`build`](Provider::build) its verifier and
//! handshake from a [`ProviderConfig`], and, with the `test-util` feature,
//! its signer ([`Provider::signer`]) and a matching pair of test keys.
//! [`all`] lists them in a stable order and [`get`] finds one by name;
//! [`fetched`] lists the presets whose keys are fetched at run time (SNS,
//! PayPal, Pub/Sub), which are mounted with
//! [`WebhookLayer::with_keys`](crate::WebhookLayer::with_keys) instead.
//! `examples/receiver.rs` mounts its routes from [`all`], `send` signs for
//! every entry, and [`testing::PROVIDERS`](crate::testing::PROVIDERS) and
//! [`testing::signer_for`](crate::testing::signer_for) derive from it.
//!
//! ```
//! use tower_webhooks::providers::{self, ProviderConfig};
//! use tower_webhooks::WebhookLayer;
//!
//! let mut layers = Vec::new();
//! for provider in providers::all() {
//!     // In a service: `std::env::var(provider.variable())`.
//!     let Some(secret) = (provider.name() == "github").then_some("It's a Secret to Everybody")
//!     else {
//!         continue;
//!     };
//!     let preset = provider.build(&ProviderConfig::new(secret)).unwrap();
//!     let mut layer = WebhookLayer::from_shared(preset.verifier().clone());
//!     if let Some(handshake) = preset.handshake() {
//!         layer = layer.handshake(handshake.clone());
//!     }
//!     layers.push((format!("/webhooks/{}", provider.name()), layer));
//! }
//! assert_eq!(layers.len(), 1);
//! ```
//!
//! [`SignatureVerifier`]: crate::SignatureVerifier

/// The setters of every preset with a timestamp window (a `window:
/// TimestampWindow` field): tolerance, clock and shared clock.
macro_rules! window_setters {
    (tolerance = $tolerance:literal, clock = $clock:literal) => {
        #[doc = $tolerance]
        #[must_use]
        pub fn tolerance(mut self, tolerance: ::std::time::Duration) -> Self {
            self.window = self.window.with_tolerance(tolerance);
            self
        }

        #[doc = $clock]
        #[must_use]
        pub fn clock(mut self, clock: impl $crate::clock::Clock) -> Self {
            self.window = self.window.with_clock(clock);
            self
        }

        /// A clock shared with other parts of the application.
        #[must_use]
        pub fn shared_clock(mut self, clock: ::std::sync::Arc<dyn $crate::clock::Clock>) -> Self {
            self.window = self.window.with_shared_clock(clock);
            self
        }

        /// Renamed [`tolerance`](Self::tolerance): setters are plain nouns.
        #[deprecated(since = "0.2.0", note = "renamed `tolerance`")]
        #[must_use]
        pub fn with_tolerance(self, tolerance: ::std::time::Duration) -> Self {
            self.tolerance(tolerance)
        }

        /// Renamed [`clock`](Self::clock): setters are plain nouns.
        #[deprecated(since = "0.2.0", note = "renamed `clock`")]
        #[must_use]
        pub fn with_clock(self, clock: impl $crate::clock::Clock) -> Self {
            self.clock(clock)
        }

        /// Renamed [`shared_clock`](Self::shared_clock): setters are plain
        /// nouns.
        #[deprecated(since = "0.2.0", note = "renamed `shared_clock`")]
        #[must_use]
        pub fn with_shared_clock(self, clock: ::std::sync::Arc<dyn $crate::clock::Clock>) -> Self {
            self.shared_clock(clock)
        }
    };
}
pub(crate) use window_setters;

mod bitbucket;
mod calendly;
#[cfg(feature = "ed25519")]
mod discord;
mod docusign;
mod dropbox;
mod github;
mod gitlab;
mod hubspot;
mod intercom;
mod jira;
mod linear;
mod mailgun;
mod meta;
mod msgraph;
mod mux;
mod okta;
mod paddle;
#[cfg(feature = "paypal")]
mod paypal;
#[cfg(feature = "plaid")]
mod plaid;
mod postmark;
#[cfg(feature = "pubsub")]
mod pubsub;
pub(crate) mod registry;
#[cfg(feature = "sendgrid")]
mod sendgrid;
mod shared;
mod shopify;
mod slack;
#[cfg(feature = "sns")]
mod sns;
mod square;
mod standard;
mod stripe;
#[cfg(feature = "ed25519")]
mod telnyx;
mod twilio;
mod twitch;
mod typeform;
mod vercel;
mod zoom;

use http::HeaderName;

pub use self::bitbucket::Bitbucket;
pub use self::calendly::Calendly;
#[cfg(feature = "ed25519")]
#[cfg_attr(docsrs, doc(cfg(feature = "ed25519")))]
pub use self::discord::{Discord, DiscordPing};
pub use self::docusign::DocuSign;
pub use self::dropbox::{Dropbox, DropboxChallenge};
pub use self::github::GitHub;
pub use self::gitlab::GitLab;
pub use self::hubspot::HubSpot;
pub use self::intercom::Intercom;
pub use self::jira::Jira;
pub use self::linear::Linear;
pub use self::mailgun::Mailgun;
pub use self::meta::{Meta, MetaVerifyToken};
pub use self::msgraph::{MicrosoftGraph, MicrosoftGraphValidation};
pub use self::mux::Mux;
pub use self::okta::{Okta, OktaVerification};
pub use self::paddle::Paddle;
#[cfg(feature = "paypal")]
#[cfg_attr(docsrs, doc(cfg(feature = "paypal")))]
pub use self::paypal::{PayPal, PayPalCertificates, PayPalKey};
#[cfg(feature = "plaid")]
#[cfg_attr(docsrs, doc(cfg(feature = "plaid")))]
pub use self::plaid::{Plaid, PlaidKey};
pub use self::postmark::Postmark;
#[cfg(feature = "pubsub")]
#[cfg_attr(docsrs, doc(cfg(feature = "pubsub")))]
pub use self::pubsub::{GoogleKey, GoogleKeys, PubSub};
pub use self::registry::{
    Credential, FetchedProvider, HandshakeSpec, Preset, PresetHandshake, Provider, ProviderConfig,
    ProviderError, all, fetched, get,
};
#[cfg(feature = "sendgrid")]
#[cfg_attr(docsrs, doc(cfg(feature = "sendgrid")))]
pub use self::sendgrid::SendGrid;
pub use self::shopify::Shopify;
pub use self::slack::{Slack, SlackUrlVerification};
#[cfg(feature = "sns")]
#[cfg_attr(docsrs, doc(cfg(feature = "sns")))]
pub use self::sns::{
    MAX_CERTIFICATE_LEN, Sns, SnsCertificates, SnsKey, SnsSubscriptionConfirmation,
};
pub use self::square::Square;
pub use self::standard::StandardWebhooks;
pub use self::stripe::Stripe;
#[cfg(feature = "ed25519")]
#[cfg_attr(docsrs, doc(cfg(feature = "ed25519")))]
pub use self::telnyx::Telnyx;
pub use self::twilio::Twilio;
#[cfg(feature = "test-util")]
pub(crate) use self::twilio::form_params;
pub use self::twitch::{Twitch, TwitchCallbackVerification};
pub use self::typeform::Typeform;
pub use self::vercel::Vercel;
pub use self::zoom::{Zoom, ZoomUrlValidation};

use crate::verify::{
    Encoding, Tags, TimestampWindow, VerifyError, parse_unix_timestamp, single_header,
};

/// The most signatures read from one header. More is refused as malformed, so
/// a hostile header costs a bounded amount of work.
pub const MAX_SIGNATURES: usize = 64;

/// A preset's configuration that cannot work (the same type as
/// [`verify::ConfigError`](crate::verify::ConfigError)).
pub use crate::verify::ConfigError;

/// A header of `key=value` items holding one timestamp and any number of
/// signatures: Stripe's `t=..,v1=..` and Paddle's `ts=..;h1=..`.
pub(crate) struct TimestampedSignatureHeader {
    pub(crate) name: HeaderName,
    pub(crate) separator: char,
    pub(crate) timestamp_key: &'static str,
    pub(crate) signature_key: &'static str,
    /// The error for a second timestamp item.
    pub(crate) repeated_timestamp: &'static str,
    /// The error for no timestamp item.
    pub(crate) missing_timestamp: &'static str,
}

/// What [`TimestampedSignatureHeader::parse`] read.
pub(crate) struct TimestampedSignatures<'a> {
    /// The timestamp as sent (it is part of the signed content).
    pub(crate) raw_timestamp: &'a str,
    pub(crate) timestamp: u64,
    pub(crate) signatures: Tags<32>,
}

impl TimestampedSignatureHeader {
    /// Reads the header: exactly one timestamp, within `window`, and up to
    /// [`MAX_SIGNATURES`] hex signatures; items with other keys are ignored.
    pub(crate) fn parse<'a>(
        &self,
        headers: &'a http::HeaderMap,
        window: &TimestampWindow,
    ) -> Result<TimestampedSignatures<'a>, VerifyError> {
        let header = &self.name;
        let value = single_header(headers, header)?;
        let mut raw_timestamp = None;
        let mut signatures = Tags::<32>::new(MAX_SIGNATURES);
        for item in value.split(self.separator) {
            let Some((key, value)) = item.split_once('=') else {
                continue;
            };
            if key == self.timestamp_key {
                if raw_timestamp.is_some() {
                    return Err(VerifyError::malformed(header, self.repeated_timestamp));
                }
                raw_timestamp = Some(value);
            } else if key == self.signature_key {
                signatures.push(header, value, Encoding::Hex)?;
            }
        }
        let raw_timestamp =
            raw_timestamp.ok_or_else(|| VerifyError::malformed(header, self.missing_timestamp))?;
        let timestamp = parse_unix_timestamp(header, raw_timestamp)?;
        window.check(header, timestamp)?;
        Ok(TimestampedSignatures {
            raw_timestamp,
            timestamp,
            signatures,
        })
    }
}

pub(crate) use crate::verify::header_location;

/// Parses an Ed25519 public key for verification; `strict` rejects weak
/// (small-order) keys.
#[cfg(feature = "ed25519")]
pub(crate) fn ed25519_public_key(
    bytes: &[u8],
) -> Result<ed25519_dalek::VerifyingKey, &'static str> {
    let bytes: &[u8; 32] = bytes
        .try_into()
        .map_err(|_| "an Ed25519 public key is 32 bytes")?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
        .map_err(|_| "not a valid Ed25519 public key")?;
    if key.is_weak() {
        return Err("a weak (small-order) Ed25519 public key");
    }
    Ok(key)
}

/// Verifies an Ed25519 signature over `parts` concatenated.
///
/// `ed25519-dalek` verifies a contiguous message unless its `hazmat` feature
/// is enabled, so the parts are copied once into `scratch` (reused across
/// calls within one request).
#[cfg(feature = "ed25519")]
pub(crate) fn ed25519_verify(
    key: &ed25519_dalek::VerifyingKey,
    signature: &[u8],
    parts: &[&[u8]],
    scratch: &mut Vec<u8>,
) -> bool {
    let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
        return false;
    };
    #[cfg(feature = "test-util")]
    ED25519_CHECKS.with(|checks| checks.set(checks.get() + 1));
    if scratch.is_empty() {
        scratch.reserve_exact(parts.iter().map(|part| part.len()).sum());
        for part in parts {
            scratch.extend_from_slice(part);
        }
    }
    key.verify_strict(scratch, &signature).is_ok()
}

#[cfg(all(feature = "ed25519", feature = "test-util"))]
thread_local! {
    /// Ed25519 verifications run on this thread (see
    /// `testing::ed25519_checks`).
    pub(crate) static ED25519_CHECKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The most bytes of a challenge the handshakes echo: every sender's is far
/// shorter (Dropbox's and Meta's are tens of characters, Microsoft Graph's
/// about a hundred).
pub(crate) const MAX_CHALLENGE: usize = 1024;

/// The percent-decoded value of query parameter `name` when it appears once;
/// `None` when it does not appear.
///
/// # Errors
///
/// [`VerifyError::BadRequest`] when it appears several times: which one a
/// sender meant is ambiguous.
pub(crate) fn query_param<'a>(
    parts: &'a http::request::Parts,
    name: &str,
) -> Result<Option<std::borrow::Cow<'a, [u8]>>, VerifyError> {
    let query = parts.uri.query().unwrap_or_default().as_bytes();
    let mut found = None;
    for (key, value) in twilio::form_params(query) {
        if *key == *name.as_bytes() {
            if found.is_some() {
                return Err(VerifyError::BadRequest(
                    format!("the query parameter `{name}` appears more than once").into(),
                ));
            }
            found = Some(value);
        }
    }
    Ok(found)
}

/// A challenge to echo: 1 to [`MAX_CHALLENGE`] bytes, each one `allowed`.
///
/// # Errors
///
/// [`VerifyError::BadRequest`] naming `what` otherwise.
pub(crate) fn challenge(
    value: &[u8],
    what: &'static str,
    allowed: fn(u8) -> bool,
) -> Result<String, VerifyError> {
    if value.is_empty() || value.len() > MAX_CHALLENGE || !value.iter().all(|&byte| allowed(byte)) {
        return Err(VerifyError::BadRequest(
            format!(
                "{what} is empty, longer than {MAX_CHALLENGE} bytes, or has characters a \
                 challenge does not"
            )
            .into(),
        ));
    }
    // Every allowed byte is ASCII.
    Ok(value.iter().map(|&byte| char::from(byte)).collect())
}

/// The characters of a URL-safe token: letters, digits, `-`, `.`, `_`, `~`.
pub(crate) fn url_safe(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// A `text/plain` answer that browsers will not sniff as anything else.
pub(crate) fn plain_nosniff(text: String) -> http::Response<bytes::Bytes> {
    let mut response = crate::handshake::plain(text);
    response.headers_mut().insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    response
}

/// The value of a header that must appear once, or `None` when it is absent
/// or repeated or not visible ASCII.
pub(crate) fn one_header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// Whether `needle` occurs in `haystack` (a cheap test before parsing a body
/// that may be a handshake).
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
